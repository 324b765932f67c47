use std::sync::atomic::Ordering;

use super::*;
use crate::deploy::Executor;
use crate::fakes::{FakeRuntime, FixedAuth, OneTag, digest, executor};

/// The periodic sweep over `ex`, every 300 s, until the returned token is cancelled.
fn start(
    ex: &Arc<Executor<FakeRuntime, FixedAuth>>,
    wake: Arc<Notify>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let task = tokio::spawn(periodic(
        Arc::new(OneTag::new(digest('1'))),
        ex.clone(),
        Duration::from_secs(300),
        Duration::ZERO,
        wake,
        stop.clone(),
    ));
    (stop, task)
}

#[tokio::test(start_paused = true)]
async fn after_an_outage_the_sweep_is_retried_within_seconds_not_at_its_next_turn() {
    let rt = FakeRuntime::with(&["web"], &digest('1'));
    // The start-up sweep and the next two tries find the Engine down.
    rt.listings_fail.store(3, Ordering::SeqCst);
    let (_dir, ex) = executor(rt, 1);
    let ex = Arc::new(ex);
    let (stop, task) = start(&ex, Arc::new(Notify::new()));
    // Tries at 0 s, then 1 s, 2 s and 4 s later: the fourth (at 7 s) succeeds.
    tokio::time::sleep(Duration::from_millis(7100)).await;
    assert_eq!(ex.runtime().listings.load(Ordering::SeqCst), 4);
    // Then the normal interval: nothing more for minutes.
    tokio::time::sleep(Duration::from_secs(200)).await;
    assert_eq!(ex.runtime().listings.load(Ordering::SeqCst), 4);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_wake_runs_the_sweep_at_once() {
    let (_dir, ex) = executor(FakeRuntime::with(&["web"], &digest('1')), 1);
    let ex = Arc::new(ex);
    let wake = Arc::new(Notify::new());
    let (stop, task) = start(&ex, wake.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        ex.runtime().listings.load(Ordering::SeqCst),
        1,
        "start-up sweep"
    );
    wake.notify_one();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(ex.runtime().listings.load(Ordering::SeqCst), 2, "woken");
    stop.cancel();
    task.await.unwrap();
}
