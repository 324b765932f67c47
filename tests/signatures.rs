//! The signature gate against signatures made by the real tools (SPEC §11): cosign 2 (the
//! `.sig` tag), cosign 3 (Sigstore bundles, by a key and by a private CA's certificate) and
//! notation (Notary Project JWS), pushed to the test registry (Debian's docker-registry 2.8,
//! which has no referrers API: the referrers tag schema is read). Each accepted format
//! deploys; a wrong key, identity or root, a signature of another digest or made for another
//! repository, or a `.sig` naming this repository under another registry host (its
//! docker-reference must name the image's ECR host or the mirror) is rejected before anything
//! is pulled.

mod common;

use std::time::{Duration, Instant};

use common::ca::{CosignCa, CrlCa};
use common::docker::*;
use common::oci::{push_index, put_index_in_ecr};
use common::signing::{CosignKey, Notary, copy_manifest, versions};
use common::site::*;
use common::*;

/// Signs (or places a signature for) a digest.
type Sign<'a> = &'a dyn Fn(&str);

fn pulled(site: &Site, repo: &str, digest: &str) -> bool {
    let image = format!("{}/{repo}@{digest}", site.registry.host);
    common::matrix::docker_command()
        .args(["image", "inspect", &image])
        .output()
        .unwrap()
        .status
        .success()
}

