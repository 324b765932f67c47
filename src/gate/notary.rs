//! Notary Project signatures (`notation sign`, AWS Signer): OCI referrers of artifact type
//! `application/vnd.cncf.notary.signature` whose layer is a JWS envelope
//! (`application/jose+json`, JSON serialisation) or a COSE one (`application/cose`, read by
//! [`super::cose`]); both are read into one form and verified alike.
//!
//! Checked, as the Notary Project's signature specification and trust policy say: the
//! signature by the envelope's first certificate (`x5c`); the chain to `notation_roots`,
//! valid at the time of verification (`notary.x509`) or at the authentic signing time
//! (`notary.x509.signingAuthority`: AWS Signer); the payload's target descriptor (digest,
//! media type and size of this manifest); the expiry, when set; no critical attribute left
//! unread; the signer in `notation_identities`. A timestamp countersignature is not read (the
//! chain must then be valid now). Revocation: a chain that names no CRL or OCSP responder
//! cannot be revoked and passes; one that names CRLs is checked against them (fetched by the
//! adapter; a listed certificate rejects); what cannot be told (a CRL missing or out of date,
//! OCSP only) is `pending`, never a pass. An AWS Signer signature's revocation is AWS
//! Signer's to tell ([`super::aws_signer`]): its answer, asked by the deploy stage, decides.
//! Pure.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use base64::Engine as _;
use rustls_pki_types::SignatureVerificationAlgorithm;
use serde::Deserialize;
use serde_json::{Map, Value};
use webpki::aws_lc_rs as algs;

use super::SupplyVerdict;
use super::aws_signer::{self, Answers, Query};
use super::trust::Trust;
use super::x509::{Revocation, Signer};
use crate::model::reference::Digest;

pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
pub const JWS: &str = "application/jose+json";
pub const COSE: &str = "application/cose";
pub(super) const PAYLOAD_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
const X509: &str = "notary.x509";
const SIGNING_AUTHORITY: &str = "notary.x509.signingAuthority";
const AWS_SIGNER_PLUGIN: &str = "com.amazonaws.signer.notation.plugin";
const AWS_PROFILE_VERSION: &str = "com.amazonaws.signer.signingProfileVersion";
const AWS_ALIAS: &str = "com.amazonaws.signer.signingProfileAlias";
const AWS_JOB: &str = "com.amazonaws.signer.signingJob";
pub(super) const SCHEME: &str = "io.cncf.notary.signingScheme";
pub(super) const EXPIRY: &str = "io.cncf.notary.expiry";
pub(super) const AUTHENTIC_TIME: &str = "io.cncf.notary.authenticSigningTime";
const PLUGIN: &str = "io.cncf.notary.verificationPlugin";
const PLUGIN_MIN: &str = "io.cncf.notary.verificationPluginMinVersion";

/// A signature envelope as stored: its media type and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// What the registry serves under the digest: the payload's descriptor must say the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub media_type: String,
    pub size: u64,
}

#[derive(Deserialize)]
struct Jws {
    payload: String,
    protected: String,
    #[serde(default)]
    header: Unprotected,
    signature: String,
}

#[derive(Default, Deserialize)]
struct Unprotected {
    #[serde(default)]
    x5c: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    target_artifact: Descriptor,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    digest: String,
    media_type: String,
    size: u64,
}

fn b64url(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| format!("not base64url: {e}"))
}

/// An envelope read (JWS or COSE alike): what is signed, by what, with which attributes.
#[derive(Debug, Default)]
pub(super) struct Signed {
    /// The algorithm in JWS's names (`PS256`, `ES384`, …).
    pub alg: String,
    /// The bytes the signature is over, and the signature (ECDSA as `r || s`).
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
    /// DER certificates, the signer's first.
    pub chain: Vec<Vec<u8>>,
    pub content_type: Option<String>,
    /// The protected attributes marked critical.
    pub critical: Vec<String>,
    pub expiry: Option<SystemTime>,
    pub authentic_time: Option<SystemTime>,
    /// The protected string attributes (signing scheme, verification plugin, AWS Signer's).
    pub strings: HashMap<String, String>,
    pub payload: Vec<u8>,
}

