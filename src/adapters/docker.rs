//! [`Runtime`] on the Docker Engine API (bollard, local socket, API version negotiated).
//!
//! Re-creation keeps the old container's whole configuration. It works on the inspected JSON
//! so that fields this code does not name (resources, devices, capabilities, log config …)
//! are carried over as they are, and removes only what must not be copied: values that came
//! from the old image (so the new image's defaults apply), the hostname Docker derived from
//! the old id, and aliases Docker added itself.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, RenameContainerOptionsBuilder, StopContainerOptionsBuilder,
    TagImageOptionsBuilder,
};
use std::path::PathBuf;

use futures::StreamExt;
use hyper::Method;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use tracing::{debug, warn};

use super::docker_raw;
use crate::event::{Digest, follows, split_reference};
use crate::image::{Platform, repo_digests};
use crate::ports::{
    Managed, ManagedService, Observed, PullAuth, Runtime, RuntimeError, ServiceUpdate,
};

/// Opt-in label (SPEC §4).
pub const LABEL_ENABLE: &str = "ecr-deployd.enable";
pub const LABEL_IMAGE: &str = "ecr-deployd.image";
pub const LABEL_HEALTH_TIMEOUT: &str = "ecr-deployd.health-timeout";
/// Suffix of the old container's name while a swap is in progress.
pub const OLD_SUFFIX: &str = ".ecr-deployd-old";
/// Per-request timeout of the Engine client: a pull of a large image over a slow site link
/// must not be cut off (bollard's default is 120 s).
const CLIENT_TIMEOUT_SECS: u64 = 1800;
/// Swarm marks its task containers with this label; they belong to services, not to us.
const SWARM_TASK_LABEL: &str = "com.docker.swarm.service.id";

/// The local Docker Engine. The connection (and API version negotiation) is made on first
/// use and retried on the next call if the Engine was down.
pub struct DockerRuntime {
    client: OnceCell<Docker>,
    socket: PathBuf,
    platform: OnceCell<Platform>,
}

