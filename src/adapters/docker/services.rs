//! Swarm services on the Engine API: the managed services, an image update sent with
//! registry auth at the spec version just read (no lost update), and the update's status.
//! The spec goes through as raw JSON so that fields bollard's models drop survive the round
//! trip.

use hyper::Method;
use serde_json::Value;
use tracing::warn;

use super::DockerRuntime;
use crate::event::{Digest, Mirrors, follows};
use crate::model::labels::{
    GateLabels, LABEL_ENABLE, LABEL_IMAGE, LABEL_POLICY, LABEL_SCAN, LABEL_VERIFY, LABEL_WINDOW,
    PolicyLabels, opted_in,
};
use crate::ports::{ManagedService, PullAuth, RuntimeError, ServiceUpdate};

impl DockerRuntime {
    /// Managed services; empty off a manager, without a Swarm, or on an engine without
    /// Swarm at all (Podman answers 404).
    pub(super) async fn list_services(
        &self,
        mirrors: &Mirrors,
    ) -> Result<Vec<ManagedService>, RuntimeError> {
        let filters = serde_json::json!({ "label": [format!("{LABEL_ENABLE}=true")] }).to_string();
        let path = format!("/services?filters={}", url_encode(&filters));
        let list = match self
            .raw("list services", Method::GET, &path, None, &[])
            .await
        {
            Ok(v) => v,
            Err(e) if matches!(e.status, Some(503) | Some(404)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for s in list.as_array().map(Vec::as_slice).unwrap_or_default() {
            if let Some(service) = managed_service(s, mirrors) {
                out.push(service);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn inspect_service(&self, id: &str) -> Result<Value, RuntimeError> {
        let path = format!("/services/{id}");
        self.raw("inspect service", Method::GET, &path, None, &[])
            .await
    }

    pub(super) async fn send_service_update(
        &self,
        id: &str,
        image: &str,
        auth: &PullAuth,
    ) -> Result<Option<ServiceUpdate>, RuntimeError> {
        let current = self.inspect_service(id).await?;
        let version = current["Version"]["Index"].as_u64().ok_or_else(|| {
            RuntimeError::permanent("inspect service", format!("no Version.Index in {current}"))
        })?;
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
        let answer = self
            .raw(
                "update service",
                Method::POST,
                &format!("/services/{id}/update?version={version}"),
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

    pub(super) async fn read_service_update(
        &self,
        id: &str,
    ) -> Result<Option<ServiceUpdate>, RuntimeError> {
        let current = self.inspect_service(id).await?;
        Ok(update_status(&current))
    }
}

/// A listed service, if it opted in and names a followable image.
fn managed_service(s: &Value, mirrors: &Mirrors) -> Option<ManagedService> {
    let spec = &s["Spec"];
    let name = spec["Name"].as_str().unwrap_or_default().to_owned();
    let labels = &spec["Labels"];
    if !opted_in(labels[LABEL_ENABLE].as_str()) {
        return None;
    }
    let image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .unwrap_or_default();
    let follows = match follows(image, labels[LABEL_IMAGE].as_str(), mirrors) {
        Ok(f) => f,
        Err(reason) => {
            warn!(service = %name, %reason, "managed service skipped");
            return None;
        }
    };
    Some(ManagedService {
        id: s["ID"].as_str().unwrap_or_default().to_owned(),
        digests: image
            .rsplit_once('@')
            .and_then(|(_, d)| Digest::parse(d).ok())
            .into_iter()
            .collect(),
        rolls_back: spec["UpdateConfig"]["FailureAction"].as_str() == Some("rollback"),
        policy: PolicyLabels {
            policy: labels[LABEL_POLICY].as_str().map(str::to_owned),
            window: labels[LABEL_WINDOW].as_str().map(str::to_owned),
        },
        gates: GateLabels {
            verify: labels[LABEL_VERIFY].as_str().map(str::to_owned),
            scan: labels[LABEL_SCAN].as_str().map(str::to_owned),
            ..GateLabels::default()
        },
        scope: labels[crate::model::labels::SCOPE]
            .as_str()
            .map(str::to_owned),
        follows,
        name,
    })
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
