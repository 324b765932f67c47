//! The state store: deployment history, the deploy journal and blocked digests, in one
//! embedded SQLite database (WAL). A deployment row is written before its first step and
//! updated before each later step, so after a crash the row says where the swap stopped.
//! What is kept over months: [`retention`].

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

pub use crate::model::{Outcome, Phases, Step};
pub use archives::ArchiveLoad;
pub use control::{ALL, Pause};
pub use fleet::Due;
pub use gates::Rejection;
pub use group::Member;
pub use ledger::LedgerWrites;
pub use local_queue::{KeepError, LocalMessage, MAX_LOCAL_MESSAGES};
pub use retention::{KEEP_LAST, Pruned};

mod archives;
mod control;
pub mod files;
mod fleet;
mod gates;
mod group;
mod ledger;
mod local_queue;
mod retention;

/// A failure of the state store, with the operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("state store ({what}): {source}")]
    Sql {
        what: &'static str,
        source: rusqlite::Error,
    },
    /// Written by a newer agent: reading it could misread the journal.
    #[error(
        "state store {path}: schema version {found} was written by a newer ecr-deployd (this one knows up to {known}); upgrade ecr-deployd, or move the file away to start with an empty history"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
}

fn ctx(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { what, source }
}

/// One deployment, finished or (journal) in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deployment {
    pub id: i64,
    pub container: String,
    pub repository: String,
    pub tag: String,
    pub from_digest: Option<String>,
    pub to_digest: String,
    /// When `to_digest` is an image index: its manifest for this host's platform.
    pub platform_digest: Option<String>,
    pub trigger: String,
    pub outcome: Option<Outcome>,
    /// The journalled step; `None` when the row names a step this agent does not know
    /// (written by another version, or damaged): recovery must not guess then.
    #[serde(skip)]
    pub step: Option<Step>,
    /// The step as stored.
    #[serde(skip)]
    pub step_text: String,
    /// Docker id of the container that ran before.
    pub old_id: Option<String>,
    /// Docker id of the container created by this deployment.
    pub new_id: Option<String>,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub phases: Phases,
    pub error: Option<String>,
}

/// What a new deployment row starts with.
pub struct NewDeployment<'a> {
    pub container: &'a str,
    pub repository: &'a str,
    pub tag: &'a str,
    pub from_digest: Option<&'a str>,
    pub to_digest: &'a str,
    pub platform_digest: Option<&'a str>,
    pub trigger: &'a str,
    pub old_id: &'a str,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The SQLite state store.
pub struct Store {
    conn: Mutex<Connection>,
}

/// Schema migrations in order: `PRAGMA user_version` counts those applied. Never edit one
/// that has shipped; append. The first is the schema of the first release, which set no
/// version (its stores read 0 and have these tables already: hence `IF NOT EXISTS`).
const MIGRATIONS: &[&str] = &[
    SCHEMA_V1,
    "ALTER TABLE deployments ADD COLUMN platform_digest TEXT;",
    control::SCHEMA_V3,
    gates::SCHEMA_V4,
    group::SCHEMA_V5,
    fleet::SCHEMA_V6,
    archives::SCHEMA_V7,
    ledger::SCHEMA_V8,
    local_queue::SCHEMA_V9,
];

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS deployments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    container TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    from_digest TEXT,
    to_digest TEXT NOT NULL,
    trigger TEXT NOT NULL,
    outcome TEXT,
    step TEXT NOT NULL,
    old_id TEXT,
    new_id TEXT,
    started_at_ms INTEGER NOT NULL,
    ended_at_ms INTEGER,
    resolve_ms INTEGER NOT NULL DEFAULT 0,
    pull_ms INTEGER NOT NULL DEFAULT 0,
    stop_ms INTEGER NOT NULL DEFAULT 0,
    swap_ms INTEGER NOT NULL DEFAULT 0,
    health_ms INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS deployments_container ON deployments (container, id);
