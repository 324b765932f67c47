//! Lifecycle hooks (SPEC §12): `ecr-deployd.hook.pre-update` runs in the old container
//! before anything is stopped, `ecr-deployd.hook.post-update` in the new one after it starts
//! and before its health gate passes; each with `/bin/sh -c` through the Engine's exec API,
//! within `ecr-deployd.hook.timeout` seconds (default 60).
//!
//! What a hook's end means is a pure [`verdict`]: exit 0 passes; 75 (EX_TEMPFAIL) from a
//! pre-update hook is "not now" — the deploy is left for a later look without a failure;
//! anything else (another code, a timeout, no shell) fails, with the exit code and the last
//! lines of the output in the reason.

use std::time::Duration;

use tracing::{info, instrument, warn};

use crate::deploy::sequence::executor::Executor;
pub use crate::model::labels::{
    DEFAULT_TIMEOUT, HookLabels, Hooks, LABEL_POST_UPDATE, LABEL_PRE_UPDATE, LABEL_TIMEOUT,
};
use crate::ports::{Credentials, ExecRun, Runtime};

/// sysexits' EX_TEMPFAIL: "not now, try again later" (as Watchtower's pre-update).
pub const EX_TEMPFAIL: i64 = 75;
/// Lines of a hook's output kept in a reason (the history row, the notice).
const REASON_LINES: usize = 10;

/// Which hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    PreUpdate,
    PostUpdate,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::PreUpdate => "pre-update",
            Hook::PostUpdate => "post-update",
        }
    }
}

/// What a hook's run means for the deploy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookVerdict {
    Passed,
    /// Pre-update exited 75: not now; a later look tries again, no failure recorded.
    NotNow(String),
    Failed(String),
}

/// The verdict on one run of `hook`.
pub fn verdict(hook: Hook, run: &ExecRun, timeout: Duration) -> HookVerdict {
    let tail = last_lines(&run.output, REASON_LINES);
    let output = if tail.is_empty() {
        String::new()
    } else {
        format!("; output: {tail}")
    };
    let name = hook.as_str();
    if run.still_running {
        let why = format!(
            "the previous {name} hook in this container outlived its timeout and still runs; a second copy is not started"
        );
        return match hook {
            Hook::PreUpdate => HookVerdict::NotNow(why),
            Hook::PostUpdate => HookVerdict::Failed(why),
        };
    }
    if run.timed_out {
        return HookVerdict::Failed(format!(
            "{name} hook did not finish within {} s{output}",
            timeout.as_secs()
        ));
    }
    match run.exit_code {
        Some(0) => HookVerdict::Passed,
        Some(EX_TEMPFAIL) if hook == Hook::PreUpdate => HookVerdict::NotNow(format!(
            "{name} hook said not now (exit {EX_TEMPFAIL}); tried again at the next look{output}"
        )),
        Some(code) => HookVerdict::Failed(format!("{name} hook exited {code}{output}")),
        None => HookVerdict::Failed(format!("{name} hook ended without an exit code{output}")),
    }
}

