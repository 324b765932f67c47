//! The signature gate: a cosign signature (key-based, no transparency log) by one of the
//! trusted keys, stored in the image's repository under the tag `sha256-<hex>.sig`. Each
//! layer of that manifest is a simple-signing payload; its annotation
//! `dev.cosignproject.cosign/signature` is the base64 ECDSA P-256 / SHA-256 signature (DER)
//! over the exact payload bytes. A payload counts only when its signature verifies *and* it
//! names this digest, this repository and this image's registry or its mirror
//! ([`super::reference`]). Pure.

use base64::Engine as _;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

use super::SupplyVerdict;
use super::reference::Place;
use crate::model::reference::Digest;

/// The media type of a simple-signing payload layer.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// A public key signatures are checked against, named by where it came from.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    pub name: String,
    key: VerifyingKey,
}

impl PartialEq for TrustedKey {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.key == other.key
    }
}

impl TrustedKey {
    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of an ECDSA P-256 key, as `cosign
    /// generate-key-pair` writes `cosign.pub`.
    pub fn from_pem(name: &str, pem: &str) -> Result<Self, String> {
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
            format!("{name}: not a PEM ECDSA P-256 public key (cosign's default; other key types are not accepted): {e}")
        })?;
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }

    /// Whether `signature` (ECDSA, DER) over `payload` is by this key.
    pub fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        DerSignature::try_from(signature).is_ok_and(|s| self.key.verify(payload, &s).is_ok())
    }
}

/// A layer of a signature manifest: the payload's digest and its signature annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRef {
    pub digest: Digest,
    pub signature: String,
}

/// A fetched layer: the payload bytes and the base64 signature over them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureLayer {
    pub payload: Vec<u8>,
    pub signature: String,
}

/// cosign's tag for the signatures of `digest`: `sha256-<hex>.sig`.
pub fn sig_tag(digest: &Digest) -> String {
    format!("{}.sig", digest.as_str().replacen(':', "-", 1))
}

/// The digest a signature tag names, when `tag` is one: cosign's `sha256-<hex>.sig`, or the
/// referrers tag schema's `sha256-<hex>` (updated when a referrer, cosign 3's bundle or a
/// Notary signature, is pushed to a registry without the referrers API).
pub fn signed_digest(tag: &str) -> Option<Digest> {
    let rest = tag.strip_prefix("sha256-")?;
    let hex = rest.strip_suffix(".sig").unwrap_or(rest);
    Digest::parse(&format!("sha256:{hex}")).ok()
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
struct Layer {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: std::collections::HashMap<String, String>,
}

/// The signed payload layers of a signature manifest (others are skipped).
pub fn layers_of(manifest: &[u8]) -> Result<Vec<LayerRef>, String> {
    let m: Manifest = serde_json::from_slice(manifest)
        .map_err(|e| format!("the signature manifest is not an image manifest: {e}"))?;
    m.layers
        .into_iter()
        .filter(|l| l.media_type == PAYLOAD_MEDIA_TYPE)
        .filter_map(|l| Some((l.annotations.get(SIGNATURE_ANNOTATION)?.clone(), l.digest)))
        .map(|(signature, d)| {
            let digest = Digest::parse(&d).map_err(|e| format!("signature layer: {e}"))?;
            Ok(LayerRef { digest, signature })
        })
        .collect()
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    identity: Identity,
    image: ImageClaim,
}

#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct ImageClaim {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Whether `layers` hold a signature of `digest` at `place` by one of `keys`.
pub fn check(
    layers: &[SignatureLayer],
    digest: &Digest,
    place: &Place,
    keys: &[TrustedKey],
) -> SupplyVerdict {
    if layers.is_empty() {
        return SupplyVerdict::Rejected(format!(
            "not signed: no cosign signature ({} in {})",
            sig_tag(digest),
            place.repository
        ));
    }
    let mut why = Vec::new();
    for layer in layers {
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(layer.signature.trim())
        else {
            why.push("a signature that is not base64".to_owned());
            continue;
        };
        let Some(key) = keys.iter().find(|k| k.verifies(&layer.payload, &sig)) else {
            why.push("a signature by no trusted key".to_owned());
            continue;
        };
        let payload: Payload = match serde_json::from_slice(&layer.payload) {
            Ok(p) => p,
            Err(e) => {
                why.push(format!(
                    "a payload signed by {} that is not simple signing: {e}",
                    key.name
                ));
                continue;
            }
        };
        let claimed = &payload.critical.image.docker_manifest_digest;
        if claimed != digest.as_str() {
            why.push(format!(
                "a signature by {} for another digest ({claimed})",
                key.name
            ));
            continue;
        }
        if let Some(other) = place.mismatch(&payload.critical.identity.docker_reference) {
            why.push(format!("a signature by {} for {other}", key.name));
            continue;
        }
        return SupplyVerdict::Accepted(format!("signed by {}", key.name));
    }
    why.dedup();
    SupplyVerdict::Rejected(format!("no trusted signature: {}", why.join("; ")))
}
