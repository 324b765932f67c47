//! A second Docker Engine beside the system's (Debian sid's docker.io 28.x and containerd 2.x,
//! fetched into `.tools/` by `scripts/fetch-tools.sh`), for the engine matrix
//! (`tests/engines.rs`). Everything it uses is its own (FIELD-NOTES, "A second Docker Engine
//! beside the system's"): a bridge made first, `"bridge"` set to it (never `--bridge none`:
//! a second daemon once deleted the shared `docker0` that way), iptables off, its own data
//! root, exec root, pidfile, socket, address pool and config file; Debian 12's runc and
//! docker-init. No Swarm on it (`docker_gwbridge` is a fixed, shared name). On drop: its
//! containers, then the daemon (SIGTERM, then SIGKILL), its mounts, bridge and directories.
//! `docker0` and the system Engine's default network are checked before and after: a side
//! Engine that takes them away fails the test loudly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::docker::TEST_LABEL;

const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.tools");

/// Which Docker Engine release, from which Debian suite (`scripts/fetch-tools.sh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// sid's docker.io 28.x with containerd 2.x.
    Docker28,
    /// trixie's docker.io 26.x with trixie's containerd 1.7.
    Docker26,
}

impl Release {
    fn suite(self) -> &'static str {
        match self {
            Release::Docker28 => "sid",
            Release::Docker26 => "trixie",
        }
    }

    /// The folder a package of this release was unpacked into.
    fn package(self, name: &str) -> PathBuf {
        Path::new(TOOLS).join(self.suite()).join(name)
    }

    /// The release's own docker CLI when it was fetched, else the system's.
    pub fn cli(self) -> PathBuf {
        let own = self.package("docker-cli").join("usr/bin/docker");
        if own.exists() {
            own
        } else {
            PathBuf::from("docker")
        }
    }
}

/// The side Engine's image store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// The graph drivers (what an upgraded install keeps).
    Classic,
    /// The containerd image store (`containerd-snapshotter`; Docker 29's default).
    Containerd,
}

pub struct SideEngine {
    /// `unix://…`, for the agent's and the CLI's `DOCKER_HOST`.
    pub docker_host: String,
    pub store: Store,
    pub release: Release,
    /// The docker CLI that goes with it.
    pub cli: PathBuf,
    /// The Engine's version as it reports it (`28.5.2`).
    pub version: String,
    bridge: String,
    root: PathBuf,
    child: std::sync::Mutex<Child>,
}

/// Panics when the system's `docker0` or its Engine's default network is gone.
pub fn check_system_bridge(when: &str) {
    let link = Command::new("ip")
        .args(["link", "show", "docker0"])
        .output()
        .expect("ip (iproute2)");
    assert!(
        link.status.success(),
        "docker0 IS GONE {when} a side Engine: the system Engine cannot attach containers to \
         its default network. Put it back: ip link add docker0 type bridge; ip addr add \
         172.17.0.1/16 dev docker0; ip link set docker0 mtu 1400 up"
    );
    let net = Command::new("docker")
        .args(["network", "inspect", "--format", "{{.Driver}}", "bridge"])
        .output()
        .expect("docker");
    assert!(
        net.status.success() && String::from_utf8_lossy(&net.stdout).trim() == "bridge",
        "the system Engine's default network is not usable {when} a side Engine: {}",
        String::from_utf8_lossy(&net.stderr)
    );
}

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

impl SideEngine {
    /// Starts dockerd 28 with `store`; returns once it answers.
    pub fn start(store: Store) -> Self {
        Self::start_release(Release::Docker28, store)
    }

