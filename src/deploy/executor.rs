//! The container executor: pull by digest, journalled swap, health gate, commit or roll back,
//! and start-up recovery of a swap a crash interrupted (SPEC §6).
//!
//! Order matters for "never lose a container": the pull happens before the old container is
//! touched, the old container is renamed (not removed) until the new one proved healthy, and
//! volumes are never removed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;
use tracing::{debug, error, info, warn};

use crate::adapters::docker::OLD_SUFFIX;
use crate::event::{Digest, ImageRef};
use crate::image::{self, Desired, Match, Platform};
use crate::metrics::Metrics;
use crate::notify::{DeploymentNotice, Durations, Notice, Notifier};
use crate::ports::{
    Credentials, DeployError, DeployRequest, Deployer, Managed, ManagedService, Runtime,
    RuntimeError, ServiceUpdate,
};
use crate::store::{NewDeployment, Outcome, Phases, Step, Store, StoreError};

/// How often the health gate looks at the new container.
const HEALTH_POLL: Duration = Duration::from_millis(250);
/// Beyond a stop timeout, how long a stop started by a killed agent may still take.
const SETTLE_MARGIN: Duration = Duration::from_secs(2);
/// How often a service update's progress is read.
const SERVICE_POLL: Duration = Duration::from_millis(500);
/// A service update still running after this is recorded as failed (Swarm carries on).
const SERVICE_UPDATE_LIMIT: Duration = Duration::from_secs(30 * 60);
/// Journal rows of service updates name the service as `service:<id>`.
const SERVICE_JOURNAL_PREFIX: &str = "service:";

/// `[deploy]` and `[registry]` settings the executor needs.
#[derive(Clone, Debug)]
pub struct DeployConfig {
    pub health_timeout: Duration,
    pub min_uptime: Duration,
    pub stop_timeout: Duration,
    pub max_parallel: usize,
    pub remove_old_images: bool,
    pub mirror: Option<String>,
}

/// Deploys desired digests to the managed containers that follow them.
pub struct Executor<RT, C> {
    runtime: Arc<RT>,
    credentials: Arc<C>,
    store: Arc<Store>,
    cfg: DeployConfig,
    parallel: Semaphore,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    metrics: Option<Arc<Metrics>>,
    notifier: Notifier,
}

/// What a deployment row starts from.
struct Opening<'a> {
    name: &'a str,
    follows: &'a ImageRef,
    /// Every digest of what runs now; the first is recorded as "from".
    running: &'a [Digest],
    desired: &'a Desired,
    host: &'a Platform,
    trigger: &'a str,
    /// The old container's id, or `service:<id>`.
    old_id: &'a str,
}

/// What a finished deployment reports (log line, metrics, notification).
struct Finished<'a> {
    kind: &'static str,
    name: &'a str,
    follows: &'a ImageRef,
    from: Option<&'a Digest>,
    to: &'a Digest,
    /// The index's manifest for this host, when the tag names an index.
    platform: Option<&'a Digest>,
    outcome: Outcome,
    trigger: &'a str,
    took: Duration,
    phases: &'a Phases,
    event_time: Option<SystemTime>,
    error: Option<&'a str>,
    /// Docker went away mid-deploy: logged, not counted (the request is retried).
    transient: bool,
}

/// What `rollback` did.
#[derive(Clone, Debug)]
pub struct Rollback {
    pub from: Digest,
    pub to: Digest,
    pub outcome: Outcome,
}

