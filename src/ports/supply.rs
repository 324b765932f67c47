//! Pull credentials and the facts the supply-chain gates decide on.

use std::fmt;
use std::future::Future;

use crate::gate::{Found, ScanFacts, aws_signer};
use crate::model::error::RemoteError;
use crate::model::reference::{Digest, ImageRef, Repository};

/// Credentials for pulling from a registry (ECR GetAuthorizationToken, or a `[[registries]]`
/// entry's; an empty user name: none).
#[derive(Clone, PartialEq, Eq)]
pub struct PullAuth {
    pub username: String,
    pub password: String,
    /// The ECR registry host (`<account>.dkr.ecr.<region>.amazonaws.com`), or the
    /// `[[registries]]` host.
    pub registry_host: String,
}

impl fmt::Debug for PullAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("registry_host", &self.registry_host)
            .finish()
    }
}

/// The facts the supply-chain gates decide on (SPEC §11). Object-safe: the executor holds
/// one behind `dyn`, so its many users do not carry another type parameter.
pub trait Supply: Send + Sync + 'static {
    /// The signatures stored for `digest` in `repository` at the registry `host`: cosign's
    /// signature tag and the digest's referrers (empty: no signature there).
    fn signatures<'a>(
        &'a self,
        host: &'a str,
        auth: &'a PullAuth,
        repository: &'a Repository,
        digest: &'a Digest,
    ) -> futures::future::BoxFuture<'a, Result<Found, RemoteError>>;

    /// What ECR's scanning says about `digest` of `image`'s repository.
    fn scan<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a Digest,
    ) -> futures::future::BoxFuture<'a, Result<ScanFacts, RemoteError>>;

    /// AWS Signer's `GetRevocationStatus` for an AWS Signer signature: the entities of
    /// `query` (its signing profile version, job, certificate hashes) AWS Signer has revoked;
    /// empty when none is.
    fn aws_signer_revoked<'a>(
        &'a self,
        query: &'a aws_signer::Query,
    ) -> futures::future::BoxFuture<'a, Result<Vec<String>, RemoteError>>;
}

/// Source of pull credentials, cached by the implementation.
pub trait Credentials: Send + Sync + 'static {
    /// Credentials for the registries of `region` (`None`: the configured region); the
    /// answer's `registry_host` is the caller's own registry there.
    fn pull_auth(
        &self,
        region: Option<&str>,
    ) -> impl Future<Output = Result<PullAuth, RemoteError>> + Send;

    /// Credentials for the registry of the site's own at `host` (`[[registries]]`, SPEC
    /// §18); `None` when no entry names it.
    fn site_auth(&self, host: &str) -> Option<PullAuth> {
        let _ = host;
        None
    }
}
