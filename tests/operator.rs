//! The sweep and the operator commands, as an operator runs them (the binary), on the real
//! stack: moto (SQS, ECR, EventBridge), a local registry, the Docker Engine.

mod common;

use std::time::Duration;

use common::docker::*;
use common::site::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_sweep_converges_to_the_latest_push_and_the_periodic_sweep_catches_a_lost_event() {
    let site = Site::new("sweep-run").await;
    let (name, _v1) = site.container("team/web", "web").await;
    // Two pushes while the agent is stopped; their events are lost.
    site.silent_push("team/web", Kind::Serve, "v2").await;
    let v3 = site.silent_push("team/web", Kind::Serve, "v3").await;

    let agent = AgentProcess::start(&site.config(3), &["run"]);
    let recorded = |digest: String| {
        let name = name.clone();
        let site = &site;
        async move {
            let (_, out, _) = site.cli(&["history", &name, "--limit", "1", "--json"]);
            let d = &json(&out)["deployments"][0];
            d["to_digest"] == digest.as_str() && !d["outcome"].is_null()
        }
    };
    eventually(Duration::from_secs(60), "start-up sweep deploys v3", || {
        recorded(v3.clone())
    })
    .await;
    let v4 = site.silent_push("team/web", Kind::Serve, "v4").await;
    eventually(Duration::from_secs(60), "periodic sweep deploys v4", || {
        recorded(v4.clone())
    })
    .await;
    assert_eq!(running_digest(&name), v4);
    drop(agent);

    let (code, out, err) = site.cli(&["history", &name, "--json"]);
    assert_eq!(code, 0, "{err}");
    let deployments = json(&out)["deployments"].as_array().unwrap().clone();
    assert_eq!(
        deployments.len(),
        2,
        "v1 → v3 directly, then v3 → v4: {out}"
    );
    assert!(
        deployments
            .iter()
            .all(|d| d["trigger"] == "sweep" && d["outcome"] == "succeeded"),
        "{out}"
    );
    assert_eq!(deployments[0]["to_digest"], v4.as_str());
    assert_eq!(deployments[1]["to_digest"], v3.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_status_sweep_history_and_rollback_as_an_operator_uses_them() {
    let site = Site::new("operator").await;
    let (name, v1) = site.container("team/api", "api").await;
    let v2 = site.silent_push("team/api", Kind::Serve, "v2").await;

    // Dry run: reports the pending deploy, changes nothing.
    let (code, out, err) = site.cli(&["sweep", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("team/api:prod")
            && row.contains(short(&v1))
            && row.contains(short(&v2))
            && row.contains("would deploy"),
        "{out}"
    );
    assert!(out.lines().next().unwrap().starts_with("NAME"), "{out}");
    assert_eq!(running_digest(&name), v1);
    let (_, out, _) = site.cli(&["status", "--json"]);
    let c = &json(&out)["containers"][0];
    assert_eq!(
        (c["name"].as_str(), c["state"].as_str()),
        (Some(name.as_str()), Some("behind"))
    );
    assert_eq!(
        (c["running_digest"].as_str(), c["desired_digest"].as_str()),
        (Some(v1.as_str()), Some(v2.as_str()))
    );
    assert!(c["last_deployment"].is_null());

    // The sweep deploys.
    let (code, out, err) = site.cli(&["sweep"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("deployed"), "{out}");
    assert_eq!(running_digest(&name), v2);
    let (code, out, _) = site.cli(&["status", "--json"]);
    assert_eq!(code, 0);
    let c = &json(&out)["containers"][0];
    assert_eq!(c["image"], "team/api:prod");
    assert_eq!(c["state"], "up_to_date");
    assert_eq!(c["last_deployment"]["outcome"], "succeeded");
    assert_eq!(c["last_deployment"]["trigger"], "sweep");
    assert_eq!(c["last_deployment"]["from_digest"], v1.as_str());

    // Rollback to the previous digest; the digest left is blocked, so the sweep keeps v1.
    let (code, out, err) = site.cli(&["rollback", &name]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(running_digest(&name), v1);
    let (code, out, _) = site.cli(&["sweep"]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.starts_with(&name) && l.contains("blocked")),
        "{out}"
    );
    assert_eq!(running_digest(&name), v1);
    let (_, out, _) = site.cli(&["history", "--limit", "1", "--json"]);
    let last = &json(&out)["deployments"][0];
    assert_eq!(
        (last["trigger"].as_str(), last["to_digest"].as_str()),
        (Some("manual"), Some(v1.as_str()))
    );
    let (code, table, _) = site.cli(&["history", &name]);
    assert_eq!(code, 0);
    assert_eq!(
        table.lines().count(),
        3,
        "header + two deployments: {table}"
    );

    // A new push is not blocked; a failing one makes `sweep` exit 1.
    let bad = site.silent_push("team/api", Kind::ExitAtOnce, "bad").await;
    let (code, out, _) = site.cli(&["sweep"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("rolled back") && out.contains(short(&bad)),
        "{out}"
    );
    assert_eq!(running_digest(&name), v1);
    let v3 = site.silent_push("team/api", Kind::Serve, "v3").await;
    let (code, _, _) = site.cli(&["sweep"]);
    assert_eq!(code, 0);
    assert_eq!(running_digest(&name), v3);

    // Rollback with nothing known to go back to, and of an unknown container: exit 1.
    assert_eq!(site.cli(&["rollback", "no-such-container"]).0, 1);
    assert_eq!(site.cli(&["rollback", &name, "--to", "sha256:nothex"]).0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_on_a_provisioned_host_and_names_what_is_missing() {
    let site = Site::new("doctor").await;
    site.container("team/doc", "doc").await;

    // No rule targets the queue yet.
    let (code, out, _) = site.cli(&["doctor"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.lines().any(|l| l.starts_with("FAIL EventBridge rule targets the queue") && l.contains("hint")), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok   queue has a redrive policy")),
        "{out}"
    );

    site.events
        .put_rule()
        .name("ecr-push-host-a")
        .event_pattern(r#"{"source":["aws.ecr"],"detail-type":["ECR Image Action"]}"#)
        .send()
        .await
        .unwrap();
    let arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:host-a");
    site.events
        .put_targets()
        .rule("ecr-push-host-a")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (code, out, err) = site.cli(&["doctor"]);
    assert_eq!(code, 0, "{out}{err}");
    for check in [
        "config valid",
        "AWS credentials",
        "queue reachable",
        "EventBridge rule targets the queue",
        "Docker reachable",
        "managed containers",
        "state store writable",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("ok") && l.contains(check)),
            "{check}: {out}"
        );
    }
    assert!(out.contains("API 1."), "{out}");
    // Without a Swarm (or off a manager) services are simply absent: no line, no error.
    assert!(!out.contains("service"), "{out}");

    // Docker unreachable.
    let (code, out, _) = run_cli(
        &site.config(0),
        &["doctor"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(code, 1);
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL Docker reachable") && l.contains("hint")),
        "{out}"
    );
    let (code, _, err) = run_cli(
        &site.config(0),
        &["sweep"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(code, 2, "{err}");

    // The queue does not exist.
    let mut settings = site.settings(0);
    settings.queue.url = site.url.replace("/host-a", "/no-such-queue");
    let missing = config_of(&settings);
    let (code, out, _) = run_cli(&missing, &["doctor"], &[]);
    assert_eq!(code, 1);
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL queue reachable") && l.contains("no-such-queue")),
        "{out}"
    );

    // An invalid config is a FAIL line too.
    let (code, out, _) = run_cli("[queue]\nmax_messages = 99\n", &["doctor"], &[]);
    assert_eq!(code, 1);
    assert!(out.starts_with("FAIL config valid"), "{out}");
    let _ = &site.sqs;
    let _ = &site.url;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness_are_served_on_the_http_listener() {
    let site = Site::new("http").await;
    let (name, _) = site.container("team/obs", "obs").await;
    let v2 = site.silent_push("team/obs", Kind::Serve, "v2").await;
    let addr = format!("127.0.0.1:{}", free_port());
    let agent = AgentProcess::start(&site.config_with_http(0, &addr), &["run"]);
    eventually(Duration::from_secs(30), "listener up", || async {
        http(&addr, "GET", "/healthz").0 == 200
    })
    .await;
    // Ready once the start-up sweep (which deploys v2) has finished.
    eventually(Duration::from_secs(60), "ready", || async {
        http(&addr, "GET", "/readyz").0 == 200
    })
    .await;
    assert_eq!(running_digest(&name), v2);
    let (status, metrics) = http(&addr, "GET", "/metrics");
    assert_eq!(status, 200);
    for line in [
        "ecr_deployd_deployments_total{outcome=\"succeeded\"} 1",
        "ecr_deployd_containers_managed 1",
        "ecr_deployd_containers_behind 0",
        "ecr_deployd_deploy_duration_seconds_count 1",
        "ecr_deployd_messages_received_total 0",
        "ecr_deployd_messages_deleted_total{outcome=\"done\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing in:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("ecr_deployd_sweep_last_success_timestamp_seconds "),
        "{metrics}"
    );
    assert!(
        metrics.contains("ecr_deployd_event_to_running_seconds"),
        "{metrics}"
    );
    for line in [
        "ecr_deployd_sweep_interval_seconds 0",
        "ecr_deployd_messages_malformed_total 0",
        "ecr_deployd_messages_retried_total 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing in:\n{metrics}"
        );
    }
    promtool_check_metrics(&metrics);
    assert_eq!(http(&addr, "GET", "/nope").0, 404);
    assert_eq!(http(&addr, "POST", "/metrics").0, 405);
    assert_eq!(
        http(&addr, "GET", "/healthz").0,
        200,
        "still alive after bad requests"
    );
    drop(agent);
}

/// `promtool check metrics` on a real scrape: no lint problem at all (HELP on every family,
/// counter names ending in `_total`, base units).
fn promtool_check_metrics(metrics: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian package prometheus): run ./scripts/setup.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}\n{metrics}"
    );
}

/// SPEC §3/§4 `[deploy] scope`: an agent of scope `demo` manages only containers labelled
/// `ecr-deployd.scope=demo`; an agent without a scope never touches a scoped container
/// (several agents on one host, a demo beside production).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_manages_only_its_own_scope_and_no_scope_never_takes_a_scoped_container() {
    let site = Site::new("scope").await;
    let (plain, p1) = site.container("team/plain", "plain").await;
    let (scoped, s1) = site
        .container_with("team/scoped", "scoped", &["ecr-deployd.scope=demo"])
        .await;
    let p2 = site.silent_push("team/plain", Kind::Serve, "p2").await;
    let s2 = site.silent_push("team/scoped", Kind::Serve, "s2").await;
    let config = site.config(0);

    let demo = [("ECR_DEPLOYD_DEPLOY_SCOPE", "demo")];
    let (code, out, err) = run_cli(&config, &["sweep"], &demo);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(running_digest(&scoped), s2);
    assert_eq!(running_digest(&plain), p1, "not in scope demo: untouched");
    assert!(!out.contains(&plain), "{out}");

    let s3 = site.silent_push("team/scoped", Kind::Serve, "s3").await;
    let (code, out, err) = run_cli(&config, &["sweep"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(running_digest(&plain), p2);
    assert_eq!(
        running_digest(&scoped),
        s2,
        "scoped: an agent without scope leaves it"
    );
    assert!(!out.contains(&scoped), "{out}");
    let (_, out, _) = run_cli(&config, &["status", "--json"], &[]);
    assert!(!out.contains(&scoped) && out.contains(&plain), "{out}");
    let (code, _, err) = run_cli(
        &config,
        &["check-config"],
        &[("ECR_DEPLOYD_DEPLOY_SCOPE", "a b")],
    );
    assert_eq!(code, 2);
    assert!(err.contains("deploy.scope"), "{err}");
    let _ = (s1, s3);
}

/// Issue 30 #7 (SPEC §16): the service's user owns the state store, and an operator in its
/// group runs `status` while the daemon runs. The daemon here runs as root in a directory
/// owned by the service user (uid/gid 64201), as a `sudo` command before the first start
/// would: every file it makes (database, WAL, shared memory, lease) goes to that owner with a
/// mode the group can read; a member (uid 64202, groups 64201 and the Engine socket's) reads
/// the store while the daemon holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_the_services_group_runs_status_while_the_daemon_runs() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    const SERVICE: u32 = 64201;
    const MEMBER: u32 = 64202;
    let site = Site::new("group-status").await;
    let (name, _v1) = site.container("team/grp", "grp").await;
    let base = tempfile::Builder::new()
        .prefix("ecr-deployd-group")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state_dir = base.path().join("state");
    std::fs::create_dir(&state_dir).unwrap();
    std::os::unix::fs::chown(&state_dir, Some(SERVICE), Some(SERVICE)).unwrap();
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    let db = state_dir.join("state.db");
    let mut settings = site.settings(0);
    settings.state.path = db.clone();
    let config = config_of(&settings);
    let agent = AgentProcess::start(&config, &["run"]);
    eventually(Duration::from_secs(30), "the daemon is running", || {
        let up = agent.log_text().contains("ecr-deployd running");
        async move { up }
    })
    .await;
    for (file, mode) in [
        ("state.db", 0o640),
        ("state.db-shm", 0o660),
        ("state.db.lock", 0o660),
    ] {
        let meta = std::fs::metadata(state_dir.join(file)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (SERVICE, SERVICE), "{file}");
        assert_eq!(meta.mode() & 0o777, mode, "{file}");
    }
    let config_file = base.path().join("config.toml");
    std::fs::write(&config_file, &config).unwrap();
    std::fs::set_permissions(&config_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let engine_group = std::fs::metadata("/var/run/docker.sock").unwrap().gid();
    let out = std::process::Command::new("setpriv")
        .arg(format!("--reuid={MEMBER}"))
        .arg(format!("--regid={MEMBER}"))
        .arg(format!("--groups={SERVICE},{engine_group}"))
        .arg(env!("CARGO_BIN_EXE_ecr-deployd"))
        .args([
            "--config",
            config_file.to_str().unwrap(),
            "status",
            "--json",
        ])
        .env("HOME", base.path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .envs(control_socket_env(&config))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let row = json(&stdout)["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in status: {stdout}"));
    assert_eq!(row["state"], "up_to_date", "{row}");
    // Still the daemon's: a member's read took nothing from it.
    assert!(agent.log_text().contains("ecr-deployd running"));
    let meta = std::fs::metadata(&db).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (SERVICE, SERVICE));
}
