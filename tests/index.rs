//! Tags that name an image index (what `docker buildx build --push` makes by default) and
//! images known under several digests, on the real stack: a deploy happens once, and the
//! sweeps after it find the container up to date instead of redeploying it forever.
//!
//! Tag shapes covered: an OCI index with the platform image (a Docker v2 manifest) and a
//! provenance attestation for `unknown/unknown`, stored in ECR with the index media type;
//! the same index promoted from a second repository; a host whose image came by the
//! platform digest before the index existed; a new index whose platform image changed.

mod common;

use std::time::Duration;

use common::docker::*;
use common::oci::*;
use common::site::*;
use common::*;

/// Publishes `version` of `repo` (kept in the local image store when it was `built_here`),
/// wraps it in an index, and points ECR's `prod` at the index. Returns (platform, index).
async fn push_buildx_style(
    site: &Site,
    repo: &str,
    version: &str,
    built_here: bool,
) -> (String, String) {
    let platform = site
        .registry
        .publish(repo, version, Kind::Serve, version, built_here);
    let (index, digest) = push_index(&site.registry, repo, &format!("{version}-index"), &platform);
    put_index_in_ecr(&site.ecr, repo, "prod", &index, &digest).await;
    (platform, digest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_is_deployed_once_and_later_sweeps_leave_the_container_alone() {
    let site = Site::new("index-once").await;
    let (name, _v1) = site.container("shop/idx", "web").await;
    let (p2, i2) = push_buildx_style(&site, "shop/idx", "v2", false).await;

    let (code, out, err) = site.cli(&["sweep"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("deployed"), "{out}");
    let digests = repo_digests(&name);
    assert!(
        digests.iter().any(|d| d.ends_with(&i2) || d.ends_with(&p2)),
        "the new container runs v2: {digests:?}"
    );
    // Two sweeps from the command line, then the daemon's periodic sweep: nothing more.
    for _ in 0..2 {
        let (code, out, err) = site.cli(&["sweep"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("up to date"), "{out}");
    }
    // The start-up sweep and a periodic one (every second; a pass on a loaded Engine may take
    // seconds, so counted, not timed).
    let mut agent = AgentProcess::start(&site.config(1), &["run"]);
    eventually(
        Duration::from_secs(90),
        "the start-up sweep and a periodic one",
        || async { agent.log_text().matches("sweep finished").count() >= 2 },
    )
    .await;
    agent.signal("TERM");
    assert_eq!(agent.wait_exit(Duration::from_secs(60)), Some(0));
    let history = site.deployments(&name);
    assert_eq!(history.len(), 1, "one deploy only: {history:?}");
    assert_eq!(history[0]["to_digest"], i2.as_str());
    assert_eq!(history[0]["platform_digest"], p2.as_str());
    let status = status_of(&site.config(0), &name);
    assert_eq!(status["state"], "up_to_date", "{status}");
    assert_eq!(status["desired_digest"], i2.as_str());
    assert_eq!(status["platform_digest"], p2.as_str());

    // A new index whose platform image differs, built and pushed from this host (so the
    // pulled image carries the platform digest and the index digest): one more deploy.
    // The Engine lists RepoDigests sorted: make the platform digest come first, the order
    // in which a comparison with only the first entry redeploys forever.
    let (mut p3, mut i3) = (String::new(), String::new());
    for attempt in 0..20 {
        (p3, i3) = push_buildx_style(&site, "shop/idx", &format!("v3-{attempt}"), true).await;
        if p3 < i3 {
            break;
        }
    }
    assert_ne!(p3, p2);
    for _ in 0..2 {
        let (code, out, err) = site.cli(&["sweep"]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let history = site.deployments(&name);
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0]["to_digest"], i3.as_str());
    assert_eq!(history[0]["outcome"], "succeeded");
    let digests = repo_digests(&name);
    let has = |d: &str| digests.iter().any(|r| r.ends_with(d));
    if common::matrix::under_test().flavour.content_addressed_ids() {
        // The containerd store keeps one image per manifest or index: the pulled index is
        // listed under its own digest only; being up to date below is what counts.
        assert!(has(&i3) || has(&p3), "{digests:?}");
    } else {
        // The classic stores list the pulled index's digest beside the pushed platform's.
        assert!(has(&p3) && has(&i3), "{digests:?}");
    }
    assert_eq!(status_of(&site.config(0), &name)["state"], "up_to_date");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_known_under_other_digests_is_up_to_date_against_its_index() {
    let site = Site::new("index-digests").await;
    let host = site.registry.host.clone();

    // A host whose image came by the platform digest, before the index existed.
    let p1 = site
        .registry
        .publish("shop/early", "v1", Kind::Serve, "v1", false);
    site.registry
        .docker_logged_in(&["pull", &format!("{host}/shop/early@{p1}")]);
    let prod = format!("{host}/shop/early:prod");
    docker(&["tag", &format!("{host}/shop/early@{p1}"), &prod]);
    let early = site.scope.name("early");
    site.scope
        .run(&early, &["--label", "ecr-deployd.enable=true", &prod]);
    let (index, i1) = push_index(&site.registry, "shop/early", "v1-index", &p1);
    put_index_in_ecr(&site.ecr, "shop/early", "prod", &index, &i1).await;
    let status = status_of(&site.config(0), &early);
    assert_eq!(status["state"], "up_to_date", "{status}");
    assert_eq!(status["running_digest"], p1.as_str());
    let (code, out, _) = site.cli(&["sweep"]);
    assert_eq!(code, 0);
    assert!(out.contains("up to date"), "{out}");
    assert!(site.deployments(&early).is_empty());

    // The same index promoted from a second repository that the host pulled first: the
    // image then carries that repository's digest too.
    let (name, _v1) = site.container("shop/promoted", "web").await;
    let p2 = site
        .registry
        .publish("test/promoted", "v2", Kind::Serve, "v2", true);
    let (index, i2_test) = push_index(&site.registry, "test/promoted", "v2-index", &p2);
    site.registry
        .docker_logged_in(&["pull", &format!("{host}/test/promoted@{i2_test}")]);
    let p2_prod = site
        .registry
        .push_as(&format!("{host}/test/promoted:v2"), "shop/promoted", "v2");
    assert_eq!(p2_prod, p2, "the same manifest in both repositories");
    let (index_prod, i2) = push_index(&site.registry, "shop/promoted", "v2-index", &p2);
    assert_eq!(
        (&index_prod, &i2),
        (&index, &i2_test),
        "the same index in both"
    );
    put_index_in_ecr(&site.ecr, "shop/promoted", "prod", &index, &i2).await;
    for _ in 0..3 {
        let (code, out, err) = site.cli(&["sweep"]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let digests = repo_digests(&name);
    assert!(
        digests.len() >= 2,
        "known under several digests: {digests:?}"
    );
    let history = site.deployments(&name);
    assert_eq!(history.len(), 1, "one deploy only: {history:?}");
    assert_eq!(history[0]["outcome"], "succeeded");
    assert_eq!(status_of(&site.config(0), &name)["state"], "up_to_date");
}

/// ECR scans images, not indexes (issue 31 #2, SPEC §11): for an index tag the scan of this
/// host's platform manifest decides; a scan event for that manifest re-checks the index, held
/// (pending) or rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scan_gate_reads_the_platform_manifest_of_an_index_and_its_scan_event_rechecks() {
    let site = Site::new("index-scan").await;
    let repo = "shop/scanidx";
    site.scan_on_push_rule("shop/*").await;
    let (name, _v1) = site.container(repo, "web").await;
    let config = format!(
        "{}[scan]\nmax_severity = \"HIGH\"\nwait_seconds = 300\n",
        site.config(0)
    );
    let agent = AgentProcess::start(&config, &["run"]);
    let rows = |to: &str| -> Vec<serde_json::Value> {
        site.deployments(&name)
            .into_iter()
            .filter(|d| d["to_digest"] == to)
            .collect()
    };
    // v2: no scan of its platform image yet (the registry scans on push): pending.
    let (p2, i2) = push_buildx_style(&site, repo, "v2", false).await;
    put_digest(&site.ecr, repo, "v2-platform", &p2).await;
    send_all(&site.sqs, &site.url, &[push_body(repo, "prod", &i2)]).await;
    eventually(Duration::from_secs(30), "pending", || {
        let s = status_of(&config, &name);
        std::future::ready(s["state"] == "pending")
    })
    .await;
    // The platform image's scan completes (the index has none, ever): deployed.
    site.scanned(repo, &p2, serde_json::json!({"LOW": 1})).await;
    send_all(&site.sqs, &site.url, &[scan_body(repo, &p2)]).await;
    eventually(Duration::from_secs(30), "v2 deployed", || {
        let done = rows(&i2)
            .first()
            .is_some_and(|r| r["outcome"] == "succeeded");
        std::future::ready(done)
    })
    .await;
    let digests = repo_digests(&name);
    assert!(
        digests.iter().any(|d| d.ends_with(&p2) || d.ends_with(&i2)),
        "{digests:?}\n{}",
        agent.log_text()
    );

    // v3: its platform image has a CRITICAL finding: rejected, the row names that manifest.
    let (p3, i3) = push_buildx_style(&site, repo, "v3", false).await;
    put_digest(&site.ecr, repo, "v3-platform", &p3).await;
    site.scanned(repo, &p3, serde_json::json!({"CRITICAL": 1}))
        .await;
    send_all(&site.sqs, &site.url, &[push_body(repo, "prod", &i3)]).await;
    eventually(Duration::from_secs(30), "v3 rejected", || {
        std::future::ready(
            rows(&i3)
                .first()
                .is_some_and(|r| r["outcome"] == "rejected"),
        )
    })
    .await;
    let row = &rows(&i3)[0];
    assert_eq!(row["platform_digest"], p3.as_str(), "{row}");
    assert_eq!(row["error"], "scan found 1 CRITICAL (limit HIGH)", "{row}");
    // The platform image's scan event clears the index's rejection: checked again (and,
    // the findings unchanged, rejected again: a second row).
    send_all(&site.sqs, &site.url, &[scan_body(repo, &p3)]).await;
    eventually(Duration::from_secs(30), "v3 checked again", || {
        std::future::ready(rows(&i3).len() == 2)
    })
    .await;
    assert!(rows(&i3).iter().all(|r| r["outcome"] == "rejected"));
    assert!(
        repo_digests(&name)
            .iter()
            .any(|d| d.ends_with(&p2) || d.ends_with(&i2))
    );
}
