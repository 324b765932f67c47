//! Queue message bodies → what the agent should do about them (SPEC §5).
//!
//! Pure: no I/O, no clock. The body of an SQS message is either an EventBridge envelope
//! (delivered by a rule target) or the same envelope wrapped in an SNS notification.
//! The event's digest is only a hint; what gets deployed is decided later from ECR.

use std::fmt;
use std::time::SystemTime;

use serde_json::Value;

mod fleet;
mod hints;
mod hosts;
mod s3;
pub use hints::GateHint;
pub use hosts::{Home, Mirrors, follows, is_ecr_host};
pub use s3::parse_source;

/// A content digest, always `sha256:<64 lowercase hex>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Validates `s` as a sha256 digest.
    pub fn parse(s: &str) -> Result<Self, String> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("digest {s:?} does not start with \"sha256:\""))?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!(
                "digest {s:?} is not \"sha256:\" followed by 64 lowercase hex characters"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex characters, as operators see them in `docker images`.
    pub fn short(&self) -> &str {
        &self.0[7..19]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

/// An ECR repository name, validated with ECR's own pattern:
/// `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`, 2–256 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository(String);

impl Repository {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("repository name {s:?} is not a valid ECR repository name");
        if s.len() < 2 || s.len() > 256 {
            return Err(bad());
        }
        for component in s.split('/') {
            // Each component: alphanumeric runs separated by single '.', '_' or '-'.
            let mut prev_sep = true;
            if component.is_empty() {
                return Err(bad());
            }
            for b in component.bytes() {
                match b {
                    b'a'..=b'z' | b'0'..=b'9' => prev_sep = false,
                    b'.' | b'_' | b'-' if !prev_sep => prev_sep = true,
                    _ => return Err(bad()),
                }
            }
            if prev_sep {
                return Err(bad());
            }
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An image tag with Docker's rules: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && !s.starts_with(['.', '-'])
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("image tag {s:?} is not a valid tag"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How operators read a stored `repository` and `tag`: `repo:tag`, or `s3://bucket/key` for
/// an archive (kept as repository `s3://bucket`, tag `key`).
pub fn source_text(repository: &str, tag: &str) -> String {
    match repository.starts_with(ARCHIVE_SCHEME) {
        true => format!("{repository}/{tag}"),
        false => format!("{repository}:{tag}"),
    }
}

/// How an S3 archive source starts (`ecr-deployd.source=s3://BUCKET/KEY`).
pub const ARCHIVE_SCHEME: &str = "s3://";

/// What the agent follows: a `repository:tag` in one ECR registry, or an S3 archive
/// ([`ImageRef::archive`]).
///
/// `registry` is the 12-digit account id and `region` the AWS region when known (events
/// delivered by real AWS carry both, an image from an ECR host names both); `None` means
/// "the account (or region) of our credentials", the [`Home`] registry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    pub registry: Option<String>,
    pub region: Option<String>,
    pub repository: Repository,
    pub tag: Tag,
}

impl ImageRef {
    pub fn new(registry: Option<String>, repository: Repository, tag: Tag) -> Self {
        Self {
            registry,
            region: None,
            repository,
            tag,
        }
    }

    /// The same reference, in `region` (`None`: the home region).
    pub fn in_region(self, region: Option<String>) -> Self {
        Self { region, ..self }
    }

    /// An S3 archive followed instead of an ECR tag (SPEC §13): `s3://BUCKET/KEY`. It is
    /// kept as repository `s3://BUCKET` and tag `KEY` (no ECR repository has a `:`), so
    /// coalescing, matching, history and notices treat it like any tag.
    pub fn archive(bucket: &str, key: &str) -> Self {
        Self {
            registry: None,
            region: None,
            repository: Repository(format!("{ARCHIVE_SCHEME}{bucket}")),
            tag: Tag(key.to_owned()),
        }
    }

    /// `(bucket, key)` when this follows an S3 archive.
    pub fn archive_location(&self) -> Option<(&str, &str)> {
        let bucket = self.repository.0.strip_prefix(ARCHIVE_SCHEME)?;
        Some((bucket, self.tag.as_str()))
    }

    pub fn is_archive(&self) -> bool {
        self.archive_location().is_some()
    }

    /// Parses `repository[:tag]` (no tag = `latest`), as in the `ecr-deployd.image` label.
    pub fn parse_repo_tag(s: &str) -> Result<Self, String> {
        let (repo, tag) = match s.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => (s, "latest"),
        };
        Ok(Self::new(None, Repository::parse(repo)?, Tag::parse(tag)?))
    }
}

/// Splits a reference into the repository part and tag (`latest` when absent), dropping any
/// `@digest`: `host:5000/team/web:prod` → (`host:5000/team/web`, `prod`).
pub fn split_reference(reference: &str) -> (&str, &str) {
    let r = reference.split('@').next().unwrap_or(reference);
    match r.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (r, "latest"),
    }
}

impl ImageRef {
    /// Whether a request for `self` concerns a container that follows `other`: the key is
    /// account + region + repository + tag, a part left unnamed being `home`'s. With `home`
    /// unknown, an unnamed part matches only an unnamed one.
    pub fn matches_in(&self, other: &ImageRef, home: &Home) -> bool {
        let same = |a: &Option<String>, b: &Option<String>, h: &Option<String>| {
            a.as_ref().or(h.as_ref()) == b.as_ref().or(h.as_ref())
        };
        self.repository == other.repository
            && self.tag == other.tag
            && same(&self.registry, &other.registry, &home.account)
            && same(&self.region, &other.region, &home.region)
    }

    /// [`Self::matches_in`] without a known home: exact account and region.
    pub fn matches(&self, other: &ImageRef) -> bool {
        self.matches_in(other, &Home::default())
    }

    /// Whether matching `other` depends on the home registry: the same repository and tag,
    /// with the account or region named on one side only.
    pub fn needs_home(&self, other: &ImageRef) -> bool {
        self.repository == other.repository
            && self.tag == other.tag
            && (self.registry.is_some() != other.registry.is_some()
                || self.region.is_some() != other.region.is_some())
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((bucket, key)) = self.archive_location() {
            return write!(f, "{ARCHIVE_SCHEME}{bucket}/{key}");
        }
        write!(f, "{}:{}", self.repository.as_str(), self.tag.as_str())
    }
}

/// A push that asks for reconciliation of one `repository:tag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushEvent {
    pub image: ImageRef,
    /// The digest the event names: a hint only, never what gets deployed. S3 events name
    /// none.
    pub digest_hint: Option<Digest>,
    /// What the S3 event names of the object: its version id, or its ETag in a bucket
    /// without versioning (a hint like `digest_hint`; `None` for ECR pushes).
    pub object_version: Option<String>,
    /// The event's `time`, when present and valid (for event-to-running measurements).
    pub time: Option<SystemTime>,
}

/// What a queue message asks of the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classified {
    /// PUSH + SUCCESS with a tag: reconcile that tag.
    Reconcile(PushEvent),
    /// A digest the supply-chain gates should look at again (its signature pushed, its
    /// scan completed); not a deploy of anything by itself.
    Recheck(GateHint),
    /// A deployment result of a fleet host (SPEC §14): counted towards promotions and halts.
    FleetResult(crate::fleet::FleetResult),
    /// An ECR event that needs no action (delete, failure, push by digest, scan …); deleted.
    Nothing(String),
    /// Valid JSON that is not an ECR event; deleted with a warning.
    Foreign(String),
    /// Not JSON, or an ECR event with missing or invalid fields; left for the DLQ.
    Malformed(String),
}

