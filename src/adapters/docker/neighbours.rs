//! A container's neighbours on the Engine (SPEC §12): the containers that share its
//! namespaces or volumes (its dependents), and the opted-in containers that declare a
//! `depends-on` start order.

use bollard::models::ContainerInspectResponse;
use futures::StreamExt;

use super::{DockerRuntime, managed};
use crate::model::labels::{LABEL_DEPENDS_ON, LABEL_ENABLE, opted_in, parse_depends_on};
use crate::ports::{Dependent, NEW_SUFFIX, OLD_SUFFIX, Ordered, RuntimeError};

/// Inspections of other containers at once, when looking for dependents.
const CONCURRENT_INSPECTS: usize = 8;

fn name_of(c: &ContainerInspectResponse) -> String {
    c.name
        .clone()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned()
}

impl DockerRuntime {
    /// Every container that shares a namespace or the volumes of container `id`.
    pub(super) async fn find_dependents(&self, id: &str) -> Result<Vec<Dependent>, RuntimeError> {
        let Some(target) = self.inspect(id).await? else {
            return Ok(Vec::new());
        };
        let name = name_of(&target);
        let others: Vec<String> = self
            .list(None)
            .await?
            .into_iter()
            .filter_map(|s| s.id)
            .filter(|other| other != id)
            .collect();
        let inspected: Vec<Result<Option<ContainerInspectResponse>, RuntimeError>> =
            futures::stream::iter(others)
                .map(|o| async move { self.inspect(&o).await })
                .buffer_unordered(CONCURRENT_INSPECTS)
                .collect()
                .await;
        let mut out = Vec::new();
        for c in inspected {
            let Some(c) = c? else { continue };
            let Some(shares) = managed::shared_namespace(&c, id, &name) else {
                continue;
            };
            let merged = c.config.clone().and_then(|c| c.labels).unwrap_or_default();
            let labels = self
                .own_labels(merged, c.image.as_deref().unwrap_or_default())
                .await?;
            out.push(Dependent {
                id: c.id.clone().unwrap_or_default(),
                name: name_of(&c),
                shares,
                opted_in: opted_in(labels.get(LABEL_ENABLE).map(String::as_str)),
                running: c.state.and_then(|s| s.running).unwrap_or(false),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Opted-in containers with an `ecr-deployd.depends-on` label (none mid-swap).
    pub(super) async fn find_ordering(&self) -> Result<Vec<Ordered>, RuntimeError> {
        let list = self
            .list(Some(("label", &format!("{LABEL_ENABLE}=true"))))
            .await?;
        let mut out = Vec::new();
        for s in list {
            let merged = s.labels.unwrap_or_default();
            if !merged.contains_key(LABEL_DEPENDS_ON) {
                continue;
            }
            let labels = self
                .own_labels(merged, s.image_id.as_deref().unwrap_or_default())
                .await?;
            let (true, Some(depends_on)) = (
                opted_in(labels.get(LABEL_ENABLE).map(String::as_str)),
                labels.get(LABEL_DEPENDS_ON),
            ) else {
                continue;
            };
            let name = s
                .names
                .unwrap_or_default()
                .first()
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default();
            if name.ends_with(OLD_SUFFIX) || name.ends_with(NEW_SUFFIX) {
                continue;
            }
            out.push(Ordered {
                id: s.id.unwrap_or_default(),
                name,
                depends_on: parse_depends_on(depends_on),
                running: s.state.as_ref().map(|s| s.to_string()).as_deref() == Some("running"),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
