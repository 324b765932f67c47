//! `approve` by the operator (SPEC §10): deploy what ECR names now for a container held by
//! its policy (`manual`, `window` outside its window), through the same sequence as any
//! deploy (trigger `approve`, not held by the policy). With a digest, only if the tag still
//! names it — and then a block on that very digest is cleared.

use std::time::Instant;

use super::RollbackError;
use crate::control::policy::Policy;
use crate::deploy::sequence::executor::{Done, Executor};
use crate::event::Digest;
use crate::image::{self, Desired};
use crate::model::Trigger;
use crate::ports::{Credentials, Registry, Runtime};
use crate::store::{Outcome, StoreError};

/// What `approve` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approved {
    pub from: Option<Digest>,
    pub to: Digest,
    /// `None`: it runs that digest already; nothing was deployed.
    pub outcome: Option<Outcome>,
    /// A block on `to` (after a rollback) was cleared.
    pub unblocked: bool,
}

/// Why an approval did nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApproveError {
    #[error(transparent)]
    Target(#[from] RollbackError),
    #[error("{0} is not in ECR: nothing to approve")]
    NotInEcr(String),
    #[error("asking ECR what {0} names failed: {1}")]
    Resolve(String, String),
    #[error(
        "the tag moved: {tag} names {now} now, not {asked}; nothing done (approve again with the new digest, or without --digest)"
    )]
    TagMoved {
        tag: String,
        asked: Digest,
        now: Digest,
    },
    #[error(
        "{name}: {digest} is blocked after a rollback; to deploy it anyway, approve that very digest: ecr-deployd approve {name} --digest {digest}"
    )]
    Blocked { name: String, digest: Digest },
    #[error(
        "{0} has policy monitor: it is never deployed (change its label ecr-deployd.policy to approve updates)"
    )]
    Monitor(String),
    #[error("{0} is {1}; resume it first")]
    Paused(String, String),
    #[error("{0}: {1}")]
    Refused(String, String),
    #[error("{0}: rejected: {1}")]
    Rejected(String, String),
    #[error("{0}")]
    Deploy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// Deploys what ECR names now for `name` (or `digest`, if the tag still names it).
    pub async fn approve<R: Registry>(
        &self,
        registry: &R,
        name: &str,
        digest: Option<Digest>,
    ) -> Result<Approved, ApproveError> {
        let busy = self.find_target(name).await?;
        self.wait_idle(&busy).await;
        let target = self.find_target(name).await?;
        let tag = target.follows().to_string();
        let started = Instant::now();
        let resolved = registry
            .resolve(std::slice::from_ref(target.follows()))
            .await;
        let resolved_in = started.elapsed();
        let desired = match resolved.get(target.follows()).cloned().unwrap_or(Ok(None)) {
            Ok(Some(d)) => d,
            Ok(None) => return Err(ApproveError::NotInEcr(tag)),
            Err(e) => return Err(ApproveError::Resolve(tag, e.to_string())),
        };
        let host = self
            .platform()
            .await
            .map_err(|e| ApproveError::Deploy(e.to_string()))?;
        if let Some(asked) = &digest {
            let names_it = *asked == desired.digest || desired.for_platform(&host) == Some(asked);
            if !names_it {
                return Err(ApproveError::TagMoved {
                    tag,
                    asked: asked.clone(),
                    now: desired.digest,
                });
            }
        }
        self.approvable(&target, &desired, digest.is_some())?;
        let from = target.digests().first().cloned();
        if image::compare(target.digests(), &desired, &host).up_to_date() {
            return Ok(Approved {
                from,
                to: desired.digest,
                outcome: None,
                unblocked: false,
            });
        }
        let unblocked = self.store.is_blocked(name, desired.digest.as_str())?;
        if unblocked {
            self.store.unblock(name, desired.digest.as_str())?;
        }
        let done = self
            .deploy_target(&target, &desired, Trigger::Approve, resolved_in, None)
            .await
            .map_err(|e| ApproveError::Deploy(e.to_string()))?;
        let outcome = match done {
            Done::Finished(o) => Some(o),
            Done::Nothing => None,
            Done::Refused(why) => return Err(ApproveError::Refused(name.to_owned(), why)),
            Done::Held(h) => return Err(ApproveError::Refused(name.to_owned(), h.detail())),
            Done::Rejected(why) => return Err(ApproveError::Rejected(name.to_owned(), why)),
            Done::Deferred(why) => return Err(ApproveError::Refused(name.to_owned(), why)),
        };
        Ok(Approved {
            from,
            to: desired.digest,
            outcome,
            unblocked,
        })
    }

    /// Refuses what an approval must not override: policy monitor, a pause, a block on a
    /// digest the operator did not name, labels that name no policy.
    fn approvable(
        &self,
        target: &crate::ports::Target,
        desired: &Desired,
        named: bool,
    ) -> Result<(), ApproveError> {
        let name = target.name().to_owned();
        match self.cfg.policies.resolve(target.policy()) {
            Ok((Policy::Monitor, _)) => return Err(ApproveError::Monitor(name)),
            Ok(_) => {}
            Err(why) => return Err(ApproveError::Refused(name, why)),
        }
        if let Some(p) = self.store.paused(target.block_key())? {
            let how = if p.reason.is_empty() {
                "paused".to_owned()
            } else {
                format!("paused ({})", p.reason)
            };
            return Err(ApproveError::Paused(name, how));
        }
        if !named
            && self
                .store
                .is_blocked(target.block_key(), desired.digest.as_str())?
        {
            return Err(ApproveError::Blocked {
                name,
                digest: desired.digest.clone(),
            });
        }
        Ok(())
    }
}
