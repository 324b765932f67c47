//! cosign 3's signatures: Sigstore bundles (`application/vnd.dev.sigstore.bundle.v0.3+json`,
//! also v0.1/v0.2) stored as OCI referrers of the image. The bundle holds a DSSE envelope
//! whose in-toto statement (predicate type `https://sigstore.dev/cosign/sign/v1`) names the
//! image digest as its subject, and either a public-key hint (signed by a key) or the
//! signer's certificate (`verificationMaterial.certificate`, or an older bundle's
//! `x509CertificateChain`).
//!
//! Checked: the DSSE signature (over DSSE's pre-authentication encoding) by one of
//! `cosign_public_keys`, or by a certificate that chains to `cosign_roots` *at the time of
//! verification* and carries an identity of `cosign_identities`; the statement type, the
//! predicate type and that a subject is this digest. Not checked: transparency-log entries
//! (no Rekor inclusion proof or SET is read), signed timestamps (no TSA is trusted here, so a
//! certificate must still be valid when the gate looks), certificate transparency (SCTs).
//! The statement names no repository (cosign 3 writes none): a bundle counts for this
//! repository because it is stored there as a referrer of this digest. Pure.

use std::time::SystemTime;

use base64::Engine as _;
use serde::Deserialize;

use super::trust::Trust;
use super::x509::Signer;
use crate::model::reference::Digest;

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Every bundle media type read (v0.1 and v0.2 carried the version as a parameter).
pub const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
const IN_TOTO: &str = "application/vnd.in-toto+json";
const COSIGN_SIGN: &str = "https://sigstore.dev/cosign/sign/v1";
const STATEMENT_TYPES: &[&str] = &[
    "https://in-toto.io/Statement/v1",
    "https://in-toto.io/Statement/v0.1",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    #[serde(default)]
    verification_material: Material,
    dsse_envelope: Option<Envelope>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    certificate: Option<RawCert>,
    x509_certificate_chain: Option<Chain>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct Chain {
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<Sig>,
}

#[derive(Deserialize)]
struct Sig {
    sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    predicate_type: String,
    #[serde(default)]
    subject: Vec<Subject>,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::HashMap<String, String>,
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("not base64: {e}"))
}

/// DSSE's pre-authentication encoding: what the signature is over.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Who signed the bundle `bytes` for `digest`, or why it does not count.
pub fn check(
    bytes: &[u8],
    digest: &Digest,
    trust: &Trust,
    now: SystemTime,
) -> Result<String, String> {
    let bundle: Bundle =
        serde_json::from_slice(bytes).map_err(|e| format!("a bundle that is not JSON: {e}"))?;
    if !bundle.media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) {
        return Err(format!("a bundle of type {:?}", bundle.media_type));
    }
    let env = bundle
        .dsse_envelope
        .ok_or("a bundle without a DSSE envelope (a blob signature, not an image's)")?;
    let payload = b64(&env.payload).map_err(|e| format!("a bundle payload {e}"))?;
    let message = pae(&env.payload_type, &payload);
    let signer = signed_by(&bundle.verification_material, &env, &message, trust, now)?;
    if env.payload_type != IN_TOTO {
        return Err(format!(
            "a bundle signed by {signer} with payload type {:?}",
            env.payload_type
        ));
    }
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|e| format!("a bundle signed by {signer} whose statement is not in-toto: {e}"))?;
    if !STATEMENT_TYPES.contains(&statement.kind.as_str())
        || statement.predicate_type != COSIGN_SIGN
    {
        return Err(format!(
            "a bundle signed by {signer} that is not a cosign image signature ({})",
            statement.predicate_type
        ));
    }
    let hex = digest.as_str().trim_start_matches("sha256:");
    if !statement
        .subject
        .iter()
        .any(|s| s.digest.get("sha256").is_some_and(|h| h == hex))
    {
        return Err(format!("a bundle signed by {signer} for another digest"));
    }
    Ok(signer)
}

/// The trusted key or certificate identity a DSSE signature of `message` is by.
fn signed_by(
    material: &Material,
    env: &Envelope,
    message: &[u8],
    trust: &Trust,
    now: SystemTime,
) -> Result<String, String> {
    let sigs: Vec<Vec<u8>> = env
        .signatures
        .iter()
        .filter_map(|s| b64(&s.sig).ok())
        .collect();
    if sigs.is_empty() {
        return Err("a bundle without a readable signature".into());
    }
    let chain = match (&material.certificate, &material.x509_certificate_chain) {
        (Some(c), _) => vec![b64(&c.raw_bytes)?],
        (None, Some(chain)) => chain
            .certificates
            .iter()
            .map(|c| b64(&c.raw_bytes))
            .collect::<Result<_, _>>()?,
        (None, None) => Vec::new(),
    };
    if chain.is_empty() {
        return trust
            .keys
            .iter()
            .find(|k| sigs.iter().any(|s| k.verifies(message, s)))
            .map(|k| format!("cosign bundle signed by {}", k.name))
            .ok_or_else(|| "a bundle signed by no trusted key".into());
    }
    let signer = Signer::new(chain)?;
    if !sigs.iter().any(|s| signer.verifies(message, s)) {
        return Err(format!(
            "a bundle whose signature does not verify with its certificate ({})",
            signer.subject()
        ));
    }
    if !trust.cosign_certificates() {
        return Err(format!(
            "a bundle signed by a certificate ({}), and [verify] cosign_roots/cosign_identities trust none",
            signer.subject()
        ));
    }
    signer.chains_to(&trust.cosign_roots, now)?;
    let Some(identity) = trust.cosign_identities.iter().find(|i| i.matches(&signer)) else {
        return Err(format!(
            "a bundle signed by a certificate whose identity is not trusted ({}; SAN {:?}; issuer {:?})",
            signer.subject(),
            signer.alternative_names(),
            signer.fulcio_issuer().unwrap_or_default()
        ));
    };
    Ok(format!(
        "cosign bundle signed by {} (issuer {:?})",
        identity.subject, identity.issuer
    ))
}
