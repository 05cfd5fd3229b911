//! `trasloco report`: the campaign for people — a self-contained HTML page (totals, progress
//! per phase, a sortable and filterable table of mailboxes, charts, skipped and blocked lists
//! with reasons), a CSV with one row per mailbox, and the same data as JSON.

use crate::ConfigError;
use crate::config::Campaign;
use crate::html::{self, Cell};
use crate::plan::{Plan, css_class};
use crate::rules::{Action, human_bytes};
use crate::run::RunReport;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use trasloco_core::accounting::MailboxReport;
use trasloco_state::State;

/// One mailbox in the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    /// Source account.
    pub source: String,
    /// Target account.
    pub target: String,
    /// The plan's decision (`migrate`, `migrate+archive`, `skip`, `blocked`), if planned.
    pub decision: String,
    /// Why, for skipped and blocked mailboxes.
    pub reasons: String,
    /// Last status (`in-sync`, `incomplete`, `failed`), or `not run`.
    pub status: String,
    /// Phases run, in order, with their outcome.
    pub phases: String,
    /// Messages on the source at the last run.
    pub source_messages: u64,
    /// Messages recorded on the target.
    pub on_target: u64,
    /// Messages copied over all runs.
    pub copied: u64,
    /// Bytes copied over all runs.
    pub bytes_copied: u64,
    /// Messages that failed in the last run.
    pub failed: u64,
    /// Messages left out by rules in the last run.
    pub skipped: u64,
    /// Messages in the quota archive.
    pub archived: u64,
    /// `nothing-lost`, `missing` or `failed` from the last `trasloco verify`.
    pub verified: String,
    /// When the mailbox last ran.
    pub last_run: String,
}

/// The report data.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Campaign name.
    pub campaign: Option<String>,
    /// When the report was made.
    pub created_at: String,
    /// Per mailbox.
    pub mailboxes: Vec<Row>,
    /// Cumulative (time, messages, bytes) after each run.
    pub progress: Vec<(String, u64, u64)>,
    /// Mailboxes per status.
    pub by_status: BTreeMap<String, usize>,
    /// Mailboxes per phase that finished it in sync.
    pub by_phase: BTreeMap<String, usize>,
}

fn is_archive(target: &str) -> bool {
    ["maildir:", "mbox:", "eml:"]
        .iter()
        .any(|p| target.starts_with(p))
}

/// What a quota archive holds, from its manifest (an archive's copies are recorded there, not
/// in the state): messages and bytes. The archive is named by its label, `maildir:/path`.
pub fn archive_holds(target: &str) -> Option<(u64, u64)> {
    let root = ["maildir:", "mbox:", "eml:"]
        .iter()
        .find_map(|p| target.strip_prefix(p))?;
    let m = trasloco_archive::manifest::load(Path::new(root)).ok()??;
    Some((
        m.entries.len() as u64,
        m.entries.iter().map(|e| e.size).sum(),
    ))
}

