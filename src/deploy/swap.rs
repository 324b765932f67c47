//! The container swap, create before stop: pull, create the successor under a temporary name
//! while the old container still serves, stop the old one, swap the names, start the new
//! one, health gate, commit. The downtime is the old container's stop plus two renames and a
//! start. Static IPs, published ports and MAC addresses are bound at start, not at create, so
//! the successor can be created while the old container holds them.

use std::time::Instant;

use tracing::{error, warn};

use super::executor::{Executor, Failure};
use crate::event::Digest;
use crate::ports::{Credentials, Managed, NEW_SUFFIX, OLD_SUFFIX, Runtime};
use crate::store::{Phases, Step};

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// Swaps container `c` to `desired`; journal row `id`.
    pub(super) async fn swap(
        &self,
        id: i64,
        c: &Managed,
        desired: &Digest,
        phases: &mut Phases,
    ) -> Result<(), Failure> {
        // 1. Pull: the old container is untouched until the new image is here and verified.
        let t = Instant::now();
        self.pull(c, desired).await?;
        let old_image = self.runtime.image_of(&c.id).await.ok();
        phases.pull_ms = t.elapsed().as_millis() as i64;

        // 2. Create the successor beside the old container (journal: still `pulling`;
        //    recovery removes a half-made successor by its temporary name).
        let t = Instant::now();
        let new_id = self.create_successor(c).await?;

        // 3. Stop the old one, swap the names, start the new one.
        self.store
            .step_with_new_id(id, Step::Stopping, &new_id)
            .map_err(|e| Failure::failed(e, true))?;
        let create_ms = t.elapsed().as_millis() as i64;
        let t = Instant::now();
        if let Err(e) = self
            .runtime
            .stop(&c.id, c.stop_timeout.unwrap_or(self.cfg.stop_timeout))
            .await
        {
            let _ = self.remove_successor(&c.name, &c.id, Some(&new_id)).await;
            self.restart_old(c).await;
            return Err(Failure::runtime(e));
        }
        phases.stop_ms = t.elapsed().as_millis() as i64;
        let t = Instant::now();
        self.journal(id, Step::Starting)?;
        if let Err(e) = self.swap_names_and_start(c, &new_id).await {
            return Err(self
                .roll_back(id, c, Some(&new_id), desired, e.to_string())
                .await);
        }
        phases.swap_ms = create_ms + t.elapsed().as_millis() as i64;

        // 4. Health gate.
        let t = Instant::now();
        self.journal(id, Step::HealthGate)?;
        let gate = self
            .health_gate(&new_id, c.health_timeout.unwrap_or(self.cfg.health_timeout))
            .await;
        phases.health_ms = t.elapsed().as_millis() as i64;
        if let Err(reason) = gate {
            return Err(self.roll_back(id, c, Some(&new_id), desired, reason).await);
        }

        // 5. Commit: the old container goes, its volumes stay.
        self.journal(id, Step::Committing)?;
        if let Err(e) = self.runtime.remove(&c.id).await {
            warn!(container = %c.name, error = %e, "could not remove the old container; recovery will");
        }
        if self.cfg.remove_old_images
            && let Some(image) = old_image
        {
            let _ = self.runtime.remove_image_if_unused(&image).await;
        }
        Ok(())
    }

    /// Pulls `desired` from the registry (or mirror) and tags it as `c`'s image reference.
    async fn pull(&self, c: &Managed, desired: &Digest) -> Result<(), Failure> {
        let (auth, host) = self.pull_auth_and_host().await?;
        let source = format!("{host}/{}@{desired}", c.follows.repository.as_str());
        self.runtime
            .pull(&source, desired, &auth, &c.image)
            .await
            .map_err(Failure::runtime)
    }

    /// Creates `c`'s successor under `<name>.ecr-deployd-new`, replacing one a crash left.
    async fn create_successor(&self, c: &Managed) -> Result<String, Failure> {
        let temp = format!("{}{NEW_SUFFIX}", c.name);
        if let Some(stale) = self.runtime.find(&temp).await.map_err(Failure::runtime)? {
            self.runtime
                .remove(&stale)
                .await
                .map_err(Failure::runtime)?;
        }
        self.runtime
            .create_like(&c.id, &temp)
            .await
            .map_err(Failure::runtime)
    }

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

    /// Best effort, after a failed stop: the old container runs again under its own name.
    async fn restart_old(&self, c: &Managed) {
        if let Err(e) = self.runtime.start(&c.id).await {
            error!(container = %c.name, error = %e, "could not restart the old container");
        }
    }
}
