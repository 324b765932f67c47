//! A swap's group in the journal (SPEC §12): the dependents replaced with the managed
//! container, each with its old container, its successor once made, and whether it ran —
//! so that recovery after a kill puts back (or finishes) the whole group, not only its head.

use rusqlite::params;

use super::{Store, StoreError, ctx};

pub(super) const SCHEMA_V5: &str = "
CREATE TABLE group_members (
    deployment INTEGER NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    old_id TEXT NOT NULL,
    new_id TEXT,
    was_running INTEGER NOT NULL,
    PRIMARY KEY (deployment, position)
);
";

/// A dependent swapped with its parent, as journalled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub old_id: String,
    pub new_id: Option<String>,
    pub was_running: bool,
}

impl Store {
    /// Journals the members of deployment `id`'s group, in order, before any is touched.
    pub fn add_members(&self, id: i64, members: &[Member]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(ctx("journal group"))?;
        for (position, m) in members.iter().enumerate() {
            tx.execute(
                "INSERT OR REPLACE INTO group_members (deployment, position, name, old_id, new_id, was_running)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, position as i64, m.name, m.old_id, m.new_id, m.was_running],
            )
            .map_err(ctx("journal group"))?;
        }
        tx.commit().map_err(ctx("journal group"))
    }

    /// Journals the successor made for member `name` of deployment `id`.
    pub fn set_member_new_id(&self, id: i64, name: &str, new_id: &str) -> Result<(), StoreError> {
        self.exec(
            "journal group member",
            "UPDATE group_members SET new_id = ?3 WHERE deployment = ?1 AND name = ?2",
            params![id, name, new_id],
        )
    }

    /// The members of deployment `id`'s group, in order (empty for a lone swap).
    pub fn members(&self, id: i64) -> Result<Vec<Member>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT name, old_id, new_id, was_running FROM group_members
                 WHERE deployment = ?1 ORDER BY position",
            )
            .map_err(ctx("read group"))?;
        let rows = stmt
            .query_map(params![id], |r| {
                Ok(Member {
                    name: r.get(0)?,
                    old_id: r.get(1)?,
                    new_id: r.get(2)?,
                    was_running: r.get(3)?,
                })
            })
            .map_err(ctx("read group"))?;
        rows.collect::<Result<_, _>>().map_err(ctx("read group"))
    }

    /// Forgets an unfinished deployment that turned out not to be one (a pre-update hook
    /// said "not now" before anything was stopped): no history row, no failure.
    pub fn discard(&self, id: i64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(ctx("discard deployment"))?;
        tx.execute(
            "DELETE FROM group_members WHERE deployment = ?1",
            params![id],
        )
        .map_err(ctx("discard deployment"))?;
        tx.execute(
            "DELETE FROM deployments WHERE id = ?1 AND outcome IS NULL",
            params![id],
        )
        .map_err(ctx("discard deployment"))?;
        tx.commit().map_err(ctx("discard deployment"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewDeployment;

    #[test]
    fn a_group_is_journalled_in_order_and_a_discarded_deployment_leaves_no_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let id = store
            .begin(&NewDeployment {
                container: "app",
                repository: "team/app",
                tag: "prod",
                from_digest: None,
                to_digest: "sha256:1",
                platform_digest: None,
                trigger: "event",
                old_id: "old-app",
            })
            .unwrap();
        let m = |name: &str, running| Member {
            name: name.into(),
            old_id: format!("old-{name}"),
            new_id: None,
            was_running: running,
        };
        store
            .add_members(id, &[m("vpn", true), m("debug", false)])
            .unwrap();
        store.set_member_new_id(id, "debug", "new-debug").unwrap();
        let got = store.members(id).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].name.as_str(), got[0].was_running), ("vpn", true));
        assert_eq!(got[1].new_id.as_deref(), Some("new-debug"));
        assert!(!got[1].was_running);
        store.discard(id).unwrap();
        assert!(store.members(id).unwrap().is_empty());
        assert!(store.unfinished().unwrap().is_empty());
        assert!(store.history(None, 10).unwrap().is_empty());
    }
}
