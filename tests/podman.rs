//! The container-deploy scenarios on Podman (SPEC §15): the agent talks to a real
//! `podman system service` (Debian's podman) through its Docker-compatible API, as on a RHEL
//! host with `DOCKER_HOST=unix:///run/podman/podman.sock`. The whole configuration is kept and
//! nothing Podman injected is frozen into the successor; a new image that exits or never gets
//! healthy is rolled back, one whose HEALTHCHECK passes is kept although no systemd timer runs
//! Podman's checks here (the agent runs the overdue check); kill -9 in the middle of a swap is recovered; doctor names Podman
//! and has no Swarm services to fail on. moto and the registry are real too. Debian 12's
//! Podman 4.3 by default; trixie's Podman 5 with `EDT_ENGINE=podman5`.

mod common;

use std::time::Duration;

use common::docker::Kind;
use common::podman::{Podman, Release};
use common::site::*;
use common::*;
use ecr_deployd::store::{Outcome, Step};

struct OnPodman {
    // Drop order: the agent's engine goes before the registry (in `site`).
    podman: Podman,
    site: Site,
}

impl OnPodman {
    async fn new(test: &str) -> Self {
        let site = Site::new(test).await;
        let podman = Podman::start(&site.registry.host);
        Self { podman, site }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![("DOCKER_HOST", self.podman.docker_host.as_str())]
    }

    fn cli(&self, config: &str, args: &[&str]) -> (i32, String, String) {
        run_cli(config, args, &self.env())
    }

    /// v1 of `repo` in the registry and in Podman's store as `…:prod`, which ECR names.
    async fn first_version(&self, repo: &str, kind: Kind) -> (String, String) {
        let fetch = |pinned: &str, prod: &str| {
            self.podman.pull(pinned);
            self.podman.cli(&["tag", pinned, prod]);
        };
        self.site.first_version_fetched(repo, kind, fetch).await
    }

    async fn push(&self, repo: &str, kind: Kind, version: &str) -> String {
        let digest = self.site.silent_push(repo, kind, version).await;
        send_all(
            &self.site.sqs,
            &self.site.url,
            &[push_body(repo, "prod", &digest)],
        )
        .await;
        digest
    }

    /// `podman run -d --name NAME --label ecr-deployd.enable=true OPTIONS… IMAGE`.
    fn run(&self, name: &str, options: &[&str], image: &str) {
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--label",
            "ecr-deployd.enable=true",
        ];
        args.extend_from_slice(options);
        args.push(image);
        self.podman.cli(&args);
    }

    /// Exactly one container called `name` (none parked), running; its id.
    fn one_running(&self, name: &str) -> String {
        let all = self.podman.cli(&["ps", "-a", "--format", "{{.Names}}"]);
        let mine: Vec<&str> = all.lines().filter(|l| l.starts_with(name)).collect();
        assert_eq!(mine, vec![name], "exactly one, none parked: {all}");
        let seen = self.podman.inspect(name);
        assert_eq!(seen["State"]["Running"], true, "{name} runs");
        seen["Id"].as_str().unwrap().to_owned()
    }
}

