//! The executor over an in-memory runtime, in virtual time: concurrency limits and locking.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::event::ImageRef;
use crate::ports::{Observed, PullAuth, RemoteError};

#[derive(Clone)]
struct Box_ {
    id: String,
    name: String,
    running: bool,
    digest: Digest,
}

#[derive(Default)]
struct FakeRuntime {
    boxes: Mutex<Vec<Box_>>,
    next: AtomicUsize,
    pulls_now: AtomicUsize,
    pulls_max: AtomicUsize,
    pulled: Mutex<HashMap<String, Digest>>,
}

fn digest(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

impl FakeRuntime {
    fn with(names: &[&str], d: &Digest) -> Self {
        let rt = Self::default();
        for n in names {
            rt.add(n, d);
        }
        rt
    }
    fn add(&self, name: &str, d: &Digest) {
        let id = format!("id{}", self.next.fetch_add(1, Ordering::SeqCst));
        self.boxes.lock().unwrap().push(Box_ {
            id,
            name: name.into(),
            running: true,
            digest: d.clone(),
        });
    }
    fn by_id<T>(&self, id: &str, f: impl FnOnce(&mut Box_) -> T) -> Result<T, RuntimeError> {
        let mut boxes = self.boxes.lock().unwrap();
        let b = boxes
            .iter_mut()
            .find(|b| b.id == id)
            .ok_or_else(|| RuntimeError {
                operation: "fake",
                message: format!("no container {id}"),
                transient: false,
            })?;
        Ok(f(b))
    }
}

impl Runtime for FakeRuntime {
    async fn managed(&self, _: Option<&str>) -> Result<Vec<Managed>, RuntimeError> {
        let boxes = self.boxes.lock().unwrap();
        Ok(boxes
            .iter()
            .filter(|b| !b.name.ends_with(OLD_SUFFIX))
            .map(|b| Managed {
                id: b.id.clone(),
                name: b.name.clone(),
                image: "mirror/team/api:prod".into(),
                follows: ImageRef::parse_repo_tag("team/api:prod").unwrap(),
                digests: vec![b.digest.clone()],
                health_timeout: None,
                stop_timeout: None,
                running_now: b.running,
            })
            .collect())
    }
    async fn pull(
        &self,
        _: &str,
        d: &Digest,
        _: &PullAuth,
        tag_as: &str,
    ) -> Result<(), RuntimeError> {
        let now = self.pulls_now.fetch_add(1, Ordering::SeqCst) + 1;
        self.pulls_max.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.pulls_now.fetch_sub(1, Ordering::SeqCst);
        self.pulled.lock().unwrap().insert(tag_as.into(), d.clone());
        Ok(())
    }
    async fn stop(&self, id: &str, _: Duration) -> Result<(), RuntimeError> {
        self.by_id(id, |b| b.running = false)
    }
    async fn rename(&self, id: &str, name: &str) -> Result<(), RuntimeError> {
        self.by_id(id, |b| b.name = name.into())
    }
    async fn create_like(&self, _: &str, name: &str) -> Result<String, RuntimeError> {
        let d = self.pulled.lock().unwrap()["mirror/team/api:prod"].clone();
        self.add(name, &d);
        let mut boxes = self.boxes.lock().unwrap();
        let created = boxes.last_mut().unwrap();
        created.running = false; // created, not started
        Ok(created.id.clone())
    }
    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.by_id(id, |b| b.running = true)
    }
    async fn observe(&self, id: &str) -> Result<Option<Observed>, RuntimeError> {
        Ok(self
            .by_id(id, |b| Observed {
                running: b.running,
                health: None,
                restart_count: 0,
                exit_code: None,
            })
            .ok())
    }
    async fn find(&self, name: &str) -> Result<Option<String>, RuntimeError> {
        Ok(self
            .boxes
            .lock()
            .unwrap()
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.id.clone()))
    }
    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.boxes.lock().unwrap().retain(|b| b.id != id);
        Ok(())
    }
    async fn image_of(&self, id: &str) -> Result<String, RuntimeError> {
        self.by_id(id, |b| b.digest.to_string())
    }
    async fn remove_image_if_unused(&self, _: &str) -> Result<(), RuntimeError> {
        Ok(())
    }
}

struct FixedAuth;

impl Credentials for FixedAuth {
    async fn pull_auth(&self) -> Result<PullAuth, RemoteError> {
        Ok(PullAuth {
            username: "AWS".into(),
            password: "x".into(),
            registry_host: "ecr".into(),
        })
    }
}

fn executor(
    rt: FakeRuntime,
    max_parallel: usize,
) -> (tempfile::TempDir, Executor<FakeRuntime, FixedAuth>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.db")).unwrap());
    let cfg = DeployConfig {
        health_timeout: Duration::from_secs(10),
        min_uptime: Duration::from_secs(1),
        stop_timeout: Duration::from_secs(1),
        max_parallel,
        remove_old_images: false,
        mirror: Some("mirror".into()),
    };
    (
        dir,
        Executor::new(Arc::new(rt), Arc::new(FixedAuth), store, cfg),
    )
}

fn request(d: &Digest) -> DeployRequest {
    DeployRequest {
        image: ImageRef::parse_repo_tag("team/api:prod").unwrap(),
        desired: Desired::single(d.clone()),
        trigger: crate::ports::Trigger::Event,
        event_time: None,
        resolved_in: Duration::ZERO,
    }
}

#[tokio::test(start_paused = true)]
async fn deploys_of_different_containers_run_at_most_max_parallel_at_once() {
    let rt = FakeRuntime::with(&["a", "b", "c", "d", "e"], &digest('1'));
    let (_dir, ex) = executor(rt, 2);
    ex.deploy(request(&digest('2'))).await.unwrap();
    assert_eq!(ex.runtime().pulls_max.load(Ordering::SeqCst), 2);
    let managed = ex.managed().await.unwrap();
    assert_eq!(managed.len(), 5);
    assert!(
        managed
            .iter()
            .all(|m| m.running() == Some(&digest('2')) && m.running_now)
    );
    let history = ex.store().history(None, 10).unwrap();
    assert_eq!(history.len(), 5);
    assert!(
        history
            .iter()
            .all(|d| d.outcome == Some(Outcome::Succeeded))
    );
}

#[tokio::test(start_paused = true)]
async fn an_event_and_a_sweep_for_one_container_deploy_it_once() {
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    let (_dir, ex) = executor(rt, 4);
    let c = ex.managed().await.unwrap().remove(0);
    let two = Desired::single(digest('2'));
    let (a, b) = tokio::join!(
        ex.deploy_container(&c, &two, "event", Duration::ZERO, None),
        ex.deploy_container(&c, &two, "sweep", Duration::ZERO, None),
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Some(Outcome::Succeeded))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| o.is_none()).count(),
        1,
        "the second found it up to date"
    );
    assert_eq!(ex.store().history(None, 10).unwrap().len(), 1);
    let names: Vec<String> = ex
        .runtime()
        .boxes
        .lock()
        .unwrap()
        .iter()
        .map(|b| b.name.clone())
        .collect();
    assert_eq!(names, ["web"], "one container, no parked old one");
}
