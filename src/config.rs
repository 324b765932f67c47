//! Configuration: TOML file + `ECR_DEPLOYD_<SECTION>_<KEY>` overrides → validated [`Settings`]
//! (SPEC §3). Read once at start-up and passed down; nothing else reads the environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::control::policy::{Policies, Policy, Window};
pub use archives::ArchiveSettings;
pub use fleet::FleetSettings;
pub use gates::{Scan, Verify};

mod archives;
mod fleet;
mod gates;

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

    /// Checks every value against its allowed range and shape.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.aws.endpoint_url.is_empty() {
            http_url("aws.endpoint_url", &self.aws.endpoint_url)?;
        }
        if self.aws.region.contains(char::is_whitespace) {
            return Err(invalid("aws.region", "must not contain whitespace"));
        }
        if !self.queue.url.is_empty() {
            validate_queue_url(&self.queue.url)?;
        }
        in_range(
            "queue.wait_time_seconds",
            self.queue.wait_time_seconds.into(),
            1,
            20,
        )?;
        in_range("queue.max_messages", self.queue.max_messages.into(), 1, 10)?;
        in_range(
            "queue.visibility_timeout_seconds",
            self.queue.visibility_timeout_seconds.into(),
            10,
            43_200,
        )?;
        if !self.registry.mirror.is_empty() {
            validate_host_port("registry.mirror", &self.registry.mirror)?;
        }
        for (registry, mirror) in &self.registry.mirrors {
            let key = format!("registry.mirrors.{registry:?}");
            if !crate::event::is_ecr_host(registry) {
                return Err(invalid(
                    &key,
                    "the key must be an ECR registry host (<account>.dkr.ecr.<region>.amazonaws.com)",
                ));
            }
            validate_host_port(&key, mirror)?;
        }
        in_range(
            "sweep.interval_seconds",
            self.sweep.interval_seconds,
            0,
            7 * 86_400,
        )?;
        in_range("sweep.jitter_seconds", self.sweep.jitter_seconds, 0, 86_400)?;
        in_range(
            "deploy.health_timeout_seconds",
            self.deploy.health_timeout_seconds,
            1,
            3_600,
        )?;
        in_range(
            "deploy.min_uptime_seconds",
            self.deploy.min_uptime_seconds,
            0,
            3_600,
        )?;
        in_range(
            "deploy.stop_timeout_seconds",
            self.deploy.stop_timeout_seconds,
            0,
            3_600,
        )?;
        in_range(
            "deploy.max_parallel",
            self.deploy.max_parallel.into(),
            1,
            64,
        )?;
        in_range(
            "deploy.debounce_millis",
            self.deploy.debounce_millis,
            0,
            60_000,
        )?;
        if let Err(why) = crate::model::labels::check_scope(&self.deploy.scope) {
            return Err(invalid("deploy.scope", why));
        }
        if self.state.path.as_os_str().is_empty() {
            return Err(invalid("state.path", "must not be empty"));
        }
        in_range("state.keep_days", self.state.keep_days.into(), 1, 36_500)?;
        if !self.http.listen.is_empty() && self.http.listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "http.listen",
                format!(
                    "{:?} is not an address:port (or \"\" to disable)",
                    self.http.listen
                ),
            ));
        }
        for (i, hook) in self.notify.webhooks.iter().enumerate() {
            http_url(&format!("notify.webhooks[{i}]"), hook).map_err(|_| {
                // The URL is a secret: do not echo it in the error.
                invalid(&format!("notify.webhooks[{i}]"), "is not an http(s) URL")
            })?;
        }
        if self.notify.event_bus.contains(char::is_whitespace) {
            return Err(invalid("notify.event_bus", "must not contain whitespace"));
        }
        if let Some(smtp) = &self.notify.smtp {
            validate_smtp(smtp)?;
        }
        if self.control.socket.as_os_str().is_empty() {
            return Err(invalid("control.socket", "must not be empty"));
        }
        self.policies()?;
        self.fleet()?;
        self.validate_archives()?;
        self.gates().map(|_| ())
    }

    /// `run` needs a queue; the other commands do not.
    pub fn require_queue(&self) -> Result<(), ConfigError> {
        if self.queue.url.is_empty() {
            return Err(invalid(
                "queue.url",
                "is required for `run` (set it in the config file or ECR_DEPLOYD_QUEUE_URL)",
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

fn in_range(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{value} is out of range {min}..={max}"),
        ))
    }
}

fn http_url(key: &str, s: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(s).map_err(|e| invalid(key, format!("{s:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(
            key,
            format!("{s:?} is not an http(s) URL with a host"),
        ));
    }
    Ok(url)
}

/// `https://sqs.<region>.amazonaws.com/<12-digit account>/<queue name>` or any http(s) host
/// (emulators, VPC endpoints) with the same path shape.
fn validate_queue_url(s: &str) -> Result<(), ConfigError> {
    const KEY: &str = "queue.url";
    let url = http_url(KEY, s)?;
    let segments: Vec<&str> = url.path().trim_matches('/').split('/').collect();
    let [account, name] = segments.as_slice() else {
        return Err(invalid(
            KEY,
            format!("{s:?} does not have the form <endpoint>/<account id>/<queue name>"),
        ));
    };
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            KEY,
            format!("account id {account:?} in the queue URL is not 12 digits"),
        ));
    }
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    if base.is_empty()
        || name.len() > 80
        || !base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(
            KEY,
            format!("queue name {name:?} is not a valid SQS queue name"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            KEY,
            format!("{s:?} must not have a query or fragment"),
        ));
    }
    Ok(())
}

