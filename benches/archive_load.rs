//! The agent's memory while it loads a 200 MB archive (random bytes, so xz cannot shrink it)
//! from S3 into the Engine, and how long the load takes: the S3 lab of tests/archives.rs
//! (moto's S3, images built here, `docker save | xz`), the agent binary, the Engine under
//! test. Run: `cargo bench --bench archive_load` (bench/run.sh runs it).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use common::archive::*;
use common::docker::*;
use common::*;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    const MB: usize = 200;
    let lab = Lab::new("archive-bench").await;
    let (images, dir, s3) = (&lab.images, &lab.dir, &lab.s3);
    create_bucket(s3, BUCKET).await;
    let (url, _) = create_queue(&aws_sdk_sqs::Client::new(&lab.sdk), "bench", None).await;
    let v1 = images.build("v1", Kind::Serve);
    images.archive(&v1, "v1", &v1, &dir.path().join("v1.tar.xz"));
    // v2: the same server with 200 MB of random bytes beside it.
    let big = images.build("v2", Kind::Serve);
    let ctx = dir.path().join("big");
    std::fs::create_dir_all(&ctx).unwrap();
    let random = Command::new("head")
        .args(["-c", &format!("{MB}M"), "/dev/urandom"])
        .output()
        .unwrap();
    std::fs::write(ctx.join("blob"), random.stdout).unwrap();
    let v2_ref = format!("{}:big", images.repo);
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {big}\nCOPY blob /blob\nLABEL {TEST_LABEL}.image=\"bench\"\n"),
    )
    .unwrap();
    let built = docker_command()
        .args(["build", "-q", "-t", &v2_ref])
        .arg(&ctx)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let v2 = docker(&["image", "inspect", "--format", "{{.Id}}", &v2_ref]);
    images.ids.lock().unwrap().insert(0, v2.clone());
    let path = dir.path().join("v2.tar.xz");
    let latest = format!("{}:latest", images.repo);
    docker(&["tag", &v2, &latest]);
    save_xz(&[&latest], "-0", &path);
    docker(&["tag", &v1, &latest]);
    docker(&["rmi", &v2_ref]);
    let archive = std::fs::read(&path).unwrap();
    let archive_mb = archive.len() as f64 / 1e6;
    upload(s3, KEY, archive, None).await;

    let name = lab.follower();
    let config = lab.config(&url);
    // Started with the archive already there: its start-up sweep loads and deploys it.
    let agent = AgentProcess::start(&config, &["run"]);
    let pid = agent.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = proc_kib(pid, "status", "VmRSS:");
    let mut peak = before;
    let started = std::time::Instant::now();
    while image_of(&name) != v2 || !agent.log_text().contains("sweep finished") {
        peak = peak.max(proc_kib(pid, "status", "VmRSS:"));
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{}",
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let [after, hwm] = ["VmRSS:", "VmHWM:"].map(|k| proc_kib(pid, "status", k));
    let log = agent.log_text();
    let took_ms: f64 = log
        .lines()
        .find(|l| l.contains("archive loaded"))
        .and_then(|l| l.split("took_ms=").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("the load's time is logged");
    let report = serde_json::json!({
        "archive_mb": (archive_mb * 10.0).round() / 10.0,
        "load_s": took_ms / 1000.0,
        "load_mb_per_s": (archive_mb / (took_ms / 1000.0) * 10.0).round() / 10.0,
        "rss_before_mib": before as f64 / 1024.0,
        "rss_peak_sampled_mib": peak as f64 / 1024.0,
        "rss_after_mib": after as f64 / 1024.0,
        "vm_hwm_mib": hwm as f64 / 1024.0,
        "growth_mib": (peak.saturating_sub(before)) as f64 / 1024.0,
    });
    println!("archive_load {report}");
    bench_report("archive_load", &report);
    drop(agent);
}
