//! [`LedgerObjects`] on Amazon S3: the fleet ledger's objects (SPEC §17). The agent only
//! puts its own key (its IAM policy allows nothing else); `fleet` lists and reads them all.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use super::aws::remote_error;
use crate::ports::{LedgerObjects, RemoteError};

/// S3 as this machine's credentials reach it.
pub struct S3Ledger {
    client: Client,
}

impl S3Ledger {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            client: super::s3::client(sdk),
        }
    }
}

impl LedgerObjects for S3Ledger {
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), RemoteError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| remote_error("S3 PutObject", e))
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, RemoteError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| remote_error("S3 ListObjectsV2", e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, RemoteError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| remote_error("S3 GetObject", e))?;
        let body = out.body.collect().await.map_err(|e| RemoteError {
            operation: "S3 GetObject",
            message: format!("reading s3://{bucket}/{key}: {e}"),
            transient: true,
        })?;
        Ok(body.into_bytes().to_vec())
    }
}
