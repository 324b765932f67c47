//! The verifiers over signatures the real tools made (tests/fixtures/signatures/, made by its
//! `make.sh`: cosign 3.1.1 and notation 1.3.2 from Debian sid against Debian's registry 2.8),
//! at the time they were made: each accepted by what trusts it, and refused for the wrong
//! key, root, identity, digest, descriptor or time. AWS Signer's shape of signature, which
//! cannot be made here, is a constructed one ([`aws_signer`]).

use std::time::{Duration, SystemTime};

use super::aws_signer::Answers;
use super::found::{Found, verdict};
use super::notary::{self, Crls, Envelope, Revocations, Target};
use super::trust::{CosignIdentity, NotationIdentity, Trust};
use super::x509::Roots;
use super::{SupplyVerdict, TrustedKey, bundle};
use crate::fakes::signature_fixture as fixture;
use crate::model::reference::Digest;

mod aws_signer;

fn revocations((crls, aws_signer): &(Crls, Answers)) -> Revocations<'_> {
    Revocations { crls, aws_signer }
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

fn subject() -> (Digest, Target) {
    let v: serde_json::Value = serde_json::from_slice(fixture!("subject.json")).unwrap();
    (
        Digest::parse(v["digest"].as_str().unwrap()).unwrap(),
        Target {
            media_type: v["mediaType"].as_str().unwrap().to_owned(),
            size: v["size"].as_u64().unwrap(),
        },
    )
}

/// A minute after the fixtures were made: the certificates are valid then.
fn made() -> SystemTime {
    let at: jiff::Timestamp = text(fixture!("made-at")).trim().parse().unwrap();
    SystemTime::from(at) + Duration::from_secs(60)
}

fn place() -> super::Place {
    super::Place::new("team/web", "127.0.0.1:5000", "127.0.0.1:5000")
}

fn other_digest() -> Digest {
    Digest::parse(&format!("sha256:{}", "e".repeat(64))).unwrap()
}

fn roots(pem: &[u8]) -> Roots {
    let mut r = Roots::default();
    r.add_pem("root.crt", text(pem)).unwrap();
    r
}

fn cosign_certs(root: &[u8], subject: &str, issuer: &str) -> Trust {
    Trust {
        cosign_roots: roots(root),
        cosign_identities: vec![CosignIdentity {
            subject: subject.into(),
            issuer: issuer.into(),
        }],
        ..Trust::default()
    }
}

fn notation(root: &[u8], identity: &str) -> Trust {
    Trust {
        notation_roots: roots(root),
        notation_identities: vec![NotationIdentity::parse(identity).unwrap()],
        ..Trust::default()
    }
}

#[test]
fn a_cosign_3_bundle_by_a_trusted_key_is_accepted_for_its_digest_only() {
    let (d, _) = subject();
    let key = TrustedKey::from_pem("cosign.pub", text(fixture!("cosign.pub"))).unwrap();
    let trust = Trust {
        keys: vec![key],
        ..Trust::default()
    };
    let b = fixture!("cosign3-key.bundle.json");
    assert_eq!(
        bundle::check(b, &d, &trust, made()),
        Ok("cosign bundle signed by cosign.pub".into())
    );
    let why = bundle::check(b, &other_digest(), &trust, made()).unwrap_err();
    assert!(why.contains("for another digest"), "{why}");
    let stranger = Trust {
        keys: vec![super::tests::key(7).1],
        ..Trust::default()
    };
    let why = bundle::check(b, &d, &stranger, made()).unwrap_err();
    assert!(why.contains("no trusted key"), "{why}");
    // The statement altered after signing: the DSSE signature no longer holds.
    let mut v: serde_json::Value = serde_json::from_slice(b).unwrap();
    v["dsseEnvelope"]["payloadType"] = "application/json".into();
    let why = bundle::check(v.to_string().as_bytes(), &d, &trust, made()).unwrap_err();
    assert!(why.contains("no trusted key"), "{why}");
}

#[test]
fn a_cosign_3_bundle_by_a_certificate_needs_its_root_and_identity() {
    let (d, _) = subject();
    let b = fixture!("cosign3-cert.bundle.json");
    let root = fixture!("cosign-root.crt");
    let ok = cosign_certs(root, "release@example.com", "https://issuer.example");
    let who = bundle::check(b, &d, &ok, made()).unwrap();
    assert!(who.contains("release@example.com"), "{who}");
    // Its subject DN names it as well.
    let dn = cosign_certs(root, "CN=release", "https://issuer.example");
    assert!(bundle::check(b, &d, &dn, made()).is_ok());
    for (trust, expected) in [
        (
            cosign_certs(
                fixture!("other-root.crt"),
                "release@example.com",
                "https://issuer.example",
            ),
            "does not chain",
        ),
        (
            cosign_certs(root, "ops@example.com", "https://issuer.example"),
            "identity is not trusted",
        ),
        (
            cosign_certs(root, "release@example.com", "https://accounts.example"),
            "identity is not trusted",
        ),
        (Trust::default(), "trust none"),
    ] {
        let why = bundle::check(b, &d, &trust, made()).unwrap_err();
        assert!(why.contains(expected), "{expected}: {why}");
    }
    let why = bundle::check(b, &other_digest(), &ok, made()).unwrap_err();
    assert!(why.contains("for another digest"), "{why}");
    // Valid for a year: two years on, the certificate has expired (no timestamp is trusted).
    let later = made() + Duration::from_secs(2 * 365 * 86_400);
    let why = bundle::check(b, &d, &ok, later).unwrap_err();
    assert!(why.contains("Expired"), "{why}");
}

