//! Swarm services on the real Engine: a single-node Swarm on loopback (initialised by the
//! harness when none is active, and left again afterwards only then), moto, a local registry
//! with basic auth, and the agent binary. One test, its stages in order, because the Swarm is
//! shared state of the Engine.

mod common;

use std::time::{Duration, Instant};

use common::cosign::Signer;
use common::docker::*;
use common::*;
use serde_json::Value;

/// The one harness's site on a Swarm manager. Drop order: the site (services, containers,
/// then the registry) before the Swarm.
struct OnSwarm {
    site: common::site::Site,
    _swarm: Swarm,
    /// Trusted by `[verify]` (step 5).
    signer: Signer,
}

impl std::ops::Deref for OnSwarm {
    type Target = common::site::Site;
    fn deref(&self) -> &common::site::Site {
        &self.site
    }
}

impl OnSwarm {
    fn config(&self) -> String {
        let mut s = self.site.settings(0);
        s.deploy.debounce_millis = 200;
        s.deploy.health_timeout_seconds = 10;
        s.verify.cosign_public_keys = vec![self.signer.public_key()];
        common::site::config_of(&s)
    }

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        run_cli(&self.config(), args, &[])
    }

    fn history(&self, name: &str) -> Vec<Value> {
        let (code, out, err) = self.cli(&["history", name, "--json"]);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        v["deployments"].as_array().cloned().unwrap_or_default()
    }

    /// Creates a service of `replicas` from `reference`, sent with the registry's credentials.
    fn service(&self, name: &str, reference: &str, replicas: u32, extra: &[&str]) {
        let label = format!("{TEST_LABEL}={}", self.scope.id);
        let replicas = replicas.to_string();
        let mut args = vec![
            "service",
            "create",
            "--quiet",
            "--with-registry-auth",
            "--name",
            name,
            "--label",
            &label,
            "--replicas",
            &replicas,
            "--update-parallelism",
            "1",
            "--update-delay",
            "0s",
            "--update-monitor",
            "3s",
            "--update-max-failure-ratio",
            "0",
            "--rollback-monitor",
            "2s",
            "--restart-max-attempts",
            "1000",
        ];
        args.extend_from_slice(extra);
        args.push(reference);
        self.registry.docker_logged_in(&args);
    }
}

/// The image (with digest) a service's spec names, and its update state.
fn service_state(name: &str) -> (String, String) {
    let out = docker(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}} {{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
        name,
    ]);
    let (image, state) = out.split_once(' ').unwrap_or((&out, ""));
    (image.to_owned(), state.trim().to_owned())
}

