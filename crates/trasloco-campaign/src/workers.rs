//! Workers: runs that take their mailboxes from the queue in the shared state, one mailbox at
//! a time per job slot, each under a lease (see `trasloco_state::queue`).
//!
//! A lease is renewed every quarter of its length while the mailbox is worked on, carrying the
//! mailbox's progress; the worker's own row is renewed at the same pace with what it works on
//! and what it did. A renewal the database refuses (another worker took the mailbox over) or
//! a lease whose local deadline passed without one (the database unreachable, the process
//! paused) stops that mailbox the way Ctrl-C stops a run — nothing new is fetched or
//! appended — and every state write it still tries is refused by the fence.

use crate::ConfigError;
use crate::phases::Phase;
use crate::run::{Job, Observer};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use trasloco_core::accounting::{FailureClass, MailboxReport, MailboxStatus};
use trasloco_state::{Fence, Limits, QueueItem, State};
use trasloco_sync::{LeaseClock, Progress, Source, Target};

/// How a run takes its mailboxes from the shared queue.
#[derive(Debug, Clone)]
pub struct QueueFeed {
    /// The campaign whose queue it is: its `name`, else its file's name.
    pub campaign: String,
    /// This worker: `host:pid:start`.
    pub worker: String,
    /// Its host name.
    pub host: String,
    /// Put the run's mailboxes in the queue first (`trasloco run`); a worker only takes.
    pub enqueue: bool,
    /// Wait for more when nothing is left to take (a worker), rather than end (a run, or a
    /// worker with `--until-empty`).
    pub wait_for_more: bool,
    /// Only this phase's mailboxes (`Some("")`: those queued without a phase); `None`: any.
    pub phase: Option<String>,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// Mailboxes at once per server, over every worker.
    pub limits: Limits,
}

/// The server a side of a job talks to (`host:port`), or `local` for an archive.
pub fn server_of_source(s: &Source) -> String {
    match s {
        Source::Imap(side) | Source::Pop3(side) => side.server(),
        Source::Archive(_) => "local".into(),
    }
}

/// The server a job writes to (`host:port`), or `local` for an archive.
pub fn server_of_target(t: &Target) -> String {
    match t {
        Target::Imap(side) => side.server(),
        Target::Archive(_) => "local".into(),
    }
}

/// The queue rows for a run's jobs, in their order.
pub fn queue_items(campaign: &str, jobs: &[Job], phase: Option<Phase>) -> Vec<QueueItem> {
    jobs.iter()
        .enumerate()
        .map(|(i, j)| QueueItem {
            campaign: campaign.into(),
            phase: phase.map_or("", |p| p.name()).into(),
            source: j.source.label(),
            target: j.target.label(),
            position: i as i64,
            source_host: server_of_source(&j.source),
            target_host: server_of_target(&j.target),
        })
        .collect()
}

/// What the worker did so far and works on now, for its heartbeat.
#[derive(Default)]
struct Tally {
    mailboxes: AtomicI64,
    copied: AtomicI64,
    bytes: AtomicI64,
    now: Mutex<BTreeSet<String>>,
}

/// The queue side of a run.
pub(crate) struct Feed {
    q: QueueFeed,
    jobs: HashMap<(String, String), (usize, Job)>,
    tally: Arc<Tally>,
    beat: tokio::task::JoinHandle<()>,
    stop: trasloco_sync::Stop,
    taken: BTreeSet<usize>,
}

/// What the queue gave.
pub(crate) enum Next {
    /// A mailbox to work on, under its lease.
    Mailbox(usize, Box<Job>, Lease),
    /// A mailbox this worker cannot run (not in its campaign file): its report.
    Report(usize, Box<MailboxReport>),
    /// Nothing more for this run.
    Done,
}

/// How long to wait before asking the queue again when there was nothing to take.
const POLL: Duration = Duration::from_millis(500);

