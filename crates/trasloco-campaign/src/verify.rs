//! `trasloco verify`: compare source and target of every mailbox the campaign moves, and say
//! per mailbox "nothing lost" or list exactly what is missing. Messages left out on purpose
//! (folder rules, phases not run yet, quota archives) are counted under their rule, so every
//! mailbox's numbers add up to its source count.

use crate::phases::Phase;
use crate::run::{Job, LeftOut};
use crate::{ConfigError, exit};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::Semaphore;
use trasloco_core::words;
use trasloco_state::State;
use trasloco_sync::{
    AlteredMessage, ArchivePart, FolderComparison, MissingMessage, Options, Source, Target,
    compare_mailbox,
};

/// One mailbox verified.
#[derive(Debug, Clone, Serialize)]
pub struct MailboxCheck {
    /// Source account.
    pub source: String,
    /// Target account.
    pub target: String,
    /// `nothing-lost`, `altered` (nothing lost, but the target altered some copies),
    /// `duplicates` (nothing lost, but the target holds a message more often than the source),
    /// `missing` or `failed`.
    pub verdict: String,
    /// Messages on the source.
    pub source_messages: u64,
    /// Found on the target.
    pub matched: u64,
    /// Left out by a rule (or archived): rule → count.
    pub skipped: BTreeMap<String, u64>,
    /// What is missing, message by message.
    pub missing: Vec<MissingMessage>,
    /// Copies the target altered, message by message.
    pub altered: Vec<AlteredMessage>,
    /// Messages on the target.
    pub target_messages: u64,
    /// Target messages beyond the source's count of the same message.
    pub duplicates: u64,
    /// Target messages that match no source message.
    pub without_source: u64,
    /// Why it could not be compared, when so.
    pub error: Option<String>,
    /// The class of that failure (decides the exit code).
    #[serde(skip)]
    pub failure: Option<trasloco_core::accounting::FailureClass>,
    /// Per folder.
    pub folders: Vec<FolderComparison>,
}

/// The whole verification.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Whether every message's bytes were compared (SHA-256), not just identities.
    pub full: bool,
    /// Per mailbox.
    pub mailboxes: Vec<MailboxCheck>,
    /// Mailboxes the plan keeps out (not compared).
    pub left_out: Vec<LeftOut>,
    /// 0 when nothing is lost anywhere, 2 when something is missing or duplicated, else a
    /// failure's code, else 3 when the target altered some copies.
    pub exit_code: i32,
}

/// The phase rules that applied to a mailbox, from the phases recorded for it: deferred folders
/// count as deferred until `final` has run, and after `prestage` alone newer mail counts as not
/// copied yet.
pub fn options_after(
    base: &Options,
    done: &BTreeSet<String>,
    phases: &crate::phases::PhasesSection,
) -> Options {
    let mut o = base.clone();
    let has = |p: Phase| done.contains(p.name());
    if has(Phase::Final) || has(Phase::Catchup) {
        o.defer.clear();
    } else if has(Phase::Prestage) && !has(Phase::Delta) {
        Phase::Prestage.apply(phases, &mut o, chrono::Utc::now());
    }
    o
}

