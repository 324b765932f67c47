//! The sweep: every managed container compared with what ECR says its tag points to now, so a
//! lost or late event never leaves a host behind. Same resolve and deploy path as events; the
//! executor's per-container lock and re-check make a sweep and an event never deploy twice.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::control::policy::Policies;
use crate::event::{Digest, ImageRef};
use crate::image::{self, Match, Platform};
use crate::model::Trigger;
use crate::model::sweep::{Action, Row};
use crate::ports::{Registry, Resolution, RuntimeError, Sweeper, Target};

/// After a sweep that could not run (Docker or ECR down), the next try comes after this,
/// doubling with each failure up to [`RETRY_AFTER_FAILURE_MAX`]: a host whose Docker or
/// network comes back catches up within seconds.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
const RETRY_AFTER_FAILURE_MAX: Duration = Duration::from_secs(30);

/// Why a sweep could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Docker(#[from] RuntimeError),
    #[error("ECR: {0}")]
    Ecr(String),
}

/// One pass over every managed container and service. With `dry_run`, nothing is changed.
pub async fn sweep_once<R: Registry, S: Sweeper>(
    registry: &R,
    sweeper: &S,
    dry_run: bool,
) -> Result<Vec<Row>, SweepError> {
    let trigger = if dry_run {
        Trigger::DryRun
    } else {
        Trigger::Sweep
    };
    if !dry_run {
        // A swap whose undo could not finish (the Engine failing) is finished first.
        let recovered = sweeper.recover_idle().await?;
        if recovered > 0 {
            tracing::warn!(
                deployments = recovered,
                "open deployments finished by the sweep"
            );
        }
    }
    sweep_some(registry, sweeper, trigger, |_| true).await
}

/// The sweep at the opening of `windows`: the containers whose policy (of `policies`, the
/// ones the deploy stage decides with) has one of them, at once.
pub async fn sweep_windows<R: Registry, S: Sweeper>(
    registry: &R,
    sweeper: &S,
    policies: &Policies,
    windows: &[String],
) -> Result<Vec<Row>, SweepError> {
    let in_windows = |t: &Target| {
        policies
            .window_of(t.policy())
            .is_some_and(|w| windows.iter().any(|x| x == w))
    };
    sweep_some(registry, sweeper, Trigger::Window, in_windows).await
}

/// A pass over the targets `wanted` picks, deploying as `trigger` (`dry-run`: nothing).
async fn sweep_some<R: Registry, S: Sweeper>(
    registry: &R,
    sweeper: &S,
    trigger: Trigger,
    wanted: impl Fn(&Target) -> bool,
) -> Result<Vec<Row>, SweepError> {
    let mut targets = sweeper.targets().await?;
    targets.retain(|t| wanted(t));
    let mut tags: Vec<ImageRef> = targets.iter().map(|t| t.follows().clone()).collect();
    tags.sort();
    tags.dedup();
    let host = sweeper.platform().await?;
    let started = Instant::now();
    let resolved = match trigger.changes() {
        false => registry.peek(&tags).await,
        true => registry.resolve(&tags).await,
    };
    let resolved_in = started.elapsed();
    if !tags.is_empty()
        && resolved
            .values()
            .all(|r| r.as_ref().is_err_and(|e| e.transient))
    {
        let first = resolved
            .values()
            .find_map(|r| r.as_ref().err())
            .map(|e| e.to_string());
        return Err(SweepError::Ecr(first.unwrap_or_default()));
    }
    let pass = Pass {
        sweeper,
        host: &host,
        trigger,
        resolved_in,
    };
    let rows = targets.iter().map(|t| {
        let resolution = resolved.get(t.follows()).cloned().unwrap_or(Ok(None));
        pass.row_for(t, resolution)
    });
    Ok(futures::future::join_all(rows).await)
}

/// What every row of one sweep shares.
struct Pass<'a, S> {
    sweeper: &'a S,
    host: &'a Platform,
    /// `sweep`, `window`, or `dry-run` (nothing changed).
    trigger: Trigger,
    resolved_in: Duration,
}

