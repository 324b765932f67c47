//! S3 archives in the state store (SPEC §13): which object (bucket, key, ETag, version)
//! gave which image id, or why it was refused. The sweep asks S3 what a key holds and finds
//! here whether that object is loaded already, so an archive is downloaded once, and a bad
//! one is not downloaded again until a new object replaces it.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, ctx, now_ms};
use crate::model::object::ObjectFacts;

pub(super) const SCHEMA_V7: &str = "
CREATE TABLE archive_loads (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    etag TEXT NOT NULL,
    version_id TEXT NOT NULL,
    image_id TEXT,
    refused TEXT,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (bucket, key, etag, version_id)
);
";

/// Objects of a key other than its newest few are forgotten.
const KEEP_PER_KEY: i64 = 20;

/// What became of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveLoad {
    /// Loaded: the id of the image it holds.
    Image(String),
    /// Refused, and why.
    Refused(String),
}

impl Store {
    /// What loading the object `facts` describes at `bucket`/`key` came to, if it was tried.
    pub fn archive_load(
        &self,
        bucket: &str,
        key: &str,
        facts: &ObjectFacts,
    ) -> Result<Option<ArchiveLoad>, StoreError> {
        let row: Option<(Option<String>, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT image_id, refused FROM archive_loads
                 WHERE bucket = ?1 AND key = ?2 AND etag = ?3 AND version_id = ?4",
                params![bucket, key, facts.etag, facts.version_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(ctx("read an archive load"))?;
        Ok(row.and_then(|(image, refused)| match (image, refused) {
            (Some(id), _) => Some(ArchiveLoad::Image(id)),
            (None, Some(why)) => Some(ArchiveLoad::Refused(why)),
            (None, None) => None,
        }))
    }

    /// Records what loading the object came to (the newest word wins).
    pub fn record_archive_load(
        &self,
        bucket: &str,
        key: &str,
        facts: &ObjectFacts,
        load: &ArchiveLoad,
    ) -> Result<(), StoreError> {
        let (image, refused) = match load {
            ArchiveLoad::Image(id) => (Some(id.as_str()), None),
            ArchiveLoad::Refused(why) => (None, Some(why.as_str())),
        };
        let conn = self.conn();
        conn.execute(
            "INSERT OR REPLACE INTO archive_loads
                 (bucket, key, etag, version_id, image_id, refused, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                bucket,
                key,
                facts.etag,
                facts.version_id,
                image,
                refused,
                now_ms()
            ],
        )
        .map_err(ctx("record an archive load"))?;
        conn.execute(
            "DELETE FROM archive_loads WHERE bucket = ?1 AND key = ?2 AND rowid NOT IN
                 (SELECT rowid FROM archive_loads WHERE bucket = ?1 AND key = ?2
                  ORDER BY at_ms DESC, rowid DESC LIMIT ?3)",
            params![bucket, key, KEEP_PER_KEY],
        )
        .map_err(ctx("forget old archive loads"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(etag: &str, version: &str) -> ObjectFacts {
        ObjectFacts {
            etag: etag.into(),
            version_id: version.into(),
            size: 1,
            sha256: None,
        }
    }

    #[test]
    fn an_object_is_known_by_bucket_key_etag_and_version_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).unwrap();
        let v1 = facts("e1", "");
        assert_eq!(store.archive_load("b", "k", &v1).unwrap(), None);
        let image = ArchiveLoad::Image("sha256:aa".into());
        store.record_archive_load("b", "k", &v1, &image).unwrap();
        let bad = ArchiveLoad::Refused("truncated".into());
        store
            .record_archive_load("b", "k", &facts("e2", ""), &bad)
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.archive_load("b", "k", &v1).unwrap(), Some(image));
        assert_eq!(
            store.archive_load("b", "k", &facts("e2", "")).unwrap(),
            Some(bad)
        );
        // Same ETag, another version, key or bucket: another object.
        assert_eq!(
            store.archive_load("b", "k", &facts("e1", "v2")).unwrap(),
            None
        );
        assert_eq!(store.archive_load("b", "k2", &v1).unwrap(), None);
        assert_eq!(store.archive_load("b2", "k", &v1).unwrap(), None);
    }

    #[test]
    fn only_the_newest_objects_of_a_key_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        for i in 0..(KEEP_PER_KEY + 5) {
            let load = ArchiveLoad::Image(format!("sha256:{i}"));
            store
                .record_archive_load("b", "k", &facts(&format!("e{i}"), ""), &load)
                .unwrap();
        }
        let n: i64 = store
            .conn()
            .query_row("SELECT COUNT(*) FROM archive_loads", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, KEEP_PER_KEY);
    }
}
