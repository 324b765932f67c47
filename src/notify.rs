//! Notifications: deployment outcomes and messages in trouble, to Slack/Teams-compatible
//! incoming webhooks, (deployments) to an EventBridge bus, and (rollbacks, rejections,
//! failures) by e-mail through an SMTP relay ([`smtp`]).
//!
//! Nothing here may slow a deploy down: callers hand a [`Notice`] to a bounded channel and move
//! on (a full channel drops the notice with a warning); one background task delivers, each sink
//! with a per-attempt timeout and a few retries. Webhook URLs are secrets: logs show only
//! their scheme and host.

use crate::event::source_text;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::config::Notify as NotifySettings;
use crate::ports::{EventBus, RemoteError};
use smtp::Mailer;

pub mod smtp;
use crate::store::{Outcome, Phases};

pub(crate) use crate::model::host::host_name;
pub use crate::model::{EVENT_DETAIL_TYPE, EVENT_SOURCE};
/// One attempt at one sink never takes longer than this.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per sink and notice (the first and two retries).
const ATTEMPTS: usize = 3;
/// Attempts at putting a deployment result on the bus: later fleet waves are fed by it
/// (SPEC §14), so it is tried for about a minute before it is given up.
const RESULT_ATTEMPTS: usize = 8;
/// Notices waiting for delivery; beyond this they are dropped, never waited for.
const BACKLOG: usize = 256;

/// `wave_key` of a result of `wave`: `wave-N` (SPEC §14).
pub fn wave_key(wave: u32) -> String {
    format!("wave-{wave}")
}

/// One deployment's result: what the central account sees of "which image runs where".
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DeploymentNotice {
    pub host: String,
    /// The host's fleet name (`[fleet] name`, default the host name), by which later waves
    /// count hosts (SPEC §14).
    pub name: String,
    /// The host's fleet wave, a JSON number so that rules can match it.
    pub wave: u32,
    /// The same wave as the string `wave-N` ([`wave_key`]): what the infra/ rules match, since
    /// a rule written in CloudFormation may carry the number as a string (SPEC §14).
    pub wave_key: String,
    /// `container`, or `service` (Swarm).
    pub kind: &'static str,
    /// The container's or the service's name.
    pub container: String,
    pub repository: String,
    pub tag: String,
    pub from_digest: Option<String>,
    pub to_digest: String,
    /// When `to_digest` is an image index: its manifest for the host's platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_digest: Option<String>,
    pub outcome: Outcome,
    pub trigger: String,
    pub error: Option<String>,
    pub durations_ms: Durations,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Durations {
    pub resolve: i64,
    pub pull: i64,
    pub stop: i64,
    pub swap: i64,
    pub health: i64,
    pub total: i64,
    pub event_to_running: Option<i64>,
}

impl Durations {
    pub fn new(p: &Phases, total: Duration, event_to_running: Option<Duration>) -> Self {
        Self {
            resolve: p.resolve_ms,
            pull: p.pull_ms,
            stop: p.stop_ms,
            swap: p.swap_ms,
            health: p.health_ms,
            total: total.as_millis() as i64,
            event_to_running: event_to_running.map(|d| d.as_millis() as i64),
        }
    }
}

/// A queue message the agent cannot get through.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TroubleNotice {
    pub host: String,
    /// `malformed` (left for the dead-letter queue) or `repeated_failures`.
    pub kind: &'static str,
    pub message_id: String,
    pub receive_count: u32,
    /// The repository:tag concerned, when known.
    pub image: Option<String>,
    pub reason: String,
}

/// An update not deployed by policy (SPEC §10): once per container and digest.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HeldNotice {
    pub host: String,
    pub kind: &'static str,
    pub container: String,
    pub repository: String,
    pub tag: String,
    pub running_digest: Option<String>,
    pub desired_digest: String,
    /// `monitor` ("update available") or `pending` ("pending until …").
    pub state: &'static str,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    Deployment(DeploymentNotice),
    Trouble(TroubleNotice),
    Held(HeldNotice),
}

