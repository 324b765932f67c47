//! Soak: a year of pushes through `ecr-deployd run` (the release binary) against the emulator
//! and the system Engine, outside CI. Run: `bench/soak.sh` (or `cargo bench --bench soak`).
//!
//! Containers follow tags of their own; each round moves every tag to the other of two
//! images and sends, per deploy, the push event and a mix of what a queue carries over
//! months: duplicates of the push, a malformed body, a foreign event, a scan hint, a fleet
//! result, a delete event and a push of a tag seen once only (a new key every time).
//! `min_uptime_seconds = 0`; `[state] keep_days = 30`; the sweep (which prunes) every 10 s;
//! `[fleet] wave = 2`, so that the fleet results are recorded and each push deploys once an
//! earlier wave's host reports it (promotions, held rows and fleet rows all exercised).
//! The clock: every `deploys / 365` deploys one day passes — every timestamp in the store
//! moves back by a day — so the run covers a year of the store's retention.
//!
//! Sampled at checkpoints: anonymous memory (`smaps_rollup`), RSS, open file descriptors,
//! the store's size (database + WAL), rows per table, and every in-memory map's size (the
//! agent's `map_entries` metric). Growth is reported per 1,000 deploys after warm-up (the
//! first checkpoint).
//!
//! Scale: `SOAK_DEPLOYS` (default 10,000; messages are ten per deploy), `SOAK_CONTAINERS`
//! (default 4), `SOAK_CHECKPOINTS` (default 10).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::docker::*;
use common::*;
use ecr_deployd::store::Store;
use serde_json::json;

const REPO: &str = "bench/soak";
const DAY_MS: i64 = 86_400_000;
const KEEP_DAYS: u32 = 30;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One checkpoint's figures.
#[derive(Clone, Debug, serde::Serialize)]
struct Sample {
    deploys: usize,
    messages: usize,
    simulated_days: i64,
    anon_kib: u64,
    rss_kib: u64,
    fds: usize,
    store_bytes: u64,
    rows: BTreeMap<String, i64>,
    maps: BTreeMap<String, i64>,
}

fn store_bytes(db: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
        .map(|m| m.len())
        .sum()
}

/// `ecr_deployd_map_entries{map="…"} N` lines of `/metrics`.
fn map_sizes(http_addr: &str) -> BTreeMap<String, i64> {
    let (_, body) = http(http_addr, "GET", "/metrics");
    body.lines()
        .filter_map(|l| l.strip_prefix("ecr_deployd_map_entries{map=\""))
        .filter_map(|l| {
            let (name, rest) = l.split_once("\"}")?;
            Some((name.to_owned(), rest.trim().parse().ok()?))
        })
        .collect()
}

/// One simulated day passes: every timestamp in the store moves back a day.
fn a_day_passes(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         UPDATE deployments SET started_at_ms = started_at_ms - {DAY_MS},
                                ended_at_ms = ended_at_ms - {DAY_MS};
         UPDATE blocked SET since_ms = since_ms - {DAY_MS};
         UPDATE rejected SET since_ms = since_ms - {DAY_MS};
         UPDATE fleet_results SET seen_ms = seen_ms - {DAY_MS};
         UPDATE archive_loads SET at_ms = at_ms - {DAY_MS};
         COMMIT;"
    ))
    .unwrap();
}

