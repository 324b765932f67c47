//! X.509 for the signature gate: trusted roots read from PEM files, a signer's certificate
//! (its path to a root at a given time, its signature over a message, its names) and what
//! its revocation would need. Paths and signatures go through webpki (the verifier rustls
//! uses, with its aws-lc-rs algorithms); the fields through RustCrypto's `x509-cert`. Pure.

use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage, aws_lc_rs as algs};
use x509_cert::Certificate;
use x509_cert::der::asn1::{Ia5String, Utf8StringRef};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, DecodePem, Encode};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, CrlDistributionPoints, KeyUsage as KeyUsageExt, SubjectAltName,
};

/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER value bytes: a signer's certificate that names
/// extended key usages must name this one.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// Fulcio's OIDC issuer: 1.3.6.1.4.1.57264.1.8 (a DER UTF8String) and its deprecated
/// predecessor 1.3.6.1.4.1.57264.1.1 (the raw string).
const FULCIO_ISSUER: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
const FULCIO_ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// id-ad-ocsp in an Authority Information Access extension.
const OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
/// Certificates a signature may carry and roots a file may hold: more are refused.
pub const MAX_CHAIN: usize = 10;

/// Every signature algorithm a signer's key may use (the key's type picks one).
pub static SIGNATURE_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    algs::ECDSA_P256_SHA256,
    algs::ECDSA_P384_SHA384,
    algs::ECDSA_P521_SHA512,
    algs::ED25519,
    algs::RSA_PKCS1_2048_8192_SHA256,
    algs::RSA_PKCS1_2048_8192_SHA384,
    algs::RSA_PKCS1_2048_8192_SHA512,
    algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// Trusted CA certificates (a root, or an intermediate trusted as an anchor), by file.
#[derive(Clone, Debug, Default)]
pub struct Roots {
    anchors: Vec<TrustAnchor<'static>>,
    /// `file: subject` of each, for `doctor` and the reasons.
    pub names: Vec<String>,
}

