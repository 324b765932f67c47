use super::*;

fn facts(size: u64, sha256: Option<&str>) -> ObjectFacts {
    ObjectFacts {
        etag: "abc".into(),
        version_id: String::new(),
        size,
        sha256: sha256.map(str::to_owned),
    }
}

fn streamed(bytes: u64, sha256: &str) -> Streamed {
    Streamed {
        bytes,
        sha256: sha256.into(),
        ..Streamed::default()
    }
}

const ID: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

#[test]
fn one_image_whole_and_matching_is_its_image_id() {
    let sha = "a".repeat(64);
    let got = verdict(
        &facts(10, Some(&sha)),
        &streamed(10, &sha),
        Ok(vec![ID.into()]),
    );
    assert_eq!(got, Ok(ID.to_owned()));
    // No checksum in S3: the size and the Engine decide.
    let got = verdict(&facts(10, None), &streamed(10, &sha), Ok(vec![ID.into()]));
    assert_eq!(got, Ok(ID.to_owned()));
}

#[test]
fn truncated_mismatched_corrupt_and_multi_image_archives_are_refused_by_name() {
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    let refused = |r: Result<String, Refusal>| match r {
        Err(Refusal::Refused(why)) => why,
        other => panic!("{other:?}"),
    };
    let why = refused(verdict(
        &facts(10, None),
        &streamed(7, &a),
        Ok(vec![ID.into()]),
    ));
    assert_eq!(why, "truncated: 7 of 10 bytes arrived");
    let why = refused(verdict(
        &facts(10, Some(&b)),
        &streamed(10, &a),
        Ok(vec![ID.into()]),
    ));
    assert!(
        why.contains(&format!("SHA-256 is {a} but S3 has {b}")),
        "{why}"
    );
    // The size is checked before the Engine's answer: a short read explains a failed load.
    let why = refused(verdict(
        &facts(10, None),
        &streamed(7, &a),
        Err(("unexpected EOF".into(), false)),
    ));
    assert!(why.starts_with("truncated"), "{why}");
    let why = refused(verdict(
        &facts(10, None),
        &streamed(10, &a),
        Err(("archive/tar: invalid tar header".into(), false)),
    ));
    assert!(
        why.contains("could not load it as a docker save archive: archive/tar"),
        "{why}"
    );
    let why = refused(verdict(&facts(10, None), &streamed(10, &a), Ok(vec![])));
    assert!(why.contains("holds no image"), "{why}");
    let two = vec![ID.to_owned(), ID.replace('1', "2")];
    let why = refused(verdict(&facts(10, None), &streamed(10, &a), Ok(two)));
    assert!(
        why.starts_with("the archive holds 2 images (sha256:1111"),
        "{why}"
    );
}

#[test]
fn failures_on_the_way_are_tried_again_not_remembered() {
    let a = "a".repeat(64);
    let cut = Streamed {
        read_error: Some("connection reset".into()),
        ..streamed(3, &a)
    };
    assert!(matches!(
        verdict(&facts(10, None), &cut, Err(("unexpected EOF".into(), false))),
        Err(Refusal::Transient(why)) if why.contains("connection reset")
    ));
    assert!(matches!(
        verdict(
            &facts(10, None),
            &streamed(10, &a),
            Err(("no answer".into(), true))
        ),
        Err(Refusal::Transient(_))
    ));
}

#[test]
fn s3_checksums_become_hex_only_when_they_cover_the_whole_object() {
    // SHA-256 of the empty string.
    let empty = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    assert_eq!(
        checksum_hex(empty).as_deref(),
        Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(checksum_hex(&format!("{empty}-3")), None);
    // A multipart upload's ETag: its SHA-256 is of the parts' checksums.
    assert!(is_multipart_etag("\"8b0be7847da5564ae08e97af63b60885-2\""));
    assert!(is_multipart_etag("8b0be7847da5564ae08e97af63b60885-1"));
    assert!(!is_multipart_etag("8b0be7847da5564ae08e97af63b60885"));
    assert!(!is_multipart_etag("-2") && !is_multipart_etag("abc-") && !is_multipart_etag("a-b"));
    assert_eq!(checksum_hex("not base64!"), None);
    assert_eq!(checksum_hex("AAAA"), None);
    let hex = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
    assert_eq!(metadata_hex(hex), Some(hex.to_ascii_lowercase()));
    assert_eq!(
        metadata_hex(&format!("sha256:{hex}")),
        Some(hex.to_ascii_lowercase())
    );
    assert_eq!(metadata_hex("abc"), None);
}

#[test]
fn objects_are_named_with_their_etag_and_version() {
    let mut f = facts(1, None);
    assert_eq!(f.describe("b", "k.tar"), "s3://b/k.tar (ETag abc)");
    f.version_id = "v1".into();
    assert_eq!(
        f.describe("b", "k.tar"),
        "s3://b/k.tar (ETag abc, version v1)"
    );
}

#[test]
fn streams_cut_for_their_length_or_their_format_are_refused_before_the_engine_is_heard() {
    let a = "a".repeat(64);
    let long = Streamed {
        too_long: true,
        ..streamed(11, &a)
    };
    let got = verdict(&facts(10, None), &long, Ok(vec![ID.into()]));
    assert_eq!(
        got,
        Err(Refusal::Refused(
            "more than the 10 bytes S3 announced arrived; cut there".into()
        ))
    );
    let bad = Streamed {
        format_error: Some("not a tar archive".into()),
        ..streamed(4, &a)
    };
    let got = verdict(&facts(10, None), &bad, Err(("EOF".into(), false)));
    assert_eq!(
        got,
        Err(Refusal::Refused(
            "could not load it as a docker save archive: not a tar archive".into()
        ))
    );
}

#[test]
fn objects_too_large_or_without_a_required_checksum_are_refused_before_download() {
    let limits = |max_bytes, require_checksum| ArchiveSettings {
        max_bytes,
        require_checksum,
    };
    let sha = "a".repeat(64);
    assert_eq!(precheck(&facts(10, None), &limits(10, false)), Ok(()));
    assert_eq!(precheck(&facts(10, Some(&sha)), &limits(10, true)), Ok(()));
    let why = precheck(&facts(11, Some(&sha)), &limits(10, true)).unwrap_err();
    assert!(
        why.contains("11 bytes, more than [archives] max_bytes (10)"),
        "{why}"
    );
    let why = precheck(&facts(10, None), &limits(10, true)).unwrap_err();
    assert!(
        why.contains("neither a full-object SHA-256 checksum nor sha256 user metadata"),
        "{why}"
    );
    assert!(why.contains("require_checksum"), "{why}");
}
