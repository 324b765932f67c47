//! The deploy stage (SPEC §6): one sequence for any [`target::Target`] — a container swap or
//! a Swarm service update — journalled step by step, health-gated, rolled back on failure,
//! recovered after a crash.
//!
//! - [`executor`]: locks, the deploy slots, the common sequence (re-check under the lock,
//!   up to date? blocked/rejected? held? refused? gates? → begin → carry out → record →
//!   report).
//! - [`target`]: a container or a service, with one key for lock, journal and block.
//! - [`swap`]: pull, create the successor beside the old container, stop, swap names, start.
//! - [`health`]: the health gate: a pure verdict over what was observed, and its poll loop.
//! - [`rollback`]: put the old container back, exactly one per name, and block the digest.
//! - [`recovery`]: a pure plan from a journalled step to an action, and its execution.
//! - [`dependents`]: the neighbourhood's say before a swap: dependents that did not opt in,
//!   `depends-on` cycles and unusable hook labels refuse it.
//! - [`group`]: a container and its opted-in dependents swapped and rolled back as one.
//! - [`hooks`]: pre-update / post-update commands run in the containers (SPEC §12).
//! - [`order`]: `depends-on` restart order after a swap (pure) and the restarts.
//! - [`swarm`]: one service update, followed to its end.
//! - [`report`]: the deployment's log line, metrics and notice.
//! - [`hold`]: the update-control gate: pauses and policies (SPEC §10).
//! - [`waves`]: the fleet-wave gate: promoted by the previous wave? baking? halted?
//!   (SPEC §14).
//! - [`gates`]: the supply-chain gates: signature and scan (SPEC §11), before the pull.
//! - [`operator`]: `rollback` by the operator; [`approve`]: `approve` by the operator.

pub mod approve;
pub mod dependents;
pub mod executor;
#[cfg(test)]
pub(crate) mod fakes;
pub mod gates;
pub mod group;
pub mod health;
pub mod hold;
pub mod hooks;
pub mod operator;
pub mod order;
pub mod recovery;
pub mod report;
pub mod rollback;
pub mod swap;
pub mod swarm;
pub mod target;
pub mod waves;

pub use executor::{DeployConfig, Done, Executor};
pub use operator::Rollback;
