//! Over the fixtures in `tests/fixtures/registry/`, which come from:
//!
//! - `distribution-recorded-*.json`: recorded from Debian's `docker-registry` 2.8.2 with a
//!   `notifications` endpoint, for a blob upload, a manifest `PUT` by tag (`1.4.2`) and the
//!   same manifest `PUT` by digest into `library/app` (one envelope each, as it sent them;
//!   content type `application/vnd.docker.distribution.events.v1+json`).
//! - `distribution-doc-pull.json`, `distribution-doc-push-envelope.json`: the two envelope
//!   samples of Distribution's notifications documentation ("Work with notifications":
//!   a manifest pull by tag; an envelope of three pushes without a tag).
//! - `harbor-doc-*.json`: the payload samples of Harbor's "Configure Webhook Notifications"
//!   page — `harbor-doc-2.0-push.json` from its 2.0 edition (a push of `latest`), the others
//!   from the current one (its push sample is a push by digest, whose "tag" is the digest;
//!   the `//` comment lines of its CloudEvents sample are left out, JSON has no comments).

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/registry/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const DISTRIBUTION: &str = "application/vnd.docker.distribution.events.v1+json";
const JSON: &str = "application/json";

fn parse(content_type: &str, body: &[u8]) -> Notification {
    parse_notification(Some(content_type), body).unwrap_or_else(|e| panic!("{e}"))
}

fn nothing(content_type: &str, name: &str) {
    assert_eq!(
        parse(content_type, &fixture(name)),
        Notification::default(),
        "{name}"
    );
}

#[test]
fn a_recorded_distribution_push_by_tag_names_host_repository_tag_and_digest() {
    let n = parse(
        DISTRIBUTION,
        &fixture("distribution-recorded-tag-push.json"),
    );
    assert_eq!(
        n.pushes,
        [SitePush {
            host: Some("127.0.0.1:5590".into()),
            repository: Repository::parse("library/app").unwrap(),
            tag: Tag::parse("1.4.2").unwrap(),
            digest: Some(
                Digest::parse(
                    "sha256:418c30b6638cf7fbd7f8851059845330db9053d7b6b20a2b31259e37fe39a801"
                )
                .unwrap()
            ),
        }]
    );
    assert!(n.refused.is_empty());
}

#[test]
fn distribution_blob_pushes_and_manifest_pushes_by_digest_name_no_tag_and_are_skipped() {
    nothing(DISTRIBUTION, "distribution-recorded-blob-push.json");
    nothing(DISTRIBUTION, "distribution-recorded-digest-push.json");
    // Distribution 3's media type; a manifest and two blobs, none with a tag.
    nothing(
        "application/vnd.docker.distribution.events.v2+json",
        "distribution-doc-push-envelope.json",
    );
}

#[test]
fn a_distribution_pull_by_tag_is_not_a_push() {
    nothing(DISTRIBUTION, "distribution-doc-pull.json");
}

/// The recorded tag push, with `f` applied to its one event.
fn recorded_push_with(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture("distribution-recorded-tag-push.json"))
        .expect("fixture is JSON");
    f(&mut v["events"][0]);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn distribution_delete_and_mount_events_with_a_tag_are_skipped() {
    for action in ["delete", "mount", "pull"] {
        let body = recorded_push_with(|e| e["action"] = action.into());
        assert_eq!(
            parse(DISTRIBUTION, &body),
            Notification::default(),
            "{action}"
        );
    }
}