impl Feed {
    /// Queue the run's mailboxes (a run), say this worker is there, and start its heartbeat.
    pub(crate) async fn start(
        q: &QueueFeed,
        state: &State,
        jobs: &[Job],
        phase: Option<Phase>,
        stop: &trasloco_sync::Stop,
    ) -> Result<Feed, ConfigError> {
        let fail = |e: trasloco_state::Error| ConfigError(e.to_string());
        if q.enqueue {
            state
                .enqueue(&queue_items(&q.campaign, jobs, phase))
                .await
                .map_err(fail)?;
        }
        let tally = Arc::new(Tally::default());
        state
            .worker_beat(&q.worker, &q.host, std::process::id(), None, (0, 0, 0))
            .await
            .map_err(fail)?;
        let beat = {
            let (state, tally, q) = (state.clone(), tally.clone(), q.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(q.lease / 4).await;
                    let now: Vec<String> = tally
                        .now
                        .lock()
                        .expect("not poisoned")
                        .iter()
                        .cloned()
                        .collect();
                    let now = (!now.is_empty()).then(|| now.join(", "));
                    let done = (
                        tally.mailboxes.load(Ordering::Relaxed),
                        tally.copied.load(Ordering::Relaxed),
                        tally.bytes.load(Ordering::Relaxed),
                    );
                    let pid = std::process::id();
                    if let Err(e) = state
                        .worker_beat(&q.worker, &q.host, pid, now.as_deref(), done)
                        .await
                    {
                        tracing::warn!("worker heartbeat: {e}");
                    }
                }
            })
        };
        let jobs = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| ((j.source.label(), j.target.label()), (i, j.clone())))
            .collect();
        Ok(Feed {
            q: q.clone(),
            jobs,
            tally,
            beat,
            stop: stop.clone(),
            taken: BTreeSet::new(),
        })
    }

    /// The next mailbox to work on; waits while there is work only other workers hold or
    /// the limits keep back.
    pub(crate) async fn next(&mut self, state: &State) -> Next {
        let ttl = self.q.lease.as_millis() as i64;
        loop {
            if self.stop.requested().is_some() {
                return Next::Done;
            }
            let asked = Instant::now();
            let taken = state
                .take(
                    &self.q.worker,
                    &self.q.campaign,
                    self.q.phase.as_deref(),
                    ttl,
                    self.q.limits,
                )
                .await;
            match taken {
                Ok(Some(l)) => {
                    let key = (l.source.clone(), l.target.clone());
                    let Some((i, job)) = self.jobs.get(&key).cloned() else {
                        let why = format!(
                            "queued for this campaign but not in the accounts or plan of worker {}: run `trasloco enqueue` again with the campaign file every worker uses",
                            self.q.worker
                        );
                        let _ = state.release(&l.fence, true, "failed").await;
                        let r = MailboxReport::failed(l.source, l.target, FailureClass::Local, why);
                        return Next::Report(usize::MAX, Box::new(r));
                    };
                    if let Some(from) = &l.taken_over_from {
                        tracing::warn!(
                            "{} → {}: taken over from worker {from}, whose lease ran out",
                            l.source,
                            l.target
                        );
                    }
                    let phase = Phase::ALL.into_iter().find(|p| p.name() == l.phase);
                    let lease = Lease {
                        clock: Arc::new(LeaseClock::new(asked, valid(self.q.lease))),
                        fence: l.fence,
                        phase,
                        ttl: self.q.lease,
                        tally: self.tally.clone(),
                        counts: Arc::new(Counts::default()),
                        label: format!("{} → {}", l.source, l.target),
                        source_host: server_of_source(&job.source),
                        target_host: server_of_target(&job.target),
                    };
                    self.taken.insert(i);
                    return Next::Mailbox(i, Box::new(job), lease);
                }
                Ok(None) => {
                    match state
                        .queued(&self.q.campaign, self.q.phase.as_deref())
                        .await
                    {
                        Ok((0, _)) if !self.q.wait_for_more => return Next::Done,
                        Ok(_) => {}
                        Err(e) => tracing::warn!("queue: {e}"),
                    }
                    tokio::time::sleep(POLL).await;
                }
                // The database is unreachable for a moment: ask again.
                Err(e) => {
                    tracing::warn!("queue: {e}");
                    tokio::time::sleep(POLL * 4).await;
                }
            }
        }
    }

    /// The run ends: the worker says so. A run that queued its mailboxes also reports those
    /// other workers had: finished (their last report), still held, or not started.
    pub(crate) async fn finish(
        self,
        state: &State,
    ) -> Vec<(usize, MailboxReport, Option<MailboxReport>)> {
        self.beat.abort();
        let _ = state.worker_stopped(&self.q.worker).await;
        if !self.q.enqueue {
            return Vec::new();
        }
        let (Ok(rows), Ok(boxes)) = (state.queue_rows().await, state.mailboxes().await) else {
            return Vec::new();
        };
        let rows: HashMap<(String, String), trasloco_state::QueueRow> = rows
            .into_iter()
            .map(|r| ((r.source.clone(), r.target.clone()), r))
            .collect();
        let last: HashMap<(String, String), String> = boxes
            .into_iter()
            .filter_map(|b| Some(((b.source, b.target), b.report_json?)))
            .collect();
        let mut out = Vec::new();
        for (key, (i, _)) in &self.jobs {
            if self.taken.contains(i) {
                continue;
            }
            let row = rows.get(key);
            let by = row.and_then(|r| r.worker.clone()).unwrap_or_default();
            let (source, target) = key.clone();
            let report = match row.map(|r| r.state.as_str()) {
                Some("done") => match last
                    .get(key)
                    .and_then(|j| serde_json::from_str::<MailboxReport>(j).ok())
                {
                    Some(mut r) => {
                        r.warnings.push(format!("copied by worker {by}"));
                        r
                    }
                    None => continue,
                },
                Some("leased") => {
                    let mut r = MailboxReport::failed(
                        source,
                        target,
                        FailureClass::Stopped,
                        format!(
                            "being copied by worker {by}; `trasloco status` and `trasloco workers` show it"
                        ),
                    );
                    r.status = MailboxStatus::Incomplete;
                    r
                }
                _ => {
                    let mut r = MailboxReport::failed(
                        source,
                        target,
                        FailureClass::Stopped,
                        "not started: still in the queue; the same command, or a worker, starts it"
                            .into(),
                    );
                    r.status = MailboxStatus::Incomplete;
                    r
                }
            };
            out.push((*i, report, None));
        }
        out
    }
}