impl<S: Sweeper> Pass<'_, S> {
    async fn row_for(&self, target: &Target, resolution: Resolution) -> Row {
        let kind = matches!(target, Target::Service(_)).then_some("swarm service");
        let detail = |e: String| Some(kind.map_or(e.clone(), |k| format!("{k}: {e}")));
        let mut row = Row {
            name: target.name().to_owned(),
            image: target.follows().to_string(),
            running_digest: target.digests().first().map(|d| d.to_string()),
            desired_digest: None,
            platform_digest: None,
            action: Action::UpToDate,
            detail: kind.map(str::to_owned),
            pending_until: None,
            current: false,
        };
        let desired = match resolution {
            Ok(Some(d)) => d,
            Ok(None) if target.follows().is_archive() => {
                row.action = Action::NotInS3;
                return row;
            }
            Ok(None) => {
                row.action = Action::NotInEcr;
                return row;
            }
            Err(e) => {
                row.action = match () {
                    _ if crate::archive::is_refusal(&e) => Action::Refused,
                    _ if crate::archive::is_not_loaded(&e) => Action::WouldDeploy,
                    _ => Action::ResolveFailed,
                };
                row.detail = detail(match row.action {
                    Action::ResolveFailed => e.to_string(),
                    _ => e.message,
                });
                return row;
            }
        };
        row.desired_digest = Some(desired.digest.to_string());
        row.platform_digest = desired.for_platform(self.host).map(Digest::to_string);
        let matched = image::compare(target.digests(), &desired, self.host);
        // Show the digest that matched, not whichever RepoDigests entry came first.
        match &matched {
            Match::Exact => row.running_digest = Some(desired.digest.to_string()),
            Match::Platform(p) => row.running_digest = Some(p.to_string()),
            Match::Behind => {}
        }
        row.current = matched.up_to_date();
        let settled = self
            .sweeper
            .settle(target, &desired, &matched, self.trigger, self.resolved_in)
            .await;
        row.action = settled.action;
        row.pending_until = settled.pending_until;
        if let Some(why) = settled.detail {
            row.detail = detail(why);
        }
        row
    }
}

/// The sweep in `run`: at start-up, then every `interval` ± `jitter` (never when `interval` is
/// zero, except the first), sooner when `wake` is notified (also with `interval` zero) or
/// after a failed pass.
pub async fn periodic<R: Registry, S: Sweeper>(
    registry: Arc<R>,
    sweeper: Arc<S>,
    interval: Duration,
    jitter: Duration,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut next = Duration::ZERO;
    let mut first = true;
    let mut failures: u32 = 0;
    loop {
        if !first {
            // No periodic sweep (interval 0): only a wake (resume, the queue back) runs one.
            let timer = !(interval.is_zero() && next.is_zero());
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(next), if timer => {}
            }
        }
        first = false;
        let started = Instant::now();
        // Not interrupted by shutdown: a swap in progress finishes (the caller bounds the wait).
        let result = sweep_once(registry.as_ref(), sweeper.as_ref(), false).await;
        next = match result {
            Ok(rows) => {
                failures = 0;
                let behind = rows.iter().filter(|r| r.is_behind()).count();
                sweeper.swept(&rows);
                info!(
                    containers = rows.len(),
                    behind,
                    took_ms = started.elapsed().as_millis() as u64,
                    "sweep finished"
                );
                if interval.is_zero() {
                    Duration::ZERO
                } else {
                    interval + spread(jitter)
                }
            }
            Err(e) => {
                let retry_in = (RETRY_AFTER_FAILURE * 2u32.saturating_pow(failures))
                    .min(RETRY_AFTER_FAILURE_MAX);
                failures = failures.saturating_add(1);
                warn!(error = %e, ?retry_in, "sweep could not run");
                retry_in
            }
        };
    }
}

/// A pseudo-random delay in `0..=jitter`, so that a fleet does not sweep in step.
fn spread(jitter: Duration) -> Duration {
    let ms = jitter.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    Duration::from_millis(nanos.wrapping_mul(2_654_435_761) % (ms + 1))
}

#[cfg(test)]
mod tests;
