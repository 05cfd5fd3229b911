//! The migration state: what was seen and copied where, so a run resumes after any
//! interruption and a re-run with nothing to do does almost nothing.
//!
//! One SQLite file (WAL, so a killed process loses at most the transaction in flight). For each
//! mailbox pair and source folder it keeps both UIDVALIDITYs; for each copied message the source
//! UID, target UID, size, SHA-256 and the source flags at the last sync. No secret is ever
//! stored here.
//!
//! ```no_run
//! # async fn demo() -> Result<(), trasloco_state::Error> {
//! let state = trasloco_state::State::open(std::path::Path::new("trasloco.sqlite")).await?;
//! let mailbox = state.mailbox_id("alice@old.example", "alice@new.example").await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod lock;
pub use lock::{LockError, RunLock};

mod sql;
pub use sql::Location;

mod queue;
pub use queue::{Fence, Leased, Limits, QueueItem, QueueRow, WorkerRow};

use sql::{Backend, Stmt};
use sqlx::Row;
use sqlx::{AnyConnection, AnyPool};
use std::path::Path;
use trasloco_core::diff::Mapped;
use trasloco_core::flags::FlagSet;

/// A state-store failure, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("state file {path}: {source}")]
pub struct Error {
    path: String,
    #[source]
    source: Why,
}

/// What went wrong with a state file.
#[derive(Debug, thiserror::Error)]
enum Why {
    /// SQLite said so.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// The file is another program's database.
    #[error("{0}")]
    Foreign(String),
    /// A worker's lease on the mailbox is gone: another worker has it now.
    #[error("{0}")]
    Fenced(String),
}

impl Error {
    /// Whether the write was refused because this worker's lease on the mailbox is gone.
    pub fn is_fenced(&self) -> bool {
        matches!(self.source, Why::Fenced(_))
    }
}

/// SQLite's `application_id` of a trasloco state file ("tras").
const APPLICATION_ID: i64 = 0x7472_6173;

/// The tables a trasloco state file holds (a file made before the application id was set is
/// recognised by these).
const OUR_TABLES: [&str; 10] = [
    "run",
    "mailbox",
    "folder",
    "message",
    "altered",
    "archive_cut",
    "pop3_message",
    "phase",
    // Made by versions before 2026-12-03, which marked a mailbox rather than its folders.
    "appending",
    "append_line",
];

/// The state store.
#[derive(Clone)]
pub struct State {
    pool: AnyPool,
    path: String,
    backend: Backend,
    /// Set on a worker's handle for one leased mailbox: every write checks it first.
    fence: Option<Fence>,
}

/// What the store knows of one source folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderState {
    /// Row id.
    pub id: i64,
    /// Source UIDVALIDITY at the last sync (None: never synced).
    pub source_uid_validity: Option<u32>,
    /// Target UIDVALIDITY at the last sync.
    pub target_uid_validity: Option<u32>,
    /// Target folder name at the last sync.
    pub target_name: Option<String>,
}

/// One copied (or matched) message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Source UID.
    pub source_uid: u32,
    /// Target UID.
    pub target_uid: u32,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, when they were read in this run.
    pub sha256: Option<String>,
    /// Source flags as synced.
    pub flags: FlagSet,
}

/// A recorded copy whose bytes on the target differ from the source's (the target rewrote
/// it): remembered so that every later run and `verify` report it instead of calling it
/// present, and so that it is never appended a second time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Altered {
    /// Source UID.
    pub source_uid: u32,
    /// Target UID of the altered copy.
    pub target_uid: u32,
    /// SHA-256 of the target's copy.
    pub target_sha256: String,
    /// Byte offset of the first difference, if it was found.
    pub first_difference: Option<u64>,
    /// The server holding the copy (`user@host`).
    pub server: String,
    /// When it was found (RFC 3339).
    pub found_at: String,
}

/// A target folder that may still receive APPENDs nobody waits for: the target's UIDNEXT
/// before a run's first APPEND into it. Every copy of that run, and every copy an APPEND it
/// left unanswered stores late, gets a UID from `line` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendLine {
    /// The folder's row.
    pub folder_id: i64,
    /// The target folder's UIDVALIDITY the line belongs to.
    pub target_uid_validity: u32,
    /// The target's UIDNEXT before the first APPEND.
    pub line: u32,
    /// When the line was drawn (RFC 3339).
    pub since: String,
    /// When a later run (or a later attempt of the same run, after a dropped connection)
    /// first found the line left behind (RFC 3339); `None` while its own run is appending.
    pub inherited_at: Option<String>,
}

/// One mailbox pair as `status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxRow {
    /// Source account.
    pub source: String,
    /// Target account.
    pub target: String,
    /// Last status (`in-sync`, `incomplete`, `failed`, …) or None if never run.
    pub status: Option<String>,
    /// When the last run of this mailbox finished (RFC 3339).
    pub finished_at: Option<String>,
    /// The last report (JSON), if any.
    pub report_json: Option<String>,
    /// Messages recorded as being on the target.
    pub messages_recorded: i64,
    /// Of those, the ones trasloco copied (as opposed to found there), over every run, killed
    /// ones included.
    pub messages_copied: i64,
    /// Their bytes.
    pub bytes_copied: i64,
}

/// What the last clean pass over a folder saw: both sides' STATUS counters after it, under
/// which rules, and its report. While neither side's counters moved, the folder is as that
/// pass left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanFolder {
    /// The folder's id in the state.
    pub folder_id: i64,
    /// Source folder name.
    pub source_name: String,
    /// Target folder name it was synced into.
    pub target_name: String,
    /// The source's counters when the pass listed the folder.
    pub source_status: String,
    /// The target's counters when the pass was over.
    pub target_status: String,
    /// The rules that decided each message's bucket (dates, flags, limits).
    pub rules: String,
    /// The folder's report as a pass that finds nothing to do tells it (JSON).
    pub report_json: String,
}

/// What the last pass over a whole mailbox that left every folder clean saw of the source:
/// while the source lists the same folders with the same counters (and the run has the same
/// rules), nothing is left to do for the mailbox, and the target need not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanMailbox {
    /// A digest of the source's folder listing, every folder's STATUS counters and the rules.
    pub listing: String,
    /// The folders' reports as a pass that finds nothing to do tells them (JSON).
    pub report_json: String,
}

/// A campaign phase's outcome for one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseRow {
    /// Source account.
    pub source: String,
    /// Target account.
    pub target: String,
    /// `prestage`, `delta`, `final` or `catchup`.
    pub phase: String,
    /// The mailbox's status after it.
    pub status: String,
    /// When it finished (RFC 3339).
    pub finished_at: String,
    /// Messages copied by it.
    pub copied: u64,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
    /// What ran.
    pub command: String,
    /// Its exit code.
    pub exit_code: Option<i32>,
    /// Its JSON report.
    pub report_path: Option<String>,
}

/// Rows per multi-row INSERT or UPDATE: six values a row stays under the 999 variables of the
/// oldest SQLite builds.
const ROWS_PER_STATEMENT: usize = 100;

