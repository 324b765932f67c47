//! The revocation of AWS Signer signatures (SPEC §11), as AWS Signer's trust model has it:
//! a Notary Project signature whose verification plugin is AWS Signer's
//! (`com.amazonaws.signer.notation.plugin`, signing scheme `notary.x509.signingAuthority`) is
//! revoked when AWS Signer says so of its signing profile version
//! (`com.amazonaws.signer.signingProfileVersion`), its signing job
//! (`com.amazonaws.signer.signingJob`) or a certificate of its chain, asked through
//! `signer:GetRevocationStatus` with the authentic signing time and the platform
//! `Notation-OCI-SHA384-ECDSA`. Each certificate is named by the hex SHA-384 of its
//! to-be-signed part followed by that of its issuer's (the next certificate; the last one's
//! own twice, a root being its own CA), as the API's documentation and AWS Signer's notation
//! plugin compute them.
//!
//! What is asked is a [`Query`]; the adapter asks AWS Signer (`crate::ports::Supply`), and
//! the verdict here reads its answer: an entity revoked rejects; none passes; no answer (the
//! call failed, was refused or could not be made) is `pending`, never a pass. Pure.

use std::collections::BTreeMap;
use std::time::SystemTime;

use sha2::Digest as _;
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

use super::SupplyVerdict;

/// The signing platform of AWS Signer's Notation signatures.
pub const PLATFORM: &str = "Notation-OCI-SHA384-ECDSA";
/// The IAM action the agent's role needs for the check.
pub const PERMISSION: &str = "signer:GetRevocationStatus";

/// One `GetRevocationStatus` request: what an AWS Signer signature names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Query {
    /// The signature's authentic signing time (`signatureTimestamp`).
    pub signed_at: SystemTime,
    pub platform_id: String,
    pub profile_version_arn: String,
    pub job_arn: String,
    /// One per certificate of the chain, the signer's first.
    pub certificate_hashes: Vec<String>,
}

/// AWS Signer's answers, by request: the entities it revoked (empty: none), or why it
/// could not be asked.
pub type Answers = BTreeMap<Query, Result<Vec<String>, String>>;

impl Query {
    /// The request for a signature with these attributes and `chain` (DER, signer first).
    pub fn new(
        signed_at: SystemTime,
        profile_version_arn: &str,
        job_arn: &str,
        chain: &[Vec<u8>],
    ) -> Result<Self, String> {
        Ok(Self {
            signed_at,
            platform_id: PLATFORM.to_owned(),
            profile_version_arn: profile_version_arn.to_owned(),
            job_arn: job_arn.to_owned(),
            certificate_hashes: certificate_hashes(chain)?,
        })
    }

    /// The region AWS Signer is asked in: the signing profile's (`arn:PARTITION:signer:REGION:…`).
    pub fn region(&self) -> Option<&str> {
        let region = self.profile_version_arn.split(':').nth(3)?;
        (!region.is_empty()).then_some(region)
    }

    /// What a revoked entity of the answer is, for the reason.
    fn name(&self, entity: &str) -> String {
        if entity == self.profile_version_arn {
            return format!("its signing profile version {entity}");
        }
        if entity == self.job_arn {
            return format!("its signing job {entity}");
        }
        match self.certificate_hashes.iter().position(|h| h == entity) {
            Some(0) => "its signing certificate".to_owned(),
            Some(i) => format!("certificate {} of its chain", i + 1),
            None => format!("{entity:?}"),
        }
    }
}

