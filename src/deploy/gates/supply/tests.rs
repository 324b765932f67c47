//! The gates in the deploy sequence over the in-memory runtime and facts: what is pulled
//! (nothing, until accepted), what is recorded, what a hint and a newer digest change.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use super::*;
use crate::deploy::Done;
use crate::event::{Digest, GateHint, ImageRef, Repository};
use crate::fakes::signature_fixture as fixture;
use crate::fakes::{FakeRuntime, FixedAuth, HOME_HOST, deploy_first, digest, executor};
use crate::gate::notary::{self, Envelope, Target as Served};
use crate::gate::tests::{key, payload, signed};
use crate::gate::{
    Found, Gates, OnMissing, ScanFacts, Severity, SignatureLayer, Trust, aws_signer,
};
use crate::model::Trigger;
use crate::ports::{Deployer, PullAuth, RemoteError, Supply};

type Ex = Executor<FakeRuntime, FixedAuth>;

#[derive(Default)]
struct Facts {
    signatures: Mutex<HashMap<Digest, Vec<SignatureLayer>>>,
    scans: Mutex<HashMap<Digest, ScanFacts>>,
    /// `host` of every signature fetch.
    hosts: Mutex<Vec<String>>,
    calls: AtomicUsize,
    fail: Mutex<Option<RemoteError>>,
    /// Notary envelopes, and what the registry serves, by digest.
    notary: Mutex<HashMap<Digest, (Vec<Envelope>, Served)>>,
    /// AWS Signer's answer to every revocation request, and the requests asked.
    aws_signer: Mutex<Option<Result<Vec<String>, RemoteError>>>,
    asked: Mutex<Vec<aws_signer::Query>>,
}

impl Supply for Facts {
    fn signatures<'a>(
        &'a self,
        host: &'a str,
        _: &'a PullAuth,
        _: &'a Repository,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<Found, RemoteError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.hosts.lock().unwrap().push(host.to_owned());
        let r = match self.fail.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => {
                let notary = self.notary.lock().unwrap().get(digest).cloned();
                let (notary, target) = notary.map_or((Vec::new(), None), |(e, t)| (e, Some(t)));
                Ok(Found {
                    simple: self
                        .signatures
                        .lock()
                        .unwrap()
                        .get(digest)
                        .cloned()
                        .unwrap_or_default(),
                    notary,
                    target,
                    ..Found::default()
                })
            }
        };
        Box::pin(async move { r })
    }

    fn scan<'a>(
        &'a self,
        _: &'a ImageRef,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<ScanFacts, RemoteError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let r = self.scans.lock().unwrap().get(digest).cloned();
        let r = Ok(r.unwrap_or(ScanFacts::Missing {
            scan_on_push: false,
        }));
        Box::pin(async move { r })
    }

    fn aws_signer_revoked<'a>(
        &'a self,
        query: &'a aws_signer::Query,
    ) -> BoxFuture<'a, Result<Vec<String>, RemoteError>> {
        self.asked.lock().unwrap().push(query.clone());
        let r = self.aws_signer.lock().unwrap().clone().unwrap_or_else(|| {
            Err(RemoteError {
                operation: "signer:GetRevocationStatus",
                message: "no answer set".into(),
                transient: false,
            })
        });
        Box::pin(async move { r })
    }
}

fn gated(gates: Gates) -> (tempfile::TempDir, Ex, Arc<Facts>) {
    let (dir, ex) = executor(FakeRuntime::with(&["web"], &digest('1')), 1);
    let facts = Arc::new(Facts::default());
    let mut ex = ex.with_supply(facts.clone());
    ex.cfg.gates = gates;
    (dir, ex, facts)
}

fn signing() -> Gates {
    Gates {
        trust: Trust {
            keys: vec![key(7).1],
            ..Default::default()
        },
        require_signed: true,
        ..Default::default()
    }
}

fn pulls(ex: &Ex) -> usize {
    ex.runtime()
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.starts_with("pull"))
        .count()
}

