//! The daemon's control socket: one JSON request per connection, one JSON reply, each a line.
//! Callers are checked by the credentials the kernel recorded when they connected
//! (SO_PEERCRED and SO_PEERGROUPS): root, the service user, or a member of its group.

use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// A request line longer than this is refused.
const MAX_REQUEST: u64 = 64 * 1024;
/// A caller that has not sent its whole request line by then is answered with an error and
/// dropped: an idle connection does not hold a task for ever.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What an operator command asks the daemon to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Ping,
    Sweep {
        dry_run: bool,
    },
    Rollback {
        container: String,
        to: Option<String>,
    },
    Approve {
        container: String,
        digest: Option<String>,
    },
    Pause {
        containers: Vec<String>,
        all: bool,
        reason: Option<String>,
    },
    Resume {
        containers: Vec<String>,
        all: bool,
    },
}

/// What the command prints and its exit status, as if it had run in the caller's process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    pub fn error(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            stdout: String::new(),
            stderr: message.into(),
        }
    }

    /// Prints it as the command's own output; returns the exit status.
    pub fn print(&self) -> u8 {
        print!("{}", self.stdout);
        eprint!("{}", self.stderr);
        self.code
    }
}

/// Binds the socket at `path`: mode 0660, a stale file from a dead daemon replaced, a live
/// daemon's left alone (an error).
pub async fn bind(path: &Path) -> Result<UnixListener, String> {
    let shown = path.display();
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "control socket {shown}: another ecr-deployd answers on it"
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("control socket {shown}: cannot remove the stale file: {e}"))?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("control socket {shown}: {e}"))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("control socket {shown}: {e}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("control socket {shown}: {e}"))?;
    Ok(listener)
}

/// Serves requests until `shutdown`; each connection is one task on `tasks` (so shutdown can
/// wait for a deploy asked for through the socket), dropped at once when `abandon` is
/// cancelled (past the grace period, before abandoned swaps are undone). Removes the socket
/// file at the end.
pub async fn serve<H, F>(
    listener: UnixListener,
    path: PathBuf,
    handler: H,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    abandon: CancellationToken,
) where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (handler, abandon) = (handler.clone(), abandon.clone());
        tasks.spawn(async move {
            tokio::select! {
                _ = abandon.cancelled() => warn!("an operator command was abandoned at shutdown"),
                _ = answer(stream, handler.as_ref()) => {}
            }
        });
    }
    let _ = std::fs::remove_file(&path);
}

async fn answer<H, F>(stream: UnixStream, handler: &H)
where
    H: Fn(Request) -> F,
    F: Future<Output = Reply>,
{
    let caller = caller(&stream);
    let (read, mut write) = stream.into_split();
    let reply = match caller.and_then(|c| c.allowed(&Service::this_process())) {
        Err(why) => Reply::error(2, format!("ecr-deployd: control socket: {why}\n")),
        Ok(()) => {
            let mut line = String::new();
            let mut reader = BufReader::new(read.take(MAX_REQUEST));
            match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
                Err(_) => Reply::error(
                    2,
                    format!(
                        "ecr-deployd: control socket: no request line within {}s\n",
                        READ_TIMEOUT.as_secs()
                    ),
                ),
                Ok(Err(e)) => Reply::error(2, format!("ecr-deployd: control socket: {e}\n")),
                Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
                    Ok(request) => {
                        info!(?request, "operator command through the control socket");
                        handler(request).await
                    }
                    Err(e) => Reply::error(2, format!("ecr-deployd: bad control request: {e}\n")),
                },
            }
        }
    };
    let mut text = serde_json::to_string(&reply).unwrap_or_default();
    text.push('\n');
    if let Err(e) = write.write_all(text.as_bytes()).await {
        warn!(error = %e, "control socket: the caller went away before the answer");
    }
}

/// Who connected, as the kernel recorded it at connect time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Caller {
    uid: u32,
    gid: u32,
    /// Supplementary groups (SO_PEERGROUPS).
    groups: Vec<u32>,
}

/// The user and group the daemon runs as.
struct Service {
    uid: u32,
    gid: u32,
}

impl Service {
    fn this_process() -> Self {
        // SAFETY: plain getters without arguments.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Self { uid, gid }
    }
}

impl Caller {
    /// Root, the service's own user, or a member (primary or supplementary) of its group.
    fn allowed(&self, service: &Service) -> Result<(), String> {
        let member = self.gid == service.gid || self.groups.contains(&service.gid);
        if self.uid == 0 || self.uid == service.uid || member {
            return Ok(());
        }
        Err(format!(
            "permission denied: uid {} is not root and not in group {} of the service",
            self.uid, service.gid
        ))
    }
}

fn caller(stream: &UnixStream) -> Result<Caller, String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("SO_PEERCRED: {e}"))?;
    let groups = peer_groups(stream.as_raw_fd()).map_err(|e| format!("SO_PEERGROUPS: {e}"))?;
    Ok(Caller {
        uid: cred.uid(),
        gid: cred.gid(),
        groups,
    })
}

/// The supplementary groups of the peer of Unix socket `fd`, as they were when it connected.
fn peer_groups(fd: RawFd) -> std::io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is a live buffer of `len` bytes; the kernel writes at most that and
        // sets `len` to what it wrote (or, with ERANGE, to what it needs).
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ERANGE) || n <= groups.len() {
            return Err(err);
        }
        groups.resize(n, 0);
    }
}

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nothing listens (no daemon, or another socket path).
    #[error("cannot connect to {path}: {source}")]
    Unreachable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Connected, but no answer came.
    #[error("control socket {path}: {reason}")]
    NoAnswer { path: PathBuf, reason: String },
}

/// Sends `request` to the daemon at `path` and waits for its answer.
pub async fn call(path: &Path, request: &Request) -> Result<Reply, CallError> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|source| CallError::Unreachable {
            path: path.to_owned(),
            source,
        })?;
    let no_answer = |reason: String| CallError::NoAnswer {
        path: path.to_owned(),
        reason,
    };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request).map_err(|e| no_answer(e.to_string()))?;
    line.push('\n');
    write
        .write_all(line.as_bytes())
        .await
        .map_err(|e| no_answer(e.to_string()))?;
    let mut answer = String::new();
    BufReader::new(read)
        .read_line(&mut answer)
        .await
        .map_err(|e| no_answer(e.to_string()))?;
    if answer.is_empty() {
        return Err(no_answer(
            "the daemon closed the connection without an answer".into(),
        ));
    }
    serde_json::from_str(&answer).map_err(|e| no_answer(format!("unreadable answer: {e}")))
}

#[cfg(test)]
mod tests;