CREATE TABLE IF NOT EXISTS blocked (
    container TEXT NOT NULL,
    digest TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (container, digest)
);
";

const COLUMNS: &str = "id, container, repository, tag, from_digest, to_digest, trigger, outcome, step, \
    old_id, new_id, started_at_ms, ended_at_ms, resolve_ms, pull_ms, stop_ms, swap_ms, health_ms, error, \
    platform_digest";

fn row_to_deployment(r: &rusqlite::Row<'_>) -> rusqlite::Result<Deployment> {
    let outcome: Option<String> = r.get(7)?;
    let step: String = r.get(8)?;
    Ok(Deployment {
        id: r.get(0)?,
        container: r.get(1)?,
        repository: r.get(2)?,
        tag: r.get(3)?,
        from_digest: r.get(4)?,
        to_digest: r.get(5)?,
        trigger: r.get(6)?,
        outcome: outcome.as_deref().and_then(Outcome::parse),
        step: Step::parse(&step),
        step_text: step,
        old_id: r.get(9)?,
        new_id: r.get(10)?,
        started_at_ms: r.get(11)?,
        ended_at_ms: r.get(12)?,
        phases: Phases {
            resolve_ms: r.get(13)?,
            pull_ms: r.get(14)?,
            stop_ms: r.get(15)?,
            swap_ms: r.get(16)?,
            health_ms: r.get(17)?,
        },
        error: r.get(18)?,
        platform_digest: r.get(19)?,
    })
}

