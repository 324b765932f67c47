use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::ports::RemoteError;
use crate::stats::Stats;
use crate::store::NewDeployment;

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const INTERVAL: Duration = Duration::from_secs(60);

/// S3 in memory: the objects put, and how many puts are still to fail.
#[derive(Default)]
struct Bucket {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    puts: AtomicUsize,
    failing: AtomicUsize,
}

impl LedgerObjects for Bucket {
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), RemoteError> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        let fail = self
            .failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(RemoteError {
                operation: "S3 PutObject",
                message: "NoSuchBucket (HTTP 404): The specified bucket does not exist".into(),
                transient: false,
            });
        }
        let mut objects = self.objects.lock().unwrap();
        objects.insert(format!("{bucket}/{key}"), body);
        Ok(())
    }
    async fn list(&self, _: &str, _: &str) -> Result<Vec<String>, RemoteError> {
        Ok(Vec::new())
    }
    async fn get(&self, _: &str, _: &str) -> Result<Vec<u8>, RemoteError> {
        Ok(Vec::new())
    }
}

impl Bucket {
    fn puts(&self) -> usize {
        self.puts.load(Ordering::SeqCst)
    }
    fn object(&self) -> HostLedger {
        let objects = self.objects.lock().unwrap();
        let body = objects
            .get("ledger/prod/edge-01.json")
            .expect("object written");
        serde_json::from_slice(body).unwrap()
    }
}

fn row(name: &str, running: &str, state: &str) -> ContainerLedger {
    ContainerLedger {
        name: name.into(),
        image: "shop/web:prod".into(),
        repository: "shop/web".into(),
        tag: "prod".into(),
        running_digest: Some(running.into()),
        desired_digest: Some(running.into()),
        state: state.into(),
        ..ContainerLedger::default()
    }
}

struct Running {
    handle: LedgerHandle,
    bucket: Arc<Bucket>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

fn start(failing: usize) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.db")).unwrap());
    let bucket = Arc::new(Bucket::default());
    bucket.failing.store(failing, Ordering::SeqCst);
    let metrics = Metrics::new(Arc::new(Stats::default()));
    let handle = LedgerHandle::new();
    let stop = CancellationToken::new();
    let cfg = WriterConfig {
        url: LedgerUrl::parse("s3://ledger/prod/").unwrap(),
        name: "edge-01".into(),
        host: "edge-01.site".into(),
        wave: 2,
        interval: INTERVAL,
    };
    let task = tokio::spawn(run(
        handle.clone(),
        bucket.clone(),
        store.clone(),
        cfg,
        Some(metrics.clone()),
        stop.clone(),
    ));
    Running {
        handle,
        bucket,
        store,
        metrics,
        stop,
        task,
        _dir: dir,
    }
}

async fn settle() {
    tokio::time::sleep(FOLD * 2).await;
}

