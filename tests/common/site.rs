//! One host's site for tests that run the binary as an operator does: moto (SQS, ECR,
//! EventBridge), a local registry, the Docker Engine, a state store and a config file text.

use std::time::Duration;

use ecr_deployd::store::{Deployment, Step, Store};
use serde_json::Value;

use super::docker::*;
use super::*;

pub struct Site {
    _moto: Moto,
    // Fields drop in order: the test's containers go before the registry's images.
    pub scope: Scope,
    pub registry: TestRegistry,
    pub sqs: aws_sdk_sqs::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub endpoint: String,
    pub url: String,
    _dir: tempfile::TempDir,
    pub state: std::path::PathBuf,
}

impl Site {
    pub async fn new(test: &str) -> Self {
        let moto = Moto::start();
        let sdk = moto.sdk().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let (url, _) = create_queue(&sqs, "host-a", Some(5)).await;
        let dir = tempfile::tempdir().unwrap();
        Self {
            endpoint: moto.endpoint.clone(),
            ecr: aws_sdk_ecr::Client::new(&sdk),
            events: aws_sdk_eventbridge::Client::new(&sdk),
            _moto: moto,
            registry: TestRegistry::start(),
            scope: Scope::new(test),
            sqs,
            url,
            state: dir.path().join("state.db"),
            _dir: dir,
        }
    }

    pub fn config(&self, sweep_interval: u64) -> String {
        self.config_with_http(sweep_interval, "")
    }

    pub fn config_with_http(&self, sweep_interval: u64, listen: &str) -> String {
        format!(
            "[aws]\nregion = \"{REGION}\"\nendpoint_url = \"{}\"\n[queue]\nurl = \"{}\"\nwait_time_seconds = 1\n\
             [registry]\nmirror = \"{}\"\n[sweep]\ninterval_seconds = {sweep_interval}\njitter_seconds = 0\n\
             [deploy]\ndebounce_millis = 100\nmin_uptime_seconds = 1\n[state]\npath = \"{}\"\n[http]\nlisten = \"{listen}\"\n",
            self.endpoint,
            self.url,
            self.registry.host,
            self.state.display()
        )
    }

    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        run_cli(&self.config(0), args, &[])
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
