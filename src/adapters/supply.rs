//! [`Supply`]: the facts behind the supply-chain gates. Signatures come from the registry
//! the pull uses (ECR or the mirror), over its HTTP API with the same credentials; AWS
//! Signer's revocation status from AWS Signer ([`super::signer`]); scan results from ECR's
//! `DescribeImageScanFindings` (and the registry's scanning rules when there is none yet).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_ecr::types::ImageIdentifier;
use futures::future::BoxFuture;
use sha2::Digest as _;

use super::aws::{EcrClients, remote_error};
use super::signer::SignerClients;
use crate::event::{Digest, ImageRef, Repository};
use crate::gate::aws_signer::Query;
use crate::gate::signature::{layers_of, sig_tag};
use crate::gate::{Found, ScanFacts, SignatureLayer};
use crate::ports::{PullAuth, RemoteError, Supply};

/// Manifests and payloads larger than this are refused (a payload is a few hundred bytes).
const MAX_BODY: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Registry HTTP client, ECR and AWS Signer clients.
#[derive(Clone, Debug)]
pub struct SupplyFacts {
    http: reqwest::Client,
    ecr: EcrClients,
    signer: SignerClients,
}

pub(super) fn err(
    operation: &'static str,
    message: impl Into<String>,
    transient: bool,
) -> RemoteError {
    RemoteError {
        operation,
        message: message.into(),
        transient,
    }
}

/// `http` for a loopback registry (as Docker treats it), `https` for any other.
fn base_url(host: &str) -> String {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let loopback =
        name == "localhost" || name.starts_with("127.") || name.trim_matches(['[', ']']) == "::1";
    format!("{}://{host}", if loopback { "http" } else { "https" })
}

impl SupplyFacts {
    pub fn new(sdk: &SdkConfig) -> Self {
        // Building fails only when no TLS backend loads; the default client then says so.
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            http,
            ecr: EcrClients::new(sdk),
            signer: SignerClients::new(sdk),
        }
    }

    /// GET `url` with basic auth: the body, or `None` on 404.
    pub(super) async fn get(
        &self,
        op: &'static str,
        url: &str,
        auth: &PullAuth,
        accept: &str,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let got = self.get_typed(op, url, auth, accept, &[404]).await?;
        Ok(got.map(|(_, b)| b))
    }

    /// As [`Self::get`], for content addressed by `digest`: its bytes must hash to it.
    pub(super) async fn get_verified(
        &self,
        op: &'static str,
        url: &str,
        auth: &PullAuth,
        accept: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let body = self.get(op, url, auth, accept).await?;
        if let Some(b) = &body {
            check_digest(op, url, b, digest)?;
        }
        Ok(body)
    }

    /// As [`Self::get`], with the answer's Content-Type; `None` for the statuses `absent`.
    pub(super) async fn get_typed(
        &self,
        op: &'static str,
        url: &str,
        auth: &PullAuth,
        accept: &str,
        absent: &[u16],
    ) -> Result<Option<(Option<String>, Vec<u8>)>, RemoteError> {
        let request = self
            .http
            .get(url)
            .basic_auth(&auth.username, Some(&auth.password))
            .header("Accept", accept);
        self.bounded(op, url, request, absent, MAX_BODY).await
    }

    /// GET `url` without the registry's credentials (a CA's CRL), at most `max` bytes.
    pub(super) async fn get_public(
        &self,
        op: &'static str,
        url: &str,
        max: usize,
    ) -> Result<Vec<u8>, RemoteError> {
        let request = self.http.get(url);
        let got = self.bounded(op, url, request, &[], max).await?;
        Ok(got.map(|(_, b)| b).unwrap_or_default())
    }

    /// Sends `request`; the body, read while streaming and refused past `max` bytes.
    async fn bounded(
        &self,
        op: &'static str,
        url: &str,
        request: reqwest::RequestBuilder,
        absent: &[u16],
        max: usize,
    ) -> Result<Option<(Option<String>, Vec<u8>)>, RemoteError> {
        let mut resp = request
            .send()
            .await
            .map_err(|e| err(op, format!("{url}: {e}"), true))?;
        let status = resp.status();
        if absent.contains(&status.as_u16()) {
            return Ok(None);
        }
        if !status.is_success() {
            let transient = status.is_server_error() || status.as_u16() == 429;
            return Err(err(op, format!("{url}: HTTP {status}"), transient));
        }
        let media_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let too_large = || err(op, format!("{url}: larger than {max} bytes"), false);
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        // Without a Content-Length (chunked), the limit holds while reading: a body past it
        // is dropped there, never read to its end.
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| err(op, format!("{url}: {e}"), true))?
        {
            if body.len() + chunk.len() > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some((media_type, body)))
    }

    async fn fetch_signatures(
        &self,
        host: &str,
        auth: &PullAuth,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<Found, RemoteError> {
        let base = format!("{}/v2/{}", base_url(host), repository.as_str());
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
        let Some(manifest) = self.get(op, &url, auth, MANIFEST_TYPES).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for layer in layers_of(&manifest).map_err(|e| err(op, e, false))? {
            let url = format!("{base}/blobs/{}", layer.digest);
            let op = "registry: signature payload";
            let Some(payload) = self
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

/// Refuses content that does not hash to the digest it was asked by.
pub(super) fn check_digest(
    op: &'static str,
    url: &str,
    body: &[u8],
    digest: &Digest,
) -> Result<(), RemoteError> {
    let sum = sha2::Sha256::digest(body);
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    if format!("sha256:{hex}") != digest.as_str() {
        return Err(err(
            op,
            format!("{url}: content does not match its digest"),
            false,
        ));
    }
    Ok(())
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
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // What the client took is the limit plus what sat in the socket buffers, not more.
        let taken = sent.load(Ordering::Relaxed);
        assert!(taken < 16 * MAX_BODY as u64, "{taken} bytes sent");
    }
}
