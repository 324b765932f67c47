//! A real SMTP server on a loopback port (aiosmtpd, tests/fixtures/smtp_sink.py): AUTH with
//! one login, each accepted message kept as JSON in a folder of its own. Killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{free_port, wait_for_port};

pub struct SmtpSink {
    pub port: u16,
    pub user: String,
    /// A file holding the password (as `password_file` names it).
    pub password_file: PathBuf,
    dir: tempfile::TempDir,
    child: Child,
}

impl SmtpSink {
    pub fn start(user: &str, password: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mail");
        std::fs::create_dir(&out).unwrap();
        let password_file = dir.path().join("smtp-password");
        std::fs::write(&password_file, format!("{password}\n")).unwrap();
        let port = free_port();
        let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/smtp_sink.py");
        let child = Command::new(python)
            .args([
                script,
                &port.to_string(),
                out.to_str().unwrap(),
                user,
                password,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the SMTP server (scripts/setup.sh installs aiosmtpd into .venv)");
        wait_for_port(port, Duration::from_secs(30));
        Self {
            port,
            user: user.into(),
            password_file,
            dir,
            child,
        }
    }

    /// The messages accepted so far, oldest first: `mail_from`, `rcpt_tos`, `login`, `data`.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path();
                let n = p.file_stem()?.to_str()?.parse().ok()?;
                Some((n, p))
            })
            .collect();
        files.sort();
        files
            .iter()
            .map(|(_, p)| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
