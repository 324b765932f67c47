//! History retention (SPEC §16): what the store keeps over months of pushes. Deployments
//! older than `[state] keep_days` go, but never a container's last [`KEEP_LAST`] nor a
//! journal row without an outcome (recovery needs it); with them go their group members.
//! Blocks, gate rejections and fleet results older than that go too (the history that
//! explained them is gone; a digest a tag still names after that long is looked at again).
//! Archive loads older than that go, but never the newest of a key: the object a key holds
//! now is not downloaded again.

use rusqlite::params;

use super::{Store, StoreError, ctx};

/// Deployments kept per container, however old.
pub const KEEP_LAST: i64 = 20;

/// The tables of the store, for [`Store::row_counts`].
const TABLES: &[&str] = &[
    "deployments",
    "group_members",
    "blocked",
    "rejected",
    "held",
    "paused",
    "fleet_results",
    "archive_loads",
];

/// Rows removed by one [`Store::prune`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deployments: usize,
    pub others: usize,
}

const PRUNE_DEPLOYMENTS: &str = "
DELETE FROM deployments
WHERE outcome IS NOT NULL AND started_at_ms < ?1
  AND id NOT IN (SELECT d.id FROM deployments d WHERE d.container = deployments.container
                 ORDER BY d.id DESC LIMIT ?2)";

const PRUNE_OTHERS: &[&str] = &[
    "DELETE FROM group_members WHERE deployment NOT IN (SELECT id FROM deployments)",
    "DELETE FROM blocked WHERE since_ms < ?1",
    "DELETE FROM rejected WHERE since_ms < ?1",
    "DELETE FROM fleet_results WHERE seen_ms < ?1",
    "DELETE FROM archive_loads WHERE at_ms < ?1
       AND at_ms < (SELECT MAX(n.at_ms) FROM archive_loads n
                    WHERE n.bucket = archive_loads.bucket AND n.key = archive_loads.key)",
];

