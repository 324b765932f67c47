//! The OCI distribution API as the agent speaks it: to ECR and its mirrors for signatures,
//! and to registries of the site's own (`[[registries]]`, SPEC §18) for tags and signatures.
//!
//! One [`RegistryHttp`] for all: a host of `[[registries]]` gets its scheme (`insecure` →
//! HTTP) and CA (`ca_file`) from its entry; any other host is HTTPS, or HTTP on loopback as
//! Docker treats it. Basic credentials are sent first; a `401` with a `Bearer` challenge
//! (Harbor, Distribution with token auth) is answered with a token from the challenge's
//! realm ([`token`]), cached until it expires. Every body is bounded while it streams.

pub mod site;
#[cfg(test)]
mod tests;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use sha2::Digest as _;

use crate::config::SiteRegistry;
use crate::event::{Digest, same_host};
use crate::ports::{PullAuth, RemoteError};

/// Manifests and payloads larger than this are refused (a payload is a few hundred bytes).
pub const MAX_BODY: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn err(
    operation: &'static str,
    message: impl Into<String>,
    transient: bool,
) -> RemoteError {
    RemoteError {
        operation,
        message: message.into(),
        transient,
    }
}

/// A `[[registries]]` entry made usable: its base URL, the client that trusts its CA, and
/// its credentials.
#[derive(Clone, Debug)]
pub struct Site {
    pub host: String,
    base: String,
    client: reqwest::Client,
    pub auth: PullAuth,
}

/// The registries of the site's own, read from `[[registries]]` (password and CA files).
#[derive(Clone, Debug, Default)]
pub struct Sites(Vec<Site>);

