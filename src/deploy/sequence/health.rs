//! The health gate: the new container must become `healthy` within its health timeout, or
//! (no HEALTHCHECK) stay running for `min_uptime`. The decision is a pure function of what
//! was observed; the loop around it only polls.

use std::time::Duration;

use tokio::time::Instant;

use tracing::warn;

use super::executor::Executor;
use crate::ports::{Credentials, Observed, Runtime};

/// How often the health gate looks at the new container.
pub const HEALTH_POLL: Duration = Duration::from_millis(250);

/// Why the health gate failed. `transient`: only the Engine could not be asked (timeouts
/// through the whole health timeout), which says nothing against the digest: no block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unhealthy {
    pub reason: String,
    pub transient: bool,
}

impl Unhealthy {
    /// The new container was seen failing.
    pub fn verdict(reason: String) -> Self {
        Self {
            reason,
            transient: false,
        }
    }
}

/// What one observation says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthVerdict {
    Pass,
    /// Not decided yet: look again.
    Wait,
    Fail(String),
}

/// The verdict on `seen`, `elapsed` after the start. `seen.health` is `None` without a
/// HEALTHCHECK (engines that report an empty status for that have it mapped to `None`).
pub fn verdict(
    seen: &Observed,
    elapsed: Duration,
    health_timeout: Duration,
    min_uptime: Duration,
) -> HealthVerdict {
    if !seen.running {
        return HealthVerdict::Fail(format!(
            "the new container exited (code {})",
            seen.exit_code.unwrap_or(-1)
        ));
    }
    if seen.restart_count > 0 {
        return HealthVerdict::Fail(format!(
            "the new container restarted {} time(s)",
            seen.restart_count
        ));
    }
    match seen.health.as_deref() {
        Some("healthy") => HealthVerdict::Pass,
        Some("unhealthy") => HealthVerdict::Fail("the new container is unhealthy".into()),
        Some(_) if elapsed >= health_timeout => HealthVerdict::Fail(format!(
            "the new container was not healthy within {}s",
            health_timeout.as_secs()
        )),
        None if elapsed >= min_uptime => HealthVerdict::Pass,
        _ => HealthVerdict::Wait,
    }
}

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// Polls container `id` until the verdict is in. An Engine error that is transient (a
    /// timed-out inspect under load) is asked again until the health timeout has passed.
    pub(in crate::deploy) async fn health_gate(
        &self,
        id: &str,
        health_timeout: Duration,
    ) -> Result<(), Unhealthy> {
        let started = Instant::now();
        let patience = health_timeout.max(self.cfg.min_uptime);
        loop {
            let seen = match self.runtime.observe(id).await {
                Ok(Some(o)) => o,
                Ok(None) => return Err(Unhealthy::verdict("the new container disappeared".into())),
                Err(e) if e.transient && started.elapsed() < patience => {
                    warn!(container = %id, error = %e, "health gate: the Engine did not answer; asking again");
                    tokio::time::sleep(HEALTH_POLL).await;
                    continue;
                }
                Err(e) => {
                    return Err(Unhealthy {
                        reason: e.to_string(),
                        transient: e.transient,
                    });
                }
            };
            match verdict(
                &seen,
                started.elapsed(),
                health_timeout,
                self.cfg.min_uptime,
            ) {
                HealthVerdict::Pass => return Ok(()),
                HealthVerdict::Fail(reason) => return Err(Unhealthy::verdict(reason)),
                HealthVerdict::Wait => tokio::time::sleep(HEALTH_POLL).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn seen(running: bool, health: Option<&str>) -> Observed {
        Observed {
            running,
            health: health.map(str::to_owned),
            restart_count: 0,
            exit_code: if running { None } else { Some(3) },
        }
    }

    #[test]
    fn without_a_healthcheck_it_passes_once_it_stayed_up_min_uptime() {
        assert_eq!(
            verdict(&seen(true, None), S(1), S(120), S(10)),
            HealthVerdict::Wait
        );
        assert_eq!(
            verdict(&seen(true, None), S(10), S(120), S(10)),
            HealthVerdict::Pass
        );
    }

    #[test]
    fn with_a_healthcheck_it_waits_for_healthy_until_the_health_timeout() {
        let starting = seen(true, Some("starting"));
        assert_eq!(
            verdict(&starting, S(100), S(120), S(10)),
            HealthVerdict::Wait
        );
        assert!(
            matches!(verdict(&starting, S(120), S(120), S(10)), HealthVerdict::Fail(r) if r.contains("120s"))
        );
        assert_eq!(
            verdict(&seen(true, Some("healthy")), S(0), S(120), S(10)),
            HealthVerdict::Pass
        );
        assert!(matches!(
            verdict(&seen(true, Some("unhealthy")), S(1), S(120), S(10)),
            HealthVerdict::Fail(_)
        ));
    }

    #[test]
    fn an_exit_or_a_restart_fails_at_once_whatever_the_health() {
        assert!(
            matches!(verdict(&seen(false, Some("healthy")), S(0), S(120), S(10)), HealthVerdict::Fail(r) if r.contains("code 3"))
        );
        let mut restarted = seen(true, None);
        restarted.restart_count = 1;
        assert!(
            matches!(verdict(&restarted, S(30), S(120), S(10)), HealthVerdict::Fail(r) if r.contains("restarted"))
        );
    }
}
