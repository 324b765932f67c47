//! Domain-shaped seams between the pipeline and the outside world.
//!
//! The core (`intake`, `reconcile`) is generic over these traits; the real implementations
//! live in `adapters/` and are the only code that sees SDK types. Tests of the core use small
//! in-memory fakes; integration tests use the real adapters against the real services.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::control::policy::PolicyLabels;
use crate::deploy::hooks::HookLabels;
use crate::event::{Digest, ImageRef, Mirrors, Repository};
use crate::gate::{Found, GateLabels, ScanFacts, aws_signer};
use crate::image::{Desired, Platform};

/// Opt-in label (SPEC §4): nothing without it is ever touched.
pub const LABEL_ENABLE: &str = "ecr-deployd.enable";
/// The `repository:tag` a container follows, when not its configured image's.
pub const LABEL_IMAGE: &str = "ecr-deployd.image";
/// The S3 archive a container follows instead of an ECR tag: `s3://BUCKET/KEY` (SPEC §13).
pub const LABEL_SOURCE: &str = "ecr-deployd.source";
/// Per-container health timeout in seconds.
pub const LABEL_HEALTH_TIMEOUT: &str = "ecr-deployd.health-timeout";
/// Suffix of the old container's name while a swap is in progress.
pub const OLD_SUFFIX: &str = ".ecr-deployd-old";
/// Suffix of the new container's name between its creation and the swap of names.
pub const NEW_SUFFIX: &str = ".ecr-deployd-new";

/// One message taken from the queue.
#[derive(Clone, Debug)]
pub struct Message {
    pub id: String,
    /// The handle that deletes or re-times this receipt of the message.
    pub receipt: Receipt,
    pub body: String,
    /// How often the queue has handed this message out (1 on first delivery).
    pub receive_count: u32,
}

/// An SQS receipt handle.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Receipt(pub String);

/// A failed call to a remote service, with the operation named for the operator.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct RemoteError {
    pub operation: &'static str,
    pub message: String,
    /// Worth retrying (network, throttling, 5xx) rather than a refusal that will not change.
    pub transient: bool,
}

impl RemoteError {
    /// A short label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        if self.transient {
            "transient"
        } else {
            "permanent"
        }
    }
}

/// The SQS queue this host consumes.
pub trait Queue: Send + Sync + 'static {
    /// Long-polls for up to `max` messages, hiding them for `visibility`.
    fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<Message>, RemoteError>> + Send;

    /// Deletes messages (any number; the adapter batches).
    fn delete(&self, receipts: &[Receipt]) -> impl Future<Output = Result<(), RemoteError>> + Send;

    /// Sets the visibility timeout of messages, counted from now (0 = visible at once).
    /// Every receipt is tried, whatever happens to the others; the error names the ones
    /// whose visibility was not set.
    fn set_visibility(
        &self,
        receipts: &[Receipt],
        timeout: Duration,
    ) -> impl Future<Output = Result<(), Unset>> + Send;
}

/// Messages whose visibility could not be set (the rest of the call's were), and the first
/// reason.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{error} ({} of the messages)", failed.len())]
pub struct Unset {
    pub failed: Vec<Receipt>,
    pub error: RemoteError,
}

/// What ECR says a tag points to (its digest and, for an index, the index's manifests):
/// `Ok(None)` when the tag or repository does not exist.
pub type Resolution = Result<Option<Desired>, RemoteError>;

/// ECR as the source of truth for "what should run".
pub trait Registry: Send + Sync + 'static {
    /// The digest each of `images` points to now. Every input gets an entry.
    fn resolve(
        &self,
        images: &[ImageRef],
    ) -> impl Future<Output = HashMap<ImageRef, Resolution>> + Send;

    /// As [`Registry::resolve`], changing nothing on this host (`status`, dry runs): an S3
    /// archive not loaded yet is reported as such, not loaded.
    fn peek(
        &self,
        images: &[ImageRef],
    ) -> impl Future<Output = HashMap<ImageRef, Resolution>> + Send {
        self.resolve(images)
    }
}

/// Why a deploy was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    Event,
    Sweep,
    Manual,
    /// An earlier wave's results promoted a digest of the tag (SPEC §14).
    Promotion,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trigger::Event => "event",
            Trigger::Sweep => "sweep",
            Trigger::Manual => "manual",
            Trigger::Promotion => "promotion",
        })
    }
}

/// "Make everything that follows `image` run `desired`."
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployRequest {
    pub image: ImageRef,
    pub desired: Desired,
    pub trigger: Trigger,
    /// The earliest event time among the coalesced events, when known.
    pub event_time: Option<SystemTime>,
    /// How long resolving the tag in ECR took (recorded in history).
    pub resolved_in: Duration,
}

