//! The queue side of the pipeline: the long-poll receive loop, the visibility heartbeat for
//! messages whose work is in flight, and the bookkeeping that lets shutdown hand every
//! unfinished message back to the queue. [`listen`] is the other way in: push notifications
//! of registries of the site's own, posted to the agent.

pub mod local;

use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::event::{Classified, GateHint, classify};
use crate::fleet::FleetResult;
use crate::notify::{Notice, Notifier, TroubleNotice};
use crate::ports::{Message, Queue, Receipt, RecordError, Trigger};
use crate::request::{InFlight, Request};
use crate::retry;
use crate::stats::Stats;

pub mod listen;

/// Receive parameters, from `[queue]`.
#[derive(Clone, Debug)]
pub struct IntakeConfig {
    pub max_messages: u32,
    pub wait: Duration,
    pub visibility: Duration,
    /// Told about malformed messages.
    pub notifier: Notifier,
    /// Woken when the queue answers again after failed receives (AWS is back), and after a
    /// gate hint: the sweep catches up at once instead of at its next turn.
    pub wake_sweep: Option<Arc<Notify>>,
    /// Records a gate hint (clears the rejections of its digest): the deployer's
    /// [`crate::ports::Deployer::recheck`]. `None`: hints are only logged.
    pub on_hint: Option<HintHandler>,
    /// Records a fleet result (SPEC §14): the deployer's
    /// [`crate::ports::Deployer::fleet_result`]. `None`: results are not followed (wave 1).
    pub on_result: Option<ResultHandler>,
    /// Woken after a fleet result that was news: the promotions task looks at once.
    pub wake_promotions: Option<Arc<Notify>>,
}

/// What intake calls with a fleet result; `Ok(true)`: news; `Err`: not recorded, the
/// message stays queued.
#[derive(Clone)]
pub struct ResultHandler(pub Arc<ResultFn>);

pub type ResultFn = dyn Fn(&FleetResult) -> Result<bool, RecordError> + Send + Sync;

impl std::fmt::Debug for ResultHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResultHandler")
    }
}

/// What intake calls with a gate hint; `Err`: not recorded, the message stays queued.
#[derive(Clone)]
pub struct HintHandler(pub Arc<HintFn>);

/// Records a hint; returns how many rejections it cleared.
pub type HintFn = dyn Fn(&GateHint) -> Result<usize, RecordError> + Send + Sync;

impl std::fmt::Debug for HintHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HintHandler")
    }
}

/// Why a message was deleted straight from intake.
#[derive(Clone, Copy)]
enum Done {
    Nothing,
    Foreign,
    Hint,
}

impl Done {
    fn counter(self, stats: &Stats) -> &std::sync::atomic::AtomicU64 {
        match self {
            Done::Nothing => &stats.deleted_nothing,
            Done::Foreign => &stats.deleted_foreign,
            Done::Hint => &stats.deleted_done,
        }
    }
}

/// Records a gate hint and wakes the sweep, which looks at the digest again.
fn recheck(cfg: &IntakeConfig, hint: &GateHint) -> Result<(), RecordError> {
    let cleared = match &cfg.on_hint {
        Some(handle) => (handle.0)(hint)?,
        None => 0,
    };
    let digest = hint.digest.as_ref().map_or("any", |d| d.short());
    info!(repository = hint.repository.as_str(), digest, why = %hint.why, cleared, "gate hint: the digest is checked again");
    if let Some(wake) = &cfg.wake_sweep {
        wake.notify_one();
    }
    Ok(())
}

/// Records a fleet result and, when it is news, wakes the promotions task.
fn fleet_result(cfg: &IntakeConfig, r: &FleetResult) -> Result<(), RecordError> {
    let Some(handle) = &cfg.on_result else {
        debug!(host = %r.host, wave = r.wave, "deployment result of a fleet host; this host follows ECR pushes");
        return Ok(());
    };
    let news = (handle.0)(r)?;
    info!(host = %r.host, wave = r.wave, image = %r.image, digest = %r.digest.short(), outcome = %r.outcome, news, "fleet result");
    if news && let Some(wake) = &cfg.wake_promotions {
        wake.notify_one();
    }
    Ok(())
}

