//! A push to a registry of the site's own (SPEC §18) as the agent keeps it between the
//! listener's `200` and the end of its work: one message of the local queue per tag, in the
//! shape of the events the queue carries (`source` `ecr-deployd.intake`), so that it is
//! classified, coalesced and deleted like an SQS message. Pure.

use serde_json::{Value, json};

use super::{Classified, Digest, ImageRef, PushEvent, Repository, Tag};

/// `source` of the listener's pushes.
pub(super) const SOURCE: &str = "ecr-deployd.intake";
const DETAIL_TYPE: &str = "Registry Push";

/// The message body for a push of `repository:tag` at `host` (naming `digest` when the
/// notification did), received at `time` (RFC 3339).
pub fn message(
    host: &str,
    repository: &Repository,
    tag: &Tag,
    digest: Option<&Digest>,
    time: &str,
) -> String {
    json!({
        "source": SOURCE,
        "detail-type": DETAIL_TYPE,
        "time": time,
        "detail": {
            "host": host,
            "repository": repository.as_str(),
            "tag": tag.as_str(),
            "digest": digest.map(Digest::as_str),
        },
    })
    .to_string()
}

/// A listener push's classification; a missing or invalid field is malformed.
pub(super) fn push(v: &Value) -> Classified {
    let detail_type = v.get("detail-type").and_then(Value::as_str);
    if detail_type != Some(DETAIL_TYPE) {
        return Classified::Nothing(format!("{detail_type:?} event of {SOURCE}"));
    }
    match parse(v) {
        // cosign's signature tag of a digest: the gates look at that digest again.
        Ok(p) => super::hints::signature_push(
            p.image.registry.clone(),
            &p.image.repository,
            p.image.tag.as_str(),
        )
        .unwrap_or(Classified::Reconcile(p)),
        Err(e) => Classified::Malformed(format!("registry push: {e}")),
    }
}

fn parse(v: &Value) -> Result<PushEvent, String> {
    let d = &v["detail"];
    let field = |k: &str| {
        d.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("detail.{k} missing"))
    };
    let host = field("host")?;
    if host.is_empty() || host.contains('/') {
        return Err(format!("detail.host {host:?} is not a host[:port]"));
    }
    let image = ImageRef::site(
        host,
        Repository::parse_distribution(field("repository")?)?,
        Tag::parse(field("tag")?)?,
    );
    let digest_hint = match d.get("digest").and_then(Value::as_str) {
        Some(s) => Some(Digest::parse(s)?),
        None => None,
    };
    Ok(PushEvent {
        image,
        digest_hint,
        object_version: None,
        time: super::event_time(v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::classify;

    #[test]
    fn a_listener_push_round_trips_through_the_queue_as_a_reconcile_of_the_sites_tag() {
        let repository = Repository::parse("team/web").unwrap();
        let tag = Tag::parse("prod").unwrap();
        let digest = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let body = message(
            "registry.site:5000",
            &repository,
            &tag,
            Some(&digest),
            "2026-12-06T05:00:00Z",
        );
        let Classified::Reconcile(p) = classify(&body) else {
            panic!("{body}");
        };
        assert_eq!(p.image.site_host(), Some("registry.site:5000"));
        assert_eq!(p.image.to_string(), "registry.site:5000/team/web:prod");
        assert_eq!(p.digest_hint, Some(digest));
        assert!(p.time.is_some());
        // Without a digest (a notification that named none): still a push.
        let body = message("h:1", &repository, &tag, None, "2026-12-06T05:00:00Z");
        assert!(matches!(classify(&body), Classified::Reconcile(p) if p.digest_hint.is_none()));
    }

    #[test]
    fn a_pushed_signature_tag_is_a_recheck_of_the_digest_it_signs() {
        let repository = Repository::parse("team/web").unwrap();
        let hex = "c".repeat(64);
        let tag = Tag::parse(&format!("sha256-{hex}.sig")).unwrap();
        let body = message("h:1", &repository, &tag, None, "2026-12-06T05:00:00Z");
        let Classified::Recheck(hint) = classify(&body) else {
            panic!("{body}");
        };
        assert_eq!(hint.digest.unwrap().as_str(), format!("sha256:{hex}"));
        assert_eq!(hint.repository, repository);
    }

    #[test]
    fn a_listener_push_with_a_bad_field_is_malformed_naming_it() {
        let bad = json!({"source": SOURCE, "detail-type": DETAIL_TYPE,
            "detail": {"host": "h/x", "repository": "a", "tag": "t"}});
        let Classified::Malformed(why) = classify(&bad.to_string()) else {
            panic!()
        };
        assert!(why.contains("detail.host"), "{why}");
        let missing =
            json!({"source": SOURCE, "detail-type": DETAIL_TYPE, "detail": {"host": "h"}});
        assert!(
            matches!(classify(&missing.to_string()), Classified::Malformed(w) if w.contains("detail.repository"))
        );
        let other = json!({"source": SOURCE, "detail-type": "Other"});
        assert!(matches!(
            classify(&other.to_string()),
            Classified::Nothing(_)
        ));
    }
}