/// Compare every job's mailboxes, `jobs` at a time.
pub async fn verify(
    jobs: Vec<Job>,
    left_out: Vec<LeftOut>,
    base: &Options,
    phases: &crate::phases::PhasesSection,
    state: &State,
    parallel: usize,
    full: bool,
) -> Result<Verification, ConfigError> {
    let mut done: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for p in state
        .phases()
        .await
        .map_err(|e| ConfigError(e.to_string()))?
    {
        done.entry((p.source, p.target))
            .or_default()
            .insert(p.phase);
    }
    let limit = Arc::new(Semaphore::new(parallel.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, job) in jobs.into_iter().enumerate() {
        let Target::Imap(side) = job.target.clone() else {
            continue;
        };
        let key = (job.source.label(), side.label());
        let opts = options_after(base, done.get(&key).unwrap_or(&BTreeSet::new()), phases);
        // The cut a run moved (archive-oldest re-checks the fit as mail arrives) is the
        // state's; the plan's otherwise.
        let moved = match state.find_mailbox(&key.0, &key.1).await {
            Ok(Some(id)) => state.archive_cut(id).await.ok().flatten(),
            _ => None,
        };
        let archive_target = job
            .archive
            .as_ref()
            .map(|a| &a.target)
            .or(job.refit.as_ref().map(|r| &r.archive));
        let before = job.archive.as_ref().map(|a| a.before).max(moved);
        let archive = match (archive_target, before) {
            (Some(Target::Archive(t)), Some(before)) => Some(ArchivePart {
                root: t.root.clone(),
                before,
            }),
            _ => None,
        };
        let (limit, state) = (limit.clone(), state.clone());
        set.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore never closed");
            let r =
                compare_mailbox(&job.source, &side, &state, &opts, archive.as_ref(), full).await;
            let c = check(&job.source, key.1, r);
            // What a run recorded as a clean pass of the whole mailbox is not trusted again
            // once its target is found short: the next run compares every folder.
            if matches!(c.verdict.as_str(), "missing" | "duplicates" | "altered")
                && let Ok(Some(id)) = state.find_mailbox(&key.0, &c.target).await
                && let Err(e) = state.forget_clean_mailbox(id).await
            {
                tracing::warn!("{e}");
            }
            (i, c)
        });
    }
    let mut checks = Vec::new();
    while let Some(r) = set.join_next().await {
        checks.push(
            r.map_err(|e| ConfigError(format!("internal error: a verify task failed: {e}")))?,
        );
    }
    checks.sort_by_key(|(i, _)| *i);
    let mailboxes: Vec<MailboxCheck> = checks.into_iter().map(|(_, c)| c).collect();
    let exit_code = if mailboxes
        .iter()
        .any(|m| m.verdict == "missing" || m.verdict == "duplicates")
    {
        exit::INCOMPLETE
    } else {
        mailboxes.iter().find_map(|m| m.failure).map_or(
            if mailboxes.iter().any(|m| m.verdict == "altered") {
                exit::ALTERED
            } else {
                exit::OK
            },
            crate::run::code_of,
        )
    };
    Ok(Verification {
        full,
        mailboxes,
        left_out,
        exit_code,
    })
}

fn check(
    source: &Source,
    target: String,
    r: Result<Vec<FolderComparison>, trasloco_sync::Failure>,
) -> MailboxCheck {
    let mut c = MailboxCheck {
        source: source.label(),
        target,
        verdict: "nothing-lost".into(),
        source_messages: 0,
        matched: 0,
        skipped: BTreeMap::new(),
        missing: Vec::new(),
        altered: Vec::new(),
        target_messages: 0,
        duplicates: 0,
        without_source: 0,
        error: None,
        failure: None,
        folders: Vec::new(),
    };
    match r {
        Err((class, why)) => {
            c.verdict = "failed".into();
            c.error = Some(why);
            c.failure = Some(class);
        }
        Ok(folders) => {
            for f in &folders {
                c.source_messages += f.source_messages;
                c.matched += f.matched;
                for (k, v) in &f.skipped {
                    *c.skipped.entry(k.clone()).or_default() += v;
                }
                c.missing.extend(f.missing.iter().cloned());
                c.altered.extend(f.altered.iter().cloned());
                c.target_messages += f.target_messages;
                c.duplicates += f.duplicates;
                c.without_source += f.without_source;
            }
            if !c.missing.is_empty() {
                c.verdict = "missing".into();
            } else if c.duplicates > 0 {
                c.verdict = "duplicates".into();
            } else if !c.altered.is_empty() {
                c.verdict = "altered".into();
            }
            c.folders = folders;
        }
    }
    c
}

/// Messages listed per mailbox on the terminal; verify.json has them all.
const SHOWN: usize = 20;

