//! Going back to the old container: the new one removed (whatever it is called by now), the
//! old one under its own name and running — exactly one container per name — then the same
//! for each member of its group (its dependents), and the digest blocked for that container
//! until a different one is pushed.

use tracing::{error, warn};

use super::executor::{Executor, Failure};
use crate::event::Digest;
use crate::ports::{Credentials, Managed, NEW_SUFFIX, Runtime, RuntimeError};
use crate::store::{Member, Outcome, Step};

/// Which container a restore left running under the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    Old,
    /// The old container no longer existed: the new one is the only copy left.
    New,
}

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// Removes the new container, puts the old one back (then its group's members) and
    /// blocks the digest.
    pub(super) async fn roll_back(
        &self,
        id: i64,
        c: &Managed,
        new_id: Option<&str>,
        members: &[Member],
        desired: &Digest,
        reason: String,
    ) -> Failure {
        warn!(container = %c.name, digest = %desired.short(), %reason, "rolling back");
        let _ = self.store.step(id, Step::RollingBack);
        let restored = match self.restore(&c.name, &c.id, new_id, true).await {
            Ok(kept) => self.restore_members(members).await.map(|()| kept),
            Err(e) => Err(e),
        };
        if let Err(e) = self.store.block(&c.name, desired.as_str(), &reason) {
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
            Err(e) => Failure {
                outcome: Outcome::RolledBack,
                transient: e.transient,
                deferred: false,
                reason: format!("{reason}; rollback incomplete: {e}"),
            },
        }
    }

    /// Exactly one container called `name`, the old one (`old_id`), running unless `start`
    /// is false (a group member that was stopped before). The new one is removed by its id
    /// when known, and by its temporary name in any case. Only when the old one no longer
    /// exists is the new one kept instead.
    pub(super) async fn restore(
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
    pub(super) async fn remove_successor(
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
