//! A group swap (SPEC §12): a managed container and its opted-in dependents (containers that
//! share its namespaces or volumes) are replaced together. The dependents' successors are
//! made beside them, pointing at the parent's successor, while everything still runs; the
//! dependents are stopped before the parent; once the new parent passed its health gate they
//! take their names, start and pass their own gates. Any failure puts the whole group back:
//! the old parent first (the old dependents point at it), then each old dependent, running
//! if it ran. The members are journalled with the deployment before any is touched, so
//! recovery after a kill does the same.

use futures::future::join_all;
use tracing::warn;

use super::dependents::refusal_reason;
use crate::deploy::sequence::executor::{Executor, Failure};
use crate::ports::{Credentials, Managed, OLD_SUFFIX, Repoint, Runtime, RuntimeError};
use crate::store::Member;

/// A group member's deploy lock, held for the group swap.
pub(in crate::deploy) type MemberLock = tokio::sync::OwnedMutexGuard<()>;

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// Journals `c`'s opted-in dependents as deployment `id`'s group and creates each one's
    /// successor against the parent's successor `new_parent`. Nothing is stopped yet. The
    /// returned guards hold the members' own deploy locks (a dependent that follows a tag of
    /// its own is never swapped by itself while its group is).
    pub(in crate::deploy) async fn prepare_group(
        &self,
        id: i64,
        c: &Managed,
        new_parent: &str,
    ) -> Result<(Vec<Member>, Vec<MemberLock>), Failure> {
        let listed = self
            .runtime
            .dependents(&c.id)
            .await
            .map_err(Failure::runtime)?;
        let mut locks = Vec::new();
        for d in &listed {
            let key = format!("container:{}", d.name);
            locks.push(self.lock_for(key).lock_owned().await);
        }
        // Read again under their locks: a member's own swap may just have replaced it.
        let deps = self
            .runtime
            .dependents(&c.id)
            .await
            .map_err(Failure::runtime)?;
        // One may have appeared since the deploy was allowed: check again before touching.
        if let Some(why) = refusal_reason(&deps) {
            return Err(Failure::failed(why, false));
        }
        let mut members: Vec<Member> = deps
            .iter()
            .map(|d| Member {
                name: d.name.clone(),
                old_id: d.id.clone(),
                new_id: None,
                was_running: d.running,
            })
            .collect();
        if members.is_empty() {
            return Ok((members, locks));
        }
        self.store
            .add_members(id, &members)
            .map_err(|e| Failure::failed(e, true))?;
        let repoint = Repoint {
            old_id: c.id.clone(),
            old_name: c.name.clone(),
            new_id: new_parent.to_owned(),
        };
        for m in &mut members {
            let temp = self.free_temp_name(&m.name).await?;
            let new_id = self
                .runtime
                .create_dependent(&m.old_id, &temp, &repoint)
                .await
                .map_err(|e| Failure::failed(format!("dependent {}: {e}", m.name), e.transient))?;
            self.store
                .set_member_new_id(id, &m.name, &new_id)
                .map_err(|e| Failure::failed(e, true))?;
            m.new_id = Some(new_id);
        }
        Ok((members, locks))
    }

    /// Stops the members that run (before their parent is stopped).
    pub(in crate::deploy) async fn stop_members(
        &self,
        members: &[Member],
    ) -> Result<(), RuntimeError> {
        for m in members.iter().filter(|m| m.was_running) {
            self.runtime.stop(&m.old_id, self.cfg.stop_timeout).await?;
        }
        Ok(())
    }

    /// After the new parent passed its gate: each member's successor takes its name and
    /// starts (if the member ran); then every started one must pass its own health gate.
    pub(in crate::deploy) async fn start_members(&self, members: &[Member]) -> Result<(), String> {
        for m in members {
            let Some(new_id) = m.new_id.as_deref() else {
                return Err(format!("dependent {}: no successor was made", m.name));
            };
            let named = async {
                self.runtime
                    .rename(&m.old_id, &format!("{}{OLD_SUFFIX}", m.name))
                    .await?;
                self.runtime.rename(new_id, &m.name).await?;
                if m.was_running {
                    self.runtime.start(new_id).await?;
                }
                Ok::<(), RuntimeError>(())
            };
            named
                .await
                .map_err(|e| format!("dependent {}: {e}", m.name))?;
        }
        let gates = members
            .iter()
            .filter(|m| m.was_running)
            .filter_map(|m| Some((m, m.new_id.as_deref()?)))
            .map(|(m, id)| async move {
                self.health_gate(id, self.cfg.health_timeout)
                    .await
                    .map_err(|why| format!("dependent {}: {}", m.name, why.reason))
            });
        join_all(gates).await.into_iter().collect()
    }

    /// Puts every member back (after its parent is back: the old members point at it): its
    /// successor removed, the old container under its name, running if it ran. Every member
    /// is tried; the first error is returned.
    pub(in crate::deploy) async fn restore_members(
        &self,
        members: &[Member],
    ) -> Result<(), RuntimeError> {
        let mut first = Ok(());
        for m in members {
            let restored = self
                .restore(&m.name, &m.old_id, m.new_id.as_deref(), m.was_running)
                .await;
            if let Err(e) = restored {
                warn!(dependent = %m.name, error = %e, "could not restore a dependent");
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// Removes the members' successors; the old members were never touched.
    pub(in crate::deploy) async fn discard_members(
        &self,
        members: &[Member],
    ) -> Result<(), RuntimeError> {
        for m in members {
            self.remove_successor(&m.name, &m.old_id, m.new_id.as_deref())
                .await?;
        }
        Ok(())
    }

    /// The old members go; their volumes stay.
    pub(in crate::deploy) async fn commit_members(
        &self,
        members: &[Member],
    ) -> Result<(), RuntimeError> {
        for m in members {
            self.runtime.remove(&m.old_id).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
