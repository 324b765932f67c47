//! An index tag made by a real `docker buildx build --push` (sid's docker-buildx, a plugin of
//! Docker's 28.x CLI, from `.tools/`), not hand-written JSON: buildx's `docker` driver on a
//! Docker 28 Engine with the containerd image store (no BuildKit image can be fetched here,
//! and the classic store cannot export attestations) builds a FROM-scratch image and pushes
//! an OCI index holding it and its provenance attestation manifest (`unknown/unknown`). The
//! agent, on the Engine under test (`EDT_ENGINE`), deploys it once; the sweeps after it find
//! the container up to date; the attestation is never taken as the platform image.
//!
//! The builder is the Engine under test when that is `docker28-containerd`, else a side
//! Engine of its own (`engine.rs`), as a CI machine beside the host.

mod common;

use std::path::Path;
use std::process::Command;

use common::docker::*;
use common::engine::{SideEngine, Store};
use common::matrix::Flavour;
use common::site::*;
use common::*;
use serde_json::Value;

const PLUGIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/.tools/sid/docker-buildx/usr/libexec/docker/cli-plugins/docker-buildx"
);

/// A containerd-store Engine with buildx: its CLI, `DOCKER_HOST` and a CLI config folder
/// holding the plugin and the test registry's login.
struct Builder {
    cli: std::path::PathBuf,
    host: String,
    config: tempfile::TempDir,
    _own: Option<SideEngine>,
}

impl Builder {
    fn new(registry: &TestRegistry) -> Self {
        assert!(
            Path::new(PLUGIN).exists(),
            "{PLUGIN} not found: run ./scripts/setup.sh (scripts/fetch-tools.sh fetches sid's docker-buildx)"
        );
        let under = under_test();
        let own = (under.flavour != Flavour::Docker28Containerd)
            .then(|| SideEngine::start(Store::Containerd));
        let (cli, host) = match &own {
            Some(side) => (side.cli.clone(), side.docker_host.clone()),
            None => (under.cli.clone(), under.docker_host.clone().unwrap()),
        };
        let config = tempfile::tempdir().unwrap();
        let plugins = config.path().join("cli-plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        std::os::unix::fs::symlink(PLUGIN, plugins.join("docker-buildx")).unwrap();
        let builder = Self {
            cli,
            host,
            config,
            _own: own,
        };
        builder.docker(&[
            "login",
            "-u",
            REGISTRY_USER,
            "-p",
            REGISTRY_PASSWORD,
            &registry.host,
        ]);
        builder
    }

    fn docker(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&checked(
            Command::new(&self.cli)
                .env("DOCKER_HOST", &self.host)
                .env("DOCKER_CONFIG", self.config.path())
                .args(args),
        ))
        .trim()
        .to_owned()
    }

    /// `buildx build --platform linux/amd64 --provenance=true --push` of an image serving
    /// `version` as `reference`; the pushed index's digest (buildx's metadata file).
    fn build_and_push(&self, reference: &str, version: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy("/bin/busybox", dir.path().join("busybox")).unwrap();
        std::fs::create_dir_all(dir.path().join("www")).unwrap();
        std::fs::write(dir.path().join("www/index.html"), version).unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\nCOPY www /www\n\
                 LABEL {TEST_LABEL}.image=\"buildx {reference}\"\nWORKDIR /www\n\
                 CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
            ),
        )
        .unwrap();
        let metadata = dir.path().join("metadata.json");
        self.docker(&[
            "buildx",
            "build",
            "--builder",
            "default",
            "--platform",
            "linux/amd64",
            "--provenance=true",
            "--push",
            "--metadata-file",
            metadata.to_str().unwrap(),
            "-t",
            reference,
            dir.path().to_str().unwrap(),
        ]);
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(&metadata).unwrap()).unwrap();
        let digest = meta["containerimage.digest"].as_str().unwrap().to_owned();
        // The build's local copy goes: the host must pull what the registry holds.
        self.docker(&["rmi", reference]);
        digest
    }
}

