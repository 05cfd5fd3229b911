//! What a person reads at the end of a run, and `status`.

use std::path::Path;
use trasloco_campaign::run::RunReport;
use trasloco_core::accounting::{Buckets, MailboxReport, MailboxStatus};
use trasloco_state::{MailboxRow, PhaseRow};

fn status_word(s: MailboxStatus) -> &'static str {
    match s {
        MailboxStatus::InSync => "in sync",
        MailboxStatus::Altered => "ALTERED BY THE TARGET",
        MailboxStatus::Incomplete => "INCOMPLETE",
        MailboxStatus::DryRun => "dry run",
        MailboxStatus::Failed => "FAILED",
    }
}

fn buckets_line(b: &Buckets, dry_run: bool) -> String {
    let mut parts = vec![
        format!(
            "{} {}",
            b.copied,
            if dry_run { "to copy" } else { "copied" }
        ),
        format!("{} already present", b.already_present),
    ];
    let skipped: u64 = b.skipped.values().sum();
    if skipped > 0 {
        parts.push(format!("{skipped} skipped"));
    }
    if b.altered > 0 {
        parts.push(format!("{} altered by the target", b.altered));
    }
    if b.failed_total() > 0 {
        parts.push(format!("{} failed", b.failed_total()));
    }
    parts.join(", ")
}

fn mailbox(m: &MailboxReport, dry_run: bool) {
    println!("  {} → {}  {}", m.source, m.target, status_word(m.status));
    if let Some(e) = &m.error {
        println!("      {e}");
        if m.source_messages > 0 {
            println!(
                "      before it failed: {} messages listed: {}, {} not reached  ({:.1} MB)",
                m.source_messages,
                buckets_line(&m.buckets, dry_run),
                m.not_reached(),
                m.bytes_copied as f64 / 1e6
            );
        }
        return;
    }
    let flags = flag_changes(m);
    println!(
        "      {} messages: {}{}  ({:.1} MB in {:.1} s{})",
        m.source_messages,
        buckets_line(&m.buckets, dry_run),
        match (dry_run, flags) {
            (_, 0) => String::new(),
            (true, n) => format!(", flags to update on {n}"),
            (false, n) => format!(", flags updated on {n}"),
        },
        m.bytes_copied as f64 / 1e6,
        m.seconds,
        if m.reconnects > 0 {
            format!(", {} reconnects", m.reconnects)
        } else {
            String::new()
        } + &if m.token_renewals > 0 {
            format!(", {} logins with a renewed OAuth2 token", m.token_renewals)
        } else {
            String::new()
        } + &if m.session_resets > 0 {
            format!(
                ", {} new sessions before the target's error limit",
                m.session_resets
            )
        } else {
            String::new()
        } + &if m.throttled > 0 {
            format!(
                ", throttled {} time(s), {:.0} s waiting",
                m.throttled, m.throttled_seconds
            )
        } else {
            String::new()
        }
    );
    if !m.pec.is_empty() {
        println!("      PEC: {}", pec_line(&m.pec));
    }
    for f in &m.skipped_files {
        println!("      file left out: {f}");
    }
    for w in &m.warnings {
        println!("      note: {w}");
    }
    if let Some(c) = &m.source_cleanup {
        match &c.error {
            Some(e) => println!("      --leave-days {}: nothing deleted: {e}", c.leave_days),
            None => {
                let n = c.deletable.len();
                let verb = if c.dry_run {
                    format!("{n} would be deleted")
                } else {
                    format!("{} deleted", c.deleted)
                };
                println!(
                    "      source server, mail older than {} days: {verb}; kept {} recent, {} without a date, {} not verified on the target",
                    c.leave_days, c.kept_recent, c.kept_undated, c.kept_unverified
                );
                if c.dry_run {
                    for i in c.deletable.iter().take(20) {
                        println!(
                            "        would delete {} received {} ({} bytes)",
                            i.uidl, i.received, i.size
                        );
                    }
                    if n > 20 {
                        println!("        … {} more in the JSON report", n - 20);
                    }
                }
            }
        }
    }
    if m.not_read_back > 0 {
        println!(
            "      {} copies not read back yet (the run ended before it got to them): the next run reads them back",
            m.not_read_back
        );
    }
    for f in &m.folders {
        if let Some(e) = &f.error {
            println!("      folder {}: {e}", f.source);
        }
        for e in f.errors.iter().take(5) {
            match &e.place {
                Some(p) => println!("      {p} ({} bytes): {}", e.size, e.reason),
                None => println!(
                    "      {} UID {} ({} bytes): {}",
                    f.source, e.uid, e.size, e.reason
                ),
            }
        }
        if f.replaced > 0 {
            println!(
                "      {}: {} messages copied again whole, their earlier cut copies removed (the archive file was completed)",
                f.source, f.replaced
            );
        }
        if f.late_removed > 0 {
            println!(
                "      {}: removed {} copies a stopped run's unanswered APPENDs stored late, beside the copies made since (same bytes)",
                f.target, f.late_removed
            );
        }
        for b in f.pec_broken.iter().take(5) {
            println!("      PEC signature broken (copied as it is, recorded as broken): {b}");
        }
        for a in f.altered.iter().take(5) {
            println!("      {} {}", f.source, a.describe());
        }
        if f.buckets.altered > 5 {
            println!(
                "      {}: {} more altered copies in the JSON report",
                f.source,
                f.buckets.altered - 5
            );
        }
        if !f.dropped_keywords.is_empty() {
            let list: Vec<String> = f
                .dropped_keywords
                .iter()
                .map(|(k, n)| format!("{k} ×{n}"))
                .collect();
            println!(
                "      {}: keywords the target does not accept (dropped): {}",
                f.target,
                list.join(", ")
            );
        }
    }
}

