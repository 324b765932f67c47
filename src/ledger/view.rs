//! The fleet from its ledger objects (SPEC §17): one row per host × container, hosts whose
//! object is older than 3 of their sweep intervals marked stale, and the digests in use —
//! running, or kept for a rollback — anywhere. Pure: the objects and `now` are passed in.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{DEFAULT_INTERVAL_SECONDS, HostLedger};

/// A host is stale when its object is older than this many of its sweep intervals.
pub const STALE_AFTER_INTERVALS: u64 = 3;

/// One host, as its object describes it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HostView {
    pub name: String,
    pub host: String,
    pub wave: u32,
    pub agent_version: String,
    pub written_at: String,
    pub sweep_interval_seconds: u64,
    /// Seconds since `written_at` (`None`: unreadable time).
    pub age_seconds: Option<u64>,
    pub stale: bool,
}

/// One container of one host.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FleetRow {
    pub host: String,
    pub wave: u32,
    pub stale: bool,
    pub container: String,
    /// `repository:tag` (or `s3://BUCKET/KEY`).
    pub image: String,
    pub repository: String,
    pub tag: String,
    pub running_digest: Option<String>,
    /// When the tag names an index: its manifest for that host's platform.
    pub platform_digest: Option<String>,
    pub desired_digest: Option<String>,
    pub since: Option<String>,
    pub previous_digest: Option<String>,
    pub state: String,
    pub last_outcome: Option<String>,
    pub last_deployment_at: Option<String>,
}

/// The whole fleet: `fleet --json`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FleetView {
    pub ledger: String,
    pub read_at: String,
    pub hosts: Vec<HostView>,
    pub rows: Vec<FleetRow>,
}

/// Why a host's age is what it is: `now - written_at` in whole seconds.
fn age(written_at: &str, now: jiff::Timestamp) -> Option<u64> {
    let t: jiff::Timestamp = written_at.parse().ok()?;
    Some(now.duration_since(t).as_secs().max(0) as u64)
}

/// The view of `objects` (one per host) at `now`.
pub fn fleet(ledger: &str, objects: &[HostLedger], now: jiff::Timestamp) -> FleetView {
    let mut hosts = Vec::new();
    let mut rows = Vec::new();
    for o in objects {
        let interval = match o.sweep_interval_seconds {
            0 => DEFAULT_INTERVAL_SECONDS,
            s => s,
        };
        let age_seconds = age(&o.written_at, now);
        let stale = age_seconds.is_none_or(|a| a > STALE_AFTER_INTERVALS * interval);
        hosts.push(HostView {
            name: o.name.clone(),
            host: o.host.clone(),
            wave: o.wave,
            agent_version: o.agent_version.clone(),
            written_at: o.written_at.clone(),
            sweep_interval_seconds: o.sweep_interval_seconds,
            age_seconds,
            stale,
        });
        rows.extend(o.containers.iter().map(|c| FleetRow {
            host: o.name.clone(),
            wave: o.wave,
            stale,
            container: c.name.clone(),
            image: c.image.clone(),
            repository: c.repository.clone(),
            tag: c.tag.clone(),
            running_digest: c.running_digest.clone(),
            platform_digest: c.platform_digest.clone(),
            desired_digest: c.desired_digest.clone(),
            since: c.since.clone(),
            previous_digest: c.previous_digest.clone(),
            state: c.state.clone(),
            last_outcome: c.last_outcome().map(str::to_owned),
            last_deployment_at: c.deployments.first().map(|d| d.at.clone()),
        }));
    }
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    rows.sort_by(|a, b| (&a.image, &a.host, &a.container).cmp(&(&b.image, &b.host, &b.container)));
    FleetView {
        ledger: ledger.to_owned(),
        read_at: now.round(jiff::Unit::Second).unwrap_or(now).to_string(),
        hosts,
        rows,
    }
}

/// One digest a clean-up must keep.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct InUse {
    pub repository: String,
    pub digest: String,
    /// `running`, `platform` (the running index's manifest for a host) and/or `rollback`.
    pub kept_as: Vec<&'static str>,
    /// `host/container` where it is used, sorted.
    pub used_by: Vec<String>,
}

/// Every ECR digest running or kept for rollback anywhere in `view` (stale hosts too: a
/// clean-up errs on keeping), of `repository` only when given. S3 archives are not images
/// of a registry and are left out.
pub fn in_use(view: &FleetView, repository: Option<&str>) -> Vec<InUse> {
    let mut found: BTreeMap<(String, String), InUse> = BTreeMap::new();
    let rows = view.rows.iter().filter(|r| {
        !r.repository.starts_with(crate::event::ARCHIVE_SCHEME)
            && repository.is_none_or(|want| r.repository == want)
    });
    for r in rows {
        let runs_desired = r.running_digest.is_some() && r.running_digest == r.desired_digest;
        let platform = r.platform_digest.as_ref().filter(|_| runs_desired);
        let uses = [
            (r.running_digest.as_ref(), "running"),
            (platform, "platform"),
            (r.previous_digest.as_ref(), "rollback"),
        ];
        for (digest, why) in uses {
            let Some(digest) = digest else { continue };
            let entry = found
                .entry((r.repository.clone(), digest.clone()))
                .or_insert_with(|| InUse {
                    repository: r.repository.clone(),
                    digest: digest.clone(),
                    kept_as: Vec::new(),
                    used_by: Vec::new(),
                });
            if !entry.kept_as.contains(&why) {
                entry.kept_as.push(why);
            }
            let at = format!("{}/{}", r.host, r.container);
            if !entry.used_by.contains(&at) {
                entry.used_by.push(at);
                entry.used_by.sort();
            }
        }
    }
    found.into_values().collect()
}

#[cfg(test)]
mod tests;
