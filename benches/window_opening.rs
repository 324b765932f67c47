//! Maintenance-window opening to running, on the real stack (moto, local registry, Docker
//! Engine, the agent binary as daemon). Run: `cargo bench --bench window_opening`.
//!
//! `CONTAINERS` containers with policy `window` follow one repository each; ECR moves every
//! tag while the window is closed (each event is answered by recording "pending"); the window
//! opens at the next minute boundary at least 15 s ahead. Measured per container: the
//! opening → its new container's `State.StartedAt`. No periodic sweep runs: only the opening
//! can deploy. Shipped defaults otherwise (`max_parallel = 2`, `min_uptime_seconds = 10`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::docker::*;
use common::site::*;
use common::*;
use serde_json::json;

const CONTAINERS: usize = 6;

fn started_at(name: &str) -> SystemTime {
    let at = docker(&["inspect", "--format", "{{.State.StartedAt}}", name]);
    humantime::parse_rfc3339(&at).unwrap_or_else(|e| panic!("StartedAt {at:?}: {e}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let site = Site::new("bench-window").await;
    let mut names = Vec::new();
    for i in 0..CONTAINERS {
        let repo = format!("bench/win{i}");
        let labels = ["ecr-deployd.policy=window", "ecr-deployd.window=bench"];
        names.push((
            site.container_with(&repo, &format!("w{i}"), &labels)
                .await
                .0,
            repo,
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at = (now + 15).div_ceil(60) * 60;
    let opens = UNIX_EPOCH + Duration::from_secs(at);
    let schedule = format!("{} {} * * *", (at / 60) % 60, (at / 3600) % 24);
    let config = site.config(0).replace("min_uptime_seconds = 1\n", "")
        + &format!(
            "[policy]\n[policy.windows.bench]\nschedule = \"{schedule}\"\nduration_minutes = 5\n"
        );
    let agent = AgentProcess::start(&config, &["run"]);
    let mut bodies = Vec::new();
    let mut wanted = Vec::new();
    for (_, repo) in &names {
        let d = site.silent_push(repo, Kind::Serve, "v2").await;
        bodies.push(push_body(repo, "prod", &d));
        wanted.push(d);
    }
    send_all(&site.sqs, &site.url, &bodies).await;
    assert!(
        SystemTime::now() < opens,
        "set-up took too long for this opening"
    );
    let deadline = Instant::now()
        + opens.duration_since(SystemTime::now()).unwrap()
        + Duration::from_secs(120);
    for ((name, _), want) in names.iter().zip(&wanted) {
        while running_digest_now(name).as_deref() != Some(want.as_str()) {
            assert!(
                Instant::now() < deadline,
                "{name} not deployed:\n{}",
                agent.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut ms: Vec<f64> = names
        .iter()
        .map(|(n, _)| {
            started_at(n)
                .duration_since(opens)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let (median, p95) = median_p95(ms.clone());
    let last = ms.last().copied().unwrap_or_default();
    println!("window opening -> new container running, {CONTAINERS} containers (max_parallel 2):");
    println!(
        "  first {:.0} ms, median {median:.0} ms, p95 {p95:.0} ms, last {last:.0} ms",
        ms[0]
    );
    bench_report(
        "window_opening",
        &json!({
            "containers": CONTAINERS,
            "max_parallel": 2,
            "opening_to_running_ms": { "first": ms[0], "median": median, "p95": p95, "last": last },
            "running_means": "the new container's State.StartedAt",
        }),
    );
}
