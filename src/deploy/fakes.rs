//! In-memory stand-ins for the runtime and the credentials, for the core's unit tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{DeployConfig, Executor};
use crate::control::policy::PolicyLabels;
use crate::event::{Digest, ImageRef};
use crate::gate::GateLabels;
use crate::ports::{
    Credentials, Dependent, Managed, NEW_SUFFIX, OLD_SUFFIX, Observed, PullAuth, RemoteError,
    Runtime, RuntimeError,
};
use crate::store::Store;

#[derive(Clone, Debug)]
pub struct Box_ {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub digest: Digest,
    pub policy: PolicyLabels,
    pub gates: GateLabels,
}

#[derive(Default)]
pub struct FakeRuntime {
    pub boxes: Mutex<Vec<Box_>>,
    next: AtomicUsize,
    pulls_now: AtomicUsize,
    pub pulls_max: AtomicUsize,
    pulled: Mutex<HashMap<String, Digest>>,
    pub dependents: Mutex<Vec<Dependent>>,
    /// Every call made, in order (`stop id`, `create name` …).
    pub calls: Mutex<Vec<String>>,
    /// The next this many listings fail as if the Engine were down.
    pub listings_fail: AtomicUsize,
    /// Listings asked for so far.
    pub listings: AtomicUsize,
}

pub fn digest(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

impl FakeRuntime {
    pub fn with(names: &[&str], d: &Digest) -> Self {
        let rt = Self::default();
        for n in names {
            rt.add(n, d, true);
        }
        rt
    }
    pub fn add(&self, name: &str, d: &Digest, running: bool) -> String {
        let id = format!("id{}", self.next.fetch_add(1, Ordering::SeqCst));
        self.boxes.lock().unwrap().push(Box_ {
            id: id.clone(),
            name: name.into(),
            running,
            digest: d.clone(),
            policy: PolicyLabels::default(),
            gates: GateLabels::default(),
        });
        id
    }
    /// Labels container `name` with `policy` (and `window`).
    pub fn label_policy(&self, name: &str, policy: &str, window: Option<&str>) {
        for b in self
            .boxes
            .lock()
            .unwrap()
            .iter_mut()
            .filter(|b| b.name == name)
        {
            b.policy = PolicyLabels {
                policy: Some(policy.into()),
                window: window.map(str::to_owned),
            };
        }
    }
    fn call(&self, what: String) {
        self.calls.lock().unwrap().push(what);
    }
    pub fn by_id<T>(&self, id: &str, f: impl FnOnce(&mut Box_) -> T) -> Result<T, RuntimeError> {
        let mut boxes = self.boxes.lock().unwrap();
        let b = boxes
            .iter_mut()
            .find(|b| b.id == id)
            .ok_or_else(|| RuntimeError::http("fake", 404, format!("no container {id}")))?;
        Ok(f(b))
    }
    /// (name, running, digest) of every container, sorted by name.
    pub fn state(&self) -> Vec<(String, bool, Digest)> {
        let mut v: Vec<_> = self
            .boxes
            .lock()
            .unwrap()
            .iter()
            .map(|b| (b.name.clone(), b.running, b.digest.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

impl Runtime for FakeRuntime {
    async fn managed(&self, _: Option<&str>) -> Result<Vec<Managed>, RuntimeError> {
        self.listings.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .listings_fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(RuntimeError::transient("list containers", "engine down"));
        }
        let boxes = self.boxes.lock().unwrap();
        Ok(boxes
            .iter()
            .filter(|b| !b.name.ends_with(OLD_SUFFIX) && !b.name.ends_with(NEW_SUFFIX))
            .map(|b| Managed {
                id: b.id.clone(),
                name: b.name.clone(),
                image: "mirror/team/api:prod".into(),
                follows: ImageRef::parse_repo_tag("team/api:prod").unwrap(),
                digests: vec![b.digest.clone()],
                health_timeout: None,
                stop_timeout: None,
                running_now: b.running,
                policy: b.policy.clone(),
                gates: b.gates.clone(),
            })
            .collect())
    }
    async fn dependents(&self, _: &str) -> Result<Vec<Dependent>, RuntimeError> {
        Ok(self.dependents.lock().unwrap().clone())
    }
    async fn pull(
        &self,
        _: &str,
        d: &Digest,
        _: &PullAuth,
        tag_as: &str,
    ) -> Result<(), RuntimeError> {
        self.call(format!("pull {d}"));
        let now = self.pulls_now.fetch_add(1, Ordering::SeqCst) + 1;
        self.pulls_max.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.pulls_now.fetch_sub(1, Ordering::SeqCst);
        self.pulled.lock().unwrap().insert(tag_as.into(), d.clone());
        Ok(())
    }
    async fn stop(&self, id: &str, _: Duration) -> Result<(), RuntimeError> {
        self.call(format!("stop {id}"));
        self.by_id(id, |b| b.running = false)
    }
    async fn rename(&self, id: &str, name: &str) -> Result<(), RuntimeError> {
        self.call(format!("rename {id} {name}"));
        self.by_id(id, |b| b.name = name.into())
    }
    async fn create_like(&self, old: &str, name: &str) -> Result<String, RuntimeError> {
        self.call(format!("create {name}"));
        let d = self.pulled.lock().unwrap()["mirror/team/api:prod"].clone();
        let policy = self.by_id(old, |b| b.policy.clone())?;
        let id = self.add(name, &d, false);
        self.by_id(&id, |b| b.policy = policy)?;
        Ok(id)
    }
    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.call(format!("start {id}"));
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
        self.call(format!("remove {id}"));
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

pub struct FixedAuth;

impl Credentials for FixedAuth {
    async fn pull_auth(&self) -> Result<PullAuth, RemoteError> {
        Ok(PullAuth {
            username: "AWS".into(),
            password: "x".into(),
            registry_host: "ecr".into(),
        })
    }
}

/// An executor over `rt` with a store in a temporary directory (kept alive by the guard).
pub fn executor(
    rt: FakeRuntime,
    max_parallel: usize,
) -> (tempfile::TempDir, Executor<FakeRuntime, FixedAuth>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.db")).unwrap());
    let cfg = DeployConfig {
        gates: Default::default(),
        policies: Default::default(),
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

/// Deploys digest `to` (see [`digest`]) to the first managed container as `trigger`.
pub async fn deploy_first(
    ex: &Executor<FakeRuntime, FixedAuth>,
    to: char,
    trigger: &str,
) -> crate::deploy::Done {
    let t = crate::deploy::target::Target::Container(ex.managed().await.unwrap().remove(0));
    let desired = crate::image::Desired::single(digest(to));
    ex.deploy_target(&t, &desired, trigger, Duration::ZERO, None)
        .await
        .unwrap()
}

/// ECR as a registry where every tag names `.0`.
pub struct OneTag(pub Digest);

impl crate::ports::Registry for OneTag {
    async fn resolve(
        &self,
        images: &[crate::event::ImageRef],
    ) -> std::collections::HashMap<crate::event::ImageRef, crate::ports::Resolution> {
        images
            .iter()
            .map(|i| {
                (
                    i.clone(),
                    Ok(Some(crate::image::Desired::single(self.0.clone()))),
                )
            })
            .collect()
    }
}
