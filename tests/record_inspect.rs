//! Re-records the Engines' inspect answers that the re-creation unit tests read
//! (`tests/fixtures/engines/inspect/`, `src/adapters/docker/recreate/fixtures.rs`). Ignored: it
//! starts every Engine of the matrix in turn (the side Engines and Podman services of
//! `tests/common`, with everything of their own) and is run by hand when an Engine changes:
//!
//! ```text
//! tests/fixtures/engines/record.sh            # all of them, one after another
//! cargo test --test record_inspect -- --ignored --test-threads 1 docker28
//! ```
//!
//! On each Engine: a test image imported from the static busybox, two user networks, a named
//! volume, and the containers of [`CASES`], made with the Engine's own CLI as an operator would;
//! then the container and image inspect answers exactly as the agent reads them (the Engine
//! API at the version the agent negotiates, over the socket). Everything made is removed; a side
//! Engine or Podman service is stopped with all it made.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::docker::TEST_LABEL;
use common::engine::{Release, SideEngine, Store};
use common::podman::{self, Podman};

const OUT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/engines/inspect"
);
const SCOPE: &str = "record-inspect";

/// The CLI that made the containers, and the socket the agent reads them through.
struct Engine<'a> {
    /// `docker20`, `docker28-containerd`, `podman4` …: the fixtures' prefix.
    name: &'a str,
    /// The docker CLI (unused on Podman: its own CLI, on the service's storage).
    cli: PathBuf,
    podman: Option<&'a Podman>,
    docker_host: Option<String>,
    /// The CLI and Engine take API 1.44's settings (`--health-start-interval`,
    /// `--network name=…,mac-address=…`).
    api_1_44: bool,
    /// Octet that keeps this Engine's subnets apart from the others'.
    k: u8,
}

