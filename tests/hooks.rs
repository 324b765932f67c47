//! Lifecycle hooks on the real stack (SPEC §12): commands run in the containers through the
//! Engine's exec API. A pre-update hook that writes into a volume before the old container
//! stops; one that fails (nothing stopped, `failed` with its output); one that says "not now"
//! (exit 75: no failure recorded, deployed by a later sweep); a post-update hook that fails
//! (rolled back, blocked); a hook that hangs past its timeout. The agent runs as its binary.

mod common;

use std::time::Duration;

use common::docker::*;
use common::site::*;
use common::*;
use ecr_deployd::store::Outcome;

fn id(name: &str) -> String {
    docker(&["inspect", "--format", "{{.Id}}", name])
}

fn sh(name: &str, script: &str) -> String {
    docker(&["exec", name, "/bin/sh", "-c", script])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_in_the_old_and_the_new_container_and_decide_the_deploy() {
    let site = Site::new("hooks").await;
    let volume = site.scope.name("backups");
    site.scope.volume(&volume);
    let mount = format!("{volume}:/data");
    let pre = |cmd: &str| format!("ecr-deployd.hook.pre-update={cmd}");
    let backup_cmd = pre("echo \"backup of $(cat /www/index.html)\" > /data/backup");
    let (backup, _) = site
        .container_run(
            "team/backup",
            "backup",
            &["-v", &mount, "--label", &backup_cmd],
        )
        .await;
    let failing_cmd = pre("echo cannot reach the database >&2; exit 1");
    let (failing, _) = site
        .container_with("team/failing", "failing", &[&failing_cmd])
        .await;
    let later_cmd = pre("test -f /www/go || { echo a backup is running; exit 75; }");
    let (later, _) = site
        .container_with("team/later", "later", &[&later_cmd])
        .await;
    let (migrate, _) = site
        .container_with(
            "team/migrate",
            "migrate",
            &["ecr-deployd.hook.post-update=echo migration 42 failed; exit 3"],
        )
        .await;
    let (slow, _) = site
        .container_with(
            "team/slow",
            "slow",
            &[&pre("sleep 30"), "ecr-deployd.hook.timeout=2"],
        )
        .await;
    let before: Vec<String> = [&failing, &later, &migrate, &slow]
        .iter()
        .map(|n| id(n))
        .collect();
    let agent = AgentProcess::start(&site.config(0), &["run"]);
    let mut pushed = Vec::new();
    for repo in ["backup", "failing", "later", "migrate", "slow"] {
        let repo = format!("team/{repo}");
        let v2 = site.silent_push(&repo, Kind::Serve, "v2").await;
        send_all(&site.sqs, &site.url, &[push_body(&repo, "prod", &v2)]).await;
        pushed.push(v2);
    }

    // The backup was written by the old container, before it stopped; the new one has it.
    let done = site.outcome(&backup, &pushed[0]).await;
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{done:?}");
    assert_eq!(sh(&backup, "cat /data/backup"), "backup of v1");
    assert_eq!(sh(&backup, "cat /www/index.html"), "v2");

    // Exit 1: nothing stopped, failed with the hook's output, not blocked.
    let done = site.outcome(&failing, &pushed[1]).await;
    assert_eq!(done.outcome, Some(Outcome::Failed), "{done:?}");
    let error = done.error.unwrap_or_default();
    assert!(
        error.contains("pre-update hook exited 1") && error.contains("cannot reach the database"),
        "{error}"
    );
    assert_eq!(id(&failing), before[0]);

    // Timed out: failed, named as such, the container untouched.
    let done = site.outcome(&slow, &pushed[4]).await;
    assert_eq!(done.outcome, Some(Outcome::Failed), "{done:?}");
    assert!(
        done.error
            .as_deref()
            .unwrap_or_default()
            .contains("did not finish within 2 s"),
        "{done:?}"
    );
    assert_eq!(id(&slow), before[3]);
    // … and the hook itself is stopped, not abandoned (issue 30 #8): no `sleep 30` left to
    // run beside the next attempt's copy.
    eventually(Duration::from_secs(15), "the overdue hook stopped", || {
        let top = docker(&["top", &slow]);
        async move { !top.contains("sleep 30") }
    })
    .await;

    // Post-update failing: rolled back to the old container, the digest blocked.
    let done = site.outcome(&migrate, &pushed[3]).await;
    assert_eq!(done.outcome, Some(Outcome::RolledBack), "{done:?}");
    assert!(
        done.error
            .unwrap_or_default()
            .contains("migration 42 failed")
    );
    assert_eq!(id(&migrate), before[2]);
    let status = status_of(&site.config(0), &migrate);
    assert_eq!(status["state"], "blocked", "{status}");

    // Exit 75: no failure recorded, the message gone, the container as it was …
    eventually(Duration::from_secs(30), "queue drained", || async {
        queue_counts(&site.sqs, &site.url).await == (0, 0)
    })
    .await;
    assert!(
        site.history(&later).is_empty(),
        "{:?}",
        site.history(&later)
    );
    assert_eq!(id(&later), before[1]);
    assert!(agent.log_text().contains("a backup is running"));
    // … and once the hook agrees, the next sweep deploys.
    sh(&later, "touch /www/go");
    // (Exit 1: the sweep tries the failing container again, and it fails again.)
    let (code, out, err) = site.cli(&["sweep"]);
    assert_eq!(code, 1, "{out}{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&later))
        .unwrap_or_default();
    assert!(row.ends_with("deployed"), "{out}");
    let done = site.outcome(&later, &pushed[2]).await;
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{done:?}");
}
