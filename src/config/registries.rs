//! `[[registries]]` and `[intake]` (SPEC §18): registries of the site's own, and the
//! listener their push notifications arrive at.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::{ConfigError, Settings, invalid, validate_host_port};

/// One `[[registries]]` entry: a registry the site runs itself (Docker Distribution, Harbor).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SiteRegistry {
    /// `host[:port]`, as the images' references name it.
    pub host: String,
    /// With `password_file`: basic credentials, also sent for a bearer token (Harbor).
    pub username: String,
    pub password_file: String,
    /// PEM CA certificate(s) the registry's HTTPS certificate chains to.
    pub ca_file: String,
    /// Plain HTTP (a loopback test registry). Excludes `ca_file`.
    pub insecure: bool,
}

/// `[intake]`: the listener for registries' push notifications; nothing listens without
/// `listen`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeSettings {
    pub listen: String,
    /// The bearer token every notification must carry.
    pub token_file: String,
    pub tls_cert_file: String,
    pub tls_key_file: String,
}

impl IntakeSettings {
    /// The address to listen on, when set (validated).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }

    /// Whether the listener serves HTTPS.
    pub fn tls(&self) -> bool {
        !self.tls_cert_file.is_empty()
    }
}

/// Whether plain HTTP to `ip` stays on this host or its LAN (loopback, RFC 1918, link-local,
/// IPv6 unique-local).
fn local_or_lan(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

impl Settings {
    /// The hosts of `[[registries]]`.
    pub fn site_hosts(&self) -> impl Iterator<Item = &str> {
        self.registries.iter().map(|r| r.host.as_str())
    }

    /// `[registry]` and `[[registries]]` as the deploy stage uses them.
    pub fn mirrors(&self) -> crate::event::Mirrors {
        self.registry.mirrors().with_sites(self.site_hosts())
    }

    /// `[[registries]]` and `[intake]` checked.
    pub(super) fn validate_registries(&self) -> Result<(), ConfigError> {
        for (i, r) in self.registries.iter().enumerate() {
            let key = |k: &str| format!("registries[{i}].{k}");
            validate_host_port(&key("host"), &r.host)?;
            if crate::event::is_ecr_host(&r.host) {
                return Err(invalid(
                    &key("host"),
                    "is an ECR registry: ECR images need no [[registries]] entry",
                ));
            }
            let earlier = &self.registries[..i];
            if earlier
                .iter()
                .any(|e| crate::event::same_host(&e.host, &r.host))
            {
                return Err(invalid(
                    &key("host"),
                    format!("{:?} is listed twice", r.host),
                ));
            }
            if r.username.is_empty() != r.password_file.is_empty() {
                return Err(invalid(
                    &key("password_file"),
                    "a username and a password_file go together",
                ));
            }
            if r.insecure && !r.ca_file.is_empty() {
                return Err(invalid(
                    &key("insecure"),
                    "set ca_file (HTTPS with a private CA) or insecure (plain HTTP), not both",
                ));
            }
        }
        self.validate_intake()
    }

    fn validate_intake(&self) -> Result<(), ConfigError> {
        let i = &self.intake;
        if i.tls_cert_file.is_empty() != i.tls_key_file.is_empty() {
            return Err(invalid(
                "intake.tls_key_file",
                "tls_cert_file and tls_key_file go together",
            ));
        }
        if i.listen.is_empty() {
            return Ok(());
        }
        let Ok(addr) = i.listen.parse::<SocketAddr>() else {
            return Err(invalid(
                "intake.listen",
                format!("{:?} is not an address:port (or \"\" for none)", i.listen),
            ));
        };
        if i.token_file.is_empty() {
            return Err(invalid(
                "intake.token_file",
                "is required with intake.listen: every notification must carry its token",
            ));
        }
        if self.registries.is_empty() {
            return Err(invalid(
                "intake.listen",
                "no [[registries]] entry to take push notifications for",
            ));
        }
        if !i.tls() && !local_or_lan(addr.ip()) {
            return Err(invalid(
                "intake.listen",
                format!(
                    "plain HTTP on {} would carry the token beyond this host's LAN: listen on a loopback or private address, or set tls_cert_file and tls_key_file",
                    addr.ip()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml(&format!(
            "[queue]\nurl = \"http://127.0.0.1:1/000000000000/q\"\n{extra}"
        ))
    }

    #[test]
    fn registries_are_checked_one_by_one_naming_the_entry() {
        let ok = settings(
            "[[registries]]\nhost = \"registry.site:5000\"\nusername = \"u\"\npassword_file = \"/p\"\n\
             [[registries]]\nhost = \"127.0.0.1:5001\"\ninsecure = true\n",
        )
        .unwrap();
        let m = ok.mirrors();
        assert_eq!(m.sites.len(), 2);
        let err = |toml: &str| settings(toml).unwrap_err().to_string();
        assert!(err("[[registries]]\nhost = \"\"\n").contains("registries[0].host"));
        let twice =
            err("[[registries]]\nhost = \"a.site\"\n[[registries]]\nhost = \"A.site:443\"\n");
        assert!(
            twice.contains("registries[1].host") && twice.contains("twice"),
            "{twice}"
        );
        let ecr = err("[[registries]]\nhost = \"123456789012.dkr.ecr.eu-west-2.amazonaws.com\"\n");
        assert!(ecr.contains("is an ECR registry"), "{ecr}");
        let half = err("[[registries]]\nhost = \"a.site\"\nusername = \"u\"\n");
        assert!(half.contains("registries[0].password_file"), "{half}");
        let both = err("[[registries]]\nhost = \"a.site\"\nca_file = \"/ca\"\ninsecure = true\n");
        assert!(both.contains("not both"), "{both}");
        let unknown = err("[[registries]]\nhost = \"a.site\"\npassword = \"x\"\n");
        assert!(unknown.contains("password"), "{unknown}");
    }

    #[test]
    fn the_listener_needs_a_token_a_registry_and_tls_beyond_the_lan() {
        let reg = "[[registries]]\nhost = \"registry.site:5000\"\n";
        let err = |toml: &str| settings(toml).unwrap_err().to_string();
        let ok = |toml: &str| settings(toml).unwrap();
        let lan = ok(&format!(
            "{reg}[intake]\nlisten = \"10.0.0.5:8443\"\ntoken_file = \"/t\"\n"
        ));
        assert_eq!(lan.intake.addr(), Some("10.0.0.5:8443".parse().unwrap()));
        ok(&format!(
            "{reg}[intake]\nlisten = \"[::1]:8443\"\ntoken_file = \"/t\"\n"
        ));
        let public = err(&format!(
            "{reg}[intake]\nlisten = \"0.0.0.0:8443\"\ntoken_file = \"/t\"\n"
        ));
        assert!(
            public.contains("intake.listen") && public.contains("tls_cert_file"),
            "{public}"
        );
        ok(&format!(
            "{reg}[intake]\nlisten = \"0.0.0.0:8443\"\ntoken_file = \"/t\"\ntls_cert_file = \"/c\"\ntls_key_file = \"/k\"\n"
        ));
        let no_token = err(&format!("{reg}[intake]\nlisten = \"127.0.0.1:8443\"\n"));
        assert!(no_token.contains("intake.token_file"), "{no_token}");
        let no_registry = err("[intake]\nlisten = \"127.0.0.1:8443\"\ntoken_file = \"/t\"\n");
        assert!(no_registry.contains("[[registries]]"), "{no_registry}");
        let half_tls = err(&format!("{reg}[intake]\ntls_cert_file = \"/c\"\n"));
        assert!(half_tls.contains("go together"), "{half_tls}");
        let bad = err(&format!(
            "{reg}[intake]\nlisten = \"nowhere\"\ntoken_file = \"/t\"\n"
        ));
        assert!(bad.contains("not an address:port"), "{bad}");
        // Nothing listens without `listen`.
        assert_eq!(ok(reg).intake.addr(), None);
    }

    #[test]
    fn only_registries_of_the_sites_own_need_no_queue() {
        let none = Settings::from_toml("[[registries]]\nhost = \"registry.site:5000\"\n").unwrap();
        none.require_queue().unwrap();
        let err = Settings::from_toml("")
            .unwrap()
            .require_queue()
            .unwrap_err();
        assert!(err.to_string().contains("queue.url"), "{err}");
    }
}
