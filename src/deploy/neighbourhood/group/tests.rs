//! Group swaps, hooks and start order over the in-memory runtime, in virtual time — and a
//! kill at every single Engine call of a group swap, recovered.

use std::sync::Arc;
use std::time::Duration;

use crate::deploy::Done;
use crate::deploy::Executor;
use crate::event::Digest;
use crate::fakes::{FakeRuntime, FixedAuth, deploy_first, digest, executor, executor_on};
use crate::model::Trigger;
use crate::model::labels::HookLabels;
use crate::ports::{ExecRun, Ordered};
use crate::store::Outcome;

type Ex = Executor<FakeRuntime, FixedAuth>;

/// "app" on digest 1 with "vpn" in its network namespace, opted in.
fn app_with_vpn() -> FakeRuntime {
    let rt = FakeRuntime::with(&["app"], &digest('1'));
    rt.add_dependent("vpn", "app", true);
    rt
}

fn id_of(ex: &Ex, name: &str) -> String {
    let boxes = ex.runtime().boxes.lock().unwrap();
    boxes.iter().find(|b| b.name == name).unwrap().id.clone()
}

/// Exactly "app" and "vpn", both running, "vpn" in the namespace of the "app" that runs;
/// returns the digest "app" runs.
fn one_group_running(ex: &Ex) -> Digest {
    let state = ex.runtime().state();
    let names: Vec<&str> = state.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, vec!["app", "vpn"], "exactly one container per name");
    assert!(state.iter().all(|s| s.1), "both running: {state:?}");
    let app = id_of(ex, "app");
    let boxes = ex.runtime().boxes.lock().unwrap();
    let vpn = boxes.iter().find(|b| b.name == "vpn").unwrap();
    assert_eq!(
        vpn.shares_with.as_ref().map(|s| s.0.as_str()),
        Some(app.as_str())
    );
    state[0].2.clone()
}

fn calls(ex: &Ex) -> Vec<String> {
    ex.runtime().calls.lock().unwrap().clone()
}

