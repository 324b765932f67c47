//! A local incoming-webhook endpoint: records what it receives, and can misbehave the way real
//! chat services do (answer 500, or accept the connection and never answer).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookMode {
    /// 200 OK.
    Ok,
    /// 500 Internal Server Error every time.
    Fail,
    /// Reads the request, then holds the connection open without answering.
    Hang,
}

#[derive(Default)]
struct Seen {
    bodies: Mutex<Vec<Value>>,
    requests: AtomicUsize,
    /// Connections accepted and not answered (Hang).
    holding: AtomicUsize,
}

pub struct Hook {
    pub url: String,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Hook {
    /// Listens on a free loopback port; the URL has a secret-looking path and query.
    pub async fn start(mode: HookMode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let s = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let Some(body) = read_request(&mut conn).await else {
                        return;
                    };
                    s.requests.fetch_add(1, Ordering::SeqCst);
                    if let Ok(v) = serde_json::from_slice(&body) {
                        s.bodies.lock().unwrap().push(v);
                    }
                    let status = match mode {
                        HookMode::Ok => "200 OK",
                        HookMode::Fail => "500 Internal Server Error",
                        HookMode::Hang => {
                            s.holding.fetch_add(1, Ordering::SeqCst);
                            std::future::pending::<()>().await;
                            unreachable!()
                        }
                    };
                    let _ = conn
                        .write_all(
                            format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                                .as_bytes(),
                        )
                        .await;
                });
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}/services/T0/B0/s3cr3t-token?key=hidden"),
            seen,
            task,
        }
    }

    /// JSON bodies received, in order.
    pub fn bodies(&self) -> Vec<Value> {
        self.seen.bodies.lock().unwrap().clone()
    }

    /// Requests received (every attempt counts).
    pub fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::SeqCst)
    }

    /// Connections held open unanswered right now (Hang).
    pub fn holding(&self) -> usize {
        self.seen.holding.load(Ordering::SeqCst)
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 request with a Content-Length body; returns the body.
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = conn.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf[end + 4..end + 4 + len].to_vec());
        }
    }
}
