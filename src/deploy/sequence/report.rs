//! What a finished deployment tells the world: one INFO line, the metrics, the fleet
//! ledger, and the notice for webhooks, e-mail and the results bus.

use std::time::{Duration, SystemTime};

use tracing::info;

use super::executor::Executor;
use crate::event::Digest;
use crate::ledger::writer::Deployed;
use crate::model::Trigger;
use crate::notify::{DeploymentNotice, Durations, Notice};
use crate::ports::{Credentials, Runtime, Target};
use crate::store::{Outcome, Phases};

/// A finished deployment, as reported.
pub(in crate::deploy) struct Finished<'a> {
    pub target: &'a Target,
    pub to: &'a Digest,
    /// The index's manifest for this host, when the tag names an index.
    pub platform: Option<&'a Digest>,
    pub outcome: Outcome,
    pub trigger: Trigger,
    pub took: Duration,
    pub phases: &'a Phases,
    pub event_time: Option<SystemTime>,
    pub error: Option<&'a str>,
    /// Docker went away mid-deploy: logged, not counted (the request is retried).
    pub transient: bool,
}

fn short(d: Option<&Digest>) -> String {
    d.map(|d| d.short().to_owned())
        .unwrap_or_else(|| "-".into())
}

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// One log line, the metrics and the notification of a finished deployment.
    pub(in crate::deploy) fn report(&self, f: &Finished<'_>) {
        let event_to_running = f
            .event_time
            .filter(|_| f.outcome == Outcome::Succeeded)
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        let from = f.target.digests().first();
        info!(
            kind = f.target.kind(),
            name = %f.target.name(),
            image = %f.target.follows(),
            from = %short(from),
            to = %f.to.short(),
            platform = %short(f.platform),
            outcome = f.outcome.as_str(),
            trigger = f.trigger.as_str(),
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
        let follows = f.target.follows();
        self.ledger.deployed(&Deployed {
            container: f.target.name(),
            image: &follows.to_string(),
            to: f.to.as_str(),
            platform: f.platform.map(Digest::as_str),
            outcome: f.outcome,
            error: f.error,
        });
        self.notifier.send(Notice::Deployment(DeploymentNotice {
            host: self.notifier.host().to_owned(),
            name: self.notifier.fleet_name().to_owned(),
            wave: self.notifier.wave(),
            wave_key: crate::notify::wave_key(self.notifier.wave()),
            kind: f.target.kind(),
            container: f.target.name().to_owned(),
            repository: follows.repository.as_str().to_owned(),
            tag: follows.tag.as_str().to_owned(),
            from_digest: from.map(ToString::to_string),
            to_digest: f.to.to_string(),
            platform_digest: f.platform.map(ToString::to_string),
            outcome: f.outcome,
            trigger: f.trigger.to_string(),
            error: f.error.map(str::to_owned),
            durations_ms: Durations::new(f.phases, f.took, event_to_running),
        }));
    }
}
