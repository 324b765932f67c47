//! The Docker side of the harness: a local registry with basic auth (Debian's
//! `docker-registry`), test images built from the static busybox, and exact cleanup of what
//! a test created (everything carries the label `ecr-deployd.test=<scope>`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use super::matrix::{docker_command, under_test};
use super::{free_port, sha256_hex, wait_for_port};

/// moto's GetAuthorizationToken answer is `AWS:<account>-auth-token`: the registry accepts
/// exactly that, so a pull that succeeds proves the agent sent the ECR credentials.
pub const REGISTRY_USER: &str = "AWS";
pub const REGISTRY_PASSWORD: &str = "123456789012-auth-token";
pub const TEST_LABEL: &str = "ecr-deployd.test";
/// Where a registry's notifications section starts in its config (the last section).
const NOTIFY_START: &str = "notifications:\n";

/// Runs the docker CLI; panics with its output on failure.
pub fn docker(args: &[&str]) -> String {
    docker_in(None, args)
}

fn docker_in(config: Option<&Path>, args: &[&str]) -> String {
    let mut cmd = docker_command();
    if let Some(c) = config {
        cmd.env("DOCKER_CONFIG", c);
    }
    let out = cmd.args(args).output().expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A registry on a free loopback port, with htpasswd auth; stopped and its images removed on drop.
pub struct TestRegistry {
    pub host: String,
    child: Child,
    dir: tempfile::TempDir,
    /// More registry processes over the same storage, each on a port of its own.
    aliases: Vec<(String, Child)>,
}

impl TestRegistry {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// A registry that sends Docker Distribution's push notifications to `url` with
    /// `Authorization: Bearer <token>` (retrying each second while the endpoint fails).
    pub fn start_notifying(url: &str, token: &str) -> Self {
        Self::start_with(&format!(
            "{NOTIFY_START}  endpoints:\n    - name: agent\n      url: {url}\n      headers:\n        Authorization: [\"Bearer {token}\"]\n      timeout: 2s\n      threshold: 3\n      backoff: 1s\n      ignore:\n        mediatypes: [application/octet-stream]\n        actions: [pull]\n"
        ))
    }

    fn start_with(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", REGISTRY_USER, REGISTRY_PASSWORD])
            .output()
            .expect("htpasswd (apache2-utils) is needed: run ./scripts/setup.sh");
        std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).unwrap();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: test\n    path: {root}/../htpasswd\n{extra}",
            root = dir.path().join("data").display()
        );
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = serve(&dir.path().join("config.yml"), port);
        let registry = Self {
            host: format!("127.0.0.1:{port}"),
            child,
            dir,
            aliases: Vec::new(),
        };
        super::matrix::login(&registry.cli_config(), &registry.host);
        registry
    }

    fn cli_config(&self) -> PathBuf {
        self.dir.path().join("cli")
    }

    /// Another registry process serving the same images on a port of its own; its
    /// `host:port`. To the Engine and the agent it is another registry: agents whose mirrors
    /// differ manage different containers on one Engine (hosts of a fleet, in one test).
    pub fn alias(&mut self) -> String {
        self.alias_with(false)
    }

    /// As `alias`, sending no push notifications: a push through it is a notification lost.
    pub fn silent_alias(&mut self) -> String {
        self.alias_with(true)
    }

    fn alias_with(&mut self, silent: bool) -> String {
        let port = free_port();
        let mut config = std::fs::read_to_string(self.dir.path().join("config.yml"))
            .unwrap()
            .replace(&self.host, &format!("127.0.0.1:{port}"));
        if silent && let Some(at) = config.find(NOTIFY_START) {
            config.truncate(at);
        }
        let path = self.dir.path().join(format!("config-{port}.yml"));
        std::fs::write(&path, config).unwrap();
        let host = format!("127.0.0.1:{port}");
        self.aliases.push((host.clone(), serve(&path, port)));
        super::matrix::login(&self.cli_config(), &host);
        host
    }

    /// Builds an image of `kind` serving `version`, pushes it as `repo:tag`, returns its
    /// registry digest. Unless `keep_local`, the local copy is removed so a deploy must pull.
    pub fn publish(
        &self,
        repo: &str,
        tag: &str,
        kind: Kind,
        version: &str,
        keep_local: bool,
    ) -> String {
        let reference = format!("{}/{repo}:{tag}", self.host);
        build_image(&reference, kind, version);
        let pushed = docker_in(Some(&self.cli_config()), &["push", &reference]);
        // The digest the registry has, from the push's own answer: on the containerd image
        // store and on Podman the local manifest's digest (`RepoDigests`) may differ from
        // the pushed one.
        let digest = push_digest(&pushed);
        if !keep_local {
            // Removing prunes cached parents another test's build may be using: take turns.
            let _turn = image_lock();
            docker(&["rmi", &reference]);
        }
        digest
    }
}

