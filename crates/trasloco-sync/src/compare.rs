//! After the fact: compare a source mailbox with its target, folder by folder, and account for
//! every source message — on the target (matched with multiplicity by content identity, or
//! with `full` by SHA-256 of the bytes), left out by a named rule (folder rule, phase, quota
//! archive — the archived ones looked up in the archive's manifest), or missing. Read-only on
//! both sides. Headers and bodies are read one listing window at a time and reduced to 32-byte
//! keys, so a folder costs its listing and one key per target message.

use crate::folder::message_id;
use crate::mailbox::{
    OnSide, Options, SHARED_RULE, Side, SideName, SyncError, connect, shared_folders,
};
use crate::source::{Source, SourceConn, imap_folders};
use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use trasloco_core::folder_map::{self, MapOptions};
use trasloco_core::identity::identity;
use trasloco_imap::{Client, FetchedMeta};

/// The bucket of source messages that went to a quota archive.
pub const ARCHIVED: &str = "archived";

/// A source message not found where it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingMessage {
    /// Source folder.
    pub folder: String,
    /// Source UID.
    pub uid: u32,
    /// `Date:` header as written.
    pub date: String,
    /// `From:` header as written.
    pub from: String,
    /// `Subject:` header as written.
    pub subject: String,
    /// Size in bytes.
    pub size: u64,
    /// Where it should have been: `target`, or `archive` for a quota archive.
    pub expected_in: String,
}

/// A source message whose copy on the target has other bytes: the target rewrote it when it
/// was stored (found by a run's read-back and remembered in the state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlteredMessage {
    /// Source folder.
    pub folder: String,
    /// Source UID.
    pub uid: u32,
    /// Target UID of the altered copy.
    pub target_uid: u32,
    /// Byte offset of the first difference, when known.
    pub first_difference: Option<u64>,
    /// The server holding the copy.
    pub server: String,
}

/// One folder compared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FolderComparison {
    /// Source folder.
    pub source: String,
    /// Target folder.
    pub target: String,
    /// Messages in the source folder.
    pub source_messages: u64,
    /// Messages in the target folder.
    pub target_messages: u64,
    /// Source messages found on the target.
    pub matched: u64,
    /// Source messages left out by a rule (or archived, under `archived`): rule → count.
    pub skipped: BTreeMap<String, u64>,
    /// Source messages missing.
    pub missing: Vec<MissingMessage>,
    /// Source messages whose copy the target altered.
    pub altered: Vec<AlteredMessage>,
    /// Target messages beyond the source's count of the same message: duplicates.
    pub duplicates: u64,
    /// Target messages that match no source message of the folder (mail delivered to the new
    /// server, or put there by someone).
    pub without_source: u64,
}

impl FolderComparison {
    /// Matched + altered + skipped + missing: always the source count.
    pub fn accounted(&self) -> u64 {
        self.matched
            + self.altered.len() as u64
            + self.skipped.values().sum::<u64>()
            + self.missing.len() as u64
    }
}

/// A quota archive holding the older part of the mailbox.
#[derive(Debug, Clone)]
pub struct ArchivePart {
    /// The archive's directory.
    pub root: PathBuf,
    /// Messages dated before this (Unix seconds) belong there.
    pub before: i64,
}

