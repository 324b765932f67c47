//! `ECR Deployment Result` events of the fleet's hosts (SPEC §14): what a host of a later
//! wave is fed by. Pure.
//!
//! The detail is the deployment notice every host puts on the results bus: `name` (the
//! host's fleet name; older agents only sent `host`), `wave`, `repository`, `tag`,
//! `to_digest` and `outcome` are required; `container` and `error` are kept when present.

use serde_json::Value;

use super::{Classified, Digest, ImageRef, Repository, Tag};
use crate::fleet::FleetResult;

/// `source` of the results (the agent's own).
pub(super) const SOURCE: &str = crate::model::EVENT_SOURCE;
const DETAIL_TYPE: &str = crate::model::EVENT_DETAIL_TYPE;
const OUTCOMES: [&str; 4] = ["succeeded", "rolled_back", "failed", "rejected"];

/// A result event's classification; a missing or invalid field is malformed (left for the DLQ).
pub(super) fn result(v: &Value) -> Classified {
    let detail_type = v.get("detail-type").and_then(Value::as_str);
    if detail_type != Some(DETAIL_TYPE) {
        return Classified::Nothing(format!("{detail_type:?} event of {SOURCE}"));
    }
    match parse(&v["detail"]) {
        Ok(r) => Classified::FleetResult(r),
        Err(e) => Classified::Malformed(format!("deployment result: {e}")),
    }
}

/// The result's `repository:tag`, or the S3 archive a host follows (SPEC §13).
fn image(repository: &str, tag: &str) -> Result<ImageRef, String> {
    match repository.strip_prefix(super::ARCHIVE_SCHEME) {
        Some(bucket) => super::s3::location(bucket, tag).map(|(b, k)| ImageRef::archive(&b, &k)),
        None => Ok(ImageRef::new(
            None,
            Repository::parse(repository)?,
            Tag::parse(tag)?,
        )),
    }
}

fn parse(d: &Value) -> Result<FleetResult, String> {
    let text = |k: &str| {
        d.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("no {k:?}"))
    };
    let host = text("name").or_else(|_| text("host"))?.to_owned();
    // A number, as the agent puts it (so rules can match it); a numeral is taken too.
    let wave = match d.get("wave") {
        Some(Value::String(w)) => w.trim().parse::<u64>().ok(),
        Some(w) => w.as_u64(),
        None => None,
    }
    .filter(|w| (1..=u64::from(u32::MAX)).contains(w))
    .ok_or("no \"wave\" (a number from 1)")? as u32;
    let outcome = text("outcome")?;
    if !OUTCOMES.contains(&outcome) {
        return Err(format!("outcome {outcome:?} is not one of {OUTCOMES:?}"));
    }
    Ok(FleetResult {
        host,
        wave,
        // Only for the log and status: hosts are counted, not containers.
        container: text("container").unwrap_or_default().to_owned(),
        image: image(text("repository")?, text("tag")?)?,
        digest: Digest::parse(text("to_digest")?)?,
        outcome: outcome.to_owned(),
        error: d
            .get("error")
            .and_then(Value::as_str)
            .map(|e| e.chars().take(500).collect()),
    })
}
