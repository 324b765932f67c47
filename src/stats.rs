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
    /// Entries of the agent's in-memory maps, as each last reported them.
    pub maps: MapSizes,
}

/// The in-memory maps whose size is watched (SPEC §16: bounded over months). Gauges, set by
/// their owners after each change; `/metrics` shows them as `map_entries{map}`.
#[derive(Debug, Default)]
pub struct MapSizes {
    pub coalescer_pending: AtomicU64,
    pub coalescer_in_flight: AtomicU64,
    pub coalescer_quiet: AtomicU64,
    /// Tags whose last hand-off is remembered (reconcile's `applied`).
    pub applied: AtomicU64,
    /// Messages received and not yet deleted or handed back.
    pub messages_in_flight: AtomicU64,
    pub executor_locks: AtomicU64,
    pub archive_locks: AtomicU64,
    /// Refused archive objects whose followers were told.
    pub archive_told: AtomicU64,
}

impl MapSizes {
    /// Every gauge with its name.
    pub fn all(&self) -> [(&'static str, u64); 8] {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("coalescer_pending", g(&self.coalescer_pending)),
            ("coalescer_in_flight", g(&self.coalescer_in_flight)),
            ("coalescer_quiet", g(&self.coalescer_quiet)),
            ("applied", g(&self.applied)),
            ("messages_in_flight", g(&self.messages_in_flight)),
            ("executor_locks", g(&self.executor_locks)),
            ("archive_locks", g(&self.archive_locks)),
            ("archive_told", g(&self.archive_told)),
        ]
    }

    pub fn set(gauge: &AtomicU64, n: usize) {
        gauge.store(n as u64, Ordering::Relaxed);
    }
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