impl Roots {
    /// Adds every certificate of a PEM file.
    pub fn add_pem(&mut self, file: &str, pem: &str) -> Result<(), String> {
        let certs = Certificate::load_pem_chain(pem.as_bytes())
            .map_err(|e| format!("{file}: not PEM certificates: {e}"))?;
        if certs.is_empty() || certs.len() > MAX_CHAIN {
            return Err(format!(
                "{file}: expected 1 to {MAX_CHAIN} PEM certificates, found {}",
                certs.len()
            ));
        }
        for cert in certs {
            let der = cert.to_der().map_err(|e| format!("{file}: {e}"))?;
            let der = CertificateDer::from(der);
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| format!("{file}: not a usable CA certificate: {e:?}"))?
                .to_owned();
            self.anchors.push(anchor);
            self.names
                .push(format!("{file}: {}", cert.tbs_certificate().subject()));
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// A signer's certificate, with the certificates a signature brought along to reach a root.
#[derive(Debug)]
pub struct Signer {
    leaf: CertificateDer<'static>,
    cert: Certificate,
    intermediates: Vec<CertificateDer<'static>>,
    parsed: Vec<Certificate>,
}

fn parse(der: &[u8]) -> Result<Certificate, String> {
    Certificate::from_der(der).map_err(|e| format!("a certificate that is not DER X.509: {e}"))
}

impl Signer {
    /// `chain[0]` is the signer's certificate, the rest its issuers (DER).
    pub fn new(chain: Vec<Vec<u8>>) -> Result<Self, String> {
        if chain.is_empty() || chain.len() > MAX_CHAIN {
            return Err(format!("{} certificates in a signature", chain.len()));
        }
        let parsed = chain
            .iter()
            .map(|d| parse(d))
            .collect::<Result<Vec<_>, _>>()?;
        let mut ders = chain.into_iter().map(CertificateDer::from);
        let Some(leaf) = ders.next() else {
            return Err("no certificate in a signature".into());
        };
        Ok(Self {
            cert: parsed[0].clone(),
            leaf,
            intermediates: ders.collect(),
            parsed,
        })
    }

    /// Whether `signature` over `message` verifies with this certificate's key.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifies_with(SIGNATURE_ALGS, message, signature)
    }

    /// As [`Self::verifies`], with the algorithms a format names.
    pub fn verifies_with(
        &self,
        algs: &[&dyn SignatureVerificationAlgorithm],
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let Ok(ee) = EndEntityCert::try_from(&self.leaf) else {
            return false;
        };
        algs.iter()
            .any(|a| ee.verify_signature(*a, message, signature).is_ok())
    }

    /// Whether the certificate chains to one of `roots`, valid at `at`, for code signing
    /// (an extended key usage, when named, includes it; a key usage, when named, includes
    /// digitalSignature).
    pub fn chains_to(&self, roots: &Roots, at: SystemTime) -> Result<(), String> {
        self.path(roots, at, None)
    }

    /// As [`Self::chains_to`], with every certificate of the path below the root checked
    /// against `crls` (DER): one must be there for each, current at `at`.
    pub fn not_revoked(
        &self,
        roots: &Roots,
        at: SystemTime,
        crls: &[Vec<u8>],
    ) -> Result<(), Revocation> {
        let parsed = crls
            .iter()
            .map(|der| webpki::OwnedCertRevocationList::from_der(der).map(Into::into))
            .collect::<Result<Vec<webpki::CertRevocationList<'_>>, _>>()
            .map_err(|e| Revocation::Unknown(format!("a CRL that is not one: {e:?}")))?;
        let refs: Vec<&webpki::CertRevocationList<'_>> = parsed.iter().collect();
        let Ok(builder) = webpki::RevocationOptionsBuilder::new(&refs) else {
            return Err(Revocation::Unknown("no CRL".into()));
        };
        let options = builder
            .with_depth(webpki::RevocationCheckDepth::Chain)
            .with_status_policy(webpki::UnknownStatusPolicy::Deny)
            .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
            .build();
        let who = self.subject();
        match self.path(roots, at, Some(options)) {
            Ok(()) => Ok(()),
            Err(e) if e.ends_with("CertRevoked") => Err(Revocation::Revoked(format!(
                "a certificate of {who}'s chain is revoked (CRL)"
            ))),
            Err(e) => Err(Revocation::Unknown(format!(
                "the revocation of {who}'s chain cannot be told from its CRLs: {e}"
            ))),
        }
    }

    fn path(
        &self,
        roots: &Roots,
        at: SystemTime,
        revocation: Option<webpki::RevocationOptions<'_>>,
    ) -> Result<(), String> {
        let ee = EndEntityCert::try_from(&self.leaf)
            .map_err(|e| format!("the signer's certificate: {e:?}"))?;
        if let Ok(Some((_, ku))) = self.cert.tbs_certificate().get_extension::<KeyUsageExt>()
            && !ku.digital_signature()
        {
            return Err("the signer's certificate is not for digital signatures".into());
        }
        let secs = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        ee.verify_for_usage(
            SIGNATURE_ALGS,
            &roots.anchors,
            &self.intermediates,
            UnixTime::since_unix_epoch(secs),
            KeyUsage::required_if_present(CODE_SIGNING),
            revocation,
            None,
        )
        .map(|_| ())
        .map_err(|e| format!("{} does not chain to a trusted root: {e:?}", self.subject()))
    }

    /// The subject in RFC 4514 form (`CN=release,O=Example`).
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate().subject().to_string()
    }

