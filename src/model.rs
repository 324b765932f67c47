//! Domain values of a deployment shared by the deploy stage, the state store, the
//! notifications and the operator commands: how it ended, where a swap stands, how long each
//! phase took.

pub mod labels;

use serde::Serialize;

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
