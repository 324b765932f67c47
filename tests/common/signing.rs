//! The real signing tools against the test registry: cosign 2 (Debian trixie) and cosign 3
//! and notation (Debian sid), as `scripts/fetch-tools.sh` puts them in `.tools/`. Each signer
//! has its own keys and tool state in a temporary directory; the tools reach the registry on
//! loopback and nothing else (every other address goes to a dead proxy; cosign 3 signs
//! offline: no Fulcio, Rekor or TSA).

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;

use super::checked;
use super::docker::{REGISTRY_PASSWORD, REGISTRY_USER, TestRegistry};
use super::oci::{curl_bytes, put_blob, put_manifest};

pub(super) const PASSWORD: &str = "test-key-password";

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools")
}

fn tool(suite: &str, package: &str, binary: &str) -> PathBuf {
    let path = tools()
        .join(suite)
        .join(package)
        .join("usr/bin")
        .join(binary);
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/fetch-tools.sh (or ./scripts/setup.sh)",
        path.display()
    );
    path
}

pub fn cosign2() -> PathBuf {
    tool("trixie", "cosign", "cosign")
}

pub fn cosign3() -> PathBuf {
    tool("sid", "cosign", "cosign")
}

pub fn notation() -> PathBuf {
    tool("sid", "notation", "notation")
}

