//! Fleet waves (SPEC §14) on the real stack: one emulator (moto) with one results bus, the
//! host stacks of infra/cloudformation (each host its own queue, wave > 1 hosts a rule on the
//! bus), one agent process per host with its own state store, and one container per host.
//!
//! The hosts share this machine's Engine. Each agent pulls through a registry address of its
//! own (aliases of one test registry), so each manages only its own host's container: the
//! others' images are neither from ECR nor from its mirror, and it leaves them alone.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::docker::*;
use common::site::{Site, config_of, json, status_of};
use common::*;
use ecr_deployd::config::{FleetSettings, Settings};
use serde_json::Value;

const REPO: &str = "shop/web";
const BUS: &str = "fleet-results";

/// One host of the fleet: its stack's outputs, config, container and (while it runs) agent.
struct Host {
    name: String,
    container: String,
    config: String,
    queue_url: String,
    agent: Option<AgentProcess>,
    _state: tempfile::TempDir,
}

impl Host {
    fn start(&mut self) {
        self.agent = Some(AgentProcess::start(&self.config, &["run"]));
    }

    /// SIGTERM, and waits for a clean exit.
    fn stop(&mut self) {
        let mut agent = self.agent.take().expect("the agent runs");
        agent.signal("TERM");
        assert_eq!(agent.wait_exit(Duration::from_secs(60)), Some(0));
    }

    fn runs(&self, digest: &str) -> bool {
        running_digest_now(&self.container).as_deref() == Some(digest)
    }

    fn status(&self) -> Value {
        status_of(&self.config, &self.container)
    }

