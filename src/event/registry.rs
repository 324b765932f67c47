//! Push notifications of a registry of the site's own (SPEC §18) → the tags they name.
//!
//! Pure: no I/O, no clock. Two senders are understood, told apart by the body's shape (Harbor
//! sends `application/json` for both of its formats, so the content type alone cannot say):
//!
//! - Docker Distribution's notification envelope, `{"events":[…]}` (media type
//!   `application/vnd.docker.distribution.events.v1+json`; `v2` from Distribution 3). Only
//!   `push` events of a manifest by tag count: a `docker push` also sends one per blob, and a
//!   push by digest names no tag; `pull`, `mount` and `delete` are not pushes.
//! - Harbor's webhook, in its Default format (`{"type":"PUSH_ARTIFACT","event_data":…}`) or
//!   as a CloudEvent (`{"specversion":"1.0","type":"harbor.artifact.pushed","data":…}`): one
//!   push per resource with a tag. Harbor's other events (pulls, deletes, scans, quotas,
//!   replication) are valid notifications with nothing to do.
//!
//! As with a queue message, a push is only a hint: the registry is asked what the tag points
//! to before anything is deployed.

use serde::Deserialize;
use serde_json::Value;

use super::{Digest, Repository, Tag};

/// One `repository:tag` a registry of the site's own says was pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SitePush {
    /// The registry's host (`host[:port]`, lowercase) as the pushing client named it, when
    /// the notification tells.
    pub host: Option<String>,
    pub repository: Repository,
    pub tag: Tag,
    /// The digest the notification names: a hint only (`None` when absent or not sha256).
    pub digest: Option<Digest>,
}

/// What one notification body holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notification {
    /// The tag pushes in it, in the sender's order.
    pub pushes: Vec<SitePush>,
    /// Tag pushes that could not be read (a repository or tag name this agent cannot
    /// follow), one reason each. They do not fail the whole body: Distribution retries a
    /// refused envelope forever and holds every later event of that endpoint behind it.
    pub refused: Vec<String>,
}

/// Distribution's envelope media types (v1 up to Distribution 2.8, v2 from 3.0).
const DISTRIBUTION_TYPES: [&str; 2] = [
    "application/vnd.docker.distribution.events.v1+json",
    "application/vnd.docker.distribution.events.v2+json",
];
const HARBOR_PUSH: &str = "PUSH_ARTIFACT";
const HARBOR_CLOUDEVENT_PUSH: &str = "harbor.artifact.pushed";

/// Reads one notification body. `Err` names what is wrong: not JSON, a shape neither sender
/// uses, or a field of the wrong type.
pub fn parse_notification(content_type: Option<&str>, body: &[u8]) -> Result<Notification, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let media_type = content_type
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    let Some(object) = value.as_object() else {
        return Err("body is JSON but not an object".into());
    };
    if object.contains_key("events") {
        return distribution(value);
    }
    if let Some(t) = media_type
        .as_deref()
        .filter(|t| DISTRIBUTION_TYPES.contains(t))
    {
        return Err(format!("a {t} body without an \"events\" array"));
    }
    let kind = object.get("type").and_then(Value::as_str);
    match kind {
        Some(kind) if object.contains_key("specversion") => harbor_cloudevent(kind, &value),
        Some(kind) if object.contains_key("event_data") || object.contains_key("occur_at") => {
            harbor_default(kind, &value)
        }
        _ => Err(format!(
            "neither a Distribution envelope ({{\"events\":[…]}}) nor a Harbor webhook \
             (content type {})",
            media_type.as_deref().unwrap_or("not given")
        )),
    }
}

#[derive(Deserialize)]
struct Envelope {
    events: Vec<DistributionEvent>,
}

#[derive(Deserialize)]
struct DistributionEvent {
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: Target,
    #[serde(default)]
    request: RequestRecord,
}

#[derive(Default, Deserialize)]
struct Target {
    repository: Option<String>,
    digest: Option<String>,
    tag: Option<String>,
    url: Option<String>,
}

#[derive(Default, Deserialize)]
struct RequestRecord {
    host: Option<String>,
}

