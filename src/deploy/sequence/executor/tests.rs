//! The deploy stage over an in-memory runtime, in virtual time: concurrency limits, locking,
//! refusals, and every recovery branch (a crash at each journalled step).

use std::sync::atomic::Ordering;

use super::*;
use crate::event::ImageRef;
use crate::fakes::{FakeRuntime, FixedAuth, digest, executor};
use crate::ports::{NEW_SUFFIX, OLD_SUFFIX};

fn request(d: &Digest) -> DeployRequest {
    DeployRequest {
        image: ImageRef::parse_repo_tag("team/api:prod").unwrap(),
        desired: Desired::single(d.clone()),
        trigger: crate::ports::Trigger::Event,
        event_time: None,
        resolved_in: Duration::ZERO,
    }
}

async fn web(ex: &Executor<FakeRuntime, FixedAuth>) -> Target {
    Target::Container(ex.managed().await.unwrap().remove(0))
}

/// An event's deploy of `to` to the first managed container, as it ends.
async fn attempt(ex: &Executor<FakeRuntime, FixedAuth>, to: Digest) -> Result<Done, DeployError> {
    let c = web(ex).await;
    ex.deploy_target(
        &c,
        &Desired::single(to),
        Trigger::Event,
        Duration::ZERO,
        None,
    )
    .await
}

