//! What an observation of a new container says (the health gate's input), and on Podman the
//! health checks the Engine does not run itself.
//!
//! Podman schedules a container's HEALTHCHECK with a systemd timer: on a host (or in a
//! container) without systemd the check never runs, and a container with a HEALTHCHECK stays
//! `starting` until the health gate gives up and rolls it back. When a `starting` container's
//! last check (or, before the first, its start) is older than its interval plus a second of
//! slack, the agent runs the check through Podman's own API, as `podman healthcheck run`
//! does (`/libpod/containers/{id}/healthcheck`), and reads the status that returns. Where the
//! timers run, a check is never overdue and nothing extra runs; on Docker nothing changes.

use std::time::Duration;

use hyper::Method;
use jiff::Timestamp;
use serde_json::Value;
use tracing::debug;

use super::DockerRuntime;
use crate::ports::{Observed, RuntimeError};

/// Docker's and Podman's interval when the HEALTHCHECK names none.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// How late a check may be before the agent runs it (a timer's own jitter).
const SLACK: Duration = Duration::from_secs(1);

/// The status of a `State.Health` object (an inspect's, or the answer of Podman's check run):
/// `None` without a HEALTHCHECK (Podman reports an empty status for that, some Engines `none`).
fn status(health: &Value) -> Option<String> {
    health["Status"]
        .as_str()
        .filter(|s| !s.is_empty() && *s != "none")
        .map(str::to_owned)
}

fn time(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

fn nanos(v: &Value) -> Option<Duration> {
    v.as_i64()
        .filter(|n| *n > 0)
        .map(|n| Duration::from_nanos(n.unsigned_abs()))
}

/// Whether the check of a container still `starting` is overdue at `now`: the time since its
/// last check ended (or since it started, before any) is past the interval that applies
/// (`StartInterval` within the start period when set) plus [`SLACK`]. Unreadable times say
/// no: the Engine's own schedule is left alone.
pub fn check_overdue(inspect: &Value, now: Timestamp) -> bool {
    let check = &inspect["Config"]["Healthcheck"];
    let test = check["Test"].as_array();
    if test.is_none_or(|t| t.is_empty() || t[0] == "NONE") {
        return false;
    }
    let Some(started) = time(&inspect["State"]["StartedAt"]) else {
        return false;
    };
    let last = inspect["State"]["Health"]["Log"]
        .as_array()
        .and_then(|log| log.last())
        .and_then(|entry| time(&entry["End"]).or_else(|| time(&entry["Start"])));
    let since = last.unwrap_or(started);
    let age = now.duration_since(started);
    let in_start_period = nanos(&check["StartPeriod"]).is_some_and(|p| age.unsigned_abs() < p);
    let interval = nanos(&check["StartInterval"])
        .filter(|_| in_start_period)
        .or_else(|| nanos(&check["Interval"]))
        .unwrap_or(DEFAULT_INTERVAL);
    now.duration_since(since)
        .try_into()
        .is_ok_and(|waited: Duration| waited >= interval + SLACK)
}

impl DockerRuntime {
    /// Container `id`'s state for the health gate; `None` when it is gone.
    pub(super) async fn observed(&self, id: &str) -> Result<Option<Observed>, RuntimeError> {
        let Some(inspect) = self.inspect_json(id).await? else {
            return Ok(None);
        };
        let state = &inspect["State"];
        let mut health = status(&state["Health"]);
        if health.as_deref() == Some("starting")
            && self.engine().await?.is_podman()
            && check_overdue(&inspect, Timestamp::now())
        {
            health = self.run_podman_check(id).await.or(health);
        }
        Ok(Some(Observed {
            running: state["Running"].as_bool().unwrap_or(false),
            health,
            restart_count: inspect["RestartCount"].as_i64().unwrap_or(0),
            exit_code: state["ExitCode"].as_i64(),
        }))
    }

    /// Runs container `id`'s HEALTHCHECK through Podman's API; the status it reports, or
    /// `None` when the run could not be asked for (the Engine's own status stands).
    async fn run_podman_check(&self, id: &str) -> Option<String> {
        let path = format!("/libpod/containers/{id}/healthcheck");
        match self
            .raw("run health check", Method::GET, &path, None, &[])
            .await
        {
            Ok(answer) => {
                debug!(container = %id, status = %answer["Status"], "Podman: health check run by the agent (overdue)");
                status(&answer)
            }
            Err(e) => {
                debug!(container = %id, error = %e, "Podman: the overdue health check could not be run");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECOND: i64 = 1_000_000_000;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn container(check: Value, log: Value) -> Value {
        json!({
            "Config": {"Healthcheck": check},
            "State": {"StartedAt": "2026-12-07T10:00:00.000000000Z",
                      "Health": {"Status": "starting", "Log": log}},
        })
    }

    #[test]
    fn a_check_is_overdue_once_its_interval_and_a_second_have_passed_since_the_last() {
        let check = json!({"Test": ["CMD", "true"], "Interval": 2 * SECOND});
        let never = container(check.clone(), Value::Null);
        assert!(!check_overdue(&never, at("2026-12-07T10:00:02.5Z")));
        assert!(
            check_overdue(&never, at("2026-12-07T10:00:03Z")),
            "none since the start"
        );
        let ran = container(
            check,
            json!([{"Start": "2026-12-07T10:00:04Z", "End": "2026-12-07T10:00:04.2+00:00"}]),
        );
        assert!(
            !check_overdue(&ran, at("2026-12-07T10:00:07Z")),
            "the timer ran it"
        );
        assert!(check_overdue(&ran, at("2026-12-07T10:00:07.2Z")));
    }

    #[test]
    fn within_the_start_period_the_start_interval_applies_and_no_interval_means_thirty_seconds() {
        let check = json!({"Test": ["CMD-SHELL", "true"], "Interval": 60 * SECOND,
                           "StartPeriod": 30 * SECOND, "StartInterval": SECOND});
        let c = container(check, json!([]));
        assert!(
            check_overdue(&c, at("2026-12-07T10:00:02Z")),
            "start interval"
        );
        assert!(
            !check_overdue(&c, at("2026-12-07T10:00:40Z")),
            "interval, after the period"
        );
        let default = container(json!({"Test": ["CMD", "true"]}), Value::Null);
        assert!(!check_overdue(&default, at("2026-12-07T10:00:30Z")));
        assert!(check_overdue(&default, at("2026-12-07T10:00:31Z")));
    }

    #[test]
    fn no_healthcheck_or_unreadable_times_leave_the_engine_alone() {
        let late = at("2026-12-07T11:00:00Z");
        for check in [json!(null), json!({"Test": []}), json!({"Test": ["NONE"]})] {
            assert!(!check_overdue(&container(check, Value::Null), late));
        }
        let mut c = container(json!({"Test": ["CMD", "true"]}), Value::Null);
        c["State"]["StartedAt"] = json!("not a time");
        assert!(!check_overdue(&c, late));
    }

    #[test]
    fn the_status_reads_empty_and_none_as_no_healthcheck() {
        for (health, expected) in [
            (json!({"Status": ""}), None),
            (json!({"Status": "none"}), None),
            (json!(null), None),
            (json!({"Status": "healthy"}), Some("healthy")),
        ] {
            assert_eq!(status(&health).as_deref(), expected);
        }
    }
}