/// Gather the report from the state, the run reports, the plan and the last verification.
pub async fn gather(campaign: &Campaign, state: &State) -> Result<Report, ConfigError> {
    let e = |e: trasloco_state::Error| ConfigError(e.to_string());
    let plan: Option<Plan> = crate::plan::load(&campaign.plan_path())?;
    let mailboxes = state.mailboxes().await.map_err(e)?;
    let phases = state.phases().await.map_err(e)?;
    let runs = state.runs().await.map_err(e)?;
    let verified: BTreeMap<String, String> =
        std::fs::read_to_string(campaign.reports_dir().join("verify.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("mailboxes").and_then(|m| m.as_array()).cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|m| {
                Some((
                    m.get("source")?.as_str()?.to_string(),
                    m.get("verdict")?.as_str()?.to_string(),
                ))
            })
            .collect();
    // Totals over time (from the runs' reports: when they finished).
    let (mut progress, mut msgs, mut bytes) = (Vec::new(), 0u64, 0u64);
    for r in &runs {
        let Some(report) = r
            .report_path
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str::<RunReport>(&t).ok())
        else {
            continue;
        };
        if progress.is_empty() {
            // The curves start at zero when the first run started.
            progress.push((report.started_at.clone(), 0, 0));
        }
        msgs += report.totals.copied;
        bytes += report.bytes_copied;
        progress.push((report.finished_at.clone(), msgs, bytes));
    }
    let mut rows: Vec<Row> = Vec::new();
    let archives: BTreeMap<&str, &trasloco_state::MailboxRow> = mailboxes
        .iter()
        .filter(|m| is_archive(&m.target))
        .map(|m| (m.source.as_str(), m))
        .collect();
    for m in mailboxes.iter().filter(|m| !is_archive(&m.target)) {
        let last: Option<MailboxReport> = m
            .report_json
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok());
        // Campaign totals from the state, whatever ran last: a killed run's copies are
        // recorded there although it wrote no report, and the archive holds what every phase
        // sent to it.
        let (archived, archived_bytes) = archives
            .get(m.source.as_str())
            .and_then(|a| archive_holds(&a.target))
            .unwrap_or_default();
        let (c, b) = (
            m.messages_copied as u64 + archived,
            m.bytes_copied as u64 + archived_bytes,
        );
        rows.push(Row {
            source: m.source.clone(),
            target: m.target.clone(),
            status: m.status.clone().unwrap_or_else(|| "not run".into()),
            phases: phases
                .iter()
                .filter(|p| p.source == m.source && p.target == m.target)
                .map(|p| format!("{} {}", p.phase, p.status))
                .collect::<Vec<_>>()
                .join(", "),
            source_messages: last.as_ref().map_or(0, |r| r.source_messages),
            on_target: m.messages_recorded as u64,
            copied: c,
            bytes_copied: b,
            failed: last.as_ref().map_or(0, |r| r.buckets.failed_total()),
            skipped: last
                .as_ref()
                .map_or(0, |r| r.buckets.skipped.values().sum()),
            archived,
            verified: verified.get(&m.source).cloned().unwrap_or_default(),
            last_run: m.finished_at.clone().unwrap_or_default(),
            ..Default::default()
        });
    }
    if let Some(plan) = &plan {
        for p in &plan.mailboxes {
            let reasons = p.decision.reasons.join("; ");
            match rows.iter_mut().find(|r| r.source == p.source) {
                Some(r) => {
                    r.decision = p.decision.action.label().into();
                    r.reasons = reasons;
                }
                None => rows.push(Row {
                    source: p.source.clone(),
                    target: p.target.clone(),
                    decision: p.decision.action.label().into(),
                    reasons,
                    status: match p.decision.action {
                        Action::Skip => "skipped".into(),
                        Action::Blocked => "blocked".into(),
                        _ => "not run".into(),
                    },
                    source_messages: p.messages,
                    ..Default::default()
                }),
            }
        }
    }
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rows {
        *by_status.entry(r.status.clone()).or_default() += 1;
    }
    let mut by_phase: BTreeMap<String, usize> = BTreeMap::new();
    for p in phases.iter().filter(|p| p.status == "in-sync") {
        *by_phase.entry(p.phase.clone()).or_default() += 1;
    }
    Ok(Report {
        campaign: campaign.file.name.clone(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        mailboxes: rows,
        progress,
        by_status,
        by_phase,
    })
}

fn action_of(label: &str) -> Option<Action> {
    [
        Action::Migrate,
        Action::MigrateWithArchive,
        Action::Skip,
        Action::Blocked,
    ]
    .into_iter()
    .find(|a| a.label() == label)
}

