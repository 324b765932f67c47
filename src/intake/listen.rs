//! `[intake] listen`: push notifications of registries of the site's own (SPEC §18) at
//! `POST /events` — Docker Distribution envelopes and Harbor webhooks
//! ([`crate::event::registry`]).
//!
//! Each request, in this order: at most [`ListenConfig::per_second`] requests a second
//! overall (a token bucket, counted before anything else; 429 past it), `POST /events` only
//! (404, 405), `Authorization: Bearer <token>` compared in constant time (401), a body of at
//! most [`ListenConfig::max_body`] bytes (413, at once for a `Content-Length` past it, else
//! when the streamed body reaches it), a notification that parses (400). Its tag pushes are
//! handed to [`Record`]; the answer is 200 only once it says they are recorded, 503 when it
//! fails (the registry sends again: a notification is a hint, and nothing is lost). A body
//! without a tag push (a blob push, a pull, a Harbor scan) is answered 200 without calling
//! `record`.
//!
//! Connections are bounded like `[http]`'s ([`crate::http::bounded`]); with TLS the
//! handshake must finish within the same header timeout.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::event::registry::{SitePush, parse_notification};
use crate::http::bounded::{Limits, accept_loop, serve_http1};
use crate::metrics::Metrics;
use crate::ports::RecordError;

mod rate;
mod tls;
pub use tls::TlsFiles;

/// The path notifications are posted to.
pub const PATH: &str = "/events";
/// The largest body accepted, by default.
pub const MAX_BODY: usize = 1 << 20;
/// Requests a second accepted, by default (the burst is as large).
pub const PER_SECOND: u32 = 20;

/// Where and how to listen (`[intake]`).
#[derive(Clone)]
pub struct ListenConfig {
    pub addr: SocketAddr,
    /// The bearer token the registries send (`[intake] token_file`'s content).
    pub token: String,
    /// `None`: plain HTTP (loopback or a trusted LAN).
    pub tls: Option<TlsFiles>,
    pub max_body: usize,
    pub per_second: u32,
}

impl ListenConfig {
    /// `addr` and `token` with the default limits, without TLS.
    pub fn new(addr: SocketAddr, token: impl Into<String>) -> Self {
        Self {
            addr,
            token: token.into(),
            tls: None,
            max_body: MAX_BODY,
            per_second: PER_SECOND,
        }
    }
}

impl fmt::Debug for ListenConfig {
    // Never the token: this may end up in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenConfig")
            .field("addr", &self.addr)
            .field("token", &"<redacted>")
            .field("tls", &self.tls)
            .field("max_body", &self.max_body)
            .field("per_second", &self.per_second)
            .finish()
    }
}

/// Takes the tag pushes of one accepted notification; `Ok` once they are recorded (in the
/// state store, handed to the coalescer), `Err` when they are not: the sender is told to try
/// again (503).
pub trait Record: Send + Sync + 'static {
    fn record(&self, pushes: Vec<SitePush>) -> BoxFuture<'_, Result<(), RecordError>>;
}

/// Why the listener cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    #[error("intake listener: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("intake listener: TLS {what} file {}: {reason}", .path.display())]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "intake listener: TLS certificate {} and key {} do not make a pair: {reason}",
        .cert.display(),
        .key.display()
    )]
    TlsKeyPair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// A bound listener, TLS loaded: start-up errors are known before serving.
