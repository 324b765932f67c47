//! Events that re-check a digest the supply-chain gates rejected or hold (SPEC §11): the
//! push of its cosign signature (tag `sha256-<hex>.sig`), an ECR basic scan completing
//! (`ECR Image Scan`, source `aws.ecr`) and an enhanced scan (`Inspector2 Scan`, source
//! `aws.inspector2`, whose `repository-name` is a repository ARN). None of them is a deploy
//! of anything: the digest they name is looked at again. Pure.

use serde_json::Value;

use super::{Classified, Digest, Repository};
use crate::gate::signature::signed_digest;

pub(super) const SCAN: &str = "ECR Image Scan";
pub(super) const INSPECTOR_SOURCE: &str = "aws.inspector2";
const INSPECTOR_SCAN: &str = "Inspector2 Scan";

/// "Look at this digest of this repository again."
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateHint {
    /// The account, when the event names one.
    pub registry: Option<String>,
    pub repository: Repository,
    /// `None`: a signature whose subject the event does not name (an OCI referrer pushed to
    /// a registry with the referrers API): every digest of the repository the signature gate
    /// rejected is looked at again.
    pub digest: Option<Digest>,
    /// `signature pushed`, `scan COMPLETE`, … for the log.
    pub why: String,
}

/// The hint of a push of `tag`, when it is a signature tag.
pub(super) fn signature_push(
    registry: Option<String>,
    repository: &Repository,
    tag: &str,
) -> Option<Classified> {
    let digest = signed_digest(tag)?;
    Some(Classified::Recheck(GateHint {
        registry,
        repository: repository.clone(),
        digest: Some(digest),
        why: "signature pushed".into(),
    }))
}

/// Media types of image configs: a push by digest of one is an image, not a referrer.
const IMAGE_CONFIGS: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// The hint of a push without a tag whose `artifact-media-type` is not an image's: an OCI
/// referrer (cosign 3's bundle, a Notary signature) pushed where the referrers API keeps it
/// (ECR), naming no tag and, in the event, not its subject.
pub(super) fn referrer_push(
    registry: Option<String>,
    repository: &Repository,
    artifact_type: Option<&str>,
) -> Option<Classified> {
    let t = artifact_type.filter(|t| !t.is_empty() && !IMAGE_CONFIGS.contains(t))?;
    Some(Classified::Recheck(GateHint {
        registry,
        repository: repository.clone(),
        digest: None,
        why: format!("artifact pushed ({t}): a signature of any digest"),
    }))
}

/// An `ECR Image Scan` event's hint.
pub(super) fn ecr_scan(v: &Value) -> Classified {
    let detail = &v["detail"];
    let Some(repo) = detail["repository-name"].as_str() else {
        return Classified::Nothing("scan event without a repository".into());
    };
    hint(v, repo, detail, "scan")
}

/// An `aws.inspector2` event's hint (only `Inspector2 Scan` of an ECR image is one).
pub(super) fn inspector(v: &Value) -> Classified {
    if v["detail-type"].as_str() != Some(INSPECTOR_SCAN) {
        return Classified::Nothing(format!("{:?} inspector event", v["detail-type"]));
    }
    let detail = &v["detail"];
    // arn:aws:ecr:<region>:<account>:repository/<name>
    let arn = detail["repository-name"].as_str().unwrap_or_default();
    let Some(repo) = arn.split_once(":repository/").map(|(_, r)| r) else {
        return Classified::Nothing(format!("inspector scan of {arn:?}, not an ECR repository"));
    };
    hint(v, repo, detail, "enhanced scan")
}

fn hint(v: &Value, repo: &str, detail: &Value, what: &str) -> Classified {
    let (Ok(repository), Some(Ok(digest))) = (
        Repository::parse(repo),
        detail["image-digest"].as_str().map(Digest::parse),
    ) else {
        return Classified::Nothing(format!(
            "{what} event without a valid repository and digest"
        ));
    };
    let registry = v["account"]
        .as_str()
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned);
    let status = detail["scan-status"].as_str().unwrap_or("done");
    Classified::Recheck(GateHint {
        registry,
        repository,
        digest: Some(digest),
        why: format!("{what} {status}"),
    })
}
