//! A Podman service of the test's own (Debian's `podman`, installed by `scripts/setup.sh`):
//! `podman system service` on a private socket, with its own storage (`--root`, `--runroot`,
//! the `vfs` driver: no mounts left behind) in a temporary directory, the local test registry
//! allowed over plain HTTP, and the settings this sandbox needs (`cgroupfs`, no default
//! ulimits: the sandbox may not raise rlimits). Everything it made goes with it on drop.
//!
//! Two releases: the system's Podman 4.3 and trixie's Podman 5 (`podman5.rs`: its own
//! configuration, network and nftables table too). `Podman::start` takes Podman 5 when the
//! matrix's Engine is `podman5` (`EDT_ENGINE=podman5`), so `tests/podman.rs` runs on either.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::docker::{REGISTRY_PASSWORD, REGISTRY_USER};
use super::matrix::Flavour;
use super::podman5;

/// Which Podman.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Debian 12's (4.3), the system's `podman`.
    System,
    /// trixie's 5.x from `.tools/podman5` (`scripts/podman5.sh`).
    Podman5,
}

pub struct Podman {
    /// `unix://…`, for the agent's `DOCKER_HOST`.
    pub docker_host: String,
    pub release: Release,
    socket: PathBuf,
    child: Mutex<Child>,
    dir: tempfile::TempDir,
    env: Vec<(String, PathBuf)>,
    /// One system Podman at a time in a test process: services with their own storage still
    /// share the host's default network (its bridge and address pool). A Podman 5 has its own.
    _turn: Option<Turn>,
}

/// The system Podman's turn in this test process (a guard that may be kept in a static).
struct Turn;

static TAKEN: Mutex<bool> = Mutex::new(false);
static RETURNED: std::sync::Condvar = std::sync::Condvar::new();

impl Turn {
    fn take() -> Self {
        let mut taken = TAKEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *taken {
            taken = RETURNED
                .wait(taken)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *taken = true;
        Turn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *TAKEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = false;
        RETURNED.notify_one();
    }
}

impl Podman {
    /// Starts the service of the matrix's Podman (5 on `EDT_ENGINE=podman5`, else the
    /// system's); `registry` (host:port) is reachable over plain HTTP.
    pub fn start(registry: &str) -> Self {
        let release = match Flavour::wanted() {
            Flavour::Podman5 => Release::Podman5,
            _ => Release::System,
        };
        Self::start_release(release, registry)
    }

    /// Starts a service of `release`.
    pub fn start_release(release: Release, registry: &str) -> Self {
        let (dir, env, turn) = match release {
            Release::System => {
                let dir = tempfile::tempdir().unwrap();
                let conf = dir.path().join("containers.conf");
                std::fs::write(
                    &conf,
                    "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
                )
                .unwrap();
                let registries = dir.path().join("registries.conf");
                std::fs::write(
                    &registries,
                    format!("[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n"),
                )
                .unwrap();
                let env = vec![
                    ("CONTAINERS_CONF".to_owned(), conf),
                    ("CONTAINERS_REGISTRIES_CONF".to_owned(), registries),
                ];
                (dir, env, Some(Turn::take()))
            }
            Release::Podman5 => {
                let dir = tempfile::Builder::new()
                    .prefix("edt-podman5-")
                    .tempdir_in("/tmp")
                    .unwrap();
                let env = podman5::configure(dir.path(), registry);
                (dir, env, None)
            }
        };
        let socket = dir.path().join("podman.sock");
        let podman = Self {
            docker_host: format!("unix://{}", socket.display()),
            release,
            socket: socket.clone(),
            child: Mutex::new(Command::new("true").spawn().unwrap()),
            dir,
            env,
            _turn: turn,
        };
        let child = podman
            .command()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(podman.dir.path().join("service.log")).unwrap())
            .spawn()
            .expect("podman is needed: run ./scripts/setup.sh (it installs Debian's podman)");
        *podman.child.lock().unwrap() = child;
        let started = Instant::now();
        while !podman.answers() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "podman system service did not answer on {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        podman
    }

    fn answers(&self) -> bool {
        Command::new("curl")
            .args(["-sf", "--unix-socket"])
            .arg(&self.socket)
            .arg("http://podman/_ping")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// `podman` with this service's storage and settings.
    fn command(&self) -> Command {
        let d = self.dir.path();
        let mut cmd = match self.release {
            Release::System => Command::new("podman"),
            Release::Podman5 => Command::new(podman5::binary()),
        };
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["--cgroup-manager", "cgroupfs", "--storage-driver", "vfs"])
            .arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"));
        cmd
    }

    /// Runs the podman CLI on this service's storage.
    pub fn cli_output(&self, args: &[&str]) -> std::process::Output {
        self.command().args(args).output().expect("run podman")
    }

    /// Runs the podman CLI on this service's storage; panics with its output on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_output(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Pulls `reference` from the test registry with its credentials.
    pub fn pull(&self, reference: &str) {
        let creds = format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}");
        self.cli(&["pull", "-q", "--creds", &creds, reference]);
    }

    /// The registry digest of the image container `name` runs (`None` while there is no such
    /// container).
    pub fn running_digest(&self, name: &str) -> Option<String> {
        let cli = |args: &[&str]| self.command().args(args).output().ok();
        super::docker::running_digest_by(cli, name)
    }

    /// The inspected JSON of container `name`.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let out = self.cli(&["inspect", name]);
        serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Podman {
    /// Removes all it made and stops the service. Idempotent (the matrix's Podman is stopped
    /// at exit, not dropped).
    pub fn stop(&self) {
        if !self.dir.path().join("containers.conf").exists() {
            return;
        }
        // Containers first (their network endpoints with them), then the service.
        let _ = self.command().args(["rm", "-af", "-t", "0"]).output();
        if self.release == Release::Podman5 {
            // Its own network config dir (the system Podman's is the system's: never pruned).
            let _ = self.command().args(["network", "prune", "-f"]).output();
        }
        let _ = self.command().args(["volume", "rm", "-af"]).output();
        let _ = self.command().args(["rmi", "-af"]).output();
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
        if self.release == Release::Podman5 {
            podman5::remove_firewall_table_when_last();
            // A static's directory is never dropped.
            let _ = std::fs::remove_dir_all(self.dir.path());
        }
    }
}
