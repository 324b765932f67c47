//! What the Engine says of itself: which engine and API version, and the registries it
//! pulls from over plain HTTP.

use super::*;

impl DockerRuntime {
    /// The Engine's `RegistryConfig` (`/info`): which registries it pulls from over plain
    /// HTTP (for `doctor`, SPEC §18); `Null` when the Engine reports none.
    pub async fn registry_config(&self) -> Result<Value, RuntimeError> {
        let info = self.raw("info", Method::GET, "/info", None, &[]).await?;
        Ok(info["RegistryConfig"].clone())
    }

    /// Engine (`Docker Engine 20.10.24`, `Podman 4.3.1`) and negotiated API version (for
    /// `doctor` and logs).
    pub async fn version(&self) -> Result<(String, String), RuntimeError> {
        let engine = self.engine().await?;
        let docker = self.docker().await?;
        Ok((engine.display(), docker.client_version().to_string()))
    }

    /// Which engine serves the API (asked once).
    pub(in crate::adapters) async fn engine(&self) -> Result<&Engine, RuntimeError> {
        self.engine
            .get_or_try_init(|| async {
                let docker = self.docker().await?;
                let v = timed("version", self.call_timeout, docker.version()).await?;
                let components: Vec<(String, String)> = v
                    .components
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| (c.name, c.version))
                    .collect();
                Ok(Engine::from_components(
                    &components,
                    v.version.as_deref().unwrap_or_default(),
                ))
            })
            .await
    }
}
