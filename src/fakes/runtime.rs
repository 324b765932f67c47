//! The in-memory Engine: containers with their labels, digests and dependents; calls that
//! fail on demand.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::control::policy::PolicyLabels;
use crate::event::{Digest, ImageRef};
use crate::gate::GateLabels;
use crate::model::labels::HookLabels;
use crate::ports::{
    Dependent, ExecRun, Managed, NEW_SUFFIX, OLD_SUFFIX, Observed, Ordered, PullAuth, Repoint,
    Runtime, RuntimeError,
};

#[derive(Clone, Debug)]
pub struct Box_ {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub digest: Digest,
    pub policy: PolicyLabels,
    pub gates: GateLabels,
    pub hooks: HookLabels,
    /// A dependent: (the id of the container whose namespace it shares, opted in).
    pub shares_with: Option<(String, bool)>,
    /// Exits as soon as it is started.
    pub dies: bool,
}

#[derive(Default)]
pub struct FakeRuntime {
    pub boxes: Mutex<Vec<Box_>>,
    next: AtomicUsize,
    pulls_now: AtomicUsize,
    pub pulls_max: AtomicUsize,
    pulled: Mutex<HashMap<String, Digest>>,
    /// Successors of these digests exit as soon as they start.
    pub dying_digests: Mutex<Vec<Digest>>,
    /// Successors of dependents of these names exit as soon as they start.
    pub dying_dependents: Mutex<Vec<String>>,
    /// What a hook command returns (exit 0 and no output when not set).
    pub hook_results: Mutex<HashMap<String, ExecRun>>,
    pub ordering: Mutex<Vec<Ordered>>,
    /// The call (numbered from 0 in `calls`) that never returns.
    pub hang_at: Mutex<Option<usize>>,
    /// Every call made, in order (`stop id`, `create name` …).
    pub calls: Mutex<Vec<String>>,
    /// The next this many listings fail as if the Engine were down.
    pub listings_fail: AtomicUsize,
    /// Listings asked for so far.
    pub listings: AtomicUsize,
    /// What every container follows instead of `team/api:prod` (an S3 archive).
    pub follows: Mutex<Option<ImageRef>>,
    /// The answers of the next image loads, in order (a load with none left fails).
    pub loads: Mutex<std::collections::VecDeque<Result<Vec<String>, RuntimeError>>>,
    /// Image ids on this host (loaded ones are added).
    pub images: Mutex<Vec<String>>,
    /// Every tag made: (image id, reference).
    pub tags: Mutex<Vec<(String, String)>>,
    /// Calls (`stop`, `start`, `observe`) that fail as if the Engine timed out: how many
    /// of the next ones, per call.
    pub faults: Mutex<HashMap<&'static str, usize>>,
    /// The bytes of every load, as the Engine would have read them.
    pub loaded_bodies: Mutex<Vec<Vec<u8>>>,
    /// Images removed by `remove_image_if_unused`.
    pub removed_images: Mutex<Vec<String>>,
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
            hooks: HookLabels::default(),
            shares_with: None,
            dies: false,
        });
        id
    }
    /// A container sharing the namespace of `parent` (by name), opted in or not.
    pub fn add_dependent(&self, name: &str, parent: &str, opted_in: bool) -> String {
        let parent_id = self.find_now(parent).expect("parent exists");
        let id = self.add(name, &digest('d'), true);
        self.by_id(&id, |b| b.shares_with = Some((parent_id, opted_in)))
            .unwrap();
        id
    }
    /// Labels container `name` with hooks.
    pub fn label_hooks(&self, name: &str, hooks: HookLabels) {
        let id = self.find_now(name).expect("container exists");
        self.by_id(&id, |b| b.hooks = hooks).unwrap();
    }
    fn find_now(&self, name: &str) -> Option<String> {
        let boxes = self.boxes.lock().unwrap();
        boxes.iter().find(|b| b.name == name).map(|b| b.id.clone())
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
    /// Records a call; the one numbered `hang_at` (from 0) never returns, as if the agent
    /// were killed there.
    async fn enter(&self, what: String) {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(what);
            calls.len() - 1
        };
        if Some(n) == *self.hang_at.lock().unwrap() {
            std::future::pending::<()>().await;
        }
    }
    /// Fails `call` transiently if a fault is armed for it.
    fn fault(&self, call: &'static str) -> Result<(), RuntimeError> {
        let mut faults = self.faults.lock().unwrap();
        match faults.get_mut(call) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err(RuntimeError::transient(call, "timed out (injected)"))
            }
            _ => Ok(()),
        }
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
    async fn load(&self, mut body: crate::ports::ArchiveBody) -> Result<Vec<String>, RuntimeError> {
        use futures::StreamExt;
        self.enter("load".into()).await;
        // The Engine reads to the end (or to the first error) before it answers.
        let mut read = Vec::new();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => read.extend_from_slice(&bytes),
                Err(_) => break,
            }
        }
        self.loaded_bodies.lock().unwrap().push(read);
        let answer = self.loads.lock().unwrap().pop_front();
        let ids =
            answer.unwrap_or_else(|| Err(RuntimeError::permanent("load", "no answer set")))?;
        self.images.lock().unwrap().extend(ids.iter().cloned());
        Ok(ids)
    }
    async fn image_ids(&self) -> Result<std::collections::HashSet<String>, RuntimeError> {
        Ok(self.images.lock().unwrap().iter().cloned().collect())
    }
    async fn has_image(&self, image_id: &str) -> Result<bool, RuntimeError> {
        Ok(self.images.lock().unwrap().iter().any(|i| i == image_id))
    }
    async fn tag(&self, image_id: &str, reference: &str) -> Result<(), RuntimeError> {
        self.tags
            .lock()
            .unwrap()
            .push((image_id.to_owned(), reference.to_owned()));
        Ok(())
    }
    async fn managed(&self, _: &crate::event::Mirrors) -> Result<Vec<Managed>, RuntimeError> {
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
            .filter(|b| b.shares_with.is_none())
            .map(|b| Managed {
                scope: None,
                id: b.id.clone(),
                name: b.name.clone(),
                image: "mirror/team/api:prod".into(),
                follows: self
                    .follows
                    .lock()
                    .unwrap()
                    .clone()
                    .unwrap_or_else(|| ImageRef::parse_repo_tag("team/api:prod").unwrap()),
                digests: vec![b.digest.clone()],
                health_timeout: None,
                stop_timeout: None,
                running_now: b.running,
                policy: b.policy.clone(),
                gates: b.gates.clone(),
                hooks: b.hooks.clone(),
                compose_project: None,
            })
            .collect())
    }
    async fn dependents(&self, id: &str) -> Result<Vec<Dependent>, RuntimeError> {
        let boxes = self.boxes.lock().unwrap();
        Ok(boxes
            .iter()
            .filter_map(|b| {
                let (parent, opted_in) = b.shares_with.as_ref()?;
                (parent == id).then(|| Dependent {
                    id: b.id.clone(),
                    name: b.name.clone(),
                    shares: "network",
                    opted_in: *opted_in,
                    running: b.running,
                })
            })
            .collect())
    }
    async fn ordering(&self) -> Result<Vec<Ordered>, RuntimeError> {
        Ok(self.ordering.lock().unwrap().clone())
    }
    async fn exec(&self, id: &str, command: &str, _: Duration) -> Result<ExecRun, RuntimeError> {
        self.enter(format!("exec {id} {command}")).await;
        let results = self.hook_results.lock().unwrap();
        Ok(results.get(command).cloned().unwrap_or(ExecRun {
            exit_code: Some(0),
            output: String::new(),
            timed_out: false,
            still_running: false,
        }))
    }
    async fn create_dependent(
        &self,
        old: &str,
        name: &str,
        parent: &Repoint,
    ) -> Result<String, RuntimeError> {
        self.enter(format!("create {name}")).await;
        let (old_name, d, opted_in) = self.by_id(old, |b| {
            (
                b.name.clone(),
                b.digest.clone(),
                b.shares_with.clone().map(|s| s.1),
            )
        })?;
        let dies = self.dying_dependents.lock().unwrap().contains(&old_name);
        let id = self.add(name, &d, false);
        self.by_id(&id, |b| {
            b.shares_with = Some((parent.new_id.clone(), opted_in.unwrap_or(true)));
            b.dies = dies;
        })?;
        Ok(id)
    }
    async fn pull(
        &self,
        _: &str,
        d: &Digest,
        _: &PullAuth,
        tag_as: &str,
    ) -> Result<(), RuntimeError> {
        self.enter(format!("pull {d}")).await;
        let now = self.pulls_now.fetch_add(1, Ordering::SeqCst) + 1;
        self.pulls_max.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.pulls_now.fetch_sub(1, Ordering::SeqCst);
        self.pulled.lock().unwrap().insert(tag_as.into(), d.clone());
        Ok(())
    }
    async fn stop(&self, id: &str, _: Duration) -> Result<(), RuntimeError> {
        self.enter(format!("stop {id}")).await;
        // A stop past its timeout: the Engine goes on killing the container.
        let stopped = self.by_id(id, |b| b.running = false);
        self.fault("stop")?;
        stopped
    }
    async fn rename(&self, id: &str, name: &str) -> Result<(), RuntimeError> {
        self.enter(format!("rename {id} {name}")).await;
        self.by_id(id, |b| b.name = name.into())
    }
    async fn create_like(&self, old: &str, name: &str) -> Result<String, RuntimeError> {
        self.enter(format!("create {name}")).await;
        let d = self.pulled.lock().unwrap()["mirror/team/api:prod"].clone();
        let (policy, hooks) = self.by_id(old, |b| (b.policy.clone(), b.hooks.clone()))?;
        let dies = self.dying_digests.lock().unwrap().contains(&d);
        let id = self.add(name, &d, false);
        self.by_id(&id, |b| {
            b.policy = policy;
            b.hooks = hooks;
            b.dies = dies;
        })?;
        Ok(id)
    }
    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.enter(format!("start {id}")).await;
        self.fault("start")?;
        self.by_id(id, |b| b.running = !b.dies)
    }
    async fn observe(&self, id: &str) -> Result<Option<Observed>, RuntimeError> {
        self.fault("observe")?;
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
        self.enter(format!("remove {id}")).await;
        self.boxes.lock().unwrap().retain(|b| b.id != id);
        Ok(())
    }
    async fn image_of(&self, id: &str) -> Result<String, RuntimeError> {
        self.by_id(id, |b| b.digest.to_string())
    }
    async fn remove_image_if_unused(&self, image_id: &str) -> Result<(), RuntimeError> {
        let used = self
            .boxes
            .lock()
            .unwrap()
            .iter()
            .any(|b| b.digest.as_str() == image_id);
        if !used {
            self.images.lock().unwrap().retain(|i| i != image_id);
            self.removed_images
                .lock()
                .unwrap()
                .push(image_id.to_owned());
        }
        Ok(())
    }
}