fn header_value(block: &[u8], name: &str) -> String {
    trasloco_archive::dates::header(block, name)
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Compare one mailbox. `opts` carries the folder rules, renames and the date rules that
/// applied (phases); `archive` the quota archive, if any.
pub async fn compare_mailbox(
    source: &Source,
    target: &Side,
    state: &trasloco_state::State,
    opts: &Options,
    archive: Option<&ArchivePart>,
    full: bool,
) -> Result<Vec<FolderComparison>, crate::Failure> {
    let (sl, tl) = (source.label(), target.label());
    let owner = state
        .find_mailbox(&sl, &tl)
        .await
        .map_err(|e| SyncError::from(e).describe(&sl, &tl))?;
    let result = async {
        let mut src = SourceConn::open(source, state, owner, false, true)
            .await
            .on(SideName::Source)?;
        let mut tgt = connect(target, SideName::Target).await?;
        let known = Known { state, owner };
        let out = compare_folders(&mut src, &mut tgt, opts, archive, full, known).await;
        tokio::join!(src.logout(), tgt.logout());
        out
    }
    .await;
    result.map_err(|e| e.describe(&sl, &tl))
}

/// Where each folder of an IMAP source goes on the target, as a run maps it (roles, renames,
/// the target's hierarchy): for what refers to folders by name, such as users' filters.
pub async fn folder_mappings(
    source: &Side,
    target: &Side,
    opts: &Options,
) -> Result<Vec<folder_map::FolderMapping>, crate::Failure> {
    let (sl, tl) = (source.label(), target.label());
    let result = async {
        let (src, tgt) = tokio::join!(
            connect(source, SideName::Source),
            connect(target, SideName::Target)
        );
        let (mut src, mut tgt) = (src?, tgt?);
        let (sf, tf) = tokio::join!(imap_folders(&mut src), imap_folders(&mut tgt));
        tokio::join!(src.logout(), tgt.logout());
        let (src_folders, _, _) = sf.on(SideName::Source)?;
        let (tgt_folders, _, delim) = tf.on(SideName::Target)?;
        let map_opts = MapOptions {
            renames: opts.renames.clone(),
        };
        Ok::<_, SyncError>(folder_map::map_folders(
            &src_folders,
            &tgt_folders,
            delim,
            &map_opts,
        ))
    }
    .await;
    result.map_err(|e| e.describe(&sl, &tl))
}

/// What the state knows of the mailbox: the copies the target altered.
struct Known<'a> {
    state: &'a trasloco_state::State,
    owner: Option<i64>,
}

impl Known<'_> {
    /// The altered copies recorded for a folder, by source UID, while its UIDVALIDITY holds.
    async fn altered(
        &self,
        folder: &str,
        uid_validity: u32,
    ) -> Result<HashMap<u32, trasloco_state::Altered>, SyncError> {
        let Some(mb) = self.owner else {
            return Ok(HashMap::new());
        };
        let Some(f) = self.state.find_folder(mb, folder).await? else {
            return Ok(HashMap::new());
        };
        if f.source_uid_validity != Some(uid_validity) {
            return Ok(HashMap::new());
        }
        let rows = self.state.altered_between(f.id, 1, u32::MAX).await?;
        Ok(rows.into_iter().map(|a| (a.source_uid, a)).collect())
    }
}

