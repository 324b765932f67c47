//! `ecr-deployd run`: the daemon on the real adapters — start-up (lease, state store, the
//! stages, the listeners), recovery before anything new, the stages until shutdown, and
//! shutdown's one deadline (the sweeps, operator commands, abandoned swaps undone, the
//! ledger's last write).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::{Agent, SHUTDOWN_GRACE, SHUTDOWN_RECOVERY, StartError};
use crate::adapters::docker::DockerRuntime;
use crate::adapters::ledger::S3Ledger;
use crate::adapters::{aws, sqs::SqsQueue};
use crate::commands::act;
use crate::config::Settings;
use crate::control::lease::{Lease, LeaseError};
use crate::control::socket as control_socket;
use crate::deploy::Executor;
use crate::http;
use crate::intake::listen::{self, ListenConfig, TlsFiles};
use crate::intake::local::{KeepPushes, LocalQueue, Queues};
use crate::ledger::{
    self,
    writer::{self, LedgerHandle, WriterConfig},
};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::ports::{Credentials, Runtime};
use crate::reconcile::{sweep, windows};
use crate::retry;
use crate::stats::Stats;
use crate::store::Store;
use crate::systemd;
use crate::wiring::{RealExecutor, RealSources, event_bus, real_stages};

/// The agent on the real adapters: SQS and the local queue, the real sources, the executor.
type RealAgent = Agent<Queues<SqsQueue>, RealSources, RealExecutor>;

/// The listener's settings from `[intake]`: the token read from its file.
fn listen_config(settings: &Settings, addr: std::net::SocketAddr) -> Result<ListenConfig, String> {
    let i = &settings.intake;
    let token = std::fs::read_to_string(&i.token_file)
        .map_err(|e| format!("intake.token_file {}: {e}", i.token_file))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(format!("intake.token_file {}: empty", i.token_file));
    }
    let mut cfg = ListenConfig::new(addr, token);
    if i.tls() {
        cfg.tls = Some(TlsFiles {
            cert: i.tls_cert_file.clone().into(),
            key: i.tls_key_file.clone().into(),
        });
    }
    Ok(cfg)
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
    let daemon = assemble(&settings, runtime, store).await?;
    let agent = &daemon.agent;
    let token = CancellationToken::new();
    let listener = control_socket::bind(&settings.control.socket)
        .await
        .map_err(StartError::Control)?;
    serve_listeners(&settings, &daemon.metrics, daemon.local.as_ref(), &token).await?;
    let stop_requested = watch_shutdown(shutdown, token.clone());
    // Config valid, state store open, listener bound: up. Docker and AWS may still be coming
    // up; both are retried from here on, with the watchdog fed while that goes on.
    systemd::ready("running: recovering interrupted deployments");
    let watchdog_stop = CancellationToken::new();
    tokio::spawn(systemd::watchdog(
        agent.stats.clone(),
        watchdog_stop.clone(),
    ));
    if !recover_first(&agent.deployer, &agent.stats, &token).await {
        return Ok(());
    }
    let wake = Arc::new(Notify::new());
    let mut background = Background::start(&settings, agent, listener, &wake, &token);
    let source = match settings.queue.url.as_str() {
        "" => "registries of the site's own",
        url => url,
    };
    info!(queue = %source, "ecr-deployd running");
    systemd::status(&format!("running: {source}"));
    agent
        .run_with(
            &settings,
            token,
            SHUTDOWN_GRACE,
            Some(wake),
            daemon.local.clone(),
        )
        .await;
    // One deadline for everything in flight: the sweep gets what is left of the grace
    // period the event work had.
    let deadline = stop_requested
        .get()
        .map_or_else(tokio::time::Instant::now, |t| *t + SHUTDOWN_GRACE);
    background.finish_by(deadline).await;
    undo_abandoned(agent.deployer.as_ref()).await;
    // Last: the ledger's final write carries what shutdown finished or undid.
    daemon.ledger_stop.cancel();
    if let Some(task) = daemon.ledger_task {
        let _ = task.await;
    }
    watchdog_stop.cancel();
    info!(
        ecr_calls = agent.registry.ecr.calls(),
        "ecr-deployd stopped cleanly"
    );
    Ok(())
}