#[test]
fn without_request_host_the_host_comes_from_the_target_url_with_its_port() {
    let body = recorded_push_with(|e| {
        e["request"].as_object_mut().unwrap().remove("host");
        e["target"]["url"] = "http://Registry.LAN:5000/v2/library/app/manifests/sha256:x".into();
    });
    assert_eq!(
        parse(DISTRIBUTION, &body).pushes[0].host.as_deref(),
        Some("registry.lan:5000")
    );
    let body = recorded_push_with(|e| {
        e["request"] = serde_json::json!({});
        e["target"]["url"] = "https://registry.lan/v2/library/app/manifests/1.4.2".into();
    });
    assert_eq!(
        parse(DISTRIBUTION, &body).pushes[0].host.as_deref(),
        Some("registry.lan"),
        "the scheme's default port is not named"
    );
    let body = recorded_push_with(|e| {
        e["request"] = serde_json::json!({});
        e["target"].as_object_mut().unwrap().remove("url");
    });
    assert_eq!(parse(DISTRIBUTION, &body).pushes[0].host, None);
}

#[test]
fn a_digest_that_is_not_sha256_is_no_hint_but_the_push_still_counts() {
    let body = recorded_push_with(|e| e["target"]["digest"] = "sha512:abcd".into());
    let n = parse(DISTRIBUTION, &body);
    assert_eq!(n.pushes.len(), 1);
    assert_eq!(n.pushes[0].digest, None);
}

#[test]
fn a_tagged_push_with_a_name_this_agent_cannot_follow_is_refused_alone_not_the_envelope() {
    let mut v: Value = serde_json::from_slice(&fixture("distribution-recorded-tag-push.json"))
        .expect("fixture is JSON");
    let good = v["events"][0].clone();
    let mut bad = good.clone();
    // Upper case is no repository name anywhere (Distribution allows "__", and so do we).
    bad["target"]["repository"] = "library/My_App".into();
    v["events"] = Value::Array(vec![bad, good]);
    let n = parse(DISTRIBUTION, &serde_json::to_vec(&v).unwrap());
    assert_eq!(n.pushes.len(), 1);
    assert_eq!(n.pushes[0].repository.as_str(), "library/app");
    assert_eq!(n.refused.len(), 1);
    assert!(
        n.refused[0].contains("library/My_App:1.4.2"),
        "{:?}",
        n.refused
    );
}

#[test]
fn a_tagged_distribution_push_without_a_repository_is_malformed() {
    let body = recorded_push_with(|e| {
        e["target"].as_object_mut().unwrap().remove("repository");
    });
    let e = parse_notification(Some(DISTRIBUTION), &body).unwrap_err();
    assert!(e.contains("without target.repository"), "{e}");
}

#[test]
fn harbor_2_0_push_artifact_names_resource_host_project_repository_tag_and_digest() {
    let n = parse(JSON, &fixture("harbor-doc-2.0-push.json"));
    assert_eq!(
        n.pushes,
        [SitePush {
            host: Some("hub.harbor.com".into()),
            repository: Repository::parse("test-webhook/debian").unwrap(),
            tag: Tag::parse("latest").unwrap(),
            digest: Some(
                Digest::parse(
                    "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8"
                )
                .unwrap()
            ),
        }]
    );
}

#[test]
fn harbor_pushes_by_digest_carry_the_digest_as_tag_and_are_skipped_in_both_formats() {
    nothing(JSON, "harbor-doc-push-by-digest.json");
    nothing(JSON, "harbor-doc-cloudevents-push-by-digest.json");
}

/// Harbor's documented CloudEvents push with the resources of its 2.0 push of `latest`.
fn cloudevent_push_of_latest() -> Vec<u8> {
    let mut event: Value =
        serde_json::from_slice(&fixture("harbor-doc-cloudevents-push-by-digest.json")).unwrap();
    let pushed: Value = serde_json::from_slice(&fixture("harbor-doc-2.0-push.json")).unwrap();
    event["data"] = pushed["event_data"].clone();
    serde_json::to_vec(&event).unwrap()
}

#[test]
fn a_harbor_cloudevent_push_with_a_tag_reads_like_the_default_format() {
    let n = parse("application/cloudevents+json", &cloudevent_push_of_latest());
    let default = parse(JSON, &fixture("harbor-doc-2.0-push.json"));
    assert_eq!(n, default);
    assert_eq!(n.pushes.len(), 1);
}