#[tokio::test(start_paused = true)]
async fn nothing_is_written_before_the_first_sweep_then_the_whole_host_at_once() {
    let r = start(0);
    settle().await;
    assert_eq!(
        r.bucket.puts(),
        0,
        "no sweep yet: the object would be partial"
    );
    r.handle
        .swept(vec![row("web", A, "up_to_date"), row("api", A, "behind")]);
    settle().await;
    assert_eq!(r.bucket.puts(), 1);
    let o = r.bucket.object();
    assert_eq!(
        (o.schema, o.name.as_str(), o.host.as_str(), o.wave),
        (1, "edge-01", "edge-01.site", 2)
    );
    assert_eq!(o.sweep_interval_seconds, 60);
    assert_eq!(o.agent_version, env!("CARGO_PKG_VERSION"));
    assert!(o.written_at.ends_with('Z'), "{}", o.written_at);
    let names: Vec<&str> = o.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["api", "web"]);
    r.stop.cancel();
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_sweep_writes_nothing_until_the_interval_then_writes_anyway() {
    let r = start(0);
    r.handle.swept(vec![row("web", A, "up_to_date")]);
    settle().await;
    assert_eq!(r.bucket.puts(), 1);
    for _ in 0..3 {
        r.handle.swept(vec![row("web", A, "up_to_date")]);
        settle().await;
    }
    assert_eq!(r.bucket.puts(), 1, "nothing changed within the interval");
    tokio::time::sleep(INTERVAL).await;
    assert_eq!(
        r.bucket.puts(),
        2,
        "once per interval even when nothing changed"
    );
    r.handle.swept(vec![row("web", A, "behind")]);
    settle().await;
    assert_eq!(
        r.bucket.puts(),
        3,
        "a sweep that changed something is written at once"
    );
    assert_eq!(r.bucket.object().containers[0].state, "behind");
    r.stop.cancel();
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_deployment_outcome_is_written_with_its_history_and_the_previous_digest() {
    let r = start(0);
    r.handle.swept(vec![row("web", A, "behind")]);
    settle().await;
    let id = r
        .store
        .begin(&NewDeployment {
            container: "web",
            repository: "shop/web",
            tag: "prod",
            from_digest: Some(A),
            to_digest: B,
            platform_digest: None,
            trigger: "event",
            old_id: "old",
        })
        .unwrap();
    r.store
        .finish(id, Outcome::Succeeded, &Default::default(), None)
        .unwrap();
    r.handle.deployed(&Deployed {
        container: "web",
        image: "shop/web:prod",
        to: B,
        platform: None,
        outcome: Outcome::Succeeded,
        error: None,
    });
    settle().await;
    assert_eq!(r.bucket.puts(), 2);
    let web = r.bucket.object().containers.remove(0);
    assert_eq!(web.running_digest.as_deref(), Some(B));
    assert_eq!(web.state, "up_to_date");
    assert_eq!(web.previous_digest.as_deref(), Some(A));
    assert!(web.since.is_some(), "deployed here: since when is known");
    assert_eq!(web.last_outcome(), Some("succeeded"));
    assert_eq!(web.deployments[0].trigger, "event");
    r.stop.cancel();
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn failed_writes_are_retried_with_backoff_and_the_next_write_carries_everything() {
    let r = start(3);
    r.handle.swept(vec![row("web", A, "up_to_date")]);
    settle().await;
    assert_eq!(r.bucket.puts(), 1);
    let w = r.store.ledger_writes().unwrap().unwrap();
    assert_eq!(w.failures, 1);
    assert!(w.error.unwrap().contains("NoSuchBucket"));
    assert_eq!(w.url, "s3://ledger/prod/edge-01.json");
    // A deployment meanwhile is not held back (this returns at once) and not lost.
    r.handle.deployed(&Deployed {
        container: "web",
        image: "shop/web:prod",
        to: B,
        platform: None,
        outcome: Outcome::RolledBack,
        error: Some("health check failed"),
    });
    // Tries at 0, +0.25 s (the change), then 2 s and 4 s of backoff: the fourth succeeds.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(r.bucket.puts(), 4);
    let web = r.bucket.object().containers.remove(0);
    assert_eq!(
        (web.state.as_str(), web.running_digest.as_deref()),
        ("blocked", Some(A))
    );
    assert_eq!(web.detail.as_deref(), Some("health check failed"));
    assert_eq!(r.store.ledger_writes().unwrap().unwrap().failures, 0);
    let text = r.metrics.render();
    assert!(
        text.contains("ecr_deployd_ledger_write_failures_total 3"),
        "{text}"
    );
    // Then quiet again until the interval.
    tokio::time::sleep(INTERVAL / 2).await;
    assert_eq!(r.bucket.puts(), 4);
    r.stop.cancel();
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_change_not_yet_written_at_shutdown_gets_one_last_write() {
    let r = start(0);
    r.handle.swept(vec![row("web", A, "up_to_date")]);
    settle().await;
    r.handle.swept(vec![row("web", B, "up_to_date")]);
    r.stop.cancel();
    r.task.await.unwrap();
    assert_eq!(
        r.bucket.object().containers[0].running_digest.as_deref(),
        Some(B)
    );
}

#[test]
fn history_gives_since_only_for_the_digest_deployed_here_and_previous_from_the_last_success() {
    let deployment = |id, from: &str, to: &str, outcome| Deployment {
        id,
        container: "web".into(),
        repository: "shop/web".into(),
        tag: "prod".into(),
        from_digest: Some(from.into()),
        to_digest: to.into(),
        platform_digest: None,
        trigger: "sweep".into(),
        outcome: Some(outcome),
        step: None,
        step_text: String::new(),
        old_id: None,
        new_id: None,
        started_at_ms: 1_700_000_000_000,
        ended_at_ms: Some(1_700_000_060_000),
        phases: Default::default(),
        error: None,
    };
    let c = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
    // Newest first: C rolled back, B succeeded over A.
    let history = [
        deployment(2, B, c, Outcome::RolledBack),
        deployment(1, A, B, Outcome::Succeeded),
    ];
    let r = with_history(row("web", B, "blocked"), &history);
    assert_eq!(r.previous_digest.as_deref(), Some(A));
    assert_eq!(r.since.as_deref(), Some("2023-11-14T22:14:20Z"));
    assert_eq!(r.last_outcome(), Some("rolled_back"));
    // Runs something this agent did not deploy: since unknown, the rollback digest kept.
    let r = with_history(row("web", c, "up_to_date"), &history);
    assert_eq!((r.since, r.previous_digest.as_deref()), (None, Some(A)));
    // Never deployed here: neither.
    let r = with_history(row("web", A, "up_to_date"), &[]);
    assert_eq!(
        (r.since, r.previous_digest, r.deployments.len()),
        (None, None, 0)
    );
}
