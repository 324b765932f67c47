//! The swap sequence: one sequence for any [`crate::ports::Target`] — a container swap or a Swarm
//! service update — journalled step by step, health-gated, rolled back on failure, recovered
//! after a crash.
//!
//! - [`executor`]: locks, the deploy slots, the common sequence (re-check under the lock,
//!   up to date? blocked/rejected? held? refused? gates? → begin → carry out → record →
//!   report).
//! - [`swap`]: pull, create the successor beside the old container, stop, swap names, start.
//! - [`hooks`]: the swap's pre-update / post-update commands in the containers (SPEC §12),
//!   a pure verdict on how they ended.
//! - [`swarm`]: one service update, followed to its end.
//! - [`health`]: the health gate: a pure verdict over what was observed, and its poll loop.
//! - [`rollback`]: put the old container back, exactly one per name, and block the digest.
//! - [`recovery`]: a pure plan from a journalled step to an action, and its execution.
//! - [`report`]: the deployment's log line, metrics and notice.

pub mod executor;
pub mod health;
pub mod hooks;
pub mod recovery;
pub mod report;
pub mod rollback;
pub mod swap;
pub mod swarm;
