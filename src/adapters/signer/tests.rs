//! The adapter's request and the mapping of its answers, against a loopback HTTP server
//! that stands in for AWS Signer: the emulator the other AWS tests use (moto) implements
//! only AWS Signer's signing-profile calls, not `GetRevocationStatus`. The server records
//! each request and answers as AWS Signer's API reference says it does (`revokedEntities`,
//! or an error type with its HTTP status). The SDK's own HTTP client carries the requests;
//! only its name lookup is the test's (the API's `data-` host prefix).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_sdk_signer::config::Credentials;
use aws_smithy_http_client::tls::Provider;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::gate::aws_signer::PLATFORM;

const PROFILE: &str = "arn:aws:signer:us-east-2:111122223333:/signing-profiles/release/AbCdEf1234";
const JOB: &str = "arn:aws:signer:us-east-2:111122223333:/signing-jobs/0c6f7a0e-5dd3-4dc4";

/// Serves one fixed answer (status, extra header line, body) to every request; the heads
/// of the requests, in order.
async fn stand_in(status: u16, header: &str, body: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let log = heads.clone();
    let answer = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{header}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let n = s.read(&mut buf).await.unwrap_or(0);
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    (endpoint, heads)
}

/// Every host name is this machine: `GetRevocationStatus` is sent to the endpoint's host
/// with the prefix `data-` (the API's host prefix: `data-signer.<region>.amazonaws.com`), which
/// no loopback address carries.
#[derive(Clone, Debug)]
struct Loopback;

impl ResolveDns for Loopback {
    fn resolve_dns<'a>(&'a self, _: &'a str) -> DnsFuture<'a> {
        DnsFuture::ready(Ok(vec![std::net::Ipv4Addr::LOCALHOST.into()]))
    }
}

/// `endpoint` is the stand-in's `http://127.0.0.1:PORT`: asked as `signer.test:PORT`.
async fn clients(endpoint: &str) -> SignerClients {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build_with_resolver(Loopback);
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("eu-west-2"))
        .endpoint_url(endpoint.replace("127.0.0.1", "signer.test"))
        .http_client(http)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(crate::adapters::aws::timeouts())
        .load()
        .await;
    SignerClients::new(&sdk)
}

fn query() -> Query {
    Query {
        signed_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000),
        platform_id: PLATFORM.into(),
        profile_version_arn: PROFILE.into(),
        job_arn: JOB.into(),
        certificate_hashes: vec!["a1".repeat(96), "b2".repeat(96)],
    }
}

/// The request line's path and its query parameters, decoded, in order.
fn request(head: &str) -> (String, String, Vec<(String, String)>) {
    let line = head.lines().next().unwrap();
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap().to_owned();
    let target = parts.next().unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (method, path.to_owned(), params)
}

#[tokio::test]
async fn the_request_names_the_signature_and_the_answer_is_the_revoked_entities() {
    let body = format!(r#"{{"revokedEntities":["{JOB}"]}}"#);
    let (endpoint, heads) = stand_in(200, "", &body).await;
    let signer = clients(&endpoint).await;
    assert_eq!(
        signer.revoked(&query()).await.unwrap(),
        vec![JOB.to_owned()]
    );
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 1);
    let (method, path, params) = request(&heads[0]);
    assert_eq!((method.as_str(), path.as_str()), ("GET", "/revocations"));
    let q = query();
    let expected: Vec<(String, String)> = [
        ("signatureTimestamp", "2026-05-28T20:26:40Z"),
        ("platformId", PLATFORM),
        ("profileVersionArn", PROFILE),
        ("jobArn", JOB),
        ("certificateHashes", q.certificate_hashes[0].as_str()),
        ("certificateHashes", q.certificate_hashes[1].as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut sorted = params.clone();
    sorted.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(sorted, want, "{}", heads[0]);
    // Signed for AWS Signer in the signing profile's region, not the configured one, and
    // sent to the API's data- host.
    let header = |name: &str| {
        heads[0]
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    let auth = header("authorization:");
    assert!(auth.contains("/us-east-2/signer/aws4_request"), "{auth}");
    let host = header("host:");
    assert!(host.contains(" data-signer.test:"), "{host}");
}

#[tokio::test]
async fn an_answer_without_revoked_entities_is_none_revoked() {
    let (endpoint, _) = stand_in(200, "", "{}").await;
    let signer = clients(&endpoint).await;
    assert_eq!(
        signer.revoked(&query()).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_refused_call_names_the_permission_and_an_unreachable_one_is_transient() {
    let (endpoint, _) = stand_in(
        403,
        "x-amzn-ErrorType: AccessDeniedException\r\n",
        r#"{"message":"User is not authorized to perform: signer:GetRevocationStatus"}"#,
    )
    .await;
    let e = clients(&endpoint)
        .await
        .revoked(&query())
        .await
        .unwrap_err();
    assert_eq!(e.operation, "signer:GetRevocationStatus");
    assert!(
        e.message.contains("AccessDeniedException (HTTP 403)") && !e.transient,
        "{e}"
    );
    // Nothing listens there any more.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let e = clients(&closed).await.revoked(&query()).await.unwrap_err();
    assert!(e.transient, "{e}");
}
