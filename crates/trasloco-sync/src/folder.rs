//! One folder: list both sides, diff, copy in overlapped batches, update flags, verify.

use crate::appends::Appends;
use crate::budget::Reservation;
use crate::evidence::{Before, EvidenceLine, PecEvidence, Sniff};
use crate::mailbox::{OnSide, Options, Progress, SideName, SyncError};
use crate::source::SourceConn;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;
use tokio::sync::mpsc;
use trasloco_core::accounting::{AlteredCopy, FolderReport, MessageError};
use trasloco_core::diff::{self, IdentityPool, SourceMsg, TargetMsg};
use trasloco_core::flags::{self, FlagSet, Permanent, is_keyword};
use trasloco_core::folder_map::FolderMapping;
use trasloco_core::identity::{IdentityKey, identity, loose_identity, rewritten_alike};
use trasloco_imap::{
    AppendMsg, AppendOutcome, AppendStart, Client, FetchedMeta, Listing, PendingAppend, UidWindow,
};
use trasloco_state::{Altered, AppendLine, Record, State};

const MAX_LISTED_ERRORS: usize = 100;

pub(crate) struct FolderCtx<'a> {
    pub mapping: &'a FolderMapping,
    /// Whether the target folder exists (always true outside dry runs).
    pub target_exists: bool,
    /// The mailbox's row in the state. In a dry run only an existing one, read and never
    /// written.
    pub mailbox_id: Option<i64>,
    pub state: &'a State,
    pub opts: &'a Options,
    pub progress: &'a dyn Progress,
    /// The mailbox's APPENDs, answered or not, over all attempts.
    pub appends: &'a Appends,
    /// The target account (`user@host`), named where a copy turns out altered.
    pub target_label: &'a str,
    /// A Gmail source copied once: which folder takes each message.
    pub owners: Option<&'a crate::labels::Owners>,
    /// The target account's room under its daily upload cap, when it has one.
    pub daily: Option<&'a crate::daily::DailyCap>,
}

/// Messages above this size are streamed from source to target instead of batched.
const STREAM_ABOVE: u64 = 1024 * 1024;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Short, countable form of a server refusal: the response code when there is one.
fn refusal_key(describe: &str) -> String {
    match describe
        .split_once('[')
        .and_then(|(_, r)| r.split_once(']'))
    {
        Some((code, _)) => format!(
            "target refused: [{}]",
            code.split_whitespace().next().unwrap_or(code)
        ),
        None => format!(
            "target refused: {}",
            describe.chars().take(80).collect::<String>()
        ),
    }
}

/// A refusal with what it means when the server's words say little.
fn explain_refusal(why: String) -> String {
    if why.contains("Command Argument Error. 11") {
        format!(
            "{why} (Exchange Online's answer to a message over the mailbox's size limit, a line that is too long, a full mailbox or a keyword it does not take)"
        )
    } else {
        why
    }
}

pub(crate) fn fail(report: &mut FolderReport, uid: u32, size: u64, key: String, reason: String) {
    report.buckets.fail(key);
    if report.errors.len() < MAX_LISTED_ERRORS {
        report.errors.push(MessageError {
            uid,
            size,
            reason,
            place: None,
        });
    }
}

/// Source message data needed to copy it.
struct Listed {
    size: u64,
    flags: FlagSet,
    internal_date: Option<String>,
}

/// What the target folder's listing gave: its first listing window's messages with their
/// flags (the whole folder when it fits one window), and what the rest is asked for.
struct Targets {
    /// The listed messages, in UID order.
    listed: Vec<TargetMsg>,
    /// `None`: `listed` is the whole folder. `Some(u)`: it holds every message up to UID `u`,
    /// and the flags of later ones are asked for when a window needs them.
    listed_to: Option<u32>,
    /// UIDNEXT when the folder was opened: UIDs from here on are this run's own copies.
    uid_next: u32,
}

/// A listed target message.
fn target_msg(t: FetchedMeta) -> TargetMsg {
    TargetMsg {
        uid: t.uid,
        flags: flags::from_server(t.flags.iter().map(String::as_str)),
    }
}

/// (UID, content identity) of fetched identity headers.
fn identities(headers: &[(u32, u64, Bytes)]) -> impl Iterator<Item = (u32, IdentityKey)> + '_ {
    headers
        .iter()
        .map(|(uid, size, h)| (*uid, identity(h, *size)))
}

impl Targets {
    fn new(sel: &trasloco_imap::Selected, listing: Listing) -> Targets {
        let first_to = listing.first_window().to;
        let (listed, listed_to) = match listing.first {
            Some(first) => (first.into_iter().map(target_msg).collect(), first_to),
            // Only cut into windows: every flag is asked for when a window needs it.
            None => (Vec::new(), Some(0)),
        };
        Targets {
            listed,
            listed_to,
            uid_next: sel.uid_next.unwrap_or(u32::MAX),
        }
    }

    /// A target folder that does not exist (a dry run).
    fn none() -> Targets {
        Targets {
            listed: Vec::new(),
            listed_to: None,
            uid_next: u32::MAX,
        }
    }

    /// The target messages among `uids` that still exist, with their flags; there may be
    /// others besides (a listing held whole is lent as it is), so look them up by UID.
    async fn flags_of(
        &self,
        tgt: &mut Client,
        uids: &[u32],
    ) -> Result<Cow<'_, [TargetMsg]>, SyncError> {
        let Some(to) = self.listed_to else {
            return Ok(Cow::Borrowed(&self.listed));
        };
        let mut wanted = uids.to_vec();
        wanted.sort_unstable();
        let known = |u: &u32| wanted.binary_search(u).is_ok();
        let mut out: Vec<TargetMsg> = self
            .listed
            .iter()
            .filter(|t| known(&t.uid))
            .cloned()
            .collect();
        let later: Vec<u32> = wanted.iter().copied().filter(|&u| u > to).collect();
        if !later.is_empty() {
            let fetched = tgt.fetch_flags(&later).await.on(SideName::Target)?;
            // An unsolicited FETCH (another session changed a flag) is not an answer.
            out.extend(
                fetched
                    .into_iter()
                    .filter(|t| known(&t.uid))
                    .map(target_msg),
            );
        }
        Ok(Cow::Owned(out))
    }

    /// Every target UID there was when the folder was opened.
    async fn uids(&self, tgt: &mut Client) -> Result<Vec<u32>, SyncError> {
        let mut all = match self.listed_to {
            None => self.listed.iter().map(|t| t.uid).collect(),
            Some(_) => tgt.fetch_uids().await.on(SideName::Target)?,
        };
        // A copy made by this run in an earlier window is never matched to another source
        // message, even where the server gave no APPENDUID to record it by.
        all.retain(|&u| u < self.uid_next);
        Ok(all)
    }
}

/// Identity headers are fetched this many target messages at a time.
const IDENTITY_CHUNK: usize = 2000;

/// The target messages no recorded copy claims, by content identity: what a source message
/// without a valid mapping may already have on the target (a lost state, a first contact with
/// a non-empty target, a run killed between APPEND and record).
async fn identity_pool(
    ctx: &FolderCtx<'_>,
    tgt: &mut Client,
    targets: &Targets,
    folder_id: Option<i64>,
) -> Result<IdentityPool, SyncError> {
    let all = targets.uids(tgt).await?;
    if all.is_empty() {
        return Ok(IdentityPool::default());
    }
    let claimed = match folder_id {
        Some(fid) => ctx.state.claimed_target_uids(fid).await?,
        None => Vec::new(),
    };
    let unclaimed: Vec<u32> = all
        .into_iter()
        .filter(|u| claimed.binary_search(u).is_err())
        .collect();
    drop(claimed);
    // With read-back on, the pool also knows each message by its headers alone, to find a copy
    // the target rewrote (its size changed) instead of appending a second one.
    let loose = ctx.opts.verify && !ctx.opts.dry_run;
    let mut keys = Vec::with_capacity(unclaimed.len());
    let mut by_headers = Vec::new();
    for chunk in unclaimed.chunks(IDENTITY_CHUNK) {
        let headers = tgt
            .fetch_identity_headers(chunk)
            .await
            .on(SideName::Target)?;
        for (uid, size, h) in &headers {
            let key = identity(h, *size);
            keys.push((*uid, key));
            if loose {
                by_headers.push((*uid, *size, key, loose_identity(h)));
            }
        }
    }
    let mut pool = IdentityPool::new(keys);
    for (uid, size, strict, by_head) in by_headers {
        pool.add_loose(uid, size, strict, by_head);
    }
    Ok(pool)
}