/// How long a lease counts as held here: a tenth less than the database gives it, for the
/// time a renewal's answer takes to arrive.
fn valid(lease: Duration) -> Duration {
    lease - lease / 10
}

/// Messages and bytes copied in one mailbox, for the queue's progress column.
#[derive(Default)]
struct Counts {
    copied: AtomicI64,
    bytes: AtomicI64,
    planned: AtomicI64,
    folder: Mutex<String>,
}

/// One mailbox held under a lease.
pub(crate) struct Lease {
    pub(crate) clock: Arc<LeaseClock>,
    pub(crate) fence: Fence,
    pub(crate) phase: Option<Phase>,
    ttl: Duration,
    tally: Arc<Tally>,
    counts: Arc<Counts>,
    label: String,
    source_host: String,
    target_host: String,
}

/// A server that failed a mailbox: the first wait before any worker starts another mailbox
/// on it, doubling with each failure in a row up to [`BACK_OFF_MAX`].
const BACK_OFF_FIRST: i64 = 30_000;
const BACK_OFF_MAX: i64 = 600_000;

impl Lease {
    /// An observer that also counts the mailbox's progress for the queue.
    pub(crate) fn observe(&self, inner: Arc<dyn Observer>) -> Arc<dyn Observer> {
        Arc::new(Counting {
            inner,
            counts: self.counts.clone(),
        })
    }

    fn progress(&self) -> String {
        let c = &self.counts;
        serde_json::json!({
            "copied": c.copied.load(Ordering::Relaxed),
            "bytes": c.bytes.load(Ordering::Relaxed),
            "planned": c.planned.load(Ordering::Relaxed),
            "folder": *c.folder.lock().expect("not poisoned"),
        })
        .to_string()
    }

