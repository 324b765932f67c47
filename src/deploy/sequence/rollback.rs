//! Going back to the old container: the new one removed (whatever it is called by now), the
//! old one under its own name and running — exactly one container per name — then the same
//! for each member of its group (its dependents), and the digest blocked for that container
//! until a different one is pushed.

use tracing::{error, instrument, warn};

use std::time::Duration;

use super::executor::{Executor, Failure};
use super::health::HEALTH_POLL;
use crate::event::Digest;
use crate::ports::{Credentials, Managed, NEW_SUFFIX, Runtime, RuntimeError};
use crate::store::{Member, Outcome, Step};

/// Beyond a stop timeout, how long a stop already asked of the Engine may still take.
pub(in crate::deploy) const STOP_SETTLE: Duration = Duration::from_secs(2);

/// Which container a restore left running under the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    Old,
    /// The old container no longer existed: the new one is the only copy left.
    New,
}

/// A swap past the stop of its old container, to be undone.
pub(in crate::deploy) struct Undo<'a> {
    pub id: i64,
    pub c: &'a Managed,
    pub new_id: &'a str,
    pub members: &'a [Member],
    pub desired: &'a Digest,
}

/// Whether what went wrong speaks against the digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::deploy) enum Blame {
    /// The new container failed (start, hook, health): blocked for this container.
    Digest,
    /// The Engine or the store failed: not blocked, tried again later.
    None,
    /// As `None`, and the old container's stop may still be under way in the Engine: it is
    /// watched through that window and started again if it goes down.
    StopWindow,
}

