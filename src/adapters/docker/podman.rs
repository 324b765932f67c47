//! Podman's Docker-compatible service (SPEC §15), where it differs from the Docker Engine in
//! what a re-creation reads and sends (checked against Debian 12's podman 4.3):
//!
//! - inspect shows values Podman injects on its own in `Config.Env`: `container=podman`,
//!   `TERM=xterm`, `HOSTNAME=<hostname>`, its default `PATH` when the image sets none, and
//!   (Podman 5) an empty `HOME=` when the image has no user entry for it.
//!   Copied, they would be frozen into the successor as if the operator had set them; Podman
//!   injects them again on create, so they are dropped;
//! - `HostConfig.Ulimits` come back as `RLIMIT_NOFILE`, a spelling its create refuses: they
//!   are sent back as Docker names them (`nofile`);
//! - the compat inspect hides a log size limit (`--log-opt max-size`), the umask and the
//!   time zone (`--umask`, `--tz`); Podman's own inspect has them. The log size is sent back
//!   as the compat create takes it (`LogConfig.Config.max-size`); a umask or time zone the
//!   compat create cannot take fails the re-creation before anything is stopped, with the
//!   reason, rather than losing it silently;
//! - the compat image inspect leaves the image's HEALTHCHECK out of `Config` (Podman's own
//!   image inspect has it as `Healthcheck`): read as "the image has none", the old image's
//!   check would look set by the user and be frozen into the successor, which would then run
//!   the old image's check instead of the new one's. It is taken from Podman's own inspect;
//! - Podman 5 lists and inspects a container that was just stopped in state `stopped` (and
//!   one never started as `configured`), names Docker's API does not have: a model of
//!   Docker's would refuse the whole answer, failing every deploy while any container on the
//!   host is in that state. They are read as Docker's `exited` and `created`;
//! - Podman 5 answers a call on a container removed a moment before (between a list and an
//!   inspect) with HTTP 500 ("no container with ID … found in database: no such container"),
//!   where Docker answers 404: every Engine error answer is read through [`http_error`], so
//!   it is a 404 (gone) to every caller — read as an error, an unrelated container removed by
//!   someone else at the wrong moment failed a deploy (seen in tests/index.rs on 5.4.2);
//! - `State.Health` is present with an empty `Status` without a HEALTHCHECK (the health gate
//!   reads that as no HEALTHCHECK), and `/services` answers 404 (no Swarm: no services).
//!
//! Pure; the adapter applies it when the Engine's `/version` names Podman — the error mapping
//! to every answer (Docker never answers that 500).

use serde_json::Value;

use crate::ports::RuntimeError;

/// Podman's default `PATH` (containers.conf), injected when the image sets none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An Engine's HTTP error answer as the adapter's error: Podman 5's 500 for a container gone
/// from its database is the 404 Docker answers, so `is_not_found` holds on both.
pub fn http_error(operation: &'static str, status: u16, message: String) -> RuntimeError {
    let gone = status == 500 && message.ends_with("no such container");
    RuntimeError::http(operation, if gone { 404 } else { status }, message)
}

/// Which engine serves the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Engine {
    Docker { version: String },
    Podman { version: String },
}

impl Engine {
    /// From the names and versions of `/version`'s `Components` (and its `Version`).
    pub fn from_components(components: &[(String, String)], version: &str) -> Self {
        match components.iter().find(|(name, _)| name.contains("Podman")) {
            Some((_, v)) => Engine::Podman { version: v.clone() },
            None => Engine::Docker {
                version: version.to_owned(),
            },
        }
    }

    pub fn is_podman(&self) -> bool {
        matches!(self, Engine::Podman { .. })
    }

    /// How `doctor` names it.
    pub fn display(&self) -> String {
        match self {
            Engine::Docker { version } => format!("Docker Engine {version}"),
            Engine::Podman { version } => format!("Podman {version}"),
        }
    }
}

/// Removes what Podman injected from a create request built from its inspect output;
/// `image_env` is the new image's `Env` (a `PATH` it sets is the image's, not Podman's).
pub fn drop_injected(body: &mut Value, old_hostname: &str, image_env: &Value) {
    let image_sets_path = image_env.as_array().is_some_and(|env| {
        env.iter()
            .any(|e| e.as_str().is_some_and(|e| e.starts_with("PATH=")))
    });
    let hostname = format!("HOSTNAME={old_hostname}");
    if let Some(env) = body["Env"].as_array_mut() {
        env.retain(|e| {
            let e = e.as_str().unwrap_or_default();
            !(e == "container=podman"
                || e == "TERM=xterm"
                || e == "HOME="
                || e == hostname
                || (e == DEFAULT_PATH && !image_sets_path))
        });
    }
    if let Some(limits) = body["HostConfig"]["Ulimits"].as_array_mut() {
        for limit in limits {
            if let Some(name) = limit["Name"].as_str() {
                let docker = name.strip_prefix("RLIMIT_").unwrap_or(name).to_lowercase();
                limit["Name"] = Value::String(docker);
            }
        }
    }
}

