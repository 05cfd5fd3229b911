//! A request to stop a run cleanly (Ctrl-C, SIGTERM), shared by all its mailboxes.
//!
//! Nothing is cut off mid-way: a batch whose APPEND went out is answered and recorded, copies
//! made are read back, and only then does the mailbox end, its folders counted as far as they
//! got. No new batch, listing window, folder or mailbox is started once a stop was asked for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What [`Stop::requested`] says when a worker's lease on the mailbox ran out (or was lost)
/// rather than a signal asking for the stop.
pub const LEASE_ENDED: i32 = -1;

/// Shared by every clone: asked for once, seen by all. A mailbox's clone may also carry its
/// worker's lease ([`Stop::with_lease`]), which stops that mailbox alone when it runs out.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    signal: Arc<AtomicI32>,
    lease: Option<Arc<LeaseClock>>,
}

/// A worker's lease on one mailbox as this process sees it: a deadline on the monotonic clock
/// (which goes on while the process is paused), moved on by every renewal the database
/// confirmed, and a mark once the database said the lease is another worker's.
#[derive(Debug)]
pub struct LeaseClock {
    base: Instant,
    deadline_ms: AtomicU64,
    lost: AtomicBool,
}

impl LeaseClock {
    /// A lease good for `valid` from `asked` (taken just before the request was sent, so the
    /// local deadline never falls after the database's).
    pub fn new(asked: Instant, valid: Duration) -> LeaseClock {
        let clock = LeaseClock {
            base: asked,
            deadline_ms: AtomicU64::new(0),
            lost: AtomicBool::new(false),
        };
        clock.renewed(asked, valid);
        clock
    }

    /// The database confirmed a renewal asked at `asked`, good for `valid`.
    pub fn renewed(&self, asked: Instant, valid: Duration) {
        let at = asked.saturating_duration_since(self.base) + valid;
        self.deadline_ms
            .fetch_max(at.as_millis() as u64, Ordering::SeqCst);
    }

    /// The database said the lease is no longer this one.
    pub fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    /// Whether the lease still holds, as far as this process can know.
    pub fn holds(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
            && (self.base.elapsed().as_millis() as u64) < self.deadline_ms.load(Ordering::SeqCst)
    }
}

impl Stop {
    /// Ask for a stop on behalf of signal `signal` (2 for SIGINT, 15 for SIGTERM). Returns
    /// whether this is the first request.
    pub fn request(&self, signal: i32) -> bool {
        self.signal
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// The signal a stop was asked for with, if one was; [`LEASE_ENDED`] when this clone's
    /// lease no longer holds.
    pub fn requested(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 if self.lease.as_ref().is_some_and(|l| !l.holds()) => Some(LEASE_ENDED),
            0 => None,
            s => Some(s),
        }
    }

    /// A clone that also stops when `lease` ends: for one mailbox taken under a lease.
    pub fn with_lease(&self, lease: Arc<LeaseClock>) -> Stop {
        Stop {
            signal: self.signal.clone(),
            lease: Some(lease),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_stops_its_own_mailbox_when_it_runs_out_or_is_lost() {
        let run = Stop::default();
        let asked = Instant::now();
        let lease = Arc::new(LeaseClock::new(asked, Duration::from_millis(50)));
        let mailbox = run.with_lease(lease.clone());
        assert_eq!(mailbox.requested(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(mailbox.requested(), Some(LEASE_ENDED));
        assert_eq!(run.requested(), None, "the other mailboxes go on");
        lease.renewed(Instant::now(), Duration::from_secs(60));
        assert_eq!(mailbox.requested(), None);
        lease.lose();
        assert_eq!(mailbox.requested(), Some(LEASE_ENDED));
        // A signal is named as such, lease or not.
        run.request(15);
        assert_eq!(mailbox.requested(), Some(15));
    }

    #[test]
    fn the_first_request_counts_and_every_clone_sees_it() {
        let stop = Stop::default();
        let other = stop.clone();
        assert_eq!(other.requested(), None);
        assert!(stop.request(15));
        assert!(!other.request(2));
        assert_eq!(other.requested(), Some(15));
        assert_eq!(Stop::default().requested(), None);
    }
}