fn env_of(inspect: &serde_json::Value) -> Vec<String> {
    inspect["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_podman_a_push_keeps_the_whole_configuration_and_bad_images_roll_back() {
    let p = OnPodman::new("podman-deploy").await;
    let (_v1, prod) = p.first_version("team/web", Kind::Serve).await;
    let name = p.site.scope.name("web");
    p.podman.cli(&["volume", "create", "webdata"]);
    p.run(
        &name,
        &[
            "--label",
            "team=web",
            "-e",
            "MODE=prod",
            "-p",
            "127.0.0.1::8080",
            "-v",
            "webdata:/data",
            "--stop-timeout",
            "2",
            "--log-opt",
            "max-size=1m",
        ],
        &prod,
    );
    p.podman
        .cli(&["exec", &name, "/bin/sh", "-c", "echo kept > /data/file"]);
    let old = p.podman.inspect(&name);
    assert!(
        env_of(&old).contains(&"container=podman".to_owned()),
        "Podman injects it"
    );
    let mut settings = p.site.settings(0);
    settings.deploy.health_timeout_seconds = 4;
    settings.deploy.stop_timeout_seconds = 2;
    let config = config_of(&settings);
    let agent = AgentProcess::start_with_env(&config, &["run"], &p.env());

    // A good push: replaced, everything the operator set kept, nothing Podman set frozen.
    let v2 = p.push("team/web", Kind::Serve, "v2").await;
    let done = p.site.outcome(&name, &v2).await;
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{done:?}");
    let new_id = p.one_running(&name);
    assert_ne!(new_id, old["Id"].as_str().unwrap());
    assert_eq!(p.podman.running_digest(&name).as_deref(), Some(v2.as_str()));
    let new = p.podman.inspect(&name);
    let env = env_of(&new);
    assert!(env.contains(&"MODE=prod".to_owned()), "{env:?}");
    assert_eq!(
        env.iter().filter(|e| *e == "container=podman").count(),
        1,
        "injected once, by Podman: {env:?}"
    );
    let hostname = new["Config"]["Hostname"].as_str().unwrap();
    assert_eq!(hostname, &new_id[..12], "a hostname of its own");
    assert!(
        env.contains(&format!("HOSTNAME={hostname}")),
        "not the old one: {env:?}"
    );
    assert_eq!(new["Config"]["Labels"]["team"], "web");
    // The log size limit only Podman's own inspect shows.
    assert_eq!(
        new["HostConfig"]["LogConfig"]["Size"], old["HostConfig"]["LogConfig"]["Size"],
        "{}",
        new["HostConfig"]["LogConfig"]
    );
    assert_eq!(new["HostConfig"]["LogConfig"]["Size"], "1MB");
    assert_eq!(
        p.podman
            .cli(&["exec", &name, "/bin/sh", "-c", "cat /data/file"]),
        "kept"
    );
    let port = p.podman.cli(&["port", &name, "8080"]);
    let (code, body) = http(port.trim(), "GET", "/");
    assert_eq!((code, body.trim()), (200, "v2"));

    // An image that exits at once: the previous container is back.
    let v3 = p.push("team/web", Kind::ExitAtOnce, "v3").await;
    let done = p.site.outcome(&name, &v3).await;
    assert_eq!(done.outcome, Some(Outcome::RolledBack), "{done:?}");
    assert_eq!(p.one_running(&name), new_id);

    // One that never gets healthy within the health timeout: back again.
    let v4 = p.push("team/web", Kind::NeverHealthy, "v4").await;
    let done = p.site.outcome(&name, &v4).await;
    assert_eq!(done.outcome, Some(Outcome::RolledBack), "{done:?}");
    assert_eq!(p.one_running(&name), new_id);
    assert_eq!(p.podman.running_digest(&name).as_deref(), Some(v2.as_str()));

    // One whose HEALTHCHECK passes: healthy, kept. Podman runs checks from systemd timers,
    // which this machine (like a container or a host without systemd) does not have: the
    // agent runs the overdue check through Podman's API, or this would roll back too.
    let v5 = p.push("team/web", Kind::Healthy, "v5").await;
    let done = p.site.outcome(&name, &v5).await;
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{done:?}");
    assert_eq!(p.podman.running_digest(&name).as_deref(), Some(v5.as_str()));
    let health = &p.podman.inspect(&name)["State"]["Health"];
    assert_eq!(health["Status"], "healthy", "{health}");
    let healthy_id = p.one_running(&name);

    // After an image with a HEALTHCHECK, one whose check never passes: its own check runs,
    // not the previous image's (Podman's compatible image inspect does not show an image's
    // HEALTHCHECK; read as the user's, the old check would be frozen into the successor and
    // pass). Rolled back.
    let v6 = p.push("team/web", Kind::NeverHealthy, "v6").await;
    let done = p.site.outcome(&name, &v6).await;
    assert_eq!(done.outcome, Some(Outcome::RolledBack), "{done:?}");
    assert_eq!(p.one_running(&name), healthy_id);
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_podman_kill_9_during_a_swap_is_recovered() {
    let p = OnPodman::new("podman-kill").await;
    let (v1, prod) = p.first_version("team/api", Kind::Serve).await;
    let name = p.site.scope.name("api");
    p.run(&name, &["--stop-timeout", "2"], &prod);
    let old = p.one_running(&name);
    let mut settings = p.site.settings(0);
    settings.deploy.health_timeout_seconds = 600;
    let config = config_of(&settings);
    let mut agent = AgentProcess::start_with_env(&config, &["run"], &p.env());
    p.push("team/api", Kind::NeverHealthy, "v2").await;
    p.site.journal_at(Step::HealthGate).await;
    agent.signal("KILL");
    agent.wait_exit(Duration::from_secs(10));
    put_digest(&p.site.ecr, "team/api", "prod", &v1).await;
    let mut restarted = AgentProcess::start_with_env(&config, &["run"], &p.env());
    restarted
        .until_logged("interrupted deployments recovered")
        .await;
    assert_eq!(p.one_running(&name), old);
    assert_eq!(p.podman.running_digest(&name).as_deref(), Some(v1.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_podman_doctor_names_the_engine_and_has_no_services_to_fail_on() {
    let p = OnPodman::new("podman-doctor").await;
    let (_v1, prod) = p.first_version("team/doc", Kind::Serve).await;
    let name = p.site.scope.name("doc");
    p.run(&name, &[], &prod);
    let (_, out, err) = p.cli(&p.site.config(0), &["doctor"]);
    let line = |what: &str| {
        out.lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what} line: {out}{err}"))
            .to_owned()
    };
    assert!(line("Docker reachable").starts_with("ok"), "{out}");
    let release = match p.podman.release {
        Release::System => "Podman 4.",
        Release::Podman5 => "Podman 5.",
    };
    assert!(line("Docker reachable").contains(release), "{out}");
    assert!(line("managed containers").contains(&name), "{out}");
    assert!(!out.contains("managed services"), "{out}");
    let (code, out, err) = p.cli(&p.site.config(0), &["sweep"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("up to date"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_podman_a_umask_the_compatible_api_cannot_recreate_fails_before_anything_stops() {
    let p = OnPodman::new("podman-umask").await;
    let (v1, prod) = p.first_version("team/mask", Kind::Serve).await;
    let name = p.site.scope.name("mask");
    p.run(&name, &["--umask", "0027"], &prod);
    let before = p.one_running(&name);
    p.site.silent_push("team/mask", Kind::Serve, "v2").await;
    let (code, out, err) = p.cli(&p.site.config(0), &["sweep"]);
    assert_eq!(code, 1, "{out}{err}");
    let row = &p.site.history(&name)[0];
    assert_eq!(row.outcome, Some(Outcome::Failed), "{row:?}");
    assert!(
        row.error
            .as_deref()
            .unwrap_or_default()
            .contains("umask 0027"),
        "{row:?}"
    );
    assert_eq!(p.one_running(&name), before, "untouched");
    assert_eq!(p.podman.running_digest(&name).as_deref(), Some(v1.as_str()));
}

/// Networks a test made on a Podman service; removed (before the service stops) on drop. The
/// system Podman's network configs are the system's own folder.
struct Networks<'a>(&'a Podman, Vec<String>);

impl Drop for Networks<'_> {
    fn drop(&mut self) {
        for n in &self.1 {
            let _ = self.0.cli_output(&["network", "rm", "-f", n]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_podman_user_networks_and_their_aliases_are_kept_and_no_default_network_is_added() {
    // Podman's inspect names the mode (`bridge`), not the network the container is on.
    let p = OnPodman::new("podman-nets").await;
    let (_v1, prod) = p.first_version("team/nets", Kind::Serve).await;
    let name = p.site.scope.name("nets");
    let octet = p.site.scope.octet();
    let (front, back) = (p.site.scope.name("front"), p.site.scope.name("back"));
    let nets = Networks(&p.podman, vec![front.clone(), back.clone()]);
    for (net, subnet) in [(&front, 236), (&back, 237)] {
        let subnet = format!("10.{subnet}.{octet}.0/24");
        p.podman
            .cli(&["network", "create", "--subnet", &subnet, net]);
    }
    p.run(
        &name,
        &["--network", &front, "--network-alias", "web"],
        &prod,
    );
    p.podman
        .cli(&["network", "connect", "--alias", "web-back", &back, &name]);
    let agent = AgentProcess::start_with_env(&p.site.config(0), &["run"], &p.env());

    let v2 = p.push("team/nets", Kind::Serve, "v2").await;
    let done = p.site.outcome(&name, &v2).await;
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{done:?}");
    p.one_running(&name);
    let networks = p.podman.inspect(&name)["NetworkSettings"]["Networks"].clone();
    let mut joined: Vec<&String> = networks.as_object().unwrap().keys().collect();
    joined.sort();
    let mut wanted = vec![&back, &front];
    wanted.sort();
    assert_eq!(joined, wanted, "{networks}");
    for (net, alias) in [(&front, "web"), (&back, "web-back")] {
        let aliases = networks[net.as_str()]["Aliases"].to_string();
        assert!(
            aliases.contains(&format!("\"{alias}\"")),
            "{net}: {aliases}"
        );
    }
    drop(agent);
    drop(nets);
}
