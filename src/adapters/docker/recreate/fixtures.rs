//! The re-create over every Engine's recorded inspect answers (`tests/fixtures/engines/inspect/`,
//! re-recorded by `tests/fixtures/engines/record.sh`): at each Engine's negotiated API version,
//! what the user set is kept and nothing the version's rules forbid is sent.
//!
//! Each Engine got the same containers (`tests/record_inspect.rs`): `whole` (static IP
//! 10.187.K.10 and a user-set MAC on network 1 with alias `web`, network 2 connected after
//! with alias `web-back`, a named and an anonymous volume, a health check with start period —
//! and start interval from API 1.44 —, `max-size=1m` logs, `MODE=prod`); `assigned-mac` (network
//! 1, nothing set); from API 1.44 `second-network-mac` (a MAC the user set on network 2).

use serde_json::{Value, json};

use super::*;
use crate::adapters::docker::podman::drop_injected;

mod macs;
mod rules;

macro_rules! recorded {
    ($file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/engines/inspect/",
            $file,
            ".json"
        ))
    };
}

/// One Engine's recordings, read at the API version the agent negotiated with it.
struct Engine {
    name: &'static str,
    api: ApiVersion,
    /// The third octet of its networks (`tests/record_inspect.rs`).
    k: u8,
    podman: bool,
    whole: &'static str,
    assigned: &'static str,
    image: &'static str,
    /// From API 1.44: a MAC the user set on network 2 only.
    second_network_mac: Option<&'static str>,
    /// Whether its inspect shows the MAC the user set (`Config.MacAddress`): not at 1.52.
    shows_user_mac: bool,
}

const fn v(minor: u16) -> ApiVersion {
    ApiVersion::new(1, minor)
}

fn engines() -> Vec<Engine> {
    let docker = |name, api, k, whole, assigned, image| Engine {
        name,
        api,
        k,
        podman: false,
        whole,
        assigned,
        image,
        second_network_mac: None,
        shows_user_mac: true,
    };
    vec![
        docker(
            "docker20",
            v(41),
            20,
            recorded!("docker20-api1.41-whole"),
            recorded!("docker20-api1.41-assigned-mac"),
            recorded!("docker20-api1.41-image"),
        ),
        docker(
            "docker26",
            v(45),
            26,
            recorded!("docker26-api1.45-whole"),
            recorded!("docker26-api1.45-assigned-mac"),
            recorded!("docker26-api1.45-image"),
        )
        .with_second(recorded!("docker26-api1.45-second-network-mac")),
        docker(
            "docker28",
            v(51),
            28,
            recorded!("docker28-api1.51-whole"),
            recorded!("docker28-api1.51-assigned-mac"),
            recorded!("docker28-api1.51-image"),
        )
        .with_second(recorded!("docker28-api1.51-second-network-mac")),
        docker(
            "docker28-containerd",
            v(51),
            29,
            recorded!("docker28-containerd-api1.51-whole"),
            recorded!("docker28-containerd-api1.51-assigned-mac"),
            recorded!("docker28-containerd-api1.51-image"),
        )
        .with_second(recorded!("docker28-containerd-api1.51-second-network-mac")),
        Engine {
            shows_user_mac: false,
            ..docker(
                "docker29 (derived)",
                v(52),
                28,
                recorded!("docker29-api1.52-derived-whole"),
                recorded!("docker29-api1.52-derived-assigned-mac"),
                recorded!("docker29-api1.52-derived-image"),
            )
            .with_second(recorded!("docker29-api1.52-derived-second-network-mac"))
        },
        Engine {
            podman: true,
            ..docker(
                "podman4",
                v(41),
                43,
                recorded!("podman4-api1.41-whole"),
                recorded!("podman4-api1.41-assigned-mac"),
                recorded!("podman4-api1.41-image"),
            )
        },
        Engine {
            podman: true,
            ..docker(
                "podman5",
                v(41),
                54,
                recorded!("podman5-api1.41-whole"),
                recorded!("podman5-api1.41-assigned-mac"),
                recorded!("podman5-api1.41-image"),
            )
        },
    ]
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("a recorded inspect answer")
}

impl Engine {
    fn with_second(self, recorded: &'static str) -> Self {
        Self {
            second_network_mac: Some(recorded),
            ..self
        }
    }