/// `tgts[0]` lists, matches and updates flags; every connection in `tgts` appends. The folder
/// is listed and synced one window of messages at a time (`Options::listing_window`), so its
/// size does not decide the memory it takes; each window's copies are handed to `hand_off`
/// to be read back while the next window is copied.
pub(crate) async fn sync_folder(
    ctx: &FolderCtx<'_>,
    src: &mut SourceConn,
    tgts: &mut [Client],
    report: &mut FolderReport,
    hand_off: &mut (dyn FnMut(Vec<Copied>, u32) + Send),
) -> Result<(), SyncError> {
    let started = Instant::now();
    let m = ctx.mapping;
    let opts = ctx.opts;
    let window = opts.listing_window;
    // A dry run reads what the state knows (so that it says what a run would really do,
    // pending flag changes included) and writes nothing.
    let recorded = match ctx.mailbox_id {
        Some(mb) if opts.dry_run => ctx.state.find_folder(mb, &m.source).await?,
        Some(mb) => Some(ctx.state.folder(mb, &m.source).await?),
        None => None,
    };
    // A folder that had more than a window's worth of copies last time will span several
    // windows again: it is cut into windows first and then listed window by window, so its
    // listing is not read twice (whole with the SELECT, then again by window).
    let large = match &recorded {
        Some(fs) => ctx.state.recorded_more_than(fs.id, window as u64).await?,
        None => false,
    };

    // Both sides are listed at once, each with its select and fetch in one round trip. The
    // source is opened with EXAMINE, so nothing on the old server changes (not even \Recent).
    let tgt = &mut tgts[0];
    let (source_side, target_side) = tokio::join!(
        src.select_and_list_window(&m.source, window, large),
        async {
            if ctx.target_exists {
                let listed =
                    tgt.select_and_list_window(&m.target, opts.dry_run, false, window, large);
                Some(listed.await)
            } else {
                None
            }
        }
    );
    let (source_uv, listing) = source_side.on(SideName::Source)?;
    let target_side = target_side.transpose().on(SideName::Target)?;
    let (tsel, targets) = match target_side {
        Some((tsel, tl)) => {
            let targets = Targets::new(&tsel, tl);
            (Some(tsel), targets)
        }
        None => (None, Targets::none()),
    };
    // A dry run opens the target read-only, and a read-only folder offers no permanent flags
    // (Dovecot answers EXAMINE with `PERMANENTFLAGS ()`): it assumes the target takes them all.
    let mut permanent = match &tsel {
        Some(_) if opts.dry_run => Permanent::anything(),
        Some(t) => Permanent::from_list(
            t.permanent_flags
                .as_ref()
                .map(|v| v.iter().map(String::as_str)),
        ),
        None => Permanent::anything(),
    };
    for f in &opts.never_flags {
        if f.contains('*') {
            permanent.never_like.push(f.clone());
        } else {
            permanent.never.insert(f);
        }
    }

    // State: the UID mapping is only valid for the UIDVALIDITY pair it was recorded under.
    let folder_id = match (recorded, &tsel) {
        (Some(fs), Some(tsel)) if opts.dry_run => {
            let same = fs.source_uid_validity == Some(source_uv)
                && fs.target_uid_validity == Some(tsel.uid_validity)
                && fs.target_name.as_deref() == Some(m.target.as_str());
            same.then_some(fs.id)
        }
        (Some(fs), Some(tsel)) => {
            let reset = ctx
                .state
                .bind_folder(&fs, &m.target, source_uv, tsel.uid_validity)
                .await?;
            if reset {
                tracing::info!(
                    "{}: UIDVALIDITY or target changed; reconciling by content identity",
                    m.source
                );
            }
            Some(fs.id)
        }
        _ => None,
    };

    if let (Some(fid), Some(_), true, false) = (folder_id, &tsel, opts.verify, opts.dry_run) {
        read_back_earlier(ctx, &mut tgts[0], fid, report).await?;
    }
    let mut win = Window {
        ctx,
        permanent: &permanent,
        folder_id,
        targets: &targets,
        pool: None,
        source_uv,
        target_uv: tsel.as_ref().map_or(0, |t| t.uid_validity),
    };
    let first_window = listing.first_window();
    let mut first = listing.first;
    for w in std::iter::once(first_window).chain(listing.rest) {
        let meta = match first.take() {
            Some(meta) => meta,
            None => {
                opts.go_on()?;
                src.list_window(w).await.on(SideName::Source)?
            }
        };
        let copied = win.sync(src, tgts, w, meta, report).await?;
        if !copied.is_empty() {
            hand_off(copied, tsel.as_ref().map_or(0, |t| t.uid_validity));
        }
    }
    // A stop cut the last window short: the folder ends here, its copies handed off.
    if report.buckets.total() < report.source_messages {
        opts.go_on()?;
    }
    if let (Some(fid), Some(tsel), false) = (folder_id, &tsel, opts.dry_run)
        && let Some(line) = ctx.appends.inherited(fid)
    {
        sweep(ctx, &mut tgts[0], &line, tsel.uid_validity, report).await?;
    }
    report.seconds += started.elapsed().as_secs_f64();
    Ok(())
}

/// Copies an earlier run (or attempt) made and never read back, because it ended first: read
/// back now, before the folder is compared, so that one the target altered is counted as such
/// and every copy is read back once.
async fn read_back_earlier(
    ctx: &FolderCtx<'_>,
    tgt: &mut Client,
    folder_id: i64,
    report: &mut FolderReport,
) -> Result<(), SyncError> {
    let rows = ctx.state.unchecked(folder_id).await?;
    if rows.is_empty() {
        return Ok(());
    }
    let tuids: Vec<u32> = rows.iter().map(|r| r.1).collect();
    let digests = target_digests(tgt, &tuids).await?;
    let found_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (mut read, mut altered) = (Vec::new(), Vec::new());
    for (source_uid, target_uid, _, sha256) in rows {
        // A copy no longer on the target is found missing by the comparison, and copied again.
        let Some(d) = digests.get(&target_uid) else {
            continue;
        };
        read.push(source_uid);
        let digest = hex::encode(d);
        if digest != sha256 {
            altered.push(Altered {
                source_uid,
                target_uid,
                target_sha256: digest,
                first_difference: None,
                server: ctx.target_label.to_string(),
                found_at: found_at.clone(),
            });
        }
    }
    report.verified += (read.len() - altered.len()) as u64;
    ctx.state.mark_altered(folder_id, &altered).await?;
    ctx.state.mark_checked(folder_id, &read).await?;
    Ok(())
}

/// Above a line a stopped run left (see [`crate::appends`]): a message no recorded copy
/// claims, with the bytes of a recorded copy of the folder, is a copy an unanswered APPEND
/// stored after that run's successor had copied the message again. It goes; the recorded
/// copy, same bytes, stays. The line goes once a sweep finds nothing and it has been watched
/// long enough.
async fn sweep(
    ctx: &FolderCtx<'_>,
    tgt: &mut Client,
    line: &AppendLine,
    target_uv: u32,
    report: &mut FolderReport,
) -> Result<(), SyncError> {
    let fid = line.folder_id;
    if line.target_uid_validity != target_uv {
        // The folder was made anew: its UIDs say nothing of the old one's.
        ctx.state.drop_append_line(fid).await?;
        return Ok(());
    }
    let above = tgt.fetch_uids_from(line.line).await.on(SideName::Target)?;
    let claimed = ctx.state.claimed_target_uids(fid).await?;
    let (ours, loose): (Vec<u32>, Vec<u32>) = above
        .into_iter()
        .partition(|u| claimed.binary_search(u).is_ok());
    drop(claimed);
    let mut late = Vec::new();
    if !loose.is_empty() && !ours.is_empty() {
        let heads = tgt
            .fetch_identity_headers(&[&loose[..], &ours[..]].concat())
            .await
            .on(SideName::Target)?;
        let keys: HashMap<u32, IdentityKey> = identities(&heads).collect();
        drop(heads);
        let mut recorded: HashMap<IdentityKey, Vec<u32>> = HashMap::new();
        for u in &ours {
            if let Some(k) = keys.get(u) {
                recorded.entry(*k).or_default().push(*u);
            }
        }
        let twins: Vec<(u32, &Vec<u32>)> = loose
            .iter()
            .filter_map(|u| Some((*u, recorded.get(keys.get(u)?)?)))
            .collect();
        if !twins.is_empty() {
            let mut wanted: Vec<u32> = twins
                .iter()
                .flat_map(|(u, t)| std::iter::once(*u).chain(t.iter().copied()))
                .collect();
            wanted.sort_unstable();
            wanted.dedup();
            let digests = target_digests(tgt, &wanted).await?;
            late = twins
                .into_iter()
                .filter(|(u, t)| {
                    digests
                        .get(u)
                        .is_some_and(|d| t.iter().any(|x| digests.get(x) == Some(d)))
                })
                .map(|(u, _)| u)
                .collect();
        }
    }
    if late.is_empty() {
        if crate::appends::settled(line, chrono::Utc::now()) {
            ctx.state.drop_append_line(fid).await?;
        }
        return Ok(());
    }
    let m = ctx.mapping;
    if tgt.uid_expunge(&late).await.on(SideName::Target)? {
        tracing::info!(
            "{}: removed {} copies an APPEND left unanswered by the run that started at {} stored late, beside the recorded copies with the same bytes",
            m.target,
            late.len(),
            line.since
        );
        report.late_removed += late.len() as u64;
    } else {
        tracing::warn!(
            "{}: {} copies an APPEND left unanswered stored late double recorded copies and stay: the target has no UIDPLUS to remove them one by one",
            m.target,
            late.len()
        );
    }
    Ok(())
}

/// What the windows of one folder share.
struct Window<'a> {
    ctx: &'a FolderCtx<'a>,
    permanent: &'a Permanent,
    /// The folder's row in the state (read only in a dry run), if it has one.
    folder_id: Option<i64>,
    targets: &'a Targets,
    /// Built when a window first has a message without a valid mapping.
    pool: Option<IdentityPool>,
    /// The source folder's UIDVALIDITY (archive ids are `UIDVALIDITY:UID`).
    source_uv: u32,
    /// The target folder's UIDVALIDITY (0 when it does not exist: a dry run).
    target_uv: u32,
}

/// Note an altered copy in the folder's report (the first 100 are listed).
pub(crate) fn note_altered(report: &mut FolderReport, copy: AlteredCopy) {
    report.buckets.altered += 1;
    if report.altered.len() < MAX_LISTED_ERRORS {
        report.altered.push(copy);
    }
}

