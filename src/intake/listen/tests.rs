//! The listener on real loopback sockets, driven by reqwest (and by raw TCP where the wire
//! itself is the point: a `Content-Length` with no body behind it, a chunked body). Bodies are
//! the fixtures of `tests/fixtures/registry/` (their sources: `event/registry/tests.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::*;
use crate::stats::Stats;

const TOKEN: &str = "s3cret-token-of-the-site";
const DISTRIBUTION: &str = "application/vnd.docker.distribution.events.v1+json";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/registry/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The [`Record`] seam as the agent's wiring uses it: keeps what it was given, or fails.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<Vec<SitePush>>>,
    fail: AtomicBool,
}

impl Record for Recorder {
    fn record(&self, pushes: Vec<SitePush>) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(async move {
            if self.fail.load(Ordering::Relaxed) {
                return Err(RecordError::new(
                    "registry pushes",
                    "state store is read-only",
                ));
            }
            self.calls.lock().unwrap().push(pushes);
            Ok(())
        })
    }
}

impl Recorder {
    fn calls(&self) -> Vec<Vec<SitePush>> {
        self.calls.lock().unwrap().clone()
    }
}

struct Server {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

fn config() -> ListenConfig {
    ListenConfig::new("127.0.0.1:0".parse().unwrap(), TOKEN)
}

async fn start(cfg: ListenConfig) -> Server {
    start_with(cfg, Limits::default()).await
}

async fn start_with(cfg: ListenConfig, limits: Limits) -> Server {
    let bound = bind(&cfg).await.expect("binds");
    let addr = bound.local_addr().unwrap();
    let recorder = Arc::new(Recorder::default());
    let metrics = Metrics::new(Arc::new(Stats::default()));
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve_with(
        bound,
        cfg,
        recorder.clone(),
        Some(metrics.clone()),
        stop.clone(),
        limits,
    ));
    Server {
        addr,
        recorder,
        metrics,
        stop,
        task,
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `POST /events` with `token` (none: no Authorization header).
    async fn post(
        &self,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = client()
            .post(self.url(PATH))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.send().await.expect("the listener answers")
    }

    /// `ecr_deployd_intake_requests_total{outcome}`, 0 when not counted yet.
    fn counted(&self, outcome: &str) -> u64 {
        let sample = format!("ecr_deployd_intake_requests_total{{outcome=\"{outcome}\"}} ");
        self.metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&sample)?.parse().ok())
            .unwrap_or(0)
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve returns once stopped")
            .unwrap();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn a_distribution_tag_push_with_the_token_is_recorded_then_answered_200_with_the_count() {
    let s = start(config()).await;
    let r = s
        .post(
            Some(TOKEN),
            DISTRIBUTION,
            fixture("distribution-recorded-tag-push.json"),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"accepted":1}"#);
    let calls = s.recorder.calls();
    assert_eq!(calls.len(), 1);
    let push = &calls[0][0];
    assert_eq!(push.host.as_deref(), Some("127.0.0.1:5590"));
    assert_eq!(push.repository.as_str(), "library/app");
    assert_eq!(push.tag.as_str(), "1.4.2");
    assert_eq!(
        push.digest.as_ref().map(|d| d.short()),
        Some("418c30b6638c")
    );
    assert_eq!(s.counted("accepted"), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_harbor_push_artifact_webhook_is_recorded_like_a_distribution_push() {
    let s = start(config()).await;
    let r = s
        .post(
            Some(TOKEN),
            "application/json",
            fixture("harbor-doc-2.0-push.json"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let calls = s.recorder.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0][0].repository.as_str(), "test-webhook/debian");
    assert_eq!(calls[0][0].tag.as_str(), "latest");
    s.stop().await;
}

#[tokio::test]
async fn a_wrong_missing_or_non_bearer_token_is_401_with_www_authenticate_and_nothing_recorded() {
    let s = start(config()).await;
    let body = || fixture("distribution-recorded-tag-push.json");
    let prefix = &TOKEN[..TOKEN.len() - 1];
    let longer = format!("{TOKEN}x");
    for token in [
        Some("wrong"),
        Some(prefix),
        Some(longer.as_str()),
        Some(""),
        None,
    ] {
        let r = s.post(token, DISTRIBUTION, body()).await;
        assert_eq!(r.status(), 401, "token {token:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    let basic = client()
        .post(s.url(PATH))
        .basic_auth("admin", Some(TOKEN))
        .body(body())
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401, "the token under Basic");
    assert!(s.recorder.calls().is_empty());
    assert_eq!(s.counted("unauthorized"), 6);
    // The scheme is case-insensitive (RFC 9110); the token is not.
    let lower = client()
        .post(s.url(PATH))
        .header("authorization", format!("bearer {TOKEN}"))
        .body(body())
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn a_notification_without_a_tag_push_is_200_without_calling_record() {
    let s = start(config()).await;
    for (content_type, name) in [
        (DISTRIBUTION, "distribution-recorded-blob-push.json"),
        ("application/json", "harbor-doc-scanning-completed.json"),
    ] {
        let r = s.post(Some(TOKEN), content_type, fixture(name)).await;
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.text().await.unwrap(), r#"{"accepted":0}"#);
    }
    assert!(s.recorder.calls().is_empty());
    assert_eq!(s.counted("ignored"), 2);
    s.stop().await;
}

#[tokio::test]
async fn a_malformed_body_is_400_naming_what_is_wrong_and_nothing_recorded() {
    let s = start(config()).await;
    let r = s
        .post(
            Some(TOKEN),
            "application/json",
            br#"{"hello":"world"}"#.to_vec(),
        )
        .await;
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("neither a Distribution envelope"), "{text}");
    assert!(s.recorder.calls().is_empty());
    assert_eq!(s.counted("malformed"), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_record_failure_is_503_so_that_the_registry_sends_again() {
    let s = start(config()).await;
    s.recorder.fail.store(true, Ordering::Relaxed);
    let body = || fixture("distribution-recorded-tag-push.json");
    let r = s.post(Some(TOKEN), DISTRIBUTION, body()).await;
    assert_eq!(r.status(), 503);
    assert_eq!(s.counted("failed"), 1);
    s.recorder.fail.store(false, Ordering::Relaxed);
    let again = s.post(Some(TOKEN), DISTRIBUTION, body()).await;
    assert_eq!(again.status(), 200, "the resend is recorded");
    assert_eq!(s.recorder.calls().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn other_paths_are_404_and_other_methods_on_events_405_before_any_token() {
    let s = start(config()).await;
    for path in ["/", "/metrics", "/events/x", "/event"] {
        let r = client().post(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let r = client()
            .request(method.clone(), s.url(PATH))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method}");
        assert_eq!(r.headers()["allow"], "POST");
    }
    assert!(
        !s.metrics.render().contains("intake_requests_total{"),
        "not counted"
    );
    s.stop().await;
}

#[tokio::test]
async fn past_the_rate_requests_are_429_with_retry_after_even_with_the_token_then_pass_again() {
    let s = start(ListenConfig {
        per_second: 2,
        ..config()
    })
    .await;
    let body = || fixture("distribution-recorded-tag-push.json");
    // The burst (2) is spent by requests without a token: the rate is counted before auth.
    for _ in 0..2 {
        assert_eq!(s.post(None, DISTRIBUTION, body()).await.status(), 401);
    }
    let r = s.post(Some(TOKEN), DISTRIBUTION, body()).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(s.recorder.calls().is_empty());
    assert_eq!(s.counted("rate_limited"), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = s.post(Some(TOKEN), DISTRIBUTION, body()).await;
    assert_eq!(r.status(), 200, "a second later tokens are back");
    s.stop().await;
}

/// Writes `request` on a fresh connection and returns what comes back within 5 s.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

fn head(content_length: Option<usize>) -> String {
    let length = match content_length {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".into(),
    };
    format!(
        "POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: {DISTRIBUTION}\r\nConnection: close\r\n{length}\r\n\r\n"
    )
}

fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = head(None).into_bytes();
    for c in body.chunks(chunk) {
        out.extend(format!("{:x}\r\n", c.len()).bytes());
        out.extend(c);
        out.extend(b"\r\n");
    }
    out.extend(b"0\r\n\r\n");
    out
}

#[tokio::test]
async fn a_content_length_past_the_limit_is_413_at_once_before_any_body_is_sent() {
    let s = start(config()).await;
    // No body follows: the answer can only come from the announced length.
    let answer = raw(s.addr, head(Some(MAX_BODY + 1)).as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(s.recorder.calls().is_empty());
    assert_eq!(s.counted("too_large"), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_chunked_body_is_counted_while_read_and_cut_at_the_limit_with_413() {
    let body = fixture("distribution-recorded-tag-push.json");
    let s = start(ListenConfig {
        max_body: body.len() - 1,
        ..config()
    })
    .await;
    let answer = raw(s.addr, &chunked(&body, 100)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(s.recorder.calls().is_empty());
    assert_eq!(s.counted("too_large"), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_chunked_body_within_the_limit_is_accepted() {
    let body = fixture("distribution-recorded-tag-push.json");
    let s = start(ListenConfig {
        max_body: body.len(),
        ..config()
    })
    .await;
    let answer = raw(s.addr, &chunked(&body, 100)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(s.recorder.calls().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn binding_an_address_in_use_is_an_error_naming_it() {
    let s = start(config()).await;
    let e = match bind(&ListenConfig::new(s.addr, TOKEN)).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("bound {} twice", s.addr),
    };
    assert!(e.contains(&s.addr.to_string()), "{e}");
    s.stop().await;
}

#[test]
fn the_config_never_shows_its_token() {
    let shown = format!("{:?}", config());
    assert!(!shown.contains(TOKEN), "{shown}");
}

mod tls;
