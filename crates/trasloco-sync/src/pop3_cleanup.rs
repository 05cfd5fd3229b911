//! `--leave-days N` for POP3 sources (seed 003: "leave 15–30 days on the server"): after the
//! copy, delete from the old server only the messages received more than N days ago whose copy
//! on the target was just read back with the same SHA-256 as the source's bytes. Anything else
//! stays: recent mail, mail without a readable date, mail not copied or not identical.

use crate::export::ArchiveTarget;
use crate::mailbox::{OnSide, Options, Side, SideName, SyncError, connect};
use crate::source::dated_listing;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use trasloco_archive::dates::parse_imap;
use trasloco_core::accounting::{CleanupItem, SourceCleanup};
use trasloco_pop3::Pop3;
use trasloco_state::State;

/// Where the copies are.
pub(crate) enum Dest<'a> {
    Imap(&'a Side),
    Archive(&'a ArchiveTarget),
}

pub(crate) async fn leave_days(
    source: &Side,
    dest: Dest<'_>,
    state: &State,
    (src_label, tgt_label): (&str, &str),
    days: u32,
    opts: &Options,
) -> Result<SourceCleanup, SyncError> {
    let mut out = SourceCleanup {
        leave_days: days,
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let mut pop = Pop3::connect(&source.endpoint, &source.tls)
        .await
        .on(SideName::Source)?;
    pop.login(&source.credentials).await.on(SideName::Source)?;
    let mailbox = state.find_mailbox(src_label, tgt_label).await?;
    let folder = match mailbox {
        Some(mb) => state.find_folder(mb, "INBOX").await?,
        None => None,
    };
    // UIDs and dates as the copy saw them; nothing is recorded from here.
    let listed = dated_listing(&mut pop, state, mailbox, false)
        .await
        .on(SideName::Source)?;
    out.on_server = listed.len() as u64;
    // Source UID → where its copy is: a target UID, or the archive item's position in INBOX.
    let archive = match &dest {
        Dest::Archive(a) => {
            let root = a.root.clone();
            let opened =
                tokio::task::spawn_blocking(move || trasloco_archive::Archive::open(&root))
                    .await
                    .ok()
                    .and_then(Result::ok);
            opened.filter(|x| x.has_manifest)
        }
        Dest::Imap(_) => None,
    };
    let copies: HashMap<u32, u32> = match (&dest, &folder, &archive) {
        (Dest::Imap(_), Some(f), _) => state
            .mappings(f.id)
            .await?
            .into_iter()
            .filter(|m| m.target_uid != 0)
            .map(|m| (m.source_uid, m.target_uid))
            .collect(),
        (Dest::Archive(_), _, Some(a)) => a
            .folders
            .iter()
            .find(|f| f.name == "INBOX")
            .map(|f| {
                f.items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, it)| {
                        let uid = it.source_id.as_deref()?.strip_prefix("1:")?.parse().ok()?;
                        Some((uid, i as u32))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => HashMap::new(),
    };
    // Old enough and copied: the candidates. Undated messages are never candidates.
    let mut candidates: Vec<(u32, u32, String, u64, String)> = Vec::new(); // number, copy, uidl, size, date
    for d in listed {
        let Some(date) = d.received else {
            out.kept_undated += 1;
            continue;
        };
        let old = parse_imap(&date).is_some_and(|t| t < cutoff);
        if !old {
            out.kept_recent += 1;
            continue;
        }
        match copies.get(&d.uid) {
            Some(at) => candidates.push((d.listed.number, *at, d.listed.uidl, d.listed.size, date)),
            None => out.kept_unverified += 1,
        }
    }
    if candidates.is_empty() {
        let _ = pop.quit().await;
        return Ok(out);
    }
    // The source's bytes, hashed now: a digest recorded at copy time is of an earlier read, and
    // a message matched by identity (not copied) has none.
    let numbers: Vec<u32> = candidates.iter().map(|c| c.0).collect();
    let mut source_sha: HashMap<u32, String> = HashMap::new();
    pop.retrieve(&numbers, &mut |n, r| {
        if let Ok(b) = r {
            source_sha.insert(n, hex::encode(Sha256::digest(&b)));
        }
    })
    .await
    .on(SideName::Source)?;
    // The copies, read back from the target.
    let at: Vec<u32> = candidates.iter().map(|c| c.1).collect();
    let mut target_sha: HashMap<u32, String> = HashMap::new();
    match (&dest, archive) {
        (Dest::Imap(target), _) => {
            let target_folder = folder
                .as_ref()
                .and_then(|f| f.target_name.clone())
                .unwrap_or_else(|| "INBOX".into());
            let mut tgt = connect(target, SideName::Target).await?;
            tgt.select(&target_folder, true)
                .await
                .on(SideName::Target)?;
            tgt.fetch_bodies(&at, &mut |u, b| {
                target_sha.insert(u, hex::encode(Sha256::digest(&b)));
            })
            .await
            .on(SideName::Target)?;
            tgt.logout().await;
        }
        (Dest::Archive(_), Some(a)) => {
            // Each archived copy is read back (and checked against its manifest digest).
            target_sha = tokio::task::spawn_blocking(move || {
                let Some(f) = a.folders.iter().find(|f| f.name == "INBOX") else {
                    return HashMap::new();
                };
                at.into_iter()
                    .filter_map(|i| {
                        let body = a.read(f.items.get(i as usize)?).ok()?;
                        Some((i, hex::encode(Sha256::digest(&body))))
                    })
                    .collect()
            })
            .await
            .unwrap_or_default();
        }
        (Dest::Archive(_), None) => {}
    }
    let mut delete = Vec::new();
    for (number, tuid, uidl, size, date) in candidates {
        match (source_sha.get(&number), target_sha.get(&tuid)) {
            (Some(a), Some(b)) if a == b => {
                delete.push(number);
                out.deletable.push(CleanupItem {
                    uidl,
                    received: date,
                    size,
                    sha256: a.clone(),
                });
            }
            _ => out.kept_unverified += 1,
        }
    }
    if opts.dry_run || delete.is_empty() {
        let _ = pop.quit().await;
        return Ok(out);
    }
    let refused = pop.delete(&delete).await.on(SideName::Source)?;
    for (r, item) in refused.iter().zip(out.deletable.iter()) {
        if let Some(why) = r {
            tracing::warn!("source: DELE of {} refused: {why}", item.uidl);
        }
    }
    // Deletions take effect with QUIT.
    pop.quit().await.on(SideName::Source)?;
    out.deleted = refused.iter().filter(|r| r.is_none()).count() as u64;
    Ok(out)
}

/// The cleanup could not run: nothing was deleted, and the report says why.
pub(crate) fn failed(days: u32, e: SyncError) -> SourceCleanup {
    let line = match e {
        SyncError::Imap { side, error } => format!("{side}: {error}"),
        SyncError::State(e) => e.to_string(),
        SyncError::Local(why) => format!("target: {why}"),
        SyncError::DailyCap(line) => line,
        SyncError::Stopped(signal) => format!("stopped by {}", crate::mailbox::signal_name(signal)),
    };
    tracing::warn!("--leave-days: nothing deleted: {line}");
    SourceCleanup {
        leave_days: days,
        error: Some(line),
        ..Default::default()
    }
}
