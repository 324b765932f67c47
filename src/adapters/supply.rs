//! [`Supply`]: the facts behind the supply-chain gates. Signatures come from the registry
//! the pull uses (ECR or the mirror), over its HTTP API with the same credentials; AWS
//! Signer's revocation status from AWS Signer ([`super::signer`]); scan results from ECR's
//! `DescribeImageScanFindings` (and the registry's scanning rules when there is none yet).

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_ecr::types::ImageIdentifier;
use futures::future::BoxFuture;

use super::aws::{EcrClients, remote_error};
use super::registry::{RegistryHttp, err};
use super::signer::SignerClients;
use crate::event::{Digest, ImageRef, Repository};
use crate::gate::aws_signer::Query;
use crate::gate::signature::{layers_of, sig_tag};
use crate::gate::{Found, ScanFacts, SignatureLayer};
use crate::ports::{PullAuth, RemoteError, Supply};

/// Accepted for a signature manifest.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Registry HTTP client, ECR and AWS Signer clients.
#[derive(Clone, Debug)]
pub struct SupplyFacts {
    pub(super) http: RegistryHttp,
    ecr: EcrClients,
    signer: SignerClients,
}

impl SupplyFacts {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            http: RegistryHttp::default(),
            ecr: EcrClients::new(sdk),
            signer: SignerClients::new(sdk),
        }
    }

    /// The same, reaching registries through `http` (which knows `[[registries]]`).
    pub fn with_http(mut self, http: RegistryHttp) -> Self {
        self.http = http;
        self
    }

    async fn fetch_signatures(
        &self,
        host: &str,
        auth: &PullAuth,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<Found, RemoteError> {
        let base = format!("{}/v2/{}", self.http.base_url(host), repository.as_str());
        let mut found = Found {
            simple: self.sig_tag_layers(&base, auth, digest).await?,
            ..Found::default()
        };
        super::referrers::add(self, &base, auth, digest, &mut found).await?;
        Ok(found)
    }

    /// The payload layers of cosign's `sha256-<hex>.sig` tag.
    async fn sig_tag_layers(
        &self,
        base: &str,
        auth: &PullAuth,
        digest: &Digest,
    ) -> Result<Vec<SignatureLayer>, RemoteError> {
        let url = format!("{base}/manifests/{}", sig_tag(digest));
        let op = "registry: signature manifest";
        let Some(manifest) = self.http.get(op, &url, auth, MANIFEST_TYPES).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for layer in layers_of(&manifest).map_err(|e| err(op, e, false))? {
            let url = format!("{base}/blobs/{}", layer.digest);
            let op = "registry: signature payload";
            let Some(payload) = self
                .http
                .get_verified(op, &url, auth, "*/*", &layer.digest)
                .await?
            else {
                return Err(err(op, format!("{url}: not found"), false));
            };
            out.push(SignatureLayer {
                payload,
                signature: layer.signature,
            });
        }
        Ok(out)
    }

    async fn fetch_scan(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<ScanFacts, RemoteError> {
        let call = self
            .ecr
            .region(image.region.as_deref())
            .describe_image_scan_findings()
            .repository_name(image.repository.as_str())
            .image_id(
                ImageIdentifier::builder()
                    .image_digest(digest.as_str())
                    .build(),
            )
            .max_results(1)
            .set_registry_id(image.registry.clone());
        let out = match call.send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_scan_not_found_exception()) =>
            {
                return self.scan_on_push(image).await;
            }
            Err(e) => return Err(remote_error("ecr:DescribeImageScanFindings", e)),
        };
        let status = out.image_scan_status();
        let counts = out
            .image_scan_findings()
            .and_then(|f| f.finding_severity_counts());
        let state = status
            .and_then(|s| s.status())
            .map(|s| s.as_str().to_owned());
        Ok(match (state.as_deref(), counts) {
            (Some("COMPLETE" | "ACTIVE") | None, Some(counts)) => ScanFacts::Complete(
                counts
                    .iter()
                    .map(|(s, n)| (s.as_str().to_owned(), (*n).max(0) as u64))
                    .collect::<BTreeMap<_, _>>(),
            ),
            (Some("COMPLETE" | "ACTIVE"), None) => ScanFacts::Complete(BTreeMap::new()),
            (Some("IN_PROGRESS" | "PENDING"), _) => ScanFacts::InProgress,
            (Some(other), _) => ScanFacts::Unavailable(format!(
                "{other}: {}",
                status.and_then(|s| s.description()).unwrap_or("")
            )),
            (None, None) => ScanFacts::InProgress,
        })
    }

    /// Whether the registry's scanning rules scan `image`'s repository on push (or
    /// continuously): the registry-level configuration, not the deprecated repository flag.
    /// Only a registry's owner can ask it: for another account's image (`registry` named;
    /// the deploy stage leaves it unnamed for the home account) the answer is unknown.
    async fn scan_on_push(&self, image: &ImageRef) -> Result<ScanFacts, RemoteError> {
        if let Some(account) = &image.registry {
            return Ok(ScanFacts::MissingUnasked(format!(
                "account {account}'s scanning rules cannot be read from here"
            )));
        }
        let out = self
            .ecr
            .region(image.region.as_deref())
            .batch_get_repository_scanning_configuration()
            .repository_names(image.repository.as_str())
            .send()
            .await
            .map_err(|e| remote_error("ecr:BatchGetRepositoryScanningConfiguration", e))?;
        let frequency = out
            .scanning_configurations()
            .first()
            .and_then(|c| c.scan_frequency())
            .map(|f| f.as_str().to_owned());
        let scan_on_push = matches!(
            frequency.as_deref(),
            Some("SCAN_ON_PUSH" | "CONTINUOUS_SCAN")
        );
        Ok(ScanFacts::Missing { scan_on_push })
    }
}