    /// Starts `release`'s dockerd with `store`; returns once it answers.
    pub fn start_release(release: Release, store: Store) -> Self {
        let dockerd = release.package("docker.io").join("usr/sbin/dockerd");
        let containerd = release.package("containerd").join("usr/bin");
        assert!(
            dockerd.exists() && containerd.join("containerd").exists(),
            "{} not found: run ./scripts/setup.sh (scripts/fetch-tools.sh fetches {}'s docker.io and containerd)",
            dockerd.display(),
            release.suite()
        );
        check_system_bridge("before starting");
        // Short names and paths: an interface name has 15 bytes, a socket path 107. Every side
        // Engine, of this process or another running beside it, has a number of its own: its
        // bridge, directories and address pool.
        // Pools 10.200–10.229/16: apart from the subnets the tests make (10.231–10.235).
        let n = super::claim_slot("engine", 30);
        let bridge = format!("edtb{n}");
        let root = PathBuf::from(format!("/tmp/edt-engine-{n}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("data")).unwrap();
        // A bridge of its own, made first, in 10.199.x/24 (apart from 172.17–172.29, the
        // system's networks and the pool below).
        let _ = run("ip", &["link", "del", &bridge]);
        for args in [
            vec!["link", "add", &bridge, "type", "bridge"],
            vec!["addr", "add", &format!("10.199.{n}.1/24"), "dev", &bridge],
            vec!["link", "set", &bridge, "mtu", "1400", "up"],
        ] {
            let out = run("ip", &args);
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut config = serde_json::json!({
            "bridge": bridge,
            "iptables": false,
            "ip6tables": false,
            "mtu": 1400,
            "default-address-pools": [{"base": format!("10.{}.0.0/16", 200 + n), "size": 24}],
            "log-driver": "json-file",
        });
        if store == Store::Containerd {
            config["features"] = serde_json::json!({"containerd-snapshotter": true});
        }
        let config_file = root.join("daemon.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let socket = root.join("docker.sock");
        let path = format!(
            "{}:{}:{}",
            dockerd.parent().unwrap().display(),
            containerd.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(root.join("dockerd.log")).unwrap();
        let child = Command::new(&dockerd)
            .arg("--config-file")
            .arg(&config_file)
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .env("PATH", path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let mut engine = Self {
            docker_host: format!("unix://{}", socket.display()),
            store,
            release,
            cli: release.cli(),
            version: String::new(),
            bridge,
            root,
            child: std::sync::Mutex::new(child),
        };
        let started = Instant::now();
        loop {
            let out = engine.try_docker(&["version", "--format", "{{.Server.Version}}"]);
            if out.status.success() {
                engine.version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                break;
            }
            if let Some(status) = engine.child.get_mut().unwrap().try_wait().unwrap() {
                panic!("dockerd exited ({status}):\n{}", engine.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "dockerd did not answer on {}:\n{}",
                engine.docker_host,
                engine.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let driver = engine.docker(&["info", "--format", "{{.Driver}} {{json .DriverStatus}}"]);
        let containerd = driver.contains("io.containerd.snapshotter");
        assert_eq!(
            containerd,
            store == Store::Containerd,
            "store {store:?}: {driver}"
        );
        engine
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default()
    }

    fn try_docker(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.cli)
            .arg("-H")
            .arg(&self.docker_host)
            .args(args)
            .output()
            .expect("run docker")
    }

    /// The docker CLI on this Engine; panics with its output on failure.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.try_docker(args);
        assert!(
            out.status.success(),
            "docker -H {} {args:?} failed: {}",
            self.docker_host,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `docker run -d --init` on this Engine with the tests' label (`scope`) and `args`.
    pub fn run(&self, scope: &str, name: &str, args: &[&str]) -> String {
        let label = format!("{TEST_LABEL}={scope}");
        let mut all = vec!["run", "-d", "--init", "--name", name, "--label", &label];
        all.extend_from_slice(args);
        self.docker(&all)
    }

    /// The inspected JSON of `what` (a container, or `image inspect` with `kind`).
    pub fn inspect(&self, kind: &str, what: &str) -> serde_json::Value {
        let out = self.docker(&[kind, "inspect", what]);
        serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
    }

    /// The registry digest of the image container `name` runs, `None` while there is none.
    pub fn running_digest(&self, name: &str) -> Option<String> {
        super::docker::running_digest_by(|args| Some(self.try_docker(args)), name)
    }
}

impl Drop for SideEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

impl SideEngine {
    /// Removes its containers, stops the daemon, unmounts and removes all it made, and checks
    /// `docker0`. Idempotent (the shared Engine is stopped at exit, not dropped).
    pub fn stop(&self) {
        if !self.root.exists() {
            return;
        }
        // Everything on it is the tests' (it is theirs alone): containers first.
        let ids = self.try_docker(&["ps", "-aq"]);
        let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-fv"];
            args.extend(ids);
            let _ = self.try_docker(&args);
        }
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pid = child.id().to_string();
        let _ = run("kill", &["-TERM", &pid]);
        let started = Instant::now();
        while child.try_wait().ok().flatten().is_none() {
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Mounts it may have left (overlay, netns, shm), deepest first.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let root = self.root.to_string_lossy().into_owned();
        let mut mine: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&root))
            .collect();
        mine.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mine {
            let _ = run("umount", &["-l", m]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
        let _ = std::fs::remove_dir_all(&self.root);
        if std::thread::panicking() {
            // No second panic: say it loudly instead.
            if Command::new("ip")
                .args(["link", "show", "docker0"])
                .output()
                .is_ok_and(|o| !o.status.success())
            {
                eprintln!("!!! docker0 IS GONE after stopping a side Engine !!!");
            }
        } else {
            check_system_bridge("after stopping");
        }
    }
}
