//! [`Runtime`] on the Docker Engine API (or Podman's Docker-compatible service): one client
//! for one Engine at the address `DOCKER_HOST` gives (`unix://` or `tcp://`), API version
//! negotiated. bollard where its typed calls are enough; the raw-JSON path of [`engine`]
//! where bollard's models would drop fields (inspect → create, service specs). Every call
//! has a timeout: a hung Engine fails the call as transient, it never holds a lock forever.

mod api_version;
mod archive;
mod create;
mod engine;
mod exec;
mod health;
mod image_facts;
mod info;
mod managed;
mod neighbours;
mod podman;
mod pull;
mod recreate;
mod services;

use std::future::Future;
use std::time::Duration;

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, RenameContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use hyper::Method;
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::debug;

pub use api_version::ApiVersion;
pub use engine::Endpoint;
pub use podman::Engine;
pub use recreate::{Recreation, recreation};

use crate::event::{Digest, Mirrors};
use crate::image::Platform;
use crate::ports::{
    Dependent, ExecRun, LABEL_ENABLE, Managed, ManagedService, Observed, Ordered, PullAuth,
    Repoint, Runtime, RuntimeError, ServiceUpdate,
};

/// Any one Engine call other than a pull or a stop, unless set with
/// [`DockerRuntime::with_call_timeout`].
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A pull of a large image over a slow site link must not be cut off early.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A stop may take the container's stop timeout, and then this long to kill it.
const STOP_MARGIN: Duration = Duration::from_secs(30);

/// The Engine. The connection (and API version negotiation) is made on first use and
/// retried on the next call if the Engine was down.
pub struct DockerRuntime {
    endpoint: Endpoint,
    call_timeout: Duration,
    client: OnceCell<Docker>,
    platform: OnceCell<Platform>,
    engine: OnceCell<Engine>,
    /// Hook execs that outlived their timeout, by container id: no second copy is started
    /// in that container while one still runs.
    overdue_hooks: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// Maps a bollard error: an HTTP answer keeps its status; no answer is transient.
fn err(operation: &'static str) -> impl Fn(bollard::errors::Error) -> RuntimeError {
    use bollard::errors::Error as E;
    move |e| match e {
        E::DockerResponseServerError {
            status_code,
            message,
        } => podman::http_error(operation, status_code, message),
        E::DockerStreamError { .. } | E::JsonDataError { .. } | E::JsonSerdeError { .. } => {
            RuntimeError::permanent(operation, e.to_string())
        }
        other => RuntimeError::transient(operation, other.to_string()),
    }
}

/// Runs one bollard call within `limit`.
async fn timed<T>(
    operation: &'static str,
    limit: Duration,
    call: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, RuntimeError> {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r.map_err(err(operation)),
        Err(_) => Err(RuntimeError::timed_out(operation, limit)),
    }
}

impl DockerRuntime {
    /// `docker_host`: the value of `DOCKER_HOST`, if set (read once at start-up). An address
    /// that is neither `unix://` nor `tcp://` is refused with a message naming it.
    pub fn new(docker_host: Option<&str>) -> Result<Self, String> {
        Ok(Self {
            endpoint: Endpoint::from_docker_host(docker_host)?,
            call_timeout: CALL_TIMEOUT,
            client: OnceCell::new(),
            platform: OnceCell::new(),
            overdue_hooks: Default::default(),
            engine: OnceCell::new(),
        })
    }

    /// Sets the limit of every call other than pulls and stops (tests of a hung Engine).
    pub fn with_call_timeout(mut self, limit: Duration) -> Self {
        self.call_timeout = limit;
        self
    }

    /// The Engine's address, as operators write it.
    pub fn address(&self) -> String {
        self.endpoint.display()
    }

    async fn docker(&self) -> Result<&Docker, RuntimeError> {
        self.client
            .get_or_try_init(|| async {
                // The client-wide timeout is the outer bound; each call has its own below.
                let secs = PULL_TIMEOUT.as_secs() + 60;
                let version = bollard::API_DEFAULT_VERSION;
                let docker = match &self.endpoint {
                    Endpoint::Unix(p) => {
                        Docker::connect_with_socket(&p.to_string_lossy(), secs, version)
                    }
                    Endpoint::Tcp(a) => Docker::connect_with_http(a, secs, version),
                }
                .map_err(err("connect"))?;
                timed(
                    "negotiate API version",
                    self.call_timeout,
                    docker.negotiate_version(),
                )
                .await
            })
            .await
    }

