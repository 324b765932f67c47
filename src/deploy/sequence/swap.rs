//! The container swap, create before stop: pull, create the successor under a temporary name
//! while the old container still serves (and its dependents' successors, see
//! [`group`](crate::deploy::neighbourhood::group)), pre-update hook, stop the old one, swap the names, start the new
//! one, post-update hook, health gate, commit. The downtime is the old container's stop plus two renames and a
//! start. Static IPs, published ports and MAC addresses are bound at start, not at create, so
//! the successor can be created while the old container holds them.

use std::time::Instant;

use tracing::{instrument, warn};

use super::executor::{Executor, Failure};
use super::health::Unhealthy;
use super::hooks::{Hook, HookVerdict, Hooks};
use super::rollback::{Blame, Undo};
use crate::event::Digest;
use crate::ports::{Credentials, Managed, NEW_SUFFIX, OLD_SUFFIX, Runtime};
use crate::store::{Member, Phases, Step};

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// Swaps container `c` (and its group) to `desired`; journal row `id`.
    #[instrument(name = "swap", skip_all, fields(container = %c.name, digest = %desired.short(), deployment = id))]
    pub(in crate::deploy) async fn swap(
        &self,
        id: i64,
        c: &Managed,
        desired: &Digest,
        phases: &mut Phases,
    ) -> Result<(), Failure> {
        let hooks = c.hooks.hooks().map_err(|why| Failure::failed(why, false))?;
        // 1. Pull: the old container is untouched until the new image is here and verified.
        let t = Instant::now();
        self.pull(c, desired).await?;
        let old_image = self.runtime.image_of(&c.id).await.ok();
        phases.pull_ms = t.elapsed().as_millis() as i64;

        // 2. Create the successor (and its dependents' successors) beside the old container
        //    (journal: still `pulling`; recovery removes half-made successors by their
        //    temporary names), then the pre-update hook in the old container.
        let t = Instant::now();
        let new_id = self.create_successor(c).await?;
        let (members, _member_locks) = match self.prepare_group(id, c, &new_id).await {
            Ok(m) => m,
            Err(f) => return Err(self.discard_group(id, c, &new_id, f).await),
        };
        if let Err(f) = self.pre_update(c, &hooks).await {
            return Err(self.discard_group(id, c, &new_id, f).await);
        }

        // 3. Stop the old one (its dependents first), swap the names, start the new one.
        self.store
            .step_with_new_id(id, Step::Stopping, &new_id)
            .map_err(|e| Failure::failed(e, true))?;
        let create_ms = t.elapsed().as_millis() as i64;
        // From here on the old container may be down: every error puts it back in-process
        // and keeps the journal row open until that worked (SPEC §6; recovery finishes it).
        let undo = Undo {
            id,
            c,
            new_id: &new_id,
            members: &members,
            desired,
        };
        let t = Instant::now();
        if let Err(e) = self.stop_group(c, &members).await {
            // The Engine may still be killing it past the timeout: not the digest's fault.
            let reason = format!("could not stop the old container: {e}");
            return Err(self.undo(&undo, reason, Blame::StopWindow).await);
        }
        phases.stop_ms = t.elapsed().as_millis() as i64;
        let t = Instant::now();
        if let Err(f) = self.journal(id, Step::Starting) {
            return Err(self.undo(&undo, f.reason, Blame::None).await);
        }
        if let Err(e) = self.swap_names_and_start(c, &new_id).await {
            let reason = e.to_string();
            let blame = if e.transient {
                Blame::None
            } else {
                Blame::Digest
            };
            return Err(self.undo(&undo, reason, blame).await);
        }
        phases.swap_ms = create_ms + t.elapsed().as_millis() as i64;

        // 4. The post-update hook, the health gate, then the dependents' turn.
        let t = Instant::now();
        if let Err(f) = self.journal(id, Step::HealthGate) {
            return Err(self.undo(&undo, f.reason, Blame::None).await);
        }
        let gate = self.gate_new(c, &new_id, &hooks, &members).await;
        phases.health_ms = t.elapsed().as_millis() as i64;
        if let Err(failed) = gate {
            let blame = if failed.transient {
                Blame::None
            } else {
                Blame::Digest
            };
            return Err(self.undo(&undo, failed.reason, blame).await);
        }
        if let Err(f) = self.journal(id, Step::Committing) {
            return Err(self.undo(&undo, f.reason, Blame::None).await);
        }

        // 5. Commit: the old containers go, their volumes stay.
        self.commit(c, &members, old_image).await;
        Ok(())
    }

    /// The pre-update hook in the old container, when it has one: "not now" (exit 75) or a
    /// failure stops the swap before anything is stopped.
    async fn pre_update(&self, c: &Managed, hooks: &Hooks) -> Result<(), Failure> {
        let Some(cmd) = &hooks.pre_update else {
            return Ok(());
        };
        let verdict = self
            .run_hook(&c.name, &c.id, Hook::PreUpdate, cmd, hooks.timeout)
            .await;
        match verdict {
            HookVerdict::Passed => Ok(()),
            HookVerdict::NotNow(why) => Err(Failure::not_now(why)),
            HookVerdict::Failed(why) => Err(Failure::failed(why, false)),
        }
    }

    /// The swap's last step: the old container and its group's old members go, their
    /// volumes stay (recovery removes what could not be removed now); the old image last
    /// with `remove_old_images`, when nothing uses it.
    async fn commit(&self, c: &Managed, members: &[Member], old_image: Option<String>) {
        if let Err(e) = self.runtime.remove(&c.id).await {
            warn!(container = %c.name, error = %e, "could not remove the old container; recovery will");
        }
        if let Err(e) = self.commit_members(members).await {
            warn!(container = %c.name, error = %e, "could not remove an old dependent; recovery will");
        }
        if self.cfg.remove_old_images
            && let Some(image) = self.image_to_remove(c, old_image)
        {
            let _ = self.runtime.remove_image_if_unused(&image).await;
        }
    }

    /// The new container's post-update hook and health gate, then its group's members'.
    #[instrument(name = "health_gate", skip_all, fields(container = %c.name, new_id = %new_id.get(..12).unwrap_or(new_id)))]
    async fn gate_new(
        &self,
        c: &Managed,
        new_id: &str,
        hooks: &Hooks,
        members: &[Member],
    ) -> Result<(), Unhealthy> {
        if let Some(cmd) = &hooks.post_update {
            match self
                .run_hook(&c.name, new_id, Hook::PostUpdate, cmd, hooks.timeout)
                .await
            {
                HookVerdict::Passed => {}
                HookVerdict::NotNow(why) | HookVerdict::Failed(why) => {
                    return Err(Unhealthy::verdict(why));
                }
            }
        }
        self.health_gate(new_id, c.health_timeout.unwrap_or(self.cfg.health_timeout))
            .await?;
        self.start_members(members)
            .await
            .map_err(Unhealthy::verdict)
    }

    /// Stops the group's members, then the old container.
    #[instrument(name = "stop", skip_all, fields(container = %c.name, members = members.len()))]
    async fn stop_group(
        &self,
        c: &Managed,
        members: &[Member],
    ) -> Result<(), crate::ports::RuntimeError> {
        self.stop_members(members).await?;
        self.runtime
            .stop(&c.id, c.stop_timeout.unwrap_or(self.cfg.stop_timeout))
            .await
    }

    /// Nothing was stopped: the successors made so far go, and `f` is what happened.
    async fn discard_group(&self, id: i64, c: &Managed, new_id: &str, f: Failure) -> Failure {
        let members = self.store.members(id).unwrap_or_default();
        let discarded = match self.discard_members(&members).await {
            Ok(()) => self.remove_successor(&c.name, &c.id, Some(new_id)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = discarded {
            warn!(container = %c.name, error = %e, "a successor made for this deploy could not be removed; recovery will");
        }
        f
    }

    /// Pulls `desired` from the registry (or mirror) and tags it as `c`'s image reference.
    /// An archive's image was loaded from S3 when its key was resolved: it is only tagged.
    #[instrument(name = "pull", skip_all, fields(container = %c.name, digest = %desired.short()))]
    async fn pull(&self, c: &Managed, desired: &Digest) -> Result<(), Failure> {
        if c.follows.is_archive() {
            if c.image.starts_with("sha256:") {
                let why = format!(
                    "{} was created from an image id, not a name: its successor would run the same image; create it from the archive's image name",
                    c.name
                );
                return Err(Failure::failed(why, false));
            }
            return self
                .runtime
                .tag(desired.as_str(), &c.image)
                .await
                .map_err(Failure::runtime);
        }
        let (auth, host) = self.pull_auth_and_host(&c.follows).await?;
        let source = format!("{host}/{}@{desired}", c.follows.repository.as_str());
        self.runtime
            .pull(&source, desired, &auth, &c.image)
            .await
            .map_err(Failure::runtime)
    }

    /// The image a committed swap leaves behind: the old one; for an archive, whose image
    /// cannot be pulled again, the one before it (the old one is kept for a rollback until
    /// a newer deploy succeeds).
    fn image_to_remove(&self, c: &Managed, old_image: Option<String>) -> Option<String> {
        if !c.follows.is_archive() {
            return old_image;
        }
        let history = self.store.history(Some(&c.name), 50).ok()?;
        let last = history
            .iter()
            .find(|d| d.outcome == Some(crate::store::Outcome::Succeeded))?;
        last.from_digest
            .clone()
            .filter(|before| Some(before) != old_image.as_ref() && *before != last.to_digest)
    }

    /// Creates `c`'s successor under `<name>.ecr-deployd-new`, replacing one a crash left.
    #[instrument(name = "create", skip_all, fields(container = %c.name))]
    async fn create_successor(&self, c: &Managed) -> Result<String, Failure> {
        let temp = self.free_temp_name(&c.name).await?;
        self.runtime
            .create_like(&c.id, &temp)
            .await
            .map_err(Failure::runtime)
    }

    /// `<name>.ecr-deployd-new`, with a successor a crash left under it removed.
    pub(in crate::deploy) async fn free_temp_name(&self, name: &str) -> Result<String, Failure> {
        let temp = format!("{name}{NEW_SUFFIX}");
        if let Some(stale) = self.runtime.find(&temp).await.map_err(Failure::runtime)? {
            self.runtime
                .remove(&stale)
                .await
                .map_err(Failure::runtime)?;
        }
        Ok(temp)
    }

    #[instrument(name = "rename_and_start", skip_all, fields(container = %c.name, new_id = %new_id.get(..12).unwrap_or(new_id)))]
    async fn swap_names_and_start(
        &self,
        c: &Managed,
        new_id: &str,
    ) -> Result<(), crate::ports::RuntimeError> {
        self.runtime
            .rename(&c.id, &format!("{}{OLD_SUFFIX}", c.name))
            .await?;
        self.runtime.rename(new_id, &c.name).await?;
        self.runtime.start(new_id).await
    }
}
