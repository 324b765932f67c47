//! Coalescing of reconcile requests per `(registry, repository, tag)` (or S3 key), leading
//! edge.
//!
//! Pure and clock-free: callers pass `now`. The first request for a quiet key is due at once
//! (a push is acted on without waiting). Requests that arrive while that key's work is in
//! flight, or within the debounce window after it finished, fold into **one** follow-up, due
//! when the window after the work ends: a burst of duplicates costs one resolve and at most
//! one more. Never two batches of one key at once.
//!
//! Except a new push (SPEC §3, §16): a request whose hint (the digest its event names, or
//! the S3 object's version) is neither one the key's last batch carried nor what that batch
//! resolved to is due as soon as the work in flight ends, without the window. Requests
//! without a hint (promotions, S3 events of unversioned buckets without an ETag) wait it out.
//!
//! Bounded: a key is in these maps only while it has requests waiting, work in flight, or a
//! window not yet over ([`Coalescer::sizes`]).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::event::ImageRef;

struct Pending<T> {
    first: Instant,
    items: Vec<T>,
    /// The hints of `items` (distinct).
    hints: HashSet<String>,
}

/// At most this many hints are remembered per key across a chain of windows.
const KNOWN_MAX: usize = 32;

/// The last batch of a key that finished, while its window lasts.
struct Quiet {
    until: Instant,
    /// What that batch carried and resolved to: a request naming one of these folds.
    known: HashSet<String>,
}

/// The coalescing state. `T` is whatever rides along with a request (message receipts).
pub struct Coalescer<T> {
    debounce: Duration,
    pending: HashMap<ImageRef, Pending<T>>,
    /// Keys in flight, with the hints their batch carried.
    in_flight: HashMap<ImageRef, HashSet<String>>,
    /// Keys whose last batch finished recently: no batch of old news before `until`.
    quiet: HashMap<ImageRef, Quiet>,
}

/// How many keys each map of a [`Coalescer`] holds (metrics, the soak bench).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    pub pending_keys: usize,
    pub in_flight_keys: usize,
    pub quiet_keys: usize,
}

impl<T> Coalescer<T> {
    pub fn new(debounce: Duration) -> Self {
        Self {
            debounce,
            pending: HashMap::new(),
            in_flight: HashMap::new(),
            quiet: HashMap::new(),
        }
    }