#[tokio::test]
async fn an_unsigned_digest_is_rejected_before_any_pull_recorded_once_and_not_checked_again() {
    let (_d, ex, facts) = gated(signing());
    let done = deploy_first(&ex, '2', Trigger::Event).await;
    assert!(
        matches!(&done, Done::Rejected(why) if why.contains("not signed")),
        "{done:?}"
    );
    assert_eq!(pulls(&ex), 0, "nothing pulled");
    assert_eq!(
        ex.runtime().state()[0].2,
        digest('1'),
        "still the old digest"
    );
    let h = ex.store().history(Some("web"), 10).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].outcome, Some(Outcome::Rejected));
    // The next sweep finds the rejection: no new row, no new fetch.
    let calls = facts.calls.load(Ordering::SeqCst);
    assert!(matches!(
        deploy_first(&ex, '2', Trigger::Sweep).await,
        Done::Rejected(_)
    ));
    assert_eq!(facts.calls.load(Ordering::SeqCst), calls);
    assert_eq!(ex.store().history(Some("web"), 10).unwrap().len(), 1);
    // The signature is pushed; its hint clears the rejection and the next look deploys.
    let d = digest('2');
    facts.signatures.lock().unwrap().insert(
        d.clone(),
        vec![signed(
            &key(7).0,
            payload(&format!("{HOME_HOST}/team/api"), &d),
        )],
    );
    let hint = GateHint {
        registry: None,
        repository: Repository::parse("team/api").unwrap(),
        digest: Some(d),
        why: "signature pushed".into(),
    };
    assert_eq!(ex.recheck(&hint).unwrap(), 1);
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Event).await,
        Done::Finished(Outcome::Succeeded)
    );
    assert_eq!(
        facts.hosts.lock().unwrap().last().unwrap(),
        "mirror",
        "the pull's registry"
    );
}

/// SPEC §11: for an index tag, a signature of the index or of this host's platform manifest
/// passes; one of another platform's manifest does not.
#[tokio::test]
async fn an_index_passes_on_a_signature_of_this_hosts_platform_manifest_only() {
    use crate::image::{Desired, IndexEntry, Platform};
    let (_d, ex, facts) = gated(signing());
    let t = Target::Container(ex.managed().await.unwrap().remove(0));
    let entry = |c, arch| IndexEntry {
        digest: digest(c),
        platform: Platform::new("linux", arch, None),
        attestation: false,
    };
    let desired = Desired {
        digest: digest('4'),
        entries: vec![entry('5', "amd64"), entry('6', "arm64")],
    };
    let sign = |c| {
        let d = digest(c);
        let layers = vec![signed(
            &key(7).0,
            payload(&format!("{HOME_HOST}/team/api"), &d),
        )];
        facts.signatures.lock().unwrap().insert(d, layers);
    };
    sign('6');
    let checked = ex.check_gates(&t, &desired, Duration::ZERO).await.unwrap();
    assert!(
        matches!(&checked, Checked::Rejected { gate: "signature", reason } if reason.contains("not signed")),
        "{checked:?}"
    );
    sign('5');
    let checked = ex.check_gates(&t, &desired, Duration::ZERO).await.unwrap();
    assert!(
        matches!(&checked, Checked::Go(why) if why[0].contains("platform manifest")),
        "{checked:?}"
    );
    facts.signatures.lock().unwrap().clear();
    sign('4');
    let checked = ex.check_gates(&t, &desired, Duration::ZERO).await.unwrap();
    assert!(
        matches!(&checked, Checked::Go(why) if !why[0].contains("platform")),
        "{checked:?}"
    );
}

/// SPEC §11: a `.sig`'s docker-reference names the image's own registry or the mirror it is
/// pulled from (`[registry] mirrors`); the same repository at any other host is rejected,
/// naming both.
#[tokio::test]
async fn a_signature_names_the_images_registry_or_its_mirror_and_no_other_host() {
    use crate::image::Desired;
    let (_d, mut ex, facts) = gated(signing());
    ex.cfg.mirrors = crate::event::Mirrors {
        all: None,
        by_host: [(HOME_HOST.to_owned(), "cache.example:5000".to_owned())].into(),
        ..Default::default()
    };
    let t = Target::Container(ex.managed().await.unwrap().remove(0));
    let check = async |c, reference: &str| {
        let d = digest(c);
        let layers = vec![signed(&key(7).0, payload(reference, &d))];
        facts.signatures.lock().unwrap().insert(d.clone(), layers);
        let desired = Desired {
            digest: d,
            entries: Vec::new(),
        };
        ex.check_gates(&t, &desired, Duration::ZERO).await.unwrap()
    };
    let checked = check('2', "other.example/team/api").await;
    assert!(
        matches!(&checked, Checked::Rejected { gate: "signature", reason }
            if reason.contains("another registry host (other.example;")
                && reason.contains(HOME_HOST)
                && reason.contains("its mirror cache.example:5000")),
        "{checked:?}"
    );
    for (c, host) in [('3', "cache.example:5000"), ('4', HOME_HOST)] {
        let checked = check(c, &format!("{host}/team/api")).await;
        assert!(matches!(&checked, Checked::Go(_)), "{host}: {checked:?}");
    }
    assert_eq!(
        facts.hosts.lock().unwrap().last().unwrap(),
        "cache.example:5000",
        "signatures fetched from the mirror"
    );
}

