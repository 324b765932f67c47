//! S3 `Object Created` events (SPEC §13) and `s3://BUCKET/KEY` sources. Pure.
//!
//! The bucket's EventBridge notification sends one event per new object; the host's rule
//! delivers those of its archive bucket and prefix. Like a push, an event is a hint: what
//! the key holds is asked of S3 (HeadObject) before anything is loaded. The emulator writes
//! `eTag` where S3 writes `etag`, and one event id for every event, so neither is relied on.

use serde_json::Value;

use super::{ARCHIVE_SCHEME, Classified, ImageRef, PushEvent};

/// `source` of S3's events on EventBridge.
pub(super) const SOURCE: &str = "aws.s3";
const OBJECT_CREATED: &str = "Object Created";
/// S3 keys are at most 1024 bytes of UTF-8.
const KEY_MAX: usize = 1024;

/// An `aws.s3` event's classification: `Object Created` with a valid bucket and key asks for
/// reconciliation of that key; other S3 events need nothing.
pub(super) fn object_created(v: &Value) -> Classified {
    let detail_type = v.get("detail-type").and_then(Value::as_str);
    if detail_type != Some(OBJECT_CREATED) {
        return Classified::Nothing(format!("{detail_type:?} event of {SOURCE}"));
    }
    let detail = &v["detail"];
    let (Some(bucket), Some(key)) = (
        detail["bucket"]["name"].as_str(),
        detail["object"]["key"].as_str(),
    ) else {
        return Classified::Malformed(
            "Object Created event without \"detail.bucket.name\" or \"detail.object.key\"".into(),
        );
    };
    let (bucket, key) = match location(bucket, key) {
        Ok(l) => l,
        Err(e) => return Classified::Malformed(format!("Object Created event: {e}")),
    };
    Classified::Reconcile(PushEvent {
        image: ImageRef::archive(&bucket, &key),
        digest_hint: None,
        object_version: object_version(&detail["object"]),
        time: super::event_time(v),
    })
}

/// The object's version id, else its ETag (S3 writes `etag`, the emulator `eTag`): what
/// tells one upload of the key from another. Neither: `None`.
fn object_version(object: &Value) -> Option<String> {
    ["version-id", "etag", "eTag"]
        .iter()
        .filter_map(|k| object[*k].as_str())
        .map(|v| v.trim_matches('"'))
        .find(|v| !v.is_empty() && v.len() <= KEY_MAX)
        .map(str::to_owned)
}

/// Parses an `ecr-deployd.source` label: `s3://BUCKET/KEY`.
pub fn parse_source(s: &str) -> Result<ImageRef, String> {
    let Some(rest) = s.strip_prefix(ARCHIVE_SCHEME) else {
        return Err(format!(
            "source {s:?} does not start with {ARCHIVE_SCHEME:?}"
        ));
    };
    let Some((bucket, key)) = rest.split_once('/') else {
        return Err(format!(
            "source {s:?} names a bucket but no key (s3://BUCKET/KEY)"
        ));
    };
    let (bucket, key) = location(bucket, key).map_err(|e| format!("source {s:?}: {e}"))?;
    Ok(ImageRef::archive(&bucket, &key))
}