/// `local@domain`, without spaces or angle brackets (the relay gets it as it is).
fn is_mail_address(s: &str) -> bool {
    s.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    }) && !s.contains(|c: char| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
}

fn validate_smtp(s: &Smtp) -> Result<(), ConfigError> {
    validate_host_port("notify.smtp.relay", &s.relay)?;
    let host = s.relay.rsplit_once(':').map(|(h, _)| h);
    let Some(host) = host.filter(|_| {
        s.relay
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    }) else {
        return Err(invalid(
            "notify.smtp.relay",
            format!("{:?} must be host:port", s.relay),
        ));
    };
    if !is_mail_address(&s.from) {
        return Err(invalid(
            "notify.smtp.from",
            format!("{:?} is not an e-mail address", s.from),
        ));
    }
    if s.to.is_empty() {
        return Err(invalid("notify.smtp.to", "names no recipient"));
    }
    if let Some(bad) = s.to.iter().find(|t| !is_mail_address(t)) {
        return Err(invalid(
            "notify.smtp.to",
            format!("{bad:?} is not an e-mail address"),
        ));
    }
    let secret = !s.password.is_empty() || !s.password_file.is_empty();
    if !s.password.is_empty() && !s.password_file.is_empty() {
        return Err(invalid(
            "notify.smtp.password",
            "set password or password_file, not both",
        ));
    }
    let has_user = !s.username.is_empty();
    if secret != has_user {
        return Err(invalid(
            "notify.smtp.username",
            "a username and a password (or password_file) go together",
        ));
    }
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    if secret && !s.starttls && !loopback {
        return Err(invalid(
            "notify.smtp.starttls",
            "is false while a password is set: it would cross the network in the clear",
        ));
    }
    Ok(())
}

fn validate_host_port(key: &str, s: &str) -> Result<(), ConfigError> {
    let url = Url::parse(&format!("http://{s}"))
        .map_err(|e| invalid(key, format!("{s:?} is not host[:port]: {e}")))?;
    if s.contains("://") || url.path() != "/" || s.ends_with('/') || url.username() != "" {
        return Err(invalid(
            key,
            format!("{s:?} must be host[:port], without scheme or path"),
        ));
    }
    Ok(())
}

/// Keeps scheme, host and port; replaces credentials, path and query (where webhook secrets live).
fn redact_url(s: &str) -> String {
    match Url::parse(s) {
        Ok(u) if u.host_str().is_some() => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = u.path() != "/" || u.query().is_some() || u.username() != "";
            let tail = if hidden { "/<redacted>" } else { "" };
            format!(
                "{}://{}{port}{tail}",
                u.scheme(),
                u.host_str().unwrap_or_default()
            )
        }
        _ if s.is_empty() => String::new(),
        _ => "<redacted>".into(),
    }
}

/// Applies `ECR_DEPLOYD_<SECTION>_<KEY>` variables. The known keys and their types are those
/// of [`Settings::default`], so a new key is overridable without a second list to maintain.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let defaults = toml::Table::try_from(Settings::default())
        .map_err(|e| invalid("<defaults>", e.to_string()))?;
    let mut known: BTreeMap<String, (String, String, toml::Value)> = BTreeMap::new();
    for (section, keys) in &defaults {
        // Tables inside a section ([policy.windows.NAME]) are set in the file only.
        let scalars = keys
            .as_table()
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v.is_table());
        for (key, value) in scalars {
            let var = format!(
                "{ENV_PREFIX}{}_{}",
                section.to_uppercase(),
                key.to_uppercase()
            );
            known.insert(var, (section.clone(), key.clone(), value.clone()));
        }
    }
    for (var, raw) in env {
        if !var.starts_with(ENV_PREFIX) || ENV_NOT_KEYS.contains(&var.as_str()) {
            continue;
        }
        let Some((section, key, default)) = known.get(&var) else {
            return Err(ConfigError::Env {
                var,
                reason: "is not a known setting (see SPEC §3 for the keys)".into(),
            });
        };
        let value = env_value(default, &raw).map_err(|reason| ConfigError::Env {
            var: var.clone(),
            reason,
        })?;
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = entry.as_table_mut() else {
            return Err(invalid(section, "must be a table"));
        };
        section_table.insert(key.clone(), value);
    }
    Ok(())
}

fn env_value(default: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    use toml::Value as V;
    Ok(match default {
        V::Integer(_) => V::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("{raw:?} is not an integer"))?,
        ),
        V::Boolean(_) => V::Boolean(match raw.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(format!("{raw:?} is not true or false")),
        }),
        V::Array(_) => {
            let items: Vec<String> = if raw.trim_start().starts_with('[') {
                serde_json::from_str(raw)
                    .map_err(|e| format!("not a JSON array of strings: {e}"))?
            } else {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            V::Array(items.into_iter().map(V::String).collect())
        }
        _ => V::String(raw.to_owned()),
    })
}

#[cfg(test)]
mod tests;
