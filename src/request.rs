//! What intake hands to reconcile, and the messages both keep track of until their work is
//! recorded. Shared by [`crate::intake`] and [`crate::reconcile`] so that neither imports
//! the other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::event::Digest;
use crate::event::ImageRef;
use crate::ports::{Receipt, Trigger};

/// "Look at this tag now", from an event or the sweep.
#[derive(Clone, Debug)]
pub struct Request {
    pub image: ImageRef,
    pub trigger: Trigger,
    /// The message id and receipt to delete once the work is recorded (events only).
    pub message: Option<(String, Receipt)>,
    /// How often SQS has delivered that message (0 for the sweep).
    pub receive_count: u32,
    pub event_time: Option<SystemTime>,
    /// The digest the push event named (a hint: ECR says what the tag names now).
    pub digest_hint: Option<Digest>,
    /// The S3 object version (or ETag) the event named (a hint as well).
    pub object_version: Option<String>,
}

impl Request {
    /// What the event says the key holds now: its digest, or its S3 object version. The
    /// coalescer lets a request naming something new skip the debounce window.
    pub fn hint(&self) -> Option<String> {
        self.digest_hint
            .as_ref()
            .map(Digest::to_string)
            .or_else(|| self.object_version.clone())
    }
}

/// Messages received and not yet deleted or handed back, with when their visibility was last
/// set. Shared by intake, the reconcile workers and the heartbeat.
#[derive(Clone, Default)]
pub struct InFlight(Arc<Mutex<HashMap<Receipt, Instant>>>);

impl InFlight {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Receipt, Instant>> {
        // A panic elsewhere cannot leave the map half-updated: every operation is one call.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn track(&self, receipt: Receipt, now: Instant) {
        self.map().insert(receipt, now);
    }

    pub fn untrack(&self, receipts: &[Receipt]) {
        let mut map = self.map();
        for r in receipts {
            map.remove(r);
        }
    }

    /// Receipts whose visibility was last set `older_than` before `now` or earlier.
    pub fn due(&self, now: Instant, older_than: Duration) -> Vec<Receipt> {
        self.map()
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) >= older_than)
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Records that the visibility of `receipts` was set at `at` (after the call succeeded).
    /// Receipts no longer tracked (their work finished meanwhile) stay untracked.
    pub fn extended(&self, receipts: &[Receipt], at: Instant) {
        let mut map = self.map();
        for r in receipts {
            if let Some(t) = map.get_mut(r) {
                *t = at;
            }
        }
    }

    pub fn drain(&self) -> Vec<Receipt> {
        self.map().drain().map(|(r, _)| r).collect()
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
