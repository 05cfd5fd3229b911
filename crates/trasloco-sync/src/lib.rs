//! Synchronise one mailbox from a source IMAP server to a target IMAP server.
//!
//! The decisions are the pure functions of `trasloco-core` (folder mapping, diff, identity,
//! flags); this crate is the thin I/O around them: list, select, fetch metadata, fetch bodies
//! in byte-bounded batches while the previous batch is being appended, record every copy in the
//! state store as soon as the target confirms it, propagate flag changes, verify bytes.
//!
//! A dropped connection ends the attempt; the mailbox is retried with back-off and resumes from
//! the state, so nothing is copied twice.
#![deny(missing_docs)]

mod budget;
mod folder;
mod mailbox;

pub use budget::{DEFAULT_BUDGET_BYTES, MemoryBudget};
pub use mailbox::{Options, Progress, Side, SideName, sync_mailbox};

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

#[cfg(test)]
mod tests {
    use super::folder_matches;

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
