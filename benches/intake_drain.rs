//! Intake throughput on a 1,000-message backlog (10 tags, the rest duplicates and foreign
//! events) on the local emulator, compared in the same run with a bare receive-and-delete
//! loop over the same queue: the emulator's own ceiling. Run: `cargo bench --bench intake_drain`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use ecr_deployd::adapters::{ecr::EcrRegistry, sqs::SqsQueue};
use ecr_deployd::app::Agent;
use ecr_deployd::config::Settings;
use ecr_deployd::ports::{DeployError, DeployRequest, Deployer, Queue};
use ecr_deployd::stats::Stats;
use tokio_util::sync::CancellationToken;

const MESSAGES: usize = 1000;
const FOREIGN_EVERY: usize = 10;

/// Counts hand-offs, and the deploys they would cause: a hand-off whose digest differs from
/// the last one for that tag (the executor finds the others up to date).
#[derive(Default)]
struct Count {
    handoffs: AtomicU64,
    deploys: AtomicU64,
    current: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl Deployer for Count {
    async fn deploy(&self, r: DeployRequest) -> Result<(), DeployError> {
        self.handoffs.fetch_add(1, Ordering::Relaxed);
        let desired = r.desired.digest.to_string();
        let before = self
            .current
            .lock()
            .unwrap()
            .insert(r.image.to_string(), desired.clone());
        if before.as_deref() != Some(desired.as_str()) {
            self.deploys.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

async fn backlog(sqs: &aws_sdk_sqs::Client, url: &str, pushes: &[String]) {
    let bodies: Vec<String> = (0..MESSAGES)
        .map(|i| {
            if i % FOREIGN_EVERY == FOREIGN_EVERY - 1 {
                format!(r#"{{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","id":"{i}","detail":{{}}}}"#)
            } else {
                // Every tag in turn (the foreign slots are skipped, not a tag's turn).
                let n = i - i / FOREIGN_EVERY;
                pushes[n % pushes.len()].clone()
            }
        })
        .collect();
    send_all(sqs, url, &bodies).await;
}

async fn wait_empty(sqs: &aws_sdk_sqs::Client, url: &str) {
    while queue_counts(sqs, url).await != (0, 0) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let (sqs, ecr) = (
        aws_sdk_sqs::Client::new(&sdk),
        aws_sdk_ecr::Client::new(&sdk),
    );
    let mut pushes = Vec::new();
    for r in 0..5 {
        for t in ["prod", "staging"] {
            let repo = format!("bench/app{r}");
            let digest = put_image(&ecr, &repo, t, &format!("{repo}:{t}")).await;
            pushes.push(push_body(&repo, t, &digest));
        }
    }
    // Each phase gets a fresh queue with the same backlog; the bare loop runs first so that
    // any slowdown of the emulator over time counts against the agent, not for it.

    // 1. A bare receive-and-delete loop: the emulator's own ceiling.
    let (bare_url, _) = create_queue(&sqs, "bench-bare", None).await;
    let fill = Instant::now();
    backlog(&sqs, &bare_url, &pushes).await;
    let fill_s = fill.elapsed().as_secs_f64();
    let bare = SqsQueue::new(&sdk, &bare_url, Duration::from_secs(1));
    let start = Instant::now();
    let mut drained = 0;
    while drained < MESSAGES {
        let batch = bare
            .receive(10, Duration::from_secs(1), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "bare loop stuck at {drained}"
        );
        drained += batch.len();
        let receipts: Vec<_> = batch.into_iter().map(|m| m.receipt).collect();
        bare.delete(&receipts).await.unwrap();
    }
    let bare_s = start.elapsed().as_secs_f64();

    // 2. The agent's intake, with the default settings.
    let (url, _) = create_queue(&sqs, "bench-agent", None).await;
    backlog(&sqs, &url, &pushes).await;
    let mut settings = Settings::default();
    settings.queue.url = url.clone();
    let agent = Arc::new(Agent {
        queue: Arc::new(SqsQueue::new(&sdk, &url, Duration::from_secs(20))),
        registry: Arc::new(EcrRegistry::new(&sdk)),
        deployer: Arc::new(Count::default()),
        stats: Arc::default(),
        notifier: ecr_deployd::notify::Notifier::disabled(),
    });
    let token = CancellationToken::new();
    let start = Instant::now();
    let task = {
        let (a, t, s) = (agent.clone(), token.clone(), settings.clone());
        tokio::spawn(async move { a.run(&s, t, Duration::from_secs(10)).await })
    };
    // Watch the agent's own counters: polling the emulator would slow it down.
    let settled = |a: &Agent<SqsQueue, EcrRegistry, Count>| {
        let s = &a.stats;
        Stats::get(&s.deleted_done)
            + Stats::get(&s.deleted_foreign)
            + Stats::get(&s.deleted_nothing)
    };
    while settled(&agent) < MESSAGES as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let agent_s = start.elapsed().as_secs_f64();
    wait_empty(&sqs, &url).await;
    token.cancel();
    task.await.unwrap();

    let agent_rate = MESSAGES as f64 / agent_s;
    let bare_rate = MESSAGES as f64 / bare_s;
    println!(
        "backlog: {MESSAGES} messages, {} tags, {} foreign (filled in {fill_s:.1} s)",
        pushes.len(),
        MESSAGES / FOREIGN_EVERY
    );
    let handoffs = agent.deployer.handoffs.load(Ordering::Relaxed);
    let deploys = agent.deployer.deploys.load(Ordering::Relaxed);
    assert!(
        deploys <= pushes.len() as u64,
        "{deploys} deploys for {} tags",
        pushes.len()
    );
    println!(
        "{:<28} {:>9} {:>10} {:>10} {:>9} {:>8}",
        "", "wall s", "msgs/s", "ECR calls", "hand-offs", "deploys"
    );
    println!(
        "{:<28} {:>9.2} {:>10.1} {:>10} {:>9} {:>8}",
        "ecr-deployd intake",
        agent_s,
        agent_rate,
        agent.registry.calls(),
        handoffs,
        deploys
    );
    println!(
        "{:<28} {:>9.2} {:>10.1} {:>10} {:>9} {:>8}",
        "bare receive+delete loop", bare_s, bare_rate, "-", "-", "-"
    );
    println!("ratio (intake / bare loop): {:.2}", agent_rate / bare_rate);
    bench_report(
        "backlog_drain",
        &serde_json::json!({
            "messages": MESSAGES,
            "tags": pushes.len(),
            "foreign": MESSAGES / FOREIGN_EVERY,
            "intake": {"wall_s": agent_s, "msgs_per_s": agent_rate,
                       "ecr_calls": agent.registry.calls(), "handoffs": handoffs, "deploys": deploys},
            "bare_loop": {"wall_s": bare_s, "msgs_per_s": bare_rate},
            "ratio": agent_rate / bare_rate,
        }),
    );
}
