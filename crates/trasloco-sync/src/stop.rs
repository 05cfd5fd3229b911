//! A request to stop a run cleanly (Ctrl-C, SIGTERM), shared by all its mailboxes.
//!
//! Nothing is cut off mid-way: a batch whose APPEND went out is answered and recorded, copies
//! made are read back, and only then does the mailbox end, its folders counted as far as they
//! got. No new batch, listing window, folder or mailbox is started once a stop was asked for.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

/// Shared by every clone: asked for once, seen by all.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicI32>);

impl Stop {
    /// Ask for a stop on behalf of signal `signal` (2 for SIGINT, 15 for SIGTERM). Returns
    /// whether this is the first request.
    pub fn request(&self, signal: i32) -> bool {
        self.0
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// The signal a stop was asked for with, if one was.
    pub fn requested(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
