//! Running a command in a container (the lifecycle hooks): exec create → start, its output
//! read as it comes and only its end kept (a hook that prints gigabytes costs nothing), the
//! exit code from the exec's inspection. A hook past its time limit is stopped: its process
//! tree in the container gets SIGTERM, then SIGKILL (found through the pid the wrapper
//! writes in `/dev/shm` or `/tmp`); and while it still runs no second copy is started in
//! that container (two `pg_dump`s at once).

use std::collections::VecDeque;
use std::time::Duration;

use hyper::Method;
use serde_json::json;

use super::DockerRuntime;
use super::engine::{self, Call};
use crate::ports::{ExecRun, RuntimeError};

/// Bytes of a command's output kept (its end).
const KEEP: usize = 16 * 1024;
/// After the output ended, how long the Engine may take to mark the exec ended.
const EXIT_POLLS: usize = 40;
const EXIT_POLL: Duration = Duration::from_millis(50);
/// Runs the hook (`$1`) as a child of a shell whose pid is noted (in `/dev/shm`, the
/// container's own tmpfs, else `/tmp`), keeping its exit status.
const WRAPPER: &str = r#"f=/dev/shm/.ecr-deployd-hook.pid; [ -w /dev/shm ] || f=/tmp/.ecr-deployd-hook.pid
echo $$ > $f 2>/dev/null; /bin/sh -c "$1"; s=$?; rm -f $f 2>/dev/null; exit $s"#;
/// Stops the noted process and every descendant: TERM, then KILL after 3 s.
const KILL_TREE: &str = r#"f=/dev/shm/.ecr-deployd-hook.pid; [ -w /dev/shm ] || f=/tmp/.ecr-deployd-hook.pid
w=$(cat $f 2>/dev/null) || exit 0
all=$w; new=$w
while [ -n "$new" ]; do
  next=""
  for f in /proc/[0-9]*/stat; do
    read -r p c st pp rest < "$f" 2>/dev/null || continue
    for n in $new; do [ "$pp" = "$n" ] && next="$next $p"; done
  done
  all="$all $next"; new=$next
done
kill -TERM $all 2>/dev/null; sleep 3; kill -KILL $all 2>/dev/null; rm -f $f; exit 0"#;
/// How long stopping an overdue hook may take.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

impl DockerRuntime {
    /// `/bin/sh -c command` in container `id`, for at most `timeout`; not run while an
    /// earlier one in `id` outlived its timeout and still runs.
    pub(super) async fn run_exec(
        &self,
        id: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<ExecRun, RuntimeError> {
        if self.overdue_still_runs(id).await? {
            return Ok(ExecRun {
                exit_code: None,
                output: String::new(),
                timed_out: false,
                still_running: true,
            });
        }
        let body = json!({
            "AttachStdout": true,
            "AttachStderr": true,
            "Tty": false,
            "Cmd": ["/bin/sh", "-c", WRAPPER, "ecr-deployd-hook", command],
        });
        let path = format!("/containers/{id}/exec");
        let created = self
            .raw("create exec", Method::POST, &path, Some(&body), &[])
            .await?;
        let Some(exec_id) = created["Id"].as_str() else {
            return Err(RuntimeError::permanent(
                "create exec",
                format!("no id in the answer: {created}"),
            ));
        };
        let version = self.docker().await?.client_version();
        let path = format!("/v{version}/exec/{exec_id}/start");
        let start = json!({ "Detach": false, "Tty": false });
        let mut output = Demux::new(KEEP);
        let call = Call {
            operation: "start exec",
            method: Method::POST,
            path: &path,
            body: Some(&start),
            headers: &[],
            timeout,
        };
        let finished = engine::stream(&self.endpoint, call, |bytes| output.push(bytes)).await?;
        let mut run = ExecRun {
            exit_code: None,
            output: output.text(),
            timed_out: !finished,
            still_running: false,
        };
        if finished {
            run.exit_code = self.exit_code(exec_id).await?;
        } else {
            self.overdue(id, exec_id).await;
        }
        Ok(run)
    }

    /// A hook past its timeout: noted, and its process tree stopped (best effort: an image
    /// without a writable `/tmp` keeps it running, and the note keeps a second copy out).
    async fn overdue(&self, id: &str, exec_id: &str) {
        self.overdue_hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned(), exec_id.to_owned());
        let body = json!({
            "AttachStdout": true,
            "AttachStderr": true,
            "Tty": false,
            "Cmd": ["/bin/sh", "-c", KILL_TREE],
        });
        let path = format!("/containers/{id}/exec");
        let Ok(created) = self
            .raw("create exec", Method::POST, &path, Some(&body), &[])
            .await
        else {
            return;
        };
        let Some(kill_id) = created["Id"].as_str() else {
            return;
        };
        let Ok(docker) = self.docker().await else {
            return;
        };
        let path = format!("/v{}/exec/{kill_id}/start", docker.client_version());
        let start = json!({ "Detach": false, "Tty": false });
        let call = Call {
            operation: "stop overdue hook",
            method: Method::POST,
            path: &path,
            body: Some(&start),
            headers: &[],
            timeout: KILL_TIMEOUT,
        };
        if let Err(e) = engine::stream(&self.endpoint, call, |_| {}).await {
            tracing::warn!(container = %id, error = %e, "could not stop a hook past its timeout");
        }
    }

