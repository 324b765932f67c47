//! The deploy stage over the fakes: fixed pull credentials, the core tests' settings, executor
//! builders, a first deploy, and ECR as a registry where every tag names one digest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::runtime::{FakeRuntime, digest};
use crate::deploy::{DeployConfig, Executor};
use crate::event::{Digest, ImageRef};
use crate::image::Desired;
use crate::ports::{Credentials, PullAuth, Registry, RemoteError, Resolution};
use crate::store::Store;

/// Pull credentials of account 123456789012 in eu-west-2 (the home registry).
pub struct FixedAuth;

pub const HOME_HOST: &str = "123456789012.dkr.ecr.eu-west-2.amazonaws.com";

impl Credentials for FixedAuth {
    async fn pull_auth(&self, _: Option<&str>) -> Result<PullAuth, RemoteError> {
        Ok(PullAuth {
            username: "AWS".into(),
            password: "x".into(),
            registry_host: HOME_HOST.into(),
        })
    }
}

/// The deploy settings of the core's tests.
pub fn test_config(max_parallel: usize) -> DeployConfig {
    DeployConfig {
        keep_history: Duration::from_secs(400 * 86_400),
        gates: Default::default(),
        policies: Default::default(),
        fleet: Default::default(),
        health_timeout: Duration::from_secs(10),
        min_uptime: Duration::from_secs(1),
        stop_timeout: Duration::from_secs(1),
        max_parallel,
        remove_old_images: false,
        mirrors: crate::event::Mirrors::single(Some("mirror")),
        scope: String::new(),
    }
}

/// An executor over `rt` with a store in a temporary directory (kept alive by the guard).
pub fn executor(
    rt: FakeRuntime,
    max_parallel: usize,
) -> (tempfile::TempDir, Executor<FakeRuntime, FixedAuth>) {
    let dir = tempfile::tempdir().unwrap();
    let ex = executor_on(Arc::new(rt), &dir, max_parallel);
    (dir, ex)
}

/// An executor over a shared `rt` and the store in `dir` (a second agent on one host).
pub fn executor_on(
    rt: Arc<FakeRuntime>,
    dir: &tempfile::TempDir,
    max_parallel: usize,
) -> Executor<FakeRuntime, FixedAuth> {
    let store = Arc::new(Store::open(&dir.path().join("state.db")).unwrap());
    Executor::new(rt, Arc::new(FixedAuth), store, test_config(max_parallel))
}

/// Deploys digest `to` (see [`digest`]) to the first managed container as `trigger`.
pub async fn deploy_first(
    ex: &Executor<FakeRuntime, FixedAuth>,
    to: char,
    trigger: crate::model::Trigger,
) -> crate::deploy::Done {
    let t = crate::ports::Target::Container(ex.managed().await.unwrap().remove(0));
    let desired = crate::image::Desired::single(digest(to));
    ex.deploy_target(&t, &desired, trigger, Duration::ZERO, None)
        .await
        .unwrap()
}

/// A registry where every tag names one digest (ECR after one push); it remembers what it
/// was asked.
pub struct OneTag {
    digest: Digest,
    asked: Mutex<Vec<ImageRef>>,
}

impl OneTag {
    pub fn new(digest: Digest) -> Self {
        Self {
            digest,
            asked: Mutex::default(),
        }
    }

    /// Every image it was asked to resolve, in order.
    pub fn asked(&self) -> Vec<ImageRef> {
        self.asked.lock().unwrap().clone()
    }
}

impl Registry for OneTag {
    async fn resolve(&self, images: &[ImageRef]) -> HashMap<ImageRef, Resolution> {
        self.asked.lock().unwrap().extend(images.iter().cloned());
        let found = || Ok(Some(Desired::single(self.digest.clone())));
        images.iter().map(|i| (i.clone(), found())).collect()
    }
}
