//! The Engine the tests drive (issue 32, SPEC §15): `EDT_ENGINE` names it, and every test of
//! a test binary runs on it. Unset or `docker20`: the system's Engine. `docker28`,
//! `docker28-containerd` (the containerd image store) and `docker26`: a side Engine
//! (`engine.rs`) started at the first use in the test process, shared by its tests, and
//! stopped with everything on it when the process exits. `podman5`: trixie's Podman 5 as a
//! `podman system service` of its own (`podman.rs`, `podman5.rs`) driven through its
//! Docker-compatible API with Docker's 28.x CLI. The tests reach the Engine only
//! through `docker_command()` (the CLI) and the agent through `DOCKER_HOST`, so a test is
//! written once and the Engine is its parameter:
//!
//! ```text
//! EDT_ENGINE=docker28-containerd cargo test --test deploy
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::engine::{Release, SideEngine, Store};
use super::podman::{self, Podman};

/// The Engines of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// The system's Docker Engine (Debian 12: 20.10, API 1.41).
    Docker20,
    /// Docker 28 with the classic (graph driver) image store.
    Docker28,
    /// Docker 28 with the containerd image store (Docker 29's default for new installs).
    Docker28Containerd,
    /// Docker 26 with the classic image store.
    Docker26,
    /// Podman 5 through its Docker-compatible API (beside the system's Podman 4.3).
    Podman5,
}

impl Flavour {
    pub const ALL: [Flavour; 5] = [
        Flavour::Docker20,
        Flavour::Docker28,
        Flavour::Docker28Containerd,
        Flavour::Docker26,
        Flavour::Podman5,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Flavour::Docker20 => "docker20",
            Flavour::Docker28 => "docker28",
            Flavour::Docker28Containerd => "docker28-containerd",
            Flavour::Docker26 => "docker26",
            Flavour::Podman5 => "podman5",
        }
    }

    /// The Engine `EDT_ENGINE` names, without starting it.
    pub fn wanted() -> Self {
        Self::from_env()
    }

    fn from_env() -> Self {
        let wanted = std::env::var("EDT_ENGINE").unwrap_or_default();
        if wanted.is_empty() {
            return Flavour::Docker20;
        }
        Self::ALL
            .into_iter()
            .find(|f| f.name() == wanted)
            .unwrap_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|f| f.name()).collect();
                panic!("EDT_ENGINE={wanted}: not an Engine of the matrix ({known:?})")
            })
    }

    /// Whether images are identified by their manifest (or index) digest, as on the
    /// containerd image store, rather than by their config digest.
    pub fn content_addressed_ids(self) -> bool {
        self == Flavour::Docker28Containerd
    }
}

/// The Engine under test.
pub struct UnderTest {
    pub flavour: Flavour,
    /// `unix://…` of a side Engine; `None` for the system's (the default socket).
    pub docker_host: Option<String>,
    /// The docker CLI that goes with the Engine.
    pub cli: PathBuf,
    side: Option<SideEngine>,
    podman: Option<Podman>,
}

impl UnderTest {
    /// The Engine's unix socket path (for `curl --unix-socket` and socket proxies).
    pub fn socket(&self) -> PathBuf {
        match &self.docker_host {
            Some(host) => PathBuf::from(host.trim_start_matches("unix://")),
            None => PathBuf::from("/var/run/docker.sock"),
        }
    }

    /// The side Engine, when the Engine under test is one.
    pub fn side(&self) -> Option<&SideEngine> {
        self.side.as_ref()
    }

    /// The Podman service, when the Engine under test is Podman: its own CLI and inspect
    /// show what the Docker-compatible API does not (e.g. the log size limit).
    pub fn podman(&self) -> Option<&Podman> {
        self.podman.as_ref()
    }
}

static UNDER_TEST: OnceLock<UnderTest> = OnceLock::new();