fn distribution(value: Value) -> Result<Notification, String> {
    let envelope: Envelope =
        serde_json::from_value(value).map_err(|e| format!("Distribution envelope: {e}"))?;
    let mut out = Notification::default();
    for (i, event) in envelope.events.into_iter().enumerate() {
        let target = event.target;
        let tag = target.tag.as_deref().filter(|t| !t.is_empty());
        let (true, Some(tag)) = (event.action == "push", tag) else {
            continue;
        };
        let Some(repository) = target.repository.as_deref() else {
            return Err(format!(
                "Distribution event {i}: a push of tag {tag:?} without target.repository"
            ));
        };
        let host = event
            .request
            .host
            .as_deref()
            .and_then(host_of)
            .or_else(|| target.url.as_deref().and_then(url_host));
        out.add(host, repository, tag, target.digest.as_deref());
    }
    Ok(out)
}

#[derive(Deserialize)]
struct HarborData {
    #[serde(default)]
    resources: Vec<HarborResource>,
    repository: Option<HarborRepository>,
}

#[derive(Deserialize)]
struct HarborResource {
    digest: Option<String>,
    tag: Option<String>,
    resource_url: Option<String>,
}

#[derive(Deserialize)]
struct HarborRepository {
    repo_full_name: Option<String>,
}

fn harbor_default(kind: &str, value: &Value) -> Result<Notification, String> {
    if kind != HARBOR_PUSH {
        return Ok(Notification::default());
    }
    let data = value
        .get("event_data")
        .ok_or("Harbor PUSH_ARTIFACT webhook without \"event_data\"")?;
    harbor_push(data, "Harbor PUSH_ARTIFACT webhook")
}

fn harbor_cloudevent(kind: &str, value: &Value) -> Result<Notification, String> {
    if !kind.starts_with("harbor.") {
        return Err(format!(
            "a CloudEvent of type {kind:?}, not one of Harbor's"
        ));
    }
    if kind != HARBOR_CLOUDEVENT_PUSH {
        return Ok(Notification::default());
    }
    let data = value
        .get("data")
        .ok_or("Harbor harbor.artifact.pushed CloudEvent without \"data\"")?;
    harbor_push(data, "Harbor harbor.artifact.pushed CloudEvent")
}

fn harbor_push(data: &Value, what: &str) -> Result<Notification, String> {
    let data = HarborData::deserialize(data).map_err(|e| format!("{what}: {e}"))?;
    // A push by digest lists the digest as its "tag" (Harbor's documented sample does).
    let tagged: Vec<(&HarborResource, &str)> = data
        .resources
        .iter()
        .filter_map(|r| {
            let tag = r
                .tag
                .as_deref()
                .filter(|t| !t.is_empty() && !t.contains(':'))?;
            Some((r, tag))
        })
        .collect();
    let mut out = Notification::default();
    if tagged.is_empty() {
        return Ok(out);
    }
    let repository = data
        .repository
        .as_ref()
        .and_then(|r| r.repo_full_name.as_deref())
        .ok_or_else(|| format!("{what} without a repository.repo_full_name"))?;
    for (resource, tag) in tagged {
        let host = resource
            .resource_url
            .as_deref()
            .and_then(|u| u.split_once('/'))
            .and_then(|(host, _)| host_of(host));
        out.add(host, repository, tag, resource.digest.as_deref());
    }
    Ok(out)
}

impl Notification {
    /// Adds one tag push, or the reason it cannot be followed.
    fn add(&mut self, host: Option<String>, repository: &str, tag: &str, digest: Option<&str>) {
        let parsed =
            Repository::parse_distribution(repository).and_then(|r| Ok((r, Tag::parse(tag)?)));
        match parsed {
            Ok((repository, tag)) => self.pushes.push(SitePush {
                host,
                repository,
                tag,
                digest: digest.and_then(|d| Digest::parse(d).ok()),
            }),
            Err(e) => self
                .refused
                .push(format!("push of {repository}:{tag}: {e}")),
        }
    }
}

/// `host[:port]` as given, lowercase; `None` when it cannot be a host.
fn host_of(s: &str) -> Option<String> {
    let s = s.trim();
    let bad = |c: char| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#');
    (!s.is_empty() && !s.contains(bad)).then(|| s.to_ascii_lowercase())
}

/// The `host[:port]` of a URL (the port only when not the scheme's default).
fn url_host(u: &str) -> Option<String> {
    let url = url::Url::parse(u).ok()?;
    let host = url.host_str()?;
    host_of(&match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

#[cfg(test)]
mod tests;
