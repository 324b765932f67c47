use super::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn reconcile(body: &str) -> PushEvent {
    match classify(body) {
        Classified::Reconcile(p) => p,
        other => panic!("expected a reconcile request, got {other:?}"),
    }
}

#[test]
fn push_with_tag_is_a_reconcile_request_with_account_and_time() {
    let p = reconcile(&fixture("push.json"));
    assert_eq!(p.image.repository.as_str(), "my-repository-name");
    assert_eq!(p.image.tag.as_str(), "latest");
    assert_eq!(p.image.registry.as_deref(), Some("123456789012"));
    assert_eq!(p.image.region.as_deref(), Some("us-west-2"));
    assert_eq!(p.digest_hint.as_ref().unwrap().short(), "7f5b2640fe6f");
    let t = p.time.expect("event time parsed");
    assert_eq!(
        humantime::format_rfc3339(t).to_string(),
        "2019-11-16T01:54:34Z"
    );
}

#[test]
fn aws_documentation_sample_with_60_hex_placeholder_digest_is_malformed() {
    // The ECR user guide's sample carries a 60-character placeholder digest; SPEC §5 says a
    // digest that is not sha256:<64 hex> is malformed, and it must go to the DLQ.
    match classify(&fixture("aws-doc-push.json")) {
        Classified::Malformed(reason) => assert!(reason.contains("64"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sns_wrapped_push_is_unwrapped() {
    let p = reconcile(&fixture("sns-push.json"));
    assert_eq!(p.image.to_string(), "team/api:prod");
}

#[test]
fn push_by_digest_without_tag_is_nothing_to_do() {
    assert!(matches!(
        classify(&fixture("push-by-digest.json")),
        Classified::Nothing(_)
    ));
}

#[test]
fn delete_failure_and_scan_events_are_nothing_to_do() {
    for f in [
        "aws-doc-delete.json",
        "push-failure.json",
        "aws-doc-scan.json",
    ] {
        assert!(
            matches!(classify(&fixture(f)), Classified::Nothing(_)),
            "{f}"
        );
    }
}

#[test]
fn other_sources_and_plain_json_are_foreign() {
    // S3's own events are archive hints (SPEC §13); AWS's example of one is read as such.
    let Classified::Reconcile(p) = classify(&fixture("s3-object-created.json")) else {
        panic!("an S3 Object Created event is a hint for its key")
    };
    assert_eq!(p.image.to_string(), "s3://example-bucket/example-key");
    assert!(matches!(
        classify(r#"{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification"}"#),
        Classified::Foreign(_)
    ));
    assert!(matches!(
        classify(r#"{"hello":"world"}"#),
        Classified::Foreign(_)
    ));
    assert!(matches!(classify("[1,2,3]"), Classified::Foreign(_)));
    assert!(matches!(
        classify(r#"{"Type":"Notification","Message":"plain text"}"#),
        Classified::Foreign(_)
    ));
}

#[test]
fn emulator_body_without_account_is_accepted() {
    let body = fixture("push.json").replace("\"account\": \"123456789012\",", "");
    assert_eq!(reconcile(&body).image.registry, None);
}

#[test]
fn extra_fields_are_ignored() {
    let body = fixture("push.json").replace(
        "\"detail\": {",
        "\"future-field\": [1], \"detail\": { \"new-thing\": {\"x\": 1},",
    );
    reconcile(&body);
}

#[test]
fn malformed_bodies_name_the_reason() {
    let push = fixture("push.json");
    let cases = [
        ("not json".to_owned(), "not JSON"),
        (push.replace("sha256:7f5b", "md5:7f5b"), "sha256"),
        (push.replace("7f5b2640", "7F5B2640"), "64 lowercase"),
        (
            push.replace("\"my-repository-name\"", "\"My_Repo\""),
            "repository",
        ),
        (
            push.replace("\"image-tag\": \"latest\"", "\"image-tag\": \"bad tag\""),
            "tag",
        ),
        (push.replace("\"123456789012\"", "\"12ab\""), "account"),
        (
            push.replace("\"repository-name\": \"my-repository-name\",", ""),
            "repository-name",
        ),
        (
            r#"{"source":"aws.ecr","detail-type":"ECR Image Action"}"#.to_owned(),
            "detail",
        ),
        (r#"{"Type":"Notification"}"#.to_owned(), "Message"),
    ];
    for (body, needle) in cases {
        match classify(&body) {
            Classified::Malformed(reason) => assert!(reason.contains(needle), "{reason}"),
            other => panic!("{body}: expected malformed, got {other:?}"),
        }
    }
}

#[test]
fn repository_names_follow_ecr_rules() {
    for ok in ["ab", "team/api", "a.b-c_d/e", "x1/y2/z3"] {
        Repository::parse(ok).unwrap();
    }
    for bad in [
        "a",
        "A/b",
        "team//api",
        "-a",
        "a-",
        "a..b",
        "/ab",
        "ab/",
        "a b",
    ] {
        assert!(Repository::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn image_label_parses_repository_and_defaults_tag_to_latest() {
    assert_eq!(
        ImageRef::parse_repo_tag("team/api").unwrap().to_string(),
        "team/api:latest"
    );
    assert_eq!(
        ImageRef::parse_repo_tag("team/api:v2")
            .unwrap()
            .tag
            .as_str(),
        "v2"
    );
    assert!(ImageRef::parse_repo_tag("team/api:").is_err());
}

#[test]
fn containers_follow_ecr_references_mirror_references_or_their_label() {
    let ecr = follows(
        "123456789012.dkr.ecr.eu-west-2.amazonaws.com/team/api:prod",
        None,
        &Mirrors::default(),
    )
    .unwrap();
    assert_eq!(
        (ecr.registry.as_deref(), ecr.to_string().as_str()),
        (Some("123456789012"), "team/api:prod")
    );
    let untagged = follows(
        "123456789012.dkr.ecr.eu-west-2.amazonaws.com/team/api",
        None,
        &Mirrors::default(),
    )
    .unwrap();
    assert_eq!(untagged.tag.as_str(), "latest");
    let pinned = follows(
        "123456789012.dkr.ecr.eu-west-2.amazonaws.com/team/api:v1@sha256:abc",
        None,
        &Mirrors::default(),
    )
    .unwrap();
    assert_eq!(pinned.tag.as_str(), "v1");
    let mirror = follows(
        "127.0.0.1:5000/team/api:prod",
        None,
        &Mirrors::single(Some("127.0.0.1:5000")),
    )
    .unwrap();
    assert_eq!(
        (mirror.registry.clone(), mirror.to_string()),
        (None, "team/api:prod".to_owned())
    );
    let label = follows("nginx:latest", Some("team/web:stable"), &Mirrors::default()).unwrap();
    assert_eq!(label.to_string(), "team/web:stable");
    for other in [
        "nginx:latest",
        "docker.io/library/nginx",
        "127.0.0.1:5000/team/api:prod",
        "1234.dkr.ecr.x.amazonaws.com/a/b",
    ] {
        assert!(
            follows(other, None, &Mirrors::default()).is_err(),
            "{other}"
        );
    }
}

#[test]
fn references_split_into_repository_and_tag() {
    assert_eq!(
        split_reference("host:5000/team/web:prod"),
        ("host:5000/team/web", "prod")
    );
    assert_eq!(
        split_reference("host:5000/team/web"),
        ("host:5000/team/web", "latest")
    );
    assert_eq!(
        split_reference("host/team/web:v1@sha256:ab"),
        ("host/team/web", "v1")
    );
}

#[test]
fn the_key_is_account_region_repository_and_tag_an_unnamed_part_being_home() {
    let with = follows(
        "123456789012.dkr.ecr.eu-west-2.amazonaws.com/team/api:prod",
        None,
        &Mirrors::default(),
    )
    .unwrap();
    assert_eq!(with.registry.as_deref(), Some("123456789012"));
    assert_eq!(with.region.as_deref(), Some("eu-west-2"));
    let bare = ImageRef::parse_repo_tag("team/api:prod").unwrap();
    let home = Home::of_registry_host("123456789012.dkr.ecr.eu-west-2.amazonaws.com");
    let elsewhere = Home::of_registry_host("210987654321.dkr.ecr.eu-west-2.amazonaws.com");
    // A bare label (or an event without an account) is in the credentials' registry.
    assert!(bare.matches_in(&with, &home) && with.matches_in(&bare, &home));
    assert!(!bare.matches_in(&with, &elsewhere) && !with.matches_in(&bare, &elsewhere));
    // Home unknown: an unnamed part matches only an unnamed one.
    assert!(!bare.matches(&with) && bare.matches(&bare) && with.matches(&with));
    assert!(bare.needs_home(&with) && !with.needs_home(&with));
    // Another account, or the same account's registry in another region, is another key.
    let mut other_account = with.clone();
    other_account.registry = Some("210987654321".into());
    assert!(!other_account.matches_in(&with, &home) && !other_account.matches_in(&bare, &home));
    let other_region = with.clone().in_region(Some("us-east-1".into()));
    assert!(!other_region.matches_in(&with, &home) && !other_region.matches_in(&bare, &home));
    // An event naming the account but not the region is in the home region.
    let no_region = with.clone().in_region(None);
    assert!(no_region.matches_in(&with, &home) && !no_region.matches(&with));
    assert!(
        !ImageRef::parse_repo_tag("team/api:dev")
            .unwrap()
            .matches_in(&with, &home)
    );
    // Hosts that are not an ECR registry's give no home.
    assert_eq!(Home::of_registry_host("localhost:5000"), Home::default());
    assert_eq!(
        Home::of_registry_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").region,
        Some("cn-north-1".into())
    );
}

fn hint(body: &str) -> GateHint {
    match classify(body) {
        Classified::Recheck(h) => h,
        other => panic!("expected a gate hint, got {other:?}"),
    }
}

const D: &str = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12345678";

#[test]
fn the_push_of_a_signature_tag_is_a_hint_for_the_digest_it_names_not_a_deploy() {
    let hex = &D["sha256:".len()..];
    let body = fixture("push.json").replace("\"latest\"", &format!("\"sha256-{hex}.sig\""));
    let h = hint(&body);
    assert_eq!(h.repository.as_str(), "my-repository-name");
    assert_eq!(h.digest.unwrap().as_str(), D);
    assert_eq!(h.registry.as_deref(), Some("123456789012"));
    assert_eq!(h.why, "signature pushed");
    // Other cosign-looking tags are ordinary tags.
    let body = fixture("push.json").replace("\"latest\"", "\"sha256-abc.sig\"");
    assert!(matches!(classify(&body), Classified::Reconcile(_)));
    // The referrers tag schema's tag (a referrer pushed where there is no referrers API).
    let body = fixture("push.json").replace("\"latest\"", &format!("\"sha256-{hex}\""));
    assert_eq!(hint(&body).digest.unwrap().as_str(), D);
}

/// SPEC §11: a referrer pushed to ECR (which has the referrers API) moves no tag and the event
/// names the referrer, not its subject: an artifact pushed without a tag re-checks every
/// signature rejection of its repository; an image pushed by digest is still nothing.
#[test]
fn an_artifact_pushed_without_a_tag_rechecks_the_repositorys_signature_rejections() {
    let by_digest = fixture("push-by-digest.json");
    let with = |t: &str| {
        by_digest.replace(
            "\"image-tag\": \"\"",
            &format!("\"image-tag\": \"\", \"artifact-media-type\": \"{t}\""),
        )
    };
    for t in [
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "application/vnd.cncf.notary.signature",
        "application/vnd.oci.empty.v1+json",
    ] {
        let h = hint(&with(t));
        assert_eq!(
            (h.repository.as_str(), h.digest.as_ref()),
            ("team/api", None),
            "{t}"
        );
        assert!(h.why.contains(t), "{}", h.why);
    }
    for image in [
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    ] {
        assert!(
            matches!(classify(&with(image)), Classified::Nothing(_)),
            "{image}"
        );
    }
    assert!(matches!(classify(&by_digest), Classified::Nothing(_)));
}

#[test]
fn basic_and_enhanced_scan_events_are_hints_and_bad_ones_are_nothing() {
    let scan = |d: &str| {
        fixture("aws-doc-scan.json").replace(
            "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234",
            d,
        )
    };
    let h = hint(&scan(D));
    assert_eq!(
        (h.repository.as_str(), h.digest.as_ref().unwrap().as_str()),
        ("my-repository-name", D)
    );
    assert_eq!(h.why, "scan COMPLETE");
    // The documentation's own example has a truncated digest: nothing to look at.
    assert!(matches!(
        classify(&fixture("aws-doc-scan.json")),
        Classified::Nothing(_)
    ));
    let inspector = format!(
        r#"{{"version":"0","id":"x","detail-type":"Inspector2 Scan","source":"aws.inspector2","account":"123456789012",
        "time":"2023-01-01T00:00:00Z","region":"eu-west-1","resources":[],
        "detail":{{"scan-status":"INITIAL_SCAN_COMPLETE","repository-name":"arn:aws:ecr:eu-west-1:123456789012:repository/team/web",
        "finding-severity-counts":{{"CRITICAL":0,"HIGH":1,"MEDIUM":0,"TOTAL":1}},"image-digest":"{D}","image-tags":["v1"]}}}}"#
    );
    let h = hint(&inspector);
    assert_eq!(
        (h.repository.as_str(), h.why.as_str()),
        ("team/web", "enhanced scan INITIAL_SCAN_COMPLETE")
    );
    let not_ecr = inspector.replace(
        "arn:aws:ecr:eu-west-1:123456789012:repository/team/web",
        "i-0123",
    );
    assert!(matches!(classify(&not_ecr), Classified::Nothing(_)));
    let other = inspector.replace("Inspector2 Scan", "Inspector2 Finding");
    assert!(matches!(classify(&other), Classified::Nothing(_)));
}

fn result_event(detail: serde_json::Value) -> String {
    serde_json::json!({
        "version": "0", "id": "x", "source": "ecr-deployd", "detail-type": "ECR Deployment Result",
        "account": "123456789012", "time": "2026-12-03T07:00:00Z", "region": "eu-west-2",
        "resources": [], "detail": detail,
    })
    .to_string()
}

fn result_detail() -> serde_json::Value {
    serde_json::json!({
        "host": "kernel-name", "name": "canary-1", "wave": 1, "kind": "container",
        "container": "web", "repository": "shop/web", "tag": "prod",
        "from_digest": null, "to_digest": format!("sha256:{}", "b".repeat(64)),
        "outcome": "rolled_back", "trigger": "event", "error": "exited with 1",
        "durations_ms": {"total": 1},
    })
}

#[test]
fn a_deployment_result_is_a_fleet_result_counted_by_fleet_name() {
    let Classified::FleetResult(r) = classify(&result_event(result_detail())) else {
        panic!("not a fleet result");
    };
    assert_eq!(
        (r.host.as_str(), r.wave, r.outcome.as_str()),
        ("canary-1", 1, "rolled_back")
    );
    assert_eq!(r.image.to_string(), "shop/web:prod");
    assert_eq!(r.error.as_deref(), Some("exited with 1"));
    // An older agent sent no `name`: its host name counts.
    let mut d = result_detail();
    d.as_object_mut().unwrap().remove("name");
    let Classified::FleetResult(r) = classify(&result_event(d)) else {
        panic!("not a fleet result");
    };
    assert_eq!(r.host, "kernel-name");
    // A numeral for the wave and no container are taken.
    let mut d = result_detail();
    d["wave"] = serde_json::json!("2");
    d.as_object_mut().unwrap().remove("container");
    let Classified::FleetResult(r) = classify(&result_event(d)) else {
        panic!("not a fleet result");
    };
    assert_eq!((r.wave, r.container.as_str()), (2, ""));
}

#[test]
fn a_deployment_result_with_a_bad_field_is_malformed_and_names_it() {
    for (key, value, says) in [
        ("wave", serde_json::json!("first"), "wave"),
        ("wave", serde_json::json!(0), "wave"),
        ("wave", serde_json::json!(-1), "wave"),
        ("outcome", serde_json::json!("exploded"), "exploded"),
        ("to_digest", serde_json::json!("sha256:zz"), "sha256:zz"),
        ("repository", serde_json::json!("Shop"), "Shop"),
        ("tag", serde_json::json!(""), "tag"),
    ] {
        let mut d = result_detail();
        d[key] = value;
        match classify(&result_event(d)) {
            Classified::Malformed(why) => assert!(why.contains(says), "{key}: {why}"),
            other => panic!("{key}: {other:?}"),
        }
    }
    // Another detail-type of the agent's source is nothing to do.
    let other = result_event(result_detail()).replace("ECR Deployment Result", "Something Else");
    assert!(matches!(classify(&other), Classified::Nothing(_)));
}