fn err(operation: &'static str) -> impl Fn(bollard::errors::Error) -> RuntimeError {
    move |e| {
        let transient = !matches!(
            e,
            bollard::errors::Error::DockerResponseServerError { .. }
                | bollard::errors::Error::DockerStreamError { .. }
                | bollard::errors::Error::JsonDataError { .. }
                | bollard::errors::Error::JsonSerdeError { .. }
        );
        RuntimeError {
            operation,
            message: e.to_string(),
            transient,
        }
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn invalid(operation: &'static str, message: String) -> RuntimeError {
    RuntimeError {
        operation,
        message,
        transient: false,
    }
}

impl DockerRuntime {
    /// `docker_host`: the value of `DOCKER_HOST`, if set (read once at start-up).
    pub fn new(docker_host: Option<&str>) -> Self {
        Self {
            client: OnceCell::new(),
            socket: docker_raw::socket_path(docker_host),
            platform: OnceCell::new(),
        }
    }

    /// A path of the Engine API at the negotiated version.
    async fn api(&self, path: &str) -> Result<String, RuntimeError> {
        let version = self.docker().await?.client_version();
        Ok(format!("/v{version}{path}"))
    }

    async fn docker(&self) -> Result<&Docker, RuntimeError> {
        self.client
            .get_or_try_init(|| async {
                let path = self.socket.to_string_lossy();
                let docker = Docker::connect_with_socket(
                    &path,
                    CLIENT_TIMEOUT_SECS,
                    bollard::API_DEFAULT_VERSION,
                )
                .map_err(err("connect"))?;
                docker
                    .negotiate_version()
                    .await
                    .map_err(err("negotiate API version"))
            })
            .await
    }

    /// Engine version and negotiated API version (for `doctor` and logs).
    pub async fn version(&self) -> Result<(String, String), RuntimeError> {
        let docker = self.docker().await?;
        let v = docker.version().await.map_err(err("version"))?;
        Ok((
            v.version.unwrap_or_default(),
            docker.client_version().to_string(),
        ))
    }

    /// Every container (running or not) matching one list filter.
    async fn list_all(
        &self,
        filter: &str,
        value: &str,
    ) -> Result<Vec<bollard::models::ContainerSummary>, RuntimeError> {
        let filters = HashMap::from([(filter, vec![value.to_owned()])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        self.docker()
            .await?
            .list_containers(Some(options))
            .await
            .map_err(err("list containers"))
    }

    async fn get_json(&self, operation: &'static str, path: &str) -> Result<Value, RuntimeError> {
        let path = self.api(path).await?;
        Ok(
            docker_raw::call(&self.socket, operation, Method::GET, &path, None)
                .await?
                .1,
        )
    }
}

impl Runtime for DockerRuntime {
    async fn managed(&self, mirror: Option<&str>) -> Result<Vec<Managed>, RuntimeError> {
        let docker = self.docker().await?;
        let list = self
            .list_all("label", &format!("{LABEL_ENABLE}=true"))
            .await?;
        let mut out = Vec::new();
        for summary in list {
            let labels = summary.labels.clone().unwrap_or_default();
            if labels.get(LABEL_ENABLE).map(String::as_str) != Some("true")
                || labels.contains_key(SWARM_TASK_LABEL)
            {
                continue;
            }
            let Some(id) = summary.id.clone() else {
                continue;
            };
            let inspect = match docker.inspect_container(&id, None).await {
                Ok(i) => i,
                Err(e) if is_not_found(&e) => continue, // removed meanwhile
                Err(e) => return Err(err("inspect container")(e)),
            };
            let name = inspect
                .name
                .clone()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned();
            if name.ends_with(OLD_SUFFIX) {
                continue;
            }
            let configured = inspect
                .config
                .as_ref()
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            let follows = match follows(
                &configured,
                labels.get(LABEL_IMAGE).map(String::as_str),
                mirror,
            ) {
                Ok(f) => f,
                Err(reason) => {
                    warn!(container = %name, %reason, "managed container skipped");
                    continue;
                }
            };
            let health_timeout = match labels.get(LABEL_HEALTH_TIMEOUT).map(|v| v.parse::<u64>()) {
                None => None,
                Some(Ok(s)) => Some(Duration::from_secs(s)),
                Some(Err(_)) => {
                    warn!(container = %name, "label {LABEL_HEALTH_TIMEOUT} is not a number of seconds; using the default");
                    None
                }
            };
            let image_id = inspect.image.clone().unwrap_or_default();
            let digests = match docker.inspect_image(&image_id).await {
                Ok(image) => repo_digests(
                    &image.repo_digests.unwrap_or_default(),
                    follows.repository.as_str(),
                ),
                Err(_) => Vec::new(),
            };
            let stop_timeout = inspect
                .config
                .as_ref()
                .and_then(|c| c.stop_timeout)
                .map(|s| Duration::from_secs(s.max(0) as u64));
            out.push(Managed {
                stop_timeout,
                id,
                name,
                image: configured,
                follows,
                digests,
                health_timeout,
                running_now: inspect.state.and_then(|s| s.running).unwrap_or(false),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn pull(
        &self,
        source: &str,
        digest: &Digest,
        auth: &PullAuth,
        tag_as: &str,
    ) -> Result<(), RuntimeError> {
        let docker = self.docker().await?;
        let host = source.split('/').next().unwrap_or_default();
        let credentials = DockerCredentials {
            username: Some(auth.username.clone()),
            password: Some(auth.password.clone()),
            serveraddress: Some(host.to_owned()),
            ..Default::default()
        };
        let options = CreateImageOptionsBuilder::new().from_image(source).build();
        let mut stream = docker.create_image(Some(options), None, Some(credentials));
        while let Some(item) = stream.next().await {
            item.map_err(err("pull"))?;
        }
        let image = docker
            .inspect_image(source)
            .await
            .map_err(err("inspect pulled image"))?;
        let digests = image.repo_digests.unwrap_or_default();
        if !digests.iter().any(|d| d.ends_with(&format!("@{digest}"))) {
            return Err(invalid(
                "pull",
                format!("pulled {source} but the image's digests are {digests:?}, not {digest}"),
            ));
        }
        let (repo, tag) = split_reference(tag_as);
        docker
            .tag_image(
                source,
                Some(TagImageOptionsBuilder::new().repo(repo).tag(tag).build()),
            )
            .await
            .map_err(err("tag image"))?;
        debug!(%source, %tag_as, "pulled and tagged");
        Ok(())
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let docker = self.docker().await?;
        let options = StopContainerOptionsBuilder::new()
            .t(timeout.as_secs() as i32)
            .build();
        match docker.stop_container(id, Some(options)).await {
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            other => other.map_err(err("stop container")),
        }
    }

    async fn rename(&self, id: &str, name: &str) -> Result<(), RuntimeError> {
        let docker = self.docker().await?;
        docker
            .rename_container(id, RenameContainerOptionsBuilder::new().name(name).build())
            .await
            .map_err(err("rename container"))
    }

    async fn create_like(&self, old_id: &str, name: &str) -> Result<String, RuntimeError> {
        let old = self
            .get_json("inspect container", &format!("/containers/{old_id}/json"))
            .await?;
        let image_id = old["Image"].as_str().unwrap_or_default();
        let image_config = match self
            .get_json("inspect image", &format!("/images/{image_id}/json"))
            .await
        {
            Ok(image) => image["Config"].clone(),
            Err(_) => Value::Null, // the old image is gone: nothing to subtract
        };
        let plan = recreation(&old, &image_config);
        let path = self.api(&format!("/containers/create?name={name}")).await?;
        let (_, created) = docker_raw::call(
            &self.socket,
            "create container",
            Method::POST,
            &path,
            Some(&plan.body),
        )
        .await?;
        let new_id = created["Id"].as_str().unwrap_or_default().to_owned();
        if new_id.is_empty() {
            return Err(invalid(
                "create container",
                format!("no id in the answer: {created}"),
            ));
        }
        for (network, endpoint) in plan.extra_networks {
            let path = self.api(&format!("/networks/{network}/connect")).await?;
            let body = serde_json::json!({ "Container": new_id, "EndpointConfig": endpoint });
            if let Err(e) = docker_raw::call(
                &self.socket,
                "connect network",
                Method::POST,
                &path,
                Some(&body),
            )
            .await
            {
                // Leave nothing half-made behind: the caller rolls back to the old container.
                let _ = self.remove(&new_id).await;
                return Err(e);
            }
        }
        Ok(new_id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let docker = self.docker().await?;
        match docker.start_container(id, None).await {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            other => other.map_err(err("start container")),
        }
    }

    async fn observe(&self, id: &str) -> Result<Option<Observed>, RuntimeError> {
        let docker = self.docker().await?;
        let inspect = match docker.inspect_container(id, None).await {
            Ok(i) => i,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(err("inspect container")(e)),
        };
        let state = inspect.state.unwrap_or_default();
        Ok(Some(Observed {
            running: state.running.unwrap_or(false),
            health: state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none"),
            restart_count: inspect.restart_count.unwrap_or(0),
            exit_code: state.exit_code,
        }))
    }

    async fn find(&self, name: &str) -> Result<Option<String>, RuntimeError> {
        let docker = self.docker().await?;
        match docker.inspect_container(name, None).await {
            // Docker also resolves id prefixes: only an exact name counts.
            Ok(i) if i.name.as_deref().map(|n| n.trim_start_matches('/')) == Some(name) => Ok(i.id),
            Ok(_) => Ok(None),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(err("inspect container")(e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let docker = self.docker().await?;
        // v = false: volumes, named or anonymous, are never removed with a container.
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(false)
            .build();
        match docker.remove_container(id, Some(options)).await {
            Err(e) if is_not_found(&e) => Ok(()),
            other => other.map_err(err("remove container")),
        }
    }

    async fn image_of(&self, id: &str) -> Result<String, RuntimeError> {
        let docker = self.docker().await?;
        let inspect = docker
            .inspect_container(id, None)
            .await
            .map_err(err("inspect container"))?;
        Ok(inspect.image.unwrap_or_default())
    }

    async fn remove_image_if_unused(&self, image_id: &str) -> Result<(), RuntimeError> {
        let docker = self.docker().await?;
        let users = self.list_all("ancestor", image_id).await?;
        if !users.is_empty() {
            return Ok(());
        }
        // Not forced: Docker refuses if anything still needs the image. No pruning of untagged
        // parents: on a host that also builds images, they are its build cache.
        let options = RemoveImageOptionsBuilder::new().noprune(true).build();
        match docker.remove_image(image_id, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(e) => {
                debug!(image = image_id, error = %e, "old image kept");
                Ok(())
            }
        }
    }

    async fn platform(&self) -> Result<Platform, RuntimeError> {
        self.platform
            .get_or_try_init(|| async {
                let docker = self.docker().await?;
                let v = docker.version().await.map_err(err("version"))?;
                let info = docker.info().await.map_err(err("info"))?;
                Ok(Platform::of_engine(
                    v.os.as_deref().unwrap_or("linux"),
                    v.arch.as_deref().unwrap_or_default(),
                    info.architecture.as_deref().unwrap_or_default(),
                ))
            })
            .await
            .cloned()
    }

    async fn services(&self, mirror: Option<&str>) -> Result<Vec<ManagedService>, RuntimeError> {
        let filters = serde_json::json!({ "label": [format!("{LABEL_ENABLE}=true")] }).to_string();
        let path = self
            .api(&format!("/services?filters={}", url_encode(&filters)))
            .await?;
        let list =
            match docker_raw::call(&self.socket, "list services", Method::GET, &path, None).await {
                Ok((_, v)) => v,
                // Not a manager, or no Swarm: no services here, and nothing wrong.
                Err(e) if e.message.starts_with("HTTP 503") => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
        let mut out = Vec::new();
        for s in list.as_array().map(Vec::as_slice).unwrap_or_default() {
            let spec = &s["Spec"];
            let name = spec["Name"].as_str().unwrap_or_default().to_owned();
            let labels = &spec["Labels"];
            if labels[LABEL_ENABLE].as_str() != Some("true") {
                continue;
            }
            let image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
                .as_str()
                .unwrap_or_default();
            let follows = match follows(image, labels[LABEL_IMAGE].as_str(), mirror) {
                Ok(f) => f,
                Err(reason) => {
                    warn!(service = %name, %reason, "managed service skipped");
                    continue;
                }
            };
            out.push(ManagedService {
                id: s["ID"].as_str().unwrap_or_default().to_owned(),
                digests: image
                    .rsplit_once('@')
                    .and_then(|(_, d)| Digest::parse(d).ok())
                    .into_iter()
                    .collect(),
                rolls_back: spec["UpdateConfig"]["FailureAction"].as_str() == Some("rollback"),
                follows,
                name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn update_service(
        &self,
        id: &str,
        image: &str,
        auth: &PullAuth,
    ) -> Result<Option<ServiceUpdate>, RuntimeError> {
        let current = self
            .get_json("inspect service", &format!("/services/{id}"))
            .await?;
        let version = current["Version"]["Index"]
            .as_u64()
            .ok_or_else(|| invalid("inspect service", format!("no Version.Index in {current}")))?;
        let mut spec = current["Spec"].clone();
        spec["TaskTemplate"]["ContainerSpec"]["Image"] = Value::String(image.to_owned());
        let host = image.split('/').next().unwrap_or_default();
        let credentials = serde_json::json!({
            "username": auth.username,
            "password": auth.password,
            "serveraddress": host,
        });
        let header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE,
            credentials.to_string(),
        );
        let path = self
            .api(&format!("/services/{id}/update?version={version}"))
            .await?;
        let (_, answer) = docker_raw::call_with_headers(
            &self.socket,
            "update service",
            Method::POST,
            &path,
            Some(&spec),
            &[("X-Registry-Auth", &header)],
        )
        .await?;
        for w in answer["Warnings"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            warn!(service = id, warning = %w, "Swarm warning on service update");
        }
        Ok(update_status(&current))
    }

    async fn service_update(&self, id: &str) -> Result<Option<ServiceUpdate>, RuntimeError> {
        let current = self
            .get_json("inspect service", &format!("/services/{id}"))
            .await?;
        Ok(update_status(&current))
    }
}

/// A service's `UpdateStatus`, if it has one.
fn update_status(service: &Value) -> Option<ServiceUpdate> {
    let u = service.get("UpdateStatus")?;
    Some(ServiceUpdate {
        state: u["State"].as_str().unwrap_or_default().to_owned(),
        started_at: u["StartedAt"].as_str().unwrap_or_default().to_owned(),
        message: u["Message"].as_str().unwrap_or_default().to_owned(),
    })
}

/// Percent-encodes a query value.
fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What to send to create the new container, and the networks to connect before start.
pub struct Recreation {
    pub body: Value,
    pub extra_networks: Vec<(String, Value)>,
}

/// Builds the create request from the old container's inspect JSON and its image's config.
pub fn recreation(old: &Value, image_config: &Value) -> Recreation {
    let id = old["Id"].as_str().unwrap_or_default();
    let short_id = &id[..id.len().min(12)];
    let mut config = old["Config"].as_object().cloned().unwrap_or_default();
    drop_image_defaults(&mut config, image_config);
    if config.get("Hostname").and_then(Value::as_str) == Some(short_id) {
        // Docker set it from the old id; the new container gets its own.
        config.remove("Hostname");
    }
    let mut host_config = old["HostConfig"].clone();
    keep_volumes(&mut host_config, old);

    let network_mode = host_config["NetworkMode"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let networks = old["NetworkSettings"]["Networks"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let primary = if network_mode == "default" {
        "bridge".to_owned()
    } else {
        network_mode.clone()
    };
    let mut endpoints = Map::new();
    let mut extra_networks = Vec::new();
    for (name, endpoint) in &networks {
        let settings = endpoint_settings(endpoint, short_id, id);
        if *name == primary {
            endpoints.insert(name.clone(), settings);
        } else {
            extra_networks.push((name.clone(), settings));
        }
    }
    extra_networks.sort_by(|a, b| a.0.cmp(&b.0));

    let mut body = config;
    body.insert("HostConfig".into(), host_config);
    if !endpoints.is_empty() {
        body.insert(
            "NetworkingConfig".into(),
            serde_json::json!({ "EndpointsConfig": endpoints }),
        );
    }
    Recreation {
        body: Value::Object(body),
        extra_networks,
    }
}

/// Removes from `config` what the old image set, so the new image's defaults apply.
fn drop_image_defaults(config: &mut Map<String, Value>, image: &Value) {
    for key in [
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "Healthcheck",
        "StopSignal",
        "Shell",
        "OnBuild",
    ] {
        if config.get(key).is_some_and(|v| *v == image[key]) {
            config.remove(key);
        }
    }
    // Entrypoint from the image but Cmd from the user: keep the user's Cmd only.
    for key in ["Env"] {
        if let (Some(Value::Array(mine)), Value::Array(theirs)) = (config.get_mut(key), &image[key])
        {
            mine.retain(|v| !theirs.contains(v));
        }
    }
    for key in ["Labels", "Volumes", "ExposedPorts"] {
        match (config.get_mut(key), &image[key]) {
            (Some(Value::Object(mine)), Value::Object(theirs)) => {
                mine.retain(|k, v| theirs.get(k) != Some(v));
            }
            (Some(Value::Array(mine)), Value::Array(theirs)) => {
                mine.retain(|v| !theirs.contains(v))
            }
            _ => {}
        }
    }
}

/// Anonymous volumes (from `-v /path` or the image's VOLUME) are recreated empty unless named
/// explicitly: bind every volume mount that the host config does not already name.
fn keep_volumes(host_config: &mut Value, old: &Value) {
    let mut binds: Vec<Value> = host_config["Binds"].as_array().cloned().unwrap_or_default();
    let named_destinations: Vec<String> = binds
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|b| b.split(':').nth(1).map(str::to_owned))
        .chain(
            host_config["Mounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["Target"].as_str().map(str::to_owned)),
        )
        .collect();
    for mount in old["Mounts"].as_array().into_iter().flatten() {
        let (Some(kind), Some(name), Some(dest)) = (
            mount["Type"].as_str(),
            mount["Name"].as_str(),
            mount["Destination"].as_str(),
        ) else {
            continue;
        };
        if kind != "volume" || named_destinations.iter().any(|d| d == dest) {
            continue;
        }
        let mode = if mount["RW"].as_bool() == Some(false) {
            ":ro"
        } else {
            ""
        };
        binds.push(Value::String(format!("{name}:{dest}{mode}")));
    }
    if !binds.is_empty() {
        host_config["Binds"] = Value::Array(binds);
    }
}

/// The user-controlled part of an endpoint: static IPs, aliases (minus the ones Docker made
/// from the old id), links, driver options. Never the MAC address Docker assigned.
fn endpoint_settings(endpoint: &Value, short_id: &str, id: &str) -> Value {
    let mut out = Map::new();
    if let Some(ipam) = endpoint.get("IPAMConfig").filter(|v| !v.is_null()) {
        out.insert("IPAMConfig".into(), ipam.clone());
    }
    if let Some(aliases) = endpoint["Aliases"].as_array() {
        let kept: Vec<Value> = aliases
            .iter()
            .filter(|a| a.as_str().is_some_and(|a| a != short_id && a != id))
            .cloned()
            .collect();
        if !kept.is_empty() {
            out.insert("Aliases".into(), Value::Array(kept));
        }
    }
    for key in ["Links", "DriverOpts"] {
        if let Some(v) = endpoint.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
