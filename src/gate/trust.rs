//! What a signature must be made by to count (`[verify]`, SPEC §3/§11): cosign keys, cosign
//! certificates chaining to `cosign_roots` with an identity in `cosign_identities`, Notary
//! Project signatures chaining to `notation_roots` with an identity in
//! `notation_identities`. Pure.

use serde::{Deserialize, Serialize};

use super::signature::TrustedKey;
use super::x509::{Roots, Signer};

/// An accepted cosign certificate identity; both fields match exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosignIdentity {
    /// A subject alternative name (e-mail, URI, DNS name) or the whole subject in
    /// RFC 4514 form (`CN=release,O=Example`).
    pub subject: String,
    /// The OIDC issuer in Fulcio's certificate extension; compared only when the
    /// certificate has that extension.
    #[serde(default)]
    pub issuer: String,
}

impl CosignIdentity {
    /// Whether the certificate carries this identity.
    pub fn matches(&self, signer: &Signer) -> bool {
        let named =
            self.subject == signer.subject() || signer.alternative_names().contains(&self.subject);
        named
            && signer
                .fulcio_issuer()
                .is_none_or(|issuer| issuer == self.issuer)
    }
}

/// An accepted Notary Project signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotationIdentity {
    /// `x509.subject: CN=release,O=Example`: every attribute named must be in the signer
    /// certificate's subject with that value (notation's rule; order does not matter).
    Subject {
        shown: String,
        attributes: Vec<String>,
    },
    /// An AWS Signer signing profile (`arn:aws:signer:REGION:ACCOUNT:/signing-profiles/NAME`),
    /// one version of it (`…/NAME/VERSION`), or an alias (`…:/aliases/NAME`).
    AwsSigner(String),
}

impl NotationIdentity {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(dn) = s.strip_prefix("x509.subject:") {
            let attributes: Vec<String> = split_dn(dn.trim())
                .into_iter()
                .map(|a| normalise_attribute(&a))
                .collect::<Result<_, _>>()?;
            if attributes.is_empty() {
                return Err(format!("{s:?}: names no attribute"));
            }
            return Ok(Self::Subject {
                shown: s.to_owned(),
                attributes,
            });
        }
        if s.starts_with("arn:") {
            let parts: Vec<&str> = s.splitn(6, ':').collect();
            let resource = parts.get(5).copied().unwrap_or_default();
            let ok = parts.len() == 6
                && parts[2] == "signer"
                && [
                    "/signing-profiles/",
                    "/aliased-signing-profiles/",
                    "/aliases/",
                ]
                .iter()
                .any(|p| resource.starts_with(p));
            if !ok {
                return Err(format!(
                    "{s:?}: not an AWS Signer signing profile ARN (arn:aws:signer:REGION:ACCOUNT:/signing-profiles/NAME[/VERSION])"
                ));
            }
            return Ok(Self::AwsSigner(s.to_owned()));
        }
        Err(format!(
            "{s:?}: expected \"x509.subject: CN=…,O=…\" or an AWS Signer signing profile ARN"
        ))
    }

    /// Whether the signer's certificate subject is this identity's (`Subject` only).
    pub fn matches_subject(&self, signer: &Signer) -> bool {
        let Self::Subject { attributes, .. } = self else {
            return false;
        };
        let have: Vec<String> = signer
            .subject_attributes()
            .iter()
            .filter_map(|a| normalise_attribute(a).ok())
            .collect();
        attributes.iter().all(|a| have.contains(a))
    }

    /// Whether an AWS Signer signature of `profile_version` (its
    /// `com.amazonaws.signer.signingProfileVersion`) or `alias` is this identity's, as
    /// AWS Signer's notation plugin decides it (ARNs compared without regard to case).
    pub fn matches_aws_signer(&self, profile_version: &str, alias: Option<&str>) -> bool {
        let Self::AwsSigner(arn) = self else {
            return false;
        };
        let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
        if resource.starts_with("/aliases/") {
            return alias.is_some_and(|a| a.eq_ignore_ascii_case(arn));
        }
        if resource.starts_with("/aliased-signing-profiles/") {
            return profile_version.eq_ignore_ascii_case(arn);
        }
        match resource.split('/').count() {
            // "/signing-profiles/NAME": any version of the profile.
            3 => profile_version
                .rsplit_once('/')
                .is_some_and(|(profile, _)| profile.eq_ignore_ascii_case(arn)),
            4 => profile_version.eq_ignore_ascii_case(arn),
            _ => false,
        }
    }

    pub fn shown(&self) -> &str {
        match self {
            Self::Subject { shown, .. } => shown,
            Self::AwsSigner(arn) => arn,
        }
    }
}

/// The parts of a distinguished name, split at commas and plus signs not escaped.
fn split_dn(dn: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' => {
                cur.push(c);
                escaped = true;
            }
            ',' | '+' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `type=value` with the type upper-cased and the value as written.
fn normalise_attribute(a: &str) -> Result<String, String> {
    let (t, v) = a
        .split_once('=')
        .ok_or_else(|| format!("{a:?}: expected TYPE=value"))?;
    Ok(format!("{}={}", t.trim().to_ascii_uppercase(), v.trim()))
}

/// Every trust source of `[verify]`, compiled.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    pub keys: Vec<TrustedKey>,
    pub cosign_roots: Roots,
    pub cosign_identities: Vec<CosignIdentity>,
    pub notation_roots: Roots,
    pub notation_identities: Vec<NotationIdentity>,
}

impl Trust {
    /// Whether no signature at all could pass: no key, and no root with identities.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && !self.cosign_certificates() && !self.notation()
    }

    /// Whether cosign certificates can pass (roots and identities both given).
    pub fn cosign_certificates(&self) -> bool {
        !self.cosign_roots.is_empty() && !self.cosign_identities.is_empty()
    }

    /// Whether Notary Project signatures can pass.
    pub fn notation(&self) -> bool {
        !self.notation_roots.is_empty() && !self.notation_identities.is_empty()
    }
}
