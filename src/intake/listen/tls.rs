//! The listener's TLS: a certificate chain and its private key from PEM files, served with
//! the aws-lc-rs provider that the rest of the agent's rustls uses.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;

use super::ListenError;

/// `[intake] tls_cert_file` (the chain, leaf first) and `tls_key_file` (PKCS#8, PKCS#1 or
/// SEC1), both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Reads both files and checks that the key is the certificate's.
pub(super) async fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ListenError> {
    let cert_pem = read(&files.cert, "certificate").await?;
    let key_pem = read(&files.key, "key").await?;
    let file_error = |what, path: &Path, reason: String| ListenError::TlsFile {
        what,
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error("certificate", &files.cert, format!("not PEM: {e}")))?;
    if chain.is_empty() {
        let reason = "holds no CERTIFICATE block".to_owned();
        return Err(file_error("certificate", &files.cert, reason));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| file_error("key", &files.key, format!("no private key in it: {e}")))?;
    let pair_error = |reason: String| ListenError::TlsKeyPair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason,
    };
    let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| pair_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| pair_error(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, ListenError> {
    tokio::fs::read(path)
        .await
        .map_err(|e| ListenError::TlsFile {
            what,
            path: path.to_owned(),
            reason: format!("cannot be read: {e}"),
        })
}
