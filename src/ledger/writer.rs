//! The agent's ledger writer (SPEC §17). The sweep and the executor hand what they saw to a
//! [`LedgerHandle`] (a map update and a wake: never a wait), and one background task writes
//! the host's object:
//!
//! - after a change (a deployment outcome, a sweep whose rows differ from the last object
//!   written), a moment later so that a burst is one write;
//! - at least once per sweep interval even when nothing changed, so readers can tell a live
//!   host from a stale one;
//! - a failed write is retried with backoff; each write is built afresh, so the next one
//!   carries everything. Failures are counted (metric) and recorded for `doctor`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    ContainerLedger, DEPLOYMENTS_KEPT, DeploymentLedger, HostLedger, LedgerUrl, SCHEMA, rfc3339_ms,
};
use crate::metrics::Metrics;
use crate::ports::LedgerObjects;
use crate::store::{Deployment, Outcome, Store};

/// Changes within this long after the first one are carried by one write.
const FOLD: Duration = Duration::from_millis(250);
/// The first retry of a failed write; doubled per failure up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// At shutdown, a last write of a changed ledger gets this long.
const FINAL_WRITE: Duration = Duration::from_secs(3);
/// History rows read per container to find what ran before the running digest.
const HISTORY_READ: usize = 50;

/// Who writes and how often.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub url: LedgerUrl,
    /// `[fleet] name`: the object's key.
    pub name: String,
    pub host: String,
    pub wave: u32,
    /// The sweep interval (or the default when there is no periodic sweep).
    pub interval: Duration,
}

impl WriterConfig {
    /// `s3://BUCKET/KEY` of this host's object.
    pub fn object_url(&self) -> String {
        format!("s3://{}/{}", self.url.bucket, self.url.key(&self.name))
    }
}

/// A finished deployment, as the executor reports it.
#[derive(Clone, Debug)]
pub struct Deployed<'a> {
    pub container: &'a str,
    /// `repository:tag` (or `s3://BUCKET/KEY`) it follows.
    pub image: &'a str,
    pub to: &'a str,
    pub platform: Option<&'a str>,
    pub outcome: Outcome,
    pub error: Option<&'a str>,
}

/// The side the sweep and the executor see. Cheap to clone; [`LedgerHandle::disabled`]
/// (the default) ignores everything.
#[derive(Clone, Debug, Default)]
pub struct LedgerHandle {
    shared: Option<Arc<Shared>>,
}

#[derive(Debug, Default)]
struct Shared {
    known: Mutex<Known>,
    wake: Notify,
}

#[derive(Clone, Debug, Default)]
struct Known {
    /// A sweep reported all containers: a write describes the whole host.
    swept: bool,
    containers: BTreeMap<String, ContainerLedger>,
}

impl LedgerHandle {
    pub fn disabled() -> Self {
        Self::default()
    }