fn at(calls: &[String], prefix: &str) -> usize {
    calls
        .iter()
        .position(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no call {prefix} in {calls:?}"))
}

#[tokio::test(start_paused = true)]
async fn an_opted_in_dependent_is_swapped_with_its_parent_in_order() {
    let (_dir, ex) = executor(app_with_vpn(), 1);
    let (app, vpn) = (id_of(&ex, "app"), id_of(&ex, "vpn"));
    let done = deploy_first(&ex, '2', Trigger::Event).await;
    assert_eq!(done, Done::Finished(Outcome::Succeeded));
    assert_eq!(one_group_running(&ex), digest('2'));
    let c = calls(&ex);
    // The successors are made while both still run; the dependent stops first and starts
    // after the new parent.
    assert!(at(&c, "create vpn.ecr-deployd-new") < at(&c, &format!("stop {vpn}")));
    assert!(at(&c, &format!("stop {vpn}")) < at(&c, &format!("stop {app}")));
    let new_app = id_of(&ex, "app");
    let new_vpn = id_of(&ex, "vpn");
    assert!(at(&c, &format!("start {new_app}")) < at(&c, &format!("start {new_vpn}")));
    assert!(c.contains(&format!("remove {vpn}")) && c.contains(&format!("remove {app}")));
}

#[tokio::test(start_paused = true)]
async fn a_dependent_that_fails_its_gate_rolls_the_whole_group_back() {
    let rt = app_with_vpn();
    rt.dying_dependents.lock().unwrap().push("vpn".into());
    let (_dir, ex) = executor(rt, 1);
    let (app, vpn) = (id_of(&ex, "app"), id_of(&ex, "vpn"));
    let done = deploy_first(&ex, '2', Trigger::Event).await;
    assert_eq!(done, Done::Finished(Outcome::RolledBack));
    assert_eq!(one_group_running(&ex), digest('1'));
    assert_eq!((id_of(&ex, "app"), id_of(&ex, "vpn")), (app, vpn));
    let row = &ex.store().history(Some("app"), 1).unwrap()[0];
    assert!(
        row.error.as_deref().unwrap().contains("dependent vpn"),
        "{row:?}"
    );
    assert!(ex.is_blocked("app", &digest('2')));
}

#[tokio::test(start_paused = true)]
async fn a_parent_that_fails_its_gate_puts_the_old_dependent_back_too() {
    let rt = app_with_vpn();
    rt.dying_digests.lock().unwrap().push(digest('2'));
    let (_dir, ex) = executor(rt, 1);
    let vpn = id_of(&ex, "vpn");
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Event).await,
        Done::Finished(Outcome::RolledBack)
    );
    assert_eq!(one_group_running(&ex), digest('1'));
    assert_eq!(id_of(&ex, "vpn"), vpn);
    assert!(
        !calls(&ex)
            .iter()
            .any(|c| c.starts_with("rename") && c.ends_with(" vpn.ecr-deployd-old"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_kill_at_any_engine_call_of_a_group_swap_is_recovered_to_one_running_group() {
    // How many Engine calls a whole group swap makes.
    let (_dir, ex) = executor(app_with_vpn(), 1);
    deploy_first(&ex, '2', Trigger::Event).await;
    let total = calls(&ex).len();
    assert!(total > 10, "{:?}", calls(&ex));
    for k in 0..total {
        let rt = Arc::new(app_with_vpn());
        *rt.hang_at.lock().unwrap() = Some(k);
        let dir = tempfile::tempdir().unwrap();
        let ex = executor_on(rt.clone(), &dir, 1);
        let killed = tokio::time::timeout(
            Duration::from_secs(3600),
            deploy_first(&ex, '2', Trigger::Event),
        )
        .await;
        assert!(killed.is_err(), "call {k} hangs: the deploy is cut there");
        drop(ex);
        *rt.hang_at.lock().unwrap() = None;
        // A new agent on the same Engine and state store.
        let again = executor_on(rt.clone(), &dir, 1);
        assert_eq!(
            again.recover().await.unwrap(),
            1,
            "kill at call {k}: {:?}",
            calls(&again)
        );
        let runs = one_group_running(&again);
        assert!(runs == digest('1') || runs == digest('2'), "call {k}");
        assert!(again.store().unfinished().unwrap().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn a_dependent_that_did_not_opt_in_refuses_the_deploy_and_is_never_touched() {
    let rt = FakeRuntime::with(&["app"], &digest('1'));
    rt.add_dependent("sidecar", "app", false);
    let (_dir, ex) = executor(rt, 1);
    let done = deploy_first(&ex, '2', Trigger::Event).await;
    assert!(
        matches!(&done, Done::Refused(why) if why.contains("sidecar (its network namespace)") && why.contains("ecr-deployd.enable=true")),
        "{done:?}"
    );
    assert!(calls(&ex).is_empty(), "{:?}", calls(&ex));
}

#[tokio::test(start_paused = true)]
async fn a_group_swap_waits_for_a_members_own_deploy_to_end() {
    let (rt, dir) = (Arc::new(app_with_vpn()), tempfile::tempdir().unwrap());
    let ex = executor_on(rt.clone(), &dir, 2);
    // The sidecar's own deploy (it may follow a tag of its own) holds its lock.
    let own = ex.lock_for("container:vpn".into()).lock_owned().await;
    let waited = tokio::time::timeout(
        Duration::from_secs(600),
        deploy_first(&ex, '2', Trigger::Event),
    )
    .await;
    assert!(waited.is_err(), "the group swap waits for the member");
    assert!(
        !calls(&ex)
            .iter()
            .any(|c| c.starts_with("stop") || c.starts_with("create vpn")),
        "nothing of the group touched while it waited: {:?}",
        calls(&ex)
    );
    drop(own);
    drop(ex);
    let again = executor_on(rt, &dir, 2);
    assert_eq!(
        again.recover().await.unwrap(),
        1,
        "the cut-off attempt is cleaned up"
    );
    assert_eq!(
        deploy_first(&again, '2', Trigger::Event).await,
        Done::Finished(Outcome::Succeeded)
    );
    assert_eq!(one_group_running(&again), digest('2'));
}

#[tokio::test(start_paused = true)]
async fn a_dependent_of_a_dependent_refuses_the_deploy_naming_both() {
    let rt = app_with_vpn();
    rt.add_dependent("debug", "vpn", true);
    let (_dir, ex) = executor(rt, 1);
    let done = deploy_first(&ex, '2', Trigger::Event).await;
    assert!(
        matches!(&done, Done::Refused(why) if why.contains("debug shares the network namespace of vpn")),
        "{done:?}"
    );
    assert!(calls(&ex).is_empty(), "{:?}", calls(&ex));
}

#[tokio::test(start_paused = true)]
async fn a_refused_deploy_is_notified_once_per_digest() {
    let rt = FakeRuntime::with(&["app"], &digest('1'));
    rt.add_dependent("sidecar", "app", false);
    let (_dir, ex) = executor(rt, 1);
    let (notifier, mut rx) = crate::notify::Notifier::capture("host-a");
    let ex = ex.with_notifier(notifier);
    for _ in 0..2 {
        assert!(matches!(
            deploy_first(&ex, '2', Trigger::Sweep).await,
            Done::Refused(_)
        ));
    }
    let Ok(crate::notify::Notice::Held(n)) = rx.try_recv() else {
        panic!("one notice")
    };
    assert_eq!((n.state, n.container.as_str()), ("refused", "app"));
    assert!(n.detail.contains("sidecar"), "{}", n.detail);
    assert!(rx.try_recv().is_err(), "not twice for one digest");
    deploy_first(&ex, '3', Trigger::Sweep).await;
    assert!(rx.try_recv().is_ok(), "a new digest is news again");
}

fn hooks(pre: Option<&str>, post: Option<&str>) -> HookLabels {
    HookLabels {
        pre_update: pre.map(str::to_owned),
        post_update: post.map(str::to_owned),
        timeout: None,
    }
}

fn exits(code: i64, output: &str) -> ExecRun {
    ExecRun {
        exit_code: Some(code),
        output: output.into(),
        timed_out: false,
        still_running: false,
    }
}

#[tokio::test(start_paused = true)]
async fn pre_update_runs_in_the_old_container_before_it_stops_and_post_update_in_the_new() {
    let rt = FakeRuntime::with(&["db"], &digest('1'));
    rt.label_hooks("db", hooks(Some("dump"), Some("migrate")));
    let (_dir, ex) = executor(rt, 1);
    let old = id_of(&ex, "db");
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Event).await,
        Done::Finished(Outcome::Succeeded)
    );
    let new = id_of(&ex, "db");
    let c = calls(&ex);
    assert!(at(&c, &format!("exec {old} dump")) < at(&c, &format!("stop {old}")));
    assert!(at(&c, &format!("start {new}")) < at(&c, &format!("exec {new} migrate")));
}

#[tokio::test(start_paused = true)]
async fn a_failing_pre_update_stops_nothing_and_records_a_failure_with_its_output() {
    let rt = FakeRuntime::with(&["db"], &digest('1'));
    rt.label_hooks("db", hooks(Some("dump"), None));
    rt.hook_results
        .lock()
        .unwrap()
        .insert("dump".into(), exits(1, "pg_dump: connection refused\n"));
    let (_dir, ex) = executor(rt, 1);
    let old = id_of(&ex, "db");
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Event).await,
        Done::Finished(Outcome::Failed)
    );
    assert_eq!(ex.runtime().state(), vec![("db".into(), true, digest('1'))]);
    assert_eq!(id_of(&ex, "db"), old);
    assert!(!calls(&ex).iter().any(|c| c.starts_with("stop")));
    let row = &ex.store().history(Some("db"), 1).unwrap()[0];
    let error = row.error.as_deref().unwrap();
    assert!(
        error.contains("pre-update hook exited 1") && error.contains("connection refused"),
        "{error}"
    );
    assert!(!ex.is_blocked("db", &digest('2')), "a failure, not a block");
}

#[tokio::test(start_paused = true)]
async fn pre_update_exit_75_defers_without_a_failure_and_a_later_look_deploys() {
    let rt = FakeRuntime::with(&["db"], &digest('1'));
    rt.label_hooks("db", hooks(Some("busy?"), None));
    rt.hook_results
        .lock()
        .unwrap()
        .insert("busy?".into(), exits(75, "a backup is running\n"));
    let (_dir, ex) = executor(rt, 1);
    let done = deploy_first(&ex, '2', Trigger::Sweep).await;
    assert!(
        matches!(&done, Done::Deferred(why) if why.contains("backup is running")),
        "{done:?}"
    );
    assert_eq!(ex.runtime().state(), vec![("db".into(), true, digest('1'))]);
    assert!(
        ex.store().history(None, 10).unwrap().is_empty(),
        "no failure recorded"
    );
    assert!(ex.store().unfinished().unwrap().is_empty());
    ex.runtime().hook_results.lock().unwrap().clear();
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Sweep).await,
        Done::Finished(Outcome::Succeeded)
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_post_update_rolls_back_and_blocks_the_digest() {
    let rt = FakeRuntime::with(&["db"], &digest('1'));
    rt.label_hooks("db", hooks(None, Some("migrate")));
    rt.hook_results
        .lock()
        .unwrap()
        .insert("migrate".into(), exits(2, "migration 42 failed\n"));
    let (_dir, ex) = executor(rt, 1);
    let old = id_of(&ex, "db");
    assert_eq!(
        deploy_first(&ex, '2', Trigger::Event).await,
        Done::Finished(Outcome::RolledBack)
    );
    assert_eq!(ex.runtime().state(), vec![("db".into(), true, digest('1'))]);
    assert_eq!(id_of(&ex, "db"), old);
    assert!(ex.is_blocked("db", &digest('2')));
    let row = &ex.store().history(Some("db"), 1).unwrap()[0];
    assert!(
        row.error
            .as_deref()
            .unwrap()
            .contains("migration 42 failed")
    );
}

#[tokio::test(start_paused = true)]
async fn a_bad_hook_label_refuses_the_deploy_naming_it() {
    let rt = FakeRuntime::with(&["db"], &digest('1'));
    rt.label_hooks(
        "db",
        HookLabels {
            timeout: Some("soon".into()),
            ..hooks(Some("dump"), None)
        },
    );
    let (_dir, ex) = executor(rt, 1);
    let done = deploy_first(&ex, '2', Trigger::Event).await;
    assert!(
        matches!(&done, Done::Refused(why) if why.contains("ecr-deployd.hook.timeout")),
        "{done:?}"
    );
    assert!(calls(&ex).is_empty());
}

#[tokio::test(start_paused = true)]
async fn containers_that_depend_on_the_swapped_one_restart_after_it_in_order() {
    let rt = FakeRuntime::with(&["db"], &digest('1'));
    let api = rt.add("api", &digest('9'), true);
    let web = rt.add("web", &digest('9'), true);
    let idle = rt.add("idle", &digest('9'), false);
    *rt.ordering.lock().unwrap() = vec![
        Ordered {
            id: web.clone(),
            name: "web".into(),
            depends_on: vec!["api".into()],
            running: true,
        },
        Ordered {
            id: api.clone(),
            name: "api".into(),
            depends_on: vec!["db".into()],
            running: true,
        },
        Ordered {
            id: idle.clone(),
            name: "idle".into(),
            depends_on: vec!["db".into()],
            running: false,
        },
    ];
    let (_dir, ex) = executor(rt, 1);
    let t = crate::ports::Target::Container(
        ex.managed()
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.name == "db")
            .unwrap(),
    );
    let done = ex
        .deploy_target(
            &t,
            &crate::image::Desired::single(digest('2')),
            Trigger::Event,
            Duration::ZERO,
            None,
        )
        .await
        .unwrap();
    assert_eq!(done, Done::Finished(Outcome::Succeeded));
    let c = calls(&ex);
    let new_db = id_of(&ex, "db");
    let (stop_api, start_api) = (
        at(&c, &format!("stop {api}")),
        at(&c, &format!("start {api}")),
    );
    let (stop_web, start_web) = (
        at(&c, &format!("stop {web}")),
        at(&c, &format!("start {web}")),
    );
    assert!(at(&c, &format!("start {new_db}")) < stop_api);
    assert!(
        stop_api < start_api && start_api < stop_web && stop_web < start_web,
        "{c:?}"
    );
    assert!(
        !c.iter().any(|x| x.ends_with(&idle)),
        "a stopped one stays stopped: {c:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_depends_on_cycle_refuses_the_deploy_naming_the_cycle() {
    let rt = FakeRuntime::with(&["db"], &digest('1'));
    *rt.ordering.lock().unwrap() = vec![
        Ordered {
            id: "x".into(),
            name: "db".into(),
            depends_on: vec!["api".into()],
            running: true,
        },
        Ordered {
            id: "y".into(),
            name: "api".into(),
            depends_on: vec!["db".into()],
            running: true,
        },
    ];
    let (_dir, ex) = executor(rt, 1);
    let done = deploy_first(&ex, '2', Trigger::Event).await;
    assert!(
        matches!(&done, Done::Refused(why) if why.contains("cycle: db → api → db")),
        "{done:?}"
    );
}
