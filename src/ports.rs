//! Domain-shaped seams between the pipeline and the outside world.
//!
//! The core (`intake`, `reconcile`) is generic over these traits; the real implementations
//! live in `adapters/` and are the only code that sees SDK types. Tests of the core use small
//! in-memory fakes; integration tests use the real adapters against the real services.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::event::{Digest, ImageRef};

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
    fn set_visibility(
        &self,
        receipts: &[Receipt],
        timeout: Duration,
    ) -> impl Future<Output = Result<(), RemoteError>> + Send;
}

/// What ECR says a tag points to: `Ok(None)` when the tag or repository does not exist.
pub type Resolution = Result<Option<Digest>, RemoteError>;

/// ECR as the source of truth for "what should run".
pub trait Registry: Send + Sync + 'static {
    /// The digest each of `images` points to now. Every input gets an entry.
    fn resolve(
        &self,
        images: &[ImageRef],
    ) -> impl Future<Output = HashMap<ImageRef, Resolution>> + Send;
}

/// Why a deploy was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    Event,
    Sweep,
    Manual,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trigger::Event => "event",
            Trigger::Sweep => "sweep",
            Trigger::Manual => "manual",
        })
    }
}

/// "Make everything that follows `image` run `desired`."
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployRequest {
    pub image: ImageRef,
    pub desired: Digest,
    pub trigger: Trigger,
    /// The earliest event time among the coalesced events, when known.
    pub event_time: Option<SystemTime>,
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
}
