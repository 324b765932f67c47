//! S3 archives (SPEC §13) on the real stack: the archive bucket and host stacks of
//! infra/cloudformation on moto, S3's EventBridge notification delivering `Object Created`
//! through the host's rule to its queue, `docker save | xz` archives of images built here,
//! the agent binary, and the Engine loading what it streams from S3.
//!
//! Edges covered: an archive of what already runs deploys nothing; a new archive at the same
//! key is deployed by its event; a truncated archive and one whose bytes do not match the
//! `sha256` metadata are refused with the container, and the name it was made from, as they
//! were, and are shown `refused` by status; an archive whose app exits is rolled back and
//! blocked; an upload whose event is lost is found by the sweep; `rollback` goes back to the
//! previous archive's image, kept on the host; `doctor` reads the key; an upload under the
//! prefix that no container follows is not downloaded; a key outside the prefix sends nothing.

mod common;

use std::time::Duration;

use common::archive::*;
use common::docker::*;
use common::site::status_of;
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn archives_are_loaded_checked_deployed_refused_rolled_back_and_swept() {
    let lab = Lab::new("archives").await;
    let (images, dir, moto, s3) = (&lab.images, &lab.dir, &lab.moto, &lab.s3);
    provision_template(
        &moto.endpoint,
        "archives",
        "archive-bucket.yaml",
        &[&format!("BucketName={BUCKET}")],
    );
    // moto's CloudFormation leaves the bucket's EventBridge notification off: turned on here,
    // as an operator does for a bucket that already exists.
    notifications(s3, true).await;
    let out = provision(
        &moto.endpoint,
        "ecr-deployd-arch-host",
        &[
            "HostName=arch-host",
            "Repositories=unused/app",
            &format!("ArchiveBucketName={BUCKET}"),
            "ArchivePrefix=app/",
        ],
    );
    assert!(
        out["ArchiveRuleArn"].ends_with("rule/ecr-deployd-arch-host-archives"),
        "{out:?}"
    );
    let config = lab.config(out["QueueUrl"].as_str());

    // v1 runs, from the name the archive gives it; its archive is uploaded: nothing to do.
    let v1 = images.build("v1", Kind::Serve);
    let a1 = images.archive(&v1, "v1", &v1, &dir.path().join("v1.tar.xz"));
    let name = lab.follower();
    let first_id = docker(&["inspect", "--format", "{{.Id}}", &name]);
    let mut agent = AgentProcess::start(&config, &["run"]);
    upload(s3, KEY, a1.clone(), Some(sha256_hex(&a1))).await;
    agent.until_logged("archive loaded").await;
    assert_eq!(
        status_of(&config, &name)["state"],
        "up_to_date",
        "{}",
        agent.log_text()
    );
    assert!(history(&config, &name).is_empty());

    // v2 at the same key: its event deploys it.
    let v2 = images.build("v2", Kind::Serve);
    let a2 = images.archive(&v2, "v2", &v1, &dir.path().join("v2.tar.xz"));
    let local = docker(&["images", "-q", "--no-trunc"]);
    assert!(!local.lines().any(|l| l == v2), "v2 is only in the archive");
    upload(s3, KEY, a2.clone(), Some(sha256_hex(&a2))).await;
    let done = |to: String| {
        let (config, name) = (config.clone(), name.clone());
        move || {
            let rows = history(&config, &name);
            let finished = rows
                .first()
                .is_some_and(|r| r["to_digest"] == to.as_str() && !r["outcome"].is_null());
            std::future::ready(finished)
        }
    };
    eventually(Duration::from_secs(90), "v2 deployed", done(v2.clone())).await;
    assert_eq!(image_of(&name), v2);
    let rows = history(&config, &name);
    assert_eq!(rows[0]["to_digest"], v2.as_str());
    assert_eq!(rows[0]["from_digest"], v1.as_str());
    assert_eq!(rows[0]["trigger"], "event");
    assert_eq!(rows[0]["outcome"], "succeeded");
    assert_eq!(rows[0]["repository"], format!("s3://{BUCKET}"));
    assert_eq!(
        images.latest(),
        v2,
        "the swap names the new image as the container's image"
    );
    let v2_container = docker(&["inspect", "--format", "{{.Id}}", &name]);
    assert_ne!(v2_container, first_id);

    // A truncated archive: refused, nothing touched, status says why.
    let cut = a2[..a2.len() / 2].to_vec();
    upload(s3, KEY, cut, None).await;
    eventually(
        Duration::from_secs(60),
        "truncated archive refused",
        || async { status_of(&config, &name)["state"] == "refused" },
    )
    .await;
    let s = status_of(&config, &name);
    assert_eq!(s["state"], "refused", "{s}");
    let detail = s["detail"].as_str().unwrap();
    assert!(
        detail.contains("could not load it as a docker save archive"),
        "{detail}"
    );
    assert_eq!(
        docker(&["inspect", "--format", "{{.Id}}", &name]),
        v2_container
    );

    // A valid archive whose bytes do not match the SHA-256 S3 has for it: refused, and the
    // name the container was made from still names what it runs.
    let v3 = images.build("v3", Kind::Serve);
    let a3 = images.archive(&v3, "v3", &v2, &dir.path().join("v3.tar.xz"));
    upload(s3, KEY, a3, Some("0".repeat(64))).await;
    eventually(
        Duration::from_secs(60),
        "mismatched archive refused",
        || async {
            let s = status_of(&config, &name);
            s["state"] == "refused" && s["detail"].as_str().unwrap().contains("SHA-256")
        },
    )
    .await;
    let s = status_of(&config, &name);
    assert!(
        s["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("S3 has {} for the object", "0".repeat(64))),
        "{s}"
    );
    assert_eq!(
        docker(&["inspect", "--format", "{{.Id}}", &name]),
        v2_container
    );
    assert_eq!(
        images.latest(),
        v2,
        "a refused load leaves the container's image name alone"
    );
    assert_eq!(
        history(&config, &name).len(),
        1,
        "refusals are not deployments"
    );

    // An app that exits: rolled back to the same container, and blocked.
    let bad = images.build("bad", Kind::ExitAtOnce);
    let abad = images.archive(&bad, "bad", &v2, &dir.path().join("bad.tar.xz"));
    upload(s3, KEY, abad.clone(), Some(sha256_hex(&abad))).await;
    eventually(
        Duration::from_secs(90),
        "bad archive rolled back",
        done(bad.clone()),
    )
    .await;
    assert_eq!(history(&config, &name)[0]["outcome"], "rolled_back");
    assert_eq!(
        docker(&["inspect", "--format", "{{.Id}}", &name]),
        v2_container
    );
    assert_eq!(status_of(&config, &name)["state"], "blocked");

    // v4 uploaded while S3 sends no events: the sweep finds it.
    notifications(s3, false).await;
    let v4 = images.build("v4", Kind::Serve);
    let a4 = images.archive(&v4, "v4", &v2, &dir.path().join("v4.tar.xz"));
    upload(s3, KEY, a4.clone(), Some(sha256_hex(&a4))).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(image_of(&name), v2, "no event, no deploy before the sweep");
    let (code, out, err) = run_cli(&config, &["sweep"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(image_of(&name), v4);
    let rows = history(&config, &name);
    assert_eq!(
        (rows[0]["to_digest"].as_str(), rows[0]["trigger"].as_str()),
        (Some(v4.as_str()), Some("sweep"))
    );

    // rollback: back to v2, which stayed on the host for it.
    let (code, out, err) = run_cli(&config, &["rollback", &name], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(image_of(&name), v2);
    assert_eq!(history(&config, &name)[0]["trigger"], "manual");

    // doctor asks S3 for the key the container follows, and loads nothing.
    let (_, out, _) = run_cli(&config, &["doctor"], &[]);
    let line = format!(
        "ok   S3 archives readable: s3://{BUCKET}/{KEY}: image {}",
        &v4[7..19]
    );
    assert!(out.contains(&line), "{out}");

    // The pipeline's versioned key beside it: its event arrives, but no container follows
    // that key, so it is not downloaded.
    notifications(s3, true).await;
    let loads = agent.log_text().matches("archive loaded").count();
    upload(s3, "app/app-v2.tar.xz", a2.clone(), None).await;
    agent.until_logged("no container follows this key").await;
    assert_eq!(agent.log_text().matches("archive loaded").count(), loads);

    // A key outside the rule's prefix sends nothing: nothing about it reaches the agent.
    upload(s3, "other/app-latest.tar.xz", a2, None).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !agent.log_text().contains("other/app-latest"),
        "{}",
        agent.log_text()
    );
    drop(agent);
}
