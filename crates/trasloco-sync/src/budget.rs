//! One memory budget for message bytes, shared by every mailbox a process migrates.
//!
//! Message bodies are the only large allocations: a batch fetched from the source, a batch
//! being appended, copies being read back for verification. Each of them reserves its bytes here
//! first and gives them back when the bodies are dropped, so the process holds at most the budget
//! in message bytes however many mailboxes run at once and however big they are. A single message
//! larger than the budget takes all of it and travels alone.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default budget: enough for several 4 MiB batches in flight, small enough to keep the
/// whole process near 64 MB with a 30 MB message in the mix.
pub const DEFAULT_BUDGET_BYTES: u64 = 24 * 1024 * 1024;

/// Shared byte budget (counted in KiB so any size fits a permit count).
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    sem: Arc<Semaphore>,
    total_kib: u32,
}

/// Bytes held until dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
}

impl MemoryBudget {
    /// A budget of `bytes` (at least 1 MiB).
    pub fn new(bytes: u64) -> MemoryBudget {
        let total_kib = (bytes / 1024).clamp(1024, u64::from(u32::MAX >> 4)) as u32;
        MemoryBudget {
            sem: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// The budget in bytes.
    pub fn bytes(&self) -> u64 {
        u64::from(self.total_kib) * 1024
    }

    /// Wait until `bytes` fit, then hold them. More than the whole budget waits for all of it.
    pub async fn reserve(&self, bytes: u64) -> Reservation {
        let kib = bytes.div_ceil(1024).clamp(1, u64::from(self.total_kib)) as u32;
        let permit = self.sem.clone().acquire_many_owned(kib).await.ok();
        Reservation { _permit: permit }
    }
}

impl Default for MemoryBudget {
    fn default() -> MemoryBudget {
        MemoryBudget::new(DEFAULT_BUDGET_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn reservations_wait_for_room_and_oversize_takes_everything() {
        let b = MemoryBudget::new(4 * 1024 * 1024);
        let r1 = b.reserve(3 * 1024 * 1024).await;
        // 2 MiB do not fit beside 3 MiB.
        let waiting =
            tokio::time::timeout(Duration::from_millis(50), b.reserve(2 * 1024 * 1024)).await;
        assert!(waiting.is_err());
        drop(r1);
        let big = b.reserve(100 * 1024 * 1024).await; // clamped to the whole budget
        let small = tokio::time::timeout(Duration::from_millis(50), b.reserve(1)).await;
        assert!(small.is_err());
        drop(big);
        let _ok = b.reserve(1).await;
        assert_eq!(b.bytes(), 4 * 1024 * 1024);
    }
}