/// Renames, in `value[key]`, Podman's container states that Docker's API does not have to
/// Docker's: `stopped` is `exited`, `configured` is `created`; any other is left as it is.
pub fn docker_states(value: &mut Value, key: &str) {
    let docker = match value.get(key).and_then(Value::as_str) {
        Some("stopped") => "exited",
        Some("configured") => "created",
        _ => return,
    };
    value[key] = Value::String(docker.to_owned());
}

/// Fills in the image defaults the compatible image inspect leaves out (`Healthcheck`) from
/// Podman's own image inspect, so that they are told apart from what the user set.
pub fn image_defaults_from_libpod(image_config: &mut Value, libpod_image: &Value) {
    let check = &libpod_image["Healthcheck"];
    if image_config["Healthcheck"].is_null() && !check.is_null() && image_config.is_object() {
        image_config["Healthcheck"] = check.clone();
    }
}

/// What Podman's inspect shows without `--umask`: its default, or for a container made
/// through the compatible API (a successor of ours) `0000`, meaning unset — the process gets
/// the default 0022 (checked with `umask` inside such a container).
const UNSET_UMASKS: [&str; 2] = ["0022", "0000"];

/// Carries over what only Podman's own inspect (`libpod`) shows; `Err` names what the
/// Docker-compatible create cannot carry.
pub fn carry_libpod(body: &mut Value, libpod: &Value) -> Result<(), String> {
    let config = &libpod["Config"];
    if let Some(umask) = config["Umask"]
        .as_str()
        .filter(|u| !UNSET_UMASKS.contains(u))
    {
        return Err(format!(
            "its umask {umask} (--umask) cannot be re-created through Podman's Docker-compatible API; re-create it without --umask (set it in its entrypoint) or update it by hand"
        ));
    }
    if let Some(tz) = config["Timezone"].as_str().filter(|t| !t.is_empty()) {
        return Err(format!(
            "its time zone {tz} (--tz) cannot be re-created through Podman's Docker-compatible API; set TZ in its environment instead, or update it by hand"
        ));
    }
    let size = libpod["HostConfig"]["LogConfig"]["Size"]
        .as_str()
        .filter(|s| !s.is_empty() && *s != "0B" && *s != "-1");
    if let Some(size) = size {
        let log = &mut body["HostConfig"]["LogConfig"];
        if !log["Config"].is_object() {
            log["Config"] = Value::Object(Default::default());
        }
        log["Config"]["max-size"] = Value::String(size.to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_container_gone_between_list_and_inspect_is_not_found_on_docker_and_on_podman_5() {
        // Podman 5.4.2's answer.
        let podman = "no container with ID 5df87b412d88 found in database: no such container";
        let e = http_error("inspect container", 500, podman.into());
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains(podman), "its words kept: {e}");
        assert!(
            http_error("inspect container", 404, "No such container: web".into()).is_not_found()
        );
        // Other 500s are refusals, not absence.
        let refused = http_error("start container", 500, "port is already allocated".into());
        assert_eq!(refused.status, Some(500));
    }

    #[test]
    fn the_images_healthcheck_comes_from_podmans_own_inspect_when_the_compat_one_leaves_it_out() {
        let check = json!({"Test": ["CMD", "/bin/busybox", "true"], "Interval": 1_000_000_000});
        let libpod = json!({"Config": {"Cmd": ["sh"]}, "Healthcheck": check});
        let mut compat = json!({"Cmd": ["sh"], "OnBuild": null});
        image_defaults_from_libpod(&mut compat, &libpod);
        assert_eq!(compat["Healthcheck"], check);
        // One the compat inspect shows stays; an image without a check gets none; no image
        // config (the old image is gone) stays null.
        let mut shown = json!({"Healthcheck": {"Test": ["NONE"]}});
        image_defaults_from_libpod(&mut shown, &libpod);
        assert_eq!(shown["Healthcheck"], json!({"Test": ["NONE"]}));
        let mut none = json!({"Cmd": ["sh"]});
        image_defaults_from_libpod(&mut none, &json!({"Config": {}}));
        assert!(none["Healthcheck"].is_null());
        let mut gone = Value::Null;
        image_defaults_from_libpod(&mut gone, &libpod);
        assert!(gone.is_null());
    }

    #[test]
    fn podmans_own_state_names_are_read_as_dockers() {
        for (podman, docker) in [
            ("stopped", "exited"),
            ("configured", "created"),
            ("running", "running"),
            ("stopping", "stopping"),
        ] {
            let mut summary = json!({"Id": "c1", "State": podman});
            docker_states(&mut summary, "State");
            assert_eq!(summary["State"], docker);
            let parsed: bollard::models::ContainerSummary =
                serde_json::from_value(summary).unwrap();
            assert!(parsed.state.is_some());
        }
        let mut no_state = json!({"Id": "c1"});
        docker_states(&mut no_state, "State");
        assert_eq!(no_state, json!({"Id": "c1"}));
        let mut state = json!({"Status": "stopped", "Running": false});
        docker_states(&mut state, "Status");
        assert_eq!(state["Status"], "exited");
    }

    #[test]
    fn the_engine_is_named_from_the_version_components() {
        let podman = [("Podman Engine".to_owned(), "4.3.1".to_owned())];
        assert_eq!(
            Engine::from_components(&podman, "4.3.1").display(),
            "Podman 4.3.1"
        );
        let docker = [
            ("Engine".to_owned(), "20.10.24".to_owned()),
            ("containerd".to_owned(), "1.6".to_owned()),
        ];
        let engine = Engine::from_components(&docker, "20.10.24");
        assert!(!engine.is_podman());
        assert_eq!(engine.display(), "Docker Engine 20.10.24");
    }

    #[test]
    fn what_podman_injected_is_dropped_and_what_the_user_set_is_kept() {
        let mut body = json!({
            "Env": ["MODE=prod", "container=podman", "TERM=xterm", "HOSTNAME=35129bde737c",
                    DEFAULT_PATH, "HOSTNAME_OF_DB=db"],
            "HostConfig": {"Ulimits": [{"Name": "RLIMIT_NOFILE", "Soft": 1024, "Hard": 4096},
                                       {"Name": "nproc", "Soft": 10, "Hard": 10}]}
        });
        drop_injected(&mut body, "35129bde737c", &json!(null));
        assert_eq!(body["Env"], json!(["MODE=prod", "HOSTNAME_OF_DB=db"]));
        assert_eq!(
            body["HostConfig"]["Ulimits"],
            json!([{"Name": "nofile", "Soft": 1024, "Hard": 4096},
                   {"Name": "nproc", "Soft": 10, "Hard": 10}])
        );
    }

    #[test]
    fn a_log_size_only_podmans_inspect_shows_is_sent_as_compat_create_takes_it() {
        let mut body = json!({"HostConfig": {"LogConfig": {"Type": "json-file", "Config": null}}});
        let libpod = json!({"Config": {"Umask": "0022", "Timezone": ""},
            "HostConfig": {"LogConfig": {"Type": "k8s-file", "Size": "1MB", "Path": "/x/ctr.log"}}});
        carry_libpod(&mut body, &libpod).unwrap();
        assert_eq!(
            body["HostConfig"]["LogConfig"],
            json!({"Type": "json-file", "Config": {"max-size": "1MB"}})
        );
        let mut plain = json!({"HostConfig": {"LogConfig": {"Type": "json-file", "Config": null}}});
        let unlimited =
            json!({"Config": {"Umask": "0022"}, "HostConfig": {"LogConfig": {"Size": "0B"}}});
        carry_libpod(&mut plain, &unlimited).unwrap();
        assert_eq!(plain["HostConfig"]["LogConfig"]["Config"], json!(null));
    }

    #[test]
    fn a_umask_or_time_zone_that_cannot_be_carried_refuses_by_name() {
        let mut body = json!({"HostConfig": {}});
        for unset in ["0022", "0000"] {
            let libpod = json!({"Config": {"Umask": unset}});
            carry_libpod(&mut body, &libpod).unwrap();
        }
        let umask = json!({"Config": {"Umask": "0027"}});
        let err = carry_libpod(&mut body, &umask).unwrap_err();
        assert!(
            err.contains("umask 0027") && err.contains("--umask"),
            "{err}"
        );
        let tz = json!({"Config": {"Umask": "0022", "Timezone": "Europe/London"}});
        let err = carry_libpod(&mut body, &tz).unwrap_err();
        assert!(err.contains("Europe/London") && err.contains("TZ"), "{err}");
    }

    #[test]
    fn a_path_the_user_set_over_an_image_path_is_kept() {
        // The image sets its own PATH; the container's default-looking PATH is the user's.
        let mut body = json!({"Env": [DEFAULT_PATH, "HOSTNAME=web-1"], "HostConfig": {}});
        drop_injected(&mut body, "35129bde737c", &json!(["PATH=/opt/bin"]));
        assert_eq!(body["Env"], json!([DEFAULT_PATH, "HOSTNAME=web-1"]));
    }
}
