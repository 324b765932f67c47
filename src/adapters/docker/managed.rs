//! What the Engine shows of a container, read as the domain sees it: whether it is managed
//! (opted in, not a Swarm task, not mid-swap), what it follows, its labels and digests; and
//! which namespace another container shares with it.

use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use tracing::warn;

use super::{DockerRuntime, timed};
use crate::control::policy::{LABEL_POLICY, LABEL_WINDOW, PolicyLabels};
use crate::event::follows;
use crate::gate::GateLabels;
use crate::image::repo_digests;
use crate::ports::{
    LABEL_ENABLE, LABEL_HEALTH_TIMEOUT, LABEL_IMAGE, Managed, NEW_SUFFIX, OLD_SUFFIX, RuntimeError,
};

/// Swarm marks its task containers with this label; they belong to services, not to us.
const SWARM_TASK_LABEL: &str = "com.docker.swarm.service.id";

impl DockerRuntime {
    /// The managed container an inspection shows, if it is one.
    pub(super) async fn to_managed(
        &self,
        inspect: ContainerInspectResponse,
        mirror: Option<&str>,
    ) -> Result<Option<Managed>, RuntimeError> {
        let config = inspect.config.clone().unwrap_or_default();
        let labels = config.labels.clone().unwrap_or_default();
        let name = inspect
            .name
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned();
        if labels.get(LABEL_ENABLE).map(String::as_str) != Some("true")
            || labels.contains_key(SWARM_TASK_LABEL)
            || name.ends_with(OLD_SUFFIX)
            || name.ends_with(NEW_SUFFIX)
        {
            return Ok(None);
        }
        let configured = config.image.clone().unwrap_or_default();
        let follows = match follows(
            &configured,
            labels.get(LABEL_IMAGE).map(String::as_str),
            mirror,
        ) {
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
        let image_id = inspect.image.clone().unwrap_or_default();
        let docker = self.docker().await?;
        let digests = match timed(
            "inspect image",
            self.call_timeout,
            docker.inspect_image(&image_id),
        )
        .await
        {
            Ok(image) => repo_digests(
                &image.repo_digests.unwrap_or_default(),
                follows.repository.as_str(),
            ),
            Err(e) if e.transient => return Err(e),
            Err(_) => Vec::new(),
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
            gates: GateLabels::from_labels(&labels),
            name,
            image: configured,
            follows,
            digests,
            health_timeout,
            running_now: inspect.state.and_then(|s| s.running).unwrap_or(false),
        }))
    }
}

/// Which namespace of `target` (id and name) an inspected container shares, if any.
pub(super) fn shared_namespace(
    c: &ContainerInspectResponse,
    id: &str,
    name: &str,
) -> Option<&'static str> {
    let host = c.host_config.as_ref()?;
    let names = |mode: &Option<String>| {
        mode.as_deref()
            .and_then(|m| m.strip_prefix("container:"))
            .is_some_and(|t| t == id || t == name || (t.len() >= 12 && id.starts_with(t)))
    };
    if names(&host.network_mode) {
        Some("network")
    } else if names(&host.ipc_mode) {
        Some("IPC")
    } else if names(&host.pid_mode) {
        Some("PID")
    } else {
        None
    }
}