/// SPEC §11, AWS Signer: a trusted AWS Signer signature (a constructed one:
/// tests/fixtures/signatures/make-aws-signer.sh) is decided by AWS Signer's answer, asked
/// through the port: none revoked deploys, a revoked job rejects, a refused call (no
/// `signer:GetRevocationStatus`) is pending, never a pass; a signature by an identity not
/// trusted is rejected without asking AWS Signer.
#[tokio::test]
async fn an_aws_signer_signature_is_decided_by_aws_signers_revocation_answer() {
    use crate::image::Desired;
    let profile = "arn:aws:signer:us-east-2:111122223333:/signing-profiles/release";
    let job =
        "arn:aws:signer:us-east-2:111122223333:/signing-jobs/0c6f7a0e-5dd3-4dc4-8caf-224898b12493";
    let trusting = |identity: &str| {
        let mut roots = crate::gate::x509::Roots::default();
        let root = std::str::from_utf8(fixture!("aws-signer-root.crt")).unwrap();
        roots.add_pem("aws-signer-root.crt", root).unwrap();
        Gates {
            trust: Trust {
                notation_roots: roots,
                notation_identities: vec![crate::gate::NotationIdentity::parse(identity).unwrap()],
                ..Default::default()
            },
            require_signed: true,
            ..Default::default()
        }
    };
    let (_d, mut ex, facts) = gated(trusting(profile));
    let subject: serde_json::Value = serde_json::from_slice(fixture!("subject.json")).unwrap();
    let d = Digest::parse(subject["digest"].as_str().unwrap()).unwrap();
    let served = Served {
        media_type: subject["mediaType"].as_str().unwrap().into(),
        size: subject["size"].as_u64().unwrap(),
    };
    let env = Envelope {
        media_type: notary::JWS.into(),
        bytes: fixture!("aws-signer.jws.json").to_vec(),
    };
    facts
        .notary
        .lock()
        .unwrap()
        .insert(d.clone(), (vec![env], served));
    let t = Target::Container(ex.managed().await.unwrap().remove(0));
    let desired = Desired {
        digest: d,
        entries: Vec::new(),
    };
    let set = |a| *facts.aws_signer.lock().unwrap() = Some(a);
    set(Ok(Vec::new()));
    let checked = ex.check_gates(&t, &desired, Duration::ZERO).await.unwrap();
    assert!(
        matches!(&checked, Checked::Go(why) if why[0].contains("AWS Signer: not revoked")),
        "{checked:?}"
    );
    let asked = facts.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        (asked[0].job_arn.as_str(), asked[0].certificate_hashes.len()),
        (job, 3)
    );
    set(Ok(vec![job.to_owned()]));
    let checked = ex.check_gates(&t, &desired, Duration::ZERO).await.unwrap();
    assert!(
        matches!(&checked, Checked::Rejected { gate: "signature", reason }
            if reason.contains(&format!("AWS Signer has revoked its signing job {job}"))),
        "{checked:?}"
    );
    set(Err(RemoteError {
        operation: "signer:GetRevocationStatus",
        message: "AccessDeniedException (HTTP 403): not authorized".into(),
        transient: false,
    }));
    let checked = ex.check_gates(&t, &desired, Duration::ZERO).await.unwrap();
    assert!(
        matches!(&checked, Checked::Pending(why)
            if why.contains("this host needs signer:GetRevocationStatus")
                && why.contains("AccessDeniedException")),
        "{checked:?}"
    );
    // Not trusted: rejected, and AWS Signer is not asked.
    ex.cfg.gates = trusting("arn:aws:signer:us-east-2:111122223333:/signing-profiles/ops");
    let before = facts.asked.lock().unwrap().len();
    let checked = ex.check_gates(&t, &desired, Duration::ZERO).await.unwrap();
    assert!(
        matches!(&checked, Checked::Rejected { reason, .. } if reason.contains("not in notation_identities")),
        "{checked:?}"
    );
    assert_eq!(facts.asked.lock().unwrap().len(), before);
}

#[tokio::test]
async fn a_newer_digest_is_checked_afresh_and_a_signed_one_deploys() {
    let (_d, ex, facts) = gated(signing());
    assert!(matches!(
        deploy_first(&ex, '2', Trigger::Event).await,
        Done::Rejected(_)
    ));
    let d = digest('3');
    facts.signatures.lock().unwrap().insert(
        d.clone(),
        vec![signed(
            &key(7).0,
            payload(&format!("{HOME_HOST}/team/api"), &d),
        )],
    );
    assert_eq!(
        deploy_first(&ex, '3', Trigger::Event).await,
        Done::Finished(Outcome::Succeeded)
    );
}

