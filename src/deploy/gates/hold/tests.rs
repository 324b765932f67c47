//! The gate over the in-memory runtime: each policy, pauses, and who bypasses them.

use std::collections::BTreeMap;

use super::*;
use crate::control::policy::{Policies, Window};
use crate::deploy::Done;
use crate::event::Digest;
use crate::fakes::{FakeRuntime, FixedAuth, deploy_first, digest, executor};
use crate::model::Trigger;
use crate::notify::Notifier;
use crate::store::Outcome;

type Ex = Executor<FakeRuntime, FixedAuth>;

fn with_windows(ex: Ex, windows: &[(&str, &str)]) -> Ex {
    let mut ex = ex;
    ex.cfg.policies = Policies {
        windows: windows
            .iter()
            .map(|(n, s)| (n.to_string(), Window::new(s, 1).unwrap()))
            .collect::<BTreeMap<_, _>>(),
        ..Policies::default()
    };
    ex
}

fn running(ex: &Ex) -> Digest {
    ex.runtime().boxes.lock().unwrap()[0].digest.clone()
}

#[tokio::test(start_paused = true)]
async fn monitor_never_deploys_and_tells_once_per_digest() {
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    rt.label_policy("web", "monitor", None);
    let (_dir, ex) = executor(rt, 1);
    let (notifier, mut rx) = Notifier::capture("host-a");
    let ex = ex.with_notifier(notifier);
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Event).await,
        Done::Held(Held::Monitor)
    );
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Sweep).await,
        Done::Held(Held::Monitor)
    );
    assert_eq!(running(&ex), digest('1'));
    let Ok(Notice::Held(n)) = rx.try_recv() else {
        panic!("one notice")
    };
    assert_eq!(
        (n.state, n.desired_digest.as_str()),
        ("monitor", digest('2').as_str())
    );
    assert!(rx.try_recv().is_err(), "the same digest again is no news");
    deploy_first(&ex, '3', Trigger::Event).await;
    assert!(
        matches!(rx.try_recv(), Ok(Notice::Held(n)) if n.desired_digest == digest('3').as_str())
    );
    assert!(
        ex.store().history(None, 10).unwrap().is_empty(),
        "no deployment row"
    );
}

#[tokio::test(start_paused = true)]
async fn manual_waits_for_an_operator_command_which_is_not_held() {
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    rt.label_policy("web", "manual", None);
    let (_dir, ex) = executor(rt, 1);
    match deploy_first(&ex, '2', Trigger::Sweep).await {
        Done::Held(Held::Pending(why)) => assert!(why.contains("approve"), "{why}"),
        d => panic!("{d:?}"),
    }
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Approve).await,
        Done::Finished(Outcome::Succeeded)
    );
    assert_eq!(running(&ex), digest('2'));
}

#[tokio::test(start_paused = true)]
async fn a_pause_holds_events_sweeps_and_windows_until_resumed() {
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    let (_dir, ex) = executor(rt, 1);
    ex.store().pause("web", "db migration").unwrap();
    for trigger in Trigger::ALL.into_iter().filter(|t| t.automatic()) {
        assert_eq!(
            deploy_first(&ex, '2', trigger).await,
            Done::Held(Held::Paused("db migration".into())),
            "{trigger}"
        );
    }
    ex.store().resume("web").unwrap();
    ex.store().pause(ALL, "").unwrap();
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Event).await,
        Done::Held(Held::Paused("pause --all".into()))
    );
    ex.store().resume_all().unwrap();
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Event).await,
        Done::Finished(Outcome::Succeeded)
    );
}

#[tokio::test(start_paused = true)]
async fn a_window_container_deploys_inside_its_window_and_waits_outside_it() {
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    rt.label_policy("web", "window", Some("never-now"));
    let (_dir, ex) = executor(rt, 1);
    // Open on 30 February only: closed now, and it says so.
    let ex = with_windows(ex, &[("never-now", "0 0 30 2 *"), ("always", "* * * * *")]);
    match deploy_first(&ex, '2', Trigger::Event).await {
        Done::Held(Held::Pending(why)) => assert_eq!(why, "window never-now never opens"),
        d => panic!("{d:?}"),
    }
    ex.runtime().label_policy("web", "window", Some("always"));
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Window).await,
        Done::Finished(Outcome::Succeeded)
    );
}

#[tokio::test(start_paused = true)]
async fn a_label_naming_no_policy_or_window_refuses_the_deploy_with_the_reason() {
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    rt.label_policy("web", "window", Some("weekly"));
    let (_dir, ex) = executor(rt, 1);
    match deploy_first(&ex, '2', Trigger::Event).await {
        Done::Refused(why) => assert!(why.contains("\"weekly\" is not configured"), "{why}"),
        d => panic!("{d:?}"),
    }
    ex.runtime().label_policy("web", "often", None);
    match deploy_first(&ex, '2', Trigger::Sweep).await {
        Done::Refused(why) => assert!(why.contains("ecr-deployd.policy"), "{why}"),
        d => panic!("{d:?}"),
    }
    assert_eq!(running(&ex), digest('1'));
}

#[tokio::test(start_paused = true)]
async fn a_paused_container_is_shown_paused_even_when_nothing_waits() {
    use crate::model::sweep::Action;
    use crate::reconcile::sweep::sweep_once;
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    let (_dir, ex) = executor(rt, 1);
    ex.store().pause("web", "").unwrap();
    let rows = sweep_once(&crate::fakes::OneTag::new(digest('1')), &ex, true)
        .await
        .unwrap();
    assert_eq!(rows[0].action, Action::Paused, "{rows:?}");
    assert_eq!(rows[0].detail.as_deref(), Some("up to date"));
}
