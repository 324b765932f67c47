//! Prometheus metrics (SPEC §8), prefix `ecr_deployd_`, and the liveness/readiness flags
//! behind `/healthz` and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::model::sweep::{Action, Row};
use crate::stats::{MapSizes, Stats};
use crate::store::Outcome;

/// The main loop counts as alive while it ticked within this long.
const ALIVE_WINDOW: Duration = Duration::from_secs(120);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MapLabel {
    map: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// What a sweep counted: managed targets, those not on ECR's digest after it, and of those
/// the ones held by their policy (pending) or a pause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepCounts {
    pub managed: usize,
    pub behind: usize,
    pub pending: usize,
    pub paused: usize,
}

impl SweepCounts {
    /// What the metrics show of a sweep's rows.
    pub fn of(rows: &[Row]) -> Self {
        let count = |a: Action| rows.iter().filter(|r| r.action == a).count();
        SweepCounts {
            managed: rows.len(),
            behind: rows.iter().filter(|r| r.is_behind()).count(),
            pending: count(Action::Pending),
            paused: count(Action::Paused),
        }
    }
}

/// Everything `/metrics` shows, plus health flags.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    deployments: Family<OutcomeLabel, Counter>,
    deploy_duration: Histogram,
    event_to_running: Histogram,
    sweep_last_success: Gauge<f64, AtomicU64>,
    containers_managed: Gauge,
    containers_behind: Gauge,
    containers_pending: Gauge,
    containers_paused: Gauge,
    sweep_interval: Gauge,
    ledger_write_failures: Counter,
    ledger_last_write: Gauge<f64, AtomicU64>,
    intake_requests: Family<OutcomeLabel, Counter>,
    stats: Arc<Stats>,
    ready: AtomicBool,
}

/// The queue counters live in [`Stats`]; they are read on each scrape.
#[derive(Debug)]
struct QueueCounters(Arc<Stats>);