#[tokio::test]
async fn the_operators_rollback_is_not_gated_but_approve_is() {
    let (_d, ex, _facts) = gated(signing());
    assert!(matches!(
        deploy_first(&ex, '2', Trigger::Approve).await,
        Done::Rejected(_)
    ));
    assert_eq!(
        deploy_first(&ex, '3', Trigger::Rollback).await,
        Done::Finished(Outcome::Succeeded)
    );
}

#[tokio::test]
async fn a_scan_finding_at_the_limit_rejects_and_one_below_passes() {
    let (_d, ex, facts) = gated(Gates {
        max_severity: Some(Severity::High),
        ..Default::default()
    });
    let counts = |pairs: &[(&str, u64)]| {
        ScanFacts::Complete(
            pairs
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    facts
        .scans
        .lock()
        .unwrap()
        .insert(digest('2'), counts(&[("CRITICAL", 1)]));
    facts
        .scans
        .lock()
        .unwrap()
        .insert(digest('3'), counts(&[("LOW", 4)]));
    let done = deploy_first(&ex, '2', Trigger::Event).await;
    assert!(
        matches!(&done, Done::Rejected(why) if why.contains("1 CRITICAL")),
        "{done:?}"
    );
    assert_eq!(
        deploy_first(&ex, '3', Trigger::Event).await,
        Done::Finished(Outcome::Succeeded)
    );
}

#[tokio::test]
async fn a_scan_in_progress_is_pending_until_it_completes_and_past_the_wait_is_rejected() {
    let gates = Gates {
        max_severity: Some(Severity::Critical),
        wait: Duration::from_secs(3600),
        on_missing: OnMissing::Block,
        ..Default::default()
    };
    let (_d, ex, facts) = gated(gates);
    facts
        .scans
        .lock()
        .unwrap()
        .insert(digest('2'), ScanFacts::InProgress);
    let done = deploy_first(&ex, '2', Trigger::Event).await;
    assert!(
        matches!(&done, Done::Held(h) if h.state() == "pending" && h.detail().contains("scan in progress")),
        "{done:?}"
    );
    assert_eq!(pulls(&ex), 0);
    facts
        .scans
        .lock()
        .unwrap()
        .insert(digest('2'), ScanFacts::Complete(BTreeMap::new()));
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Sweep).await,
        Done::Finished(Outcome::Succeeded)
    );
    // Another digest waits from its own first sighting; with no wait left it is rejected.
    let mut ex = ex;
    ex.cfg.gates.wait = Duration::ZERO;
    facts
        .scans
        .lock()
        .unwrap()
        .insert(digest('4'), ScanFacts::InProgress);
    let done = deploy_first(&ex, '4', Trigger::Event).await;
    assert!(
        matches!(&done, Done::Rejected(why) if why.contains("after 0 s")),
        "{done:?}"
    );
}

#[tokio::test]
async fn facts_that_cannot_be_read_refuse_without_recording_and_bad_labels_are_named() {
    let (_d, ex, facts) = gated(signing());
    *facts.fail.lock().unwrap() = Some(RemoteError {
        operation: "registry",
        message: "HTTP 401".into(),
        transient: false,
    });
    let done = deploy_first(&ex, '2', Trigger::Event).await;
    assert!(
        matches!(&done, Done::Refused(why) if why.contains("HTTP 401")),
        "{done:?}"
    );
    assert!(ex.store().history(Some("web"), 10).unwrap().is_empty());
    *facts.fail.lock().unwrap() = Some(RemoteError {
        operation: "registry",
        message: "timed out".into(),
        transient: true,
    });
    let t = Target::Container(ex.managed().await.unwrap().remove(0));
    let err = ex
        .deploy_target(
            &t,
            &Desired::single(digest('2')),
            Trigger::Event,
            Duration::ZERO,
            None,
        )
        .await;
    assert!(err.is_err(), "a transient failure keeps the request queued");
    *facts.fail.lock().unwrap() = None;
    ex.runtime().boxes.lock().unwrap()[0].gates.verify = Some("maybe".into());
    let done = deploy_first(&ex, '2', Trigger::Event).await;
    assert!(
        matches!(&done, Done::Refused(why) if why.contains("ecr-deployd.verify=\"maybe\"")),
        "{done:?}"
    );
}
