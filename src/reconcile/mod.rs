//! Reconcile stage: coalesce requests per tag, resolve the batch against ECR (the source of
//! truth), hand each desired digest to the [`Deployer`], and only then delete the messages
//! that asked for it.

pub mod coalesce;
pub mod promotions;
pub mod sweep;
pub mod windows;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use backon::Retryable;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::event::ImageRef;
use crate::image::Desired;
use crate::notify::{Notice, Notifier, TroubleNotice};
use crate::ports::{DeployRequest, Deployer, Queue, Receipt, Registry, Resolution, Trigger};
use crate::request::InFlight;
pub use crate::request::Request;
use crate::retry;
use crate::stats::{MapSizes, Stats};
use coalesce::Coalescer;

/// Messages whose work failed transiently come back after this long, not the full timeout.
const RETRY_VISIBILITY: Duration = Duration::from_secs(30);
/// A follow-up that resolves to what was handed off for its tag less than this long ago is
/// not handed off again: the deployer would only find it done. Short, so that a container
/// changed by hand meanwhile is soon looked at again (and the sweep always looks).
const APPLIED_HORIZON: Duration = Duration::from_secs(60);
/// From this many deliveries on, a message whose work fails again is reported as in trouble.
pub const TROUBLE_RECEIVES: u32 = 3;

/// What each tag of a batch resolved to (its digest), for the coalescer.
type Resolved = HashMap<ImageRef, String>;

/// The reconcile stage and what it needs.
pub struct Reconciler<Q, R, D> {
    pub queue: Arc<Q>,
    pub registry: Arc<R>,
    pub deployer: Arc<D>,
    pub inflight: InFlight,
    pub stats: Arc<Stats>,
    pub debounce: Duration,
    /// Deploys of different tags at once (`deploy.max_parallel`).
    pub parallel: Arc<Semaphore>,
    /// Told when the work behind a message keeps failing.
    pub notifier: Notifier,
    /// What was last handed off and recorded per tag, and when (see [`APPLIED_HORIZON`]).
    pub applied: Mutex<HashMap<ImageRef, (Desired, Instant)>>,
}

