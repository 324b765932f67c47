//! The whole pipeline over in-memory fakes, in virtual time.

use std::sync::atomic::Ordering;

use super::*;
use crate::fakes::{FakeDeployer, FakeQueue, FakeRegistry, digest};
use crate::image::Desired;
use crate::ports::{Message, Receipt};

fn push(repo: &str, tag: &str, hint: char) -> String {
    format!(
        r#"{{"source":"aws.ecr","detail-type":"ECR Image Action","time":"2026-01-01T00:00:00Z","detail":{{"action-type":"PUSH","result":"SUCCESS","repository-name":"{repo}","image-tag":"{tag}","image-digest":"sha256:{}"}}}}"#,
        hint.to_string().repeat(64)
    )
}

fn agent(queue: FakeQueue, deployer: FakeDeployer) -> Agent<FakeQueue, FakeRegistry, FakeDeployer> {
    let registry = FakeRegistry::default();
    registry
        .tags
        .lock()
        .unwrap()
        .insert("team/api:prod".into(), digest('b'));
    Agent {
        queue: Arc::new(queue),
        registry: Arc::new(registry),
        deployer: Arc::new(deployer),
        stats: Arc::default(),
        notifier: crate::notify::Notifier::disabled(),
    }
}

/// Runs the agent for `for_how_long` of virtual time, then shuts it down.
async fn run_for(
    a: &Agent<FakeQueue, FakeRegistry, FakeDeployer>,
    settings: &Settings,
    for_how_long: Duration,
    grace: Duration,
) {
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(for_how_long).await;
        stop.cancel();
    });
    a.run(settings, token, grace).await;
}

#[tokio::test(start_paused = true)]
async fn fifty_duplicates_and_an_older_event_resolve_once_and_hand_off_once() {
    let mut bodies: Vec<String> = (0..50).map(|_| push("team/api", "prod", 'b')).collect();
    // An older event (its hint is the previous digest) arriving last changes nothing: ECR decides.
    bodies.push(push("team/api", "prod", 'a'));
    let a = agent(FakeQueue::with(&bodies), FakeDeployer::default());
    run_for(
        &a,
        &Settings::default(),
        Duration::from_secs(30),
        SHUTDOWN_GRACE,
    )
    .await;
    assert_eq!(a.registry.calls.load(Ordering::Relaxed), 1);
    let seen = a.deployer.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].desired, Desired::single(digest('b')));
    assert_eq!(seen[0].trigger, crate::ports::Trigger::Event);
    assert!(seen[0].event_time.is_some());
    assert_eq!(a.queue.deleted(), 51);
}

/// The agent's run over `first`, then `second` arriving 1 s later while the first is still
/// being deployed (3 s); ECR's tag names `b` throughout: (ECR calls, hand-offs, deleted).
async fn drain(first: &[String], second: &[String]) -> (u64, usize, usize) {
    let deployer = FakeDeployer {
        takes: Duration::from_secs(3),
        ..Default::default()
    };
    let a = agent(FakeQueue::with(first), deployer);
    let (queue, second) = (a.queue.clone(), second.to_vec());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let later = FakeQueue::with(&second).ready.lock().unwrap().clone();
        queue
            .ready
            .lock()
            .unwrap()
            .extend(later.into_iter().map(|mut m| {
                m.receipt = Receipt(format!("later-{}", m.receipt.0));
                m
            }));
    });
    run_for(
        &a,
        &Settings::default(),
        Duration::from_secs(30),
        SHUTDOWN_GRACE,
    )
    .await;
    let handoffs = a.deployer.seen.lock().unwrap().len();
    (
        a.registry.calls.load(Ordering::Relaxed),
        handoffs,
        a.queue.deleted(),
    )
}

#[tokio::test(start_paused = true)]
async fn a_follow_up_of_events_naming_the_digest_just_applied_does_not_ask_ecr_again() {
    let b = || push("team/api", "prod", 'b');
    // The follow-up's events all name the digest just resolved and handed off: settled
    // without ECR.
    assert_eq!(drain(&[b()], &[b(), b(), b()]).await, (1, 1, 4));
    // One of them names another digest: ECR is asked again (and decides: still b, so
    // nothing new is handed off).
    let other = [b(), push("team/api", "prod", 'c')];
    assert_eq!(drain(&[b()], &other).await, (2, 1, 3));
}