/// Deploys `to` to the first managed container.
async fn deploy_first(ex: &Executor<FakeRuntime, FixedAuth>, to: Digest, trigger: Trigger) -> Done {
    let c = web(ex).await;
    ex.deploy_target(&c, &Desired::single(to), trigger, Duration::ZERO, None)
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn deploys_of_different_containers_run_at_most_max_parallel_at_once() {
    let rt = FakeRuntime::with(&["a", "b", "c", "d", "e"], &digest('1'));
    let (_dir, ex) = executor(rt, 2);
    ex.deploy(request(&digest('2'))).await.unwrap();
    assert_eq!(ex.runtime().pulls_max.load(Ordering::SeqCst), 2);
    let managed = ex.managed().await.unwrap();
    assert_eq!(managed.len(), 5);
    assert!(
        managed
            .iter()
            .all(|m| m.running() == Some(&digest('2')) && m.running_now)
    );
    let history = ex.store().history(None, 10).unwrap();
    assert_eq!(history.len(), 5);
    assert!(
        history
            .iter()
            .all(|d| d.outcome == Some(Outcome::Succeeded))
    );
}

#[tokio::test(start_paused = true)]
async fn an_event_and_a_sweep_for_one_container_deploy_it_once() {
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    let (_dir, ex) = executor(rt, 4);
    let c = web(&ex).await;
    let two = Desired::single(digest('2'));
    let (a, b) = tokio::join!(
        ex.deploy_target(&c, &two, Trigger::Event, Duration::ZERO, None),
        ex.deploy_target(&c, &two, Trigger::Sweep, Duration::ZERO, None),
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    assert!(
        outcomes.contains(&Done::Finished(Outcome::Succeeded)) && outcomes.contains(&Done::Nothing),
        "one deployed, the other found it up to date: {outcomes:?}"
    );
    assert_eq!(ex.store().history(None, 10).unwrap().len(), 1);
    let names: Vec<String> = ex.runtime().state().into_iter().map(|s| s.0).collect();
    assert_eq!(names, ["web"], "one container, no parked old one");
}

#[tokio::test(start_paused = true)]
async fn the_successor_is_created_before_the_old_container_is_stopped() {
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    let (_dir, ex) = executor(rt, 1);
    let done = deploy_first(&ex, digest('2'), Trigger::Event).await;
    assert_eq!(done, Done::Finished(Outcome::Succeeded));
    let calls = ex.runtime().calls.lock().unwrap().clone();
    let at = |prefix: &str| calls.iter().position(|c| c.starts_with(prefix)).unwrap();
    assert!(at("pull") < at("create web.ecr-deployd-new"), "{calls:?}");
    assert!(
        at("create web.ecr-deployd-new") < at("stop id0"),
        "{calls:?}"
    );
    assert!(
        at("stop id0") < at("rename id0 web.ecr-deployd-old"),
        "{calls:?}"
    );
    assert!(at("rename id1 web") < at("start id1"), "{calls:?}");
    assert_eq!(
        ex.runtime().state(),
        vec![("web".into(), true, digest('2'))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_container_whose_namespace_is_shared_is_refused_before_anything_is_touched() {
    let rt = FakeRuntime::with(&["app"], &digest('1'));
    rt.add_dependent("app-vpn", "app", false);
    let (_dir, ex) = executor(rt, 1);
    let done = deploy_first(&ex, digest('2'), Trigger::Event).await;
    let Done::Refused(why) = done else {
        panic!("refused expected, got {done:?}")
    };
    assert!(why.contains("app-vpn") && why.contains("network"), "{why}");
    assert!(
        ex.runtime().calls.lock().unwrap().is_empty(),
        "nothing pulled or stopped"
    );
    assert!(ex.store().history(None, 10).unwrap().is_empty());
}

/// A journal row of a deploy of "web" from container `old` to digest 2.
fn journal_row(ex: &Executor<FakeRuntime, FixedAuth>, old: &str) -> i64 {
    ex.store()
        .begin(&NewDeployment {
            container: "web",
            repository: "team/api",
            tag: "prod",
            from_digest: Some(digest('1').as_str()),
            to_digest: digest('2').as_str(),
            platform_digest: None,
            trigger: "event",
            old_id: old,
        })
        .unwrap()
}

/// What each journalled step leaves behind in the Engine when the agent dies there.
fn crash_at(step: Step) -> (FakeRuntime, String, Option<String>) {
    let rt = FakeRuntime::default();
    let old = rt.add("web", &digest('1'), true);
    let temp = format!("web{NEW_SUFFIX}");
    let parked = format!("web{OLD_SUFFIX}");
    let new = match step {
        Step::Pulling => None,
        Step::Creating => Some(rt.add(&temp, &digest('2'), false)),
        Step::Stopping => {
            let new = rt.add(&temp, &digest('2'), false);
            rt.by_id(&old, |b| b.running = false).unwrap();
            Some(new)
        }
        Step::Renaming => {
            let new = rt.add(&temp, &digest('2'), false);
            rt.by_id(&old, |b| (b.running, b.name) = (false, parked))
                .unwrap();
            Some(new)
        }
        Step::Starting | Step::HealthGate | Step::RollingBack | Step::Committing | Step::Done => {
            rt.by_id(&old, |b| (b.running, b.name) = (false, parked))
                .unwrap();
            Some(rt.add("web", &digest('2'), true))
        }
    };
    (rt, old, new)
}

async fn recover_after_crash_at(step: Step, journal_new_id: bool) -> Vec<(String, bool, Digest)> {
    let (rt, old, new) = crash_at(step);
    let (_dir, ex) = executor(rt, 1);
    let id = journal_row(&ex, &old);
    ex.store().step(id, step).unwrap();
    if journal_new_id && let Some(n) = &new {
        ex.store().set_new_id(id, n).unwrap();
    }
    assert_eq!(ex.recover().await.unwrap(), 1, "{step:?}");
    let row = &ex.store().history(Some("web"), 1).unwrap()[0];
    let expected = if matches!(step, Step::Committing | Step::Done) {
        Outcome::Succeeded
    } else if matches!(step, Step::Pulling | Step::Creating) {
        Outcome::Failed
    } else {
        Outcome::RolledBack
    };
    assert_eq!(row.outcome, Some(expected), "{step:?}");
    assert!(ex.store().unfinished().unwrap().is_empty());
    ex.runtime().state()
}

#[tokio::test(start_paused = true)]
async fn a_crash_at_any_step_before_commit_leaves_the_old_container_running_alone() {
    for step in Step::ALL
        .into_iter()
        .filter(|s| !matches!(s, Step::Committing | Step::Done))
    {
        for journal_new_id in [true, false] {
            let state = recover_after_crash_at(step, journal_new_id).await;
            assert_eq!(
                state,
                vec![("web".into(), true, digest('1'))],
                "{step:?}, new id journalled: {journal_new_id}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_crash_while_committing_keeps_the_new_container_alone() {
    for step in [Step::Committing, Step::Done] {
        let state = recover_after_crash_at(step, true).await;
        assert_eq!(state, vec![("web".into(), true, digest('2'))], "{step:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_unknown_step_is_never_taken_for_done_and_holds_the_container() {
    let (rt, old, _new) = crash_at(Step::Starting);
    let (dir, ex) = executor(rt, 1);
    let id = journal_row(&ex, &old);
    // A newer agent's step (or a damaged row).
    rusqlite::Connection::open(dir.path().join("state.db"))
        .unwrap()
        .execute(
            "UPDATE deployments SET step = 'verifying' WHERE id = ?1",
            [id],
        )
        .unwrap();
    let before = ex.runtime().state();
    assert_eq!(ex.recover().await.unwrap(), 0);
    assert_eq!(
        ex.runtime().state(),
        before,
        "both containers left as they are"
    );
    let open = ex.unreadable().unwrap();
    assert_eq!(open.len(), 1);
    assert!(open[0].explain().contains("verifying"));
    // Deploys of that container are held, with the reason.
    let done = deploy_first(&ex, digest('3'), Trigger::Sweep).await;
    assert!(
        matches!(&done, Done::Refused(why) if why.contains("verifying")),
        "{done:?}"
    );
    // And a dry run says so too, rather than "would deploy".
    let (c, desired) = (web(&ex).await, Desired::single(digest('3')));
    let matched = crate::image::compare(c.digests(), &desired, &ex.platform().await.unwrap());
    let said =
        crate::ports::Sweeper::settle(&ex, &c, &desired, &matched, Trigger::DryRun, Duration::ZERO)
            .await;
    assert_eq!(
        said.action,
        crate::model::sweep::Action::Refused,
        "{said:?}"
    );
    assert!(
        said.detail.as_deref().unwrap().contains("verifying"),
        "{said:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn recovery_keeps_the_new_container_when_the_old_one_was_removed_by_hand() {
    let (rt, old, new) = crash_at(Step::Starting);
    rt.boxes.lock().unwrap().retain(|b| b.id != old);
    let (_dir, ex) = executor(rt, 1);
    let id = journal_row(&ex, &old);
    ex.store()
        .step_with_new_id(id, Step::Starting, new.as_deref().unwrap())
        .unwrap();
    assert_eq!(ex.recover().await.unwrap(), 1);
    let row = &ex.store().history(Some("web"), 1).unwrap()[0];
    assert_eq!(row.outcome, Some(Outcome::Failed));
    assert!(
        row.error.as_deref().unwrap().contains("kept running"),
        "{row:?}"
    );
    assert_eq!(
        ex.runtime().state(),
        vec![("web".into(), true, digest('2'))]
    );
}

#[tokio::test(start_paused = true)]
async fn the_containers_of_one_compose_project_are_batched_to_go_one_at_a_time() {
    let rt = FakeRuntime::with(&["shop-web", "shop-api", "blog", "other-web"], &digest('1'));
    let (_dir, ex) = executor(rt, 4);
    let project = |name: &str| match name {
        n if n.starts_with("shop-") => Some("shop".to_owned()),
        "other-web" => Some("other".to_owned()),
        _ => None,
    };
    let targets: Vec<Target> = ex
        .managed()
        .await
        .unwrap()
        .into_iter()
        .map(|mut m| {
            m.compose_project = project(&m.name);
            Target::Container(m)
        })
        .collect();
    let batches: Vec<Vec<String>> = one_at_a_time(targets)
        .iter()
        .map(|b| b.iter().map(|t| t.name().to_owned()).collect())
        .collect();
    assert_eq!(
        batches,
        vec![
            vec!["shop-web".to_owned(), "shop-api".to_owned()],
            vec!["blog".to_owned()],
            vec!["other-web".to_owned()],
        ],
        "in the order listed, one project per batch"
    );
}

/// Issue 30 #5: an Engine that times out on an inspect during the health gate is asked
/// again within the health timeout: a good digest is deployed, not rolled back or blocked.
#[tokio::test(start_paused = true)]
async fn a_transient_engine_error_in_the_health_gate_is_asked_again_and_never_blocks() {
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    let (_dir, ex) = executor(rt, 1);
    ex.runtime().faults.lock().unwrap().insert("observe", 3);
    let done = deploy_first(&ex, digest('2'), Trigger::Event).await;
    assert_eq!(done, Done::Finished(Outcome::Succeeded));
    assert!(!ex.store().is_blocked("web", digest('2').as_str()).unwrap());
    // Through the whole health timeout: rolled back, but not blocked (it says nothing
    // against the digest); the next look deploys it.
    ex.runtime()
        .faults
        .lock()
        .unwrap()
        .insert("observe", usize::MAX);
    let three = Desired::single(digest('3'));
    let t = web(&ex).await;
    let (ex2, t2) = (&ex, &t);
    let run = async move {
        ex2.deploy_target(t2, &three, Trigger::Event, Duration::ZERO, None)
            .await
    };
    let clear = async {
        tokio::time::sleep(ex.config().health_timeout * 2).await;
        ex.runtime().faults.lock().unwrap().clear();
    };
    let (done, ()) = tokio::join!(run, clear);
    assert_eq!(done.unwrap(), Done::Finished(Outcome::RolledBack));
    assert!(!ex.store().is_blocked("web", digest('3').as_str()).unwrap());
    let done = deploy_first(&ex, digest('3'), Trigger::Sweep).await;
    assert_eq!(done, Done::Finished(Outcome::Succeeded));
}

/// Issue 30 #4: a stop that fails (past its timeout, the Engine still killing the
/// container) whose restore fails too leaves the journal row open, never closed as
/// `failed` with the container down for good; the next sweep's recovery starts it again.
#[tokio::test(start_paused = true)]
async fn a_failed_stop_whose_restore_fails_keeps_the_row_open_until_the_container_runs() {
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    let (_dir, ex) = executor(rt, 1);
    let old = web(&ex).await;
    {
        let mut faults = ex.runtime().faults.lock().unwrap();
        faults.insert("stop", 1);
        faults.insert("start", 100);
    }
    let result = attempt(&ex, digest('2')).await;
    assert!(result.is_err(), "transient: the message comes back");
    assert!(result.unwrap_err().transient, "and the error says so");
    let open = ex.store().unfinished().unwrap();
    assert_eq!(open.len(), 1, "the row stays open");
    assert!(!ex.store().is_blocked("web", digest('2').as_str()).unwrap());
    // The Engine answers again: the sweep's recovery puts the old container back.
    ex.runtime().faults.lock().unwrap().clear();
    assert_eq!(ex.recover_idle().await.unwrap(), 1);
    assert!(ex.store().unfinished().unwrap().is_empty());
    let state = ex.runtime().state();
    assert_eq!(state.len(), 1, "one container: {state:?}");
    assert_eq!(state[0], ("web".to_owned(), true, digest('1')));
    assert_eq!(ex.managed().await.unwrap()[0].id, old.journal_old_id());
}

/// Issue 30 #4: a stop that fails once is undone in-process: the old container runs again
/// (watched through the stop window), the row is closed rolled back, nothing blocked.
#[tokio::test(start_paused = true)]
async fn a_failed_stop_is_undone_in_process_and_blocks_nothing() {
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    let (_dir, ex) = executor(rt, 1);
    ex.runtime().faults.lock().unwrap().insert("stop", 1);
    let done = deploy_first(&ex, digest('2'), Trigger::Event).await;
    assert_eq!(done, Done::Finished(Outcome::RolledBack));
    assert!(ex.store().unfinished().unwrap().is_empty());
    assert!(!ex.store().is_blocked("web", digest('2').as_str()).unwrap());
    assert_eq!(
        ex.runtime().state(),
        vec![("web".to_owned(), true, digest('1'))]
    );
}

#[tokio::test(start_paused = true)]
async fn an_event_deploys_a_bare_label_only_for_the_credentials_account_and_region() {
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    let (_dir, ex) = executor(rt, 1);
    let event = |account: Option<&str>, region: Option<&str>, d: char| DeployRequest {
        image: ImageRef::new(
            account.map(str::to_owned),
            crate::event::Repository::parse("team/api").unwrap(),
            crate::event::Tag::parse("prod").unwrap(),
        )
        .in_region(region.map(str::to_owned)),
        ..request(&digest(d))
    };
    // Another account's push of the same repository:tag: not ours.
    ex.deploy(event(Some("210987654321"), Some("eu-west-2"), '2'))
        .await
        .unwrap();
    assert_eq!(running(&ex).await, digest('1'));
    // The home account in another region: not ours either.
    ex.deploy(event(Some("123456789012"), Some("us-east-1"), '2'))
        .await
        .unwrap();
    assert_eq!(running(&ex).await, digest('1'));
    // The home account and region (as real AWS sends it), then without them (the emulator).
    ex.deploy(event(Some("123456789012"), Some("eu-west-2"), '2'))
        .await
        .unwrap();
    assert_eq!(running(&ex).await, digest('2'));
    ex.deploy(event(None, None, '3')).await.unwrap();
    assert_eq!(running(&ex).await, digest('3'));
}

async fn running(ex: &Executor<FakeRuntime, FixedAuth>) -> Digest {
    web(ex).await.digests()[0].clone()
}

/// Makes the state store refuse to journal `step` (an SQLite trigger: a real failed write, as
/// a full disk or an I/O error would give), until the returned guard's `clear`.
fn refuse_step(dir: &tempfile::TempDir, step: &str) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    conn.execute_batch(&format!(
        "CREATE TRIGGER refuse_step BEFORE UPDATE OF step ON deployments \
         WHEN NEW.step = '{step}' BEGIN SELECT RAISE(ABORT, 'injected: disk I/O error'); END;"
    ))
    .unwrap();
    conn
}

/// The deploy error says whether it passes by itself: a state store that refuses to open
/// the journal row is not transient (someone has to look), and nothing was touched.
#[tokio::test(start_paused = true)]
async fn a_store_that_refuses_the_journal_row_is_a_lasting_error_and_nothing_changes() {
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    let (dir, ex) = executor(rt, 1);
    let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER refuse_begin BEFORE INSERT ON deployments \
         BEGIN SELECT RAISE(ABORT, 'injected: disk full'); END;",
    )
    .unwrap();
    let e = attempt(&ex, digest('2')).await.unwrap_err();
    assert!(!e.transient, "{e}");
    assert!(e.reason.contains("injected: disk full"), "{e}");
    assert_eq!(
        ex.runtime().state(),
        [("web".to_owned(), true, digest('1'))]
    );
}

/// Issue 30 #4: a store error at any step after the stop (starting, health gate, committing)
/// undoes the swap in-process: the old container runs alone again, nothing named
/// `*.ecr-deployd-old` stays behind, the digest is not blocked, and the next deploy of it
/// succeeds once the store writes again.
#[tokio::test(start_paused = true)]
async fn a_store_error_after_the_stop_puts_the_old_container_back() {
    for step in ["starting", "health_gate", "committing"] {
        let rt = FakeRuntime::with(&["web"], &digest('1'));
        let (dir, ex) = executor(rt, 1);
        let trigger = refuse_step(&dir, step);
        let result = attempt(&ex, digest('2')).await;
        assert!(
            result.is_err() || result.as_ref().unwrap() != &Done::Finished(Outcome::Succeeded),
            "{step}: {result:?}"
        );
        let state = ex.runtime().state();
        assert_eq!(
            state,
            [("web".to_owned(), true, digest('1'))],
            "{step}: {state:?}"
        );
        assert!(
            !ex.store().is_blocked("web", digest('2').as_str()).unwrap(),
            "{step}"
        );
        trigger.execute_batch("DROP TRIGGER refuse_step").unwrap();
        let _ = ex.recover_idle().await;
        let done = deploy_first(&ex, digest('2'), Trigger::Sweep).await;
        assert_eq!(done, Done::Finished(Outcome::Succeeded), "{step}");
        assert_eq!(
            ex.runtime().state(),
            [("web".to_owned(), true, digest('2'))],
            "{step}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_lock_map_keeps_only_locks_someone_holds_or_waits_for() {
    let (_dir, ex) = executor(FakeRuntime::with(&["web"], &digest('1')), 1);
    // A thousand containers seen once each (renamed, removed, re-created under new names).
    for i in 0..1000 {
        let lock = ex.lock_for(format!("container:gone{i}"));
        drop(lock.lock().await);
    }
    assert!(ex.lock_keys() <= 1, "{} locks kept", ex.lock_keys());
    // A held lock and a waiter's clone survive other keys' turns; the same mutex is handed
    // out for a key while anyone holds it.
    let held = ex.lock_for("container:web".into()).lock_owned().await;
    let waiter = ex.lock_for("container:web".into());
    for i in 0..10 {
        ex.lock_for(format!("container:other{i}"));
    }
    assert_eq!(ex.lock_keys(), 2, "web's lock and the last one asked for");
    assert!(
        waiter.try_lock().is_err(),
        "the waiter's clone is the held mutex"
    );
    assert!(ex.lock_for("container:web".into()).try_lock().is_err());
    drop(held);
    drop(waiter);
    // A deploy of its own leaves its key only until the next key is asked for.
    deploy_first(&ex, digest('2'), Trigger::Event).await;
    ex.lock_for("container:next".into());
    assert_eq!(ex.lock_keys(), 1);
}