/// Receives until `shutdown`, classifies each message and forwards reconcile requests.
///
/// Never returns early on a failure: receive errors are retried with capped backoff, bad
/// messages are logged and left for the DLQ.
pub async fn run<Q: Queue>(
    queue: Arc<Q>,
    cfg: IntakeConfig,
    inflight: InFlight,
    stats: Arc<Stats>,
    tx: mpsc::Sender<Request>,
    shutdown: CancellationToken,
) {
    info!(
        max_messages = cfg.max_messages,
        wait_s = cfg.wait.as_secs(),
        "queue intake started"
    );
    loop {
        stats.tick();
        let failed = std::sync::atomic::AtomicBool::new(false);
        let receive = || queue.receive(cfg.max_messages, cfg.wait, cfg.visibility);
        let receive = receive.retry(retry::forever()).notify(|e, delay| {
            // Retrying is the loop doing its job: alive for /healthz and the watchdog.
            stats.tick();
            failed.store(true, std::sync::atomic::Ordering::Relaxed);
            warn!(error = %e, retry_in = ?delay, "receiving from the queue failed; retrying")
        });
        let messages = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = receive => match r {
                Ok(m) => {
                    if failed.load(std::sync::atomic::Ordering::Relaxed)
                        && let Some(wake) = &cfg.wake_sweep
                    {
                        info!("the queue answers again; waking the sweep");
                        wake.notify_one();
                    }
                    m
                }
                Err(e) => {
                    error!(error = %e, "receiving from the queue failed");
                    continue;
                }
            },
        };
        Stats::add(&stats.messages_received, messages.len());
        let mut done = Vec::new();
        for m in messages {
            match handle(&cfg, &inflight, &stats, &tx, m).await {
                Ok(Some(finished)) => done.push(finished),
                Ok(None) => {}
                // The pipeline is gone (shutdown): the message stays tracked and is handed
                // back to the queue by the caller.
                Err(PipelineGone) => return,
            }
        }
        delete_done(&queue, &stats, done);
    }
    info!("queue intake stopped");
}

/// The intake's pipeline is gone: shutdown.
struct PipelineGone;

/// One message: a push is handed to the pipeline (tracked in flight until its work is
/// recorded); a gate hint or a fleet result is recorded; a malformed one is left for the
/// dead-letter queue. `Some`: the message is finished and may be deleted now.
async fn handle(
    cfg: &IntakeConfig,
    inflight: &InFlight,
    stats: &Stats,
    tx: &mpsc::Sender<Request>,
    m: Message,
) -> Result<Option<(Receipt, Done)>, PipelineGone> {
    let finished = match classify(&m.body) {
        Classified::Reconcile(push) => {
            debug!(message_id = %m.id, image = %push.image, hint = ?push.digest_hint, "push event");
            inflight.track(m.receipt.clone(), Instant::now());
            let request = Request {
                image: push.image,
                trigger: Trigger::Event,
                message: Some((m.id, m.receipt)),
                receive_count: m.receive_count,
                event_time: push.time,
                digest_hint: push.digest_hint,
                object_version: push.object_version,
            };
            tx.send(request).await.map_err(|_| PipelineGone)?;
            return Ok(None);
        }
        Classified::Recheck(hint) => match recheck(cfg, &hint) {
            Ok(()) => Some(Done::Hint),
            Err(e) => {
                warn!(message_id = %m.id, error = %e, "gate hint not recorded; the message comes back later");
                None
            }
        },
        Classified::FleetResult(r) => match fleet_result(cfg, &r) {
            Ok(()) => Some(Done::Hint),
            Err(e) => {
                warn!(message_id = %m.id, error = %e, "fleet result not recorded; the message comes back later");
                None
            }
        },
        Classified::Nothing(why) => {
            debug!(message_id = %m.id, %why, "nothing to do");
            Some(Done::Nothing)
        }
        Classified::Foreign(why) => {
            warn!(message_id = %m.id, %why, "not an ECR event; deleting it");
            Some(Done::Foreign)
        }
        Classified::Malformed(reason) => {
            malformed(cfg, stats, &m, reason);
            None
        }
    };
    Ok(finished.map(|done| (m.receipt, done)))
}

/// A message that is no event at all: logged, counted, told, and left on the queue for its
/// dead-letter queue.
fn malformed(cfg: &IntakeConfig, stats: &Stats, m: &Message, reason: String) {
    error!(
        message_id = %m.id,
        receive_count = m.receive_count,
        %reason,
        "malformed message left on the queue for its dead-letter queue"
    );
    Stats::add(&stats.malformed, 1);
    cfg.notifier.send(Notice::Trouble(TroubleNotice {
        host: cfg.notifier.host().to_owned(),
        kind: "malformed",
        message_id: m.id.clone(),
        receive_count: m.receive_count,
        image: None,
        reason,
    }));
}

/// Deletes the finished messages, off the receive path: the next long poll does not wait
/// for this round trip. Ones not deleted come back after their visibility timeout and are
/// deleted then.
fn delete_done<Q: Queue>(queue: &Arc<Q>, stats: &Arc<Stats>, done: Vec<(Receipt, Done)>) {
    if done.is_empty() {
        return;
    }
    let (queue, stats) = (queue.clone(), stats.clone());
    tokio::spawn(async move {
        let receipts: Vec<Receipt> = done.iter().map(|(r, _)| r.clone()).collect();
        match queue.delete(&receipts).await {
            Ok(()) => done
                .iter()
                .for_each(|(_, kind)| Stats::add(kind.counter(&stats), 1)),
            Err(e) => warn!(error = %e, count = receipts.len(), "deleting messages failed"),
        }
    });
}

/// Extends the visibility of in-flight messages every half timeout until `shutdown`.
pub async fn heartbeat<Q: Queue>(
    queue: Arc<Q>,
    inflight: InFlight,
    visibility: Duration,
    shutdown: CancellationToken,
) {
    let tick = (visibility / 4).max(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        extend_due(queue.as_ref(), &inflight, visibility).await;
    }
}

