//! Synchronise one mailbox from a source (IMAP, POP3 or a local archive) to a target IMAP
//! server.
//!
//! The decisions are the pure functions of `trasloco-core` (folder mapping, diff, identity,
//! flags); this crate is the thin I/O around them: list, select, fetch metadata, fetch bodies
//! in byte-bounded batches while the previous batch is being appended, record every copy in the
//! state store as soon as the target confirms it, propagate flag changes, verify bytes.
//!
//! A dropped connection ends the attempt; the mailbox is retried with back-off and resumes from
//! the state, so nothing is copied twice.
#![deny(missing_docs)]

mod appends;
mod budget;
mod compare;
mod daily;
mod evidence;
mod export;
mod folder;
mod governor;
mod inventory;
mod labels;
mod mailbox;
mod pop3_cleanup;
mod scan;
mod source;
mod stop;
mod unchanged;

pub use budget::{DEFAULT_BUDGET_BYTES, MemoryBudget};
pub use compare::{
    ARCHIVED, AlteredMessage, ArchivePart, FolderComparison, MissingMessage, compare_mailbox,
    folder_mappings,
};
pub use evidence::{EvidenceLine, LineCheck, PecEvidence, check_manifest, latest_lines};
pub use export::{ArchiveTarget, export_mailbox};
pub use inventory::{Failure, FolderListing, SourceInventory, inventory_source, target_quota};
pub use labels::LABEL_ELSEWHERE;
pub use mailbox::{
    DateRule, Evict, FolderSelect, Options, Progress, Side, SideName, failure_class, signal_name,
    sync_mailbox,
};
pub use scan::{Scanned, scan};
pub use source::Source;
pub use stop::{LEASE_ENDED, LeaseClock, Stop};

/// Where messages go.
#[derive(Debug, Clone)]
pub enum Target {
    /// An IMAP server.
    Imap(Side),
    /// A local archive.
    Archive(ArchiveTarget),
}

impl Target {
    /// How reports and the state name it; never includes a secret.
    pub fn label(&self) -> String {
        match self {
            Target::Imap(s) => s.label(),
            Target::Archive(a) => a.label(),
        }
    }
}

/// Move one mailbox from `source` to `target`, whatever they are.
pub async fn transfer(
    source: &Source,
    target: &Target,
    state: &trasloco_state::State,
    opts: &Options,
    progress: &dyn Progress,
) -> trasloco_core::accounting::MailboxReport {
    match target {
        Target::Imap(side) => sync_mailbox(source, side, state, opts, progress).await,
        Target::Archive(a) => export_mailbox(source, a, state, opts, progress).await,
    }
}

/// A glob over folder names: `*` matches any run of characters; case-sensitive, except that
/// `INBOX` matches in any case.
pub fn folder_matches(pattern: &str, name: &str) -> bool {
    fn rec(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| rec(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && rec(rest, &n[1..]),
        }
    }
    if pattern.eq_ignore_ascii_case("INBOX") && name.eq_ignore_ascii_case("INBOX") {
        return true;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    rec(&p, &n)
}

/// A folder rule's glob against a folder and its ancestors: a rule over `Archivio` covers
/// `Archivio/2019` (with `/` as the delimiter) and everything below it.
pub fn folder_or_parent_matches(pattern: &str, name: &str, delimiter: Option<char>) -> bool {
    if folder_matches(pattern, name) {
        return true;
    }
    let Some(d) = delimiter else {
        return false;
    };
    name.char_indices()
        .filter(|(_, c)| *c == d)
        .any(|(i, _)| folder_matches(pattern, &name[..i]))
}

#[cfg(test)]
mod tests {
    use super::{folder_matches, folder_or_parent_matches};

    #[test]
    fn folder_rules_cover_the_subtree() {
        assert!(folder_or_parent_matches("Archivio", "Archivio", Some('/')));
        assert!(folder_or_parent_matches(
            "Archivio",
            "Archivio/2019",
            Some('/')
        ));
        assert!(folder_or_parent_matches(
            "Archivio",
            "Archivio/2019/Q1",
            Some('/')
        ));
        assert!(folder_or_parent_matches(
            "Archivio",
            "Archivio.2019",
            Some('.')
        ));
        assert!(!folder_or_parent_matches(
            "Archivio",
            "Archivio.2019",
            Some('/')
        ));
        assert!(!folder_or_parent_matches(
            "Archivio",
            "Archivio 2019",
            Some('/')
        ));
        assert!(!folder_or_parent_matches(
            "Archivio",
            "Vecchio/Archivio",
            Some('/')
        ));
        assert!(folder_or_parent_matches(
            "*/Spam",
            "Clienti/Spam/2020",
            Some('/')
        ));
        assert!(!folder_or_parent_matches("Archivio", "Archivio/2019", None));
    }

    #[test]
    fn folder_globs() {
        assert!(folder_matches("Trash", "Trash"));
        assert!(!folder_matches("Trash", "Trash/old"));
        assert!(folder_matches("Archivio*", "Archivio/2019"));
        assert!(folder_matches("*/Spam", "Clienti/Spam"));
        assert!(folder_matches("inbox", "INBOX"));
        assert!(!folder_matches("Sent", "sent"));
    }
}
