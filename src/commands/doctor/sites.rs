//! `doctor`'s lines for registries of the site's own and the intake listener (SPEC §18):
//! each registry answers the agent with its credentials, the Engine may pull from it (plain
//! HTTP only where the Engine allows it), the listener's token and TLS files are readable,
//! and a scan gate in force there has no findings to read.

use std::net::IpAddr;

use reqwest::Method;
use serde_json::Value;

use super::{Check, Context};
use crate::adapters::registry::Site;

/// Every line for `[[registries]]` and `[intake]`; none when neither is configured.
pub(super) async fn checks(ctx: &Context) -> Vec<Check> {
    let http = ctx.registry.sites.http();
    let mut checks = Vec::new();
    let engine = ctx.executor.runtime().registry_config().await;
    for site in http.sites().iter() {
        checks.push(answers(ctx, site).await);
        let insecure = ctx
            .settings
            .registries
            .iter()
            .any(|r| r.insecure && crate::event::same_host(&r.host, &site.host));
        checks.push(match (&engine, insecure) {
            (_, false) => Check::ok(
                "Engine trusts registry",
                format!("{}: HTTPS (the Engine needs its CA: /etc/docker/certs.d/{}/ca.crt, or the system's)", site.host, site.host),
            ),
            (Ok(config), true) => match plain_http_allowed(config, &site.host, &resolve(&site.host).await) {
                true => Check::ok("Engine trusts registry", format!("{}: plain HTTP allowed", site.host)),
                false => Check::fail(
                    "Engine trusts registry",
                    format!("{}: the Engine pulls over HTTPS only — hint: add it to \"insecure-registries\" in /etc/docker/daemon.json (or registries.conf for Podman)", site.host),
                ),
            },
            (Err(e), true) => Check::warn("Engine trusts registry", format!("{}: cannot read the Engine's registry settings: {e}", site.host)),
        });
    }
    if !http.sites().is_empty() && !ctx.settings.scan.max_severity.is_empty() {
        checks.push(Check::warn(
            "scan findings",
            format!(
                "registries of the site's own have no ECR scan findings to read: their images follow on_missing = {}",
                ctx.settings.scan.on_missing
            ),
        ));
    }
    checks.extend(intake_files(ctx));
    checks
}

/// `GET /v2/` with the entry's credentials (a bearer token when the registry asks for one).
async fn answers(ctx: &Context, site: &Site) -> Check {
    let http = ctx.registry.sites.http();
    let url = format!("{}/v2/", http.base_url(&site.host));
    match http
        .send(
            "registry: ping",
            Method::GET,
            &url,
            Some(&site.auth),
            "application/json",
        )
        .await
    {
        Ok(r) if r.status().is_success() => Check::ok("registry answers", site.host.clone()),
        Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => Check::fail(
            "registry answers",
            format!(
                "{}: credentials refused (401) — hint: check username and password_file of its [[registries]] entry",
                site.host
            ),
        ),
        Ok(r) => Check::fail("registry answers", format!("{url}: HTTP {}", r.status())),
        Err(e) => Check::fail(
            "registry answers",
            format!("{e} — hint: check the host, insecure/ca_file, and that this host reaches it"),
        ),
    }
}

/// The listener's files: the token (non-empty) and the TLS pair.
fn intake_files(ctx: &Context) -> Vec<Check> {
    let i = &ctx.settings.intake;
    if i.listen.is_empty() {
        return Vec::new();
    }
    let mut checks = Vec::new();
    checks.push(match std::fs::read_to_string(&i.token_file) {
        Ok(t) if !t.trim().is_empty() => Check::ok("intake token", i.token_file.clone()),
        Ok(_) => Check::fail("intake token", format!("{} is empty", i.token_file)),
        Err(e) => Check::fail("intake token", format!("{}: {e}", i.token_file)),
    });
    for path in [&i.tls_cert_file, &i.tls_key_file]
        .into_iter()
        .filter(|p| !p.is_empty())
    {
        checks.push(match std::fs::metadata(path) {
            Ok(_) => Check::ok("intake TLS file", path.clone()),
            Err(e) => Check::fail("intake TLS file", format!("{path}: {e}")),
        });
    }
    checks
}

/// The addresses `host[:port]` resolves to (an IP literal is its own).
async fn resolve(host: &str) -> Vec<IpAddr> {
    let name = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let name = name.trim_matches(['[', ']']);
    if let Ok(ip) = name.parse() {
        return vec![ip];
    }
    tokio::net::lookup_host((name, 0))
        .await
        .map(|a| a.map(|s| s.ip()).collect())
        .unwrap_or_default()
}

/// Whether an Engine with `RegistryConfig` `config` pulls from `host` over plain HTTP: named
/// insecure in `IndexConfigs`, or one of its addresses `ips` in `InsecureRegistryCIDRs`
/// (127.0.0.0/8 by default), as Docker decides.
fn plain_http_allowed(config: &Value, host: &str, ips: &[IpAddr]) -> bool {
    let named = config["IndexConfigs"]
        .as_object()
        .and_then(|m| m.get(host))
        .and_then(|c| c["Secure"].as_bool());
    if let Some(secure) = named {
        return !secure;
    }
    let cidrs = config["InsecureRegistryCIDRs"].as_array();
    cidrs
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|cidr| ips.iter().any(|ip| in_cidr(cidr, *ip)))
}

/// Whether `ip` is in `cidr` (`a.b.c.d/n` or an IPv6 prefix).
fn in_cidr(cidr: &str, ip: IpAddr) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_http_is_allowed_as_the_engine_decides_by_name_or_by_address() {
        let config = json!({
            "InsecureRegistryCIDRs": ["127.0.0.0/8", "10.1.0.0/16", "fd00::/8"],
            "IndexConfigs": {
                "docker.example": {"Name": "docker.example", "Secure": true},
                "registry.site:5000": {"Name": "registry.site:5000", "Secure": false},
                "10.1.2.3:5000": {"Name": "10.1.2.3:5000", "Secure": true},
            },
        });
        let ip = |s: &str| vec![s.parse::<IpAddr>().unwrap()];
        assert!(plain_http_allowed(
            &config,
            "127.0.0.1:5000",
            &ip("127.0.0.1")
        ));
        assert!(plain_http_allowed(&config, "registry.site:5000", &[]));
        assert!(plain_http_allowed(&config, "other:5000", &ip("10.1.200.7")));
        assert!(plain_http_allowed(
            &config,
            "[fd00::5]:5000",
            &ip("fd00::5")
        ));
        // Named secure wins over a matching range; nothing matching: HTTPS only.
        assert!(!plain_http_allowed(
            &config,
            "10.1.2.3:5000",
            &ip("10.1.2.3")
        ));
        assert!(!plain_http_allowed(&config, "far.site", &ip("192.0.2.1")));
        assert!(!plain_http_allowed(
            &Value::Null,
            "127.0.0.1:5000",
            &ip("127.0.0.1")
        ));
        assert!(!in_cidr("garbage", "10.0.0.1".parse().unwrap()));
        assert!(in_cidr("0.0.0.0/0", "10.0.0.1".parse().unwrap()));
    }
}
