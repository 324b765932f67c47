//! The one integration harness: a host's site on the real stack — moto (SQS, ECR, S3,
//! EventBridge), a local registry, the Engine under test (tests/common/matrix.rs), a state
//! store — and the agent's config, typed ([`Site::settings`], the crate's own `Settings`)
//! and written as the file the binary reads ([`config_of`]). Tests that need more (a Swarm,
//! S3 archives, several hosts) build on it.

use std::time::Duration;

use ecr_deployd::config::Settings;
use ecr_deployd::store::{Deployment, Step, Store};
use serde_json::Value;

use super::docker::*;
use super::*;

pub struct Site {
    pub moto: Moto,
    pub sdk: aws_config::SdkConfig,
    // Fields drop in order: the test's containers go before the registry's images.
    pub scope: Scope,
    pub registry: TestRegistry,
    pub sqs: aws_sdk_sqs::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub endpoint: String,
    /// The host's queue (`host-a`).
    pub url: String,
    pub dir: tempfile::TempDir,
    pub state: std::path::PathBuf,
}

/// How a [`Site`] is made: by default its queue has a dead-letter queue after 5 receives
/// and its registry is a plain [`TestRegistry`].
pub struct SiteBuilder {
    test: String,
    dlq_max_receive: Option<u32>,
    registry: Option<TestRegistry>,
}

impl SiteBuilder {
    /// The host's queue without a dead-letter queue: a message comes back however often it
    /// is received (tests that interrupt the agent and count what is in flight).
    pub fn without_dlq(mut self) -> Self {
        self.dlq_max_receive = None;
        self
    }

    /// This registry instead of a plain one (e.g. one that sends push notifications).
    pub fn registry(mut self, registry: TestRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    pub async fn start(self) -> Site {
        let Aws {
            moto,
            sdk,
            sqs,
            ecr,
        } = Aws::start().await;
        let (url, _) = create_queue(&sqs, "host-a", self.dlq_max_receive).await;
        let dir = tempfile::tempdir().unwrap();
        Site {
            endpoint: moto.endpoint.clone(),
            events: aws_sdk_eventbridge::Client::new(&sdk),
            moto,
            sdk,
            registry: self.registry.unwrap_or_else(TestRegistry::start),
            scope: Scope::new(&self.test),
            sqs,
            ecr,
            url,
            state: dir.path().join("state.db"),
            dir,
        }
    }
}

impl Site {
    pub async fn new(test: &str) -> Self {
        Self::builder(test).start().await
    }

    pub fn builder(test: &str) -> SiteBuilder {
        SiteBuilder {
            test: test.to_owned(),
            dlq_max_receive: Some(5),
            registry: None,
        }
    }

    /// The agent's settings on this site, typed: the emulator, the host's queue (1 s long
    /// polls), the registry as ECR's mirror, the state store, no HTTP listener, a 100 ms
    /// debounce and 1 s minimum uptime; sweeps every `sweep_interval` seconds (0: never)
    /// without jitter. Change fields, then write it with [`config_of`].
    pub fn settings(&self, sweep_interval: u64) -> Settings {
        let mut s = Settings::default();
        s.aws.region = REGION.to_owned();
        s.aws.endpoint_url = self.endpoint.clone();
        s.queue.url = self.url.clone();
        s.queue.wait_time_seconds = 1;
        s.registry.mirror = self.registry.host.clone();
        s.sweep.interval_seconds = sweep_interval;
        s.sweep.jitter_seconds = 0;
        s.deploy.debounce_millis = 100;
        s.deploy.min_uptime_seconds = 1;
        s.state.path = self.state.clone();
        s.http.listen = String::new();
        s
    }

    /// A provisioned host stack's config snippet (its `ConfigSnippet` output, as an operator
    /// pastes it) read as the agent's settings, with what only a test on this site adds: the
    /// emulator, 1 s long polls, the site's registry as mirror, its state store, a 100 ms
    /// debounce and 1 s minimum uptime, no periodic sweep, no HTTP listener.
    pub fn settings_from_snippet(&self, snippet: &str) -> Settings {
        let mut s: Settings = toml::from_str(snippet)
            .unwrap_or_else(|e| panic!("the stack's config snippet is a config: {e}\n{snippet}"));
        s.aws.endpoint_url = self.endpoint.clone();
        s.queue.wait_time_seconds = 1;
        s.registry.mirror = self.registry.host.clone();
        s.deploy.debounce_millis = 100;
        s.deploy.min_uptime_seconds = 1;
        s.sweep.interval_seconds = 0;
        s.state.path = self.state.clone();
        s.http.listen = String::new();
        s
    }

