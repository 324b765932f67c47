//! Wires the stages together and owns shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use backon::Retryable;
use tracing::warn;

use crate::adapters::docker::DockerRuntime;
use crate::adapters::ecr::EcrCredentials;
use crate::adapters::ledger::S3Ledger;
use crate::adapters::s3::S3Archives;
use crate::adapters::supply::SupplyFacts;
use crate::adapters::{aws, ecr::EcrRegistry, sqs::SqsQueue};
use crate::archive::resolve::ArchiveResolver;
use crate::archive::sources::Sources;
use crate::commands::act;
use crate::config::{ConfigError, Settings};
use crate::control::lease::{Lease, LeaseError};
use crate::control::socket as control_socket;
use crate::deploy::{DeployConfig, Executor};
use crate::event::GateHint;
use crate::fleet::FleetResult;
use crate::http;
use crate::intake::{self, HintHandler, IntakeConfig, ResultHandler};
use crate::ledger::{
    self,
    writer::{self, LedgerHandle, WriterConfig},
};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::ports::{Credentials, Deployer, Queue, Registry, Runtime};
use crate::reconcile::Reconciler;
use crate::reconcile::{promotions, sweep, windows};
use crate::request::InFlight;
use crate::retry;
use crate::stats::Stats;
use crate::store::{Store, StoreError};
use crate::systemd;

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
}

/// The deploy stage's settings from the configuration (validated: its policies compile).
pub fn deploy_config(settings: &Settings) -> DeployConfig {
    let d = &settings.deploy;
    DeployConfig {
        policies: settings.policies().unwrap_or_default(),
        gates: settings.gates().unwrap_or_default(),
        fleet: settings.fleet().unwrap_or_default(),
        health_timeout: Duration::from_secs(d.health_timeout_seconds),
        min_uptime: Duration::from_secs(d.min_uptime_seconds),
        stop_timeout: Duration::from_secs(d.stop_timeout_seconds),
        max_parallel: d.max_parallel as usize,
        remove_old_images: d.remove_old_images,
        mirrors: settings.registry.mirrors(),
        scope: d.scope.clone(),
        keep_history: settings.keep_history(),
    }
}

/// Where "what should run" comes from, on the real adapters: ECR for tags, S3 for archives
/// (loaded into `runtime`, remembered in `store`).
pub type RealSources = Sources<EcrRegistry, ArchiveResolver<S3Archives, DockerRuntime>>;

/// The real [`RealSources`].
pub fn sources(
    sdk: &aws_config::SdkConfig,
    runtime: &Arc<DockerRuntime>,
    store: &Arc<Store>,
    settings: &Settings,
) -> RealSources {
    let archives = ArchiveResolver::new(
        Arc::new(S3Archives::new(sdk)),
        runtime.clone(),
        store.clone(),
    )
    .with_mirrors(settings.registry.mirrors())
    .with_scope(&settings.deploy.scope)
    .with_limits(settings.archives.clone());
    Sources {
        ecr: EcrRegistry::new(sdk),
        archives,
    }
}

