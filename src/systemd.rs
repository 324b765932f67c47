//! The systemd service protocol (`Type=notify`): READY once start-up checks passed, WATCHDOG
//! pings while the main loop turns, STOPPING on shutdown, and a one-line STATUS. Every call is
//! a no-op when the agent does not run under systemd (`NOTIFY_SOCKET` unset).

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::stats::Stats;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "sd_notify failed");
    }
}

/// Start-up checks passed: the service is up.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A new one-line status for `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Shutdown has begun (work in flight gets its grace period).
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: finishing work in flight"),
    ]);
}

/// With `WatchdogSec=`, pings systemd at a third of the period as long as the main loop has
/// turned within the period; a stalled loop stops the pings and systemd restarts the agent.
pub async fn watchdog(stats: Arc<Stats>, stop: CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut every = tokio::time::interval((period / 3).max(Duration::from_millis(100)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let idle = now.saturating_sub(Stats::get(&stats.last_tick));
        if idle <= period.as_secs().max(1) {
            send(&[NotifyState::Watchdog]);
            warned = false;
        } else if !warned {
            warn!(
                idle_s = idle,
                "main loop stalled: withholding the systemd watchdog ping"
            );
            warned = true;
        }
    }
}
