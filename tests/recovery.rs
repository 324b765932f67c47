//! `kill -9` of the agent in the middle of a swap: the next start finishes or undoes it, so
//! there is exactly one container with the name, running, with its volumes.
//! The agent runs as its binary; moto, the registry and Docker are real.

mod common;

use std::time::Duration;

use common::docker::*;
use common::site::*;
use common::*;
use ecr_deployd::store::{Outcome, Step, Store};

/// The one harness's site, and the agent's config on it.
struct Setup {
    site: Site,
    config: String,
}

impl std::ops::Deref for Setup {
    type Target = Site;
    fn deref(&self) -> &Site {
        &self.site
    }
}

async fn setup(test: &str) -> Setup {
    // No dead-letter queue: the interrupted message is counted in flight after the kill.
    let site = Site::builder(test).without_dlq().start().await;
    // A long visibility keeps the interrupted message away while the test looks at recovery.
    let mut settings = site.settings(0);
    settings.queue.visibility_timeout_seconds = 300;
    settings.deploy.health_timeout_seconds = 120;
    settings.deploy.stop_timeout_seconds = 5;
    // The start-up sweep of `run` (interval 0 turns it off altogether) retries what was undone.
    settings.sweep = Default::default();
    let config = config_of(&settings);
    Setup { site, config }
}

/// Kills the agent, restarts it and waits until its recovery of the interrupted deployment
/// is recorded (outcome rolled back, naming `step`). Returns the restarted agent.
async fn kill_and_recover(s: &Setup, agent: AgentProcess, name: &str, step: &str) -> AgentProcess {
    let mut agent = agent;
    agent.signal("KILL");
    agent.wait_exit(Duration::from_secs(10));
    let restarted = AgentProcess::start(&s.config, &["run"]);
    eventually(Duration::from_secs(60), "recovery logged", || async {
        restarted
            .log_text()
            .contains("interrupted deployments recovered")
    })
    .await;
    let history = Store::open(&s.state)
        .unwrap()
        .history(Some(name), 10)
        .unwrap();
    let recovered = history
        .iter()
        .find(|d| {
            d.error
                .as_deref()
                .unwrap_or("")
                .contains(&format!("interrupted at step {step}"))
        })
        .unwrap_or_else(|| panic!("no recovery record: {history:?}"));
    assert_eq!(recovered.outcome, Some(Outcome::RolledBack));
    restarted
}