/// `12 messages: 8 valid, 1 broken` from verdict counts.
fn pec_line(by_verdict: &std::collections::BTreeMap<String, u64>) -> String {
    let total: u64 = by_verdict.values().sum();
    let parts: Vec<String> = by_verdict.iter().map(|(v, n)| format!("{n} {v}")).collect();
    format!("{total} messages: {}", parts.join(", "))
}

/// Flag changes in a mailbox's folders (made, or in a dry run pending).
fn flag_changes(m: &MailboxReport) -> u64 {
    m.folders.iter().map(|f| f.flags_updated).sum()
}

pub fn print(r: &RunReport, path: Result<&Path, String>) {
    println!();
    if r.dry_run {
        // Nothing was copied: say what would be, and never "in sync" for a mailbox that is not.
        let pending = r
            .mailboxes
            .iter()
            .filter(|m| {
                m.status == MailboxStatus::DryRun && (m.buckets.copied > 0 || flag_changes(m) > 0)
            })
            .count();
        let idle = r
            .mailboxes
            .iter()
            .filter(|m| m.status == MailboxStatus::DryRun)
            .count()
            - pending;
        println!(
            "trasloco: dry run finished in {:.1} s — {} mailboxes: {pending} with something to copy or update, {idle} with nothing to do, {} failed",
            r.seconds,
            r.mailboxes.len(),
            r.mailboxes_failed
        );
    } else {
        println!(
            "trasloco: run finished in {:.1} s — {} mailboxes: {} in sync, {}{} incomplete, {} failed",
            r.seconds,
            r.mailboxes.len(),
            r.mailboxes_in_sync,
            if r.mailboxes_altered > 0 {
                format!(
                    "{} with copies altered by the target, ",
                    r.mailboxes_altered
                )
            } else {
                String::new()
            },
            r.mailboxes_incomplete,
            r.mailboxes_failed
        );
    }
    if let Some(p) = r.phase {
        println!("Phase: {}", p.name());
    }
    for m in &r.mailboxes {
        mailbox(m, r.dry_run);
        if let Some(a) = r.archives.iter().find(|a| a.source == m.source) {
            println!(
                "      older part → local archive {}: {}",
                a.target,
                status_word(a.status)
            );
            match &a.error {
                Some(e) => println!("      {e}"),
                None => println!(
                    "      {} messages: {}",
                    a.source_messages,
                    buckets_line(&a.buckets, r.dry_run)
                ),
            }
        }
    }
    for l in &r.left_out {
        println!(
            "  {} → {}  {} ({}): {}",
            l.source,
            l.target,
            l.action.label().to_uppercase(),
            l.rule.as_deref().unwrap_or("-"),
            l.reasons.join("; ")
        );
    }
    let t = &r.totals;
    println!(
        "Messages on the sources: {} = {} {} + {} already present + {}{} skipped + {} failed{}",
        r.source_messages,
        t.copied,
        if r.dry_run {
            "would be copied"
        } else {
            "copied"
        },
        t.already_present,
        if t.altered > 0 {
            format!("{} altered by the target + ", t.altered)
        } else {
            String::new()
        },
        t.skipped.values().sum::<u64>(),
        t.failed_total(),
        match r
            .mailboxes
            .iter()
            .map(MailboxReport::not_reached)
            .sum::<u64>()
        {
            0 => String::new(),
            n => format!(" + {n} not reached (mailboxes that stopped part-way)"),
        }
    );
    for (rule, n) in &t.skipped {
        println!("  skipped by rule {rule}: {n}");
    }
    if !r.pec.is_empty() {
        println!(
            "PEC messages copied and checked: {} (evidence in pec-evidence.jsonl)",
            pec_line(&r.pec)
        );
    }
    for (why, n) in &t.failed {
        println!("  failed, {why}: {n}");
    }
    if r.dry_run {
        let flags: u64 = r.mailboxes.iter().map(flag_changes).sum();
        println!(
            "Dry run: nothing was copied, changed or recorded. A run would copy {} messages and change the flags of {flags}.",
            t.copied
        );
    } else {
        println!(
            "Copied {:.1} MB, {:.0} messages/s. {}",
            r.bytes_copied as f64 / 1e6,
            r.messages_per_second,
            if r.mailboxes.is_empty() && !r.left_out.is_empty() {
                if r.exit_code == 0 {
                    "Nothing to move: every mailbox of the campaign is skipped by a rule (above)."
                        .to_string()
                } else {
                    "Nothing was copied: every mailbox of the campaign is skipped or blocked (above); a blocked one needs a decision (see its reason), then `trasloco plan` again."
                        .to_string()
                }
            } else if let Some(by) = &r.stopped_by {
                let waiting = r
                    .mailboxes
                    .iter()
                    .filter(|m| {
                        m.error
                            .as_deref()
                            .is_some_and(|e| e.starts_with("not started"))
                    })
                    .count();
                format!(
                    "Stopped by {by}: the batches in flight were finished and recorded{}. Run the same command again; it resumes.",
                    match waiting {
                        0 => String::new(),
                        n => format!(", {n} mailbox(es) not started"),
                    }
                )
            } else if r.exit_code == 0 {
                "Everything is in sync.".to_string()
            } else if r.exit_code == 2 {
                let capped = r
                    .mailboxes
                    .iter()
                    .filter(|m| {
                        m.error
                            .as_deref()
                            .is_some_and(|e| e.contains("daily upload cap"))
                    })
                    .count();
                match capped {
                    0 => "Not everything was copied: run the same command again; it resumes."
                        .to_string(),
                    n => format!(
                        "Not everything was copied: {n} mailbox(es) reached the target's daily upload cap (the day they go on is above); run the same command again then, or now for the others; it resumes."
                    ),
                }
            } else if r.exit_code == 3 {
                "Every message has a copy, but the target stored some with other bytes (listed above): \
                 copying again would not help; keep the originals on the source or in an archive."
                    .to_string()
            } else {
                "Some mailboxes could not be synchronised; see above.".to_string()
            }
        );
    }
    match path {
        Ok(p) => println!("Report: {}", p.display()),
        Err(why) => println!(
            "Report NOT written: {why}; free some space or choose another folder (--reports, campaign: run.reports)"
        ),
    }
}

