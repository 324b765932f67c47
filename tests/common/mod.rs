//! Test harness: the real stack on free loopback ports, started and stopped by the tests.
//!
//! - AWS APIs: a moto server per test (`.venv/bin/moto_server`, installed by `scripts/setup.sh`;
//!   `MOTO_SERVER` overrides the path).
//! - The agent itself, as the built binary, when a test needs signals or start-up behaviour.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod archive;
pub mod ca;
pub mod cosign;
pub mod docker;
pub mod engine;
pub mod faults;
pub mod fleet;
pub mod matrix;
pub mod oci;
pub mod podman;
pub mod podman5;
pub mod signing;
pub mod site;
pub mod smtp;
pub mod webhook;

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;
use aws_sdk_sqs::types::QueueAttributeName;
use sha2::{Digest as _, Sha256};

pub const REGION: &str = "eu-west-2";
/// moto's default account.
pub const ACCOUNT: &str = "123456789012";

/// A loopback port for a server a test starts (moto, a registry, the agent's listeners).
///
/// Not one the kernel picks for port 0: those come from the ephemeral range, which is also
/// where every outgoing connection's local port comes from, so between choosing such a port
/// and the server binding it, a client anywhere on the machine could take it ("Address
/// already in use", seen in CI). Ports are taken from outside that range instead, claimed
/// with [`claim`] so no other test process running side by side hands out the same one,
/// and checked free by binding.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let (low, high) = outside_ephemeral();
    let span = u32::from(high - low);
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let step = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = low + ((start + step) % span) as u16;
        if claim(&format!("port-{port}")) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// The ports below the kernel's ephemeral range (above it when that leaves too few).
fn outside_ephemeral() -> (u16, u16) {
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut bounds = range
        .split_whitespace()
        .filter_map(|n| n.parse::<u16>().ok());
    let (first, last) = (
        bounds.next().unwrap_or(32768),
        bounds.next().unwrap_or(60999),
    );
    if first >= 12000 {
        (first - 10000, first)
    } else {
        assert!(
            last <= 55000,
            "the ephemeral range {first}-{last} leaves no room for test ports"
        );
        (last + 1, last + 10001)
    }
}

/// Holds `name` for this process until it exits, unless another test process holds it: an
/// abstract Unix socket named after it is bound (the kernel releases it with the process;
/// nothing is left on disk).
fn claim(name: &str) -> bool {
    use std::os::linux::net::SocketAddrExt as _;
    use std::os::unix::net::{SocketAddr, UnixListener};
    static HELD: std::sync::Mutex<Vec<UnixListener>> = std::sync::Mutex::new(Vec::new());
    let addr = SocketAddr::from_abstract_name(format!("ecr-deployd-test-{name}")).unwrap();
    match UnixListener::bind_addr(&addr) {
        Ok(held) => {
            HELD.lock().unwrap().push(held);
            true
        }
        Err(_) => false,
    }
}

/// A number in `0..count` of `kind` (e.g. a side Engine's bridge and address pool) that no
/// other test process holds, held until this process exits ([`claim`]). Test binaries run
/// side by side (`scripts/lanes.sh`), so a number derived from the pid could meet another
/// process's.
pub fn claim_slot(kind: &str, count: u32) -> u32 {
    (0..count)
        .find(|slot| claim(&format!("{kind}-{slot}")))
        .unwrap_or_else(|| panic!("all {count} slots of {kind} are held by other test processes"))
}

fn moto_server_path() -> PathBuf {
    let path = std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/.venv/bin/moto_server"
            ))
        });
    assert!(
        path.exists(),
        "{} not found: run ./scripts/setup.sh first (it installs moto into .venv)",
        path.display()
    );
    path
}

/// A moto server on a loopback port, killed on drop.
pub struct Moto {
    pub port: u16,
    pub endpoint: String,
    child: Child,
}

