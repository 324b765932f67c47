//! [`Queue`] on Amazon SQS.
//!
//! Deletes from every stage go through one task that merges what is waiting into
//! `DeleteMessageBatch` calls of up to 10: while one call is in flight the next requests
//! queue up, and the next call takes them all. Nothing waits for a batch to fill.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};

use tokio::sync::{mpsc, oneshot};

use super::aws::remote_error;
use crate::ports::{Message, Queue, Receipt, RemoteError};

/// SQS takes at most 10 entries per batch call.
const BATCH: usize = 10;
/// Headroom over the long-poll wait before a receive attempt is considered hung.
const RECEIVE_HEADROOM: Duration = Duration::from_secs(10);

/// Receipts to delete, and who waits for the outcome.
type Waiting = (Vec<Receipt>, oneshot::Sender<Result<(), RemoteError>>);

/// The host's queue.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
    /// The delete task's inbox, started on the first delete.
    deletes: Arc<OnceLock<mpsc::UnboundedSender<Waiting>>>,
}

impl SqsQueue {
    /// `max_wait` is the long-poll wait: the HTTP attempt timeout is set above it.
    pub fn new(sdk: &SdkConfig, url: &str, max_wait: Duration) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(max_wait + RECEIVE_HEADROOM)
            .build();
        let config = aws_sdk_sqs::config::Builder::from(sdk)
            .timeout_config(timeouts)
            .build();
        Self {
            client: Client::from_conf(config),
            url: url.to_owned(),
            deletes: Arc::default(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn failures<T: std::fmt::Debug>(
        operation: &'static str,
        failed: &[T],
    ) -> Result<(), RemoteError> {
        if failed.is_empty() {
            return Ok(());
        }
        Err(RemoteError {
            operation,
            message: format!("{} entries failed: {failed:?}", failed.len()),
            transient: true,
        })
    }
}

impl Queue for SqsQueue {
    async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, RemoteError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(wait.as_secs() as i32)
            .visibility_timeout(visibility.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| remote_error("sqs:ReceiveMessage", e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                Some(Message {
                    id: m.message_id.unwrap_or_default(),
                    receipt: Receipt(m.receipt_handle?),
                    body: m.body.unwrap_or_default(),
                    receive_count,
                })
            })
            .collect())
    }

    async fn delete(&self, receipts: &[Receipt]) -> Result<(), RemoteError> {
        if receipts.is_empty() {
            return Ok(());
        }
        let inbox = self.deletes.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(merge_deletes(self.clone_without_inbox(), rx));
            tx
        });
        let (done, outcome) = oneshot::channel();
        if inbox.send((receipts.to_vec(), done)).is_err() {
            return self.delete_now(receipts).await;
        }
        outcome.await.unwrap_or_else(|_| {
            Err(RemoteError {
                operation: "sqs:DeleteMessageBatch",
                message: "the delete task stopped".into(),
                transient: true,
            })
        })
    }

    async fn set_visibility(
        &self,
        receipts: &[Receipt],
        timeout: Duration,
    ) -> Result<(), RemoteError> {
        for chunk in receipts.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&r.0)
                        .visibility_timeout(timeout.as_secs() as i32)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| RemoteError {
                    operation: "sqs:ChangeMessageVisibilityBatch",
                    message: e.to_string(),
                    transient: false,
                })?;
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| remote_error("sqs:ChangeMessageVisibilityBatch", e))?;
            Self::failures("sqs:ChangeMessageVisibilityBatch", out.failed())?;
        }
        Ok(())
    }
}

impl SqsQueue {
    /// The same queue with an inbox of its own (the delete task's handle: it must not keep
    /// its own inbox open).
    fn clone_without_inbox(&self) -> Self {
        Self {
            client: self.client.clone(),
            url: self.url.clone(),
            deletes: Arc::default(),
        }
    }

    /// `DeleteMessageBatch` calls for `receipts`, 10 at a time.
    async fn delete_now(&self, receipts: &[Receipt]) -> Result<(), RemoteError> {
        for chunk in receipts.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&r.0)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| RemoteError {
                    operation: "sqs:DeleteMessageBatch",
                    message: e.to_string(),
                    transient: false,
                })?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| remote_error("sqs:DeleteMessageBatch", e))?;
            Self::failures("sqs:DeleteMessageBatch", out.failed())?;
        }
        Ok(())
    }
}

/// Merges the deletes that are waiting into one call (or a few, of 10) at a time.
async fn merge_deletes(queue: SqsQueue, mut inbox: mpsc::UnboundedReceiver<Waiting>) {
    while let Some(first) = inbox.recv().await {
        let mut waiting = vec![first];
        let mut count = waiting[0].0.len();
        while count < BATCH {
            match inbox.try_recv() {
                Ok(w) => {
                    count += w.0.len();
                    waiting.push(w);
                }
                Err(_) => break,
            }
        }
        let mut receipts: Vec<Receipt> = waiting.iter().flat_map(|(r, _)| r.clone()).collect();
        // Two stages may finish with one message (a duplicate delivery): delete it once.
        receipts.sort_by(|a, b| a.0.cmp(&b.0));
        receipts.dedup();
        let result = queue.delete_now(&receipts).await;
        for (_, done) in waiting {
            let _ = done.send(result.clone());
        }
    }
}
