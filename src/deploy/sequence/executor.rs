//! The executor: one lock per target, a bounded number of deploys at once, and the one
//! sequence every deploy goes through, container or service:
//!
//! re-read under the lock → stopped? up to date? blocked? refused? → begin the journal row →
//! carry out (a [`swap`](super::swap) or a [`service update`](super::swarm)) → record the
//! outcome → [`report`](super::report) it.
//!
//! Order matters for "never lose a container": the pull happens before the old container is
//! touched, the new one is created beside it, the old one is renamed (not removed) until the
//! new one proved healthy, and volumes are never removed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;
use tracing::{debug, info, instrument, warn};

use super::report::Finished;
use crate::control::policy::Policies;
use crate::deploy::gates::verdicts::{Gate, Held};
use crate::event::{Digest, Home, ImageRef, Mirrors};
use crate::fleet::Fleet;
use crate::gate::Gates;
use crate::image::{self, Desired, Platform};
use crate::ledger::writer::LedgerHandle;
use crate::metrics::Metrics;
use crate::model::Trigger;
use crate::model::labels;
use crate::notify::Notifier;
use crate::ports::{
    Credentials, DeployError, DeployRequest, Deployer, Managed, ManagedService, PullAuth, Runtime,
    RuntimeError, Supply, Target,
};
use crate::stats::MapSizes;
use crate::store::{NewDeployment, Outcome, Phases, Step, Store, StoreError};

/// `[deploy]` and `[registry]` settings the executor needs.
#[derive(Clone, Debug)]
pub struct DeployConfig {
    pub health_timeout: Duration,
    pub min_uptime: Duration,
    pub stop_timeout: Duration,
    pub max_parallel: usize,
    pub remove_old_images: bool,
    pub mirrors: Mirrors,
    /// `[policy]`: what the update-control gate decides with.
    pub policies: Policies,
    /// `[verify]` and `[scan]`: the supply-chain gates.
    pub gates: Gates,
    /// `[fleet]`: this host's wave (SPEC §14).
    pub fleet: Fleet,
    /// `[deploy] scope`: only containers and services labelled with it ("" = unlabelled).
    pub scope: String,
    /// `[state] keep_days`: history older than this is pruned after each sweep.
    pub keep_history: Duration,
}

/// What a deploy of one target came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    /// Nothing to do: up to date, blocked, stopped, or gone meanwhile.
    Nothing,
    /// Not attempted, and why (e.g. a container shares its namespace). Nothing was touched.
    Refused(String),
    /// A deployment was made and recorded with this outcome.
    Finished(Outcome),
    /// Held by a pause, the container's policy or a scan still to come; recorded.
    Held(Held),
    /// A supply-chain gate rejected the digest (now, or before); the reason.
    Rejected(String),
    /// A pre-update hook said "not now" (exit 75) before anything was stopped: no deployment
    /// recorded, a later look tries again; the reason.
    Deferred(String),
}

/// Deploys desired digests to the managed containers and services that follow them.
pub struct Executor<RT, C> {
    pub(in crate::deploy) runtime: Arc<RT>,
    pub(in crate::deploy) credentials: Arc<C>,
    pub(in crate::deploy) store: Arc<Store>,
    pub(in crate::deploy) cfg: DeployConfig,
    parallel: Semaphore,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub(in crate::deploy) metrics: Option<Arc<Metrics>>,
    pub(in crate::deploy) notifier: Notifier,
    /// The fleet ledger's writer, told of every outcome (SPEC §17).
    pub(in crate::deploy) ledger: LedgerHandle,
    /// Where the supply-chain gates get their facts (`None`: only in tests without gates).
    pub(in crate::deploy) supply: Option<Arc<dyn Supply>>,
}

/// Why a deploy went back to the old container, or could not start.
pub(in crate::deploy) struct Failure {
    pub outcome: Outcome,
    pub reason: String,
    /// Docker (or AWS) became unreachable: the request should be retried.
    pub transient: bool,
    /// Not a failure: a pre-update hook said "not now" before anything was stopped.
    pub deferred: bool,
}