/// The Engine this test process drives, started at the first call.
pub fn under_test() -> &'static UnderTest {
    UNDER_TEST.get_or_init(|| {
        let flavour = Flavour::from_env();
        let side = match flavour {
            Flavour::Docker20 | Flavour::Podman5 => None,
            Flavour::Docker28 => Some((Release::Docker28, Store::Classic)),
            Flavour::Docker28Containerd => Some((Release::Docker28, Store::Containerd)),
            Flavour::Docker26 => Some((Release::Docker26, Store::Classic)),
        }
        .map(|(release, store)| SideEngine::start_release(release, store));
        // Its registries are not known yet: every loopback registry is insecure to it.
        let podman = (flavour == Flavour::Podman5)
            .then(|| Podman::start_release(podman::Release::Podman5, "127.0.0.1"));
        if side.is_some() || podman.is_some() {
            // Statics are never dropped: the side Engine goes when the process exits.
            // SAFETY: registers a plain function; libc calls it once at exit.
            unsafe { libc::atexit(stop_at_exit) };
            // Straight to stderr (not captured by the test harness): the run's log names
            // the Engine it ran on.
            let _ = writeln!(
                std::io::stderr(),
                "[matrix] {}: Engine {}{} on {}",
                flavour.name(),
                side.as_ref().map(|s| s.version.as_str()).unwrap_or(""),
                podman
                    .as_ref()
                    .map(|_| super::podman5::version())
                    .unwrap_or_default(),
                side.as_ref()
                    .map(|s| s.docker_host.as_str())
                    .or(podman.as_ref().map(|p| p.docker_host.as_str()))
                    .unwrap_or("")
            );
        }
        UnderTest {
            flavour,
            docker_host: side
                .as_ref()
                .map(|s| s.docker_host.clone())
                .or(podman.as_ref().map(|p| p.docker_host.clone())),
            cli: match (&side, &podman) {
                (Some(s), _) => s.cli.clone(),
                // Docker's newest CLI here (sid's 28.x) when fetched, else the system's.
                (None, Some(_)) => Release::Docker28.cli(),
                (None, None) => PathBuf::from("docker"),
            },
            side,
            podman,
        }
    })
}

extern "C" fn stop_at_exit() {
    if let Some(side) = UNDER_TEST.get().and_then(|u| u.side.as_ref()) {
        side.stop();
    }
    if let Some(podman) = UNDER_TEST.get().and_then(|u| u.podman.as_ref()) {
        podman.stop();
    }
}

/// Logs the docker CLI config folder `config` in to the test registry at `host` on the
/// Engine under test. On Podman 5 the credentials are stored as `docker login` would: its
/// compat `/auth` refuses a plain-HTTP registry that is not `localhost` (`podman5.rs`).
pub fn login(config: &Path, host: &str) {
    use super::docker::{REGISTRY_PASSWORD, REGISTRY_USER};
    if under_test().flavour == Flavour::Podman5 {
        super::podman5::login(config, host);
        return;
    }
    let out = docker_command()
        .env("DOCKER_CONFIG", config)
        .args(["login", "-u", REGISTRY_USER, "-p", REGISTRY_PASSWORD, host])
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker login {host} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The docker CLI on the Engine under test.
pub fn docker_command() -> Command {
    let engine = under_test();
    let mut cmd = Command::new(&engine.cli);
    if let Some(host) = &engine.docker_host {
        cmd.env("DOCKER_HOST", host);
    }
    cmd
}

/// `DOCKER_HOST` for an agent on the Engine under test (none for the system's).
pub fn agent_env() -> Vec<(String, String)> {
    under_test()
        .docker_host
        .iter()
        .map(|h| ("DOCKER_HOST".to_owned(), h.clone()))
        .collect()
}

/// True when the Engine under test is one of `flavours`; otherwise says the test is skipped
/// on it (and why) and returns false.
pub fn runs_on(flavours: &[Flavour], why_not: &str) -> bool {
    let flavour = under_test().flavour;
    let yes = flavours.contains(&flavour);
    if !yes {
        let _ = writeln!(
            std::io::stderr(),
            "[matrix] skipped on {}: {why_not}",
            flavour.name()
        );
    }
    yes
}
