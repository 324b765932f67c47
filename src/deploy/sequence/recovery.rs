//! Start-up recovery: every deployment a crash interrupted is finished or undone before
//! anything new is deployed. What to do is a pure function of the journalled step; a step
//! this agent cannot read (a newer agent wrote it, or the row is damaged) is never taken
//! for "done": both containers are left as they are, and the row stays open for `status`,
//! `doctor` and an agent that can read it.

use tracing::{error, instrument, warn};

use super::executor::Executor;
use super::rollback::{Kept, STOP_SETTLE};
use crate::ports::SERVICE_JOURNAL_PREFIX;
use crate::ports::{Credentials, Runtime, RuntimeError};
use crate::store::{Deployment, Outcome, Step};

/// What recovery does for one interrupted deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The old container was not touched: remove a successor made under its temporary name.
    DiscardSuccessor,
    /// Put the old container back; `settle`: a stop may still be under way in the Engine.
    Restore { settle: bool },
    /// The new container passed its health gate: remove the old one.
    FinishCommit,
    /// A Swarm service update: Swarm finishes or rolls it back by itself.
    LeaveToSwarm,
    /// A step this agent does not know: touch nothing, keep the row open.
    LeaveUnknown(String),
}

/// The plan for a journal row at `step` (`None`: unreadable, stored as `step_text`).
pub fn plan(step: Option<Step>, step_text: &str, old_id: &str) -> Plan {
    if old_id.starts_with(SERVICE_JOURNAL_PREFIX) {
        return Plan::LeaveToSwarm;
    }
    match step {
        None => Plan::LeaveUnknown(step_text.to_owned()),
        Some(Step::Pulling | Step::Creating) => Plan::DiscardSuccessor,
        Some(Step::Stopping) => Plan::Restore { settle: true },
        Some(Step::Renaming | Step::Starting | Step::HealthGate | Step::RollingBack) => {
            Plan::Restore { settle: false }
        }
        Some(Step::Committing | Step::Done) => Plan::FinishCommit,
    }
}

/// An interrupted deployment this agent could not read and left alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    pub id: i64,
    pub container: String,
    pub step: String,
}

impl Unreadable {
    /// What `status` and `doctor` say about it.
    pub fn explain(&self) -> String {
        format!(
            "deployment #{} of {} stopped at step {:?}, which this ecr-deployd does not know (written by a newer version?); both containers were left as they are and its deploys are held — run the version that wrote it, or resolve by hand",
            self.id, self.container, self.step
        )
    }
}

