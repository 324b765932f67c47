//! The create request of a container's successor, from the old container's inspected JSON.
//!
//! Re-creation keeps the old container's whole configuration. It works on the inspected JSON
//! so that fields this code does not name (resources, devices, capabilities, log config …)
//! are carried over as they are, and removes only what must not be copied: values that came
//! from the old image (so the new image's defaults apply), the hostname Docker derived from
//! the old id, aliases and MAC addresses the Engine made itself, and what the negotiated API
//! version refuses or no longer reports (SPEC §15; the rules in [`networks`] and below, from
//! moby's API changelog). Pure.

mod networks;

use serde_json::{Map, Value};

use super::ApiVersion;
use super::managed::{COMPOSE_IMAGE, names};
use crate::ports::Repoint;

/// What to send to create the new container, and the networks to connect before start.
pub struct Recreation {
    pub body: Value,
    pub extra_networks: Vec<(String, Value)>,
}

/// Builds the create request from the old container's inspect JSON and its image's config,
/// for an Engine that speaks `api`.
pub fn recreation(old: &Value, image_config: &Value, api: ApiVersion) -> Recreation {
    let id = old["Id"].as_str().unwrap_or_default();
    let short_id = &id[..id.len().min(12)];
    let mut config = old["Config"].as_object().cloned().unwrap_or_default();
    drop_image_defaults(&mut config, image_config);
    if config.get("Hostname").and_then(Value::as_str) == Some(short_id) {
        // Docker set it from the old id; the new container gets its own.
        config.remove("Hostname");
    }
    follow_health_rules(&mut config, api);
    let mut host_config = old["HostConfig"].clone();
    keep_volumes(&mut host_config, old);
    if api >= ApiVersion::V1_52
        && let Some(host) = host_config.as_object_mut()
    {
        // Removed from the API in 1.52: ignored if sent, and no longer reported.
        host.remove("KernelMemoryTCP");
    }

    let network_mode = host_config["NetworkMode"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    if network_mode.starts_with("container:") {
        // The Engine fills these in from the namespace's owner, and refuses them on create
        // ("conflicting options: hostname and the network mode").
        config.remove("Hostname");
        config.remove("Domainname");
    }
    let user_mac = networks::take_user_mac(&mut config, &network_mode, api);
    let endpoints = networks::endpoints(old, &network_mode, user_mac, api);

    let mut body = config;
    body.insert("HostConfig".into(), host_config);
    if !endpoints.at_create.is_empty() {
        body.insert(
            "NetworkingConfig".into(),
            serde_json::json!({ "EndpointsConfig": endpoints.at_create }),
        );
    }
    Recreation {
        body: Value::Object(body),
        extra_networks: endpoints.after,
    }
}

/// A health check's `StartInterval` exists from API 1.44; below, the Engine would not take it.
fn follow_health_rules(config: &mut Map<String, Value>, api: ApiVersion) {
    if api < ApiVersion::V1_44
        && let Some(Value::Object(health)) = config.get_mut("Healthcheck")
    {
        health.remove("StartInterval");
    }
}

/// Points a dependent's create request at its parent's successor: namespace modes
/// `container:<old parent>` and `VolumesFrom` entries naming the old parent (by id, id
/// prefix or name, with any `:ro`/`:rw`) name the new parent's id instead.
pub fn repoint(body: &mut Value, parent: &Repoint) {
    let host = &mut body["HostConfig"];
    for key in ["NetworkMode", "IpcMode", "PidMode"] {
        let target = host[key]
            .as_str()
            .and_then(|m| m.strip_prefix("container:"));
        if target.is_some_and(|t| names(t, &parent.old_id, &parent.old_name)) {
            host[key] = Value::String(format!("container:{}", parent.new_id));
        }
    }
    if let Some(from) = host["VolumesFrom"].as_array_mut() {
        for entry in from {
            let Some(text) = entry.as_str() else { continue };
            let (source, mode) = match text.split_once(':') {
                Some((s, m)) => (s, Some(m)),
                None => (text, None),
            };
            if names(source, &parent.old_id, &parent.old_name) {
                let new = match mode {
                    Some(m) => format!("{}:{m}", parent.new_id),
                    None => parent.new_id.clone(),
                };
                *entry = Value::String(new);
            }
        }
    }
}

/// A Compose container keeps being Compose's: its `com.docker.compose.image` names the image
/// it runs now, so Compose v2's next `up` finds nothing to do. Without that label (not a
/// Compose v2 container) nothing changes.
pub fn set_compose_image(body: &mut Value, image_id: &str) {
    if let Some(label) = body["Labels"].get_mut(COMPOSE_IMAGE) {
        *label = Value::String(image_id.to_owned());
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
        if config
            .get(key)
            .is_some_and(|v| same_default(v, &image[key]))
        {
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

/// Whether a container's `value` is the image's `default`. From API 1.52 an image inspect
/// omits empty fields (`WorkingDir`, `User` …) that a container inspect still shows empty.
fn same_default(value: &Value, default: &Value) -> bool {
    let empty = match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    value == default || (default.is_null() && empty)
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

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
