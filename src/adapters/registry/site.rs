//! [`SiteRegistry`]: what a tag of a registry of the site's own points to now, asked of that
//! registry (`HEAD /v2/<name>/manifests/<tag>`, SPEC §18), for events and the sweep alike.
//! An index (OCI or Docker manifest list) is read to learn its platforms' manifests.

use std::collections::HashMap;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use tracing::debug;

use super::{RegistryHttp, err, media_type, status_error};
use crate::event::{Digest, ImageRef};
use crate::image::{Desired, index_entries};
use crate::ports::{Registry, Resolution};

/// Every manifest type a tag can name.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";
const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// Tags asked at once.
const CONCURRENT: usize = 8;
const OP: &str = "registry: resolve tag";

/// Tags of `[[registries]]` images, resolved against their registry.
#[derive(Clone, Debug)]
pub struct SiteRegistry {
    http: RegistryHttp,
}

impl SiteRegistry {
    pub fn new(http: RegistryHttp) -> Self {
        Self { http }
    }

    /// The registries' HTTP client (`doctor`).
    pub fn http(&self) -> &RegistryHttp {
        &self.http
    }

    async fn resolve_one(&self, image: &ImageRef) -> Resolution {
        let Some(site) = image.site_host().and_then(|h| self.http.sites().get(h)) else {
            return Err(err(
                OP,
                format!("{image}: no [[registries]] entry for its host"),
                false,
            ));
        };
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.http.base_url(&site.host),
            image.repository.as_str(),
            image.tag.as_str()
        );
        let resp = self
            .http
            .send(OP, Method::HEAD, &url, Some(&site.auth), ACCEPT)
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if !s.is_success() => return Err(status_error(OP, &url, s)),
            _ => {}
        }
        let media = media_type(&resp);
        let named = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .map(Digest::parse)
            .transpose()
            .map_err(|e| err(OP, format!("{url}: Docker-Content-Digest: {e}"), false))?;
        let index = media.as_deref().is_some_and(|m| INDEX_TYPES.contains(&m));
        if let (Some(digest), false) = (&named, index) {
            return Ok(Some(Desired::single(digest.clone())));
        }
        // An index (its platforms are needed), or a registry that named no digest on HEAD:
        // the manifest itself, checked against the digest named, else hashed.
        let got = self
            .http
            .get_typed(OP, &url, &site.auth, ACCEPT, &[404])
            .await?;
        let Some((media, body)) = got else {
            return Ok(None);
        };
        let digest = match named {
            Some(d) => {
                super::check_digest(OP, &url, &body, &d)?;
                d
            }
            None => Digest::parse(&super::sha256_of(&body)).map_err(|e| err(OP, e, false))?,
        };
        let text = String::from_utf8_lossy(&body);
        let entries = index_entries(media.as_deref(), &text)
            .map_err(|e| err(OP, format!("{url}: {e}"), false))?;
        debug!(%image, %digest, platforms = entries.len(), "tag resolved in its registry");
        Ok(Some(Desired { digest, entries }))
    }
}

impl Registry for SiteRegistry {
    async fn resolve(&self, images: &[ImageRef]) -> HashMap<ImageRef, Resolution> {
        let asks: Vec<_> = images
            .iter()
            .map(|i| async move { (i.clone(), self.resolve_one(i).await) })
            .collect();
        futures::stream::iter(asks)
            .buffer_unordered(CONCURRENT)
            .collect()
            .await
    }
}
