//! The signatures found for one digest in its repository (SPEC §11), of every kind, and the
//! verdict over all of them: one that passes is enough; else one that waits (a revocation
//! that cannot be checked yet: a CRL, AWS Signer's answer) makes the verdict `pending`; else
//! the reasons of each. Pure.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::SupplyVerdict;
use super::aws_signer::{Answers, Query};
use super::notary::{Envelope, Revocations, Target};
use super::reference::Place;
use super::signature::{SignatureLayer, sig_tag};
use super::trust::Trust;
use super::{bundle, notary, signature};
use crate::model::reference::Digest;

/// Referrers of one digest read at most (more are skipped, and said so).
pub const MAX_REFERRERS: usize = 16;

/// What the registry holds for a digest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Payload layers of the `sha256-<hex>.sig` tag (cosign 2, cosign 3 legacy).
    pub simple: Vec<SignatureLayer>,
    /// Sigstore bundles among the digest's referrers (cosign 3).
    pub bundles: Vec<Vec<u8>>,
    /// Notary Project envelopes among the referrers (notation, AWS Signer).
    pub notary: Vec<Envelope>,
    /// What the registry serves under the digest (read when there are Notary envelopes).
    pub target: Option<Target>,
    /// The CRLs the Notary signatures' certificates name, by URL: the DER, or why it could
    /// not be fetched.
    pub crls: BTreeMap<String, Result<Vec<u8>, String>>,
    /// AWS Signer's answers on the revocation of its signatures (asked by the deploy stage
    /// for those that pass every other check: [`aws_signer_queries`]).
    pub aws_signer: Answers,
    /// Referrers left unread (too many, not a signature): for the reasons.
    pub skipped: Vec<String>,
}

impl Found {
    pub fn is_empty(&self) -> bool {
        self.simple.is_empty() && self.bundles.is_empty() && self.notary.is_empty()
    }
}

/// The verdict on the signatures `found` for `digest` at `place`.
pub fn verdict(
    found: &Found,
    digest: &Digest,
    place: &Place,
    trust: &Trust,
    now: SystemTime,
) -> SupplyVerdict {
    if found.is_empty() {
        let mut why = format!(
            "not signed: no signature of {} in {} ({} tag, referrers)",
            digest.short(),
            place.repository,
            sig_tag(digest)
        );
        if !found.skipped.is_empty() {
            why.push_str(&format!("; skipped: {}", found.skipped.join(", ")));
        }
        return SupplyVerdict::Rejected(why);
    }
    let mut why: Vec<String> = Vec::new();
    let mut pending = None;
    if !found.simple.is_empty() {
        match signature::check(&found.simple, digest, place, &trust.keys) {
            SupplyVerdict::Accepted(who) => return SupplyVerdict::Accepted(who),
            SupplyVerdict::Pending(w) => pending = Some(w),
            SupplyVerdict::Rejected(w) => why.push(
                w.strip_prefix("no trusted signature: ")
                    .map_or(w.clone(), str::to_owned),
            ),
        }
    }
    for b in &found.bundles {
        match bundle::check(b, digest, trust, now) {
            Ok(who) => return SupplyVerdict::Accepted(who),
            Err(w) => why.push(w),
        }
    }
    for env in &found.notary {
        let Some(target) = &found.target else {
            why.push("a Notary signature, and the digest's own descriptor was not read".into());
            continue;
        };
        let revocations = Revocations {
            crls: &found.crls,
            aws_signer: &found.aws_signer,
        };
        match notary::check(env, digest, target, trust, revocations, now) {
            SupplyVerdict::Accepted(who) => return SupplyVerdict::Accepted(who),
            SupplyVerdict::Pending(w) => pending = pending.or(Some(w)),
            SupplyVerdict::Rejected(w) => why.push(w),
        }
    }
    if let Some(w) = pending {
        return SupplyVerdict::Pending(w);
    }
    why.extend(found.skipped.iter().map(|s| format!("skipped {s}")));
    why.dedup();
    SupplyVerdict::Rejected(format!(
        "no trusted signature of {}: {}",
        digest.short(),
        why.join("; ")
    ))
}

/// What AWS Signer is to be asked about the AWS Signer signatures `found` for `digest` that
/// pass every check but their revocation (each request once).
pub fn aws_signer_queries(
    found: &Found,
    digest: &Digest,
    trust: &Trust,
    now: SystemTime,
) -> Vec<Query> {
    let Some(target) = &found.target else {
        return Vec::new();
    };
    let mut out: Vec<Query> = Vec::new();
    for env in &found.notary {
        if let Some(q) = notary::aws_signer_query(env, digest, target, trust, now)
            && !out.contains(&q)
        {
            out.push(q);
        }
    }
    out
}
