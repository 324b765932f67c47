//! Deploy latency of a small image on the real stack (moto, local registry, Docker Engine):
//! phase durations from the history and event-to-running (message sent → new container
//! running and recorded), over N runs. Run: `cargo bench --bench deploy_latency`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::docker::*;
use common::*;
use ecr_deployd::adapters::docker::DockerRuntime;
use ecr_deployd::adapters::ecr::{EcrCredentials, EcrRegistry};
use ecr_deployd::adapters::sqs::SqsQueue;
use ecr_deployd::app::{Agent, deploy_config};
use ecr_deployd::config::Settings;
use ecr_deployd::deploy::executor::Executor;
use ecr_deployd::store::{Outcome, Store};
use tokio_util::sync::CancellationToken;

const RUNS: usize = 12;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn p95(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64) * 0.95).ceil() as usize - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let (sqs, ecr) = (
        aws_sdk_sqs::Client::new(&sdk),
        aws_sdk_ecr::Client::new(&sdk),
    );
    let (url, _) = create_queue(&sqs, "bench", None).await;
    let registry = TestRegistry::start();
    let scope = Scope::new("bench");
    let state = tempfile::tempdir().unwrap();

    let v0 = registry.publish("bench/web", "v0", Kind::Serve, "v0", true);
    let prod = format!("{}/bench/web:prod", registry.host);
    docker(&["tag", &format!("{}/bench/web:v0", registry.host), &prod]);
    put_digest(&ecr, "bench/web", "prod", &v0).await;
    let name = scope.name("web");
    scope.run(&name, &["--label", "ecr-deployd.enable=true", &prod]);

    let mut settings = Settings::default();
    settings.queue.url = url.clone();
    settings.registry.mirror = registry.host.clone();
    settings.deploy.debounce_millis = 0;
    settings.deploy.min_uptime_seconds = 0;
    settings.state.path = state.path().join("state.db");
    let store = Arc::new(Store::open(&settings.state.path).unwrap());
    let agent = Arc::new(Agent {
        queue: Arc::new(SqsQueue::new(&sdk, &url, Duration::from_secs(20))),
        registry: Arc::new(EcrRegistry::new(&sdk)),
        deployer: Arc::new(Executor::new(
            Arc::new(DockerRuntime::new(None)),
            Arc::new(EcrCredentials::new(&sdk)),
            store.clone(),
            deploy_config(&settings),
        )),
        stats: Arc::default(),
        notifier: ecr_deployd::notify::Notifier::disabled(),
    });
    let token = CancellationToken::new();
    let task = {
        let (a, t, s) = (agent.clone(), token.clone(), settings.clone());
        tokio::spawn(async move { a.run(&s, t, Duration::from_secs(30)).await })
    };

    let mut e2r = Vec::new();
    let mut phases: [Vec<f64>; 5] = Default::default();
    for run in 1..=RUNS {
        let digest = registry.publish(
            "bench/web",
            &format!("v{run}"),
            Kind::Serve,
            &format!("v{run}"),
            false,
        );
        put_digest(&ecr, "bench/web", "prod", &digest).await;
        let sent_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let sent = Instant::now();
        send_all(&sqs, &url, &[push_body("bench/web", "prod", &digest)]).await;
        let d = loop {
            let h = store.history(Some(&name), 1).unwrap();
            if let Some(d) = h
                .into_iter()
                .next()
                .filter(|d| d.to_digest == digest && d.outcome.is_some())
            {
                break d;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(60),
                "run {run} did not deploy"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(d.outcome, Some(Outcome::Succeeded), "{d:?}");
        e2r.push((d.ended_at_ms.unwrap() - sent_ms) as f64);
        let p = d.phases;
        for (i, v) in [p.resolve_ms, p.pull_ms, p.stop_ms, p.swap_ms, p.health_ms]
            .into_iter()
            .enumerate()
        {
            phases[i].push(v as f64);
        }
    }
    token.cancel();
    task.await.unwrap();

    println!(
        "deploys of a small image (busybox httpd, --init, no HEALTHCHECK, min_uptime 0, debounce 0), {RUNS} runs"
    );
    println!("{:<34} {:>9} {:>9}", "phase", "median ms", "p95 ms");
    for (label, v) in [
        "resolve (ECR BatchGetImage)",
        "pull by digest + verify + tag",
        "stop + rename old",
        "create + start new",
        "health gate",
    ]
    .iter()
    .zip(phases)
    {
        println!("{label:<34} {:>9.0} {:>9.0}", median(v.clone()), p95(v));
    }
    println!(
        "{:<34} {:>9.0} {:>9.0}",
        "event sent -> new container recorded",
        median(e2r.clone()),
        p95(e2r)
    );
}
