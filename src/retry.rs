//! Retry policy for transient remote failures (AWS, Docker): exponential with jitter, capped.

use std::time::Duration;

use backon::ExponentialBuilder;

/// First delay after a failure.
const MIN_DELAY: Duration = Duration::from_millis(200);
/// No wait between attempts is longer than this, so a recovered endpoint is noticed quickly.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Retries forever (the caller stops on shutdown): for loops that must never die.
pub fn forever() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(MIN_DELAY)
        .with_max_delay(MAX_DELAY)
        .with_jitter()
        .without_max_times()
}

/// A few quick attempts, for work that has its own fallback (messages come back later).
pub fn few() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(MIN_DELAY)
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .with_max_times(3)
}
