//! Queue message bodies → what the agent should do about them (SPEC §5).
//!
//! Pure: no I/O, no clock. The body of an SQS message is either an EventBridge envelope
//! (delivered by a rule target) or the same envelope wrapped in an SNS notification.
//! The event's digest is only a hint; what gets deployed is decided later from ECR.

use std::time::SystemTime;

use serde_json::Value;

mod fleet;
mod hints;
mod hosts;
pub mod registry;
mod s3;
pub mod site;
pub use crate::model::reference::{
    ARCHIVE_SCHEME, Digest, ImageRef, Repository, Tag, same_host, source_text, split_reference,
};
pub use hints::GateHint;
pub use hosts::{Home, Mirrors, follows, is_ecr_host};
pub use s3::parse_source;

// The matching that needs the credentials' `Home` stays beside the hosts.
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
            && self.site_host().is_none()
            && other.site_host().is_none()
            && (self.registry.is_some() != other.registry.is_some()
                || self.region.is_some() != other.region.is_some())
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
    if source == Some(site::SOURCE) {
        return site::push(v);
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
        time: event_time(v),
    })
}

/// The event's `time` (RFC 3339), when present and valid.
fn event_time(v: &Value) -> Option<SystemTime> {
    v.get("time")
        .and_then(Value::as_str)
        .and_then(|t| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok())
}

#[cfg(test)]
mod tests;