fn altered_copy(a: &Altered, size: u64) -> AlteredCopy {
    AlteredCopy {
        uid: a.source_uid,
        target_uid: a.target_uid,
        size,
        server: a.server.clone(),
        first_difference: a.first_difference,
        target_sha256: a.target_sha256.clone(),
    }
}

/// The whole bytes of one message on each side, both folders already open.
async fn both_bodies(
    src: &mut SourceConn,
    tgt: &mut Client,
    source_uid: u32,
    target_uid: u32,
) -> Result<(Option<Bytes>, Option<Bytes>), SyncError> {
    let mut s = None;
    src.bodies(&[source_uid], &mut |_, r| s = r.ok())
        .await
        .on(SideName::Source)?;
    let mut t = None;
    tgt.fetch_bodies(&[target_uid], &mut |_, b| t = Some(b))
        .await
        .on(SideName::Target)?;
    Ok((s, t))
}

/// Where two copies of a message first differ (the shorter one's length when one is a prefix
/// of the other).
pub(crate) fn first_difference(a: &[u8], b: &[u8]) -> Option<u64> {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => Some(i as u64),
        None if a.len() != b.len() => Some(a.len().min(b.len()) as u64),
        None => None,
    }
}

/// Find the first differing byte of copies the read-back found altered, opening both folders
/// (a rare path: one message each, read whole).
pub(crate) async fn locate_differences(
    src: &mut SourceConn,
    tgt: &mut Client,
    mapping: &FolderMapping,
    found: &mut [AlteredCopy],
) -> Result<(), SyncError> {
    src.count(&mapping.source).await.on(SideName::Source)?;
    tgt.select(&mapping.target, true)
        .await
        .on(SideName::Target)?;
    for a in found {
        if let (Some(s), Some(t)) = both_bodies(src, tgt, a.uid, a.target_uid).await? {
            a.first_difference = first_difference(&s, &t);
        }
    }
    Ok(())
}

impl Window<'_> {
    /// Diff, match, update flags and copy the source messages of one listing window.
    async fn sync(
        &mut self,
        src: &mut SourceConn,
        tgts: &mut [Client],
        w: UidWindow,
        meta: Vec<FetchedMeta>,
        report: &mut FolderReport,
    ) -> Result<Vec<Copied>, SyncError> {
        let (ctx, permanent) = (self.ctx, self.permanent);
        let m = ctx.mapping;
        let opts = ctx.opts;
        let mut listed: HashMap<u32, Listed> = HashMap::with_capacity(meta.len());
        let mut source_msgs = Vec::with_capacity(meta.len());
        for x in meta {
            let f = flags::from_server(x.flags.iter().map(String::as_str));
            report.source_messages += 1;
            report.source_bytes += x.size;
            source_msgs.push(SourceMsg {
                uid: x.uid,
                size: x.size,
                flags: f.clone(),
            });
            listed.insert(
                x.uid,
                Listed {
                    size: x.size,
                    flags: f,
                    internal_date: x.internal_date,
                },
            );
        }

        let mapped = match self.folder_id {
            Some(fid) => {
                ctx.state
                    .mappings_between(fid, w.from, w.to.unwrap_or(u32::MAX))
                    .await?
            }
            None => Vec::new(),
        };
        let tuids: Vec<u32> = mapped.iter().map(|x| x.target_uid).collect();
        let target_msgs = self.targets.flags_of(&mut tgts[0], &tuids).await?;
        drop(tuids);
        let mut pass = diff::by_state(&source_msgs, &target_msgs, &mapped, permanent);
        drop((source_msgs, target_msgs));
        report.buckets.already_present += pass.present.len() as u64;
        // An archive's message that grew since it was copied (an mbox whose last message had
        // been cut, completed since) is copied again, and its shorter copy removed afterwards.
        let mut replaced: HashMap<u32, u32> = HashMap::new();
        if src.is_archive() {
            let sizes: HashMap<u32, u64> = mapped.iter().map(|x| (x.source_uid, x.size)).collect();
            pass.present.retain(|p| {
                let grown = sizes
                    .get(&p.source_uid)
                    .is_some_and(|&was| was != listed[&p.source_uid].size);
                if grown {
                    replaced.insert(p.source_uid, p.target_uid);
                }
                !grown
            });
            if !replaced.is_empty() {
                report.buckets.already_present -= replaced.len() as u64;
                pass.unmapped.extend(replaced.keys());
                pass.unmapped.sort_unstable();
            }
        }
        // A quota archive's cut that moved takes the copies of messages now behind it off the
        // target, once the archive holds them: only copies this tool made and recorded.
        let mut evicted: Vec<(u32, u32)> = Vec::new();
        if let (Some(ev), false) = (&opts.evict, opts.dry_run) {
            let folder = match m.delimiter {
                Some(d) if d != '/' => m.source.replace(d, "/"),
                _ => m.source.clone(),
            };
            let ours: HashMap<u32, bool> = mapped.iter().map(|x| (x.source_uid, x.ours)).collect();
            if let Some(ids) = ev.archived.get(&folder) {
                let uv = self.source_uv;
                pass.present.retain(|p| {
                    let behind = listed[&p.source_uid]
                        .internal_date
                        .as_deref()
                        .and_then(trasloco_archive::dates::parse_imap)
                        .is_some_and(|t| t.timestamp() < ev.before);
                    let go = behind
                        && ours.get(&p.source_uid) == Some(&true)
                        && ids.contains(&format!("{uv}:{}", p.source_uid));
                    if go {
                        evicted.push((p.source_uid, p.target_uid));
                    }
                    !go
                });
            }
            if !evicted.is_empty() {
                let tuids: Vec<u32> = evicted.iter().map(|(_, t)| *t).collect();
                if tgts[0].uid_expunge(&tuids).await.on(SideName::Target)? {
                    if let Some(fid) = self.folder_id {
                        let suids: Vec<u32> = evicted.iter().map(|(s, _)| *s).collect();
                        ctx.state.forget_copies(fid, &suids).await?;
                    }
                    report.buckets.already_present -= evicted.len() as u64;
                    *report.buckets.skipped.entry(ev.rule.clone()).or_default() +=
                        evicted.len() as u64;
                    report.evicted += evicted.len() as u64;
                } else {
                    tracing::warn!(
                        "{}: {} copies now in the quota archive stay on the target: it has no UIDPLUS to remove them one by one",
                        m.target,
                        evicted.len()
                    );
                }
            }
        }
        // Copies the target altered on an earlier run stay in their own bucket as long as they
        // are there: never "already present", never appended again.
        if let Some(fid) = self.folder_id {
            let known = ctx
                .state
                .altered_between(fid, w.from, w.to.unwrap_or(u32::MAX))
                .await?;
            if !known.is_empty() {
                let present: HashMap<u32, u32> = pass
                    .present
                    .iter()
                    .map(|p| (p.source_uid, p.target_uid))
                    .collect();
                let mut gone = Vec::new();
                for a in &known {
                    if present.get(&a.source_uid) == Some(&a.target_uid) {
                        report.buckets.already_present -= 1;
                        note_altered(report, altered_copy(a, listed[&a.source_uid].size));
                    } else {
                        gone.push(a.source_uid);
                    }
                }
                if !opts.dry_run {
                    ctx.state.forget_altered(fid, &gone).await?;
                }
            }
        }
        // Messages a date rule leaves out (a phase, a quota archive cut) are counted under the
        // rule and never looked for on the target.
        pass.unmapped.retain(
            |u| match opts.date_rule(listed[u].internal_date.as_deref()) {
                Some(rule) => {
                    report.buckets.skip(rule);
                    false
                }
                None => true,
            },
        );

        // A message a Gmail source shows in several folders is copied in one of them.
        if let (Some(owners), false) = (ctx.owners, pass.unmapped.is_empty())
            && let Some(c) = src.client()
        {
            let ids: HashMap<u32, u64> = c
                .fetch_gmail_ids(Some(&pass.unmapped))
                .await
                .on(SideName::Source)?
                .into_iter()
                .collect();
            pass.unmapped.retain(|u| {
                let elsewhere = ids
                    .get(u)
                    .is_some_and(|&id| owners.elsewhere(&m.source, id));
                if elsewhere {
                    report.buckets.skip(crate::labels::LABEL_ELSEWHERE);
                }
                !elsewhere
            });
        }

        // Identity pass only when it can match something.
        if !pass.unmapped.is_empty() && self.pool.is_none() {
            let pool = identity_pool(ctx, &mut tgts[0], self.targets, self.folder_id);
            self.pool = Some(pool.await?);
        }
        let (matched, to_copy, altered) = match self.pool.as_mut() {
            Some(pool) if !pass.unmapped.is_empty() && !pool.is_empty() => {
                let s = src
                    .identity_headers(&pass.unmapped)
                    .await
                    .on(SideName::Source)?;
                let skeys: Vec<_> = identities(&s).collect();
                let ip = pool.take(&skeys);
                let (mut matched, mut to_copy) = (ip.matched, ip.to_copy);
                let checks = opts.verify && !opts.dry_run;
                if checks && !to_copy.is_empty() && !pool.is_empty() {
                    let rewritten = find_rewritten(src, &mut tgts[0], pool, &s, &to_copy).await?;
                    to_copy.retain(|u| !rewritten.iter().any(|(s, _)| s == u));
                    matched.extend(rewritten);
                }
                // A match by content identity says nothing of the body: with verification on,
                // the target copy's bytes are compared with the source's before it is called
                // present, and twins (same identity, other bytes) are paired by their bytes.
                let mut altered = Vec::new();
                if checks && !matched.is_empty() {
                    let keys: HashMap<u32, IdentityKey> = skeys.iter().copied().collect();
                    let pairs = Pairs {
                        matched: &mut matched,
                        to_copy: &mut to_copy,
                        keys: &keys,
                    };
                    altered =
                        check_matches(src, &mut tgts[0], pairs, &listed, ctx.target_label).await?;
                }
                (matched, to_copy, altered)
            }
            _ => (Vec::new(), std::mem::take(&mut pass.unmapped), Vec::new()),
        };

        // Flag updates: mapped messages whose source flags changed, and newly matched ones
        // whose target flags differ from the source's.
        let mut store: Vec<(u32, Vec<String>)> = Vec::new();
        let mut synced: Vec<(u32, FlagSet)> = Vec::new();
        // A lookup table per window, not a scan per message.
        let recorded: HashMap<u32, &FlagSet> = mapped
            .iter()
            .map(|x| (x.source_uid, &x.synced_flags))
            .collect();
        for p in &pass.present {
            if let Some(f) = &p.set_flags {
                store.push((p.target_uid, f.to_vec()));
            }
            if p.set_flags.is_some() || recorded.get(&p.source_uid) != Some(&&p.synced_flags) {
                synced.push((p.source_uid, p.synced_flags.clone()));
            }
        }
        drop(recorded);
        let mut records = Vec::with_capacity(matched.len());
        // Asked for only when the identity pass matched something (a lost state, a first
        // contact with a non-empty target).
        let matched_targets = if matched.is_empty() {
            Cow::Borrowed(&[][..])
        } else {
            let tuids: Vec<u32> = matched.iter().map(|(_, t)| *t).collect();
            self.targets.flags_of(&mut tgts[0], &tuids).await?
        };
        let target_flags: HashMap<u32, &FlagSet> =
            matched_targets.iter().map(|t| (t.uid, &t.flags)).collect();
        for (s, t) in &matched {
            let l = &listed[s];
            let wanted = diff::initial_target_flags(&l.flags, permanent);
            if target_flags.get(t).copied() != Some(&wanted) {
                store.push((*t, wanted.into_iter().collect()));
            }
            records.push(Record {
                source_uid: *s,
                target_uid: *t,
                size: l.size,
                sha256: None,
                flags: l.flags.clone(),
            });
        }
        report.buckets.already_present += (matched.len() - altered.len()) as u64;
        if let (Some(fid), false) = (self.folder_id, altered.is_empty()) {
            ctx.state.mark_altered(fid, &altered).await?;
        }
        for a in &altered {
            note_altered(report, altered_copy(a, listed[&a.source_uid].size));
        }
        let tgt = &mut tgts[0];
        if !opts.dry_run {
            if !store.is_empty() {
                let results = tgt.store_flags(&store).await.on(SideName::Target)?;
                report.flags_updated += results.iter().filter(|r| r.is_none()).count() as u64;
                for (r, (uid, _)) in results.iter().zip(&store) {
                    if let Some(why) = r {
                        tracing::warn!(
                            "{}: flags of target UID {uid} not updated: {why}",
                            m.target
                        );
                    }
                }
            }
            if let Some(fid) = self.folder_id {
                ctx.state.record(fid, &records).await?;
                ctx.state.update_flags(fid, &synced).await?;
            }
        } else {
            report.flags_updated += store.len() as u64;
        }

        // What the target refused earlier in this run is not sent again (each refusal costs
        // the session's error budget on Exchange Online); the next run tries it again.
        let mut to_copy = to_copy;
        let refused = ctx.appends.refused_in(&m.source);
        if !refused.is_empty() {
            to_copy.retain(|u| match refused.get(u) {
                Some((key, why)) => {
                    fail(report, *u, listed[u].size, key.clone(), why.clone());
                    false
                }
                None => true,
            });
        }
        // A message over the size the target says it takes (APPENDLIMIT, RFC 7889) is
        // refused here with the reason, not uploaded whole only to be refused.
        if let Some(limit) = ctx.opts.size_limit.or(tgts[0].append_limit()) {
            to_copy.retain(|u| {
                let size = listed[u].size;
                if size <= limit {
                    return true;
                }
                fail(
                    report,
                    *u,
                    size,
                    "over the target's size limit".into(),
                    format!(
                        "{:.1} MB, over the {:.1} MB the target takes per message{}",
                        size as f64 / 1e6,
                        limit as f64 / 1e6,
                        ctx.opts.size_limit_hint.as_deref().unwrap_or("")
                    ),
                );
                false
            });
        }

        // Copy.
        let to_copy_bytes: u64 = to_copy.iter().map(|u| listed[u].size).sum();
        ctx.progress.planned(to_copy.len() as u64, to_copy_bytes);
        if opts.dry_run {
            report.buckets.copied += to_copy.len() as u64;
            return Ok(Vec::new());
        }
        if to_copy.is_empty() {
            return Ok(Vec::new());
        }
        let fid = self.folder_id.expect("folder recorded outside dry runs");
        // Before the first APPEND goes out, the state knows from which UID its copies (and
        // those of an APPEND left unanswered) can be.
        let line = (self.targets.uid_next != u32::MAX).then_some(self.targets.uid_next);
        ctx.appends
            .before_copying(ctx.state, fid, self.target_uv, line)
            .await?;
        let mut copied =
            copy_messages(ctx, src, tgts, &to_copy, &listed, permanent, fid, report).await?;
        // Exchange forgets `\Flagged` given with APPEND: set it again by STORE on the copies
        // (the folder is selected on the first target connection).
        if opts.flag_after_append && ctx.target_exists {
            let updates: Vec<(u32, Vec<String>)> = copied
                .iter()
                .filter(|c| c.target_uid != 0 && listed[&c.source_uid].flags.contains("\\Flagged"))
                .map(|c| {
                    let (kept, _) = permanent.filter(&listed[&c.source_uid].flags);
                    (c.target_uid, kept.iter().map(str::to_string).collect())
                })
                .collect();
            if !updates.is_empty() {
                tgts[0].store_flags(&updates).await.on(SideName::Target)?;
            }
        }
        // The shorter copies of messages that grew go, once their whole copy is stored: only
        // copies this tool made and recorded.
        let superseded: Vec<u32> = copied
            .iter()
            .filter_map(|c| replaced.get(&c.source_uid).copied())
            .collect();
        if !superseded.is_empty() {
            let removed = tgts[0]
                .uid_expunge(&superseded)
                .await
                .on(SideName::Target)?;
            report.replaced += superseded.len() as u64;
            if !removed {
                tracing::warn!(
                    "{}: {} earlier, shorter copies stay beside their whole copies: the target has no UIDPLUS to remove them one by one",
                    m.target,
                    superseded.len()
                );
            }
        }
        // An archive's messages are named by their files, in failures and in PEC evidence.
        if src.client().is_none() {
            for e in report.errors.iter_mut().filter(|e| e.place.is_none()) {
                if listed.contains_key(&e.uid) {
                    e.place = src.place(e.uid);
                }
            }
            for c in &mut copied {
                c.place = src.place(c.source_uid);
            }
        }
        Ok(copied)
    }
}

