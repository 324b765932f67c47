//! Fleet waves (SPEC §14) on the real stack: the fleet of tests/common/fleet.rs (one emulator
//! with one results bus, the host stacks of infra/cloudformation, one agent process and one
//! container per host).

mod common;

use std::time::{Duration, Instant};

use common::docker::*;
use common::fleet::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_go_through_the_waves_and_a_rollback_at_the_canaries_halts_the_rest() {
    let mut fleet = Fleet::new("fleet").await;
    let v1 = fleet.v1.clone();
    let mut ca = fleet.host("canary-a", 1, |_| ());
    let mut cb = fleet.host("canary-b", 1, |_| ());
    let mut w2 = fleet.host("wave2-a", 2, |f| f.promote_after = 2);
    let mut w3 = fleet.host("wave3-a", 3, |_| ());

    // doctor on a wave 2 host finds the rule that feeds it from the results bus.
    let (code, out, err) = run_cli(&w2.config, &["doctor"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines().any(|l| l.starts_with("ok")
            && l.contains("results bus rule targets the queue")
            && l.contains("ecr-deployd-wave2-a-wave")),
        "{out}"
    );

    // Good push with one of the two canaries' agents down: wave 2 waits for both.
    ca.start();
    w2.start();
    w3.start();
    let v2 = fleet.push("v2", Kind::Serve).await;
    until_runs(&ca, &v2, Duration::from_secs(60)).await;
    let s = until_state(&w2, "waiting", "1 of 2 hosts succeeded (canary-a)").await;
    assert_eq!(s["fleet"]["wave"], 2);
    assert_eq!(s["fleet"]["results"][0]["host"], "canary-a", "{s:#}");
    assert!(w2.runs(&v1) && w3.runs(&v1), "later waves keep v1");

    // A restart of the wave 2 agent keeps what it has seen.
    w2.stop();
    w2.start();
    until_state(&w2, "waiting", "1 of 2 hosts succeeded").await;

    // The second canary comes up, deploys at its start-up sweep, and the waves follow.
    cb.start();
    until_runs(&cb, &v2, Duration::from_secs(60)).await;
    until_runs(&w2, &v2, Duration::from_secs(60)).await;
    until_runs(&w3, &v2, Duration::from_secs(60)).await;
    let w2_v2 = w2.deployments_to(&v2);
    assert_eq!(w2_v2.len(), 1, "{w2_v2:#?}");
    assert_eq!(w2_v2[0]["trigger"], "promotion");
    assert_eq!(w2_v2[0]["outcome"], "succeeded");

    // A duplicate of a canary's result and a stale result (for v1): nothing more happens.
    fleet.put_result("canary-b", 1, &v2, "succeeded").await;
    fleet.put_result("canary-z", 1, &v1, "succeeded").await;
    eventually(
        Duration::from_secs(30),
        "wave 2's queue is drained",
        || async { queue_counts(&fleet.site.sqs, &w2.queue_url).await == (0, 0) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w2.deployments_to(&v2).len(), 1, "one deploy of v2");
    assert!(
        w2.deployments_to(&v1).is_empty(),
        "the stale v1 is not deployed"
    );
    assert!(w2.runs(&v2));

    // Bad push: the canaries roll back; wave 2 never pulls it and says halted.
    let v3 = fleet.push("v3", Kind::ExitAtOnce).await;
    for c in [&ca, &cb] {
        eventually(
            Duration::from_secs(90),
            "the canary rolled v3 back",
            || async {
                c.deployments_to(&v3)
                    .iter()
                    .any(|d| d["outcome"] == "rolled_back")
            },
        )
        .await;
    }
    let s = until_state(&w2, "halted", "rolled back on canary-").await;
    assert_eq!(s["desired_digest"], v3.as_str());
    assert!(w2.deployments_to(&v3).is_empty(), "wave 2 never tried v3");
    assert!(w3.deployments_to(&v3).is_empty(), "wave 3 never tried v3");
    assert!(w2.runs(&v2) && w3.runs(&v2));

    // The next good push goes through every wave (benches/fleet_waves.rs times it).
    let v4 = fleet.push("v4", Kind::Serve).await;
    until_runs(&w3, &v4, Duration::from_secs(90)).await;
    for h in [&ca, &cb, &w2] {
        assert!(h.runs(&v4), "{} runs v4", h.name);
    }
    let s = w3.status();
    assert_eq!(s["fleet"]["promoted_digest"], v4.as_str(), "{s:#}");
    for h in [&mut ca, &mut cb, &mut w2, &mut w3] {
        h.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_digest_bakes_before_the_next_wave_deploys_it() {
    let mut fleet = Fleet::new("bake").await;
    let v1 = fleet.v1.clone();
    let mut canary = fleet.host("canary", 1, |_| ());
    let mut w2 = fleet.host("wave2", 2, |f| f.bake_minutes = 1);
    canary.start();
    w2.start();
    let v2 = fleet.push("v2", Kind::Serve).await;
    until_runs(&canary, &v2, Duration::from_secs(60)).await;
    let promoted = Instant::now();
    let s = until_state(&w2, "waiting", "promoted, baking for").await;
    let left = s["fleet"]["bake_left_seconds"].as_u64().unwrap();
    assert!((30..=60).contains(&left), "{s:#}");
    assert!(w2.runs(&v1));
    until_runs(&w2, &v2, Duration::from_secs(120)).await;
    // The bake runs from when wave 2 saw the result, a moment after the canary ran v2.
    assert!(
        promoted.elapsed() >= Duration::from_secs(50),
        "deployed after {:?}",
        promoted.elapsed()
    );
    assert_eq!(w2.deployments_to(&v2)[0]["trigger"], "promotion");
    canary.stop();
    w2.stop();
}
