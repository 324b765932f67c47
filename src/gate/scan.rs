//! The scan gate: ECR's finding counts (basic or enhanced scanning) against a maximum
//! severity; a scan still running, or one that scan-on-push will start, is waited for up to
//! `wait_seconds`; no scan coming is decided by `on_missing`. Pure.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::SupplyVerdict;

/// ECR finding severities, lowest first (`UNDEFINED` and `INFORMATIONAL` never reject).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Undefined,
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// A severity as ECR names it in `findingSeverityCounts`.
    pub fn from_ecr(s: &str) -> Option<Severity> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "CRITICAL" => Severity::Critical,
            "HIGH" => Severity::High,
            "MEDIUM" => Severity::Medium,
            "LOW" => Severity::Low,
            "INFORMATIONAL" => Severity::Informational,
            "UNDEFINED" => Severity::Undefined,
            _ => return None,
        })
    }
}

/// A gate level: CRITICAL, HIGH, MEDIUM or LOW (any case).
impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match Severity::from_ecr(s) {
            Some(l) if l >= Severity::Low => Ok(l),
            _ => Err(format!(
                "{s:?} is not a severity to gate on (CRITICAL, HIGH, MEDIUM or LOW)"
            )),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Critical => "CRITICAL",
            Severity::High => "HIGH",
            Severity::Medium => "MEDIUM",
            Severity::Low => "LOW",
            Severity::Informational => "INFORMATIONAL",
            Severity::Undefined => "UNDEFINED",
        })
    }
}

/// `[scan] on_missing`: what no scan result (and none coming) means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnMissing {
    #[default]
    Block,
    Allow,
}

impl FromStr for OnMissing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "block" => Ok(OnMissing::Block),
            "allow" => Ok(OnMissing::Allow),
            _ => Err(format!("{s:?}: expected block or allow")),
        }
    }
}

/// The scan gate for one container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanRule {
    /// A finding at or above this rejects.
    pub max: Severity,
    pub wait: Duration,
    pub on_missing: OnMissing,
}

/// What ECR says about a digest's scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanFacts {
    /// Finished: the count of findings per severity (as ECR names them).
    Complete(BTreeMap<String, u64>),
    /// Started and not finished.
    InProgress,
    /// Finished without a result (`FAILED`, `UNSUPPORTED_IMAGE`, …): its status and why.
    Unavailable(String),
    /// No scan at all; `scan_on_push`: the repository will start one.
    Missing { scan_on_push: bool },
    /// No scan yet, and whether one is coming cannot be read (another account's registry,
    /// whose scanning configuration only its owner can ask): waited for, then `on_missing`.
    MissingUnasked(String),
}

/// The counts as the operator reads them: `2 CRITICAL, 1 HIGH`, worst first.
pub fn show_counts(counts: &BTreeMap<String, u64>) -> String {
    let mut known: Vec<(Option<Severity>, &String, u64)> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| (Severity::from_ecr(s), s, *n))
        .collect();
    known.sort_by_key(|k| std::cmp::Reverse(k.0));
    if known.is_empty() {
        return "no findings".into();
    }
    known
        .iter()
        .map(|(_, s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ScanRule {
    /// The verdict on `facts`, `waited` after the digest was first seen waiting.
    pub fn verdict(&self, facts: &ScanFacts, waited: Duration) -> SupplyVerdict {
        let limit = format!("limit {}", self.max);
        match facts {
            ScanFacts::Complete(counts) => {
                let worst = counts
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .filter_map(|(s, _)| Severity::from_ecr(s))
                    .max();
                let shown = show_counts(counts);
                match worst {
                    Some(w) if w >= self.max => {
                        SupplyVerdict::Rejected(format!("scan found {shown} ({limit})"))
                    }
                    _ => SupplyVerdict::Accepted(format!("scan: {shown} ({limit})")),
                }
            }
            ScanFacts::InProgress => self.wait_or_reject("scan in progress", waited),
            ScanFacts::Missing { scan_on_push: true } => {
                self.wait_or_reject("no scan result yet (the repository scans on push)", waited)
            }
            ScanFacts::Missing {
                scan_on_push: false,
            } => self.missing("no scan result, and the repository does not scan on push"),
            ScanFacts::Unavailable(why) => self.missing(&format!("no scan result: {why}")),
            ScanFacts::MissingUnasked(why) if waited < self.wait => {
                let left = (self.wait - waited).as_secs();
                SupplyVerdict::Pending(format!(
                    "no scan result yet ({why}); waiting up to {left} s more"
                ))
            }
            ScanFacts::MissingUnasked(why) => self.missing(&format!(
                "no scan result ({why}) after {} s ([scan] wait_seconds)",
                self.wait.as_secs()
            )),
        }
    }

    fn wait_or_reject(&self, what: &str, waited: Duration) -> SupplyVerdict {
        if waited < self.wait {
            let left = self.wait - waited;
            SupplyVerdict::Pending(format!("{what}; waiting up to {} s more", left.as_secs()))
        } else {
            SupplyVerdict::Rejected(format!(
                "{what} after {} s ([scan] wait_seconds)",
                self.wait.as_secs()
            ))
        }
    }

    fn missing(&self, what: &str) -> SupplyVerdict {
        match self.on_missing {
            OnMissing::Block => {
                SupplyVerdict::Rejected(format!("{what} ([scan] on_missing = block)"))
            }
            OnMissing::Allow => {
                SupplyVerdict::Accepted(format!("{what} ([scan] on_missing = allow)"))
            }
        }
    }
}