impl TestRegistry {
    /// As `publish` (kept local), for an image whose config carries `labels` (`key=value`),
    /// as a Dockerfile's `LABEL` or a base image's would.
    pub fn publish_labelled(
        &self,
        repo: &str,
        tag: &str,
        version: &str,
        labels: &[&str],
    ) -> String {
        let reference = format!("{}/{repo}:{tag}", self.host);
        build_image(&reference, Kind::Serve, version);
        let dir = tempfile::tempdir().unwrap();
        let lines: String = labels
            .iter()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                format!("LABEL {k}=\"{v}\"\n")
            })
            .collect();
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!("FROM {reference}\n{lines}"),
        )
        .unwrap();
        let _one = image_lock();
        let out = docker_command()
            .args(["build", "-q", "-t", &reference])
            .arg(dir.path())
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        drop(_one);
        push_digest(&docker_in(Some(&self.cli_config()), &["push", &reference]))
    }

    /// Pushes the local image `source` as `repo:tag` through the registry process at `host`
    /// (this one or an alias); returns the registry digest.
    pub fn push_via(&self, host: &str, source: &str, repo: &str, tag: &str) -> String {
        let reference = format!("{host}/{repo}:{tag}");
        docker(&["tag", source, &reference]);
        push_digest(&docker_in(Some(&self.cli_config()), &["push", &reference]))
    }

    /// Runs the docker CLI logged in to this registry (e.g. `service create --with-registry-auth`).
    pub fn docker_logged_in(&self, args: &[&str]) -> String {
        docker_in(Some(&self.cli_config()), args)
    }

    /// Pushes the local image `source` as `repo:tag` too; returns the registry digest.
    pub fn push_as(&self, source: &str, repo: &str, tag: &str) -> String {
        self.push_via(&self.host, source, repo, tag)
    }
}

/// The registry digest in `docker push`'s output.
fn push_digest(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|d| d.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in the push output: {out}"))
        .to_owned()
}

/// Starts `docker-registry serve config` and waits for its port.
fn serve(config: &Path, port: u16) -> Child {
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry is needed: run ./scripts/setup.sh");
    wait_for_port(port, Duration::from_secs(20));
    child
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut hosts = vec![self.host.clone()];
        for (host, child) in &mut self.aliases {
            let _ = child.kill();
            let _ = child.wait();
            hosts.push(host.clone());
        }
        // Removing an image prunes its cached parents, which a build running at the same time
        // may be using: removals and builds take turns.
        let _turn = image_lock();
        for host in hosts {
            remove_images_of(&host);
        }
        // Images of removed test containers that lost their tag (a swap replaced them): this
        // registry's only. Another test's image pulled by digest and not yet tagged is
        // untagged too, and pruning every test image would pull it from under its agent.
        let _ = docker_command()
            .args([
                "image",
                "prune",
                "-f",
                "--filter",
                &format!("label={TEST_LABEL}.registry={}", self.host),
            ])
            .output();
    }
}