impl Moto {
    /// A moto that is not up and answering once its port listens (it died starting, or
    /// another program held its port) is started again on another port, twice at most.
    pub fn start() -> Self {
        let mut tried = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            match Self::try_start(port) {
                Ok(moto) => return moto,
                Err(why) => tried.push(format!("port {port}: {why}")),
            }
        }
        panic!("moto_server did not come up:\n{}", tried.join("\n"));
    }

    pub fn start_on(port: u16) -> Self {
        Self::try_start(port).unwrap_or_else(|why| panic!("moto_server on port {port}: {why}"))
    }

    /// Starts moto on `port` and waits until it answers HTTP there; `Err` with what it
    /// printed when it is not the one answering or has exited.
    fn try_start(port: u16) -> Result<Self, String> {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(moto_server_path())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start moto_server");
        let mut moto = Self {
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        wait_for_port(port, Duration::from_secs(30));
        let answered = http_status_line(port);
        match moto.child.try_wait().unwrap() {
            None if answered.starts_with("HTTP/1.") => Ok(moto),
            exited => Err(format!(
                "answered {answered:?}, exited: {exited:?}; it printed:\n{}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            )),
        }
    }

    /// SDK configuration for the test's own calls (seeding, inspecting).
    pub async fn sdk(&self) -> SdkConfig {
        sdk_for(&self.endpoint).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A moto server with the clients a test uses to seed and inspect it.
pub struct Aws {
    pub moto: Moto,
    pub sdk: SdkConfig,
    pub sqs: aws_sdk_sqs::Client,
    pub ecr: aws_sdk_ecr::Client,
}

impl Aws {
    pub async fn start() -> Self {
        Self::on(Moto::start()).await
    }

    pub async fn on(moto: Moto) -> Self {
        let sdk = moto.sdk().await;
        Self {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            ecr: aws_sdk_ecr::Client::new(&sdk),
            sdk,
            moto,
        }
    }
}

pub async fn sdk_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

/// The first line of the answer to `GET /` on a loopback `port` (empty when none came).
fn http_status_line(port: u16) -> String {
    use std::io::{BufRead as _, BufReader};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut line = String::new();
    let _ = BufReader::new(stream).read_line(&mut line);
    line.trim_end().to_owned()
}

pub fn wait_for_port(port: u16, timeout: Duration) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < timeout,
            "nothing listens on port {port} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates a queue (with a DLQ and `max_receive` when given); returns its URL.
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    dlq_max_receive: Option<u32>,
) -> (String, Option<String>) {
    let mut dlq_url = None;
    let mut create = sqs.create_queue().queue_name(name);
    if let Some(max) = dlq_max_receive {
        let url = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        let policy = format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{max}"}}"#);
        create = create.attributes(QueueAttributeName::RedrivePolicy, policy);
        dlq_url = Some(url);
    }
    (create.send().await.unwrap().queue_url.unwrap(), dlq_url)
}

/// Visible and in-flight message counts.
pub async fn queue_counts(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let n = |k| attrs.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        n(QueueAttributeName::ApproximateNumberOfMessages),
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

pub async fn send_all(sqs: &aws_sdk_sqs::Client, url: &str, bodies: &[String]) {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    for chunk in bodies.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, b)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(b)
                    .build()
                    .unwrap()
            })
            .collect();
        let out = sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
        assert!(out.failed().is_empty(), "{:?}", out.failed());
    }
}

/// Receives whatever is visible now (test inspection), without deleting.
pub async fn peek(sqs: &aws_sdk_sqs::Client, url: &str, wait_s: i32) -> Vec<String> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_s)
        .send()
        .await
        .unwrap();
    out.messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.body)
        .collect()
}

/// An S3 client of the emulator (path-style addressing, as moto serves buckets).
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

/// Creates `bucket` in the test region.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(REGION.into())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Pushes a manifest to ECR under `repo:tag`, with the digest real ECR would compute
/// (sha256 of the manifest bytes); `seed` makes the manifest unique.
pub async fn put_image(ecr: &aws_sdk_ecr::Client, repo: &str, tag: &str, seed: &str) -> String {
    let _ = ecr.create_repository().repository_name(repo).send().await;
    let config_digest = format!("sha256:{}", sha256_hex(seed.as_bytes()));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{config_digest}"}},"layers":[]}}"#,
        seed.len()
    );
    let digest = format!("sha256:{}", sha256_hex(manifest.as_bytes()));
    ecr.put_image()
        .repository_name(repo)
        .image_tag(tag)
        .image_manifest(&manifest)
        .image_digest(&digest)
        .send()
        .await
        .unwrap();
    digest
}

