//! The pipeline's ports in memory, for the agent's tests in virtual time: a queue that long
//! polls and can be down, a registry of fixed tags that counts its calls, a deployer that
//! records what it was asked (and can fail or take time).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::event::{Digest, ImageRef};
use crate::image::Desired;
use crate::ports::{
    DeployError, DeployRequest, Deployer, Message, Queue, Receipt, RecordError, Registry,
    RemoteError, Resolution, Unset,
};

#[derive(Default)]
pub struct FakeQueue {
    pub ready: Mutex<VecDeque<Message>>,
    pub deleted: Mutex<Vec<Receipt>>,
    pub visibility: Mutex<Vec<(Receipt, Duration)>>,
    /// The next this many receives fail (the network or SQS is down).
    pub receives_fail: std::sync::atomic::AtomicUsize,
}

impl FakeQueue {
    pub fn with(bodies: &[String]) -> Self {
        Self::delivered(bodies, 1)
    }
    /// Messages SQS has delivered `receive_count` times already.
    pub fn delivered(bodies: &[String], receive_count: u32) -> Self {
        let q = Self::default();
        for (i, b) in bodies.iter().enumerate() {
            q.ready.lock().unwrap().push_back(Message {
                id: format!("m{i}"),
                receipt: Receipt(format!("r{i}")),
                body: b.clone(),
                receive_count,
            });
        }
        q
    }
    pub fn deleted(&self) -> usize {
        self.deleted.lock().unwrap().len()
    }
    pub fn visibility_of(&self, receipt: &str) -> Vec<Duration> {
        let v = self.visibility.lock().unwrap();
        v.iter()
            .filter(|(r, _)| r.0 == receipt)
            .map(|(_, d)| *d)
            .collect()
    }
}

impl Queue for FakeQueue {
    /// Long polling: returns as soon as messages are there, or empty after `wait`.
    async fn receive(
        &self,
        max: u32,
        wait: Duration,
        _: Duration,
    ) -> Result<Vec<Message>, RemoteError> {
        let down = self
            .receives_fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if down.is_ok() {
            return Err(RemoteError {
                operation: "sqs:ReceiveMessage",
                message: "dispatch failure".into(),
                transient: true,
            });
        }
        let until = tokio::time::Instant::now() + wait;
        loop {
            let batch: Vec<Message> = {
                let mut ready = self.ready.lock().unwrap();
                let n = ready.len().min(max as usize);
                ready.drain(..n).collect()
            };
            if !batch.is_empty() || tokio::time::Instant::now() >= until {
                return Ok(batch);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    async fn delete(&self, receipts: &[Receipt]) -> Result<(), RemoteError> {
        self.deleted.lock().unwrap().extend_from_slice(receipts);
        Ok(())
    }
    async fn set_visibility(&self, receipts: &[Receipt], t: Duration) -> Result<(), Unset> {
        let mut v = self.visibility.lock().unwrap();
        v.extend(receipts.iter().map(|r| (r.clone(), t)));
        Ok(())
    }
}

#[derive(Default)]
pub struct FakeRegistry {
    pub tags: Mutex<HashMap<String, Digest>>,
    pub calls: AtomicU64,
}

impl Registry for FakeRegistry {
    async fn resolve(&self, images: &[ImageRef]) -> HashMap<ImageRef, Resolution> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let tags = self.tags.lock().unwrap();
        images
            .iter()
            .map(|i| {
                let d = tags.get(&i.to_string()).cloned().map(Desired::single);
                (i.clone(), Ok(d))
            })
            .collect()
    }
}

#[derive(Default)]
pub struct FakeDeployer {
    pub seen: Mutex<Vec<DeployRequest>>,
    pub fail: bool,
    pub takes: Duration,
    /// Fleet results recorded; each promotes its tag and digest once.
    pub results: Mutex<Vec<crate::fleet::FleetResult>>,
}

impl Deployer for FakeDeployer {
    async fn deploy(&self, request: DeployRequest) -> Result<(), DeployError> {
        self.seen.lock().unwrap().push(request.clone());
        tokio::time::sleep(self.takes).await;
        if self.fail {
            return Err(DeployError::new(&request.image, "docker unreachable", true));
        }
        Ok(())
    }

    fn fleet_result(&self, result: &crate::fleet::FleetResult) -> Result<bool, RecordError> {
        self.results.lock().unwrap().push(result.clone());
        Ok(true)
    }

    fn promotions_due(
        &self,
        _after_ms: i64,
        _now_ms: i64,
    ) -> Result<crate::ports::PromotionsDue, RecordError> {
        let mut results = self.results.lock().unwrap();
        let due = results.drain(..).map(|r| (r.image, r.digest.to_string()));
        Ok((due.collect(), None))
    }
}