/// The schema version this agent writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the store up to [`SCHEMA_VERSION`], each step in one transaction; refuses a store
/// from a newer agent.
fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    loop {
        // Under the write lock: another process opening the store at the same moment
        // (the daemon and a CLI command) cannot apply the same step twice.
        conn.execute_batch("BEGIN IMMEDIATE;")
            .map_err(ctx("lock for migration"))?;
        let step = migrate_one(conn, path);
        let end = if matches!(step, Ok(true)) {
            "COMMIT;"
        } else {
            "ROLLBACK;"
        };
        let ended = conn.execute_batch(end).map_err(ctx("migrate schema"));
        match step {
            Ok(true) => ended?,
            Ok(false) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Applies the next migration, if any (`Ok(false)`: up to date). Runs inside a transaction.
fn migrate_one(conn: &Connection, path: &Path) -> Result<bool, StoreError> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(ctx("read schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.display().to_string(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    let Some(sql) = MIGRATIONS.get(found as usize) else {
        return Ok(false);
    };
    conn.execute_batch(&format!("{sql}\n; PRAGMA user_version = {};", found + 1))
        .map_err(ctx("migrate schema"))?;
    Ok(true)
}

/// How long opening waits for another process that holds the store while switching it to WAL.
const WAL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Switches the store to WAL. SQLite answers "database is locked" at once, without the busy
/// handler, when another connection (a CLI `status` beside a starting daemon) is converting
/// the same new store at that moment: wait for it, up to [`WAL_WAIT`].
fn enable_wal(conn: &Connection) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < WAL_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.map_err(ctx("enable WAL")),
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The error of open() below names the problem if this fails.
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(ctx("open"))?;
        // First, so that every statement below waits for a lock another process holds.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(ctx("set busy timeout"))?;
        enable_wal(&conn)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(ctx("set synchronous"))?;
        migrate(&conn, path)?;
        files::share(path);
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One statement without a result; `what` names it in the error.
    fn exec(
        &self,
        what: &'static str,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<(), StoreError> {
        self.conn().execute(sql, params).map_err(ctx(what))?;
        Ok(())
    }

    /// Journals the start of a deployment (step `pulling`); returns its id.
    pub fn begin(&self, d: &NewDeployment<'_>) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO deployments (container, repository, tag, from_digest, to_digest, trigger, step, old_id, started_at_ms, platform_digest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![d.container, d.repository, d.tag, d.from_digest, d.to_digest, d.trigger, Step::Pulling.as_str(), d.old_id, now_ms(), d.platform_digest],
        )
        .map_err(ctx("begin deployment"))?;
        Ok(conn.last_insert_rowid())
    }

    /// Journals the step about to be taken.
    pub fn step(&self, id: i64, step: Step) -> Result<(), StoreError> {
        self.exec(
            "journal step",
            "UPDATE deployments SET step = ?2 WHERE id = ?1",
            params![id, step.as_str()],
        )
    }

    /// Journals the step about to be taken and the id of the container this deployment
    /// created, in one write.
    pub fn step_with_new_id(&self, id: i64, step: Step, new_id: &str) -> Result<(), StoreError> {
        self.exec(
            "journal step",
            "UPDATE deployments SET step = ?2, new_id = ?3 WHERE id = ?1",
            params![id, step.as_str(), new_id],
        )
    }

    /// Journals the id of the container this deployment created.
    pub fn set_new_id(&self, id: i64, new_id: &str) -> Result<(), StoreError> {
        self.exec(
            "journal new container",
            "UPDATE deployments SET new_id = ?2 WHERE id = ?1",
            params![id, new_id],
        )
    }

    /// Records how a deployment ended.
    pub fn finish(
        &self,
        id: i64,
        outcome: Outcome,
        phases: &Phases,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.exec("record outcome", "UPDATE deployments SET outcome = ?2, step = 'done', ended_at_ms = ?3, resolve_ms = ?4, pull_ms = ?5,
                 stop_ms = ?6, swap_ms = ?7, health_ms = ?8, error = ?9 WHERE id = ?1", params![
                    id,
                    outcome.as_str(),
                    now_ms(),
                    phases.resolve_ms,
                    phases.pull_ms,
                    phases.stop_ms,
                    phases.swap_ms,
                    phases.health_ms,
                    error
                ])
    }

    /// Deployments a crash interrupted (no outcome yet).
    pub fn unfinished(&self) -> Result<Vec<Deployment>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM deployments WHERE outcome IS NULL ORDER BY id"
            ))
            .map_err(ctx("read journal"))?;
        let rows = stmt
            .query_map([], row_to_deployment)
            .map_err(ctx("read journal"))?;
        rows.collect::<Result<_, _>>().map_err(ctx("read journal"))
    }

    /// Past deployments, newest first, optionally of one container.
    pub fn history(
        &self,
        container: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Deployment>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM deployments WHERE (?1 IS NULL OR container = ?1) ORDER BY id DESC LIMIT ?2"
            ))
            .map_err(ctx("read history"))?;
        let rows = stmt
            .query_map(params![container, limit as i64], row_to_deployment)
            .map_err(ctx("read history"))?;
        rows.collect::<Result<_, _>>().map_err(ctx("read history"))
    }

    /// Blocks `digest` for `container` (after a rollback).
    pub fn block(&self, container: &str, digest: &str, reason: &str) -> Result<(), StoreError> {
        self.exec("block digest", "INSERT OR REPLACE INTO blocked (container, digest, since_ms, reason) VALUES (?1, ?2, ?3, ?4)", params![container, digest, now_ms(), reason])
    }

    /// Takes and releases the write lock: proves the database can be written now.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        self.conn()
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .map_err(ctx("write check"))
    }

    /// Lifts a block (an operator deploys that digest on purpose).
    pub fn unblock(&self, container: &str, digest: &str) -> Result<(), StoreError> {
        self.exec(
            "unblock digest",
            "DELETE FROM blocked WHERE container = ?1 AND digest = ?2",
            params![container, digest],
        )
    }

    pub fn is_blocked(&self, container: &str, digest: &str) -> Result<bool, StoreError> {
        self.conn()
            .query_row(
                "SELECT 1 FROM blocked WHERE container = ?1 AND digest = ?2",
                params![container, digest],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(ctx("read blocked digests"))
    }
}

#[cfg(test)]
mod tests;
