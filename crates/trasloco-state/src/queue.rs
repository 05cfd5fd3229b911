//! The work queue that workers share: one row per mailbox pair, taken by one worker at a time
//! under a lease.
//!
//! A lease is a row in state `leased` with an expiry on the database's clock (so the clocks of
//! the worker machines do not matter) and a generation that grows by one at every take. The
//! worker renews the expiry by heartbeat; a worker that stops renewing (killed, cut off,
//! paused) loses the mailbox once the expiry passes, and the next take gives it to another
//! worker with the next generation. Every state write of the old holder names its generation
//! ([`State::fenced`]) and is refused from then on: that is the fencing token.
//!
//! Takes are serialised (PostgreSQL: a transaction-scoped advisory lock; SQLite: its single
//! writer), so the per-server counts a take looks at are exact and no limit is overrun by two
//! workers taking at the same instant; the row itself is chosen `FOR UPDATE SKIP LOCKED`.

use crate::sql::Backend;
use crate::{Error, State, in_chunks};
use sqlx::Row;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS queue (
    id {id},
    campaign TEXT NOT NULL,
    phase TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    position {int} NOT NULL,
    source_host TEXT NOT NULL,
    target_host TEXT NOT NULL,
    state TEXT NOT NULL,
    generation {int} NOT NULL DEFAULT 0,
    worker TEXT,
    previous_worker TEXT,
    lease_until {int},
    status TEXT,
    progress TEXT,
    updated_at {int},
    UNIQUE (source, target)
);
CREATE TABLE IF NOT EXISTS worker (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid {int} NOT NULL,
    started_at {int} NOT NULL,
    heartbeat_at {int} NOT NULL,
    stopped_at {int},
    mailbox TEXT,
    mailboxes {int} NOT NULL DEFAULT 0,
    copied {int} NOT NULL DEFAULT 0,
    bytes {int} NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS backoff (
    host TEXT PRIMARY KEY,
    until_ms {int} NOT NULL,
    failures {int} NOT NULL,
    reason TEXT NOT NULL
)
"#;

/// A worker's claim on one mailbox: the queue row and the generation it was taken with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The queue row.
    pub id: i64,
    /// The generation of the take.
    pub generation: i64,
    /// The mailbox, for messages (`source → target`).
    pub mailbox: String,
}

/// One mailbox to put in the queue.
#[derive(Debug, Clone)]
pub struct QueueItem {
    /// The campaign it belongs to: runs and workers take their own campaign's mailboxes.
    pub campaign: String,
    /// The phase it is queued for (`""` for none).
    pub phase: String,
    /// Source label (`user@host`).
    pub source: String,
    /// Target label (`user@host`).
    pub target: String,
    /// Its order (the accounts file's line).
    pub position: i64,
    /// The server it is read from (for per-server limits).
    pub source_host: String,
    /// The server it is written to.
    pub target_host: String,
}

/// A mailbox a worker has taken.
#[derive(Debug, Clone)]
pub struct Leased {
    /// The claim; give it to [`State::fenced`].
    pub fence: Fence,
    /// Source label.
    pub source: String,
    /// Target label.
    pub target: String,
    /// The phase it was queued for.
    pub phase: String,
    /// The worker whose lease had run out, when this take is a take-over.
    pub taken_over_from: Option<String>,
}

/// Mailboxes at once per server, over every worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Per source host.
    pub source: Option<i64>,
    /// Per target host.
    pub target: Option<i64>,
}

/// A queue row as `status` and `workers` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueRow {
    /// Source label.
    pub source: String,
    /// Target label.
    pub target: String,
    /// Phase queued for.
    pub phase: String,
    /// `waiting`, `leased` or `done`.
    pub state: String,
    /// The worker holding it (or that held it last).
    pub worker: Option<String>,
    /// Milliseconds the lease has left (negative: expired, to be taken over).
    pub lease_left_ms: Option<i64>,
    /// The outcome when done (`in sync`, `incomplete`, …).
    pub status: Option<String>,
    /// The last progress the worker sent (JSON).
    pub progress: Option<String>,
    /// Generation of the last take.
    pub generation: i64,
}

/// A worker as `trasloco workers` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerRow {
    /// `host:pid:start`.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i64,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: i64,
    /// Seconds since it started (until it stopped, when it did).
    pub seconds: f64,
    /// Whether it said it stopped.
    pub stopped: bool,
    /// The mailboxes it is working on now.
    pub mailbox: Option<String>,
    /// Mailboxes it finished.
    pub mailboxes: i64,
    /// Messages it copied.
    pub copied: i64,
    /// Bytes it copied.
    pub bytes: i64,
}