    /// One raw-JSON call at the negotiated API version.
    async fn raw(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, RuntimeError> {
        let version = self.api_version().await?;
        self.raw_at(version, operation, method, path, body, headers)
            .await
    }

    /// The negotiated API version, whose rules a re-created container follows.
    async fn api_version(&self) -> Result<ApiVersion, RuntimeError> {
        let version = self.docker().await?.client_version().to_string();
        version
            .parse()
            .map_err(|why| RuntimeError::permanent("negotiate API version", why))
    }

    /// One raw-JSON call at API `version` (at most the negotiated one).
    async fn raw_at(
        &self,
        version: ApiVersion,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, RuntimeError> {
        let path = format!("/v{version}{path}");
        let call = engine::Call {
            operation,
            method,
            path: &path,
            body,
            headers,
            timeout: self.call_timeout,
        };
        engine::call(&self.endpoint, call).await
    }

    /// Every container (running or not), optionally matching one list filter. Read as raw
    /// JSON first: Podman 5 names states Docker's model does not know (see
    /// [`podman::docker_states`]).
    async fn list(
        &self,
        filter: Option<(&str, &str)>,
    ) -> Result<Vec<bollard::models::ContainerSummary>, RuntimeError> {
        let mut path = "/containers/json?all=true".to_owned();
        if let Some((k, v)) = filter {
            let filters = serde_json::json!({ k: [v] }).to_string();
            path.push_str("&filters=");
            path.push_str(
                &url::form_urlencoded::byte_serialize(filters.as_bytes()).collect::<String>(),
            );
        }
        let mut list = self
            .raw("list containers", Method::GET, &path, None, &[])
            .await?;
        if let Some(items) = list.as_array_mut() {
            items
                .iter_mut()
                .for_each(|c| podman::docker_states(c, "State"));
        }
        serde_json::from_value(list)
            .map_err(|e| RuntimeError::permanent("list containers", e.to_string()))
    }

    /// Container `id`'s inspect as raw JSON; `None` when there is no such container.
    async fn inspect_json(&self, id: &str) -> Result<Option<Value>, RuntimeError> {
        let path = format!("/containers/{id}/json");
        match self
            .raw("inspect container", Method::GET, &path, None, &[])
            .await
        {
            Ok(i) => Ok(Some(i)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `None` when there is no such container. Raw JSON first, as [`Self::list`].
    async fn inspect(&self, id: &str) -> Result<Option<ContainerInspectResponse>, RuntimeError> {
        let Some(mut inspect) = self.inspect_json(id).await? else {
            return Ok(None);
        };
        podman::docker_states(&mut inspect["State"], "Status");
        serde_json::from_value(inspect)
            .map(Some)
            .map_err(|e| RuntimeError::permanent("inspect container", e.to_string()))
    }
}

impl Runtime for DockerRuntime {
    async fn managed(&self, mirrors: &Mirrors) -> Result<Vec<Managed>, RuntimeError> {
        let list = self
            .list(Some(("label", &format!("{LABEL_ENABLE}=true"))))
            .await?;
        let mut out = Vec::new();
        for id in list.into_iter().filter_map(|s| s.id) {
            // Removed meanwhile: not ours to list.
            let Some(inspect) = self.inspect(&id).await? else {
                continue;
            };
            if let Some(m) = self.to_managed(inspect, mirrors).await? {
                out.push(m);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn inspect_managed(
        &self,
        name: &str,
        mirrors: &Mirrors,
    ) -> Result<Option<Managed>, RuntimeError> {
        match self.inspect(name).await? {
            // The Engine also resolves id prefixes: only the exact name counts.
            Some(i) if i.name.as_deref().map(|n| n.trim_start_matches('/')) == Some(name) => {
                self.to_managed(i, mirrors).await
            }
            _ => Ok(None),
        }
    }

    async fn dependents(&self, id: &str) -> Result<Vec<Dependent>, RuntimeError> {
        self.find_dependents(id).await
    }

    async fn ordering(&self) -> Result<Vec<Ordered>, RuntimeError> {
        self.find_ordering().await
    }

    async fn exec(
        &self,
        id: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<ExecRun, RuntimeError> {
        self.run_exec(id, command, timeout).await
    }

    async fn create_dependent(
        &self,
        old_id: &str,
        name: &str,
        parent: &Repoint,
    ) -> Result<String, RuntimeError> {
        self.create_from(old_id, name, Some(parent)).await
    }

    async fn pull(
        &self,
        source: &str,
        digest: &Digest,
        auth: &PullAuth,
        tag_as: &str,
    ) -> Result<(), RuntimeError> {
        self.pull_by_digest(source, digest, auth, tag_as).await
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let docker = self.docker().await?;
        let options = StopContainerOptionsBuilder::new()
            .t(timeout.as_secs() as i32)
            .build();
        let call = docker.stop_container(id, Some(options));
        match timed("stop container", timeout + STOP_MARGIN, call).await {
            // 304: already stopped.
            Err(e) if e.status == Some(304) => Ok(()),
            other => other,
        }
    }

    async fn rename(&self, id: &str, name: &str) -> Result<(), RuntimeError> {
        let docker = self.docker().await?;
        let options = RenameContainerOptionsBuilder::new().name(name).build();
        timed(
            "rename container",
            self.call_timeout,
            docker.rename_container(id, options),
        )
        .await
    }

    async fn create_like(&self, old_id: &str, name: &str) -> Result<String, RuntimeError> {
        self.create_from(old_id, name, None).await
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let docker = self.docker().await?;
        let call =
            docker.start_container(id, None::<bollard::query_parameters::StartContainerOptions>);
        match timed("start container", self.call_timeout, call).await {
            Err(e) if e.status == Some(304) => Ok(()),
            other => other,
        }
    }

    async fn observe(&self, id: &str) -> Result<Option<Observed>, RuntimeError> {
        self.observed(id).await
    }

    async fn find(&self, name: &str) -> Result<Option<String>, RuntimeError> {
        Ok(match self.inspect(name).await? {
            // The Engine also resolves id prefixes: only an exact name counts.
            Some(i) if i.name.as_deref().map(|n| n.trim_start_matches('/')) == Some(name) => i.id,
            _ => None,
        })
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let docker = self.docker().await?;
        // v = false: volumes, named or anonymous, are never removed with a container.
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(false)
            .build();
        let call = docker.remove_container(id, Some(options));
        match timed("remove container", self.call_timeout, call).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    async fn image_of(&self, id: &str) -> Result<String, RuntimeError> {
        let inspect = self.inspect(id).await?.ok_or_else(|| {
            RuntimeError::http("inspect container", 404, format!("no container {id}"))
        })?;
        Ok(inspect.image.unwrap_or_default())
    }

    async fn load(&self, body: crate::ports::ArchiveBody) -> Result<Vec<String>, RuntimeError> {
        self.load_archive(body).await
    }

    async fn image_ids(&self) -> Result<std::collections::HashSet<String>, RuntimeError> {
        self.list_image_ids().await
    }

    async fn has_image(&self, image_id: &str) -> Result<bool, RuntimeError> {
        self.image_exists(image_id).await
    }

    async fn tag(&self, image_id: &str, reference: &str) -> Result<(), RuntimeError> {
        self.tag_local(image_id, reference).await
    }

    async fn remove_image_if_unused(&self, image_id: &str) -> Result<(), RuntimeError> {
        let users = self.list(Some(("ancestor", image_id))).await?;
        if !users.is_empty() {
            return Ok(());
        }
        // Not forced: Docker refuses if anything still needs the image. No pruning of untagged
        // parents: on a host that also builds images, they are its build cache.
        let docker = self.docker().await?;
        let options = RemoveImageOptionsBuilder::new().noprune(true).build();
        let call = docker.remove_image(image_id, Some(options), None);
        if let Err(e) = timed("remove image", self.call_timeout, call).await {
            debug!(image = image_id, error = %e, "old image kept");
        }
        Ok(())
    }

    async fn platform(&self) -> Result<Platform, RuntimeError> {
        self.platform
            .get_or_try_init(|| async {
                let docker = self.docker().await?;
                let v = timed("version", self.call_timeout, docker.version()).await?;
                let info = timed("info", self.call_timeout, docker.info()).await?;
                Ok(Platform::of_engine(
                    v.os.as_deref().unwrap_or("linux"),
                    v.arch.as_deref().unwrap_or_default(),
                    info.architecture.as_deref().unwrap_or_default(),
                ))
            })
            .await
            .cloned()
    }

    async fn services(&self, mirrors: &Mirrors) -> Result<Vec<ManagedService>, RuntimeError> {
        self.list_services(mirrors).await
    }

    async fn update_service(
        &self,
        id: &str,
        image: &str,
        auth: &PullAuth,
    ) -> Result<Option<ServiceUpdate>, RuntimeError> {
        self.send_service_update(id, image, auth).await
    }

    async fn service_update(&self, id: &str) -> Result<Option<ServiceUpdate>, RuntimeError> {
        self.read_service_update(id).await
    }
}
