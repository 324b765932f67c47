//! What a deploy is about: a standalone container or a Swarm service, behind one interface
//! so that both go through the same sequence and the same sweep.

use super::{Managed, ManagedService};
use crate::model::labels::{GateLabels, PolicyLabels};
use crate::model::reference::{Digest, ImageRef};

/// Journal rows of service updates name the service as `service:<id>` in place of an old
/// container id: recovery leaves those to Swarm.
pub const SERVICE_JOURNAL_PREFIX: &str = "service:";

/// A container or a service that opted in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Container(Managed),
    Service(ManagedService),
}

impl Target {
    pub fn name(&self) -> &str {
        match self {
            Target::Container(c) => &c.name,
            Target::Service(s) => &s.name,
        }
    }

    /// `container` or `service`, as logs and notices say it.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Container(_) => "container",
            Target::Service(_) => "service",
        }
    }

    pub fn follows(&self) -> &ImageRef {
        match self {
            Target::Container(c) => &c.follows,
            Target::Service(s) => &s.follows,
        }
    }

    /// Every digest of what runs now; the first is shown and recorded as "from".
    pub fn digests(&self) -> &[Digest] {
        match self {
            Target::Container(c) => &c.digests,
            Target::Service(s) => &s.digests,
        }
    }

    /// Its policy labels.
    pub fn policy(&self) -> &PolicyLabels {
        match self {
            Target::Container(c) => &c.policy,
            Target::Service(s) => &s.policy,
        }
    }

    /// Its gate labels.
    pub fn gate_labels(&self) -> &GateLabels {
        match self {
            Target::Container(c) => &c.gates,
            Target::Service(s) => &s.gates,
        }
    }

    /// Whether it runs at all. A service's tasks are Swarm's to keep running.
    pub fn running_now(&self) -> bool {
        match self {
            Target::Container(c) => c.running_now,
            Target::Service(_) => true,
        }
    }

    /// The key of its lock: one deploy of a target at a time.
    pub fn lock_key(&self) -> String {
        format!("{}:{}", self.kind(), self.name())
    }

    /// The key its blocked digests and history rows are kept under (its name, as operators
    /// pass it to `history` and `rollback`).
    pub fn block_key(&self) -> &str {
        self.name()
    }

    /// What the journal records as the "old" side: the container id, or `service:<id>`.
    pub fn journal_old_id(&self) -> String {
        match self {
            Target::Container(c) => c.id.clone(),
            Target::Service(s) => format!("{SERVICE_JOURNAL_PREFIX}{}", s.id),
        }
    }
}
