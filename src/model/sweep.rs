//! What a sweep reports: one row per managed target — what it runs, what its tag names, what
//! the sweep did or why not — and the deploy stage's answer for one target ([`Settled`]).

use serde::Serialize;

use super::Outcome;

/// What the sweep found or did for one container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    UpToDate,
    /// Dry run: would deploy the desired digest.
    WouldDeploy,
    /// The desired digest was rolled back from on this container.
    Blocked,
    /// The tag (or repository) does not exist in ECR.
    NotInEcr,
    /// The archive's key (or bucket) does not exist in S3.
    NotInS3,
    /// Not running: left alone.
    Stopped,
    /// A deploy is needed and refused (a container shares its namespace, or an
    /// interrupted deployment this agent cannot read is pending); the detail says why.
    Refused,
    /// ECR (or S3, for an archive) could not be asked what the tag (or key) holds.
    ResolveFailed,
    /// Held by its policy (`window` outside its window, `manual`); the detail says until when.
    Pending,
    /// Held by `ecr-deployd pause`.
    Paused,
    /// Policy `monitor`: an update is available, never deployed.
    Monitor,
    /// A supply-chain gate (signature, scan) rejected the desired digest; the detail says why.
    Rejected,
    /// A pre-update hook said "not now" (exit 75): nothing stopped, tried again later.
    Deferred,
    /// Fleet wave N > 1: the digest is not promoted by the previous wave yet, or bakes.
    Waiting,
    /// Fleet wave N > 1: an earlier wave rolled the digest back or rejected it.
    Halted,
    Succeeded,
    RolledBack,
    Failed,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::UpToDate => "up to date",
            Action::WouldDeploy => "would deploy",
            Action::Blocked => "blocked",
            Action::NotInEcr => "not in ECR",
            Action::NotInS3 => "not in S3",
            Action::Stopped => "stopped",
            Action::Refused => "refused",
            Action::ResolveFailed => "lookup failed",
            Action::Pending => "pending",
            Action::Paused => "paused",
            Action::Monitor => "update available (monitor)",
            Action::Rejected => "rejected",
            Action::Deferred => "deferred",
            Action::Waiting => "waiting",
            Action::Halted => "halted",
            Action::Succeeded => "deployed",
            Action::RolledBack => "rolled back",
            Action::Failed => "failed",
        }
    }

    /// The `state` of `status --json` (and of the fleet ledger): what the container is
    /// in after this row. A deployment this row made is shown as what it left behind.
    pub fn state(&self) -> &'static str {
        match self {
            Action::UpToDate | Action::Succeeded => "up_to_date",
            Action::WouldDeploy | Action::Failed => "behind",
            Action::Blocked | Action::RolledBack => "blocked",
            Action::NotInEcr => "not_in_ecr",
            Action::NotInS3 => "not_in_s3",
            Action::Stopped => "stopped",
            Action::Refused => "refused",
            Action::Pending => "pending",
            Action::Paused => "paused",
            Action::Monitor => "monitor",
            Action::Rejected => "rejected",
            Action::Deferred => "deferred",
            Action::Waiting => "waiting",
            Action::Halted => "halted",
            Action::ResolveFailed => "unknown",
        }
    }

    /// The container does not run ECR's digest after this row.
    pub fn leaves_behind(&self) -> bool {
        matches!(
            self,
            Action::WouldDeploy
                | Action::Blocked
                | Action::Stopped
                | Action::Refused
                | Action::RolledBack
                | Action::Failed
                | Action::Pending
                | Action::Paused
                | Action::Monitor
                | Action::Rejected
                | Action::Deferred
                | Action::Waiting
                | Action::Halted
        )
    }

    /// A row that makes `sweep` exit 1.
    pub fn is_failure(&self) -> bool {
        matches!(self, Action::RolledBack | Action::Failed)
    }
}

impl From<Outcome> for Action {
    /// The row of a deployment the sweep ran to its end.
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Succeeded => Action::Succeeded,
            Outcome::RolledBack => Action::RolledBack,
            Outcome::Failed => Action::Failed,
            Outcome::Rejected => Action::Rejected,
        }
    }
}

/// One container's line of a sweep.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub image: String,
    pub running_digest: Option<String>,
    /// What the tag names (for an index, the index digest).
    pub desired_digest: Option<String>,
    /// When the tag names an index: its manifest for this host's platform.
    pub platform_digest: Option<String>,
    pub action: Action,
    pub detail: Option<String>,
    /// It runs what ECR names (even when its action says `paused`).
    #[serde(skip)]
    pub current: bool,
    /// A `pending` container of policy `window`: when its window opens (RFC 3339, in the
    /// policy time zone).
    pub pending_until: Option<String>,
}

impl Row {
    /// It does not run what ECR names after this row (a paused container that runs it is not
    /// behind).
    pub fn is_behind(&self) -> bool {
        self.action.leaves_behind() && !self.current
    }
}

/// What the deploy stage did about one target a sweep found behind (a dry run: would do), and
/// why; for a `pending` target of policy `window`, when its window opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    pub action: Action,
    pub detail: Option<String>,
    /// RFC 3339, in the policy's time zone.
    pub pending_until: Option<String>,
}

impl Settled {
    /// `action`, with `detail` when there is one to say.
    pub fn new(action: Action, detail: Option<String>) -> Self {
        Settled {
            action,
            detail,
            pending_until: None,
        }
    }
}
