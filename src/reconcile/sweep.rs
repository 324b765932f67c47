//! The sweep: every managed container compared with what ECR says its tag points to now, so a
//! lost or late event never leaves a host behind. Same resolve and deploy path as events; the
//! executor's per-container lock and re-check make a sweep and an event never deploy twice.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::deploy::executor::Executor;
use crate::event::{Digest, ImageRef};
use crate::image::{self, Desired, Match, Platform};
use crate::ports::{Credentials, Managed, ManagedService, Registry, Runtime, RuntimeError};
use crate::store::Outcome;

/// After a sweep that could not run (Docker or ECR down), the next try comes this soon.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// What the sweep found or did for one container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    UpToDate,
    /// Dry run: would deploy the desired digest.
    WouldDeploy,
    /// The desired digest was rolled back from on this container.
    Blocked,
    /// The tag (or repository) does not exist in ECR.
    NotInEcr,
    /// Not running: left alone.
    Stopped,
    /// ECR could not be asked for this tag.
    ResolveFailed,
    Succeeded,
    RolledBack,
    Failed,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::UpToDate => "up to date",
            Action::WouldDeploy => "would deploy",
            Action::Blocked => "blocked",
            Action::NotInEcr => "not in ECR",
            Action::Stopped => "stopped",
            Action::ResolveFailed => "ECR error",
            Action::Succeeded => "deployed",
            Action::RolledBack => "rolled back",
            Action::Failed => "failed",
        }
    }

    /// The container does not run ECR's digest after this row.
    pub fn leaves_behind(&self) -> bool {
        matches!(
            self,
            Action::WouldDeploy
                | Action::Blocked
                | Action::Stopped
                | Action::RolledBack
                | Action::Failed
        )
    }

    /// A row that makes `sweep` exit 1.
    pub fn is_failure(&self) -> bool {
        matches!(self, Action::RolledBack | Action::Failed)
    }
}

/// One container's line of a sweep.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub image: String,
    pub running_digest: Option<String>,
    /// What the tag names (for an index, the index digest).
    pub desired_digest: Option<String>,
    /// When the tag names an index: its manifest for this host's platform.
    pub platform_digest: Option<String>,
    pub action: Action,
    pub detail: Option<String>,
}

/// Why a sweep could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Docker(#[from] RuntimeError),
    #[error("ECR: {0}")]
    Ecr(String),
}

/// One pass over every managed container. With `dry_run`, nothing is changed.
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
    let managed = executor.managed().await?;
    let services = executor.services().await?;
    let mut tags: Vec<ImageRef> = managed
        .iter()
        .map(|m| m.follows.clone())
        .chain(services.iter().map(|s| s.follows.clone()))
        .collect();
    tags.sort();
    tags.dedup();
    let host = executor.platform().await?;
    let started = Instant::now();
    let resolved = registry.resolve(&tags).await;
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
    let rows = managed.iter().map(|c| async {
        let resolution = resolved.get(&c.follows).cloned().unwrap_or(Ok(None));
        row_for(
            executor,
            Target::Container(c),
            resolution,
            &host,
            dry_run,
            resolved_in,
        )
        .await
    });
    let service_rows = services.iter().map(|s| async {
        let resolution = resolved.get(&s.follows).cloned().unwrap_or(Ok(None));
        row_for(
            executor,
            Target::Service(s),
            resolution,
            &host,
            dry_run,
            resolved_in,
        )
        .await
    });
    let (mut rows, service_rows) = futures::future::join(
        futures::future::join_all(rows),
        futures::future::join_all(service_rows),
    )
    .await;
    rows.extend(service_rows);
    Ok(rows)
}

/// What a sweep row is about.
#[derive(Clone, Copy)]
enum Target<'a> {
    Container(&'a Managed),
    Service(&'a ManagedService),
}

async fn row_for<RT: Runtime, C: Credentials>(
    executor: &Executor<RT, C>,
    target: Target<'_>,
    resolution: Result<Option<Desired>, crate::ports::RemoteError>,
    host: &Platform,
    dry_run: bool,
    resolved_in: Duration,
) -> Row {
    let (name, follows, digests, running_now, kind) = match target {
        Target::Container(c) => (&c.name, &c.follows, &c.digests, c.running_now, None),
        // A service's tasks are Swarm's to keep running.
        Target::Service(s) => (&s.name, &s.follows, &s.digests, true, Some("swarm service")),
    };
    let running = digests.first();
    let detail = |e: String| Some(kind.map_or(e.clone(), |k| format!("{k}: {e}")));
    let mut row = Row {
        name: name.clone(),
        image: follows.to_string(),
        running_digest: running.map(|d| d.to_string()),
        desired_digest: None,
        platform_digest: None,
        action: Action::UpToDate,
        detail: kind.map(str::to_owned),
    };
    let desired = match resolution {
        Ok(Some(d)) => d,
        Ok(None) => {
            row.action = Action::NotInEcr;
            return row;
        }
        Err(e) => {
            row.action = Action::ResolveFailed;
            row.detail = detail(e.to_string());
            return row;
        }
    };
    row.desired_digest = Some(desired.digest.to_string());
    row.platform_digest = desired.for_platform(host).map(Digest::to_string);
    let matched = image::compare(digests, &desired, host);
    // Show the digest that matched, not whichever RepoDigests entry came first.
    match &matched {
        Match::Exact => row.running_digest = Some(desired.digest.to_string()),
        Match::Platform(p) => row.running_digest = Some(p.to_string()),
        Match::Behind => {}
    }
    row.action = if matched.up_to_date() {
        Action::UpToDate
    } else if !running_now {
        Action::Stopped
    } else if executor.is_blocked(name, &desired.digest) {
        Action::Blocked
    } else if dry_run {
        Action::WouldDeploy
    } else {
        let result = match target {
            Target::Container(c) => {
                executor
                    .deploy_container(c, &desired, "sweep", resolved_in, None)
                    .await
            }
            Target::Service(s) => {
                executor
                    .deploy_service(s, &desired, "sweep", resolved_in, None)
                    .await
            }
        };
        match result {
            Ok(Some(Outcome::Succeeded)) => Action::Succeeded,
            Ok(Some(Outcome::RolledBack)) => Action::RolledBack,
            Ok(Some(Outcome::Failed)) => Action::Failed,
            // Someone else (an event) deployed it meanwhile.
            Ok(None) => Action::UpToDate,
            Err(e) => {
                row.detail = detail(e.to_string());
                Action::Failed
            }
        }
    };
    row
}

/// The sweep in `run`: at start-up, then every `interval` ± `jitter` (never when `interval` is
/// zero, except the first), sooner when `wake` is notified or after a failed pass.
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
    loop {
        if !first {
            if interval.is_zero() && next.is_zero() {
                return;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(next) => {}
            }
        }
        first = false;
        let started = Instant::now();
        // Not interrupted by shutdown: a swap in progress finishes (the caller bounds the wait).
        let result = sweep_once(registry.as_ref(), executor.as_ref(), false).await;
        next = match result {
            Ok(rows) => {
                let behind = rows.iter().filter(|r| r.action.leaves_behind()).count();
                if let Some(m) = executor.metrics() {
                    m.swept(rows.len(), behind);
                }
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
                warn!(error = %e, retry_in = ?RETRY_AFTER_FAILURE, "sweep could not run");
                RETRY_AFTER_FAILURE
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