/// Why a swap went back to the old container, or could not start.
struct Failure {
    outcome: Outcome,
    reason: String,
    /// Docker became unreachable: the request should be retried.
    transient: bool,
}

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    pub fn new(
        runtime: Arc<RT>,
        credentials: Arc<C>,
        store: Arc<Store>,
        cfg: DeployConfig,
    ) -> Self {
        Self {
            runtime,
            credentials,
            store,
            parallel: Semaphore::new(cfg.max_parallel.max(1)),
            cfg,
            locks: Mutex::default(),
            metrics: None,
            notifier: Notifier::disabled(),
        }
    }

    /// Sends every deployment outcome to `notifier` (webhooks, EventBridge).
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Reports deployments (and, through the sweep, container counts) to `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_deref()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn runtime(&self) -> &RT {
        &self.runtime
    }

    pub fn credentials(&self) -> &C {
        &self.credentials
    }

    /// The managed containers, as the runtime sees them now.
    pub async fn managed(&self) -> Result<Vec<Managed>, RuntimeError> {
        self.runtime.managed(self.cfg.mirror.as_deref()).await
    }

    /// Whether `digest` is blocked for `container` (a store error counts as not blocked:
    /// the deploy itself re-checks and fails on a broken store).
    pub fn is_blocked(&self, container: &str, digest: &Digest) -> bool {
        self.store
            .is_blocked(container, digest.as_str())
            .unwrap_or(false)
    }

    /// `rollback`: redeploys `to`, or the digest the container (or Swarm service) ran before
    /// its current one, through the same journalled swap or service update (trigger
    /// `manual`), then blocks the digest it left.
    pub async fn rollback(&self, name: &str, to: Option<Digest>) -> Result<Rollback, String> {
        let managed = self.managed().await.map_err(|e| e.to_string())?;
        if let Some(c) = managed.into_iter().find(|m| m.name == name) {
            let current = c.running().cloned().ok_or_else(|| {
                format!("the digest {name} runs is unknown (its image has no RepoDigests)")
            })?;
            let target = self.rollback_target(name, &c.digests, to)?;
            let outcome = self
                .deploy_container(
                    &c,
                    &Desired::single(target.clone()),
                    "manual",
                    Duration::ZERO,
                    None,
                )
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{name} is not running; start it first"))?;
            return self.rolled_back(name, current, target, outcome);
        }
        let services = self.services().await.map_err(|e| e.to_string())?;
        let s = services
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("no managed container or service named {name:?}"))?;
        let current = s.running().cloned().ok_or_else(|| {
            format!("the service spec of {name} pins no digest; name one with --to DIGEST")
        })?;
        let target = self.rollback_target(name, &s.digests, to)?;
        let outcome = self
            .deploy_service(
                &s,
                &Desired::single(target.clone()),
                "manual",
                Duration::ZERO,
                None,
            )
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{name} changed meanwhile; look at `ecr-deployd status`"))?;
        self.rolled_back(name, current, target, outcome)
    }

    /// The digest a rollback goes to (`to`, or the one before `current`), unblocked.
    fn rollback_target(
        &self,
        name: &str,
        current: &[Digest],
        to: Option<Digest>,
    ) -> Result<Digest, String> {
        let target = match to {
            Some(d) => d,
            None => self.previous_digest(name, current)?,
        };
        if current.contains(&target) {
            return Err(format!("{name} already runs {target}"));
        }
        self.store
            .unblock(name, target.as_str())
            .map_err(|e| e.to_string())?;
        Ok(target)
    }

    /// After a rollback's deploy: the digest left is blocked if the rollback worked.
    fn rolled_back(
        &self,
        name: &str,
        from: Digest,
        to: Digest,
        outcome: Outcome,
    ) -> Result<Rollback, String> {
        if outcome == Outcome::Succeeded {
            self.store
                .block(name, from.as_str(), "rolled back by the operator")
                .map_err(|e| e.to_string())?;
        }
        Ok(Rollback { from, to, outcome })
    }

    /// The digest the container or service ran before its current one (known under any of
    /// the digests in `current`), from the history.
    fn previous_digest(&self, name: &str, current: &[Digest]) -> Result<Digest, String> {
        let history = self
            .store
            .history(Some(name), 1000)
            .map_err(|e| e.to_string())?;
        history
            .iter()
            .find(|d| {
                d.outcome == Some(Outcome::Succeeded)
                    && current.iter().any(|c| {
                        d.to_digest == c.as_str()
                            || d.platform_digest.as_deref() == Some(c.as_str())
                    })
            })
            .and_then(|d| d.from_digest.as_deref())
            .and_then(|d| Digest::parse(d).ok())
            .ok_or_else(|| {
                format!("no earlier digest of {name} is recorded; name one with --to DIGEST")
            })
    }

    fn lock_for(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.entry(name.to_owned()).or_default().clone()
    }

    /// Deploys `desired` to one container, unless it runs it already or it is blocked.
    /// Returns the outcome when a deployment was made.
    pub async fn deploy_container(
        &self,
        container: &Managed,
        desired: &Desired,
        trigger: &str,
        resolved_in: Duration,
        event_time: Option<SystemTime>,
    ) -> Result<Option<Outcome>, DeployError> {
        let lock = self.lock_for(&container.name);
        let _one_at_a_time = lock.lock().await;
        let _slot = self.parallel.acquire().await;
        let fail = |reason: String| DeployError {
            image: container.follows.clone(),
            reason,
        };
        // Re-read under the lock: another deploy of this container may just have finished.
        let managed = self
            .runtime
            .managed(self.cfg.mirror.as_deref())
            .await
            .map_err(|e| fail(e.to_string()))?;
        let Some(c) = managed.into_iter().find(|m| m.name == container.name) else {
            return Ok(None);
        };
        let host = self.platform().await.map_err(|e| fail(e.to_string()))?;
        if !c.running_now {
            // Stopped by its operator (or crashed before we came): starting it would override
            // a decision that is not ours. It is updated once it runs again.
            info!(container = %c.name, "container is not running; not redeploying it");
            return Ok(None);
        }
        let Some(id) = self
            .open_deployment(&Opening {
                name: &c.name,
                follows: &c.follows,
                running: &c.digests,
                desired,
                host: &host,
                trigger,
                old_id: &c.id,
            })
            .map_err(|e| fail(e.to_string()))?
        else {
            return Ok(None);
        };
        let mut phases = Phases {
            resolve_ms: resolved_in.as_millis() as i64,
            ..Default::default()
        };
        let started = Instant::now();
        let result = self.swap(id, &c, &desired.digest, &mut phases).await;
        let (outcome, error, transient) = match result {
            Ok(()) => (Outcome::Succeeded, None, false),
            Err(f) => (f.outcome, Some(f.reason), f.transient),
        };
        if !(transient && outcome == Outcome::RolledBack) {
            // A rollback cut short by Docker going away stays journalled: recovery finishes it.
            self.store
                .finish(id, outcome, &phases, error.as_deref())
                .map_err(|e| fail(e.to_string()))?;
        }
        self.report(&Finished {
            kind: "container",
            name: &c.name,
            follows: &c.follows,
            from: c.running(),
            to: &desired.digest,
            platform: desired.for_platform(&host),
            outcome,
            trigger,
            took: started.elapsed(),
            phases: &phases,
            event_time,
            error: error.as_deref(),
            transient,
        });
        if transient {
            return Err(fail(error.unwrap_or_default()));
        }
        Ok(Some(outcome))
    }

    /// Starts the deployment row, unless `desired` runs already or is blocked for `name`
    /// (then `None`: nothing to do).
    fn open_deployment(&self, o: &Opening<'_>) -> Result<Option<i64>, StoreError> {
        let digest = &o.desired.digest;
        if let m @ (Match::Exact | Match::Platform(_)) =
            image::compare(o.running, o.desired, o.host)
        {
            debug!(name = %o.name, digest = %digest.short(), r#match = ?m, "up to date");
            return Ok(None);
        }
        if self.store.is_blocked(o.name, digest.as_str())? {
            info!(name = %o.name, digest = %digest.short(), "digest blocked after a rollback; not deploying it again");
            return Ok(None);
        }
        self.store
            .begin(&NewDeployment {
                container: o.name,
                repository: o.follows.repository.as_str(),
                tag: o.follows.tag.as_str(),
                from_digest: o.running.first().map(Digest::as_str),
                to_digest: digest.as_str(),
                platform_digest: o.desired.for_platform(o.host).map(Digest::as_str),
                trigger: o.trigger,
                old_id: o.old_id,
            })
            .map(Some)
    }

    /// One log line, the metrics and the notification of a finished deployment.
    fn report(&self, f: &Finished<'_>) {
        let event_to_running = f
            .event_time
            .filter(|_| f.outcome == Outcome::Succeeded)
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        info!(
            kind = f.kind,
            name = %f.name,
            image = %f.follows,
            from = %f.from.map(|d| d.short().to_owned()).unwrap_or_else(|| "-".into()),
            to = %f.to.short(),
            platform = %f.platform.map(|d| d.short().to_owned()).unwrap_or_else(|| "-".into()),
            outcome = f.outcome.as_str(),
            trigger = f.trigger,
            total_ms = f.took.as_millis() as u64,
            pull_ms = f.phases.pull_ms,
            stop_ms = f.phases.stop_ms,
            swap_ms = f.phases.swap_ms,
            health_ms = f.phases.health_ms,
            event_to_running_ms = event_to_running.map(|d| d.as_millis() as u64),
            error = f.error.unwrap_or(""),
            "deployment"
        );
        if f.transient {
            return;
        }
        if let Some(m) = &self.metrics {
            m.deployed(f.outcome, f.took, event_to_running);
        }
        self.notifier.send(Notice::Deployment(DeploymentNotice {
            host: self.notifier.host().to_owned(),
            kind: f.kind,
            container: f.name.to_owned(),
            repository: f.follows.repository.as_str().to_owned(),
            tag: f.follows.tag.as_str().to_owned(),
            from_digest: f.from.map(ToString::to_string),
            to_digest: f.to.to_string(),
            platform_digest: f.platform.map(ToString::to_string),
            outcome: f.outcome.as_str(),
            trigger: f.trigger.to_owned(),
            error: f.error.map(str::to_owned),
            durations_ms: Durations::new(f.phases, f.took, event_to_running),
        }));
    }

    /// Managed Swarm services (empty off a manager).
    /// The platform of this host (index entries are matched with it).
    pub async fn platform(&self) -> Result<Platform, RuntimeError> {
        self.runtime.platform().await
    }

    pub async fn services(&self) -> Result<Vec<ManagedService>, RuntimeError> {
        self.runtime.services(self.cfg.mirror.as_deref()).await
    }

    /// Deploys `desired` to a Swarm service: one service update, which Swarm rolls out with
    /// the service's own update_config (parallelism, delay, monitor, failure_action), followed
    /// to its end. Returns the outcome when an update was made.
    pub async fn deploy_service(
        &self,
        service: &ManagedService,
        desired: &Desired,
        trigger: &str,
        resolved_in: Duration,
        event_time: Option<SystemTime>,
    ) -> Result<Option<Outcome>, DeployError> {
        let lock = self.lock_for(&format!("service:{}", service.name));
        let _one_at_a_time = lock.lock().await;
        let _slot = self.parallel.acquire().await;
        let fail = |reason: String| DeployError {
            image: service.follows.clone(),
            reason,
        };
        let services = self.services().await.map_err(|e| fail(e.to_string()))?;
        let Some(s) = services.into_iter().find(|x| x.id == service.id) else {
            return Ok(None);
        };
        let host = self.platform().await.map_err(|e| fail(e.to_string()))?;
        let journal_id = format!("{SERVICE_JOURNAL_PREFIX}{}", s.id);
        let Some(id) = self
            .open_deployment(&Opening {
                name: &s.name,
                follows: &s.follows,
                running: &s.digests,
                desired,
                host: &host,
                trigger,
                old_id: &journal_id,
            })
            .map_err(|e| fail(e.to_string()))?
        else {
            return Ok(None);
        };
        let mut phases = Phases {
            resolve_ms: resolved_in.as_millis() as i64,
            ..Default::default()
        };
        let started = Instant::now();
        let result = self.update_service(&s, &desired.digest).await;
        phases.swap_ms = started.elapsed().as_millis() as i64;
        let (outcome, error, transient) = match result {
            Ok(()) => (Outcome::Succeeded, None, false),
            Err(f) => (f.outcome, Some(f.reason), f.transient),
        };
        if outcome == Outcome::RolledBack {
            let reason = format!(
                "Swarm rolled the update back: {}",
                error.as_deref().unwrap_or_default()
            );
            if let Err(e) = self.store.block(&s.name, desired.digest.as_str(), &reason) {
                error!(service = %s.name, error = %e, "could not block the rolled-back digest");
            }
        }
        self.store
            .finish(id, outcome, &phases, error.as_deref())
            .map_err(|e| fail(e.to_string()))?;
        self.report(&Finished {
            kind: "service",
            name: &s.name,
            follows: &s.follows,
            from: s.running(),
            to: &desired.digest,
            platform: desired.for_platform(&host),
            outcome,
            trigger,
            took: started.elapsed(),
            phases: &phases,
            event_time,
            error: error.as_deref(),
            transient,
        });
        if transient {
            // Docker was unreachable before the update was sent: the request is retried.
            return Err(fail(error.unwrap_or_default()));
        }
        Ok(Some(outcome))
    }

    /// Sends the update and follows `UpdateStatus` until the update or its rollback ends.
    async fn update_service(&self, s: &ManagedService, desired: &Digest) -> Result<(), Failure> {
        let failed = |e: RuntimeError| Failure {
            outcome: Outcome::Failed,
            transient: e.transient,
            reason: e.to_string(),
        };
        let auth = self.credentials.pull_auth().await.map_err(|e| Failure {
            outcome: Outcome::Failed,
            transient: e.transient,
            reason: e.to_string(),
        })?;
        let host = self
            .cfg
            .mirror
            .clone()
            .unwrap_or_else(|| auth.registry_host.clone());
        let image = format!(
            "{host}/{}:{}@{desired}",
            s.follows.repository.as_str(),
            s.follows.tag.as_str()
        );
        let before = self
            .runtime
            .update_service(&s.id, &image, &auth)
            .await
            .map_err(failed)?;
        let deadline = Instant::now() + SERVICE_UPDATE_LIMIT;
        loop {
            tokio::time::sleep(SERVICE_POLL).await;
            let now = match self.runtime.service_update(&s.id).await {
                Ok(u) => u,
                Err(e) if e.transient && Instant::now() < deadline => continue,
                Err(e) => {
                    return Err(Failure {
                        outcome: Outcome::Failed,
                        transient: false,
                        reason: format!("the update was sent; following it failed: {e}"),
                    });
                }
            };
            let fresh = |u: &ServiceUpdate| {
                before
                    .as_ref()
                    .is_none_or(|b| b.started_at != u.started_at || !b.finished())
            };
            match now {
                Some(u) if fresh(&u) && u.finished() => {
                    let why = || {
                        if u.message.is_empty() {
                            u.state.clone()
                        } else {
                            format!("{}: {}", u.state, u.message)
                        }
                    };
                    return match u.state.as_str() {
                        "completed" => Ok(()),
                        "rollback_completed" => Err(Failure {
                            outcome: Outcome::RolledBack,
                            transient: false,
                            reason: why(),
                        }),
                        _ => Err(Failure {
                            outcome: Outcome::Failed,
                            transient: false,
                            reason: format!(
                                "{} — hint: set the service's update failure_action to rollback",
                                why()
                            ),
                        }),
                    };
                }
                _ if Instant::now() >= deadline => {
                    return Err(Failure {
                        outcome: Outcome::Failed,
                        transient: false,
                        reason: format!(
                            "the update has not finished after {} s; Swarm carries on with it",
                            SERVICE_UPDATE_LIMIT.as_secs()
                        ),
                    });
                }
                _ => {}
            }
        }
    }

    async fn swap(
        &self,
        id: i64,
        c: &Managed,
        desired: &Digest,
        phases: &mut Phases,
    ) -> Result<(), Failure> {
        let failed = |e: RuntimeError| Failure {
            outcome: Outcome::Failed,
            transient: e.transient,
            reason: e.to_string(),
        };
        // 1. Pull: the old container is untouched until the new image is here and verified.
        let t = Instant::now();
        let auth = self.credentials.pull_auth().await.map_err(|e| Failure {
            outcome: Outcome::Failed,
            transient: e.transient,
            reason: e.to_string(),
        })?;
        let host = self
            .cfg
            .mirror
            .clone()
            .unwrap_or_else(|| auth.registry_host.clone());
        let source = format!("{host}/{}@{desired}", c.follows.repository.as_str());
        self.runtime
            .pull(&source, desired, &auth, &c.image)
            .await
            .map_err(failed)?;
        let old_image = self.runtime.image_of(&c.id).await.ok();
        phases.pull_ms = t.elapsed().as_millis() as i64;

        // 2. Stop and park the old container.
        let t = Instant::now();
        self.journal(id, Step::Stopping)?;
        if let Err(e) = self
            .runtime
            .stop(&c.id, c.stop_timeout.unwrap_or(self.cfg.stop_timeout))
            .await
        {
            self.restart_old(c).await;
            return Err(failed(e));
        }
        self.journal(id, Step::Renaming)?;
        if let Err(e) = self
            .runtime
            .rename(&c.id, &format!("{}{OLD_SUFFIX}", c.name))
            .await
        {
            self.restart_old(c).await;
            return Err(failed(e));
        }
        phases.stop_ms = t.elapsed().as_millis() as i64;

        // 3. Create with the old configuration and start.
        let t = Instant::now();
        self.journal(id, Step::Creating)?;
        let new_id = match self.runtime.create_like(&c.id, &c.name).await {
            Ok(n) => n,
            Err(e) => return Err(self.roll_back(id, c, None, desired, e.to_string()).await),
        };
        let _ = self.store.set_new_id(id, &new_id);
        self.journal(id, Step::Starting)?;
        if let Err(e) = self.runtime.start(&new_id).await {
            return Err(self
                .roll_back(id, c, Some(&new_id), desired, e.to_string())
                .await);
        }
        phases.swap_ms = t.elapsed().as_millis() as i64;

        // 4. Health gate.
        let t = Instant::now();
        self.journal(id, Step::HealthGate)?;
        let gate = self
            .health_gate(&new_id, c.health_timeout.unwrap_or(self.cfg.health_timeout))
            .await;
        phases.health_ms = t.elapsed().as_millis() as i64;
        if let Err(reason) = gate {
            return Err(self.roll_back(id, c, Some(&new_id), desired, reason).await);
        }

        // 5. Commit: the old container goes, its volumes stay.
        self.journal(id, Step::Committing)?;
        if let Err(e) = self.runtime.remove(&c.id).await {
            warn!(container = %c.name, error = %e, "could not remove the old container; recovery will");
        }
        if self.cfg.remove_old_images
            && let Some(image) = old_image
        {
            let _ = self.runtime.remove_image_if_unused(&image).await;
        }
        Ok(())
    }

    fn journal(&self, id: i64, step: Step) -> Result<(), Failure> {
        self.store.step(id, step).map_err(|e| Failure {
            outcome: Outcome::Failed,
            transient: true,
            reason: e.to_string(),
        })
    }

    /// Waits for `healthy`, or (no HEALTHCHECK) for the container to stay up `min_uptime`.
    async fn health_gate(&self, id: &str, health_timeout: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let seen = match self.runtime.observe(id).await {
                Ok(Some(o)) => o,
                Ok(None) => return Err("the new container disappeared".into()),
                Err(e) => return Err(e.to_string()),
            };
            if !seen.running {
                return Err(format!(
                    "the new container exited (code {})",
                    seen.exit_code.unwrap_or(-1)
                ));
            }
            if seen.restart_count > 0 {
                return Err(format!(
                    "the new container restarted {} time(s)",
                    seen.restart_count
                ));
            }
            match seen.health.as_deref() {
                Some("healthy") => return Ok(()),
                Some("unhealthy") => return Err("the new container is unhealthy".into()),
                Some(_) if started.elapsed() >= health_timeout => {
                    return Err(format!(
                        "the new container was not healthy within {}s",
                        health_timeout.as_secs()
                    ));
                }
                None if started.elapsed() >= self.cfg.min_uptime => return Ok(()),
                _ => {}
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    /// Best effort: the old container runs again under its own name.
    async fn restart_old(&self, c: &Managed) {
        let _ = self.runtime.rename(&c.id, &c.name).await;
        if let Err(e) = self.runtime.start(&c.id).await {
            error!(container = %c.name, error = %e, "could not restart the old container");
        }
    }

    /// Removes the new container, puts the old one back and blocks the digest.
    async fn roll_back(
        &self,
        id: i64,
        c: &Managed,
        new_id: Option<&str>,
        desired: &Digest,
        reason: String,
    ) -> Failure {
        warn!(container = %c.name, digest = %desired.short(), %reason, "rolling back");
        let _ = self.store.step(id, Step::RollingBack);
        let restored = self.restore(&c.name, &c.id, new_id).await;
        if let Err(e) = self.store.block(&c.name, desired.as_str(), &reason) {
            error!(container = %c.name, error = %e, "could not block the digest");
        }
        match restored {
            Ok(()) => Failure {
                outcome: Outcome::RolledBack,
                reason,
                transient: false,
            },
            Err(e) => Failure {
                outcome: Outcome::RolledBack,
                transient: e.transient,
                reason: format!("{reason}; rollback incomplete: {e}"),
            },
        }
    }

    /// Exactly one container called `name`, the old one, running.
    async fn restore(
        &self,
        name: &str,
        old_id: &str,
        new_id: Option<&str>,
    ) -> Result<(), RuntimeError> {
        if let Some(new_id) = new_id {
            self.runtime.remove(new_id).await?;
        }
        if let Some(holder) = self.runtime.find(name).await?
            && holder != old_id
        {
            self.runtime.remove(&holder).await?;
        }
        if self.runtime.find(name).await?.as_deref() != Some(old_id) {
            self.runtime.rename(old_id, name).await?;
        }
        self.runtime.start(old_id).await
    }

    /// Starts `id` whenever it is found stopped during `window`.
    async fn keep_running(&self, id: &str, window: Duration) -> Result<(), RuntimeError> {
        let until = Instant::now() + window;
        while Instant::now() < until {
            if let Some(seen) = self.runtime.observe(id).await?
                && !seen.running
            {
                self.runtime.start(id).await?;
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
        Ok(())
    }

    /// Finishes or undoes swaps a crash interrupted. Run before any new deploy.
    pub async fn recover(&self) -> Result<usize, RuntimeError> {
        let open = self.store.unfinished().map_err(|e| RuntimeError {
            operation: "read journal",
            message: e.to_string(),
            transient: false,
        })?;
        for d in &open {
            let old_id = d.old_id.clone().unwrap_or_default();
            let (outcome, note) = match d.step {
                _ if old_id.starts_with(SERVICE_JOURNAL_PREFIX) => (
                    Outcome::Failed,
                    "interrupted while Swarm updated the service; Swarm finishes or rolls back the update by itself, the next sweep records where it ended"
                        .to_owned(),
                ),
                Step::Pulling => (
                    Outcome::Failed,
                    "interrupted before the old container was touched".to_owned(),
                ),
                Step::Committing | Step::Done => {
                    self.runtime.remove(&old_id).await?;
                    (
                        Outcome::Succeeded,
                        "commit completed after a restart".to_owned(),
                    )
                }
                step => {
                    self.restore(&d.container, &old_id, d.new_id.as_deref())
                        .await?;
                    if step == Step::Stopping {
                        // The killed agent's stop request may still be under way in the Engine
                        // and kill the container once its timeout passes: watch it through that
                        // window and start it again if it goes down.
                        self.keep_running(&old_id, self.cfg.stop_timeout + SETTLE_MARGIN)
                            .await?;
                    }
                    (
                        Outcome::RolledBack,
                        format!(
                            "interrupted at step {}; the previous container was restored",
                            step.as_str()
                        ),
                    )
                }
            };
            warn!(container = %d.container, to = %d.to_digest, outcome = outcome.as_str(), %note, "recovered an interrupted deployment");
            self.store
                .finish(d.id, outcome, &d.phases, Some(&note))
                .map_err(|e| RuntimeError {
                    operation: "record recovery",
                    message: e.to_string(),
                    transient: false,
                })?;
        }
        Ok(open.len())
    }
}

impl<RT: Runtime, C: Credentials> Deployer for Executor<RT, C> {
    async fn deploy(&self, request: DeployRequest) -> Result<(), DeployError> {
        let fail = |e: RuntimeError| DeployError {
            image: request.image.clone(),
            reason: e.to_string(),
        };
        let managed = self
            .runtime
            .managed(self.cfg.mirror.as_deref())
            .await
            .map_err(fail)?;
        let targets: Vec<Managed> = managed
            .into_iter()
            .filter(|m| request.image.matches(&m.follows))
            .collect();
        let services: Vec<ManagedService> = self
            .services()
            .await
            .map_err(fail)?
            .into_iter()
            .filter(|s| request.image.matches(&s.follows))
            .collect();
        if targets.is_empty() && services.is_empty() {
            info!(image = %request.image, desired = %request.desired.digest, "desired digest resolved; no managed container or service follows this tag");
            return Ok(());
        }
        let trigger = request.trigger.to_string();
        let containers = futures::future::join_all(targets.iter().map(|c| {
            self.deploy_container(
                c,
                &request.desired,
                &trigger,
                request.resolved_in,
                request.event_time,
            )
        }));
        let services = futures::future::join_all(services.iter().map(|s| {
            self.deploy_service(
                s,
                &request.desired,
                &trigger,
                request.resolved_in,
                request.event_time,
            )
        }));
        let (containers, services) = futures::future::join(containers, services).await;
        // Anything that could not be finished keeps the request on the queue.
        containers
            .into_iter()
            .chain(services)
            .find_map(Result::err)
            .map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests;
