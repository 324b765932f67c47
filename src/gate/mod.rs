//! Supply-chain gates (SPEC §11), between resolve and pull: a desired digest must carry a
//! trusted signature and a clean enough ECR scan ([`scan`]) before anything is pulled or
//! stopped. Signatures: the cosign `.sig` tag ([`signature`], its docker-reference against
//! the image's registry and mirror: [`reference`]), cosign 3's Sigstore bundles
//! ([`bundle`]) and Notary Project signatures ([`notary`], JWS or [`cose`]; AWS Signer's
//! revocation: [`aws_signer`]) among the digest's referrers, over
//! the certificates of [`x509`], trusted as [`trust`] says; [`found`] is the verdict over all
//! that was found. Pure verdicts over facts the adapters fetch
//! ([`crate::ports::Supply`]); the executor asks, records and reports (`deploy/gates/supply.rs`).

pub mod aws_signer;
pub mod bundle;
pub mod cose;
pub mod found;
pub mod notary;
pub mod reference;
pub mod scan;
pub mod signature;
pub mod trust;
pub mod x509;

use std::time::Duration;

pub use found::Found;
pub use reference::Place;
pub use scan::{OnMissing, ScanFacts, ScanRule, Severity};
pub use signature::{SignatureLayer, TrustedKey};
pub use trust::{CosignIdentity, NotationIdentity, Trust};

pub use crate::model::labels::{GateLabels, LABEL_SCAN, LABEL_VERIFY};

/// `[verify]` and `[scan]`, compiled.
#[derive(Clone, Debug, Default)]
pub struct Gates {
    /// Whose signatures count.
    pub trust: Trust,
    /// `[verify] require = "signed"`.
    pub require_signed: bool,
    /// `[scan] max_severity` (`None`: no gate unless a label asks for one).
    pub max_severity: Option<Severity>,
    pub wait: Duration,
    pub on_missing: OnMissing,
}

/// The gates one container is subject to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applies {
    pub signed: bool,
    pub scan: Option<ScanRule>,
}

impl Applies {
    pub fn any(&self) -> bool {
        self.signed || self.scan.is_some()
    }
}

/// What a gate says about a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SupplyVerdict {
    /// Passed; the detail says why (which key, which counts).
    Accepted(String),
    /// Not decided yet (a scan in progress or coming): looked at again later.
    Pending(String),
    /// Failed: not pulled, recorded, blocked until something changes.
    Rejected(String),
}

impl Gates {
    /// The gates for a container with these labels, or why its labels are invalid.
    pub fn applying(&self, labels: &GateLabels) -> Result<Applies, String> {
        let signed = labels.inherited_signed
            || match labels.verify.as_deref().map(str::trim) {
                None => self.require_signed,
                Some("signed") => true,
                Some("none") => false,
                Some(other) => {
                    return Err(format!(
                        "label {LABEL_VERIFY}={other:?}: expected signed or none"
                    ));
                }
            };
        if signed && self.trust.is_empty() {
            return Err(format!(
                "a signature is required but [verify] trusts no signer: no cosign_public_keys, no cosign_roots with cosign_identities, no notation_roots with notation_identities ({LABEL_VERIFY} or [verify] require)"
            ));
        }
        let max = match labels.scan.as_deref().map(str::trim) {
            None => self.max_severity,
            Some("" | "none") => None,
            Some(s) => Some(
                s.parse::<Severity>()
                    .map_err(|e| format!("label {LABEL_SCAN}: {e}"))?,
            ),
        };
        // An inherited severity only lowers the limit (an unreadable one is ignored: it is
        // not the operator's).
        let floor = labels
            .inherited_scan
            .as_deref()
            .and_then(|s| s.parse::<Severity>().ok());
        let max = match (max, floor) {
            (Some(m), Some(f)) => Some(m.min(f)),
            (m, f) => m.or(f),
        };
        Ok(Applies {
            signed,
            scan: max.map(|max| ScanRule {
                max,
                wait: self.wait,
                on_missing: self.on_missing,
            }),
        })
    }
}

#[cfg(test)]
mod recorded;
#[cfg(test)]
pub(crate) mod tests;