pub struct Bound {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl Bound {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Loads the TLS files (when set) and binds `cfg.addr`.
pub async fn bind(cfg: &ListenConfig) -> Result<Bound, ListenError> {
    let tls = match &cfg.tls {
        Some(files) => Some(tls::acceptor(files).await?),
        None => None,
    };
    let listener = TcpListener::bind(cfg.addr)
        .await
        .map_err(|source| ListenError::Bind {
            addr: cfg.addr,
            source,
        })?;
    Ok(Bound { listener, tls })
}

/// Serves `POST /events` on `bound` until `stop`.
pub async fn serve(
    bound: Bound,
    cfg: ListenConfig,
    record: Arc<dyn Record>,
    metrics: Option<Arc<Metrics>>,
    stop: CancellationToken,
) {
    serve_with(bound, cfg, record, metrics, stop, Limits::default()).await
}

async fn serve_with(
    bound: Bound,
    cfg: ListenConfig,
    record: Arc<dyn Record>,
    metrics: Option<Arc<Metrics>>,
    stop: CancellationToken,
    limits: Limits,
) {
    if let Ok(addr) = bound.local_addr() {
        let tls = bound.tls.is_some();
        info!(%addr, tls, "intake listener started (POST {PATH})");
    }
    let gate = Arc::new(Gate {
        token: cfg.token,
        max_body: cfg.max_body,
        bucket: Mutex::new(rate::Bucket::new(cfg.per_second, Instant::now())),
        record,
        metrics,
    });
    let tls = bound.tls;
    accept_loop(
        bound.listener,
        stop,
        limits,
        "intake listener",
        |stream, peer| connection(stream, peer, tls.clone(), gate.clone(), limits.header_read),
    )
    .await
}

/// What every request is checked against, shared by the connections.
struct Gate {
    token: String,
    max_body: usize,
    bucket: Mutex<rate::Bucket>,
    record: Arc<dyn Record>,
    metrics: Option<Arc<Metrics>>,
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    gate: Arc<Gate>,
    header_read: Duration,
) {
    let service = service_fn(move |req| {
        let gate = gate.clone();
        async move { Ok::<_, std::convert::Infallible>(gate.answer(req, peer).await) }
    });
    let Some(acceptor) = tls else {
        return serve_http1(TokioIo::new(stream), peer, service, header_read).await;
    };
    match tokio::time::timeout(header_read, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_http1(TokioIo::new(stream), peer, service, header_read).await,
        Ok(Err(e)) => debug!(%peer, error = %e, "intake listener: TLS handshake failed"),
        Err(_) => debug!(%peer, "intake listener: TLS handshake timed out"),
    }
}

/// What became of a request, as counted in `ecr_deployd_intake_requests_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Ignored,
    Unauthorized,
    TooLarge,
    RateLimited,
    Malformed,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Ignored => "ignored",
            Outcome::Unauthorized => "unauthorized",
            Outcome::TooLarge => "too_large",
            Outcome::RateLimited => "rate_limited",
            Outcome::Malformed => "malformed",
            Outcome::Failed => "failed",
        }
    }
}

type Answer = Response<Full<Bytes>>;

impl Gate {
    async fn answer(&self, req: Request<Incoming>, peer: SocketAddr) -> Answer {
        let (outcome, response) = self.check(req, peer).await;
        if let (Some(m), Some(outcome)) = (&self.metrics, outcome) {
            m.intake_request(outcome.as_str());
        }
        response
    }

    /// One request through every check, in order; each outcome is logged where it is
    /// decided. No outcome: not a request for the listener (404, 405).
    async fn check(&self, req: Request<Incoming>, peer: SocketAddr) -> (Option<Outcome>, Answer) {
        if let Some(refused) = self.admit(&req, peer) {
            return refused;
        }
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = match self.read_body(req.into_body()).await {
            Ok(body) => body,
            Err(BodyError::TooLarge(e)) => {
                warn!(%peer, outcome = "too_large", limit = self.max_body, "intake request refused: {e}");
                let answer = json(StatusCode::PAYLOAD_TOO_LARGE, &e);
                return (Some(Outcome::TooLarge), answer);
            }
            Err(BodyError::Unreadable(e)) => {
                warn!(%peer, outcome = "malformed", "intake request refused: {e}");
                return (Some(Outcome::Malformed), json(StatusCode::BAD_REQUEST, &e));
            }
        };
        let notification = match parse_notification(content_type.as_deref(), &body) {
            Ok(n) => n,
            Err(e) => {
                warn!(%peer, outcome = "malformed", error = %e, "intake request refused: malformed notification");
                return (Some(Outcome::Malformed), json(StatusCode::BAD_REQUEST, &e));
            }
        };
        let (outcome, answer) = self.deliver(notification.pushes, peer).await;
        for reason in &notification.refused {
            let outcome = outcome.as_str();
            warn!(%peer, outcome, "intake: a push this agent cannot follow: {reason}");
        }
        (Some(outcome), answer)
    }