#[tokio::test(start_paused = true)]
async fn malformed_stays_foreign_and_untagged_are_deleted_and_the_loop_goes_on() {
    let bodies = vec![
        "not json".to_owned(),
        r#"{"hello":"world"}"#.to_owned(),
        push("team/api", "", 'b'),
        push("team/api", "prod", 'b'),
    ];
    let a = agent(FakeQueue::with(&bodies), FakeDeployer::default());
    run_for(
        &a,
        &Settings::default(),
        Duration::from_secs(30),
        SHUTDOWN_GRACE,
    )
    .await;
    let deleted = a.queue.deleted.lock().unwrap().clone();
    assert!(
        !deleted.contains(&Receipt("r0".into())),
        "malformed must stay for the DLQ"
    );
    for r in ["r1", "r2", "r3"] {
        assert!(
            deleted.contains(&Receipt(r.into())),
            "{r} should be deleted"
        );
    }
    assert_eq!(a.deployer.seen.lock().unwrap().len(), 1);
    assert!(
        a.queue.visibility_of("r0").is_empty(),
        "malformed keeps its normal visibility"
    );
}

#[tokio::test(start_paused = true)]
async fn a_tag_missing_in_ecr_is_finished_without_a_deploy() {
    let a = agent(
        FakeQueue::with(&[push("team/api", "gone", 'b')]),
        FakeDeployer::default(),
    );
    run_for(
        &a,
        &Settings::default(),
        Duration::from_secs(30),
        SHUTDOWN_GRACE,
    )
    .await;
    assert!(a.deployer.seen.lock().unwrap().is_empty());
    assert_eq!(a.queue.deleted(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_deploy_keeps_its_messages_and_brings_them_back_sooner() {
    let deployer = FakeDeployer {
        fail: true,
        ..Default::default()
    };
    let a = agent(FakeQueue::with(&[push("team/api", "prod", 'b')]), deployer);
    run_for(
        &a,
        &Settings::default(),
        Duration::from_secs(30),
        SHUTDOWN_GRACE,
    )
    .await;
    assert_eq!(a.queue.deleted(), 0);
    assert_eq!(a.queue.visibility_of("r0"), vec![Duration::from_secs(30)]);
}

#[tokio::test(start_paused = true)]
async fn work_that_keeps_failing_and_malformed_messages_are_reported_as_trouble() {
    use crate::notify::{Notice, Notifier};
    let run = |receive_count: u32| async move {
        let deployer = FakeDeployer {
            fail: true,
            ..Default::default()
        };
        let queue = FakeQueue::delivered(
            &[push("team/api", "prod", 'b'), "{not json".to_owned()],
            receive_count,
        );
        let mut a = agent(queue, deployer);
        let (notifier, mut rx) = Notifier::capture("edge-01");
        a.notifier = notifier;
        run_for(
            &a,
            &Settings::default(),
            Duration::from_secs(30),
            SHUTDOWN_GRACE,
        )
        .await;
        let mut kinds = Vec::new();
        while let Ok(Notice::Trouble(t)) = rx.try_recv() {
            assert_eq!(t.host, "edge-01");
            assert_eq!(t.receive_count, receive_count);
            kinds.push((t.kind, t.message_id, t.image, t.reason));
        }
        kinds.sort();
        kinds
    };
    // Delivered for the first time: only the malformed one is worth a notice.
    let first = run(1).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].0, "malformed");
    // The third delivery of a message whose deploy fails again: heading for the DLQ.
    let third = run(crate::reconcile::TROUBLE_RECEIVES).await;
    assert_eq!(third.len(), 2, "{third:?}");
    assert_eq!(third[0].0, "malformed");
    let (kind, id, image, reason) = &third[1];
    assert_eq!((*kind, id.as_str()), ("repeated_failures", "m0"));
    assert_eq!(image.as_deref(), Some("team/api:prod"));
    assert!(reason.contains("docker unreachable"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn long_work_gets_its_visibility_extended_by_the_heartbeat() {
    let deployer = FakeDeployer {
        takes: Duration::from_secs(100),
        ..Default::default()
    };
    let a = agent(FakeQueue::with(&[push("team/api", "prod", 'b')]), deployer);
    let mut settings = Settings::default();
    settings.queue.visibility_timeout_seconds = 40;
    run_for(&a, &settings, Duration::from_secs(200), SHUTDOWN_GRACE).await;
    let extensions = a.queue.visibility_of("r0");
    assert!(extensions.len() >= 4, "{extensions:?}");
    assert!(extensions.iter().all(|d| *d == Duration::from_secs(40)));
    assert_eq!(a.queue.deleted(), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_hands_back_waiting_and_unfinished_messages() {
    // One message is in a deploy longer than the grace, one waits for that deploy to end
    // (same tag: it folds into the follow-up).
    let deployer = FakeDeployer {
        takes: Duration::from_secs(3600),
        ..Default::default()
    };
    let a = agent(FakeQueue::with(&[push("team/api", "prod", 'b')]), deployer);
    let token = CancellationToken::new();
    let stop = token.clone();
    let queue = a.queue.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        queue.ready.lock().unwrap().push_back(Message {
            id: "late".into(),
            receipt: Receipt("late".into()),
            body: push("team/api", "prod", 'c'),
            receive_count: 1,
        });
        tokio::time::sleep(Duration::from_millis(1200)).await;
        stop.cancel();
    });
    a.run(&Settings::default(), token, Duration::from_secs(10))
        .await;
    assert_eq!(a.queue.deleted(), 0);
    assert_eq!(a.queue.visibility_of("r0"), vec![Duration::ZERO]);
    assert_eq!(a.queue.visibility_of("late"), vec![Duration::ZERO]);
}

#[tokio::test(start_paused = true)]
async fn the_queue_answering_again_after_an_outage_wakes_the_sweep() {
    let a = agent(FakeQueue::default(), FakeDeployer::default());
    a.queue.receives_fail.store(3, Ordering::SeqCst);
    let wake = Arc::new(tokio::sync::Notify::new());
    let token = CancellationToken::new();
    let (stop, woken) = (token.clone(), wake.clone());
    let waiter = tokio::spawn(async move {
        woken.notified().await;
        tokio::time::Instant::now()
    });
    let started = tokio::time::Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(120)).await;
        stop.cancel();
    });
    a.run_waking(
        &Settings::default(),
        token,
        Duration::from_secs(1),
        Some(wake),
    )
    .await;
    let at = tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .expect("the sweep was never woken")
        .unwrap();
    assert!(
        at - started < Duration::from_secs(60),
        "woken after {:?}",
        at - started
    );
}

fn result(repo: &str, tag: &str, d: char) -> String {
    serde_json::json!({
        "source": "ecr-deployd", "detail-type": "ECR Deployment Result",
        "detail": {"name": "canary", "wave": 1, "container": "web", "repository": repo,
            "tag": tag, "to_digest": digest(d).to_string(), "outcome": "succeeded"},
    })
    .to_string()
}

#[tokio::test(start_paused = true)]
async fn on_a_later_wave_a_result_is_recorded_and_its_promotion_handed_off_even_right_after_the_push()
 {
    // The push is handed off (and held by the wave gate); the earlier wave's result arrives
    // 2 s later and promotes the same digest: the promotion is handed off too, not settled
    // as "just applied".
    let a = agent(
        FakeQueue::with(&[push("team/api", "prod", 'b')]),
        FakeDeployer::default(),
    );
    let queue = a.queue.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let later = FakeQueue::with(&[result("team/api", "prod", 'b')]);
        let mut m = later.ready.lock().unwrap().pop_front().unwrap();
        m.receipt = Receipt("result".into());
        queue.ready.lock().unwrap().push_back(m);
    });
    let mut settings = Settings::default();
    settings.fleet.wave = 2;
    run_for(&a, &settings, Duration::from_secs(30), SHUTDOWN_GRACE).await;
    let seen = a.deployer.seen.lock().unwrap().clone();
    let triggers: Vec<_> = seen.iter().map(|r| r.trigger).collect();
    assert_eq!(
        triggers,
        [
            crate::ports::Trigger::Event,
            crate::ports::Trigger::Promotion
        ]
    );
    assert_eq!(seen[1].desired, Desired::single(digest('b')));
    assert!(
        a.queue
            .deleted
            .lock()
            .unwrap()
            .contains(&Receipt("result".into())),
        "the result's message is deleted once recorded"
    );
}

#[tokio::test(start_paused = true)]
async fn on_wave_one_a_result_is_deleted_and_promotes_nothing() {
    let a = agent(
        FakeQueue::with(&[result("team/api", "prod", 'b')]),
        FakeDeployer::default(),
    );
    run_for(
        &a,
        &Settings::default(),
        Duration::from_secs(10),
        SHUTDOWN_GRACE,
    )
    .await;
    assert!(a.deployer.seen.lock().unwrap().is_empty());
    assert!(a.deployer.results.lock().unwrap().is_empty());
    assert_eq!(a.queue.deleted(), 1);
}
