//! `[verify]` and `[scan]` (SPEC §11): the supply-chain gates, compiled into [`Gates`]
//! (the key files read and parsed here, so that `config check` and start-up name a bad one).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Settings, in_range, invalid};
use crate::gate::x509::Roots;
use crate::gate::{
    CosignIdentity, Gates, NotationIdentity, OnMissing, Severity, Trust, TrustedKey,
};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Verify {
    /// `none` or `signed`.
    pub require: String,
    /// PEM files; a signature by any one of them is accepted.
    pub cosign_public_keys: Vec<PathBuf>,
    /// PEM CA certificates for certificate-bound cosign signatures.
    pub cosign_roots: Vec<PathBuf>,
    /// `{ subject, issuer }` identities of those certificates (exact match).
    pub cosign_identities: Vec<CosignIdentity>,
    /// PEM CA certificates for Notary Project signatures (notation, AWS Signer's root).
    pub notation_roots: Vec<PathBuf>,
    /// `x509.subject: …` or AWS Signer signing profile ARNs.
    pub notation_identities: Vec<String>,
}

impl Default for Verify {
    fn default() -> Self {
        Self {
            require: "none".into(),
            cosign_public_keys: Vec::new(),
            cosign_roots: Vec::new(),
            cosign_identities: Vec::new(),
            notation_roots: Vec::new(),
            notation_identities: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Scan {
    /// `""` (no gate), `CRITICAL`, `HIGH`, `MEDIUM` or `LOW`.
    pub max_severity: String,
    pub wait_seconds: u64,
    /// `block` or `allow`.
    pub on_missing: String,
}

impl Default for Scan {
    fn default() -> Self {
        Self {
            max_severity: String::new(),
            wait_seconds: 600,
            on_missing: "block".into(),
        }
    }
}

impl Settings {
    /// `[verify]` and `[scan]` compiled: the keys read and parsed, the levels checked.
    pub fn gates(&self) -> Result<Gates, ConfigError> {
        let v = &self.verify;
        let require_signed = match v.require.as_str() {
            "none" => false,
            "signed" => true,
            other => {
                return Err(invalid(
                    "verify.require",
                    format!("{other:?}: expected none or signed"),
                ));
            }
        };
        let trust = v.trust()?;
        if require_signed && trust.is_empty() {
            return Err(invalid(
                "verify.require",
                "\"signed\" needs a trusted signer: cosign_public_keys, cosign_roots with cosign_identities, or notation_roots with notation_identities",
            ));
        }
        let s = &self.scan;
        let max_severity = match s.max_severity.trim() {
            "" => None,
            level => Some(
                level
                    .parse::<Severity>()
                    .map_err(|e| invalid("scan.max_severity", e))?,
            ),
        };
        in_range("scan.wait_seconds", s.wait_seconds, 0, 86_400)?;
        let on_missing: OnMissing = s
            .on_missing
            .parse()
            .map_err(|e: String| invalid("scan.on_missing", e))?;
        Ok(Gates {
            trust,
            require_signed,
            max_severity,
            wait: Duration::from_secs(s.wait_seconds),
            on_missing,
        })
    }
}

fn read(key: &str, path: &std::path::Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
}

fn roots(name: &str, paths: &[PathBuf]) -> Result<Roots, ConfigError> {
    let mut roots = Roots::default();
    for (i, path) in paths.iter().enumerate() {
        let key = format!("verify.{name}[{i}]");
        roots
            .add_pem(&path.display().to_string(), &read(&key, path)?)
            .map_err(|e| invalid(&key, e))?;
    }
    Ok(roots)
}

impl Verify {
    /// The trust sources read and parsed; a root without identities (or the reverse) is an
    /// error naming both keys, since it could never accept anything.
    fn trust(&self) -> Result<Trust, ConfigError> {
        let mut keys = Vec::new();
        for (i, path) in self.cosign_public_keys.iter().enumerate() {
            let key = format!("verify.cosign_public_keys[{i}]");
            keys.push(
                TrustedKey::from_pem(&path.display().to_string(), &read(&key, path)?)
                    .map_err(|e| invalid(&key, e))?,
            );
        }
        for (i, id) in self.cosign_identities.iter().enumerate() {
            if id.subject.trim().is_empty() {
                return Err(invalid(
                    &format!("verify.cosign_identities[{i}].subject"),
                    "is empty",
                ));
            }
        }
        let notation_identities = self
            .notation_identities
            .iter()
            .enumerate()
            .map(|(i, s)| {
                NotationIdentity::parse(s)
                    .map_err(|e| invalid(&format!("verify.notation_identities[{i}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let trust = Trust {
            keys,
            cosign_roots: roots("cosign_roots", &self.cosign_roots)?,
            cosign_identities: self.cosign_identities.clone(),
            notation_roots: roots("notation_roots", &self.notation_roots)?,
            notation_identities,
        };
        paired(
            "cosign_roots",
            trust.cosign_roots.is_empty(),
            "cosign_identities",
            trust.cosign_identities.is_empty(),
        )?;
        paired(
            "notation_roots",
            trust.notation_roots.is_empty(),
            "notation_identities",
            trust.notation_identities.is_empty(),
        )?;
        Ok(trust)
    }
}

/// Roots and identities come together: either alone trusts nothing.
fn paired(roots: &str, no_roots: bool, ids: &str, no_ids: bool) -> Result<(), ConfigError> {
    match (no_roots, no_ids) {
        (false, true) => Err(invalid(
            &format!("verify.{ids}"),
            format!(
                "is empty while verify.{roots} is set: name the identities those roots may sign as"
            ),
        )),
        (true, false) => Err(invalid(
            &format!("verify.{roots}"),
            format!(
                "is empty while verify.{ids} is set: name the CA certificates those identities chain to"
            ),
        )),
        _ => Ok(()),
    }
}
