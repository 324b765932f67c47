//! Fleet results in the state store (SPEC §14): every `ECR Deployment Result` of another
//! host this host has seen, once per host, container, repository:tag, digest and outcome,
//! with when it was first seen. Promotions and halts are derived from them
//! ([`crate::fleet::verdict`]), so a restart loses nothing and a duplicate changes nothing.

use std::collections::BTreeMap;

use rusqlite::params;

use super::{Store, StoreError, ctx, now_ms};
use crate::fleet::{self, Fleet, FleetResult, Seen};

pub(super) const SCHEMA_V6: &str = "
CREATE TABLE fleet_results (
    host TEXT NOT NULL,
    container TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL,
    outcome TEXT NOT NULL,
    wave INTEGER NOT NULL,
    error TEXT,
    seen_ms INTEGER NOT NULL,
    PRIMARY KEY (host, container, repository, tag, digest, outcome)
);
CREATE INDEX fleet_results_digest ON fleet_results (repository, digest);
";

/// Results older than this are forgotten (a digest not promoted within it never will be).
const KEEP_DAYS: i64 = 90;

/// A repository:tag and digest whose promotion fell due.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Due {
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

impl Store {
    /// Records `r`; `false` when it was seen before (nothing changes then).
    pub fn record_result(&self, r: &FleetResult) -> Result<bool, StoreError> {
        let now = now_ms();
        let conn = self.conn();
        let n = conn
            .execute(
                "INSERT OR IGNORE INTO fleet_results
                     (host, container, repository, tag, digest, outcome, wave, error, seen_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    r.host,
                    r.container,
                    r.image.repository.as_str(),
                    r.image.tag.as_str(),
                    r.digest.as_str(),
                    r.outcome,
                    r.wave,
                    r.error,
                    now
                ],
            )
            .map_err(ctx("record fleet result"))?;
        if n > 0 {
            conn.execute(
                "DELETE FROM fleet_results WHERE seen_ms < ?1",
                params![now - KEEP_DAYS * 86_400_000],
            )
            .map_err(ctx("forget old fleet results"))?;
        }
        Ok(n > 0)
    }

    /// The results seen for `repository`, of `digest` or (with `None`) of every digest,
    /// oldest first.
    pub fn results_for(
        &self,
        repository: &str,
        digest: Option<&str>,
    ) -> Result<Vec<Seen>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT host, wave, tag, digest, outcome, error, seen_ms FROM fleet_results
                 WHERE repository = ?1 AND (?2 IS NULL OR digest = ?2) ORDER BY seen_ms, host",
            )
            .map_err(ctx("read fleet results"))?;
        let rows = stmt
            .query_map(params![repository, digest], |r| {
                Ok(Seen {
                    host: r.get(0)?,
                    wave: r.get(1)?,
                    tag: r.get(2)?,
                    digest: r.get(3)?,
                    outcome: r.get(4)?,
                    error: r.get(5)?,
                    seen_ms: r.get(6)?,
                })
            })
            .map_err(ctx("read fleet results"))?;
        rows.collect::<Result<_, _>>()
            .map_err(ctx("read fleet results"))
    }

    /// The promotions that fall due in `(after_ms, now_ms]`, and the next one after `now_ms`.
    pub fn promotions_due(
        &self,
        fleet: &Fleet,
        after_ms: i64,
        now_ms: i64,
    ) -> Result<(Vec<Due>, Option<i64>), StoreError> {
        let mut due = Vec::new();
        let mut next: Option<i64> = None;
        for ((repository, digest), seen) in self.recent_successes(fleet, after_ms)? {
            let tags: std::collections::BTreeSet<&str> =
                seen.iter().map(|s| s.tag.as_str()).collect();
            for tag in tags {
                match fleet::due_ms(fleet, tag, &digest, &seen) {
                    Some(at) if at > after_ms && at <= now_ms => due.push(Due {
                        repository: repository.clone(),
                        tag: tag.to_owned(),
                        digest: digest.clone(),
                    }),
                    Some(at) if at > now_ms => next = Some(next.map_or(at, |n| n.min(at))),
                    _ => {}
                }
            }
        }
        Ok((due, next))
    }

    /// The results of every repository and digest that the previous wave reported a
    /// success for since the promotions that can still fall due after `after_ms`.
    fn recent_successes(
        &self,
        fleet: &Fleet,
        after_ms: i64,
    ) -> Result<BTreeMap<(String, String), Vec<Seen>>, StoreError> {
        let since = after_ms - fleet.bake.as_millis() as i64;
        let keys: Vec<(String, String)> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT DISTINCT repository, digest FROM fleet_results
                     WHERE wave = ?1 AND outcome = 'succeeded' AND seen_ms > ?2",
                )
                .map_err(ctx("read fleet results"))?;
            stmt.query_map(params![fleet.wave.saturating_sub(1), since], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(ctx("read fleet results"))?
            .collect::<Result<_, _>>()
            .map_err(ctx("read fleet results"))?
        };
        let mut out = BTreeMap::new();
        for (repository, digest) in keys {
            let seen = self.results_for(&repository, Some(&digest))?;
            out.insert((repository, digest), seen);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::{Digest, ImageRef};

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn result(host: &str, wave: u32, outcome: &str) -> FleetResult {
        FleetResult {
            host: host.into(),
            wave,
            container: "web".into(),
            image: ImageRef::parse_repo_tag("team/web:prod").unwrap(),
            digest: Digest::parse(D1).unwrap(),
            outcome: outcome.into(),
            error: None,
        }
    }

    fn fleet(bake_s: u64) -> Fleet {
        Fleet {
            name: "me".into(),
            wave: 2,
            promote_after: 2,
            bake: Duration::from_secs(bake_s),
        }
    }

    #[test]
    fn a_duplicate_result_is_not_recorded_twice_and_keeps_its_first_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        assert!(store.record_result(&result("a", 1, "succeeded")).unwrap());
        let first = store.results_for("team/web", Some(D1)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!store.record_result(&result("a", 1, "succeeded")).unwrap());
        assert_eq!(store.results_for("team/web", Some(D1)).unwrap(), first);
        // Another outcome of the same host is a result of its own.
        assert!(store.record_result(&result("a", 1, "rolled_back")).unwrap());
        assert_eq!(store.results_for("team/web", None).unwrap().len(), 2);
    }

    #[test]
    fn promotions_fall_due_once_across_calls_and_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&path).unwrap();
        let f = fleet(60);
        store.record_result(&result("a", 1, "succeeded")).unwrap();
        let t0 = now_ms();
        assert_eq!(store.promotions_due(&f, t0, t0).unwrap(), (vec![], None));
        store.record_result(&result("b", 1, "succeeded")).unwrap();
        let t1 = now_ms();
        let (due, next) = store.promotions_due(&f, t1, t1).unwrap();
        assert!(due.is_empty());
        let at = next.expect("a bake end ahead");
        assert!(at >= t0 + 60_000 && at <= t1 + 60_000, "{at}");
        drop(store);
        let store = Store::open(&path).unwrap();
        let (due, next) = store.promotions_due(&f, t1, at).unwrap();
        assert_eq!(next, None);
        assert_eq!(
            due,
            vec![Due {
                repository: "team/web".into(),
                tag: "prod".into(),
                digest: D1.into()
            }]
        );
        // Already due before `after`: not again.
        assert!(store.promotions_due(&f, at, at + 1).unwrap().0.is_empty());
        // A halt: never due.
        store.record_result(&result("c", 1, "rolled_back")).unwrap();
        assert!(store.promotions_due(&f, t1, at).unwrap().0.is_empty());
    }
}
