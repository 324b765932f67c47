//! S3 as the agent uses it: the archives an image can come from (SPEC §13) and the fleet
//! ledger's objects (SPEC §17).

use std::future::Future;

use crate::model::error::RemoteError;
use crate::model::object::ObjectFacts;

/// The bytes of an archive on their way from S3 to the Engine.
pub type ArchiveBody = futures::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;

/// S3, where archives are kept (SPEC §13).
pub trait Archives: Send + Sync + 'static {
    /// What `key` holds now (`None`: no such key or bucket).
    fn head(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<ObjectFacts>, RemoteError>> + Send;

    /// The bytes of exactly the object `facts` describes (a newer upload meanwhile fails the
    /// read rather than mixing two objects).
    fn open(
        &self,
        bucket: &str,
        key: &str,
        facts: &ObjectFacts,
    ) -> impl Future<Output = Result<ArchiveBody, RemoteError>> + Send;
}

/// S3, where the fleet ledger is kept (SPEC §17): one object per host.
pub trait LedgerObjects: Send + Sync + 'static {
    /// Writes (overwrites) `key`.
    fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), RemoteError>> + Send;

    /// The keys under `prefix` (every page).
    fn list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, RemoteError>> + Send;

    /// The bytes of `key`.
    fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<u8>, RemoteError>> + Send;
}
