//! Maintenance-window openings (SPEC §10): at each opening the agent sweeps the containers of
//! the windows opening then, at once, rather than at the next periodic sweep.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::sweep::sweep_windows;
use crate::control::policy::{Policies, WindowState};
use crate::metrics::SweepCounts;
use crate::ports::{Registry, Sweeper};

/// The wall clock is looked at again at least this often, so that a clock step (NTP, a
/// suspended VM) does not make an opening late by the whole sleep.
const RECHECK: Duration = Duration::from_secs(30);
/// A sweep of opening windows that could not run is tried again after this long, while the
/// windows are open.
const RETRY: Duration = Duration::from_secs(5);

/// Runs until `shutdown`: sleeps to each opening and sweeps that window's containers.
/// `policies` are the ones the deploy stage decides with.
pub async fn at_openings<R: Registry, S: Sweeper>(
    registry: Arc<R>,
    sweeper: Arc<S>,
    policies: Policies,
    shutdown: CancellationToken,
) {
    if policies.windows.is_empty() {
        return;
    }
    let mut after = Timestamp::now();
    loop {
        let Some((at, names)) = policies.next_openings(after) else {
            info!("no maintenance window opens any more; window sweeps stop");
            return;
        };
        loop {
            let left = at.duration_since(Timestamp::now());
            if left <= jiff::SignedDuration::ZERO {
                break;
            }
            let nap = Duration::try_from(left).unwrap_or(RECHECK).min(RECHECK);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(nap) => {}
            }
        }
        info!(windows = ?names, at = %policies.show(at), "maintenance window opens: sweeping its containers");
        sweep_until_done(
            registry.as_ref(),
            sweeper.as_ref(),
            &policies,
            &names,
            &shutdown,
        )
        .await;
        after = at;
    }
}

/// One sweep of the opening windows' containers, tried again while the Engine or ECR are
/// unreachable (for as long as the shortest of them stays open).
async fn sweep_until_done<R: Registry, S: Sweeper>(
    registry: &R,
    sweeper: &S,
    policies: &Policies,
    names: &[String],
    shutdown: &CancellationToken,
) {
    let open = || {
        names.iter().any(|n| {
            matches!(
                policies.windows[n].state(Timestamp::now(), &policies.tz),
                WindowState::Open { .. }
            )
        })
    };
    loop {
        match sweep_windows(registry, sweeper, policies, names).await {
            Ok(rows) => {
                let c = SweepCounts::of(&rows);
                info!(windows = ?names, containers = c.managed, behind = c.behind, "window sweep finished");
                return;
            }
            Err(e) if open() => {
                warn!(error = %e, retry_in = ?RETRY, "window sweep could not run; retrying while the window is open");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(RETRY) => {}
                }
            }
            Err(e) => {
                warn!(error = %e, "window sweep could not run and the window has closed; the next opening tries again");
                return;
            }
        }
    }
}