/// Digests of the images of a service's running tasks.
fn running_tasks(name: &str) -> Vec<String> {
    let out = docker(&[
        "service",
        "ps",
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Image}} {{.CurrentState}}",
        name,
    ]);
    out.lines()
        .filter(|l| l.contains(" Running"))
        .filter_map(|l| {
            l.split_whitespace()
                .next()?
                .split_once('@')
                .map(|(_, d)| d.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_follow_pushes_through_swarm_updates_and_rollbacks() {
    let swarm = Swarm::ensure();
    let site = OnSwarm {
        site: common::site::Site::new("swarm").await,
        _swarm: swarm,
        signer: Signer::generate(),
    };
    let repo = "swarm/web";
    let host = site.registry.host.clone();
    let v1 = site.registry.publish(repo, "v1", Kind::Serve, "v1", true);
    let prod = format!("{host}/{repo}:prod");
    docker(&["tag", &format!("{host}/{repo}:v1"), &prod]);
    site.registry.push_as(&prod, repo, "prod");
    put_digest(&site.ecr, repo, "prod", &v1).await;

    // A managed service with 2 replicas that rolls back failed updates; an unmanaged one on the
    // same image; a managed standalone container following the same tag; a managed service
    // without failure_action rollback (doctor warns).
    let web = site.scope.name("web");
    site.service(
        &web,
        &prod,
        2,
        &[
            "--label",
            "ecr-deployd.enable=true",
            "--update-failure-action",
            "rollback",
        ],
    );
    let other = site.scope.name("other");
    site.service(&other, &prod, 1, &[]);
    let paused = site.scope.name("paused");
    site.service(
        &paused,
        &prod,
        1,
        &[
            "--label",
            "ecr-deployd.enable=true",
            "--label",
            "ecr-deployd.image=swarm/paused:prod",
        ],
    );
    put_digest(&site.ecr, "swarm/paused", "prod", &v1).await;
    let solo = site.scope.name("solo");
    site.scope
        .run(&solo, &["--label", "ecr-deployd.enable=true", &prod]);
    let (image, _) = service_state(&web);
    assert!(
        image.ends_with(&format!("@{v1}")),
        "Swarm pins the digest: {image}"
    );

    // doctor: services listed, the one without rollback warned about; task containers are not
    // listed as managed containers.
    let (code, out, err) = site.cli(&["doctor"]);
    assert!(code == 0 || code == 1, "{out}{err}");
    assert!(
        out.lines().any(|l| l.starts_with("ok")
            && l.contains("managed services")
            && l.contains(&web)
            && l.contains(&paused)),
        "{out}"
    );
    assert!(!out.contains(&other), "unmanaged service listed: {out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("warn") && l.contains(&paused) && l.contains("rollback")),
        "{out}"
    );
    assert!(
        !out.lines()
            .any(|l| l.starts_with("warn") && l.contains(&format!("{web}:"))),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("managed containers") && l.contains("1 (")),
        "task containers are not managed containers: {out}"
    );

    // 1. An event: the service (2 replicas) and the container both go to v2, once each.
    let agent = AgentProcess::start(&site.config(), &["run"]);
    let v2 = site.registry.publish(repo, "v2", Kind::Serve, "v2", false);
    put_digest(&site.ecr, repo, "prod", &v2).await;
    let sent = Instant::now();
    send_all(&site.sqs, &site.url, &[push_body(repo, "prod", &v2)]).await;
    eventually(
        Duration::from_secs(120),
        "service updated to v2",
        || async {
            let (image, state) = service_state(&web);
            image.ends_with(&format!("@{v2}")) && state == "completed"
        },
    )
    .await;
    let update_took = sent.elapsed();
    eventually(Duration::from_secs(60), "both tasks on v2", || async {
        running_tasks(&web) == [v2.clone(), v2.clone()]
    })
    .await;
    eventually(Duration::from_secs(60), "container on v2", || async {
        running_digest_now(&solo).as_deref() == Some(v2.as_str())
    })
    .await;
    eprintln!(
        "event -> completed 2-replica service update: {:.1} s",
        update_took.as_secs_f64()
    );
    eventually(
        Duration::from_secs(10),
        "the service update recorded",
        || async {
            site.history(&web)
                .first()
                .is_some_and(|d| !d["outcome"].is_null())
        },
    )
    .await;
    let h = site.history(&web);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["outcome"], "succeeded");
    assert_eq!(h[0]["from_digest"], v1.as_str());
    assert_eq!(h[0]["to_digest"], v2.as_str());
    assert_eq!(h[0]["trigger"], "event");
    assert_eq!(site.history(&solo).len(), 1);
    let (other_image, _) = service_state(&other);
    assert!(
        other_image.ends_with(&format!("@{v1}")),
        "unmanaged service untouched: {other_image}"
    );

    // 2. A lost event: ECR moves, nothing reaches the queue; the sweep catches it.
    let v3 = site.registry.publish(repo, "v3", Kind::Serve, "v3", false);
    put_digest(&site.ecr, repo, "prod", &v3).await;
    let (code, out, err) = site.cli(&["sweep", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&web))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("would deploy"), "{out}");
    assert!(
        service_state(&web).0.ends_with(&format!("@{v2}")),
        "a dry run changes nothing"
    );
    let (code, out, err) = site.cli(&["sweep"]);
    assert_eq!(code, 0, "{out}{err}");
    let (image, state) = service_state(&web);
    assert!(
        image.ends_with(&format!("@{v3}")) && state == "completed",
        "{image} {state}"
    );
    let h = site.history(&web);
    assert_eq!(
        (h.len(), h[0]["trigger"].as_str(), h[0]["outcome"].as_str()),
        (2, Some("sweep"), Some("succeeded")),
        "{h:?}"
    );
    assert_eq!(running_digest(&solo), v3);

    // 3. An image whose tasks fail: Swarm rolls the update back; recorded, digest blocked.
    let v4 = site
        .registry
        .publish(repo, "v4", Kind::ExitAtOnce, "v4", false);
    put_digest(&site.ecr, repo, "prod", &v4).await;
    send_all(&site.sqs, &site.url, &[push_body(repo, "prod", &v4)]).await;
    eventually(
        Duration::from_secs(180),
        "the failed update recorded",
        || async {
            let h = site.history(&web);
            h.len() == 3 && !h[0]["outcome"].is_null()
        },
    )
    .await;
    let h = site.history(&web);
    assert_eq!(h[0]["outcome"], "rolled_back", "{h:?}");
    assert_eq!(h[0]["to_digest"], v4.as_str());
    assert!(
        h[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("rollback"),
        "{h:?}"
    );
    let (image, state) = service_state(&web);
    assert!(
        image.ends_with(&format!("@{v3}")),
        "Swarm put v3 back: {image}"
    );
    assert_eq!(state, "rollback_completed");
    let (_, out, _) = site.cli(&["status", "--json"]);
    let status: Value = serde_json::from_str(&out).unwrap();
    let entry = status["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == web.as_str())
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(entry["state"], "blocked", "{entry}");
    // The same sweep again does not retry the blocked digest.
    let (code, out, err) = site.cli(&["sweep"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(site.history(&web).len(), 3);

    // 4. rollback: a service update back to the digest before v3.
    let (code, out, err) = site.cli(&["rollback", &web]);
    assert_eq!(code, 0, "{out}{err}");
    let (image, state) = service_state(&web);
    assert!(
        image.ends_with(&format!("@{v2}")) && state == "completed",
        "{image} {state}"
    );
    let h = site.history(&web);
    assert_eq!(
        (h[0]["trigger"].as_str(), h[0]["outcome"].as_str()),
        (Some("manual"), Some("succeeded"))
    );

    // 5. The signature gate applies to services the same way: an unsigned digest is rejected
    // before the service is touched; its signature's push deploys it.
    let gated = site.scope.name("gated");
    let gated_repo = "swarm/gated";
    put_digest(&site.ecr, gated_repo, "prod", &v1).await;
    site.service(
        &gated,
        &prod,
        1,
        &[
            "--label",
            "ecr-deployd.enable=true",
            "--label",
            "ecr-deployd.image=swarm/gated:prod",
            "--label",
            "ecr-deployd.verify=signed",
        ],
    );
    let g2 = site
        .registry
        .publish(gated_repo, "g2", Kind::Serve, "g2", false);
    put_digest(&site.ecr, gated_repo, "prod", &g2).await;
    send_all(&site.sqs, &site.url, &[push_body(gated_repo, "prod", &g2)]).await;
    eventually(
        Duration::from_secs(30),
        "the unsigned digest rejected",
        || async {
            site.history(&gated)
                .first()
                .is_some_and(|d| d["outcome"] == "rejected")
        },
    )
    .await;
    assert!(
        service_state(&gated).0.ends_with(&format!("@{v1}")),
        "service untouched"
    );
    let tag = site.signer.sign(&site.registry, gated_repo, &g2);
    send_all(&site.sqs, &site.url, &[push_body(gated_repo, &tag, &g2)]).await;
    eventually(
        Duration::from_secs(120),
        "signed: the service updated",
        || async {
            let (image, state) = service_state(&gated);
            image.ends_with(&format!("@{g2}")) && state == "completed"
        },
    )
    .await;
    eventually(Duration::from_secs(30), "the update recorded", || async {
        site.history(&gated)
            .first()
            .is_some_and(|d| !d["outcome"].is_null())
    })
    .await;
    let h = site.history(&gated);
    assert_eq!(
        (h.len(), h[0]["outcome"].as_str(), h[1]["outcome"].as_str()),
        (2, Some("succeeded"), Some("rejected")),
        "{h:?}"
    );

    // The unmanaged service was never touched; the agent logged service deployments.
    assert!(service_state(&other).0.ends_with(&format!("@{v1}")));
    let log = agent.log_text();
    assert!(
        log.contains("kind=\"service\"") || log.contains("kind=service"),
        "{log}"
    );
    drop(agent);
}
