//! AWS Signer's signatures over a CONSTRUCTED envelope (tests/fixtures/signatures/
//! make-aws-signer.sh: AWS Signer cannot be run here): what AWS Signer is asked
//! (`GetRevocationStatus`'s inputs, the certificate hashes as AWS's documented openssl
//! commands compute them) and the verdict on each answer.

use std::time::Duration;

use super::super::aws_signer::{PERMISSION, PLATFORM, Query};
use super::super::found::aws_signer_queries;
use super::*;

const PROFILE: &str = "arn:aws:signer:us-east-2:111122223333:/signing-profiles/release";
const JOB: &str =
    "arn:aws:signer:us-east-2:111122223333:/signing-jobs/0c6f7a0e-5dd3-4dc4-8caf-224898b12493";

fn envelope(bytes: &[u8]) -> Envelope {
    Envelope {
        media_type: notary::JWS.into(),
        bytes: bytes.to_vec(),
    }
}

fn signed_at() -> SystemTime {
    let at: jiff::Timestamp = text(fixture!("aws-signer-made-at")).trim().parse().unwrap();
    SystemTime::from(at)
}

fn trusting(identity: &str) -> Trust {
    notation(fixture!("aws-signer-root.crt"), identity)
}

/// A month after signing: the 3-day signing certificate has expired, and the signature
/// still counts (AWS Signer's scheme checks the chain at the authentic signing time).
fn later() -> SystemTime {
    signed_at() + Duration::from_secs(30 * 86_400)
}

#[test]
fn aws_signer_is_asked_about_the_profile_version_job_and_chain_of_a_trusted_signature() {
    let (d, target) = subject();
    let env = envelope(fixture!("aws-signer.jws.json"));
    let trust = trusting(PROFILE);
    let q = notary::aws_signer_query(&env, &d, &target, &trust, later()).expect("a query");
    let hashes: Vec<String> = text(fixture!("aws-signer-hashes.txt"))
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        q,
        Query {
            signed_at: signed_at(),
            platform_id: PLATFORM.into(),
            profile_version_arn: format!("{PROFILE}/AbCdEf1234"),
            job_arn: JOB.into(),
            certificate_hashes: hashes,
        }
    );
    assert_eq!(q.region(), Some("us-east-2"));
    let found = Found {
        notary: vec![env.clone(), env],
        target: Some(target),
        ..Found::default()
    };
    assert_eq!(aws_signer_queries(&found, &d, &trust, later()), vec![q]);
}

#[test]
fn aws_signers_answer_decides_revoked_rejects_none_passes_no_answer_waits() {
    let (d, target) = subject();
    let trust = trusting(PROFILE);
    let mut found = Found {
        notary: vec![envelope(fixture!("aws-signer.jws.json"))],
        target: Some(target),
        ..Found::default()
    };
    let q = aws_signer_queries(&found, &d, &trust, later()).remove(0);
    let mut answer = |a: Result<Vec<String>, String>| {
        found.aws_signer = Answers::from([(q.clone(), a)]);
        verdict(&found, &d, &place(), &trust, later())
    };
    assert_eq!(
        answer(Ok(Vec::new())),
        SupplyVerdict::Accepted(format!(
            "Notary signature by {PROFILE} (AWS Signer: not revoked)"
        ))
    );
    for (revoked, named) in [
        (JOB.to_owned(), format!("its signing job {JOB}")),
        (
            q.profile_version_arn.clone(),
            "its signing profile version".into(),
        ),
        (
            q.certificate_hashes[0].clone(),
            "its signing certificate".into(),
        ),
        (
            q.certificate_hashes[2].clone(),
            "certificate 3 of its chain".into(),
        ),
    ] {
        let SupplyVerdict::Rejected(why) = answer(Ok(vec![revoked])) else {
            panic!("{named}: expected a rejection");
        };
        assert!(
            why.contains(&format!("AWS Signer has revoked {named}")),
            "{why}"
        );
    }
    let SupplyVerdict::Pending(why) = answer(Err("AccessDeniedException (HTTP 403): …".into()))
    else {
        panic!("expected pending when AWS Signer refuses");
    };
    assert!(
        why.contains(PERMISSION) && why.contains("AccessDeniedException"),
        "{why}"
    );
    found.aws_signer.clear();
    let SupplyVerdict::Pending(why) = verdict(&found, &d, &place(), &trust, later()) else {
        panic!("expected pending when AWS Signer was not asked");
    };
    assert!(why.contains(PERMISSION), "{why}");
}

#[test]
fn an_aws_signer_signature_that_fails_another_check_is_not_asked_about() {
    let (d, target) = subject();
    let env = envelope(fixture!("aws-signer.jws.json"));
    let query = |trust: &Trust, at| notary::aws_signer_query(&env, &d, &target, trust, at);
    // Another profile, another root, another digest, past its expiry: refused, not asked.
    let other_profile = trusting("arn:aws:signer:us-east-2:111122223333:/signing-profiles/ops");
    assert_eq!(query(&other_profile, later()), None);
    let why = check(&env, &d, &target, &other_profile, later());
    assert!(
        matches!(&why, SupplyVerdict::Rejected(w) if w.contains("not in notation_identities")),
        "{why:?}"
    );
    let other_root = notation(fixture!("notation-root.crt"), PROFILE);
    assert_eq!(query(&other_root, later()), None);
    assert_eq!(
        notary::aws_signer_query(&env, &other_digest(), &target, &trusting(PROFILE), later()),
        None
    );
    let expired = signed_at() + Duration::from_secs(4101 * 86_400);
    assert_eq!(query(&trusting(PROFILE), expired), None);
    // The profile's subject is not what AWS Signer's identities name; a subject identity
    // still works, and is still asked about (its revocation is AWS Signer's all the same).
    let by_subject = trusting("x509.subject: CN=Fixture Signer,O=Example");
    assert!(query(&by_subject, later()).is_some());
}

#[test]
fn an_aws_signer_signature_without_its_signing_job_is_rejected() {
    let (d, target) = subject();
    let env = envelope(fixture!("aws-signer-no-job.jws.json"));
    let SupplyVerdict::Rejected(why) = check(&env, &d, &target, &trusting(PROFILE), later()) else {
        panic!("expected a rejection");
    };
    assert!(
        why.contains("without its attribute com.amazonaws.signer.signingJob"),
        "{why}"
    );
}