/// A mailbox as the plan decided it.
pub struct Planned {
    pub source: String,
    pub target: String,
    pub decision: String,
    pub reasons: String,
}

fn is_archive(target: &str) -> bool {
    ["maildir:", "mbox:", "eml:"]
        .iter()
        .any(|p| target.starts_with(p))
}

/// One line of `status`: a mailbox with its decision, what the state knows of it on the
/// target, in its quota archive, and its phases.
struct StatusLine<'a> {
    source: &'a str,
    target: &'a str,
    decision: &'a str,
    reasons: &'a str,
    row: Option<&'a MailboxRow>,
    archive: Option<&'a MailboxRow>,
    phases: Vec<&'a PhaseRow>,
}

pub fn status(
    rows: &[MailboxRow],
    phases: &[PhaseRow],
    plan: &[Planned],
    queue: &[trasloco_state::QueueRow],
    json: bool,
) {
    // A mailbox in the shared queue: held by a worker now (with its progress), or waiting.
    let queued = |source: &str, target: &str| {
        queue
            .iter()
            .find(|q| q.source == source && q.target == target && q.state != "done")
    };
    let live = |q: &trasloco_state::QueueRow| {
        let progress: serde_json::Value = q
            .progress
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default();
        let held = q.state == "leased" && q.lease_left_ms.is_some_and(|ms| ms >= 0);
        (held, progress)
    };
    let phases_of = |r: &MailboxRow| -> Vec<&PhaseRow> {
        phases
            .iter()
            .filter(|p| p.source == r.source && p.target == r.target)
            .collect()
    };
    // The plan's accounts in its order, then whatever else the state knows (runs without a
    // plan, migrate commands); a quota archive is shown on its mailbox's line.
    let archive_of = |source: &str| {
        rows.iter()
            .find(|r| r.source == source && is_archive(&r.target))
    };
    let mut lines: Vec<StatusLine> = Vec::new();
    for p in plan {
        let row = rows
            .iter()
            .find(|r| r.source == p.source && r.target == p.target);
        lines.push(StatusLine {
            source: &p.source,
            target: &p.target,
            decision: &p.decision,
            reasons: &p.reasons,
            row,
            archive: archive_of(&p.source),
            phases: row.map(phases_of).unwrap_or_default(),
        });
    }
    for r in rows.iter().filter(|r| !is_archive(&r.target)) {
        if lines
            .iter()
            .any(|l| l.source == r.source && l.target == r.target)
        {
            continue;
        }
        lines.push(StatusLine {
            source: &r.source,
            target: &r.target,
            decision: "",
            reasons: "",
            row: Some(r),
            archive: archive_of(&r.source),
            phases: phases_of(r),
        });
    }
    let status_of = |l: &StatusLine| -> String {
        if let Some(q) = queued(l.source, l.target) {
            return match live(q) {
                (true, _) => "copying".into(),
                (false, _) if q.state == "leased" => "lease ran out".into(),
                _ => "queued".into(),
            };
        }
        match (l.row.and_then(|r| r.status.as_deref()), l.decision) {
            (Some(s), _) => s.to_string(),
            (None, "skip") => "skipped".into(),
            (None, "blocked") => "blocked".into(),
            (None, _) => "never run".into(),
        }
    };
    if json {
        let v: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| {
                serde_json::json!({
                    "source": l.source,
                    "target": l.target,
                    "decision": (!l.decision.is_empty()).then_some(l.decision),
                    "reasons": (!l.reasons.is_empty()).then_some(l.reasons),
                    "status": status_of(l),
                    "finished_at": l.row.and_then(|r| r.finished_at.clone()),
                    "messages_recorded": l.row.map_or(0, |r| r.messages_recorded),
                    "archived": l.archive
                        .and_then(|a| trasloco_campaign::report::archive_holds(&a.target))
                        .map_or(0, |(n, _)| n),
                    "phases": l.phases.iter().map(|p| serde_json::json!({
                        "phase": p.phase,
                        "status": p.status,
                        "finished_at": p.finished_at,
                        "copied": p.copied,
                    })).collect::<Vec<_>>(),
                    "last_report": l.row.and_then(|r| r.report_json.as_deref()).and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok()),
                    "queue": queued(l.source, l.target).map(|q| serde_json::json!({
                        "state": q.state,
                        "phase": q.phase,
                        "worker": q.worker,
                        "lease_left_ms": q.lease_left_ms,
                        "progress": live(q).1,
                    })),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    println!(
        "{:<32} {:<32} {:<16} {:<12} {:>9} {:>8} {:>8} {:<20}  PHASES",
        "SOURCE", "TARGET", "DECISION", "STATUS", "ON TARGET", "ARCHIVED", "FAILED", "LAST RUN"
    );
    for l in &lines {
        let failed = l
            .row
            .and_then(|r| r.report_json.as_deref())
            .and_then(|j| serde_json::from_str::<MailboxReport>(j).ok())
            .map(|m| m.buckets.failed_total().to_string())
            .unwrap_or_default();
        let done: Vec<String> = l
            .phases
            .iter()
            .map(|p| format!("{} {}", p.phase, p.status))
            .collect();
        let tail = match queued(l.source, l.target) {
            Some(q) if live(q).0 => {
                let p = live(q).1;
                format!(
                    "  (worker {}: {} copied so far, folder {})",
                    q.worker.as_deref().unwrap_or("?"),
                    p["copied"].as_i64().unwrap_or(0),
                    p["folder"]
                        .as_str()
                        .filter(|f| !f.is_empty())
                        .unwrap_or("-")
                )
            }
            _ if !l.reasons.is_empty() && l.row.is_none() => format!("  ({})", l.reasons),
            _ => String::new(),
        };
        println!(
            "{:<32} {:<32} {:<16} {:<12} {:>9} {:>8} {:>8} {:<20}  {}{tail}",
            l.source,
            l.target,
            if l.decision.is_empty() {
                "-"
            } else {
                l.decision
            },
            status_of(l),
            l.row.map_or(0, |r| r.messages_recorded),
            l.archive
                .and_then(|a| trasloco_campaign::report::archive_holds(&a.target))
                .map_or("-".to_string(), |(n, _)| n.to_string()),
            failed,
            l.row.and_then(|r| r.finished_at.as_deref()).unwrap_or("-"),
            if done.is_empty() {
                "-".to_string()
            } else {
                done.join(", ")
            }
        );
    }
}

/// `trasloco workers`: one line per worker, the queue's counts, servers backing off.
pub fn workers(
    workers: &[trasloco_state::WorkerRow],
    queue: &[trasloco_state::QueueRow],
    backoffs: &[(String, i64, String)],
    lease_ms: i64,
    json: bool,
) {
    let count = |state: &str| queue.iter().filter(|q| q.state == state).count();
    if json {
        let v = serde_json::json!({
            "workers": workers,
            "queue": {"waiting": count("waiting"), "leased": count("leased"), "done": count("done")},
            "backing_off": backoffs.iter().map(|(h, ms, why)| serde_json::json!({
                "server": h, "seconds_left": ms / 1000, "reason": why,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    println!(
        "{:<24} {:>8} {:<10} {:>10} {:>9} {:>9} {:>9}  NOW",
        "HOST", "PID", "STATE", "HEARTBEAT", "MAILBOXES", "MESSAGES", "MSG/S"
    );
    for w in workers {
        let state = match (w.stopped, w.heartbeat_age_ms) {
            (true, _) => "stopped",
            // Heartbeats come every quarter lease: a worker silent for a whole lease has lost
            // its mailboxes to the others (killed, cut off, paused).
            (false, ms) if ms > lease_ms => "silent",
            _ => "working",
        };
        let rate = if w.seconds > 0.0 {
            format!("{:.1}", w.copied as f64 / w.seconds)
        } else {
            "-".into()
        };
        println!(
            "{:<24} {:>8} {:<10} {:>9}s {:>9} {:>9} {:>9}  {}",
            w.host,
            w.pid,
            state,
            w.heartbeat_age_ms / 1000,
            w.mailboxes,
            w.copied,
            rate,
            w.mailbox.as_deref().unwrap_or("-")
        );
    }
    println!(
        "queue: {} waiting, {} held, {} done",
        count("waiting"),
        count("leased"),
        count("done")
    );
    for (host, ms, why) in backoffs {
        println!(
            "server {host}: no new mailbox for {} s ({why})",
            (ms + 999) / 1000
        );
    }
}
