//! Creating a successor on the Engine: the old container's inspected JSON (raw, so no field
//! is dropped) → the create request ([`recreation`]), adjusted for what changed: the image a
//! Compose container runs now, and for a dependent, the parent's successor it must join.

use hyper::Method;
use serde_json::Value;

use super::podman::{carry_libpod, drop_injected, image_defaults_from_libpod};
use super::recreate::{recreation, repoint, set_compose_image};
use super::{ApiVersion, DockerRuntime};
use crate::ports::{Repoint, Runtime, RuntimeError};

impl DockerRuntime {
    /// Creates `name` like container `old_id` (see [`Runtime::create_like`]); a dependent's
    /// references to `parent` point at its successor. Returns the new id.
    pub(super) async fn create_from(
        &self,
        old_id: &str,
        name: &str,
        parent: Option<&Repoint>,
    ) -> Result<String, RuntimeError> {
        let get = |operation, path: String| async move {
            self.raw(operation, Method::GET, &path, None, &[]).await
        };
        let api = self.api_version().await?;
        let old = self.inspect_to_recreate(old_id, api).await?;
        let image_id = old["Image"].as_str().unwrap_or_default();
        let mut image_config = match get("inspect image", format!("/images/{image_id}/json")).await
        {
            Ok(image) => image["Config"].clone(),
            Err(e) if e.transient => return Err(e),
            Err(_) => Value::Null, // the old image is gone: nothing to subtract
        };
        let podman = self.engine().await?.is_podman();
        if podman && !image_config.is_null() {
            let libpod = get("inspect image", format!("/libpod/images/{image_id}/json")).await?;
            image_defaults_from_libpod(&mut image_config, &libpod);
        }
        let mut plan = recreation(&old, &image_config, api);
        // The configured reference names the image just pulled (or, for a dependent, the
        // same one as before).
        let reference = old["Config"]["Image"].as_str().unwrap_or_default();
        if let Ok(now) = get("inspect image", format!("/images/{reference}/json")).await
            && let Some(id) = now["Id"].as_str()
        {
            set_compose_image(&mut plan.body, id);
        }
        if let Some(parent) = parent {
            repoint(&mut plan.body, parent);
        }
        if podman {
            let hostname = old["Config"]["Hostname"].as_str().unwrap_or_default();
            drop_injected(&mut plan.body, hostname, &image_config["Env"]);
            let libpod = get(
                "inspect container",
                format!("/libpod/containers/{old_id}/json"),
            )
            .await?;
            carry_libpod(&mut plan.body, &libpod)
                .map_err(|why| RuntimeError::permanent("create container", why))?;
        }
        let created = self
            .raw(
                "create container",
                Method::POST,
                &format!("/containers/create?name={name}"),
                Some(&plan.body),
                &[],
            )
            .await?;
        let new_id = created["Id"].as_str().unwrap_or_default().to_owned();
        if new_id.is_empty() {
            return Err(RuntimeError::permanent(
                "create container",
                format!("no id in the answer: {created}"),
            ));
        }
        for (network, endpoint) in plan.extra_networks {
            let body = serde_json::json!({ "Container": new_id, "EndpointConfig": endpoint });
            let path = format!("/networks/{network}/connect");
            let connected = self
                .raw("connect network", Method::POST, &path, Some(&body), &[])
                .await;
            if let Err(e) = connected {
                // Leave nothing half-made behind: the caller goes on with the old container.
                let _ = self.remove(&new_id).await;
                return Err(e);
            }
        }
        Ok(new_id)
    }

    /// The old container's inspect, read where it shows the MAC address the user set: from
    /// API 1.52 `Config.MacAddress` is gone, 1.51 still shows it and Docker 29 still serves
    /// 1.51. An Engine that no longer serves 1.51 is read at `api` (the MAC then unknown, and
    /// not carried over).
    async fn inspect_to_recreate(
        &self,
        old_id: &str,
        api: ApiVersion,
    ) -> Result<Value, RuntimeError> {
        let path = format!("/containers/{old_id}/json");
        let at = |version| self.raw_at(version, "inspect container", Method::GET, &path, None, &[]);
        if api > ApiVersion::V1_51 {
            match at(ApiVersion::V1_51).await {
                Err(e) if !e.transient && e.status != Some(404) => {}
                read => return read,
            }
        }
        at(api).await
    }
}
