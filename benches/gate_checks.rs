//! What the supply-chain gates add to a deploy, on the real stack (moto, the local registry
//! with basic auth): the signature check (signature manifest + payload fetched from the
//! registry, ECDSA P-256 verified) and the scan check (`DescribeImageScanFindings`), each timed
//! alone over `RUNS` fresh digests through the executor's own `check_gates`.
//! Run: `cargo bench --bench gate_checks`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cosign::Signer;
use common::docker::*;
use common::site::*;
use common::*;
use ecr_deployd::adapters::docker::DockerRuntime;
use ecr_deployd::adapters::ecr::EcrCredentials;
use ecr_deployd::adapters::supply::SupplyFacts;
use ecr_deployd::app::deploy_config;
use ecr_deployd::config::Settings;
use ecr_deployd::deploy::Executor;
use ecr_deployd::deploy::gates::verdicts::Checked;
use ecr_deployd::event::Digest;
use ecr_deployd::image::Desired;
use ecr_deployd::ports::Target;
use ecr_deployd::store::Store;
use serde_json::json;

const RUNS: usize = 10;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let site = Site::new("bench-gates").await;
    let signer = Signer::generate();
    let (signed, _) = site
        .container_with("bench/signed", "signed", &["ecr-deployd.verify=signed"])
        .await;
    let (scanned, _) = site
        .container_with(
            "bench/scanned",
            "scanned",
            &["ecr-deployd.scan-max-severity=HIGH"],
        )
        .await;
    let mut settings = Settings::default();
    settings.registry.mirror = site.registry.host.clone();
    settings.state.path = site.state.clone();
    settings.verify.cosign_public_keys = vec![signer.public_key()];
    let sdk = sdk_for(&site.endpoint).await;
    let executor = Executor::new(
        Arc::new(DockerRuntime::new(None).expect("default Docker socket")),
        Arc::new(EcrCredentials::new(&sdk)),
        Arc::new(Store::open(&settings.state.path).unwrap()),
        deploy_config(&settings),
    )
    .with_supply(Arc::new(SupplyFacts::new(&sdk)));
    let target = |name: &str| {
        let name = name.to_owned();
        let ex = &executor;
        async move {
            let c = ex
                .managed()
                .await
                .unwrap()
                .into_iter()
                .find(|c| c.name == name)
                .unwrap();
            Target::Container(c)
        }
    };
    let (sig_target, scan_target) = (target(&signed).await, target(&scanned).await);
    // The first call fetches the ECR token; a deploy has it cached by then (its resolve).
    let _ = executor.credentials();
    let mut sig_ms = Vec::new();
    let mut scan_ms = Vec::new();
    for i in 0..=RUNS {
        let d = site
            .silent_push("bench/signed", Kind::Serve, &format!("s{i}"))
            .await;
        signer.sign(&site.registry, "bench/signed", &d);
        let desired = Desired::single(Digest::parse(&d).unwrap());
        let started = Instant::now();
        let checked = executor
            .check_gates(&sig_target, &desired, Duration::ZERO)
            .await;
        let took = started.elapsed();
        assert!(matches!(checked, Ok(Checked::Go(_))), "{checked:?}");
        let d = site
            .silent_push("bench/scanned", Kind::Serve, &format!("c{i}"))
            .await;
        site.scanned("bench/scanned", &d, json!({"LOW": 1})).await;
        let desired = Desired::single(Digest::parse(&d).unwrap());
        let started = Instant::now();
        let checked = executor
            .check_gates(&scan_target, &desired, Duration::ZERO)
            .await;
        let scan_took = started.elapsed();
        assert!(matches!(checked, Ok(Checked::Go(_))), "{checked:?}");
        if i > 0 {
            // Run 0 warms the token cache and the connections, as the deploy's resolve does.
            sig_ms.push(took.as_secs_f64() * 1e3);
            scan_ms.push(scan_took.as_secs_f64() * 1e3);
        }
    }
    let (sig_median, sig_p95) = median_p95(sig_ms.clone());
    let (scan_median, scan_p95) = median_p95(scan_ms.clone());
    println!("gate checks over {RUNS} fresh digests each (ms):");
    println!(
        "  signature (manifest + payload from the registry, P-256 verify): median {sig_median:.1}, p95 {sig_p95:.1}"
    );
    println!(
        "  scan (DescribeImageScanFindings on the emulator):              median {scan_median:.1}, p95 {scan_p95:.1}"
    );
    bench_report(
        "gate_checks",
        &json!({
            "runs": RUNS,
            "signature_ms": {"median": sig_median, "p95": sig_p95},
            "scan_ms": {"median": scan_median, "p95": scan_p95},
        }),
    );
}