fn html_text(r: &Report) -> String {
    let n = |v: u64| Cell::Num(v.to_string(), v as f64);
    let total = |f: fn(&Row) -> u64| r.mailboxes.iter().map(f).sum::<u64>();
    let mut body = format!(
        "<h1>Rapporto di migrazione / Migration report{}</h1><p class=\"sub\">{}</p>",
        r.campaign
            .as_deref()
            .map(|c| format!(": {}", html::esc(c)))
            .unwrap_or_default(),
        html::esc(&r.created_at)
    );
    body.push_str(&html::cards(&[
        ("mailboxes / caselle", r.mailboxes.len().to_string()),
        (
            "in sync",
            r.by_status.get("in-sync").copied().unwrap_or(0).to_string(),
        ),
        (
            "messages copied / messaggi copiati",
            total(|x| x.copied).to_string(),
        ),
        ("moved / trasferiti", human_bytes(total(|x| x.bytes_copied))),
        ("failed / non riusciti", total(|x| x.failed).to_string()),
        ("archived / archiviati", total(|x| x.archived).to_string()),
    ]));
    body.push_str("<h2>Progress per phase / Avanzamento per fase</h2>");
    let phase_bars: Vec<(String, f64)> = crate::phases::Phase::ALL
        .iter()
        .map(|p| {
            (
                p.name().to_string(),
                r.by_phase.get(p.name()).copied().unwrap_or(0) as f64,
            )
        })
        .collect();
    body.push_str(&html::bars("mailboxes in sync per phase", &phase_bars));
    body.push_str("<h2>Mailboxes by state / Caselle per stato</h2>");
    let states: Vec<(String, f64)> = r
        .by_status
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64))
        .collect();
    body.push_str(&html::bars("mailboxes by state", &states));
    body.push_str("<h2>Moved over time / Trasferito nel tempo</h2>");
    let times: Vec<(i64, u64, u64)> = r
        .progress
        .iter()
        .filter_map(|(t, m, b)| {
            chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| (t.timestamp(), *m, *b))
        })
        .collect();
    let msgs: Vec<(i64, f64)> = times.iter().map(|(t, m, _)| (*t, *m as f64)).collect();
    let mb: Vec<(i64, f64)> = times
        .iter()
        .map(|(t, _, b)| (*t, *b as f64 / 1e6))
        .collect();
    body.push_str(&html::line("messages moved over time", "messages", &msgs));
    body.push_str(&html::line("megabytes moved over time", "MB", &mb));
    body.push_str("<h2>Mailboxes / Caselle</h2>");
    let rows: Vec<(String, Vec<Cell>)> = r
        .mailboxes
        .iter()
        .map(|m| {
            let class = match m.status.as_str() {
                "failed" | "incomplete" => m.status.clone(),
                _ => action_of(&m.decision)
                    .map_or("migrate", css_class)
                    .to_string(),
            };
            (
                class,
                vec![
                    Cell::Text(m.source.clone()),
                    Cell::Text(m.target.clone()),
                    Cell::Text(m.decision.clone()),
                    Cell::Text(m.status.clone()),
                    Cell::Text(m.phases.clone()),
                    n(m.source_messages),
                    n(m.on_target),
                    n(m.copied),
                    Cell::Num(human_bytes(m.bytes_copied), m.bytes_copied as f64),
                    n(m.failed),
                    n(m.skipped),
                    n(m.archived),
                    Cell::Text(m.verified.clone()),
                    Cell::Text(m.last_run.clone()),
                ],
            )
        })
        .collect();
    body.push_str(&html::table(
        "mailboxes",
        &[
            "source",
            "target",
            "plan",
            "status",
            "phases",
            "source msgs",
            "on target",
            "copied",
            "moved",
            "failed",
            "skipped",
            "archived",
            "verify",
            "last run",
        ],
        &rows,
    ));
    for (title, action) in [
        ("Skipped / Escluse", "skip"),
        ("Blocked / Bloccate", "blocked"),
    ] {
        let list: Vec<&Row> = r
            .mailboxes
            .iter()
            .filter(|m| m.decision == action)
            .collect();
        body.push_str(&format!("<h2>{title}: {}</h2><ul>", list.len()));
        for m in list {
            body.push_str(&format!(
                "<li><b>{}</b> → {}: {}</li>",
                html::esc(&m.source),
                html::esc(&m.target),
                html::esc(&m.reasons)
            ));
        }
        body.push_str("</ul>");
    }
    html::page("trasloco report", &body)
}

fn csv_text(r: &Report) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "source",
        "target",
        "plan",
        "reasons",
        "status",
        "phases",
        "source_messages",
        "on_target",
        "copied",
        "bytes_copied",
        "failed",
        "skipped",
        "archived",
        "verified",
        "last_run",
    ])?;
    for m in &r.mailboxes {
        w.write_record([
            m.source.clone(),
            m.target.clone(),
            m.decision.clone(),
            m.reasons.clone(),
            m.status.clone(),
            m.phases.clone(),
            m.source_messages.to_string(),
            m.on_target.to_string(),
            m.copied.to_string(),
            m.bytes_copied.to_string(),
            m.failed.to_string(),
            m.skipped.to_string(),
            m.archived.to_string(),
            m.verified.clone(),
            m.last_run.clone(),
        ])?;
    }
    Ok(String::from_utf8_lossy(&w.into_inner().map_err(|e| e.into_error())?).into_owned())
}

/// Write report.html, report.csv and report.json into `dir`; returns the HTML path.
pub fn write(dir: &Path, r: &Report) -> Result<PathBuf, ConfigError> {
    crate::write_files(
        dir,
        [
            ("report.csv", csv_text(r).map_err(|e| e.to_string())),
            (
                "report.json",
                serde_json::to_string_pretty(r).map_err(|e| e.to_string()),
            ),
            ("report.html", Ok(html_text(r))),
        ],
    )?;
    Ok(dir.join("report.html"))
}
