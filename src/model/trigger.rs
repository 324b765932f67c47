//! Why a deploy was asked for, and what that decides: whether the update-control policy and
//! the fleet waves may hold it, whether the supply-chain gates are asked, whether anything
//! changes at all. Stored as text in history (`trigger`), with the same words as always:
//! rows written by earlier releases read back as the same cause.

use std::fmt;

/// The cause of one deploy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// A push event (SQS, or a registry of the site's own) named the tag.
    Event,
    /// The periodic sweep (or the start-up pass) found the tag behind.
    Sweep,
    /// A `window` policy's window opened.
    Window,
    /// An earlier wave's results promoted a digest of the tag (SPEC §14).
    Promotion,
    /// `ecr-deployd approve`: the operator let a held digest through (gated, never held).
    Approve,
    /// `ecr-deployd rollback` to a digest the container ran successfully before: neither
    /// held nor gated (stored as `manual`, as since the first release).
    Rollback,
    /// `rollback --to` a digest the container never ran: gated like `approve`.
    GatedRollback,
    /// `sweep --dry-run`: resolves and reports, changes nothing.
    DryRun,
}

impl Trigger {
    /// Every cause, for tests over all of them.
    pub const ALL: [Trigger; 8] = [
        Trigger::Event,
        Trigger::Sweep,
        Trigger::Window,
        Trigger::Promotion,
        Trigger::Approve,
        Trigger::Rollback,
        Trigger::GatedRollback,
        Trigger::DryRun,
    ];

    /// The word stored in history and shown by `history` and the notices.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Event => "event",
            Trigger::Sweep => "sweep",
            Trigger::Window => "window",
            Trigger::Promotion => "promotion",
            Trigger::Approve => "approve",
            Trigger::Rollback => "manual",
            Trigger::GatedRollback => "rollback",
            Trigger::DryRun => "dry-run",
        }
    }

    /// A stored word read back; `None` for one this agent does not know.
    pub fn parse(s: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether the agent asked for it on its own (SPEC §10): a pause, the container's policy
    /// and the fleet waves may hold it. An operator's command is not held by them.
    pub fn automatic(self) -> bool {
        matches!(
            self,
            Trigger::Event | Trigger::Sweep | Trigger::Window | Trigger::Promotion
        )
    }

    /// Whether the supply-chain gates (signatures, scans) are asked (SPEC §11): always,
    /// except for a rollback to what ran here before, which is not a new digest.
    pub fn gated(self) -> bool {
        self != Trigger::Rollback
    }

    /// Whether the deploy changes anything: a dry run only reports.
    pub fn changes(self) -> bool {
        self != Trigger::DryRun
    }

    /// Whether a follow-up that resolves to the digest just applied may be skipped before
    /// the deployer: a promotion changes what the wave gate decides, so it never is.
    pub fn may_skip_just_applied(self) -> bool {
        self != Trigger::Promotion
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Trigger;

    #[test]
    fn every_trigger_reads_back_as_itself_with_the_words_stored_since_the_first_release() {
        for t in Trigger::ALL {
            assert_eq!(Trigger::parse(t.as_str()), Some(t));
        }
        let stored = [
            "event",
            "sweep",
            "window",
            "promotion",
            "approve",
            "manual",
            "rollback",
            "dry-run",
        ];
        let words: Vec<&str> = Trigger::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(words, stored);
        assert_eq!(Trigger::parse("Manual"), None);
        assert_eq!(Trigger::parse(""), None);
    }

    #[test]
    fn only_the_agents_own_causes_are_held_and_only_a_rollback_to_what_ran_skips_the_gates() {
        let automatic: Vec<Trigger> = Trigger::ALL.into_iter().filter(|t| t.automatic()).collect();
        assert_eq!(
            automatic,
            [
                Trigger::Event,
                Trigger::Sweep,
                Trigger::Window,
                Trigger::Promotion
            ]
        );
        let ungated: Vec<Trigger> = Trigger::ALL.into_iter().filter(|t| !t.gated()).collect();
        assert_eq!(ungated, [Trigger::Rollback]);
        let still: Vec<Trigger> = Trigger::ALL.into_iter().filter(|t| !t.changes()).collect();
        assert_eq!(still, [Trigger::DryRun]);
        assert!(!Trigger::Promotion.may_skip_just_applied());
        assert!(Trigger::Event.may_skip_just_applied());
    }
}
