//! `[archives]` (SPEC §13): what an S3 archive must be before it is downloaded.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Settings, invalid};

/// The largest `max_bytes` (a TOML integer is signed).
const MAX_MAX_BYTES: u64 = i64::MAX as u64;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveSettings {
    /// Objects larger than this (per HeadObject) are refused before anything is downloaded.
    pub max_bytes: u64,
    /// Objects with neither a full-object SHA-256 nor `sha256` user metadata are refused.
    pub require_checksum: bool,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        Self {
            max_bytes: 4 * 1024 * 1024 * 1024,
            require_checksum: false,
        }
    }
}

impl Settings {
    /// `[archives]` checked.
    pub(super) fn validate_archives(&self) -> Result<(), ConfigError> {
        let max = self.archives.max_bytes;
        if max == 0 || max > MAX_MAX_BYTES {
            return Err(invalid(
                "archives.max_bytes",
                format!("{max} is out of range 1..={MAX_MAX_BYTES}"),
            ));
        }
        Ok(())
    }
}
