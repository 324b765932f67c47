//! Wires the stages together and owns shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Settings};
use crate::event::GateHint;
use crate::fleet::FleetResult;
use crate::intake::local::LocalQueue;
use crate::intake::{self, HintHandler, IntakeConfig, ResultHandler};
use crate::notify::Notifier;
use crate::ports::{Deployer, Queue, Registry};
use crate::reconcile::Reconciler;
use crate::reconcile::promotions;
use crate::request::InFlight;
use crate::stats::Stats;
use crate::store::StoreError;
pub use crate::wiring::{RealExecutor, RealSources, deploy_config, real_stages};

/// How long shutdown waits for work in flight — event work and the sweep alike, one
/// deadline for all — before abandoning it and handing its messages back.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(45);
/// After the grace period: at most this long to undo swaps that were abandoned (their old
/// containers run again). Grace + this stays below the unit's `TimeoutStopSec=90`.
pub const SHUTDOWN_RECOVERY: Duration = Duration::from_secs(40);
/// Requests buffered between intake and reconcile; a full buffer slows the receive loop.
const REQUEST_BUFFER: usize = 1024;

/// The agent's stages over any implementation of the ports.
pub struct Agent<Q, R, D> {
    pub queue: Arc<Q>,
    pub registry: Arc<R>,
    pub deployer: Arc<D>,
    pub stats: Arc<Stats>,
    /// Where messages in trouble are reported (deployments report through the deployer).
    pub notifier: Notifier,
}

impl<Q: Queue, R: Registry, D: Deployer> Agent<Q, R, D> {
    /// Runs until `shutdown` is cancelled, then stops receiving, lets work in flight finish
    /// within `grace`, and makes every unfinished message visible again.
    pub async fn run(&self, settings: &Settings, shutdown: CancellationToken, grace: Duration) {
        self.run_waking(settings, shutdown, grace, None).await
    }

    /// As [`Agent::run`], and notifies `wake_sweep` when the queue answers again after an
    /// outage or a gate hint arrives (so that the sweep looks at once).
    pub async fn run_waking(
        &self,
        settings: &Settings,
        shutdown: CancellationToken,
        grace: Duration,
        wake_sweep: Option<Arc<Notify>>,
    ) {
        self.run_with(settings, shutdown, grace, wake_sweep, None)
            .await
    }

    /// As [`Agent::run_waking`], with a receive loop of its own for `local`, the pushes
    /// the intake listener keeps (SPEC §18); their receipts must reach `local` through
    /// this agent's queue ([`Queues`]).
    pub async fn run_with(
        &self,
        settings: &Settings,
        shutdown: CancellationToken,
        grace: Duration,
        wake_sweep: Option<Arc<Notify>>,
        local: Option<Arc<LocalQueue>>,
    ) {
        let inflight = InFlight::default();
        // A host of wave N > 1 follows the earlier wave's results (SPEC §14).
        let waves = settings.fleet.wave > 1;
        let wake_promotions = Arc::new(Notify::new());
        let visibility = Duration::from_secs(settings.queue.visibility_timeout_seconds.into());
        let cfg = IntakeConfig {
            max_messages: settings.queue.max_messages,
            wait: Duration::from_secs(settings.queue.wait_time_seconds.into()),
            visibility,
            notifier: self.notifier.clone(),
            wake_sweep,
            on_hint: Some({
                let deployer = self.deployer.clone();
                HintHandler(Arc::new(move |hint: &GateHint| deployer.recheck(hint)))
            }),
            on_result: waves.then(|| {
                let deployer = self.deployer.clone();
                ResultHandler(Arc::new(move |r: &FleetResult| deployer.fleet_result(r)))
            }),
            wake_promotions: waves.then(|| wake_promotions.clone()),
        };
        let (tx, rx) = mpsc::channel(REQUEST_BUFFER);
        let promotions = waves.then(|| {
            tokio::spawn(promotions::run(
                self.deployer.clone(),
                tx.clone(),
                wake_promotions,
                shutdown.clone(),
            ))
        });
        let reconciler = Arc::new(Reconciler {
            queue: self.queue.clone(),
            registry: self.registry.clone(),
            deployer: self.deployer.clone(),
            inflight: inflight.clone(),
            stats: self.stats.clone(),
            debounce: settings.debounce(),
            parallel: Arc::new(Semaphore::new(settings.deploy.max_parallel as usize)),
            notifier: self.notifier.clone(),
            applied: Default::default(),
        });
        let local_intake = local.map(|local| {
            tokio::spawn(intake::run(
                local,
                cfg.clone(),
                inflight.clone(),
                self.stats.clone(),
                tx.clone(),
                shutdown.clone(),
            ))
        });
        let intake = tokio::spawn(intake::run(
            self.queue.clone(),
            cfg,
            inflight.clone(),
            self.stats.clone(),
            tx,
            shutdown.clone(),
        ));
        // The heartbeat outlives the receive loop: it covers work finishing in the grace period.
        let heartbeat_stop = CancellationToken::new();
        let heartbeat = tokio::spawn(intake::heartbeat(
            self.queue.clone(),
            inflight.clone(),
            visibility,
            heartbeat_stop.clone(),
        ));
        reconciler.run(rx, shutdown, grace).await;
        let _ = intake.await;
        if let Some(l) = local_intake {
            let _ = l.await;
        }
        if let Some(p) = promotions {
            let _ = p.await;
        }
        heartbeat_stop.cancel();
        let _ = heartbeat.await;
        intake::hand_back(self.queue.as_ref(), &inflight).await;
    }
}

/// Why `run` could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("http.listen {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    /// `DOCKER_HOST` names an address the agent cannot use.
    #[error("{0}")]
    DockerHost(String),
    /// The control socket cannot be served, or the state-store lease cannot be taken.
    #[error("{0}")]
    Control(String),
    /// A `[[registries]]` entry's password or CA file cannot be used.
    #[error("{0}")]
    Registries(String),
    /// The `[intake]` listener cannot be served (its address, token or TLS files).
    #[error("intake.listen: {0}")]
    Intake(String),
}

mod daemon;
pub use daemon::run;

#[cfg(test)]
mod tests;