const ECR_SOURCE: &str = "aws.ecr";
const IMAGE_ACTION: &str = "ECR Image Action";

/// Classifies one message body.
pub fn classify(body: &str) -> Classified {
    let value: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return Classified::Malformed(format!("body is not JSON: {e}")),
    };
    // SNS notification: the envelope is a JSON string in `Message`.
    if value.get("Type").and_then(Value::as_str) == Some("Notification") {
        let Some(message) = value.get("Message").and_then(Value::as_str) else {
            return Classified::Malformed("SNS notification without a string Message".into());
        };
        return match serde_json::from_str::<Value>(message) {
            Ok(inner) => classify_envelope(&inner, "SNS notification"),
            Err(_) => Classified::Foreign("SNS notification whose Message is not JSON".into()),
        };
    }
    classify_envelope(&value, "message")
}

fn classify_envelope(v: &Value, what: &str) -> Classified {
    let source = v.get("source").and_then(Value::as_str);
    if source == Some(hints::INSPECTOR_SOURCE) {
        return hints::inspector(v);
    }
    if source == Some(fleet::SOURCE) {
        return fleet::result(v);
    }
    if source == Some(s3::SOURCE) {
        return s3::object_created(v);
    }
    if source != Some(ECR_SOURCE) {
        return match source {
            Some(s) => Classified::Foreign(format!("{what} from source {s:?}, not {ECR_SOURCE}")),
            None => Classified::Foreign(format!("{what} is JSON but not an EventBridge event")),
        };
    }
    let detail_type = match v.get("detail-type").and_then(Value::as_str) {
        Some(t) => t,
        None => return Classified::Malformed("aws.ecr event without \"detail-type\"".into()),
    };
    if detail_type == hints::SCAN {
        return hints::ecr_scan(v);
    }
    if detail_type != IMAGE_ACTION {
        return Classified::Nothing(format!("{detail_type:?} event"));
    }
    let Some(detail) = v.get("detail").filter(|d| d.is_object()) else {
        return Classified::Malformed("ECR Image Action without a \"detail\" object".into());
    };
    let field = |name: &str| detail.get(name).and_then(Value::as_str);
    let (Some(action), Some(result)) = (field("action-type"), field("result")) else {
        return Classified::Malformed(
            "ECR Image Action without \"action-type\" or \"result\"".into(),
        );
    };
    if action != "PUSH" || result != "SUCCESS" {
        return Classified::Nothing(format!("{action} {result}"));
    }
    let Some(repo) = field("repository-name") else {
        return Classified::Malformed("push event without \"repository-name\"".into());
    };
    let Some(digest) = field("image-digest") else {
        return Classified::Malformed("push event without \"image-digest\"".into());
    };
    let repository = match Repository::parse(repo) {
        Ok(r) => r,
        Err(e) => return Classified::Malformed(e),
    };
    let digest_hint = match Digest::parse(digest) {
        Ok(d) => d,
        Err(e) => return Classified::Malformed(e),
    };
    let registry = match v.get("account").and_then(Value::as_str) {
        None | Some("") => None,
        Some(a) if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => Some(a.to_owned()),
        Some(a) => return Classified::Malformed(format!("account {a:?} is not a 12-digit id")),
    };
    let tag = match field("image-tag") {
        None | Some("") => {
            let artifact = field("artifact-media-type");
            if let Some(hint) = hints::referrer_push(registry, &repository, artifact) {
                return hint;
            }
            return Classified::Nothing(format!("push of {repo}@{digest} without a tag"));
        }
        Some(t) => match Tag::parse(t) {
            Ok(t) => t,
            Err(e) => return Classified::Malformed(e),
        },
    };
    if let Some(hint) = hints::signature_push(registry.clone(), &repository, tag.as_str()) {
        return hint;
    }
    let region = v
        .get("region")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty());
    Classified::Reconcile(PushEvent {
        image: ImageRef::new(registry, repository, tag).in_region(region.map(str::to_owned)),
        digest_hint: Some(digest_hint),
        object_version: None,
        time: v
            .get("time")
            .and_then(Value::as_str)
            .and_then(|t| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok()),
    })
}

#[cfg(test)]
mod tests;
