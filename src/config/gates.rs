//! `[verify]` and `[scan]` (SPEC §11): the supply-chain gates, compiled into [`Gates`]
//! (the key files read and parsed here, so that `config check` and start-up name a bad one).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Settings, in_range, invalid};
use crate::gate::{Gates, OnMissing, Severity, TrustedKey};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Verify {
    /// `none` or `signed`.
    pub require: String,
    /// PEM files; a signature by any one of them is accepted.
    pub cosign_public_keys: Vec<PathBuf>,
}

impl Default for Verify {
    fn default() -> Self {
        Self {
            require: "none".into(),
            cosign_public_keys: Vec::new(),
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
        let mut keys = Vec::new();
        for (i, path) in v.cosign_public_keys.iter().enumerate() {
            let key = format!("verify.cosign_public_keys[{i}]");
            let pem = std::fs::read_to_string(path)
                .map_err(|e| invalid(&key, format!("cannot read {}: {e}", path.display())))?;
            keys.push(
                TrustedKey::from_pem(&path.display().to_string(), &pem)
                    .map_err(|e| invalid(&key, e))?,
            );
        }
        if require_signed && keys.is_empty() {
            return Err(invalid(
                "verify.cosign_public_keys",
                "require = \"signed\" needs at least one public key",
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
            keys,
            require_signed,
            max_severity,
            wait: Duration::from_secs(s.wait_seconds),
            on_missing,
        })
    }
}