impl Failure {
    /// Nothing was changed; the deploy failed, transiently or not as `e` says.
    pub fn failed(e: impl std::fmt::Display, transient: bool) -> Self {
        Self {
            outcome: Outcome::Failed,
            reason: e.to_string(),
            transient,
            deferred: false,
        }
    }

    /// Nothing was changed, and nothing failed: try again later.
    pub fn not_now(reason: String) -> Self {
        Self {
            deferred: true,
            ..Self::failed(reason, false)
        }
    }

    pub fn runtime(e: RuntimeError) -> Self {
        let transient = e.transient;
        Self::failed(e, transient)
    }
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
            ledger: LedgerHandle::disabled(),
            supply: None,
        }
    }

    /// Checks the supply-chain gates with the facts `supply` fetches.
    pub fn with_supply(mut self, supply: Arc<dyn Supply>) -> Self {
        self.supply = Some(supply);
        self
    }

    /// Sends every deployment outcome to `notifier` (webhooks, EventBridge).
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Tells the fleet ledger's writer every deployment outcome (and, through the sweep,
    /// every sweep's rows).
    pub fn with_ledger(mut self, ledger: LedgerHandle) -> Self {
        self.ledger = ledger;
        self
    }

    /// The fleet ledger's writer (disabled without `[fleet] ledger`).
    pub fn ledger(&self) -> &LedgerHandle {
        &self.ledger
    }

    /// Reports deployments (and, through the sweep, container counts) to `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_deref()
    }

    pub fn config(&self) -> &DeployConfig {
        &self.cfg
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
        let all = self.runtime.managed(&self.cfg.mirrors).await?;
        Ok(all
            .into_iter()
            .filter(|m| labels::in_scope(m.scope.as_deref(), &self.cfg.scope))
            .collect())
    }

    /// Managed Swarm services (empty off a manager).
    pub async fn services(&self) -> Result<Vec<ManagedService>, RuntimeError> {
        let all = self.runtime.services(&self.cfg.mirrors).await?;
        Ok(all
            .into_iter()
            .filter(|s| labels::in_scope(s.scope.as_deref(), &self.cfg.scope))
            .collect())
    }

    /// Every target on this host: the managed containers, then the managed services.
    pub async fn targets(&self) -> Result<Vec<Target>, RuntimeError> {
        let containers = self.managed().await?.into_iter().map(Target::Container);
        let services = self.services().await?.into_iter().map(Target::Service);
        Ok(containers.chain(services).collect())
    }

    /// The platform of this host (index entries are matched with it).
    pub async fn platform(&self) -> Result<Platform, RuntimeError> {
        self.runtime.platform().await
    }

    /// Whether `digest` is blocked for `name` (a store error counts as not blocked: the
    /// deploy itself re-checks and fails on a broken store).
    pub(in crate::deploy) fn is_blocked(&self, name: &str, digest: &Digest) -> bool {
        self.store
            .is_blocked(name, digest.as_str())
            .unwrap_or(false)
    }

    /// `key`'s deploy lock. The map keeps only the locks someone holds or waits for (a
    /// container renamed or removed leaves nothing behind): an entry whose only owner is the
    /// map is dropped here, and made anew when asked for again.
    pub(in crate::deploy) fn lock_for(&self, key: String) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.retain(|k, lock| *k == key || Arc::strong_count(lock) > 1);
        let lock = locks.entry(key).or_default().clone();
        if let Some(m) = &self.metrics {
            MapSizes::set(&m.maps().executor_locks, locks.len());
        }
        lock
    }

    /// Prunes the store's history older than `[state] keep_days` (SPEC §16). A failure is
    /// logged: the next sweep tries again.
    pub fn prune_history(&self) {
        let keep = i64::try_from(self.cfg.keep_history.as_millis()).unwrap_or(i64::MAX);
        let cutoff = crate::store::now_ms().saturating_sub(keep);
        match self.store.prune(cutoff) {
            Ok(p) if p.deployments + p.others > 0 => {
                info!(
                    deployments = p.deployments,
                    other_rows = p.others,
                    "history older than [state] keep_days pruned"
                );
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "pruning the history failed; the next sweep tries again"),
        }
    }

    /// How many deploy locks the map holds (someone holds or waits for each, but for the
    /// last one asked for).
    pub fn lock_keys(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Waits until no deploy of `target` is in progress (an operator command decides on what
    /// runs after it, not on what ran before it).
    pub(in crate::deploy) async fn wait_idle(&self, target: &Target) {
        let lock = self.lock_for(target.lock_key());
        drop(lock.lock().await);
    }

    /// The target as it is now, or `None` when it is gone (or no longer managed).
    async fn reread(&self, target: &Target) -> Result<Option<Target>, RuntimeError> {
        let mirrors = &self.cfg.mirrors;
        Ok(match target {
            Target::Container(c) => self
                .runtime
                .inspect_managed(&c.name, mirrors)
                .await?
                .map(Target::Container),
            Target::Service(s) => self
                .services()
                .await?
                .into_iter()
                .find(|x| x.id == s.id)
                .map(Target::Service),
        })
    }

    /// Deploys `desired` to one container or service, unless there is nothing to do.
    #[instrument(name = "deploy", skip_all, fields(container = %target.name(), digest = %desired.digest.short(), %trigger))]
    pub(crate) async fn deploy_target(
        &self,
        target: &Target,
        desired: &Desired,
        trigger: Trigger,
        resolved_in: Duration,
        event_time: Option<SystemTime>,
    ) -> Result<Done, DeployError> {
        let fail =
            |reason: String, transient: bool| DeployError::new(target.follows(), reason, transient);
        let engine = |e: RuntimeError| DeployError::runtime(target.follows(), &e);
        let store = |e: StoreError| fail(e.to_string(), false);
        let lock = self.lock_for(target.lock_key());
        let _one_at_a_time = lock.lock().await;
        let _slot = self.parallel.acquire().await;
        // Re-read under the lock: another deploy of this target may just have finished.
        let Some(t) = self.reread(target).await.map_err(engine)? else {
            return Ok(Done::Nothing);
        };
        if !t.running_now() {
            // Stopped by its operator (or crashed before we came): starting it would override
            // a decision that is not ours. It is updated once it runs again.
            info!(container = %t.name(), "container is not running; not redeploying it");
            return Ok(Done::Nothing);
        }
        let host = self.platform().await.map_err(engine)?;
        if let Some(done) = self
            .nothing_to_do(&t, desired, &host, trigger)
            .await
            .map_err(|e| fail(e.to_string(), e.transient()))?
        {
            return Ok(done);
        }
        let platform = desired.for_platform(&host);
        let id = self.begin(&t, desired, platform, trigger).map_err(store)?;
        let mut phases = Phases {
            resolve_ms: resolved_in.as_millis() as i64,
            ..Default::default()
        };
        let started = Instant::now();
        let result = match &t {
            Target::Container(c) => self.swap(id, c, &desired.digest, &mut phases).await,
            Target::Service(s) => self.update_service(s, &desired.digest, &mut phases).await,
        };
        let (outcome, error, transient) = match result {
            Ok(()) => (Outcome::Succeeded, None, false),
            Err(f) if f.deferred => {
                info!(name = %t.name(), digest = %desired.digest.short(), reason = %f.reason, "deploy deferred");
                self.store.discard(id).map_err(store)?;
                return Ok(Done::Deferred(f.reason));
            }
            Err(f) => (f.outcome, Some(f.reason), f.transient),
        };
        if !(transient && outcome == Outcome::RolledBack) {
            // A rollback cut short by Docker going away stays journalled: recovery finishes it.
            self.store
                .finish(id, outcome, &phases, error.as_deref())
                .map_err(store)?;
        }
        self.report(&Finished {
            target: &t,
            to: &desired.digest,
            platform,
            outcome,
            trigger,
            took: started.elapsed(),
            phases: &phases,
            event_time,
            error: error.as_deref(),
            transient,
        });
        if transient {
            return Err(fail(error.unwrap_or_default(), true));
        }
        if outcome == Outcome::Succeeded
            && let Target::Container(c) = &t
        {
            self.restart_dependents_of(&c.name).await;
        }
        Ok(Done::Finished(outcome))
    }

    /// `Some` when there is nothing to do (up to date, blocked) or the deploy is refused.
    async fn nothing_to_do(
        &self,
        t: &Target,
        desired: &Desired,
        host: &Platform,
        trigger: Trigger,
    ) -> Result<Option<Done>, DeployCheckError> {
        let digest = &desired.digest;
        let matched = image::compare(t.digests(), desired, host);
        if matched.up_to_date() {
            debug!(name = %t.name(), digest = %digest.short(), r#match = ?matched, "up to date");
            return Ok(Some(Done::Nothing));
        }
        if self.store.is_blocked(t.block_key(), digest.as_str())? {
            info!(name = %t.name(), digest = %digest.short(), "digest blocked after a rollback; not deploying it again");
            return Ok(Some(Done::Nothing));
        }
        if trigger.automatic() {
            match self.gate(t, jiff::Timestamp::now())? {
                Gate::Go => {}
                Gate::Held(held) => {
                    self.record_hold(t, desired, &held)?;
                    return Ok(Some(Done::Held(held)));
                }
                Gate::Invalid(why) => return Ok(Some(Done::Refused(why))),
            }
            if let Some(held) = self.wave_gate(t, desired)? {
                self.record_hold(t, desired, &held)?;
                return Ok(Some(Done::Held(held)));
            }
        }
        if let Some(why) = self.stuck(t)? {
            return Ok(Some(Done::Refused(why)));
        }
        if let Some(reason) = self.refusal(t).await? {
            warn!(name = %t.name(), digest = %digest.short(), %reason, "deploy refused");
            self.record_refusal(t, desired, &reason)?;
            return Ok(Some(Done::Refused(reason)));
        }
        self.supply_gates(t, desired, trigger).await
    }

    /// Journals the start of a deployment (step `pulling`); returns its row id.
    fn begin(
        &self,
        t: &Target,
        desired: &Desired,
        platform: Option<&Digest>,
        trigger: Trigger,
    ) -> Result<i64, StoreError> {
        let follows = t.follows();
        self.store.begin(&NewDeployment {
            container: t.block_key(),
            repository: follows.repository.as_str(),
            tag: follows.tag.as_str(),
            from_digest: t.digests().first().map(Digest::as_str),
            to_digest: desired.digest.as_str(),
            platform_digest: platform.map(Digest::as_str),
            trigger: trigger.as_str(),
            old_id: &t.journal_old_id(),
        })
    }

    /// Journals the step about to be taken.
    pub(in crate::deploy) fn journal(&self, id: i64, step: Step) -> Result<(), Failure> {
        self.store
            .step(id, step)
            .map_err(|e| Failure::failed(e, true))
    }
}

/// A check before a deploy could not be made (state store or Engine).
#[derive(Debug, thiserror::Error)]
pub(in crate::deploy) enum DeployCheckError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The gates' facts could not be fetched, for now.
    #[error("{0}")]
    Remote(String),
}

impl DeployCheckError {
    /// Whether the check is worth making again as it is: the Engine or a remote service
    /// away for now; a state store that refuses is not.
    pub(in crate::deploy) fn transient(&self) -> bool {
        match self {
            Self::Store(_) => false,
            Self::Runtime(e) => e.transient,
            Self::Remote(_) => true,
        }
    }
}

mod auth;
mod deployer;
mod sweeper;
pub use deployer::one_at_a_time;

#[cfg(test)]
mod tests;