/// Run one statement per chunk of `rows`, built by `build` (an INSERT or `UPDATE … FROM
/// (VALUES …)`, where both SQLite and PostgreSQL name the list's columns column1, column2, …).
/// Every statement is a round trip to the database: one per row cost a context switch per
/// message copied.
async fn in_chunks<T>(
    conn: &mut AnyConnection,
    rows: &[T],
    build: impl Fn(&[T]) -> Stmt,
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        // Only the full-sized statement recurs; the last, shorter one is not kept prepared.
        build(chunk)
            .execute(&mut *conn, chunk.len() == ROWS_PER_STATEMENT)
            .await?;
    }
    Ok(())
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS mailbox (
    id {id},
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT,
    finished_at TEXT,
    report_json TEXT,
    UNIQUE (source, target)
);
CREATE TABLE IF NOT EXISTS folder (
    id {id},
    mailbox_id {int} NOT NULL REFERENCES mailbox(id),
    source_name TEXT NOT NULL,
    target_name TEXT,
    source_uid_validity {int},
    target_uid_validity {int},
    UNIQUE (mailbox_id, source_name)
);
CREATE TABLE IF NOT EXISTS message (
    folder_id {int} NOT NULL REFERENCES folder(id),
    source_uid {int} NOT NULL,
    target_uid {int} NOT NULL,
    size {int} NOT NULL,
    sha256 TEXT,
    flags TEXT NOT NULL,
    checked {int} NOT NULL DEFAULT 0,
    PRIMARY KEY (folder_id, source_uid)
);
CREATE TABLE IF NOT EXISTS altered (
    folder_id {int} NOT NULL REFERENCES folder(id),
    source_uid {int} NOT NULL,
    target_uid {int} NOT NULL,
    target_sha256 TEXT NOT NULL,
    first_difference {int},
    server TEXT NOT NULL,
    found_at TEXT NOT NULL,
    PRIMARY KEY (folder_id, source_uid)
);
CREATE TABLE IF NOT EXISTS archive_cut (
    mailbox_id {id} REFERENCES mailbox(id),
    before {int} NOT NULL
);
CREATE TABLE IF NOT EXISTS pop3_message (
    mailbox_id {int} NOT NULL REFERENCES mailbox(id),
    uidl TEXT NOT NULL,
    uid {int} NOT NULL,
    received TEXT,
    PRIMARY KEY (mailbox_id, uidl),
    UNIQUE (mailbox_id, uid)
);
CREATE TABLE IF NOT EXISTS phase (
    mailbox_id {int} NOT NULL REFERENCES mailbox(id),
    phase TEXT NOT NULL,
    status TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    copied {int} NOT NULL,
    PRIMARY KEY (mailbox_id, phase)
);
CREATE TABLE IF NOT EXISTS append_line (
    folder_id {id} REFERENCES folder(id),
    target_uid_validity {int} NOT NULL,
    line {int} NOT NULL,
    since TEXT NOT NULL,
    inherited_at TEXT
);
CREATE TABLE IF NOT EXISTS upload_day (
    target TEXT NOT NULL,
    day TEXT NOT NULL,
    bytes {int} NOT NULL,
    PRIMARY KEY (target, day)
);
CREATE TABLE IF NOT EXISTS folder_clean (
    folder_id {id} REFERENCES folder(id),
    source_status TEXT NOT NULL,
    target_status TEXT NOT NULL,
    rules TEXT NOT NULL,
    report_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run (
    id {id},
    started_at TEXT NOT NULL,
    finished_at TEXT,
    command TEXT NOT NULL,
    exit_code {int},
    report_path TEXT
);
"#;

/// The schema's history, oldest first: step N brings a store at version N-1 to version N
/// (the version is kept in `schema_version`). Step 1 is every table as of 2026-12-03; a file
/// made by an earlier, SQLite-only version has some of them already, hence `IF NOT EXISTS`
/// and the column added where it is missing.
const MIGRATIONS: &[&[&str]] = &[
    &[
        SCHEMA,
        "-- sqlite-only message.checked",
        "CREATE INDEX IF NOT EXISTS message_unchecked ON message (folder_id) WHERE checked = 0",
    ],
    // 2026-12-03: the work queue shared by workers, the workers, and shared back-off.
    &[queue::SCHEMA],
    // 2026-12-04: a mailbox's last clean pass as a whole (see `CleanMailbox`).
    &[MAILBOX_CLEAN],
];

const MAILBOX_CLEAN: &str = r#"
CREATE TABLE IF NOT EXISTS mailbox_clean (
    mailbox_id {int} PRIMARY KEY REFERENCES mailbox(id),
    listing TEXT NOT NULL,
    report_json TEXT NOT NULL
)
"#;

fn flags_text(f: &FlagSet) -> String {
    f.iter().collect::<Vec<_>>().join(" ")
}

fn flags_parse(s: &str) -> FlagSet {
    s.split_whitespace().collect()
}

impl State {
    /// Open (creating if needed) the state file.
    pub async fn open(path: &Path) -> Result<State, Error> {
        State::open_at(&Location::File(path.to_path_buf())).await
    }

    /// Open (creating the tables if needed) the state at a location: a SQLite file or a
    /// PostgreSQL database.
    pub async fn open_at(location: &Location) -> Result<State, Error> {
        #[cfg(debug_assertions)]
        if let Some(pg) = sql::test_postgres(location).await {
            let pg = pg.map_err(|source| Error {
                path: location.describe(),
                source: Why::Sql(source),
            })?;
            return State::open_postgres(&pg, location.describe()).await;
        }
        match location {
            Location::File(path) => State::open_sqlite(path).await,
            Location::Postgres(url) => State::open_postgres(url, location.describe()).await,
        }
    }

    async fn open_sqlite(path: &Path) -> Result<State, Error> {
        let p = path.display().to_string();
        let wrap = |source: sqlx::Error| Error {
            path: p.clone(),
            source: Why::Sql(source),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| wrap(sqlx::Error::Io(e)))?;
        }
        let pool = sql::sqlite_pool(path).await.map_err(wrap)?;
        // Only trasloco's own state is written to: another program's database (a wrong path,
        // a shared file) is refused before a table is added to it.
        let id: i64 = sqlx::query_scalar("PRAGMA application_id")
            .fetch_one(&pool)
            .await
            .map_err(wrap)?;
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&pool)
                .await
                .map_err(wrap)?;
        let ours = id == APPLICATION_ID
            || (id == 0 && tables.iter().all(|t| OUR_TABLES.contains(&t.as_str())));
        let foreign = (!ours).then(|| format!(
            "not a trasloco state file: it is another program's database (tables {}); choose another state file (--state, campaign: run.state)",
            tables.join(", ")
        ));
        let state = State::adopt(pool, p, Backend::Sqlite, foreign).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA application_id = {APPLICATION_ID}"
        )))
        .execute(&state.pool)
        .await
        .map_err(|e| state.err(e))?;
        Ok(state)
    }

    async fn open_postgres(url: &str, described: String) -> Result<State, Error> {
        let wrap = |source: sqlx::Error| Error {
            path: described.clone(),
            source: Why::Sql(source),
        };
        let pool = sql::postgres_pool(url).await.map_err(wrap)?;
        // A database (schema) that holds other tables and none of ours is another program's.
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
        )
        .fetch_all(&pool)
        .await
        .map_err(wrap)?;
        let ours = tables.is_empty() || tables.iter().any(|t| t == "schema_version");
        let foreign = (!ours).then(|| format!(
            "not a trasloco state database: it holds another program's tables ({}); choose another database or schema (--state, campaign: run.state)",
            tables.join(", ")
        ));
        State::adopt(pool, described, Backend::Postgres, foreign).await
    }

    /// The state on an opened pool: refused, the pool closed and nothing written, when
    /// `foreign` says it is another program's database; else brought up to this version's
    /// schema.
    async fn adopt(
        pool: AnyPool,
        path: String,
        backend: Backend,
        foreign: Option<String>,
    ) -> Result<State, Error> {
        if let Some(why) = foreign {
            pool.close().await;
            return Err(Error {
                path,
                source: Why::Foreign(why),
            });
        }
        let state = State {
            pool,
            path,
            backend,
            fence: None,
        };
        state.migrate().await?;
        Ok(state)
    }

    /// Bring the tables up to this version's schema, one numbered step at a time, each in a
    /// transaction; on PostgreSQL under an advisory lock, so workers starting at once take
    /// turns.
    async fn migrate(&self) -> Result<(), Error> {
        let e = |source| self.err(source);
        let mut tx = self.pool.begin().await.map_err(e)?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7472617300)")
                .execute(&mut *tx)
                .await
                .map_err(e)?;
        }
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        let at: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
            .fetch_one(&mut *tx)
            .await
            .map_err(e)?;
        let at = at.unwrap_or(0);
        if at > MIGRATIONS.len() as i64 {
            return Err(Error {
                path: self.path.clone(),
                source: Why::Foreign(format!(
                    "written by a newer trasloco (schema version {at}, this one knows {}); use that version or a newer one",
                    MIGRATIONS.len()
                )),
            });
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(at as usize) {
            let text = self.backend.schema(&step.join(";\n"));
            for stmt in text.split(';').map(str::trim) {
                if stmt.is_empty() {
                    continue;
                }
                if let Some(check) = stmt.strip_prefix("-- sqlite-only ") {
                    if self.backend == Backend::Sqlite {
                        self.sqlite_only(&mut tx, check).await?;
                    }
                    continue;
                }
                sqlx::query(sqlx::AssertSqlSafe(stmt.to_string()))
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
            }
            sqlx::query("DELETE FROM schema_version")
                .execute(&mut *tx)
                .await
                .map_err(e)?;
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(i as i64 + 1)
                .execute(&mut *tx)
                .await
                .map_err(e)?;
        }
        tx.commit().await.map_err(e)
    }

    /// Steps only files made by SQLite-only versions need.
    async fn sqlite_only(&self, tx: &mut AnyConnection, step: &str) -> Result<(), Error> {
        match step.trim() {
            // Made before copies were marked as read back: the copies it holds were read back
            // by the runs that made them, as far as anyone knows.
            "message.checked" => {
                let has: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pragma_table_info('message') WHERE name = 'checked'",
                )
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
                if has == 0 {
                    sqlx::query(
                        "ALTER TABLE message ADD COLUMN checked INTEGER NOT NULL DEFAULT 1",
                    )
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
                }
                Ok(())
            }
            other => unreachable!("unknown SQLite-only step {other}"),
        }
    }

    /// A transaction for a write. On a handle under a lease ([`State::fenced`]) it first
    /// checks, holding the queue row shared, that the lease is still this one: a worker that
    /// was paused past its lease, and whose mailbox another worker has taken over since,
    /// gets an error instead of a write. The shared row lock makes the check hold until the
    /// commit: a take-over waits for it, and every write after the take-over is refused.
    async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, Error> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        if let Some(f) = &self.fence {
            let sql = match self.backend {
                Backend::Postgres => {
                    "SELECT worker FROM queue WHERE id = $1 AND generation = $2 AND state = 'leased' FOR SHARE"
                }
                Backend::Sqlite => {
                    "SELECT worker FROM queue WHERE id = $1 AND generation = $2 AND state = 'leased'"
                }
            };
            let held: Option<Option<String>> = sqlx::query_scalar(sql)
                .bind(f.id)
                .bind(f.generation)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            if held.is_none() {
                return Err(Error {
                    path: self.path.clone(),
                    source: Why::Fenced(format!(
                        "this worker's lease on {} ended and another worker has taken the mailbox over; nothing more is written for it here",
                        f.mailbox
                    )),
                });
            }
        }
        Ok(tx)
    }

    fn err(&self, source: sqlx::Error) -> Error {
        Error {
            path: self.path.clone(),
            source: Why::Sql(source),
        }
    }

    /// The id of a mailbox pair, created on first use.
    pub async fn mailbox_id(&self, source: &str, target: &str) -> Result<i64, Error> {
        // Known after the first run: one statement then, rather than two.
        if let Some(id) = self.find_mailbox(source, target).await? {
            return Ok(id);
        }
        sqlx::query("INSERT INTO mailbox (source, target) VALUES ($1, $2) ON CONFLICT (source, target) DO NOTHING")
            .bind(source)
            .bind(target)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        let row = sqlx::query("SELECT id FROM mailbox WHERE source = $1 AND target = $2")
            .bind(source)
            .bind(target)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(row.get::<i64, _>(0))
    }

    /// The id of a mailbox pair if it was ever recorded (reads only; for dry runs).
    pub async fn find_mailbox(&self, source: &str, target: &str) -> Result<Option<i64>, Error> {
        let row = sqlx::query("SELECT id FROM mailbox WHERE source = $1 AND target = $2")
            .bind(source)
            .bind(target)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(row.map(|r| r.get::<i64, _>(0)))
    }

    /// Stable UIDs for POP3 messages: each UIDL gets a number the first time it is seen and
    /// keeps it, so the UID-based diff works as for IMAP. Returns UIDL → (UID, received date
    /// when recorded). With `assign` false (dry runs) unknown UIDLs get numbers after the
    /// recorded ones without being stored.
    pub async fn pop3_uids(
        &self,
        mailbox_id: Option<i64>,
        uidls: &[String],
        assign: bool,
    ) -> Result<std::collections::HashMap<String, (u32, Option<String>)>, Error> {
        let mut known = std::collections::HashMap::new();
        let mut next = 1u32;
        if let Some(mb) = mailbox_id {
            let rows =
                sqlx::query("SELECT uidl, uid, received FROM pop3_message WHERE mailbox_id = $1")
                    .bind(mb)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| self.err(e))?;
            for r in rows {
                let uid = r.get::<i64, _>(1) as u32;
                next = next.max(uid + 1);
                known.insert(r.get::<String, _>(0), (uid, r.get::<Option<String>, _>(2)));
            }
        }
        let mut fresh: Vec<(&String, u32)> = Vec::new();
        for u in uidls {
            if !known.contains_key(u) {
                known.insert(u.clone(), (next, None));
                fresh.push((u, next));
                next += 1;
            }
        }
        if assign && let Some(mb) = mailbox_id {
            let mut tx = self.write().await?;
            in_chunks(&mut tx, &fresh, |chunk| {
                let mut q = Stmt::new("INSERT INTO pop3_message (mailbox_id, uidl, uid) ");
                q.values(chunk, |row, (uidl, uid)| {
                    row.bind(mb).bind((*uidl).clone()).bind(i64::from(*uid));
                });
                q
            })
            .await
            .map_err(|e| self.err(e))?;
            tx.commit().await.map_err(|e| self.err(e))?;
        }
        Ok(known)
    }

    /// Remember when POP3 messages were received (for `--leave-days`), by UID.
    pub async fn set_pop3_received(
        &self,
        mailbox_id: i64,
        dates: &[(u32, String)],
    ) -> Result<(), Error> {
        let mut tx = self.write().await?;
        in_chunks(&mut tx, dates, |chunk| {
            let mut q = Stmt::new("UPDATE pop3_message SET received = v.column2 FROM (");
            q.values(chunk, |row, (uid, d)| {
                row.bind(i64::from(*uid)).bind(d.clone());
            });
            q.push(") AS v WHERE pop3_message.mailbox_id = ")
                .bind(mailbox_id)
                .push(" AND pop3_message.uid = v.column1");
            q
        })
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// What is known of a source folder (created on first use).
    pub async fn folder(&self, mailbox_id: i64, source_name: &str) -> Result<FolderState, Error> {
        sqlx::query(
            "INSERT INTO folder (mailbox_id, source_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(mailbox_id)
        .bind(source_name)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        self.find_folder(mailbox_id, source_name)
            .await?
            .ok_or_else(|| self.err(sqlx::Error::RowNotFound))
    }

    /// What is known of a source folder, if anything (reads only).
    pub async fn find_folder(
        &self,
        mailbox_id: i64,
        source_name: &str,
    ) -> Result<Option<FolderState>, Error> {
        let row = sqlx::query(
            "SELECT id, source_uid_validity, target_uid_validity, target_name FROM folder WHERE mailbox_id = $1 AND source_name = $2",
        )
        .bind(mailbox_id)
        .bind(source_name)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(row.map(|row| FolderState {
            id: row.get(0),
            source_uid_validity: row.get::<Option<i64>, _>(1).map(|v| v as u32),
            target_uid_validity: row.get::<Option<i64>, _>(2).map(|v| v as u32),
            target_name: row.get(3),
        }))
    }

    /// Record the UIDVALIDITY pair and target name a folder is being synced against. When
    /// either differs from what was recorded, the recorded copies are forgotten: their UIDs no
    /// longer mean anything, and the next diff reconciles by content identity.
    pub async fn bind_folder(
        &self,
        folder: &FolderState,
        target_name: &str,
        source_uv: u32,
        target_uv: u32,
    ) -> Result<bool, Error> {
        let changed = folder.source_uid_validity != Some(source_uv)
            || folder.target_uid_validity != Some(target_uv)
            || folder.target_name.as_deref() != Some(target_name);
        if !changed {
            return Ok(false);
        }
        let mut tx = self.write().await?;
        for table in ["message", "altered"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE folder_id = $1"
            )))
            .bind(folder.id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        sqlx::query("UPDATE folder SET source_uid_validity = $2, target_uid_validity = $3, target_name = $4 WHERE id = $1")
            .bind(folder.id)
            .bind(i64::from(source_uv))
            .bind(i64::from(target_uv))
            .bind(target_name)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(folder.source_uid_validity.is_some())
    }

    /// The folders of a mailbox whose last pass was clean, with what it saw.
    pub async fn clean_folders(&self, mailbox_id: i64) -> Result<Vec<CleanFolder>, Error> {
        let rows = sqlx::query(
            "SELECT c.folder_id, f.source_name, f.target_name, c.source_status, c.target_status, c.rules, c.report_json \
             FROM folder_clean c JOIN folder f ON f.id = c.folder_id WHERE f.mailbox_id = $1",
        )
        .bind(mailbox_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|row| CleanFolder {
                folder_id: row.get(0),
                source_name: row.get(1),
                target_name: row.get::<Option<String>, _>(2).unwrap_or_default(),
                source_status: row.get(3),
                target_status: row.get(4),
                rules: row.get(5),
                report_json: row.get(6),
            })
            .collect())
    }

    /// Forget the clean passes of these folders: they are being synced again, and until that
    /// pass is over nothing is known of them.
    pub async fn forget_clean(&self, folder_ids: &[i64]) -> Result<(), Error> {
        if folder_ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        let mut q = Stmt::new("DELETE FROM folder_clean WHERE folder_id IN (");
        q.list(folder_ids.iter().copied()).push(")");
        q.execute(&mut *tx, false).await.map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The mailbox's last clean pass as a whole, if one is recorded.
    pub async fn clean_mailbox(&self, mailbox_id: i64) -> Result<Option<CleanMailbox>, Error> {
        let row =
            sqlx::query("SELECT listing, report_json FROM mailbox_clean WHERE mailbox_id = $1")
                .bind(mailbox_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        Ok(row.map(|row| CleanMailbox {
            listing: row.get(0),
            report_json: row.get(1),
        }))
    }

    /// Record (or replace) a mailbox's clean pass as a whole.
    pub async fn record_clean_mailbox(
        &self,
        mailbox_id: i64,
        clean: &CleanMailbox,
    ) -> Result<(), Error> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO mailbox_clean (mailbox_id, listing, report_json) VALUES ($1, $2, $3) \
             ON CONFLICT (mailbox_id) DO UPDATE SET listing = excluded.listing, report_json = excluded.report_json",
        )
        .bind(mailbox_id)
        .bind(&clean.listing)
        .bind(&clean.report_json)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Forget a mailbox's clean pass as a whole: it is being synced again, or something was
    /// found missing on its target.
    pub async fn forget_clean_mailbox(&self, mailbox_id: i64) -> Result<(), Error> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM mailbox_clean WHERE mailbox_id = $1")
            .bind(mailbox_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Record clean passes (`folder_id` of each row is looked up by `source_name` under
    /// `mailbox_id`), all in one transaction.
    pub async fn record_clean(&self, mailbox_id: i64, rows: &[CleanFolder]) -> Result<(), Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO folder_clean (folder_id, source_status, target_status, rules, report_json) \
                 SELECT id, $3, $4, $5, $6 FROM folder WHERE mailbox_id = $1 AND source_name = $2 \
                 ON CONFLICT (folder_id) DO UPDATE SET source_status = excluded.source_status, \
                 target_status = excluded.target_status, rules = excluded.rules, report_json = excluded.report_json",
            )
            .bind(mailbox_id)
            .bind(&r.source_name)
            .bind(&r.source_status)
            .bind(&r.target_status)
            .bind(&r.rules)
            .bind(&r.report_json)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The recorded copies of a folder.
    pub async fn mappings(&self, folder_id: i64) -> Result<Vec<Mapped>, Error> {
        self.mappings_between(folder_id, 1, u32::MAX).await
    }

    /// The recorded copies of a folder's source UIDs `from..=to`: one listing window's.
    pub async fn mappings_between(
        &self,
        folder_id: i64,
        from: u32,
        to: u32,
    ) -> Result<Vec<Mapped>, Error> {
        use futures_util::TryStreamExt;
        // Row by row: a folder of 100,000 messages must not sit in memory twice, once as rows
        // and once as mappings.
        let mut out = Vec::new();
        let mut rows = sqlx::query(
            "SELECT source_uid, target_uid, flags, size, CASE WHEN sha256 IS NULL THEN 0 ELSE 1 END FROM message \
             WHERE folder_id = $1 AND source_uid BETWEEN $2 AND $3",
        )
        .bind(folder_id)
        .bind(i64::from(from))
        .bind(i64::from(to))
        .fetch(&self.pool);
        while let Some(r) = rows.try_next().await.map_err(|e| self.err(e))? {
            out.push(Mapped {
                source_uid: r.get::<i64, _>(0) as u32,
                target_uid: r.get::<i64, _>(1) as u32,
                synced_flags: flags_parse(r.get::<&str, _>(2)),
                size: r.get::<i64, _>(3) as u64,
                ours: r.get::<i64, _>(4) != 0,
            });
        }
        Ok(out)
    }

    /// Whether more than `n` copies of the folder are recorded (reads at most `n + 1` rows).
    pub async fn recorded_more_than(&self, folder_id: i64, n: u64) -> Result<bool, Error> {
        let limit = i64::try_from(n.saturating_add(1)).unwrap_or(i64::MAX);
        let found: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM message WHERE folder_id = $1 LIMIT $2) AS s",
        )
        .bind(folder_id)
        .bind(limit)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(found as u64 > n)
    }

    /// Every target UID a recorded copy of the folder claims, ascending (4 bytes each).
    pub async fn claimed_target_uids(&self, folder_id: i64) -> Result<Vec<u32>, Error> {
        use futures_util::TryStreamExt;
        let mut out = Vec::new();
        let mut rows = sqlx::query("SELECT target_uid FROM message WHERE folder_id = $1")
            .bind(folder_id)
            .fetch(&self.pool);
        while let Some(r) = rows.try_next().await.map_err(|e| self.err(e))? {
            out.push(r.get::<i64, _>(0) as u32);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Record copies (or matches), in one transaction.
    pub async fn record(&self, folder_id: i64, records: &[Record]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        in_chunks(&mut tx, records, |chunk| {
            let mut q = Stmt::new(
                "INSERT INTO message (folder_id, source_uid, target_uid, size, sha256, flags, checked) ",
            );
            // A copy made (its bytes' SHA-256 known) waits to be read back; a message found
            // already on the target is not this tool's copy to read back.
            q.values(chunk, |row, r| {
                row.bind(folder_id)
                    .bind(i64::from(r.source_uid))
                    .bind(i64::from(r.target_uid))
                    .bind(r.size as i64)
                    .bind(r.sha256.clone())
                    .bind(flags_text(&r.flags))
                    .bind(i64::from(r.sha256.is_none()));
            });
            q.push(
                " ON CONFLICT (folder_id, source_uid) DO UPDATE SET target_uid = excluded.target_uid, size = excluded.size, \
                 sha256 = COALESCE(excluded.sha256, message.sha256), flags = excluded.flags, \
                 checked = CASE WHEN excluded.sha256 IS NULL THEN message.checked ELSE 0 END",
            );
            q
        })
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Copies made and never read back (the run that made them ended first): (source UID,
    /// target UID, size, SHA-256 of the bytes sent).
    pub async fn unchecked(&self, folder_id: i64) -> Result<Vec<(u32, u32, u64, String)>, Error> {
        let rows = sqlx::query(
            "SELECT source_uid, target_uid, size, sha256 FROM message \
             WHERE folder_id = $1 AND checked = 0 AND sha256 IS NOT NULL ORDER BY source_uid",
        )
        .bind(folder_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.get::<i64, _>(0) as u32,
                    r.get::<i64, _>(1) as u32,
                    r.get::<i64, _>(2) as u64,
                    r.get::<String, _>(3),
                )
            })
            .collect())
    }

    /// Copies of a mailbox made and not read back yet.
    pub async fn unchecked_count(&self, mailbox_id: i64) -> Result<u64, Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM message WHERE checked = 0 AND sha256 IS NOT NULL \
             AND folder_id IN (SELECT id FROM folder WHERE mailbox_id = $1)",
        )
        .bind(mailbox_id)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    /// These copies were read back.
    pub async fn mark_checked(&self, folder_id: i64, source_uids: &[u32]) -> Result<(), Error> {
        self.by_source_uids("UPDATE message SET checked = 1", folder_id, source_uids)
            .await
    }

    /// Remember copies the target altered (replacing what was known of the same source UIDs).
    pub async fn mark_altered(&self, folder_id: i64, rows: &[Altered]) -> Result<(), Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        in_chunks(&mut tx, rows, |chunk| {
            let mut q = Stmt::new(
                "INSERT INTO altered (folder_id, source_uid, target_uid, target_sha256, first_difference, server, found_at) ",
            );
            q.values(chunk, |row, a| {
                row.bind(folder_id)
                    .bind(i64::from(a.source_uid))
                    .bind(i64::from(a.target_uid))
                    .bind(a.target_sha256.clone())
                    .bind(a.first_difference.map(|o| o as i64))
                    .bind(a.server.clone())
                    .bind(a.found_at.clone());
            });
            q.push(
                " ON CONFLICT (folder_id, source_uid) DO UPDATE SET target_uid = excluded.target_uid, \
                 target_sha256 = excluded.target_sha256, first_difference = excluded.first_difference, \
                 server = excluded.server, found_at = excluded.found_at",
            );
            q
        })
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The altered copies recorded for a folder's source UIDs `from..=to`.
    pub async fn altered_between(
        &self,
        folder_id: i64,
        from: u32,
        to: u32,
    ) -> Result<Vec<Altered>, Error> {
        let rows = sqlx::query(
            "SELECT source_uid, target_uid, target_sha256, first_difference, server, found_at \
             FROM altered WHERE folder_id = $1 AND source_uid BETWEEN $2 AND $3 ORDER BY source_uid",
        )
        .bind(folder_id)
        .bind(i64::from(from))
        .bind(i64::from(to))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|r| Altered {
                source_uid: r.get::<i64, _>(0) as u32,
                target_uid: r.get::<i64, _>(1) as u32,
                target_sha256: r.get(2),
                first_difference: r.get::<Option<i64>, _>(3).map(|o| o as u64),
                server: r.get(4),
                found_at: r.get(5),
            })
            .collect())
    }

    /// Forget altered copies that are no longer there (the copy was deleted, the source
    /// message expunged, or a new copy made).
    pub async fn forget_altered(&self, folder_id: i64, source_uids: &[u32]) -> Result<(), Error> {
        self.by_source_uids("DELETE FROM altered", folder_id, source_uids)
            .await
    }

    /// Forget recorded copies (their target copies were removed on purpose: moved to a quota
    /// archive).
    pub async fn forget_copies(&self, folder_id: i64, source_uids: &[u32]) -> Result<(), Error> {
        self.by_source_uids("DELETE FROM message", folder_id, source_uids)
            .await
    }

    /// Delete a folder's rows of `table` for these source UIDs, a hundred per statement.
    /// Run `head` (a DELETE or UPDATE of a table with `folder_id` and `source_uid`) on these
    /// rows of a folder, in one transaction.
    async fn by_source_uids(
        &self,
        head: &'static str,
        folder_id: i64,
        source_uids: &[u32],
    ) -> Result<(), Error> {
        if source_uids.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        in_chunks(&mut tx, source_uids, |chunk| {
            let mut q = Stmt::new(format!("{head} WHERE folder_id = "));
            q.bind(folder_id)
                .push(" AND source_uid IN (")
                .list(chunk.iter().map(|u| i64::from(*u)))
                .push(")");
            q
        })
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The quota archive cut a run moved a mailbox's cut to (Unix seconds), if any.
    pub async fn archive_cut(&self, mailbox_id: i64) -> Result<Option<i64>, Error> {
        sqlx::query_scalar("SELECT before FROM archive_cut WHERE mailbox_id = $1")
            .bind(mailbox_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    /// Bytes uploaded to a target account on a day (`YYYY-MM-DD`, UTC), by every run: what a
    /// daily upload cap (Gmail's 500 MB over IMAP) is measured against.
    pub async fn uploaded_on(&self, target: &str, day: &str) -> Result<u64, Error> {
        let n: Option<i64> =
            sqlx::query_scalar("SELECT bytes FROM upload_day WHERE target = $1 AND day = $2")
                .bind(target)
                .bind(day)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// Add bytes uploaded to a target account on a day.
    pub async fn add_uploaded(&self, target: &str, day: &str, bytes: u64) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO upload_day (target, day, bytes) VALUES ($1, $2, $3) \
             ON CONFLICT (target, day) DO UPDATE SET bytes = upload_day.bytes + excluded.bytes",
        )
        .bind(target)
        .bind(day)
        .bind(bytes as i64)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Record a mailbox's quota archive cut.
    pub async fn set_archive_cut(&self, mailbox_id: i64, before: i64) -> Result<(), Error> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO archive_cut (mailbox_id, before) VALUES ($1, $2) \
             ON CONFLICT (mailbox_id) DO UPDATE SET before = excluded.before",
        )
        .bind(mailbox_id)
        .bind(before)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Record the source flags now synced for some messages.
    pub async fn update_flags(
        &self,
        folder_id: i64,
        updates: &[(u32, FlagSet)],
    ) -> Result<(), Error> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        in_chunks(&mut tx, updates, |chunk| {
            let mut q = Stmt::new("UPDATE message SET flags = v.column2 FROM (");
            q.values(chunk, |row, (uid, flags)| {
                row.bind(i64::from(*uid)).bind(flags_text(flags));
            });
            q.push(") AS v WHERE message.folder_id = ")
                .bind(folder_id)
                .push(" AND message.source_uid = v.column1");
            q
        })
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Draw a folder's line before a run's first APPEND into it goes out: a server commits an
    /// APPEND it received whole even when the connection is gone, so a process that dies
    /// with one in flight leaves copies that no state row knows of, and that may appear much
    /// later (a server that was stalled). A line already there (left by a run that stopped)
    /// stays, unless the folder's UIDVALIDITY changed.
    pub async fn draw_append_line(
        &self,
        folder_id: i64,
        target_uid_validity: u32,
        line: u32,
        since: &str,
    ) -> Result<(), Error> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO append_line (folder_id, target_uid_validity, line, since) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (folder_id) DO UPDATE SET target_uid_validity = excluded.target_uid_validity, \
             line = excluded.line, since = excluded.since, inherited_at = NULL \
             WHERE append_line.target_uid_validity <> excluded.target_uid_validity",
        )
        .bind(folder_id)
        .bind(i64::from(target_uid_validity))
        .bind(i64::from(line))
        .bind(since)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// At the start of an attempt on a mailbox: the lines an earlier run (or attempt) left,
    /// those found now marked with `now`.
    pub async fn inherit_append_lines(
        &self,
        mailbox_id: i64,
        now: &str,
    ) -> Result<Vec<AppendLine>, Error> {
        let mine = "folder_id IN (SELECT id FROM folder WHERE mailbox_id = $1)";
        // Most mailboxes have none: a read says so without a write transaction.
        let any: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT folder_id FROM append_line WHERE {mine} LIMIT 1"
        )))
        .bind(mailbox_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.write().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE append_line SET inherited_at = $2 WHERE inherited_at IS NULL AND {mine}"
        )))
        .bind(mailbox_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT folder_id, target_uid_validity, line, since, inherited_at FROM append_line WHERE {mine} ORDER BY folder_id"
        )))
        .bind(mailbox_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|r| AppendLine {
                folder_id: r.get(0),
                target_uid_validity: r.get::<i64, _>(1) as u32,
                line: r.get::<i64, _>(2) as u32,
                since: r.get(3),
                inherited_at: r.get(4),
            })
            .collect())
    }

    /// Every APPEND of this run into the mailbox was answered: its own lines go (those
    /// inherited from a run that stopped stay until their folder is found quiet).
    pub async fn drop_own_append_lines(&self, mailbox_id: i64) -> Result<(), Error> {
        let mut tx = self.write().await?;
        sqlx::query(
            "DELETE FROM append_line WHERE inherited_at IS NULL \
             AND folder_id IN (SELECT id FROM folder WHERE mailbox_id = $1)",
        )
        .bind(mailbox_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// A folder is quiet: nothing more is expected above its line.
    pub async fn drop_append_line(&self, folder_id: i64) -> Result<(), Error> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM append_line WHERE folder_id = $1")
            .bind(folder_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Store a mailbox's outcome and report and, with `phase` (name, messages copied), that
    /// campaign phase's outcome for it (the last run of a phase wins), in one transaction.
    pub async fn finish_mailbox(
        &self,
        mailbox_id: i64,
        status: &str,
        finished_at: &str,
        report_json: &str,
        phase: Option<(&str, u64)>,
    ) -> Result<(), Error> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE mailbox SET status = $2, finished_at = $3, report_json = $4 WHERE id = $1",
        )
        .bind(mailbox_id)
        .bind(status)
        .bind(finished_at)
        .bind(report_json)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        if let Some((phase, copied)) = phase {
            Self::phase_row(&mut tx, mailbox_id, phase, status, finished_at, copied)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// A phase's outcome row, inserted or replaced.
    async fn phase_row(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        mailbox_id: i64,
        phase: &str,
        status: &str,
        finished_at: &str,
        copied: u64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO phase (mailbox_id, phase, status, finished_at, copied) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (mailbox_id, phase) DO UPDATE SET status = $3, finished_at = $4, copied = $5",
        )
        .bind(mailbox_id)
        .bind(phase)
        .bind(status)
        .bind(finished_at)
        .bind(copied as i64)
        .execute(&mut **tx)
        .await
        .map(|_| ())
    }

    /// Every recorded phase outcome: (source, target, phase, status, finished_at, copied).
    pub async fn phases(&self) -> Result<Vec<PhaseRow>, Error> {
        let rows = sqlx::query(
            "SELECT m.source, m.target, p.phase, p.status, p.finished_at, p.copied \
             FROM phase p JOIN mailbox m ON p.mailbox_id = m.id ORDER BY m.source, p.finished_at",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| PhaseRow {
                source: r.get(0),
                target: r.get(1),
                phase: r.get(2),
                status: r.get(3),
                finished_at: r.get(4),
                copied: r.get::<i64, _>(5) as u64,
            })
            .collect())
    }

    /// Finished runs: (started_at, finished_at, command, exit code, report path), oldest first.
    pub async fn runs(&self) -> Result<Vec<RunRow>, Error> {
        let rows = sqlx::query(
            "SELECT started_at, finished_at, command, exit_code, report_path FROM run \
             WHERE finished_at IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| RunRow {
                started_at: r.get(0),
                finished_at: r.get(1),
                command: r.get(2),
                exit_code: r.get(3),
                report_path: r.get(4),
            })
            .collect())
    }

    /// Every mailbox pair known to the store.
    pub async fn mailboxes(&self) -> Result<Vec<MailboxRow>, Error> {
        let rows = sqlx::query(
            "SELECT m.source, m.target, m.status, m.finished_at, m.report_json, \
             (SELECT COUNT(*) FROM message g JOIN folder f ON g.folder_id = f.id WHERE f.mailbox_id = m.id), \
             (SELECT COUNT(*) FROM message g JOIN folder f ON g.folder_id = f.id \
                WHERE f.mailbox_id = m.id AND g.sha256 IS NOT NULL), \
             (SELECT CAST(COALESCE(SUM(g.size), 0) AS BIGINT) FROM message g JOIN folder f ON g.folder_id = f.id \
                WHERE f.mailbox_id = m.id AND g.sha256 IS NOT NULL) \
             FROM mailbox m ORDER BY m.source, m.target",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| MailboxRow {
                source: r.get(0),
                target: r.get(1),
                status: r.get(2),
                finished_at: r.get(3),
                report_json: r.get(4),
                messages_recorded: r.get(5),
                messages_copied: r.get(6),
                bytes_copied: r.get(7),
            })
            .collect())
    }

    /// Record the start of a run; returns its id.
    pub async fn start_run(&self, started_at: &str, command: &str) -> Result<i64, Error> {
        let row = sqlx::query("INSERT INTO run (started_at, command) VALUES ($1, $2) RETURNING id")
            .bind(started_at)
            .bind(command)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(row.get(0))
    }

    /// Record the end of a run.
    pub async fn finish_run(
        &self,
        id: i64,
        finished_at: &str,
        exit_code: i32,
        report_path: Option<&str>,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE run SET finished_at = $2, exit_code = $3, report_path = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(finished_at)
        .bind(exit_code)
        .bind(report_path)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Whether the state is kept in PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// Flush and close.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    /// Whether the tests run against PostgreSQL (`TRASLOCO_TEST_POSTGRES`, see `sql`).
    fn on_postgres() -> bool {
        std::env::var_os("TRASLOCO_TEST_POSTGRES").is_some()
    }

    fn set(items: &[&str]) -> FlagSet {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn copies_wait_to_be_read_back_and_older_files_learn_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let state = State::open(&path).await.unwrap();
        let mb = state.mailbox_id("a@src", "a@tgt").await.unwrap();
        let f = state.folder(mb, "INBOX").await.unwrap().id;
        let rec = |u: u32, sha: Option<&str>| Record {
            source_uid: u,
            target_uid: u + 100,
            size: 10,
            sha256: sha.map(str::to_string),
            flags: FlagSet::default(),
        };
        // Two copies made, one message found already there (not ours to read back).
        let rows = [rec(1, Some("aa")), rec(2, Some("bb")), rec(3, None)];
        state.record(f, &rows).await.unwrap();
        assert_eq!(state.unchecked_count(mb).await.unwrap(), 2);
        state.mark_checked(f, &[1]).await.unwrap();
        assert_eq!(
            state.unchecked(f).await.unwrap(),
            [(2, 102, 10, "bb".to_string())]
        );
        // Copied again (the target lost it): it waits to be read back again.
        state.record(f, &[rec(1, Some("aa"))]).await.unwrap();
        assert_eq!(state.unchecked_count(mb).await.unwrap(), 2);
        state.close().await;

        // A file made before the column existed: its copies count as read back (SQLite
        // files only: no PostgreSQL state predates the column).
        if on_postgres() {
            return;
        }
        let old = dir.path().join("old.sqlite");
        let pool = SqlitePoolOptions::new()
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&old)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        for stmt in [
            "CREATE TABLE mailbox (id INTEGER PRIMARY KEY, source TEXT NOT NULL, target TEXT NOT NULL, status TEXT, finished_at TEXT, report_json TEXT, UNIQUE (source, target))",
            "CREATE TABLE folder (id INTEGER PRIMARY KEY, mailbox_id INTEGER NOT NULL, source_name TEXT NOT NULL, target_name TEXT, source_uid_validity INTEGER, target_uid_validity INTEGER, UNIQUE (mailbox_id, source_name))",
            "CREATE TABLE message (folder_id INTEGER NOT NULL, source_uid INTEGER NOT NULL, target_uid INTEGER NOT NULL, size INTEGER NOT NULL, sha256 TEXT, flags TEXT NOT NULL, PRIMARY KEY (folder_id, source_uid))",
            "INSERT INTO mailbox (id, source, target) VALUES (1, 'a@src', 'a@tgt')",
            "INSERT INTO folder (id, mailbox_id, source_name) VALUES (1, 1, 'INBOX')",
            "INSERT INTO message VALUES (1, 1, 1, 10, 'aa', '')",
        ] {
            sqlx::query(stmt).execute(&pool).await.unwrap();
        }
        pool.close().await;
        let state = State::open(&old).await.unwrap();
        assert_eq!(state.unchecked_count(1).await.unwrap(), 0);
        state.record(1, &[rec(2, Some("bb"))]).await.unwrap();
        assert_eq!(state.unchecked_count(1).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn records_survive_reopen_and_reset_on_uidvalidity_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let state = State::open(&path).await.unwrap();
        let mb = state.mailbox_id("alice@src", "alice@tgt").await.unwrap();
        assert_eq!(
            mb,
            state.mailbox_id("alice@src", "alice@tgt").await.unwrap()
        );
        let f = state.folder(mb, "INBOX").await.unwrap();
        assert!(!state.bind_folder(&f, "INBOX", 10, 20).await.unwrap());
        state
            .record(
                f.id,
                &[Record {
                    source_uid: 1,
                    target_uid: 7,
                    size: 100,
                    sha256: Some("ab".into()),
                    flags: set(&["\\Seen"]),
                }],
            )
            .await
            .unwrap();
        state.close().await;

        let state = State::open(&path).await.unwrap();
        let f = state.folder(mb, "INBOX").await.unwrap();
        assert_eq!(f.source_uid_validity, Some(10));
        assert!(!state.bind_folder(&f, "INBOX", 10, 20).await.unwrap());
        let m = state.mappings(f.id).await.unwrap();
        assert_eq!(
            m,
            vec![Mapped {
                source_uid: 1,
                target_uid: 7,
                synced_flags: set(&["\\Seen"]),
                size: 100,
                ours: true,
            }]
        );
        state
            .update_flags(f.id, &[(1, set(&["\\Seen", "\\Flagged"]))])
            .await
            .unwrap();
        assert_eq!(
            state.mappings(f.id).await.unwrap()[0].synced_flags,
            set(&["\\Seen", "\\Flagged"])
        );

        // Source UIDVALIDITY changed: the UID mapping is void.
        assert!(state.bind_folder(&f, "INBOX", 11, 20).await.unwrap());
        assert!(state.mappings(f.id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn another_programs_database_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.sqlite");
        if on_postgres() {
            // The schema the file is mapped to holds another program's table.
            let url = sql::test_postgres(&Location::File(path.clone()))
                .await
                .unwrap()
                .unwrap();
            let pool = sql::postgres_pool(&url).await.unwrap();
            sqlx::query("CREATE TABLE invoices (id BIGINT)")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            let err = State::open(&path).await.err().expect("refused");
            assert!(err.to_string().contains("invoices"), "{err}");
            let again = sql::postgres_pool(&url).await.unwrap();
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()",
            )
            .fetch_one(&again)
            .await
            .unwrap();
            assert_eq!(n, 1, "nothing added to it");
            return;
        }
        {
            let opts = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let pool = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
            sqlx::query("CREATE TABLE invoices (id INTEGER)")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        let e = State::open(&path).await.err().unwrap().to_string();
        assert!(e.contains("not a trasloco state file"), "{e}");
        assert!(e.contains("invoices"), "{e}");
        // Nothing was added to it.
        let opts = SqliteConnectOptions::new().filename(&path);
        let pool = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 1);
        pool.close().await;
        // Ours, new or reopened, is recognised.
        let mine = dir.path().join("mine.sqlite");
        State::open(&mine).await.unwrap().close().await;
        State::open(&mine).await.unwrap().close().await;
    }

    #[tokio::test]
    async fn altered_copies_are_remembered_until_forgotten_or_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let state = State::open(&path).await.unwrap();
        let mb = state.mailbox_id("a@src", "a@tgt").await.unwrap();
        let f = state.folder(mb, "INBOX").await.unwrap();
        state.bind_folder(&f, "INBOX", 1, 1).await.unwrap();
        let altered = |s: u32, t: u32| Altered {
            source_uid: s,
            target_uid: t,
            target_sha256: "ff".into(),
            first_difference: Some(41),
            server: "a@tgt".into(),
            found_at: "2026-12-02T10:00:00Z".into(),
        };
        state
            .mark_altered(f.id, &[altered(3, 30), altered(9, 90)])
            .await
            .unwrap();
        // Found again: replaced, not doubled.
        state.mark_altered(f.id, &[altered(3, 31)]).await.unwrap();
        state.close().await;
        let state = State::open(&path).await.unwrap();
        let f = state.folder(mb, "INBOX").await.unwrap();
        let got = state.altered_between(f.id, 1, u32::MAX).await.unwrap();
        assert_eq!(got, vec![altered(3, 31), altered(9, 90)]);
        assert_eq!(state.altered_between(f.id, 4, 8).await.unwrap(), []);
        state.forget_altered(f.id, &[9]).await.unwrap();
        assert_eq!(
            state.altered_between(f.id, 1, u32::MAX).await.unwrap(),
            vec![altered(3, 31)]
        );
        // A new UIDVALIDITY voids them with the mappings.
        state.bind_folder(&f, "INBOX", 2, 1).await.unwrap();
        assert_eq!(state.altered_between(f.id, 1, u32::MAX).await.unwrap(), []);
    }

    #[tokio::test]
    async fn append_lines_outlive_the_process_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let state = State::open(&path).await.unwrap();
        let a = state.mailbox_id("a@src", "a@tgt").await.unwrap();
        let b = state.mailbox_id("b@src", "b@tgt").await.unwrap();
        let (inbox, sent) = (
            state.folder(a, "INBOX").await.unwrap().id,
            state.folder(a, "Sent").await.unwrap().id,
        );
        let other = state.folder(b, "INBOX").await.unwrap().id;
        assert_eq!(state.inherit_append_lines(a, "t0").await.unwrap(), []);
        state.draw_append_line(inbox, 7, 100, "t1").await.unwrap();
        state.draw_append_line(other, 7, 5, "t1").await.unwrap();
        state.close().await;

        // The run stopped: the next one finds the line, and a line drawn again stays where it was.
        let state = State::open(&path).await.unwrap();
        let found = state.inherit_append_lines(a, "t2").await.unwrap();
        assert_eq!(
            found,
            [AppendLine {
                folder_id: inbox,
                target_uid_validity: 7,
                line: 100,
                since: "t1".into(),
                inherited_at: Some("t2".into()),
            }]
        );
        state.draw_append_line(inbox, 7, 180, "t3").await.unwrap();
        state.draw_append_line(sent, 7, 9, "t3").await.unwrap();
        // This run's own line goes when it ends cleanly; the inherited one stays.
        state.drop_own_append_lines(a).await.unwrap();
        let left = state.inherit_append_lines(a, "t4").await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(
            (left[0].line, left[0].inherited_at.as_deref()),
            (100, Some("t2"))
        );
        // A new UIDVALIDITY draws the line anew.
        state.draw_append_line(inbox, 8, 3, "t5").await.unwrap();
        let left = state.inherit_append_lines(a, "t6").await.unwrap();
        assert_eq!(
            (left[0].line, left[0].inherited_at.as_deref()),
            (3, Some("t6"))
        );
        state.drop_append_line(inbox).await.unwrap();
        assert_eq!(state.inherit_append_lines(a, "t7").await.unwrap(), []);
        // Another mailbox's line is its own.
        assert_eq!(state.inherit_append_lines(b, "t8").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn mappings_by_window_and_claimed_target_uids() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("s.sqlite")).await.unwrap();
        let mb = state.mailbox_id("a@src", "a@tgt").await.unwrap();
        let f = state.folder(mb, "INBOX").await.unwrap();
        state.bind_folder(&f, "INBOX", 1, 1).await.unwrap();
        let records: Vec<Record> = [(3, 30), (1, 10), (7, 70), (5, 10)]
            .into_iter()
            .map(|(s, t)| Record {
                source_uid: s,
                target_uid: t,
                size: 1,
                sha256: None,
                flags: FlagSet::default(),
            })
            .collect();
        state.record(f.id, &records).await.unwrap();
        let mut got: Vec<u32> = state
            .mappings_between(f.id, 2, 5)
            .await
            .unwrap()
            .iter()
            .map(|m| m.source_uid)
            .collect();
        got.sort_unstable();
        assert_eq!(got, [3, 5]);
        assert_eq!(state.mappings_between(f.id, 8, u32::MAX).await.unwrap(), []);
        assert_eq!(state.mappings(f.id).await.unwrap().len(), 4);
        assert!(state.recorded_more_than(f.id, 3).await.unwrap());
        assert!(!state.recorded_more_than(f.id, 4).await.unwrap());
        assert_eq!(state.claimed_target_uids(f.id).await.unwrap(), [10, 30, 70]);
    }

    /// Rows go in many per statement: every row of every chunk lands once, a second record of
    /// the same source UID updates it (keeping a known SHA-256 when the new one is unknown), and
    /// flag updates reach exactly their rows, in this folder only.
    #[tokio::test]
    async fn multi_row_records_and_flag_updates_cross_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("s.sqlite")).await.unwrap();
        let mb = state.mailbox_id("bob@src", "bob@tgt").await.unwrap();
        let (f, other) = (
            state.folder(mb, "INBOX").await.unwrap(),
            state.folder(mb, "Sent").await.unwrap(),
        );
        let n = 2 * ROWS_PER_STATEMENT as u32 + 7;
        let rows = |uids: std::ops::RangeInclusive<u32>, shift: u32, sha: bool| -> Vec<Record> {
            uids.map(|u| Record {
                source_uid: u,
                target_uid: u + shift,
                size: u64::from(u) * 10,
                sha256: sha.then(|| format!("{u:064x}")),
                flags: set(&["\\Seen"]),
            })
            .collect()
        };
        state.record(f.id, &rows(1..=n, 1000, true)).await.unwrap();
        state.record(other.id, &rows(1..=3, 0, true)).await.unwrap();
        // Matched again later, by identity: new target UIDs, no bytes read this time.
        state
            .record(f.id, &rows(5..=150, 5000, false))
            .await
            .unwrap();
        let flagged: Vec<(u32, FlagSet)> = (100..=n).map(|u| (u, set(&["\\Flagged"]))).collect();
        state.update_flags(f.id, &flagged).await.unwrap();

        let mut m = state.mappings(f.id).await.unwrap();
        m.sort_by_key(|x| x.source_uid);
        assert_eq!(m.len(), n as usize);
        for x in &m {
            let u = x.source_uid;
            let shift = if (5..=150).contains(&u) { 5000 } else { 1000 };
            assert_eq!(x.target_uid, u + shift, "source UID {u}");
            let want = if u >= 100 { "\\Flagged" } else { "\\Seen" };
            assert_eq!(x.synced_flags, set(&[want]), "source UID {u}");
        }
        let shas: Vec<(i64, String)> =
            sqlx::query_as("SELECT source_uid, sha256 FROM message WHERE folder_id = $1")
                .bind(f.id)
                .fetch_all(&state.pool)
                .await
                .unwrap();
        assert!(shas.iter().all(|(u, s)| *s == format!("{u:064x}")));
        // POP3 numbering and receipt dates go in the same way.
        let uidls: Vec<String> = (0..n).map(|i| format!("uidl-{i}")).collect();
        let first = state.pop3_uids(Some(mb), &uidls, true).await.unwrap();
        let dates: Vec<(u32, String)> = first
            .values()
            .map(|(uid, _)| (*uid, format!("2026-01-{:02}", uid % 28 + 1)))
            .collect();
        state.set_pop3_received(mb, &dates).await.unwrap();
        let again = state.pop3_uids(Some(mb), &uidls, true).await.unwrap();
        assert_eq!(again.len(), n as usize);
        let mut numbers: Vec<u32> = again.values().map(|(uid, _)| *uid).collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=n).collect::<Vec<_>>());
        for (uidl, (uid, received)) in &again {
            assert_eq!(first[uidl].0, *uid);
            assert_eq!(
                received.as_deref(),
                Some(format!("2026-01-{:02}", uid % 28 + 1).as_str())
            );
        }

        let untouched = state.mappings(other.id).await.unwrap();
        assert_eq!(untouched.len(), 3);
        assert!(untouched.iter().all(|x| x.synced_flags == set(&["\\Seen"])));
    }

    #[tokio::test]
    async fn status_lists_mailboxes_with_counts() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("sub/dir/s.sqlite"))
            .await
            .unwrap();
        let mb = state.mailbox_id("a@s", "a@t").await.unwrap();
        let f = state.folder(mb, "INBOX").await.unwrap();
        state.bind_folder(&f, "INBOX", 1, 1).await.unwrap();
        state
            .record(
                f.id,
                &[Record {
                    source_uid: 1,
                    target_uid: 1,
                    size: 1,
                    sha256: None,
                    flags: FlagSet::new(),
                }],
            )
            .await
            .unwrap();
        state
            .finish_mailbox(mb, "in-sync", "2026-11-22T10:00:00Z", "{}", None)
            .await
            .unwrap();
        let rows = state.mailboxes().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status.as_deref(), Some("in-sync"));
        assert_eq!(rows[0].messages_recorded, 1);
    }

    #[tokio::test]
    async fn a_whole_mailbox_clean_pass_is_kept_replaced_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("s.sqlite")).await.unwrap();
        let mb = state.mailbox_id("a@s", "a@t").await.unwrap();
        assert_eq!(state.clean_mailbox(mb).await.unwrap(), None);
        let first = CleanMailbox {
            listing: "one".into(),
            report_json: "[]".into(),
        };
        state.record_clean_mailbox(mb, &first).await.unwrap();
        assert_eq!(state.clean_mailbox(mb).await.unwrap(), Some(first));
        let second = CleanMailbox {
            listing: "two".into(),
            report_json: "[{}]".into(),
        };
        state.record_clean_mailbox(mb, &second).await.unwrap();
        assert_eq!(state.clean_mailbox(mb).await.unwrap(), Some(second));
        let other = state.mailbox_id("b@s", "b@t").await.unwrap();
        assert_eq!(state.clean_mailbox(other).await.unwrap(), None);
        state.forget_clean_mailbox(mb).await.unwrap();
        assert_eq!(state.clean_mailbox(mb).await.unwrap(), None);
        // Forgetting what is not there is not an error.
        state.forget_clean_mailbox(mb).await.unwrap();

        // A mailbox's outcome and its phase's go together.
        state
            .finish_mailbox(
                mb,
                "in-sync",
                "2026-12-04T10:00:00Z",
                "{}",
                Some(("final", 3)),
            )
            .await
            .unwrap();
        let phases = state.phases().await.unwrap();
        assert_eq!(phases.len(), 1);
        assert_eq!((phases[0].phase.as_str(), phases[0].copied), ("final", 3));
    }
}
