//! Where a target's image comes from: the pull credentials and host (an ECR registry, its
//! mirror, or a registry of the site's own), and the home registry an unnamed account or
//! region stands for.

use super::*;

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// The pull credentials, and the host `image` is pulled from: its own ECR registry
    /// (account and region), or that registry's mirror when one is set; for an image of a
    /// registry of the site's own, that registry and its `[[registries]]` credentials.
    pub(in crate::deploy) async fn pull_auth_and_host(
        &self,
        image: &ImageRef,
    ) -> Result<(PullAuth, String), Failure> {
        if let Some(host) = image.site_host() {
            let auth = self.credentials.site_auth(host).ok_or_else(|| {
                Failure::failed(
                    format!("{image}: no [[registries]] entry for {host}"),
                    false,
                )
            })?;
            return Ok((auth, host.to_owned()));
        }
        let auth = self
            .credentials
            .pull_auth(image.region.as_deref())
            .await
            .map_err(|e| Failure::failed(&e, e.transient))?;
        let host = self.cfg.mirrors.pull_host(image, &auth.registry_host);
        Ok((auth, host))
    }

    /// The registry of the credentials (account and region), for matching a key that leaves
    /// them unnamed. Not known → the request is tried again (its messages stay).
    pub(in crate::deploy) async fn home(&self) -> Result<Home, String> {
        let auth = self
            .credentials
            .pull_auth(None)
            .await
            .map_err(|e| format!("which account and region a label without them means: {e}"))?;
        Ok(Home::of_registry_host(&auth.registry_host))
    }
}