impl<Q: Queue, R: Registry, D: Deployer> Reconciler<Q, R, D> {
    /// Runs until `shutdown` or until the request channel closes, then waits up to `grace`
    /// for work in flight. Requests not finished by then stay tracked in [`InFlight`] for the
    /// caller to hand back.
    pub async fn run(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Request>,
        shutdown: CancellationToken,
        grace: Duration,
    ) {
        let mut coalescer = Coalescer::new(self.debounce);
        let mut workers: JoinSet<Resolved> = JoinSet::new();
        let mut batches: HashMap<Id, Vec<ImageRef>> = HashMap::new();
        loop {
            let deadline = coalescer.next_deadline();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                request = rx.recv() => match request {
                    Some(r) => {
                        // Take what else is queued already, so that one receive batch of
                        // duplicates goes into one batch of work.
                        let now = Instant::now();
                        let hint = r.hint();
                        coalescer.push(r.image.clone(), r, hint, now);
                        while let Ok(more) = rx.try_recv() {
                            let hint = more.hint();
                            coalescer.push(more.image.clone(), more, hint, now);
                        }
                    }
                    None => break,
                },
                _ = sleep_until_opt(deadline), if deadline.is_some() => {
                    let due = coalescer.take_due(Instant::now());
                    if !due.is_empty() {
                        let keys = due.iter().map(|(k, _)| k.clone()).collect();
                        let this = self.clone();
                        let handle = workers.spawn(async move { this.work(due).await });
                        batches.insert(handle.id(), keys);
                    }
                    self.report_sizes(&coalescer);
                }
                Some(joined) = workers.join_next_with_id(), if !workers.is_empty() => {
                    let (id, resolved) = match joined {
                        Ok((id, resolved)) => (id, resolved),
                        Err(e) => {
                            error!(error = %e, "a reconcile worker failed; its messages come back later");
                            (e.id(), Resolved::new())
                        }
                    };
                    for key in batches.remove(&id).unwrap_or_default() {
                        let digest = resolved.get(&key).cloned();
                        coalescer.finished(&key, digest, Instant::now());
                    }
                    self.report_sizes(&coalescer);
                }
            }
        }
        let waiting = coalescer.drain().len();
        if !workers.is_empty() {
            info!(
                batches = workers.len(),
                waiting,
                ?grace,
                "waiting for work in flight"
            );
            let all_done = async { while workers.join_next().await.is_some() {} };
            if tokio::time::timeout(grace, all_done).await.is_err() {
                warn!(
                    "grace period over; abandoning unfinished work (its messages are handed back)"
                );
                workers.abort_all();
            }
        }
    }

    /// Resolves one batch of due tags and carries out each; answers what each tag resolved
    /// to (the coalescer's notion of "nothing new").
    async fn work(&self, due: Vec<(ImageRef, Vec<Request>)>) -> Resolved {
        let mut answer = Resolved::new();
        let (known, due): (Vec<_>, Vec<_>) = due
            .into_iter()
            .partition(|(image, requests)| self.nothing_new(image, requests));
        for (image, requests) in known {
            // Each names the digest just applied: that is what the tag resolved to.
            answer.extend(
                requests
                    .first()
                    .and_then(Request::hint)
                    .map(|d| (image.clone(), d)),
            );
            // Pushes of the digest just resolved, deployed and recorded for this tag: they
            // tell nothing ECR did not already say. Any later move of the tag has its own
            // event (or the sweep finds it); nothing is deployed without asking ECR.
            debug!(%image, messages = requests.len(), "events name the digest just applied; settled without asking ECR");
            let receipts: Vec<Receipt> = requests
                .iter()
                .filter_map(|r| r.message.as_ref().map(|(_, receipt)| receipt.clone()))
                .collect();
            self.settle(&image, &requests, &receipts, None).await;
        }
        if due.is_empty() {
            return answer;
        }
        let images: Vec<ImageRef> = due.iter().map(|(k, _)| k.clone()).collect();
        let started = std::time::Instant::now();
        let resolved = self.resolve(&images).await;
        let resolved_in = started.elapsed();
        answer.extend(resolved.iter().filter_map(|(image, r)| match r {
            Ok(Some(desired)) => Some((image.clone(), desired.digest.to_string())),
            _ => None,
        }));
        let jobs = due.into_iter().map(|(image, requests)| {
            let resolution = resolved.get(&image).cloned().unwrap_or(Ok(None));
            self.carry_out(image, requests, resolution, resolved_in)
        });
        futures::future::join_all(jobs).await;
        answer
    }

    /// One call for the whole batch; tags that failed transiently are tried again a few times.
    async fn resolve(&self, images: &[ImageRef]) -> HashMap<ImageRef, Resolution> {
        Stats::add(&self.stats.resolve_batches, 1);
        let mut resolved = self.registry.resolve(images).await;
        let retry_set = |r: &HashMap<ImageRef, Resolution>| -> Vec<ImageRef> {
            r.iter()
                .filter(|(_, v)| matches!(v, Err(e) if e.transient))
                .map(|(k, _)| k.clone())
                .collect()
        };
        let again = retry_set(&resolved);
        if again.is_empty() {
            return resolved;
        }
        let attempt = || async {
            Stats::add(&self.stats.resolve_batches, 1);
            let r = self.registry.resolve(&again).await;
            match retry_set(&r).is_empty() {
                true => Ok(r),
                false => Err(r),
            }
        };
        let last = attempt
            .retry(retry::few())
            .notify(|_, delay| warn!(retry_in = ?delay, "resolving tags in ECR failed; retrying"))
            .await;
        resolved.extend(last.unwrap_or_else(|r| r));
        resolved
    }

    async fn carry_out(
        &self,
        image: ImageRef,
        requests: Vec<Request>,
        resolution: Resolution,
        resolved_in: Duration,
    ) {
        let receipts: Vec<Receipt> = requests
            .iter()
            .filter_map(|r| r.message.as_ref().map(|(_, receipt)| receipt.clone()))
            .collect();
        let failure: Option<String> = match resolution {
            Ok(Some(desired)) => {
                let trigger = match requests.first() {
                    _ if !receipts.is_empty() => Trigger::Event,
                    Some(r) if r.trigger == Trigger::Promotion => Trigger::Promotion,
                    _ => Trigger::Sweep,
                };
                let event_time = requests.iter().filter_map(|r| r.event_time).min();
                let request = DeployRequest {
                    image: image.clone(),
                    desired,
                    trigger,
                    event_time,
                    resolved_in,
                };
                // A promotion changes what the deployer decides (the wave gate): never skipped.
                if trigger.may_skip_just_applied() && self.just_applied(&image, &request.desired) {
                    // A follow-up of duplicates: ECR names what was just deployed and
                    // recorded for this tag, so the deployer would find everything done.
                    debug!(%image, "follow-up resolved to the digest just applied; nothing to hand off");
                    return self.settle(&image, &requests, &receipts, None).await;
                }
                let _permit = self.parallel.acquire().await;
                Stats::add(&self.stats.handoffs, 1);
                let digest = request.desired.clone();
                match self.deployer.deploy(request).await {
                    Ok(()) => {
                        self.applied(&image, digest);
                        None
                    }
                    Err(e) => {
                        warn!(error = %e, transient = e.transient, messages = receipts.len(), "deploy not recorded; messages stay queued");
                        Some(e.to_string())
                    }
                }
            }
            Ok(None) if image.is_archive() => {
                info!(%image, "no such key in S3, or no container follows it: nothing to deploy");
                None
            }
            Ok(None) => {
                warn!(%image, registry = ?image.registry, "tag not found in ECR: nothing to deploy");
                None
            }
            // Recorded and told (SPEC §13): the same object is never loaded again.
            Err(e) if crate::archive::is_refusal(&e) => {
                warn!(%image, error = %e, "archive refused; nothing deployed");
                None
            }
            Err(e) => {
                warn!(%image, error = %e, "could not resolve the tag; messages stay queued");
                Some(format!("resolving {image} failed: {e}"))
            }
        };
        self.settle(&image, &requests, &receipts, failure).await;
    }

    /// Deletes the messages of finished work, or hands them back for a retry.
    async fn settle(
        &self,
        image: &ImageRef,
        requests: &[Request],
        receipts: &[Receipt],
        failure: Option<String>,
    ) {
        if receipts.is_empty() {
            return;
        }
        let finished = failure.is_none();
        if let Some(reason) = failure {
            self.report_trouble(image, requests, &reason);
        }
        if finished {
            self.delete(image, receipts).await;
        } else {
            Stats::add(&self.stats.retried_later, receipts.len());
            if let Err(e) = self.queue.set_visibility(receipts, RETRY_VISIBILITY).await {
                warn!(error = %e, "could not shorten the visibility of messages to retry");
            }
            self.inflight.untrack(receipts);
        }
    }

    /// Whether `desired` was handed off for `image` and recorded within [`APPLIED_HORIZON`].
    fn just_applied(&self, image: &ImageRef, desired: &Desired) -> bool {
        let applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        applied
            .get(image)
            .is_some_and(|(d, at)| d == desired && at.elapsed() < APPLIED_HORIZON)
    }

    /// Every request is an event naming the digest handed off and recorded for `image`
    /// within [`APPLIED_HORIZON`].
    fn nothing_new(&self, image: &ImageRef, requests: &[Request]) -> bool {
        let applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((desired, at)) = applied.get(image) else {
            return false;
        };
        at.elapsed() < APPLIED_HORIZON
            && requests
                .iter()
                .all(|r| r.message.is_some() && r.digest_hint.as_ref() == Some(&desired.digest))
    }

    fn applied(&self, image: &ImageRef, desired: Desired) {
        let mut applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        applied.retain(|_, (_, at)| at.elapsed() < APPLIED_HORIZON);
        applied.insert(image.clone(), (desired, Instant::now()));
    }

    /// Drops what is past its horizon and publishes the sizes of the stage's maps (bounded:
    /// SPEC §16).
    fn report_sizes(&self, coalescer: &Coalescer<Request>) {
        let maps = &self.stats.maps;
        let s = coalescer.sizes();
        MapSizes::set(&maps.coalescer_pending, s.pending_keys);
        MapSizes::set(&maps.coalescer_in_flight, s.in_flight_keys);
        MapSizes::set(&maps.coalescer_quiet, s.quiet_keys);
        let applied = {
            let mut applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
            applied.retain(|_, (_, at)| at.elapsed() < APPLIED_HORIZON);
            applied.len()
        };
        MapSizes::set(&maps.applied, applied);
        MapSizes::set(&maps.messages_in_flight, self.inflight.len());
    }

    /// Tells the operator about the messages of a failed batch that SQS has delivered
    /// [`TROUBLE_RECEIVES`] times or more: they are heading for the dead-letter queue.
    fn report_trouble(&self, image: &ImageRef, requests: &[Request], reason: &str) {
        for r in requests {
            if let Some((id, _)) = &r.message
                && r.receive_count >= TROUBLE_RECEIVES
            {
                self.notifier.send(Notice::Trouble(TroubleNotice {
                    host: self.notifier.host().to_owned(),
                    kind: "repeated_failures",
                    message_id: id.clone(),
                    receive_count: r.receive_count,
                    image: Some(image.to_string()),
                    reason: reason.to_owned(),
                }));
            }
        }
    }

    /// Deletes the messages behind finished work. A delete that keeps failing is given up:
    /// the message comes back and its replay is harmless (ECR decides what runs).
    async fn delete(&self, image: &ImageRef, receipts: &[Receipt]) {
        let unique: Vec<Receipt> = receipts
            .iter()
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let result = (|| self.queue.delete(&unique))
            .retry(retry::few())
            .when(|e| e.transient)
            .await;
        match result {
            Ok(()) => Stats::add(&self.stats.deleted_done, receipts.len()),
            Err(e) => warn!(%image, error = %e, "deleting finished messages failed"),
        }
        self.inflight.untrack(receipts);
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