/// One heartbeat: sets the visibility of the messages due for it. A receipt counts as
/// extended only once its call succeeded; one that failed stays due for the next beat, and
/// one failed entry does not keep the others from being extended.
async fn extend_due<Q: Queue>(queue: &Q, inflight: &InFlight, visibility: Duration) {
    let now = Instant::now();
    let due = inflight.due(now, visibility / 2);
    if due.is_empty() {
        return;
    }
    let failed = match queue.set_visibility(&due, visibility).await {
        Ok(()) => {
            debug!(
                count = due.len(),
                "extended visibility of in-flight messages"
            );
            Vec::new()
        }
        Err(e) => {
            warn!(error = %e, count = due.len(), "extending visibility failed for some messages");
            e.failed
        }
    };
    let extended: Vec<Receipt> = due.into_iter().filter(|r| !failed.contains(r)).collect();
    inflight.extended(&extended, now);
}

/// Makes every message still tracked visible again at once (shutdown).
pub async fn hand_back<Q: Queue>(queue: &Q, inflight: &InFlight) {
    let receipts = inflight.drain();
    if receipts.is_empty() {
        return;
    }
    match queue.set_visibility(&receipts, Duration::ZERO).await {
        Ok(()) => info!(
            count = receipts.len(),
            "unfinished messages made visible again"
        ),
        Err(e) => warn!(
            error = %e,
            count = receipts.len(),
            "could not make unfinished messages visible; they return after their visibility timeout"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ports::{Message, RemoteError, Unset};

    const VISIBILITY: Duration = Duration::from_secs(60);

    /// Fails the receipts in `bad` (or the whole call when `down`); records what it was asked.
    #[derive(Default)]
    struct Visibility {
        bad: Vec<Receipt>,
        down: bool,
        asked: Mutex<Vec<Receipt>>,
        untrack_during_call: Option<(InFlight, Receipt)>,
    }

    impl Queue for Visibility {
        async fn receive(
            &self,
            _: u32,
            _: Duration,
            _: Duration,
        ) -> Result<Vec<Message>, RemoteError> {
            Ok(Vec::new())
        }
        async fn delete(&self, _: &[Receipt]) -> Result<(), RemoteError> {
            Ok(())
        }
        async fn set_visibility(&self, receipts: &[Receipt], _: Duration) -> Result<(), Unset> {
            self.asked.lock().unwrap().extend_from_slice(receipts);
            if let Some((inflight, r)) = &self.untrack_during_call {
                inflight.untrack(std::slice::from_ref(r));
            }
            let error = RemoteError {
                operation: "sqs:ChangeMessageVisibilityBatch",
                message: "ReceiptHandleIsInvalid".into(),
                transient: true,
            };
            let failed: Vec<Receipt> = match self.down {
                true => receipts.to_vec(),
                false => receipts
                    .iter()
                    .filter(|r| self.bad.contains(r))
                    .cloned()
                    .collect(),
            };
            match failed.is_empty() {
                true => Ok(()),
                false => Err(Unset { failed, error }),
            }
        }
    }

    fn receipt(s: &str) -> Receipt {
        Receipt(s.to_owned())
    }

    fn tracked(names: &[&str]) -> InFlight {
        let inflight = InFlight::default();
        for n in names {
            inflight.track(receipt(n), Instant::now());
        }
        inflight
    }

    fn sorted(mut v: Vec<Receipt>) -> Vec<Receipt> {
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_entry_stays_due_and_only_the_entries_that_succeeded_count_as_extended() {
        let inflight = tracked(&["a", "bad", "c"]);
        let queue = Visibility {
            bad: vec![receipt("bad")],
            ..Default::default()
        };
        tokio::time::advance(VISIBILITY / 2).await;
        extend_due(&queue, &inflight, VISIBILITY).await;
        let asked = sorted(queue.asked.lock().unwrap().clone());
        assert_eq!(
            asked,
            [receipt("a"), receipt("bad"), receipt("c")],
            "every due receipt is tried"
        );
        assert_eq!(
            inflight.due(Instant::now(), VISIBILITY / 2),
            [receipt("bad")],
            "the failed receipt is not marked extended: the next beat tries it again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_call_marks_nothing_extended() {
        let inflight = tracked(&["a", "b"]);
        let queue = Visibility {
            down: true,
            ..Default::default()
        };
        tokio::time::advance(VISIBILITY / 2).await;
        extend_due(&queue, &inflight, VISIBILITY).await;
        let due = sorted(inflight.due(Instant::now(), VISIBILITY / 2));
        assert_eq!(due, [receipt("a"), receipt("b")]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_receipt_whose_work_finished_during_the_call_is_not_tracked_again() {
        let inflight = tracked(&["a", "b"]);
        let queue = Visibility {
            untrack_during_call: Some((inflight.clone(), receipt("b"))),
            ..Default::default()
        };
        tokio::time::advance(VISIBILITY / 2).await;
        extend_due(&queue, &inflight, VISIBILITY).await;
        assert_eq!(inflight.len(), 1);
        assert!(inflight.due(Instant::now(), VISIBILITY / 2).is_empty());
    }
}
