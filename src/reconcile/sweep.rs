//! The sweep: every managed container compared with what ECR says its tag points to now, so a
//! lost or late event never leaves a host behind. Same resolve and deploy path as events; the
//! executor's per-container lock and re-check make a sweep and an event never deploy twice.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::control::policy::Verdict;
use crate::deploy::gates::hold::{Gate, Held};
use crate::deploy::gates::supply::Checked;
use crate::deploy::sequence::target::Target;
use crate::deploy::{Done, Executor};
use crate::event::{Digest, ImageRef};
use crate::image::{self, Desired, Match, Platform};
use crate::ledger::ContainerLedger;
use crate::metrics::SweepCounts;
use crate::model::Trigger;
use crate::ports::{Credentials, Registry, Resolution, Runtime, RuntimeError};
use crate::store::Outcome;

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
pub async fn sweep_once<R, RT, C>(
    registry: &R,
    executor: &Executor<RT, C>,
    dry_run: bool,
) -> Result<Vec<Row>, SweepError>
where
    R: Registry,
    RT: Runtime,
    C: Credentials,
{
    let trigger = if dry_run {
        Trigger::DryRun
    } else {
        Trigger::Sweep
    };
    if !dry_run {
        // A swap whose undo could not finish (the Engine failing) is finished first.
        let recovered = executor.recover_idle().await?;
        if recovered > 0 {
            tracing::warn!(
                deployments = recovered,
                "open deployments finished by the sweep"
            );
        }
    }
    sweep_some(registry, executor, trigger, |_| true).await
}

/// The sweep at the opening of `windows`: their containers only, at once.
pub async fn sweep_windows<R, RT, C>(
    registry: &R,
    executor: &Executor<RT, C>,
    windows: &[String],
) -> Result<Vec<Row>, SweepError>
where
    R: Registry,
    RT: Runtime,
    C: Credentials,
{
    let policies = &executor.config().policies;
    sweep_some(registry, executor, Trigger::Window, |t| {
        policies
            .window_of(t.policy())
            .is_some_and(|w| windows.iter().any(|x| x == w))
    })
    .await
}

/// A pass over the targets `wanted` picks, deploying as `trigger` (`dry-run`: nothing).
async fn sweep_some<R, RT, C>(
    registry: &R,
    executor: &Executor<RT, C>,
    trigger: Trigger,
    wanted: impl Fn(&Target) -> bool,
) -> Result<Vec<Row>, SweepError>
where
    R: Registry,
    RT: Runtime,
    C: Credentials,
{
    let containers = executor.managed().await?.into_iter().map(Target::Container);
    let services = executor.services().await?.into_iter().map(Target::Service);
    let targets: Vec<Target> = containers.chain(services).filter(|t| wanted(t)).collect();
    let mut tags: Vec<ImageRef> = targets.iter().map(|t| t.follows().clone()).collect();
    tags.sort();
    tags.dedup();
    let host = executor.platform().await?;
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
        executor,
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
struct Pass<'a, RT, C> {
    executor: &'a Executor<RT, C>,
    host: &'a Platform,
    /// `sweep`, `window`, or `dry-run` (nothing changed).
    trigger: Trigger,
    resolved_in: Duration,
}

