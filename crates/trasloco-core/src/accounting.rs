//! The buckets every source message ends in, and the reports built from them.
//!
//! Every source message is in exactly one bucket — copied, already present, skipped by a named
//! rule, or failed with a reason — so the buckets add up to the source count, per folder and
//! per mailbox. [`Buckets::total`] is what reports compare with the source count.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where the source messages of a folder (or mailbox, or run) ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buckets {
    /// Copied to the target in this run.
    pub copied: u64,
    /// Found on the target already (recorded earlier, or matched by content identity).
    pub already_present: u64,
    /// Not copied because a named rule said so: rule → count.
    pub skipped: BTreeMap<String, u64>,
    /// Not copied because something went wrong: reason → count. A re-run retries these.
    pub failed: BTreeMap<String, u64>,
    /// On the target, but the target server stored other bytes than the source's (some
    /// servers rewrite NUL bytes or a final bare CR). Not retried: appending again would only
    /// make a second altered copy. The original stays on the source (or in an archive).
    #[serde(default)]
    pub altered: u64,
}

impl Buckets {
    /// Sum of all buckets.
    pub fn total(&self) -> u64 {
        self.copied
            + self.already_present
            + self.altered
            + self.skipped.values().sum::<u64>()
            + self.failed.values().sum::<u64>()
    }

    /// Messages that failed.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// Add another set of buckets into this one.
    pub fn add(&mut self, other: &Buckets) {
        self.copied += other.copied;
        self.already_present += other.already_present;
        self.altered += other.altered;
        for (k, v) in &other.skipped {
            *self.skipped.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.failed {
            *self.failed.entry(k.clone()).or_default() += v;
        }
    }

    /// Count one failure.
    pub fn fail(&mut self, reason: impl Into<String>) {
        *self.failed.entry(reason.into()).or_default() += 1;
    }

    /// Count one skip.
    pub fn skip(&mut self, rule: impl Into<String>) {
        *self.skipped.entry(rule.into()).or_default() += 1;
    }
}

/// One failed message, for the report's error list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageError {
    /// Source UID.
    pub uid: u32,
    /// Size in bytes.
    pub size: u64,
    /// What happened, with the server's words where there were any.
    pub reason: String,
    /// Where the message is when the source is an archive: its file (and byte offset in an
    /// mbox), which names it better than a position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
}

/// A copy on the target whose bytes differ from the source message's: the target server
/// rewrote it when it was stored (or it was changed on the way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlteredCopy {
    /// Source UID.
    pub uid: u32,
    /// Target UID of the altered copy.
    pub target_uid: u32,
    /// Size of the source message.
    pub size: u64,
    /// The server that holds the copy (`user@host`).
    pub server: String,
    /// Byte offset of the first difference, when both copies could be read to find it.
    pub first_difference: Option<u64>,
    /// SHA-256 of the target's copy.
    pub target_sha256: String,
}

impl AlteredCopy {
    /// One line for people: what differs and what to do about it.
    pub fn describe(&self) -> String {
        let at = match self.first_difference {
            Some(o) => format!("first difference at byte {o}"),
            None => "bytes differ".into(),
        };
        format!(
            "UID {} ({} bytes): the copy the target {} stored (UID {}) differs from the source message ({at}); \
             the target rewrote it, so copying again would not help: keep the original on the source or in an archive",
            self.uid, self.size, self.server, self.target_uid
        )
    }
}

/// The result for one folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FolderReport {
    /// Source folder name (Unicode).
    pub source: String,
    /// Target folder name (Unicode).
    pub target: String,
    /// Messages in the source folder when it was listed.
    pub source_messages: u64,
    /// Bytes in the source folder.
    pub source_bytes: u64,
    /// Where they went.
    pub buckets: Buckets,
    /// Bytes uploaded in this run.
    pub bytes_copied: u64,
    /// Message bodies fetched from the source in this run.
    pub bodies_fetched: u64,
    /// Messages whose target flags were updated.
    pub flags_updated: u64,
    /// Keywords the target refused (not in its PERMANENTFLAGS): keyword → messages affected.
    pub dropped_keywords: BTreeMap<String, u64>,
    /// Messages whose bytes on the target were read back and compared (SHA-256).
    pub verified: u64,
    /// Copies taken off the target because a quota archive's moved cut put their messages
    /// in the archive (counted under that rule).
    #[serde(default)]
    pub evicted: u64,
    /// Copies made again because the archive's message grew (an mbox completed after a cut),
    /// their shorter copies removed from the target.
    #[serde(default)]
    pub replaced: u64,
    /// Copies that an APPEND a stopped run left unanswered stored late, beside the copy made
    /// again since (same bytes): removed from the target. Not a source message's bucket.
    #[serde(default)]
    pub late_removed: u64,
    /// Messages a target that merges by Message-ID (Gmail) stored as a message it already
    /// held (same Message-ID, other bytes): counted as already present.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub merged: u64,
    /// Wall time spent on this folder.
    pub seconds: f64,
    /// The failed messages (at most 100 listed).
    pub errors: Vec<MessageError>,
    /// Why the folder as a whole could not be synchronised (e.g. no right to read it), if so.
    #[serde(default)]
    pub error: Option<String>,
    /// The copies counted under `buckets.altered` (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub altered: Vec<AlteredCopy>,
    /// PEC messages copied and checked in this run: signature verdict (on the source) → count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pec: BTreeMap<String, u64>,
    /// The PEC messages among them whose signature is not intact (`broken`), named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pec_broken: Vec<String>,
}

