//! A Gmail source shows one message in every folder that is one of its labels, and again in
//! `[Gmail]/All Mail` (and in Starred and Important when it is starred or important). Copied
//! folder by folder, a message with three labels would arrive three times. With `copy_once`
//! (the `gmail` source preset) and a source offering X-GM-EXT-1, each message is copied into
//! one folder only — the first of its folders in a fixed order: INBOX, Sent, Drafts, the
//! user's labels in listing order, Archive, Spam, Trash, All Mail, Starred, Important — and
//! counted in the others under the rule `copied-under-another-label`. A folder that takes none
//! of the messages it shows (Starred, Important) is not made on the target at all.
//!
//! The folder that takes a message is decided by the source's labels alone, never by which
//! folders a run happens to copy: a phase that copies All Mail before the INBOX, a resumed run
//! and a verification all reach the same answer without anything stored. Folders a rule
//! leaves out for good (excluded, not mail) never take a message, so nothing is lost to them;
//! deferred folders do, as a later phase copies them. A message that arrives on the source
//! after the run looked (unknown to the map) is copied where it is found: never lost.

use crate::mailbox::Options;
use crate::source::SourceConn;
use std::collections::HashMap;
use trasloco_core::folder_map::{Folder, FolderMapping, Role};
use trasloco_imap::{Client, Error};

/// The rule under which a message shown in several folders is counted in all but one.
pub const LABEL_ELSEWHERE: &str = "copied-under-another-label";

/// Which folder takes each message of a Gmail source.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    /// X-GM-MSGID → the folder that takes it.
    by_id: HashMap<u64, usize>,
    folders: Vec<String>,
    /// Folders that show messages and take none of them (Starred, Important, an All Mail
    /// with nothing archived): not created on the target, all their messages counted under
    /// the rule.
    empty_handed: Vec<String>,
}

impl Owners {
    /// Whether the message with this id is copied into another folder than `folder`.
    pub(crate) fn elsewhere(&self, folder: &str, id: u64) -> bool {
        self.by_id
            .get(&id)
            .is_some_and(|&i| self.folders[i] != folder)
    }

    /// Whether the folder shows messages and takes none of them.
    pub(crate) fn takes_none(&self, folder: &str) -> bool {
        self.empty_handed.iter().any(|f| f == folder)
    }
}

/// A folder's place in the order that decides where a message goes: real places first, then
/// the places a message is only shown in.
fn rank(role: Option<Role>) -> u8 {
    match role {
        Some(Role::Inbox) => 0,
        Some(Role::Sent) => 1,
        Some(Role::Drafts) => 2,
        None => 3,
        Some(Role::Archive) => 4,
        Some(Role::Junk) => 5,
        Some(Role::Trash) => 6,
        Some(Role::All) => 7,
        Some(Role::Flagged) => 8,
        Some(Role::Important) => 9,
    }
}

/// The owners map of a mailbox whose source is copied once and offers X-GM-EXT-1; `None`
/// otherwise (a source without it is copied folder by folder, with a warning).
pub(crate) async fn for_source(
    src: &mut SourceConn,
    folders: &[Folder],
    mappings: &[FolderMapping],
    opts: &Options,
) -> Result<Option<Owners>, Error> {
    if !opts.copy_once {
        return Ok(None);
    }
    let Some(client) = src.client() else {
        return Ok(None);
    };
    if !client.has_cap("X-GM-EXT-1") {
        tracing::warn!(
            "source {}: no X-GM-EXT-1, so a message shown in several folders cannot be told apart and is copied into each",
            client.host()
        );
        return Ok(None);
    }
    // Folders left out for good never take a message; deferred ones do (a later phase
    // copies them).
    // The source's own role of a folder (its attribute, else its name), whatever the target has.
    let role = |name: &str| {
        folders
            .iter()
            .find(|f| f.name == name)
            .and_then(Folder::role)
    };
    let candidates: Vec<(&FolderMapping, Option<Role>)> = mappings
        .iter()
        .filter(|m| {
            m.selectable
                && matches!(
                    opts.folder_rule(&m.source, m.role, m.delimiter),
                    None | Some("folder-deferred")
                )
        })
        .map(|m| (m, role(&m.source)))
        .collect();
    owners(client, candidates).await.map(Some)
}

/// The folders `candidates` (those a campaign copies now or in a later phase, with the
/// source's role of each), in the order that decides, each read once for its messages'
/// X-GM-MSGID on `client` (left with the last of them selected).
async fn owners(
    client: &mut Client,
    mut candidates: Vec<(&FolderMapping, Option<Role>)>,
) -> Result<Owners, Error> {
    // Stable: the user's labels keep the listing order.
    candidates.sort_by_key(|(_, role)| rank(*role));
    let mut owners = Owners::default();
    for (m, _) in candidates {
        let sel = client.select(&m.source, true).await?;
        let i = owners.folders.len();
        owners.folders.push(m.source.clone());
        if sel.exists == 0 {
            continue;
        }
        let mut took = false;
        for (_, id) in client.fetch_gmail_ids(None).await? {
            took |= *owners.by_id.entry(id).or_insert(i) == i;
        }
        if !took {
            owners.empty_handed.push(m.source.clone());
        }
    }
    Ok(owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inbox_and_real_labels_come_before_the_views() {
        let mut v = [
            ("[Gmail]/All Mail", Some(Role::All)),
            ("[Gmail]/Starred", Some(Role::Flagged)),
            ("Progetti", None),
            ("INBOX", Some(Role::Inbox)),
        ];
        v.sort_by_key(|(_, role)| rank(*role));
        let names: Vec<&str> = v.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["INBOX", "Progetti", "[Gmail]/All Mail", "[Gmail]/Starred"]
        );
        let o = Owners {
            by_id: [(7, 1)].into_iter().collect(),
            folders: vec!["INBOX".into(), "Progetti".into()],
            empty_handed: vec!["[Gmail]/Starred".into()],
        };
        assert!(o.takes_none("[Gmail]/Starred") && !o.takes_none("Progetti"));
        assert!(o.elsewhere("[Gmail]/All Mail", 7));
        assert!(!o.elsewhere("Progetti", 7));
        assert!(
            !o.elsewhere("[Gmail]/All Mail", 8),
            "unknown ids are copied"
        );
    }
}