/// CRLs by URL: the DER, or why it could not be fetched.
pub type Crls = BTreeMap<String, Result<Vec<u8>, String>>;

/// What was learnt of revocations: the CRLs the certificates name, and AWS Signer's answers.
#[derive(Clone, Copy, Debug)]
pub struct Revocations<'a> {
    pub crls: &'a Crls,
    pub aws_signer: &'a Answers,
}

fn read(env: &Envelope) -> Result<Signed, String> {
    match env.media_type.as_str() {
        JWS => read_jws(&env.bytes),
        COSE => super::cose::read(&env.bytes),
        other => Err(format!("a Notary signature envelope of type {other:?}")),
    }
}

/// The verdict on one Notary envelope for `digest` (served as `target`), with what is
/// known of its revocation.
pub fn check(
    env: &Envelope,
    digest: &Digest,
    target: &Target,
    trust: &Trust,
    revocations: Revocations<'_>,
    now: SystemTime,
) -> SupplyVerdict {
    let proven = match read(env).and_then(|s| prove(&s, digest, target, trust, now)) {
        Ok(p) => p,
        Err(why) => return SupplyVerdict::Rejected(why),
    };
    match &proven.aws_signer {
        Some(query) => aws_signer::verdict(query, revocations.aws_signer, &proven.by),
        None => {
            revocation(&proven, trust, revocations.crls).unwrap_or_else(SupplyVerdict::Rejected)
        }
    }
}

/// The `GetRevocationStatus` request for an AWS Signer envelope that passes every check
/// but its revocation (what the deploy stage asks); `None` for any other.
pub fn aws_signer_query(
    env: &Envelope,
    digest: &Digest,
    target: &Target,
    trust: &Trust,
    now: SystemTime,
) -> Option<Query> {
    read(env)
        .and_then(|s| prove(&s, digest, target, trust, now))
        .ok()?
        .aws_signer
}

/// The CRLs (http or https) the envelope's certificates name: what the adapter fetches.
pub fn crl_urls(env: &Envelope) -> Vec<String> {
    read(env)
        .and_then(|s| Signer::new(s.chain))
        .map(|s| s.crl_urls())
        .unwrap_or_default()
}

fn read_jws(bytes: &[u8]) -> Result<Signed, String> {
    let jws: Jws = serde_json::from_slice(bytes)
        .map_err(|e| format!("a Notary JWS envelope that is not JSON: {e}"))?;
    let header: Map<String, Value> = serde_json::from_slice(&b64url(&jws.protected)?)
        .map_err(|e| format!("a Notary JWS header that is not JSON: {e}"))?;
    let text = |k: &str| header.get(k).and_then(Value::as_str).map(str::to_owned);
    let chain = jws
        .header
        .x5c
        .iter()
        .map(|c| base64::engine::general_purpose::STANDARD.decode(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("a Notary certificate that is not base64: {e}"))?;
    let time_of = |k: &str| text(k).map(|t| time(&t)).transpose();
    Ok(Signed {
        alg: text("alg").unwrap_or_default(),
        message: format!("{}.{}", jws.protected, jws.payload).into_bytes(),
        signature: b64url(&jws.signature)?,
        chain,
        content_type: text("cty"),
        critical: header
            .get("crit")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| c.as_str().unwrap_or("?").to_owned())
            .collect(),
        expiry: time_of(EXPIRY).map_err(|e| format!("expiry {e}"))?,
        authentic_time: time_of(AUTHENTIC_TIME)
            .map_err(|e| format!("authentic signing time {e}"))?,
        strings: header
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect(),
        payload: b64url(&jws.payload)?,
    })
}

/// What an envelope proves before its revocation is looked at.
struct Proven {
    signer: Signer,
    /// The trusted identity it is by.
    by: String,
    /// When its chain is checked: now, or the authentic signing time.
    at: SystemTime,
    /// For an AWS Signer signature: what AWS Signer is asked about it.
    aws_signer: Option<Query>,
}

