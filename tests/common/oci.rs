//! Image indexes in the test registry, made over its HTTP API the way `docker buildx build
//! --push` leaves them: the platform image plus a provenance attestation manifest for
//! `unknown/unknown`, under an OCI index.

use std::process::Command;

use super::docker::{REGISTRY_PASSWORD, REGISTRY_USER, TestRegistry, docker};
use super::{checked, sha256_hex};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The Engine's architecture (`amd64` here): the index's platform image is made for it.
pub fn engine_arch() -> String {
    docker(&["version", "--format", "{{.Server.Arch}}"])
}

/// `curl` with the registry's credentials (`args` name its URLs); the body as bytes.
pub(super) fn curl_bytes(_registry: &TestRegistry, args: &[&str]) -> Vec<u8> {
    checked(
        Command::new("curl")
            .args([
                "-sS",
                "-f",
                "-u",
                &format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}"),
            ])
            .args(args),
    )
}

fn curl(registry: &TestRegistry, args: &[&str]) -> String {
    String::from_utf8_lossy(&curl_bytes(registry, args)).into_owned()
}

/// Uploads `bytes` as a blob of `repo`; returns its digest.
pub fn put_blob(registry: &TestRegistry, repo: &str, bytes: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(bytes));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    std::fs::write(&file, bytes).unwrap();
    let headers = curl(
        registry,
        &[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            &format!("http://{}/v2/{repo}/blobs/uploads/", registry.host),
        ],
    );
    let location = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or(l.strip_prefix("location: "))
        })
        .unwrap_or_else(|| panic!("no upload location in {headers}"))
        .trim()
        .to_owned();
    let sep = if location.contains('?') { '&' } else { '?' };
    let url = if location.starts_with("http") {
        format!("{location}{sep}digest={digest}")
    } else {
        format!("http://{}{location}{sep}digest={digest}", registry.host)
    };
    curl(
        registry,
        &[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", file.display()),
            &url,
        ],
    );
    digest
}

/// Puts `manifest` as `repo:reference`; returns its digest (sha256 of the exact bytes).
pub fn put_manifest(
    registry: &TestRegistry,
    repo: &str,
    reference: &str,
    media_type: &str,
    manifest: &str,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifest.json");
    std::fs::write(&file, manifest).unwrap();
    curl(
        registry,
        &[
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {media_type}"),
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("http://{}/v2/{repo}/manifests/{reference}", registry.host),
        ],
    );
    format!("sha256:{}", sha256_hex(manifest.as_bytes()))
}

/// Tags the manifest `repo:from` as `repo:to` too, as `crane tag` does (a promotion: the
/// registry gets only a manifest `PUT`, its push notification follows); returns its digest.
pub fn retag(registry: &TestRegistry, repo: &str, from: &str, to: &str) -> String {
    let body = curl(
        registry,
        &[
            "-H",
            &format!("Accept: {DOCKER_MANIFEST}, {OCI_MANIFEST}"),
            &format!("http://{}/v2/{repo}/manifests/{from}", registry.host),
        ],
    );
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let media_type = parsed["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
    put_manifest(registry, repo, to, media_type, &body)
}

/// The size of the image manifest `repo@digest` (an index entry must name it).
/// The size and media type of manifest `digest` as the registry holds it: Docker's on the
/// classic stores' pushes, OCI's on the containerd store's (an index entry must say which:
/// a registry answers "manifest unknown" to a fetch whose Accept leaves its type out).
fn manifest_facts(registry: &TestRegistry, repo: &str, digest: &str) -> (usize, String) {
    let body = curl(
        registry,
        &[
            "-H",
            &format!("Accept: {DOCKER_MANIFEST}, {OCI_MANIFEST}"),
            &format!("http://{}/v2/{repo}/manifests/{digest}", registry.host),
        ],
    );
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let media_type = parsed["mediaType"]
        .as_str()
        .unwrap_or(OCI_MANIFEST)
        .to_owned();
    (body.len(), media_type)
}

/// A provenance attestation for `subject`, as buildx attaches it.
fn attestation(registry: &TestRegistry, repo: &str, subject: &str) -> (String, usize) {
    let config = b"{}";
    let config_digest = put_blob(registry, repo, config);
    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v0.2","subject":[{{"digest":{{"sha256":"{}"}}}}]}}"#,
        &subject[7..]
    );
    let layer_digest = put_blob(registry, repo, statement.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": layer_digest, "size": statement.len(),
                    "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}]
    })
    .to_string();
    let digest = put_manifest(
        registry,
        repo,
        &format!("att-{}", &subject[7..19]),
        OCI_MANIFEST,
        &manifest,
    );
    (digest, manifest.len())
}

/// An OCI index under `repo:tag` holding the image `platform_digest` (already in `repo`)
/// for the Engine's platform and its attestation manifest. Returns (index JSON, digest).
pub fn push_index(
    registry: &TestRegistry,
    repo: &str,
    tag: &str,
    platform_digest: &str,
) -> (String, String) {
    let (size, media_type) = manifest_facts(registry, repo, platform_digest);
    let (att, att_size) = attestation(registry, repo, platform_digest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": media_type, "digest": platform_digest, "size": size,
             "platform": {"architecture": engine_arch(), "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": att, "size": att_size,
             "platform": {"architecture": "unknown", "os": "unknown"},
             "annotations": {"vnd.docker.reference.digest": platform_digest,
                             "vnd.docker.reference.type": "attestation-manifest"}}
        ]
    })
    .to_string();
    let digest = put_manifest(registry, repo, tag, OCI_INDEX, &index);
    (index, digest)
}

/// Points ECR's `repo:tag` at an index, with the index media type, as ECR stores a buildx push.
pub async fn put_index_in_ecr(
    ecr: &aws_sdk_ecr::Client,
    repo: &str,
    tag: &str,
    index: &str,
    digest: &str,
) {
    let _ = ecr.create_repository().repository_name(repo).send().await;
    ecr.put_image()
        .repository_name(repo)
        .image_tag(tag)
        .image_manifest(index)
        .image_manifest_media_type(OCI_INDEX)
        .image_digest(digest)
        .send()
        .await
        .unwrap();
}
