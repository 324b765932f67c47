//! The wave gate over the in-memory runtime: waiting, promotion, bake time, halts, and who
//! bypasses it.

use std::time::Duration;

use super::*;
use crate::deploy::Done;
use crate::event::Digest;
use crate::fakes::{FakeRuntime, FixedAuth, deploy_first, digest, executor};
use crate::fleet::Fleet;
use crate::model::Trigger;
use crate::notify::{Notice, Notifier};
use crate::ports::Deployer;
use crate::store::Outcome;

type Ex = Executor<FakeRuntime, FixedAuth>;

fn in_wave(mut ex: Ex, wave: u32, promote_after: u32, bake_s: u64) -> Ex {
    ex.cfg.fleet = Fleet {
        name: "me".into(),
        wave,
        promote_after,
        bake: Duration::from_secs(bake_s),
    };
    ex
}

fn result(host: &str, wave: u32, d: char, outcome: &str) -> FleetResult {
    FleetResult {
        host: host.into(),
        wave,
        container: "api".into(),
        image: ImageRef::parse_repo_tag("team/api:prod").unwrap(),
        digest: digest(d),
        outcome: outcome.into(),
        error: Some("exited".into()).filter(|_| outcome != "succeeded"),
    }
}

fn running(ex: &Ex) -> Digest {
    ex.runtime().boxes.lock().unwrap()[0].digest.clone()
}

#[tokio::test(start_paused = true)]
async fn wave_two_waits_for_two_hosts_of_wave_one_then_deploys() {
    let (_dir, ex) = executor(FakeRuntime::with(&["web"], &digest('1')), 1);
    let ex = in_wave(ex, 2, 2, 0);
    match deploy_first(&ex, '2', Trigger::Event).await {
        Done::Held(Held::Waiting(why)) => {
            assert_eq!(why, "waiting for wave 1: 0 of 2 hosts succeeded")
        }
        d => panic!("{d:?}"),
    }
    assert!(ex.fleet_result(&result("a", 1, '2', "succeeded")).unwrap());
    assert!(
        !ex.fleet_result(&result("a", 1, '2', "succeeded")).unwrap(),
        "a duplicate is no news"
    );
    match deploy_first(&ex, '2', Trigger::Sweep).await {
        Done::Held(Held::Waiting(why)) => {
            assert!(why.ends_with("1 of 2 hosts succeeded (a)"), "{why}")
        }
        d => panic!("{d:?}"),
    }
    assert_eq!(running(&ex), digest('1'));
    // Our own result routed back does not count.
    assert!(!ex.fleet_result(&result("me", 1, '2', "succeeded")).unwrap());
    ex.fleet_result(&result("b", 1, '2', "succeeded")).unwrap();
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Promotion).await,
        Done::Finished(Outcome::Succeeded)
    );
    assert_eq!(running(&ex), digest('2'));
}

#[tokio::test(start_paused = true)]
async fn a_rollback_in_an_earlier_wave_halts_the_digest_and_tells_once() {
    let (_dir, ex) = executor(FakeRuntime::with(&["web"], &digest('1')), 1);
    let (notifier, mut rx) = Notifier::capture("host-b");
    let ex = in_wave(ex.with_notifier(notifier), 3, 1, 0);
    ex.fleet_result(&result("w2", 2, '2', "succeeded")).unwrap();
    ex.fleet_result(&result("canary", 1, '2', "rolled_back"))
        .unwrap();
    for trigger in [Trigger::Event, Trigger::Sweep, Trigger::Promotion] {
        match deploy_first(&ex, '2', trigger).await {
            Done::Held(Held::Halted(why)) => {
                assert_eq!(why, "rolled back on canary (wave 1): exited")
            }
            d => panic!("{trigger}: {d:?}"),
        }
    }
    assert_eq!(running(&ex), digest('1'));
    let Ok(Notice::Held(n)) = rx.try_recv() else {
        panic!("a notice")
    };
    assert_eq!(n.state, "halted");
    assert!(rx.try_recv().is_err(), "once per digest");
    // A newer digest that the previous wave succeeded with lifts it.
    ex.fleet_result(&result("w2", 2, '3', "succeeded")).unwrap();
    assert_eq!(
        deploy_first(&ex, '3', Trigger::Event).await,
        Done::Finished(Outcome::Succeeded)
    );
    // Status names the promoted digest and the results of the desired one.
    let follows = ImageRef::parse_repo_tag("team/api:prod").unwrap();
    let s = ex
        .wave_status(&follows, Some(digest('2').as_str()))
        .unwrap()
        .unwrap();
    assert_eq!(s.promoted_digest.as_deref(), Some(digest('3').as_str()));
    assert_eq!(s.results.len(), 2);
    assert!(
        s.verdict.starts_with("rolled back on canary"),
        "{}",
        s.verdict
    );
}

#[tokio::test(start_paused = true)]
async fn an_operator_approve_is_not_held_by_the_wave() {
    let (_dir, ex) = executor(FakeRuntime::with(&["web"], &digest('1')), 1);
    let ex = in_wave(ex, 2, 1, 0);
    ex.fleet_result(&result("canary", 1, '2', "rolled_back"))
        .unwrap();
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Approve).await,
        Done::Finished(Outcome::Succeeded)
    );
}

#[tokio::test(start_paused = true)]
async fn a_promoted_digest_bakes_before_it_is_deployed() {
    let (_dir, ex) = executor(FakeRuntime::with(&["web"], &digest('1')), 1);
    let ex = in_wave(ex, 2, 1, 3_600);
    ex.fleet_result(&result("a", 1, '2', "succeeded")).unwrap();
    match deploy_first(&ex, '2', Trigger::Promotion).await {
        Done::Held(Held::Waiting(why)) => {
            assert!(why.starts_with("promoted, baking for 3"), "{why}")
        }
        d => panic!("{d:?}"),
    }
    let now = now_ms();
    let (due, next) = ex.promotions_due(now - 1_000, now).unwrap();
    assert!(due.is_empty());
    let at = next.expect("the end of the bake ahead");
    assert!((at - now - 3_600_000).abs() < 2_000, "{at} {now}");
    let (due, _) = ex.promotions_due(now, at).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].0.to_string(), "team/api:prod");
    let follows = ImageRef::parse_repo_tag("team/api:prod").unwrap();
    let s = ex
        .wave_status(&follows, Some(digest('2').as_str()))
        .unwrap()
        .unwrap();
    assert!(s.bake_left_seconds.unwrap() > 3_500);
}

#[tokio::test(start_paused = true)]
async fn wave_one_is_never_held_and_ignores_results() {
    let (_dir, ex) = executor(FakeRuntime::with(&["web"], &digest('1')), 1);
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Event).await,
        Done::Finished(Outcome::Succeeded)
    );
    let follows = ImageRef::parse_repo_tag("team/api:prod").unwrap();
    assert_eq!(ex.wave_status(&follows, None).unwrap(), None);
}