/// Every check but revocation: the signature, its chain, the payload, the identity.
fn prove(
    signed: &Signed,
    digest: &Digest,
    target: &Target,
    trust: &Trust,
    now: SystemTime,
) -> Result<Proven, String> {
    let text = |k: &str| signed.strings.get(k).map(String::as_str);
    let signer = Signer::new(signed.chain.clone())?;
    let alg = jws_alg(&signed.alg)?;
    let signature = ecdsa_to_der(&signed.alg, signed.signature.clone());
    if !signer.verifies_with(&[alg], &signed.message, &signature) {
        return Err(format!(
            "a Notary signature that does not verify with its certificate ({})",
            signer.subject()
        ));
    }
    let who = signer.subject();
    if signed.content_type.as_deref() != Some(PAYLOAD_TYPE) {
        return Err(format!(
            "a Notary signature by {who} of content type {:?}",
            signed.content_type
        ));
    }
    let scheme = text(SCHEME).unwrap_or_default();
    let aws = text(PLUGIN) == Some(AWS_SIGNER_PLUGIN);
    unread_critical(&signed.critical, aws)
        .map_err(|e| format!("a Notary signature by {who}: {e}"))?;
    let at = match scheme {
        X509 if !aws => now,
        SIGNING_AUTHORITY => signed.authentic_time.ok_or_else(|| {
            format!("a Notary signature by {who} without its authentic signing time")
        })?,
        other => return Err(format!("a Notary signature by {who} of scheme {other:?}")),
    };
    if let Some(p) = text(PLUGIN).filter(|_| !aws) {
        return Err(format!(
            "a Notary signature by {who} that needs the verification plugin {p:?}"
        ));
    }
    signer
        .chains_to(&trust.notation_roots, at)
        .map_err(|e| format!("a Notary signature: {e}"))?;
    check_payload(signed, digest, target, now, &who)?;
    let profile = text(AWS_PROFILE_VERSION).filter(|_| aws);
    let Some(identity) = trust.notation_identities.iter().find(|i| {
        i.matches_subject(&signer)
            || profile.is_some_and(|p| i.matches_aws_signer(p, text(AWS_ALIAS)))
    }) else {
        return Err(format!(
            "a Notary signature by {who}{} that is not in notation_identities",
            profile
                .map(|p| format!(" (AWS Signer {p})"))
                .unwrap_or_default()
        ));
    };
    let by = identity.shown().to_owned();
    let aws_signer = match aws {
        true => Some(aws_query(signed, at, &by)?),
        false => None,
    };
    Ok(Proven {
        signer,
        by,
        at,
        aws_signer,
    })
}

/// The payload names this digest as the registry serves it, and has not expired.
fn check_payload(
    signed: &Signed,
    digest: &Digest,
    target: &Target,
    now: SystemTime,
    who: &str,
) -> Result<(), String> {
    let payload: Payload = serde_json::from_slice(&signed.payload)
        .map_err(|e| format!("a Notary payload by {who} that is not one: {e}"))?;
    let t = payload.target_artifact;
    if t.digest != digest.as_str() {
        return Err(format!(
            "a Notary signature by {who} for another digest ({})",
            t.digest
        ));
    }
    if t.media_type != target.media_type || t.size != target.size {
        return Err(format!(
            "a Notary signature by {who} for {} of {} bytes, but the registry serves {} of {} bytes",
            t.media_type, t.size, target.media_type, target.size
        ));
    }
    if let Some(expiry) = signed.expiry.filter(|e| *e < now) {
        return Err(format!(
            "a Notary signature by {who} that expired at {}",
            jiff::Timestamp::try_from(expiry).map_or_else(|_| "?".into(), |t| t.to_string())
        ));
    }
    Ok(())
}

/// The revocation request of an AWS Signer signature signed at `at`: it must name its
/// signing profile version and job (AWS Signer's notation plugin refuses one without).
fn aws_query(signed: &Signed, at: SystemTime, by: &str) -> Result<Query, String> {
    let attribute = |k: &str| {
        signed.strings.get(k).ok_or_else(|| {
            format!("an AWS Signer signature by {by} without its attribute {k}: its revocation cannot be asked")
        })
    };
    let profile = attribute(AWS_PROFILE_VERSION)?;
    let job = attribute(AWS_JOB)?;
    Query::new(at, profile, job, &signed.chain)
        .map_err(|e| format!("an AWS Signer signature by {by}: {e}"))
}