/// Waits for the newest history row of `name` to be `outcome` for `digest`; that row.
async fn row(
    config: &str,
    name: &str,
    digest: &str,
    outcome: &str,
    agent: &AgentProcess,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, out, err) = run_cli(config, &["history", name, "--json"], &[]);
        // Before the daemon's first write the store may not answer yet.
        let row = serde_json::from_str::<serde_json::Value>(&out)
            .map(|v| v["deployments"][0].clone())
            .unwrap_or_else(|_| err.into());
        if row["to_digest"] == digest && row["outcome"] == outcome {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "no {outcome} row for {}: {row}\n{}",
            short(digest),
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_of_cosign_2_cosign_3_and_notation_pass_and_wrong_ones_are_rejected_before_any_pull()
 {
    println!("signing tools: {}", versions());
    let site = Site::new("sig-real").await;
    let repo = "team/signed";
    let (name, _) = site
        .container_with(repo, "signed", &["ecr-deployd.verify=signed"])
        .await;
    let key = CosignKey::generate();
    let ca = CosignCa::generate("release@example.com", "https://issuer.example");
    let notary = Notary::generate(&site.registry, "release");
    let crl_ca = CrlCa::start();
    let config = format!(
        "{}[verify]\ncosign_public_keys = [\"{}\"]\ncosign_roots = [\"{}\"]\n\
         cosign_identities = [{{ subject = \"release@example.com\", issuer = \"https://issuer.example\" }}]\n\
         notation_roots = [\"{}\", \"{}\"]\n\
         notation_identities = [\"x509.subject: CN=release,O=Notary\", \"x509.subject: CN=crl-release\"]\n",
        site.config(0),
        key.public_key().display(),
        ca.root().display(),
        notary.root().display(),
        crl_ca.root().display()
    );
    let (code, out, err) = run_cli(&config, &["check-config"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    // Every image built before the agent runs: its removal of a replaced image may prune a
    // build cache parent that a build at the same time is using.
    let images: Vec<String> = (0..16)
        .map(|i| {
            let v = format!("v{i}");
            site.registry.publish(repo, &v, Kind::Serve, &v, false)
        })
        .collect();
    let mut images = images.into_iter();
    let mut next = || images.next().unwrap();
    // ECR's tag is moved only once the digest is signed (else the start-up sweep may look at
    // it first), then its push event sent.
    let release = async |d: &str| {
        put_digest(&site.ecr, repo, "prod", d).await;
        send_all(&site.sqs, &site.url, &[push_body(repo, "prod", d)]).await;
    };
    let agent = AgentProcess::start(&config, &["run"]);

    // Each format, signed by what the config trusts: deployed.
    // A `.sig`'s docker-reference names the mirror (the registry signed at) or, signed for
    // it, the image's own ECR registry host.
    let ecr_host = format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com");
    let for_ecr = format!("{ecr_host}/{repo}");
    let signers: [(&str, Sign); 6] = [
        ("cosign 2 .sig by a key (naming the mirror)", &|d| {
            key.sign2(&site.registry, repo, d)
        }),
        ("cosign 2 .sig by a key naming the ECR host", &|d| {
            key.sign2_for(&site.registry, repo, d, Some(&for_ecr))
        }),
        ("cosign 3 bundle by a key", &|d| {
            key.sign3(&site.registry, repo, d)
        }),
        ("cosign 3 bundle by a private CA's certificate", &|d| {
            ca.sign3(&site.registry, repo, d)
        }),
        ("notation JWS", &|d| notary.sign(&site.registry, repo, d)),
        ("notation COSE", &|d| {
            notary.sign_as(&site.registry, repo, d, "cose")
        }),
    ];
    for (what, sign) in &signers {
        let d = next();
        sign(&d);
        release(&d).await;
        let r = row(&config, &name, &d, "succeeded", &agent).await;
        assert_eq!(running_digest(&name), d, "{what}: {r}");
        println!("{what}: deployed {}", short(&d));
    }

    // Signed, but not as the config trusts: rejected, nothing pulled or stopped.
    let stranger = CosignKey::generate();
    let outsider = ca.another("ops@example.com", "https://issuer.example");
    let other_notary = Notary::generate(&site.registry, "release");
    let signed_v = next();
    key.sign2(&site.registry, repo, &signed_v);
    let other_repo = "team/elsewhere";
    // This repository's path under another account's ECR host.
    let other_ecr = format!("210987654321.dkr.ecr.{REGION}.amazonaws.com");
    let other_host = format!("{other_ecr}/{repo}");
    let both_hosts = format!(
        "for another registry host ({other_ecr}; the image's registry is {ecr_host}, its mirror {})",
        site.registry.host
    );
    let bad: [(&str, &str, Sign); 6] = [
        ("a cosign 3 bundle by another key", "no trusted key", &|d| {
            stranger.sign3(&site.registry, repo, d)
        }),
        (
            "a certificate of another identity",
            "identity is not trusted",
            &|d| outsider.sign3(&site.registry, repo, d),
        ),
        (
            "notation by a certificate of another root",
            "does not chain",
            &|d| other_notary.sign(&site.registry, repo, d),
        ),
        ("the .sig of another digest", "another digest", &|d| {
            let from = format!("sha256-{}.sig", &signed_v[7..]);
            copy_manifest(
                &site.registry,
                repo,
                &from,
                repo,
                &format!("sha256-{}.sig", &d[7..]),
            );
        }),
        (
            "a .sig made for another repository",
            "another repository",
            &|d| {
                copy_manifest(&site.registry, repo, d, other_repo, "copy");
                key.sign2(&site.registry, other_repo, d);
                let tag = format!("sha256-{}.sig", &d[7..]);
                copy_manifest(&site.registry, other_repo, &tag, repo, &tag);
            },
        ),
        (
            "a .sig naming this repository under another registry host",
            &both_hosts,
            &|d| key.sign2_for(&site.registry, repo, d, Some(&other_host)),
        ),
    ];
    for (what, why, sign) in &bad {
        let running = running_digest(&name);
        let d = next();
        sign(&d);
        release(&d).await;
        let r = row(&config, &name, &d, "rejected", &agent).await;
        let error = r["error"].as_str().unwrap_or_default();
        assert!(error.contains(why), "{what}: {error}");
        assert!(!pulled(&site, repo, &d), "{what}: nothing pulled");
        assert_eq!(
            running_digest(&name),
            running,
            "{what}: the container was not touched"
        );
        println!("{what}: rejected ({error})");
    }

    // notation by a certificate that names a CRL (served here): fetched, clean, deployed;
    // once the CRL lists the certificate, its next signature is rejected.
    let d = next();
    crl_ca.sign(&site.registry, repo, &d);
    release(&d).await;
    let r = row(&config, &name, &d, "succeeded", &agent).await;
    assert!(agent.log_text().contains("not revoked"), "{r}");
    println!(
        "notation by a certificate naming a CRL: deployed {}",
        short(&d)
    );
    crl_ca.revoke();
    let running = running_digest(&name);
    let d = next();
    crl_ca.sign(&site.registry, repo, &d);
    release(&d).await;
    let r = row(&config, &name, &d, "rejected", &agent).await;
    let error = r["error"].as_str().unwrap_or_default();
    assert!(error.contains("is revoked"), "{error}");
    assert!(!pulled(&site, repo, &d));
    assert_eq!(running_digest(&name), running);
    println!("notation by a revoked certificate: rejected ({error})");

    // An index tag (as buildx pushes one): a signature of this host's platform manifest passes.
    let platform = next();
    let (index, index_digest) = push_index(&site.registry, repo, "multi", &platform);
    key.sign3(&site.registry, repo, &platform);
    put_index_in_ecr(&site.ecr, repo, "prod", &index, &index_digest).await;
    send_all(
        &site.sqs,
        &site.url,
        &[push_body(repo, "prod", &index_digest)],
    )
    .await;
    let r = row(&config, &name, &index_digest, "succeeded", &agent).await;
    println!(
        "an index signed on its platform manifest: deployed {}",
        short(&index_digest)
    );
    assert!(
        agent.log_text().contains("this host's platform manifest"),
        "{r}\n{}",
        agent.log_text()
    );
    assert_eq!(containers_named(&name).len(), 1);
}
