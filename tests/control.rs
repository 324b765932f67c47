//! Update control as an operator uses it (SPEC §10), on the real stack: moto, a local
//! registry, the Docker Engine, the agent binary as daemon and as command.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::docker::*;
use common::site::*;
use common::*;

/// The daemon's control socket in a test site (see `control_socket_env`).
fn socket_of(site: &Site) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}.sock", site.state.display()))
}

/// Waits until the daemon answers on its control socket (it does once recovery is done).
async fn daemon_up(site: &Site, agent: &AgentProcess) {
    let socket = socket_of(site);
    eventually(
        Duration::from_secs(30),
        "the daemon serves its control socket",
        || {
            let up = std::os::unix::net::UnixStream::connect(&socket).is_ok()
                && agent.log_text().contains("ecr-deployd running");
            async move { up }
        },
    )
    .await;
}

/// The next UTC minute at least `lead` ahead, as (cron minute hour, the instant).
fn next_minute(lead: Duration) -> (String, std::time::SystemTime) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at = (now + lead.as_secs()).div_ceil(60) * 60;
    let schedule = format!("{} {} * * *", (at / 60) % 60, (at / 3600) % 24);
    (schedule, std::time::UNIX_EPOCH + Duration::from_secs(at))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_its_window_a_push_is_pending_and_at_the_opening_it_is_deployed_at_once() {
    let site = Site::new("ctl-window").await;
    let (name, v1) = site
        .container_with(
            "team/win",
            "win",
            &["ecr-deployd.policy=window", "ecr-deployd.window=soon"],
        )
        .await;
    let (schedule, opens) = next_minute(Duration::from_secs(15));
    // No periodic sweep: only the window's opening may deploy it.
    let config = format!(
        "{}[policy]\ntimezone = \"UTC\"\n[policy.windows.soon]\nschedule = \"{schedule}\"\nduration_minutes = 1\n",
        site.config(0)
    );
    let agent = AgentProcess::start(&config, &["run"]);
    daemon_up(&site, &agent).await;
    let v2 = site.silent_push("team/win", Kind::Serve, "v2").await;
    send_all(&site.sqs, &site.url, &[push_body("team/win", "prod", &v2)]).await;
    // The event is answered by recording the pending update: its message is deleted.
    eventually(
        Duration::from_secs(20),
        "the announcing message is deleted",
        || async { queue_counts(&site.sqs, &site.url).await == (0, 0) },
    )
    .await;
    assert_eq!(running_digest(&name), v1, "not deployed outside its window");
    let s = status_of(&config, &name);
    assert_eq!(s["state"], "pending", "{s}");
    assert_eq!(s["desired_digest"], v2.as_str(), "{s}");
    let at = humantime::format_rfc3339_seconds(opens)
        .to_string()
        .replace('Z', "+00:00");
    let detail = s["detail"].as_str().unwrap();
    assert_eq!(detail, format!("window soon opens at {at}"), "{s}");
    assert_eq!(s["pending_until"], at.as_str(), "{s}");
    let (code, out, _) = run_cli(&config, &["sweep", "--dry-run"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("pending: window soon opens at {at}")),
        "{out}"
    );

    // At the opening: deployed within moments, not at a periodic sweep (there is none).
    while std::time::SystemTime::now() < opens {
        assert_eq!(running_digest(&name), v1, "deployed before the opening");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while running_digest_now(&name).as_deref() != Some(v2.as_str()) {
        assert!(
            Instant::now() < deadline,
            "not deployed after the opening:\n{}",
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = opens.elapsed().unwrap();
    println!(
        "window opening -> new container running: {} ms",
        after.as_millis()
    );
    eventually(
        Duration::from_secs(30),
        "the window's deploy is recorded",
        || {
            let (_, out, _) = site.cli(&["history", &name, "--json"]);
            let d = json(&out)["deployments"][0].clone();
            async move { d["trigger"] == "window" && d["outcome"] == "succeeded" }
        },
    )
    .await;
    assert_eq!(containers_named(&name).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_waits_for_approve_a_stale_digest_is_refused_and_monitor_tells_once() {
    let site = Site::new("ctl-manual").await;
    let hook = webhook::Hook::start(webhook::HookMode::Ok).await;
    let (man, v1) = site
        .container_with("team/man", "man", &["ecr-deployd.policy=manual"])
        .await;
    let (mon, m1) = site
        .container_with("team/mon", "mon", &["ecr-deployd.policy=monitor"])
        .await;
    let config = format!(
        "{}[notify]\nwebhooks = [\"{}\"]\n",
        site.config(0),
        hook.url
    );
    let agent = AgentProcess::start(&config, &["run"]);
    daemon_up(&site, &agent).await;
    let v2 = site.silent_push("team/man", Kind::Serve, "v2").await;
    let m2 = site
        .registry
        .publish("team/mon", "v2", Kind::Serve, "v2", false);
    put_digest(&site.ecr, "team/mon", "prod", &m2).await;
    // Two events for one monitor digest, and one for the manual container.
    let bodies = [
        push_body("team/mon", "prod", &m2),
        push_body("team/man", "prod", &v2),
    ];
    send_all(&site.sqs, &site.url, &bodies).await;
    eventually(Duration::from_secs(20), "events answered", || async {
        queue_counts(&site.sqs, &site.url).await == (0, 0)
    })
    .await;
    send_all(&site.sqs, &site.url, &[push_body("team/mon", "prod", &m2)]).await;
    eventually(
        Duration::from_secs(20),
        "second monitor event answered",
        || async { queue_counts(&site.sqs, &site.url).await == (0, 0) },
    )
    .await;
    assert_eq!(running_digest(&man), v1);
    assert_eq!(running_digest(&mon), m1);
    assert_eq!(status_of(&config, &man)["state"], "pending");
    assert_eq!(status_of(&config, &mon)["state"], "monitor");

    // Approving a digest the tag no longer names does nothing.
    let (code, out, err) = site.cli(&["approve", &man, "--digest", &v1]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("the tag moved") && err.contains(&v2), "{err}");
    assert_eq!(running_digest(&man), v1);
    // Approving what ECR names now deploys it, through the daemon.
    let (code, out, err) = site.cli(&["approve", &man]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("deployed"), "{out}");
    assert_eq!(running_digest(&man), v2);
    assert!(
        agent
            .log_text()
            .contains("operator command through the control socket")
    );
    let (_, out, _) = site.cli(&["history", &man, "--limit", "1", "--json"]);
    assert_eq!(json(&out)["deployments"][0]["trigger"], "approve", "{out}");
    // Monitor: never deployed, not even on approve.
    let (code, _, err) = site.cli(&["approve", &mon]);
    assert_eq!(code, 1);
    assert!(err.contains("policy monitor"), "{err}");

    let held: Vec<_> = hook
        .bodies()
        .into_iter()
        .filter(|b| b["ecr_deployd"]["kind"] == "held")
        .collect();
    let for_mon: Vec<_> = held
        .iter()
        .filter(|b| b["ecr_deployd"]["data"]["container"] == mon.as_str())
        .collect();
    assert_eq!(
        for_mon.len(),
        1,
        "one notice for two events of one digest: {held:?}"
    );
    assert_eq!(for_mon[0]["ecr_deployd"]["data"]["state"], "monitor");
    assert!(
        for_mon[0]["text"]
            .as_str()
            .unwrap()
            .contains("update available")
    );
    assert!(
        held.iter()
            .any(|b| b["ecr_deployd"]["data"]["state"] == "pending"
                && b["ecr_deployd"]["data"]["container"] == man.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_survives_a_daemon_restart_and_resume_deploys_at_once() {
    let site = Site::new("ctl-pause").await;
    let (name, v1) = site.container("team/pau", "pau").await;
    // No daemon: the command runs in its own process under the state-store lease.
    let (code, out, err) = site.cli(&["pause", &name, "--reason", "db migration"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = site.cli(&["pause", "no-such-container"]);
    assert_eq!(code, 1);
    assert!(err.contains("no-such-container"), "{err}");
    let v2 = site.silent_push("team/pau", Kind::Serve, "v2").await;
    let listen = format!("127.0.0.1:{}", free_port());
    let config = site.config_with_http(0, &listen);
    for round in 0..2 {
        let mut agent = AgentProcess::start(&config, &["run"]);
        daemon_up(&site, &agent).await;
        eventually(Duration::from_secs(20), "start-up sweep done", || {
            let ready = http(&listen, "GET", "/readyz").0 == 200;
            async move { ready }
        })
        .await;
        assert_eq!(running_digest(&name), v1, "round {round}: paused");
        let s = status_of(&config, &name);
        assert_eq!(
            (s["state"].as_str(), s["detail"].as_str()),
            (Some("paused"), Some("db migration")),
            "{s}"
        );
        let (_, metrics) = http(&listen, "GET", "/metrics");
        assert!(
            metrics.contains("ecr_deployd_containers_paused 1"),
            "{metrics}"
        );
        if round == 0 {
            agent.signal("TERM");
            assert_eq!(agent.wait_exit(Duration::from_secs(60)), Some(0));
            continue;
        }
        let (code, out, err) = site.cli(&["resume", &name]);
        assert_eq!(code, 0, "{out}{err}");
        eventually(
            Duration::from_secs(30),
            "resume deploys at the next sweep, at once",
            || {
                let now = running_digest_now(&name);
                let v2 = v2.clone();
                async move { now.as_deref() == Some(v2.as_str()) }
            },
        )
        .await;
        eventually(
            Duration::from_secs(20),
            "the sweep counts no paused container",
            || {
                let (_, metrics) = http(&listen, "GET", "/metrics");
                async move { metrics.contains("ecr_deployd_containers_paused 0") }
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_and_sweep_from_the_cli_during_a_slow_health_gate_leave_one_container_running() {
    let site = Site::new("ctl-race").await;
    let (name, v1) = site.container("team/race", "race").await;
    // Eight seconds of health gate (no HEALTHCHECK: it must keep running that long).
    let agent = AgentProcess::start_with_env(
        &site.config(0),
        &["run"],
        &[("ECR_DEPLOYD_DEPLOY_MIN_UPTIME_SECONDS", "8")],
    );
    daemon_up(&site, &agent).await;
    let v2 = site.silent_push("team/race", Kind::Serve, "v2").await;
    send_all(&site.sqs, &site.url, &[push_body("team/race", "prod", &v2)]).await;
    let parked = format!("{name}.ecr-deployd-old");
    eventually(
        Duration::from_secs(30),
        "the swap is in its health gate",
        || {
            let swapping = !containers_named(&parked).is_empty();
            async move { swapping }
        },
    )
    .await;
    let config = site.config(0);
    let env = control_socket_env(&config);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (rollback, sweep) = std::thread::scope(|s| {
        let r = s.spawn(|| run_cli(&config, &["rollback", &name], &env));
        let w = s.spawn(|| run_cli(&config, &["sweep"], &env));
        (r.join().unwrap(), w.join().unwrap())
    });
    assert_eq!(rollback.0, 0, "rollback: {rollback:?}");
    assert!(rollback.1.contains("rolled back"), "{rollback:?}");
    assert!(sweep.0 == 0 || sweep.0 == 1, "sweep ran: {sweep:?}");
    let named = containers_named(&name);
    assert_eq!(
        named.len(),
        1,
        "exactly one container of that name: {named:?}"
    );
    assert!(named[0].1, "running");
    assert_eq!(running_digest(&name), v1, "rolled back to v1");
    assert!(containers_named(&parked).is_empty());
    let (_, out, _) = site.cli(&["history", &name, "--json"]);
    let d = json(&out)["deployments"].as_array().unwrap().clone();
    assert_eq!(d.len(), 2, "the event's deploy, then the rollback: {out}");
    assert_eq!(
        (d[1]["trigger"].as_str(), d[1]["outcome"].as_str()),
        (Some("event"), Some("succeeded")),
        "{out}"
    );
    assert_eq!(
        (d[0]["trigger"].as_str(), d[0]["to_digest"].as_str()),
        (Some("manual"), Some(v1.as_str())),
        "{out}"
    );
    // v2 is blocked now: the sweep shows it, and does not deploy it again.
    let (_, out, _) = site.cli(&["sweep", "--dry-run"]);
    assert!(out.contains("blocked"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_beside_a_daemon_whose_socket_is_gone_fails_clearly_and_changes_nothing() {
    let site = Site::new("ctl-gone").await;
    let (name, _v1) = site.container("team/gone", "gone").await;
    let agent = AgentProcess::start(&site.config(0), &["run"]);
    daemon_up(&site, &agent).await;
    std::fs::remove_file(socket_of(&site)).unwrap();
    let (code, out, err) = site.cli(&["pause", &name]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("is in use by ecr-deployd pid")
            && err.contains("cannot be reached")
            && err.contains("nothing done"),
        "{err}"
    );
    let (code, _, err) = site.cli(&["sweep"]);
    assert_eq!(code, 2, "{err}");
    // Not paused: the command did nothing.
    assert_eq!(status_of(&site.config(0), &name)["state"], "up_to_date");
    let (code, out, _) = site.cli(&["doctor"]);
    assert_eq!(code, 1);
    assert!(
        out.lines().any(|l| l.starts_with("FAIL control socket")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_each_update_control_state_with_its_reason() {
    let site = Site::new("ctl-states").await;
    // A nightly window that is not open now, whenever the test runs: it opens twelve hours
    // from this hour (London is UTC or UTC+1), for an hour.
    let utc_hour = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        % 24;
    let opens = (utc_hour + 12) % 24;
    let config = format!(
        "{}[policy]\ntimezone = \"Europe/London\"\n[policy.windows.nightly]\nschedule = \"0 {opens} * * *\"\nduration_minutes = 60\n",
        site.config(0)
    );
    let rows = [
        ("team/s-ok", "ok", vec![], false),
        ("team/s-auto", "auto", vec![], true),
        ("team/s-man", "man", vec!["ecr-deployd.policy=manual"], true),
        (
            "team/s-win",
            "win",
            vec!["ecr-deployd.policy=window", "ecr-deployd.window=nightly"],
            true,
        ),
        (
            "team/s-mon",
            "mon",
            vec!["ecr-deployd.policy=monitor"],
            true,
        ),
        ("team/s-pau", "pau", vec![], true),
        ("team/s-bad", "bad", vec!["ecr-deployd.policy=weekly"], true),
        ("team/s-idle", "idle", vec![], false),
    ];
    let mut names = Vec::new();
    for (repo, short, labels, push) in &rows {
        let (name, _) = site.container_with(repo, short, labels).await;
        if *push {
            site.silent_push(repo, Kind::Serve, "v2").await;
        }
        names.push(name);
    }
    let (code, out, err) = run_cli(
        &config,
        &["pause", &names[5], "--reason", "db migration"],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run_cli(&config, &["pause", &names[7]], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, table, err) = run_cli(&config, &["status"], &[]);
    assert_eq!(code, 0, "{err}");
    println!("{table}");
    let expect = [
        ("up_to_date", None),
        ("behind", None),
        ("pending", Some("manual: waits for `ecr-deployd approve`")),
        ("pending", Some("window nightly opens at ")),
        ("monitor", Some("update available")),
        ("paused", Some("db migration")),
        ("refused", Some("label ecr-deployd.policy")),
        // Paused while nothing waits: still shown paused.
        ("paused", Some("up to date")),
    ];
    for (name, (state, detail)) in names.iter().zip(expect) {
        let s = status_of(&config, name);
        assert_eq!(s["state"], state, "{name}: {s}");
        if let Some(d) = detail {
            assert!(
                s["detail"].as_str().unwrap_or("").contains(d),
                "{name}: {s}"
            );
        }
        let line = table
            .lines()
            .find(|l| l.starts_with(name.as_str()))
            .unwrap();
        assert!(line.contains(state), "{line}");
    }
    // The window's opening in London time, with its offset.
    let win = status_of(&config, &names[3]);
    let detail = win["detail"].as_str().unwrap();
    assert!(
        detail.ends_with(":00+00:00") || detail.ends_with(":00+01:00"),
        "{detail}"
    );
    assert!(detail.contains(&format!("T{opens:02}:00:00")), "{detail}");
}