/// The count of what a list left off the terminal.
fn more(out: &mut String, listed: usize, what: &str) {
    if listed > SHOWN {
        out.push_str(&format!(
            "    … and {} more {what} (all in verify.json)\n",
            listed - SHOWN
        ));
    }
}

/// The text people read.
pub fn text(v: &Verification) -> String {
    let mut out = String::new();
    for m in &v.mailboxes {
        let skipped: u64 = m.skipped.values().sum();
        match m.verdict.as_str() {
            "failed" => out.push_str(&format!(
                "{} → {}: NOT VERIFIED: {}\n",
                m.source,
                m.target,
                m.error.as_deref().unwrap_or("")
            )),
            verdict => {
                out.push_str(&format!(
                    "{} → {}: {}: {} on the source = {} on the target{} + {} left out by rules + {} missing\n",
                    m.source,
                    m.target,
                    match verdict {
                        "missing" => "MISSING MESSAGES",
                        "duplicates" => "nothing lost, but DUPLICATES ON THE TARGET",
                        "altered" => "nothing lost, but COPIES ALTERED BY THE TARGET",
                        _ => "nothing lost",
                    },
                    m.source_messages,
                    m.matched,
                    if m.altered.is_empty() {
                        String::new()
                    } else {
                        format!(" + {} altered by the target", m.altered.len())
                    },
                    skipped,
                    m.missing.len()
                ));
                for (rule, n) in &m.skipped {
                    out.push_str(&format!("    {n} {rule}\n"));
                }
                out.push_str(&format!(
                    "    the target holds {}: {} duplicated, {} with no source counterpart\n",
                    m.target_messages, m.duplicates, m.without_source
                ));
                for x in m.altered.iter().take(SHOWN) {
                    out.push_str(&format!(
                        "    altered by the target {}: folder {:?}, source UID {} → target UID {}{}; nothing to retry, keep the original on the source or in an archive\n",
                        x.server,
                        x.folder,
                        x.uid,
                        x.target_uid,
                        x.first_difference
                            .map(|o| format!(", first difference at byte {o}"))
                            .unwrap_or_default()
                    ));
                }
                more(&mut out, m.altered.len(), "altered copies");
                // Header values as people read them; verify.json keeps them as written.
                for x in m.missing.iter().take(SHOWN) {
                    out.push_str(&format!(
                        "    missing from the {}: folder {:?}, date {:?}, from {:?}, subject {:?}, {} bytes (source UID {})\n",
                        x.expected_in,
                        x.folder,
                        x.date,
                        words::decode(&x.from),
                        words::decode(&x.subject),
                        x.size,
                        x.uid
                    ));
                }
                more(&mut out, m.missing.len(), "missing messages");
            }
        }
    }
    for l in &v.left_out {
        out.push_str(&format!(
            "{} → {}: not compared ({}: {})\n",
            l.source,
            l.target,
            l.action.label(),
            l.reasons.join("; ")
        ));
    }
    let lost: usize = v.mailboxes.iter().map(|m| m.missing.len()).sum();
    out.push_str(&format!(
        "\n{} mailboxes compared{}: {} with nothing lost, {} with copies altered by the target, {} with duplicates, {} with missing messages ({} messages), {} not verified\n",
        v.mailboxes.len(),
        if v.full { " byte by byte (SHA-256)" } else { " by content identity" },
        v.mailboxes.iter().filter(|m| m.verdict == "nothing-lost").count(),
        v.mailboxes.iter().filter(|m| m.verdict == "altered").count(),
        v.mailboxes.iter().filter(|m| m.verdict == "duplicates").count(),
        v.mailboxes.iter().filter(|m| m.verdict == "missing").count(),
        lost,
        v.mailboxes.iter().filter(|m| m.verdict == "failed").count(),
    ));
    if lost > 0 {
        out.push_str(
            "The next `trasloco run` of this campaign compares the mailboxes with missing messages folder by folder and copies what is missing.\n",
        );
    }
    out
}