/// The revocation check: none needed for a chain that names no CRL or OCSP responder; else
/// every CRL named, fetched and current, must list none of the chain. What cannot be told
/// (OCSP only, a CRL not fetched, out of date) is `pending`; a revoked certificate rejects.
fn revocation(proven: &Proven, trust: &Trust, crls: &Crls) -> Result<SupplyVerdict, String> {
    let (signer, at, by) = (&proven.signer, proven.at, proven.by.as_str());
    let sources = signer.revocation_sources();
    if sources.is_empty() {
        return Ok(SupplyVerdict::Accepted(format!("Notary signature by {by}")));
    }
    let urls = signer.crl_urls();
    let pending = |why: String| {
        Ok(SupplyVerdict::Pending(format!(
            "a Notary signature by {by}: {why}"
        )))
    };
    if urls.is_empty() {
        return pending(format!(
            "the revocation of its certificates cannot be checked here ({})",
            sources.join(", ")
        ));
    }
    let mut ders = Vec::new();
    for url in &urls {
        match crls.get(url) {
            Some(Ok(der)) => ders.push(der.clone()),
            Some(Err(e)) => return pending(format!("its CRL {url} could not be read: {e}")),
            None => return pending(format!("its CRL {url} was not fetched")),
        }
    }
    match signer.not_revoked(&trust.notation_roots, at, &ders) {
        Ok(()) => Ok(SupplyVerdict::Accepted(format!(
            "Notary signature by {by} (not revoked: {})",
            urls.join(", ")
        ))),
        Err(Revocation::Revoked(why)) => Err(format!("a Notary signature by {by}: {why}")),
        Err(Revocation::Unknown(why)) => pending(why),
    }
}

/// The critical attributes named must all be ones this gate reads.
fn unread_critical(crit: &[String], aws: bool) -> Result<(), String> {
    for name in crit {
        let name = name.as_str();
        let known = [SCHEME, EXPIRY, AUTHENTIC_TIME, PLUGIN, PLUGIN_MIN].contains(&name)
            || (aws && [AWS_PROFILE_VERSION, AWS_JOB, AWS_ALIAS].contains(&name));
        if !known {
            return Err(format!("critical attribute {name:?} is not understood"));
        }
    }
    if !crit.iter().any(|n| n == SCHEME) {
        return Err("the signing scheme is not marked critical".into());
    }
    Ok(())
}

fn time(s: &str) -> Result<SystemTime, String> {
    s.parse::<jiff::Timestamp>()
        .map(SystemTime::from)
        .map_err(|e| format!("{s:?}: {e}"))
}

/// The verification algorithm a JWS `alg` names (RSASSA-PSS or ECDSA, as Notary allows).
fn jws_alg(alg: &str) -> Result<&'static dyn SignatureVerificationAlgorithm, String> {
    Ok(match alg {
        "PS256" => algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        "PS384" => algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        "PS512" => algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        "ES256" => algs::ECDSA_P256_SHA256,
        "ES384" => algs::ECDSA_P384_SHA384,
        "ES512" => algs::ECDSA_P521_SHA512,
        other => return Err(format!("a Notary signature with algorithm {other:?}")),
    })
}

/// JWS and COSE carry ECDSA signatures as `r || s`; webpki reads ASN.1 DER.
pub fn ecdsa_to_der(alg: &str, sig: Vec<u8>) -> Vec<u8> {
    if !alg.starts_with("ES") || sig.is_empty() || !sig.len().is_multiple_of(2) {
        return sig;
    }
    let (r, s) = sig.split_at(sig.len() / 2);
    let int = |x: &[u8]| {
        let x = &x[x.iter().take_while(|b| **b == 0).count().min(x.len() - 1)..];
        let mut out = vec![0x02];
        let pad = x[0] & 0x80 != 0;
        der_len(&mut out, x.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(x);
        out
    };
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30];
    der_len(&mut out, body.len());
    out.extend(body);
    out
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.extend([0x81, len as u8]);
    }
}