impl<RT: Runtime, C: Credentials> Pass<'_, RT, C> {
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
        let (action, why) = self.action(target, &desired, matched).await;
        if action == Action::Pending {
            let policies = &self.executor.config().policies;
            if let Verdict::Pending { until: Some(t), .. } =
                policies.verdict(target.policy(), jiff::Timestamp::now())
            {
                row.pending_until = Some(policies.show(t));
            }
        }
        row.action = action;
        if let Some(why) = why {
            row.detail = detail(why);
        }
        row
    }

    /// What to do about one target, and a detail for the row.
    async fn action(
        &self,
        target: &Target,
        desired: &Desired,
        matched: Match,
    ) -> (Action, Option<String>) {
        let ex = self.executor;
        if matched.up_to_date() {
            // A paused container is shown paused even while nothing is waiting.
            if let Ok(Gate::Held(h @ Held::Paused(_))) = ex.gate(target, jiff::Timestamp::now()) {
                let (action, why) = held(&h);
                let why = why.map_or("up to date".into(), |w| format!("{w} (up to date)"));
                return (action, Some(why));
            }
            return (Action::UpToDate, None);
        }
        if !target.running_now() {
            return (Action::Stopped, None);
        }
        if ex.is_blocked(target.block_key(), &desired.digest) {
            return (Action::Blocked, None);
        }
        if !self.trigger.changes() {
            match ex.gate(target, jiff::Timestamp::now()) {
                Ok(Gate::Go) | Err(_) => {}
                Ok(Gate::Held(h)) => return held(&h),
                Ok(Gate::Invalid(why)) => return (Action::Refused, Some(why)),
            }
            if let Ok(Some(h)) = ex.wave_gate(target, desired) {
                return held(&h);
            }
            return match ex.refusal(target).await {
                Ok(Some(why)) => (Action::Refused, Some(why)),
                Ok(None) => gated(ex.preview_gates(target, desired).await),
                Err(e) => (Action::WouldDeploy, Some(e.to_string())),
            };
        }
        let result = ex
            .deploy_target(target, desired, self.trigger, self.resolved_in, None)
            .await;
        match result {
            Ok(Done::Finished(Outcome::Succeeded)) => (Action::Succeeded, None),
            Ok(Done::Finished(Outcome::RolledBack)) => (Action::RolledBack, None),
            Ok(Done::Finished(Outcome::Failed)) => (Action::Failed, None),
            Ok(Done::Finished(Outcome::Rejected)) => (Action::Rejected, None),
            Ok(Done::Refused(why)) => (Action::Refused, Some(why)),
            Ok(Done::Held(h)) => held(&h),
            Ok(Done::Rejected(why)) => (Action::Rejected, Some(why)),
            Ok(Done::Deferred(why)) => (Action::Deferred, Some(why)),
            // Someone else (an event) deployed it meanwhile.
            Ok(Done::Nothing) => (Action::UpToDate, None),
            Err(e) => (Action::Failed, Some(e.to_string())),
        }
    }
}

/// The dry-run row of a target the gates look at.
fn gated(checked: Checked) -> (Action, Option<String>) {
    match checked {
        Checked::Go(why) => (
            Action::WouldDeploy,
            Some(why.join("; ")).filter(|w| !w.is_empty()),
        ),
        Checked::Pending(why) => (Action::Pending, Some(why)),
        Checked::Rejected { gate, reason } => (Action::Rejected, Some(format!("{gate}: {reason}"))),
        Checked::Unknown(why) => (
            Action::Refused,
            Some(format!("gates could not be checked: {why}")),
        ),
    }
}

/// The row of a held target.
fn held(h: &Held) -> (Action, Option<String>) {
    let action = match h {
        Held::Paused(_) => Action::Paused,
        Held::Pending(_) => Action::Pending,
        Held::Monitor => Action::Monitor,
        Held::Waiting(_) => Action::Waiting,
        Held::Halted(_) => Action::Halted,
    };
    (action, Some(h.detail()).filter(|d| !d.is_empty()))
}

/// The sweep in `run`: at start-up, then every `interval` ± `jitter` (never when `interval` is
/// zero, except the first), sooner when `wake` is notified (also with `interval` zero) or
/// after a failed pass.
pub async fn periodic<R, RT, C>(
    registry: Arc<R>,
    executor: Arc<Executor<RT, C>>,
    interval: Duration,
    jitter: Duration,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) where
    R: Registry,
    RT: Runtime,
    C: Credentials,
{
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
        let result = sweep_once(registry.as_ref(), executor.as_ref(), false).await;
        next = match result {
            Ok(rows) => {
                failures = 0;
                let counts = counts(&rows);
                let behind = counts.behind;
                if let Some(m) = executor.metrics() {
                    m.swept(&counts);
                }
                executor
                    .ledger()
                    .swept(rows.iter().map(Row::ledger_entry).collect());
                executor.prune_history();
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

mod row;
pub use row::{Action, Row, counts};

#[cfg(test)]
mod tests;