    /// The checks before the body is read: rate, path, method, token. `None`: admitted.
    fn admit(
        &self,
        req: &Request<Incoming>,
        peer: SocketAddr,
    ) -> Option<(Option<Outcome>, Answer)> {
        let admitted = self
            .bucket
            .lock()
            .map(|mut b| b.take(Instant::now()))
            .unwrap_or(false);
        if !admitted {
            // Not logged above debug: the counter shows it, and a flood must not flood the log.
            debug!(%peer, outcome = "rate_limited", "intake request refused: too many a second");
            let mut r = json(StatusCode::TOO_MANY_REQUESTS, "too many requests");
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            return Some((Some(Outcome::RateLimited), r));
        }
        if req.uri().path() != PATH {
            return Some((None, json(StatusCode::NOT_FOUND, "not found")));
        }
        if req.method() != Method::POST {
            let mut r = json(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("POST"));
            return Some((None, r));
        }
        if !self.authorized(req.headers().get(AUTHORIZATION)) {
            warn!(%peer, outcome = "unauthorized", "intake request refused: missing or wrong bearer token");
            let mut r = json(StatusCode::UNAUTHORIZED, "unauthorized");
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Some((Some(Outcome::Unauthorized), r));
        }
        None
    }

    /// Hands the pushes to [`Record`] and answers by its verdict.
    async fn deliver(&self, pushes: Vec<SitePush>, peer: SocketAddr) -> (Outcome, Answer) {
        let n = pushes.len();
        if n == 0 {
            debug!(%peer, outcome = "ignored", "intake: notification without a tag push");
            return (Outcome::Ignored, accepted(0));
        }
        let tags: Vec<String> = pushes
            .iter()
            .map(|p| format!("{}:{}", p.repository.as_str(), p.tag.as_str()))
            .collect();
        match self.record.record(pushes).await {
            Ok(()) => {
                info!(%peer, outcome = "accepted", pushes = n, tags = %tags.join(" "), "intake: push notification recorded");
                (Outcome::Accepted, accepted(n))
            }
            Err(e) => {
                error!(%peer, outcome = "failed", tags = %tags.join(" "), error = %e, "intake: recording a push notification failed; the registry will send it again");
                let body = "not recorded; send again";
                (Outcome::Failed, json(StatusCode::SERVICE_UNAVAILABLE, body))
            }
        }
    }

    /// `Authorization: Bearer <token>`, the token compared in constant time.
    fn authorized(&self, header: Option<&HeaderValue>) -> bool {
        let Some((scheme, token)) = header.and_then(|h| h.to_str().ok()?.split_once(' ')) else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && bool::from(token.trim().as_bytes().ct_eq(self.token.as_bytes()))
    }

    /// The whole body, or why not: past `max_body` by its `Content-Length` (before reading
    /// any of it) or while streaming.
    async fn read_body(&self, body: Incoming) -> Result<Bytes, BodyError> {
        let limit = self.max_body;
        let announced = body.size_hint().lower();
        if announced > limit as u64 {
            return Err(BodyError::TooLarge(format!(
                "a body of {announced} bytes is larger than {limit}"
            )));
        }
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(
                format!("the body is larger than {limit} bytes"),
            )),
            Err(e) => Err(BodyError::Unreadable(format!(
                "reading the body failed: {e}"
            ))),
        }
    }
}

enum BodyError {
    TooLarge(String),
    Unreadable(String),
}

fn json(status: StatusCode, error: &str) -> Answer {
    respond(status, serde_json::json!({ "error": error }))
}

fn accepted(n: usize) -> Answer {
    respond(StatusCode::OK, serde_json::json!({ "accepted": n }))
}

fn respond(status: StatusCode, body: serde_json::Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests;
