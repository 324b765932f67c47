use super::*;

fn deployment(outcome: &str, error: Option<&str>) -> Notice {
    Notice::Deployment(DeploymentNotice {
        host: "edge-01".into(),
        name: "edge-01".into(),
        wave: 1,
        wave_key: wave_key(1),
        kind: "container",
        container: "web".into(),
        repository: "shop/web".into(),
        tag: "prod".into(),
        from_digest: Some(format!("sha256:{}", "a".repeat(64))),
        to_digest: format!("sha256:{}", "b".repeat(64)),
        platform_digest: None,
        outcome: crate::store::Outcome::parse(outcome).unwrap(),
        trigger: "event".into(),
        error: error.map(str::to_owned),
        durations_ms: Durations {
            total: 420,
            ..Default::default()
        },
    })
}

#[test]
fn text_names_host_container_image_digests_and_outcome() {
    let t = deployment("succeeded", None).text();
    assert_eq!(
        t,
        "✅ ecr-deployd on edge-01: web succeeded shop/web:prod aaaaaaaaaaaa → bbbbbbbbbbbb (event, 420 ms)"
    );
    let t = deployment("rolled_back", Some("health check failed")).text();
    assert!(
        t.contains("rolled back") && t.ends_with(": health check failed"),
        "{t}"
    );
    let t = deployment("rejected", Some("not signed")).text();
    assert!(
        t.starts_with("⛔") && t.contains("web rejected") && t.ends_with(": not signed"),
        "{t}"
    );
}

#[test]
fn webhook_body_has_text_and_the_structured_notice() {
    let b = deployment("failed", Some("pull failed")).webhook_body();
    assert!(b["text"].as_str().unwrap().starts_with("❌"));
    assert_eq!(b["ecr_deployd"]["kind"], "deployment");
    assert_eq!(b["ecr_deployd"]["data"]["outcome"], "failed");
    assert_eq!(b["ecr_deployd"]["data"]["repository"], "shop/web");
    assert_eq!(b["ecr_deployd"]["data"]["durations_ms"]["total"], 420);
}

#[test]
fn result_event_detail_carries_the_wave_as_a_number_and_as_wave_key() {
    let Notice::Deployment(mut d) = deployment("succeeded", None) else {
        unreachable!()
    };
    d.wave = 3;
    d.wave_key = wave_key(3);
    let detail: serde_json::Value = serde_json::from_str(&event_detail(&d)).unwrap();
    assert_eq!(
        detail,
        json!({
            "host": "edge-01",
            "name": "edge-01",
            "wave": 3,
            "wave_key": "wave-3",
            "kind": "container",
            "container": "web",
            "repository": "shop/web",
            "tag": "prod",
            "from_digest": format!("sha256:{}", "a".repeat(64)),
            "to_digest": format!("sha256:{}", "b".repeat(64)),
            "outcome": "succeeded",
            "trigger": "event",
            "error": null,
            "durations_ms": {
                "resolve": 0, "pull": 0, "stop": 0, "swap": 0, "health": 0,
                "total": 420, "event_to_running": null
            }
        })
    );
    // The result event parser of later waves reads it back.
    let body = json!({
        "version": "0", "id": "x", "source": EVENT_SOURCE, "detail-type": EVENT_DETAIL_TYPE,
        "account": "123456789012", "time": "2025-01-01T00:00:00Z", "region": "eu-west-2",
        "resources": [], "detail": detail
    });
    let crate::event::Classified::FleetResult(r) = crate::event::classify(&body.to_string()) else {
        panic!("not a fleet result");
    };
    assert_eq!((r.host.as_str(), r.wave), ("edge-01", 3));
}

#[test]
fn webhook_label_hides_path_and_query() {
    assert_eq!(
        webhook_label(
            0,
            "https://hooks.example.com/services/T000/B000/XXXX?token=s3cret"
        ),
        "webhook #1 (https://hooks.example.com)"
    );
    assert_eq!(
        webhook_label(1, "http://127.0.0.1:8080/hook"),
        "webhook #2 (http://127.0.0.1:8080)"
    );
    assert_eq!(webhook_label(2, "not a url"), "webhook #3");
}

#[test]
fn host_name_is_the_kernel_host_name() {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(host_name(), kernel.trim());
}

#[test]
fn disabled_notifier_drops_without_blocking() {
    let n = Notifier::disabled();
    assert!(!n.enabled());
    n.send(deployment("succeeded", None));
}
