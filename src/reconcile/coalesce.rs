//! Debounce and deduplication of reconcile requests per `(registry, repository, tag)`.
//!
//! Pure and clock-free: callers pass `now`. A key is flushed when it has been quiet for the
//! debounce window, or when it has waited `max_wait` since its first request (so a steady
//! stream of duplicates cannot postpone a deploy forever). A key whose previous batch is still
//! being worked on is held back until that batch finishes: never two deploys of one tag at once,
//! and a push that arrives during a deploy is looked at again right after it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::event::ImageRef;

/// How much longer than the quiet window a key may be held back by a continuous stream.
const MAX_WAIT_FACTOR: u32 = 4;

struct Pending<T> {
    first: Instant,
    last: Instant,
    items: Vec<T>,
}

/// The coalescing state. `T` is whatever rides along with a request (message receipts).
pub struct Coalescer<T> {
    debounce: Duration,
    max_wait: Duration,
    pending: HashMap<ImageRef, Pending<T>>,
    in_flight: HashSet<ImageRef>,
}

impl<T> Coalescer<T> {
    pub fn new(debounce: Duration) -> Self {
        Self {
            debounce,
            max_wait: debounce * MAX_WAIT_FACTOR,
            pending: HashMap::new(),
            in_flight: HashSet::new(),
        }
    }

    /// Records a request for `key`.
    pub fn push(&mut self, key: ImageRef, item: T, now: Instant) {
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            first: now,
            last: now,
            items: Vec::new(),
        });
        p.last = now;
        p.items.push(item);
    }

    fn due_at(&self, p: &Pending<T>) -> Instant {
        (p.last + self.debounce).min(p.first + self.max_wait)
    }

    /// When the next key becomes due, if any key can be flushed at all.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .filter(|(k, _)| !self.in_flight.contains(*k))
            .map(|(_, p)| self.due_at(p))
            .min()
    }

    /// Takes every key that is due at `now` and marks it in flight.
    pub fn take_due(&mut self, now: Instant) -> Vec<(ImageRef, Vec<T>)> {
        let due: Vec<ImageRef> = self
            .pending
            .iter()
            .filter(|(k, p)| !self.in_flight.contains(*k) && self.due_at(p) <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for key in due {
            if let Some(p) = self.pending.remove(&key) {
                self.in_flight.insert(key.clone());
                out.push((key, p.items));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The batch for `key` is finished; requests that arrived meanwhile may now flush.
    pub fn finished(&mut self, key: &ImageRef) {
        self.in_flight.remove(key);
    }

    /// Requests waiting to be flushed (not those in flight).
    pub fn pending_len(&self) -> usize {
        self.pending.values().map(|p| p.items.len()).sum()
    }

    /// Empties the waiting requests (shutdown).
    pub fn drain(&mut self) -> Vec<T> {
        self.pending.drain().flat_map(|(_, p)| p.items).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tag: &str) -> ImageRef {
        ImageRef::parse_repo_tag(&format!("team/api:{tag}")).unwrap()
    }

    const D: Duration = Duration::from_millis(1500);

    #[test]
    fn fifty_duplicates_in_a_burst_flush_once_after_the_quiet_window() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        for i in 0..50 {
            c.push(key("prod"), i, t0 + Duration::from_millis(10 * i));
        }
        let last = t0 + Duration::from_millis(490);
        assert!(c.take_due(last + D - Duration::from_millis(1)).is_empty());
        assert_eq!(c.next_deadline(), Some(last + D));
        let due = c.take_due(last + D);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.len(), 50);
        assert_eq!(c.pending_len(), 0);
    }

    #[test]
    fn a_continuous_stream_is_flushed_at_max_wait() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        let mut now = t0;
        let mut flushed_at = None;
        while flushed_at.is_none() {
            c.push(key("prod"), (), now);
            if !c.take_due(now).is_empty() {
                flushed_at = Some(now);
            }
            now += Duration::from_millis(100);
        }
        assert_eq!(flushed_at, Some(t0 + D * MAX_WAIT_FACTOR));
    }

    #[test]
    fn distinct_tags_are_distinct_keys_and_registry_is_part_of_the_key() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("a"), 1, t0);
        c.push(key("b"), 2, t0);
        let mut other_account = key("a");
        other_account.registry = Some("123456789012".into());
        c.push(other_account, 3, t0);
        assert_eq!(c.take_due(t0 + D).len(), 3);
    }

    #[test]
    fn a_key_in_flight_is_held_until_finished() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 1, t0);
        assert_eq!(c.take_due(t0 + D).len(), 1);
        // A push arrives while the deploy runs: it waits, however long the deploy takes.
        c.push(key("prod"), 2, t0 + D);
        assert_eq!(c.next_deadline(), None);
        assert!(c.take_due(t0 + D * 20).is_empty());
        c.finished(&key("prod"));
        let again = c.take_due(t0 + D * 20);
        assert_eq!(again, vec![(key("prod"), vec![2])]);
    }

    #[test]
    fn zero_debounce_flushes_immediately() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO);
        c.push(key("prod"), (), t0);
        assert_eq!(c.take_due(t0).len(), 1);
    }

    #[test]
    fn drain_returns_every_waiting_item() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("a"), 1, t0);
        c.push(key("a"), 2, t0);
        c.push(key("b"), 3, t0);
        let mut all = c.drain();
        all.sort();
        assert_eq!(all, vec![1, 2, 3]);
        assert_eq!(c.pending_len(), 0);
    }
}