    fn net(&self, n: u8) -> String {
        format!("edt-rec-{}-{n}", self.k)
    }

    fn user_mac(&self) -> String {
        format!("02:42:0a:bb:{:02x}:10", self.k)
    }

    /// What the adapter sends to create the successor of `old` at `api`.
    fn successor(&self, old: &Value, api: ApiVersion) -> Recreation {
        let image = parse(self.image);
        let mut plan = recreation(old, &image["Config"], api);
        if self.podman {
            let hostname = old["Config"]["Hostname"].as_str().unwrap_or_default();
            drop_injected(&mut plan.body, hostname, &image["Config"]["Env"]);
        }
        plan
    }
}

/// Every endpoint the plan gives, at create or connected after it.
fn all_endpoints(plan: &Recreation) -> Vec<(String, Value)> {
    let at_create = plan.body["NetworkingConfig"]["EndpointsConfig"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(n, e)| (n.clone(), e.clone()));
    at_create.chain(plan.extra_networks.clone()).collect()
}

fn endpoint(plan: &Recreation, network: &str) -> Value {
    let found = all_endpoints(plan).into_iter().find(|(n, _)| n == network);
    found.map(|(_, e)| e).unwrap_or(Value::Null)
}

/// What the rules of `api` forbid in a create request made from `old` (empty: none).
fn forbidden(plan: &Recreation, old: &Value, api: ApiVersion) -> Vec<String> {
    let body = &plan.body;
    let mut found = Vec::new();
    if api >= ApiVersion::V1_44 && body.get("MacAddress").is_some() {
        found.push(format!("Config.MacAddress at {api}"));
    }
    let health = &body["Healthcheck"];
    if api < ApiVersion::V1_44 && health.get("StartInterval").is_some() {
        found.push(format!("StartInterval at {api}"));
    }
    if api >= ApiVersion::V1_52 && body["HostConfig"].get("KernelMemoryTCP").is_some() {
        found.push(format!("KernelMemoryTCP at {api}"));
    }
    let id = old["Id"].as_str().unwrap_or_default();
    for (network, e) in all_endpoints(plan) {
        if api < ApiVersion::V1_48 && e.get("GwPriority").is_some() {
            found.push(format!("GwPriority at {api} on {network}"));
        }
        if e.get("DNSNames").is_some() {
            found.push(format!("DNSNames sent on {network}"));
        }
        let aliases = e["Aliases"].as_array().cloned().unwrap_or_default();
        if aliases.iter().any(|a| a == &id[..12] || a == id) {
            found.push(format!("the old id as an alias on {network}"));
        }
        let assigned = &old["NetworkSettings"]["Networks"][&network]["MacAddress"];
        let user = &old["Config"]["MacAddress"];
        if e.get("MacAddress")
            .is_some_and(|m| m == assigned && m != user)
        {
            found.push(format!("the Engine-assigned MAC {assigned} on {network}"));
        }
    }
    let env = body["Env"].as_array().cloned().unwrap_or_default();
    let hostname = format!(
        "HOSTNAME={}",
        old["Config"]["Hostname"].as_str().unwrap_or("")
    );
    for e in env.iter().filter_map(Value::as_str) {
        if e == "container=podman" || e == "TERM=xterm" || e == hostname {
            found.push(format!("injected env {e}"));
        }
    }
    if body["Hostname"].as_str() == Some(&id[..12]) {
        found.push("the old short-id hostname".into());
    }
    found
}

/// Every `MacAddress` the plan sends (container-wide or on an endpoint).
fn macs_sent(plan: &Recreation) -> Vec<String> {
    let mut macs: Vec<String> = plan
        .body
        .get("MacAddress")
        .map(|m| m.to_string())
        .into_iter()
        .collect();
    for (network, e) in all_endpoints(plan) {
        if let Some(m) = e.get("MacAddress") {
            macs.push(format!("{m} on {network}"));
        }
    }
    macs
}

fn by_name(name: &str) -> Engine {
    engines().into_iter().find(|e| e.name == name).unwrap()
}