/// Cut (UID, size) pairs into batches bounded by bytes and message count; a message larger
/// than the byte bound travels alone.
pub(crate) fn batches(
    messages: impl IntoIterator<Item = (u32, u64)>,
    max_bytes: u64,
    max_msgs: usize,
) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut bytes = 0;
    for (u, size) in messages {
        if !cur.is_empty() && (bytes + size > max_bytes || cur.len() >= max_msgs) {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        cur.push(u);
        bytes += size;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A fetched batch: the bodies, the messages that go no further (UID, bucket, reason) and
/// the memory the bodies hold.
type Fetched = (Vec<(u32, Bytes)>, Vec<(u32, String, String)>, Reservation);

/// The bucket of a message with a line longer than the target takes.
const LINE_TOO_LONG: &str = "a line longer than the target takes";

/// Why `body` cannot go to a target that takes lines of at most `max` bytes, if it cannot.
/// The bytes are never rewritten to fit: a copy must be the message itself.
fn line_too_long(body: &[u8], max: usize) -> Option<String> {
    let (mut longest, mut start) = (0usize, 0usize);
    for end in memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len())) {
        let line = &body[start..end];
        longest = longest.max(line.strip_suffix(b"\r").unwrap_or(line).len());
        start = end + 1;
    }
    (longest > max).then(|| {
        format!(
            "a line of {longest} characters, over the {max} the target takes; the message is left as it is (rewrapping would change its bytes): copy it by hand or forward it"
        )
    })
}

/// A message handed to the target: source UID, size, SHA-256 of its bytes, and for PEC
/// messages the source signature verdict.
struct Sent {
    uid: u32,
    size: u64,
    sha256: String,
    pec: Option<Before>,
    /// Its Message-ID, when the target merges by it (Gmail).
    message_id: Option<String>,
}

/// A message's Message-ID as written (spaces folded), if it has one.
pub(crate) fn message_id(body: &[u8]) -> Option<String> {
    let v = trasloco_archive::dates::header(body, "Message-ID")?;
    let v = v.split_whitespace().collect::<String>();
    (!v.is_empty()).then_some(v)
}

/// What one append worker did with one batch.
struct Appended {
    fetched: u64,
    results: Vec<(AppendOutcome, Sent)>,
    dropped: Vec<(String, u64)>,
    unreadable: Vec<(u32, String, String)>,
}

/// A fetched batch made ready to append: the messages with the flags the target keeps, what
/// was hashed on the way, and the memory the bodies hold until the answer is in.
struct Prepared {
    msgs: Vec<AppendMsg>,
    meta: Vec<Sent>,
    dropped: BTreeMap<String, u64>,
    fetched: u64,
    unreadable: Vec<(u32, String, String)>,
    held: Reservation,
}

