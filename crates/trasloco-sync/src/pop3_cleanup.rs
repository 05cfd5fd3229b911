//! `--leave-days N` for POP3 sources (seed 003: "leave 15–30 days on the server"): after the
//! copy, delete from the old server only the messages received more than N days ago whose copy
//! on the target was just read back with the same SHA-256 as the source's bytes. Anything else
//! stays: recent mail, mail without a readable date, mail not copied or not identical.

use crate::mailbox::{OnSide, Options, Side, SideName, SyncError, connect};
use crate::source::received_date;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use trasloco_archive::dates::parse_imap;
use trasloco_core::accounting::{CleanupItem, SourceCleanup};
use trasloco_pop3::Pop3;
use trasloco_state::State;

pub(crate) async fn leave_days(
    source: &Side,
    target: &Side,
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
    let listed = pop.listing().await.on(SideName::Source)?;
    out.on_server = listed.len() as u64;
    let mailbox = state.find_mailbox(src_label, tgt_label).await?;
    let folder = match mailbox {
        Some(mb) => state.find_folder(mb, "INBOX").await?,
        None => None,
    };
    let uidls: Vec<String> = listed.iter().map(|l| l.uidl.clone()).collect();
    let uids = state.pop3_uids(mailbox, &uidls, false).await?;
    let copies: HashMap<u32, (u32, Option<String>)> = match &folder {
        Some(f) => state
            .copies(f.id)
            .await?
            .into_iter()
            .map(|(s, t, sha)| (s, (t, sha)))
            .collect(),
        None => HashMap::new(),
    };
    // Old enough and copied: the candidates. Undated messages are never candidates.
    let mut undated = Vec::new();
    let mut candidates: Vec<(u32, u32, String, u64, String)> = Vec::new(); // number, target uid, uidl, size, date
    let mut dates: HashMap<u32, String> = HashMap::new();
    for l in &listed {
        match uids.get(&l.uidl) {
            Some((_, Some(d))) => {
                dates.insert(l.number, d.clone());
            }
            _ => undated.push(l.number),
        }
    }
    if !undated.is_empty() {
        pop.headers(&undated, &mut |n, r| {
            if let Ok(h) = r
                && let Some(d) = received_date(&h)
            {
                dates.insert(n, d);
            }
        })
        .await
        .on(SideName::Source)?;
    }
    for l in &listed {
        let Some(date) = dates.get(&l.number) else {
            out.kept_undated += 1;
            continue;
        };
        let old = parse_imap(date).is_some_and(|t| t < cutoff);
        if !old {
            out.kept_recent += 1;
            continue;
        }
        match uids.get(&l.uidl).and_then(|(uid, _)| copies.get(uid)) {
            Some((tuid, _)) if *tuid != 0 => {
                candidates.push((l.number, *tuid, l.uidl.clone(), l.size, date.clone()))
            }
            _ => out.kept_unverified += 1,
        }
    }
    if candidates.is_empty() {
        let _ = pop.quit().await;
        return Ok(out);
    }
    // The source's bytes, hashed now: the state's digest is of an earlier read, and a matched
    // (not copied) message has none.
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
    let target_folder = folder
        .as_ref()
        .and_then(|f| f.target_name.clone())
        .unwrap_or_else(|| "INBOX".into());
    let mut tgt = connect(target, SideName::Target).await?;
    tgt.select(&target_folder, true).await.on(SideName::Target)?;
    let tuids: Vec<u32> = candidates.iter().map(|c| c.1).collect();
    let mut target_sha: HashMap<u32, String> = HashMap::new();
    tgt.fetch_bodies(&tuids, &mut |u, b| {
        target_sha.insert(u, hex::encode(Sha256::digest(&b)));
    })
    .await
    .on(SideName::Target)?;
    tgt.logout().await;
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
