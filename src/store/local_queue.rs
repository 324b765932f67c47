//! The local queue (SPEC §18): pushes the intake listener accepted, kept until the work they
//! ask for is recorded, with the visibility and receive count an SQS message has. A push is
//! recorded here before the listener answers `200`, so neither a crash nor a restart loses
//! it; an identical push not yet taken is not stored twice, and the table is bounded.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, ctx, now_ms};

pub(super) const SCHEMA_V9: &str = "
CREATE TABLE local_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX local_queue_visible ON local_queue (visible_at_ms);
";

/// Messages kept at most: past this, new pushes are refused (the registry retries) until
/// the agent has worked through the backlog.
pub const MAX_LOCAL_MESSAGES: i64 = 10_000;

/// One message of the local queue as taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalMessage {
    pub id: i64,
    pub body: String,
    /// Deliveries so far, this one included.
    pub receive_count: u32,
}

/// The local queue is full.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    #[error("the local queue holds {MAX_LOCAL_MESSAGES} pushes not yet worked through")]
    Full,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Keeps `bodies` (one transaction: all or none), visible at once. A body identical to
    /// one kept and not yet taken is kept once. Returns how many are new.
    pub fn keep_local(&self, bodies: &[String]) -> Result<usize, KeepError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(ctx("keep pushes"))?;
        let held: i64 = tx
            .query_row("SELECT COUNT(*) FROM local_queue", [], |r| r.get(0))
            .map_err(ctx("count kept pushes"))?;
        if held + bodies.len() as i64 > MAX_LOCAL_MESSAGES {
            return Err(KeepError::Full);
        }
        let now = now_ms();
        let mut added = 0;
        for body in bodies {
            added += tx
                .execute(
                    "INSERT INTO local_queue (body, received_at_ms, visible_at_ms)
                     SELECT ?1, ?2, ?2 WHERE NOT EXISTS
                       (SELECT 1 FROM local_queue WHERE body = ?1 AND receive_count = 0)",
                    params![body, now],
                )
                .map_err(ctx("keep a push"))?;
        }
        tx.commit().map_err(ctx("keep pushes"))?;
        Ok(added)
    }

    /// Takes up to `max` visible messages, oldest first, hiding each for `hide_ms` and
    /// counting the delivery.
    pub fn take_local(&self, max: u32, hide_ms: i64) -> Result<Vec<LocalMessage>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(ctx("take pushes"))?;
        let now = now_ms();
        let taken: Vec<LocalMessage> = {
            let mut stmt = tx
                .prepare(
                    "UPDATE local_queue SET visible_at_ms = ?1, receive_count = receive_count + 1
                     WHERE id IN (SELECT id FROM local_queue WHERE visible_at_ms <= ?2
                                  ORDER BY id LIMIT ?3)
                     RETURNING id, body, receive_count",
                )
                .map_err(ctx("take pushes"))?;
            let rows = stmt
                .query_map(params![now + hide_ms, now, max], |r| {
                    Ok(LocalMessage {
                        id: r.get(0)?,
                        body: r.get(1)?,
                        receive_count: r.get(2)?,
                    })
                })
                .map_err(ctx("take pushes"))?;
            rows.collect::<Result<_, _>>().map_err(ctx("take pushes"))?
        };
        tx.commit().map_err(ctx("take pushes"))?;
        let mut taken = taken;
        taken.sort_by_key(|m| m.id);
        Ok(taken)
    }

    /// When the next hidden message becomes visible (`None`: the queue is empty).
    pub fn next_local_visible(&self) -> Result<Option<i64>, StoreError> {
        self.conn()
            .query_row("SELECT MIN(visible_at_ms) FROM local_queue", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .optional()
            .map(Option::flatten)
            .map_err(ctx("next local message"))
    }

    /// Deletes messages whose work is recorded.
    pub fn delete_local(&self, ids: &[i64]) -> Result<(), StoreError> {
        let conn = self.conn();
        for id in ids {
            conn.execute("DELETE FROM local_queue WHERE id = ?1", [id])
                .map_err(ctx("delete a push"))?;
        }
        Ok(())
    }

    /// Makes messages visible again `after_ms` from now (0: at once).
    pub fn hide_local(&self, ids: &[i64], after_ms: i64) -> Result<(), StoreError> {
        let conn = self.conn();
        let at = now_ms() + after_ms;
        for id in ids {
            conn.execute(
                "UPDATE local_queue SET visible_at_ms = ?1 WHERE id = ?2",
                params![at, id],
            )
            .map_err(ctx("set a push's visibility"))?;
        }
        Ok(())
    }

    /// Makes every hidden message visible now; returns how many. For the holder of the state
    /// store's lease at start-up: a message hidden then was taken by a process that has ended
    /// (killed, crashed) before its work was recorded, and nothing will finish it — waiting
    /// out its visibility timeout would only delay the push. Receive counts stay: a push that
    /// kills the agent each time still reaches `max_receive_count`.
    pub fn release_local(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        self.conn()
            .execute(
                "UPDATE local_queue SET visible_at_ms = ?1 WHERE visible_at_ms > ?1",
                [now],
            )
            .map_err(ctx("release pushes in flight"))
    }

    /// Messages kept (the `local_queue` map size).
    pub fn local_len(&self) -> Result<i64, StoreError> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM local_queue", [], |r| r.get(0))
            .map_err(ctx("count kept pushes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn a_kept_push_is_taken_hidden_counted_and_deleted_only_when_asked() {
        let (_d, s) = store();
        assert_eq!(s.keep_local(&["a".into(), "b".into()]).unwrap(), 2);
        let taken = s.take_local(10, 60_000).unwrap();
        assert_eq!(
            taken.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(taken.iter().all(|m| m.receive_count == 1));
        // Hidden: not taken again until visible; then counted again.
        assert!(s.take_local(10, 60_000).unwrap().is_empty());
        s.hide_local(&[taken[0].id], 0).unwrap();
        let again = s.take_local(10, 60_000).unwrap();
        assert_eq!((again.len(), again[0].receive_count), (1, 2));
        s.delete_local(&[taken[0].id, taken[1].id]).unwrap();
        assert_eq!(s.local_len().unwrap(), 0);
        assert_eq!(s.next_local_visible().unwrap(), None);
    }

    #[test]
    fn an_identical_push_not_yet_taken_is_kept_once_and_the_queue_is_bounded() {
        let (_d, s) = store();
        assert_eq!(s.keep_local(&["a".into(), "a".into()]).unwrap(), 1);
        assert_eq!(s.keep_local(&["a".into()]).unwrap(), 0);
        // Once taken, the same push again is news (the work may have started already).
        s.take_local(1, 60_000).unwrap();
        assert_eq!(s.keep_local(&["a".into()]).unwrap(), 1);
        let many: Vec<String> = (0..MAX_LOCAL_MESSAGES).map(|i| i.to_string()).collect();
        assert!(matches!(s.keep_local(&many), Err(KeepError::Full)));
        // All or none: the refused batch left nothing behind.
        assert_eq!(s.local_len().unwrap(), 2);
    }

    #[test]
    fn kept_pushes_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Store::open(&path)
            .unwrap()
            .keep_local(&["a".into()])
            .unwrap();
        let taken = Store::open(&path).unwrap().take_local(10, 1).unwrap();
        assert_eq!(taken.len(), 1);
    }

    #[test]
    fn pushes_in_flight_when_the_agent_died_are_released_at_once_with_their_count() {
        let (_d, s) = store();
        s.keep_local(&["a".into(), "b".into(), "c".into()]).unwrap();
        // Two taken by the process that died, hidden for five minutes; one never taken.
        let taken = s.take_local(2, 300_000).unwrap();
        assert_eq!(taken.len(), 2);
        assert_eq!(s.release_local().unwrap(), 2, "only the hidden ones");
        let again = s.take_local(10, 300_000).unwrap();
        assert_eq!(
            again
                .iter()
                .map(|m| (m.body.as_str(), m.receive_count))
                .collect::<Vec<_>>(),
            [("a", 2), ("b", 2), ("c", 1)]
        );
        s.delete_local(&again.iter().map(|m| m.id).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(s.release_local().unwrap(), 0, "an empty queue");
    }
}
