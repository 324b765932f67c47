//! `[fleet]` (SPEC §14): this host's name and wave, and when an earlier wave's results
//! promote a digest; compiled into [`Fleet`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Settings, in_range, invalid};
use crate::fleet::Fleet;
use crate::ledger::LedgerUrl;

/// Waves beyond this are surely a typo.
const MAX_WAVE: u64 = 100;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FleetSettings {
    /// `""`: the host name.
    pub name: String,
    pub wave: u32,
    pub promote_after: u32,
    pub bake_minutes: u64,
    /// `""`, or `s3://BUCKET/PREFIX/`: where this host writes its ledger object (SPEC §17).
    pub ledger: String,
}

impl Default for FleetSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            wave: 1,
            promote_after: 1,
            bake_minutes: 0,
            ledger: String::new(),
        }
    }
}

impl Settings {
    /// `[fleet] ledger`, when set (validated: it parses).
    pub fn ledger(&self) -> Option<LedgerUrl> {
        LedgerUrl::parse(&self.fleet.ledger).ok()
    }

    /// `[fleet]` checked and compiled; an empty name is the host name.
    pub fn fleet(&self) -> Result<Fleet, ConfigError> {
        let f = &self.fleet;
        in_range("fleet.wave", f.wave.into(), 1, MAX_WAVE)?;
        in_range("fleet.promote_after", f.promote_after.into(), 1, 1_000)?;
        in_range("fleet.bake_minutes", f.bake_minutes, 0, 7 * 24 * 60)?;
        let name = f.name.trim();
        if name.len() > 128 || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "fleet.name",
                format!("{name:?} must be at most 128 characters without spaces"),
            ));
        }
        if !f.ledger.is_empty() {
            LedgerUrl::parse(&f.ledger).map_err(|e| invalid("fleet.ledger", e))?;
            if name.contains('/') {
                return Err(invalid(
                    "fleet.name",
                    format!("{name:?} is the ledger object's name: no \"/\" in it"),
                ));
            }
        }
        Ok(Fleet {
            name: if name.is_empty() {
                crate::model::host::host_name()
            } else {
                name.to_owned()
            },
            wave: f.wave,
            promote_after: f.promote_after,
            bake: Duration::from_secs(f.bake_minutes * 60),
        })
    }
}
