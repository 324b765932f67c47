//! The supply-chain gates in the state store (SPEC §11): digests rejected per container,
//! kept until something changes (a newer digest, its signature pushed, its scan completed),
//! and the history row of each rejection.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{NewDeployment, Store, StoreError, ctx, now_ms};
use crate::model::{Outcome, Step};

pub(super) const SCHEMA_V4: &str = "
CREATE TABLE rejected (
    container TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    gate TEXT NOT NULL,
    reason TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    PRIMARY KEY (container, digest)
);
";

/// A digest a gate rejected for a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub container: String,
    pub repository: String,
    pub digest: String,
    /// `signature` or `scan`.
    pub gate: String,
    pub reason: String,
    pub since_ms: i64,
}

impl Store {
    /// Records that `gate` rejected `d.to_digest` for `d.container`: the rejection and its
    /// history row (outcome `rejected`), in one transaction. Returns the row's id.
    pub fn reject(
        &self,
        d: &NewDeployment<'_>,
        gate: &str,
        reason: &str,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(ctx("record rejection"))?;
        let now = now_ms();
        tx.execute(
            "INSERT INTO rejected (container, repository, digest, gate, reason, since_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (container, digest) DO UPDATE SET gate = excluded.gate,
                 reason = excluded.reason, since_ms = excluded.since_ms",
            params![d.container, d.repository, d.to_digest, gate, reason, now],
        )
        .map_err(ctx("record rejection"))?;
        tx.execute(
            "INSERT INTO deployments (container, repository, tag, from_digest, to_digest, trigger, step,
                 old_id, started_at_ms, ended_at_ms, outcome, error, platform_digest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12)",
            params![d.container, d.repository, d.tag, d.from_digest, d.to_digest, d.trigger,
                Step::Done.as_str(), d.old_id, now, Outcome::Rejected.as_str(), reason, d.platform_digest],
        )
        .map_err(ctx("record rejection"))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(ctx("record rejection"))?;
        Ok(id)
    }

    /// The rejection of `digest` for `container`, if there is one.
    pub fn rejection(
        &self,
        container: &str,
        digest: &str,
    ) -> Result<Option<Rejection>, StoreError> {
        self.conn()
            .query_row(
                "SELECT container, repository, digest, gate, reason, since_ms FROM rejected
                 WHERE container = ?1 AND digest = ?2",
                params![container, digest],
                |r| {
                    Ok(Rejection {
                        container: r.get(0)?,
                        repository: r.get(1)?,
                        digest: r.get(2)?,
                        gate: r.get(3)?,
                        reason: r.get(4)?,
                        since_ms: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(ctx("read rejection"))
    }

    /// Forgets every rejection of `digest` in `repository` (its signature was pushed, its
    /// scan completed): the next look at it checks the gates again. Returns how many.
    ///
    /// `digest` may also be the platform manifest of a rejected index (ECR scans those, not
    /// the index): the index's rejections whose rows name it as their platform digest go too.
    pub fn clear_rejections(&self, repository: &str, digest: &str) -> Result<usize, StoreError> {
        self.conn()
            .execute(
                "DELETE FROM rejected WHERE repository = ?1 AND (digest = ?2 OR digest IN (
                     SELECT to_digest FROM deployments
                     WHERE repository = ?1 AND platform_digest = ?2 AND outcome = ?3))",
                params![repository, digest, Outcome::Rejected.as_str()],
            )
            .map_err(ctx("clear rejections"))
    }

    /// Clears every rejection of `repository` by `gate` (a signature pushed whose subject is
    /// not known); the next look decides each digest again.
    pub fn clear_gate_rejections(&self, repository: &str, gate: &str) -> Result<usize, StoreError> {
        self.conn()
            .execute(
                "DELETE FROM rejected WHERE repository = ?1 AND gate = ?2",
                params![repository, gate],
            )
            .map_err(ctx("clear rejections"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new<'a>(container: &'a str, repository: &'a str, to: &'a str) -> NewDeployment<'a> {
        NewDeployment {
            container,
            repository,
            tag: "v1",
            from_digest: Some("sha256:old"),
            to_digest: to,
            platform_digest: None,
            trigger: "event",
            old_id: "id1",
        }
    }

    #[test]
    fn a_rejection_has_a_history_row_and_is_kept_per_container_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("state.db")).unwrap();
        s.reject(
            &new("web", "team/web", "sha256:a"),
            "signature",
            "not signed",
        )
        .unwrap();
        s.reject(&new("api", "team/web", "sha256:a"), "scan", "2 CRITICAL")
            .unwrap();
        s.reject(&new("db", "team/db", "sha256:a"), "scan", "1 HIGH")
            .unwrap();
        let r = s.rejection("web", "sha256:a").unwrap().unwrap();
        assert_eq!(
            (r.gate.as_str(), r.reason.as_str()),
            ("signature", "not signed")
        );
        assert_eq!(
            s.rejection("web", "sha256:b").unwrap(),
            None,
            "another digest"
        );
        let h = s.history(Some("web"), 10).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].outcome, Some(Outcome::Rejected));
        assert_eq!(h[0].error.as_deref(), Some("not signed"));
        assert!(s.unfinished().unwrap().is_empty(), "nothing for recovery");
        assert_eq!(s.clear_gate_rejections("team/db", "signature").unwrap(), 0);
        // A signature of some digest pushed: the repository's signature rejections go.
        assert_eq!(s.clear_gate_rejections("team/web", "signature").unwrap(), 1);
        assert_eq!(s.rejection("web", "sha256:a").unwrap(), None);
        assert!(
            s.rejection("api", "sha256:a").unwrap().is_some(),
            "a scan's stays"
        );
        assert_eq!(s.clear_rejections("team/web", "sha256:a").unwrap(), 1);
        assert_eq!(s.rejection("api", "sha256:a").unwrap(), None);
        assert!(
            s.rejection("db", "sha256:a").unwrap().is_some(),
            "another repository"
        );
    }

    #[test]
    fn the_platform_manifest_of_a_rejected_index_clears_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("state.db")).unwrap();
        let index = NewDeployment {
            platform_digest: Some("sha256:p"),
            ..new("web", "team/web", "sha256:i")
        };
        s.reject(&index, "scan", "1 CRITICAL").unwrap();
        s.reject(&new("api", "team/web", "sha256:j"), "scan", "1 HIGH")
            .unwrap();
        assert_eq!(s.clear_rejections("team/other", "sha256:p").unwrap(), 0);
        assert_eq!(
            s.clear_gate_rejections("team/web", "signature").unwrap(),
            0,
            "scan rejections stay"
        );
        assert_eq!(s.clear_rejections("team/web", "sha256:p").unwrap(), 1);
        assert_eq!(s.rejection("web", "sha256:i").unwrap(), None);
        assert!(
            s.rejection("api", "sha256:j").unwrap().is_some(),
            "not its platform"
        );
    }
}
