//! Wires the stages together and owns shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::info;

use backon::Retryable;
use tracing::warn;

use crate::adapters::docker::DockerRuntime;
use crate::adapters::ecr::EcrCredentials;
use crate::adapters::{aws, ecr::EcrRegistry, sqs::SqsQueue};
use crate::config::{ConfigError, Settings};
use crate::deploy::executor::{DeployConfig, Executor};
use crate::http;
use crate::intake::{self, InFlight, IntakeConfig};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::ports::{Deployer, Queue, Registry};
use crate::reconcile::Reconciler;
use crate::reconcile::sweep;
use crate::retry;
use crate::stats::Stats;
use crate::store::{Store, StoreError};
use crate::systemd;

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
    /// Where messages in trouble are reported (deployments report through the deployer).
    pub notifier: Notifier,
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
            notifier: self.notifier.clone(),
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
            notifier: self.notifier.clone(),
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
}

/// The deploy stage's settings from the configuration.
pub fn deploy_config(settings: &Settings) -> DeployConfig {
    let d = &settings.deploy;
    DeployConfig {
        health_timeout: Duration::from_secs(d.health_timeout_seconds),
        min_uptime: Duration::from_secs(d.min_uptime_seconds),
        stop_timeout: Duration::from_secs(d.stop_timeout_seconds),
        max_parallel: d.max_parallel as usize,
        remove_old_images: d.remove_old_images,
        mirror: Some(settings.registry.mirror.clone()).filter(|m| !m.is_empty()),
    }
}

/// `ecr-deployd run`: the daemon on the real adapters, until `shutdown` completes.
/// `docker_host` is the value of `DOCKER_HOST`, if set.
pub async fn run(
    settings: Settings,
    docker_host: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    settings.require_queue()?;
    let store = Arc::new(Store::open(&settings.state.path)?);
    let sdk = aws::sdk_config(&settings).await;
    let wait = Duration::from_secs(settings.queue.wait_time_seconds.into());
    let stats: Arc<Stats> = Arc::default();
    stats.tick();
    let metrics = Metrics::new(stats.clone());
    let notifier = Notifier::start(&settings.notify, &sdk);
    let executor = Executor::new(
        Arc::new(DockerRuntime::new(docker_host.as_deref())),
        Arc::new(EcrCredentials::new(&sdk)),
        store,
        deploy_config(&settings),
    )
    .with_metrics(metrics.clone())
    .with_notifier(notifier.clone());
    let agent = Agent {
        queue: Arc::new(SqsQueue::new(&sdk, &settings.queue.url, wait)),
        registry: Arc::new(EcrRegistry::new(&sdk)),
        deployer: Arc::new(executor),
        stats,
        notifier,
    };
    let token = CancellationToken::new();
    if let Ok(addr) = settings.http.listen.parse::<std::net::SocketAddr>() {
        // Bound now, so a taken port is a start-up error and not a silent absence.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| StartError::Listen(addr, e))?;
        tokio::spawn(http::serve(listener, metrics.clone(), token.clone()));
    }
    let trigger = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        info!("shutdown requested");
        systemd::stopping();
        trigger.cancel();
    });
    // Config valid, state store open, listener bound: up. Docker and AWS may still be coming
    // up; both are retried from here on, with the watchdog fed while that goes on.
    systemd::ready("running: recovering interrupted deployments");
    let watchdog_stop = CancellationToken::new();
    tokio::spawn(systemd::watchdog(
        agent.stats.clone(),
        watchdog_stop.clone(),
    ));
    // A swap interrupted by a crash is finished or undone before anything new is deployed.
    let recover = || agent.deployer.recover();
    let recovered = tokio::select! {
        _ = token.cancelled() => return Ok(()),
        r = recover
            .retry(retry::forever())
            .when(|e| e.transient)
            .notify(|e, delay| {
                agent.stats.tick();
                warn!(error = %e, retry_in = ?delay, "Docker unreachable; recovery retried")
            }) => r,
    };
    match recovered {
        Ok(0) => {}
        Ok(n) => info!(deployments = n, "interrupted deployments recovered"),
        Err(e) => warn!(error = %e, "recovery of interrupted deployments failed"),
    }
    let sweep = tokio::spawn(sweep::periodic(
        agent.registry.clone(),
        agent.deployer.clone(),
        Duration::from_secs(settings.sweep.interval_seconds),
        Duration::from_secs(settings.sweep.jitter_seconds),
        Arc::new(Notify::new()),
        token.clone(),
    ));
    info!(queue = %settings.queue.url, "ecr-deployd running");
    systemd::status(&format!("running: {}", settings.queue.url));
    agent.run(&settings, token, SHUTDOWN_GRACE).await;
    // A sweep deploying right now gets the same grace as event work; past it, the journal
    // lets the next start finish or undo the swap.
    if tokio::time::timeout(SHUTDOWN_GRACE, sweep).await.is_err() {
        warn!("the sweep did not finish within the grace period");
    }
    watchdog_stop.cancel();
    info!(
        ecr_calls = agent.registry.calls(),
        "ecr-deployd stopped cleanly"
    );
    Ok(())
}

#[cfg(test)]
mod tests;