/// How long an undo keeps trying to put the old container back before it leaves the
/// journal row open for the next pass (the sweep, or start-up recovery).
const UNDO_ATTEMPTS: u32 = 5;

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// Removes the new container, puts the old one back (then its group's members) and,
    /// when the digest is to blame, blocks it. Retried in-process; a restore that still
    /// fails leaves the row open (transient): recovery finishes it, nothing stays down
    /// for good.
    #[instrument(name = "rollback", skip_all, fields(container = %u.c.name, digest = %u.desired.short(), deployment = u.id))]
    pub(in crate::deploy) async fn undo(
        &self,
        u: &Undo<'_>,
        reason: String,
        blame: Blame,
    ) -> Failure {
        let (c, desired) = (u.c, u.desired);
        warn!(container = %c.name, digest = %desired.short(), %reason, "rolling back");
        let _ = self.store.step(u.id, Step::RollingBack);
        let mut restored = self.put_back(u).await;
        for attempt in 1..UNDO_ATTEMPTS {
            let Err(e) = &restored else { break };
            warn!(container = %c.name, error = %e, attempt, "could not put the old container back yet; trying again");
            tokio::time::sleep(Duration::from_millis(500) * 2u32.pow(attempt)).await;
            restored = self.put_back(u).await;
        }
        if let (Ok(Kept::Old), Blame::StopWindow) = (&restored, blame) {
            let window = u.c.stop_timeout.unwrap_or(self.cfg.stop_timeout) + STOP_SETTLE;
            if let Err(e) = self.keep_running(&c.id, window).await {
                restored = Err(e);
            }
        }
        if blame == Blame::Digest
            && let Err(e) = self.store.block(&c.name, desired.as_str(), &reason)
        {
            error!(container = %c.name, error = %e, "could not block the digest");
        }
        match restored {
            Ok(Kept::Old) => Failure {
                outcome: Outcome::RolledBack,
                reason,
                transient: false,
                deferred: false,
            },
            Ok(Kept::New) => Failure {
                outcome: Outcome::Failed,
                reason: format!(
                    "{reason}; the old container was gone, so the new one was kept running"
                ),
                transient: false,
                deferred: false,
            },
            // Transient + rolled back: the row stays open for recovery to finish.
            Err(e) => Failure {
                outcome: Outcome::RolledBack,
                transient: true,
                deferred: false,
                reason: format!("{reason}; rollback incomplete: {e}"),
            },
        }
    }

    async fn put_back(&self, u: &Undo<'_>) -> Result<Kept, RuntimeError> {
        let kept = self
            .restore(&u.c.name, &u.c.id, Some(u.new_id), true)
            .await?;
        self.restore_members(u.members).await?;
        Ok(kept)
    }

    /// Starts `id` whenever it is found stopped during `window` (a stop request may still
    /// be under way in the Engine and kill it once its timeout passes).
    pub(in crate::deploy) async fn keep_running(
        &self,
        id: &str,
        window: Duration,
    ) -> Result<(), RuntimeError> {
        let until = tokio::time::Instant::now() + window;
        while tokio::time::Instant::now() < until {
            if let Some(seen) = self.runtime.observe(id).await?
                && !seen.running
            {
                self.runtime.start(id).await?;
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
        Ok(())
    }

    /// Exactly one container called `name`, the old one (`old_id`), running unless `start`
    /// is false (a group member that was stopped before). The new one is removed by its id
    /// when known, and by its temporary name in any case. Only when the old one no longer
    /// exists is the new one kept instead.
    pub(in crate::deploy) async fn restore(
        &self,
        name: &str,
        old_id: &str,
        new_id: Option<&str>,
        start: bool,
    ) -> Result<Kept, RuntimeError> {
        if self.runtime.observe(old_id).await?.is_none() {
            return self.keep_new_instead(name, old_id, new_id, start).await;
        }
        self.remove_successor(name, old_id, new_id).await?;
        // While the old container is parked, whoever holds its name is the new one.
        if let Some(holder) = self.runtime.find(name).await?
            && holder != old_id
        {
            self.runtime.remove(&holder).await?;
        }
        if self.runtime.find(name).await?.as_deref() != Some(old_id) {
            self.runtime.rename(old_id, name).await?;
        }
        if start {
            self.runtime.start(old_id).await?;
        }
        Ok(Kept::Old)
    }

    /// Removes the successor of `old_id`: by its id when known, by its temporary name in any
    /// case (a crash may have come between its creation and the journal write).
    pub(in crate::deploy) async fn remove_successor(
        &self,
        name: &str,
        old_id: &str,
        new_id: Option<&str>,
    ) -> Result<(), RuntimeError> {
        if let Some(new_id) = new_id.filter(|n| *n != old_id) {
            self.runtime.remove(new_id).await?;
        }
        if let Some(temp) = self.runtime.find(&format!("{name}{NEW_SUFFIX}")).await?
            && temp != old_id
        {
            self.runtime.remove(&temp).await?;
        }
        Ok(())
    }

    /// The old container is gone (removed by hand): the new one, if it exists, is the only
    /// copy left and is kept running under the name rather than leaving nothing.
    async fn keep_new_instead(
        &self,
        name: &str,
        old_id: &str,
        new_id: Option<&str>,
        start: bool,
    ) -> Result<Kept, RuntimeError> {
        let temp = self.runtime.find(&format!("{name}{NEW_SUFFIX}")).await?;
        let Some(new_id) = new_id.map(str::to_owned).or(temp) else {
            return Err(RuntimeError::permanent(
                "restore",
                format!(
                    "neither the old container {old_id} nor a new one of {name} exists any more"
                ),
            ));
        };
        if self.runtime.observe(&new_id).await?.is_none() {
            return Err(RuntimeError::permanent(
                "restore",
                format!("the old container {old_id} of {name} is gone, and so is the new one"),
            ));
        }
        if self.runtime.find(name).await?.as_deref() != Some(new_id.as_str()) {
            self.runtime.rename(&new_id, name).await?;
        }
        if start {
            self.runtime.start(&new_id).await?;
        }
        warn!(container = %name, old = %old_id, "the old container is gone; the new one was kept running");
        Ok(Kept::New)
    }
}
