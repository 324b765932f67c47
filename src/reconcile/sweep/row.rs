//! What a sweep reports: one row per managed target (what it runs, what its tag names, what
//! the sweep did or why not), and the counts the metrics show.

use super::*;

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
    /// The row as the fleet ledger keeps it (its deployments are added by the writer).
    pub fn ledger_entry(&self) -> ContainerLedger {
        let (repository, tag) = crate::ledger::split_image(&self.image);
        ContainerLedger {
            name: self.name.clone(),
            image: self.image.clone(),
            repository,
            tag,
            running_digest: self.running_digest.clone(),
            desired_digest: self.desired_digest.clone(),
            platform_digest: self.platform_digest.clone(),
            state: self.action.state().to_owned(),
            detail: self.detail.clone(),
            ..ContainerLedger::default()
        }
    }
}

/// What the metrics show of a sweep's rows.
pub fn counts(rows: &[Row]) -> SweepCounts {
    let count = |a: Action| rows.iter().filter(|r| r.action == a).count();
    SweepCounts {
        managed: rows.len(),
        behind: rows
            .iter()
            .filter(|r| r.action.leaves_behind() && !r.current)
            .count(),
        pending: count(Action::Pending),
        paused: count(Action::Paused),
    }
}
