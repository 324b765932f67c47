//! The `ecr-deployd` binary as an operator runs it: exit statuses, signals, start-up with AWS
//! down. AWS is a real moto server.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// A config for `run` against `endpoint`; its state store is a fresh file under the system's
/// temporary directory, never the default path.
fn agent_config(endpoint: &str, queue_url: &str, extra: &str) -> String {
    let state = tempfile::Builder::new()
        .prefix("ecr-deployd-test-state-")
        .tempdir()
        .unwrap()
        .keep();
    format!(
        "[aws]\nregion = \"{REGION}\"\nendpoint_url = \"{endpoint}\"\n[queue]\nurl = \"{queue_url}\"\nwait_time_seconds = 2\nvisibility_timeout_seconds = 300\n[http]\nlisten = \"\"\n[state]\npath = \"{}/state.db\"\n{extra}",
        state.display()
    )
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let (code, out, _) = run_cli(
        "[notify]\nwebhooks = [\"https://hooks.example.com/services/T0/B0/TOPSECRET\"]\n",
        &["check-config"],
        &[("ECR_DEPLOYD_QUEUE_MAX_MESSAGES", "4")],
    );
    assert_eq!(code, 0);
    assert!(out.contains("max_messages = 4"), "{out}");
    assert!(
        out.contains("hooks.example.com") && !out.contains("TOPSECRET"),
        "{out}"
    );
    assert!(
        out.contains("[deploy]") && out.contains("debounce_millis = 1500"),
        "{out}"
    );
}

#[test]
fn invalid_config_exits_2_naming_key_and_reason() {
    for (config, env, needle) in [
        ("[queue]\nbogus = 1\n", vec![], "bogus"),
        ("[queue]\nmax_messages = 11\n", vec![], "queue.max_messages"),
        (
            "[queue]\nurl = \"https://sqs.eu-west-2.amazonaws.com/q\"\n",
            vec![],
            "queue.url",
        ),
        (
            "",
            vec![("ECR_DEPLOYD_QUEUE_WAIT_TIME_SECONDS", "30")],
            "queue.wait_time_seconds",
        ),
        (
            "",
            vec![("ECR_DEPLOYD_DEPLOY_PARALLEL", "3")],
            "ECR_DEPLOYD_DEPLOY_PARALLEL",
        ),
    ] {
        let (code, _, err) = run_cli(config, &["check-config"], &env);
        assert_eq!(code, 2, "{config}: {err}");
        assert!(err.contains(needle), "{config}: {err}");
    }
}

