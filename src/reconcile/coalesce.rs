//! Coalescing of reconcile requests per `(registry, repository, tag)`, leading edge.
//!
//! Pure and clock-free: callers pass `now`. The first request for a quiet key is due at once
//! (a push is acted on without waiting). Requests that arrive while that key's work is in
//! flight, or within the debounce window after it finished, fold into **one** follow-up, due
//! when the window after the work ends: a burst of duplicates costs one resolve and at most
//! one more, and a push that lands during a deploy is looked at again right after it. Never
//! two batches of one tag at once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::event::ImageRef;

struct Pending<T> {
    first: Instant,
    items: Vec<T>,
}

/// The coalescing state. `T` is whatever rides along with a request (message receipts).
pub struct Coalescer<T> {
    debounce: Duration,
    pending: HashMap<ImageRef, Pending<T>>,
    in_flight: HashSet<ImageRef>,
    /// Keys whose last batch finished recently: no new batch before this instant.
    quiet_until: HashMap<ImageRef, Instant>,
}

impl<T> Coalescer<T> {
    pub fn new(debounce: Duration) -> Self {
        Self {
            debounce,
            pending: HashMap::new(),
            in_flight: HashSet::new(),
            quiet_until: HashMap::new(),
        }
    }

    /// Records a request for `key`.
    pub fn push(&mut self, key: ImageRef, item: T, now: Instant) {
        self.pending
            .entry(key)
            .or_insert_with(|| Pending {
                first: now,
                items: Vec::new(),
            })
            .items
            .push(item);
    }

    /// When `key`'s waiting requests become due; `None` while its batch is in flight.
    fn due_at(&self, key: &ImageRef, p: &Pending<T>) -> Option<Instant> {
        if self.in_flight.contains(key) {
            return None;
        }
        Some(match self.quiet_until.get(key) {
            Some(quiet) => p.first.max(*quiet),
            None => p.first,
        })
    }

    /// When the next key becomes due, if any key can be flushed at all.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .filter_map(|(k, p)| self.due_at(k, p))
            .min()
    }

    /// Takes every key that is due at `now` and marks it in flight.
    pub fn take_due(&mut self, now: Instant) -> Vec<(ImageRef, Vec<T>)> {
        let due: Vec<ImageRef> = self
            .pending
            .iter()
            .filter(|(k, p)| self.due_at(k, p).is_some_and(|at| at <= now))
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

    /// The batch for `key` finished at `now`; what arrived meanwhile (and within the window
    /// from now) becomes one follow-up after the window.
    pub fn finished(&mut self, key: &ImageRef, now: Instant) {
        self.in_flight.remove(key);
        self.quiet_until.retain(|_, until| *until > now);
        if !self.debounce.is_zero() {
            self.quiet_until.insert(key.clone(), now + self.debounce);
        }
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
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_first_request_of_a_quiet_key_is_due_at_once() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 1, t0);
        assert_eq!(c.next_deadline(), Some(t0));
        assert_eq!(c.take_due(t0), vec![(key("prod"), vec![1])]);
    }

    #[test]
    fn fifty_duplicates_cost_one_batch_and_at_most_one_follow_up() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 0, t0);
        let first = c.take_due(t0);
        assert_eq!(first[0].1, vec![0]);
        // 49 more while the first batch is in flight: none is due on its own.
        for i in 1..50 {
            c.push(key("prod"), i, t0 + MS(10 * i));
            assert!(c.take_due(t0 + MS(10 * i)).is_empty());
        }
        assert_eq!(c.next_deadline(), None, "held while in flight");
        let done = t0 + MS(800);
        c.finished(&key("prod"), done);
        // One follow-up, after the window from the end of the work, carrying all 49.
        assert_eq!(c.next_deadline(), Some(done + D));
        assert!(c.take_due(done + D - MS(1)).is_empty());
        let follow_up = c.take_due(done + D);
        assert_eq!(follow_up.len(), 1);
        assert_eq!(follow_up[0].1.len(), 49);
        assert_eq!(c.pending_len(), 0);
    }

    #[test]
    fn a_request_after_the_window_is_due_at_once_again() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 1, t0);
        c.take_due(t0);
        c.finished(&key("prod"), t0 + MS(100));
        let later = t0 + MS(100) + D + MS(1);
        c.push(key("prod"), 2, later);
        assert_eq!(c.take_due(later), vec![(key("prod"), vec![2])]);
    }

    #[test]
    fn a_steady_stream_cannot_postpone_the_follow_up() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), (), t0);
        c.take_due(t0);
        c.finished(&key("prod"), t0);
        let mut now = t0;
        let mut flushed_at = None;
        while flushed_at.is_none() {
            now += MS(100);
            c.push(key("prod"), (), now);
            if !c.take_due(now).is_empty() {
                flushed_at = Some(now);
            }
        }
        assert_eq!(flushed_at, Some(t0 + D));
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
        assert_eq!(c.take_due(t0).len(), 3);
        // One key's window does not hold another back.
        c.finished(&key("a"), t0);
        c.push(key("b"), 4, t0 + MS(1));
        assert!(c.take_due(t0 + MS(1)).is_empty(), "b is still in flight");
        c.finished(&key("b"), t0 + MS(1));
        c.push(key("c"), 5, t0 + MS(2));
        assert_eq!(c.take_due(t0 + MS(2)), vec![(key("c"), vec![5])]);
    }

    #[test]
    fn a_key_in_flight_is_held_until_finished_however_long_it_takes() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 1, t0);
        assert_eq!(c.take_due(t0).len(), 1);
        c.push(key("prod"), 2, t0 + D);
        assert!(c.take_due(t0 + D * 20).is_empty());
        c.finished(&key("prod"), t0 + D * 20);
        assert_eq!(c.take_due(t0 + D * 21), vec![(key("prod"), vec![2])]);
    }

    #[test]
    fn zero_debounce_has_no_window_after_the_work() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO);
        c.push(key("prod"), 1, t0);
        assert_eq!(c.take_due(t0).len(), 1);
        c.push(key("prod"), 2, t0);
        c.finished(&key("prod"), t0);
        assert_eq!(c.take_due(t0), vec![(key("prod"), vec![2])]);
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
