//! The fleet of tests/fleet.rs and benches/fleet_waves.rs (SPEC §14) on one site of the
//! harness: one emulator with one results bus, the host stacks of infra/cloudformation (each
//! host its own queue, wave > 1 hosts a rule on the bus), one agent process per host with its
//! own state store, and one container per host.
//!
//! The hosts share the Engine. Each agent pulls through a registry address of its own
//! (aliases of one test registry), so each manages only its own host's container: the
//! others' images are neither from ECR nor from its mirror, and it leaves them alone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ecr_deployd::config::FleetSettings;
use serde_json::Value;

use super::docker::*;
use super::site::{Site, config_of, json, status_of};
use super::*;

pub const REPO: &str = "shop/web";
pub const BUS: &str = "fleet-results";

/// One host of the fleet: its stack's outputs, config, container and (while it runs) agent.
pub struct Host {
    pub name: String,
    pub container: String,
    pub config: String,
    pub queue_url: String,
    pub agent: Option<AgentProcess>,
    _state: tempfile::TempDir,
}

impl Host {
    /// Host `name` with its container, config and queue; its state store lives as long as
    /// `state`. No agent runs yet.
    pub fn new(
        name: &str,
        container: String,
        config: String,
        queue_url: String,
        state: tempfile::TempDir,
    ) -> Self {
        Host {
            name: name.into(),
            container,
            config,
            queue_url,
            agent: None,
            _state: state,
        }
    }

    pub fn start(&mut self) {
        self.agent = Some(AgentProcess::start(&self.config, &["run"]));
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(&mut self) {
        let mut agent = self.agent.take().expect("the agent runs");
        agent.signal("TERM");
        assert_eq!(agent.wait_exit(Duration::from_secs(60)), Some(0));
    }

    pub fn runs(&self, digest: &str) -> bool {
        running_digest_now(&self.container).as_deref() == Some(digest)
    }

    pub fn status(&self) -> Value {
        status_of(&self.config, &self.container)
    }

    /// Its deployments to `digest`, from `history --json`.
    pub fn deployments_to(&self, digest: &str) -> Vec<Value> {
        let (code, out, err) = run_cli(&self.config, &["history", "--json"], &[]);
        assert_eq!(code, 0, "{err}");
        let rows = json(&out)["deployments"]
            .as_array()
            .cloned()
            .expect("history --json lists deployments");
        rows.into_iter()
            .filter(|d| d["to_digest"] == digest)
            .collect()
    }
}

/// A fleet on one site of the harness: the results bus, `prod` on v1 in ECR, and hosts added
/// one by one (each its own stack, queue, state store and agent).
pub struct Fleet {
    pub v1: String,
    pub site: Site,
    /// Hosts made so far: the first pulls through the registry itself, the others through
    /// aliases.
    made: usize,
}

impl Fleet {
    pub async fn new(test: &str) -> Self {
        let site = Site::new(test).await;
        let out = provision_template(
            &site.endpoint,
            "fleet-results",
            "fleet-results-bus.yaml",
            &[&format!("BusName={BUS}")],
        );
        assert_eq!(out["BusName"], BUS);
        let v1 = site.registry.publish(REPO, "v1", Kind::Serve, "v1", true);
        put_digest(&site.ecr, REPO, "prod", &v1).await;
        Self { v1, site, made: 0 }
    }

    /// Provisions host `name` of `wave` and starts its container on v1; the agent is not
    /// started yet.
    pub fn host(&mut self, name: &str, wave: u32, fleet: impl FnOnce(&mut FleetSettings)) -> Host {
        let out = provision(
            &self.site.endpoint,
            &format!("ecr-deployd-{name}"),
            &[
                &format!("HostName={name}"),
                &format!("Repositories={REPO}"),
                &format!("Wave={wave}"),
                &format!("ResultsBusName={BUS}"),
            ],
        );
        assert_eq!(out.contains_key("WaveRuleArn"), wave > 1, "{out:?}");
        let mirror = if self.made == 0 {
            self.site.registry.host.clone()
        } else {
            self.site.registry.alias()
        };
        self.made += 1;
        let image = format!("{mirror}/{REPO}:prod");
        docker(&[
            "tag",
            &format!("{}/{REPO}@{}", self.site.registry.host, self.v1),
            &image,
        ]);
        let container = self.site.scope.name(name);
        self.site
            .scope
            .run(&container, &["--label", "ecr-deployd.enable=true", &image]);
        let state = tempfile::tempdir().unwrap();
        let config = agent_config(&out, &self.site, &mirror, name, fleet, &state);
        Host::new(name, container, config, out["QueueUrl"].clone(), state)
    }

    /// Publishes `version` of `kind`, moves `prod` to it in ECR and puts the push event.
    pub async fn push(&self, version: &str, kind: Kind) -> String {
        let digest = self
            .site
            .registry
            .publish(REPO, version, kind, version, false);
        put_digest(&self.site.ecr, REPO, "prod", &digest).await;
        put_ecr_event(&self.site.events, REPO, "prod", &digest, "PUSH", "SUCCESS").await;
        digest
    }

    /// Puts a deployment result on the results bus, as a host of the fleet would.
    pub async fn put_result(&self, name: &str, wave: u32, digest: &str, outcome: &str) {
        let detail = serde_json::json!({
            "host": name, "name": name, "wave": wave, "wave_key": format!("wave-{wave}"),
            "kind": "container", "container": "web",
            "repository": REPO, "tag": "prod", "from_digest": null, "to_digest": digest,
            "outcome": outcome, "trigger": "event", "error": null, "durations_ms": {"total": 1},
        });
        put_event_on(
            &self.site.events,
            Some(BUS),
            "ecr-deployd",
            "ECR Deployment Result",
            &detail,
        )
        .await;
    }
}

/// The stack's config snippet as the site reads it ([`Site::settings_from_snippet`]), with the
/// host's own mirror address, state store and name; `fleet` changes the snippet's `[fleet]` (which
/// names the wave).
fn agent_config(
    out: &HashMap<String, String>,
    site: &Site,
    mirror: &str,
    name: &str,
    fleet: impl FnOnce(&mut FleetSettings),
    state: &tempfile::TempDir,
) -> String {
    let snippet = &out["ConfigSnippet"];
    let mut s = site.settings_from_snippet(snippet);
    assert_eq!(s.notify.event_bus, BUS, "{snippet}");
    s.fleet.name = name.to_owned();
    fleet(&mut s.fleet);
    s.registry.mirror = mirror.to_owned();
    s.deploy.health_timeout_seconds = 20;
    s.state.path = state.path().join("state.db");
    config_of(&s)
}

pub async fn until_runs(host: &Host, digest: &str, within: Duration) {
    eventually(
        within,
        &format!("{} runs {}", host.name, &digest[7..19]),
        || async { host.runs(digest) },
    )
    .await;
}

pub async fn until_state(host: &Host, state: &str, detail: &str) -> Value {
    let mut last = Value::Null;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        last = host.status();
        if last["state"] == state && last["detail"].as_str().unwrap_or("").contains(detail) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!(
        "{}: not {state} ({detail}) within 60 s: {last:#}",
        host.name
    )
}
