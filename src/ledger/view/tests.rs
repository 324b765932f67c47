use super::*;
use crate::ledger::{ContainerLedger, DeploymentLedger};

const NOW: &str = "2025-06-01T12:00:00Z";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn host(name: &str, wave: u32, written_at: &str, containers: Vec<ContainerLedger>) -> HostLedger {
    HostLedger {
        schema: 1,
        name: name.into(),
        host: format!("{name}.site"),
        wave,
        agent_version: "0.1.0".into(),
        written_at: written_at.into(),
        sweep_interval_seconds: 60,
        containers,
    }
}

fn container(image: &str, running: char, previous: Option<char>) -> ContainerLedger {
    let (repository, tag) = crate::ledger::split_image(image);
    ContainerLedger {
        name: "web".into(),
        image: image.into(),
        repository,
        tag,
        running_digest: Some(digest(running)),
        desired_digest: Some(digest(running)),
        state: "up_to_date".into(),
        previous_digest: previous.map(digest),
        deployments: vec![DeploymentLedger {
            to_digest: digest(running),
            outcome: "succeeded".into(),
            at: "2025-06-01T11:00:00Z".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn now() -> jiff::Timestamp {
    NOW.parse().unwrap()
}

#[test]
fn one_row_per_host_and_container_with_previous_digest_and_last_outcome() {
    let objects = [
        host(
            "edge-02",
            2,
            "2025-06-01T11:59:30Z",
            vec![container("shop/web:prod", 'b', Some('a'))],
        ),
        host(
            "edge-01",
            1,
            "2025-06-01T11:59:00Z",
            vec![container("shop/web:prod", 'b', Some('a'))],
        ),
    ];
    let v = fleet("s3://l/p/", &objects, now());
    assert_eq!(v.read_at, NOW);
    let hosts: Vec<(&str, Option<u64>, bool)> = v
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.age_seconds, h.stale))
        .collect();
    assert_eq!(
        hosts,
        [("edge-01", Some(60), false), ("edge-02", Some(30), false)]
    );
    assert_eq!(v.rows.len(), 2);
    let r = &v.rows[0];
    assert_eq!(
        (r.host.as_str(), r.wave, r.container.as_str()),
        ("edge-01", 1, "web")
    );
    assert_eq!(
        (r.repository.as_str(), r.tag.as_str()),
        ("shop/web", "prod")
    );
    assert_eq!(r.previous_digest, Some(digest('a')));
    assert_eq!(r.last_outcome.as_deref(), Some("succeeded"));
    assert_eq!(
        r.last_deployment_at.as_deref(),
        Some("2025-06-01T11:00:00Z")
    );
}

#[test]
fn a_host_older_than_three_intervals_or_with_an_unreadable_time_is_stale() {
    let objects = [
        // 3 × 60 s exactly: still fresh; one second more: stale.
        host("at-limit", 1, "2025-06-01T11:57:00Z", vec![]),
        host(
            "beyond",
            1,
            "2025-06-01T11:56:59Z",
            vec![container("shop/web:prod", 'a', None)],
        ),
        host("garbled", 1, "yesterday", vec![]),
    ];
    let v = fleet("s3://l/p/", &objects, now());
    let stale: Vec<(&str, bool)> = v.hosts.iter().map(|h| (h.name.as_str(), h.stale)).collect();
    assert_eq!(
        stale,
        [("at-limit", false), ("beyond", true), ("garbled", true)]
    );
    assert!(v.rows[0].stale, "its rows carry it");
    // No periodic sweep (interval 0): the writer's default interval counts.
    let mut quiet = host("quiet", 1, "2025-06-01T11:50:00Z", vec![]);
    quiet.sweep_interval_seconds = 0;
    assert!(!fleet("s3://l/p/", &[quiet], now()).hosts[0].stale);
}

#[test]
fn in_use_lists_exactly_the_running_platform_and_rollback_digests_per_repository() {
    let mut index = container("shop/api:prod", 'i', Some('h'));
    index.platform_digest = Some(digest('p'));
    let mut behind = container("shop/web:prod", 'c', Some('b'));
    behind.desired_digest = Some(digest('d'));
    behind.platform_digest = Some(digest('q'));
    let objects = [
        host(
            "edge-01",
            1,
            NOW,
            vec![container("shop/web:prod", 'b', Some('a')), index],
        ),
        host("edge-02", 2, "2020-01-01T00:00:00Z", vec![behind]),
        host(
            "edge-03",
            1,
            NOW,
            vec![container("s3://drops/app.tar", 'z', Some('y'))],
        ),
    ];
    let v = fleet("s3://l/p/", &objects, now());
    let all = in_use(&v, None);
    let listed: Vec<(&str, String, Vec<&str>)> = all
        .iter()
        .map(|u| {
            (
                u.repository.as_str(),
                u.digest[7..8].to_owned(),
                u.kept_as.clone(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("shop/api", "h".into(), vec!["rollback"]),
            ("shop/api", "i".into(), vec!["running"]),
            ("shop/api", "p".into(), vec!["platform"]),
            ("shop/web", "a".into(), vec!["rollback"]),
            // Running on edge-01, and edge-02's rollback (a stale host still counts).
            ("shop/web", "b".into(), vec!["running", "rollback"]),
            ("shop/web", "c".into(), vec!["running"]),
        ]
    );
    let b = all.iter().find(|u| u.digest == digest('b')).unwrap();
    assert_eq!(b.used_by, ["edge-01/web", "edge-02/web"]);
    // Not what a behind host has yet to deploy (d), nor its platform manifest (q).
    assert!(
        all.iter()
            .all(|u| u.digest != digest('d') && u.digest != digest('q'))
    );
    let web = in_use(&v, Some("shop/web"));
    assert_eq!(web.len(), 3);
    assert!(in_use(&v, Some("shop/none")).is_empty());
}
