//! The OCI 1.1 referrers of a digest (SPEC §11): through the registry's referrers API
//! (`GET /v2/<name>/referrers/<digest>`, an OCI index; 404, or 400/405/406 of older
//! registries: the registry has none) or else
//! the referrers tag schema (the tag `sha256-<hex>` holding that index). Of those, the
//! signatures: Sigstore bundles (cosign 3) and Notary Project envelopes (notation, AWS
//! Signer). Every body is bounded as the signature fetches are (1 MiB, refused while
//! streaming), and at most [`MAX_REFERRERS`] referrers are read. For Notary signatures, the
//! CRLs their certificates name are fetched too (at most 8, 8 MiB each, without the
//! registry's credentials).

use serde::Deserialize;

use super::registry::{check_digest, err};
use super::supply::SupplyFacts;
use crate::event::Digest;
use crate::gate::Found;
use crate::gate::bundle::BUNDLE_MEDIA_TYPE_PREFIX;
use crate::gate::found::MAX_REFERRERS;
use crate::gate::notary::{self, Envelope, Target};
use crate::ports::{PullAuth, RemoteError};

/// CRLs fetched for one digest's Notary signatures at most, and the size of each.
const MAX_CRLS: usize = 8;
const MAX_CRL: usize = 8 << 20;
/// What a registry without the referrers API answers for it.
const NO_API: &[u16] = &[400, 404, 405, 406];
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const ANY_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    artifact_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    subject: Option<Descriptor>,
}

impl Manifest {
    /// OCI 1.1: `artifactType`, else the config's media type.
    fn kind(&self) -> &str {
        self.artifact_type
            .as_deref()
            .or(self.config.as_ref().map(|c| c.media_type.as_str()))
            .unwrap_or_default()
    }
}

/// Adds the signatures among the referrers of `digest` in the repository at `base`
/// (`scheme://host/v2/<name>`) to `found`.
pub async fn add(
    facts: &SupplyFacts,
    base: &str,
    auth: &PullAuth,
    digest: &Digest,
    found: &mut Found,
) -> Result<(), RemoteError> {
    let Some(index) = index(facts, base, auth, digest).await? else {
        return Ok(());
    };
    let op = "registry: referrers";
    let index: Index = serde_json::from_slice(&index).map_err(|e| {
        err(
            op,
            format!("{base}: the referrers index is not one: {e}"),
            false,
        )
    })?;
    let mut read = 0;
    for d in index.manifests {
        if d.artifact_type.as_deref().is_some_and(|t| !may_sign(t)) {
            continue;
        }
        if read == MAX_REFERRERS {
            found
                .skipped
                .push(format!("referrers past the first {MAX_REFERRERS}"));
            break;
        }
        read += 1;
        referrer(facts, base, auth, digest, &d.digest, found).await?;
    }
    if !found.notary.is_empty() {
        found.target = target(facts, base, auth, digest).await?;
        crls(facts, found).await;
    }
    Ok(())
}

/// Fetches the CRLs the Notary signatures' certificates name (without the registry's
/// credentials); one that cannot be had is kept as the reason (the verdict waits on it).
async fn crls(facts: &SupplyFacts, found: &mut Found) {
    let mut urls: Vec<String> = Vec::new();
    for env in &found.notary {
        for url in notary::crl_urls(env) {
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    for url in urls.into_iter().take(MAX_CRLS) {
        let got = facts.http.get_public("CRL", &url, MAX_CRL).await;
        found.crls.insert(url, got.map_err(|e| e.message));
    }
}

/// Whether an index entry's artifact type may be a signature (cosign writes the empty
/// descriptor's type there; the manifest itself says what it is).
fn may_sign(t: &str) -> bool {
    t.starts_with(BUNDLE_MEDIA_TYPE_PREFIX)
        || t == notary::ARTIFACT_TYPE
        || t == "application/vnd.oci.empty.v1+json"
}

/// The referrers index: the API's answer, or the tag schema's index where there is no API.
async fn index(
    facts: &SupplyFacts,
    base: &str,
    auth: &PullAuth,
    digest: &Digest,
) -> Result<Option<Vec<u8>>, RemoteError> {
    let url = format!("{base}/referrers/{digest}");
    let op = "registry: referrers";
    // 404 is what the distribution spec says a registry without the API answers; older
    // registries answer 400, 405 or 406 for a path they do not know.
    if let Some((_, body)) = facts.http.get_typed(op, &url, auth, INDEX, NO_API).await? {
        return Ok(Some(body));
    }
    let tag = digest.as_str().replacen(':', "-", 1);
    let url = format!("{base}/manifests/{tag}");
    facts
        .http
        .get("registry: referrers tag", &url, auth, INDEX)
        .await
}

/// Reads one referrer manifest; a bundle or a Notary envelope whose subject is `digest`
/// goes into `found`.
async fn referrer(
    facts: &SupplyFacts,
    base: &str,
    auth: &PullAuth,
    digest: &Digest,
    reference: &str,
    found: &mut Found,
) -> Result<(), RemoteError> {
    let op = "registry: referrer manifest";
    let Ok(reference) = Digest::parse(reference) else {
        found
            .skipped
            .push(format!("a referrer named {reference:?}"));
        return Ok(());
    };
    let url = format!("{base}/manifests/{reference}");
    let Some(body) = facts
        .http
        .get_verified(op, &url, auth, MANIFEST, &reference)
        .await?
    else {
        found
            .skipped
            .push(format!("referrer {} (gone)", reference.short()));
        return Ok(());
    };
    let Ok(m) = serde_json::from_slice::<Manifest>(&body) else {
        found
            .skipped
            .push(format!("referrer {} (not a manifest)", reference.short()));
        return Ok(());
    };
    if m.subject.as_ref().map(|s| s.digest.as_str()) != Some(digest.as_str()) {
        // A stale or foreign entry of a tag-schema index: not this digest's.
        return Ok(());
    }
    let kind = m.kind().to_owned();
    let layer = m.layers.into_iter().next();
    let Some(layer) = layer
        .filter(|_| kind.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) || kind == notary::ARTIFACT_TYPE)
    else {
        return Ok(());
    };
    let Ok(blob) = Digest::parse(&layer.digest) else {
        found
            .skipped
            .push(format!("referrer {} (bad layer digest)", reference.short()));
        return Ok(());
    };
    let url = format!("{base}/blobs/{blob}");
    let op = "registry: signature blob";
    let Some(bytes) = facts
        .http
        .get_verified(op, &url, auth, "*/*", &blob)
        .await?
    else {
        return Err(err(op, format!("{url}: not found"), false));
    };
    if kind.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) {
        found.bundles.push(bytes);
    } else {
        found.notary.push(Envelope {
            media_type: layer.media_type,
            bytes,
        });
    }
    Ok(())
}

/// The media type and size the registry serves `digest` with.
async fn target(
    facts: &SupplyFacts,
    base: &str,
    auth: &PullAuth,
    digest: &Digest,
) -> Result<Option<Target>, RemoteError> {
    let url = format!("{base}/manifests/{digest}");
    let op = "registry: signed manifest";
    let got = facts
        .http
        .get_typed(op, &url, auth, ANY_MANIFEST, &[404])
        .await?;
    let Some((media_type, body)) = got else {
        return Ok(None);
    };
    check_digest(op, &url, &body, digest)?;
    let media_type = media_type
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
        })
        .unwrap_or_default();
    Ok(Some(Target {
        media_type,
        size: body.len() as u64,
    }))
}

#[cfg(test)]
mod tests;