/// The composite certificate hashes of `chain` (DER, signer first).
pub fn certificate_hashes(chain: &[Vec<u8>]) -> Result<Vec<String>, String> {
    let own: Vec<String> = chain
        .iter()
        .map(|der| {
            let cert = Certificate::from_der(der)
                .map_err(|e| format!("a certificate that is not DER X.509: {e}"))?;
            let tbs = cert.tbs_certificate().to_der().map_err(|e| e.to_string())?;
            Ok(hex(&sha2::Sha384::digest(&tbs)))
        })
        .collect::<Result<_, String>>()?;
    Ok(own
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{h}{}", own.get(i + 1).unwrap_or(h)))
        .collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The verdict on an AWS Signer signature by `by` that passed every other check, from
/// AWS Signer's answer to `query`.
pub fn verdict(query: &Query, answers: &Answers, by: &str) -> SupplyVerdict {
    let who = format!("a Notary signature by {by} (AWS Signer)");
    match answers.get(query) {
        None => SupplyVerdict::Pending(format!(
            "{who}: its revocation was not asked of AWS Signer ({PERMISSION})"
        )),
        Some(Err(e)) => SupplyVerdict::Pending(format!(
            "{who}: AWS Signer could not be asked whether it is revoked (this host needs {PERMISSION}): {e}"
        )),
        Some(Ok(revoked)) if revoked.is_empty() => SupplyVerdict::Accepted(format!(
            "Notary signature by {by} (AWS Signer: not revoked)"
        )),
        Some(Ok(revoked)) => {
            let names: Vec<String> = revoked.iter().map(|e| query.name(e)).collect();
            SupplyVerdict::Rejected(format!(
                "{who}: AWS Signer has revoked {}",
                names.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str =
        "arn:aws:signer:us-east-2:111122223333:/signing-profiles/release/AbCdEf1234";
    const JOB: &str = "arn:aws:signer:us-east-2:111122223333:/signing-jobs/0c6f7a0e";

    fn query() -> Query {
        Query {
            signed_at: SystemTime::UNIX_EPOCH,
            platform_id: PLATFORM.into(),
            profile_version_arn: PROFILE.into(),
            job_arn: JOB.into(),
            certificate_hashes: vec!["aa".repeat(96), "bb".repeat(96)],
        }
    }

    #[test]
    fn an_answer_naming_nothing_passes_and_one_naming_an_entity_rejects_naming_it() {
        let q = query();
        let answer = |a: Result<Vec<String>, String>| Answers::from([(q.clone(), a)]);
        assert_eq!(
            verdict(&q, &answer(Ok(Vec::new())), "arn:p"),
            SupplyVerdict::Accepted("Notary signature by arn:p (AWS Signer: not revoked)".into())
        );
        for (entity, named) in [
            (
                PROFILE.to_owned(),
                format!("its signing profile version {PROFILE}"),
            ),
            (JOB.to_owned(), format!("its signing job {JOB}")),
            ("aa".repeat(96), "its signing certificate".to_owned()),
            ("bb".repeat(96), "certificate 2 of its chain".to_owned()),
        ] {
            let SupplyVerdict::Rejected(why) = verdict(&q, &answer(Ok(vec![entity])), "arn:p")
            else {
                panic!("{named}: expected a rejection");
            };
            assert!(
                why.ends_with(&format!("AWS Signer has revoked {named}")),
                "{why}"
            );
        }
    }

    #[test]
    fn no_answer_or_a_failed_call_is_pending_naming_the_permission() {
        let q = query();
        let SupplyVerdict::Pending(why) = verdict(&q, &Answers::new(), "arn:p") else {
            panic!("expected pending");
        };
        assert!(why.contains(PERMISSION), "{why}");
        let failed = Answers::from([(q.clone(), Err("AccessDeniedException (HTTP 403)".into()))]);
        let SupplyVerdict::Pending(why) = verdict(&q, &failed, "arn:p") else {
            panic!("expected pending");
        };
        assert!(
            why.contains("this host needs signer:GetRevocationStatus")
                && why.ends_with("AccessDeniedException (HTTP 403)"),
            "{why}"
        );
        // An answer to another request (another job) is not this one's.
        let other = Query {
            job_arn: format!("{JOB}1"),
            ..q.clone()
        };
        let answered = Answers::from([(other, Ok(Vec::new()))]);
        assert!(matches!(
            verdict(&q, &answered, "arn:p"),
            SupplyVerdict::Pending(_)
        ));
    }

    #[test]
    fn the_profiles_region_is_asked() {
        assert_eq!(query().region(), Some("us-east-2"));
        let bare = Query {
            profile_version_arn: "arn:aws:signer::1:/x".into(),
            ..query()
        };
        assert_eq!(bare.region(), None);
    }
}
