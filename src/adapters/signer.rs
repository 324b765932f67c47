//! AWS Signer's `GetRevocationStatus` (`signer:GetRevocationStatus`): whether AWS Signer has
//! revoked the signing profile version, the signing job or a certificate an AWS Signer
//! signature names ([`crate::gate::aws_signer`]). Asked in the signing profile's region,
//! with the SDK configuration every client shares (credentials, timeouts, endpoints).

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::{Region, SdkConfig};
use aws_sdk_signer::primitives::DateTime;

use super::aws::remote_error;
use crate::gate::aws_signer::{PERMISSION, Query};
use crate::ports::RemoteError;

/// AWS Signer clients by region (the configured region's, and one per other region a
/// signing profile names).
#[derive(Debug)]
pub struct SignerClients {
    sdk: SdkConfig,
    by_region: Mutex<HashMap<String, aws_sdk_signer::Client>>,
}

impl Clone for SignerClients {
    fn clone(&self) -> Self {
        let clients = self.by_region.lock().unwrap_or_else(|p| p.into_inner());
        Self {
            sdk: self.sdk.clone(),
            by_region: Mutex::new(clients.clone()),
        }
    }
}

impl SignerClients {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            sdk: sdk.clone(),
            by_region: Mutex::default(),
        }
    }

    /// The client for `region` (`None`: the configured region).
    fn client(&self, region: Option<&str>) -> aws_sdk_signer::Client {
        let home = self.sdk.region().map(|r| r.as_ref().to_owned());
        let region = region.map(str::to_owned).or(home).unwrap_or_default();
        let mut clients = self.by_region.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.clone())
            .or_insert_with(|| {
                let mut conf = aws_sdk_signer::config::Builder::from(&self.sdk);
                if !region.is_empty() {
                    conf = conf.region(Region::new(region));
                }
                aws_sdk_signer::Client::from_conf(conf.build())
            })
            .clone()
    }

    /// The entities of `query` AWS Signer has revoked (empty: none).
    pub async fn revoked(&self, query: &Query) -> Result<Vec<String>, RemoteError> {
        let out = self
            .client(query.region())
            .get_revocation_status()
            .signature_timestamp(DateTime::from(query.signed_at))
            .platform_id(&query.platform_id)
            .profile_version_arn(&query.profile_version_arn)
            .job_arn(&query.job_arn)
            .set_certificate_hashes(Some(query.certificate_hashes.clone()))
            .send()
            .await
            .map_err(|e| remote_error(PERMISSION, e))?;
        Ok(out.revoked_entities().to_vec())
    }
}

#[cfg(test)]
mod tests;
