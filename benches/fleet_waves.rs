//! Fleet waves (SPEC §14): push → the last of three waves running, on the fleet of
//! tests/common/fleet.rs (moto with the results bus and the host stacks, one agent process and
//! one container per host, the Engine under test). Run: `cargo bench --bench fleet_waves`.
//!
//! Four hosts: two canaries (wave 1), one host of wave 2 (`promote_after = 2`: both canaries'
//! results), one of wave 3; bake 0. `PUSHES` good pushes one after another, each timed from the
//! push event to wave 3's container running it. Also reported: what following the results
//! costs wave 2 in AWS requests (each result is one message on the queue it already long-polls:
//! a receive that returns early and its delete; its own result one PutEvents; nothing idle).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::docker::*;
use common::fleet::*;
use common::*;

const PUSHES: usize = 5;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut fleet = Fleet::new("bench-fleet").await;
    let mut hosts = [
        fleet.host("canary-a", 1, |_| ()),
        fleet.host("canary-b", 1, |_| ()),
        fleet.host("wave2-a", 2, |f| f.promote_after = 2),
        fleet.host("wave3-a", 3, |_| ()),
    ];
    for h in &mut hosts {
        h.start();
    }
    let mut samples = Vec::new();
    for i in 0..PUSHES {
        let pushed = Instant::now();
        let digest = fleet.push(&format!("v{}", i + 2), Kind::Serve).await;
        until_runs(&hosts[3], &digest, Duration::from_secs(120)).await;
        samples.push(pushed.elapsed().as_secs_f64() * 1000.0);
        assert!(hosts.iter().all(|h| h.runs(&digest)), "every wave runs it");
    }
    let results_seen = hosts[2]
        .agent
        .as_ref()
        .unwrap()
        .log_text()
        .matches("fleet result")
        .count();
    let (median, p95) = median_p95(samples.clone());
    let report = serde_json::json!({
        "waves": 3,
        "hosts": hosts.len(),
        "bake_minutes": 0,
        "pushes": PUSHES,
        "push_to_last_wave_running_ms": median.round(),
        "push_to_last_wave_running_p95_ms": p95.round(),
        "samples_ms": samples.iter().map(|v| v.round()).collect::<Vec<_>>(),
        "wave2_result_messages": results_seen,
        "extra_requests_per_result_message": 2,
        "extra_requests_per_own_deployment": 1,
        "extra_requests_idle": 0,
    });
    println!("fleet_waves {report}");
    bench_report("fleet_waves", &report);
    for h in &mut hosts {
        h.stop();
    }
}
