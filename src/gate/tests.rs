use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};

use super::scan::show_counts;
use super::signature::{check, layers_of, sig_tag, signed_digest};
use super::*;
use crate::event::Digest;

fn digest(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

pub(crate) fn key(seed: u8) -> (SigningKey, TrustedKey) {
    let sk = SigningKey::from_slice(&[seed; 32]).unwrap();
    let pem = sk
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    (
        sk,
        TrustedKey::from_pem(&format!("key{seed}.pub"), &pem).unwrap(),
    )
}

pub(crate) fn payload(reference: &str, d: &Digest) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

pub(crate) fn signed(sk: &SigningKey, payload: Vec<u8>) -> SignatureLayer {
    let sig: DerSignature = sk.sign(&payload);
    SignatureLayer {
        signature: base64::engine::general_purpose::STANDARD.encode(sig.as_bytes()),
        payload,
    }
}

fn rejected(v: SupplyVerdict) -> String {
    match v {
        SupplyVerdict::Rejected(why) => why,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// The image's own registry host, and its mirror.
const REGISTRY: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
const MIRROR: &str = "127.0.0.1:5000";

fn at(repository: &str) -> Place {
    Place::new(repository, REGISTRY, MIRROR)
}

#[test]
fn a_signature_by_a_trusted_key_for_this_digest_and_repository_is_accepted() {
    let (sk, trusted) = key(7);
    let d = digest('a');
    // The docker-reference names the image's registry or the mirror it is pulled from.
    for reference in [
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/web",
        "127.0.0.1:5000/team/web",
        "127.0.0.1:5000/team/web:v1",
    ] {
        let layers = [signed(&sk, payload(reference, &d))];
        assert_eq!(
            check(&layers, &d, &at("team/web"), std::slice::from_ref(&trusted)),
            SupplyVerdict::Accepted("signed by key7.pub".into()),
            "{reference}"
        );
    }
}

#[test]
fn a_signature_for_this_repository_at_another_registry_host_is_rejected_naming_both() {
    let (sk, trusted) = key(7);
    let d = digest('a');
    let keys = std::slice::from_ref(&trusted);
    for (reference, host) in [
        (
            "210987654321.dkr.ecr.eu-west-1.amazonaws.com/team/web",
            "210987654321.dkr.ecr.eu-west-1.amazonaws.com",
        ),
        ("registry.example:5000/team/web", "registry.example:5000"),
        ("localhost/team/web:v1", "localhost"),
        ("team/web", "docker.io"),
    ] {
        let why = rejected(check(
            &[signed(&sk, payload(reference, &d))],
            &d,
            &at("team/web"),
            keys,
        ));
        assert!(
            why.contains("a signature by key7.pub for another registry host")
                && why.contains(host)
                && why.contains(REGISTRY)
                && why.contains(MIRROR),
            "{reference}: {why}"
        );
    }
}

#[test]
fn unsigned_other_keys_other_digests_and_other_repositories_are_rejected_with_the_reason() {
    let (sk, trusted) = key(7);
    let (other, _) = key(9);
    let d = digest('a');
    let keys = std::slice::from_ref(&trusted);
    let why = rejected(check(&[], &d, &at("web"), keys));
    assert!(
        why.contains("not signed") && why.contains(&sig_tag(&d)),
        "{why}"
    );
    let why = rejected(check(
        &[signed(&other, payload("r/web", &d))],
        &d,
        &at("web"),
        keys,
    ));
    assert!(why.contains("no trusted key"), "{why}");
    let why = rejected(check(
        &[signed(&sk, payload("r/web", &digest('b')))],
        &d,
        &at("web"),
        keys,
    ));
    assert!(why.contains("another digest"), "{why}");
    let why = rejected(check(
        &[signed(&sk, payload("r/api", &d))],
        &d,
        &at("web"),
        keys,
    ));
    assert!(why.contains("another repository (r/api)"), "{why}");
    // A valid signature over a payload that was then altered.
    let mut tampered = signed(&sk, payload("r/web", &digest('b')));
    tampered.payload = payload("r/web", &d);
    assert!(rejected(check(&[tampered], &d, &at("web"), keys)).contains("no trusted key"));
    let garbage = SignatureLayer {
        payload: payload("r/web", &d),
        signature: "%%%".into(),
    };
    assert!(rejected(check(&[garbage], &d, &at("web"), keys)).contains("not base64"));
}

#[test]
fn one_good_layer_among_bad_ones_is_enough() {
    let (sk, trusted) = key(7);
    let (other, _) = key(9);
    let d = digest('a');
    let layers = [
        signed(&other, payload("127.0.0.1:5000/web", &d)),
        signed(&sk, payload("127.0.0.1:5000/web", &d)),
    ];
    assert!(matches!(
        check(&layers, &d, &at("web"), &[trusted]),
        SupplyVerdict::Accepted(_)
    ));
}

#[test]
fn keys_that_are_not_p256_public_keys_are_refused_naming_the_file() {
    let err = TrustedKey::from_pem(
        "/etc/k.pub",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
    )
    .unwrap_err();
    assert!(
        err.starts_with("/etc/k.pub: not a PEM ECDSA P-256"),
        "{err}"
    );
    assert!(TrustedKey::from_pem("x", "hello").is_err());
}

#[test]
fn signature_tags_name_their_digest_and_manifests_yield_their_payload_layers() {
    let d = digest('c');
    assert_eq!(sig_tag(&d), format!("sha256-{}.sig", "c".repeat(64)));
    assert_eq!(signed_digest(&sig_tag(&d)), Some(d.clone()));
    assert_eq!(signed_digest("v1"), None);
    assert_eq!(signed_digest("sha256-zz.sig"), None);
    // The referrers tag schema's tag re-checks too.
    let schema_tag = d.as_str().replacen(':', "-", 1);
    assert_eq!(signed_digest(&schema_tag), Some(d.clone()));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{d}","size":2}},
        "layers":[{{"mediaType":"{}","digest":"{d}","size":10,"annotations":{{"{}":"c2ln"}}}},
                  {{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":1}}]}}"#,
        signature::PAYLOAD_MEDIA_TYPE,
        signature::SIGNATURE_ANNOTATION
    );
    let layers = layers_of(manifest.as_bytes()).unwrap();
    assert_eq!(
        layers,
        vec![signature::LayerRef {
            digest: d,
            signature: "c2ln".into()
        }]
    );
    assert!(
        layers_of(b"not json")
            .unwrap_err()
            .contains("not an image manifest")
    );
}

fn counts(pairs: &[(&str, u64)]) -> ScanFacts {
    ScanFacts::Complete(
        pairs
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn rule(max: Severity, on_missing: OnMissing) -> ScanRule {
    ScanRule {
        max,
        wait: Duration::from_secs(600),
        on_missing,
    }
}

#[test]
fn a_finding_at_or_above_the_limit_rejects_and_below_it_passes() {
    let high = rule(Severity::High, OnMissing::Block);
    let why = rejected(high.verdict(
        &counts(&[("CRITICAL", 2), ("LOW", 5), ("HIGH", 1)]),
        Duration::ZERO,
    ));
    assert_eq!(why, "scan found 2 CRITICAL, 1 HIGH, 5 LOW (limit HIGH)");
    assert!(matches!(
        high.verdict(&counts(&[("HIGH", 1)]), Duration::ZERO),
        SupplyVerdict::Rejected(_)
    ));
    assert!(matches!(
        high.verdict(&counts(&[("MEDIUM", 3), ("LOW", 1)]), Duration::ZERO),
        SupplyVerdict::Accepted(_)
    ));
    // Zero counts, informational and undefined findings never reject.
    let low = rule(Severity::Low, OnMissing::Block);
    assert!(matches!(
        low.verdict(
            &counts(&[("CRITICAL", 0), ("INFORMATIONAL", 4), ("UNDEFINED", 1)]),
            Duration::ZERO
        ),
        SupplyVerdict::Accepted(_)
    ));
    assert!(matches!(
        low.verdict(&counts(&[]), Duration::ZERO),
        SupplyVerdict::Accepted(_)
    ));
    assert_eq!(show_counts(&BTreeMap::new()), "no findings");
}

#[test]
fn a_scan_in_progress_or_coming_waits_then_is_rejected_and_none_coming_is_on_missing() {
    let block = rule(Severity::Critical, OnMissing::Block);
    let allow = rule(Severity::Critical, OnMissing::Allow);
    let coming = ScanFacts::Missing { scan_on_push: true };
    for facts in [ScanFacts::InProgress, coming] {
        assert!(
            matches!(block.verdict(&facts, Duration::from_secs(599)), SupplyVerdict::Pending(ref w) if w.contains("1 s more"))
        );
        let why = rejected(allow.verdict(&facts, Duration::from_secs(600)));
        assert!(why.contains("after 600 s"), "{why}");
    }
    let none = ScanFacts::Missing {
        scan_on_push: false,
    };
    assert!(rejected(block.verdict(&none, Duration::ZERO)).contains("on_missing = block"));
    assert!(matches!(
        allow.verdict(&none, Duration::ZERO),
        SupplyVerdict::Accepted(_)
    ));
    let failed = ScanFacts::Unavailable("UNSUPPORTED_IMAGE".into());
    assert!(rejected(block.verdict(&failed, Duration::ZERO)).contains("UNSUPPORTED_IMAGE"));
    assert!(matches!(
        allow.verdict(&failed, Duration::ZERO),
        SupplyVerdict::Accepted(_)
    ));
}

#[test]
fn labels_override_the_config_and_bad_labels_are_named() {
    let (_, trusted) = key(7);
    let gates = Gates {
        trust: Trust {
            keys: vec![trusted],
            ..Default::default()
        },
        max_severity: Some(Severity::Critical),
        wait: Duration::from_secs(60),
        ..Default::default()
    };
    let labels = |pairs: &[(&str, &str)]| {
        GateLabels::from_labels(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        )
    };
    let a = gates.applying(&labels(&[])).unwrap();
    assert!(!a.signed);
    assert_eq!(a.scan.unwrap().max, Severity::Critical);
    let a = gates
        .applying(&labels(&[(LABEL_VERIFY, "signed"), (LABEL_SCAN, "medium")]))
        .unwrap();
    assert!(a.signed);
    assert_eq!(a.scan.unwrap().max, Severity::Medium);
    assert_eq!(
        gates
            .applying(&labels(&[(LABEL_SCAN, "none")]))
            .unwrap()
            .scan,
        None
    );
    let err = gates
        .applying(&labels(&[(LABEL_VERIFY, "yes")]))
        .unwrap_err();
    assert!(err.contains("ecr-deployd.verify=\"yes\""), "{err}");
    let err = gates
        .applying(&labels(&[(LABEL_SCAN, "INFORMATIONAL")]))
        .unwrap_err();
    assert!(err.contains("not a severity to gate on"), "{err}");
    let keyless = Gates::default();
    assert!(!keyless.applying(&labels(&[])).unwrap().any());
    let err = keyless
        .applying(&labels(&[(LABEL_VERIFY, "signed")]))
        .unwrap_err();
    assert!(err.contains("trusts no signer"), "{err}");
}

/// SPEC §4: labels the image set never loosen a gate; an inherited `verify=signed` or
/// severity still tightens it (a floor under the container's own labels and the config).
#[test]
fn inherited_gate_labels_only_tighten() {
    use crate::model::labels::Provenance;
    let (_, trusted) = key(7);
    let gates = Gates {
        trust: Trust {
            keys: vec![trusted],
            ..Default::default()
        },
        require_signed: true,
        max_severity: Some(Severity::High),
        wait: Duration::from_secs(60),
        ..Default::default()
    };
    let map = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    // The image says none/none, and the container shows what it inherited: gates stay on.
    let switched_off = map(&[(LABEL_VERIFY, "none"), (LABEL_SCAN, "none")]);
    let p = Provenance::split(&switched_off, &switched_off);
    let a = gates.applying(&GateLabels::from_provenance(&p)).unwrap();
    assert!(a.signed);
    assert_eq!(a.scan.unwrap().max, Severity::High);
    // A looser inherited severity does not raise the limit; a stricter one lowers it.
    for (inherited, want) in [("CRITICAL", Severity::High), ("LOW", Severity::Low)] {
        let l = map(&[(LABEL_SCAN, inherited)]);
        let p = Provenance::split(&l, &l);
        let a = gates.applying(&GateLabels::from_provenance(&p)).unwrap();
        assert_eq!(a.scan.unwrap().max, want, "inherited {inherited}");
    }
    // The operator's own `none` on the container wins over the config, but an inherited
    // `signed` still applies beside it.
    let image = map(&[(LABEL_VERIFY, "signed")]);
    let container = map(&[(LABEL_SCAN, "none"), (LABEL_VERIFY, "signed")]);
    let relaxed = Gates {
        require_signed: false,
        ..gates.clone()
    };
    let a = relaxed
        .applying(&GateLabels::from_provenance(&Provenance::split(
            &container, &image,
        )))
        .unwrap();
    assert!(a.signed);
    assert_eq!(a.scan, None);
}

#[test]
fn another_accounts_missing_scan_is_waited_for_then_decided_by_on_missing() {
    let why =
        ScanFacts::MissingUnasked("account 210987654321's scanning rules cannot be read".into());
    for on_missing in [OnMissing::Block, OnMissing::Allow] {
        let rule = ScanRule {
            max: Severity::High,
            wait: Duration::from_secs(60),
            on_missing,
        };
        assert!(
            matches!(rule.verdict(&why, Duration::from_secs(59)), SupplyVerdict::Pending(p) if p.contains("210987654321"))
        );
        let after = rule.verdict(&why, Duration::from_secs(60));
        match on_missing {
            OnMissing::Block => {
                assert!(
                    matches!(after, SupplyVerdict::Rejected(r) if r.contains("on_missing = block"))
                )
            }
            OnMissing::Allow => {
                assert!(
                    matches!(after, SupplyVerdict::Accepted(a) if a.contains("on_missing = allow"))
                )
            }
        }
    }
}
