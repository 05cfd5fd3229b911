//! APPENDs the target may still commit after their connection is gone.
//!
//! An IMAP server that has read an APPEND whole stores its messages even when the client is no
//! longer there to read the answer: Dovecot commits a 300-message MULTIAPPEND some 50–200 ms
//! after the client died, and a server that was stalled (or a process of it that was paused)
//! commits it whenever it goes on. A run that dies (or loses its connection) at that moment has
//! not recorded those copies, and a later run that lists the folder before they land copies
//! them a second time.
//!
//! No wait can be long enough, so none is made. Before a run's first APPEND into a folder, the
//! state notes the folder's *line*: the target's UIDNEXT then. Every copy that run makes, and
//! every copy an APPEND it leaves unanswered stores later, gets a UID above the line. A run
//! that ends with every APPEND answered removes its lines. A line left behind (the process
//! died, or an attempt lost its target connection) is inherited by the next attempt, which
//! then, for that folder:
//!
//! - finds what already landed when it lists the folder: a message no recorded copy claims is
//!   matched by content identity (and bytes) to its source message and counted as present;
//! - after copying, *sweeps* above the line: a message no recorded copy claims that has the
//!   same bytes (SHA-256) as a recorded copy of that folder is a copy stored late, and is
//!   removed (`UID EXPUNGE`: only that UID); the recorded copy, same bytes, stays.
//!
//! The sweep is repeated by every run until a sweep finds nothing, at least [`SETTLE`] after
//! the line was first inherited: the folder is quiet, and the line goes.

use crate::mailbox::{SideName, SyncError};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use trasloco_state::{AppendLine, State};

/// How long a line is watched, after a later run first found it, before a sweep that finds
/// nothing may remove it. A server holding an APPEND it received whole for longer than this
/// after the client is gone is not expected; should one store a copy later still, `verify`
/// reports it as a duplicate.
pub(crate) const SETTLE: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A folder's messages the target refused: source UID → (bucket, reason).
pub(crate) type Refused = HashMap<u32, (String, String)>;

/// One mailbox's APPENDs over all attempts of a run.
#[derive(Default)]
pub(crate) struct Appends {
    /// Folders whose line this run drew (or found drawn): drawn once per run.
    drawn: Mutex<HashSet<i64>>,
    /// Lines left by a run, or an attempt, that stopped with APPENDs perhaps unanswered.
    inherited: Mutex<HashMap<i64, AppendLine>>,
    /// The mailbox's row, once an attempt started (never in a dry run).
    mailbox: std::sync::OnceLock<i64>,
    /// Messages the target refused in this run, per source folder: UID → (bucket, reason).
    /// Later attempts count them failed again without sending them (a refusal costs a
    /// server's error budget; the next run tries them again).
    refused: Mutex<HashMap<String, Refused>>,
}

impl Appends {
    /// The target refused `uid` of `folder` in this run.
    pub(crate) fn refused(&self, folder: &str, uid: u32, key: &str, reason: &str) {
        self.refused
            .lock()
            .expect("refusals")
            .entry(folder.to_string())
            .or_default()
            .insert(uid, (key.to_string(), reason.to_string()));
    }

    /// What the target refused of `folder` earlier in this run.
    pub(crate) fn refused_in(&self, folder: &str) -> Refused {
        self.refused
            .lock()
            .expect("refusals")
            .get(folder)
            .cloned()
            .unwrap_or_default()
    }

    /// How many messages the target refused in this run.
    pub(crate) fn refusals(&self) -> usize {
        self.refused
            .lock()
            .expect("refusals")
            .values()
            .map(HashMap::len)
            .sum()
    }

    /// At the start of each attempt: the lines left behind, now the attempt's to sweep.
    /// Returns those a process that stopped left (not this run's earlier attempts).
    pub(crate) async fn start_attempt(
        &self,
        state: &State,
        mailbox_id: i64,
    ) -> Result<Vec<AppendLine>, SyncError> {
        let _ = self.mailbox.set(mailbox_id);
        let lines = state.inherit_append_lines(mailbox_id, &now()).await?;
        let drawn = self.drawn.lock().expect("appends lock");
        let earlier = lines
            .iter()
            .filter(|l| !drawn.contains(&l.folder_id))
            .cloned()
            .collect();
        drop(drawn);
        *self.inherited.lock().expect("appends lock") =
            lines.into_iter().map(|l| (l.folder_id, l)).collect();
        Ok(earlier)
    }

    /// Before a folder's messages are copied: its line is drawn, once per run. `uid_next` is
    /// the target folder's UIDNEXT when it was opened (`None`: the server did not say, and
    /// the whole folder is above the line).
    pub(crate) async fn before_copying(
        &self,
        state: &State,
        folder_id: i64,
        target_uid_validity: u32,
        uid_next: Option<u32>,
    ) -> Result<(), SyncError> {
        if !self.drawn.lock().expect("appends lock").insert(folder_id) {
            return Ok(());
        }
        let line = uid_next.unwrap_or(1);
        state
            .draw_append_line(folder_id, target_uid_validity, line, &now())
            .await?;
        Ok(())
    }

    /// The line a stopped run left on a folder, if any: the folder is swept after copying.
    pub(crate) fn inherited(&self, folder_id: i64) -> Option<AppendLine> {
        self.inherited
            .lock()
            .expect("appends lock")
            .get(&folder_id)
            .cloned()
    }

    /// Whether an attempt that ended with `e` may have left an APPEND the target still
    /// commits. A source failure cannot: the APPENDs already written are answered before the
    /// attempt ends, and a message streamed from the source stops mid-literal, which the
    /// target discards. Nor can a clean stop, or one at the target's daily cap.
    pub(crate) fn may_be_unanswered(&self, e: &SyncError) -> bool {
        // A clean stop reads every answer before it ends.
        let answered = matches!(
            e,
            SyncError::Imap {
                side: SideName::Source,
                ..
            } | SyncError::Stopped(_)
                | SyncError::DailyCap(_)
        ) || e.is_renewal();
        !self.drawn.lock().expect("appends lock").is_empty() && !answered
    }

    /// When the mailbox ends: its own lines go unless the failure it ended with may have left
    /// an APPEND unanswered.
    pub(crate) async fn finish(&self, state: &State, failure: Option<&SyncError>) {
        if failure.is_some_and(|e| self.may_be_unanswered(e)) {
            return;
        }
        let Some(&mailbox_id) = self.mailbox.get() else {
            return;
        };
        if self.drawn.lock().expect("appends lock").is_empty() {
            return;
        }
        if let Err(e) = state.drop_own_append_lines(mailbox_id).await {
            // The next run then sweeps once more than it needs to; nothing else depends on it.
            tracing::warn!("{e}");
        }
    }
}

/// Whether a sweep that found nothing may let the line go: it has been watched long enough.
pub(crate) fn settled(line: &AppendLine, now: chrono::DateTime<chrono::Utc>) -> bool {
    line.inherited_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| now.signed_duration_since(t) >= SETTLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_settles_only_when_watched_long_enough_after_it_was_found() {
        let line = |at: Option<&str>| AppendLine {
            folder_id: 1,
            target_uid_validity: 1,
            line: 10,
            since: "2026-12-02T10:00:00Z".into(),
            inherited_at: at.map(str::to_string),
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .to_utc();
        assert!(!settled(&line(None), now));
        assert!(!settled(&line(Some("2026-12-02T11:50:00Z")), now));
        assert!(settled(&line(Some("2026-12-02T11:45:00Z")), now));
        assert!(!settled(&line(Some("not a time")), now));
    }
}
