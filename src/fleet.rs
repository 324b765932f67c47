//! Fleet waves (SPEC §14): whether a host of wave N > 1 may deploy a digest, from the
//! deployment results of the hosts of earlier waves it has seen. Pure: every question takes
//! the results and the time it is asked at.
//!
//! - **Promoted**: at least `promote_after` distinct hosts of wave N − 1 reported `succeeded`
//!   for the repository:tag and digest; the promotion dates from the moment the last of those
//!   reports was first seen here, and the digest may be deployed `bake` after it.
//! - **Halted**: a host of any earlier wave reported `rolled_back` or `rejected` for the
//!   repository and digest: never deployed here by itself (an operator's `approve` still
//!   can). A newer digest is not affected: it lifts the halt by being promoted.
//!
//! A host counts once however often its result arrives (duplicates, several containers that
//! follow the tag); the first time a result was seen is the one that counts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::model::Outcome;
use crate::model::reference::{Digest, ImageRef};

/// `[fleet]`, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fleet {
    /// This host's name in the fleet (result events carry it; hosts are counted by it).
    pub name: String,
    /// 1: follows ECR pushes. N > 1: follows wave N − 1's results.
    pub wave: u32,
    /// Distinct hosts of wave N − 1 that must have succeeded.
    pub promote_after: u32,
    /// How long after the promotion a digest waits.
    pub bake: Duration,
}

impl Default for Fleet {
    fn default() -> Self {
        Self {
            name: String::new(),
            wave: 1,
            promote_after: 1,
            bake: Duration::ZERO,
        }
    }
}

impl Fleet {
    /// Whether this host waits for an earlier wave.
    pub fn follows_results(&self) -> bool {
        self.wave > 1
    }
}

/// One `ECR Deployment Result` event of a fleet host, as parsed from the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetResult {
    /// The reporting host's fleet name.
    pub host: String,
    pub wave: u32,
    pub container: String,
    pub image: ImageRef,
    pub digest: Digest,
    /// `succeeded`, `rolled_back`, `failed` or `rejected`.
    pub outcome: String,
    pub error: Option<String>,
}

/// A result as kept in the state store: when it was first seen here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Seen {
    pub host: String,
    pub wave: u32,
    pub tag: String,
    pub digest: String,
    pub outcome: String,
    pub error: Option<String>,
    pub seen_ms: i64,
}

impl Seen {
    /// Its outcome, `None` for one this version does not know (kept as it came).
    pub fn outcome(&self) -> Option<Outcome> {
        Outcome::parse(&self.outcome)
    }
}

/// What the fleet says about deploying one digest on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaveVerdict {
    Go,
    /// Fewer than `needed` hosts of the previous wave succeeded; those that did.
    Waiting {
        succeeded: Vec<String>,
        needed: u32,
    },
    /// Promoted; deployable from `until_ms`.
    Baking {
        until_ms: i64,
    },
    /// A host of an earlier wave rolled it back or rejected it.
    Halted {
        host: String,
        wave: u32,
        outcome: String,
        reason: Option<String>,
    },
}

impl WaveVerdict {
    /// The line status, sweep and notices show.
    pub fn explain(&self, fleet: &Fleet, now_ms: i64) -> String {
        match self {
            WaveVerdict::Go => "promoted".into(),
            WaveVerdict::Waiting { succeeded, needed } => format!(
                "waiting for wave {}: {} of {needed} hosts succeeded{}",
                fleet.wave - 1,
                succeeded.len(),
                if succeeded.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", succeeded.join(", "))
                }
            ),
            WaveVerdict::Baking { until_ms } => format!(
                "promoted, baking for {} s more",
                ((until_ms - now_ms).max(0) + 999) / 1000
            ),
            WaveVerdict::Halted {
                host,
                wave,
                outcome,
                reason,
            } => format!(
                "{} on {host} (wave {wave}){}",
                outcome.replace('_', " "),
                reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// What the results say of a digest, before the clock is asked.
enum Standing {
    Halted(WaveVerdict),
    Waiting(WaveVerdict),
    /// Promoted: deployable from this time (the promotion plus the bake).
    Due(i64),
}

/// The verdict for `digest` of `tag` from `seen` (the results of its repository and digest;
/// other digests' results are ignored).
pub fn verdict(fleet: &Fleet, tag: &str, digest: &str, seen: &[Seen], now_ms: i64) -> WaveVerdict {
    if !fleet.follows_results() {
        return WaveVerdict::Go;
    }
    match standing(fleet, tag, digest, seen) {
        Standing::Halted(v) | Standing::Waiting(v) => v,
        Standing::Due(until_ms) if now_ms < until_ms => WaveVerdict::Baking { until_ms },
        Standing::Due(_) => WaveVerdict::Go,
    }
}

/// When `digest` of `tag` becomes (or became) deployable by promotion: the promotion plus
/// the bake time; `None` while it is not promoted, or when it is halted.
pub fn due_ms(fleet: &Fleet, tag: &str, digest: &str, seen: &[Seen]) -> Option<i64> {
    match standing(fleet, tag, digest, seen) {
        Standing::Due(at) => Some(at),
        _ => None,
    }
}

fn standing(fleet: &Fleet, tag: &str, digest: &str, seen: &[Seen]) -> Standing {
    let of_digest = seen.iter().filter(|s| s.digest == digest);
    if let Some(h) = of_digest
        .clone()
        .filter(|s| s.wave < fleet.wave && s.outcome().is_some_and(Outcome::halts_later_waves))
        .min_by_key(|s| s.seen_ms)
    {
        return Standing::Halted(WaveVerdict::Halted {
            host: h.host.clone(),
            wave: h.wave,
            outcome: h.outcome.clone(),
            reason: h.error.clone(),
        });
    }
    let hosts = succeeded_hosts(fleet, of_digest.filter(|s| s.tag == tag));
    let needed = fleet.promote_after.max(1);
    match hosts.get(needed as usize - 1) {
        None => Standing::Waiting(WaveVerdict::Waiting {
            succeeded: hosts.into_iter().map(|(h, _)| h).collect(),
            needed,
        }),
        Some(&(_, promoted_ms)) => Standing::Due(promoted_ms + fleet.bake.as_millis() as i64),
    }
}

/// The distinct hosts of the previous wave that succeeded, in the order first seen.
fn succeeded_hosts<'a>(fleet: &Fleet, seen: impl Iterator<Item = &'a Seen>) -> Vec<(String, i64)> {
    let mut first: BTreeMap<&str, i64> = BTreeMap::new();
    for s in seen.filter(|s| s.wave + 1 == fleet.wave && s.outcome() == Some(Outcome::Succeeded)) {
        let at = first.entry(&s.host).or_insert(s.seen_ms);
        *at = (*at).min(s.seen_ms);
    }
    let mut hosts: Vec<(String, i64)> = first.into_iter().map(|(h, t)| (h.into(), t)).collect();
    hosts.sort_by_key(|&(_, t)| t);
    hosts
}

#[cfg(test)]
mod tests;
