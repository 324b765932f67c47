//! Domain-shaped seams between the pipeline and the outside world.
//!
//! The core (`intake`, `reconcile`) is generic over these traits; the real implementations
//! live in `adapters/` and are the only code that sees SDK types. Tests of the core use small
//! in-memory fakes; integration tests use the real adapters against the real services.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::image::Desired;
pub use crate::model::error::{RecordError, RemoteError};
use crate::model::reference::ImageRef;

mod bus;
mod objects;
mod runtime;
mod supply;
mod sweeper;
mod target;

pub use bus::EventBus;
pub use objects::{ArchiveBody, Archives, LedgerObjects};
pub use runtime::*;
pub use supply::{Credentials, PullAuth, Supply};
pub use sweeper::Sweeper;
pub use target::{SERVICE_JOURNAL_PREFIX, Target};

pub use crate::model::labels::{LABEL_ENABLE, LABEL_HEALTH_TIMEOUT, LABEL_IMAGE, LABEL_SOURCE};
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

pub use crate::model::Trigger;

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
/// `transient` when what stopped it is expected to pass by itself (the Engine or a remote
/// service unreachable or slow, a rollback cut short); otherwise it needs someone to look
/// (the state store refusing a write, the Engine refusing a call).
#[derive(Debug, thiserror::Error)]
#[error("deploy of {image} could not be completed: {reason}")]
pub struct DeployError {
    pub image: ImageRef,
    pub reason: String,
    pub transient: bool,
}

impl DeployError {
    /// What stopped the deploy of `image`, and whether it passes by itself.
    pub fn new(image: &ImageRef, reason: impl Into<String>, transient: bool) -> Self {
        Self {
            image: image.clone(),
            reason: reason.into(),
            transient,
        }
    }

    /// A failed Engine call: transient as the call was.
    pub fn runtime(image: &ImageRef, e: &RuntimeError) -> Self {
        Self::new(image, e.to_string(), e.transient)
    }
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
    fn recheck(&self, hint: &crate::event::GateHint) -> Result<usize, RecordError> {
        let _ = hint;
        Ok(0)
    }

    /// Records a fleet host's deployment result (SPEC §14); `true` when it is news.
    fn fleet_result(&self, result: &crate::fleet::FleetResult) -> Result<bool, RecordError> {
        let _ = result;
        Ok(false)
    }

    /// The tags and digests whose promotion by an earlier wave fell due in
    /// `(after_ms, now_ms]`, and when the next one falls due.
    fn promotions_due(&self, after_ms: i64, now_ms: i64) -> Result<PromotionsDue, RecordError> {
        let _ = (after_ms, now_ms);
        Ok((Vec::new(), None))
    }
}

/// Promotions that fell due (tag, digest), and when the next one falls due.
pub type PromotionsDue = (Vec<(ImageRef, String)>, Option<i64>);