impl Supply for SupplyFacts {
    fn signatures<'a>(
        &'a self,
        host: &'a str,
        auth: &'a PullAuth,
        repository: &'a Repository,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<Found, RemoteError>> {
        Box::pin(self.fetch_signatures(host, auth, repository, digest))
    }

    fn scan<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<ScanFacts, RemoteError>> {
        Box::pin(self.fetch_scan(image, digest))
    }

    fn aws_signer_revoked<'a>(
        &'a self,
        query: &'a Query,
    ) -> BoxFuture<'a, Result<Vec<String>, RemoteError>> {
        Box::pin(self.signer.revoked(query))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A registry that answers every request with an endless chunked body (no
    /// Content-Length); counts the bytes the client took.
    async fn endless_registry() -> (String, Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let sent = Arc::new(AtomicU64::default());
        let counter = sent.clone();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = s.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            s.write_all(head.as_bytes()).await.unwrap();
            let chunk = vec![b'x'; 64 * 1024];
            let frame = [
                format!("{:x}\r\n", chunk.len()).into_bytes(),
                chunk,
                b"\r\n".to_vec(),
            ]
            .concat();
            while s.write_all(&frame).await.is_ok() {
                counter.fetch_add(frame.len() as u64, Ordering::Relaxed);
            }
        });
        (host, sent)
    }

    #[tokio::test]
    async fn a_chunked_body_past_the_limit_is_refused_while_streaming_not_read_to_its_end() {
        let (host, sent) = endless_registry().await;
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let supply = SupplyFacts::new(&sdk);
        let auth = PullAuth {
            username: "AWS".into(),
            password: "secret".into(),
            registry_host: host.clone(),
        };
        let repository = Repository::parse("shop/web").unwrap();
        let digest = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let started = std::time::Instant::now();
        let err = supply
            .signatures(&host, &auth, &repository, &digest)
            .await
            .expect_err("an endless body is refused");
        assert!(err.message.contains("larger than"), "{err}");
        assert!(!err.transient, "{err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // What the client took is the limit plus what sat in the socket buffers, not more.
        let taken = sent.load(Ordering::Relaxed);
        assert!(
            taken < 16 * super::super::registry::MAX_BODY as u64,
            "{taken} bytes sent"
        );
    }
}