/// How a mailbox ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailboxStatus {
    /// Every source message is on the target.
    InSync,
    /// The run finished but some messages failed: run again.
    Incomplete,
    /// Every source message has a copy on the target, but the target altered the bytes of
    /// some copies ([`Buckets::altered`]): nothing to retry, the originals stay on the source.
    Altered,
    /// Nothing was written (dry run); the report says what would be copied.
    DryRun,
    /// The mailbox could not be synchronised (login, connection, TLS…); see `error`.
    Failed,
}

/// The class of a mailbox-level failure; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// Could not connect (unknown host, refused, timeout, dropped and not recovered).
    Connection,
    /// TLS handshake or certificate failure.
    Tls,
    /// Login refused.
    Authentication,
    /// The server said something we could not work with.
    Protocol,
    /// The state store failed.
    State,
    /// A local file or directory: an archive's directory that is not empty and not an
    /// archive, of another format, unwritable.
    Local,
    /// The run was stopped (Ctrl-C, SIGTERM) before the mailbox was done or started.
    Stopped,
}

/// The result for one mailbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailboxReport {
    /// Source account, as `user@host` (never with a secret).
    pub source: String,
    /// Target account, as `user@host`.
    pub target: String,
    /// Outcome.
    pub status: MailboxStatus,
    /// Failure class when `status` is `failed`.
    pub failure: Option<FailureClass>,
    /// One line saying what went wrong and what to check.
    pub error: Option<String>,
    /// Totals over all folders.
    pub buckets: Buckets,
    /// Messages on the source.
    pub source_messages: u64,
    /// Bytes uploaded.
    pub bytes_copied: u64,
    /// Wall time.
    pub seconds: f64,
    /// Reconnections after dropped connections.
    pub reconnects: u32,
    /// Reconnections made to log in with a new OAuth2 token before the old one expired.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub token_renewals: u32,
    /// New sessions started before the target's limit of refused commands per session
    /// (Exchange Online ends a session after ten).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub session_resets: u32,
    /// Times a server asked to slow down (throttling), and the time spent waiting for it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled: u32,
    /// Seconds spent waiting because of throttling.
    #[serde(default)]
    pub throttled_seconds: f64,
    /// Copies made (by this run or one before it) that were never read back, because the run
    /// ended before it got to them: the next run reads them back.
    #[serde(default)]
    pub not_read_back: u64,
    /// Per folder.
    pub folders: Vec<FolderReport>,
    /// PEC messages copied and checked in this run, over all folders: verdict → count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pec: BTreeMap<String, u64>,
    /// Archive sources: files left out because they are not mail (or could not be read as
    /// mail), each with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_files: Vec<String>,
    /// Archive sources: doubts found while reading it, one line each (read all the same).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// POP3 sources with `--leave-days`: what was (or would be) deleted from the old server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_cleanup: Option<SourceCleanup>,
}

/// What `--leave-days N` did on a POP3 source after the copy: only messages received more than
/// N days ago whose copy on the target was read back identical are deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCleanup {
    /// N.
    pub leave_days: u32,
    /// Whether this was a dry run (nothing deleted; `deletable` says what would be).
    pub dry_run: bool,
    /// Messages on the server when checked.
    pub on_server: u64,
    /// Deleted from the server.
    pub deleted: u64,
    /// Old enough and verified: deleted, or listed in a dry run.
    pub deletable: Vec<CleanupItem>,
    /// Kept: received within the last N days.
    pub kept_recent: u64,
    /// Kept: no readable date (no `Received:` or `Date:` header).
    pub kept_undated: u64,
    /// Kept: old enough, but no copy on the target was read back identical (not copied yet,
    /// copy refused, copy differs).
    pub kept_unverified: u64,
    /// Why nothing was deleted, if the cleanup could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One message deleted (or deletable) from a POP3 server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupItem {
    /// The server's unique id.
    pub uidl: String,
    /// When it was received (IMAP date form).
    pub received: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 checked on both sides.
    pub sha256: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