/// Removes every image of registry `host` (the caller holds the image lock).
fn remove_images_of(host: &str) {
    // By id: images only known by digest have no tag to name them by.
    let images = docker_command()
        .args([
            "images",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("reference={host}/*/*"),
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut ids: Vec<String> = images.split_whitespace().map(str::to_owned).collect();
    ids.sort();
    ids.dedup();
    // A Swarm task container may still be going away (its service was removed just now):
    // its image cannot be removed until it is gone; try again for a while.
    for attempt in 0..30 {
        ids.retain(|id| {
            let out = docker_command().args(["rmi", "-f", id]).output();
            let gone = out.as_ref().is_ok_and(|o| o.status.success());
            if !gone && attempt == 29 {
                eprintln!(
                    "test registry {host}: image {id} not removed: {}",
                    out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                        .unwrap_or_default()
                );
            }
            !gone
        });
        if ids.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// One image build or removal at a time in this test process: the legacy builder races on
/// identical layers built at once, and on cached parents removed under it.
fn image_lock() -> std::sync::MutexGuard<'static, ()> {
    static IMAGES: std::sync::Mutex<()> = std::sync::Mutex::new(());
    IMAGES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a test image does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Serves /www/index.html (= version) on 8080; no HEALTHCHECK.
    Serve,
    /// As Serve, with a HEALTHCHECK that passes.
    Healthy,
    /// As Serve, with a HEALTHCHECK that stays "starting" for ten minutes.
    NeverHealthy,
    /// Exits with status 1 at once.
    ExitAtOnce,
}

/// Builds a local image of `kind` serving `version` as `reference` (labelled for the
/// leftovers check; the caller removes it).
pub fn build_image(reference: &str, kind: Kind, version: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", dir.path().join("busybox"))
        .expect("/bin/busybox (busybox-static) is needed: run ./scripts/setup.sh");
    std::fs::create_dir_all(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/index.html"), version).unwrap();
    let serve = r#"CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]"#;
    let tail = match kind {
        Kind::Serve => serve.to_owned(),
        Kind::Healthy => format!(
            "HEALTHCHECK --interval=1s --timeout=1s CMD [\"/bin/busybox\", \"true\"]\n{serve}"
        ),
        Kind::NeverHealthy => format!(
            "HEALTHCHECK --interval=1s --timeout=1s --start-period=600s CMD [\"/bin/busybox\", \"false\"]\n{serve}"
        ),
        Kind::ExitAtOnce => r#"CMD ["/bin/busybox", "false"]"#.to_owned(),
    };
    let dockerfile = format!(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\nCOPY www /www\nENV IMAGE_DEFAULT=yes\nLABEL {TEST_LABEL}.image=\"{}\" {TEST_LABEL}.registry=\"{}\"\nWORKDIR /www\n{tail}\n",
        // Unique per registry (per test): no two tests ever share an image id.
        sha256_hex(format!("{reference} {version}").as_bytes()),
        // The registry host the reference names: what that registry's clean-up may prune.
        reference.split('/').next().unwrap_or_default(),
    );
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    let _one = image_lock();
    let build = || {
        docker_command()
            .args(["build", "-q", "-t", reference])
            .arg(dir.path())
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .unwrap()
    };
    let mut out = build();
    // An agent removing the image it replaced (with its untagged parents), or another test
    // process removing its images, can take a cached layer away mid-build ("unknown parent
    // image ID", "No such image") or prune the new image while it is still untagged ("failed
    // to get digest"): build again.
    for _ in 0..3 {
        let err = String::from_utf8_lossy(&out.stderr);
        let lost = ["parent image", "No such image", "failed to get digest"];
        if out.status.success() || !lost.iter().any(|l| err.contains(l)) {
            break;
        }
        out = build();
    }
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates a container through the Engine API at version 1.41: the CLI refuses some
/// settings older Engines take (a MAC address in `Config`), and operators have such containers.
pub fn create_via_api(name: &str, body: &serde_json::Value) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--unix-socket",
            &under_test().socket().to_string_lossy(),
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
        ])
        .arg(format!("http://docker/v1.41/containers/create?name={name}"))
        .arg("-d")
        .arg(body.to_string())
        .output()
        .expect("curl is needed: run ./scripts/setup.sh");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    answer["Id"]
        .as_str()
        .unwrap_or_else(|| panic!("create {name}: {answer}"))
        .to_owned()
}

/// Everything one test creates in Docker; removed (with the test's volumes) on drop.
pub struct Scope {
    pub id: String,
}

impl Scope {
    /// Its id ends in a number no other live scope of any test process holds
    /// ([`Scope::octet`]).
    pub fn new(test: &str) -> Self {
        let id = format!(
            "{test}-{}{:02x}",
            &sha256_hex(format!("{test}{:?}", std::time::SystemTime::now()).as_bytes())[..6],
            super::claim_slot("scope", 250)
        );
        Self { id }
    }

    /// A number of this scope's own, for the third octet of the subnets it makes: test
    /// binaries run side by side on several Engines (`scripts/lanes.sh`), and two bridges
    /// with one subnet on the host would take each other's traffic.
    pub fn octet(&self) -> u8 {
        u8::from_str_radix(&self.id[self.id.len() - 2..], 16).unwrap()
    }

    /// A container name unique to this test.
    pub fn name(&self, short: &str) -> String {
        format!("edt-{}-{short}", &self.id[self.id.len() - 8..])
    }

    /// `docker run -d --init` with the scope label and `args` (options then image).
    pub fn run(&self, name: &str, args: &[&str]) -> String {
        let label = format!("{TEST_LABEL}={}", self.id);
        let mut all = vec!["run", "-d", "--init", "--name", name, "--label", &label];
        all.extend_from_slice(args);
        docker(&all)
    }

    pub fn network(&self, name: &str, subnet: &str) -> String {
        let label = format!("{TEST_LABEL}={}", self.id);
        docker(&[
            "network", "create", "--label", &label, "--subnet", subnet, name,
        ])
    }

    pub fn volume(&self, name: &str) -> String {
        let label = format!("{TEST_LABEL}={}", self.id);
        docker(&["volume", "create", "--label", &label, name])
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let filter = format!("label={TEST_LABEL}={}", self.id);
        let run = |args: &[&str]| {
            docker_command()
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        // Swarm services first: removing them removes their task containers (wait for that).
        // (`service ls` has no --no-trunc: the full id, which the tasks' label holds, comes
        // from `service inspect`.)
        let services = run(&["service", "ls", "-q", "--filter", &filter]);
        for short in services.split_whitespace() {
            let id = run(&["service", "inspect", "--format", "{{.ID}}", short]);
            let id = id.trim();
            run(&["service", "rm", id]);
            let tasks = format!("label=com.docker.swarm.service.id={id}");
            for _ in 0..150 {
                if run(&["ps", "-aq", "--filter", &tasks]).trim().is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let containers = run(&["ps", "-aq", "--filter", &filter]);
        let ids: Vec<&str> = containers.split_whitespace().collect();
        // The agent carries anonymous volumes over by name, so `rm -v` no longer sees them as
        // anonymous: collect every volume the test's containers mount and remove those too.
        let mut volumes = Vec::new();
        for id in &ids {
            let format = r#"{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}"#;
            volumes.extend(
                run(&["inspect", "--format", format, id])
                    .split_whitespace()
                    .map(str::to_owned),
            );
        }
        if !ids.is_empty() {
            let mut args = vec!["rm", "-fv"];
            args.extend(ids);
            run(&args);
        }
        for v in volumes {
            run(&["volume", "rm", &v]);
        }
        for kind in ["network", "volume"] {
            let names = run(&[kind, "ls", "-q", "--filter", &filter]);
            for n in names.split_whitespace() {
                run(&[kind, "rm", n]);
            }
        }
    }
}

/// Containers called exactly `name` or `name.ecr-deployd-old`: (name, running, image id).
pub fn containers_named(name: &str) -> Vec<(String, bool, String)> {
    let out = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.Names}}",
    ]);
    out.lines()
        .filter(|n| *n == name || *n == format!("{name}.ecr-deployd-old"))
        .map(|n| {
            let info = docker(&["inspect", "--format", "{{.State.Running}} {{.Image}}", n]);
            let (running, image) = info.split_once(' ').unwrap();
            (n.to_owned(), running == "true", image.to_owned())
        })
        .collect()
}

/// The registry digest of the image container `name` runs, or `None` while there is no such
/// container (mid-swap) — for polling.
pub fn running_digest_now(name: &str) -> Option<String> {
    running_digest_by(|args| docker_command().args(args).output().ok(), name)
}

/// The registry digest of the image container `name` runs, asked through `cli` (a Docker
/// or Podman client of some Engine); `None` while there is no such container.
pub fn running_digest_by(
    cli: impl Fn(&[&str]) -> Option<std::process::Output>,
    name: &str,
) -> Option<String> {
    let out = cli(&["inspect", "--format", "{{.Image}}", name])?;
    if !out.status.success() {
        return None;
    }
    let image = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let format = "{{range .RepoDigests}}{{println .}}{{end}}";
    let out = cli(&["image", "inspect", "--format", format, &image])?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.split_once('@').map(|(_, d)| d.to_owned()))
}

/// Every `RepoDigests` entry (`host/repo@digest`) of the image container `name` runs.
pub fn repo_digests(name: &str) -> Vec<String> {
    let image = docker(&["inspect", "--format", "{{.Image}}", name]);
    let digests = docker(&[
        "image",
        "inspect",
        "--format",
        "{{range .RepoDigests}}{{println .}}{{end}}",
        &image,
    ]);
    digests.lines().map(str::to_owned).collect()
}

/// The registry digest of the image container `name` runs.
pub fn running_digest(name: &str) -> String {
    repo_digests(name)
        .first()
        .and_then(|l| l.split_once('@'))
        .map(|(_, d)| d.to_owned())
        .unwrap_or_default()
}

/// A single-node Swarm for the test: initialised on loopback when none is active, and left
/// again on drop only if this guard initialised it.
pub struct Swarm {
    created: bool,
}

impl Swarm {
    pub fn ensure() -> Self {
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        if state.trim() == "active" {
            return Self { created: false };
        }
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        Self { created: true }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if self.created {
            let _ = docker_command()
                .args(["swarm", "leave", "--force"])
                .output();
        }
    }
}
