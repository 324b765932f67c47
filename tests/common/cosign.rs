//! cosign signatures made the way `cosign sign --key` stores them, with openssl as the
//! signer (an independent implementation of ECDSA P-256 / SHA-256): a key pair generated
//! per test, the simple-signing payload and the signature manifest pushed to the test
//! registry over its HTTP API under the tag `sha256-<hex>.sig`.

use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;

use super::docker::TestRegistry;
use super::oci::{OCI_MANIFEST, put_blob, put_manifest};

/// A key pair in a temporary directory.
pub struct Signer {
    dir: tempfile::TempDir,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is needed: run ./scripts/setup.sh");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl Signer {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("cosign.key");
        let key = key.to_str().unwrap();
        openssl(&[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            key,
        ]);
        let public = dir.path().join("cosign.pub");
        openssl(&[
            "ec",
            "-in",
            key,
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ]);
        Self { dir }
    }

    /// The public key file, as `[verify] cosign_public_keys` names it.
    pub fn public_key(&self) -> PathBuf {
        self.dir.path().join("cosign.pub")
    }

    /// Signs a payload naming `claimed` in `reference` (`host/repo`) and stores it as the
    /// signature of `digest` in `repo`. Returns the signature tag.
    pub fn sign_as(
        &self,
        registry: &TestRegistry,
        repo: &str,
        digest: &str,
        reference: &str,
        claimed: &str,
    ) -> String {
        let payload = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{claimed}"}},"type":"cosign container image signature"}},"optional":null}}"#
        );
        let file = self.dir.path().join("payload.json");
        std::fs::write(&file, &payload).unwrap();
        let key = self.dir.path().join("cosign.key");
        let der = openssl(&[
            "dgst",
            "-sha256",
            "-sign",
            key.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
        let signature = base64::engine::general_purpose::STANDARD.encode(der);
        let config = b"{}";
        let config_digest = put_blob(registry, repo, config);
        let payload_digest = put_blob(registry, repo, payload.as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": payload_digest,
                "size": payload.len(),
                "annotations": {"dev.cosignproject.cosign/signature": signature}
            }]
        })
        .to_string();
        let tag = format!("sha256-{}.sig", &digest["sha256:".len()..]);
        put_manifest(registry, repo, &tag, OCI_MANIFEST, &manifest);
        tag
    }

    /// Signs `digest` of `repo` as cosign does, naming the ECR repository.
    pub fn sign(&self, registry: &TestRegistry, repo: &str, digest: &str) -> String {
        let ecr = format!(
            "{}.dkr.ecr.{}.amazonaws.com/{repo}",
            super::ACCOUNT,
            super::REGION
        );
        self.sign_as(registry, repo, digest, &ecr, digest)
    }
}
