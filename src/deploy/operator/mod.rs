//! The operator's actions, run by the commands: `rollback` (here) and [`approve`].
//!
//! `rollback` by the operator: back to the digest a container or service ran before its
//! current one (or a named digest), through the same sequence as any deploy (trigger
//! `manual`); the digest it left is blocked until a different one is pushed.

pub mod approve;

use std::time::Duration;

use crate::deploy::sequence::executor::{Done, Executor};
use crate::event::Digest;
use crate::image::Desired;
use crate::model::Trigger;
use crate::ports::{Credentials, Runtime, Target};
use crate::store::{Outcome, StoreError};

/// What `rollback` did.
#[derive(Clone, Debug)]
pub struct Rollback {
    pub from: Digest,
    pub to: Digest,
    pub outcome: Outcome,
}

/// Why a rollback could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RollbackError {
    #[error("no managed container or service named {0:?}")]
    NotFound(String),
    #[error(
        "the digest {0} runs is unknown (its image has no RepoDigests); name one with --to DIGEST"
    )]
    RunningUnknown(String),
    #[error("no earlier digest of {0} is recorded; name one with --to DIGEST")]
    NoEarlier(String),
    #[error("{0} already runs {1}")]
    AlreadyRuns(String, Digest),
    #[error(
        "{0} is not running, or changed meanwhile; start it first, or look at `ecr-deployd status`"
    )]
    NotDeployed(String),
    #[error("{0}: {1}")]
    Refused(String, String),
    #[error("{0}")]
    Deploy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// Redeploys `to`, or the digest `name` ran before its current one.
    pub async fn rollback(
        &self,
        name: &str,
        to: Option<Digest>,
    ) -> Result<Rollback, RollbackError> {
        let busy = self.find_target(name).await?;
        self.wait_idle(&busy).await;
        let target = self.find_target(name).await?;
        let current = target.digests();
        let from = current
            .first()
            .cloned()
            .ok_or_else(|| RollbackError::RunningUnknown(name.to_owned()))?;
        let to = match to {
            Some(d) => d,
            None => self.previous_digest(name, current)?,
        };
        if current.contains(&to) {
            return Err(RollbackError::AlreadyRuns(name.to_owned(), to));
        }
        // Only a digest this container ran successfully skips the gates; any other one is
        // checked like an `approve` (an unsigned or CRITICAL image is not run by a rollback).
        let trigger = match self.ran_before(name, &to)? {
            true => Trigger::Rollback,
            false => Trigger::GatedRollback,
        };
        self.store.unblock(name, to.as_str())?;
        let desired = Desired::single(to.clone());
        let done = self
            .deploy_target(&target, &desired, trigger, Duration::ZERO, None)
            .await
            .map_err(|e| RollbackError::Deploy(e.to_string()))?;
        let outcome = match done {
            Done::Finished(o) => o,
            Done::Nothing => return Err(RollbackError::NotDeployed(name.to_owned())),
            Done::Refused(why) => return Err(RollbackError::Refused(name.to_owned(), why)),
            Done::Held(h) => return Err(RollbackError::Refused(name.to_owned(), h.detail())),
            Done::Rejected(why) | Done::Deferred(why) => {
                return Err(RollbackError::Refused(name.to_owned(), why));
            }
        };
        if outcome == Outcome::Succeeded {
            self.store
                .block(name, from.as_str(), "rolled back by the operator")?;
        }
        Ok(Rollback { from, to, outcome })
    }

    pub(in crate::deploy) async fn find_target(&self, name: &str) -> Result<Target, RollbackError> {
        let deploy = |e: crate::ports::RuntimeError| RollbackError::Deploy(e.to_string());
        if let Some(c) = self
            .managed()
            .await
            .map_err(deploy)?
            .into_iter()
            .find(|m| m.name == name)
        {
            return Ok(Target::Container(c));
        }
        self.services()
            .await
            .map_err(deploy)?
            .into_iter()
            .find(|s| s.name == name)
            .map(Target::Service)
            .ok_or_else(|| RollbackError::NotFound(name.to_owned()))
    }

    /// Whether `name` ran `digest` successfully: deployed by the agent and kept, or running
    /// when a later deploy replaced it or rolled back to it.
    fn ran_before(&self, name: &str, digest: &Digest) -> Result<bool, StoreError> {
        let d = digest.as_str();
        Ok(self.store.history(Some(name), 1000)?.iter().any(|row| {
            let deployed = row.outcome == Some(Outcome::Succeeded)
                && (row.to_digest == d || row.platform_digest.as_deref() == Some(d));
            let replaced = matches!(row.outcome, Some(Outcome::Succeeded | Outcome::RolledBack))
                && row.from_digest.as_deref() == Some(d);
            deployed || replaced
        }))
    }

    /// The digest `name` ran before its current one (known under any of `current`).
    fn previous_digest(&self, name: &str, current: &[Digest]) -> Result<Digest, RollbackError> {
        let names_current = |d: &crate::store::Deployment| {
            current.iter().any(|c| {
                d.to_digest == c.as_str() || d.platform_digest.as_deref() == Some(c.as_str())
            })
        };
        self.store
            .history(Some(name), 1000)?
            .iter()
            .find(|d| d.outcome == Some(Outcome::Succeeded) && names_current(d))
            .and_then(|d| d.from_digest.as_deref())
            .and_then(|d| Digest::parse(d).ok())
            .ok_or_else(|| RollbackError::NoEarlier(name.to_owned()))
    }
}
