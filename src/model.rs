//! The leaf of the crate: domain values every stage may name, importing nothing of the crate
//! (`tests/layering.rs` holds it to that). Here: how a deployment ended, where a swap stands,
//! how long each phase took, the names the result events and held notices carry; in
//! [`reference`] the digest, repository, tag and image reference; in [`labels`] every
//! `ecr-deployd.*` label and its parsing; in [`error`] the shared shape of a failed remote
//! call; in [`object`] what S3 says an object is; in [`host`] the host's name; in [`trigger`]
//! why a deploy was asked for and what that decides; in [`sweep`] a sweep's rows and what it
//! did about each target.

pub mod error;
pub mod host;
pub mod labels;
pub mod object;
pub mod reference;
pub mod sweep;
pub mod trigger;

pub use trigger::Trigger;

use serde::Serialize;

/// `source` of the deployment result events (put by the notifier, read back as fleet results).
pub const EVENT_SOURCE: &str = "ecr-deployd";
/// `detail-type` of the deployment result events.
pub const EVENT_DETAIL_TYPE: &str = "ECR Deployment Result";
/// The state of a held notice for a refused deploy (a gate's, or an S3 archive's).
pub const HELD_REFUSED: &str = "refused";

/// The steps of a swap, in order. Stored as text so the journal is readable with `sqlite3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Pulling,
    /// The new container is being created under a temporary name; the old one still runs.
    Creating,
    Stopping,
    Renaming,
    Starting,
    HealthGate,
    Committing,
    RollingBack,
    Done,
}

impl Step {
    /// Every step, in journal order.
    pub const ALL: [Step; 9] = [
        Step::Pulling,
        Step::Creating,
        Step::Stopping,
        Step::Renaming,
        Step::Starting,
        Step::HealthGate,
        Step::Committing,
        Step::RollingBack,
        Step::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Pulling => "pulling",
            Step::Stopping => "stopping",
            Step::Renaming => "renaming",
            Step::Creating => "creating",
            Step::Starting => "starting",
            Step::HealthGate => "health_gate",
            Step::Committing => "committing",
            Step::RollingBack => "rolling_back",
            Step::Done => "done",
        }
    }

    /// `None` for a step this agent does not know: never read as "done".
    pub fn parse(s: &str) -> Option<Step> {
        Some(match s {
            "pulling" => Step::Pulling,
            "creating" => Step::Creating,
            "stopping" => Step::Stopping,
            "renaming" => Step::Renaming,
            "starting" => Step::Starting,
            "health_gate" => Step::HealthGate,
            "committing" => Step::Committing,
            "rolling_back" => Step::RollingBack,
            "done" => Step::Done,
            _ => return None,
        })
    }
}

/// How a deployment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    RolledBack,
    Failed,
    /// A supply-chain gate refused the digest before anything was pulled (SPEC §11).
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
            Outcome::Rejected => "rejected",
        }
    }

    /// As a person reads it: `rolled back`.
    pub fn in_words(self) -> String {
        self.as_str().replace('_', " ")
    }

    /// An earlier wave's result with this outcome halts the digest for later waves
    /// (SPEC §14): the image was rolled back or refused there.
    pub fn halts_later_waves(self) -> bool {
        matches!(self, Outcome::RolledBack | Outcome::Rejected)
    }

    /// A person should hear of it (the e-mail notifier sends only these): the update did
    /// not happen.
    pub fn needs_attention(self) -> bool {
        self != Outcome::Succeeded
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "succeeded" => Some(Outcome::Succeeded),
            "rolled_back" => Some(Outcome::RolledBack),
            "failed" => Some(Outcome::Failed),
            "rejected" => Some(Outcome::Rejected),
            _ => None,
        }
    }
}

/// Milliseconds spent in each phase of a deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Phases {
    pub resolve_ms: i64,
    pub pull_ms: i64,
    pub stop_ms: i64,
    pub swap_ms: i64,
    pub health_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_reads_back_as_itself_and_an_unknown_step_is_not_done() {
        for step in Step::ALL {
            assert_eq!(Step::parse(step.as_str()), Some(step));
        }
        assert_eq!(Step::parse("verifying_signature"), None);
        assert_eq!(Step::parse(""), None);
        assert_eq!(Step::parse("DONE"), None);
    }
}