    /// [`Site::settings`] as config file text.
    pub fn config(&self, sweep_interval: u64) -> String {
        config_of(&self.settings(sweep_interval))
    }

    /// As [`Site::config`], with the HTTP listener on `listen`.
    pub fn config_with_http(&self, sweep_interval: u64, listen: &str) -> String {
        let mut s = self.settings(sweep_interval);
        s.http.listen = listen.to_owned();
        config_of(&s)
    }

    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        run_cli(&self.config(0), args, &[])
    }

    /// `history NAME --json`'s deployments, newest first, as the operator reads them.
    pub fn deployments(&self, name: &str) -> Vec<Value> {
        let (code, out, err) = self.cli(&["history", name, "--json"]);
        assert_eq!(code, 0, "{err}");
        json(&out)["deployments"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A managed container running v1 of `repo` (ECR's `prod` points at v1).
    pub async fn container(&self, repo: &str, short: &str) -> (String, String) {
        self.container_with(repo, short, &[]).await
    }

    /// As `container`, with more `--label`s (`key=value`).
    pub async fn container_with(
        &self,
        repo: &str,
        short: &str,
        labels: &[&str],
    ) -> (String, String) {
        let args: Vec<&str> = labels.iter().flat_map(|l| ["--label", *l]).collect();
        self.container_run(repo, short, &args).await
    }

    /// As `container`, with more `docker run` options (`--label`, `-v` …).
    pub async fn container_run(
        &self,
        repo: &str,
        short: &str,
        options: &[&str],
    ) -> (String, String) {
        let v1 = self.registry.publish(repo, "v1", Kind::Serve, "v1", true);
        let prod = format!("{}/{repo}:prod", self.registry.host);
        docker(&["tag", &format!("{}/{repo}:v1", self.registry.host), &prod]);
        put_digest(&self.ecr, repo, "prod", &v1).await;
        let name = self.scope.name(short);
        let mut args = vec!["--label", "ecr-deployd.enable=true"];
        args.extend_from_slice(options);
        args.push(&prod);
        self.scope.run(&name, &args);
        (name, v1)
    }

    /// Sets moto's scan result of `digest` in `repo` to `counts` (`{"CRITICAL": 1, …}`), then
    /// starts its scan: `DescribeImageScanFindings` answers COMPLETE with those counts.
    pub async fn scanned(&self, repo: &str, digest: &str, counts: Value) {
        let body = serde_json::json!({
            "region": REGION,
            "results": [{
                "registryId": ACCOUNT,
                "repositoryName": repo,
                "imageId": {"imageDigest": digest},
                "imageScanStatus": {"status": "COMPLETE", "description": "done"},
                "imageScanFindings": {"findingSeverityCounts": counts, "findings": []}
            }]
        });
        let url = format!("{}/moto-api/static/ecr/scan-finding-results", self.endpoint);
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "-f",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
            ])
            .args(["-d", &body.to_string(), &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_digest(digest)
            .build();
        self.ecr
            .start_image_scan()
            .repository_name(repo)
            .image_id(id)
            .send()
            .await
            .unwrap();
    }

    /// A registry-level scanning rule: BASIC scanning on push for repositories matching `filter`.
    pub async fn scan_on_push_rule(&self, filter: &str) {
        use aws_sdk_ecr::types::{
            RegistryScanningRule, ScanFrequency, ScanType, ScanningRepositoryFilter,
            ScanningRepositoryFilterType,
        };
        let rule = RegistryScanningRule::builder()
            .scan_frequency(ScanFrequency::ScanOnPush)
            .repository_filters(
                ScanningRepositoryFilter::builder()
                    .filter(filter)
                    .filter_type(ScanningRepositoryFilterType::Wildcard)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        self.ecr
            .put_registry_scanning_configuration()
            .scan_type(ScanType::Basic)
            .rules(rule)
            .send()
            .await
            .unwrap();
    }

    /// A push whose event is lost: ECR moves, nothing reaches the queue.
    pub async fn silent_push(&self, repo: &str, kind: Kind, version: &str) -> String {
        let digest = self.registry.publish(repo, version, kind, version, false);
        put_digest(&self.ecr, repo, "prod", &digest).await;
        digest
    }

    /// v1 of `repo` published, tagged `prod` locally and in ECR: (its digest, `…/repo:prod`).
    pub async fn first_version(&self, repo: &str, kind: Kind) -> (String, String) {
        if matrix::under_test().flavour == matrix::Flavour::Podman5 {
            // Podman 5 compresses on push: an image built here would list its local
            // manifest's digest, not the registry's. The first version runs from a pull by
            // digest, as on a production host.
            return self
                .first_version_fetched(repo, kind, |pinned, prod| {
                    self.registry.docker_logged_in(&["pull", "-q", pinned]);
                    docker(&["tag", pinned, &format!("{}/{repo}:v1", self.registry.host)]);
                    docker(&["tag", pinned, prod]);
                })
                .await;
        }
        let host = &self.registry.host;
        let prod = format!("{host}/{repo}:prod");
        let v1 = self.registry.publish(repo, "v1", kind, "v1", true);
        docker(&["tag", &format!("{host}/{repo}:v1"), &prod]);
        put_digest(&self.ecr, repo, "prod", &v1).await;
        (v1, prod)
    }

    /// v1 of `repo` published to the registry only and brought onto an Engine by `fetch`
    /// (given `…/repo@<v1>` and `…/repo:prod`: pull the one, tag it as the other), as on a
    /// production host; `prod` in ECR names it. (its digest, `…/repo:prod`).
    pub async fn first_version_fetched(
        &self,
        repo: &str,
        kind: Kind,
        fetch: impl FnOnce(&str, &str),
    ) -> (String, String) {
        let host = &self.registry.host;
        let v1 = self.registry.publish(repo, "v1", kind, "v1", false);
        let (pinned, prod) = (format!("{host}/{repo}@{v1}"), format!("{host}/{repo}:prod"));
        fetch(&pinned, &prod);
        put_digest(&self.ecr, repo, "prod", &v1).await;
        (v1, prod)
    }

    /// ECR's push event of `repo:prod` at `digest`, sent to the host's queue.
    pub async fn event(&self, repo: &str, digest: &str) {
        send_all(&self.sqs, &self.url, &[push_body(repo, "prod", digest)]).await;
    }
}

/// `settings` as the config file the binary reads: only what differs from the defaults, so
/// that a test may still append a section of its own.
pub fn config_of(settings: &Settings) -> String {
    let table = toml::Table::try_from(settings).expect("Settings as TOML");
    let defaults = toml::Table::try_from(Settings::default()).expect("defaults as TOML");
    toml::to_string(&changed(table, &defaults)).expect("TOML text")
}

/// The keys of `table` whose value differs from `defaults`, sub-tables key by key.
fn changed(table: toml::Table, defaults: &toml::Table) -> toml::Table {
    let differs = |(key, value): (String, toml::Value)| match (value, defaults.get(&key)) {
        (toml::Value::Table(t), Some(toml::Value::Table(d))) => {
            let t = changed(t, d);
            (!t.is_empty()).then_some((key, toml::Value::Table(t)))
        }
        (value, Some(default)) if &value == default => None,
        (value, _) => Some((key, value)),
    };
    table.into_iter().filter_map(differs).collect()
}

impl Site {
    /// The state store's history of `name`, newest first.
    pub fn history(&self, name: &str) -> Vec<Deployment> {
        history_in(&self.state, name)
    }

    /// Waits for the deployment of `to` to `name` to be recorded with an outcome.
    pub async fn outcome(&self, name: &str, to: &str) -> Deployment {
        outcome_in(&self.state, name, to).await
    }

    /// Waits until an unfinished deployment is journalled at `step`.
    pub async fn journal_at(&self, step: Step) {
        eventually(Duration::from_secs(60), "journal step", || async {
            Store::open(&self.state)
                .ok()
                .and_then(|s| s.unfinished().ok())
                .is_some_and(|open| open.iter().any(|d| d.step == Some(step)))
        })
        .await;
    }
}

/// The history of `name` in the state store at `state`, newest first.
pub fn history_in(state: &std::path::Path, name: &str) -> Vec<Deployment> {
    Store::open(state).unwrap().history(Some(name), 20).unwrap()
}

/// Waits for the deployment of `to` to `name` to be recorded with an outcome in `state`.
pub async fn outcome_in(state: &std::path::Path, name: &str, to: &str) -> Deployment {
    let mut found = None;
    eventually(Duration::from_secs(90), "deployment recorded", || {
        found = history_in(state, name)
            .into_iter()
            .find(|d| d.to_digest == to && d.outcome.is_some());
        std::future::ready(found.is_some())
    })
    .await;
    found.unwrap()
}

pub fn short(d: &str) -> &str {
    &d[7..19]
}

pub fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The `status --json` entry of container `name`, with `config`.
pub fn status_of(config: &str, name: &str) -> Value {
    let (code, out, err) = run_cli(config, &["status", "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    json(&out)["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in status: {out}"))
}
