//! The fleet ledger's writes in the state store (SPEC §17): where the daemon last wrote, when
//! that last succeeded, and the failure since, so that `doctor` (another process) can say
//! whether the host's ledger object is being kept up to date.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, ctx, now_ms};

pub(super) const SCHEMA_V8: &str = "
CREATE TABLE ledger_writes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    url TEXT NOT NULL,
    ok_at_ms INTEGER,
    failed_at_ms INTEGER,
    failures INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
";

/// What the daemon's last ledger writes came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerWrites {
    /// `s3://BUCKET/KEY` written to.
    pub url: String,
    pub ok_at_ms: Option<i64>,
    /// Set while writes fail (cleared by the next success).
    pub failed_at_ms: Option<i64>,
    /// Failed writes in a row.
    pub failures: i64,
    pub error: Option<String>,
}

impl Store {
    /// Records one ledger write to `url`: `Ok` clears the failure, `Err` counts one more.
    pub fn ledger_written(&self, url: &str, result: Result<(), &str>) -> Result<(), StoreError> {
        let now = now_ms();
        let sql = match result {
            Ok(()) => {
                "INSERT INTO ledger_writes (id, url, ok_at_ms, failures, error) VALUES (1, ?1, ?2, 0, ?3)
                 ON CONFLICT (id) DO UPDATE SET url = ?1, ok_at_ms = ?2, failed_at_ms = NULL,
                 failures = 0, error = ?3"
            }
            Err(_) => {
                "INSERT INTO ledger_writes (id, url, failed_at_ms, failures, error) VALUES (1, ?1, ?2, 1, ?3)
                 ON CONFLICT (id) DO UPDATE SET url = ?1, failed_at_ms = ?2,
                 failures = failures + 1, error = ?3"
            }
        };
        self.exec(
            "record a ledger write",
            sql,
            params![url, now, result.err()],
        )
    }

    /// The daemon's ledger writes so far (`None`: never tried).
    pub fn ledger_writes(&self) -> Result<Option<LedgerWrites>, StoreError> {
        self.conn()
            .query_row(
                "SELECT url, ok_at_ms, failed_at_ms, failures, error FROM ledger_writes WHERE id = 1",
                [],
                |r| {
                    Ok(LedgerWrites {
                        url: r.get(0)?,
                        ok_at_ms: r.get(1)?,
                        failed_at_ms: r.get(2)?,
                        failures: r.get(3)?,
                        error: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(ctx("read ledger writes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_up_until_a_success_clears_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(store.ledger_writes().unwrap(), None);
        let url = "s3://ledger/prod/edge.json";
        store.ledger_written(url, Err("NoSuchBucket")).unwrap();
        store
            .ledger_written(url, Err("NoSuchBucket again"))
            .unwrap();
        let w = store.ledger_writes().unwrap().unwrap();
        assert_eq!(
            (w.failures, w.error.as_deref()),
            (2, Some("NoSuchBucket again"))
        );
        assert!(w.failed_at_ms.is_some() && w.ok_at_ms.is_none());
        store.ledger_written(url, Ok(())).unwrap();
        let w = store.ledger_writes().unwrap().unwrap();
        assert_eq!((w.failures, w.error, w.failed_at_ms), (0, None, None));
        assert!(w.ok_at_ms.is_some());
        assert_eq!(w.url, url);
    }
}
