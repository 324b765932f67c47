//! The supply-chain gates as an operator meets them (SPEC §11), on the real stack: cosign
//! signatures made by openssl and pushed to the local registry, scan findings set in moto,
//! the agent binary as daemon and as command, the Docker Engine.

mod common;

use std::time::{Duration, Instant};

use common::cosign::Signer;
use common::docker::*;
use common::site::*;
use common::*;

/// Whether the Engine has the image `digest` of `repo` from the test registry.
fn pulled(site: &Site, repo: &str, digest: &str) -> bool {
    common::matrix::docker_command()
        .args([
            "image",
            "inspect",
            &format!("{}/{repo}@{digest}", site.registry.host),
        ])
        .output()
        .unwrap()
        .status
        .success()
}

fn id_of(name: &str) -> String {
    docker(&["inspect", "--format", "{{.Id}}", name])
}

/// The newest history row of `name`.
fn last_row(config: &str, name: &str) -> serde_json::Value {
    let (_, out, _) = run_cli(config, &["history", name, "--json"], &[]);
    json(&out)["deployments"][0].clone()
}

/// Waits until the newest history row of `name` is for `digest` with `outcome`.
async fn recorded(config: &str, name: &str, digest: &str, outcome: &str, agent: &AgentProcess) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = last_row(config, name);
        if row["to_digest"] == digest && row["outcome"] == outcome {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {outcome} row for {}: {row}\n{}",
            short(digest),
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the newest history row of `name` is a rejection whose reason contains `why`.
async fn rejected_again(config: &str, name: &str, why: &str) {
    eventually(Duration::from_secs(30), why, || {
        let row = last_row(config, name);
        async move {
            row["outcome"] == "rejected" && row["error"].as_str().unwrap_or("").contains(why)
        }
    })
    .await;
}

async fn running(name: &str, digest: &str, agent: &AgentProcess) -> Duration {
    let started = Instant::now();
    while running_digest_now(name).as_deref() != Some(digest) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name} does not run {}:\n{}",
            short(digest),
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_digests_signed_by_a_trusted_key_for_themselves_are_pulled_and_sign_later_works() {
    let site = Site::new("gate-sig").await;
    let repo = "team/sig";
    let (name, v1) = site
        .container_with(repo, "sig", &["ecr-deployd.verify=signed"])
        .await;
    // A container without the label is not gated ([verify] require = "none").
    let (free, _) = site.container("team/free", "free").await;
    let trusted = Signer::generate();
    let stranger = Signer::generate();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "{}[verify]\ncosign_public_keys = [\"{}\"]\n",
        site.config_with_http(0, &listen),
        trusted.public_key().display()
    );
    let agent = AgentProcess::start(&config, &["run"]);

    // Signed by the trusted key: deployed.
    let v2 = site.silent_push(repo, Kind::Serve, "v2").await;
    trusted.sign(&site.registry, repo, &v2);
    send_all(&site.sqs, &site.url, &[push_body(repo, "prod", &v2)]).await;
    running(&name, &v2, &agent).await;
    assert_ne!(v1, v2);

    // Unsigned: rejected before any pull; the message is deleted once that is recorded.
    let before = id_of(&name);
    let v3 = site.silent_push(repo, Kind::Serve, "v3").await;
    send_all(&site.sqs, &site.url, &[push_body(repo, "prod", &v3)]).await;
    recorded(&config, &name, &v3, "rejected", &agent).await;
    let row = last_row(&config, &name);
    assert!(
        row["error"].as_str().unwrap().contains("not signed"),
        "{row}"
    );
    assert_eq!(id_of(&name), before, "the container was not touched");
    assert!(!pulled(&site, repo, &v3), "nothing was pulled");
    eventually(
        Duration::from_secs(10),
        "the message is deleted",
        || async { queue_counts(&site.sqs, &site.url).await == (0, 0) },
    )
    .await;
    let s = status_of(&config, &name);
    assert_eq!(s["state"], "rejected", "{s}");
    assert!(s["detail"].as_str().unwrap().contains("not signed"), "{s}");
    let (_, metrics) = http(&listen, "GET", "/metrics");
    assert!(
        metrics.contains("ecr_deployd_deployments_total{outcome=\"rejected\"} 1"),
        "{metrics}"
    );
    // The unlabelled container is deployed unsigned.
    let f2 = site.silent_push("team/free", Kind::Serve, "f2").await;
    send_all(&site.sqs, &site.url, &[push_body("team/free", "prod", &f2)]).await;
    running(&free, &f2, &agent).await;

    // Signed later, but by a key that is not trusted: the signature push re-checks, and
    // rejects again with that reason.
    let tag = stranger.sign(&site.registry, repo, &v3);
    send_all(&site.sqs, &site.url, &[push_body(repo, &tag, &v3)]).await;
    rejected_again(&config, &name, "no trusted key").await;
    // By the trusted key, but the payload names another digest: still rejected.
    trusted.sign_as(&site.registry, repo, &v3, repo, &v2);
    send_all(&site.sqs, &site.url, &[push_body(repo, &tag, &v3)]).await;
    rejected_again(&config, &name, "another digest").await;
    assert_eq!(id_of(&name), before);
    assert!(!pulled(&site, repo, &v3));

    // Properly signed now: its signature's push deploys it within seconds.
    trusted.sign(&site.registry, repo, &v3);
    let sent = Instant::now();
    send_all(&site.sqs, &site.url, &[push_body(repo, &tag, &v3)]).await;
    running(&name, &v3, &agent).await;
    println!(
        "signature push -> running: {} ms",
        sent.elapsed().as_millis()
    );
    recorded(&config, &name, &v3, "succeeded", &agent).await;
    // The signature tag's push deployed nothing by itself: rows are v2, v3 x3, f2? no:
    // only this container's rows, none of them for the .sig tag.
    let (_, out, _) = run_cli(&config, &["history", &name, "--json"], &[]);
    let rows = json(&out)["deployments"].as_array().unwrap().clone();
    assert!(rows.iter().all(|r| r["tag"] == "prod"), "{rows:?}");
    assert_eq!(containers_named(&name).len(), 1);

    // doctor: the keys, and the running digest's signature read and checked.
    let (_, out, _) = run_cli(&config, &["doctor"], &[]);
    let key = trusted.public_key().display().to_string();
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok   signature keys: 1 trusted") && l.contains(&key)),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok   gates readable (signature, scan)")
                && l.contains(&name)
                && l.contains(&format!("signed by {key}"))),
        "{out}"
    );
    // A key file that is not a P-256 public key is refused at start-up, naming the file.
    let bad = site.state.with_file_name("bad.pub");
    std::fs::write(
        &bad,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let broken = format!(
        "{}[verify]\ncosign_public_keys = [\"{}\"]\n",
        site.config(0),
        bad.display()
    );
    let (code, _, err) = run_cli(&broken, &["check-config"], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("verify.cosign_public_keys[0]")
            && err.contains("bad.pub")
            && err.contains("not a PEM ECDSA P-256"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_findings_gate_the_pull_and_a_scan_still_to_come_is_waited_for() {
    let site = Site::new("gate-scan").await;
    let repo = "team/scan";
    // Scan on push as today's registries set it: a registry-level rule (the repository's own
    // flag stays off: it is deprecated, and the gate does not read it).
    site.scan_on_push_rule("team/scan*").await;
    let (name, _) = site.container(repo, "scan").await;
    let config = format!(
        "{}[scan]\nmax_severity = \"HIGH\"\nwait_seconds = 15\n",
        site.config(0)
    );
    let agent = AgentProcess::start(&config, &["run"]);

    // A CRITICAL finding: rejected, nothing pulled.
    let before = id_of(&name);
    let v2 = site.silent_push(repo, Kind::Serve, "v2").await;
    site.scanned(repo, &v2, serde_json::json!({"CRITICAL": 1, "LOW": 3}))
        .await;
    send_all(&site.sqs, &site.url, &[push_body(repo, "prod", &v2)]).await;
    recorded(&config, &name, &v2, "rejected", &agent).await;
    let row = last_row(&config, &name);
    assert_eq!(
        row["error"], "scan found 1 CRITICAL, 3 LOW (limit HIGH)",
        "{row}"
    );
    assert_eq!(id_of(&name), before);
    assert!(!pulled(&site, repo, &v2));

    // Only LOW findings: deployed.
    let v3 = site.silent_push(repo, Kind::Serve, "v3").await;
    site.scanned(repo, &v3, serde_json::json!({"LOW": 2})).await;
    send_all(&site.sqs, &site.url, &[push_body(repo, "prod", &v3)]).await;
    running(&name, &v3, &agent).await;

    // No scan yet in a repository that scans on push: pending, then deployed within
    // seconds of the scan's event.
    let v4 = site.silent_push(repo, Kind::Serve, "v4").await;
    send_all(&site.sqs, &site.url, &[push_body(repo, "prod", &v4)]).await;
    eventually(
        Duration::from_secs(20),
        "pending, its message deleted",
        || async { queue_counts(&site.sqs, &site.url).await == (0, 0) },
    )
    .await;
    let s = status_of(&config, &name);
    assert_eq!(s["state"], "pending", "{s}");
    assert!(
        s["detail"].as_str().unwrap().contains("scans on push"),
        "{s}"
    );
    assert_eq!(running_digest(&name), v3);
    site.scanned(repo, &v4, serde_json::json!({"MEDIUM": 1}))
        .await;
    let sent = Instant::now();
    send_all(&site.sqs, &site.url, &[scan_body(repo, &v4)]).await;
    running(&name, &v4, &agent).await;
    println!("scan event -> running: {} ms", sent.elapsed().as_millis());
    let (_, out, _) = run_cli(&config, &["doctor"], &[]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok   gates readable (scan)")
                && l.contains("scan: 1 MEDIUM (limit HIGH)")),
        "{out}"
    );

    // A scan that never comes: pending until wait_seconds, then the sweep rejects it.
    let v5 = site.silent_push(repo, Kind::Serve, "v5").await;
    send_all(&site.sqs, &site.url, &[push_body(repo, "prod", &v5)]).await;
    eventually(Duration::from_secs(20), "pending", || {
        let s = status_of(&config, &name);
        async move { s["state"] == "pending" }
    })
    .await;
    let (code, out, _) = run_cli(&config, &["sweep", "--dry-run"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("no scan result yet"), "{out}");
    tokio::time::sleep(Duration::from_secs(16)).await;
    let (_, out, err) = run_cli(&config, &["sweep"], &[]);
    assert!(out.contains("rejected"), "{out}{err}");
    recorded(&config, &name, &v5, "rejected", &agent).await;
    assert!(
        last_row(&config, &name)["error"]
            .as_str()
            .unwrap()
            .contains("after 15 s")
    );
    assert_eq!(running_digest(&name), v4);
    assert_eq!(containers_named(&name).len(), 1);
}

/// SPEC §4 (issue 30 #1): an image cannot switch its own gates off, nor opt a container in.
/// The container runs a signed-by-nobody image built `FROM` a base with
/// `LABEL ecr-deployd.verify=none` and `scan-max-severity=none`: the container shows both
/// labels (inherited), yet `[verify] require = "signed"` still rejects the next unsigned
/// push, and a signed one passes. A container that has `ecr-deployd.enable=true` only from
/// its image is not managed at all. Then `rollback --to` is gated for a digest never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_an_image_carries_never_switch_a_gate_off_or_opt_a_container_in() {
    let site = Site::new("gate-inherit").await;
    let repo = "team/inherit";
    let off = [
        "ecr-deployd.verify=none",
        "ecr-deployd.scan-max-severity=none",
    ];
    let v1 = site.registry.publish_labelled(repo, "v1", "v1", &off);
    put_digest(&site.ecr, repo, "prod", &v1).await;
    let prod = format!("{}/{repo}:prod", site.registry.host);
    docker(&["tag", &format!("{}/{repo}:v1", site.registry.host), &prod]);
    let name = site.scope.name("inherit");
    site.scope
        .run(&name, &["--label", "ecr-deployd.enable=true", &prod]);
    let shown = docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"ecr-deployd.verify\"}}",
        &name,
    ]);
    assert_eq!(shown, "none", "the container shows the image's label");
    // Opted in by its image only: never managed.
    let self_enabled = site.registry.publish_labelled(
        "team/selfenabled",
        "v1",
        "s1",
        &["ecr-deployd.enable=true"],
    );
    let stray = site.scope.name("stray");
    site.scope.run(
        &stray,
        &[&format!("{}/team/selfenabled:v1", site.registry.host)],
    );
    let trusted = Signer::generate();
    let config = format!(
        "{}[verify]\nrequire = \"signed\"\ncosign_public_keys = [\"{}\"]\n",
        site.config(0),
        trusted.public_key().display()
    );
    let agent = AgentProcess::start(&config, &["run"]);

    // Unsigned, and carrying the same "gates off" labels: rejected, nothing pulled.
    let before = id_of(&name);
    let v2 = site.registry.publish_labelled(repo, "v2", "v2", &off);
    put_digest(&site.ecr, repo, "prod", &v2).await;
    send_all(&site.sqs, &site.url, &[push_body(repo, "prod", &v2)]).await;
    recorded(&config, &name, &v2, "rejected", &agent).await;
    assert!(
        last_row(&config, &name)["error"]
            .as_str()
            .unwrap()
            .contains("not signed")
    );
    assert_eq!(id_of(&name), before, "the container was not touched");

    // Signed by the trusted key: deployed; the successor still does not count the image's
    // labels as its own, so the next unsigned push is rejected again.
    let v3 = site.registry.publish_labelled(repo, "v3", "v3", &off);
    trusted.sign(&site.registry, repo, &v3);
    put_digest(&site.ecr, repo, "prod", &v3).await;
    send_all(&site.sqs, &site.url, &[push_body(repo, "prod", &v3)]).await;
    running(&name, &v3, &agent).await;
    let v4 = site.registry.publish_labelled(repo, "v4", "v4", &off);
    put_digest(&site.ecr, repo, "prod", &v4).await;
    send_all(&site.sqs, &site.url, &[push_body(repo, "prod", &v4)]).await;
    recorded(&config, &name, &v4, "rejected", &agent).await;

    let (_, out, _) = run_cli(&config, &["status", "--json"], &[]);
    assert!(
        !out.contains(&stray),
        "a container opted in by its image is not managed: {out}"
    );
    assert!(out.contains(&name), "{out}");
    assert!(docker(&["inspect", "--format", "{{.Config.Image}}", &stray]).contains("selfenabled"));
    let _ = self_enabled;

    // SPEC §11 (issue 30 #2): `rollback --to` a digest this container never ran passes the
    // gates like an approve (v4: unsigned, refused, nothing pulled or stopped); back to one it
    // ran successfully (v1, unsigned, replaced by v3) skips them.
    let before = id_of(&name);
    let (code, _, err) = run_cli(&config, &["rollback", &name, "--to", &v4], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not signed"), "{err}");
    assert_eq!(id_of(&name), before);
    let (code, out, err) = run_cli(&config, &["rollback", &name, "--to", &v1], &[]);
    assert_eq!(code, 0, "{out}{err}");
    running(&name, &v1, &agent).await;
}
