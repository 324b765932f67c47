//! The deploy stage (SPEC §6): one sequence for any [`crate::ports::Target`] — a container swap or
//! a Swarm service update — journalled step by step, health-gated, rolled back on failure,
//! recovered after a crash.
//!
//! It is four things, a folder each:
//!
//! - [`sequence`]: the swap sequence — executor, swap, swarm, health, rollback, recovery,
//!   report, hooks.
//! - [`gates`]: the gates in front of it — hold (pauses, policies), waves (fleet), supply
//!   (signature and scan), and their verdicts as values (verdicts).
//! - [`neighbourhood`]: what else a swap touches — dependents, group, order.
//! - [`operator`]: the operator's actions — `rollback`, and [`operator::approve`].

pub mod gates;
pub mod neighbourhood;
pub mod operator;
pub mod sequence;

pub use operator::Rollback;
pub use sequence::executor::{DeployConfig, Done, Executor};
