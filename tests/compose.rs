//! Docker Compose projects on the real stack (SPEC §12), with both Compose releases as the
//! client — Debian 12's `docker-compose` 1.29 (Compose v1, Python) and sid's `docker-compose`
//! 2.x (Compose v2, a CLI plugin run as `docker compose` by Docker's CLI; `.tools/`, fetched
//! by `scripts/fetch-tools.sh`): a container the agent re-created stays the project's — `ps`
//! lists it, `up -d` leaves it on the new image (v1 re-creates it once more, because it hashes
//! the image id into its config hash, with the same new image; v2 leaves it as it is, since
//! the agent set `com.docker.compose.image` to the new image), `down` removes it and what else
//! the project owns. Two services of one project that follow one tag are deployed one at a
//! time. The Engine is the matrix's (`EDT_ENGINE`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::docker::*;
use common::matrix::agent_env;
use common::site::*;
use common::*;
use ecr_deployd::store::Outcome;

/// Which Compose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compose {
    /// Debian 12's docker-compose 1.29.
    V1,
    /// sid's docker-compose 2.x as a plugin of Docker's CLI.
    V2,
}

const PLUGIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/.tools/sid/docker-compose/usr/libexec/docker/cli-plugins/docker-compose"
);

impl Compose {
    /// The container of `service` (replica 1) in `project`.
    fn container(self, project: &str, service: &str) -> String {
        match self {
            Compose::V1 => format!("{project}_{service}_1"),
            Compose::V2 => format!("{project}-{service}-1"),
        }
    }

    fn command(self, cli_config: &Path) -> Command {
        match self {
            Compose::V1 => {
                let mut cmd = Command::new("docker-compose");
                cmd.envs(agent_env());
                cmd
            }
            Compose::V2 => {
                assert!(
                    Path::new(PLUGIN).exists(),
                    "{PLUGIN} not found: run ./scripts/setup.sh (scripts/fetch-tools.sh fetches sid's docker-compose)"
                );
                // The CLI finds its plugins in $DOCKER_CONFIG/cli-plugins.
                let plugins = cli_config.join("cli-plugins");
                if !plugins.join("docker-compose").exists() {
                    std::fs::create_dir_all(&plugins).unwrap();
                    std::os::unix::fs::symlink(PLUGIN, plugins.join("docker-compose")).unwrap();
                }
                let mut cmd = docker_command();
                cmd.env("DOCKER_CONFIG", cli_config).arg("compose");
                cmd
            }
        }
    }

