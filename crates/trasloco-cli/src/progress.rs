//! Progress: bars on a terminal (one overall, one per running mailbox), periodic log lines
//! otherwise.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use trasloco_campaign::run::Observer;
use trasloco_core::accounting::MailboxReport;
use trasloco_sync::Progress;

struct Inner {
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    mailboxes: u64,
    planned_msgs: AtomicU64,
    planned_bytes: AtomicU64,
    copied_msgs: AtomicU64,
    copied_bytes: AtomicU64,
    mailboxes_done: AtomicU64,
    last_line: Mutex<Instant>,
    started: Instant,
}

impl Inner {
    fn tick(&self) {
        let (cm, cb) = (
            self.copied_msgs.load(Ordering::Relaxed),
            self.copied_bytes.load(Ordering::Relaxed),
        );
        let (pm, pb) = (
            self.planned_msgs.load(Ordering::Relaxed),
            self.planned_bytes.load(Ordering::Relaxed),
        );
        let done = self.mailboxes_done.load(Ordering::Relaxed);
        // A server that has not answered for a while is named, so a stall does not look like
        // a hang.
        let waiting = match (
            trasloco_imap::timeouts::longest_pause(),
            trasloco_imap::timeouts::longest_wait(),
        ) {
            (Some((host, left)), _) => {
                let s = left.as_secs();
                format!(
                    ", throttled by {host}, resuming in {}m{:02}s",
                    s / 60,
                    s % 60
                )
            }
            (None, Some((host, d))) => {
                format!(", waiting for the server {host} ({} s)", d.as_secs())
            }
            (None, None) => String::new(),
        };
        if let Some(o) = &self.overall {
            o.set_length(pb);
            o.set_position(cb);
            o.set_message(format!(
                "{cm}/{pm} msgs, {done}/{} mailboxes{waiting}",
                self.mailboxes
            ));
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= Duration::from_secs(10) {
            *last = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "trasloco: progress: {cm}/{pm} messages, {:.1}/{:.1} MB, {done}/{} mailboxes done, {:.0} msg/s{waiting}",
                cb as f64 / 1e6,
                pb as f64 / 1e6,
                self.mailboxes,
                cm as f64 / secs
            );
        }
    }
}

/// The observer the CLI hands to a run.
pub struct Bars(Arc<Inner>);

impl Bars {
    pub fn new(mailboxes: usize, show: bool) -> Bars {
        let (multi, overall) = if show {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>24} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix("overall");
            (Some(multi), Some(bar))
        } else {
            (None, None)
        };
        Bars(Arc::new(Inner {
            multi,
            overall,
            mailboxes: mailboxes as u64,
            planned_msgs: AtomicU64::new(0),
            planned_bytes: AtomicU64::new(0),
            copied_msgs: AtomicU64::new(0),
            copied_bytes: AtomicU64::new(0),
            mailboxes_done: AtomicU64::new(0),
            last_line: Mutex::new(Instant::now()),
            started: Instant::now(),
        }))
    }

    /// Refresh now and then even when nothing moves: a stalled server shows as such.
    pub fn keep_ticking(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let inner = self.0.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                inner.tick();
            }
        })
    }

    pub fn finish(&self) {
        if let Some(o) = &self.0.overall {
            o.finish_and_clear();
        }
    }
}

struct MailboxProgress {
    inner: Arc<Inner>,
    bar: Option<ProgressBar>,
    planned: AtomicU64,
    planned_bytes: AtomicU64,
    copied: AtomicU64,
    copied_bytes: AtomicU64,
}

impl Progress for MailboxProgress {
    fn planned(&self, messages: u64, bytes: u64) {
        self.inner
            .planned_msgs
            .fetch_add(messages, Ordering::Relaxed);
        self.inner.planned_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.planned_bytes.fetch_add(bytes, Ordering::Relaxed);
        let total = self.planned.fetch_add(messages, Ordering::Relaxed) + messages;
        if let Some(b) = &self.bar {
            b.set_length(total);
        }
        self.inner.tick();
    }
    fn copied(&self, messages: u64, bytes: u64) {
        self.inner
            .copied_msgs
            .fetch_add(messages, Ordering::Relaxed);
        self.inner.copied_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.copied.fetch_add(messages, Ordering::Relaxed);
        self.copied_bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(messages);
        }
        self.inner.tick();
    }
    fn restart(&self) {
        // The next attempt plans again what this one planned and did not copy: it is taken
        // out here, so that the totals never exceed what the source holds.
        let (copied, copied_bytes) = (
            self.copied.load(Ordering::Relaxed),
            self.copied_bytes.load(Ordering::Relaxed),
        );
        let left = self
            .planned
            .swap(copied, Ordering::Relaxed)
            .saturating_sub(copied);
        let left_bytes = self
            .planned_bytes
            .swap(copied_bytes, Ordering::Relaxed)
            .saturating_sub(copied_bytes);
        self.inner.planned_msgs.fetch_sub(left, Ordering::Relaxed);
        self.inner
            .planned_bytes
            .fetch_sub(left_bytes, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_length(copied);
        }
        self.inner.tick();
    }
    fn folder(&self, name: &str) {
        if let Some(b) = &self.bar {
            b.set_message(name.to_string());
        }
    }
}

impl Observer for Bars {
    fn start(&self, source: &str, _target: &str) -> Arc<dyn Progress> {
        let bar = self.0.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(0));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>24} [{bar:30}] {pos}/{len} msgs {per_sec} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(source.chars().take(24).collect::<String>());
            b
        });
        Arc::new(MailboxProgress {
            inner: self.0.clone(),
            bar,
            planned: AtomicU64::new(0),
            planned_bytes: AtomicU64::new(0),
            copied: AtomicU64::new(0),
            copied_bytes: AtomicU64::new(0),
        })
    }

    fn done(&self, _report: &MailboxReport) {
        self.0.mailboxes_done.fetch_add(1, Ordering::Relaxed);
        self.0.tick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mailbox_that_starts_again_is_not_planned_twice() {
        let bars = Bars::new(1, false);
        let p = bars.start("a@src", "a@tgt");
        p.planned(100, 1000);
        p.copied(40, 400);
        // The connection dropped: the next attempt plans the 60 left once more.
        p.restart();
        p.planned(60, 600);
        p.copied(60, 600);
        let inner = &bars.0;
        assert_eq!(inner.planned_msgs.load(Ordering::Relaxed), 100);
        assert_eq!(inner.planned_bytes.load(Ordering::Relaxed), 1000);
        assert_eq!(inner.copied_msgs.load(Ordering::Relaxed), 100);
    }
}