/// The Debian versions of the tools, as the tests report them.
pub fn versions() -> String {
    let v = |suite: &str, p: &str| {
        std::fs::read_to_string(tools().join(suite).join(format!("{p}.version")))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    format!(
        "cosign {} (trixie), cosign {} (sid), notation {} (sid)",
        v("trixie", "cosign"),
        v("sid", "cosign"),
        v("sid", "notation")
    )
}

/// Runs `program` in the signer's own state `dir`; its stdout.
pub(super) fn run(dir: &Path, registry: &TestRegistry, program: &Path, args: &[&str]) -> String {
    let docker = dir.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}"));
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, registry.host),
    )
    .unwrap();
    let out = checked(
        Command::new(program)
            .args(args)
            .current_dir(dir)
            .env("DOCKER_CONFIG", &docker)
            .env("XDG_CONFIG_HOME", dir.join("xdg"))
            .env("HOME", dir)
            .env("COSIGN_PASSWORD", PASSWORD)
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1,localhost"),
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// A cosign key pair (`cosign generate-key-pair`), signing with cosign 2 or 3.
pub struct CosignKey {
    dir: tempfile::TempDir,
}

/// The offline signing config and trusted root cosign 3 needs (no Sigstore services);
/// `chain`: a private CA for certificate-bound signatures.
pub(super) fn offline(dir: &Path, registry: &TestRegistry, chain: Option<&Path>) -> [String; 4] {
    let c3 = cosign3();
    if !dir.join("sc.json").exists() {
        run(
            dir,
            registry,
            &c3,
            &[
                "signing-config",
                "create",
                "--no-default-fulcio",
                "--no-default-oidc",
                "--no-default-rekor",
                "--no-default-tsa",
                "--out",
                "sc.json",
            ],
        );
        let mut args = vec![
            "trusted-root".to_owned(),
            "create".into(),
            "--out".into(),
            "tr.json".into(),
        ];
        if let Some(chain) = chain {
            args.push("--fulcio".into());
            args.push(format!(
                "url=https://ca.invalid,certificate-chain={}",
                chain.display()
            ));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(dir, registry, &c3, &args);
    }
    ["--signing-config", "sc.json", "--trusted-root", "tr.json"].map(str::to_owned)
}

impl CosignKey {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        checked(
            Command::new(cosign2())
                .args(["generate-key-pair"])
                .current_dir(dir.path())
                .env("COSIGN_PASSWORD", PASSWORD),
        );
        Self { dir }
    }

    pub fn public_key(&self) -> PathBuf {
        self.dir.path().join("cosign.pub")
    }

    /// `cosign sign --key` of cosign 2: the `sha256-<hex>.sig` tag, whose docker-reference
    /// names the registry signed at (`host/repo`).
    pub fn sign2(&self, registry: &TestRegistry, repo: &str, digest: &str) {
        self.sign2_for(registry, repo, digest, None);
    }

    /// As [`Self::sign2`], the docker-reference set to `identity` instead
    /// (`--sign-container-identity`, as for an image pulled through a proxy).
    pub fn sign2_for(
        &self,
        registry: &TestRegistry,
        repo: &str,
        digest: &str,
        identity: Option<&str>,
    ) {
        let image = format!("{}/{repo}@{digest}", registry.host);
        let identity = identity.map(|i| format!("--sign-container-identity={i}"));
        let mut args = vec![
            "sign",
            "--key",
            "cosign.key",
            "--tlog-upload=false",
            "--allow-insecure-registry",
            "-y",
        ];
        args.extend(identity.as_deref());
        args.push(&image);
        run(self.dir.path(), registry, &cosign2(), &args);
    }

    /// `cosign sign --key` of cosign 3: a Sigstore bundle referrer (tag schema here).
    pub fn sign3(&self, registry: &TestRegistry, repo: &str, digest: &str) {
        let image = format!("{}/{repo}@{digest}", registry.host);
        let offline = offline(self.dir.path(), registry, None);
        let mut args = vec![
            "sign",
            "--key",
            "cosign.key",
            "--allow-insecure-registry",
            "-y",
        ];
        args.extend(offline.iter().map(String::as_str));
        args.push(&image);
        run(self.dir.path(), registry, &cosign3(), &args);
    }
}

/// `notation cert generate-test`: an RSA key and its self-signed certificate
/// (`CN=NAME,O=Notary,L=Seattle,ST=WA,C=US`), signing JWS envelopes.
pub struct Notary {
    dir: tempfile::TempDir,
    name: String,
}

impl Notary {
    pub fn generate(registry: &TestRegistry, name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        run(
            dir.path(),
            registry,
            &notation(),
            &["cert", "generate-test", "--default", name],
        );
        Self {
            dir,
            name: name.to_owned(),
        }
    }

    /// The self-signed certificate, as `notation_roots` names it.
    pub fn root(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("xdg/notation/localkeys/{}.crt", self.name))
    }

    pub fn sign(&self, registry: &TestRegistry, repo: &str, digest: &str) {
        self.sign_as(registry, repo, digest, "jws");
    }

    /// `notation sign --signature-format FORMAT` (`jws` or `cose`).
    pub fn sign_as(&self, registry: &TestRegistry, repo: &str, digest: &str, format: &str) {
        let image = format!("{}/{repo}@{digest}", registry.host);
        let args = [
            "sign",
            "--insecure-registry",
            "--signature-format",
            format,
            "-u",
            REGISTRY_USER,
            "-p",
            REGISTRY_PASSWORD,
            &image,
        ];
        run(self.dir.path(), registry, &notation(), &args);
    }
}

/// Copies the manifest `from_repo:from` (with its blobs) to `to_repo:to`, byte for byte:
/// a signature moved to where it was not made for.
pub fn copy_manifest(
    registry: &TestRegistry,
    from_repo: &str,
    from: &str,
    to_repo: &str,
    to: &str,
) {
    let base = format!("http://{}/v2", registry.host);
    let accept = "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
    let manifest = curl_bytes(
        registry,
        &[
            "-H",
            accept,
            &format!("{base}/{from_repo}/manifests/{from}"),
        ],
    );
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let blobs = std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap());
    for b in blobs {
        let bytes = curl_bytes(
            registry,
            &[&format!(
                "{base}/{from_repo}/blobs/{}",
                b["digest"].as_str().unwrap()
            )],
        );
        put_blob(registry, to_repo, &bytes);
    }
    let media_type = m["mediaType"]
        .as_str()
        .unwrap_or("application/vnd.oci.image.manifest.v1+json");
    put_manifest(
        registry,
        to_repo,
        to,
        media_type,
        std::str::from_utf8(&manifest).unwrap(),
    );
}
