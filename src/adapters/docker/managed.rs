//! What the Engine shows of a container, read as the domain sees it: whether it is managed
//! (opted in, not a Swarm task, not mid-swap), what it follows, its labels and digests; and
//! which namespace another container shares with it.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use tracing::{debug, warn};

use super::DockerRuntime;
use crate::event::{Digest, Mirrors, follows, parse_source};
use crate::image::repo_digests;
use crate::model::labels::{
    self, GateLabels, HookLabels, LABEL_ENABLE, LABEL_HEALTH_TIMEOUT, LABEL_IMAGE, LABEL_POLICY,
    LABEL_SOURCE, LABEL_WINDOW, PolicyLabels, Provenance, opted_in,
};
use crate::ports::{Managed, NEW_SUFFIX, OLD_SUFFIX, RuntimeError};

/// Swarm marks its task containers with this label; they belong to services, not to us.
const SWARM_TASK_LABEL: &str = "com.docker.swarm.service.id";
/// Compose marks the containers of a project with its name.
pub(super) const COMPOSE_PROJECT: &str = "com.docker.compose.project";
/// Compose v2 keeps the image id a container was made from, to tell whether `up` must
/// re-create it (SPEC §12: set to the new image's id on a swap).
pub(super) const COMPOSE_IMAGE: &str = "com.docker.compose.image";

impl DockerRuntime {
    /// The managed container an inspection shows, if it is one.
    pub(super) async fn to_managed(
        &self,
        inspect: ContainerInspectResponse,
        mirrors: &Mirrors,
    ) -> Result<Option<Managed>, RuntimeError> {
        let config = inspect.config.clone().unwrap_or_default();
        let merged = config.labels.clone().unwrap_or_default();
        let name = inspect
            .name
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned();
        if !opted_in(merged.get(LABEL_ENABLE).map(String::as_str))
            || merged.contains_key(SWARM_TASK_LABEL)
            || name.ends_with(OLD_SUFFIX)
            || name.ends_with(NEW_SUFFIX)
        {
            return Ok(None);
        }
        let image_id = inspect.image.clone().unwrap_or_default();
        let image = match self.inspect_image_facts("inspect image", &image_id).await {
            Ok(image) => Some(image),
            Err(e) if e.transient => return Err(e),
            Err(_) => None,
        };
        // SPEC §4: only the labels set on the container count, never the image's.
        let image_labels = image.as_ref().map(|i| i.labels()).unwrap_or_default();
        let provenance = Provenance::split(&merged, &image_labels);
        let labels = &provenance.own;
        if !opted_in(labels.get(LABEL_ENABLE).map(String::as_str)) {
            debug!(container = %name, "{LABEL_ENABLE} comes from the image, not the container: not managed");
            return Ok(None);
        }
        let configured = config.image.clone().unwrap_or_default();
        let follows = match labels.get(LABEL_SOURCE) {
            Some(source) => parse_source(source).map_err(|e| format!("label {LABEL_SOURCE}: {e}")),
            None => follows(
                &configured,
                labels.get(LABEL_IMAGE).map(String::as_str),
                mirrors,
            ),
        };
        let follows = match follows {
            Ok(f) => f,
            Err(reason) => {
                warn!(container = %name, %reason, "managed container skipped");
                return Ok(None);
            }
        };
        let health_timeout = match labels.get(LABEL_HEALTH_TIMEOUT).map(|v| v.parse::<u64>()) {
            None => None,
            Some(Ok(s)) => Some(Duration::from_secs(s)),
            Some(Err(_)) => {
                warn!(container = %name, "label {LABEL_HEALTH_TIMEOUT} is not a number of seconds; using the default");
                None
            }
        };
        let digests = match image {
            // An archive's image has no registry digest: its identity is its id (SPEC §13).
            Some(_) if follows.is_archive() => Digest::parse(&image_id).into_iter().collect(),
            Some(image) => repo_digests(
                &image.repo_digests.unwrap_or_default(),
                follows.repository.as_str(),
            ),
            None => Vec::new(),
        };
        Ok(Some(Managed {
            stop_timeout: config
                .stop_timeout
                .map(|s| Duration::from_secs(s.max(0) as u64)),
            id: inspect.id.clone().unwrap_or_default(),
            policy: PolicyLabels {
                policy: labels.get(LABEL_POLICY).cloned(),
                window: labels.get(LABEL_WINDOW).cloned(),
            },
            gates: GateLabels::from_provenance(&provenance),
            hooks: HookLabels::from_labels(labels),
            compose_project: labels.get(COMPOSE_PROJECT).cloned(),
            scope: labels.get(labels::SCOPE).cloned(),
            name,
            image: configured,
            follows,
            digests,
            health_timeout,
            running_now: inspect.state.and_then(|s| s.running).unwrap_or(false),
        }))
    }
}

impl DockerRuntime {
    /// A container's own labels (SPEC §4): its merged `labels` minus the agent's labels it
    /// inherited from image `image_id`. An image that is gone leaves nothing to inherit.
    pub(super) async fn own_labels(
        &self,
        merged: HashMap<String, String>,
        image_id: &str,
    ) -> Result<HashMap<String, String>, RuntimeError> {
        if !merged.keys().any(|k| k.starts_with(labels::PREFIX)) {
            return Ok(merged);
        }
        let image = match self.inspect_image_facts("inspect image", image_id).await {
            Ok(image) => image.labels(),
            Err(e) if e.transient => return Err(e),
            Err(_) => HashMap::new(),
        };
        Ok(Provenance::split(&merged, &image).own)
    }
}

/// Which namespace of `target` (id and name) an inspected container shares, if any: its
/// network, IPC or PID namespace (`container:<id or name>`), or its volumes (`VolumesFrom`,
/// `<id or name>[:ro|:rw]`).
pub(super) fn shared_namespace(
    c: &ContainerInspectResponse,
    id: &str,
    name: &str,
) -> Option<&'static str> {
    let host = c.host_config.as_ref()?;
    let mode = |mode: &Option<String>| {
        mode.as_deref()
            .and_then(|m| m.strip_prefix("container:"))
            .is_some_and(|t| names(t, id, name))
    };
    if mode(&host.network_mode) {
        Some("network")
    } else if mode(&host.ipc_mode) {
        Some("IPC")
    } else if mode(&host.pid_mode) {
        Some("PID")
    } else if host.volumes_from.iter().flatten().any(|v| {
        let source = v.split(':').next().unwrap_or_default();
        names(source, id, name)
    }) {
        Some("volumes")
    } else {
        None
    }
}

/// `reference` (an id, an id prefix of 12 or more, or a name) names container `id`/`name`.
pub(super) fn names(reference: &str, id: &str, name: &str) -> bool {
    let reference = reference.trim_start_matches('/');
    reference == id || reference == name || (reference.len() >= 12 && id.starts_with(reference))
}