impl Backend {
    /// The database's clock in milliseconds since the epoch, as an SQL expression.
    pub(crate) fn now_ms(self) -> &'static str {
        match self {
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }
}

fn sql(backend: Backend, text: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text.replace("{now}", backend.now_ms()))
}

impl State {
    /// This handle, its writes fenced by a lease: each checks that the lease is still the one
    /// given before it writes (see [`crate::Error::is_fenced`]).
    pub fn fenced(&self, fence: Fence) -> State {
        State {
            fence: Some(fence),
            ..self.clone()
        }
    }

    /// Put mailboxes in the queue (or back in it, when they were done). One held by a live
    /// lease is left alone. Returns how many were queued.
    pub async fn enqueue(&self, items: &[QueueItem]) -> Result<u64, Error> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        let now = self.backend.now_ms();
        let before: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM queue WHERE state = 'waiting' OR state = 'leased'",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        in_chunks(&mut tx, items, |chunk| {
            let mut q = crate::sql::Stmt::new(
                "INSERT INTO queue (campaign, phase, source, target, position, source_host, target_host, state) ",
            );
            q.values(chunk, |row, i| {
                row.bind(i.campaign.clone())
                    .bind(i.phase.clone())
                    .bind(i.source.clone())
                    .bind(i.target.clone())
                    .bind(i.position)
                    .bind(i.source_host.clone())
                    .bind(i.target_host.clone())
                    .bind(String::from("waiting"));
            });
            q.push(&format!(
                " ON CONFLICT (source, target) DO UPDATE SET campaign = excluded.campaign, phase = excluded.phase, \
                 position = excluded.position, source_host = excluded.source_host, \
                 target_host = excluded.target_host, state = 'waiting', status = NULL, progress = NULL \
                 WHERE queue.state <> 'leased' OR queue.lease_until < {now}"
            ));
            q
        })
        .await
        .map_err(|e| self.err(e))?;
        let after: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM queue WHERE state = 'waiting' OR state = 'leased'",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok((after - before).max(0) as u64)
    }

    /// Take the next mailbox of `campaign` and `phase` (any phase when `None`) for `worker`,
    /// for `ttl_ms`:
    /// a waiting one, or one whose lease ran out. Within the per-server limits, and not one
    /// whose server is backing off. `None` when there is nothing to take now.
    pub async fn take(
        &self,
        worker: &str,
        campaign: &str,
        phase: Option<&str>,
        ttl_ms: i64,
        limits: Limits,
    ) -> Result<Option<Leased>, Error> {
        let b = self.backend;
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        if b == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7472617303)")
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        let skip_locked = match b {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let text = format!(
            "UPDATE queue SET \
               previous_worker = CASE WHEN state = 'leased' THEN worker END, \
               worker = $1, state = 'leased', generation = generation + 1, \
               lease_until = {{now}} + $2, updated_at = {{now}}, status = NULL, progress = NULL \
             WHERE id = (SELECT q.id FROM queue q \
               WHERE (q.state = 'waiting' OR (q.state = 'leased' AND q.lease_until < {{now}})) \
               AND ($3 IS NULL OR q.phase = $3) AND q.campaign = $6 \
               AND ($4 IS NULL OR (SELECT COUNT(*) FROM queue l WHERE l.state = 'leased' \
                    AND l.lease_until >= {{now}} AND l.source_host = q.source_host) < $4) \
               AND ($5 IS NULL OR (SELECT COUNT(*) FROM queue l WHERE l.state = 'leased' \
                    AND l.lease_until >= {{now}} AND l.target_host = q.target_host) < $5) \
               AND NOT EXISTS (SELECT 1 FROM backoff o WHERE o.until_ms > {{now}} \
                    AND (o.host = q.source_host OR o.host = q.target_host)) \
               ORDER BY q.position, q.id LIMIT 1{skip_locked}) \
             RETURNING id, generation, source, target, phase, previous_worker"
        );
        let row = sqlx::query(sql(b, &text))
            .bind(worker)
            .bind(ttl_ms)
            .bind(phase)
            .bind(limits.source)
            .bind(limits.target)
            .bind(campaign)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(row.map(|r| {
            let (source, target): (String, String) = (r.get(2), r.get(3));
            Leased {
                fence: Fence {
                    id: r.get(0),
                    generation: r.get(1),
                    mailbox: format!("{source} → {target}"),
                },
                source,
                target,
                phase: r.get(4),
                taken_over_from: r.get(5),
            }
        }))
    }

    /// Renew a lease for `ttl_ms` from now (the database's now), with the mailbox's progress
    /// when given. `false` when the lease is no longer this one.
    pub async fn renew(
        &self,
        fence: &Fence,
        ttl_ms: i64,
        progress: Option<&str>,
    ) -> Result<bool, Error> {
        let done = sqlx::query(sql(
            self.backend,
            "UPDATE queue SET lease_until = {now} + $3, updated_at = {now}, \
             progress = COALESCE($4, progress) \
             WHERE id = $1 AND generation = $2 AND state = 'leased'",
        ))
        .bind(fence.id)
        .bind(fence.generation)
        .bind(ttl_ms)
        .bind(progress)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Give a mailbox back: `done` with its outcome, or back to `waiting` (a stopped worker's
    /// mailbox, for another one to go on with). `false` when the lease was no longer this one.
    pub async fn release(&self, fence: &Fence, done: bool, status: &str) -> Result<bool, Error> {
        let r = sqlx::query(sql(
            self.backend,
            "UPDATE queue SET state = $3, status = $4, lease_until = NULL, updated_at = {now} \
             WHERE id = $1 AND generation = $2 AND state = 'leased'",
        ))
        .bind(fence.id)
        .bind(fence.generation)
        .bind(if done { "done" } else { "waiting" })
        .bind(status)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(r.rows_affected() == 1)
    }

    /// How many mailboxes of `phase` (any when `None`) are there to take (waiting, or their
    /// lease ran out), and how many are held by a live lease.
    pub async fn queued(&self, campaign: &str, phase: Option<&str>) -> Result<(u64, u64), Error> {
        let r = sqlx::query(sql(
            self.backend,
            "SELECT COALESCE(SUM(CASE WHEN state = 'waiting' OR lease_until < {now} THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN state = 'leased' AND lease_until >= {now} THEN 1 ELSE 0 END), 0) \
             FROM queue WHERE ($1 IS NULL OR phase = $1) AND campaign = $2",
        ))
        .bind(phase)
        .bind(campaign)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok((r.get::<i64, _>(0) as u64, r.get::<i64, _>(1) as u64))
    }

    /// Every queue row, in queue order.
    pub async fn queue_rows(&self) -> Result<Vec<QueueRow>, Error> {
        let rows = sqlx::query(sql(
            self.backend,
            "SELECT source, target, phase, state, worker, lease_until - {now}, status, progress, generation \
             FROM queue ORDER BY position, id",
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|r| QueueRow {
                source: r.get(0),
                target: r.get(1),
                phase: r.get(2),
                state: r.get(3),
                worker: r.get(4),
                lease_left_ms: r.get(5),
                status: r.get(6),
                progress: r.get(7),
                generation: r.get(8),
            })
            .collect())
    }

    /// A worker says it is there (a new row) or still there (heartbeat), with what it works
    /// on now and what it did so far.
    pub async fn worker_beat(
        &self,
        id: &str,
        host: &str,
        pid: u32,
        mailbox: Option<&str>,
        done: (i64, i64, i64),
    ) -> Result<(), Error> {
        sqlx::query(sql(
            self.backend,
            "INSERT INTO worker (id, host, pid, started_at, heartbeat_at, mailbox, mailboxes, copied, bytes) \
             VALUES ($1, $2, $3, {now}, {now}, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = {now}, mailbox = $4, mailboxes = $5, \
             copied = $6, bytes = $7",
        ))
        .bind(id)
        .bind(host)
        .bind(i64::from(pid))
        .bind(mailbox)
        .bind(done.0)
        .bind(done.1)
        .bind(done.2)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A worker ended.
    pub async fn worker_stopped(&self, id: &str) -> Result<(), Error> {
        sqlx::query(sql(
            self.backend,
            "UPDATE worker SET stopped_at = {now}, heartbeat_at = {now}, mailbox = NULL WHERE id = $1",
        ))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every worker that ever ran on this state, newest first.
    pub async fn workers(&self) -> Result<Vec<WorkerRow>, Error> {
        let rows = sqlx::query(sql(
            self.backend,
            "SELECT id, host, pid, {now} - heartbeat_at, COALESCE(stopped_at, {now}) - started_at, \
             CASE WHEN stopped_at IS NULL THEN 0 ELSE 1 END, mailbox, mailboxes, copied, bytes FROM worker ORDER BY started_at DESC, id",
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|r| WorkerRow {
                id: r.get(0),
                host: r.get(1),
                pid: r.get(2),
                heartbeat_age_ms: r.get(3),
                seconds: r.get::<i64, _>(4) as f64 / 1000.0,
                stopped: r.get::<i64, _>(5) != 0,
                mailbox: r.get(6),
                mailboxes: r.get(7),
                copied: r.get(8),
                bytes: r.get(9),
            })
            .collect())
    }

    /// A server failed or throttled: no worker takes a new mailbox on it for a while, the
    /// wait doubling with each failure in a row (from `first_ms`, up to `max_ms`).
    pub async fn back_off(
        &self,
        host: &str,
        first_ms: i64,
        max_ms: i64,
        reason: &str,
    ) -> Result<i64, Error> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        let failures: i64 = sqlx::query_scalar("SELECT failures FROM backoff WHERE host = $1")
            .bind(host)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?
            .unwrap_or(0);
        let wait = first_ms
            .saturating_mul(1i64 << failures.min(20))
            .min(max_ms);
        sqlx::query(sql(
            self.backend,
            "INSERT INTO backoff (host, until_ms, failures, reason) VALUES ($1, {now} + $2, 1, $3) \
             ON CONFLICT (host) DO UPDATE SET until_ms = {now} + $2, failures = backoff.failures + 1, reason = $3",
        ))
        .bind(host)
        .bind(wait)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(wait)
    }

    /// A server answered well again: its back-off ends.
    pub async fn clear_back_off(&self, host: &str) -> Result<(), Error> {
        sqlx::query("DELETE FROM backoff WHERE host = $1")
            .bind(host)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Servers backing off now: (host, milliseconds left, reason).
    pub async fn back_offs(&self) -> Result<Vec<(String, i64, String)>, Error> {
        let rows = sqlx::query(sql(
            self.backend,
            "SELECT host, until_ms - {now}, reason FROM backoff WHERE until_ms > {now} ORDER BY host",
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Record;
    use trasloco_core::flags::FlagSet;

    fn item(n: i64, src_host: &str) -> QueueItem {
        QueueItem {
            campaign: "c".into(),
            phase: "final".into(),
            source: format!("u{n}@{src_host}"),
            target: format!("u{n}@new"),
            position: n,
            source_host: src_host.into(),
            target_host: "new".into(),
        }
    }

    async fn open() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("q.sqlite")).await.unwrap();
        (dir, state)
    }

    #[tokio::test]
    async fn a_mailbox_is_leased_once_and_goes_to_the_next_worker_only_when_the_lease_ran_out() {
        let (_d, state) = open().await;
        assert_eq!(
            state
                .enqueue(&[item(1, "old"), item(2, "old")])
                .await
                .unwrap(),
            2
        );
        let no = Limits::default();
        let a = state
            .take("A", "c", Some("final"), 60_000, no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.source, "u1@old");
        assert_eq!(a.fence.generation, 1);
        let b = state
            .take("B", "c", Some("final"), 60_000, no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.source, "u2@old");
        assert!(
            state
                .take("C", "c", None, 60_000, no)
                .await
                .unwrap()
                .is_none()
        );
        // A lease with no time left is taken over, with the next generation.
        assert!(state.renew(&a.fence, -1, None).await.unwrap());
        let c = state
            .take("C", "c", None, 60_000, no)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((c.source.as_str(), c.fence.generation), ("u1@old", 2));
        assert_eq!(c.taken_over_from.as_deref(), Some("A"));
        // The old holder can neither renew nor give it back.
        assert!(!state.renew(&a.fence, 60_000, None).await.unwrap());
        assert!(!state.release(&a.fence, true, "in-sync").await.unwrap());
        assert!(state.release(&c.fence, true, "in-sync").await.unwrap());
        assert_eq!(state.queued("c", None).await.unwrap(), (0, 1));
        // Queued again (the next phase's pass), done mailboxes wait again; leased ones stay.
        assert_eq!(
            state
                .enqueue(&[item(1, "old"), item(2, "old")])
                .await
                .unwrap(),
            1
        );
        assert_eq!(state.queued("c", Some("final")).await.unwrap(), (1, 1));
    }

    #[tokio::test]
    async fn a_fenced_handle_writes_nothing_once_the_mailbox_was_taken_over() {
        let (_d, state) = open().await;
        state.enqueue(&[item(1, "old")]).await.unwrap();
        let a = state
            .take("A", "c", None, 60_000, Limits::default())
            .await
            .unwrap()
            .unwrap();
        let mine = state.fenced(a.fence.clone());
        let mb = mine.mailbox_id("u1@old", "u1@new").await.unwrap();
        let f = mine.folder(mb, "INBOX").await.unwrap();
        mine.bind_folder(&f, "INBOX", 1, 1).await.unwrap();
        let rec = |uid| Record {
            source_uid: uid,
            target_uid: uid,
            size: 1,
            sha256: None,
            flags: FlagSet::new(),
        };
        mine.record(f.id, &[rec(1)]).await.unwrap();
        state.renew(&a.fence, -1, None).await.unwrap();
        // Run out but not taken over yet: still A's to write.
        mine.record(f.id, &[rec(2)]).await.unwrap();
        let b = state
            .take("B", "c", None, 60_000, Limits::default())
            .await
            .unwrap()
            .unwrap();
        let late = mine.record(f.id, &[rec(3)]).await.unwrap_err();
        assert!(late.is_fenced(), "{late}");
        assert!(late.to_string().contains("another worker"), "{late}");
        assert!(
            mine.finish_mailbox(mb, "in-sync", "t", "{}", None)
                .await
                .unwrap_err()
                .is_fenced()
        );
        assert!(
            mine.drop_own_append_lines(mb)
                .await
                .unwrap_err()
                .is_fenced()
        );
        assert_eq!(state.mappings(f.id).await.unwrap().len(), 2);
        // The new holder writes.
        state.fenced(b.fence).record(f.id, &[rec(3)]).await.unwrap();
        assert_eq!(state.mappings(f.id).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn takes_keep_to_the_per_server_limits_and_skip_a_server_that_backs_off() {
        let (_d, state) = open().await;
        let items: Vec<_> = (1..=4)
            .map(|n| item(n, "old"))
            .chain((5..=6).map(|n| item(n, "other")))
            .collect();
        state.enqueue(&items).await.unwrap();
        let two = Limits {
            source: Some(2),
            target: Some(3),
        };
        let mut got = Vec::new();
        while let Some(l) = state.take("W", "c", None, 60_000, two).await.unwrap() {
            got.push(l);
        }
        // Two from "old", then one from "other": the target's three are used up.
        let names: Vec<&str> = got.iter().map(|l| l.source.as_str()).collect();
        assert_eq!(names, ["u1@old", "u2@old", "u5@other"]);
        // One ends: the next one of "old" may start.
        state.release(&got[0].fence, true, "in-sync").await.unwrap();
        let next = state
            .take("W", "c", None, 60_000, two)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.source, "u3@old");
        state.release(&next.fence, true, "in-sync").await.unwrap();
        // "old" fails: nobody takes from it while it backs off, "other" goes on.
        let wait = state
            .back_off("old", 60_000, 300_000, "connection refused")
            .await
            .unwrap();
        assert_eq!(wait, 60_000);
        assert_eq!(
            state
                .back_off("old", 60_000, 300_000, "again")
                .await
                .unwrap(),
            120_000
        );
        let after = state
            .take("W", "c", None, 60_000, two)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.source, "u6@other");
        assert_eq!(state.back_offs().await.unwrap()[0].0, "old");
        state.clear_back_off("old").await.unwrap();
        state.release(&after.fence, true, "in-sync").await.unwrap();
        let last = state
            .take("W", "c", None, 60_000, two)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(last.source, "u4@old");
    }

    #[tokio::test]
    async fn workers_are_listed_with_their_heartbeat_and_work() {
        let (_d, state) = open().await;
        state
            .worker_beat("h:1:0", "h", 1, Some("u1@old"), (0, 10, 100))
            .await
            .unwrap();
        state
            .worker_beat("h:1:0", "h", 1, None, (1, 20, 200))
            .await
            .unwrap();
        state
            .worker_beat("h:2:0", "h", 2, None, (0, 0, 0))
            .await
            .unwrap();
        state.worker_stopped("h:2:0").await.unwrap();
        let w = state.workers().await.unwrap();
        assert_eq!(w.len(), 2);
        let one = w.iter().find(|w| w.pid == 1).unwrap();
        assert_eq!(
            (one.mailboxes, one.copied, one.bytes, one.stopped),
            (1, 20, 200, false)
        );
        assert!(one.heartbeat_age_ms < 60_000);
        assert!(w.iter().find(|w| w.pid == 2).unwrap().stopped);
    }
}