impl Notice {
    /// The line a person reads in the chat channel.
    pub fn text(&self) -> String {
        match self {
            Notice::Deployment(d) => {
                let from = d.from_digest.as_deref().map(short).unwrap_or("-");
                let mark = match d.outcome {
                    Outcome::Succeeded => "✅",
                    Outcome::RolledBack => "↩️",
                    Outcome::Rejected => "⛔",
                    Outcome::Failed => "❌",
                };
                let mut s = format!(
                    "{mark} ecr-deployd on {}: {} {} {} {from} → {} ({}, {} ms)",
                    d.host,
                    d.container,
                    d.outcome.in_words(),
                    source_text(&d.repository, &d.tag),
                    short(&d.to_digest),
                    d.trigger,
                    d.durations_ms.total
                );
                if let Some(e) = &d.error {
                    s.push_str(&format!(": {e}"));
                }
                s
            }
            Notice::Trouble(t) => format!(
                "⚠️ ecr-deployd on {}: message {} {} (received {} times){}: {}",
                t.host,
                t.message_id,
                t.kind.replace('_', " "),
                t.receive_count,
                t.image
                    .as_deref()
                    .map(|i| format!(" for {i}"))
                    .unwrap_or_default(),
                t.reason
            ),
            Notice::Held(h) => {
                let what = match h.state {
                    "monitor" => "update available".to_owned(),
                    "refused" => format!("update refused: {}", h.detail),
                    "halted" => format!("update halted by an earlier wave: {}", h.detail),
                    _ => format!("update pending: {}", h.detail),
                };
                format!(
                    "🔔 ecr-deployd on {}: {} {what}: {} {} → {}",
                    h.host,
                    h.container,
                    source_text(&h.repository, &h.tag),
                    h.running_digest.as_deref().map(short).unwrap_or("-"),
                    short(&h.desired_digest),
                )
            }
        }
    }

