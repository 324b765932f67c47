//! The container runtime (Docker Engine) in the terms of a swap, and what it shows of the
//! managed containers and services.

use std::future::Future;
use std::time::Duration;

use super::{ArchiveBody, PullAuth};
use crate::event::Mirrors;
use crate::image::Platform;
use crate::model::labels::{GateLabels, HookLabels, PolicyLabels};
use crate::model::reference::{Digest, ImageRef};

/// A container that opted in (`ecr-deployd.enable=true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Managed {
    pub id: String,
    pub name: String,
    /// The image reference the container was created with (what a new image is tagged as).
    pub image: String,
    /// The `repository:tag` it follows: from `ecr-deployd.image` or parsed from `image`.
    pub follows: ImageRef,
    /// Every digest of the image it runs (its RepoDigests), the followed repository's first.
    pub digests: Vec<Digest>,
    /// `ecr-deployd.health-timeout`, when set.
    pub health_timeout: Option<Duration>,
    /// The container's own StopTimeout, when it sets one (it wins over the config).
    pub stop_timeout: Option<Duration>,
    pub running_now: bool,
    /// `ecr-deployd.policy` and `ecr-deployd.window`, as labelled.
    pub policy: PolicyLabels,
    /// `ecr-deployd.verify` and `ecr-deployd.scan-max-severity`, as labelled.
    pub gates: GateLabels,
    /// `ecr-deployd.hook.*`, as labelled.
    pub hooks: HookLabels,
    /// `com.docker.compose.project`: the Compose project it belongs to, if any.
    pub compose_project: Option<String>,
    /// Its own `ecr-deployd.scope` label (SPEC §4).
    pub scope: Option<String>,
}

impl Managed {
    /// The digest shown as "running": the followed repository's, else any.
    pub fn running(&self) -> Option<&Digest> {
        self.digests.first()
    }
}

impl ManagedService {
    /// The digest the service spec pins.
    pub fn running(&self) -> Option<&Digest> {
        self.digests.first()
    }
}

/// A container that shares a managed container's namespace (`--network container:NAME`,
/// `--ipc container:NAME`, `--pid container:NAME`). Docker stores the id, so a swap of the
/// managed container leaves it with only `lo` and unable to restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependent {
    pub id: String,
    pub name: String,
    /// "network", "IPC", "PID" or "volumes".
    pub shares: &'static str,
    /// `ecr-deployd.enable=true`.
    pub opted_in: bool,
    pub running: bool,
}

/// A dependent's successor points at the parent's successor: every reference to the old
/// parent (by id or name) in its namespace modes and `VolumesFrom` becomes `new_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repoint {
    pub old_id: String,
    pub old_name: String,
    pub new_id: String,
}

/// An opted-in container with an `ecr-deployd.depends-on` label (SPEC §12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ordered {
    pub id: String,
    pub name: String,
    /// The names it depends on.
    pub depends_on: Vec<String>,
    pub running: bool,
}

/// How a command run in a container ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRun {
    /// `None` when it did not end (timed out) or the Engine did not say.
    pub exit_code: Option<i64>,
    /// The end of its output (stdout and stderr interleaved), bounded by the adapter.
    pub output: String,
    pub timed_out: bool,
    /// Not run: an earlier run in this container outlived its timeout and still runs.
    pub still_running: bool,
}

/// What the health gate sees of a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub running: bool,
    /// `None` without a HEALTHCHECK; else "starting", "healthy" or "unhealthy".
    pub health: Option<String>,
    pub restart_count: i64,
    pub exit_code: Option<i64>,
}

/// A failed Docker operation. `transient` when the Engine could not be reached or did not
/// answer in time; `status` is the Engine's HTTP status when it answered with an error.
#[derive(Clone, Debug, thiserror::Error)]
#[error("docker {operation}: {message}")]
pub struct RuntimeError {
    pub operation: &'static str,
    pub message: String,
    pub transient: bool,
    pub status: Option<u16>,
}

