//! Deploy stage. Until the container executor lands, [`LogOnly`] records the decision in the
//! log: that is the whole "work" of a request, so its messages may then be deleted.

use tracing::info;

use crate::ports::{DeployError, DeployRequest, Deployer};

/// A [`Deployer`] that only logs what it was asked to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogOnly;

impl Deployer for LogOnly {
    async fn deploy(&self, request: DeployRequest) -> Result<(), DeployError> {
        info!(
            image = %request.image,
            registry = ?request.image.registry,
            desired = %request.desired,
            trigger = %request.trigger,
            "desired digest resolved (container deploys are not enabled in this build)"
        );
        Ok(())
    }
}
