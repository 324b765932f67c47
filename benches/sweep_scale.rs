//! Sweep at scale: 200 managed containers across 50 repositories on the real stack, with
//! nothing to deploy, then with 10 to deploy (10 containers follow a `canary` tag that moves).
//! Reports the wall time of each sweep and the ECR calls it made.
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
use ecr_deployd::deploy::Executor;
use ecr_deployd::model::sweep::Action;
use ecr_deployd::reconcile::sweep::sweep_once;
use ecr_deployd::store::Store;

const REPOSITORIES: usize = 50;
const CONTAINERS: usize = 200;
const TAGS: [&str; 1] = ["prod"];
/// Containers following `scale/appNN:canary` (one per repository), the ones that get deployed.
const CANARIES: usize = 10;

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
    // The canaries run their own build (a digest of their own: the emulator keeps one tag per
    // digest and repository).
    let canary_digest = registry.publish("scale/canary", "v1", Kind::Serve, "canary-v1", true);
    let canary_base = format!("{}/scale/canary:v1", registry.host);
    for r in 0..CANARIES {
        let repo = format!("scale/app{r:02}");
        assert_eq!(
            registry.push_as(&canary_base, &repo, "canary"),
            canary_digest
        );
        put_digest(&ecr, &repo, "canary", &canary_digest).await;
        scope.run(
            &scope.name(&format!("canary{r:02}")),
            &[
                "--label",
                "ecr-deployd.enable=true",
                &format!("{}/{repo}:canary", registry.host),
            ],
        );
    }
    for i in 0..CONTAINERS - CANARIES {
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
    settings.deploy.min_uptime_seconds = 0;
    let executor = Executor::new(
        Arc::new(DockerRuntime::new(None).expect("default Docker socket")),
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

    // 10 to deploy: the canary tag moves in 10 repositories.
    let v2 = registry.publish("scale/canary", "v2", Kind::Serve, "canary-v2", true);
    let v2_base = format!("{}/scale/canary:v2", registry.host);
    for r in 0..CANARIES {
        let repo = format!("scale/app{r:02}");
        assert_eq!(registry.push_as(&v2_base, &repo, "canary"), v2);
        put_digest(&ecr, &repo, "canary", &v2).await;
    }
    let before = ecr_registry.calls();
    let started = Instant::now();
    let rows = sweep_once(&ecr_registry, &executor, false).await.unwrap();
    let deploy_sweep = (
        started.elapsed().as_secs_f64(),
        ecr_registry.calls() - before,
    );
    let deployed = rows
        .iter()
        .filter(|r| r.action == Action::Succeeded)
        .count();
    assert_eq!(
        deployed,
        CANARIES,
        "{:?}",
        rows.iter()
            .filter(|r| r.action != Action::UpToDate)
            .collect::<Vec<_>>()
    );

    println!(
        "sweep of {CONTAINERS} managed containers, {REPOSITORIES} repositories, {} tags",
        references.len() + CANARIES
    );
    println!("{:<28} {:>8} {:>10}", "sweep", "wall s", "ECR calls");
    for (i, (wall, calls)) in walls.iter().enumerate() {
        println!(
            "{:<28} {wall:>8.2} {calls:>10}",
            format!("nothing to deploy, run {}", i + 1)
        );
    }
    println!(
        "{:<28} {:>8.2} {:>10}",
        "10 to deploy", deploy_sweep.0, deploy_sweep.1
    );
    bench_report(
        "sweep_scale",
        &serde_json::json!({
            "containers": CONTAINERS,
            "repositories": REPOSITORIES,
            "nothing_to_deploy": walls.iter().map(|(w, c)| serde_json::json!({"wall_s": w, "ecr_calls": c})).collect::<Vec<_>>(),
            "ten_to_deploy": {"wall_s": deploy_sweep.0, "ecr_calls": deploy_sweep.1, "deployed": deployed},
        }),
    );
}