fn store_error(operation: &'static str) -> impl Fn(crate::store::StoreError) -> RuntimeError {
    move |e| RuntimeError::permanent(operation, e.to_string())
}

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// Journal rows left open with a step this agent cannot read.
    pub fn unreadable(&self) -> Result<Vec<Unreadable>, crate::store::StoreError> {
        Ok(self
            .store
            .unfinished()?
            .into_iter()
            .filter(|d| d.step.is_none())
            .map(|d| Unreadable {
                id: d.id,
                container: d.container,
                step: d.step_text,
            })
            .collect())
    }

    /// Why `t` may not be deployed: the journal holds a row of it this agent cannot read.
    pub(super) fn stuck(
        &self,
        t: &crate::ports::Target,
    ) -> Result<Option<String>, crate::store::StoreError> {
        let unreadable = self.unreadable()?.into_iter();
        Ok(unreadable
            .filter(|u| u.container == t.block_key())
            .map(|u| u.explain())
            .next())
    }

    /// Finishes or undoes deployments a crash interrupted. Run before any new deploy.
    /// Returns how many were recovered (rows left open as unreadable not counted).
    pub async fn recover(&self) -> Result<usize, RuntimeError> {
        let mut recovered = 0;
        for d in &self.open_rows()? {
            recovered += usize::from(self.recover_row(d).await?);
        }
        Ok(recovered)
    }

    /// As [`recover`](Self::recover), while the agent runs, for the rows no deploy is
    /// working on: a swap whose undo could not put the old container back (the Engine
    /// failing) left its row open; the next sweep finishes it, so nothing stays down.
    pub async fn recover_idle(&self) -> Result<usize, RuntimeError> {
        let mut recovered = 0;
        for d in &self.open_rows()? {
            let kind = match d.old_id.as_deref() {
                Some(old) if old.starts_with(SERVICE_JOURNAL_PREFIX) => "service",
                _ => "container",
            };
            let lock = self.lock_for(format!("{kind}:{}", d.container));
            let Ok(_idle) = lock.try_lock() else { continue };
            // Finished meanwhile by the deploy that held the lock?
            let still_open = self.open_rows()?.iter().any(|o| o.id == d.id);
            if still_open {
                recovered += usize::from(self.recover_row(d).await?);
            }
        }
        Ok(recovered)
    }

    /// The journal's open rows: deployments not finished.
    fn open_rows(&self) -> Result<Vec<Deployment>, RuntimeError> {
        self.store.unfinished().map_err(store_error("read journal"))
    }

    /// Finishes or undoes one open row; false when it is left open (unknown step).
    #[instrument(name = "recover", skip_all, fields(container = %d.container, digest = %d.to_digest.get(7..19).unwrap_or(&d.to_digest), deployment = d.id))]
    async fn recover_row(&self, d: &Deployment) -> Result<bool, RuntimeError> {
        let old_id = d.old_id.clone().unwrap_or_default();
        let planned = plan(d.step, &d.step_text, &old_id);
        let (outcome, note) = match self.carry_out(d, &old_id, planned).await {
            Ok(Some(done)) => done,
            Ok(None) => return Ok(false),
            // Docker unreachable: the caller retries the whole recovery.
            Err(e) if e.transient => return Err(e),
            Err(e) => {
                error!(container = %d.container, deployment = d.id, error = %e, "an interrupted deployment could not be recovered");
                (
                    Outcome::Failed,
                    format!("recovery after a restart failed: {e}"),
                )
            }
        };
        warn!(container = %d.container, to = %d.to_digest, outcome = outcome.as_str(), %note, "recovered an interrupted deployment");
        self.store
            .finish(d.id, outcome, &d.phases, Some(&note))
            .map_err(store_error("record recovery"))?;
        Ok(true)
    }

    /// Carries out `plan` for row `d`; `None` when the row is left open (unknown step).
    async fn carry_out(
        &self,
        d: &Deployment,
        old_id: &str,
        plan: Plan,
    ) -> Result<Option<(Outcome, String)>, RuntimeError> {
        // The dependents swapped with it, as journalled (empty for a lone swap).
        let members = self
            .store
            .members(d.id)
            .map_err(store_error("read journal"))?;
        Ok(Some(match plan {
            Plan::LeaveUnknown(step) => {
                error!(container = %d.container, deployment = d.id, %step, "interrupted deployment at a step this agent does not know; left both containers as they are");
                return Ok(None);
            }
            Plan::LeaveToSwarm => (
                Outcome::Failed,
                "interrupted while Swarm updated the service; Swarm finishes or rolls back the update by itself, the next sweep records where it ended".to_owned(),
            ),
            Plan::DiscardSuccessor => {
                self.discard_members(&members).await?;
                self.remove_successor(&d.container, old_id, d.new_id.as_deref())
                    .await?;
                (
                    Outcome::Failed,
                    "interrupted before the old container was touched".to_owned(),
                )
            }
            Plan::FinishCommit => {
                self.runtime.remove(old_id).await?;
                self.commit_members(&members).await?;
                (
                    Outcome::Succeeded,
                    "commit completed after a restart".to_owned(),
                )
            }
            Plan::Restore { settle } => {
                let kept = self
                    .restore(&d.container, old_id, d.new_id.as_deref(), true)
                    .await?;
                // The old dependents point at the old container: back after it.
                self.restore_members(&members).await?;
                if kept == Kept::New {
                    return Ok(Some((
                        Outcome::Failed,
                        format!(
                            "interrupted at step {}; the old container was gone, so the new one was kept running",
                            d.step_text
                        ),
                    )));
                }
                if settle {
                    // The killed agent's stop request may still be under way in the Engine
                    // and kill the container once its timeout passes: watch it through that
                    // window and start it again if it goes down.
                    let window = self.cfg.stop_timeout + STOP_SETTLE;
                    let running = members.iter().filter(|m| m.was_running);
                    let ids = std::iter::once(old_id).chain(running.map(|m| m.old_id.as_str()));
                    futures::future::try_join_all(ids.map(|id| self.keep_running(id, window)))
                        .await?;
                }
                (
                    Outcome::RolledBack,
                    format!(
                        "interrupted at step {}; the previous container was restored",
                        d.step_text
                    ),
                )
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_has_a_plan_and_an_unknown_step_is_left_alone() {
        let c = "0123abc";
        assert_eq!(
            plan(Some(Step::Pulling), "pulling", c),
            Plan::DiscardSuccessor
        );
        assert_eq!(
            plan(Some(Step::Creating), "creating", c),
            Plan::DiscardSuccessor
        );
        assert_eq!(
            plan(Some(Step::Stopping), "stopping", c),
            Plan::Restore { settle: true }
        );
        for step in [
            Step::Renaming,
            Step::Starting,
            Step::HealthGate,
            Step::RollingBack,
        ] {
            assert_eq!(
                plan(Some(step), step.as_str(), c),
                Plan::Restore { settle: false }
            );
        }
        assert_eq!(
            plan(Some(Step::Committing), "committing", c),
            Plan::FinishCommit
        );
        assert_eq!(
            plan(None, "verifying", c),
            Plan::LeaveUnknown("verifying".into())
        );
        assert_eq!(
            plan(Some(Step::Stopping), "stopping", "service:x1"),
            Plan::LeaveToSwarm
        );
        assert_eq!(plan(None, "whatever", "service:x1"), Plan::LeaveToSwarm);
    }
}
