//! A Podman service of the test's own (Debian's `podman`, installed by `scripts/setup.sh`):
//! `podman system service` on a private socket, with its own storage (`--root`, `--runroot`,
//! the `vfs` driver: no mounts left behind) in a temporary directory, the local test registry
//! allowed over plain HTTP, and the settings this sandbox needs (`cgroupfs`, no default
//! ulimits: the sandbox may not raise rlimits). Everything it made goes with it on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::docker::{REGISTRY_PASSWORD, REGISTRY_USER};

pub struct Podman {
    /// `unix://…`, for the agent's `DOCKER_HOST`.
    pub docker_host: String,
    socket: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
    /// One service at a time in a test process: services with their own storage still share
    /// the host's default network (its bridge and address pool).
    _turn: std::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Podman {
    /// Starts the service; `registry` (host:port) is reachable over plain HTTP.
    pub fn start(registry: &str) -> Self {
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
        let socket = dir.path().join("podman.sock");
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut podman = Self {
            docker_host: format!("unix://{}", socket.display()),
            socket: socket.clone(),
            child: Command::new("true").spawn().unwrap(),
            dir,
            _turn: turn,
        };
        let child = podman
            .command()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman is needed: run ./scripts/setup.sh (it installs Debian's podman)");
        podman.child = child;
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
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .args(["--cgroup-manager", "cgroupfs", "--storage-driver", "vfs"])
            .arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"));
        cmd
    }

    /// Runs the podman CLI on this service's storage; panics with its output on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("run podman");
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
        // Containers first (their network endpoints with them), then the service.
        let _ = self.command().args(["rm", "-af", "-t", "0"]).output();
        let _ = self.command().args(["volume", "rm", "-af"]).output();
        let _ = self.command().args(["rmi", "-af"]).output();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
