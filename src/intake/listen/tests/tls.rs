//! TLS: a site CA and a server certificate for 127.0.0.1 made by `openssl` for each test.

use std::path::Path;
use std::process::Command;

use super::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ca.pem`, and `server.pem` + `server.key` signed by it for IP 127.0.0.1; `other.key` is
/// a key of no certificate.
fn site_pki() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=site test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
    ca.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(d, &ca);
    let mut csr = vec!["req", "-new", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(d, &csr);
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "other.key",
        ],
    );
    dir
}

fn tls_config(dir: &Path, cert: &str, key: &str) -> ListenConfig {
    ListenConfig {
        tls: Some(TlsFiles {
            cert: dir.join(cert),
            key: dir.join(key),
        }),
        ..config()
    }
}

async fn bind_error(cfg: &ListenConfig) -> String {
    match bind(cfg).await {
        Err(e) => e.to_string(),
        Ok(b) => panic!("bound {:?} with {:?}", b.local_addr(), cfg.tls),
    }
}

#[tokio::test]
async fn over_tls_a_client_trusting_the_site_ca_is_answered_and_its_push_recorded() {
    let pki = site_pki();
    let s = start(tls_config(pki.path(), "server.pem", "server.key")).await;
    let ca = std::fs::read(pki.path().join("ca.pem")).unwrap();
    let trusting = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap();
    let r = trusting
        .post(format!("https://{}{PATH}", s.addr))
        .bearer_auth(TOKEN)
        .header("content-type", DISTRIBUTION)
        .body(fixture("distribution-recorded-tag-push.json"))
        .send()
        .await
        .expect("TLS handshake and answer");
    assert_eq!(r.status(), 200);
    assert_eq!(s.recorder.calls().len(), 1);
    // Plain HTTP on the TLS port gets no answer.
    assert!(client().post(s.url(PATH)).send().await.is_err());
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_site_ca_cannot_post() {
    let pki = site_pki();
    let s = start(tls_config(pki.path(), "server.pem", "server.key")).await;
    let other = site_pki();
    let stranger_ca = std::fs::read(other.path().join("ca.pem")).unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&stranger_ca).unwrap()])
        .build()
        .unwrap();
    let r = client
        .post(format!("https://{}{PATH}", s.addr))
        .bearer_auth(TOKEN)
        .body(fixture("distribution-recorded-tag-push.json"))
        .send()
        .await;
    assert!(r.is_err(), "{r:?}");
    assert!(s.recorder.calls().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn an_unfinished_tls_handshake_is_closed_after_the_header_timeout() {
    let pki = site_pki();
    let limits = Limits {
        connections: 4,
        header_read: Duration::from_millis(500),
    };
    let s = start_with(tls_config(pki.path(), "server.pem", "server.key"), limits).await;
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "closed: {read:?}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    s.stop().await;
}

#[tokio::test]
async fn bind_names_a_missing_certificate_or_key_file() {
    let pki = site_pki();
    let e = bind_error(&tls_config(pki.path(), "missing.pem", "server.key")).await;
    assert!(
        e.contains("certificate file") && e.contains("missing.pem"),
        "{e}"
    );
    assert!(e.contains("cannot be read"), "{e}");
    let e = bind_error(&tls_config(pki.path(), "server.pem", "missing.key")).await;
    assert!(e.contains("key file") && e.contains("missing.key"), "{e}");
}

#[tokio::test]
async fn bind_names_a_file_that_is_not_what_it_should_be() {
    let pki = site_pki();
    let e = bind_error(&tls_config(pki.path(), "server.key", "server.key")).await;
    assert!(
        e.contains("server.key") && e.contains("no CERTIFICATE"),
        "{e}"
    );
    let e = bind_error(&tls_config(pki.path(), "server.pem", "server.pem")).await;
    assert!(
        e.contains("key file") && e.contains("no private key"),
        "{e}"
    );
}

#[tokio::test]
async fn bind_refuses_a_key_that_is_not_the_certificates() {
    let pki = site_pki();
    let e = bind_error(&tls_config(pki.path(), "server.pem", "other.key")).await;
    assert!(e.contains("server.pem") && e.contains("other.key"), "{e}");
}