impl Collector for QueueCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let received = ConstCounter::new(Stats::get(&self.0.messages_received));
        received.encode(encoder.encode_descriptor(
            "messages_received",
            "Messages received from the queue",
            None,
            received.metric_type(),
        )?)?;
        let deleted = [
            ("done", &self.0.deleted_done),
            ("nothing_to_do", &self.0.deleted_nothing),
            ("foreign", &self.0.deleted_foreign),
        ];
        let mut family = encoder.encode_descriptor(
            "messages_deleted",
            "Messages deleted, by why",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (outcome, value) in deleted {
            let c = ConstCounter::new(Stats::get(value));
            c.encode(family.encode_family(&OutcomeLabel { outcome })?)?;
        }
        let trouble = [
            (
                "messages_malformed",
                "Messages left on the queue for its dead-letter queue (not JSON, or an ECR event with bad fields)",
                &self.0.malformed,
            ),
            (
                "messages_retried",
                "Messages handed back to the queue because the work behind them failed transiently",
                &self.0.retried_later,
            ),
        ];
        for (name, help, value) in trouble {
            let c = ConstCounter::new(Stats::get(value));
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let mut maps = encoder.encode_descriptor(
            "map_entries",
            "Entries of the agent's in-memory maps (bounded: they shrink back when idle)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (map, n) in self.0.maps.all() {
            let g = ConstGauge::new(n as i64);
            g.encode(maps.encode_family(&MapLabel { map })?)?;
        }
        Ok(())
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Metrics {
    /// The gauges of the in-memory maps' sizes.
    pub fn maps(&self) -> &MapSizes {
        &self.stats.maps
    }

    pub fn new(stats: Arc<Stats>) -> Arc<Self> {
        let deployments = Family::<OutcomeLabel, Counter>::default();
        let deploy_duration = Histogram::new(exponential_buckets(0.25, 2.0, 12));
        let event_to_running = Histogram::new(exponential_buckets(0.25, 2.0, 12));
        let sweep_last_success = Gauge::<f64, AtomicU64>::default();
        let containers_managed = Gauge::default();
        let containers_behind = Gauge::default();
        let containers_pending = Gauge::default();
        let containers_paused = Gauge::default();
        let sweep_interval = Gauge::default();
        let ledger_write_failures = Counter::default();
        let ledger_last_write = Gauge::<f64, AtomicU64>::default();
        let intake_requests = Family::<OutcomeLabel, Counter>::default();
        let mut registry = Registry::with_prefix("ecr_deployd");
        registry.register("deployments", "Deployments by outcome", deployments.clone());
        registry.register(
            "deploy_duration_seconds",
            "Wall time of a deployment",
            deploy_duration.clone(),
        );
        registry.register(
            "event_to_running_seconds",
            "Event time to new container healthy",
            event_to_running.clone(),
        );
        registry.register(
            "sweep_last_success_timestamp_seconds",
            "Unix time of the last sweep that ran",
            sweep_last_success.clone(),
        );
        registry.register(
            "containers_managed",
            "Managed containers seen by the last sweep",
            containers_managed.clone(),
        );
        registry.register(
            "containers_behind",
            "Managed containers not on ECR's digest after the last sweep",
            containers_behind.clone(),
        );
        registry.register(
            "containers_pending",
            "Managed containers whose update waits for a window or an approval (last sweep)",
            containers_pending.clone(),
        );
        registry.register(
            "containers_paused",
            "Managed containers held by `ecr-deployd pause` (last sweep)",
            containers_paused.clone(),
        );
        registry.register(
            "sweep_interval_seconds",
            "The configured sweep interval (0: no periodic sweep); alerts compare the last sweep with it",
            sweep_interval.clone(),
        );
        registry.register(
            "ledger_write_failures",
            "Fleet ledger writes to S3 that failed (retried; the next write carries everything)",
            ledger_write_failures.clone(),
        );
        registry.register(
            "ledger_last_write_timestamp_seconds",
            "Unix time of the last fleet ledger write that succeeded (0: none yet)",
            ledger_last_write.clone(),
        );
        registry.register(
            "intake_requests",
            "Requests to the push listener ([intake] listen) by outcome: accepted, ignored, \
             unauthorized, too_large, rate_limited, malformed, failed",
            intake_requests.clone(),
        );
        registry.register_collector(Box::new(QueueCounters(stats.clone())));
        Arc::new(Self {
            registry,
            deployments,
            deploy_duration,
            event_to_running,
            sweep_last_success,
            containers_managed,
            containers_behind,
            containers_pending,
            containers_paused,
            sweep_interval,
            ledger_write_failures,
            ledger_last_write,
            intake_requests,
            stats,
            ready: AtomicBool::new(false),
        })
    }

    /// One finished deployment.
    pub fn deployed(&self, outcome: Outcome, took: Duration, event_to_running: Option<Duration>) {
        self.deployments
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
        if outcome == Outcome::Rejected {
            // Nothing was deployed: no duration to observe.
            return;
        }
        self.deploy_duration.observe(took.as_secs_f64());
        if let Some(d) = event_to_running {
            self.event_to_running.observe(d.as_secs_f64());
        }
    }

    /// The configured `[sweep] interval_seconds`.
    pub fn set_sweep_interval(&self, interval: Duration) {
        self.sweep_interval.set(interval.as_secs() as i64);
    }

    /// A sweep ran: what it counted.
    pub fn swept(&self, c: &SweepCounts) {
        self.sweep_last_success.set(now_secs() as f64);
        self.containers_managed.set(c.managed as i64);
        self.containers_behind.set(c.behind as i64);
        self.containers_pending.set(c.pending as i64);
        self.containers_paused.set(c.paused as i64);
        self.ready.store(true, Ordering::Relaxed);
    }

    /// A fleet ledger write succeeded (`true`) or failed.
    pub fn ledger_written(&self, ok: bool) {
        if ok {
            self.ledger_last_write.set(now_secs() as f64);
        } else {
            self.ledger_write_failures.inc();
        }
    }

    /// One request to the push listener, by its outcome (`accepted`, `ignored`, …).
    pub fn intake_request(&self, outcome: &'static str) {
        self.intake_requests
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// The receive loop turned within the last two minutes (a long poll lasts at most 20 s).
    pub fn alive(&self) -> bool {
        now_secs().saturating_sub(Stats::get(&self.stats.last_tick)) <= ALIVE_WINDOW.as_secs()
    }

    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// The same in the Prometheus text format (0.0.4), for scrapers that do not ask for
    /// OpenMetrics (and `promtool check metrics`).
    pub fn render_text(&self) -> String {
        openmetrics_to_text(&self.render())
    }
}

/// OpenMetrics → Prometheus text 0.0.4: a counter family `x` (samples `x_total`) is named
/// `x_total` in its HELP and TYPE lines; `# UNIT` and `# EOF` do not exist there.
pub fn openmetrics_to_text(open: &str) -> String {
    let counters: std::collections::HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len() + 16 * counters.len());
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_counter_families_by_their_samples_and_has_no_eof() {
        let open = "# HELP x_deployments Deployments.\n# TYPE x_deployments counter\n\
                    x_deployments_total{outcome=\"succeeded\"} 1\n# HELP x_up Up.\n# TYPE x_up gauge\n\
                    x_up 1\n# HELP x_seconds Time.\n# TYPE x_seconds histogram\n# UNIT x_seconds seconds\n\
                    x_seconds_count 0\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(open),
            "# HELP x_deployments_total Deployments.\n# TYPE x_deployments_total counter\n\
             x_deployments_total{outcome=\"succeeded\"} 1\n# HELP x_up Up.\n# TYPE x_up gauge\n\
             x_up 1\n# HELP x_seconds Time.\n# TYPE x_seconds histogram\nx_seconds_count 0\n"
        );
    }

    #[test]
    fn every_family_has_help_in_both_formats() {
        let m = Metrics::new(Arc::new(Stats::default()));
        m.deployed(Outcome::Rejected, Duration::ZERO, None);
        for text in [m.render(), m.render_text()] {
            let helped: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("# HELP ")?.split(' ').next())
                .collect();
            for sample in text.lines().filter(|l| !l.starts_with('#')) {
                let name = sample.split(['{', ' ']).next().unwrap();
                let family = ["_total", "_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| helped.contains(f)));
                assert!(
                    helped.contains(&name) || family.is_some(),
                    "{name} has no HELP in\n{text}"
                );
            }
        }
        assert!(
            m.render_text()
                .contains("# HELP ecr_deployd_messages_received_total ")
        );
        assert!(!m.render_text().contains("# EOF"));
    }
}
