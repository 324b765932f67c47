//! Running a command in a container (the lifecycle hooks): exec create → start, its output
//! read as it comes and only its end kept (a hook that prints gigabytes costs nothing), the
//! exit code from the exec's inspection. A hook past its time limit is abandoned: the caller
//! fails the deploy; the process itself ends with its container or on its own.

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

impl DockerRuntime {
    /// `/bin/sh -c command` in container `id`, for at most `timeout`.
    pub(super) async fn run_exec(
        &self,
        id: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<ExecRun, RuntimeError> {
        let body = json!({
            "AttachStdout": true,
            "AttachStderr": true,
            "Tty": false,
            "Cmd": ["/bin/sh", "-c", command],
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
        };
        if finished {
            run.exit_code = self.exit_code(exec_id).await?;
        }
        Ok(run)
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
