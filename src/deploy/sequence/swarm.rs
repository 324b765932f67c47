//! A Swarm service's deploy step: one service update to `<registry>/<repo>:<tag>@<digest>`,
//! sent with the ECR credentials so every node can pull, which Swarm rolls out with the
//! service's own update_config (parallelism, delay, monitor, failure_action); followed to
//! its end. A rollback by Swarm blocks the digest for the service.

use std::time::{Duration, Instant};

use tracing::{error, instrument};

use super::executor::{Executor, Failure};
use crate::event::Digest;
use crate::ports::{Credentials, ManagedService, Runtime, ServiceUpdate};
use crate::store::{Outcome, Phases};

/// How often a service update's progress is read.
const SERVICE_POLL: Duration = Duration::from_millis(500);
/// A service update still running after this is recorded as failed (Swarm carries on).
const SERVICE_UPDATE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// How a finished update (or its rollback) ended.
fn ending(u: &ServiceUpdate) -> Result<(), Failure> {
    let why = if u.message.is_empty() {
        u.state.clone()
    } else {
        format!("{}: {}", u.state, u.message)
    };
    match u.state.as_str() {
        "completed" => Ok(()),
        "rollback_completed" => Err(Failure {
            outcome: Outcome::RolledBack,
            transient: false,
            deferred: false,
            reason: why,
        }),
        _ => Err(Failure::failed(
            format!("{why} — hint: set the service's update failure_action to rollback"),
            false,
        )),
    }
}

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// Sends the update and follows `UpdateStatus` until the update or its rollback ends.
    #[instrument(name = "service_update", skip_all, fields(service = %s.name, digest = %desired.short()))]
    pub(in crate::deploy) async fn update_service(
        &self,
        s: &ManagedService,
        desired: &Digest,
        phases: &mut Phases,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let result = self.send_and_follow(s, desired).await;
        phases.swap_ms = started.elapsed().as_millis() as i64;
        if let Err(f) = &result
            && f.outcome == Outcome::RolledBack
        {
            let reason = format!("Swarm rolled the update back: {}", f.reason);
            if let Err(e) = self.store.block(&s.name, desired.as_str(), &reason) {
                error!(service = %s.name, error = %e, "could not block the rolled-back digest");
            }
        }
        result
    }

    async fn send_and_follow(&self, s: &ManagedService, desired: &Digest) -> Result<(), Failure> {
        let (auth, host) = self.pull_auth_and_host(&s.follows).await?;
        let image = format!(
            "{host}/{}:{}@{desired}",
            s.follows.repository.as_str(),
            s.follows.tag.as_str()
        );
        let before = self
            .runtime
            .update_service(&s.id, &image, &auth)
            .await
            .map_err(Failure::runtime)?;
        let deadline = Instant::now() + SERVICE_UPDATE_LIMIT;
        // An update is ours once it started after the one seen before sending, or that one
        // had not finished.
        let fresh = |u: &ServiceUpdate| {
            before
                .as_ref()
                .is_none_or(|b| b.started_at != u.started_at || !b.finished())
        };
        loop {
            tokio::time::sleep(SERVICE_POLL).await;
            match self.runtime.service_update(&s.id).await {
                Ok(Some(u)) if fresh(&u) && u.finished() => return ending(&u),
                Err(e) if !e.transient || Instant::now() >= deadline => {
                    return Err(Failure::failed(
                        format!("the update was sent; following it failed: {e}"),
                        false,
                    ));
                }
                _ if Instant::now() >= deadline => {
                    return Err(Failure::failed(
                        format!(
                            "the update has not finished after {} s; Swarm carries on with it",
                            SERVICE_UPDATE_LIMIT.as_secs()
                        ),
                        false,
                    ));
                }
                _ => {}
            }
        }
    }
}
