//! Configuration: TOML file + `ECR_DEPLOYD_<SECTION>_<KEY>` overrides → validated [`Settings`]
//! (SPEC §3). Read once at start-up and passed down; nothing else reads the environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::control::policy::{Policies, Policy, Window};
pub use archives::ArchiveSettings;
pub use fleet::FleetSettings;
pub use gates::{Scan, Verify};
pub use registries::{IntakeSettings, SiteRegistry};

mod archives;
mod env;
mod fleet;
mod gates;
mod registries;
mod validate;

use env::apply_env;
use validate::{in_range, redact_url, validate_host_port};

/// Where the config is read from when neither `--config` nor `ECR_DEPLOYD_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ecr-deployd/config.toml";
const ENV_PREFIX: &str = "ECR_DEPLOYD_";
/// Environment variables with the prefix that are not config keys.
const ENV_NOT_KEYS: &[&str] = &["ECR_DEPLOYD_CONFIG"];

/// Why the configuration cannot be used. Every variant names what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {reason}")]
    Env { var: String, reason: String },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// The whole validated configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub aws: Aws,
    pub queue: Queue,
    pub registry: Registry,
    pub sweep: Sweep,
    pub deploy: Deploy,
    pub state: State,
    pub http: Http,
    pub notify: Notify,
    pub control: Control,
    pub policy: PolicySettings,
    pub verify: Verify,
    pub scan: Scan,
    pub fleet: FleetSettings,
    pub archives: ArchiveSettings,
    pub intake: IntakeSettings,
    /// `[[registries]]`: registries of the site's own (SPEC §18).
    pub registries: Vec<SiteRegistry>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Aws {
    /// Empty: the AWS config chain decides.
    pub region: String,
    /// One endpoint URL for every AWS service the agent calls (SQS, ECR, S3, EventBridge): for
    /// emulators (moto) only. Real AWS behind VPC interface endpoints needs their private DNS or
    /// the SDK's per-service `AWS_ENDPOINT_URL_<SERVICE>` variables, which take precedence over
    /// this for their service. Empty: the SDK's endpoint resolution decides.
    pub endpoint_url: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Queue {
    pub url: String,
    pub wait_time_seconds: u32,
    pub max_messages: u32,
    pub visibility_timeout_seconds: u32,
}

impl Default for Queue {
    fn default() -> Self {
        Self {
            url: String::new(),
            wait_time_seconds: 20,
            max_messages: 10,
            visibility_timeout_seconds: 300,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Registry {
    /// `host[:port]` to pull from instead of the ECR host; empty = ECR.
    pub mirror: String,
    /// ECR registry host → `host[:port]` its images are pulled from; wins over `mirror`.
    pub mirrors: std::collections::BTreeMap<String, String>,
}

impl Registry {
    /// `mirror` and `mirrors` as the deploy stage uses them.
    pub fn mirrors(&self) -> crate::event::Mirrors {
        crate::event::Mirrors {
            all: Some(self.mirror.clone()).filter(|m| !m.is_empty()),
            by_host: self.mirrors.clone(),
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Sweep {
    pub interval_seconds: u64,
    pub jitter_seconds: u64,
}

impl Default for Sweep {
    fn default() -> Self {
        Self {
            interval_seconds: 300,
            jitter_seconds: 30,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Deploy {
    pub health_timeout_seconds: u64,
    pub min_uptime_seconds: u64,
    pub stop_timeout_seconds: u64,
    pub max_parallel: u32,
    pub remove_old_images: bool,
    pub debounce_millis: u64,
    /// "" = only containers without an `ecr-deployd.scope` label; NAME = only those labelled
    /// `ecr-deployd.scope=NAME` (SPEC §3/§4).
    pub scope: String,
}

impl Default for Deploy {
    fn default() -> Self {
        Self {
            health_timeout_seconds: 120,
            min_uptime_seconds: 10,
            stop_timeout_seconds: 30,
            max_parallel: 2,
            remove_old_images: true,
            debounce_millis: 1500,
            scope: String::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct State {
    pub path: PathBuf,
    /// History older than this is pruned (a container's last 20 deployments always stay).
    pub keep_days: u32,
}

impl Default for State {
    fn default() -> Self {
        Self {
            path: PathBuf::from("/var/lib/ecr-deployd/state.db"),
            keep_days: 400,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Empty disables the listener.
    pub listen: String,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Notify {
    /// Incoming-webhook URLs. Secrets: never printed or logged whole.
    pub webhooks: Vec<String>,
    pub event_bus: String,
    /// E-mail through an SMTP relay on `rolled_back`, `rejected` and `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp: Option<Smtp>,
}

/// `[notify] smtp = { relay, from, to, starttls, username, password_file }`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    /// `host:port` of the relay (587 with STARTTLS, 25 inside a site).
    pub relay: String,
    pub from: String,
    pub to: Vec<String>,
    /// Upgrade to TLS before anything is sent (the relay must offer it).
    #[serde(default = "yes")]
    pub starttls: bool,
    /// With a password: SMTP AUTH. Empty: none.
    #[serde(default)]
    pub username: String,
    /// The password itself. A secret: redacted in `check-config`; prefer `password_file`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// A file holding the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: String,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Control {
    /// The daemon's control socket (SPEC §10).
    pub socket: PathBuf,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("/run/ecr-deployd/control.sock"),
        }
    }
}

/// `[policy]` as written; [`Settings::policies`] compiles it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    pub default: String,
    pub timezone: String,
    pub window: String,
    pub windows: BTreeMap<String, WindowSettings>,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            default: "auto".into(),
            timezone: "UTC".into(),
            window: String::new(),
            windows: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WindowSettings {
    /// 5-field cron expression: when the window opens.
    pub schedule: String,
    pub duration_minutes: u64,
}

impl Settings {
    /// `[policy]` compiled: the default policy, the time zone, the windows.
    pub fn policies(&self) -> Result<Policies, ConfigError> {
        let p = &self.policy;
        let default: Policy = p
            .default
            .parse()
            .map_err(|e: String| invalid("policy.default", e))?;
        let tz = Policies::zone(&p.timezone).map_err(|e| invalid("policy.timezone", e))?;
        let mut windows = BTreeMap::new();
        for (name, w) in &p.windows {
            let key = format!("policy.windows.{name}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(&key, "a window name is letters, digits, - and _"));
            }
            let window =
                Window::new(&w.schedule, w.duration_minutes).map_err(|e| invalid(&key, e))?;
            windows.insert(name.clone(), window);
        }
        let default_window = Some(p.window.clone()).filter(|w| !w.is_empty());
        if let Some(w) = &default_window
            && !windows.contains_key(w)
        {
            return Err(invalid(
                "policy.window",
                format!("{w:?} is not a window in [policy.windows]"),
            ));
        }
        Ok(Policies {
            default,
            tz,
            default_window,
            windows,
        })
    }

    /// Reads `path` (a missing file is an error unless `path_is_default`), applies the
    /// `ECR_DEPLOYD_*` variables of `env`, and validates the result.
    pub fn load(
        path: &Path,
        path_is_default: bool,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path_is_default => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let parse_err = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
        apply_env(&mut table, env)?;
        let settings: Settings = Settings::deserialize(table)
            .map_err(|e| parse_err(e.to_string().trim_end().to_owned()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The defaults with the `ECR_DEPLOYD_*` variables of `env` applied: for commands that
    /// need no config file (`fleet --ledger`) when none can be read.
    pub fn from_env(env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut table = toml::Table::new();
        apply_env(&mut table, env)?;
        let settings = Settings::deserialize(table).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<environment>"),
            message: e.to_string(),
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Parses a TOML document alone (tests, tools).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let settings: Settings = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<inline>"),
            message: e.to_string(),
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// `run` needs a queue unless it follows registries of the site's own (SPEC §18); the
    /// other commands do not.
    pub fn require_queue(&self) -> Result<(), ConfigError> {
        if self.queue.url.is_empty() && self.registries.is_empty() {
            return Err(invalid(
                "queue.url",
                "is required for `run` (set it in the config file or ECR_DEPLOYD_QUEUE_URL), unless [[registries]] lists the registries followed",
            ));
        }
        Ok(())
    }

    /// The effective configuration as TOML, with secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.notify.webhooks = self.notify.webhooks.iter().map(|w| redact_url(w)).collect();
        shown.aws.endpoint_url = redact_url(&self.aws.endpoint_url);
        if let Some(smtp) = shown.notify.smtp.as_mut()
            && !smtp.password.is_empty()
        {
            smtp.password = "<redacted>".into();
        }
        toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    /// `[state] keep_days`: how long history is kept.
    pub fn keep_history(&self) -> Duration {
        Duration::from_secs(u64::from(self.state.keep_days) * 86_400)
    }

    pub fn debounce(&self) -> Duration {
        Duration::from_millis(self.deploy.debounce_millis)
    }
}

#[cfg(test)]
mod tests;
