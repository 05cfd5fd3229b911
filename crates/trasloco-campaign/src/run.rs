//! Running many mailboxes: N at a time, each recorded in the state store, one JSON report per
//! run, and the exit code.

use crate::ConfigError;
use crate::accounts::Account;
use crate::config::Campaign;
use crate::exit;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use trasloco_core::accounting::{Buckets, FailureClass, MailboxReport, MailboxStatus};
use trasloco_imap::Credentials;
use trasloco_state::State;
use trasloco_sync::{Options, Progress, Side, Source, Target, transfer};

/// One mailbox to move.
#[derive(Debug, Clone)]
pub struct Job {
    /// Where the mail is: old server and login, or an archive.
    pub source: Source,
    /// Where it goes: new server and login, or an archive.
    pub target: Target,
}

/// Sees mailboxes start and finish (the CLI draws progress bars from it).
pub trait Observer: Send + Sync {
    /// A mailbox starts; returns where its progress goes.
    fn start(&self, source: &str, target: &str) -> Arc<dyn Progress>;
    /// A mailbox finished.
    fn done(&self, report: &MailboxReport);
}

/// Everything a run needs besides the jobs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Mailboxes in parallel.
    pub jobs: usize,
    /// Per-mailbox sync options.
    pub sync: Options,
    /// State file.
    pub state_path: PathBuf,
    /// Where the JSON report goes (a directory).
    pub reports_dir: PathBuf,
    /// Campaign name for the report.
    pub name: Option<String>,
    /// What was run, for the report (no secrets).
    pub command: String,
}

/// The report of one run, written as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Campaign name.
    pub campaign: Option<String>,
    /// The command that ran.
    pub command: String,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339).
    pub finished_at: String,
    /// Wall time.
    pub seconds: f64,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Messages on the sources.
    pub source_messages: u64,
    /// Where they went, over all mailboxes.
    pub totals: Buckets,
    /// Bytes uploaded.
    pub bytes_copied: u64,
    /// Copied messages per second of wall time.
    pub messages_per_second: f64,
    /// Mailboxes by status.
    pub mailboxes_in_sync: usize,
    /// Mailboxes that need another run.
    pub mailboxes_incomplete: usize,
    /// Mailboxes that failed (login, connection…).
    pub mailboxes_failed: usize,
    /// The exit code this run ends with.
    pub exit_code: i32,
    /// Per mailbox.
    pub mailboxes: Vec<MailboxReport>,
}

/// Build the jobs of a campaign from its accounts.
pub fn jobs(campaign: &Campaign, accounts: &[Account]) -> Result<Vec<Job>, ConfigError> {
    let source = campaign.server("source")?;
    let target = campaign.server("target")?;
    let accounts_file = campaign.resolve(&campaign.file.accounts.file);
    let mut out = Vec::with_capacity(accounts.len());
    for a in accounts {
        let creds = |side: &str,
                     user: &str,
                     pw: &Option<secrecy::SecretString>,
                     server: &crate::config::Server| {
            match (&server.master, pw) {
                (Some((m, secret)), _) => Ok(Credentials {
                    user: user.to_string(),
                    password: secret.clone(),
                    master: Some(m.clone()),
                }),
                (None, Some(pw)) => Ok(Credentials {
                    user: user.to_string(),
                    password: pw.clone(),
                    master: None,
                }),
                (None, None) => Err(ConfigError(format!(
                    "accounts file {} line {}: no {side} password for {user:?} and no [{side}] master_user in the campaign",
                    accounts_file.display(),
                    a.line
                ))),
            }
        };
        let mut s_ep = source.endpoint.clone();
        if let Some(h) = &a.source_host {
            s_ep.host = h.clone();
        }
        let mut t_ep = target.endpoint.clone();
        if let Some(h) = &a.target_host {
            t_ep.host = h.clone();
        }
        out.push(Job {
            source: {
                let side = Side {
                    endpoint: s_ep,
                    tls: source.tls.clone(),
                    credentials: creds("source", &a.source_user, &a.source_password, &source)?,
                };
                match source.protocol {
                    crate::config::Protocol::Imap => Source::Imap(side),
                    crate::config::Protocol::Pop3 => Source::Pop3(side),
                }
            },
            target: Target::Imap(Side {
                endpoint: t_ep,
                tls: target.tls.clone(),
                credentials: creds("target", &a.target_user, &a.target_password, &target)?,
            }),
        });
    }
    Ok(out)
}

