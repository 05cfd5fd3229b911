//! Export: a mailbox (IMAP or POP3) into a local archive, with the same buckets, resume and
//! report as a server-to-server copy. The archive's manifest is its state: a re-run skips what
//! is recorded there, a killed run is repaired when the archive is opened again.

use crate::budget::Reservation;
use crate::folder::{batches, fail};
use crate::mailbox::{OnSide, Options, Progress, SideName, SyncError, mailbox_ids};
use crate::source::{Source, SourceConn};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;
use trasloco_archive::{Format, Layout, Writer, manifest};
use trasloco_core::accounting::{FolderReport, MailboxReport};
use trasloco_imap::FetchedMeta;
use trasloco_state::State;

/// A local archive to write.
#[derive(Debug, Clone)]
pub struct ArchiveTarget {
    /// Directory (created when missing; must be empty or an archive of the same format).
    pub root: PathBuf,
    /// Format.
    pub format: Format,
    /// Maildir folder layout (Maildir++ by default).
    pub layout: Option<Layout>,
}

impl ArchiveTarget {
    /// How reports and the state name it.
    pub fn label(&self) -> String {
        format!("{}:{}", self.format, self.root.display())
    }
}

/// An archive's own problem is a local one (exit 64), never a server's refusal.
fn archive_failure(e: trasloco_archive::Error) -> SyncError {
    SyncError::Local(e.message)
}

/// Export one mailbox. Never panics; every failure is in the report with a one-line reason.
pub async fn export_mailbox(
    source: &Source,
    target: &ArchiveTarget,
    state: &State,
    opts: &Options,
    progress: &dyn Progress,
) -> MailboxReport {
    let started = Instant::now();
    let (src_label, tgt_label) = (source.label(), target.label());
    let mut folders = Vec::new();
    let mut notes = Vec::new();
    let result = export_once(
        source,
        target,
        state,
        opts,
        progress,
        &mut folders,
        &mut notes,
    )
    .await;
    let mut report = match result {
        Ok(()) => {
            let mut r = MailboxReport::new(src_label, tgt_label);
            r.folders = folders;
            r.finish(opts.dry_run);
            r
        }
        Err(e) => {
            let (class, line) = e.describe(&src_label, &tgt_label);
            let mut r = MailboxReport::failed(src_label, tgt_label, class, line);
            r.folders = folders;
            r
        }
    };
    if let (Source::Pop3(side), Some(days), true) = (
        source,
        opts.leave_days,
        report.status != trasloco_core::accounting::MailboxStatus::Failed,
    ) {
        let names = (report.source.clone(), report.target.clone());
        let dest = crate::pop3_cleanup::Dest::Archive(target);
        report.source_cleanup = Some(
            match crate::pop3_cleanup::leave_days(
                side,
                dest,
                state,
                (&names.0, &names.1),
                days,
                opts,
            )
            .await
            {
                Ok(c) => c,
                Err(e) => crate::pop3_cleanup::failed(days, e),
            },
        );
    }
    report.warnings = notes;
    report.seconds = started.elapsed().as_secs_f64();
    report
}