    /// Work on the mailbox while renewing the lease, then give it back: done with its
    /// outcome, or waiting again when it was stopped before the end.
    pub(crate) async fn hold<F>(self, state: &State, work: F) -> F::Output
    where
        F: Future<Output = (usize, MailboxReport, Option<MailboxReport>)>,
    {
        self.tally
            .now
            .lock()
            .expect("not poisoned")
            .insert(self.label.clone());
        let ttl = self.ttl.as_millis() as i64;
        let beat = async {
            loop {
                tokio::time::sleep(self.ttl / 4).await;
                let asked = Instant::now();
                match state.renew(&self.fence, ttl, Some(&self.progress())).await {
                    Ok(true) => self.clock.renewed(asked, valid(self.ttl)),
                    Ok(false) => {
                        tracing::warn!(
                            "{}: this worker's lease ended and another worker has the mailbox now; stopping it here",
                            self.label
                        );
                        self.clock.lose();
                        return;
                    }
                    // Unreachable for now: the lease runs out by itself if it stays so.
                    Err(e) => tracing::warn!("{}: renewing the lease: {e}", self.label),
                }
            }
        };
        let out = {
            let mut work = std::pin::pin!(work);
            tokio::select! {
                out = &mut work => out,
                () = beat => work.await,
            }
        };
        self.tally
            .now
            .lock()
            .expect("not poisoned")
            .remove(&self.label);
        let report = &out.1;
        self.tally.mailboxes.fetch_add(1, Ordering::Relaxed);
        self.tally
            .copied
            .fetch_add(report.buckets.copied as i64, Ordering::Relaxed);
        self.tally
            .bytes
            .fetch_add(report.bytes_copied as i64, Ordering::Relaxed);
        let stopped = report.failure == Some(FailureClass::Stopped)
            || (report.status == MailboxStatus::Incomplete && !self.clock.holds());
        let status = crate::run::status_name(report.status);
        match state.release(&self.fence, !stopped, &status).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "{}: not given back: another worker has taken it over",
                self.label
            ),
            Err(e) => tracing::warn!("{}: giving the mailbox back: {e}", self.label),
        }
        self.share_back_off(state, report).await;
        out
    }

    /// A server that failed this mailbox (connection, TLS) or throttled it makes every worker
    /// wait before starting another mailbox on it; one that served it well ends its wait.
    async fn share_back_off(&self, state: &State, report: &MailboxReport) {
        let error = report.error.as_deref().unwrap_or_default();
        let host = match error.starts_with("target") {
            true => &self.target_host,
            false => &self.source_host,
        };
        let outcome = match (report.status, report.failure) {
            (MailboxStatus::Failed, Some(FailureClass::Connection | FailureClass::Tls)) => state
                .back_off(host, BACK_OFF_FIRST, BACK_OFF_MAX, error)
                .await
                .map(|_| ()),
            _ if report.throttled > 0 => {
                let why = format!("throttled {} times", report.throttled);
                state
                    .back_off(&self.target_host, BACK_OFF_FIRST, BACK_OFF_MAX, &why)
                    .await
                    .map(|_| ())
            }
            (MailboxStatus::InSync | MailboxStatus::Altered, _) => {
                let a = state.clear_back_off(&self.source_host).await;
                a.and(state.clear_back_off(&self.target_host).await)
            }
            _ => Ok(()),
        };
        if let Err(e) = outcome {
            tracing::warn!("{}: shared back-off: {e}", self.label);
        }
    }
}

/// Counts what a mailbox copies, then hands on to the run's observer.
struct Counting {
    inner: Arc<dyn Observer>,
    counts: Arc<Counts>,
}

impl Observer for Counting {
    fn start(&self, source: &str, target: &str) -> Arc<dyn Progress> {
        Arc::new(CountingProgress {
            inner: self.inner.start(source, target),
            counts: self.counts.clone(),
        })
    }

    fn done(&self, report: &MailboxReport) {
        self.inner.done(report)
    }
}

struct CountingProgress {
    inner: Arc<dyn Progress>,
    counts: Arc<Counts>,
}

impl Progress for CountingProgress {
    fn planned(&self, messages: u64, bytes: u64) {
        self.counts
            .planned
            .fetch_add(messages as i64, Ordering::Relaxed);
        self.inner.planned(messages, bytes)
    }