/// Points `repo:tag` in ECR at `digest` (an image pushed to the test registry).
pub async fn put_digest(ecr: &aws_sdk_ecr::Client, repo: &str, tag: &str, digest: &str) {
    let _ = ecr.create_repository().repository_name(repo).send().await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","note":"stands for {digest}"}}"#
    );
    ecr.put_image()
        .repository_name(repo)
        .image_tag(tag)
        .image_manifest(manifest)
        .image_digest(digest)
        .send()
        .await
        .unwrap();
}

/// Runs `cmd` and returns its stdout; a failure names the command and what it printed.
pub fn checked(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// An "ECR Image Scan" event as EventBridge delivers it.
pub fn scan_body(repo: &str, digest: &str) -> String {
    serde_json::json!({
        "version": "0", "id": sha256_hex(format!("scan{digest}").as_bytes()),
        "detail-type": "ECR Image Scan", "source": "aws.ecr", "account": ACCOUNT,
        "time": "2026-12-02T10:00:00Z", "region": REGION, "resources": [],
        "detail": {"scan-status": "COMPLETE", "repository-name": repo, "image-digest": digest,
                   "image-tags": ["prod"], "finding-severity-counts": {"LOW": 1}}
    })
    .to_string()
}

/// An EventBridge "ECR Image Action" PUSH SUCCESS body, as delivered to SQS.
pub fn push_body(repo: &str, tag: &str, digest: &str) -> String {
    serde_json::json!({
        "version": "0",
        "id": sha256_hex(format!("{repo}{tag}{digest}").as_bytes()),
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": ACCOUNT,
        "time": "2026-11-25T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": repo,
            "image-digest": digest,
            "action-type": "PUSH",
            "image-tag": tag
        }
    })
    .to_string()
}

/// Polls `check` every 100 ms until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The agent binary as a child process, with its stderr captured to a file.
pub struct AgentProcess {
    pub child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl AgentProcess {
    /// Starts `ecr-deployd <args>` with `config` as its config file and test credentials.
    pub fn start(config: &str, args: &[&str]) -> Self {
        Self::start_with_env(config, args, &[])
    }

    /// As `start`, with extra environment variables.
    pub fn start_with_env(config: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.path().join("agent.log");
        let stderr = std::fs::File::create(&log).unwrap();
        let child = Command::new(agent_bin())
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env_remove("AWS_PROFILE")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(control_socket_env(config))
            .envs(matrix::agent_env())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start ecr-deployd");
        Self {
            child,
            log,
            _dir: dir,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the agent's log contains `text`; fails at once, with the log, if the agent
    /// exits first, and with the log after 60 s.
    pub async fn until_logged(&mut self, text: &str) {
        let start = Instant::now();
        while !self.log_text().contains(text) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "agent exited ({status}) before logging {text:?}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no {text:?} in the agent's log after 60 s:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                start.elapsed() < timeout,
                "agent still running after {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let _ = writeln!(std::io::stderr(), "--- agent log ---\n{}", self.log_text());
        }
    }
}

/// The control socket of a test config that names none: beside its state store, so that
/// the daemon and the commands of one test meet, and tests never share one.
pub fn control_socket_env(config: &str) -> Vec<(String, String)> {
    if config.contains("[control]") {
        return Vec::new();
    }
    let state = config
        .split("[state]")
        .nth(1)
        .and_then(|s| s.lines().find_map(|l| l.trim().strip_prefix("path = \"")))
        .and_then(|p| p.strip_suffix('"'));
    state
        .map(|p| ("ECR_DEPLOYD_CONTROL_SOCKET".to_owned(), format!("{p}.sock")))
        .into_iter()
        .collect()
}

/// The agent binary this test binary was built with, held under a name of this process's own
/// (a hard link made at first use): a build in another work tree sharing the target directory
/// replaces `target/debug/ecr-deployd` while tests run, never this link's file.
pub fn agent_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let built = Path::new(env!("CARGO_BIN_EXE_ecr-deployd"));
        let own = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ecr-deployd-{}", std::process::id()));
        let _ = std::fs::remove_file(&own);
        match std::fs::hard_link(built, &own) {
            Ok(()) => own,
            Err(_) => built.to_owned(),
        }
    })
}