async fn export_once(
    source: &Source,
    target: &ArchiveTarget,
    state: &State,
    opts: &Options,
    progress: &dyn Progress,
    reports: &mut Vec<FolderReport>,
    notes: &mut Vec<String>,
) -> Result<(), SyncError> {
    let (src_label, tgt_label) = (source.label(), target.label());
    let (_, owner) = mailbox_ids(state, &src_label, &tgt_label, opts.dry_run).await?;
    let mut src = SourceConn::open(source, state, owner, !opts.dry_run, opts.pop3_seen)
        .await
        .on(SideName::Source)?;
    // A dry run only reads the manifest; a real run opens (and repairs) the archive.
    let mut writer = if opts.dry_run {
        None
    } else {
        Some(
            Writer::open(&target.root, target.format, target.layout, &src_label)
                .map_err(archive_failure)?,
        )
    };
    if let Some(w) = &writer {
        for p in w.unrecorded() {
            notes.push(format!(
                "{}: not in the archive's manifest and not written by trasloco: left alone",
                p.display()
            ));
        }
    }
    let recorded = if opts.dry_run {
        manifest::load(&target.root)
            .map_err(archive_failure)?
            .map(|m| m.recorded_ids())
            .unwrap_or_default()
    } else {
        HashMap::new()
    };
    // What this run wrote, read back at the end against the digests taken from the source.
    let mut written: Vec<manifest::Entry> = Vec::new();
    let folders = src.folders().await.on(SideName::Source)?;
    for f in folders
        .iter()
        .filter(|f| f.selectable && opts.selected(&f.name, f.role()))
    {
        // Archive folder names use `/` between levels whatever the source's delimiter.
        let name = match f.delimiter {
            Some(d) if d != '/' => f.name.replace(d, "/"),
            _ => f.name.clone(),
        };
        progress.folder(&f.name);
        reports.push(FolderReport {
            source: f.name.clone(),
            target: name.clone(),
            ..Default::default()
        });
        let report = reports.last_mut().expect("just pushed");
        let t0 = Instant::now();
        if let Some(rule) = opts.folder_rule(&f.name, f.role(), f.delimiter) {
            let n = src.count(&f.name).await.on(SideName::Source)?;
            report.source_messages = u64::from(n);
            if n > 0 {
                report.buckets.skipped.insert(rule.into(), u64::from(n));
            }
            continue;
        }
        if let Some(w) = writer.as_mut() {
            w.folder(&name, f.subscribed).map_err(archive_failure)?;
        }
        let (uv, meta) = src.select_and_list(&f.name).await.on(SideName::Source)?;
        report.source_messages = meta.len() as u64;
        report.source_bytes = meta.iter().map(|m| m.size).sum();
        let id = |m: &FetchedMeta| format!("{uv}:{}", m.uid);
        let todo: Vec<&FetchedMeta> = meta
            .iter()
            .filter(|m| match opts.date_rule(m.internal_date.as_deref()) {
                Some(rule) => {
                    report.buckets.skip(rule);
                    false
                }
                None => true,
            })
            .filter(|m| match &writer {
                Some(w) => !w.has(&name, &id(m)),
                None => !recorded.get(&name).is_some_and(|s| s.contains(&id(m))),
            })
            .collect();
        report.buckets.already_present +=
            (meta.len() - todo.len()) as u64 - report.buckets.skipped.values().sum::<u64>();
        progress.planned(todo.len() as u64, todo.iter().map(|m| m.size).sum());
        let Some(w) = writer.as_mut() else {
            report.buckets.copied += todo.len() as u64;
            continue;
        };
        // Flags changed on the source since a message was archived are carried over, as a
        // migration carries them (marked unread again, flagged, answered…).
        for m in &meta {
            if opts.date_rule(m.internal_date.as_deref()).is_none()
                && w.has(&name, &id(m))
                && w.update_flags(&name, &id(m), &m.flags)
                    .map_err(archive_failure)?
            {
                report.flags_updated += 1;
            }
        }
        let by_uid: HashMap<u32, &FetchedMeta> = todo.iter().map(|m| (m.uid, *m)).collect();
        let sizes = todo.iter().map(|m| (m.uid, m.size));
        for batch in batches(sizes, opts.batch_bytes, opts.batch_messages) {
            let bytes: u64 = batch.iter().map(|u| by_uid[u].size).sum();
            let held: Reservation = opts.memory.reserve(bytes).await;
            let mut got: BTreeMap<u32, Result<Bytes, String>> = BTreeMap::new();
            src.bodies(&batch, &mut |u, r| {
                got.insert(u, r);
            })
            .await
            .on(SideName::Source)?;
            report.bodies_fetched += got.len() as u64;
            let (mut stored, mut stored_bytes) = (0, 0);
            for (uid, r) in got {
                let m = by_uid[&uid];
                let body = match r {
                    Ok(b) => b,
                    Err(why) => {
                        let reason = "source: message unreadable".to_string();
                        fail(report, uid, m.size, reason, why);
                        continue;
                    }
                };
                let date = m.internal_date.as_deref();
                match w
                    .write(&name, Some(id(m)), &m.flags, date, &body)
                    .map_err(archive_failure)?
                {
                    Some(entry) => {
                        stored += 1;
                        stored_bytes += body.len() as u64;
                        written.push(entry);
                    }
                    // The same bytes were archived under an id the source no longer uses.
                    None => report.buckets.already_present += 1,
                }
            }
            drop(held);
            report.buckets.copied += stored;
            report.bytes_copied += stored_bytes;
            progress.copied(stored, stored_bytes);
        }
        report.seconds = t0.elapsed().as_secs_f64();
    }
    src.logout().await;
    if let Some(w) = writer {
        w.finish().map_err(archive_failure)?;
        if opts.verify {
            // Read back what this run wrote (not the whole archive: an unchanged re-export
            // reads nothing); `trasloco archive verify` checks everything.
            let root = target.root.clone();
            let problems = tokio::task::spawn_blocking(move || {
                trasloco_archive::verify_entries(&root, &written)
            })
            .await
            .map_err(|e| archive_failure(trasloco_archive::Error::new(e.to_string())))?;
            if let Some(first) = problems.first() {
                return Err(archive_failure(trasloco_archive::Error::new(format!(
                    "{} messages written in this run do not read back as they were fetched; first: {first}",
                    problems.len()
                ))));
            }
            for r in reports.iter_mut() {
                r.verified = r.buckets.copied;
            }
        }
    }
    Ok(())
}