    /// A handle for a writer ([`run`]) to serve.
    pub fn new() -> Self {
        Self {
            shared: Some(Arc::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.shared.is_some()
    }

    fn update(&self, f: impl FnOnce(&mut Known)) {
        let Some(s) = &self.shared else { return };
        f(&mut s.known.lock().unwrap_or_else(PoisonError::into_inner));
        s.wake.notify_one();
    }

    /// A sweep's rows: every managed container and service of the host, as `status` shows
    /// them (their deployments are filled in from the state store at write time).
    pub fn swept(&self, rows: Vec<ContainerLedger>) {
        self.update(|k| {
            k.swept = true;
            k.containers = rows.into_iter().map(|r| (r.name.clone(), r)).collect();
        });
    }

    /// A deployment outcome: the container's row as it stands after it.
    pub fn deployed(&self, d: &Deployed<'_>) {
        self.update(|k| {
            let (repository, tag) = super::split_image(d.image);
            let row = k
                .containers
                .entry(d.container.to_owned())
                .or_insert_with(|| ContainerLedger {
                    name: d.container.to_owned(),
                    image: d.image.to_owned(),
                    repository,
                    tag,
                    ..ContainerLedger::default()
                });
            after_outcome(row, d);
        });
    }

    fn snapshot(&self) -> Option<Known> {
        let s = self.shared.as_ref()?;
        Some(
            s.known
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// What `status` would show of a container right after a deployment outcome.
fn after_outcome(row: &mut ContainerLedger, d: &Deployed<'_>) {
    row.desired_digest = Some(d.to.to_owned());
    row.platform_digest = d.platform.map(str::to_owned);
    row.detail = d.error.map(str::to_owned);
    row.state = match d.outcome {
        Outcome::Succeeded => {
            row.running_digest = Some(d.to.to_owned());
            "up_to_date"
        }
        Outcome::RolledBack => "blocked",
        Outcome::Rejected => "rejected",
        Outcome::Failed => "behind",
    }
    .to_owned();
}

/// A container's row with its history: the last deployments, since when the running digest
/// runs (when this agent deployed it) and what ran before it.
pub fn with_history(mut row: ContainerLedger, history: &[Deployment]) -> ContainerLedger {
    row.deployments = history
        .iter()
        .take(DEPLOYMENTS_KEPT)
        .map(|d| DeploymentLedger {
            from_digest: d.from_digest.clone(),
            to_digest: d.to_digest.clone(),
            platform_digest: d.platform_digest.clone(),
            at: rfc3339_ms(d.ended_at_ms.unwrap_or(d.started_at_ms)),
            outcome: d
                .outcome
                .map(|o| o.as_str().to_owned())
                .unwrap_or_else(|| "in_progress".into()),
            trigger: d.trigger.clone(),
            error: d.error.clone(),
        })
        .collect();
    let running = row.running_digest.as_deref();
    if let Some(last) = history
        .iter()
        .find(|d| d.outcome == Some(Outcome::Succeeded))
    {
        let names_running = running
            .is_some_and(|r| last.to_digest == r || last.platform_digest.as_deref() == Some(r));
        if names_running {
            row.since = last.ended_at_ms.map(rfc3339_ms);
        }
        // Kept for rollback even when the container moved since (in-use errs on keeping).
        row.previous_digest = last.from_digest.clone();
    }
    row
}

/// The object to write now, or `None` before the first sweep.
fn document(handle: &LedgerHandle, store: &Store, cfg: &WriterConfig) -> Option<HostLedger> {
    let known = handle.snapshot()?;
    if !known.swept {
        return None;
    }
    let containers = known
        .containers
        .into_values()
        .map(|row| {
            let history = store
                .history(Some(&row.name), HISTORY_READ)
                .unwrap_or_else(|e| {
                    warn!(container = %row.name, error = %e, "ledger: history not readable");
                    Vec::new()
                });
            with_history(row, &history)
        })
        .collect();
    Some(HostLedger {
        schema: SCHEMA,
        name: cfg.name.clone(),
        host: cfg.host.clone(),
        wave: cfg.wave,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        written_at: String::new(),
        sweep_interval_seconds: cfg.interval.as_secs(),
        containers,
    })
}

/// Where the writer stands between writes.
struct Progress {
    /// The containers of the last object written (what "changed" is measured against).
    written: Option<Vec<ContainerLedger>>,
    last_ok: Option<Instant>,
    failures: u32,
    due: Instant,
}

/// The writer: until `shutdown`, writes what `handle` was told to `objects` (module doc).
pub async fn run<L: LedgerObjects>(
    handle: LedgerHandle,
    objects: Arc<L>,
    store: Arc<Store>,
    cfg: WriterConfig,
    metrics: Option<Arc<Metrics>>,
    shutdown: CancellationToken,
) {
    let Some(shared) = handle.shared.clone() else {
        return;
    };
    let far = || Instant::now() + Duration::from_secs(86_400);
    let mut p = Progress {
        written: None,
        last_ok: None,
        failures: 0,
        due: far(),
    };
    info!(ledger = %cfg.object_url(), "fleet ledger: writing this host's object");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = shared.wake.notified() => tokio::time::sleep(FOLD).await,
            _ = tokio::time::sleep_until(p.due) => {}
        }
        let Some(doc) = document(&handle, &store, &cfg) else {
            continue;
        };
        let changed = p.written.as_ref() != Some(&doc.containers);
        let heartbeat = p.last_ok.is_none_or(|t| t + cfg.interval <= Instant::now());
        if !changed && !heartbeat && p.failures == 0 {
            continue;
        }
        write(&*objects, &store, &cfg, metrics.as_deref(), doc, &mut p).await;
    }
    if let Some(doc) = document(&handle, &store, &cfg)
        && p.written.as_ref() != Some(&doc.containers)
    {
        let last = write(&*objects, &store, &cfg, metrics.as_deref(), doc, &mut p);
        if tokio::time::timeout(FINAL_WRITE, last).await.is_err() {
            warn!(ledger = %cfg.object_url(), "fleet ledger: the last write at shutdown timed out");
        }
    }
}

/// One write of `doc`; on failure, the next try is scheduled with backoff.
async fn write<L: LedgerObjects>(
    objects: &L,
    store: &Store,
    cfg: &WriterConfig,
    metrics: Option<&Metrics>,
    mut doc: HostLedger,
    p: &mut Progress,
) {
    let url = cfg.object_url();
    doc.written_at = rfc3339_ms(crate::store::now_ms());
    let body = match serde_json::to_vec_pretty(&doc) {
        Ok(b) => b,
        Err(e) => {
            warn!(error = %e, "fleet ledger: cannot render the object");
            return;
        }
    };
    let started = Instant::now();
    let result = objects
        .put(&cfg.url.bucket, &cfg.url.key(&cfg.name), body)
        .await;
    if let Some(m) = metrics {
        m.ledger_written(result.is_ok());
    }
    let recorded = match &result {
        Ok(()) => store.ledger_written(&url, Ok(())),
        Err(e) => store.ledger_written(&url, Err(&e.to_string())),
    };
    if let Err(e) = recorded {
        debug!(error = %e, "fleet ledger: the write's outcome not recorded");
    }
    match result {
        Ok(()) => {
            if p.failures > 0 {
                info!(ledger = %url, after = p.failures, "fleet ledger written again");
            }
            debug!(ledger = %url, took_ms = started.elapsed().as_millis() as u64, "fleet ledger written");
            p.written = Some(doc.containers);
            p.last_ok = Some(Instant::now());
            p.failures = 0;
            p.due = Instant::now() + cfg.interval;
        }
        Err(e) => {
            let retry_in = (RETRY_MIN * 2u32.saturating_pow(p.failures)).min(RETRY_MAX);
            p.failures = p.failures.saturating_add(1);
            p.due = Instant::now() + retry_in;
            // Loud once per outage, then quiet: the metric and `doctor` carry it on.
            if p.failures == 1 {
                warn!(ledger = %url, error = %e, ?retry_in, "fleet ledger not written; retrying in the background");
            } else {
                debug!(ledger = %url, error = %e, failures = p.failures, ?retry_in, "fleet ledger still not written");
            }
        }
    }
}

#[cfg(test)]
mod tests;
