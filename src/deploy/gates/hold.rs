//! The update-control gate (SPEC §10), after "up to date?" and "blocked?": a pause or the
//! container's policy may hold a deploy that events, sweeps and window openings ask for.
//! Operator commands (`approve`, `rollback`) are not held by the policy.
//!
//! A hold is recorded per container and digest before the request is answered, so the
//! message that announced it may be deleted, and the operator is told once per digest.

use jiff::Timestamp;
use tracing::info;

use super::verdicts::{Gate, Held};
use crate::control::policy::PolicyVerdict;
use crate::deploy::sequence::executor::Executor;
use crate::event::Digest;
use crate::image::Desired;
use crate::notify::{HeldNotice, Notice};
use crate::ports::{Credentials, Runtime, Target};
use crate::store::{ALL, StoreError};

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// The gate for `t` at `now` (nothing recorded).
    pub(in crate::deploy) fn gate(&self, t: &Target, now: Timestamp) -> Result<Gate, StoreError> {
        if let Some(p) = self.store.paused(t.block_key())? {
            let detail = match (p.container == ALL, p.reason.as_str()) {
                (false, r) => r.to_owned(),
                (true, "") => "pause --all".to_owned(),
                (true, r) => format!("pause --all: {r}"),
            };
            return Ok(Gate::Held(Held::Paused(detail)));
        }
        Ok(match self.cfg.policies.verdict(t.policy(), now) {
            PolicyVerdict::Deploy => Gate::Go,
            PolicyVerdict::Monitor => Gate::Held(Held::Monitor),
            PolicyVerdict::Pending { reason, .. } => Gate::Held(Held::Pending(reason)),
            PolicyVerdict::Invalid(why) => Gate::Invalid(why),
        })
    }

    /// Records `held` for `t` and `desired`, and tells the operator when it is news.
    pub(in crate::deploy) fn record_hold(
        &self,
        t: &Target,
        desired: &Desired,
        held: &Held,
    ) -> Result<(), StoreError> {
        let digest = &desired.digest;
        if matches!(held, Held::Paused(_) | Held::Waiting(_)) {
            // Said in the log and status only: a wave's wait is the normal course of things.
            info!(name = %t.name(), digest = %digest.short(), state = held.state(), detail = %held.detail(), "not deploying now");
            return Ok(());
        }
        let news = self
            .store
            .hold(t.block_key(), held.state(), digest.as_str())?;
        info!(name = %t.name(), digest = %digest.short(), state = held.state(), detail = %held.detail(), news, "update held by policy");
        if news {
            self.notify_held(t, digest, held.state(), held.detail());
        }
        Ok(())
    }

    /// Records that a deploy of `desired` to `t` was refused (a dependent that did not opt
    /// in, a `depends-on` cycle, a bad hook label): one notice per container and digest.
    pub(in crate::deploy) fn record_refusal(
        &self,
        t: &Target,
        desired: &Desired,
        why: &str,
    ) -> Result<(), StoreError> {
        let digest = &desired.digest;
        if self.store.hold(t.block_key(), REFUSED, digest.as_str())? {
            self.notify_held(t, digest, REFUSED, why.to_owned());
        }
        Ok(())
    }

    fn notify_held(&self, t: &Target, digest: &Digest, state: &'static str, detail: String) {
        let follows = t.follows();
        self.notifier.send(Notice::Held(HeldNotice {
            host: self.notifier.host().to_owned(),
            kind: t.kind(),
            container: t.name().to_owned(),
            repository: follows.repository.as_str().to_owned(),
            tag: follows.tag.as_str().to_owned(),
            running_digest: t.digests().first().map(|d| d.to_string()),
            desired_digest: digest.to_string(),
            state,
            detail,
        }));
    }
}

/// The state of a held notice for a refused deploy.
pub use crate::model::HELD_REFUSED as REFUSED;

#[cfg(test)]
mod tests;