    /// Whether a hook that outlived its timeout in container `id` still runs (forgotten
    /// once it ended, or its container is gone).
    async fn overdue_still_runs(&self, id: &str) -> Result<bool, RuntimeError> {
        let exec_id = self
            .overdue_hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned();
        let Some(exec_id) = exec_id else {
            return Ok(false);
        };
        let path = format!("/exec/{exec_id}/json");
        let running = match self
            .raw("inspect exec", Method::GET, &path, None, &[])
            .await
        {
            Ok(seen) => seen["Running"] == true,
            Err(e) if e.transient => return Err(e),
            Err(_) => false,
        };
        if !running {
            self.overdue_hooks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(id);
        }
        Ok(running)
    }

    async fn exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        let path = format!("/exec/{exec_id}/json");
        for _ in 0..EXIT_POLLS {
            let seen = self
                .raw("inspect exec", Method::GET, &path, None, &[])
                .await?;
            if seen["Running"] != true {
                return Ok(seen["ExitCode"].as_i64());
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
        Ok(None)
    }
}

/// The Engine's multiplexed stream (8-byte frame headers: stream, 0, 0, 0, length in big
/// endian) → the payload, stdout and stderr as they came, only the last `keep` bytes kept.
pub struct Demux {
    header: Vec<u8>,
    left: usize,
    tail: VecDeque<u8>,
    keep: usize,
}

impl Demux {
    pub fn new(keep: usize) -> Self {
        Self {
            header: Vec::with_capacity(8),
            left: 0,
            tail: VecDeque::new(),
            keep,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.left == 0 {
                let need = 8 - self.header.len();
                let take = need.min(bytes.len());
                self.header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.header.len() == 8 {
                    let len = &self.header[4..8];
                    self.left = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
                    self.header.clear();
                }
                continue;
            }
            let take = self.left.min(bytes.len());
            self.tail.extend(&bytes[..take]);
            let over = self.tail.len().saturating_sub(self.keep);
            self.tail.drain(..over);
            self.left -= take;
            bytes = &bytes[take..];
        }
    }

    pub fn text(&self) -> String {
        let bytes: Vec<u8> = self.tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &str) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload.as_bytes());
        f
    }

    #[test]
    fn frames_split_anywhere_give_stdout_and_stderr_in_order() {
        let mut all = frame(1, "backup started\n");
        all.extend(frame(2, "warning: slow disk\n"));
        all.extend(frame(1, "done\n"));
        for cut in [1, 3, 8, 9, 20, all.len() - 1] {
            let mut d = Demux::new(1024);
            d.push(&all[..cut]);
            d.push(&all[cut..]);
            assert_eq!(
                d.text(),
                "backup started\nwarning: slow disk\ndone\n",
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn only_the_end_of_a_long_output_is_kept() {
        let mut d = Demux::new(10);
        for i in 0..1000 {
            d.push(&frame(1, &format!("line {i}\n")));
        }
        assert_eq!(d.text(), "\nline 999\n");
    }
}
