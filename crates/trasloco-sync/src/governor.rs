//! How many mailboxes work against one server at once, how many connections each of them
//! opens to it, and how many messages one batch of APPENDs holds, shared by every mailbox of
//! the run: cut each time the server throttles (halved; batches to a quarter), grown back
//! while it does not (one more a minute; batches twice as large). A throttling server then
//! sees fewer connections and fewer APPENDs it will refuse, instead of the same number
//! retrying.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The smallest batch a throttling server brings batches down to.
const MIN_BATCH: usize = 3;

/// How long the allowance stays put before it grows by one.
const GROW_AFTER: Duration = Duration::from_secs(60);

struct Limits {
    /// Mailboxes allowed at once now.
    current: usize,
    /// The run's own limit, never exceeded.
    max: usize,
    /// Permits still to take out of circulation as they come back.
    debt: usize,
    /// Connections one mailbox may open to the server now; `None` until it first throttles
    /// (each mailbox opens what the run's options say).
    per_mailbox: Option<usize>,
    /// Messages in one batch of APPENDs now; `None` until the server first throttles. A
    /// throttled batch's APPENDs already on their way are all refused: each one a message
    /// uploaded for nothing.
    batch: Option<usize>,
    /// When the allowance last changed.
    changed: Instant,
}

/// The allowance for one server.
pub(crate) struct Governor {
    host: String,
    sem: Arc<Semaphore>,
    limits: Mutex<Limits>,
}

/// A mailbox's place among those working against the server; given back when dropped.
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    gov: Arc<Governor>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut l = self.gov.lock();
        if l.debt > 0 {
            l.debt -= 1;
            if let Some(p) = self.permit.take() {
                p.forget();
            }
        }
    }
}

/// The governor of `host`, made with `max` places the first time.
pub(crate) fn of(host: &str, max: usize) -> Arc<Governor> {
    static ALL: Mutex<Option<HashMap<String, Arc<Governor>>>> = Mutex::new(None);
    let mut all = ALL.lock().unwrap_or_else(|e| e.into_inner());
    all.get_or_insert_with(HashMap::new)
        .entry(host.to_ascii_lowercase())
        .or_insert_with(|| {
            let max = max.max(1);
            Arc::new(Governor {
                host: host.to_string(),
                sem: Arc::new(Semaphore::new(max)),
                limits: Mutex::new(Limits {
                    current: max,
                    max,
                    debt: 0,
                    per_mailbox: None,
                    batch: None,
                    changed: Instant::now(),
                }),
            })
        })
        .clone()
}

impl Governor {
    fn lock(&self) -> std::sync::MutexGuard<'_, Limits> {
        self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for a place.
    pub(crate) async fn slot(self: &Arc<Governor>) -> Slot {
        self.grow();
        let permit = self.sem.clone().acquire_owned().await.ok();
        Slot {
            permit,
            gov: self.clone(),
        }
    }

    /// The server throttled a mailbox that had `used` connections to it and sent batches of
    /// up to `batch` messages: half as many mailboxes, half as many connections per mailbox
    /// (at least one each) and batches a quarter as large (at least `MIN_BATCH`) from now on.
    pub(crate) fn throttled(&self, used: usize, batch: usize) {
        let mut l = self.lock();
        let was_batch = l.batch.unwrap_or(batch).min(batch.max(1));
        l.batch = Some((was_batch / 4).max(MIN_BATCH).min(was_batch));
        let was = l.per_mailbox.unwrap_or(used).min(used.max(1));
        let conns = (was / 2).max(1);
        if conns < was {
            tracing::warn!(
                "{} throttles: at most {conns} connection(s) per mailbox against it (was {was})",
                self.host
            );
        }
        l.per_mailbox = Some(conns);
        let new = (l.current / 2).max(1);
        let cut = l.current - new;
        if cut == 0 {
            l.changed = Instant::now();
            return;
        }
        let forgotten = self.sem.forget_permits(cut);
        l.debt += cut - forgotten;
        tracing::warn!(
            "{} throttles: at most {new} mailbox(es) at a time against it (was {}); one more each minute it does not",
            self.host,
            l.current
        );
        l.current = new;
        l.changed = Instant::now();
    }

    /// Messages one batch of APPENDs may hold now (`None`: as many as the options say).
    pub(crate) fn batch(&self) -> Option<usize> {
        self.grow();
        self.lock().batch
    }

    /// Connections one mailbox may open to the server now (`None`: as many as it is set to).
    pub(crate) fn connections(&self) -> Option<usize> {
        self.grow();
        self.lock().per_mailbox
    }

    /// Once the allowance has held a while without throttling, everything a throttle cut
    /// grows back one step together: one more place, one more connection per mailbox, batches
    /// twice as large.
    fn grow(&self) {
        let mut l = self.lock();
        if l.changed.elapsed() < GROW_AFTER {
            return;
        }
        let mut grew = false;
        if let Some(n) = l.per_mailbox {
            // Past 64 no run opens as many: back to the options' own number.
            l.per_mailbox = (n < 64).then_some(n + 1);
            grew = true;
        }
        if let Some(n) = l.batch {
            // Twice as large; past 1,000 no run's batches are as large.
            l.batch = (n < 1000).then_some(n * 2);
            grew = true;
        }
        if l.current < l.max {
            l.current += 1;
            if l.debt > 0 {
                l.debt -= 1;
            } else {
                self.sem.add_permits(1);
            }
            grew = true;
        }
        if grew {
            l.changed = Instant::now();
        }
    }

    /// Mailboxes allowed at once now.
    #[cfg(test)]
    fn current(&self) -> usize {
        self.lock().current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every allowance a throttle cut grows back together once the server has been quiet a
    /// while, even when the mailboxes are already at the run's own limit.
    #[tokio::test]
    async fn connections_and_batches_grow_back_together() {
        let g = of("grow.test", 1);
        g.throttled(2, 300);
        assert_eq!(
            (g.current(), g.connections(), g.batch()),
            (1, Some(1), Some(75))
        );
        g.lock().changed -= GROW_AFTER;
        assert_eq!(
            (g.current(), g.connections(), g.batch()),
            (1, Some(2), Some(150))
        );
        assert_eq!(g.batch(), Some(150), "not again until another quiet while");
    }

    #[tokio::test]
    async fn halves_on_throttling_and_takes_back_places_in_use() {
        let g = of("aimd.test", 4);
        let (a, b, c) = (g.slot().await, g.slot().await, g.slot().await);
        assert_eq!(g.connections(), None, "as many as the options say");
        assert_eq!(g.batch(), None);
        g.throttled(4, 300);
        assert_eq!(g.current(), 2);
        assert_eq!(g.connections(), Some(2));
        assert_eq!(g.batch(), Some(75));
        // One place was free and is gone; one more goes when a holder gives its back.
        assert_eq!(g.sem.available_permits(), 0);
        drop(a);
        assert_eq!(g.sem.available_permits(), 0, "taken out of circulation");
        drop(b);
        assert_eq!(g.sem.available_permits(), 1);
        g.throttled(2, 300);
        assert_eq!(g.current(), 1);
        assert_eq!(g.connections(), Some(1));
        assert_eq!(g.batch(), Some(18));
        drop(c);
        assert_eq!(g.sem.available_permits(), 1, "one mailbox at a time");
        g.throttled(1, 300);
        g.throttled(1, 300);
        assert_eq!(g.current(), 1, "never below one");
        assert_eq!(g.connections(), Some(1), "never below one");
        assert_eq!(g.batch(), Some(3), "never below three");
        g.throttled(1, 2);
        assert_eq!(g.batch(), Some(2), "never above what the options say");
    }
}