#[test]
fn on_every_engine_every_network_with_its_aliases_the_volumes_health_check_and_env_are_kept() {
    for e in engines() {
        let old = parse(e.whole);
        let plan = e.successor(&old, e.api);
        let body = &plan.body;
        let name = e.name;
        assert_eq!(
            endpoint(&plan, &e.net(1))["Aliases"],
            json!(["web"]),
            "{name}"
        );
        assert_eq!(
            endpoint(&plan, &e.net(2))["Aliases"],
            json!(["web-back"]),
            "{name}"
        );
        assert_eq!(all_endpoints(&plan).len(), 2, "{name}: no other network");
        let binds: Vec<&str> = body["HostConfig"]["Binds"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no binds"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let named = format!("{}:/named", e.net(9));
        assert!(
            binds.iter().any(|b| b.starts_with(&named)),
            "{name}: {binds:?}"
        );
        let anon = old["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == "/anon")
            .unwrap()["Name"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            binds
                .iter()
                .any(|b| b.starts_with(&format!("{anon}:/anon"))),
            "{name}: the anonymous volume, by its name: {binds:?}"
        );
        let health = &body["Healthcheck"];
        assert_eq!(
            health["Test"],
            json!(["CMD-SHELL", "/bin/busybox true"]),
            "{name}"
        );
        assert_eq!(health["StartPeriod"], json!(60_000_000_000u64), "{name}");
        assert_eq!(
            body["Env"],
            json!(["MODE=prod"]),
            "{name}: nothing from the image or the Engine"
        );
        assert_eq!(
            forbidden(&plan, &old, e.api),
            Vec::<String>::new(),
            "{name}"
        );
    }
}

#[test]
fn on_docker_engines_the_static_ip_and_the_log_config_are_kept() {
    // Podman's compatible inspect shows neither (IPAMConfig null, LogConfig without its
    // size; the size is read from its own inspect: podman.rs).
    for e in engines().into_iter().filter(|e| !e.podman) {
        let plan = e.successor(&parse(e.whole), e.api);
        assert_eq!(
            endpoint(&plan, &e.net(1))["IPAMConfig"]["IPv4Address"],
            format!("10.187.{}.10", e.k),
            "{}",
            e.name
        );
        let log = &plan.body["HostConfig"]["LogConfig"];
        assert_eq!(log["Type"], "json-file", "{}", e.name);
        assert_eq!(log["Config"]["max-size"], "1m", "{}", e.name);
    }
}

#[test]
fn the_old_short_id_alias_is_dropped_and_dns_names_are_never_sent_on_any_engine() {
    for e in engines() {
        let old = parse(e.whole);
        let short = &old["Id"].as_str().unwrap()[..12];
        let shown = old["NetworkSettings"]["Networks"][&e.net(1)].clone();
        // Below 1.45 (and on Podman) the short id is an alias; from 1.44 it is a DNS name.
        let in_aliases = shown["Aliases"]
            .as_array()
            .is_some_and(|a| a.contains(&json!(short)));
        let in_dns = shown["DNSNames"]
            .as_array()
            .is_some_and(|a| a.contains(&json!(short)));
        assert!(in_aliases || in_dns, "{}: {shown}", e.name);
        for api in [e.api, ApiVersion::V1_41, ApiVersion::V1_52] {
            let plan = e.successor(&old, api);
            for (network, endpoint) in all_endpoints(&plan) {
                assert!(
                    !endpoint.to_string().contains(short),
                    "{} on {network}: {endpoint}",
                    e.name
                );
                assert!(
                    endpoint.get("DNSNames").is_none(),
                    "{} on {network}",
                    e.name
                );
            }
        }
    }
}

#[test]
fn on_podman_the_injected_env_short_id_hostname_and_alias_are_not_carried() {
    for name in ["podman4", "podman5"] {
        let e = by_name(name);
        let old = parse(e.whole);
        let env = old["Config"]["Env"].to_string();
        assert!(
            env.contains("container=podman") && env.contains("HOSTNAME="),
            "{name}: {env}"
        );
        let plan = e.successor(&old, e.api);
        assert_eq!(plan.body["Env"], json!(["MODE=prod"]), "{name}");
        assert!(plan.body.get("Hostname").is_none(), "{name}");
        assert_eq!(
            forbidden(&plan, &old, e.api),
            Vec::<String>::new(),
            "{name}"
        );
    }
}