/// The registry's `repo@digest` manifest, as bytes.
fn manifest(registry: &TestRegistry, repo: &str, digest: &str) -> Vec<u8> {
    checked(Command::new("curl").args([
        "-sSf",
        "-u",
        &format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}"),
        "-H",
        "Accept: application/vnd.oci.image.index.v1+json",
        &format!("http://{}/v2/{repo}/manifests/{digest}", registry.host),
    ]))
}

/// (platform image digest, attestation manifest digest) of buildx's index, checked to be
/// the shape buildx makes: linux/amd64 and its attestation for unknown/unknown.
fn shape(index: &Value) -> (String, String) {
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{index}");
    let platform = |m: &Value| {
        format!(
            "{}/{}",
            m["platform"]["os"].as_str().unwrap_or_default(),
            m["platform"]["architecture"].as_str().unwrap_or_default()
        )
    };
    let image = manifests
        .iter()
        .find(|m| platform(m) == "linux/amd64")
        .unwrap_or_else(|| panic!("no linux/amd64: {index}"));
    let att = manifests
        .iter()
        .find(|m| platform(m) == "unknown/unknown")
        .unwrap_or_else(|| panic!("no attestation: {index}"));
    assert_eq!(
        att["annotations"]["vnd.docker.reference.type"], "attestation-manifest",
        "{index}"
    );
    assert_eq!(
        att["annotations"]["vnd.docker.reference.digest"], image["digest"],
        "{index}"
    );
    let digest = |m: &Value| m["digest"].as_str().unwrap().to_owned();
    (digest(image), digest(att))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_buildx_index_with_provenance_is_deployed_once_then_up_to_date() {
    let site = Site::new("buildx").await;
    let repo = "shop/bx";
    let (name, v1) = site.container(repo, "web").await;
    let builder = Builder::new(&site.registry);
    let reference = format!("{}/{repo}:v2", site.registry.host);
    let index_digest = builder.build_and_push(&reference, "v2");
    let bytes = manifest(&site.registry, repo, &index_digest);
    assert_eq!(format!("sha256:{}", sha256_hex(&bytes)), index_digest);
    let index: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(index["mediaType"], common::oci::OCI_INDEX, "{index}");
    let (image, attestation) = shape(&index);
    eprintln!("[buildx] index {index_digest}: image {image}, attestation {attestation}");
    common::oci::put_index_in_ecr(
        &site.ecr,
        repo,
        "prod",
        std::str::from_utf8(&bytes).unwrap(),
        &index_digest,
    )
    .await;

    let (code, out, err) = site.cli(&["sweep"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("deployed"), "{out}");
    let digests = repo_digests(&name);
    assert!(
        digests
            .iter()
            .any(|d| d.ends_with(&index_digest) || d.ends_with(&image)),
        "the new container runs buildx's image: {digests:?}"
    );
    assert!(
        !digests
            .iter()
            .any(|d| d.ends_with(&v1) || d.ends_with(&attestation)),
        "{digests:?}"
    );
    assert_eq!(
        docker(&["exec", &name, "/bin/busybox", "cat", "/www/index.html"]),
        "v2"
    );
    for _ in 0..2 {
        let (code, out, err) = site.cli(&["sweep"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("up to date"), "{out}");
    }
    let history = site.deployments(&name);
    assert_eq!(history.len(), 1, "one deploy only: {history:?}");
    assert_eq!(history[0]["to_digest"], index_digest.as_str());
    assert_eq!(
        history[0]["platform_digest"],
        image.as_str(),
        "never the attestation"
    );
    let status = status_of(&site.config(0), &name);
    assert_eq!(status["state"], "up_to_date", "{status}");
    assert_eq!(status["desired_digest"], index_digest.as_str());
    assert_eq!(status["platform_digest"], image.as_str());
}