impl MailboxReport {
    /// An empty report, to be filled with folders and closed with [`MailboxReport::finish`].
    pub fn new(source: String, target: String) -> MailboxReport {
        MailboxReport {
            source,
            target,
            status: MailboxStatus::InSync,
            failure: None,
            error: None,
            buckets: Buckets::default(),
            source_messages: 0,
            bytes_copied: 0,
            seconds: 0.0,
            reconnects: 0,
            token_renewals: 0,
            session_resets: 0,
            throttled: 0,
            throttled_seconds: 0.0,
            not_read_back: 0,
            folders: Vec::new(),
            pec: BTreeMap::new(),
            skipped_files: Vec::new(),
            warnings: Vec::new(),
            source_cleanup: None,
        }
    }

    /// A report for a mailbox that failed before or while synchronising.
    pub fn failed(
        source: String,
        target: String,
        class: FailureClass,
        error: String,
    ) -> MailboxReport {
        MailboxReport {
            status: MailboxStatus::Failed,
            failure: Some(class),
            error: Some(error),
            ..MailboxReport::new(source, target)
        }
    }

    /// Recompute totals from the folders and set the status: in sync only when the buckets add
    /// up and nothing failed.
    pub fn finish(&mut self, dry_run: bool) {
        self.tally();
        self.status = if dry_run {
            MailboxStatus::DryRun
        } else if self.buckets.failed_total() == 0
            && self.buckets.total() == self.source_messages
            && self.folders.iter().all(|f| f.error.is_none())
        {
            if self.buckets.altered > 0 {
                MailboxStatus::Altered
            } else {
                MailboxStatus::InSync
            }
        } else {
            MailboxStatus::Incomplete
        };
    }

    /// Source messages of the folders listed that no bucket holds: those a mailbox that failed
    /// part-way did not reach.
    pub fn not_reached(&self) -> u64 {
        self.source_messages.saturating_sub(self.buckets.total())
    }

    /// Recompute the totals from the folders (the status stays): a mailbox that failed
    /// part-way still counts what it did in the folders it got through.
    pub fn tally(&mut self) {
        let mut b = Buckets::default();
        let mut messages = 0;
        let mut bytes = 0;
        self.pec.clear();
        for f in &self.folders {
            b.add(&f.buckets);
            messages += f.source_messages;
            bytes += f.bytes_copied;
            for (verdict, n) in &f.pec {
                *self.pec.entry(verdict.clone()).or_default() += n;
            }
        }
        self.buckets = b;
        self.source_messages = messages;
        self.bytes_copied = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_add_up() {
        let mut b = Buckets {
            copied: 3,
            already_present: 2,
            ..Default::default()
        };
        b.skip("folder-excluded");
        b.fail("target rejected: [OVERQUOTA] Quota exceeded");
        assert_eq!(b.total(), 7);
        let mut sum = Buckets::default();
        sum.add(&b);
        sum.add(&b);
        assert_eq!(sum.total(), 14);
        assert_eq!(sum.failed_total(), 2);
    }

    #[test]
    fn mailbox_with_failures_is_incomplete() {
        let mut folder = FolderReport {
            source_messages: 2,
            ..Default::default()
        };
        folder.buckets.copied = 1;
        folder.buckets.fail("x");
        let mut r = MailboxReport {
            folders: vec![folder],
            ..MailboxReport::new("a@s".into(), "a@t".into())
        };
        r.finish(false);
        assert_eq!(r.status, MailboxStatus::Incomplete);
        r.folders[0].buckets.failed.clear();
        r.folders[0].buckets.copied = 2;
        r.finish(false);
        assert_eq!(r.status, MailboxStatus::InSync);
        r.folders[0].buckets.copied = 1;
        r.folders[0].buckets.altered = 1;
        r.finish(false);
        assert_eq!(
            r.status,
            MailboxStatus::Altered,
            "an altered copy is neither in sync nor a failure to retry"
        );
        assert_eq!(r.buckets.total(), 2);
        r.folders.push(FolderReport {
            error: Some("source: NO [NOPERM]".into()),
            ..Default::default()
        });
        r.finish(false);
        assert_eq!(
            r.status,
            MailboxStatus::Incomplete,
            "a folder that could not be read is not in sync"
        );
    }
}