#[test]
fn an_explicit_config_path_that_does_not_exist_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ecr-deployd"))
        .args([
            "--config",
            "/nonexistent/ecr-deployd/config.toml",
            "check-config",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ecr-deployd/config.toml"));
}

#[test]
fn run_without_a_queue_url_exits_2() {
    let (code, _, err) = run_cli("", &["run"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("queue.url"), "{err}");
}

#[test]
fn a_docker_host_the_agent_cannot_use_is_refused_by_name_never_replaced_by_the_default() {
    let config = "[queue]\nurl = \"https://sqs.eu-west-2.amazonaws.com/123456789012/q\"\n";
    for (args, code) in [
        (&["run"][..], 2),
        (&["status"][..], 2),
        (&["doctor"][..], 1),
    ] {
        let (got, _, err) = run_cli(config, args, &[("DOCKER_HOST", "ssh://admin@engine")]);
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(
            err.contains("ssh://admin@engine") && err.contains("unix:// and tcp://"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn every_command_of_the_spec_exists() {
    for cmd in [
        "run",
        "sweep",
        "status",
        "history",
        "rollback",
        "doctor",
        "check-config",
        "approve",
        "pause",
        "resume",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ecr-deployd"))
            .args([cmd, "--help"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{cmd} --help");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ecr-deployd"))
        .arg("--version")
        .output()
        .unwrap();
    // Completions and the manual page come from the same definitions, without a config.
    for (args, marker) in [
        (["completions", "bash"], "complete -F _ecr__deployd"),
        (["completions", "zsh"], "#compdef ecr-deployd"),
        (["completions", "fish"], "complete -c ecr-deployd -n"),
        (
            ["manpage", "--config=/nonexistent"],
            ".SH \"SUPPLY-CHAIN GATES\"",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ecr-deployd"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(marker),
            "{args:?}: {text}"
        );
    }
    // Version, git revision and build date: `ecr-deployd 0.1.0 (0123456789ab, built 2026-12-02)`.
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (head, stamp) = version
        .split_once(" (")
        .unwrap_or_else(|| panic!("{version}"));
    assert_eq!(head, concat!("ecr-deployd ", env!("CARGO_PKG_VERSION")));
    let (rev, date) = stamp
        .trim_end_matches(')')
        .split_once(", built ")
        .unwrap_or_else(|| panic!("{version}"));
    assert!(
        rev == "unknown" || (rev.len() == 12 && rev.bytes().all(|b| b.is_ascii_hexdigit())),
        "{version}"
    );
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
        "{version}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_0_and_makes_unfinished_messages_visible_again() {
    let Aws { moto, sqs, ecr, .. } = Aws::start().await;
    let digest = put_image(&ecr, "team/api", "prod", "v1").await;
    let (url, _) = create_queue(&sqs, "host-a", None).await;
    // The first push is acted on at once; a second one within the (long) debounce window
    // after it waits for the follow-up, unfinished when the signal arrives.
    let config = agent_config(&moto.endpoint, &url, "[deploy]\ndebounce_millis = 60000\n");
    let mut agent = AgentProcess::start(&config, &["run"]);
    send_all(&sqs, &url, &[push_body("team/api", "prod", &digest)]).await;
    eventually(Duration::from_secs(30), "first message handled", || async {
        queue_counts(&sqs, &url).await == (0, 0)
    })
    .await;
    send_all(&sqs, &url, &[push_body("team/api", "prod", &digest)]).await;
    eventually(Duration::from_secs(30), "message in flight", || async {
        queue_counts(&sqs, &url).await == (0, 1)
    })
    .await;

    agent.signal("TERM");
    let code = tokio::task::spawn_blocking(move || {
        let code = agent.wait_exit(Duration::from_secs(20));
        (code, agent)
    })
    .await
    .unwrap();
    let (code, agent) = code;
    assert_eq!(code, Some(0), "{}", agent.log_text());
    assert_eq!(
        queue_counts(&sqs, &url).await,
        (1, 0),
        "visible again, not deleted"
    );
    assert!(
        agent.log_text().contains("made visible again"),
        "{}",
        agent.log_text()
    );
}

/// Datagrams the agent sent to a stand-in for systemd's notify socket, split into lines.
fn notifications(sock: &std::os::unix::net::UnixDatagram) -> Vec<String> {
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        lines.extend(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .map(str::to_owned),
        );
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_systemd_it_reports_ready_feeds_the_watchdog_and_reports_stopping() {
    let Aws { moto, sqs, .. } = Aws::start().await;
    let (url, _) = create_queue(&sqs, "host-a", None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let config = agent_config(&moto.endpoint, &url, "");
    // WatchdogSec=1: pings every third of a second while the loop turns.
    let mut agent = AgentProcess::start_with_env(
        &config,
        &["run"],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.iter().filter(|l| *l == "WATCHDOG=1").count() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "{seen:?}\n{}",
            agent.log_text()
        );
        seen.extend(notifications(&sock));
    }
    let ready = seen.iter().position(|l| l == "READY=1").expect("READY=1");
    let first_ping = seen.iter().position(|l| l == "WATCHDOG=1").unwrap();
    assert!(ready < first_ping, "{seen:?}");
    assert!(
        seen.iter().any(|l| l.starts_with("STATUS=running")),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|l| l == "STOPPING=1"));

    agent.signal("TERM");
    let (code, agent) =
        tokio::task::spawn_blocking(move || (agent.wait_exit(Duration::from_secs(20)), agent))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "{}", agent.log_text());
    assert!(notifications(&sock).iter().any(|l| l == "STOPPING=1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_down_at_start_up_is_retried_and_work_proceeds_once_it_is_up() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let url = format!("{endpoint}/{ACCOUNT}/host-a");
    let config = agent_config(&endpoint, &url, "[deploy]\ndebounce_millis = 100\n");
    let mut agent = AgentProcess::start(&config, &["run"]);
    // The SDK's own attempts (with their backoff) come before the intake's first
    // "retrying", so that line's time varies: wait for it (the agent must not exit meanwhile).
    agent
        .until_logged("receiving from the queue failed; retrying")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "agent died after retrying:\n{}",
        agent.log_text()
    );

    let Aws {
        moto: _moto,
        sqs,
        ecr,
        ..
    } = Aws::on(Moto::start_on(port)).await;
    let digest = put_image(&ecr, "team/api", "prod", "v1").await;
    let (created, _) = create_queue(&sqs, "host-a", None).await;
    assert_eq!(created, url);
    send_all(&sqs, &url, &[push_body("team/api", "prod", &digest)]).await;
    // The capped backoff reaches the endpoint within its maximum delay (30 s).
    eventually(
        Duration::from_secs(60),
        "message handled and deleted",
        || async { queue_counts(&sqs, &url).await == (0, 0) },
    )
    .await;
    assert!(agent.log_text().contains(&digest), "{}", agent.log_text());
    agent.signal("INT");
    let code = tokio::task::spawn_blocking(move || agent.wait_exit(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}
