//! A successor's network endpoints, by the negotiated API version's rules (moby's API
//! changelog):
//!
//! - 1.44: a MAC address per endpoint (`EndpointSettings.MacAddress`; the container-wide
//!   `Config.MacAddress` deprecated, then refused on create from 1.52), and every network
//!   given at create (below, one network at create and the others connected after it);
//! - 1.45: `Aliases` hold what was submitted; the short id is in `DNSNames`, which the Engine
//!   derives and which is never sent back;
//! - 1.48: `GwPriority`, which older versions do not take.
//!
//! Only a MAC address the user set is carried over, never one the Engine assigned. Inspect
//! shows every endpoint's MAC as it is, assigned or not; the one the user set is the
//! container-wide `Config.MacAddress`: on Docker 20.10 what the create request held, on
//! Docker 26–29 (API ≤ 1.51) the address asked for on the container's first network
//! (`HostConfig.NetworkMode`), which the Engine reports there for older clients. A MAC the user
//! set on another network is not shown by any version and cannot be told from an assigned one:
//! it is not carried over.

use serde_json::{Map, Value};

use super::ApiVersion;

/// The endpoints of the successor: those given at create, and those connected after it.
pub(super) struct Endpoints {
    pub at_create: Map<String, Value>,
    pub after: Vec<(String, Value)>,
}

/// Takes the user's MAC address out of `config`: from 1.44 it goes to the first network's
/// endpoint (returned); below, the container-wide field stays where the Engine takes it.
pub(super) fn take_user_mac(
    config: &mut Map<String, Value>,
    network_mode: &str,
    api: ApiVersion,
) -> Option<Value> {
    let set = config
        .get("MacAddress")
        .is_some_and(|m| m.as_str().is_some_and(|m| !m.is_empty()));
    if !set {
        config.remove("MacAddress");
        return None;
    }
    // host, none and container:… have no endpoint of their own to carry it.
    let own_endpoint = !matches!(network_mode, "host" | "none") && !network_mode.contains(':');
    if api < ApiVersion::V1_44 && own_endpoint {
        return None;
    }
    let mac = config.remove("MacAddress");
    mac.filter(|_| own_endpoint)
}

/// The container's first network, as inspect names it.
fn primary(network_mode: &str) -> &str {
    if network_mode == "default" {
        "bridge"
    } else {
        network_mode
    }
}

/// Every network of `old` with what the user set on it; `user_mac` (from [`take_user_mac`])
/// goes to the first network.
pub(super) fn endpoints(
    old: &Value,
    network_mode: &str,
    user_mac: Option<Value>,
    api: ApiVersion,
) -> Endpoints {
    let id = old["Id"].as_str().unwrap_or_default();
    let ids = [&id[..id.len().min(12)], id];
    let networks = old["NetworkSettings"]["Networks"].as_object();
    let mut primary = primary(network_mode);
    if let Some(shown) = networks.filter(|n| !n.contains_key(primary)) {
        // Podman names the mode (`bridge`), not the network: the first network stands in
        // (Podman creates on the networks given with it, not on its default one).
        primary = shown.keys().min().map_or(primary, String::as_str);
    }
    let mut at_create = Map::new();
    let mut after = Vec::new();
    for (name, endpoint) in networks.into_iter().flatten() {
        let settings = endpoint_settings(endpoint, ids, api);
        if name == primary || api >= ApiVersion::V1_44 {
            at_create.insert(name.clone(), settings);
        } else {
            after.push((name.clone(), settings));
        }
    }
    after.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(mac) = user_mac {
        let endpoint = at_create
            .entry(primary.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        endpoint["MacAddress"] = mac;
    }
    Endpoints { at_create, after }
}

/// The user-controlled part of an endpoint: static IPs, aliases (minus the ones Docker made
/// from the old id), links, driver options, and from 1.48 the gateway priority. Never its MAC
/// address (see [`take_user_mac`]) nor its `DNSNames`.
fn endpoint_settings(endpoint: &Value, old_ids: [&str; 2], api: ApiVersion) -> Value {
    let mut out = Map::new();
    if let Some(ipam) = endpoint.get("IPAMConfig").filter(|v| !v.is_null()) {
        out.insert("IPAMConfig".into(), ipam.clone());
    }
    if let Some(aliases) = endpoint["Aliases"].as_array() {
        let kept: Vec<Value> = aliases
            .iter()
            .filter(|a| a.as_str().is_some_and(|a| !old_ids.contains(&a)))
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
    let priority = endpoint.get("GwPriority").filter(|p| p.as_i64() != Some(0));
    if let Some(priority) = priority.filter(|p| !p.is_null() && api >= ApiVersion::V1_48) {
        out.insert("GwPriority".into(), priority.clone());
    }
    Value::Object(out)
}