/// Settings from a campaign file.
pub fn settings(campaign: &Campaign, dry_run: bool) -> Settings {
    let r = &campaign.file.run;
    let mut sync = Options {
        dry_run,
        verify: r.verify,
        ..Options::default()
    };
    if let Some(n) = r.batch_messages {
        sync.batch_messages = n.max(1);
    }
    if let Some(mb) = r.batch_mb {
        sync.batch_bytes = mb.max(1) * 1024 * 1024;
    }
    if let Some(n) = r.max_reconnects {
        sync.max_reconnects = n;
    }
    if let Some(n) = r.append_connections {
        sync.append_connections = n.clamp(1, 8);
    }
    if let Some(n) = r.parallel_folders {
        sync.lanes = n.clamp(1, 8);
    }
    sync.leave_days = r.leave_days;
    sync.pop3_seen = r.pop3_seen;
    sync.exclude = campaign.file.folders.exclude.clone();
    sync.renames = campaign.file.folders.rename.clone();
    Settings {
        jobs: r.jobs,
        sync,
        state_path: campaign.state_path(),
        reports_dir: campaign.reports_dir(),
        name: campaign.file.name.clone(),
        command: format!("run {}", campaign.path.display()),
    }
}

/// The exit code for a set of mailbox outcomes: 0 when all are in sync; 2 when any needs
/// another run; otherwise the code of the most common failure class.
pub fn exit_code(reports: &[MailboxReport]) -> i32 {
    if reports
        .iter()
        .any(|r| r.status == MailboxStatus::Incomplete)
    {
        return exit::INCOMPLETE;
    }
    let mut counts: Vec<(FailureClass, usize)> = Vec::new();
    for r in reports.iter().filter(|r| r.status == MailboxStatus::Failed) {
        let class = r.failure.unwrap_or(FailureClass::Protocol);
        match counts.iter_mut().find(|(c, _)| *c == class) {
            Some((_, n)) => *n += 1,
            None => counts.push((class, 1)),
        }
    }
    match counts.iter().max_by_key(|(_, n)| *n) {
        None => exit::OK,
        Some((class, _)) => match class {
            FailureClass::Connection => exit::CONNECTION,
            FailureClass::Tls => exit::TLS,
            FailureClass::Authentication => exit::AUTHENTICATION,
            FailureClass::Protocol => exit::SERVER,
            FailureClass::State => exit::USAGE,
        },
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Run the jobs and write the report. The error is for the state file or report directory.
pub async fn run(
    jobs: Vec<Job>,
    settings: &Settings,
    observer: Arc<dyn Observer>,
) -> Result<(RunReport, PathBuf), ConfigError> {
    let started_at = now();
    let t0 = Instant::now();
    let state = State::open(&settings.state_path)
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    let run_id = if settings.sync.dry_run {
        None
    } else {
        Some(
            state
                .start_run(&started_at, &settings.command)
                .await
                .map_err(|e| ConfigError(e.to_string()))?,
        )
    };
    let limit = Arc::new(Semaphore::new(settings.jobs.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, job) in jobs.into_iter().enumerate() {
        let (limit, state, opts, observer) = (
            limit.clone(),
            state.clone(),
            settings.sync.clone(),
            observer.clone(),
        );
        set.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore never closed");
            let progress = observer.start(&job.source.label(), &job.target.label());
            let report = transfer(&job.source, &job.target, &state, &opts, progress.as_ref()).await;
            if !opts.dry_run {
                let status = serde_json::to_value(report.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let json = serde_json::to_string(&report).unwrap_or_default();
                let saved = match state.mailbox_id(&report.source, &report.target).await {
                    Ok(id) => state.finish_mailbox(id, &status, &now(), &json).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = saved {
                    tracing::error!("{e}");
                }
            }
            observer.done(&report);
            (i, report)
        });
    }
    let mut reports: Vec<(usize, MailboxReport)> = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(x) => reports.push(x),
            Err(e) => {
                return Err(ConfigError(format!(
                    "internal error: a mailbox task failed: {e}"
                )));
            }
        }
    }
    reports.sort_by_key(|(i, _)| *i);
    let mailboxes: Vec<MailboxReport> = reports.into_iter().map(|(_, r)| r).collect();
    let mut totals = Buckets::default();
    for m in &mailboxes {
        totals.add(&m.buckets);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let code = exit_code(&mailboxes);
    let report = RunReport {
        campaign: settings.name.clone(),
        command: settings.command.clone(),
        started_at: started_at.clone(),
        finished_at: now(),
        seconds,
        dry_run: settings.sync.dry_run,
        source_messages: mailboxes.iter().map(|m| m.source_messages).sum(),
        bytes_copied: mailboxes.iter().map(|m| m.bytes_copied).sum(),
        messages_per_second: if seconds > 0.0 {
            totals.copied as f64 / seconds
        } else {
            0.0
        },
        totals,
        mailboxes_in_sync: mailboxes
            .iter()
            .filter(|m| matches!(m.status, MailboxStatus::InSync | MailboxStatus::DryRun))
            .count(),
        mailboxes_incomplete: mailboxes
            .iter()
            .filter(|m| m.status == MailboxStatus::Incomplete)
            .count(),
        mailboxes_failed: mailboxes
            .iter()
            .filter(|m| m.status == MailboxStatus::Failed)
            .count(),
        exit_code: code,
        mailboxes,
    };
    let path = write_report(&settings.reports_dir, &report)?;
    if let Some(id) = run_id {
        let _ = state
            .finish_run(
                id,
                &report.finished_at,
                code,
                Some(&path.display().to_string()),
            )
            .await;
    }
    state.close().await;
    Ok((report, path))
}

fn write_report(dir: &Path, report: &RunReport) -> Result<PathBuf, ConfigError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        ConfigError(format!(
            "cannot create report directory {}: {e}",
            dir.display()
        ))
    })?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let kind = if report.dry_run { "dry-run" } else { "run" };
    let path = dir.join(format!("{kind}-{stamp}.json"));
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| ConfigError(format!("internal error: report: {e}")))?;
    std::fs::write(&path, json)
        .map_err(|e| ConfigError(format!("cannot write report {}: {e}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: MailboxStatus, failure: Option<FailureClass>) -> MailboxReport {
        let mut r = MailboxReport::new("a".into(), "b".into());
        r.status = status;
        r.failure = failure;
        r
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(&[report(MailboxStatus::InSync, None)]), exit::OK);
        assert_eq!(exit_code(&[]), exit::OK);
        assert_eq!(
            exit_code(&[
                report(MailboxStatus::InSync, None),
                report(MailboxStatus::Failed, Some(FailureClass::Authentication))
            ]),
            exit::AUTHENTICATION
        );
        assert_eq!(
            exit_code(&[
                report(MailboxStatus::Incomplete, None),
                report(MailboxStatus::Failed, Some(FailureClass::Tls))
            ]),
            exit::INCOMPLETE,
            "a re-run helps the incomplete one"
        );
        assert_eq!(
            exit_code(&[
                report(MailboxStatus::Failed, Some(FailureClass::Connection)),
                report(MailboxStatus::Failed, Some(FailureClass::Connection)),
                report(MailboxStatus::Failed, Some(FailureClass::Tls)),
            ]),
            exit::CONNECTION
        );
    }
}