/// Waits for the deployment to `digest` to be recorded as succeeded.
async fn succeeded(state: &std::path::Path, name: &str, digest: &str) {
    eventually(Duration::from_secs(60), "deployment succeeded", || async {
        let history = Store::open(state).unwrap().history(Some(name), 10).unwrap();
        history
            .iter()
            .any(|d| d.to_digest == digest && d.outcome == Some(Outcome::Succeeded))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_the_old_container_is_being_stopped_is_recovered_and_the_deploy_retried() {
    let s = setup("kill-stop").await;
    let (_v1, prod) = s.first_version("team/svc", Kind::Serve).await;
    let name = s.scope.name("svc");
    // httpd ignores SIGWINCH: the stop lasts the container's own 4 s stop timeout.
    s.scope.run(
        &name,
        &[
            "--label",
            "ecr-deployd.enable=true",
            "--stop-signal",
            "SIGWINCH",
            "--stop-timeout",
            "4",
            "-v",
            "/anon",
            &prod,
        ],
    );
    docker(&[
        "exec",
        &name,
        "/bin/busybox",
        "sh",
        "-c",
        "echo kept > /anon/f",
    ]);
    let agent = AgentProcess::start(&s.config, &["run"]);
    let v2 = s
        .registry
        .publish("team/svc", "v2", Kind::Serve, "v2", false);
    put_digest(&s.ecr, "team/svc", "prod", &v2).await;
    send_all(&s.sqs, &s.url, &[push_body("team/svc", "prod", &v2)]).await;
    s.journal_at(Step::Stopping).await;

    let restarted = kill_and_recover(&s, agent, &name, "stopping").await;
    // The start-up sweep then retries the interrupted deploy: it was not proven bad, no block.
    succeeded(&s.state, &name, &v2).await;
    // Still one container, running, once the interrupted stop's timeout has long passed.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let present = containers_named(&name);
    assert_eq!(present.len(), 1, "{present:?}");
    assert!(present[0].1, "running:\n{}", restarted.log_text());
    assert_eq!(running_digest(&name), v2);
    assert_eq!(
        docker(&["exec", &name, "/bin/busybox", "cat", "/anon/f"]),
        "kept",
        "the anonymous volume came along"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_the_health_gate_removes_the_new_container_and_restores_the_old_one() {
    let s = setup("kill-health").await;
    let (v1, prod) = s.first_version("team/gate", Kind::Healthy).await;
    let name = s.scope.name("gate");
    s.scope.run(
        &name,
        &["--label", "ecr-deployd.enable=true", "-v", "/anon", &prod],
    );
    docker(&[
        "exec",
        &name,
        "/bin/busybox",
        "sh",
        "-c",
        "echo kept > /anon/f",
    ]);
    let agent = AgentProcess::start(&s.config, &["run"]);
    let stuck = s
        .registry
        .publish("team/gate", "stuck", Kind::NeverHealthy, "stuck", false);
    put_digest(&s.ecr, "team/gate", "prod", &stuck).await;
    send_all(&s.sqs, &s.url, &[push_body("team/gate", "prod", &stuck)]).await;
    s.journal_at(Step::HealthGate).await;
    // Both exist now: the new one starting, the old one parked under the suffix.
    assert_eq!(containers_named(&name).len(), 2);

    // The push is withdrawn while the agent is down: after recovery there is nothing to do.
    put_digest(&s.ecr, "team/gate", "prod", &v1).await;
    let _restarted = kill_and_recover(&s, agent, &name, "health_gate").await;
    let present = containers_named(&name);
    assert_eq!(present.len(), 1, "exactly one container: {present:?}");
    assert!(present[0].1, "running");
    assert_eq!(running_digest(&name), v1);
    assert_eq!(
        docker(&["exec", &name, "/bin/busybox", "cat", "/anon/f"]),
        "kept"
    );
    assert_eq!(
        queue_counts(&s.sqs, &s.url).await.1,
        1,
        "the message is still in flight, not deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_long_health_gate_ends_within_one_deadline_with_the_old_container_back() {
    let s = setup("term-gate").await;
    let (v1, prod) = s.first_version("team/term", Kind::Healthy).await;
    let name = s.scope.name("term");
    s.scope
        .run(&name, &["--label", "ecr-deployd.enable=true", &prod]);
    // A health gate far longer than any shutdown grace.
    let mut agent = AgentProcess::start_with_env(
        &s.config,
        &["run"],
        &[("ECR_DEPLOYD_DEPLOY_HEALTH_TIMEOUT_SECONDS", "3600")],
    );
    let stuck = s
        .registry
        .publish("team/term", "stuck", Kind::NeverHealthy, "stuck", false);
    put_digest(&s.ecr, "team/term", "prod", &stuck).await;
    send_all(&s.sqs, &s.url, &[push_body("team/term", "prod", &stuck)]).await;
    s.journal_at(Step::HealthGate).await;

    let asked = std::time::Instant::now();
    agent.signal("TERM");
    let code = agent.wait_exit(Duration::from_secs(120));
    let took = asked.elapsed();
    assert_eq!(code, Some(0), "{}", agent.log_text());
    // systemd kills the agent at TimeoutStopSec=90: everything must be over before that.
    assert!(took < Duration::from_secs(90), "took {took:?}");
    let present = containers_named(&name);
    assert_eq!(present.len(), 1, "exactly one container: {present:?}");
    assert!(
        present[0].1,
        "the old container runs again before the agent exits"
    );
    assert_eq!(running_digest(&name), v1);
    let history = Store::open(&s.state)
        .unwrap()
        .history(Some(&name), 5)
        .unwrap();
    assert_eq!(history[0].outcome, Some(Outcome::RolledBack), "{history:?}");
    let log = agent.log_text();
    assert!(
        log.contains("abandoned deployments undone before exit"),
        "{log}"
    );
    // The message that asked for it goes back to the queue for the next start.
    assert_eq!(queue_counts(&s.sqs, &s.url).await, (1, 0));
}

/// Issue 30 #6: with no daemon running, an acting command (here `sweep`) takes the lease
/// and runs start-up recovery before anything else: a swap the killed agent left at its
/// health gate is undone first (the old container back, alone, running).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_without_a_daemon_recovers_an_interrupted_swap_before_it_acts() {
    let s = setup("cli-recover").await;
    let (v1, prod) = s.first_version("team/cli", Kind::Healthy).await;
    let name = s.scope.name("cli");
    s.scope
        .run(&name, &["--label", "ecr-deployd.enable=true", &prod]);
    let mut agent = AgentProcess::start(&s.config, &["run"]);
    let stuck = s
        .registry
        .publish("team/cli", "stuck", Kind::NeverHealthy, "stuck", false);
    put_digest(&s.ecr, "team/cli", "prod", &stuck).await;
    send_all(&s.sqs, &s.url, &[push_body("team/cli", "prod", &stuck)]).await;
    s.journal_at(Step::HealthGate).await;
    agent.signal("KILL");
    agent.wait_exit(Duration::from_secs(10));
    put_digest(&s.ecr, "team/cli", "prod", &v1).await;

    let (code, out, err) = run_cli(&s.config, &["sweep"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("1 interrupted deployment(s) recovered first"),
        "{err}"
    );
    let present = containers_named(&name);
    assert_eq!(present.len(), 1, "exactly one container: {present:?}");
    assert!(present[0].1, "running");
    assert_eq!(running_digest(&name), v1);
    assert!(
        Store::open(&s.state)
            .unwrap()
            .unfinished()
            .unwrap()
            .is_empty()
    );
}