/// The last `n` non-empty lines of `text`, joined with " | " (one line in a history row).
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// Runs `hook` (`command`) in container `id` of `name`; its output goes to the log.
    #[instrument(name = "hook", skip_all, fields(container = %name, id = %id.get(..12).unwrap_or(id), hook = ?hook))]
    pub(in crate::deploy) async fn run_hook(
        &self,
        name: &str,
        id: &str,
        hook: Hook,
        command: &str,
        timeout: Duration,
    ) -> HookVerdict {
        let run = match self.runtime.exec(id, command, timeout).await {
            Ok(run) => run,
            Err(e) => {
                return HookVerdict::Failed(format!("{} hook could not run: {e}", hook.as_str()));
            }
        };
        let judged = verdict(hook, &run, timeout);
        let output = last_lines(&run.output, 40);
        match &judged {
            HookVerdict::Passed => {
                info!(container = %name, hook = hook.as_str(), %output, "hook passed")
            }
            other => {
                warn!(container = %name, hook = hook.as_str(), exit = ?run.exit_code, timed_out = run.timed_out, %output, verdict = ?other, "hook did not pass")
            }
        }
        judged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(code: Option<i64>, output: &str, timed_out: bool) -> ExecRun {
        ExecRun {
            exit_code: code,
            output: output.into(),
            timed_out,
            still_running: false,
        }
    }

    const T: Duration = Duration::from_secs(60);

    #[test]
    fn exit_zero_passes_and_75_before_the_update_means_not_now() {
        assert_eq!(
            verdict(Hook::PreUpdate, &run(Some(0), "ok", false), T),
            HookVerdict::Passed
        );
        let HookVerdict::NotNow(why) = verdict(Hook::PreUpdate, &run(Some(75), "busy", false), T)
        else {
            panic!("75 is not now")
        };
        assert!(why.contains("exit 75") && why.contains("busy"), "{why}");
        // After the update there is no "later": the new container is already running.
        assert!(matches!(
            verdict(Hook::PostUpdate, &run(Some(75), "", false), T),
            HookVerdict::Failed(r) if r.contains("post-update hook exited 75")
        ));
    }

    #[test]
    fn a_failure_names_the_hook_its_exit_code_and_its_last_lines() {
        let out: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let HookVerdict::Failed(why) = verdict(Hook::PreUpdate, &run(Some(3), &out, false), T)
        else {
            panic!("exit 3 fails")
        };
        assert!(
            why.starts_with("pre-update hook exited 3; output: line 21 |"),
            "{why}"
        );
        assert!(
            why.ends_with("line 30") && !why.contains("line 20 "),
            "{why}"
        );
    }

    #[test]
    fn a_timeout_fails_whatever_the_exit_code_and_says_the_limit() {
        let why = verdict(
            Hook::PreUpdate,
            &run(None, "", true),
            Duration::from_secs(5),
        );
        assert_eq!(
            why,
            HookVerdict::Failed("pre-update hook did not finish within 5 s".into())
        );
        assert!(matches!(
            verdict(Hook::PostUpdate, &run(None, "x", false), T),
            HookVerdict::Failed(r) if r.contains("without an exit code")
        ));
    }

    #[test]
    fn labels_give_hooks_with_a_default_timeout_or_an_error_naming_the_label() {
        let labels = |pairs: &[(&str, &str)]| {
            HookLabels::from_labels(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let none = labels(&[]).hooks().unwrap();
        assert_eq!((none.pre_update, none.post_update), (None, None));
        assert_eq!(none.timeout, DEFAULT_TIMEOUT);
        let both = labels(&[
            (LABEL_PRE_UPDATE, "pg_dump > /backup/db.sql"),
            (LABEL_POST_UPDATE, "./migrate"),
            (LABEL_TIMEOUT, "300"),
        ])
        .hooks()
        .unwrap();
        assert_eq!(both.pre_update.as_deref(), Some("pg_dump > /backup/db.sql"));
        assert_eq!(both.post_update.as_deref(), Some("./migrate"));
        assert_eq!(both.timeout, Duration::from_secs(300));
        for bad in ["0", "-1", "ten", "1.5", "86401"] {
            let err = labels(&[(LABEL_TIMEOUT, bad)]).hooks().unwrap_err();
            assert!(err.contains(LABEL_TIMEOUT) && err.contains(bad), "{err}");
        }
        let err = labels(&[(LABEL_PRE_UPDATE, "  ")]).hooks().unwrap_err();
        assert!(err.contains(LABEL_PRE_UPDATE), "{err}");
    }

    #[test]
    fn a_hook_still_running_past_its_timeout_is_not_started_twice() {
        let mut busy = run(None, "", false);
        busy.still_running = true;
        let t = Duration::from_secs(5);
        assert!(
            matches!(verdict(Hook::PreUpdate, &busy, t), HookVerdict::NotNow(w) if w.contains("still runs"))
        );
        assert!(matches!(
            verdict(Hook::PostUpdate, &busy, t),
            HookVerdict::Failed(_)
        ));
    }
}
