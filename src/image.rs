//! What "runs the desired image" means (SPEC §4). Pure: no I/O.
//!
//! One image is known under several digests: every `RepoDigests` entry of the local image
//! (the same image pushed to `test/app` and `prod/app`, or pulled once by tag and once by
//! digest), and, when a tag names an image index or manifest list (what `docker buildx
//! build --push` makes by default), both the index digest and the digest of the index's
//! manifest for this host's platform. A container is up to date when any of those match;
//! comparing only one of them redeploys a container that already runs the right image.

use serde_json::Value;

use crate::model::reference::Digest;

/// Media types of image indexes: an OCI index and a Docker manifest list.
pub const INDEX_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// An OS/architecture(/variant) triple, as in an index entry or reported by the Engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Self {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.filter(|v| !v.is_empty()).map(str::to_owned),
        }
    }

    /// The platform the Engine runs on, from `/version` (`Os`, `Arch`) and `/info`
    /// (`Architecture`, the kernel's machine name, which carries the ARM variant).
    pub fn of_engine(os: &str, arch: &str, machine: &str) -> Self {
        let variant = match (arch, machine) {
            ("arm", m) if m.starts_with("armv6") => Some("v6"),
            ("arm", m) if m.starts_with("armv5") => Some("v5"),
            ("arm", _) => Some("v7"),
            ("arm64", _) => Some("v8"),
            _ => None,
        };
        Self::new(os, arch, variant)
    }

    /// Whether an index entry made for `entry` runs here. A variant missing on either side
    /// matches (indexes often omit `v8` for arm64).
    pub fn runs(&self, entry: &Platform) -> bool {
        self.os == entry.os
            && self.architecture == entry.architecture
            && match (&self.variant, &entry.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// One manifest of an index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IndexEntry {
    pub digest: Digest,
    pub platform: Platform,
    /// A build attestation (provenance, SBOM): never an image to run.
    pub attestation: bool,
}

/// What a tag points to now: its digest and, when that is an index, the index's entries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Desired {
    pub digest: Digest,
    /// Empty unless the tag names an index or manifest list.
    pub entries: Vec<IndexEntry>,
}

impl Desired {
    /// A tag that names a single image manifest.
    pub fn single(digest: Digest) -> Self {
        Self {
            digest,
            entries: Vec::new(),
        }
    }

    /// The index's manifest for `host`, when the tag names an index that has one.
    pub fn for_platform(&self, host: &Platform) -> Option<&Digest> {
        self.entries
            .iter()
            .find(|e| !e.attestation && host.runs(&e.platform))
            .map(|e| &e.digest)
    }
}

/// How an image's digests compare with what is desired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// One of the image's digests is the desired digest.
    Exact,
    /// One of them is the desired index's manifest for this host's platform.
    Platform(Digest),
    /// None of them: the container is behind.
    Behind,
}

impl Match {
    pub fn up_to_date(&self) -> bool {
        !matches!(self, Match::Behind)
    }
}

/// Compares the digests of the image a container runs with the desired image, for `host`.
pub fn compare(running: &[Digest], desired: &Desired, host: &Platform) -> Match {
    if running.contains(&desired.digest) {
        return Match::Exact;
    }
    match desired.for_platform(host) {
        Some(p) if running.contains(p) => Match::Platform(p.clone()),
        _ => Match::Behind,
    }
}

/// The digests of an image's `RepoDigests` (`name@sha256:…`): those of `repository` first,
/// then the rest, each once. Entries that are not a valid digest are skipped.
pub fn repo_digests(entries: &[String], repository: &str) -> Vec<Digest> {
    let parsed: Vec<(bool, Digest)> = entries
        .iter()
        .filter_map(|e| {
            let (name, digest) = e.rsplit_once('@')?;
            let ours = name == repository || name.ends_with(&format!("/{repository}"));
            Some((ours, Digest::parse(digest).ok()?))
        })
        .collect();
    let mut out: Vec<Digest> = Vec::new();
    for want_ours in [true, false] {
        for (ours, d) in &parsed {
            if *ours == want_ours && !out.contains(d) {
                out.push(d.clone());
            }
        }
    }
    out
}

/// The entries of an index manifest; `Ok(empty)` for a manifest that is not an index.
/// `media_type` is what the registry said, when it said anything; the manifest's own
/// `mediaType` and a `manifests` array count as well (old pushes leave the former out).
pub fn index_entries(media_type: Option<&str>, manifest: &str) -> Result<Vec<IndexEntry>, String> {
    let said_index = media_type.is_some_and(|m| INDEX_MEDIA_TYPES.contains(&m));
    let value: Value = match serde_json::from_str(manifest) {
        Ok(v) => v,
        Err(e) if said_index => return Err(format!("the image index is not JSON: {e}")),
        Err(_) => return Ok(Vec::new()),
    };
    let own_type = value["mediaType"].as_str();
    let is_index = said_index
        || own_type.is_some_and(|m| INDEX_MEDIA_TYPES.contains(&m))
        || (own_type.is_none() && value["manifests"].is_array());
    if !is_index {
        return Ok(Vec::new());
    }
    let Some(manifests) = value["manifests"].as_array() else {
        return Err("the image index has no \"manifests\" array".into());
    };
    manifests.iter().map(entry).collect()
}

fn entry(m: &Value) -> Result<IndexEntry, String> {
    let digest = Digest::parse(m["digest"].as_str().unwrap_or_default())
        .map_err(|e| format!("an index entry: {e}"))?;
    let p = &m["platform"];
    let platform = Platform::new(
        p["os"].as_str().unwrap_or("unknown"),
        p["architecture"].as_str().unwrap_or("unknown"),
        p["variant"].as_str(),
    );
    let attestation = m["annotations"]["vnd.docker.reference.type"].as_str()
        == Some("attestation-manifest")
        || (platform.os == "unknown" && platform.architecture == "unknown");
    Ok(IndexEntry {
        digest,
        platform,
        attestation,
    })
}

#[cfg(test)]
mod tests;