    /// The webhook body: `text` for Slack and Teams, the structured notice beside it.
    pub fn webhook_body(&self) -> serde_json::Value {
        let (kind, data) = match self {
            Notice::Deployment(d) => ("deployment", serde_json::to_value(d)),
            Notice::Trouble(t) => ("trouble", serde_json::to_value(t)),
            Notice::Held(h) => ("held", serde_json::to_value(h)),
        };
        json!({
            "text": self.text(),
            "ecr_deployd": { "kind": kind, "data": data.unwrap_or_default() },
        })
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// The sending side: cheap to clone, never blocks. `Notifier::disabled()` drops everything.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    tx: Option<mpsc::Sender<Notice>>,
    host: Arc<str>,
    /// `[fleet] name` and `wave` (SPEC §14); empty and 0 until [`Notifier::in_fleet`].
    fleet_name: Arc<str>,
    wave: u32,
}

impl Notifier {
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Starts the delivery task when `settings` names a sink; `bus` (`[notify] event_bus`, built
    /// by the caller on the adapter) is where deployment results are put.
    pub fn start(settings: &NotifySettings, bus: Option<Arc<dyn EventBus>>) -> Self {
        let host: Arc<str> = host_name().into();
        if settings.webhooks.is_empty() && settings.event_bus.is_empty() && settings.smtp.is_none()
        {
            return Self {
                tx: None,
                host,
                ..Self::default()
            };
        }
        let sinks = Sinks {
            http: reqwest::Client::builder()
                .timeout(ATTEMPT_TIMEOUT)
                .connect_timeout(ATTEMPT_TIMEOUT)
                .user_agent(concat!("ecr-deployd/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("HTTP client with the built-in TLS configuration"),
            webhooks: settings.webhooks.clone(),
            events: bus.filter(|_| !settings.event_bus.is_empty()),
            mail: settings.smtp.as_ref().and_then(|s| {
                Mailer::new(s, ATTEMPT_TIMEOUT * 2)
                    .map_err(|e| tracing::error!(error = %e, "e-mail notifications disabled"))
                    .ok()
                    .map(Arc::new)
            }),
        };
        let (tx, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(deliver(rx, Arc::new(sinks)));
        Self {
            tx: Some(tx),
            host,
            ..Self::default()
        }
    }

    /// Deployment results carry this fleet name and wave.
    pub fn in_fleet(mut self, name: &str, wave: u32) -> Self {
        self.fleet_name = name.into();
        self.wave = wave;
        self
    }

    /// The fleet name results carry: `[fleet] name`, else the host name.
    pub fn fleet_name(&self) -> &str {
        if self.fleet_name.is_empty() {
            &self.host
        } else {
            &self.fleet_name
        }
    }

    /// The fleet wave results carry (1 unless configured).
    pub fn wave(&self) -> u32 {
        self.wave.max(1)
    }

    /// A notifier whose notices are handed to the returned receiver instead of being delivered
    /// (tests; embedding the agent with a sink of one's own).
    pub fn capture(host: &str) -> (Self, mpsc::Receiver<Notice>) {
        let (tx, rx) = mpsc::channel(BACKLOG);
        (
            Self {
                tx: Some(tx),
                host: host.into(),
                ..Self::default()
            },
            rx,
        )
    }

    /// The host name notices carry.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues `notice` for delivery; never waits.
    pub fn send(&self, notice: Notice) {
        let Some(tx) = &self.tx else { return };
        if let Err(e) = tx.try_send(notice) {
            warn!(error = %e, "notification dropped: too many waiting for delivery");
        }
    }
}

struct Sinks {
    http: reqwest::Client,
    webhooks: Vec<String>,
    events: Option<Arc<dyn EventBus>>,
    mail: Option<Arc<Mailer>>,
}

async fn deliver(mut rx: mpsc::Receiver<Notice>, sinks: Arc<Sinks>) {
    while let Some(notice) = rx.recv().await {
        // Sinks of one notice in parallel, so a hanging webhook delays only its own retries.
        let mut tasks = tokio::task::JoinSet::new();
        for (i, url) in sinks.webhooks.iter().enumerate() {
            let (sinks, url, body) = (sinks.clone(), url.clone(), notice.webhook_body());
            tasks.spawn(async move { post_webhook(&sinks.http, i, &url, &body).await });
        }
        if let (Some(mail), Notice::Deployment(d)) = (&sinks.mail, &notice)
            && Mailer::wants(&notice)
        {
            let (mail, d) = (mail.clone(), d.clone());
            tasks.spawn(async move { send_mail(&mail, &d).await });
        }
        if let (Some(bus), Notice::Deployment(d)) = (&sinks.events, &notice) {
            let (bus, d) = (bus.clone(), d.clone());
            tasks.spawn(async move { put_event(&bus, &d).await });
        }
        while tasks.join_next().await.is_some() {}
    }
}

fn backoff() -> ExponentialBuilder {
    backoff_of(ATTEMPTS)
}

fn backoff_of(attempts: usize) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(attempts - 1)
        .with_jitter()
}

/// `scheme://host[:port]` of a webhook: enough to tell which one failed, no secret.
pub fn webhook_label(i: usize, url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "webhook #{} ({}://{}{})",
            i + 1,
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => format!("webhook #{}", i + 1),
    }
}

async fn post_webhook(http: &reqwest::Client, i: usize, url: &str, body: &serde_json::Value) {
    let label = webhook_label(i, url);
    let attempt = || async {
        let resp = http
            .post(url)
            .json(body)
            .send()
            .await
            // reqwest's errors carry the URL, which is a secret.
            .map_err(|e| e.without_url().to_string())?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    };
    match attempt
        .retry(backoff())
        .notify(|e, delay| debug!(webhook = %label, error = %e, retry_in = ?delay, "webhook failed; retrying"))
        .await
    {
        Ok(()) => debug!(webhook = %label, "notification delivered"),
        Err(e) => warn!(webhook = %label, error = %e, attempts = ATTEMPTS, "notification not delivered"),
    }
}

/// One e-mail per outcome: tried like a webhook, a permanent refusal (a bad recipient, an
/// authentication failure) not tried again.
async fn send_mail(mail: &Mailer, d: &DeploymentNotice) {
    let attempt = || async { mail.send(d).await };
    let relay = mail.label();
    match attempt
        .retry(backoff())
        .when(|(permanent, _)| !permanent)
        .notify(|(_, e), delay| debug!(%relay, error = %e, retry_in = ?delay, "e-mail failed; retrying"))
        .await
    {
        Ok(()) => debug!(%relay, container = %d.container, "e-mail sent"),
        Err((_, e)) => warn!(%relay, error = %e, "e-mail not sent"),
    }
}

/// The `detail` of a deployment result event.
fn event_detail(d: &DeploymentNotice) -> String {
    serde_json::to_string(d).unwrap_or_default()
}

async fn put_event(bus: &Arc<dyn EventBus>, d: &DeploymentNotice) {
    let detail = event_detail(d);
    let attempt = || async {
        let call = bus.put(EVENT_SOURCE, EVENT_DETAIL_TYPE, detail.clone());
        tokio::time::timeout(ATTEMPT_TIMEOUT, call)
            .await
            .map_err(|_| RemoteError {
                operation: "put on the results bus",
                message: "timed out".to_owned(),
                transient: true,
            })?
    };
    let name = bus.name();
    match attempt.retry(backoff_of(RESULT_ATTEMPTS)).await {
        Ok(()) => debug!(bus = %name, "deployment result event put"),
        Err(e) => {
            warn!(bus = %name, error = %e, attempts = RESULT_ATTEMPTS, "deployment result event not put")
        }
    }
}

#[cfg(test)]
mod tests;