/// What a queue carries beside one deploy's push event (nine more messages).
fn companions(n: usize, tag: &str, digest: &str) -> Vec<String> {
    let push = push_body(REPO, tag, digest);
    let foreign =
        json!({"source": "shop.orders", "detail-type": "Order Placed", "detail": {"n": n}});
    let result = json!({
        "version": "0", "id": sha256_hex(format!("r{n}").as_bytes()), "detail-type": "ECR Deployment Result",
        "source": "ecr-deployd", "account": ACCOUNT, "time": "2026-12-02T10:00:00Z", "region": REGION,
        "resources": [], "detail": {"host": format!("peer{}", n % 7), "name": format!("peer{}", n % 7),
        "wave": 1, "wave_key": "wave-1", "kind": "container", "container": "web", "repository": REPO,
        "tag": tag, "from_digest": null, "to_digest": digest, "outcome": "succeeded",
        "trigger": "event", "error": null, "durations_ms": {"total": 1}}});
    let delete = push.replace("\"PUSH\"", "\"DELETE\"");
    vec![
        push.clone(),
        push.clone(),
        push,
        format!("{{not json {n}"),
        foreign.to_string(),
        scan_body(REPO, digest),
        result.to_string(),
        delete,
        push_body(REPO, &format!("once-{n}"), digest),
    ]
}