async fn compare_folders(
    src: &mut SourceConn,
    tgt: &mut Client,
    opts: &Options,
    archive: Option<&ArchivePart>,
    full: bool,
    known: Known<'_>,
) -> Result<Vec<FolderComparison>, SyncError> {
    let src_folders = src.folders().await.on(SideName::Source)?;
    let (tgt_folders, _, delim) = imap_folders(tgt).await.on(SideName::Target)?;
    let map_opts = MapOptions {
        renames: opts.renames.clone(),
    };
    let mut mappings = folder_map::map_folders(&src_folders, &tgt_folders, delim, &map_opts);
    let owners = crate::labels::for_source(src, &src_folders, &mappings, opts)
        .await
        .on(SideName::Source)?;
    let shared = shared_folders(src, &mappings, opts)
        .await
        .on(SideName::Source)?;
    mappings.retain(|m| m.selectable && opts.selected(&m.source, m.role));
    let tgt_names: HashSet<&str> = tgt_folders.iter().map(|f| f.name.as_str()).collect();
    let manifest = match archive {
        Some(a) => trasloco_archive::manifest::load(&a.root)
            .map_err(|e| SyncError::Imap {
                side: SideName::Target,
                error: trasloco_imap::Error::new(trasloco_imap::ErrorKind::Refused, e.message),
            })?
            .map(|m| m.recorded_ids())
            .unwrap_or_default(),
        None => HashMap::new(),
    };
    let mut out = Vec::new();
    for m in &mappings {
        let mut fc = FolderComparison {
            source: m.source.clone(),
            target: m.target.clone(),
            ..Default::default()
        };
        let (uv, meta) = src.select_and_list(&m.source).await.on(SideName::Source)?;
        fc.source_messages = meta.len() as u64;
        let rule = opts
            .folder_rule(&m.source, m.role, m.delimiter)
            .or_else(|| shared.contains(&m.source).then_some(SHARED_RULE))
            .or_else(|| {
                owners
                    .as_ref()
                    .is_some_and(|o| o.takes_none(&m.source))
                    .then_some(crate::labels::LABEL_ELSEWHERE)
            });
        if let Some(rule) = rule {
            if !meta.is_empty() {
                fc.skipped.insert(rule.into(), meta.len() as u64);
            }
            out.push(fc);
            continue;
        }
        // The target side first, as a multiset of 32-byte keys. Its headers (or bodies) are
        // fetched a listing window at a time and reduced to keys at once, so what a folder
        // costs in memory is its UIDs and keys, not its headers.
        let window = opts.listing_window.max(1);
        let mut on_target: HashMap<[u8; 32], u32> = HashMap::new();
        // A target that merges by Message-ID (Gmail) holds one message for all the source's
        // messages with its Message-ID: their Message-IDs on the target.
        let mut target_ids: HashSet<String> = HashSet::new();
        let merges = opts.merges_by_message_id;
        let mut altered = known.altered(&m.source, uv).await?;
        if tgt_names.contains(m.target.as_str()) {
            let (_, tmeta) = tgt
                .select_and_list(&m.target, true, false)
                .await
                .on(SideName::Target)?;
            fc.target_messages = tmeta.len() as u64;
            let tuids: Vec<u32> = tmeta.into_iter().map(|x| x.uid).collect();
            // An altered copy counts as long as it is there.
            if !altered.is_empty() {
                let there: HashSet<u32> = tuids.iter().copied().collect();
                altered.retain(|_, a| there.contains(&a.target_uid));
            }
            for chunk in tuids.chunks(window) {
                if full {
                    tgt.fetch_bodies(chunk, &mut |_, b: Bytes| {
                        *on_target.entry(Sha256::digest(&b).into()).or_default() += 1;
                        if let (true, Some(id)) = (merges, message_id(&b)) {
                            target_ids.insert(id);
                        }
                    })
                    .await
                    .on(SideName::Target)?;
                } else {
                    for (_, size, h) in tgt
                        .fetch_identity_headers(chunk)
                        .await
                        .on(SideName::Target)?
                    {
                        *on_target.entry(identity(&h, size).0).or_default() += 1;
                        if let (true, Some(id)) = (merges, message_id(&h)) {
                            target_ids.insert(id);
                        }
                    }
                }
            }
        } else {
            altered.clear();
        }
        let archive_folder = m.source.replace(
            src_folders
                .iter()
                .find(|f| f.name == m.source)
                .and_then(|f| f.delimiter)
                .unwrap_or('/'),
            "/",
        );
        // The source's keys, to tell a target message left over a duplicate of one of them or
        // a message with no source counterpart.
        let mut seen_keys: std::collections::HashSet<[u8; 32]> = HashSet::new();
        let mut altered_apart = 0u64;
        // Then the source, a window at a time: each message matched, left out by a rule, or
        // missing (named by its headers).
        for chunk in meta.chunks(window) {
            let uids: Vec<u32> = chunk.iter().map(|x| x.uid).collect();
            // By content identity the headers are the keys; with `full` the keys are the
            // bodies' SHA-256 and headers are fetched only to name what is missing.
            let mut heads = if full {
                Vec::new()
            } else {
                src.identity_headers(&uids).await.on(SideName::Source)?
            };
            let source_keys: HashMap<u32, [u8; 32]> = if full {
                let mut keys = HashMap::new();
                src.bodies(&uids, &mut |u, r| {
                    if let Ok(b) = r {
                        keys.insert(u, Sha256::digest(&b).into());
                    }
                })
                .await
                .on(SideName::Source)?;
                keys
            } else {
                heads
                    .iter()
                    .map(|(u, size, h)| (*u, identity(h, *size).0))
                    .collect()
            };
            seen_keys.extend(source_keys.values().copied());
            let mut missing: Vec<(&FetchedMeta, &str)> = Vec::new();
            for x in chunk {
                let found = source_keys
                    .get(&x.uid)
                    .and_then(|k| on_target.get_mut(k))
                    .filter(|n| **n > 0);
                if let Some(a) = altered.get(&x.uid) {
                    // Its copy may still match by content identity (a NUL rewritten keeps the
                    // size): it is that copy, not another message's.
                    match found {
                        Some(n) => *n -= 1,
                        // Its copy is there under other bytes: not a message of its own.
                        None => altered_apart += 1,
                    }
                    fc.altered.push(AlteredMessage {
                        folder: m.source.clone(),
                        uid: x.uid,
                        target_uid: a.target_uid,
                        first_difference: a.first_difference,
                        server: a.server.clone(),
                    });
                    continue;
                }
                if let Some(n) = found {
                    *n -= 1;
                    fc.matched += 1;
                    continue;
                }
                let date = x
                    .internal_date
                    .as_deref()
                    .and_then(trasloco_archive::dates::parse_imap)
                    .map(|t| t.timestamp());
                if let Some(a) = archive
                    && date.is_some_and(|d| d < a.before)
                {
                    let id = format!("{uv}:{}", x.uid);
                    if manifest
                        .get(&archive_folder)
                        .is_some_and(|ids| ids.contains(&id))
                    {
                        *fc.skipped.entry(ARCHIVED.into()).or_default() += 1;
                        continue;
                    }
                    missing.push((x, "archive"));
                } else if let Some(rule) = opts.date_rule(x.internal_date.as_deref()) {
                    *fc.skipped.entry(rule.to_string()).or_default() += 1;
                } else {
                    missing.push((x, "target"));
                }
            }
            // A Gmail source's message copied into another of its folders.
            if let (Some(owners), false) = (&owners, missing.is_empty())
                && let Some(c) = src.client()
            {
                let uids: Vec<u32> = missing.iter().map(|(x, _)| x.uid).collect();
                let ids: HashMap<u32, u64> = c
                    .fetch_gmail_ids(Some(&uids))
                    .await
                    .on(SideName::Source)?
                    .into_iter()
                    .collect();
                missing.retain(|(x, _)| {
                    let elsewhere = ids
                        .get(&x.uid)
                        .is_some_and(|&id| owners.elsewhere(&m.source, id));
                    if elsewhere {
                        *fc.skipped
                            .entry(crate::labels::LABEL_ELSEWHERE.into())
                            .or_default() += 1;
                    }
                    !elsewhere
                });
            }
            if full && !missing.is_empty() {
                let uids: Vec<u32> = missing.iter().map(|(x, _)| x.uid).collect();
                heads = src.identity_headers(&uids).await.on(SideName::Source)?;
            }
            let head_of: HashMap<u32, &Bytes> = heads.iter().map(|(u, _, h)| (*u, h)).collect();
            if !target_ids.is_empty() {
                missing.retain(|(x, expected_in)| {
                    let merged = *expected_in == "target"
                        && head_of
                            .get(&x.uid)
                            .and_then(|h| message_id(h))
                            .is_some_and(|id| target_ids.contains(&id));
                    fc.matched += u64::from(merged);
                    !merged
                });
            }
            for (x, expected_in) in missing {
                let h = head_of.get(&x.uid).map(|h| h.as_ref()).unwrap_or(&[][..]);
                fc.missing.push(MissingMessage {
                    folder: m.source.clone(),
                    uid: x.uid,
                    date: header_value(h, "Date"),
                    from: header_value(h, "From"),
                    subject: header_value(h, "Subject"),
                    size: x.size,
                    expected_in: expected_in.into(),
                });
            }
        }
        // What the target holds beyond the source: duplicates, and messages of its own.
        for (k, n) in &on_target {
            if *n == 0 {
                continue;
            }
            if seen_keys.contains(k) {
                fc.duplicates += u64::from(*n);
            } else {
                fc.without_source += u64::from(*n);
            }
        }
        // An altered copy whose key matched nothing is the source's copy all the same.
        fc.without_source = fc.without_source.saturating_sub(altered_apart);
        out.push(fc);
    }
    Ok(out)
}