    fn copied(&self, messages: u64, bytes: u64) {
        self.counts
            .copied
            .fetch_add(messages as i64, Ordering::Relaxed);
        self.counts.bytes.fetch_add(bytes as i64, Ordering::Relaxed);
        self.inner.copied(messages, bytes)
    }

    fn folder(&self, name: &str) {
        *self.counts.folder.lock().expect("not poisoned") = name.to_string();
        self.inner.folder(name)
    }

    fn restart(&self) {
        self.inner.restart()
    }
}

/// This machine's name, for the worker's row.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Connections one mailbox holds at most, on the source and on the target: a lane per
/// folder copied at once, each with one source connection and `append_connections` target
/// ones, plus a reader per lane reading copies back. (A mailbox of up to 2,000 messages uses
/// one per server.)
pub fn connections_per_mailbox(opts: &trasloco_sync::Options) -> (u32, u32) {
    let lanes = opts.lanes.max(1) as u32;
    let appenders = opts.append_connections.max(1) as u32;
    let readers = u32::from(opts.verify);
    (lanes, lanes * (appenders + readers))
}

/// Mailboxes at once on a server: `max_mailboxes`, and as many as `max_connections` holds
/// at `per_mailbox` connections each (at least one).
pub fn mailbox_limit(
    max_mailboxes: Option<u32>,
    max_connections: Option<u32>,
    per_mailbox: u32,
) -> Option<i64> {
    let by_connections = max_connections.map(|c| (c / per_mailbox.max(1)).max(1));
    match (max_mailboxes, by_connections) {
        (Some(a), Some(b)) => Some(i64::from(a.min(b).max(1))),
        (a, b) => a.or(b).map(|n| i64::from(n.max(1))),
    }
}

impl QueueFeed {
    /// This process's feed: `enqueue` (a run: it queues its mailboxes, and ends when none is
    /// left to take unless `wait_for_more`), `phase` to take (`None`: any).
    pub fn new(
        campaign: String,
        enqueue: bool,
        wait_for_more: bool,
        phase: Option<String>,
        lease: Duration,
        limits: Limits,
    ) -> QueueFeed {
        let host = host_name();
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        QueueFeed {
            campaign,
            worker: format!("{host}:{}:{started}", std::process::id()),
            host,
            enqueue,
            wait_for_more,
            phase,
            lease,
            limits,
        }
    }
}

/// What names a campaign in the shared queue: its `name`, else its file's name (the same on
/// every machine, wherever the file is).
pub fn campaign_key(campaign: &crate::config::Campaign) -> String {
    campaign.file.name.clone().unwrap_or_else(|| {
        campaign
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    })
}

/// How a run or a worker of a campaign takes mailboxes from its queue: the lease and the
/// per-server limits of the campaign file (see [`QueueFeed::new`]).
pub fn queue_feed(
    campaign: &crate::config::Campaign,
    opts: &trasloco_sync::Options,
    enqueue: bool,
    wait_for_more: bool,
    phase: Option<String>,
) -> QueueFeed {
    let (src, tgt) = connections_per_mailbox(opts);
    let f = &campaign.file;
    QueueFeed::new(
        campaign_key(campaign),
        enqueue,
        wait_for_more,
        phase,
        Duration::from_secs(f.workers.lease_seconds.max(2)),
        Limits {
            source: mailbox_limit(f.source.max_mailboxes, f.source.max_connections, src),
            target: mailbox_limit(f.target.max_mailboxes, f.target.max_connections, tgt),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_mailboxes_and_connections() {
        assert_eq!(mailbox_limit(None, None, 4), None);
        assert_eq!(mailbox_limit(Some(10), None, 4), Some(10));
        assert_eq!(mailbox_limit(None, Some(50), 4), Some(12));
        assert_eq!(mailbox_limit(Some(10), Some(20), 4), Some(5));
        // A server that allows fewer connections than one mailbox holds still gets one.
        assert_eq!(mailbox_limit(None, Some(2), 4), Some(1));
        let opts = trasloco_sync::Options::default();
        let (s, t) = connections_per_mailbox(&opts);
        assert_eq!(s as usize, opts.lanes);
        assert!(t >= s);
    }
}
