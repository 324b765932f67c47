//! The AWS side from infra/cloudformation, created on the emulator (moto), and the agent run
//! against exactly what the stack created: the stack's outputs become the agent's config,
//! ECR push events travel through EventBridge `PutEvents` → the stack's rule → its queue, and a
//! managed container is redeployed. What the emulator ignores (queue policies, the role's
//! attached policies) is checked statically by infra/tests/test_templates.py.

mod common;

use std::time::Duration;

use common::docker::*;
use common::site::{Site, config_of};
use common::*;
use serde_json::Value;

fn repositories_of(bodies: &[String]) -> Vec<String> {
    let mut repos: Vec<String> = bodies
        .iter()
        .map(|b| {
            let v: Value = serde_json::from_str(b).unwrap();
            v["detail"]["repository-name"].as_str().unwrap().to_owned()
        })
        .collect();
    repos.sort();
    repos
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_feeds_the_agent_only_the_followed_repositories() {
    let aws = Aws::start().await;
    let events = aws_sdk_eventbridge::Client::new(&aws.sdk);
    let out = provision(
        &aws.moto.endpoint,
        "ecr-deployd-edge-01",
        &[
            "HostName=edge-01",
            "Repositories=shop/web,shop/api",
            "RepositoryPrefix=team-a/",
            "MaxReceiveCount=3",
            "VisibilityTimeoutSeconds=120",
        ],
    );
    let url = &out["QueueUrl"];
    assert!(url.ends_with("/ecr-deployd-edge-01"), "{url}");
    assert!(out["DeadLetterQueueUrl"].ends_with("/ecr-deployd-edge-01-dlq"));
    assert!(out["AgentPolicyArn"].ends_with(":policy/ecr-deployd-edge-01-agent"));
    assert!(!out.contains_key("HostRoleArn"), "no trust anchor, no role");
    assert!(
        !out.contains_key("ResultsPolicyArn"),
        "no result bus, no PutEvents"
    );

    // The queue as the stack made it: SSE-SQS, long polling, redrive to the DLQ.
    let attrs = aws
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let attr = |k: &str| {
        attrs
            .get(&aws_sdk_sqs::types::QueueAttributeName::from(k))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(attr("SqsManagedSseEnabled"), "true");
    assert_eq!(attr("ReceiveMessageWaitTimeSeconds"), "20");
    assert_eq!(attr("VisibilityTimeout"), "120");
    let redrive: Value = serde_json::from_str(&attr("RedrivePolicy")).unwrap();
    assert!(
        redrive["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with(":ecr-deployd-edge-01-dlq")
    );
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "3"
    );

    // By name, by prefix; not: another repository, a name that only starts like a followed one,
    // a prefix look-alike, a failed push, a delete.
    let digest = format!("sha256:{}", "ab".repeat(32));
    for repo in [
        "shop/web",
        "shop/api",
        "team-a/worker",
        "other",
        "shop/web-old",
        "team-b/x",
    ] {
        put_ecr_event(&events, repo, "prod", &digest, "PUSH", "SUCCESS").await;
    }
    for (action, result) in [("PUSH", "FAILURE"), ("DELETE", "SUCCESS")] {
        put_ecr_event(&events, "shop/web", "prod", &digest, action, result).await;
    }
    let got = peek(&aws.sqs, url, 2).await;
    assert_eq!(
        repositories_of(&got),
        ["shop/api", "shop/web", "team-a/worker"],
        "exactly the followed repositories' pushes reach the queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_runs_against_what_the_stack_created() {
    let site = Site::new("infra").await;
    let (events, registry, scope) = (&site.events, &site.registry, &site.scope);
    let out = provision(
        &site.endpoint,
        "ecr-deployd-edge-02",
        &[
            "HostName=edge-02",
            "Repositories=shop/web",
            "ResultEventBusName=fleet-results",
        ],
    );
    assert!(out["ResultsPolicyArn"].ends_with(":policy/ecr-deployd-edge-02-results"));

    // A managed container on v1 of shop/web:prod.
    let repo = "shop/web";
    let v1 = registry.publish(repo, "v1", Kind::Serve, "v1", true);
    let prod = format!("{}/{repo}:prod", registry.host);
    docker(&["tag", &format!("{}/{repo}:v1", registry.host), &prod]);
    put_digest(&site.ecr, repo, "prod", &v1).await;
    let name = scope.name("web");
    scope.run(&name, &["--label", "ecr-deployd.enable=true", &prod]);

    // The stack's config snippet is the agent's config, plus what only a test needs.
    let snippet = &out["ConfigSnippet"];
    assert!(
        snippet.contains(&format!("url = \"{}\"", out["QueueUrl"])),
        "{snippet}"
    );
    assert!(
        snippet.contains("event_bus = \"fleet-results\""),
        "{snippet}"
    );
    let config = config_of(&site.settings_from_snippet(snippet));

    let (code, stdout, stderr) = run_cli(&config, &["check-config"], &[]);
    assert_eq!(code, 0, "the snippet is a valid config: {stdout}{stderr}");
    let (code, stdout, stderr) = run_cli(&config, &["doctor"], &[]);
    assert_eq!(code, 0, "doctor on a provisioned host: {stdout}{stderr}");
    assert!(
        stdout.lines().any(|l| l.starts_with("ok")
            && l.contains("EventBridge rule targets the queue")
            && l.contains("ecr-deployd-edge-02")),
        "{stdout}"
    );

    let agent = AgentProcess::start(&config, &["run"]);
    let v2 = registry.publish(repo, "v2", Kind::Serve, "v2", false);
    put_digest(&site.ecr, repo, "prod", &v2).await;
    put_ecr_event(events, repo, "prod", &v2, "PUSH", "SUCCESS").await;
    eventually(Duration::from_secs(60), "the container runs v2", || async {
        running_digest_now(&name).as_deref() == Some(v2.as_str())
    })
    .await;
    eventually(Duration::from_secs(20), "the event is deleted", || async {
        queue_counts(&site.sqs, &out["QueueUrl"]).await == (0, 0)
    })
    .await;
    let (dlq_visible, dlq_hidden) = queue_counts(&site.sqs, &out["DeadLetterQueueUrl"]).await;
    assert_eq!((dlq_visible, dlq_hidden), (0, 0), "nothing dead-lettered");
    drop(agent);
}

/// A scan result event, basic (`aws.ecr`) or enhanced (`aws.inspector2`, repository ARN).
async fn put_scan_event(events: &aws_sdk_eventbridge::Client, source: &str, repo: &str) {
    let (detail_type, name) = match source {
        "aws.ecr" => ("ECR Image Scan", repo.to_owned()),
        _ => (
            "Inspector2 Scan",
            format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repo}"),
        ),
    };
    let detail = serde_json::json!({
        "scan-status": "COMPLETE",
        "repository-name": name,
        "image-digest": format!("sha256:{}", "cd".repeat(32)),
        "image-tags": ["prod"],
        "finding-severity-counts": {"LOW": 1},
    });
    put_event(events, source, detail_type, &detail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_scan_gate_the_followed_repositories_scan_results_reach_the_queue_too() {
    let aws = Aws::start().await;
    let events = aws_sdk_eventbridge::Client::new(&aws.sdk);
    let out = provision(
        &aws.moto.endpoint,
        "ecr-deployd-edge-02",
        &[
            "HostName=edge-02",
            "Repositories=shop/web",
            "RepositoryPrefix=team-a/",
            "ScanGate=true",
        ],
    );
    assert!(out["ScanRuleArn"].ends_with(":rule/ecr-deployd-edge-02-scans"));
    let url = &out["QueueUrl"];
    for source in ["aws.ecr", "aws.inspector2"] {
        for repo in ["shop/web", "team-a/worker", "other", "shop/web-old"] {
            put_scan_event(&events, source, repo).await;
        }
    }
    let got = peek(&aws.sqs, url, 2).await;
    let mut seen: Vec<(String, String)> = got
        .iter()
        .map(|b| {
            let v: Value = serde_json::from_str(b).unwrap();
            let name = v["detail"]["repository-name"].as_str().unwrap();
            let repo = name.rsplit_once(":repository/").map_or(name, |(_, r)| r);
            (v["source"].as_str().unwrap().to_owned(), repo.to_owned())
        })
        .collect();
    seen.sort();
    let want: Vec<(String, String)> = [
        ("aws.ecr", "shop/web"),
        ("aws.ecr", "team-a/worker"),
        ("aws.inspector2", "shop/web"),
        ("aws.inspector2", "team-a/worker"),
    ]
    .iter()
    .map(|(s, r)| (s.to_string(), r.to_string()))
    .collect();
    assert_eq!(
        seen, want,
        "exactly the followed repositories' scan results"
    );
    // Without the gate (the first stack's default) there is no scan rule.
    let plain = provision(
        &aws.moto.endpoint,
        "ecr-deployd-edge-03",
        &["HostName=edge-03", "Repositories=shop/web"],
    );
    assert!(!plain.contains_key("ScanRuleArn"));
    put_scan_event(&events, "aws.ecr", "shop/web").await;
    assert!(
        peek(&aws.sqs, &plain["QueueUrl"], 2).await.is_empty(),
        "no scan events without the gate"
    );
}
