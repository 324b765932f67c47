//! The deploy stage as the sweep sees it (SPEC §7, §10): the targets on this host and, for
//! each one whose tag names another digest, what the stage did about it — or, in a dry run,
//! would do. The sweep reads no gate, wave or lock of its own: it asks this port.

use std::future::Future;
use std::time::Duration;

use super::{RuntimeError, Target};
use crate::image::{Desired, Match, Platform};
use crate::model::Trigger;
use crate::model::sweep::{Row, Settled};

/// What a sweep asks of the deploy stage.
pub trait Sweeper: Send + Sync + 'static {
    /// Finishes the swaps whose undo could not finish (the Engine failing); how many.
    fn recover_idle(&self) -> impl Future<Output = Result<usize, RuntimeError>> + Send;

    /// Every opted-in container, then every opted-in Swarm service.
    fn targets(&self) -> impl Future<Output = Result<Vec<Target>, RuntimeError>> + Send;

    /// The Engine's platform: which manifest of an index runs here.
    fn platform(&self) -> impl Future<Output = Result<Platform, RuntimeError>> + Send;

    /// What the stage does about `target`, which runs `matched` of `desired` (resolved in
    /// `resolved_in`): deploys it as `trigger`; with [`Trigger::DryRun`] it only says what it
    /// would do. An up-to-date target is `up to date` (or `paused`, when it is).
    fn settle(
        &self,
        target: &Target,
        desired: &Desired,
        matched: &Match,
        trigger: Trigger,
        resolved_in: Duration,
    ) -> impl Future<Output = Settled> + Send;

    /// A periodic pass's rows, kept: the metrics, the fleet ledger, the history's retention.
    fn swept(&self, rows: &[Row]);
}
