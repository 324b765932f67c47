//! The registry client and the tag resolver against a loopback registry that behaves as
//! Harbor does: `401` with a bearer challenge, a token realm that wants the basic
//! credentials, and tags answered only with the token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::site::SiteRegistry;
use super::*;
use crate::config::SiteRegistry as Entry;
use crate::event::{ImageRef, Repository, Tag};
use crate::ports::Registry;

const TOKEN: &str = "tok-123";
/// `Basic base64("deploy:pw")`.
const BASIC: &str = "Basic ZGVwbG95OnB3";

/// One request as the registry saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
}

/// A Harbor-like registry: `tags` maps `repository:tag` to (media type, manifest).
async fn harbor(tags: HashMap<String, (&'static str, Vec<u8>)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (log, realm) = (seen.clone(), format!("http://{host}/service/token"));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let mut words = head.split_whitespace();
            let (method, path) = (
                words.next().unwrap_or("").to_owned(),
                words.next().unwrap_or("").to_owned(),
            );
            let authorization = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("authorization: ")
                        .or(l.strip_prefix("Authorization: "))
                })
                .map(str::to_owned);
            log.lock().unwrap().push(Seen {
                method: method.clone(),
                path: path.clone(),
                authorization: authorization.clone(),
            });
            let answer = answer(&tags, &realm, &method, &path, authorization.as_deref());
            let _ = s.write_all(&answer).await;
        }
    });
    (host, seen)
}

fn answer(
    tags: &HashMap<String, (&'static str, Vec<u8>)>,
    realm: &str,
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> Vec<u8> {
    let respond = |status: &str, headers: String, body: &[u8]| {
        let mut out = format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        if method != "HEAD" {
            out.extend_from_slice(body);
        }
        out
    };
    if path.starts_with("/service/token") {
        return match authorization {
            Some(BASIC) if path.contains("scope=repository%3Ateam%2Fweb%3Apull") => respond(
                "200 OK",
                "Content-Type: application/json\r\n".into(),
                format!(r#"{{"token":"{TOKEN}","expires_in":1800}}"#).as_bytes(),
            ),
            _ => respond("401 Unauthorized", String::new(), b""),
        };
    }
    if authorization != Some(&format!("Bearer {TOKEN}")) {
        let challenge = format!(
            "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"harbor-registry\",scope=\"repository:team/web:pull\"\r\n"
        );
        return respond("401 Unauthorized", challenge, b"");
    }
    let Some((repo, tag)) = path
        .strip_prefix("/v2/")
        .and_then(|p| p.split_once("/manifests/"))
    else {
        return respond("404 Not Found", String::new(), b"");
    };
    match tags.get(&format!("{repo}:{tag}")) {
        Some((media, body)) => respond(
            "200 OK",
            format!(
                "Content-Type: {media}\r\nDocker-Content-Digest: {}\r\n",
                sha256_of(body)
            ),
            body,
        ),
        None => respond("404 Not Found", String::new(), b""),
    }
}

fn entry(host: &str) -> (tempfile::TempDir, Entry) {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "pw\n").unwrap();
    let e = Entry {
        host: host.to_owned(),
        username: "deploy".into(),
        password_file: password.display().to_string(),
        insecure: true,
        ..Entry::default()
    };
    (dir, e)
}

fn image(host: &str, repo: &str, tag: &str) -> ImageRef {
    ImageRef::site(
        host,
        Repository::parse(repo).unwrap(),
        Tag::parse(tag).unwrap(),
    )
}

#[tokio::test]
async fn a_harbor_tag_is_resolved_with_a_bearer_token_fetched_once_with_the_basic_credentials() {
    let manifest =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.to_vec();
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", "b".repeat(64)), "size": 10,
            "platform": {"architecture": "amd64", "os": "linux"}}],
    })
    .to_string()
    .into_bytes();
    let tags = HashMap::from([
        (
            "team/web:prod".to_owned(),
            (
                "application/vnd.oci.image.manifest.v1+json",
                manifest.clone(),
            ),
        ),
        (
            "team/web:multi".to_owned(),
            ("application/vnd.oci.image.index.v1+json", index.clone()),
        ),
    ]);
    let (host, seen) = harbor(tags).await;
    let (_d, e) = entry(&host);
    let sites = Arc::new(Sites::load(&[e]).unwrap());
    let resolver = SiteRegistry::new(RegistryHttp::new(sites));
    let (prod, multi, gone) = (
        image(&host, "team/web", "prod"),
        image(&host, "team/web", "multi"),
        image(&host, "team/web", "gone"),
    );
    let got = resolver.resolve(std::slice::from_ref(&prod)).await;
    let desired = got[&prod].clone().unwrap().unwrap();
    assert_eq!(desired.digest.as_str(), sha256_of(&manifest));
    assert!(desired.entries.is_empty());
    // An index: its platforms are read; a missing tag is `None`, not an error.
    let got = resolver.resolve(&[multi.clone(), gone.clone()]).await;
    let desired = got[&multi].clone().unwrap().unwrap();
    assert_eq!(desired.digest.as_str(), sha256_of(&index));
    assert_eq!(desired.entries.len(), 1);
    assert_eq!(got[&gone].clone().unwrap(), None);
    // One token for the repository, fetched once with the basic credentials; every tag
    // asked after that carries it.
    let seen = seen.lock().unwrap().clone();
    let token_calls: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path.starts_with("/service/token"))
        .collect();
    assert_eq!(token_calls.len(), 1, "{seen:?}");
    assert_eq!(token_calls[0].authorization.as_deref(), Some(BASIC));
    let heads: Vec<&Seen> = seen.iter().filter(|s| s.method == "HEAD").collect();
    assert!(heads.len() >= 3, "{seen:?}");
    assert!(
        heads[1..]
            .iter()
            .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {TOKEN}") as &str)),
        "{seen:?}"
    );
}

#[tokio::test]
async fn refused_credentials_and_an_unlisted_host_are_errors_that_say_so() {
    let (host, _) = harbor(HashMap::new()).await;
    let (_d, mut e) = entry(&host);
    let wrong = e.password_file.clone();
    std::fs::write(&wrong, "not-the-password").unwrap();
    e.password_file = wrong;
    let resolver = SiteRegistry::new(RegistryHttp::new(Arc::new(Sites::load(&[e]).unwrap())));
    let prod = image(&host, "team/web", "prod");
    let err = resolver.resolve(std::slice::from_ref(&prod)).await[&prod]
        .clone()
        .unwrap_err();
    assert!(
        err.message.contains("bearer token") && err.message.contains("401"),
        "{err}"
    );
    assert!(!err.transient, "{err}");
    let elsewhere = image("other.site:5000", "team/web", "prod");
    let err = resolver.resolve(std::slice::from_ref(&elsewhere)).await[&elsewhere]
        .clone()
        .unwrap_err();
    assert!(err.message.contains("no [[registries]] entry"), "{err}");
}

#[test]
fn an_entry_whose_files_cannot_be_read_is_refused_naming_the_entry_and_the_file() {
    let e = Entry {
        host: "r:5000".into(),
        username: "u".into(),
        password_file: "/nonexistent/password".into(),
        ..Entry::default()
    };
    let err = Sites::load(&[e]).unwrap_err();
    assert!(
        err.contains("registries[0].password_file /nonexistent/password"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate").unwrap();
    let e = Entry {
        host: "r:5000".into(),
        ca_file: ca.display().to_string(),
        ..Entry::default()
    };
    let err = Sites::load(&[e]).unwrap_err();
    assert!(err.contains("registries[0].ca_file"), "{err}");
}
