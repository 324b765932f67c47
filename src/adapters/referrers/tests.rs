//! Referrer discovery against a loopback HTTP server standing in for the two registry kinds
//! the real-stack tests cannot provide together: one with the referrers API (as ECR has) and
//! one that answers 405 for it (older registries); Debian's registry 2.8 (404, tag schema)
//! is covered by tests/signatures.rs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::gate::bundle::BUNDLE_MEDIA_TYPE;

type Routes = HashMap<String, (u16, &'static str, Vec<u8>)>;

fn sha(bytes: &[u8]) -> String {
    let sum = sha2::Sha256::digest(bytes);
    format!(
        "sha256:{}",
        sum.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Serves `routes` (path → status, content type, body), one request per connection; the
/// paths asked, in order.
async fn serve(routes: Routes) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            log.lock().unwrap().push(path.clone());
            let (status, ty, body) =
                routes
                    .get(&path)
                    .cloned()
                    .unwrap_or((404, "text/plain", vec![]));
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {ty}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&body).await;
        }
    });
    (host, asked)
}

/// A registry holding `subject` with a bundle, a Notary JWS and an SBOM as referrers; the
/// referrers index under `index_path`.
fn registry(index_path: &str, subject: &[u8], no_api: Option<u16>) -> Routes {
    let d = sha(subject);
    let mut routes = Routes::new();
    let base = "/v2/team/web";
    routes.insert(
        format!("{base}/manifests/{d}"),
        (200, MANIFEST, subject.to_vec()),
    );
    let mut entries = Vec::new();
    for (artifact, layer_type, blob) in [
        (BUNDLE_MEDIA_TYPE, BUNDLE_MEDIA_TYPE, b"bundle".to_vec()),
        (notary::ARTIFACT_TYPE, notary::JWS, b"jws".to_vec()),
        (
            "application/spdx+json",
            "application/spdx+json",
            b"sbom".to_vec(),
        ),
    ] {
        let b = sha(&blob);
        routes.insert(
            format!("{base}/blobs/{b}"),
            (200, "application/octet-stream", blob),
        );
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": MANIFEST, "artifactType": artifact,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(b"{}"), "size": 2},
            "layers": [{"mediaType": layer_type, "digest": b, "size": 3}],
            "subject": {"mediaType": MANIFEST, "digest": d, "size": subject.len()}
        })
        .to_string()
        .into_bytes();
        let md = sha(&m);
        routes.insert(format!("{base}/manifests/{md}"), (200, MANIFEST, m));
        entries.push(serde_json::json!({"mediaType": MANIFEST, "digest": md, "size": 1, "artifactType": artifact}));
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries});
    let path = index_path
        .replace("{d}", &d)
        .replace("{tag}", &d.replacen(':', "-", 1));
    routes.insert(path, (200, INDEX, index.to_string().into_bytes()));
    if let Some(status) = no_api {
        routes.insert(
            format!("{base}/referrers/{d}"),
            (status, "text/plain", vec![]),
        );
    }
    routes
}

async fn discover(routes: Routes, subject: &[u8]) -> (Found, Vec<String>) {
    let (host, asked) = serve(routes).await;
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let facts = SupplyFacts::new(&sdk);
    let auth = PullAuth {
        username: "AWS".into(),
        password: "secret".into(),
        registry_host: host.clone(),
    };
    let mut found = Found::default();
    let d = Digest::parse(&sha(subject)).unwrap();
    add(
        &facts,
        &format!("http://{host}/v2/team/web"),
        &auth,
        &d,
        &mut found,
    )
    .await
    .unwrap();
    let asked = asked.lock().unwrap().clone();
    (found, asked)
}

#[tokio::test]
async fn the_referrers_api_is_read_and_only_signatures_are_fetched() {
    let subject = br#"{"schemaVersion":2}"#;
    let routes = registry("/v2/team/web/referrers/{d}", subject, None);
    let (found, asked) = discover(routes, subject).await;
    assert_eq!(found.bundles, vec![b"bundle".to_vec()]);
    assert_eq!(found.notary.len(), 1);
    assert_eq!(found.notary[0].media_type, notary::JWS);
    assert_eq!(
        found.target,
        Some(Target {
            media_type: MANIFEST.into(),
            size: subject.len() as u64
        })
    );
    assert!(
        !asked.iter().any(|p| p.contains("/manifests/sha256-")),
        "no tag schema: {asked:?}"
    );
    assert!(
        !asked.iter().any(|p| p.contains(&sha(b"sbom"))),
        "the SBOM is not fetched: {asked:?}"
    );
}

#[tokio::test]
async fn a_registry_without_the_api_is_read_through_the_tag_schema() {
    let subject = br#"{"schemaVersion":2,"x":1}"#;
    for status in [404, 405] {
        let routes = registry("/v2/team/web/manifests/{tag}", subject, Some(status));
        let hex = sha(subject).replace(':', "-");
        let (found, asked) = discover(routes, subject).await;
        assert_eq!(found.bundles.len(), 1, "{status}: {asked:?}");
        assert_eq!(found.notary.len(), 1, "{status}: {asked:?}");
        assert!(
            asked
                .iter()
                .any(|p| p.ends_with(&format!("/manifests/{hex}"))),
            "{asked:?}"
        );
    }
}