/// Waits until each container's last recorded deployment is to its digest in `digests`.
async fn all_recorded(store: &Store, names: &[String], digests: &[&String]) {
    let started = Instant::now();
    for (name, digest) in names.iter().zip(digests) {
        loop {
            let last = store.history(Some(name), 1).unwrap();
            if last
                .first()
                .is_some_and(|d| d.to_digest == **digest && d.outcome.is_some())
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{name} not on {digest}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One figure of a sample, as a number.
type Figure = fn(&Sample) -> f64;

fn growth_per_thousand(first: &Sample, last: &Sample, f: impl Fn(&Sample) -> f64) -> f64 {
    let deploys = (last.deploys - first.deploys).max(1) as f64;
    (f(last) - f(first)) / deploys * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let deploys = env_or("SOAK_DEPLOYS", 10_000);
    let containers = env_or("SOAK_CONTAINERS", 4);
    let checkpoints = env_or("SOAK_CHECKPOINTS", 10).max(2);
    let aws = Aws::start().await;
    let (url, _dlq) = create_queue(&aws.sqs, "soak", Some(2)).await;
    let registry = TestRegistry::start();
    let scope = Scope::new("soak");
    let state = tempfile::tempdir().unwrap();
    let db = state.path().join("state.db");
    // Two images per container (the emulator keeps one tag per digest: a digest put under a
    // second tag leaves the first).
    let images: Vec<[String; 2]> = (0..containers)
        .map(|i| {
            ["a", "b"].map(|v| {
                let version = format!("{v}{i}");
                registry.publish(REPO, &version, Kind::Serve, &version, true)
            })
        })
        .collect();
    let names: Vec<String> = (0..containers)
        .map(|i| scope.name(&format!("s{i}")))
        .collect();
    for (i, name) in names.iter().enumerate() {
        let tag = format!("t{i}");
        put_digest(&aws.ecr, REPO, &tag, &images[i][0]).await;
        let local = format!("{}/{REPO}:{tag}", registry.host);
        docker(&["tag", &format!("{}/{REPO}:a{i}", registry.host), &local]);
        scope.run(name, &["--label", "ecr-deployd.enable=true", &local]);
    }
    let http_addr = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "[aws]\nregion = \"{REGION}\"\nendpoint_url = \"{}\"\n\
         [queue]\nurl = \"{url}\"\nwait_time_seconds = 1\nvisibility_timeout_seconds = 10\n\
         [registry]\nmirror = \"{}\"\n[sweep]\ninterval_seconds = 10\njitter_seconds = 0\n\
         [deploy]\nmin_uptime_seconds = 0\n[state]\npath = \"{}\"\nkeep_days = {KEEP_DAYS}\n\
         [http]\nlisten = \"{http_addr}\"\n[fleet]\nwave = 2\npromote_after = 1\n",
        aws.moto.endpoint,
        registry.host,
        db.display()
    );
    let mut agent = AgentProcess::start(&config, &["run"]);
    let pid = agent.child.id();
    agent.until_logged("ecr-deployd running").await;
    let store = Store::open(&db).unwrap();

    let rounds = deploys.div_ceil(containers);
    let per_day = (deploys / 365).max(1);
    let every = rounds.div_ceil(checkpoints).max(1);
    let (mut done, mut sent, mut days, mut next_day) = (0usize, 0usize, 0i64, per_day);
    let mut samples: Vec<Sample> = Vec::new();
    let started = Instant::now();
    for round in 0..rounds {
        let side = (round + 1) % 2;
        let mut bodies = Vec::new();
        for (i, pair) in images.iter().enumerate() {
            let (tag, digest) = (format!("t{i}"), &pair[side]);
            put_digest(&aws.ecr, REPO, &tag, digest).await;
            bodies.push(push_body(REPO, &tag, digest));
            bodies.extend(companions(done + i, &tag, digest));
        }
        send_all(&aws.sqs, &url, &bodies).await;
        sent += bodies.len();
        let now: Vec<&String> = images.iter().map(|pair| &pair[side]).collect();
        all_recorded(&store, &names, &now).await;
        done += containers;
        while done >= next_day {
            a_day_passes(&db);
            days += 1;
            next_day += per_day;
        }
        if (round + 1) % every == 0 || round + 1 == rounds {
            // Let the last batch's duplicates and windows drain, and a sweep prune.
            tokio::time::sleep(Duration::from_secs(12)).await;
            let s = Sample {
                deploys: done,
                messages: sent,
                simulated_days: days,
                anon_kib: proc_kib(pid, "smaps_rollup", "Anonymous:"),
                rss_kib: proc_kib(pid, "status", "VmRSS:"),
                fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .unwrap()
                    .count(),
                store_bytes: store_bytes(&db),
                rows: store
                    .row_counts()
                    .unwrap()
                    .into_iter()
                    .map(|(t, n)| (t.to_owned(), n))
                    .collect(),
                maps: map_sizes(&http_addr),
            };
            println!(
                "{:>6} deploys {:>7} msgs {:>4} days: anon {:>6} KiB, RSS {:>6} KiB, {:>3} fds, store {:>8} B, rows {:?}, maps {:?}",
                s.deploys,
                s.messages,
                s.simulated_days,
                s.anon_kib,
                s.rss_kib,
                s.fds,
                s.store_bytes,
                s.rows,
                s.maps
            );
            samples.push(s);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    assert!(
        agent.log_text().contains("ecr-deployd running"),
        "{}",
        agent.log_text()
    );
    drop(agent);

    let (first, last) = (&samples[0], &samples[samples.len() - 1]);
    let mut growth = serde_json::Map::new();
    let scalar: [(&str, Figure); 4] = [
        ("anon_kib", |s| s.anon_kib as f64),
        ("rss_kib", |s| s.rss_kib as f64),
        ("fds", |s| s.fds as f64),
        ("store_bytes", |s| s.store_bytes as f64),
    ];
    for (k, f) in scalar {
        growth.insert(k.into(), json!(growth_per_thousand(first, last, f)));
    }
    for t in last.rows.keys() {
        let g = growth_per_thousand(first, last, |s| s.rows[t] as f64);
        growth.insert(format!("rows.{t}"), json!(g));
    }
    for m in last.maps.keys() {
        let g = growth_per_thousand(first, last, |s| *s.maps.get(m).unwrap_or(&0) as f64);
        growth.insert(format!("maps.{m}"), json!(g));
    }
    println!(
        "\ngrowth per 1,000 deploys after warm-up ({} deploys): {growth:#?}",
        first.deploys
    );
    println!("{done} deploys, {sent} messages, {days} simulated days in {wall:.0} s");
    bench_report(
        "soak",
        &json!({
            "deploys": done,
            "messages": sent,
            "containers": containers,
            "simulated_days": days,
            "keep_days": KEEP_DAYS,
            "wall_s": wall,
            "config": "min_uptime_seconds 0, sweep every 10 s (prunes), debounce 1500 ms, keep_days 30, fleet wave 2 (promote_after 1)",
            "warm_up_deploys": first.deploys,
            "growth_per_1000_deploys": growth,
            "samples": samples,
        }),
    );
}
