//! [`Archives`] on Amazon S3 (AWS SDK): HeadObject for what a key holds now, GetObject of
//! exactly that object (If-Match its ETag), streamed chunk by chunk: an archive is never held
//! in memory.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{ChecksumMode, ChecksumType};
use futures::StreamExt;

use super::aws::remote_error;
use crate::archive::{ObjectFacts, checksum_hex, metadata_hex};
use crate::ports::{ArchiveBody, Archives, RemoteError};

/// S3 as the host's credentials reach it.
pub struct S3Archives {
    client: Client,
}

impl S3Archives {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            client: client(sdk),
        }
    }
}

/// An S3 client for `sdk`.
pub(super) fn client(sdk: &aws_config::SdkConfig) -> Client {
    // The emulator and S3-compatible stores answer on one host: path-style addressing.
    let path_style = sdk.endpoint_url().is_some();
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(path_style)
        .build();
    Client::from_conf(config)
}

impl Archives for S3Archives {
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectFacts>, RemoteError> {
        let out = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
            Err(e) => {
                let mut e = remote_error("S3 HeadObject", e);
                if e.message.contains("HTTP 403") {
                    // Without s3:ListBucket, S3 answers a missing key with 403 too.
                    e.message += " (the key does not exist, or this host may not read it)";
                }
                return Err(e);
            }
        };
        let etag = out.e_tag().unwrap_or_default().trim_matches('"').to_owned();
        let multipart = crate::archive::is_multipart_etag(&etag);
        let from_metadata = out
            .metadata()
            .and_then(|m| m.get("sha256"))
            .and_then(|v| metadata_hex(v));
        Ok(Some(ObjectFacts {
            etag,
            version_id: out.version_id().unwrap_or_default().to_owned(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            // A multipart upload's SHA-256 is of its parts' checksums (COMPOSITE; S3 keeps a
            // full-object checksum of a multipart upload only for the CRCs): not comparable
            // with the bytes, so not a checksum of the object.
            sha256: out
                .checksum_sha256()
                .filter(|_| out.checksum_type() != Some(&ChecksumType::Composite))
                .filter(|_| !multipart)
                .and_then(checksum_hex)
                .or(from_metadata),
        }))
    }

    async fn open(
        &self,
        bucket: &str,
        key: &str,
        facts: &ObjectFacts,
    ) -> Result<ArchiveBody, RemoteError> {
        // If-Match rather than the version id: the same object, with s3:GetObject alone
        // (a version id would need s3:GetObjectVersion too).
        let get = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .if_match(format!("\"{}\"", facts.etag));
        let out = get.send().await.map_err(|e| {
            let mut e = remote_error("S3 GetObject", e);
            // 412: a newer object replaced it since HeadObject; the next look loads that.
            e.transient |= e.message.contains("PreconditionFailed");
            e
        })?;
        let body = futures::stream::unfold(out.body, |mut body| async move {
            body.next()
                .await
                .map(|chunk| (chunk.map_err(std::io::Error::other), body))
        });
        Ok(body.boxed())
    }
}