/// The agent on the real adapters, and what start-up and shutdown need beside it.
struct Assembled {
    agent: RealAgent,
    metrics: Arc<Metrics>,
    /// The state store's queue of pushes from registries of the site's own.
    local: Option<Arc<LocalQueue>>,
    ledger_stop: CancellationToken,
    ledger_task: Option<tokio::task::JoinHandle<()>>,
}

/// The agent's stages on the real adapters, over `runtime` and `store`: metrics, the
/// notifier, the registries and the executor, the fleet ledger's writer, the queues.
async fn assemble(
    settings: &Settings,
    runtime: DockerRuntime,
    store: Arc<Store>,
) -> Result<Assembled, StartError> {
    let sdk = aws::sdk_config(settings).await;
    let wait = Duration::from_secs(settings.queue.wait_time_seconds.into());
    let stats: Arc<Stats> = Arc::default();
    stats.tick();
    let metrics = Metrics::new(stats.clone());
    metrics.set_sweep_interval(Duration::from_secs(settings.sweep.interval_seconds));
    let fleet = settings.fleet()?;
    let notifier = Notifier::start(&settings.notify, event_bus(settings, &sdk))
        .in_fleet(&fleet.name, fleet.wave);
    let (registry, executor) = real_stages(settings, &sdk, Arc::new(runtime), store.clone())
        .map_err(StartError::Registries)?;
    let registry = registry
        .with_notifier(notifier.clone())
        .with_stats(stats.clone());
    let ledger_stop = CancellationToken::new();
    let (ledger, ledger_task) =
        start_ledger(settings, &sdk, &store, &metrics, &notifier, &ledger_stop);
    let executor = executor
        .with_ledger(ledger)
        .with_metrics(metrics.clone())
        .with_notifier(notifier.clone());
    // The listener's pushes wait in the state store; kept ones are worked through even when
    // the listener is no longer configured.
    let local = (!settings.registries.is_empty()).then(|| Arc::new(LocalQueue::new(store)));
    if let Some(local) = &local {
        release_in_flight(local);
    }
    let sqs = (!settings.queue.url.is_empty())
        .then(|| Arc::new(SqsQueue::new(&sdk, &settings.queue.url, wait)));
    let agent = Agent {
        queue: Arc::new(Queues {
            sqs,
            local: local.clone(),
        }),
        registry: Arc::new(registry),
        deployer: Arc::new(executor),
        stats,
        notifier,
    };
    Ok(Assembled {
        agent,
        metrics,
        local,
        ledger_stop,
        ledger_task,
    })
}

/// What runs beside the agent's stages once recovery is done: operator commands on the
/// control socket, the sweeps at window openings, the periodic sweep.
struct Background {
    control_tasks: TaskTracker,
    abandon_commands: CancellationToken,
    windows: tokio::task::JoinHandle<()>,
    sweep: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Starts them until `token`; `wake` runs a sweep at once.
    fn start(
        settings: &Settings,
        agent: &RealAgent,
        listener: tokio::net::UnixListener,
        wake: &Arc<Notify>,
        token: &CancellationToken,
    ) -> Self {
        let control_tasks = TaskTracker::new();
        let abandon_commands = CancellationToken::new();
        // Operator commands are answered now (they waited in the backlog).
        let (registry, executor, woken) =
            (agent.registry.clone(), agent.deployer.clone(), wake.clone());
        tokio::spawn(control_socket::serve(
            listener,
            settings.control.socket.clone(),
            move |request| {
                let (registry, executor, woken) =
                    (registry.clone(), executor.clone(), woken.clone());
                async move {
                    act::handle(request, registry.as_ref(), executor.as_ref(), Some(&woken)).await
                }
            },
            control_tasks.clone(),
            token.clone(),
            abandon_commands.clone(),
        ));
        let windows = tokio::spawn(windows::at_openings(
            agent.registry.clone(),
            agent.deployer.clone(),
            agent.deployer.config().policies.clone(),
            token.clone(),
        ));
        let sweep = tokio::spawn(sweep::periodic(
            agent.registry.clone(),
            agent.deployer.clone(),
            Duration::from_secs(settings.sweep.interval_seconds),
            Duration::from_secs(settings.sweep.jitter_seconds),
            wake.clone(),
            token.clone(),
        ));
        Background {
            control_tasks,
            abandon_commands,
            windows,
            sweep,
        }
    }