/// Checks a bucket name with S3's rules (3–63 characters of lowercase letters, digits, `.`
/// and `-`, starting and ending with a letter or digit, no `..`) and a key (1–1024 bytes,
/// not a folder).
pub(super) fn location(bucket: &str, key: &str) -> Result<(String, String), String> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge(bucket.chars().next())
        && edge(bucket.chars().last())
        && !bucket.contains("..");
    if !bucket_ok {
        return Err(format!("{bucket:?} is not a valid S3 bucket name"));
    }
    if key.is_empty() || key.len() > KEY_MAX {
        return Err(format!(
            "the key {key:?} is empty or longer than {KEY_MAX} bytes"
        ));
    }
    if key.ends_with('/') {
        return Err(format!("the key {key:?} names a folder, not an archive"));
    }
    Ok((bucket.to_owned(), key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::classify;

    fn event(detail_type: &str, detail: Value) -> String {
        serde_json::json!({
            "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": detail_type, "source": "aws.s3", "account": "123456789012",
            "time": "2026-12-03T10:00:00Z", "region": "eu-west-1", "detail": detail,
        })
        .to_string()
    }

    #[test]
    fn an_object_created_event_asks_for_its_key_with_no_digest_hint() {
        let body = event(
            "Object Created",
            serde_json::json!({"bucket": {"name": "releases"},
                "object": {"key": "app/app-latest.tar.xz", "size": 12, "etag": "abc"}}),
        );
        let Classified::Reconcile(p) = classify(&body) else {
            panic!("{:?}", classify(&body))
        };
        assert_eq!(
            p.image,
            ImageRef::archive("releases", "app/app-latest.tar.xz")
        );
        assert_eq!(p.image.to_string(), "s3://releases/app/app-latest.tar.xz");
        assert_eq!(p.digest_hint, None);
        assert_eq!(
            p.object_version.as_deref(),
            Some("abc"),
            "the ETag, unversioned"
        );
        assert!(p.time.is_some());
        assert_eq!(
            p.image.archive_location(),
            Some(("releases", "app/app-latest.tar.xz"))
        );
    }

    #[test]
    fn the_object_version_is_the_version_id_else_the_etag_in_either_spelling() {
        let version = |object: Value| {
            let mut object = object;
            object["key"] = "k.tar".into();
            let body = event(
                "Object Created",
                serde_json::json!({"bucket": {"name": "releases"}, "object": object}),
            );
            match classify(&body) {
                Classified::Reconcile(p) => p.object_version,
                other => panic!("{other:?}"),
            }
        };
        let both = serde_json::json!({"etag": "e1", "version-id": "v1"});
        assert_eq!(version(both).as_deref(), Some("v1"));
        assert_eq!(
            version(serde_json::json!({"eTag": "\"e2\""})).as_deref(),
            Some("e2"),
            "the emulator's spelling, quotes dropped"
        );
        assert_eq!(version(serde_json::json!({"version-id": ""})), None);
        assert_eq!(version(serde_json::json!({"size": 3})), None);
    }

    #[test]
    fn other_s3_events_need_nothing_and_bad_ones_are_named() {
        let deleted = event("Object Deleted", serde_json::json!({}));
        assert!(matches!(classify(&deleted), Classified::Nothing(_)));
        let no_key = event(
            "Object Created",
            serde_json::json!({"bucket": {"name": "b1b"}}),
        );
        let Classified::Malformed(why) = classify(&no_key) else {
            panic!()
        };
        assert!(why.contains("detail.object.key"), "{why}");
        let bad_bucket = event(
            "Object Created",
            serde_json::json!({"bucket": {"name": "Bad_Bucket"}, "object": {"key": "k"}}),
        );
        let Classified::Malformed(why) = classify(&bad_bucket) else {
            panic!()
        };
        assert!(
            why.contains("\"Bad_Bucket\" is not a valid S3 bucket name"),
            "{why}"
        );
    }

    #[test]
    fn source_labels_name_a_bucket_and_a_key() {
        let r = parse_source("s3://my-bucket.eu/releases/app-latest.tar.xz").unwrap();
        assert_eq!(
            r.archive_location(),
            Some(("my-bucket.eu", "releases/app-latest.tar.xz"))
        );
        assert!(r.is_archive());
        assert!(
            !ImageRef::parse_repo_tag("team/app:prod")
                .unwrap()
                .is_archive()
        );
        for (bad, says) in [
            ("https://bucket/key", "does not start with"),
            ("s3://bucket", "no key"),
            ("s3://bucket/", "is empty"),
            ("s3://bucket/dir/", "names a folder"),
            ("s3://ab/key", "not a valid S3 bucket name"),
            ("s3://-bucket/key", "not a valid S3 bucket name"),
            ("s3://a..b/key", "not a valid S3 bucket name"),
        ] {
            let e = parse_source(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let long = format!("s3://bucket/{}", "k".repeat(1025));
        assert!(
            parse_source(&long)
                .unwrap_err()
                .contains("longer than 1024")
        );
    }

    #[test]
    fn stored_sources_read_back_as_operators_wrote_them() {
        use crate::event::source_text;
        assert_eq!(
            source_text("s3://releases", "app/a.tar.xz"),
            "s3://releases/app/a.tar.xz"
        );
        assert_eq!(source_text("team/app", "prod"), "team/app:prod");
    }

    #[test]
    fn an_archive_never_matches_an_ecr_tag_of_the_same_words() {
        let archive = ImageRef::archive("app", "latest");
        let tag = ImageRef::parse_repo_tag("app:latest").unwrap();
        assert!(!archive.matches(&tag) && !tag.matches(&archive));
        assert!(archive.matches(&ImageRef::archive("app", "latest")));
    }
}