impl RealSources {
    /// Publishes the archive resolver's map sizes in `stats`.
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.archives = self.archives.with_stats(stats);
        self
    }

    /// Tells operators about refused archives through `notifier`.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.archives = self.archives.with_notifier(notifier);
        self
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
    let runtime = DockerRuntime::new(docker_host.as_deref()).map_err(StartError::DockerHost)?;
    // Held for the daemon's life: no command swaps containers beside it in its own process.
    let _lease = take_lease(&settings.state.path).await?;
    let store = Arc::new(Store::open(&settings.state.path)?);
    let sdk = aws::sdk_config(&settings).await;
    let wait = Duration::from_secs(settings.queue.wait_time_seconds.into());
    let stats: Arc<Stats> = Arc::default();
    stats.tick();
    let metrics = Metrics::new(stats.clone());
    metrics.set_sweep_interval(Duration::from_secs(settings.sweep.interval_seconds));
    let fleet = settings.fleet()?;
    let notifier = Notifier::start(&settings.notify, &sdk).in_fleet(&fleet.name, fleet.wave);
    let runtime = Arc::new(runtime);
    let registry = sources(&sdk, &runtime, &store, &settings)
        .with_notifier(notifier.clone())
        .with_stats(stats.clone());
    let ledger_stop = CancellationToken::new();
    let (ledger, ledger_task) =
        start_ledger(&settings, &sdk, &store, &metrics, &notifier, &ledger_stop);
    let executor = Executor::new(
        runtime,
        Arc::new(EcrCredentials::new(&sdk)),
        store,
        deploy_config(&settings),
    )
    .with_ledger(ledger)
    .with_metrics(metrics.clone())
    .with_notifier(notifier.clone())
    .with_supply(Arc::new(SupplyFacts::new(&sdk)));
    let agent = Agent {
        queue: Arc::new(SqsQueue::new(&sdk, &settings.queue.url, wait)),
        registry: Arc::new(registry),
        deployer: Arc::new(executor),
        stats,
        notifier,
    };
    let token = CancellationToken::new();
    let wake = Arc::new(Notify::new());
    let control_tasks = TaskTracker::new();
    let abandon_commands = CancellationToken::new();
    let listener = control_socket::bind(&settings.control.socket)
        .await
        .map_err(StartError::Control)?;
    if let Ok(addr) = settings.http.listen.parse::<std::net::SocketAddr>() {
        // Bound now, so a taken port is a start-up error and not a silent absence.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| StartError::Listen(addr, e))?;
        tokio::spawn(http::serve(listener, metrics.clone(), token.clone()));
    }
    let trigger = token.clone();
    let stop_requested: Arc<std::sync::OnceLock<tokio::time::Instant>> = Arc::default();
    let requested = stop_requested.clone();
    tokio::spawn(async move {
        shutdown.await;
        info!(grace = ?SHUTDOWN_GRACE, "shutdown requested");
        systemd::stopping();
        let _ = requested.set(tokio::time::Instant::now());
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
    // Operator commands are answered once recovery is done (they waited in the backlog).
    let (registry, executor, woken) =
        (agent.registry.clone(), agent.deployer.clone(), wake.clone());
    tokio::spawn(control_socket::serve(
        listener,
        settings.control.socket.clone(),
        move |request| {
            let (registry, executor, woken) = (registry.clone(), executor.clone(), woken.clone());
            async move { act::handle(request, registry.as_ref(), executor.as_ref(), Some(&woken)).await }
        },
        control_tasks.clone(),
        token.clone(),
        abandon_commands.clone(),
    ));
    let mut windows = tokio::spawn(windows::at_openings(
        agent.registry.clone(),
        agent.deployer.clone(),
        token.clone(),
    ));
    let mut sweep = tokio::spawn(sweep::periodic(
        agent.registry.clone(),
        agent.deployer.clone(),
        Duration::from_secs(settings.sweep.interval_seconds),
        Duration::from_secs(settings.sweep.jitter_seconds),
        wake.clone(),
        token.clone(),
    ));
    info!(queue = %settings.queue.url, "ecr-deployd running");
    systemd::status(&format!("running: {}", settings.queue.url));
    agent
        .run_waking(&settings, token, SHUTDOWN_GRACE, Some(wake))
        .await;
    // One deadline for everything in flight: the sweep gets what is left of the grace
    // period the event work had.
    let deadline = stop_requested
        .get()
        .map_or_else(tokio::time::Instant::now, |t| *t + SHUTDOWN_GRACE);
    if tokio::time::timeout_at(deadline, &mut sweep).await.is_err() {
        warn!("the sweep did not finish within the grace period; abandoning it");
        sweep.abort();
    }
    if tokio::time::timeout_at(deadline, &mut windows)
        .await
        .is_err()
    {
        warn!("the window sweep did not finish within the grace period; abandoning it");
        windows.abort();
    }
    control_tasks.close();
    if tokio::time::timeout_at(deadline, control_tasks.wait())
        .await
        .is_err()
    {
        warn!("operator commands did not finish within the grace period; abandoning them");
        // Dropped before recovery runs: never a command's swap beside the undoing of it.
        abandon_commands.cancel();
        control_tasks.wait().await;
    }
    undo_abandoned(agent.deployer.as_ref()).await;
    // Last: the ledger's final write carries what shutdown finished or undid.
    ledger_stop.cancel();
    if let Some(task) = ledger_task {
        let _ = task.await;
    }
    watchdog_stop.cancel();
    info!(
        ecr_calls = agent.registry.ecr.calls(),
        "ecr-deployd stopped cleanly"
    );
    Ok(())
}

/// The fleet ledger's writer (SPEC §17) when `[fleet] ledger` is set: the handle the
/// executor and the sweep tell, and the task that writes until `stop`.
fn start_ledger(
    settings: &Settings,
    sdk: &aws_config::SdkConfig,
    store: &Arc<Store>,
    metrics: &Arc<Metrics>,
    notifier: &Notifier,
    stop: &CancellationToken,
) -> (LedgerHandle, Option<tokio::task::JoinHandle<()>>) {
    let Some(url) = settings.ledger() else {
        return (LedgerHandle::disabled(), None);
    };
    let interval = match settings.sweep.interval_seconds {
        0 => ledger::DEFAULT_INTERVAL_SECONDS,
        s => s,
    };
    let cfg = WriterConfig {
        url,
        name: notifier.fleet_name().to_owned(),
        host: notifier.host().to_owned(),
        wave: notifier.wave(),
        interval: Duration::from_secs(interval),
    };
    let handle = LedgerHandle::new();
    let task = tokio::spawn(writer::run(
        handle.clone(),
        Arc::new(S3Ledger::new(sdk)),
        store.clone(),
        cfg,
        Some(metrics.clone()),
        stop.clone(),
    ));
    (handle, Some(task))
}

/// The state-store lease; waits while an operator command run without a daemon holds it.
async fn take_lease(state: &std::path::Path) -> Result<Lease, StartError> {
    let mut told = false;
    loop {
        match Lease::try_acquire(state) {
            Ok(l) => return Ok(l),
            Err(LeaseError::Held { holder, .. }) => {
                if !told {
                    warn!(%holder, "the state store is in use by an operator command; waiting for it to finish");
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(StartError::Control(e.to_string())),
        }
    }
}

/// Swaps abandoned at the deadline are undone now rather than at the next start, so that no
/// old container stays stopped while the agent is down.
async fn undo_abandoned<RT: Runtime, C: Credentials>(executor: &Executor<RT, C>) {
    match tokio::time::timeout(SHUTDOWN_RECOVERY, executor.recover()).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => warn!(deployments = n, "abandoned deployments undone before exit"),
        Ok(Err(e)) => {
            warn!(error = %e, "undoing abandoned deployments failed; the next start does it")
        }
        Err(_) => warn!("undoing abandoned deployments took too long; the next start does it"),
    }
}

#[cfg(test)]
mod tests;