    /// Waits for them until `deadline`; a command still running past it is abandoned (and
    /// its swap undone by the caller).
    async fn finish_by(&mut self, deadline: tokio::time::Instant) {
        join_by(deadline, &mut self.sweep, "the sweep").await;
        join_by(deadline, &mut self.windows, "the window sweep").await;
        self.control_tasks.close();
        if tokio::time::timeout_at(deadline, self.control_tasks.wait())
            .await
            .is_err()
        {
            warn!("operator commands did not finish within the grace period; abandoning them");
            // Dropped before recovery runs: never a command's swap beside the undoing of it.
            self.abandon_commands.cancel();
            self.control_tasks.wait().await;
        }
    }
}

/// Cancels `token` once `shutdown` completes, and notes when: shutdown's one deadline
/// counts from then.
fn watch_shutdown(
    shutdown: impl Future<Output = ()> + Send + 'static,
    token: CancellationToken,
) -> Arc<std::sync::OnceLock<tokio::time::Instant>> {
    let stop_requested: Arc<std::sync::OnceLock<tokio::time::Instant>> = Arc::default();
    let requested = stop_requested.clone();
    tokio::spawn(async move {
        shutdown.await;
        info!(grace = ?SHUTDOWN_GRACE, "shutdown requested");
        systemd::stopping();
        let _ = requested.set(tokio::time::Instant::now());
        token.cancel();
    });
    stop_requested
}

/// Binds the metrics listener and, with `[intake]` and a local queue, the push listener,
/// and serves them until `token`. Bound now, so that a taken port or a bad file is a
/// start-up error naming it, not a silent absence.
async fn serve_listeners(
    settings: &Settings,
    metrics: &Arc<Metrics>,
    local: Option<&Arc<LocalQueue>>,
    token: &CancellationToken,
) -> Result<(), StartError> {
    if let Ok(addr) = settings.http.listen.parse::<std::net::SocketAddr>() {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| StartError::Listen(addr, e))?;
        tokio::spawn(http::serve(listener, metrics.clone(), token.clone()));
    }
    if let (Some(addr), Some(local)) = (settings.intake.addr(), local) {
        let cfg = listen_config(settings, addr).map_err(StartError::Intake)?;
        let bound = listen::bind(&cfg)
            .await
            .map_err(|e| StartError::Intake(e.to_string()))?;
        let record = Arc::new(KeepPushes {
            local: local.clone(),
            hosts: settings.site_hosts().map(str::to_owned).collect(),
        });
        let metrics = Some(metrics.clone());
        tokio::spawn(listen::serve(bound, cfg, record, metrics, token.clone()));
    }
    Ok(())
}

/// A swap interrupted by a crash is finished or undone before anything new is deployed
/// (retried while Docker is unreachable, the watchdog fed meanwhile); `false` when
/// shutdown came first.
async fn recover_first(executor: &RealExecutor, stats: &Stats, token: &CancellationToken) -> bool {
    let recover = || executor.recover();
    let recovered = tokio::select! {
        _ = token.cancelled() => return false,
        r = recover
            .retry(retry::forever())
            .when(|e| e.transient)
            .notify(|e, delay| {
                stats.tick();
                warn!(error = %e, retry_in = ?delay, "Docker unreachable; recovery retried")
            }) => r,
    };
    match recovered {
        Ok(0) => {}
        Ok(n) => info!(deployments = n, "interrupted deployments recovered"),
        Err(e) => warn!(error = %e, "recovery of interrupted deployments failed"),
    }
    true
}

/// Waits for `task` until `deadline`, and abandons it past that.
async fn join_by<T>(
    deadline: tokio::time::Instant,
    task: &mut tokio::task::JoinHandle<T>,
    what: &str,
) {
    if tokio::time::timeout_at(deadline, &mut *task).await.is_err() {
        warn!("{what} did not finish within the grace period; abandoning it");
        task.abort();
    }
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

/// Pushes the previous process took and never finished go back to the local queue now, not
/// after their visibility timeout: with the lease held, nothing else can be working on them.
fn release_in_flight(local: &LocalQueue) {
    match local.release_in_flight() {
        Ok(0) => {}
        Ok(n) => info!(
            pushes = n,
            "kept pushes left in flight by the previous run released"
        ),
        Err(e) => warn!(error = %e, "kept pushes left in flight wait for their visibility timeout"),
    }
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
