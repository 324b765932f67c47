//! Footprint: RSS and CPU time of `ecr-deployd run` (the release binary) after it has sat idle
//! with 20 managed containers, on the real stack; and the binary's size.
//! Run: `cargo bench --bench footprint` (BENCH_IDLE_SECONDS, default 300).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::docker::*;
use common::*;

const CONTAINERS: usize = 20;

/// User + system CPU seconds of `pid`.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let idle = Duration::from_secs(
        std::env::var("BENCH_IDLE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300),
    );
    let aws = Aws::start().await;
    let (url, _) = create_queue(&aws.sqs, "footprint", Some(5)).await;
    let registry = TestRegistry::start();
    let scope = Scope::new("footprint");
    let state = tempfile::tempdir().unwrap();
    let v1 = registry.publish("bench/idle", "v1", Kind::Serve, "v1", true);
    let prod = format!("{}/bench/idle:prod", registry.host);
    docker(&["tag", &format!("{}/bench/idle:v1", registry.host), &prod]);
    put_digest(&aws.ecr, "bench/idle", "prod", &v1).await;
    for i in 0..CONTAINERS {
        scope.run(
            &scope.name(&format!("idle{i:02}")),
            &["--label", "ecr-deployd.enable=true", &prod],
        );
    }
    // The shipped defaults (20 s long polls, sweep every 300 ± 30 s), local endpoints.
    let config = format!(
        "[aws]\nregion = \"{REGION}\"\nendpoint_url = \"{}\"\n[queue]\nurl = \"{url}\"\n\
         [registry]\nmirror = \"{}\"\n[state]\npath = \"{}\"\n",
        aws.moto.endpoint,
        registry.host,
        state.path().join("state.db").display()
    );
    let agent = AgentProcess::start(&config, &["run"]);
    let pid = agent.child.id();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_start = proc_kib(pid, "status", "VmRSS:");
    let cpu_start = cpu_s(pid);
    tokio::time::sleep(idle).await;
    let [rss, hwm, anon, file] =
        ["VmRSS:", "VmHWM:", "RssAnon:", "RssFile:"].map(|k| proc_kib(pid, "status", k));
    // Heap and stacks: what the agent itself holds.
    let anonymous = proc_kib(pid, "smaps_rollup", "Anonymous:");
    let cpu = cpu_s(pid);
    assert!(
        agent.log_text().contains("ecr-deployd running"),
        "{}",
        agent.log_text()
    );
    drop(agent);

    let bin = env!("CARGO_BIN_EXE_ecr-deployd");
    let size = std::fs::metadata(bin).unwrap().len();
    let stripped = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy(bin, stripped.path()).unwrap();
    let ok = std::process::Command::new("strip")
        .arg("--strip-all")
        .arg(stripped.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let stripped_size = ok.then(|| std::fs::metadata(stripped.path()).unwrap().len());

    println!(
        "`ecr-deployd run`, {CONTAINERS} managed containers, idle {} s after start-up",
        idle.as_secs()
    );
    println!(
        "{:<34} {:>12}",
        "RSS after 5 s",
        format!("{:.1} MiB", rss_start as f64 / 1024.0)
    );
    println!(
        "{:<34} {:>12}",
        "RSS after idling",
        format!("{:.1} MiB", rss as f64 / 1024.0)
    );
    println!(
        "{:<34} {:>12}",
        "  of which its own / mapped files",
        format!(
            "{:.1} / {:.1} MiB",
            anon as f64 / 1024.0,
            file as f64 / 1024.0
        )
    );
    println!(
        "{:<34} {:>12}",
        "anonymous (smaps_rollup), goal 4",
        format!("{:.1} MiB", anonymous as f64 / 1024.0)
    );
    println!(
        "{:<34} {:>12}",
        "peak RSS",
        format!("{:.1} MiB", hwm as f64 / 1024.0)
    );
    println!(
        "{:<34} {:>12}",
        "CPU while idle",
        format!("{:.2} s", cpu - cpu_start)
    );
    println!("{:<34} {:>12}", "CPU in total", format!("{cpu:.2} s"));
    println!(
        "{:<34} {:>12}",
        "binary (bench profile)",
        format!("{:.1} MiB", size as f64 / 1048576.0)
    );
    if let Some(s) = stripped_size {
        println!(
            "{:<34} {:>12}",
            "binary, stripped",
            format!("{:.1} MiB", s as f64 / 1048576.0)
        );
    }
    bench_report(
        "footprint",
        &serde_json::json!({
            "containers": CONTAINERS,
            "idle_s": idle.as_secs(),
            "rss_kib_after_start": rss_start,
            "rss_kib_after_idle": rss,
            "rss_anon_kib": anon,
            "anonymous_kib_smaps_rollup": anonymous,
            "anonymous_goal_kib": 4096,
            "rss_file_kib": file,
            "peak_rss_kib": hwm,
            "cpu_s_idle": cpu - cpu_start,
            "cpu_s_total": cpu,
            "binary_bytes": size,
            "binary_stripped_bytes": stripped_size,
        }),
    );
}
