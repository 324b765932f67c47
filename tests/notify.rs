//! Notifications and metrics of a running agent (the binary) on the real stack: moto (SQS, ECR,
//! EventBridge), a local registry, the Docker Engine, local webhook endpoints — one that
//! answers, one that answers 500, one that never answers — and a real SMTP server (aiosmtpd)
//! that requires a login.

mod common;

use std::time::Duration;

use aws_sdk_eventbridge::types::Target;
use common::docker::*;
use common::site::{Site, config_of};
use common::smtp::SmtpSink;
use common::webhook::{Hook, HookMode};
use common::*;
use ecr_deployd::config::Smtp;
use serde_json::Value;

const BUS: &str = "fleet-results";

/// A queue that receives what a rule on the result bus forwards.
async fn result_queue(site: &Site) -> String {
    let events = &site.events;
    events.create_event_bus().name(BUS).send().await.unwrap();
    let (url, _) = create_queue(&site.sqs, "central-results", None).await;
    events
        .put_rule()
        .name("deployment-results")
        .event_bus_name(BUS)
        .event_pattern(r#"{"source":["ecr-deployd"],"detail-type":["ECR Deployment Result"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("deployment-results")
        .event_bus_name(BUS)
        .targets(
            Target::builder()
                .id("central")
                .arn(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:central-results"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    url
}

fn metric(metrics: &str, line_start: &str) -> Option<String> {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_reach_webhooks_eventbridge_email_and_metrics_and_bad_webhooks_do_not_hold_deploys()
 {
    let site = Site::new("notify").await;
    let (registry, scope, url) = (&site.registry, &site.scope, &site.url);
    let results = result_queue(&site).await;
    let (ok, fail, hang) = (
        Hook::start(HookMode::Ok).await,
        Hook::start(HookMode::Fail).await,
        Hook::start(HookMode::Hang).await,
    );
    let mail = SmtpSink::start("agent", "s3cr3t-mail");

    let repo = "shop/notify";
    let v1 = registry.publish(repo, "v1", Kind::Serve, "v1", true);
    let prod = format!("{}/{repo}:prod", registry.host);
    docker(&["tag", &format!("{}/{repo}:v1", registry.host), &prod]);
    put_digest(&site.ecr, repo, "prod", &v1).await;
    let name = scope.name("web");
    scope.run(&name, &["--label", "ecr-deployd.enable=true", &prod]);

    let addr = format!("127.0.0.1:{}", free_port());
    let mut settings = site.settings(0);
    settings.deploy.health_timeout_seconds = 3;
    settings.http.listen = addr.clone();
    settings.notify.webhooks = vec![hang.url.clone(), fail.url.clone(), ok.url.clone()];
    settings.notify.event_bus = BUS.to_owned();
    settings.notify.smtp = Some(Smtp {
        relay: format!("127.0.0.1:{}", mail.port),
        from: "ecr-deployd@site.example".to_owned(),
        to: vec![
            "ops@site.example".to_owned(),
            "oncall@site.example".to_owned(),
        ],
        starttls: false,
        username: mail.user.to_string(),
        password: String::new(),
        password_file: mail.password_file.display().to_string(),
    });
    let config = config_of(&settings);
    let agent = AgentProcess::start(&config, &["run"]);
    eventually(Duration::from_secs(60), "ready", || async {
        http(&addr, "GET", "/readyz").0 == 200
    })
    .await;
    assert_eq!(http(&addr, "GET", "/healthz").0, 200);

    // 1. A push that succeeds.
    let v2 = registry.publish(repo, "v2", Kind::Serve, "v2", false);
    put_digest(&site.ecr, repo, "prod", &v2).await;
    send_all(&site.sqs, url, &[push_body(repo, "prod", &v2)]).await;
    eventually(Duration::from_secs(60), "v2 running", || async {
        running_digest_now(&name).as_deref() == Some(v2.as_str())
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "the answering webhook got it",
        || async { !ok.bodies().is_empty() },
    )
    .await;
    // The webhook that never answers still holds the first notice's connection: delivery did
    // not wait for it, and neither did the deploy.
    eventually(
        Duration::from_secs(10),
        "the hanging webhook called",
        || async { hang.holding() >= 1 },
    )
    .await;
    let b = &ok.bodies()[0];
    let d = &b["ecr_deployd"]["data"];
    assert_eq!(b["ecr_deployd"]["kind"], "deployment");
    assert_eq!(d["container"], name.as_str());
    assert_eq!(d["repository"], repo);
    assert_eq!(d["tag"], "prod");
    assert_eq!(d["from_digest"], v1.as_str());
    assert_eq!(d["to_digest"], v2.as_str());
    assert_eq!(d["outcome"], "succeeded");
    assert_eq!(d["trigger"], "event");
    assert!(d["durations_ms"]["total"].as_i64().unwrap() > 0, "{d}");
    assert!(d["durations_ms"]["event_to_running"].is_i64(), "{d}");
    let text = b["text"].as_str().unwrap();
    assert!(
        text.contains(&name) && text.contains("succeeded") && text.contains(&v2[7..19]),
        "{text}"
    );

    // 2. A push whose image never becomes healthy: rolled back, while the hanging webhook
    //    still holds its connections.
    let v3 = registry.publish(repo, "v3", Kind::NeverHealthy, "v3", false);
    put_digest(&site.ecr, repo, "prod", &v3).await;
    send_all(&site.sqs, url, &[push_body(repo, "prod", &v3)]).await;
    eventually(Duration::from_secs(60), "rolled-back notice", || async {
        ok.bodies().len() >= 2
    })
    .await;
    assert_eq!(running_digest(&name), v2, "back on v2");
    assert!(hang.holding() >= 1);
    let d = &ok.bodies()[1]["ecr_deployd"]["data"];
    assert_eq!(d["outcome"], "rolled_back");
    assert_eq!(d["from_digest"], v2.as_str());
    assert_eq!(d["to_digest"], v3.as_str());
    assert!(!d["error"].as_str().unwrap_or_default().is_empty(), "{d}");

    // The rollback by e-mail, logged in with the password file's password: host, container,
    // from → to and the reason. The success before it was not mailed.
    eventually(Duration::from_secs(30), "the rollback e-mail", || async {
        !mail.messages().is_empty()
    })
    .await;
    let m = &mail.messages()[0];
    assert_eq!(m["mail_from"], "ecr-deployd@site.example");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["ops@site.example", "oncall@site.example"])
    );
    assert_eq!(m["login"], "agent");
    let subject = m["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("ecr-deployd on ")
            && subject.ends_with(&format!(": {name} rolled back ({repo}:prod)")),
        "{subject}"
    );
    let body = m["body"].as_str().unwrap();
    for part in [
        format!("From:      {v2}"),
        format!("To:        {v3}"),
        "Reason:    ".to_owned(),
        "Outcome:   rolled_back".to_owned(),
        format!("{} is blocked for {name}", &v3[7..19]),
    ] {
        assert!(body.contains(&part), "{part:?} not in\n{body}");
    }

    // The failing webhook was retried: three attempts per notice.
    eventually(
        Duration::from_secs(30),
        "retries of the 500 webhook",
        || async { fail.requests() >= 6 },
    )
    .await;

    // 3. The same two results on the EventBridge bus, forwarded by a rule to a central queue.
    let mut seen: Vec<Value> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "result events: {seen:?}"
        );
        for body in peek(&site.sqs, &results, 1).await {
            seen.push(serde_json::from_str(&body).unwrap());
        }
    }
    let mut outcomes: Vec<&str> = seen
        .iter()
        .map(|e| e["detail"]["outcome"].as_str().unwrap())
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["rolled_back", "succeeded"]);
    for e in &seen {
        assert_eq!(e["source"], "ecr-deployd");
        assert_eq!(e["detail-type"], "ECR Deployment Result");
        let d = &e["detail"];
        assert_eq!(d["container"], name.as_str());
        assert_eq!(d["repository"], repo);
        assert!(!d["host"].as_str().unwrap().is_empty());
        assert!(d["from_digest"].as_str().unwrap().starts_with("sha256:"));
        assert!(d["durations_ms"]["pull"].is_i64());
    }

    // 4. Metrics moved: one succeeded, one rolled back, two events received and deleted.
    let (status, metrics) = http(&addr, "GET", "/metrics");
    assert_eq!(status, 200);
    for line in [
        "ecr_deployd_deployments_total{outcome=\"succeeded\"} 1",
        "ecr_deployd_deployments_total{outcome=\"rolled_back\"} 1",
        "ecr_deployd_deploy_duration_seconds_count 2",
        "ecr_deployd_event_to_running_seconds_count 1",
        "ecr_deployd_messages_received_total 2",
        "ecr_deployd_containers_managed 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing in:\n{metrics}"
        );
    }
    assert!(
        metric(
            &metrics,
            "ecr_deployd_deployments_total{outcome=\"failed\"}"
        )
        .is_none_or(|l| l.ends_with(" 0")),
        "{metrics}"
    );

    // 5. A malformed message is reported as trouble.
    send_all(&site.sqs, url, &["{this is not json".to_owned()]).await;
    eventually(Duration::from_secs(30), "trouble notice", || async {
        ok.bodies()
            .iter()
            .any(|b| b["ecr_deployd"]["kind"] == "trouble")
    })
    .await;
    let bodies = ok.bodies();
    let t = bodies
        .iter()
        .find(|b| b["ecr_deployd"]["kind"] == "trouble")
        .unwrap();
    assert_eq!(t["ecr_deployd"]["data"]["kind"], "malformed");
    assert!(t["text"].as_str().unwrap().contains("malformed"), "{t}");
    // Once per outcome: the rollback only — neither the success nor the trouble was mailed.
    assert_eq!(mail.messages().len(), 1, "{:?}", mail.messages());
    let (_, doctor, _) = run_cli(&config, &["doctor"], &[]);
    let relay = format!("ok   e-mail relay: smtp://127.0.0.1:{} answers", mail.port);
    assert!(doctor.lines().any(|l| l == relay), "{doctor}");

    // Webhook URLs are secrets: not in the logs, not in check-config.
    let log = agent.log_text();
    assert!(
        log.contains("webhook #2 (http://127.0.0.1:"),
        "failures name the webhook:\n{log}"
    );
    assert!(
        !log.contains("s3cr3t-token")
            && !log.contains("key=hidden")
            && !log.contains("s3cr3t-mail"),
        "{log}"
    );
    let (code, out, _) = run_cli(&config, &["check-config"], &[]);
    assert_eq!(code, 0);
    assert!(
        !out.contains("s3cr3t-token") && !out.contains("key=hidden"),
        "{out}"
    );
    drop(agent);
}