    /// The subject's attributes as `TYPE=value` strings (`CN=release`, `O=Example`).
    pub fn subject_attributes(&self) -> Vec<String> {
        self.cert
            .tbs_certificate()
            .subject()
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    /// The subject alternative names a cosign identity is matched with: e-mail addresses,
    /// URIs and DNS names.
    pub fn alternative_names(&self) -> Vec<String> {
        let Ok(Some((_, san))) = self
            .cert
            .tbs_certificate()
            .get_extension::<SubjectAltName>()
        else {
            return Vec::new();
        };
        let text = |s: &Ia5String| s.to_string();
        san.0
            .iter()
            .filter_map(|n| match n {
                GeneralName::Rfc822Name(s)
                | GeneralName::UniformResourceIdentifier(s)
                | GeneralName::DnsName(s) => Some(text(s)),
                _ => None,
            })
            .collect()
    }

    /// The OIDC issuer Fulcio (or a CA like it) wrote into the certificate, when there is one.
    pub fn fulcio_issuer(&self) -> Option<String> {
        let exts = self.cert.tbs_certificate().extensions()?;
        if let Some(e) = exts.iter().find(|e| e.extn_id == FULCIO_ISSUER) {
            return Utf8StringRef::from_der(e.extn_value.as_bytes())
                .ok()
                .map(|s| s.as_str().to_owned());
        }
        exts.iter()
            .find(|e| e.extn_id == FULCIO_ISSUER_V1)
            .map(|e| String::from_utf8_lossy(e.extn_value.as_bytes()).into_owned())
    }

    /// Where the revocation of the signer's certificate or of a certificate it brought
    /// would be looked up (CRL distribution points, OCSP responders); empty: none can be.
    pub fn revocation_sources(&self) -> Vec<String> {
        let mut out = Vec::new();
        for cert in &self.parsed {
            let tbs = cert.tbs_certificate();
            if let Ok(Some((_, dps))) = tbs.get_extension::<CrlDistributionPoints>() {
                for dp in dps.0 {
                    match dp.distribution_point {
                        Some(DistributionPointName::FullName(names)) => {
                            out.extend(names.iter().map(general_name))
                        }
                        _ => out.push("a CRL distribution point".into()),
                    }
                }
            }
            if let Ok(Some((_, aia))) = tbs.get_extension::<AuthorityInfoAccessSyntax>() {
                out.extend(
                    aia.0
                        .iter()
                        .filter(|a| a.access_method == OCSP)
                        .map(|a| format!("OCSP {}", general_name(&a.access_location))),
                );
            }
        }
        out
    }
}

impl Signer {
    /// The http(s) CRL distribution points of the signer's certificate and those it brought.
    pub fn crl_urls(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for cert in &self.parsed {
            let Ok(Some((_, dps))) = cert
                .tbs_certificate()
                .get_extension::<CrlDistributionPoints>()
            else {
                continue;
            };
            for dp in dps.0 {
                if let Some(DistributionPointName::FullName(names)) = dp.distribution_point {
                    for n in names {
                        if let GeneralName::UniformResourceIdentifier(u) = n {
                            let u = u.to_string();
                            if (u.starts_with("http://") || u.starts_with("https://"))
                                && !out.contains(&u)
                            {
                                out.push(u);
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// Why a certificate path fails its revocation check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// A CRL lists a certificate of the path.
    Revoked(String),
    /// The status cannot be told (no current CRL for a certificate, a CRL not readable).
    Unknown(String),
}

fn general_name(n: &GeneralName) -> String {
    match n {
        GeneralName::UniformResourceIdentifier(s) => s.to_string(),
        GeneralName::DirectoryName(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// Certificates from a PEM text (a test's or a bundle's chain), as DER.
pub fn pem_to_der(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    Certificate::load_pem_chain(pem.as_bytes())
        .map_err(|e| e.to_string())?
        .iter()
        .map(|c| c.to_der().map_err(|e| e.to_string()))
        .collect()
}

/// One DER certificate from PEM.
pub fn one_pem(pem: &str) -> Result<Vec<u8>, String> {
    Certificate::from_pem(pem.as_bytes())
        .and_then(|c| c.to_der())
        .map_err(|e| e.to_string())
}