impl Store {
    /// Removes what is older than `cutoff_ms` (Unix ms) under the rules of this module, in
    /// one transaction.
    pub fn prune(&self, cutoff_ms: i64) -> Result<Pruned, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(ctx("prune history"))?;
        let deployments = tx
            .execute(PRUNE_DEPLOYMENTS, params![cutoff_ms, KEEP_LAST])
            .map_err(ctx("prune history"))?;
        let mut others = 0;
        for sql in PRUNE_OTHERS {
            others += if sql.contains("?1") {
                tx.execute(sql, params![cutoff_ms])
            } else {
                tx.execute(sql, [])
            }
            .map_err(ctx("prune history"))?;
        }
        tx.commit().map_err(ctx("prune history"))?;
        Ok(Pruned {
            deployments,
            others,
        })
    }

    /// Rows per table (the soak bench, `doctor`).
    pub fn row_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let conn = self.conn();
        TABLES
            .iter()
            .map(|t| {
                conn.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
                    .map(|n| (*t, n))
                    .map_err(ctx("count rows"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewDeployment, Outcome, Phases};

    const DAY: i64 = 86_400_000;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        (dir, store)
    }

    /// A finished deployment of `container`, `age_days` old.
    fn deployed(s: &Store, container: &str, age_days: i64, now: i64) -> i64 {
        let id = s
            .begin(&NewDeployment {
                container,
                repository: "team/api",
                tag: "prod",
                from_digest: None,
                to_digest: "sha256:aa",
                platform_digest: None,
                trigger: "event",
                old_id: "old",
            })
            .unwrap();
        s.finish(id, Outcome::Succeeded, &Phases::default(), None)
            .unwrap();
        let at = now - age_days * DAY;
        s.conn()
            .execute(
                "UPDATE deployments SET started_at_ms = ?2, ended_at_ms = ?2 WHERE id = ?1",
                params![id, at],
            )
            .unwrap();
        id
    }

    fn count(s: &Store, table: &str) -> i64 {
        s.row_counts()
            .unwrap()
            .into_iter()
            .find(|(t, _)| *t == table)
            .unwrap()
            .1
    }

    #[test]
    fn old_deployments_go_but_each_container_keeps_its_last_twenty() {
        let (_d, s) = store();
        let now = crate::store::now_ms();
        // A year of daily deploys for `web`, five old ones for `db`, ten recent for `api`.
        for age in (0..365).rev() {
            deployed(&s, "web", age, now);
        }
        for age in (500..505).rev() {
            deployed(&s, "db", age, now);
        }
        for age in 0..10 {
            deployed(&s, "api", age, now);
        }
        let pruned = s.prune(now - 30 * DAY).unwrap();
        // web: days 0 to 30 (a row at the cutoff stays; more than 20); db: all 5 (its last
        // 20); api: all.
        assert_eq!(s.history(Some("web"), 1000).unwrap().len(), 31);
        assert_eq!(s.history(Some("db"), 1000).unwrap().len(), 5);
        assert_eq!(s.history(Some("api"), 1000).unwrap().len(), 10);
        assert_eq!(pruned.deployments, 365 - 31);
        // The newest stay: web's newest row is today's.
        let newest = &s.history(Some("web"), 1).unwrap()[0];
        assert!(newest.started_at_ms > now - DAY);
        // Twenty kept when all are old.
        let (_d, s) = store();
        for age in (400..440).rev() {
            deployed(&s, "web", age, now);
        }
        s.prune(now - 30 * DAY).unwrap();
        let kept = s.history(Some("web"), 1000).unwrap();
        assert_eq!(kept.len(), KEEP_LAST as usize);
        assert!(kept.iter().all(|d| d.started_at_ms >= now - 420 * DAY));
    }

    #[test]
    fn a_journal_row_without_an_outcome_is_never_pruned() {
        let (_d, s) = store();
        let now = crate::store::now_ms();
        for age in (100..130).rev() {
            deployed(&s, "web", age, now);
        }
        let id = deployed(&s, "web", 200, now);
        s.conn()
            .execute(
                "UPDATE deployments SET outcome = NULL, step = 'swapped' WHERE id = ?1",
                params![id],
            )
            .unwrap();
        s.prune(now - DAY).unwrap();
        assert_eq!(s.unfinished().unwrap().len(), 1, "recovery still finds it");
    }

    #[test]
    fn members_blocks_rejections_results_and_loads_follow_the_cutoff() {
        let (_d, s) = store();
        let now = crate::store::now_ms();
        let old = now - 100 * DAY;
        let conn_exec = |sql: &str| s.conn().execute_batch(sql).unwrap();
        for i in (0..25).rev() {
            deployed(&s, "web", 100 + i, now);
        }
        // Members of the oldest deployment (pruned) and of the newest (kept).
        conn_exec(&format!(
            "INSERT INTO group_members VALUES (1, 0, 'sidecar', 'o', NULL, 1);
             INSERT INTO group_members VALUES (25, 0, 'sidecar', 'o', NULL, 1);
             INSERT INTO blocked VALUES ('web', 'sha256:old', {old}, 'rolled back');
             INSERT INTO blocked VALUES ('web', 'sha256:new', {now}, 'rolled back');
             INSERT INTO rejected VALUES ('web', 'team/api', 'sha256:old', 'scan', 'x', {old});
             INSERT INTO fleet_results VALUES ('h', 'web', 'team/api', 'prod', 'sha256:old', 'succeeded', 1, NULL, {old});
             INSERT INTO fleet_results VALUES ('h', 'web', 'team/api', 'prod', 'sha256:new', 'succeeded', 1, NULL, {now});
             INSERT INTO archive_loads VALUES ('b', 'k', 'e1', '', 'sha256:1', NULL, {old});
             INSERT INTO archive_loads VALUES ('b', 'k', 'e2', '', 'sha256:2', NULL, {});
             INSERT INTO archive_loads VALUES ('b', 'only', 'e3', '', 'sha256:3', NULL, {old});",
            old + DAY
        ));
        s.prune(now - 30 * DAY).unwrap();
        assert_eq!(count(&s, "deployments"), 20);
        assert_eq!(count(&s, "group_members"), 1);
        assert!(s.is_blocked("web", "sha256:new").unwrap());
        assert!(!s.is_blocked("web", "sha256:old").unwrap());
        assert_eq!(count(&s, "rejected"), 0);
        assert_eq!(count(&s, "fleet_results"), 1);
        // k keeps its newest load (old as it is); `only` keeps its one.
        assert_eq!(count(&s, "archive_loads"), 2);
        // Pruning again changes nothing.
        assert_eq!(s.prune(now - 30 * DAY).unwrap(), Pruned::default());
    }
}
