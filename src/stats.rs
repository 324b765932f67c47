//! Counters of what the pipeline did, shared by its stages (read by tests, benchmarks, metrics).

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters; `Relaxed` is enough, they are only ever summed and read.
#[derive(Debug, Default)]
pub struct Stats {
    pub messages_received: AtomicU64,
    /// Deleted after their reconcile work was recorded.
    pub deleted_done: AtomicU64,
    /// Deleted as nothing to do (delete, failure, untagged push, other ECR events).
    pub deleted_nothing: AtomicU64,
    /// Deleted as not ECR events.
    pub deleted_foreign: AtomicU64,
    /// Left on the queue for the DLQ.
    pub malformed: AtomicU64,
    /// Batches of tags resolved against ECR (each may be several API calls).
    pub resolve_batches: AtomicU64,
    /// Deploy requests handed to the deployer.
    pub handoffs: AtomicU64,
    /// Requests whose resolve or deploy failed and that were left to be retried.
    pub retried_later: AtomicU64,
    /// Unix seconds of the receive loop's last turn (liveness).
    pub last_tick: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Marks the receive loop alive now.
    pub fn tick(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.last_tick.store(now, Ordering::Relaxed);
    }
}
