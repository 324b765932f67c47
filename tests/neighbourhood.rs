//! A container's neighbourhood on the real stack (SPEC §12): a sidecar in the parent's
//! network namespace swapped with it (and rolled back with it, and recovered with it after a
//! kill -9), a sidecar that did not opt in refusing the parent's deploy, and the `depends-on`
//! restart order seen in the Engine's own events. The agent runs as its binary; moto, the
//! registry and the Docker Engine are real.

mod common;

use std::time::Duration;

use common::docker::*;
use common::site::*;
use common::*;
use ecr_deployd::store::{Deployment, Outcome, Step};

fn inspect(name: &str, format: &str) -> String {
    docker(&["inspect", "--format", format, name])
}

/// A sidecar in `parent`'s network namespace, running the parent's image by id (so it
/// follows no tag) with a loop of its own; opted in or not.
fn sidecar(site: &Site, parent: &str, short: &str, opted_in: bool) -> String {
    let name = site.scope.name(short);
    let image = inspect(parent, "{{.Image}}");
    let network = format!("container:{parent}");
    let mut args = vec!["--network", &network];
    if opted_in {
        args.extend(["--label", "ecr-deployd.enable=true"]);
    }
    args.extend([&image, "/bin/busybox", "sleep", "100000"]);
    site.scope.run(&name, &args);
    name
}

/// What the sidecar gets from `localhost:8080`, i.e. from the parent it shares a network with.
fn seen_from(sidecar: &str) -> String {
    docker(&[
        "exec",
        sidecar,
        "/bin/busybox",
        "wget",
        "-q",
        "-O-",
        "http://127.0.0.1:8080/",
    ])
}

/// Exactly one container of each name, and none parked under a temporary name.
fn one_each(names: &[&str]) {
    for n in names {
        let all = containers_named(n);
        assert_eq!(all.len(), 1, "{n}: {all:?}");
        assert!(all[0].1, "{n} runs: {all:?}");
        let temp = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("name={n}.ecr-deployd-new"),
        ]);
        assert!(temp.is_empty(), "{n}: a successor was left behind");
    }
}