/// A Notary envelope's verdict, no CRL fetched.
fn check(
    env: &Envelope,
    d: &Digest,
    target: &Target,
    trust: &Trust,
    now: SystemTime,
) -> SupplyVerdict {
    let none = (Crls::new(), Answers::new());
    notary::check(env, d, target, trust, revocations(&none), now)
}

fn jws() -> Envelope {
    Envelope {
        media_type: notary::JWS.into(),
        bytes: fixture!("notation.jws.json").to_vec(),
    }
}

#[test]
fn a_notation_jws_signature_chaining_to_its_root_with_a_trusted_subject_is_accepted() {
    let (d, target) = subject();
    let root = fixture!("notation-root.crt");
    for identity in [
        "x509.subject: CN=release,O=Notary",
        "x509.subject: C=US, ST=WA, L=Seattle, O=Notary, CN=release",
    ] {
        let v = check(&jws(), &d, &target, &notation(root, identity), made());
        assert_eq!(
            v,
            SupplyVerdict::Accepted(format!("Notary signature by {identity}")),
            "{identity}"
        );
    }
}

#[test]
fn a_notation_signature_is_refused_for_another_root_identity_digest_descriptor_or_time() {
    let (d, target) = subject();
    let root = fixture!("notation-root.crt");
    let ok = notation(root, "x509.subject: CN=release,O=Notary");
    let rejected = |v: SupplyVerdict| match v {
        SupplyVerdict::Rejected(why) => why,
        other => panic!("expected a rejection: {other:?}"),
    };
    let why = rejected(check(
        &jws(),
        &d,
        &target,
        &notation(fixture!("cosign-root.crt"), "x509.subject: CN=release"),
        made(),
    ));
    assert!(why.contains("does not chain"), "{why}");
    let why = rejected(check(
        &jws(),
        &d,
        &target,
        &notation(root, "x509.subject: CN=release,O=Example"),
        made(),
    ));
    assert!(why.contains("not in notation_identities"), "{why}");
    let why = rejected(check(&jws(), &other_digest(), &target, &ok, made()));
    assert!(why.contains("for another digest"), "{why}");
    let bigger = Target {
        size: target.size + 1,
        ..target.clone()
    };
    let why = rejected(check(&jws(), &d, &bigger, &ok, made()));
    assert!(why.contains("the registry serves"), "{why}");
    // notation's test certificate is valid for a day.
    let later = made() + Duration::from_secs(2 * 86_400);
    let why = rejected(check(&jws(), &d, &target, &ok, later));
    assert!(why.contains("Expired"), "{why}");
    // A payload swapped after signing.
    let mut v: serde_json::Value = serde_json::from_slice(&jws().bytes).unwrap();
    v["payload"] = v["protected"].clone();
    let forged = Envelope {
        media_type: notary::JWS.into(),
        bytes: v.to_string().into_bytes(),
    };
    let why = rejected(check(&forged, &d, &target, &ok, made()));
    assert!(why.contains("does not verify"), "{why}");
    // The same refusals hold for the COSE envelope.
    let why = rejected(check(&cose(), &other_digest(), &target, &ok, made()));
    assert!(why.contains("for another digest"), "{why}");
    let why = rejected(check(&cose(), &d, &target, &ok, later));
    assert!(why.contains("Expired"), "{why}");
    let mut tampered = cose().bytes;
    let n = tampered.len();
    tampered[n - 1] ^= 1;
    let forged = Envelope {
        media_type: notary::COSE.into(),
        bytes: tampered,
    };
    let why = rejected(check(&forged, &d, &target, &ok, made()));
    assert!(why.contains("does not verify"), "{why}");
}

fn cose() -> Envelope {
    Envelope {
        media_type: notary::COSE.into(),
        bytes: fixture!("notation.cose").to_vec(),
    }
}

#[test]
fn a_notation_cose_signature_is_accepted_like_its_jws_one() {
    let (d, target) = subject();
    let trust = notation(
        fixture!("notation-root.crt"),
        "x509.subject: CN=release,O=Notary",
    );
    assert_eq!(
        check(&cose(), &d, &target, &trust, made()),
        SupplyVerdict::Accepted("Notary signature by x509.subject: CN=release,O=Notary".into())
    );
}

