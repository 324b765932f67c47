//! The accept loop and connection bounds shared by the agent's HTTP servers (`[http]`'s
//! `/metrics` and `[intake]`'s push listener), so that clients cannot take the agent's file
//! descriptors: at most [`MAX_CONNECTIONS`] open at once (a new one closes the oldest), a
//! request head must arrive within [`HEADER_READ_TIMEOUT`] (idle keep-alive connections
//! included), and a failed accept (EMFILE) pauses the loop briefly instead of spinning.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::HttpService;
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Connections open at once; a new one past this closes the oldest.
pub const MAX_CONNECTIONS: usize = 64;
/// A connection whose next request head has not arrived by then is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors): no hot loop, no log flood.
const ACCEPT_PAUSE: Duration = Duration::from_millis(200);

/// A server's bounds (tests shorten them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) connections: usize,
    pub(crate) header_read: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections: MAX_CONNECTIONS,
            header_read: HEADER_READ_TIMEOUT,
        }
    }
}

/// Accepts on `listener` until `shutdown`, running `serve(stream, peer)` for each connection
/// in a task of its own, ended when it is evicted by a newer one past `limits.connections`
/// or at `shutdown`. `what` names the server in log lines.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    shutdown: CancellationToken,
    limits: Limits,
    what: &'static str,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // One token per open connection, oldest first; cancelled when it ends or is evicted.
    let mut open: VecDeque<CancellationToken> = VecDeque::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "accepting a connection to the {what} failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(ACCEPT_PAUSE) => continue,
                    }
                }
            },
        };
        open.retain(|c| !c.is_cancelled());
        while open.len() >= limits.connections {
            if let Some(oldest) = open.pop_front() {
                debug!("{what}: too many connections; closing the oldest");
                oldest.cancel();
            }
        }
        let token = shutdown.child_token();
        open.push_back(token.clone());
        let connection = serve(stream, peer);
        tokio::spawn(async move {
            let _ended = token.clone().drop_guard();
            tokio::select! {
                _ = token.cancelled() => {}
                _ = connection => {}
            }
        });
    }
}

/// Serves HTTP/1 on one connection until it ends or its next request head is late.
pub(crate) async fn serve_http1<I, S>(io: I, peer: SocketAddr, service: S, header_read: Duration)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    S: HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read)
        .serve_connection(io, service);
    if let Err(e) = conn.await {
        debug!(%peer, error = %e, "http connection ended with an error");
    }
}
