use super::*;

fn d(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

fn amd64() -> Platform {
    Platform::new("linux", "amd64", None)
}

/// An index as buildx pushes it: the amd64 image, an arm64 one, and the provenance
/// attestation for the amd64 image.
fn buildx_index() -> String {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d('a').as_str(), "size": 1,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d('b').as_str(), "size": 1,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d('c').as_str(), "size": 1,
             "platform": {"architecture": "unknown", "os": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                             "vnd.docker.reference.digest": d('a').as_str()}}
        ]
    })
    .to_string()
}

fn index(digest: char) -> Desired {
    Desired {
        digest: d(digest),
        entries: index_entries(None, &buildx_index()).unwrap(),
    }
}

#[test]
fn a_single_manifest_matches_any_of_the_image_digests_not_only_the_first() {
    let desired = Desired::single(d('1'));
    assert_eq!(compare(&[d('1')], &desired, &amd64()), Match::Exact);
    // Promoted from test/app to prod/app: two RepoDigests, ours second.
    assert_eq!(compare(&[d('9'), d('1')], &desired, &amd64()), Match::Exact);
    assert_eq!(compare(&[d('9')], &desired, &amd64()), Match::Behind);
    assert_eq!(compare(&[], &desired, &amd64()), Match::Behind);
}

#[test]
fn an_index_matches_its_own_digest_or_the_manifest_for_this_platform() {
    let desired = index('f');
    // Pulled by the index digest.
    assert_eq!(compare(&[d('f')], &desired, &amd64()), Match::Exact);
    // Pulled by the platform digest only, before the index existed.
    assert_eq!(
        compare(&[d('a')], &desired, &amd64()),
        Match::Platform(d('a'))
    );
    // Both: the index digest wins.
    assert_eq!(compare(&[d('a'), d('f')], &desired, &amd64()), Match::Exact);
    // Another platform's manifest is not ours.
    assert_eq!(compare(&[d('b')], &desired, &amd64()), Match::Behind);
    let arm64 = Platform::of_engine("linux", "arm64", "aarch64");
    assert_eq!(
        compare(&[d('b')], &desired, &arm64),
        Match::Platform(d('b'))
    );
}

#[test]
fn attestation_manifests_are_never_candidates() {
    let desired = index('f');
    assert_eq!(compare(&[d('c')], &desired, &amd64()), Match::Behind);
    let unknown = Platform::new("unknown", "unknown", None);
    assert_eq!(desired.for_platform(&unknown), None);
    let entries = index_entries(None, &buildx_index()).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.attestation).collect::<Vec<_>>(),
        [false, false, true]
    );
}

#[test]
fn a_new_index_whose_platform_manifest_changed_is_behind() {
    let mut desired = index('8');
    desired.entries[0].digest = d('e');
    assert_eq!(
        compare(&[d('a'), d('f')], &desired, &amd64()),
        Match::Behind
    );
}

#[test]
fn a_variant_on_only_one_side_matches_and_two_different_variants_do_not() {
    let v7 = Platform::of_engine("linux", "arm", "armv7l");
    assert_eq!(v7.variant.as_deref(), Some("v7"));
    assert!(v7.runs(&Platform::new("linux", "arm", Some("v7"))));
    assert!(!v7.runs(&Platform::new("linux", "arm", Some("v6"))));
    assert!(v7.runs(&Platform::new("linux", "arm", None)));
    assert!(!v7.runs(&Platform::new("linux", "arm64", None)));
    assert!(!amd64().runs(&Platform::new("windows", "amd64", None)));
    assert_eq!(
        Platform::of_engine("linux", "amd64", "x86_64").variant,
        None
    );
}

#[test]
fn a_docker_manifest_list_is_an_index_and_an_image_manifest_is_not() {
    let list = buildx_index().replace(
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    );
    assert_eq!(index_entries(None, &list).unwrap().len(), 3);
    // Media type given only by the registry (the manifest leaves it out).
    let bare = r#"{"schemaVersion":2,"manifests":[]}"#;
    assert!(
        index_entries(Some(INDEX_MEDIA_TYPES[0]), bare)
            .unwrap()
            .is_empty()
    );
    let image = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
    assert!(index_entries(None, image).unwrap().is_empty());
    // Whatever an emulator stores as a stand-in is not an index.
    assert!(index_entries(None, "not json").unwrap().is_empty());
}

#[test]
fn a_malformed_index_is_an_error_naming_what_is_wrong() {
    let err = index_entries(Some(INDEX_MEDIA_TYPES[0]), "{").unwrap_err();
    assert!(err.contains("not JSON"), "{err}");
    let err = index_entries(Some(INDEX_MEDIA_TYPES[1]), r#"{"schemaVersion":2}"#).unwrap_err();
    assert!(err.contains("manifests"), "{err}");
    let bad = r#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"sha256:nope"}]}"#;
    assert!(
        index_entries(None, bad)
            .unwrap_err()
            .contains("index entry")
    );
}

#[test]
fn repo_digests_put_the_followed_repository_first_and_drop_duplicates() {
    let entries = vec![
        format!("127.0.0.1:5000/test/app@{}", d('1')),
        format!("127.0.0.1:5000/prod/app@{}", d('2')),
        format!(
            "123456789012.dkr.ecr.eu-west-2.amazonaws.com/prod/app@{}",
            d('2')
        ),
        "garbage".to_owned(),
        "x/prod/app@sha256:short".to_owned(),
    ];
    assert_eq!(repo_digests(&entries, "prod/app"), [d('2'), d('1')]);
    assert_eq!(repo_digests(&entries, "test/app"), [d('1'), d('2')]);
    // Another repository: every digest still counts, in their order.
    assert_eq!(repo_digests(&entries, "other"), [d('1'), d('2')]);
}