impl Sites {
    /// Reads each entry's password and CA files; an unreadable file or a CA that does not
    /// parse is an error naming the entry and the file.
    pub fn load(entries: &[SiteRegistry]) -> Result<Self, String> {
        entries
            .iter()
            .enumerate()
            .map(load_site)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The entry of `host`.
    pub fn get(&self, host: &str) -> Option<&Site> {
        self.0.iter().find(|s| same_host(&s.host, host))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Site> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn load_site((i, r): (usize, &SiteRegistry)) -> Result<Site, String> {
    let read = |key: &str, path: &str| {
        std::fs::read(path).map_err(|e| format!("registries[{i}].{key} {path}: {e}"))
    };
    let password = match r.password_file.is_empty() {
        true => String::new(),
        false => String::from_utf8_lossy(&read("password_file", &r.password_file)?)
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
    };
    let mut builder = reqwest::Client::builder().timeout(TIMEOUT);
    if !r.ca_file.is_empty() {
        let pem = read("ca_file", &r.ca_file)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("registries[{i}].ca_file {}: {e}", r.ca_file))?;
        if certs.is_empty() {
            return Err(format!(
                "registries[{i}].ca_file {}: no certificate",
                r.ca_file
            ));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder
        .build()
        .map_err(|e| format!("registries[{i}]: HTTP client: {e}"))?;
    let scheme = if r.insecure { "http" } else { "https" };
    Ok(Site {
        host: r.host.clone(),
        base: format!("{scheme}://{}", r.host),
        client,
        auth: PullAuth {
            username: r.username.clone(),
            password,
            registry_host: r.host.clone(),
        },
    })
}

/// `http` for a loopback registry (as Docker treats it), `https` for any other.
fn default_base(host: &str) -> String {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let loopback =
        name == "localhost" || name.starts_with("127.") || name.trim_matches(['[', ']']) == "::1";
    format!("{}://{host}", if loopback { "http" } else { "https" })
}

/// The registry HTTP client (see the module doc).
#[derive(Clone, Debug)]
pub struct RegistryHttp {
    default: reqwest::Client,
    sites: Arc<Sites>,
    tokens: Arc<token::Cache>,
}

impl Default for RegistryHttp {
    fn default() -> Self {
        Self::new(Arc::default())
    }
}

impl RegistryHttp {
    pub fn new(sites: Arc<Sites>) -> Self {
        // Building fails only when no TLS backend loads; the default client then says so.
        let default = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            default,
            sites,
            tokens: Arc::default(),
        }
    }

    pub fn sites(&self) -> &Sites {
        &self.sites
    }

    /// `scheme://host` of a registry.
    pub fn base_url(&self, host: &str) -> String {
        match self.sites.get(host) {
            Some(site) => site.base.clone(),
            None => default_base(host),
        }
    }

    /// The client for `url`: its site's (which trusts the site's CA), else the default.
    fn client_for(&self, url: &str) -> &reqwest::Client {
        let host = url.split_once("://").map_or(url, |(_, rest)| rest);
        let host = host.split('/').next().unwrap_or(host);
        self.sites.get(host).map_or(&self.default, |s| &s.client)
    }

    /// Sends `method url` with `auth` (basic; a bearer token when the registry challenges
    /// for one).
    pub async fn send(
        &self,
        op: &'static str,
        method: Method,
        url: &str,
        auth: Option<&PullAuth>,
        accept: &str,
    ) -> Result<Response, RemoteError> {
        let client = self.client_for(url);
        let build = |bearer: Option<&str>| -> RequestBuilder {
            let r = client.request(method.clone(), url).header("Accept", accept);
            match (bearer, auth) {
                (Some(t), _) => r.bearer_auth(t),
                (None, Some(a)) if !a.username.is_empty() => {
                    r.basic_auth(&a.username, Some(&a.password))
                }
                (None, _) => r,
            }
        };
        let sent = |r: RequestBuilder| async move {
            r.send()
                .await
                .map_err(|e| err(op, format!("{url}: {e}"), true))
        };
        if let Some(t) = self.tokens.cached(url) {
            let resp = sent(build(Some(&t))).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
        }
        let resp = sent(build(None)).await?;
        let Some(challenge) = token::challenge_of(&resp, url) else {
            return Ok(resp);
        };
        let realm_client = self.client_for(&challenge.realm);
        let t = self.tokens.fetch(realm_client, url, &challenge, auth).await;
        let t = t.map_err(|e| err(op, format!("{url}: bearer token: {}", e.0), e.1))?;
        sent(build(Some(&t))).await
    }

    /// GET `url` with basic auth: the body, or `None` on 404.
    pub async fn get(
        &self,
        op: &'static str,
        url: &str,
        auth: &PullAuth,
        accept: &str,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let got = self.get_typed(op, url, auth, accept, &[404]).await?;
        Ok(got.map(|(_, b)| b))
    }

    /// As [`Self::get`], for content addressed by `digest`: its bytes must hash to it.
    pub async fn get_verified(
        &self,
        op: &'static str,
        url: &str,
        auth: &PullAuth,
        accept: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let body = self.get(op, url, auth, accept).await?;
        if let Some(b) = &body {
            check_digest(op, url, b, digest)?;
        }
        Ok(body)
    }

    /// As [`Self::get`], with the answer's Content-Type; `None` for the statuses `absent`.
    pub async fn get_typed(
        &self,
        op: &'static str,
        url: &str,
        auth: &PullAuth,
        accept: &str,
        absent: &[u16],
    ) -> Result<Option<(Option<String>, Vec<u8>)>, RemoteError> {
        let resp = self.send(op, Method::GET, url, Some(auth), accept).await?;
        bounded(op, url, resp, absent, MAX_BODY).await
    }

    /// GET `url` without the registry's credentials (a CA's CRL), at most `max` bytes.
    pub async fn get_public(
        &self,
        op: &'static str,
        url: &str,
        max: usize,
    ) -> Result<Vec<u8>, RemoteError> {
        let resp = self
            .client_for(url)
            .get(url)
            .send()
            .await
            .map_err(|e| err(op, format!("{url}: {e}"), true))?;
        let got = bounded(op, url, resp, &[], max).await?;
        Ok(got.map(|(_, b)| b).unwrap_or_default())
    }
}

/// A failed status as an error: 5xx and 429 are worth retrying.
pub(super) fn status_error(op: &'static str, url: &str, status: StatusCode) -> RemoteError {
    let transient = status.is_server_error() || status.as_u16() == 429;
    err(op, format!("{url}: HTTP {status}"), transient)
}

/// The answer's media type (Content-Type without parameters).
pub(super) fn media_type(resp: &Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
}

/// The body of `resp`, read while streaming and refused past `max` bytes; `None` for the
/// statuses `absent`.
async fn bounded(
    op: &'static str,
    url: &str,
    mut resp: Response,
    absent: &[u16],
    max: usize,
) -> Result<Option<(Option<String>, Vec<u8>)>, RemoteError> {
    let status = resp.status();
    if absent.contains(&status.as_u16()) {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(status_error(op, url, status));
    }
    let media_type = media_type(&resp);
    let too_large = || err(op, format!("{url}: larger than {max} bytes"), false);
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    // Without a Content-Length (chunked), the limit holds while reading: a body past it
    // is dropped there, never read to its end.
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| err(op, format!("{url}: {e}"), true))?
    {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some((media_type, body)))
}

/// Refuses content that does not hash to the digest it was asked by.
pub(super) fn check_digest(
    op: &'static str,
    url: &str,
    body: &[u8],
    digest: &Digest,
) -> Result<(), RemoteError> {
    if sha256_of(body) != digest.as_str() {
        return Err(err(
            op,
            format!("{url}: content does not match its digest"),
            false,
        ));
    }
    Ok(())
}

/// `sha256:<hex>` of `body`.
pub(super) fn sha256_of(body: &[u8]) -> String {
    let sum = sha2::Sha256::digest(body);
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
