//! `[http] listen`: `/metrics` (OpenMetrics when asked for, else Prometheus text), `/healthz`,
//! `/readyz`. Loopback by default.
//! Anything else is 404, a method other than GET/HEAD 405; a bad request never stops the agent.
//!
//! Bounded, so that local clients cannot take the agent's file descriptors: at most
//! [`MAX_CONNECTIONS`] open at once (a new one closes the oldest), a request head must arrive
//! within [`HEADER_READ_TIMEOUT`] (idle keep-alive connections included), and a failed
//! accept (EMFILE) pauses the loop briefly instead of spinning ([`bounded`], which the push
//! listener shares).

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::metrics::Metrics;

pub mod bounded;
pub use bounded::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
use bounded::{Limits, accept_loop, serve_http1};

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Answers one request.
/// `/metrics` is OpenMetrics when the scraper asks for it (`Accept`), else Prometheus text.
pub fn route(
    metrics: &Metrics,
    method: &Method,
    path: &str,
    openmetrics: bool,
) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        return respond(StatusCode::NOT_FOUND, TEXT, "not found\n".into());
    }
    if method != Method::GET && method != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "method not allowed\n".into(),
        );
    }
    let flag = |ok: bool, yes: &str, no: &str| {
        if ok {
            respond(StatusCode::OK, TEXT, format!("{yes}\n"))
        } else {
            respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{no}\n"))
        }
    };
    match path {
        "/metrics" if openmetrics => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        "/metrics" => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render_text(),
        ),
        "/healthz" => flag(metrics.alive(), "ok", "main loop stalled"),
        _ => flag(metrics.ready(), "ready", "first sweep not finished"),
    }
}

/// Serves on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    serve_with(listener, metrics, shutdown, Limits::default()).await
}

async fn serve_with(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    limits: Limits,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "http listener started (/metrics, /healthz, /readyz)");
    }
    accept_loop(
        listener,
        shutdown,
        limits,
        "http listener",
        |stream, peer| connection(stream, peer, metrics.clone(), limits),
    )
    .await
}

/// Serves one connection until it ends or times out.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    limits: Limits,
) {
    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
        let openmetrics = req
            .headers()
            .get_all(hyper::header::ACCEPT)
            .iter()
            .any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.contains("application/openmetrics-text"))
            });
        let response = route(&metrics, req.method(), req.uri().path(), openmetrics);
        async move { Ok::<_, Infallible>(response) }
    });
    serve_http1(TokioIo::new(stream), peer, service, limits.header_read).await
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::stats::Stats;

    const LIMITS: Limits = Limits {
        connections: 16,
        header_read: Duration::from_secs(2),
    };

    /// Whether the server closed `s` (EOF or reset) within `wait`.
    async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(wait, s.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    async fn get_metrics(addr: std::net::SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        text
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thousand_idle_connections_leave_metrics_answering_and_are_closed_by_the_limit_or_the_header_timeout()
     {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let metrics = Metrics::new(Arc::new(Stats::default()));
        let server = tokio::spawn(serve_with(listener, metrics, stop.clone(), LIMITS));
        let mut idle = Vec::new();
        for _ in 0..1000 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let started = Instant::now();
        let text = tokio::time::timeout(Duration::from_secs(1), get_metrics(addr))
            .await
            .expect("/metrics answers at once beside 1,000 idle connections");
        assert!(text.starts_with("HTTP/1.0 200"), "{text}");
        assert!(started.elapsed() < LIMITS.header_read);
        // All but the newest `connections` were closed to make room, straight away.
        let mut still_open = Vec::new();
        for mut s in idle {
            if !closed_within(&mut s, Duration::from_millis(20)).await {
                still_open.push(s);
            }
        }
        assert!(
            still_open.len() <= LIMITS.connections,
            "{} open",
            still_open.len()
        );
        // The rest go when their header-read timeout passes.
        for s in &mut still_open {
            assert!(closed_within(s, LIMITS.header_read + Duration::from_secs(2)).await);
        }
        stop.cancel();
        server.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let metrics = Metrics::new(Arc::new(Stats::default()));
        let server = tokio::spawn(serve_with(listener, metrics, stop.clone(), LIMITS));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 "),
            "answered and kept alive"
        );
        let started = Instant::now();
        assert!(closed_within(&mut s, LIMITS.header_read + Duration::from_secs(2)).await);
        assert!(started.elapsed() >= LIMITS.header_read - Duration::from_millis(100));
        stop.cancel();
        server.await.unwrap();
    }
}
