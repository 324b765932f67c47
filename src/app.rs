//! Wires the stages together and owns shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::adapters::{aws, ecr::EcrRegistry, sqs::SqsQueue};
use crate::config::{ConfigError, Settings};
use crate::deploy::LogOnly;
use crate::intake::{self, InFlight, IntakeConfig};
use crate::ports::{Deployer, Queue, Registry};
use crate::reconcile::Reconciler;
use crate::stats::Stats;

/// How long shutdown waits for work in flight before handing its messages back.
/// The systemd unit's `TimeoutStopSec` must stay above this.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);
/// Requests buffered between intake and reconcile; a full buffer slows the receive loop.
const REQUEST_BUFFER: usize = 1024;

/// The agent's stages over any implementation of the ports.
pub struct Agent<Q, R, D> {
    pub queue: Arc<Q>,
    pub registry: Arc<R>,
    pub deployer: Arc<D>,
    pub stats: Arc<Stats>,
}

impl<Q: Queue, R: Registry, D: Deployer> Agent<Q, R, D> {
    /// Runs until `shutdown` is cancelled, then stops receiving, lets work in flight finish
    /// within `grace`, and makes every unfinished message visible again.
    pub async fn run(&self, settings: &Settings, shutdown: CancellationToken, grace: Duration) {
        let inflight = InFlight::default();
        let visibility = Duration::from_secs(settings.queue.visibility_timeout_seconds.into());
        let cfg = IntakeConfig {
            max_messages: settings.queue.max_messages,
            wait: Duration::from_secs(settings.queue.wait_time_seconds.into()),
            visibility,
        };
        let (tx, rx) = mpsc::channel(REQUEST_BUFFER);
        let reconciler = Arc::new(Reconciler {
            queue: self.queue.clone(),
            registry: self.registry.clone(),
            deployer: self.deployer.clone(),
            inflight: inflight.clone(),
            stats: self.stats.clone(),
            debounce: settings.debounce(),
            parallel: Arc::new(Semaphore::new(settings.deploy.max_parallel as usize)),
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
        heartbeat_stop.cancel();
        let _ = heartbeat.await;
        intake::hand_back(self.queue.as_ref(), &inflight).await;
    }
}

/// `ecr-deployd run`: the daemon on the real adapters, until `shutdown` completes.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConfigError> {
    settings.require_queue()?;
    let sdk = aws::sdk_config(&settings).await;
    let wait = Duration::from_secs(settings.queue.wait_time_seconds.into());
    let agent = Agent {
        queue: Arc::new(SqsQueue::new(&sdk, &settings.queue.url, wait)),
        registry: Arc::new(EcrRegistry::new(&sdk)),
        deployer: Arc::new(LogOnly),
        stats: Arc::default(),
    };
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        info!("shutdown requested");
        trigger.cancel();
    });
    info!(queue = %settings.queue.url, "ecr-deployd running");
    agent.run(&settings, token, SHUTDOWN_GRACE).await;
    info!(
        ecr_calls = agent.registry.calls(),
        "ecr-deployd stopped cleanly"
    );
    Ok(())
}

#[cfg(test)]
mod tests;
