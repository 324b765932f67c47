//! Docker Compose projects on the real stack (SPEC §12), with Debian's `docker-compose` 1.29
//! (Compose v1) as the client: a container the agent re-created stays the project's —
//! `ps` lists it, `up -d` leaves it on the new image (v1 re-creates it once more, because
//! it hashes the image id into its config hash, with the same new image), `down` removes
//! it. Two services of one project that follow one tag are deployed one at a time.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::docker::*;
use common::site::*;
use common::*;
use ecr_deployd::store::Outcome;

fn compose(dir: &Path, project: &str, args: &[&str]) -> String {
    let out = Command::new("docker-compose")
        .current_dir(dir)
        .args(["-p", project])
        .args(args)
        .output()
        .expect("docker-compose (Debian's package) is needed: run ./scripts/setup.sh");
    assert!(
        out.status.success(),
        "docker-compose {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compose_container_the_agent_recreated_stays_the_projects() {
    let site = Site::new("compose").await;
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
    compose(dir.path(), &project, &["up", "-d"]);
    let (web, api) = (format!("{project}_web_1"), format!("{project}_api_1"));
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
    let listed = compose(dir.path(), &project, &["ps", "-q"]);
    assert!(listed.lines().any(|l| l == new_web), "{listed}");
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

    // Compose v1 re-creates it once more on `up -d` — with the same new image.
    compose(dir.path(), &project, &["up", "-d"]);
    let after_up = docker(&["inspect", "--format", "{{.Id}}", &web]);
    assert_ne!(
        after_up, new_web,
        "Compose v1 re-creates it (its config hash holds the image id)"
    );
    assert_eq!(running_digest(&web), v2, "never an older image");
    assert_eq!(running_digest(&api), v2);
    assert_eq!(
        docker(&["exec", &web, "/bin/sh", "-c", "cat /data/file"]),
        "kept"
    );

    // `down` removes the project's containers and network.
    compose(dir.path(), &project, &["down"]);
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    assert!(left.is_empty(), "{left}");
}