fn push_event(site: &Site, repo: &str, digest: &str) -> impl std::future::Future<Output = ()> {
    let body = push_body(repo, "prod", digest);
    let (sqs, url) = (site.sqs.clone(), site.url.clone());
    async move { send_all(&sqs, &url, &[body]).await }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opted_in_sidecar_is_swapped_with_its_parent_and_rolled_back_with_it() {
    let site = Site::new("hood-group").await;
    let (app, _v1) = site.container("team/app", "app").await;
    let vpn = sidecar(&site, &app, "vpn", true);
    // A lone container beside it, for the time a group swap takes against a lone one.
    let (lone, _) = site.container("team/lone", "lone").await;
    assert_eq!(seen_from(&vpn), "v1");
    let agent = AgentProcess::start(&site.config(0), &["run"]);

    // A good push: both replaced, the sidecar in the new parent's namespace.
    let v2 = site.silent_push("team/app", Kind::Serve, "v2").await;
    let lone_v2 = site.silent_push("team/lone", Kind::Serve, "v2").await;
    push_event(&site, "team/app", &v2).await;
    push_event(&site, "team/lone", &lone_v2).await;
    let group = site.outcome(&app, &v2).await;
    assert_eq!(group.outcome, Some(Outcome::Succeeded), "{group:?}");
    one_each(&[&app, &vpn]);
    let new_parent = inspect(&app, "{{.Id}}");
    assert_eq!(
        inspect(&vpn, "{{.HostConfig.NetworkMode}}"),
        format!("container:{new_parent}")
    );
    assert_eq!(seen_from(&vpn), "v2");
    assert_eq!(running_digest(&app), v2);
    let single = site.outcome(&lone, &lone_v2).await;
    let took = |d: &Deployment| d.ended_at_ms.unwrap() - d.started_at_ms;
    eprintln!(
        "group swap (app + sidecar) took {} ms (stop {} ms, swap {} ms, gates {} ms); lone swap {} ms (stop {} ms, swap {} ms, gate {} ms)",
        took(&group),
        group.phases.stop_ms,
        group.phases.swap_ms,
        group.phases.health_ms,
        took(&single),
        single.phases.stop_ms,
        single.phases.swap_ms,
        single.phases.health_ms
    );

    // A push whose image exits at once: the whole group goes back.
    let sidecar_before = inspect(&vpn, "{{.Id}}");
    let bad = site.silent_push("team/app", Kind::ExitAtOnce, "v3").await;
    push_event(&site, "team/app", &bad).await;
    let rolled = site.outcome(&app, &bad).await;
    assert_eq!(rolled.outcome, Some(Outcome::RolledBack), "{rolled:?}");
    one_each(&[&app, &vpn]);
    assert_eq!(
        inspect(&app, "{{.Id}}"),
        new_parent,
        "the old parent is back"
    );
    assert_eq!(
        inspect(&vpn, "{{.Id}}"),
        sidecar_before,
        "the old sidecar is back"
    );
    assert_eq!(seen_from(&vpn), "v2");
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_group_swap_recovers_the_whole_group() {
    let site = Site::new("hood-kill").await;
    let (app, v1) = site.container("team/app", "app").await;
    let vpn = sidecar(&site, &app, "vpn", true);
    let (old_app, old_vpn) = (inspect(&app, "{{.Id}}"), inspect(&vpn, "{{.Id}}"));
    // The new parent never becomes healthy: the swap waits in its health gate.
    let mut settings = site.settings(0);
    settings.deploy.health_timeout_seconds = 600;
    let config = config_of(&settings);
    let mut agent = AgentProcess::start(&config, &["run"]);
    // Never healthy: the swap waits in the parent's health gate, sidecar stopped, parent new.
    let v2 = site.silent_push("team/app", Kind::NeverHealthy, "v2").await;
    push_event(&site, "team/app", &v2).await;
    site.journal_at(Step::HealthGate).await;
    agent.signal("KILL");
    agent.wait_exit(Duration::from_secs(10));
    // ECR names v1 again, so that the restarted agent's start-up sweep does not try v2 anew
    // while the test looks at what recovery left.
    put_digest(&site.ecr, "team/app", "prod", &v1).await;
    let mut restarted = AgentProcess::start(&config, &["run"]);
    restarted
        .until_logged("interrupted deployments recovered")
        .await;
    one_each(&[&app, &vpn]);
    assert_eq!(inspect(&app, "{{.Id}}"), old_app);
    assert_eq!(inspect(&vpn, "{{.Id}}"), old_vpn);
    assert_eq!(seen_from(&vpn), "v1");
    let row = site
        .history(&app)
        .into_iter()
        .find(|d| d.to_digest == v2)
        .unwrap();
    assert_eq!(row.outcome, Some(Outcome::RolledBack), "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_that_did_not_opt_in_holds_its_parent_back_and_status_says_why() {
    let site = Site::new("hood-refuse").await;
    let (app, v1) = site.container("team/app", "app").await;
    let outsider = sidecar(&site, &app, "outsider", false);
    let before = (inspect(&app, "{{.Id}}"), inspect(&outsider, "{{.Id}}"));
    let v2 = site.silent_push("team/app", Kind::Serve, "v2").await;
    let (code, out, err) = site.cli(&["sweep"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("refused"), "{out}");
    let status = status_of(&site.config(0), &app);
    assert_eq!(status["state"], "refused", "{status}");
    let reason = status["detail"].as_str().unwrap_or_default();
    assert!(
        reason.contains(outsider.as_str()) && reason.contains("ecr-deployd.enable=true"),
        "{status}"
    );
    assert_eq!(
        (inspect(&app, "{{.Id}}"), inspect(&outsider, "{{.Id}}")),
        before
    );
    assert_eq!(running_digest(&app), v1);
    assert_ne!(v1, v2);
    let (_, doctor, _) = site.cli(&["doctor"]);
    assert!(doctor.contains(&outsider), "{doctor}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_that_depend_on_a_swapped_one_restart_after_it_in_order() {
    let site = Site::new("hood-order").await;
    let (db, _) = site.container("team/db", "db").await;
    let image = inspect(&db, "{{.Image}}");
    let (api, web) = (site.scope.name("api"), site.scope.name("web"));
    let after_db = format!("ecr-deployd.depends-on={db}");
    let after_api = format!("ecr-deployd.depends-on={api}");
    for (name, label) in [(&web, &after_api), (&api, &after_db)] {
        site.scope.run(
            name,
            &[
                "--label",
                "ecr-deployd.enable=true",
                "--label",
                label,
                &image,
                "/bin/busybox",
                "sleep",
                "100000",
            ],
        );
    }
    let since = docker(&["system", "info", "--format", "{{.SystemTime}}"]);
    let v2 = site.silent_push("team/db", Kind::Serve, "v2").await;
    let (code, out, err) = site.cli(&["sweep"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(running_digest(&db), v2);
    let until = docker(&["system", "info", "--format", "{{.SystemTime}}"]);
    let started = docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=start",
        "--filter",
        &format!("label=ecr-deployd.test={}", site.scope.id),
        "--format",
        "{{.Actor.Attributes.name}}",
    ]);
    let order: Vec<&str> = started.lines().collect();
    assert_eq!(
        order,
        vec![db.as_str(), api.as_str(), web.as_str()],
        "{started}"
    );
}
