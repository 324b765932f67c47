//! The commands that act — `sweep`, `rollback`, `approve`, `pause`, `resume` — as one
//! [`handle`] over a [`Request`]: the daemon runs it for its control socket, a command
//! without a daemon runs it in its own process under the state-store lease. Each answers
//! with what the command prints and its exit status.

use std::fmt::Write as _;

use tokio::sync::Notify;

use super::{EXIT_CANNOT_RUN, EXIT_FAILED, EXIT_OK, desired_cell, short, table};
use crate::control::socket::{Reply, Request};
use crate::deploy::Executor;
use crate::deploy::operator::approve::ApproveError;
use crate::event::Digest;
use crate::ports::{Credentials, Registry, Runtime};
use crate::reconcile::sweep::sweep_once;
use crate::store::{ALL, Outcome};

/// Carries out `request`. `wake` is the daemon's sweep, woken after `resume`.
pub async fn handle<R, RT, C>(
    request: Request,
    registry: &R,
    ex: &Executor<RT, C>,
    wake: Option<&Notify>,
) -> Reply
where
    R: Registry,
    RT: Runtime,
    C: Credentials,
{
    let resumed = matches!(request, Request::Resume { .. });
    let reply = match request {
        Request::Ping => ok(String::new()),
        Request::Sweep { dry_run } => sweep(registry, ex, dry_run).await,
        Request::Rollback { container, to } => rollback(ex, &container, to.as_deref()).await,
        Request::Approve { container, digest } => {
            approve(registry, ex, &container, digest.as_deref()).await
        }
        Request::Pause {
            containers,
            all,
            reason,
        } => pause(ex, &containers, all, reason.as_deref().unwrap_or("")).await,
        Request::Resume { containers, all } => resume(ex, &containers, all).await,
    };
    // What was resumed is deployed at once, by the daemon's own sweep.
    if let Some(w) = wake
        && resumed
        && reply.code == EXIT_OK
    {
        w.notify_one();
    }
    reply
}

fn ok(stdout: String) -> Reply {
    printed(EXIT_OK, stdout)
}

/// A reply that prints `stdout` and exits with `code`.
fn printed(code: u8, stdout: String) -> Reply {
    Reply {
        code,
        stdout,
        stderr: String::new(),
    }
}

fn fail(code: u8, message: impl std::fmt::Display) -> Reply {
    Reply::error(code, format!("ecr-deployd: {message}\n"))
}

/// `sweep [--dry-run]`.
pub async fn sweep<R: Registry, RT: Runtime, C: Credentials>(
    registry: &R,
    ex: &Executor<RT, C>,
    dry_run: bool,
) -> Reply {
    let rows = match sweep_once(registry, ex, dry_run).await {
        Ok(rows) => rows,
        Err(e) => return fail(EXIT_CANNOT_RUN, format!("sweep could not run: {e}")),
    };
    if !dry_run && let Some(m) = ex.metrics() {
        m.swept(&crate::metrics::SweepCounts::of(&rows));
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut action = r.action.as_str().to_owned();
            if let Some(d) = &r.detail {
                let _ = write!(action, ": {d}");
            }
            vec![
                r.name.clone(),
                r.image.clone(),
                short(r.running_digest.as_deref()),
                desired_cell(r),
                action,
            ]
        })
        .collect();
    let mut reply = ok(table(
        &["NAME", "IMAGE", "RUNNING", "DESIRED", "ACTION/RESULT"],
        &cells,
    ));
    if rows.is_empty() {
        reply.stderr = "no managed containers or services (label ecr-deployd.enable=true)\n".into();
    }
    if rows.iter().any(|r| r.action.is_failure()) {
        reply.code = EXIT_FAILED;
    }
    reply
}

/// `rollback CONTAINER [--to DIGEST]`.
pub async fn rollback<RT: Runtime, C: Credentials>(
    ex: &Executor<RT, C>,
    container: &str,
    to: Option<&str>,
) -> Reply {
    let to = match to.map(Digest::parse).transpose() {
        Ok(d) => d,
        Err(e) => return fail(EXIT_CANNOT_RUN, format!("--to: {e}")),
    };
    match ex.rollback(container, to).await {
        Ok(r) if r.outcome == Outcome::Succeeded => ok(format!(
            "{container}: {} -> {} rolled back; {} is blocked until a different digest is pushed\n",
            r.from.short(),
            r.to.short(),
            r.from.short()
        )),
        Ok(r) => printed(
            EXIT_FAILED,
            format!(
                "{container}: rollback to {} {}; still running {}\n",
                r.to.short(),
                r.outcome.as_str(),
                r.from.short()
            ),
        ),
        Err(e) => fail(EXIT_FAILED, format!("rollback of {container}: {e}")),
    }
}