/// A deploy that could not be finished and recorded; the messages behind it stay queued.
#[derive(Debug, thiserror::Error)]
#[error("deploy of {image} could not be completed: {reason}")]
pub struct DeployError {
    pub image: ImageRef,
    pub reason: String,
}

/// Applies a desired digest to the local containers that follow an image.
///
/// `Ok` means the work is finished and recorded — deployed, already up to date, or failed and
/// rolled back — so the messages that asked for it may be deleted.
pub trait Deployer: Send + Sync + 'static {
    fn deploy(
        &self,
        request: DeployRequest,
    ) -> impl Future<Output = Result<(), DeployError>> + Send;

    /// Records a gate hint: the digest's rejections are forgotten, so that the next look
    /// checks the gates again. Returns how many were cleared.
    fn recheck(&self, hint: &crate::event::GateHint) -> Result<usize, String> {
        let _ = hint;
        Ok(0)
    }

    /// Records a fleet host's deployment result (SPEC §14); `true` when it is news.
    fn fleet_result(&self, result: &crate::fleet::FleetResult) -> Result<bool, String> {
        let _ = result;
        Ok(false)
    }

    /// The tags and digests whose promotion by an earlier wave fell due in
    /// `(after_ms, now_ms]`, and when the next one falls due.
    fn promotions_due(&self, after_ms: i64, now_ms: i64) -> Result<PromotionsDue, String> {
        let _ = (after_ms, now_ms);
        Ok((Vec::new(), None))
    }
}

/// Promotions that fell due (tag, digest), and when the next one falls due.
pub type PromotionsDue = (Vec<(ImageRef, String)>, Option<i64>);

/// The bytes of an archive on their way from S3 to the Engine.
pub type ArchiveBody = futures::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;

/// S3, where archives are kept (SPEC §13).
pub trait Archives: Send + Sync + 'static {
    /// What `key` holds now (`None`: no such key or bucket).
    fn head(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<crate::archive::ObjectFacts>, RemoteError>> + Send;

    /// The bytes of exactly the object `facts` describes (a newer upload meanwhile fails the
    /// read rather than mixing two objects).
    fn open(
        &self,
        bucket: &str,
        key: &str,
        facts: &crate::archive::ObjectFacts,
    ) -> impl Future<Output = Result<ArchiveBody, RemoteError>> + Send;
}

/// S3, where the fleet ledger is kept (SPEC §17): one object per host.
pub trait LedgerObjects: Send + Sync + 'static {
    /// Writes (overwrites) `key`.
    fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), RemoteError>> + Send;

    /// The keys under `prefix` (every page).
    fn list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, RemoteError>> + Send;

    /// The bytes of `key`.
    fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<u8>, RemoteError>> + Send;
}

/// Credentials for pulling from the registry (ECR GetAuthorizationToken).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullAuth {
    pub username: String,
    pub password: String,
    /// The ECR registry host (`<account>.dkr.ecr.<region>.amazonaws.com`).
    pub registry_host: String,
}

/// The facts the supply-chain gates decide on (SPEC §11). Object-safe: the executor holds
/// one behind `dyn`, so its many users do not carry another type parameter.
pub trait Supply: Send + Sync + 'static {
    /// The signatures stored for `digest` in `repository` at the registry `host`: cosign's
    /// signature tag and the digest's referrers (empty: no signature there).
    fn signatures<'a>(
        &'a self,
        host: &'a str,
        auth: &'a PullAuth,
        repository: &'a Repository,
        digest: &'a Digest,
    ) -> futures::future::BoxFuture<'a, Result<Found, RemoteError>>;

    /// What ECR's scanning says about `digest` of `image`'s repository.
    fn scan<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a Digest,
    ) -> futures::future::BoxFuture<'a, Result<ScanFacts, RemoteError>>;

    /// AWS Signer's `GetRevocationStatus` for an AWS Signer signature: the entities of
    /// `query` (its signing profile version, job, certificate hashes) AWS Signer has revoked;
    /// empty when none is.
    fn aws_signer_revoked<'a>(
        &'a self,
        query: &'a aws_signer::Query,
    ) -> futures::future::BoxFuture<'a, Result<Vec<String>, RemoteError>>;
}

/// Source of pull credentials, cached by the implementation.
pub trait Credentials: Send + Sync + 'static {
    /// Credentials for the registries of `region` (`None`: the configured region); the
    /// answer's `registry_host` is the caller's own registry there.
    fn pull_auth(
        &self,
        region: Option<&str>,
    ) -> impl Future<Output = Result<PullAuth, RemoteError>> + Send;
}

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
    /// Managed containers, excluding ones parked under [`OLD_SUFFIX`] or [`NEW_SUFFIX`].
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
