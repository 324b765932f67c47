//! [`Queue`] on Amazon SQS, and the queue's own attributes that `doctor` checks.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName, QueueAttributeName,
};

use super::aws::remote_error;
use crate::ports::{Message, Queue, Receipt, RemoteError, Unset};

/// SQS takes at most 10 entries per batch call.
const BATCH: usize = 10;
/// Headroom over the long-poll wait before a receive attempt is considered hung.
const RECEIVE_HEADROOM: Duration = Duration::from_secs(10);

/// The host's queue.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    /// `max_wait` is the long-poll wait: the HTTP attempt timeout is set above it.
    pub fn new(sdk: &SdkConfig, url: &str, max_wait: Duration) -> Self {
        // The shared bounds, widened so that a long poll is not cut short.
        let attempt = max_wait + RECEIVE_HEADROOM;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(super::aws::CONNECT_TIMEOUT)
            .operation_attempt_timeout(attempt)
            .operation_timeout(super::aws::OPERATION_TIMEOUT.max(attempt * 3))
            .build();
        let config = aws_sdk_sqs::config::Builder::from(sdk)
            .timeout_config(timeouts)
            .build();
        Self {
            client: Client::from_conf(config),
            url: url.to_owned(),
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

    async fn set_visibility(&self, receipts: &[Receipt], timeout: Duration) -> Result<(), Unset> {
        let mut unset: Option<Unset> = None;
        for chunk in receipts.chunks(BATCH) {
            // One failed call or entry does not keep the others from being tried.
            let (failed, error) = match self.visibility_batch(chunk, timeout).await {
                Ok(failed) if failed.is_empty() => continue,
                Ok(failed) => {
                    let error = RemoteError {
                        operation: "sqs:ChangeMessageVisibilityBatch",
                        message: format!("{} entries failed: {failed:?}", failed.len()),
                        transient: true,
                    };
                    (failed.into_iter().map(|(r, _)| r).collect(), error)
                }
                Err(e) => (chunk.to_vec(), e),
            };
            match &mut unset {
                Some(u) => u.failed.extend(failed),
                None => unset = Some(Unset { failed, error }),
            }
        }
        unset.map_or(Ok(()), Err)
    }
}

impl SqsQueue {
    /// One ChangeMessageVisibilityBatch call for ≤10 receipts: the receipts it failed for,
    /// with SQS's code for each.
    async fn visibility_batch(
        &self,
        chunk: &[Receipt],
        timeout: Duration,
    ) -> Result<Vec<(Receipt, String)>, RemoteError> {
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
        Ok(out
            .failed()
            .iter()
            .filter_map(|f| {
                let receipt = chunk.get(f.id().parse::<usize>().ok()?)?;
                Some((receipt.clone(), f.code().to_owned()))
            })
            .collect())
    }
}

/// What `doctor` needs to know about the queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueFacts {
    pub arn: Option<String>,
    pub redrive_policy: Option<String>,
}

/// `sqs:GetQueueAttributes` for the queue's ARN and redrive policy.
pub async fn queue_facts(sdk: &SdkConfig, url: &str) -> Result<QueueFacts, RemoteError> {
    let out = aws_sdk_sqs::Client::new(sdk)
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| remote_error("sqs:GetQueueAttributes", e))?;
    let attrs = out.attributes.unwrap_or_default();
    Ok(QueueFacts {
        arn: attrs.get(&QueueAttributeName::QueueArn).cloned(),
        redrive_policy: attrs
            .get(&QueueAttributeName::RedrivePolicy)
            .filter(|p| !p.is_empty())
            .cloned(),
    })
}
