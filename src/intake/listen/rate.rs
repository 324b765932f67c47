//! The listener's request rate: a token bucket holding up to one second's worth of requests,
//! refilled continuously. Pure: the caller passes `now`.

use tokio::time::Instant;

#[derive(Debug)]
pub(super) struct Bucket {
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Full: a burst of `per_second` requests passes at once (at least 1).
    pub(super) fn new(per_second: u32, now: Instant) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self {
            per_second,
            tokens: per_second,
            at: now,
        }
    }

    /// Whether one more request may pass at `now`; takes its token if so.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_full_bucket_passes_a_burst_of_one_second_then_refuses() {
        let t0 = Instant::now();
        let mut b = Bucket::new(20, t0);
        assert_eq!((0..25).filter(|_| b.take(t0)).count(), 20);
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_never_beyond_the_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10, t0);
        while b.take(t0) {}
        let t1 = t0 + Duration::from_millis(250);
        assert_eq!((0..10).filter(|_| b.take(t1)).count(), 2, "10/s × 0.25 s");
        let later = t1 + Duration::from_secs(3600);
        assert_eq!(
            (0..50).filter(|_| b.take(later)).count(),
            10,
            "capped at the burst"
        );
    }

    #[test]
    fn a_rate_of_zero_still_lets_one_a_second_through() {
        let t0 = Instant::now();
        let mut b = Bucket::new(0, t0);
        assert!(b.take(t0));
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_secs(1)));
    }
}
