//! APPENDs the target may still commit after their connection is gone.
//!
//! An IMAP server that has read an APPEND whole stores its messages even when the client is no
//! longer there to read the answer: Dovecot commits a 300-message MULTIAPPEND some 50–200 ms
//! after the client died. A run that dies (or loses its connection) at that moment has not
//! recorded those copies, and an attempt that lists the target folder before they land copies
//! them a second time. So a mailbox is marked in the state before its first APPEND of a run,
//! the mark is removed when every APPEND has been answered, and an attempt that starts after
//! unanswered APPENDs (a mark left by an earlier process, or an unanswered command in this
//! process's previous attempt) first waits [`Options::orphan_grace`]: what the target
//! commits in the meantime is then found by content and counted as already present.
//!
//! [`Options::orphan_grace`]: crate::Options::orphan_grace

use crate::mailbox::SyncError;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use trasloco_state::State;

/// One mailbox's APPENDs over all attempts of a run.
#[derive(Default)]
pub(crate) struct Appends {
    /// The mailbox's state row, once it was marked (by this run or an earlier one).
    marked: tokio::sync::OnceCell<i64>,
    /// Whether an earlier process's mark was looked for.
    checked: AtomicBool,
    /// APPEND commands written whose answers were not read (yet).
    unanswered: AtomicUsize,
}

/// An APPEND being sent: call [`Unanswered::answered`] once its tagged answer was read. One
/// that is dropped instead (the connection failed first) stays counted.
#[must_use]
pub(crate) struct Unanswered<'a>(&'a AtomicUsize);

impl Unanswered<'_> {
    pub(crate) fn answered(self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Appends {
    /// Before an APPEND is written: the mailbox is marked in the state (once per run).
    /// `mailbox_id` is `None` in a dry run, which appends nothing.
    pub(crate) async fn sending(
        &self,
        state: &State,
        mailbox_id: Option<i64>,
    ) -> Result<Unanswered<'_>, SyncError> {
        if let Some(id) = mailbox_id {
            self.marked
                .get_or_try_init(|| async {
                    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    state.mark_appending(id, &now).await.map(|()| id)
                })
                .await?;
        }
        self.unanswered.fetch_add(1, Ordering::SeqCst);
        Ok(Unanswered(&self.unanswered))
    }

    /// At the start of the first attempt: when an earlier process left the mark, the time of
    /// that run's first APPEND. The mark then stays until this run has answered everything.
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

    /// After a failed attempt: whether an APPEND was left unanswered. The count starts again
    /// for the next attempt.
    pub(crate) fn take_unanswered(&self) -> bool {
        self.unanswered.swap(0, Ordering::SeqCst) > 0
    }

    /// When the mailbox ends: the mark goes unless an APPEND is still unanswered.
    pub(crate) async fn finish(&self, state: &State) {
        if self.unanswered.load(Ordering::SeqCst) > 0 {
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