    /// Its deployments to `digest`, from `history --json`.
    fn deployments_to(&self, digest: &str) -> Vec<Value> {
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
struct Fleet {
    v1: String,
    site: Site,
    /// Hosts made so far: the first pulls through the registry itself, the others through
    /// aliases.
    made: usize,
}

impl Fleet {
    async fn new(test: &str) -> Self {
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
    fn host(&mut self, name: &str, wave: u32, fleet: impl FnOnce(&mut FleetSettings)) -> Host {
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
        Host {
            name: name.into(),
            container,
            config,
            queue_url: out["QueueUrl"].clone(),
            agent: None,
            _state: state,
        }
    }

    /// Publishes `version` of `kind`, moves `prod` to it in ECR and puts the push event.
    async fn push(&self, version: &str, kind: Kind) -> String {
        let digest = self
            .site
            .registry
            .publish(REPO, version, kind, version, false);
        put_digest(&self.site.ecr, REPO, "prod", &digest).await;
        put_ecr_event(&self.site.events, REPO, "prod", &digest, "PUSH", "SUCCESS").await;
        digest
    }

    /// Puts a deployment result on the results bus, as a host of the fleet would.
    async fn put_result(&self, name: &str, wave: u32, digest: &str, outcome: &str) {
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

/// The stack's config snippet, read as the agent's Settings, plus the emulator, the mirror,
/// a state store and what only a test needs; `fleet` changes the snippet's `[fleet]` (which
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
    let mut s: Settings = toml::from_str(snippet)
        .unwrap_or_else(|e| panic!("the stack's config snippet is a config: {e}\n{snippet}"));
    assert_eq!(s.notify.event_bus, BUS, "{snippet}");
    s.aws.endpoint_url = site.endpoint.clone();
    s.queue.wait_time_seconds = 1;
    s.fleet.name = name.to_owned();
    fleet(&mut s.fleet);
    s.registry.mirror = mirror.to_owned();
    s.deploy.debounce_millis = 100;
    s.deploy.min_uptime_seconds = 1;
    s.deploy.health_timeout_seconds = 20;
    s.sweep.interval_seconds = 0;
    s.state.path = state.path().join("state.db");
    s.http.listen = String::new();
    config_of(&s)
}

async fn until_runs(host: &Host, digest: &str, within: Duration) {
    eventually(
        within,
        &format!("{} runs {}", host.name, &digest[7..19]),
        || async { host.runs(digest) },
    )
    .await;
}

async fn until_state(host: &Host, state: &str, detail: &str) -> Value {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_go_through_the_waves_and_a_rollback_at_the_canaries_halts_the_rest() {
    let mut fleet = Fleet::new("fleet").await;
    let v1 = fleet.v1.clone();
    let mut ca = fleet.host("canary-a", 1, |_| ());
    let mut cb = fleet.host("canary-b", 1, |_| ());
    let mut w2 = fleet.host("wave2-a", 2, |f| f.promote_after = 2);
    let mut w3 = fleet.host("wave3-a", 3, |_| ());

    // doctor on a wave 2 host finds the rule that feeds it from the results bus.
    let (code, out, err) = run_cli(&w2.config, &["doctor"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines().any(|l| l.starts_with("ok")
            && l.contains("results bus rule targets the queue")
            && l.contains("ecr-deployd-wave2-a-wave")),
        "{out}"
    );

    // Good push with one of the two canaries' agents down: wave 2 waits for both.
    ca.start();
    w2.start();
    w3.start();
    let v2 = fleet.push("v2", Kind::Serve).await;
    until_runs(&ca, &v2, Duration::from_secs(60)).await;
    let s = until_state(&w2, "waiting", "1 of 2 hosts succeeded (canary-a)").await;
    assert_eq!(s["fleet"]["wave"], 2);
    assert_eq!(s["fleet"]["results"][0]["host"], "canary-a", "{s:#}");
    assert!(w2.runs(&v1) && w3.runs(&v1), "later waves keep v1");

    // A restart of the wave 2 agent keeps what it has seen.
    w2.stop();
    w2.start();
    until_state(&w2, "waiting", "1 of 2 hosts succeeded").await;

    // The second canary comes up, deploys at its start-up sweep, and the waves follow.
    cb.start();
    until_runs(&cb, &v2, Duration::from_secs(60)).await;
    until_runs(&w2, &v2, Duration::from_secs(60)).await;
    until_runs(&w3, &v2, Duration::from_secs(60)).await;
    let w2_v2 = w2.deployments_to(&v2);
    assert_eq!(w2_v2.len(), 1, "{w2_v2:#?}");
    assert_eq!(w2_v2[0]["trigger"], "promotion");
    assert_eq!(w2_v2[0]["outcome"], "succeeded");

    // A duplicate of a canary's result and a stale result (for v1): nothing more happens.
    fleet.put_result("canary-b", 1, &v2, "succeeded").await;
    fleet.put_result("canary-z", 1, &v1, "succeeded").await;
    eventually(
        Duration::from_secs(30),
        "wave 2's queue is drained",
        || async { queue_counts(&fleet.site.sqs, &w2.queue_url).await == (0, 0) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w2.deployments_to(&v2).len(), 1, "one deploy of v2");
    assert!(
        w2.deployments_to(&v1).is_empty(),
        "the stale v1 is not deployed"
    );
    assert!(w2.runs(&v2));

    // Bad push: the canaries roll back; wave 2 never pulls it and says halted.
    let v3 = fleet.push("v3", Kind::ExitAtOnce).await;
    for c in [&ca, &cb] {
        eventually(
            Duration::from_secs(90),
            "the canary rolled v3 back",
            || async {
                c.deployments_to(&v3)
                    .iter()
                    .any(|d| d["outcome"] == "rolled_back")
            },
        )
        .await;
    }
    let s = until_state(&w2, "halted", "rolled back on canary-").await;
    assert_eq!(s["desired_digest"], v3.as_str());
    assert!(w2.deployments_to(&v3).is_empty(), "wave 2 never tried v3");
    assert!(w3.deployments_to(&v3).is_empty(), "wave 3 never tried v3");
    assert!(w2.runs(&v2) && w3.runs(&v2));

    // The next good push goes through every wave; time from push to the last wave running.
    let pushed = Instant::now();
    let v4 = fleet.push("v4", Kind::Serve).await;
    until_runs(&w3, &v4, Duration::from_secs(90)).await;
    let took = pushed.elapsed();
    for h in [&ca, &cb, &w2] {
        assert!(h.runs(&v4), "{} runs v4", h.name);
    }
    let s = w3.status();
    assert_eq!(s["fleet"]["promoted_digest"], v4.as_str(), "{s:#}");
    // What following the results costs wave 2 in AWS requests: each result is one message
    // on the queue it already long-polls (a receive that returns early, and its delete); its
    // own results are one PutEvents per deployment; nothing at all while idle.
    let log = w2.agent.as_ref().unwrap().log_text();
    let results_seen = log.matches("fleet result").count();
    let report = serde_json::json!({
        "waves": 3,
        "hosts": 4,
        "bake_minutes": 0,
        "push_to_last_wave_running_ms": took.as_millis() as u64,
        "wave2_result_messages_since_restart": results_seen,
        "extra_requests_per_result_message": 2,
        "extra_requests_per_own_deployment": 1,
        "extra_requests_idle": 0,
    });
    eprintln!("fleet_waves: {report}");
    bench_report("fleet_waves", &report);
    for h in [&mut ca, &mut cb, &mut w2, &mut w3] {
        h.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_digest_bakes_before_the_next_wave_deploys_it() {
    let mut fleet = Fleet::new("bake").await;
    let v1 = fleet.v1.clone();
    let mut canary = fleet.host("canary", 1, |_| ());
    let mut w2 = fleet.host("wave2", 2, |f| f.bake_minutes = 1);
    canary.start();
    w2.start();
    let v2 = fleet.push("v2", Kind::Serve).await;
    until_runs(&canary, &v2, Duration::from_secs(60)).await;
    let promoted = Instant::now();
    let s = until_state(&w2, "waiting", "promoted, baking for").await;
    let left = s["fleet"]["bake_left_seconds"].as_u64().unwrap();
    assert!((30..=60).contains(&left), "{s:#}");
    assert!(w2.runs(&v1));
    until_runs(&w2, &v2, Duration::from_secs(120)).await;
    // The bake runs from when wave 2 saw the result, a moment after the canary ran v2.
    assert!(
        promoted.elapsed() >= Duration::from_secs(50),
        "deployed after {:?}",
        promoted.elapsed()
    );
    assert_eq!(w2.deployments_to(&v2)[0]["trigger"], "promotion");
    canary.stop();
    w2.stop();
}