impl Engine<'_> {
    fn try_cli(&self, args: &[&str]) -> std::process::Output {
        match self.podman {
            Some(p) => p.cli_output(args),
            None => {
                let mut cmd = Command::new(&self.cli);
                if let Some(h) = &self.docker_host {
                    cmd.args(["-H", h]);
                }
                cmd.args(args).output().expect("run the docker CLI")
            }
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = self.try_cli(args);
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn socket(&self) -> String {
        match (&self.docker_host, self.podman) {
            (_, Some(p)) => p.docker_host.trim_start_matches("unix://").to_owned(),
            (Some(h), None) => h.trim_start_matches("unix://").to_owned(),
            (None, None) => "/var/run/docker.sock".to_owned(),
        }
    }

    /// `GET path` on the Engine API at `api`.
    fn get(&self, api: &str, path: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-sSf", "--unix-socket", &self.socket()])
            .arg(format!("http://engine/v{api}{path}"))
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "GET {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn net(&self, which: u8) -> String {
        format!("edt-rec-{}-{which}", self.k)
    }

    fn ctr(&self, case: &str) -> String {
        format!("edt-rec-{}-{case}", self.k)
    }
}

/// The API version the agent negotiates with this Engine (as `doctor` shows it).
async fn negotiated(docker_host: Option<&str>) -> String {
    let runtime = ecr_deployd::adapters::docker::DockerRuntime::new(docker_host).unwrap();
    runtime.version().await.expect("the Engine's version").1
}

/// An image like the suite's, made with `import` (nothing can be pulled here).
fn import_image(e: &Engine, reference: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("root/bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.path().join("root/bin/busybox"))
        .expect("/bin/busybox (busybox-static)");
    let tar = dir.path().join("root.tar");
    common::checked(
        Command::new("tar")
            .arg("-C")
            .arg(dir.path().join("root"))
            .arg("-cf")
            .arg(&tar)
            .arg("bin"),
    );
    let label = format!("LABEL {TEST_LABEL}={SCOPE}");
    e.cli(&[
        "import",
        "--change",
        r#"CMD ["/bin/busybox", "sleep", "86400"]"#,
        "--change",
        "ENV IMAGE_DEFAULT=yes",
        "--change",
        &label,
        &tar.to_string_lossy(),
        reference,
    ]);
}

/// The containers each Engine gets: (case, what its `run` adds before the image).
fn cases(e: &Engine) -> Vec<(&'static str, Vec<String>)> {
    let k = e.k;
    let mut whole: Vec<String> = [
        "--network",
        &e.net(1),
        "--ip",
        &format!("10.187.{k}.10"),
        "--mac-address",
        &format!("02:42:0a:bb:{k:02x}:10"),
        "--network-alias",
        "web",
        "-v",
        &format!("{}:/named", e.net(9)),
        "-v",
        "/anon",
        "-e",
        "MODE=prod",
        "--health-cmd",
        "/bin/busybox true",
        "--health-interval",
        "30s",
        "--health-start-period",
        "60s",
        "--log-opt",
        "max-size=1m",
    ]
    .map(str::to_owned)
    .to_vec();
    if e.api_1_44 {
        whole.extend(["--health-start-interval".to_owned(), "2s".to_owned()]);
    }
    let mut all = vec![
        ("whole", whole),
        ("assigned-mac", vec!["--network".to_owned(), e.net(1)]),
    ];
    if e.api_1_44 {
        // A MAC the user set on a network other than the first one.
        all.push((
            "second-network-mac",
            vec![
                "--network".to_owned(),
                e.net(1),
                "--network".to_owned(),
                format!(
                    "name={},mac-address=02:42:0a:bc:{k:02x}:21,alias=side",
                    e.net(2)
                ),
            ],
        ));
    }
    all
}

fn record(e: &Engine, api: &str) {
    let image = format!("edt-rec/fixture:{}", e.k);
    import_image(e, &image);
    let label = format!("{TEST_LABEL}={SCOPE}");
    for (n, subnet) in [(1, 187), (2, 188)] {
        let subnet = format!("10.{subnet}.{}.0/24", e.k);
        e.cli(&[
            "network",
            "create",
            "--label",
            &label,
            "--subnet",
            &subnet,
            &e.net(n),
        ]);
    }
    e.cli(&["volume", "create", "--label", &label, &e.net(9)]);
    for (case, args) in cases(e) {
        let name = e.ctr(case);
        let mut run = vec!["run", "-d", "--name", &name, "--label", &label];
        run.extend(args.iter().map(String::as_str));
        run.push(&image);
        e.cli(&run);
        if case == "whole" {
            e.cli(&[
                "network",
                "connect",
                "--alias",
                "web-back",
                &e.net(2),
                &name,
            ]);
        }
    }
    std::fs::create_dir_all(OUT).unwrap();
    let write = |what: &str, value: &serde_json::Value| {
        let path = Path::new(OUT).join(format!("{}-api{api}-{what}.json", e.name));
        std::fs::write(&path, serde_json::to_string_pretty(value).unwrap() + "\n").unwrap();
        eprintln!("[record] {}", path.display());
    };
    for (case, _) in cases(e) {
        write(
            case,
            &e.get(api, &format!("/containers/{}/json", e.ctr(case))),
        );
    }
    write("image", &e.get(api, &format!("/images/{image}/json")));
}

/// Removes what [`record`] made (a side Engine or Podman service goes with all of it anyway).
fn clean(e: &Engine) {
    for (case, _) in cases(e) {
        let name = e.ctr(case);
        let _ = e.try_cli(&["rm", "-fv", &name]);
    }
    for n in [1, 2] {
        let _ = e.try_cli(&["network", "rm", &e.net(n)]);
    }
    let _ = e.try_cli(&["volume", "rm", &e.net(9)]);
    let _ = e.try_cli(&["rmi", &format!("edt-rec/fixture:{}", e.k)]);
}

fn on(e: &Engine, api: &str) {
    clean(e);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| record(e, api)));
    clean(e);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn on_side(name: &str, release: Release, store: Store, k: u8) {
    let side = SideEngine::start_release(release, store);
    let api = negotiated(Some(&side.docker_host)).await;
    let e = Engine {
        name,
        cli: side.cli.clone(),
        podman: None,
        docker_host: Some(side.docker_host.clone()),
        api_1_44: true,
        k,
    };
    on(&e, &api);
    side.stop();
}

async fn on_podman(name: &str, release: podman::Release, k: u8) {
    let p = Podman::start_release(release, "127.0.0.1");
    let api = negotiated(Some(&p.docker_host)).await;
    let e = Engine {
        name,
        cli: PathBuf::new(),
        podman: Some(&p),
        docker_host: None,
        api_1_44: false,
        k,
    };
    on(&e, &api);
    p.stop();
}

#[tokio::test]
#[ignore = "records fixtures: run by tests/fixtures/engines/record.sh"]
async fn docker20() {
    let api = negotiated(None).await;
    let e = Engine {
        name: "docker20",
        // Debian's 20.10 CLI, as its users have it: the newer CLI first in PATH refuses
        // `--mac-address` below API 1.44.
        cli: PathBuf::from("/usr/bin/docker"),
        podman: None,
        docker_host: None,
        api_1_44: false,
        k: 20,
    };
    on(&e, &api);
}

#[tokio::test]
#[ignore = "records fixtures: run by tests/fixtures/engines/record.sh"]
async fn docker26() {
    on_side("docker26", Release::Docker26, Store::Classic, 26).await;
}

#[tokio::test]
#[ignore = "records fixtures: run by tests/fixtures/engines/record.sh"]
async fn docker28() {
    on_side("docker28", Release::Docker28, Store::Classic, 28).await;
}

#[tokio::test]
#[ignore = "records fixtures: run by tests/fixtures/engines/record.sh"]
async fn docker28_containerd() {
    on_side(
        "docker28-containerd",
        Release::Docker28,
        Store::Containerd,
        29,
    )
    .await;
}

#[tokio::test]
#[ignore = "records fixtures: run by tests/fixtures/engines/record.sh"]
async fn podman4() {
    on_podman("podman4", podman::Release::System, 43).await;
}

#[tokio::test]
#[ignore = "records fixtures: run by tests/fixtures/engines/record.sh"]
async fn podman5() {
    on_podman("podman5", podman::Release::Podman5, 54).await;
}
