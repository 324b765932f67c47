//! Validation of [`Settings`]: every value against its allowed range and shape, each error
//! naming its key (SPEC §3).

use std::net::SocketAddr;

use url::Url;

use super::{ConfigError, Settings, Smtp, invalid};

impl Settings {
    /// Checks every value against its allowed range and shape.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_sources()?;
        self.validate_timing()?;
        self.validate_outputs()?;
        self.policies()?;
        self.fleet()?;
        self.validate_archives()?;
        self.validate_registries()?;
        self.gates().map(|_| ())
    }

    /// `[aws]`, `[queue]` and `[registry]`: where events and images come from.
    fn validate_sources(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// `[sweep]`, `[deploy]` and `[state]`: how often, how long, how many, kept how long.
    fn validate_timing(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// `[http]`, `[notify]` and `[control]`: what the agent serves and tells.
    fn validate_outputs(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }
}

pub(super) fn in_range(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{value} is out of range {min}..={max}"),
        ))
    }
}

pub(super) fn http_url(key: &str, s: &str) -> Result<Url, ConfigError> {
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
pub(super) fn validate_queue_url(s: &str) -> Result<(), ConfigError> {
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
pub(super) fn is_mail_address(s: &str) -> bool {
    s.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    }) && !s.contains(|c: char| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
}

pub(super) fn validate_smtp(s: &Smtp) -> Result<(), ConfigError> {
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

pub(super) fn validate_host_port(key: &str, s: &str) -> Result<(), ConfigError> {
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
pub(super) fn redact_url(s: &str) -> String {
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