/// `approve CONTAINER [--digest D]`.
pub async fn approve<R: Registry, RT: Runtime, C: Credentials>(
    registry: &R,
    ex: &Executor<RT, C>,
    container: &str,
    digest: Option<&str>,
) -> Reply {
    let digest = match digest.map(Digest::parse).transpose() {
        Ok(d) => d,
        Err(e) => return fail(EXIT_CANNOT_RUN, format!("--digest: {e}")),
    };
    let a = match ex.approve(registry, container, digest).await {
        Ok(a) => a,
        Err(e @ ApproveError::Store(_)) => return fail(EXIT_CANNOT_RUN, e),
        Err(e) => return fail(EXIT_FAILED, format!("approve {container}: {e}")),
    };
    let from = short(a.from.as_ref().map(Digest::as_str));
    let unblocked = if a.unblocked {
        " (its block after a rollback is cleared)".to_owned()
    } else {
        String::new()
    };
    match a.outcome {
        None => ok(format!(
            "{container}: already runs {}; nothing to approve\n",
            a.to.short()
        )),
        Some(Outcome::Succeeded) => ok(format!(
            "{container}: {from} -> {} deployed{unblocked}\n",
            a.to.short()
        )),
        Some(o) => printed(
            EXIT_FAILED,
            format!(
                "{container}: {from} -> {} {}{unblocked}; still running {from}\n",
                a.to.short(),
                o.as_str()
            ),
        ),
    }
}

/// The managed names among `names`, or the reply that names the unknown ones.
async fn known<RT: Runtime, C: Credentials>(
    ex: &Executor<RT, C>,
    names: &[String],
) -> Result<(), Reply> {
    let mut all: Vec<String> = match ex.managed().await {
        Ok(m) => m.into_iter().map(|m| m.name).collect(),
        Err(e) => return Err(fail(EXIT_CANNOT_RUN, e)),
    };
    all.extend(
        ex.services()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.name),
    );
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !all.contains(n))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(fail(
        EXIT_FAILED,
        format!(
            "no managed container or service named {}; nothing changed",
            unknown.join(", ")
        ),
    ))
}

/// `pause [CONTAINER…|--all] [--reason T]`.
pub async fn pause<RT: Runtime, C: Credentials>(
    ex: &Executor<RT, C>,
    names: &[String],
    all: bool,
    reason: &str,
) -> Reply {
    if let Err(r) = choice(names, all) {
        return r;
    }
    if let Err(r) = known(ex, names).await {
        return r;
    }
    let targets: Vec<&str> = if all {
        vec![ALL]
    } else {
        names.iter().map(String::as_str).collect()
    };
    for t in &targets {
        if let Err(e) = ex.store().pause(t, reason) {
            return fail(EXIT_CANNOT_RUN, e);
        }
    }
    let who = if all {
        "every managed container and service".to_owned()
    } else {
        names.join(", ")
    };
    ok(format!(
        "paused: {who}; events, sweeps and windows do not deploy them until `ecr-deployd resume`\n"
    ))
}

/// `resume [CONTAINER…|--all]`.
pub async fn resume<RT: Runtime, C: Credentials>(
    ex: &Executor<RT, C>,
    names: &[String],
    all: bool,
) -> Reply {
    if let Err(r) = choice(names, all) {
        return r;
    }
    let store = ex.store();
    if all {
        return match store.resume_all() {
            Ok(n) => ok(format!("resumed: all ({n} pauses released)\n")),
            Err(e) => fail(EXIT_CANNOT_RUN, e),
        };
    }
    let mut out = String::new();
    for name in names {
        match store.resume(name) {
            Ok(true) => {
                let _ = writeln!(out, "resumed: {name}");
            }
            Ok(false) => {
                let _ = writeln!(out, "{name}: was not paused");
            }
            Err(e) => return fail(EXIT_CANNOT_RUN, e),
        }
        if let Ok(Some(p)) = store.paused(name) {
            let _ = writeln!(
                out,
                "{name}: still held by `pause --all` ({}); `resume --all` releases it",
                p.reason
            );
        }
    }
    ok(out)
}

/// Names or `--all`, not both, not neither.
fn choice(names: &[String], all: bool) -> Result<(), Reply> {
    match (names.is_empty(), all) {
        (true, false) => Err(fail(EXIT_CANNOT_RUN, "name containers, or --all")),
        (false, true) => Err(fail(
            EXIT_CANNOT_RUN,
            "name containers or give --all, not both",
        )),
        _ => Ok(()),
    }
}