fn prepare(
    (batch, unreadable, held): Fetched,
    pec: Option<&PecEvidence>,
    merges: bool,
    listed: &HashMap<u32, Listed>,
    permanent: &Permanent,
) -> Prepared {
    let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
    let fetched = batch.len() as u64;
    let mut msgs = Vec::with_capacity(batch.len());
    let mut meta = Vec::with_capacity(batch.len());
    for (uid, body) in batch {
        let l = &listed[&uid];
        let (kept, refused) = permanent.filter(&l.flags);
        for k in refused {
            *dropped.entry(k).or_default() += 1;
        }
        meta.push(Sent {
            uid,
            size: body.len() as u64,
            sha256: sha256_hex(&body),
            pec: pec.and_then(|p| p.before(&body)),
            message_id: if merges { message_id(&body) } else { None },
        });
        msgs.push(AppendMsg {
            flags: kept.into_iter().collect(),
            internal_date: l.internal_date.clone(),
            body,
        });
    }
    Prepared {
        msgs,
        meta,
        dropped,
        fetched,
        unreadable,
        held,
    }
}

/// Where a batch stands with the target.
enum Answer {
    /// Not sent yet.
    Unsent,
    /// Sent as one MULTIAPPEND and refused as a whole.
    Refused,
    /// One outcome per message.
    Outcomes(Vec<AppendOutcome>),
}

impl From<Option<Vec<AppendOutcome>>> for Answer {
    fn from(finished: Option<Vec<AppendOutcome>>) -> Answer {
        finished.map_or(Answer::Refused, Answer::Outcomes)
    }
}

/// Whether [`complete`] will send the target anything more for this answer: an APPEND to make
/// (none yet, or refused as a whole), or messages refused with keywords to try again.
fn needs_more(answer: &Answer, msgs: &[AppendMsg]) -> bool {
    match answer {
        Answer::Unsent | Answer::Refused => !msgs.is_empty(),
        Answer::Outcomes(outcomes) => outcomes
            .iter()
            .zip(msgs)
            .any(|(o, m)| refused_with_keywords(o, &m.flags)),
    }
}

/// A refusal worth one more try with system flags only: the message carried keywords, which a
/// target may refuse although it seemed to accept them.
fn refused_with_keywords(outcome: &AppendOutcome, flags: &[String]) -> bool {
    matches!(outcome, AppendOutcome::Rejected(_)) && flags.iter().any(|f| is_keyword(f))
}

/// Finish one batch on `tgt` (nothing else may be in flight on it): append it if not sent yet,
/// one by one if a MULTIAPPEND was refused as a whole, retry keyword refusals, and hand the
/// outcome to the settler. False once the settler is gone.
async fn complete(
    tgt: &mut Client,
    folder: &str,
    p: Prepared,
    answer: Answer,
    done: &mpsc::UnboundedSender<Appended>,
) -> Result<bool, SyncError> {
    let Prepared {
        msgs,
        meta,
        mut dropped,
        fetched,
        unreadable,
        held,
    } = p;
    let mut outcomes = match answer {
        Answer::Outcomes(outcomes) => outcomes,
        _ if msgs.is_empty() => Vec::new(),
        Answer::Unsent => tgt.append(folder, &msgs).await.on(SideName::Target)?,
        Answer::Refused => tgt.append_each(folder, &msgs).await.on(SideName::Target)?,
    };
    // A target may refuse a keyword it seemed to accept (`\*` in PERMANENTFLAGS, yet
    // Dovecot refuses keywords over mail_max_keyword_length): retry such messages with
    // system flags only, and report the keywords as dropped rather than lose the message.
    let retry: Vec<usize> = (0..msgs.len())
        .filter(|&i| refused_with_keywords(&outcomes[i], &msgs[i].flags))
        .collect();
    if !retry.is_empty() {
        let plain: Vec<AppendMsg> = retry
            .iter()
            .map(|&i| AppendMsg {
                flags: msgs[i]
                    .flags
                    .iter()
                    .filter(|f| !is_keyword(f))
                    .cloned()
                    .collect(),
                ..msgs[i].clone()
            })
            .collect();
        let again = tgt.append(folder, &plain).await.on(SideName::Target)?;
        for (&i, outcome) in retry.iter().zip(again) {
            if matches!(outcome, AppendOutcome::Stored { .. }) {
                for k in msgs[i].flags.iter().filter(|f| is_keyword(f)) {
                    *dropped.entry(k.clone()).or_default() += 1;
                }
                outcomes[i] = outcome;
            }
        }
    }
    drop(msgs);
    drop(held);
    let appended = Appended {
        fetched,
        results: outcomes.into_iter().zip(meta).collect(),
        dropped: dropped.into_iter().collect(),
        unreadable,
    };
    Ok(done.send(appended).is_ok())
}

/// Take batches from the shared queue and append them on one target connection until the
/// queue closes. Where the server allows it, the next batch's APPEND is written before the
/// previous one's answer is read, so the connection never idles for a round trip and the
/// server's commit between batches; a batch is only sent ahead when it is already waiting
/// in the queue, never waited for while an answer is unread.
async fn append_worker(
    ctx: &FolderCtx<'_>,
    tgt: &mut Client,
    listed: &HashMap<u32, Listed>,
    permanent: &Permanent,
    queue: &tokio::sync::Mutex<mpsc::Receiver<Fetched>>,
    done: mpsc::UnboundedSender<Appended>,
) -> Result<(), SyncError> {
    let folder = ctx.mapping.target.as_str();
    let pec = ctx.opts.pec.as_deref();
    let pipelined = tgt.pipelines_appends();
    let mut inflight: Option<(Prepared, PendingAppend)> = None;
    loop {
        // With nothing in flight, a connection whose token is due, or that is near the
        // number of refusals after which the server ends the session, leaves the work to the
        // others; the attempt then ends and logs in again (every answer read, nothing lost).
        let tired = errors_due(tgt, ctx.opts);
        if inflight.is_none() && (tired || tgt.token_due()) {
            return Err(if tired {
                crate::mailbox::reset(SideName::Target)
            } else {
                crate::mailbox::renew(SideName::Target)
            });
        }
        let batch = if tired {
            // No new batch: the one in flight is answered, then the session ends.
            None
        } else if inflight.is_some() {
            queue.lock().await.try_recv().ok()
        } else {
            match queue.lock().await.recv().await {
                Some(b) => Some(b),
                None => return Ok(()),
            }
        };
        let mut ahead = None;
        let mut now = None;
        if let Some(b) = batch {
            let p = prepare(b, pec, ctx.opts.merges_by_message_id, listed, permanent);
            if pipelined && !p.msgs.is_empty() {
                let sent = tgt
                    .append_send(folder, &p.msgs)
                    .await
                    .on(SideName::Target)?;
                #[cfg(debug_assertions)]
                test_hook::append_written();
                ahead = Some((p, sent));
            } else {
                now = Some(p);
            }
        }
        if let Some((p, sent)) = inflight.take() {
            let answer: Answer = tgt.append_finish(sent).await.on(SideName::Target)?.into();
            // Anything more to send for this batch waits until the one sent ahead is answered.
            if needs_more(&answer, &p.msgs)
                && let Some((p2, sent2)) = ahead.take()
            {
                let answer2 = tgt.append_finish(sent2).await.on(SideName::Target)?.into();
                if !complete(tgt, folder, p, answer, &done).await? {
                    return Ok(());
                }
                if !complete(tgt, folder, p2, answer2, &done).await? {
                    return Ok(());
                }
                continue;
            }
            if !complete(tgt, folder, p, answer, &done).await? {
                return Ok(());
            }
        }
        if let Some(p) = now
            && !complete(tgt, folder, p, Answer::Unsent, &done).await?
        {
            return Ok(());
        }
        inflight = ahead;
    }
}

/// Messages in one batch: with a target that ends a session after `session_errors`
/// refusals, two batches in flight (one answered while the next is sent) stay below it.
fn batch_cap(opts: &Options) -> usize {
    match opts.session_errors {
        Some(limit) => opts
            .batch_messages
            .min((limit.saturating_sub(1) / 3).max(1) as usize),
        None => opts.batch_messages,
    }
}

/// Whether `tgt` must log in again before it sends another batch: refusals so far plus two
/// batches that could all be refused would reach the limit.
fn errors_due(tgt: &Client, opts: &Options) -> bool {
    opts.session_errors
        .is_some_and(|limit| tgt.refusals() as usize + 2 * batch_cap(opts) >= limit as usize)
}

