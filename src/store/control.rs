//! Update control in the state store (SPEC §10): paused containers, and the holds recorded
//! for a digest (pending, monitor) so that the operator is told once per digest, across
//! restarts, and the message announcing it may be deleted.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError, ctx, now_ms};

/// The pause row of `pause --all`: every managed container, now and later.
pub const ALL: &str = "*";

pub(super) const SCHEMA_V3: &str = "
CREATE TABLE paused (
    container TEXT PRIMARY KEY,
    since_ms INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE held (
    container TEXT NOT NULL,
    kind TEXT NOT NULL,
    digest TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    PRIMARY KEY (container, kind)
);
";

/// A pause: who it holds (a name or [`ALL`]), since when, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pause {
    pub container: String,
    pub since_ms: i64,
    pub reason: String,
}

fn row_to_pause(r: &rusqlite::Row<'_>) -> rusqlite::Result<Pause> {
    Ok(Pause {
        container: r.get(0)?,
        since_ms: r.get(1)?,
        reason: r.get(2)?,
    })
}

impl Store {
    /// Pauses `container` (or [`ALL`]); pausing again keeps the first time and takes the new
    /// reason.
    pub fn pause(&self, container: &str, reason: &str) -> Result<(), StoreError> {
        self.exec(
            "pause",
            "INSERT INTO paused (container, since_ms, reason) VALUES (?1, ?2, ?3)
             ON CONFLICT (container) DO UPDATE SET reason = excluded.reason",
            params![container, now_ms(), reason],
        )
    }

    /// Releases `container` (or [`ALL`]); `false` when it was not paused.
    pub fn resume(&self, container: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute(
                "DELETE FROM paused WHERE container = ?1",
                params![container],
            )
            .map_err(ctx("resume"))?;
        Ok(n > 0)
    }

    /// Releases every pause; returns how many there were.
    pub fn resume_all(&self) -> Result<usize, StoreError> {
        self.conn()
            .execute("DELETE FROM paused", [])
            .map_err(ctx("resume all"))
    }

    /// The pause that holds `container`: its own, else `pause --all`'s.
    pub fn paused(&self, container: &str) -> Result<Option<Pause>, StoreError> {
        self.conn()
            .query_row(
                "SELECT container, since_ms, reason FROM paused WHERE container IN (?1, ?2)
                 ORDER BY container = ?2 LIMIT 1",
                params![container, ALL],
                row_to_pause,
            )
            .optional()
            .map_err(ctx("read pause"))
    }

    /// Every pause, by name.
    pub fn pauses(&self) -> Result<Vec<Pause>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT container, since_ms, reason FROM paused ORDER BY container")
            .map_err(ctx("list pauses"))?;
        let rows = stmt
            .query_map([], row_to_pause)
            .map_err(ctx("list pauses"))?;
        rows.collect::<Result<_, _>>().map_err(ctx("list pauses"))
    }

    /// Records that `digest` is held for `container` as `kind` (`pending`, `monitor`).
    /// `true` when this is news: another digest (or none) was recorded before.
    pub fn hold(&self, container: &str, kind: &str, digest: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        let before: Option<String> = conn
            .query_row(
                "SELECT digest FROM held WHERE container = ?1 AND kind = ?2",
                params![container, kind],
                |r| r.get(0),
            )
            .optional()
            .map_err(ctx("read hold"))?;
        if before.as_deref() == Some(digest) {
            return Ok(false);
        }
        conn.execute(
            "INSERT INTO held (container, kind, digest, since_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (container, kind) DO UPDATE SET digest = excluded.digest, since_ms = excluded.since_ms",
            params![container, kind, digest, now_ms()],
        )
        .map_err(ctx("record hold"))?;
        Ok(true)
    }
}

impl Store {
    /// The digest recorded as held for `container` as `kind`, and since when.
    pub fn held_since(
        &self,
        container: &str,
        kind: &str,
    ) -> Result<Option<(String, i64)>, StoreError> {
        self.conn()
            .query_row(
                "SELECT digest, since_ms FROM held WHERE container = ?1 AND kind = ?2",
                params![container, kind],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(ctx("read hold"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("state.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn pauses_survive_reopening_and_pause_all_holds_every_name() {
        let (dir, s) = store();
        s.pause("web", "db migration").unwrap();
        s.pause("web", "still migrating").unwrap();
        drop(s);
        let s = Store::open(&dir.path().join("state.db")).unwrap();
        let p = s.paused("web").unwrap().unwrap();
        assert_eq!(
            (p.container.as_str(), p.reason.as_str()),
            ("web", "still migrating")
        );
        assert_eq!(s.paused("api").unwrap(), None);
        s.pause(ALL, "freeze").unwrap();
        assert_eq!(s.paused("api").unwrap().unwrap().container, ALL);
        assert_eq!(
            s.paused("web").unwrap().unwrap().container,
            "web",
            "its own pause first"
        );
        assert_eq!(s.pauses().unwrap().len(), 2);
        assert!(s.resume("web").unwrap());
        assert!(!s.resume("web").unwrap(), "not paused any more");
        assert_eq!(s.resume_all().unwrap(), 1);
        assert_eq!(s.paused("web").unwrap(), None);
    }

    #[test]
    fn a_hold_is_news_once_per_digest_and_kind() {
        let (_dir, s) = store();
        assert!(s.hold("web", "monitor", "sha256:a").unwrap());
        assert!(
            !s.hold("web", "monitor", "sha256:a").unwrap(),
            "same digest again"
        );
        assert!(
            s.hold("web", "pending", "sha256:a").unwrap(),
            "another kind"
        );
        assert!(
            s.hold("web", "monitor", "sha256:b").unwrap(),
            "a newer digest"
        );
        assert!(
            s.hold("api", "monitor", "sha256:b").unwrap(),
            "another container"
        );
    }
}