    fn run(self, cli_config: &Path, dir: &Path, project: &str, args: &[&str]) -> String {
        let out = self
            .command(cli_config)
            .current_dir(dir)
            .args(["-p", project])
            .args(args)
            .output()
            .expect("docker-compose (Debian's package) is needed: run ./scripts/setup.sh");
        assert!(
            out.status.success(),
            "{self:?} compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn version(self, cli_config: &Path) -> String {
        let out = self.command(cli_config).arg("version").output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_v1_keeps_a_container_the_agent_recreated_and_recreates_it_on_the_new_image() {
    use common::matrix::{Flavour, runs_on};
    // On Docker 28's containerd store, docker-compose 1.29 cannot re-create any container:
    // image inspect there has no `ContainerConfig` (KeyError in get_container_data_volumes).
    // A v1 limit (any re-create of v1 reads it, not only after the agent); v2 is the client there.
    if !runs_on(
        &[
            Flavour::Docker20,
            Flavour::Docker28,
            Flavour::Docker26,
            Flavour::Podman5,
        ],
        "Compose v1 cannot re-create on the containerd image store (no ContainerConfig)",
    ) {
        return;
    }
    a_compose_container_the_agent_recreated_stays_the_projects(Compose::V1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_v2_keeps_a_container_the_agent_recreated_as_it_is() {
    a_compose_container_the_agent_recreated_stays_the_projects(Compose::V2).await;
}

/// `c` owns a project of two services following one tag; the agent deploys a push to both,
/// one at a time; the containers stay the project's through `ps`, `up -d` and `down`.
async fn a_compose_container_the_agent_recreated_stays_the_projects(c: Compose) {
    let site = Site::new(&format!("compose-{c:?}").to_lowercase()).await;
    let cli_config = tempfile::tempdir().unwrap();
    let cli_config = cli_config.path();
    eprintln!("[compose] {c:?}: {}", c.version(cli_config));
    let repo = "team/shop";
    let v1 = site.registry.publish(repo, "v1", Kind::Serve, "v1", true);
    let image = format!("{}/{repo}:prod", site.registry.host);
    docker(&["tag", &format!("{}/{repo}:v1", site.registry.host), &image]);
    put_digest(&site.ecr, repo, "prod", &v1).await;
    let project = site.scope.name("shop").replace('-', "");
    let label = format!("ecr-deployd.test: \"{}\"", site.scope.id);
    let service = |name: &str| {
        format!(
            "  {name}:\n    image: {image}\n    init: true\n    labels:\n      ecr-deployd.enable: \"true\"\n      {label}\n    ports:\n      - \"127.0.0.1::8080\"\n    volumes:\n      - data:/data\n"
        )
    };
    let file = format!(
        "version: \"2.4\"\nservices:\n{}{}volumes:\n  data:\n    labels:\n      {label}\nnetworks:\n  default:\n    labels:\n      {label}\n",
        service("web"),
        service("api")
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("docker-compose.yml"), file).unwrap();
    let compose = |args: &[&str]| c.run(cli_config, dir.path(), &project, args);
    compose(&["up", "-d"]);
    let (web, api) = (c.container(&project, "web"), c.container(&project, "api"));
    docker(&["exec", &web, "/bin/sh", "-c", "echo kept > /data/file"]);

    let agent = AgentProcess::start(&site.config(0), &["run"]);
    let v2 = site.silent_push(repo, Kind::Serve, "v2").await;
    send_all(&site.sqs, &site.url, &[push_body(repo, "prod", &v2)]).await;
    eventually(
        Duration::from_secs(90),
        "both services deployed",
        || async {
            [&web, &api].iter().all(|n| {
                site.history(n)
                    .iter()
                    .any(|d| d.to_digest == v2 && d.outcome == Some(Outcome::Succeeded))
            })
        },
    )
    .await;
    drop(agent);
    // One at a time: the second began after the first ended.
    let (a, b) = (&site.history(&web)[0], &site.history(&api)[0]);
    let (first, second) = if a.started_at_ms < b.started_at_ms {
        (a, b)
    } else {
        (b, a)
    };
    assert!(
        second.started_at_ms >= first.ended_at_ms.unwrap(),
        "{first:?} / {second:?}"
    );

    // Still the project's: every compose label, the same name, listed by `ps`.
    let new_web = docker(&["inspect", "--format", "{{.Id}}", &web]);
    let listed = compose(&["ps", "-q"]);
    assert!(listed.lines().any(|l| new_web.starts_with(l)), "{listed}");
    assert_eq!(running_digest(&web), v2);
    let labels = docker(&["inspect", "--format", "{{json .Config.Labels}}", &web]);
    for key in [
        "com.docker.compose.project",
        "com.docker.compose.service",
        "com.docker.compose.config-hash",
        "com.docker.compose.container-number",
    ] {
        assert!(labels.contains(key), "{key} kept: {labels}");
    }
    // The tag the project names is the new image's, which is the one the container runs.
    let new_image = docker(&["inspect", "--format", "{{.Image}}", &web]);
    assert_eq!(
        docker(&["image", "inspect", "--format", "{{.Id}}", &image]),
        new_image
    );
    if c == Compose::V2 {
        let named = docker(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"com.docker.compose.image\"}}",
            &web,
        ]);
        assert_eq!(
            named, new_image,
            "com.docker.compose.image names the new image"
        );
    }
    let aliases = docker(&[
        "inspect",
        "--format",
        "{{json .NetworkSettings.Networks}}",
        &web,
    ]);
    assert!(
        aliases.contains("\"web\""),
        "the service alias is kept: {aliases}"
    );

    compose(&["up", "-d"]);
    let after_up = docker(&["inspect", "--format", "{{.Id}}", &web]);
    match c {
        // v1 re-creates it once more — with the same new image.
        Compose::V1 => assert_ne!(
            after_up, new_web,
            "Compose v1 re-creates it (its config hash holds the image id)"
        ),
        Compose::V2 => assert_eq!(after_up, new_web, "Compose v2 finds nothing to do"),
    }
    assert_eq!(running_digest(&web), v2, "never an older image");
    assert_eq!(running_digest(&api), v2);
    assert_eq!(
        docker(&["exec", &web, "/bin/sh", "-c", "cat /data/file"]),
        "kept"
    );

    // `down -v` removes what the project owns: its containers, network and volume.
    compose(&["down", "-v"]);
    let owned = format!("label=com.docker.compose.project={project}");
    for (kind, list) in [
        ("container", ["ps", "-aq"]),
        ("network", ["network", "ls"]),
        ("volume", ["volume", "ls"]),
    ] {
        let left = docker(&[list[0], list[1], "-q", "--filter", &owned]);
        assert!(left.is_empty(), "{c:?} down left a {kind}: {left}");
    }
}
