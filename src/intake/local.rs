//! The local queue (SPEC §18): the pushes the intake listener accepted, in the state store,
//! behind the same [`Queue`] seam as SQS — received by a loop of their own, hidden while
//! their work is in flight, handed back at shutdown, deleted once the work is recorded — and
//! [`Queues`], which sends each receipt to the queue it came from.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tracing::debug;

use super::listen::Record;
use crate::event::registry::SitePush;
use crate::event::{same_host, site};
use crate::ports::{Message, Queue, Receipt, RecordError, RemoteError, Unset};
use crate::store::{KeepError, Store};

const PREFIX: &str = "local:";
const OP: &str = "state store: local queue";

fn store_error(e: impl std::fmt::Display) -> RemoteError {
    RemoteError {
        operation: OP,
        message: e.to_string(),
        transient: true,
    }
}

/// The pushes kept in the state store.
pub struct LocalQueue {
    store: Arc<Store>,
    wake: Notify,
}

impl LocalQueue {
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            wake: Notify::new(),
        }
    }

    /// Keeps `bodies` (all or none) and wakes the receive loop. Returns how many were new.
    pub fn keep(&self, bodies: &[String]) -> Result<usize, KeepError> {
        let added = self.store.keep_local(bodies)?;
        self.wake.notify_one();
        Ok(added)
    }

    /// Makes the pushes a process that has ended left in flight visible at once (see
    /// [`Store::release_local`]); the daemon calls it once, holding the lease. Returns how many.
    pub fn release_in_flight(&self) -> Result<usize, RemoteError> {
        let released = self.store.release_local().map_err(store_error)?;
        self.wake.notify_one();
        Ok(released)
    }

    /// Messages kept.
    pub fn len(&self) -> usize {
        self.store.local_len().unwrap_or(0).max(0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The row ids of the local queue's receipts among `receipts`, and the others.
fn split(receipts: &[Receipt]) -> (Vec<i64>, Vec<Receipt>) {
    let mut local = Vec::new();
    let mut other = Vec::new();
    for r in receipts {
        match r.0.strip_prefix(PREFIX).and_then(|id| id.parse().ok()) {
            Some(id) => local.push(id),
            None => other.push(r.clone()),
        }
    }
    (local, other)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Queue for LocalQueue {
    async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, RemoteError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let taken = self
                .store
                .take_local(max, millis(visibility))
                .map_err(store_error)?;
            if !taken.is_empty() {
                return Ok(taken
                    .into_iter()
                    .map(|m| Message {
                        id: format!("local-{}", m.id),
                        receipt: Receipt(format!("{PREFIX}{}", m.id)),
                        body: m.body,
                        receive_count: m.receive_count,
                    })
                    .collect());
            }
            let next = self.store.next_local_visible().map_err(store_error)?;
            let until = next
                .map(|at| {
                    let ms = (at - crate::store::now_ms()).max(0) as u64;
                    tokio::time::Instant::now() + Duration::from_millis(ms)
                })
                .map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }

    async fn delete(&self, receipts: &[Receipt]) -> Result<(), RemoteError> {
        let (ids, _) = split(receipts);
        self.store.delete_local(&ids).map_err(store_error)
    }

    async fn set_visibility(&self, receipts: &[Receipt], timeout: Duration) -> Result<(), Unset> {
        let (ids, _) = split(receipts);
        let hidden = self.store.hide_local(&ids, millis(timeout));
        hidden.map_err(|e| Unset {
            failed: receipts.to_vec(),
            error: store_error(e),
        })?;
        self.wake.notify_one();
        Ok(())
    }
}

/// The listener's pushes, kept in the local queue. A push names its registry's host as the
/// pushing client did: it counts for the `[[registries]]` entry of that host or, when the
/// host is not told or not listed (another name for it), for every entry — a hint costs one
/// `HEAD` of the tag, and a registry that does not hold the tag answers "not found".
pub struct KeepPushes {
    pub local: Arc<LocalQueue>,
    /// The `[[registries]]` hosts.
    pub hosts: Vec<String>,
}

impl KeepPushes {
    fn hosts_for<'a>(&'a self, push: &'a SitePush) -> Vec<&'a str> {
        let listed = push
            .host
            .as_deref()
            .and_then(|h| self.hosts.iter().find(|s| same_host(s, h)));
        match listed {
            Some(h) => vec![h.as_str()],
            None => self.hosts.iter().map(String::as_str).collect(),
        }
    }

    /// The local queue's message bodies for `pushes`, received now (to the second, so that
    /// a notification the registry sends again within it is kept once).
    pub fn bodies(&self, pushes: &[SitePush]) -> Vec<String> {
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        pushes
            .iter()
            .flat_map(|p| {
                self.hosts_for(p)
                    .into_iter()
                    .map(|host| site::message(host, &p.repository, &p.tag, p.digest.as_ref(), &now))
            })
            .collect()
    }
}

impl Record for KeepPushes {
    fn record(&self, pushes: Vec<SitePush>) -> BoxFuture<'_, Result<(), RecordError>> {
        let bodies = self.bodies(&pushes);
        Box::pin(async move {
            let added = self
                .local
                .keep(&bodies)
                .map_err(|e| RecordError::new("registry pushes", e))?;
            debug!(pushes = pushes.len(), kept = added, "registry pushes kept");
            Ok(())
        })
    }
}

/// SQS (when a queue is configured) and the local queue (when the listener is): receives
/// from SQS; deletes and re-times each receipt at the queue it came from.
pub struct Queues<Q> {
    pub sqs: Option<Arc<Q>>,
    pub local: Option<Arc<LocalQueue>>,
}

impl<Q: Queue> Queue for Queues<Q> {
    async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, RemoteError> {
        match &self.sqs {
            Some(q) => q.receive(max, wait, visibility).await,
            None => {
                // No SQS queue: the local queue's own loop receives; this one idles.
                tokio::time::sleep(wait).await;
                Ok(Vec::new())
            }
        }
    }

    async fn delete(&self, receipts: &[Receipt]) -> Result<(), RemoteError> {
        let (ids, other) = split(receipts);
        if let (Some(local), false) = (&self.local, ids.is_empty()) {
            local.store.delete_local(&ids).map_err(store_error)?;
        }
        match (&self.sqs, other.is_empty()) {
            (Some(q), false) => q.delete(&other).await,
            _ => Ok(()),
        }
    }

    async fn set_visibility(&self, receipts: &[Receipt], timeout: Duration) -> Result<(), Unset> {
        let (ids, other) = split(receipts);
        let mut result = Ok(());
        if let (Some(local), false) = (&self.local, ids.is_empty()) {
            let locals: Vec<Receipt> = receipts
                .iter()
                .filter(|r| r.0.starts_with(PREFIX))
                .cloned()
                .collect();
            result = local.set_visibility(&locals, timeout).await;
        }
        if let (Some(q), false) = (&self.sqs, other.is_empty())
            && let Err(mut e) = q.set_visibility(&other, timeout).await
        {
            if let Err(first) = result {
                e.failed.extend(first.failed);
            }
            return Err(e);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> (tempfile::TempDir, Arc<LocalQueue>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("state.db")).unwrap());
        (dir, Arc::new(LocalQueue::new(store)))
    }

    /// The queues of an agent without SQS.
    fn local_only(q: &Arc<LocalQueue>) -> Queues<LocalQueue> {
        Queues {
            sqs: None,
            local: Some(q.clone()),
        }
    }

    const WAIT: Duration = Duration::from_secs(5);
    const HIDE: Duration = Duration::from_secs(300);

    #[tokio::test]
    async fn a_kept_push_wakes_a_waiting_receive_at_once() {
        let (_d, q) = local();
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.receive(10, WAIT, HIDE).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        q.keep(&["push".into()]).unwrap();
        let got = waiting.await.unwrap();
        assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].body.as_str(), got[0].receive_count), ("push", 1));
        assert!(got[0].receipt.0.starts_with(PREFIX));
    }

    #[tokio::test]
    async fn work_that_failed_comes_back_after_its_visibility_and_recorded_work_is_deleted() {
        let (_d, q) = local();
        let queues = local_only(&q);
        q.keep(&["push".into()]).unwrap();
        let first = q.receive(10, WAIT, HIDE).await.unwrap();
        // Hidden while in flight: a receive waits it out and finds nothing.
        let none = q
            .receive(10, Duration::from_millis(100), HIDE)
            .await
            .unwrap();
        assert!(none.is_empty());
        // The reconciler's retry: visible again after 200 ms, delivered a second time.
        let receipts = [first[0].receipt.clone()];
        queues
            .set_visibility(&receipts, Duration::from_millis(200))
            .await
            .unwrap();
        let again = q.receive(10, WAIT, HIDE).await.unwrap();
        assert_eq!(again[0].receive_count, 2);
        queues.delete(&receipts).await.unwrap();
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_push_counts_for_its_listed_registry_or_every_one_when_its_host_is_unknown() {
        let (_d, q) = local();
        let keep = KeepPushes {
            local: q.clone(),
            hosts: vec!["Registry.Site:5000".into(), "harbor.site".into()],
        };
        let push = |host: Option<&str>| SitePush {
            host: host.map(str::to_owned),
            repository: crate::event::Repository::parse("team/web").unwrap(),
            tag: crate::event::Tag::parse("prod").unwrap(),
            digest: None,
        };
        let hosts = |pushes: &[SitePush]| -> Vec<String> {
            keep.bodies(pushes)
                .iter()
                .map(|b| match crate::event::classify(b) {
                    crate::event::Classified::Reconcile(p) => p.image.to_string(),
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(
            hosts(&[push(Some("registry.site:5000"))]),
            ["Registry.Site:5000/team/web:prod"]
        );
        assert_eq!(
            hosts(&[push(Some("harbor.site:443"))]),
            ["harbor.site/team/web:prod"]
        );
        assert_eq!(hosts(&[push(None)]).len(), 2);
        assert_eq!(hosts(&[push(Some("elsewhere:5000"))]).len(), 2);
        // The same notification sent again (within its second): kept once.
        let bodies = keep.bodies(&[push(Some("harbor.site"))]);
        assert_eq!((q.keep(&bodies).unwrap(), q.keep(&bodies).unwrap()), (1, 0));
        keep.record(vec![push(None)]).await.unwrap();
        assert!(q.len() >= 2, "{}", q.len());
    }

    #[tokio::test]
    async fn without_an_sqs_queue_the_main_loop_idles_and_foreign_receipts_are_left_alone() {
        let (_d, q) = local();
        let queues = local_only(&q);
        q.keep(&["push".into()]).unwrap();
        // The main receive loop never takes the local queue's messages.
        let got = queues
            .receive(10, Duration::from_millis(50), HIDE)
            .await
            .unwrap();
        assert!(got.is_empty());
        // An SQS receipt without an SQS queue changes nothing here.
        queues
            .delete(&[Receipt("AQEB-sqs-receipt".into())])
            .await
            .unwrap();
        assert_eq!(q.len(), 1);
    }
}