#[test]
fn a_harbor_push_of_several_tags_is_one_push_per_tag() {
    let mut v: Value = serde_json::from_slice(&fixture("harbor-doc-2.0-push.json")).unwrap();
    let first = v["event_data"]["resources"][0].clone();
    let mut second = first.clone();
    second["tag"] = "12".into();
    second["resource_url"] = "hub.harbor.com:8443/test-webhook/debian:12".into();
    v["event_data"]["resources"] = Value::Array(vec![first, second]);
    let n = parse(JSON, &serde_json::to_vec(&v).unwrap());
    let seen: Vec<(Option<&str>, &str)> = n
        .pushes
        .iter()
        .map(|p| (p.host.as_deref(), p.tag.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("hub.harbor.com"), "latest"),
            (Some("hub.harbor.com:8443"), "12")
        ]
    );
}

#[test]
fn harbor_pulls_deletes_scans_and_replications_are_valid_and_ask_for_nothing() {
    for name in [
        "harbor-doc-pull.json",
        "harbor-doc-delete.json",
        "harbor-doc-cloudevents-delete.json",
        "harbor-doc-scanning-completed.json",
        "harbor-doc-cloudevents-scanning-completed.json",
        "harbor-doc-replication.json",
    ] {
        nothing(JSON, name);
    }
}

#[test]
fn a_harbor_push_without_event_data_or_repository_name_is_malformed() {
    let e =
        parse_notification(Some(JSON), br#"{"type":"PUSH_ARTIFACT","occur_at":1}"#).unwrap_err();
    assert!(e.contains("without \"event_data\""), "{e}");
    let mut v: Value = serde_json::from_slice(&fixture("harbor-doc-2.0-push.json")).unwrap();
    v["event_data"]["repository"]
        .as_object_mut()
        .unwrap()
        .remove("repo_full_name");
    let e = parse_notification(Some(JSON), &serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(e.contains("repo_full_name"), "{e}");
}

#[test]
fn the_shape_decides_whatever_the_content_type_says() {
    let harbor = fixture("harbor-doc-2.0-push.json");
    let distribution = fixture("distribution-recorded-tag-push.json");
    for content_type in [None, Some("text/plain"), Some(DISTRIBUTION), Some(JSON)] {
        if content_type != Some(DISTRIBUTION) {
            let n = parse_notification(content_type, &harbor).unwrap();
            assert_eq!(n.pushes.len(), 1, "Harbor as {content_type:?}");
        }
        let n = parse_notification(content_type, &distribution).unwrap();
        assert_eq!(n.pushes.len(), 1, "Distribution as {content_type:?}");
    }
}

#[test]
fn malformed_bodies_are_errors_that_name_what_is_wrong() {
    let cases: [(Option<&str>, &[u8], &str); 7] = [
        (Some(JSON), b"{\"events\": [", "not JSON"),
        (Some(JSON), b"[1, 2]", "not an object"),
        (
            Some(JSON),
            br#"{"hello":"world"}"#,
            "neither a Distribution envelope",
        ),
        (
            Some(DISTRIBUTION),
            br#"{"type":"x"}"#,
            "without an \"events\" array",
        ),
        (
            Some(DISTRIBUTION),
            br#"{"events":{}}"#,
            "Distribution envelope: invalid type",
        ),
        (
            Some(JSON),
            br#"{"specversion":"1.0","type":"com.example.build"}"#,
            "not one of Harbor's",
        ),
        (
            Some(JSON),
            br#"{"type":"PUSH_ARTIFACT","event_data":{"resources":"latest"}}"#,
            "Harbor PUSH_ARTIFACT webhook: invalid type",
        ),
    ];
    for (content_type, body, wanted) in cases {
        let e = parse_notification(content_type, body).unwrap_err();
        assert!(e.contains(wanted), "{}: {e}", String::from_utf8_lossy(body));
    }
}
