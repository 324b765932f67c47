//! Private CAs made with openssl for the signature tests: one whose certificates cosign 3
//! signs with (`--certificate --certificate-chain`), one whose certificate names a CRL served
//! on loopback, for notation to sign with.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::checked;
use super::docker::{REGISTRY_PASSWORD, REGISTRY_USER, TestRegistry};
use super::signing::{PASSWORD, cosign3, notation, offline, run};

fn openssl(dir: &Path, args: &[&str]) {
    checked(Command::new("openssl").args(args).current_dir(dir));
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// A private CA and a code-signing certificate it issued (e-mail SAN, Fulcio's issuer
/// extension), signing with cosign 3 (`--certificate --certificate-chain`).
pub struct CosignCa {
    dir: tempfile::TempDir,
}

impl CosignCa {
    pub fn generate(email: &str, issuer: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut root = vec!["req", "-x509"];
        root.extend(EC);
        root.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "30",
            "-subj",
            "/CN=Test Root/O=Example",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        openssl(dir.path(), &root);
        Self::issue(dir, email, issuer)
    }

    /// A certificate for another identity from the same CA.
    pub fn another(&self, email: &str, issuer: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for f in ["ca.key", "ca.crt"] {
            std::fs::copy(self.dir.path().join(f), dir.path().join(f)).unwrap();
        }
        Self::issue(dir, email, issuer)
    }

    fn issue(dir: tempfile::TempDir, email: &str, issuer: &str) -> Self {
        let d = dir.path();
        std::fs::write(d.join("leaf.ext"), format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n\
             subjectAltName=email:{email}\n1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:{issuer}\n")).unwrap();
        let mut csr = vec!["req"];
        csr.extend(EC);
        csr.extend([
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=release",
        ]);
        openssl(d, &csr);
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "leaf.crt",
                "-days",
                "7",
                "-extfile",
                "leaf.ext",
            ],
        );
        checked(
            Command::new(cosign3())
                .args([
                    "import-key-pair",
                    "--key",
                    "leaf.key",
                    "--output-key-prefix",
                    "leafc",
                ])
                .current_dir(d)
                .env("COSIGN_PASSWORD", PASSWORD),
        );
        Self { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    pub fn sign3(&self, registry: &TestRegistry, repo: &str, digest: &str) {
        let image = format!("{}/{repo}@{digest}", registry.host);
        let offline = offline(self.dir.path(), registry, Some(&self.root()));
        let mut args = vec![
            "sign",
            "--key",
            "leafc.key",
            "--certificate",
            "leaf.crt",
            "--certificate-chain",
            "ca.crt",
            "--allow-insecure-registry",
            "-y",
        ];
        args.extend(offline.iter().map(String::as_str));
        args.push(&image);
        run(self.dir.path(), registry, &cosign3(), &args);
    }
}

/// A CA of our own whose code-signing certificate names a CRL this process serves on
/// loopback, for notation to sign with (its `signingkeys.json` pointed at the key and
/// chain); `revoke` lists the certificate in the CRL served from then on.
pub struct CrlCa {
    dir: tempfile::TempDir,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CrlCa {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("crlnumber"), "1000\n").unwrap();
        std::fs::write(
            d.join("ca.cnf"),
            "[ca]\ndefault_ca = CA\n[CA]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
             default_md = sha256\ndefault_crl_days = 30\n",
        )
        .unwrap();
        let rsa = ["-newkey", "rsa:2048", "-nodes"];
        let mut root = vec!["req", "-x509"];
        root.extend(rsa);
        root.extend([
            "-keyout",
            "root.key",
            "-out",
            "root.crt",
            "-days",
            "30",
            "-subj",
            "/C=US/ST=WA/O=Example/CN=CRL Root",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(d, &root);
        std::fs::write(
            d.join("leaf.ext"),
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=codeSigning\ncrlDistributionPoints=URI:http://127.0.0.1:{port}/root.crl\n"
            ),
        )
        .unwrap();
        let mut csr = vec!["req"];
        csr.extend(rsa);
        csr.extend([
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/C=US/ST=WA/O=Example/CN=crl-release",
        ]);
        openssl(d, &csr);
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "root.crt",
                "-CAkey",
                "root.key",
                "-CAcreateserial",
                "-out",
                "leaf.crt",
                "-days",
                "7",
                "-extfile",
                "leaf.ext",
            ],
        );
        let chain = [
            std::fs::read(d.join("leaf.crt")).unwrap(),
            std::fs::read(d.join("root.crt")).unwrap(),
        ]
        .concat();
        std::fs::write(d.join("chain.pem"), chain).unwrap();
        let keys = d.join("xdg/notation");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::write(
            keys.join("signingkeys.json"),
            format!(
                r#"{{"default":"crl","keys":[{{"name":"crl","keyPath":"{}","certPath":"{}"}}]}}"#,
                d.join("leaf.key").display(),
                d.join("chain.pem").display()
            ),
        )
        .unwrap();
        let ca = Self {
            dir,
            stop: Default::default(),
        };
        ca.publish_crl();
        ca.serve(listener);
        ca
    }

    fn publish_crl(&self) {
        let d = self.dir.path();
        openssl(
            d,
            &[
                "ca", "-config", "ca.cnf", "-gencrl", "-keyfile", "root.key", "-cert", "root.crt",
                "-out", "crl.pem",
            ],
        );
        openssl(
            d,
            &[
                "crl", "-in", "crl.pem", "-outform", "DER", "-out", "root.crl",
            ],
        );
    }

    /// Answers every request with the CRL as it is now, until dropped.
    fn serve(&self, listener: std::net::TcpListener) {
        use std::io::{Read, Write};
        listener.set_nonblocking(true).unwrap();
        let (crl, stop) = (self.dir.path().join("root.crl"), self.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                };
                let _ = s.set_nonblocking(false);
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let body = std::fs::read(&crl).unwrap_or_default();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
            }
        });
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root.crt")
    }

    /// Lists the signing certificate in the CRL served from now on.
    pub fn revoke(&self) {
        let d = self.dir.path();
        openssl(
            d,
            &[
                "ca", "-config", "ca.cnf", "-revoke", "leaf.crt", "-keyfile", "root.key", "-cert",
                "root.crt",
            ],
        );
        self.publish_crl();
    }

    pub fn sign(&self, registry: &TestRegistry, repo: &str, digest: &str) {
        let image = format!("{}/{repo}@{digest}", registry.host);
        let args = [
            "sign",
            "--insecure-registry",
            "-u",
            REGISTRY_USER,
            "-p",
            REGISTRY_PASSWORD,
            &image,
        ];
        run(self.dir.path(), registry, &notation(), &args);
    }
}

impl Drop for CrlCa {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
