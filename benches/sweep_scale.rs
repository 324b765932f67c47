//! Sweep at scale: 200 managed containers across 50 repositories with nothing to deploy, on
//! the real stack. Reports the wall time of one sweep and the ECR calls it made.
//! Run: `cargo bench --bench sweep_scale` (creating the containers takes a few minutes).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::docker::*;
use common::*;
use ecr_deployd::adapters::docker::DockerRuntime;
use ecr_deployd::adapters::ecr::{EcrCredentials, EcrRegistry};
use ecr_deployd::app::deploy_config;
use ecr_deployd::config::Settings;
use ecr_deployd::deploy::executor::Executor;
use ecr_deployd::reconcile::sweep::{Action, sweep_once};
use ecr_deployd::store::Store;

const REPOSITORIES: usize = 50;
const CONTAINERS: usize = 200;
const TAGS: [&str; 1] = ["prod"];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let ecr = aws_sdk_ecr::Client::new(&sdk);
    let registry = TestRegistry::start();
    let scope = Scope::new("sweepscale");
    let state = tempfile::tempdir().unwrap();

    let setup = Instant::now();
    let digest = registry.publish("scale/base", "v1", Kind::Serve, "v1", true);
    let base = format!("{}/scale/base:v1", registry.host);
    let mut references = Vec::new();
    for r in 0..REPOSITORIES {
        let repo = format!("scale/app{r:02}");
        let pushed = registry.push_as(&base, &repo, "v1");
        assert_eq!(pushed, digest);
        for tag in TAGS {
            put_digest(&ecr, &repo, tag, &digest).await;
            let reference = format!("{}/{repo}:{tag}", registry.host);
            docker(&["tag", &base, &reference]);
            references.push(reference);
        }
    }
    for i in 0..CONTAINERS {
        let reference = &references[i % references.len()];
        scope.run(
            &scope.name(&format!("c{i:03}")),
            &["--label", "ecr-deployd.enable=true", reference],
        );
    }
    eprintln!("setup: {:.0} s", setup.elapsed().as_secs_f64());

    let mut settings = Settings::default();
    settings.registry.mirror = registry.host.clone();
    settings.state.path = state.path().join("state.db");
    let executor = Executor::new(
        Arc::new(DockerRuntime::new(None)),
        Arc::new(EcrCredentials::new(&sdk)),
        Arc::new(Store::open(&settings.state.path).unwrap()),
        deploy_config(&settings),
    );
    let ecr_registry = EcrRegistry::new(&sdk);
    let mut walls = Vec::new();
    for _ in 0..3 {
        let before = ecr_registry.calls();
        let started = Instant::now();
        let rows = sweep_once(&ecr_registry, &executor, false).await.unwrap();
        walls.push((
            started.elapsed().as_secs_f64(),
            ecr_registry.calls() - before,
        ));
        assert_eq!(rows.len(), CONTAINERS);
        assert!(
            rows.iter().all(|r| r.action == Action::UpToDate),
            "{:?}",
            rows.iter().find(|r| r.action != Action::UpToDate)
        );
    }
    println!(
        "sweep of {CONTAINERS} managed containers, {REPOSITORIES} repositories, {} tags, nothing to deploy",
        references.len()
    );
    println!("{:<6} {:>8} {:>10}", "run", "wall s", "ECR calls");
    for (i, (wall, calls)) in walls.iter().enumerate() {
        println!("{:<6} {wall:>8.2} {calls:>10}", i + 1);
    }
}