#[test]
fn one_signature_that_passes_among_others_is_enough_and_the_reasons_of_each_are_kept() {
    let (d, target) = subject();
    let mut trust = notation(fixture!("notation-root.crt"), "x509.subject: CN=release");
    let found = Found {
        bundles: vec![fixture!("cosign3-key.bundle.json").to_vec()],
        notary: vec![jws()],
        target: Some(target),
        ..Found::default()
    };
    assert!(matches!(
        verdict(&found, &d, &place(), &trust, made()),
        SupplyVerdict::Accepted(_)
    ));
    trust.notation_identities = vec![NotationIdentity::parse("x509.subject: CN=ops").unwrap()];
    let SupplyVerdict::Rejected(why) = verdict(&found, &d, &place(), &trust, made()) else {
        panic!("expected a rejection");
    };
    assert!(
        why.contains("no trusted key") && why.contains("not in notation_identities"),
        "{why}"
    );
    let SupplyVerdict::Rejected(why) = verdict(&Found::default(), &d, &place(), &trust, made())
    else {
        panic!("expected a rejection");
    };
    assert!(why.starts_with("not signed"), "{why}");
}

#[test]
fn notation_identities_parse_subjects_and_aws_signer_profiles() {
    let profile = "arn:aws:signer:eu-west-2:111122223333:/signing-profiles/release";
    let version = format!("{profile}/AbCdEf1234");
    let p = NotationIdentity::parse(profile).unwrap();
    assert!(p.matches_aws_signer(&version, None));
    assert!(p.matches_aws_signer(&version.to_uppercase().replace("ARN:AWS", "arn:aws"), None));
    assert!(!p.matches_aws_signer(&format!("{profile}2/AbCdEf1234"), None));
    let v = NotationIdentity::parse(&version).unwrap();
    assert!(v.matches_aws_signer(&version, None));
    assert!(!v.matches_aws_signer(&format!("{profile}/Other12345"), None));
    let alias = "arn:aws:signer:eu-west-2:111122223333:/aliases/prod";
    let a = NotationIdentity::parse(alias).unwrap();
    assert!(a.matches_aws_signer(&version, Some(alias)));
    assert!(!a.matches_aws_signer(&version, None));
    for bad in [
        "arn:aws:iam::111122223333:role/x",
        "CN=release",
        "x509.subject:",
        "x509.subject: release",
    ] {
        assert!(NotationIdentity::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn jws_ecdsa_signatures_become_der() {
    let raw = [[0x80u8; 32], [0x01u8; 32]].concat();
    let der = notary::ecdsa_to_der("ES256", raw);
    assert_eq!(&der[..4], &[0x30, 0x45, 0x02, 0x21]);
    assert_eq!(der[4], 0);
    assert_eq!(notary::ecdsa_to_der("PS256", vec![1, 2]), vec![1, 2]);
}

/// A leaf that names a CRL (the root's, at an address nobody serves): pending without it,
/// accepted with a current CRL that lists nothing, rejected by one that lists the leaf,
/// pending again once that CRL is out of date.
#[test]
fn a_notation_signature_whose_certificate_names_a_crl_waits_for_it_and_is_rejected_when_revoked() {
    let (d, target) = subject();
    let env = Envelope {
        media_type: notary::JWS.into(),
        bytes: fixture!("notation-crl.jws.json").to_vec(),
    };
    let trust = notation(
        fixture!("crl-root.crt"),
        "x509.subject: CN=crl-release,O=Example",
    );
    let url = "http://crl.example.invalid/root.crl".to_owned();
    assert_eq!(notary::crl_urls(&env), vec![url.clone()]);
    let with = |crl: Result<Vec<u8>, String>| Crls::from([(url.clone(), crl)]);
    let verdict = |crls: &Crls, at| {
        let r = Revocations {
            crls,
            aws_signer: &Answers::new(),
        };
        notary::check(&env, &d, &target, &trust, r, at)
    };
    let SupplyVerdict::Pending(why) = verdict(&Crls::new(), made()) else {
        panic!("expected pending without the CRL");
    };
    assert!(why.contains("was not fetched"), "{why}");
    let SupplyVerdict::Pending(why) = verdict(&with(Err("HTTP 503".into())), made()) else {
        panic!("expected pending");
    };
    assert!(why.contains("could not be read: HTTP 503"), "{why}");
    let clean = with(Ok(fixture!("crl-none-revoked.crl").to_vec()));
    let SupplyVerdict::Accepted(who) = verdict(&clean, made()) else {
        panic!("expected acceptance with a clean CRL");
    };
    assert!(who.contains("not revoked"), "{who}");
    let revoked = with(Ok(fixture!("crl-leaf-revoked.crl").to_vec()));
    let SupplyVerdict::Rejected(why) = verdict(&revoked, made()) else {
        panic!("expected a rejection");
    };
    assert!(why.contains("is revoked"), "{why}");
    // The CRLs are good for 30 days.
    let SupplyVerdict::Pending(why) = verdict(&clean, made() + Duration::from_secs(40 * 86_400))
    else {
        panic!("expected pending on an out-of-date CRL");
    };
    assert!(why.contains("cannot be told"), "{why}");
    let SupplyVerdict::Pending(_) = verdict(&with(Ok(b"not a CRL".to_vec())), made()) else {
        panic!("expected pending on a CRL that is not one");
    };
}