/// Runs a one-shot `ecr-deployd --config <config> <args>` with test credentials and `env`;
/// returns (exit code, stdout, stderr).
pub fn run_cli(config: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(agent_bin());
    cmd.arg("--config")
        .arg(&path)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .envs(control_socket_env(config))
        .envs(matrix::agent_env());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A bare HTTP/1.0 request; returns (status, body).
pub fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Benchmarks: writes `value` as `<BENCH_OUT_DIR>/<name>.json` when the harness
/// (`bench/run.sh`) sets that variable; always prints nothing itself.
pub fn bench_report(name: &str, value: &serde_json::Value) {
    if let Some(dir) = std::env::var_os("BENCH_OUT_DIR") {
        let path = PathBuf::from(dir).join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(value).unwrap())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

/// A `kB` field `key` (e.g. `VmRSS:`) of `/proc/<pid>/<file>` (`status`, `smaps_rollup`), in
/// KiB; 0 where the field or the process is gone.
pub fn proc_kib(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Median and 95th percentile (nearest rank) of `v`.
pub fn median_p95(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let p95 = v[(((v.len() as f64) * 0.95).ceil() as usize).max(1) - 1];
    (v[v.len() / 2], p95)
}

/// An "ECR Image Action" event as ECR emits it (`action` PUSH/DELETE, `result`
/// SUCCESS/FAILURE), put on the default EventBridge bus.
pub async fn put_ecr_event(
    events: &aws_sdk_eventbridge::Client,
    repo: &str,
    tag: &str,
    digest: &str,
    action: &str,
    result: &str,
) {
    let detail = serde_json::json!({
        "result": result,
        "repository-name": repo,
        "image-digest": digest,
        "action-type": action,
        "image-tag": tag,
    });
    put_event(events, "aws.ecr", "ECR Image Action", &detail).await;
}

/// Puts one event with `source`, `detail_type` and `detail` on the default bus.
pub async fn put_event(
    events: &aws_sdk_eventbridge::Client,
    source: &str,
    detail_type: &str,
    detail: &serde_json::Value,
) {
    put_event_on(events, None, source, detail_type, detail).await
}

/// As [`put_event`], on `bus` (`None`: the default bus).
pub async fn put_event_on(
    events: &aws_sdk_eventbridge::Client,
    bus: Option<&str>,
    source: &str,
    detail_type: &str,
    detail: &serde_json::Value,
) {
    let out = events
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source(source)
                .detail_type(detail_type)
                .set_event_bus_name(bus.map(str::to_owned))
                .detail(detail.to_string())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_entry_count(), 0);
}

fn venv_python() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python").to_owned()
}

/// Creates a stack of infra/cloudformation/ecr-deployd.yaml on `endpoint` with `params`;
/// returns its outputs.
pub fn provision(endpoint: &str, stack: &str, params: &[&str]) -> HashMap<String, String> {
    provision_template(endpoint, stack, "ecr-deployd.yaml", params)
}

/// Creates a stack of infra/cloudformation/`template`; returns its outputs.
pub fn provision_template(
    endpoint: &str,
    stack: &str,
    template: &str,
    params: &[&str],
) -> HashMap<String, String> {
    let out = Command::new(venv_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/infra/tools/provision.py"
        ))
        .args(["--endpoint-url", endpoint, "--stack", stack, "--template"])
        .arg(format!(
            "{}/infra/cloudformation/{template}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(params)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", REGION)
        .output()
        .expect("run infra/tools/provision.py");
    assert!(
        out.status.success(),
        "provisioning failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stack outputs as JSON")
}
