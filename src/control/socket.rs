//! The daemon's control socket: one JSON request per connection, one JSON reply, each a line.
//! Callers are checked by SO_PEERCRED: root, the service user, or a member of its group.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// A request line longer than this is refused.
const MAX_REQUEST: u64 = 64 * 1024;

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
    let (read, mut write) = stream.into_split();
    let peer = read.as_ref().peer_cred();
    let reply = match peer.map_err(|e| e.to_string()).and_then(|c| allowed(&c)) {
        Err(why) => Reply::error(2, format!("ecr-deployd: control socket: {why}\n")),
        Ok(()) => {
            let mut line = String::new();
            let mut reader = BufReader::new(read.take(MAX_REQUEST));
            match reader.read_line(&mut line).await {
                Err(e) => Reply::error(2, format!("ecr-deployd: control socket: {e}\n")),
                Ok(_) => match serde_json::from_str::<Request>(&line) {
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

/// Root, the daemon's own user, or a member of the daemon's group.
fn allowed(peer: &tokio::net::unix::UCred) -> Result<(), String> {
    // SAFETY: plain getters without arguments.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if peer.uid() == 0 || peer.uid() == uid || peer.gid() == gid {
        return Ok(());
    }
    let in_group = peer
        .pid()
        .is_some_and(|pid| supplementary_groups(pid).contains(&gid))
        || configured_groups(peer.uid()).contains(&gid);
    if in_group {
        return Ok(());
    }
    Err(format!(
        "permission denied: uid {} is not root and not in group {gid} of the service",
        peer.uid()
    ))
}

/// The supplementary groups of process `pid` (its `Groups:` line in /proc).
fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The groups the user database gives `uid` (for when /proc of the caller is hidden, as under
/// the unit's `ProtectProc=invisible`).
fn configured_groups(uid: u32) -> Vec<u32> {
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live buffer of the stated size; `found` is set by the call.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return Vec::new();
    }
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut n = groups.len() as libc::c_int;
    // SAFETY: pw_name points into `buf`, alive here; `groups` holds `n` entries.
    let rc = unsafe { libc::getgrouplist(pw.pw_name, pw.pw_gid, groups.as_mut_ptr(), &mut n) };
    if rc < 0 {
        return Vec::new();
    }
    groups.truncate(n.max(0) as usize);
    groups
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
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn a_request_is_answered_the_socket_is_0660_and_removed_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control.sock");
        let listener = bind(&path).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let server = tokio::spawn(serve(
            listener,
            path.clone(),
            |r: Request| async move {
                Reply {
                    code: 0,
                    stdout: format!("{r:?}\n"),
                    stderr: String::new(),
                }
            },
            tasks.clone(),
            stop.clone(),
            CancellationToken::new(),
        ));
        let reply = call(&path, &Request::Sweep { dry_run: true })
            .await
            .unwrap();
        assert_eq!(reply.stdout, "Sweep { dry_run: true }\n");
        // A second daemon does not take over a live socket.
        assert!(
            bind(&path)
                .await
                .unwrap_err()
                .contains("another ecr-deployd")
        );
        stop.cancel();
        server.await.unwrap();
        assert!(!path.exists());
        assert!(matches!(
            call(&path, &Request::Ping).await,
            Err(CallError::Unreachable { .. })
        ));
    }

    #[test]
    fn the_user_database_gives_root_group_0() {
        assert!(configured_groups(0).contains(&0));
        assert!(configured_groups(u32::MAX - 7).is_empty(), "no such user");
    }

    #[tokio::test]
    async fn a_stale_socket_file_is_replaced_and_garbage_gets_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "stale file left by a dead process");
        let listener = bind(&path).await.unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            path.clone(),
            |_r: Request| async { Reply::default() },
            TaskTracker::new(),
            stop.clone(),
            CancellationToken::new(),
        ));
        let mut s = UnixStream::connect(&path).await.unwrap();
        s.write_all(b"{\"op\":\"reboot\"}\n").await.unwrap();
        let mut answer = String::new();
        BufReader::new(s).read_line(&mut answer).await.unwrap();
        let reply: Reply = serde_json::from_str(&answer).unwrap();
        assert_eq!(reply.code, 2);
        assert!(reply.stderr.contains("bad control request"), "{reply:?}");
        stop.cancel();
        server.await.unwrap();
    }
}