/// Debug builds only: `TRASLOCO_TEST_EXIT_AFTER_APPENDS=N` ends the process once the Nth
/// pipelined APPEND has been written whole and before its answer is read, as a crash at that
/// moment would: the target has the batch and commits it, the state never hears of it.
#[cfg(debug_assertions)]
mod test_hook {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub(super) fn append_written() {
        static AT: OnceLock<Option<usize>> = OnceLock::new();
        static WRITTEN: AtomicUsize = AtomicUsize::new(0);
        let at = AT.get_or_init(|| {
            std::env::var("TRASLOCO_TEST_EXIT_AFTER_APPENDS")
                .ok()
                .and_then(|v| v.parse().ok())
        });
        if let Some(at) = *at
            && WRITTEN.fetch_add(1, Ordering::SeqCst) + 1 >= at
        {
            // Long enough for loopback to deliver what the socket holds, far shorter than
            // the server's commit of a batch.
            std::thread::sleep(std::time::Duration::from_millis(20));
            std::process::exit(137);
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn copy_messages(
    ctx: &FolderCtx<'_>,
    src: &mut SourceConn,
    tgts: &mut [Client],
    to_copy: &[u32],
    listed: &HashMap<u32, Listed>,
    permanent: &Permanent,
    folder_id: i64,
    report: &mut FolderReport,
) -> Result<Vec<Copied>, SyncError> {
    let opts = ctx.opts;
    // Large messages are streamed one by one from an IMAP source to the target, never held
    // whole; the rest (and everything from POP3 or an archive) travels in batches.
    // Not when lines are measured first: a line over the target's limit must be found before
    // the upload starts.
    // Nor when the target merges by Message-ID: the read-back compares the copy's.
    let streams = src.client().is_some() && opts.max_line.is_none() && !opts.merges_by_message_id;
    let (large, small): (Vec<u32>, Vec<u32>) = to_copy
        .iter()
        .partition(|u| streams && listed[*u].size > STREAM_ABOVE);
    let plan = batches(
        small.iter().map(|u| (*u, listed[u].size)),
        opts.batch_bytes,
        batch_cap(opts),
    );
    // One batch is fetched while the previous one is appended, so the two servers work at once.
    // Every batch first reserves its bytes in the process-wide budget; the reservation travels
    // with the bodies and ends when they are dropped after the append.
    let (tx, rx) = mpsc::channel::<Fetched>(tgts.len());
    let fetcher = &mut *src;
    let producer = async move {
        for batch in plan {
            // A stop lets the batches already fetched go out and be answered; no new one.
            if opts.stop.requested().is_some() {
                break;
            }
            test_batch_delay().await;
            if opts.stop.requested().is_some() {
                break;
            }
            if fetcher.token_due() {
                return Err(crate::mailbox::renew(SideName::Source));
            }
            let bytes = batch.iter().map(|u| listed[u].size).sum();
            // A batch the target's daily cap has no room for waits for another day.
            if ctx.daily.is_some_and(|d| !d.take(bytes)) {
                break;
            }
            let held = opts.memory.reserve(bytes).await;
            let mut got: Vec<(u32, Bytes)> = Vec::with_capacity(batch.len());
            let mut unreadable: Vec<(u32, String, String)> = Vec::new();
            fetcher
                .bodies(&batch, &mut |uid, r| match r {
                    Ok(body) => match opts.max_line.and_then(|m| line_too_long(&body, m)) {
                        Some(why) => unreadable.push((uid, LINE_TOO_LONG.into(), why)),
                        None => got.push((uid, body)),
                    },
                    Err(why) => unreadable.push((uid, "source: message unreadable".into(), why)),
                })
                .await
                .on(SideName::Source)?;
            if tx.send((got, unreadable, held)).await.is_err() {
                break;
            }
        }
        Ok::<(), SyncError>(())
    };
    // Each target connection appends whole batches as they come (several APPEND streams: at
    // WAN latency one connection is held back by the server's receive window). One settler
    // records what the server confirmed, in the state and the report.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Appended>();
    let pool = &mut *tgts;
    let workers = async move {
        // Owning the queue: when the workers end (say a target dropped), the channel closes
        // and the producer stops instead of waiting forever for room.
        let queue = tokio::sync::Mutex::new(rx);
        let all = pool
            .iter_mut()
            .map(|conn| append_worker(ctx, conn, listed, permanent, &queue, done_tx.clone()));
        // Every worker runs until the queue is empty or its own connection fails, so a batch
        // another connection has in flight when one drops is still confirmed and recorded.
        let results = futures_util::future::join_all(all).await;
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    };
    let mut copied: Vec<Copied> = Vec::new();
    let mut fetched = 0u64;
    let settler = async {
        while let Some(a) = done_rx.recv().await {
            fetched += a.fetched;
            for (k, n) in a.dropped {
                *report.dropped_keywords.entry(k).or_default() += n;
            }
            for (uid, key, why) in a.unreadable {
                let size = listed[&uid].size;
                if key == LINE_TOO_LONG {
                    ctx.appends.refused(&ctx.mapping.source, uid, &key, &why);
                }
                fail(report, uid, size, key, why);
            }
            if let Err(e) = settle(ctx, folder_id, listed, a.results, &mut copied, report).await {
                // Nothing more is appended once a copy cannot be recorded (a full disk): the
                // workers find the channel closed when they hand over the batch in their hands.
                done_rx.close();
                return Err(e);
            }
        }
        Ok::<(), SyncError>(())
    };
    let (p, w, s) = tokio::join!(producer, workers, settler);
    report.bodies_fetched += fetched;
    // A target failure is the real cause when several failed (the producer then only saw a
    // closed channel).
    w?;
    s?;
    p?;
    for uid in large {
        if opts.stop.requested().is_some() || ctx.daily.is_some_and(|d| !d.take(listed[&uid].size))
        {
            break;
        }
        if src.token_due() {
            return Err(crate::mailbox::renew(SideName::Source));
        }
        if tgts[0].token_due() {
            return Err(crate::mailbox::renew(SideName::Target));
        }
        if errors_due(&tgts[0], opts) {
            return Err(crate::mailbox::reset(SideName::Target));
        }
        let src = src.client().expect("only IMAP sources stream");
        let tgt = &mut tgts[0];
        if let Some(result) = stream_one(ctx, src, tgt, uid, listed, permanent, report).await? {
            report.bodies_fetched += 1;
            settle(ctx, folder_id, listed, vec![result], &mut copied, report).await?;
        }
    }

    Ok(copied)
}

/// Copy one message by streaming: the source FETCH literal is written into the target APPEND
/// literal piece by piece while its SHA-256 is computed. `None` if the message left the source.
/// A keyword refusal is retried with system flags only, as for batches.
async fn stream_one(
    ctx: &FolderCtx<'_>,
    src: &mut Client,
    tgt: &mut Client,
    uid: u32,
    listed: &HashMap<u32, Listed>,
    permanent: &Permanent,
    report: &mut FolderReport,
) -> Result<Option<(AppendOutcome, Sent)>, SyncError> {
    let l = &listed[&uid];
    let (kept, dropped) = permanent.filter(&l.flags);
    for k in dropped {
        *report.dropped_keywords.entry(k).or_default() += 1;
    }
    let kept: Vec<String> = kept.into_iter().collect();
    let mut flags = kept.clone();
    loop {
        let Some(mut body) = src.body_begin(uid).await.on(SideName::Source)? else {
            return Ok(None);
        };
        let size = body.size();
        let start = tgt
            .append_begin(
                &ctx.mapping.target,
                &flags,
                l.internal_date.as_deref(),
                size,
            )
            .await
            .on(SideName::Target)?;
        let mut sha = Sha256::new();
        // A PEC message (its header says so) is also kept whole, so its signature can be
        // checked: evidence is worth the memory, ordinary mail is not.
        let mut sniff = Sniff::new(ctx.opts.pec.is_some(), size);
        let outcome = match start {
            AppendStart::Refused(outcome) => {
                src.body_end(body).await.on(SideName::Source)?;
                outcome
            }
            AppendStart::Go(append) => {
                while let Some(chunk) = src.body_chunk(&mut body).await.on(SideName::Source)? {
                    sniff.feed(&chunk);
                    sha.update(&chunk);
                    tgt.append_chunk(&chunk).await.on(SideName::Target)?;
                }
                src.body_end(body).await.on(SideName::Source)?;
                tgt.append_end(append).await.on(SideName::Target)?
            }
        };
        if refused_with_keywords(&outcome, &flags) {
            flags.retain(|f| !is_keyword(f));
            continue;
        }
        if matches!(outcome, AppendOutcome::Stored { .. }) && flags.len() < kept.len() {
            for k in kept.iter().filter(|f| is_keyword(f)) {
                *report.dropped_keywords.entry(k.clone()).or_default() += 1;
            }
        }
        let pec = match (&ctx.opts.pec, sniff.finish()) {
            (Some(p), Some(w)) => p.before(&w),
            _ => None,
        };
        let sent = Sent {
            uid,
            size,
            sha256: hex::encode(sha.finalize()),
            pec,
            message_id: None,
        };
        return Ok(Some((outcome, sent)));
    }
}

/// How far a rewritten copy's size may be from the source's for it to be looked at.
const REWRITE_SLACK: u64 = 64;

/// Source messages about to be copied that the target already holds in a rewritten form (same
/// headers, a size a little off, the bytes equal but for a server's rewrites): (source UID,
/// target UID) pairs, taken out of the pool. Without this, a copy the target altered by
/// dropping a final CR would be appended again after a lost state, and altered again.
async fn find_rewritten(
    src: &mut SourceConn,
    tgt: &mut Client,
    pool: &mut IdentityPool,
    headers: &[(u32, u64, Bytes)],
    to_copy: &[u32],
) -> Result<Vec<(u32, u32)>, SyncError> {
    let mut out = Vec::new();
    for (uid, size, h) in headers {
        if to_copy.binary_search(uid).is_err() {
            continue;
        }
        for t in pool.near(&loose_identity(h), *size, REWRITE_SLACK) {
            if let (Some(a), Some(b)) = both_bodies(src, tgt, *uid, t).await?
                && rewritten_alike(&a, &b)
            {
                pool.claim(t);
                out.push((*uid, t));
                break;
            }
        }
    }
    Ok(out)
}

/// Identity matches under a byte check: the pairs, the messages still to copy, and each
/// source message's identity.
struct Pairs<'a> {
    matched: &'a mut Vec<(u32, u32)>,
    to_copy: &'a mut Vec<u32>,
    keys: &'a HashMap<u32, IdentityKey>,
}

/// SHA-256 of source messages, read a chunk at a time and dropped as they are hashed.
async fn source_digests(
    src: &mut SourceConn,
    uids: &[u32],
) -> Result<HashMap<u32, [u8; 32]>, SyncError> {
    let mut out: HashMap<u32, [u8; 32]> = HashMap::with_capacity(uids.len());
    for chunk in uids.chunks(IDENTITY_CHUNK) {
        src.bodies(chunk, &mut |u, r| {
            if let Ok(b) = r {
                out.insert(u, Sha256::digest(&b).into());
            }
        })
        .await
        .on(SideName::Source)?;
    }
    Ok(out)
}

/// SHA-256 of target messages, the same way.
async fn target_digests(
    tgt: &mut Client,
    uids: &[u32],
) -> Result<HashMap<u32, [u8; 32]>, SyncError> {
    let mut out: HashMap<u32, [u8; 32]> = HashMap::with_capacity(uids.len());
    for chunk in uids.chunks(IDENTITY_CHUNK) {
        tgt.fetch_bodies(chunk, &mut |u, b| {
            out.insert(u, Sha256::digest(&b).into());
        })
        .await
        .on(SideName::Target)?;
    }
    Ok(out)
}

/// Compare the bytes of identity matches on both sides. A pair whose bytes differ is first
/// offered to the source messages of the same identity still to copy: twins (two messages
/// without Message-ID, same Date, From, Subject and size, a byte apart) are paired by their
/// bytes, not by their order. What still differs is a copy the target altered: returned, with
/// where it first differs.
async fn check_matches(
    src: &mut SourceConn,
    tgt: &mut Client,
    pairs: Pairs<'_>,
    listed: &HashMap<u32, Listed>,
    server: &str,
) -> Result<Vec<Altered>, SyncError> {
    let Pairs {
        matched,
        to_copy,
        keys,
    } = pairs;
    let suids: Vec<u32> = matched.iter().map(|(s, _)| *s).collect();
    let tuids: Vec<u32> = matched.iter().map(|(_, t)| *t).collect();
    let mut source = source_digests(src, &suids).await?;
    let target = target_digests(tgt, &tuids).await?;
    let differs = |s: &u32, t: &u32, source: &HashMap<u32, [u8; 32]>| matches!((source.get(s), target.get(t)), (Some(a), Some(b)) if a != b);
    // Twins: the source messages to copy that share an identity with a pair that differs.
    let mismatched_keys: std::collections::HashSet<IdentityKey> = matched
        .iter()
        .filter(|(s, t)| differs(s, t, &source))
        .filter_map(|(s, _)| keys.get(s).copied())
        .collect();
    if !mismatched_keys.is_empty() {
        let twins: Vec<u32> = to_copy
            .iter()
            .copied()
            .filter(|u| keys.get(u).is_some_and(|k| mismatched_keys.contains(k)))
            .collect();
        source.extend(source_digests(src, &twins).await?);
        for pair in matched.iter_mut() {
            let (s, t) = *pair;
            if !differs(&s, &t, &source) {
                continue;
            }
            let Some(td) = target.get(&t) else { continue };
            let twin = to_copy
                .iter()
                .position(|u| keys.get(u) == keys.get(&s) && source.get(u) == Some(td));
            if let Some(at) = twin {
                // The target's copy is the twin's: the twin is present, this one is to copy.
                pair.0 = to_copy[at];
                to_copy[at] = s;
            }
        }
        to_copy.sort_unstable();
    }
    let found_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut out = Vec::new();
    for &(s, t) in matched.iter() {
        if !differs(&s, &t, &source) {
            continue;
        }
        let td = target[&t];
        let offset = match both_bodies(src, tgt, s, t).await? {
            (Some(a), Some(b)) => first_difference(&a, &b),
            _ => None,
        };
        tracing::warn!(
            "source UID {s} ({} bytes): the copy found on the target (UID {t}) has the same headers but other bytes",
            listed[&s].size
        );
        out.push(Altered {
            source_uid: s,
            target_uid: t,
            target_sha256: hex::encode(td),
            first_difference: offset,
            server: server.to_string(),
            found_at: found_at.clone(),
        });
    }
    Ok(out)
}

/// What became of appended messages: the stored ones are recorded in the state at once,
/// counted, and remembered for verification; a refusal is that message's failure, with the
/// server's words.
async fn settle(
    ctx: &FolderCtx<'_>,
    folder_id: i64,
    listed: &HashMap<u32, Listed>,
    results: Vec<(AppendOutcome, Sent)>,
    copied: &mut Vec<Copied>,
    report: &mut FolderReport,
) -> Result<(), SyncError> {
    let mut records = Vec::with_capacity(results.len());
    let mut bytes = 0;
    let mut stored = 0;
    for (outcome, sent) in results {
        let Sent {
            uid,
            size,
            sha256: digest,
            pec,
            message_id,
        } = sent;
        match outcome {
            AppendOutcome::Stored { uid: tuid, .. } => {
                stored += 1;
                bytes += size;
                // Without UIDPLUS the target UID is unknown (0): the next run finds the copy
                // again by content identity.
                let tuid = tuid.unwrap_or(0);
                records.push(Record {
                    source_uid: uid,
                    target_uid: tuid,
                    size,
                    sha256: Some(digest.clone()),
                    flags: listed[&uid].flags.clone(),
                });
                if tuid != 0 {
                    copied.push(Copied {
                        source_uid: uid,
                        target_uid: tuid,
                        size,
                        sha256: digest,
                        pec,
                        place: None,
                        message_id,
                    });
                }
            }
            AppendOutcome::Rejected(why) => {
                let key = refusal_key(&why);
                let why = explain_refusal(why);
                ctx.appends.refused(&ctx.mapping.source, uid, &key, &why);
                fail(report, uid, size, key, why)
            }
        }
    }
    ctx.state.record(folder_id, &records).await?;
    if let Some(d) = ctx.daily {
        d.uploaded(ctx.state, bytes).await?;
    }
    report.buckets.copied += stored;
    report.bytes_copied += bytes;
    ctx.progress.copied(stored, bytes);
    Ok(())
}

/// A message copied in this run, to be read back.
pub(crate) struct Copied {
    source_uid: u32,
    target_uid: u32,
    size: u64,
    sha256: String,
    pec: Option<Before>,
    /// The source file, when the source is an archive.
    place: Option<String>,
    /// Its Message-ID, when the target merges by it.
    message_id: Option<String>,
}

/// Where the copies being verified came from, for the PEC evidence manifest.
pub(crate) struct EvidenceCtx<'a> {
    pub pec: &'a PecEvidence,
    pub source: &'a str,
    pub target: &'a str,
    pub source_folder: &'a str,
    /// The target server's port and the target folder's UIDVALIDITY: where the line was
    /// checked, so that a later check against another server or folder says so.
    pub target_port: u16,
    pub target_uid_validity: u32,
}

/// What reading a folder's copies back found.
pub(crate) struct Checked {
    expected: u64,
    seen: u64,
    /// Source UIDs of the copies read back (whatever they were found to be).
    pub(crate) read: Vec<u32>,
    mismatched: Vec<Mismatch>,
    /// Source UIDs whose copy the target merged into a message of the same Message-ID.
    merged: Vec<u32>,
    /// PEC copies without an evidence line: (source UID, size, why).
    unproven: Vec<(u32, u64, &'static str)>,
    /// PEC copies checked.
    pec: Vec<PecSeen>,
}

/// A PEC copy checked: its source UID, type, identifier and verdict on the source.
struct PecSeen {
    uid: u32,
    kind: &'static str,
    id: Option<String>,
    verdict: &'static str,
}

/// A copy read back with other bytes than the source's.
struct Mismatch {
    source_uid: u32,
    target_uid: u32,
    size: u64,
    target_sha256: String,
}

/// Read the copies in one target folder back and compare SHA-256 with what was read from the
/// source. Runs on a connection of its own, so it overlaps the copying of the next folders.
pub(crate) async fn verify_folder(
    tgt: &mut Client,
    folder: &str,
    copied: &[Copied],
    evidence: Option<EvidenceCtx<'_>>,
    merges: bool,
) -> Result<Checked, SyncError> {
    let line = |c: &Copied, before: &Before, after: &str| EvidenceLine {
        checked_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        source: evidence.as_ref().map_or("", |e| e.source).to_string(),
        target: evidence.as_ref().map_or("", |e| e.target).to_string(),
        folder: evidence
            .as_ref()
            .map_or("", |e| e.source_folder)
            .to_string(),
        target_folder: folder.to_string(),
        source_uid: c.source_uid,
        target_uid: c.target_uid,
        kind: before.kind.to_string(),
        identificativo: before.identificativo.clone(),
        sha256: c.sha256.clone(),
        before: before.status.name().to_string(),
        after: after.to_string(),
        source_file: c.place.clone(),
        target_port: evidence.as_ref().map(|e| e.target_port),
        target_uid_validity: evidence.as_ref().map(|e| e.target_uid_validity),
    };
    // A PEC message's signature is checked again on the copy: the same verdict as on the
    // source, or the message fails, loudly. Either way the manifest gets its line, and a copy
    // whose line could not be written is not counted as verified.
    let unproven: std::sync::Mutex<Vec<(u32, u64, &'static str)>> = Default::default();
    let pec_seen: std::sync::Mutex<Vec<PecSeen>> = Default::default();
    let pec_ok = |c: &Copied, body: &[u8]| {
        let (Some(before), Some(ev)) = (&c.pec, &evidence) else {
            return true;
        };
        pec_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(PecSeen {
                uid: c.source_uid,
                kind: before.kind,
                id: before.identificativo.clone(),
                verdict: before.status.name(),
            });
        let after = ev.pec.after(body);
        if !ev.pec.write(&line(c, before, after.name())) {
            let mut u = unproven.lock().unwrap_or_else(|e| e.into_inner());
            u.push((c.source_uid, c.size, PEC_UNWRITTEN));
        }
        if after != before.status {
            tracing::error!(
                "{folder}: PEC message (source UID {}) signature was {} on the source and is {} on the target copy",
                c.source_uid,
                before.status.name(),
                after.name()
            );
            return false;
        }
        true
    };
    let mut mismatched: Vec<Mismatch> = Vec::new();
    let mismatch = |c: &Copied, digest: String| Mismatch {
        source_uid: c.source_uid,
        target_uid: c.target_uid,
        size: c.size,
        target_sha256: digest,
    };
    let mut seen = 0u64;
    let mut read_back: std::collections::HashSet<u32> = Default::default();
    // Copies a target that merges by Message-ID (Gmail) answered with a message it already
    // held: other bytes, the same Message-ID. Read whole, to see their Message-ID.
    let mut merged: Vec<u32> = Vec::new();
    let (large, small): (Vec<&Copied>, Vec<&Copied>) = copied
        .iter()
        .partition(|c| c.size > STREAM_ABOVE && !merges);
    // The small ones in one FETCH, sent with the EXAMINE: each is hashed as it arrives and
    // dropped, so memory stays at one message whatever the folder holds. (A merging target
    // may answer two APPENDs with one UID.)
    let mut want: HashMap<u32, Vec<&Copied>> = HashMap::new();
    for c in &small {
        want.entry(c.target_uid).or_default().push(c);
    }
    let tuids: Vec<u32> = want.keys().copied().collect();
    tgt.examine_and_fetch_bodies(folder, &tuids, &mut |tuid, body| {
        let Some(cs) = want.get(&tuid) else {
            return;
        };
        read_back.insert(tuid);
        let digest = sha256_hex(&body);
        for c in cs {
            seen += 1;
            if pec_ok(c, &body) && digest == c.sha256 {
                continue;
            }
            if merges && c.message_id.is_some() && message_id(&body) == c.message_id {
                merged.push(c.source_uid);
            } else {
                mismatched.push(mismatch(c, digest.clone()));
            }
        }
    })
    .await
    .on(SideName::Target)?;
    // The large ones one by one, streamed.
    for c in large {
        let Some(mut body) = tgt.body_begin(c.target_uid).await.on(SideName::Target)? else {
            continue;
        };
        let mut sha = Sha256::new();
        // Kept whole when it is a PEC message, by its own header: a PEC copy whose source was
        // not checked has no evidence, and does not pass as verified.
        let mut sniff = Sniff::new(evidence.is_some(), c.size);
        while let Some(chunk) = tgt.body_chunk(&mut body).await.on(SideName::Target)? {
            sha.update(&chunk);
            sniff.feed(&chunk);
        }
        tgt.body_end(body).await.on(SideName::Target)?;
        seen += 1;
        read_back.insert(c.target_uid);
        let digest = hex::encode(sha.finalize());
        let whole = sniff.finish();
        let pec_same = match (&c.pec, &whole, &evidence) {
            (Some(_), Some(w), _) => pec_ok(c, w),
            // Checked as PEC on the source, not PEC-shaped on the target: the bytes differ.
            (Some(_), None, Some(_)) => false,
            (None, Some(w), Some(ev)) => {
                if ev.pec.before(w).is_some() {
                    let mut u = unproven.lock().unwrap_or_else(|e| e.into_inner());
                    u.push((c.source_uid, c.size, PEC_UNCHECKED));
                }
                true
            }
            _ => true,
        };
        if !pec_same || digest != c.sha256 {
            mismatched.push(mismatch(c, digest));
        }
    }
    let mut unproven = unproven.into_inner().unwrap_or_else(|e| e.into_inner());
    if evidence.is_some() {
        for c in copied {
            if c.pec.is_some() && !read_back.contains(&c.target_uid) {
                unproven.push((c.source_uid, c.size, PEC_UNREAD));
            }
        }
    }
    // Read back, whatever was found: a PEC copy without its evidence line stays to be read
    // back again.
    let read = copied
        .iter()
        .filter(|c| read_back.contains(&c.target_uid))
        .filter(|c| !unproven.iter().any(|u| u.0 == c.source_uid))
        .map(|c| c.source_uid)
        .collect();
    Ok(Checked {
        expected: copied.len() as u64,
        seen,
        read,
        mismatched,
        merged,
        unproven,
        pec: pec_seen.into_inner().unwrap_or_else(|e| e.into_inner()),
    })
}

/// Why a PEC copy has no evidence line: the manifest could not be written.
const PEC_UNWRITTEN: &str = "PEC evidence not written (the manifest file could not be written)";
/// Why a PEC copy has no evidence line: its source bytes were not checked.
const PEC_UNCHECKED: &str = "PEC message copied without its source signature check";
/// Why a PEC copy has no evidence line: it could not be read back.
const PEC_UNREAD: &str = "PEC message not read back from the target, so without evidence";

/// Enter what verification found into the folder's report: a copy whose bytes differ leaves
/// the "copied" bucket; those copies are returned, to be located, recorded and then counted
/// as altered ([`note_altered`]).
pub(crate) fn record_check(
    report: &mut FolderReport,
    checked: Checked,
    server: &str,
) -> Vec<AlteredCopy> {
    for p in checked.pec {
        *report.pec.entry(p.verdict.to_string()).or_default() += 1;
        if p.verdict == "broken" && report.pec_broken.len() < MAX_LISTED_ERRORS {
            report.pec_broken.push(format!(
                "{} UID {} ({} {})",
                report.source,
                p.uid,
                p.kind,
                p.id.as_deref().unwrap_or("without identifier")
            ));
        }
    }
    // An altered copy is counted as such, whatever its evidence.
    let unproven: Vec<_> = checked
        .unproven
        .into_iter()
        .filter(|(uid, _, _)| !checked.mismatched.iter().any(|m| m.source_uid == *uid))
        .collect();
    let unproven_seen = unproven.iter().filter(|u| u.2 != PEC_UNREAD).count() as u64;
    report.verified += (checked.seen - checked.mismatched.len() as u64)
        .saturating_sub(checked.merged.len() as u64)
        .saturating_sub(unproven_seen);
    // Merged by the target into the message of the same Message-ID it held: present, with
    // that message's bytes (Gmail keeps the first copy).
    if !checked.merged.is_empty() {
        let n = checked.merged.len() as u64;
        report.buckets.copied -= n;
        report.buckets.already_present += n;
        report.merged += n;
        tracing::info!(
            "{}: {n} message(s) merged by the target into one it held with the same Message-ID",
            report.target
        );
    }
    for (uid, size, why) in unproven {
        report.buckets.copied -= 1;
        fail(report, uid, size, why.to_string(), why.to_string());
    }
    let mut found = Vec::new();
    for m in checked.mismatched {
        report.buckets.copied -= 1;
        tracing::warn!(
            "{}: the copy of source UID {} read back from the target differs from the source message",
            report.target,
            m.source_uid
        );
        found.push(AlteredCopy {
            uid: m.source_uid,
            target_uid: m.target_uid,
            size: m.size,
            server: server.to_string(),
            first_difference: None,
            target_sha256: m.target_sha256,
        });
    }
    let missing = checked.expected - checked.seen;
    if missing > 0 {
        tracing::warn!(
            "{}: {missing} copied messages could not be read back for verification",
            report.target
        );
    }
    found
}

/// Debug builds only: `TRASLOCO_TEST_BATCH_DELAY_MS=N` waits N ms before each batch is
/// fetched, so that tests can catch a worker in the middle of a mailbox (kill it, pause it).
async fn test_batch_delay() {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("TRASLOCO_TEST_BATCH_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_measured_without_their_line_ends() {
        assert!(line_too_long(b"ab\r\ncd\r\n", 2).is_none());
        assert!(
            line_too_long(b"ab\ncd", 2).is_none(),
            "bare LF, no final line end"
        );
        assert!(line_too_long(b"\r\n\r\n", 0).is_none());
        let why = line_too_long(b"ab\r\nabc\r\n", 2).unwrap();
        assert!(
            why.starts_with("a line of 3 characters, over the 2"),
            "{why}"
        );
        assert!(
            line_too_long(b"ab\r\nabc", 2).is_some(),
            "the last line counts"
        );
        let opts = Options {
            session_errors: Some(10),
            ..Options::default()
        };
        assert_eq!(
            batch_cap(&opts),
            3,
            "two batches in flight stay under ten refusals"
        );
        assert_eq!(batch_cap(&Options::default()), 300);
    }

    #[test]
    fn refusals_are_counted_by_code() {
        assert_eq!(
            refusal_key("NO [OVERQUOTA] Quota exceeded"),
            "target refused: [OVERQUOTA]"
        );
        assert_eq!(
            refusal_key("NO [LIMIT] Mail size too big"),
            "target refused: [LIMIT]"
        );
        assert_eq!(
            refusal_key("NO Message too big"),
            "target refused: NO Message too big"
        );
    }

    #[test]
    fn first_difference_is_the_first_differing_byte_or_the_shorter_length() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"a\0c", b"a\x80c"), Some(1));
        assert_eq!(first_difference(b"abc\r", b"abc"), Some(3));
    }

    #[test]
    fn batches_respect_bytes_and_count() {
        let sizes = [(1, 10), (2, 10), (3, 100), (4, 5), (5, 5), (6, 5)];
        let b = batches(sizes, 25, 2);
        assert_eq!(b, vec![vec![1, 2], vec![3], vec![4, 5], vec![6]]);
    }
}
