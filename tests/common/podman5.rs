//! The settings of a Podman 5 service of the tests' own (trixie's podman 5.x, made runnable on
//! Debian 12 by `scripts/podman5.sh` into `.tools/podman5/`), beside the system's Podman 4.3
//! and apart from it: its own `containers.conf` (`CONTAINERS_CONF`: no other file is read),
//! `storage.conf`, `registries.conf`, network config dir and default network — a bridge of its
//! own (`edtp5bN`, 10.197.x/24; never the shared `podman0` and 10.88/16 of the built-in
//! default network), networks made through the API from 10.196/16 — with netavark 1.14's
//! nftables driver (its own `inet netavark` table; the system's netavark 1.4 uses iptables).
//! Debian 12's conmon and runc; catatonit for `--init`.
//!
//! Edges, checked with Docker's 28.5 CLI on Podman 5.4.2's Docker-compatible API:
//! - `docker login 127.0.0.1:PORT` fails ("server gave HTTP response to HTTPS client"): the
//!   compat `/auth` handler sets TLS verification itself and ignores `registries.conf`'s
//!   `insecure` (only `localhost:` is let through). Push and pull with the CLI's stored
//!   credentials work: [`login`] writes them.
//! - The registries' ports are not known when the service starts and Podman reads
//!   `registries.conf` once: the entry is `location = "127.0.0.1"`, which containers/image
//!   also matches for `127.0.0.1:PORT` (a prefix followed by `:`; its sources call that
//!   unintended). If a Podman stops matching it, pushes fail with the HTTPS error above.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::docker::{REGISTRY_PASSWORD, REGISTRY_USER};

const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/podman5");

/// The patched Podman 5 binary.
pub fn binary() -> PathBuf {
    let bin = Path::new(TOOLS).join("bin/podman");
    assert!(
        bin.exists(),
        "{} not found: run ./scripts/setup.sh (scripts/fetch-tools.sh, then scripts/podman5.sh)",
        bin.display()
    );
    bin
}

/// Podman 5's package version (`5.4.2+ds1-2+b2`).
pub fn version() -> String {
    std::fs::read_to_string(Path::new(TOOLS).join("VERSION"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Writes the configuration of a service rooted at `dir` (`registry`: an insecure registry
/// location); returns the environment its `podman` commands need.
pub fn configure(dir: &Path, registry: &str) -> Vec<(String, PathBuf)> {
    // A number no other Podman 5 service, of this test process or another beside it, holds:
    // its default network and bridge, and its pool for networks made through the API
    // (10.196.{32n}.0/19: 32 networks of /24).
    let n = super::claim_slot("podman5", 8);
    let network = format!("edtp5-{n}");
    let tools = Path::new(TOOLS);
    let networks = dir.join("networks");
    std::fs::create_dir_all(&networks).unwrap();
    let conf = format!(
        r#"[containers]
default_ulimits = []
init_path = "{init}"
seccomp_profile = "{seccomp}"
[network]
network_backend = "netavark"
network_config_dir = "{networks}"
default_network = "{network}"
firewall_driver = "nftables"
default_subnet_pools = [{{"base" = "10.196.{pool}.0/19", "size" = 24}}]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
helper_binaries_dir = ["{helpers}"]
conmon_path = ["/usr/bin/conmon"]
runtime = "runc"
database_backend = "sqlite"
"#,
        init = tools.join("libexec/catatonit").display(),
        seccomp = tools.join("share/seccomp.json").display(),
        networks = networks.display(),
        events = dir.join("events.log").display(),
        helpers = tools.join("libexec").display(),
        pool = n * 32,
    );
    std::fs::write(dir.join("containers.conf"), conf).unwrap();
    let default = serde_json::json!({
        "name": network,
        "id": super::sha256_hex(format!("{network} {}", dir.display()).as_bytes()),
        "driver": "bridge",
        "network_interface": format!("edtp5b{n}"),
        "created": "2025-01-01T00:00:00Z",
        "subnets": [{"subnet": format!("10.197.{n}.0/24"), "gateway": format!("10.197.{n}.1")}],
        "ipv6_enabled": false,
        "internal": false,
        "dns_enabled": false,
        "ipam_options": {"driver": "host-local"},
    });
    std::fs::write(
        networks.join(format!("{network}.json")),
        default.to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("registries.conf"),
        format!("[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
            dir.join("run").display(),
            dir.join("storage").display()
        ),
    )
    .unwrap();
    vec![
        ("CONTAINERS_CONF".into(), dir.join("containers.conf")),
        (
            "CONTAINERS_REGISTRIES_CONF".into(),
            dir.join("registries.conf"),
        ),
        ("CONTAINERS_STORAGE_CONF".into(), dir.join("storage.conf")),
        ("PODMAN_IGNORE_CGROUPSV1_WARNING".into(), PathBuf::from("1")),
    ]
}

/// Stores the test registry's credentials for `host` in the CLI config folder `config`, as
/// `docker login` would (which Podman 5's compat API refuses for plain-HTTP registries).
pub fn login(config: &Path, host: &str) {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}"));
    std::fs::create_dir_all(config).unwrap();
    let file = config.join("config.json");
    let mut json: serde_json::Value = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    json["auths"][host] = serde_json::json!({ "auth": auth });
    std::fs::write(&file, json.to_string()).unwrap();
}

/// After the last Podman 5 service of this machine stopped: its netavark's nftables table
/// (left with empty chains) goes too. The system's Podman 4.3 does not use it.
pub fn remove_firewall_table_when_last() {
    let others = Command::new("pgrep")
        .args(["-f", "podman5/bin/podman .*system service"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !others {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", "netavark"])
            .output();
    }
}
