//! A target's daily upload cap: Gmail takes about 500 MB a day per account over IMAP, and an
//! account pushed past it stops taking mail (and may be suspended for a while). The bytes
//! uploaded to each target account are counted per UTC day in the state, by every run; a
//! batch that would pass the cap is not sent, and the mailbox stops cleanly, incomplete, with
//! the day its remaining mail can follow. Running the campaign again that day or later resumes.

use crate::mailbox::SyncError;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use trasloco_state::State;

/// What a target account may still take today.
pub(crate) struct DailyCap {
    target: String,
    day: String,
    cap: u64,
    left: Mutex<u64>,
    reached: AtomicBool,
}

fn mb(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.0} MB", bytes as f64 / 1_000_000.0)
    } else {
        format!("{bytes} bytes")
    }
}

impl DailyCap {
    /// The account's room today, from what the state counted.
    pub(crate) async fn load(state: &State, target: &str, cap: u64) -> Result<DailyCap, SyncError> {
        let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let used = state.uploaded_on(target, &day).await?;
        Ok(DailyCap {
            target: target.to_string(),
            day,
            cap,
            left: Mutex::new(cap.saturating_sub(used)),
            reached: AtomicBool::new(used >= cap),
        })
    }

    /// Take room for `bytes` about to be sent; false, and the cap counts as reached, when
    /// they do not fit.
    pub(crate) fn take(&self, bytes: u64) -> bool {
        let mut left = self.left.lock().unwrap_or_else(|p| p.into_inner());
        if bytes > *left {
            self.reached.store(true, Ordering::Relaxed);
            return false;
        }
        *left -= bytes;
        true
    }

    /// Whether a batch was held back for the cap (or the day's cap was used up before).
    pub(crate) fn reached(&self) -> bool {
        self.reached.load(Ordering::Relaxed)
    }

    /// Count bytes the target stored.
    pub(crate) async fn uploaded(&self, state: &State, bytes: u64) -> Result<(), SyncError> {
        if bytes > 0 {
            state.add_uploaded(&self.target, &self.day, bytes).await?;
        }
        Ok(())
    }

    /// Why the mailbox stops here, and when it can go on.
    pub(crate) fn stop(&self) -> SyncError {
        let next = chrono::NaiveDate::parse_from_str(&self.day, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.succ_opt())
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        SyncError::DailyCap(format!(
            "target {}: the daily upload cap of {} is reached for {} (UTC); the rest follows when the campaign runs again on {next} or later",
            self.target,
            mb(self.cap),
            self.day
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_that_does_not_fit_is_held_back() {
        let d = DailyCap {
            target: "alice@imap.gmail.com".into(),
            day: "2026-12-31".into(),
            cap: 1000,
            left: Mutex::new(300),
            reached: AtomicBool::new(false),
        };
        assert!(d.take(200));
        assert!(!d.reached());
        assert!(!d.take(101));
        assert!(d.reached());
        let SyncError::DailyCap(line) = d.stop() else {
            panic!()
        };
        assert!(
            line.contains("cap of 1000 bytes is reached for 2026-12-31"),
            "{line}"
        );
        assert!(line.contains("on 2027-01-01 or later"), "{line}");
    }
}