    /// Records a request for `key`; `hint` is the digest or object version its event names.
    pub fn push(&mut self, key: ImageRef, item: T, hint: Option<String>, now: Instant) {
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            first: now,
            items: Vec::new(),
            hints: HashSet::new(),
        });
        p.items.push(item);
        p.hints.extend(hint);
    }

    /// When `key`'s waiting requests become due; `None` while its batch is in flight.
    fn due_at(&self, key: &ImageRef, p: &Pending<T>) -> Option<Instant> {
        if self.in_flight.contains_key(key) {
            return None;
        }
        Some(match self.quiet.get(key) {
            Some(q) if p.hints.iter().any(|h| !q.known.contains(h)) => p.first,
            Some(q) => p.first.max(q.until),
            None => p.first,
        })
    }

    /// When the next key becomes due, or the next window ends (so that an idle agent's
    /// maps shrink back: [`Coalescer::take_due`] forgets the windows that are over).
    pub fn next_deadline(&self) -> Option<Instant> {
        let due = self.pending.iter().filter_map(|(k, p)| self.due_at(k, p));
        due.chain(self.quiet.values().map(|q| q.until)).min()
    }

    /// Takes every key that is due at `now` and marks it in flight.
    pub fn take_due(&mut self, now: Instant) -> Vec<(ImageRef, Vec<T>)> {
        self.quiet.retain(|_, q| q.until > now);
        let due: Vec<ImageRef> = self
            .pending
            .iter()
            .filter(|(k, p)| self.due_at(k, p).is_some_and(|at| at <= now))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for key in due {
            if let Some(p) = self.pending.remove(&key) {
                // What the window's batch knew stays known (a late copy of an older push
                // folds too), within bounds.
                let mut known = p.hints;
                if let Some(q) = self.quiet.remove(&key)
                    && known.len() + q.known.len() <= KNOWN_MAX
                {
                    known.extend(q.known);
                }
                self.in_flight.insert(key.clone(), known);
                out.push((key, p.items));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The batch for `key` finished at `now`, having resolved to `resolved` (a digest) when
    /// it resolved at all. What arrived meanwhile and names nothing new becomes one
    /// follow-up after the window; a new digest or version is due at once.
    pub fn finished(&mut self, key: &ImageRef, resolved: Option<String>, now: Instant) {
        let mut known = self.in_flight.remove(key).unwrap_or_default();
        self.quiet.retain(|_, q| q.until > now);
        if !self.debounce.is_zero() {
            known.extend(resolved);
            let until = now + self.debounce;
            self.quiet.insert(key.clone(), Quiet { until, known });
        }
    }

    /// Requests waiting to be flushed (not those in flight).
    pub fn pending_len(&self) -> usize {
        self.pending.values().map(|p| p.items.len()).sum()
    }

    /// How many keys each map holds.
    pub fn sizes(&self) -> Sizes {
        Sizes {
            pending_keys: self.pending.len(),
            in_flight_keys: self.in_flight.len(),
            quiet_keys: self.quiet.len(),
        }
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

    fn hint(s: &str) -> Option<String> {
        Some(format!("sha256:{s}"))
    }

    const D: Duration = Duration::from_millis(1500);
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_first_request_of_a_quiet_key_is_due_at_once() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 1, hint("a"), t0);
        assert_eq!(c.next_deadline(), Some(t0));
        assert_eq!(c.take_due(t0), vec![(key("prod"), vec![1])]);
    }

    #[test]
    fn fifty_duplicates_cost_one_batch_and_at_most_one_follow_up() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 0, hint("a"), t0);
        let first = c.take_due(t0);
        assert_eq!(first[0].1, vec![0]);
        // 49 more of the same digest while the first batch is in flight: none is due.
        for i in 1..50 {
            c.push(key("prod"), i, hint("a"), t0 + MS(10 * i));
            assert!(c.take_due(t0 + MS(10 * i)).is_empty());
        }
        assert_eq!(c.next_deadline(), None, "held while in flight");
        let done = t0 + MS(800);
        c.finished(&key("prod"), hint("a"), done);
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
        c.push(key("prod"), 1, hint("a"), t0);
        c.take_due(t0);
        c.finished(&key("prod"), hint("a"), t0 + MS(100));
        let later = t0 + MS(100) + D + MS(1);
        c.push(key("prod"), 2, hint("a"), later);
        assert_eq!(c.take_due(later), vec![(key("prod"), vec![2])]);
    }

    #[test]
    fn a_steady_stream_of_duplicates_cannot_postpone_the_follow_up() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), (), hint("a"), t0);
        c.take_due(t0);
        c.finished(&key("prod"), hint("a"), t0);
        let mut now = t0;
        let mut flushed_at = None;
        while flushed_at.is_none() {
            now += MS(100);
            c.push(key("prod"), (), hint("a"), now);
            if !c.take_due(now).is_empty() {
                flushed_at = Some(now);
            }
        }
        assert_eq!(flushed_at, Some(t0 + D));
    }

    #[test]
    fn a_new_digest_within_the_window_is_due_at_once() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 1, hint("a"), t0);
        c.take_due(t0);
        c.finished(&key("prod"), hint("a"), t0 + MS(500));
        // The next push, a second after the deploy finished: well inside the window.
        let pushed = t0 + MS(1500);
        c.push(key("prod"), 2, hint("b"), pushed);
        assert_eq!(c.next_deadline(), Some(pushed));
        assert_eq!(c.take_due(pushed), vec![(key("prod"), vec![2])]);
    }

    #[test]
    fn a_new_digest_during_the_work_runs_as_soon_as_the_work_ends() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 1, hint("a"), t0);
        c.take_due(t0);
        c.push(key("prod"), 2, hint("a"), t0 + MS(10));
        c.push(key("prod"), 3, hint("b"), t0 + MS(20));
        assert!(
            c.take_due(t0 + MS(20)).is_empty(),
            "never two batches at once"
        );
        assert_eq!(c.next_deadline(), None);
        let done = t0 + MS(900);
        c.finished(&key("prod"), hint("a"), done);
        // Due at the end of the work, duplicates of the old digest riding along.
        assert_eq!(c.next_deadline(), Some(t0 + MS(10)));
        assert_eq!(c.take_due(done), vec![(key("prod"), vec![2, 3])]);
    }

    #[test]
    fn duplicates_of_the_digest_just_handed_off_fold_into_the_window() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 1, hint("a"), t0);
        c.take_due(t0);
        c.finished(&key("prod"), hint("a"), t0);
        // The new digest goes at once ...
        c.push(key("prod"), 2, hint("b"), t0 + MS(100));
        assert_eq!(c.take_due(t0 + MS(100)).len(), 1);
        let done = t0 + MS(600);
        c.finished(&key("prod"), hint("b"), done);
        // ... and its redeliveries (and late copies of the old one) wait out the window.
        c.push(key("prod"), 3, hint("b"), done + MS(10));
        c.push(key("prod"), 4, hint("a"), done + MS(20));
        assert_eq!(c.next_deadline(), Some(done + D));
        assert!(c.take_due(done + MS(20)).is_empty());
        assert_eq!(c.take_due(done + D), vec![(key("prod"), vec![3, 4])]);
    }

    #[test]
    fn what_a_chain_of_windows_knows_is_bounded() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        let mut now = t0;
        for i in 0..200u64 {
            let d = format!("d{i}");
            c.push(key("prod"), i, hint(&d), now);
            assert_eq!(c.take_due(now).len(), 1, "d{i} is new: at once");
            assert!(c.in_flight[&key("prod")].len() <= KNOWN_MAX);
            now += MS(100);
            c.finished(&key("prod"), hint(&d), now);
            now += MS(100);
        }
        // A late copy of a push some batches back still folds.
        c.push(key("prod"), 999, hint("d197"), now);
        assert_eq!(c.next_deadline(), Some(now - MS(100) + D));
    }

    #[test]
    fn a_push_naming_what_the_batch_resolved_to_folds() {
        // A promotion (no hint) resolved the tag to `c`; the push event of `c` tells nothing
        // new, and neither does an event that arrived during the work naming it.
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 1, None, t0);
        c.take_due(t0);
        c.push(key("prod"), 2, hint("c"), t0 + MS(50));
        c.finished(&key("prod"), hint("c"), t0 + MS(300));
        assert_eq!(c.next_deadline(), Some(t0 + MS(300) + D));
    }

    #[test]
    fn a_request_without_a_hint_waits_out_the_window() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 1, hint("a"), t0);
        c.take_due(t0);
        c.finished(&key("prod"), hint("a"), t0);
        c.push(key("prod"), 2, None, t0 + MS(10));
        assert_eq!(c.next_deadline(), Some(t0 + D));
        // A failed resolve (no digest) keeps the window too.
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 1, None, t0);
        c.take_due(t0);
        c.finished(&key("prod"), None, t0);
        c.push(key("prod"), 2, None, t0 + MS(10));
        assert_eq!(c.next_deadline(), Some(t0 + D));
    }

    #[test]
    fn s3_object_versions_are_hints_like_digests() {
        let archive = ImageRef::archive("bucket", "app/latest.tar.xz");
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(archive.clone(), 1, Some("v1".into()), t0);
        c.take_due(t0);
        // The load resolves to an image id, not a version: the batch's hint is what is known.
        c.finished(&archive, hint("imageid"), t0 + MS(2000));
        let after = t0 + MS(2100);
        c.push(archive.clone(), 2, Some("v1".into()), after);
        assert_eq!(c.next_deadline(), Some(t0 + MS(2000) + D), "v1 again folds");
        c.push(archive.clone(), 3, Some("v2".into()), after + MS(1));
        assert_eq!(c.take_due(after + MS(1)), vec![(archive, vec![2, 3])]);
    }

    #[test]
    fn distinct_tags_are_distinct_keys_and_registry_is_part_of_the_key() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("a"), 1, hint("a"), t0);
        c.push(key("b"), 2, hint("b"), t0);
        let mut other_account = key("a");
        other_account.registry = Some("123456789012".into());
        c.push(other_account, 3, hint("a"), t0);
        assert_eq!(c.take_due(t0).len(), 3);
        // One key's window does not hold another back.
        c.finished(&key("a"), hint("a"), t0);
        c.push(key("b"), 4, hint("b"), t0 + MS(1));
        assert!(c.take_due(t0 + MS(1)).is_empty(), "b is still in flight");
        c.finished(&key("b"), hint("b"), t0 + MS(1));
        c.push(key("c"), 5, hint("c"), t0 + MS(2));
        assert_eq!(c.take_due(t0 + MS(2)), vec![(key("c"), vec![5])]);
    }

    #[test]
    fn a_new_digest_of_one_tag_does_not_hurry_another_tags_duplicates() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("a"), 1, hint("a1"), t0);
        c.push(key("b"), 2, hint("b1"), t0);
        c.take_due(t0);
        c.finished(&key("a"), hint("a1"), t0);
        c.finished(&key("b"), hint("b1"), t0);
        c.push(key("a"), 3, hint("a2"), t0 + MS(10));
        c.push(key("b"), 4, hint("b1"), t0 + MS(10));
        // `a1` is what `a`'s batch knew, not `b`'s: each key has its own.
        c.push(key("b"), 5, hint("a1"), t0 + MS(10));
        assert_eq!(
            c.take_due(t0 + MS(10)),
            vec![(key("a"), vec![3]), (key("b"), vec![4, 5])]
        );
        let mut c = Coalescer::new(D);
        c.push(key("a"), 1, hint("a1"), t0);
        c.push(key("b"), 2, hint("b1"), t0);
        c.take_due(t0);
        c.finished(&key("a"), hint("a1"), t0);
        c.finished(&key("b"), hint("b1"), t0);
        c.push(key("a"), 3, hint("a2"), t0 + MS(10));
        c.push(key("b"), 4, hint("b1"), t0 + MS(10));
        assert_eq!(c.take_due(t0 + MS(10)), vec![(key("a"), vec![3])]);
        assert_eq!(c.take_due(t0 + D), vec![(key("b"), vec![4])]);
    }

    #[test]
    fn a_key_in_flight_is_held_until_finished_however_long_it_takes() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 1, hint("a"), t0);
        assert_eq!(c.take_due(t0).len(), 1);
        c.push(key("prod"), 2, hint("b"), t0 + D);
        assert!(c.take_due(t0 + D * 20).is_empty());
        c.finished(&key("prod"), hint("a"), t0 + D * 20);
        assert_eq!(c.take_due(t0 + D * 20), vec![(key("prod"), vec![2])]);
    }

    #[test]
    fn zero_debounce_has_no_window_after_the_work() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO);
        c.push(key("prod"), 1, hint("a"), t0);
        assert_eq!(c.take_due(t0).len(), 1);
        c.push(key("prod"), 2, hint("a"), t0);
        c.finished(&key("prod"), hint("a"), t0);
        assert_eq!(c.take_due(t0), vec![(key("prod"), vec![2])]);
        assert_eq!(c.sizes().quiet_keys, 0);
    }

    #[test]
    fn the_maps_shrink_back_once_the_windows_are_over() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        for i in 0..1000u64 {
            let tag = format!("t{i}");
            c.push(key(&tag), i, hint(&tag), t0);
        }
        assert_eq!(c.sizes().pending_keys, 1000);
        assert_eq!(c.take_due(t0).len(), 1000);
        assert_eq!(c.sizes().in_flight_keys, 1000);
        for i in 0..1000u64 {
            c.finished(&key(&format!("t{i}")), hint("x"), t0 + MS(i));
        }
        assert!(c.sizes().quiet_keys <= 1000);
        // One more request after every window: only its own key is left.
        let later = t0 + MS(1000) + D;
        c.push(key("new"), 1, None, later);
        c.take_due(later);
        assert_eq!(
            c.sizes(),
            Sizes {
                pending_keys: 0,
                in_flight_keys: 1,
                quiet_keys: 0
            }
        );
        c.finished(&key("new"), None, later);
        assert!(c.take_due(later + D).is_empty());
        assert_eq!(c.sizes(), Sizes::default());
    }

    #[test]
    fn an_idle_coalescer_wakes_once_at_the_end_of_a_window_and_forgets_it() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("prod"), 1, hint("a"), t0);
        c.take_due(t0);
        c.finished(&key("prod"), hint("a"), t0 + MS(5));
        assert_eq!(c.next_deadline(), Some(t0 + MS(5) + D));
        assert!(c.take_due(t0 + MS(5) + D).is_empty());
        assert_eq!(c.sizes(), Sizes::default());
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn drain_returns_every_waiting_item() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(D);
        c.push(key("a"), 1, None, t0);
        c.push(key("a"), 2, hint("a"), t0);
        c.push(key("b"), 3, None, t0);
        let mut all = c.drain();
        all.sort();
        assert_eq!(all, vec![1, 2, 3]);
        assert_eq!(c.pending_len(), 0);
    }
}
