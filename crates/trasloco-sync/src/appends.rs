//! APPENDs the target may still commit after their connection is gone.
//!
//! An IMAP server that has read an APPEND whole stores its messages even when the client is no
//! longer there to read the answer: Dovecot commits a 300-message MULTIAPPEND some 50–200 ms
//! after the client died. A run that dies (or loses its connection) at that moment has not
//! recorded those copies, and an attempt that lists the target folder before they land copies
//! them a second time. So a mailbox is marked in the state before it copies anything in a run,
//! and the mark is removed when the mailbox ends without a failure that could have left an
//! APPEND unanswered. An attempt that starts after such a failure (a mark left by an earlier
//! process, or this process's previous attempt) first waits [`Options::orphan_grace`]: what
//! the target commits in the meantime is then found by content and counted as already present.
//!
//! [`Options::orphan_grace`]: crate::Options::orphan_grace

use crate::mailbox::{SideName, SyncError};
use std::sync::atomic::{AtomicBool, Ordering};
use trasloco_state::State;

/// One mailbox's APPENDs over all attempts of a run.
#[derive(Default)]
pub(crate) struct Appends {
    /// The mailbox's state row, once it was marked (by this run or an earlier one).
    marked: tokio::sync::OnceCell<i64>,
    /// Whether an earlier process's mark was looked for.
    checked: AtomicBool,
}

impl Appends {
    /// Before a folder's messages are copied: the mailbox is marked in the state, once per run.
    /// `mailbox_id` is `None` in a dry run, which appends nothing.
    pub(crate) async fn before_copying(
        &self,
        state: &State,
        mailbox_id: Option<i64>,
    ) -> Result<(), SyncError> {
        if let Some(id) = mailbox_id {
            self.marked
                .get_or_try_init(|| async {
                    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    state.mark_appending(id, &now).await.map(|()| id)
                })
                .await?;
        }
        Ok(())
    }

    /// At the start of the first attempt: when an earlier process left the mark, the time of
    /// that run's first copy. The mark then stays until this run ends.
    pub(crate) async fn left_by_earlier_run(
        &self,
        state: &State,
        mailbox_id: i64,
    ) -> Result<Option<String>, SyncError> {
        if self.checked.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        let since = state.appending_since(mailbox_id).await?;
        if since.is_some() {
            let _ = self.marked.set(mailbox_id);
        }
        Ok(since)
    }

    /// Whether an attempt that ended with `e` may have left an APPEND the target still
    /// commits. A source failure cannot: the APPENDs already written are answered before the
    /// attempt ends, and a message streamed from the source stops mid-literal, which the
    /// target discards.
    pub(crate) fn may_be_unanswered(&self, e: &SyncError) -> bool {
        let source = matches!(
            e,
            SyncError::Imap {
                side: SideName::Source,
                ..
            }
        );
        self.marked.get().is_some() && !source
    }

    /// When the mailbox ends: the mark goes unless the failure it ended with may have left an
    /// APPEND unanswered.
    pub(crate) async fn finish(&self, state: &State, failure: Option<&SyncError>) {
        if failure.is_some_and(|e| self.may_be_unanswered(e)) {
            return;
        }
        if let Some(&id) = self.marked.get()
            && let Err(e) = state.appending_done(id).await
        {
            // The next run then waits once more than it needs to; nothing else depends on it.
            tracing::warn!("{e}");
        }
    }
}
