//! The fleet ledger (SPEC §17): one JSON object per host in S3, `PREFIX<fleet name>.json`,
//! overwritten after every deployment outcome and every sweep that changed something, and at
//! least once per sweep interval. A versioned bucket keeps the past; no server anywhere.
//!
//! - this file: where the ledger lives ([`LedgerUrl`]) and what one host's object holds
//!   ([`HostLedger`]: what `status --json` shows of each container, plus its last
//!   deployments). Pure.
//! - [`writer`]: the agent's background writer: never in a deploy's way, retried, the next
//!   write carries everything.
//! - [`view`]: the fleet from the objects read back: host × container rows, staleness, the
//!   digests in use (`fleet`, `fleet in-use`). Pure.
//! - [`html`]: the self-contained page of `fleet --html`. Pure.

pub mod html;
pub mod view;
pub mod writer;

use serde::{Deserialize, Serialize};

use crate::model::sweep::Row;

/// The version of the object's shape; readers skip objects of a newer major.
pub const SCHEMA: u32 = 1;
/// Deployments kept per container in the object, newest first.
pub const DEPLOYMENTS_KEPT: usize = 5;
/// How often an agent without a periodic sweep (`interval_seconds = 0`) still writes.
pub const DEFAULT_INTERVAL_SECONDS: u64 = 300;

/// `s3://BUCKET/PREFIX/`: where a fleet's ledger lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerUrl {
    pub bucket: String,
    /// Empty, or ends with `/`.
    pub prefix: String,
}

impl LedgerUrl {
    /// `s3://BUCKET`, `s3://BUCKET/` or `s3://BUCKET/PREFIX/` (a prefix must end with `/`,
    /// so that the object's key is never glued to it by accident).
    pub fn parse(s: &str) -> Result<Self, String> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{s:?} is not an s3://BUCKET/PREFIX/ URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(format!("{bucket:?} in {s:?} is not an S3 bucket name"));
        }
        if !prefix.is_empty() && !prefix.ends_with('/') {
            return Err(format!(
                "the prefix of {s:?} must end with \"/\" (s3://{bucket}/{prefix}/)"
            ));
        }
        if prefix.contains("//") || prefix.starts_with('/') {
            return Err(format!("the prefix of {s:?} has an empty path segment"));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The key of host `name`'s object.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}.json", self.prefix)
    }
}

impl std::fmt::Display for LedgerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// One host's object.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HostLedger {
    pub schema: u32,
    /// `[fleet] name` (the object's key).
    pub name: String,
    /// The machine's host name.
    pub host: String,
    pub wave: u32,
    pub agent_version: String,
    /// RFC 3339, UTC.
    pub written_at: String,
    /// The host writes at least this often: older than 3 of these, it is stale.
    pub sweep_interval_seconds: u64,
    pub containers: Vec<ContainerLedger>,
}

/// One managed container (or Swarm service) of a host.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ContainerLedger {
    pub name: String,
    /// What `status` shows: `repository:tag`, or `s3://BUCKET/KEY` for an archive.
    pub image: String,
    pub repository: String,
    pub tag: String,
    pub running_digest: Option<String>,
    pub desired_digest: Option<String>,
    /// When the tag names an image index: its manifest for this host's platform.
    pub platform_digest: Option<String>,
    /// The `state` of `status --json`.
    pub state: String,
    pub detail: Option<String>,
    /// When the running digest was deployed here (RFC 3339), if this agent deployed it.
    pub since: Option<String>,
    /// What ran before the running digest: what `rollback` goes back to.
    pub previous_digest: Option<String>,
    /// Newest first, at most [`DEPLOYMENTS_KEPT`].
    pub deployments: Vec<DeploymentLedger>,
}

/// One past deployment of a container.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DeploymentLedger {
    pub from_digest: Option<String>,
    pub to_digest: String,
    pub platform_digest: Option<String>,
    /// RFC 3339: when it finished (or started, while in progress).
    pub at: String,
    /// `succeeded`, `rolled_back`, `failed`, `rejected`, or `in_progress`.
    pub outcome: String,
    pub trigger: String,
    pub error: Option<String>,
}

impl ContainerLedger {
    /// The outcome of its last deployment, if any.
    pub fn last_outcome(&self) -> Option<&str> {
        self.deployments.first().map(|d| d.outcome.as_str())
    }
}

impl From<&Row> for ContainerLedger {
    /// A sweep's row as the fleet ledger keeps it (its deployments are added by the writer).
    fn from(row: &Row) -> Self {
        let (repository, tag) = split_image(&row.image);
        ContainerLedger {
            name: row.name.clone(),
            image: row.image.clone(),
            repository,
            tag,
            running_digest: row.running_digest.clone(),
            desired_digest: row.desired_digest.clone(),
            platform_digest: row.platform_digest.clone(),
            state: row.action.state().to_owned(),
            detail: row.detail.clone(),
            ..ContainerLedger::default()
        }
    }
}

/// `repository` and `tag` of what `status` shows as `image`.
pub fn split_image(image: &str) -> (String, String) {
    if let Some(rest) = image.strip_prefix(crate::event::ARCHIVE_SCHEME) {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        return (format!("s3://{bucket}"), key.to_owned());
    }
    match image.rsplit_once(':') {
        Some((r, t)) => (r.to_owned(), t.to_owned()),
        None => (image.to_owned(), "latest".to_owned()),
    }
}

/// RFC 3339 (UTC, seconds) of a Unix time in milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_urls_name_a_bucket_and_a_prefix_ending_in_a_slash() {
        let u = LedgerUrl::parse("s3://fleet-ledger/prod/").unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.prefix.as_str()),
            ("fleet-ledger", "prod/")
        );
        assert_eq!(u.key("edge-01"), "prod/edge-01.json");
        assert_eq!(u.to_string(), "s3://fleet-ledger/prod/");
        for bare in ["s3://fleet-ledger", "s3://fleet-ledger/"] {
            let u = LedgerUrl::parse(bare).unwrap();
            assert_eq!(u.key("a"), "a.json", "{bare}");
        }
        let nested = LedgerUrl::parse("s3://b-1.x/a/b/").unwrap();
        assert_eq!(nested.key("h"), "a/b/h.json");
    }

    #[test]
    fn ledger_urls_refuse_other_schemes_bad_buckets_and_a_prefix_without_its_slash() {
        for (bad, says) in [
            ("https://b/p/", "not an s3://"),
            ("s3://", "bucket name"),
            ("s3://UPPER/p/", "bucket name"),
            ("s3://ab/", "bucket name"),
            ("s3://bucket/prod", "must end with"),
            ("s3://bucket//", "empty path segment"),
            ("s3://bucket/a//b/", "empty path segment"),
        ] {
            let e = LedgerUrl::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn images_split_into_repository_and_tag_archives_into_bucket_and_key() {
        assert_eq!(
            split_image("shop/web:prod"),
            ("shop/web".into(), "prod".into())
        );
        assert_eq!(
            split_image("s3://drops/site/app.tar.gz"),
            ("s3://drops".into(), "site/app.tar.gz".into())
        );
        assert_eq!(split_image("plain"), ("plain".into(), "latest".into()));
    }

    #[test]
    fn times_are_rfc3339_utc_seconds() {
        assert_eq!(rfc3339_ms(1_700_000_000_400), "2023-11-14T22:13:20Z");
    }
}