impl RuntimeError {
    /// The Engine could not be reached: worth retrying.
    pub fn transient(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: message.into(),
            transient: true,
            status: None,
        }
    }

    /// A refusal or a bad answer that will not change by retrying.
    pub fn permanent(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: message.into(),
            transient: false,
            status: None,
        }
    }

    /// The Engine answered with an HTTP error. Not transient: the Engine is there, and its
    /// 500s are mostly refusals ("port is already allocated") that a retry does not change.
    pub fn http(operation: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: format!("HTTP {status}: {}", message.into()),
            transient: false,
            status: Some(status),
        }
    }

    /// The Engine did not answer within `after`: the call is abandoned as transient.
    pub fn timed_out(operation: &'static str, after: Duration) -> Self {
        Self::transient(
            operation,
            format!("no answer from the Engine within {} s", after.as_secs()),
        )
    }

    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }
}

/// The container runtime (Docker Engine), in the terms of a swap.
pub trait Runtime: Send + Sync + 'static {
    /// Managed containers, excluding ones parked under [`OLD_SUFFIX`](super::OLD_SUFFIX) or [`NEW_SUFFIX`](super::NEW_SUFFIX).
    fn managed(
        &self,
        mirrors: &Mirrors,
    ) -> impl Future<Output = Result<Vec<Managed>, RuntimeError>> + Send;
    /// The managed container called `name` as it is now (`None`: gone, or no longer managed).
    fn inspect_managed(
        &self,
        name: &str,
        mirrors: &Mirrors,
    ) -> impl Future<Output = Result<Option<Managed>, RuntimeError>> + Send {
        async move {
            let all = self.managed(mirrors).await?;
            Ok(all.into_iter().find(|m| m.name == name))
        }
    }
    /// Containers that share a namespace of container `id`.
    fn dependents(
        &self,
        _id: &str,
    ) -> impl Future<Output = Result<Vec<Dependent>, RuntimeError>> + Send {
        async { Ok(Vec::new()) }
    }
    /// Opted-in containers that carry `ecr-deployd.depends-on`.
    fn ordering(&self) -> impl Future<Output = Result<Vec<Ordered>, RuntimeError>> + Send {
        async { Ok(Vec::new()) }
    }
    /// Runs `/bin/sh -c command` in container `id` for at most `timeout`.
    fn exec(
        &self,
        _id: &str,
        _command: &str,
        _timeout: Duration,
    ) -> impl Future<Output = Result<ExecRun, RuntimeError>> + Send {
        async {
            Err(RuntimeError::permanent(
                "exec",
                "this runtime cannot run commands in containers",
            ))
        }
    }
    /// As [`Runtime::create_like`], for a dependent whose parent is being replaced: its
    /// references to the old parent point at the new one.
    fn create_dependent(
        &self,
        old_id: &str,
        name: &str,
        _parent: &Repoint,
    ) -> impl Future<Output = Result<String, RuntimeError>> + Send {
        self.create_like(old_id, name)
    }
    /// Pulls `source` (`host/repo@digest`), checks it is `digest`, tags it as `tag_as`.
    fn pull(
        &self,
        source: &str,
        digest: &Digest,
        auth: &PullAuth,
        tag_as: &str,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn stop(
        &self,
        id: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn rename(&self, id: &str, name: &str)
    -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Creates `name` with the whole configuration of `old_id`; only the image changes
    /// (the old container's image reference now names the pulled image). Returns the new id.
    fn create_like(
        &self,
        old_id: &str,
        name: &str,
    ) -> impl Future<Output = Result<String, RuntimeError>> + Send;
    fn start(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// `None` when no such container exists.
    fn observe(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Observed>, RuntimeError>> + Send;
    /// The id of the container called `name`, if any.
    fn find(&self, name: &str)
    -> impl Future<Output = Result<Option<String>, RuntimeError>> + Send;
    /// Removes a container, never its volumes.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// The image id a container runs.
    fn image_of(&self, id: &str) -> impl Future<Output = Result<String, RuntimeError>> + Send;
    /// Loads a `docker save` tar (uncompressed; its names already removed, SPEC §13) from
    /// `body`; returns the ids of the images the Engine reports loading.
    fn load(
        &self,
        _body: ArchiveBody,
    ) -> impl Future<Output = Result<Vec<String>, RuntimeError>> + Send {
        async {
            Err(RuntimeError::permanent(
                "load image",
                "this runtime cannot load archives",
            ))
        }
    }
    /// The ids of every image on this host (intermediate ones too).
    fn image_ids(
        &self,
    ) -> impl Future<Output = Result<std::collections::HashSet<String>, RuntimeError>> + Send {
        async {
            Err(RuntimeError::permanent(
                "list images",
                "this runtime cannot list images",
            ))
        }
    }
    /// Whether the image `image_id` is on this host.
    fn has_image(
        &self,
        _image_id: &str,
    ) -> impl Future<Output = Result<bool, RuntimeError>> + Send {
        async { Ok(false) }
    }
    /// Tags the local image `image_id` as `reference` (what a container's successor is made
    /// from); a 404 when the image is no longer here.
    fn tag(
        &self,
        _image_id: &str,
        _reference: &str,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        async {
            Err(RuntimeError::permanent(
                "tag image",
                "this runtime cannot tag images",
            ))
        }
    }
    /// Removes an image if no container uses it; keeps it otherwise.
    fn remove_image_if_unused(
        &self,
        image_id: &str,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// The platform images are chosen for on this host (index entries are matched with it).
    /// Test runtimes default to linux/amd64.
    fn platform(&self) -> impl Future<Output = Result<Platform, RuntimeError>> + Send {
        async { Ok(Platform::new("linux", "amd64", None)) }
    }

    /// Managed Swarm services; empty when this node is not a Swarm manager (or has no Swarm).
    fn services(
        &self,
        _mirrors: &Mirrors,
    ) -> impl Future<Output = Result<Vec<ManagedService>, RuntimeError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Points the service at `image`, sent with `auth` so that every node can pull, at the
    /// spec version just read (no lost update). Returns the update status from before.
    fn update_service(
        &self,
        _id: &str,
        _image: &str,
        _auth: &PullAuth,
    ) -> impl Future<Output = Result<Option<ServiceUpdate>, RuntimeError>> + Send {
        async {
            Err(RuntimeError::permanent(
                "update service",
                "this runtime has no Swarm services",
            ))
        }
    }

    /// Where the service's latest update stands; `None` before its first update.
    fn service_update(
        &self,
        _id: &str,
    ) -> impl Future<Output = Result<Option<ServiceUpdate>, RuntimeError>> + Send {
        async { Ok(None) }
    }
}

/// A Swarm service that opted in (service label `ecr-deployd.enable=true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedService {
    pub id: String,
    pub name: String,
    /// The `repository:tag` it follows: `ecr-deployd.image`, or parsed from the spec's image.
    pub follows: ImageRef,
    /// The digest the service spec pins (Swarm stores `ref:tag@sha256:…`), if any.
    pub digests: Vec<Digest>,
    /// `UpdateConfig.FailureAction` is `rollback`: Swarm undoes a failed update by itself.
    pub rolls_back: bool,
    /// `ecr-deployd.policy` and `ecr-deployd.window`, as labelled on the service.
    pub policy: PolicyLabels,
    pub gates: GateLabels,
    /// Its `ecr-deployd.scope` label (SPEC §4).
    pub scope: Option<String>,
}

/// A service's `UpdateStatus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceUpdate {
    /// `updating`, `paused`, `completed`, `rollback_started`, `rollback_paused`,
    /// `rollback_completed`.
    pub state: String,
    pub started_at: String,
    pub message: String,
}

impl ServiceUpdate {
    /// The update (or its rollback) has come to an end.
    pub fn finished(&self) -> bool {
        matches!(
            self.state.as_str(),
            "completed" | "paused" | "rollback_completed" | "rollback_paused"
        )
    }
}
