//! A socket in front of the Engine that reads each request's head and lets the test decide,
//! per request, to pass it, to fail it as a lost answer after the Engine did the work (a call
//! that timed out while the Engine finished it), or to fail it before the Engine saw it. Both
//! failures close the connection: the client sees no answer, which it takes as transient.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// What happens to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// The Engine gets and carries out the request; its answer never reaches the client.
    AnswerLost,
    /// The Engine never sees the request.
    Refused,
}

/// Decides per request line (`POST /v1.41/containers/ID/stop HTTP/1.1`).
pub type Rule = Box<dyn FnMut(&str) -> Fault + Send>;

pub struct FaultyEngine {
    pub path: std::path::PathBuf,
    /// Every request line seen, with what was done to it.
    pub seen: Arc<Mutex<Vec<(String, Fault)>>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl FaultyEngine {
    pub fn start(rule: Rule) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let rule = Arc::new(Mutex::new(rule));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, rule.clone(), log.clone()));
            }
        });
        Self {
            path,
            seen,
            task,
            _dir: dir,
        }
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// The request lines that got `fault`.
    pub fn faulted(&self, fault: Fault) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(_, f)| *f == fault)
            .map(|(l, _)| l.clone())
            .collect()
    }
}

impl Drop for FaultyEngine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared<T> = Arc<Mutex<T>>;

/// One client connection: requests one at a time (HTTP/1.1 without pipelining), each head
/// read whole, its body by Content-Length; answers copied back as they come. A request with a
/// body of unknown length or an upgrade turns the rest of the connection into a plain copy.
async fn relay(client: UnixStream, rule: Shared<Rule>, seen: Shared<Vec<(String, Fault)>>) {
    let Ok(engine) = UnixStream::connect(super::matrix::under_test().socket()).await else {
        return;
    };
    let (mut from_engine, mut to_engine) = engine.into_split();
    let (mut from_client, mut to_client) = client.into_split();
    let answers = async {
        let _ = tokio::io::copy(&mut from_engine, &mut to_client).await;
        false
    };
    let requests = async {
        let mut buf = Vec::new();
        loop {
            let Some(end) = head_end(&mut from_client, &mut buf).await else {
                return false;
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let line = head.lines().next().unwrap_or_default().to_owned();
            let fault = (rule.lock().unwrap())(&line);
            seen.lock().unwrap().push((line, fault));
            if fault == Fault::Refused {
                return false;
            }
            let lower = head.to_ascii_lowercase();
            let length = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let raw = lower.contains("transfer-encoding: chunked") || lower.contains("upgrade:");
            while !raw && buf.len() < end + length.unwrap_or(0) {
                if !read_more(&mut from_client, &mut buf).await {
                    return false;
                }
            }
            let take = if raw {
                buf.len()
            } else {
                end + length.unwrap_or(0)
            };
            if to_engine.write_all(&buf[..take]).await.is_err() {
                return false;
            }
            buf.drain(..take);
            if fault == Fault::AnswerLost {
                return true;
            }
            if raw {
                let _ = tokio::io::copy(&mut from_client, &mut to_engine).await;
                return false;
            }
        }
    };
    // Whichever side ends first ends the connection (a faulted request ends it unanswered).
    let answer_lost = tokio::select! {
        lost = answers => lost,
        lost = requests => lost,
    };
    drop((from_client, to_client));
    if answer_lost {
        // The Engine carries the request out and answers; nobody reads the answer.
        let mut sink = tokio::io::sink();
        let drain = tokio::io::copy(&mut from_engine, &mut sink);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(120), drain).await;
    }
}

/// Reads until `buf` holds a whole request head; its length including the blank line.
async fn head_end(from: &mut tokio::net::unix::OwnedReadHalf, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        if !read_more(from, buf).await {
            return None;
        }
    }
}

async fn read_more(from: &mut tokio::net::unix::OwnedReadHalf, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match from.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}
