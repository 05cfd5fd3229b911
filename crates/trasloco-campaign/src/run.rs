//! Running many mailboxes: N at a time, each recorded in the state store, one JSON report per
//! run, and the exit code.

use crate::ConfigError;
use crate::accounts::Account;
use crate::config::Campaign;
use crate::exit;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use trasloco_core::accounting::{Buckets, FailureClass, MailboxReport, MailboxStatus};
use trasloco_imap::Credentials;
use trasloco_state::{Location, State};
use trasloco_sync::{DateRule, Options, Progress, Side, Source, Target, transfer};

/// One mailbox to move.
#[derive(Debug, Clone)]
pub struct Job {
    /// Where the mail is: old server and login, or an archive.
    pub source: Source,
    /// Where it goes: new server and login, or an archive.
    pub target: Target,
    /// The older part that goes to a local archive instead (a quota strategy).
    pub archive: Option<ArchiveJob>,
    /// With `archive-oldest`, how to check the fit again at every run: mail that arrived since
    /// the plan moves the cut.
    pub refit: Option<Refit>,
}

/// What re-checking a mailbox's fit at the start of a run needs.
#[derive(Debug, Clone)]
pub struct Refit {
    /// The configured quota, else the one the target reports.
    pub quota: Option<u64>,
    /// `quota_margin_percent` as a fraction.
    pub margin: f64,
    /// The mailbox's quota archive.
    pub archive: Target,
}

/// Messages dated before `before` go to `target` (a local archive), the rest to the job's
/// target: the two never overlap.
#[derive(Debug, Clone)]
pub struct ArchiveJob {
    /// The archive.
    pub target: Target,
    /// Unix seconds.
    pub before: i64,
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
    /// Where the state is kept.
    pub state: Location,
    /// Where the JSON report goes (a directory).
    pub reports_dir: PathBuf,
    /// Campaign name for the report.
    pub name: Option<String>,
    /// What was run, for the report (no secrets).
    pub command: String,
    /// The campaign phase, recorded per mailbox.
    pub phase: Option<crate::phases::Phase>,
    /// Mailboxes the plan or the address rules keep out of this run.
    pub left_out: Vec<LeftOut>,
    /// Take the mailboxes from the shared queue, under leases (a PostgreSQL state), rather
    /// than in the order given.
    pub queue: Option<crate::workers::QueueFeed>,
    /// The campaign's `[phases]`: what each phase changes in the sync options, for the
    /// mailboxes a worker takes from the queue, each queued for its own phase.
    pub phases: crate::phases::PhasesSection,
}

/// A mailbox not run, and why.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct LeftOut {
    /// Source account.
    pub source: String,
    /// Target account.
    pub target: String,
    /// `skip` or `blocked`.
    pub action: crate::rules::Action,
    /// The rule.
    pub rule: Option<String>,
    /// The reasons, with evidence.
    pub reasons: Vec<String>,
}

/// The report of one run, written as JSON.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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
    /// The campaign phase, if one was given.
    #[serde(default)]
    pub phase: Option<crate::phases::Phase>,
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
    /// Mailboxes whose every message has a copy, some of them altered by the target.
    #[serde(default)]
    pub mailboxes_altered: usize,
    /// Mailboxes that need another run.
    pub mailboxes_incomplete: usize,
    /// Mailboxes that failed (login, connection…).
    pub mailboxes_failed: usize,
    /// The exit code this run ends with.
    pub exit_code: i32,
    /// Per mailbox.
    pub mailboxes: Vec<MailboxReport>,
    /// The older parts that went to local archives (quota strategies), per mailbox.
    #[serde(default)]
    pub archives: Vec<MailboxReport>,
    /// Mailboxes not run: skipped or blocked, with reasons.
    #[serde(default)]
    pub left_out: Vec<LeftOut>,
    /// PEC messages copied and checked, over all mailboxes: signature verdict → count.
    #[serde(default)]
    pub pec: BTreeMap<String, u64>,
    /// The signal that stopped the run cleanly (`Ctrl-C (SIGINT)`, `SIGTERM`), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
}

/// One account of the campaign: where it comes from, where it goes, and why it cannot go when
/// the address rules say so.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Line in the accounts file.
    pub line: usize,
    /// How reports name the source (`user@host`).
    pub source: String,
    /// How reports name the target (`user@host`; the reason when there is no address).
    pub target: String,
    /// Last login on the old platform (accounts column or `last_login_file`).
    pub last_login: Option<chrono::DateTime<chrono::Utc>>,
    /// This account's quota strategy.
    pub strategy: crate::rules::Strategy,
    /// (rule, reason) when the address rules block it: no target address, or a conflict.
    pub blocked: Option<(String, String)>,
    /// The job, when there is a target address.
    pub job: Option<Job>,
    /// The person's name, when the accounts file has one.
    pub display_name: Option<String>,
}

/// The accounts of a campaign with their target addresses (`target_user`, else `domain_map`),
/// conflicts marked, last logins and strategies attached.
pub fn entries(campaign: &Campaign, accounts: &[Account]) -> Result<Vec<Entry>, ConfigError> {
    let source = campaign.server("source")?;
    let target = campaign.server("target")?;
    let rules = &campaign.file.rules;
    let accounts_file = campaign.resolve(&campaign.file.accounts.file);
    let logins = match &rules.last_login_file {
        Some(f) => last_logins(&campaign.resolve(f))?,
        None => Default::default(),
    };
    let addresses: Vec<Result<String, String>> = accounts
        .iter()
        .map(|a| crate::rules::target_address(&a.source_user, &a.target_user, &rules.domain_map))
        .collect();
    let pairs: Vec<(String, String)> = accounts
        .iter()
        .zip(&addresses)
        .filter_map(|(a, t)| t.as_ref().ok().map(|t| (a.source_user.clone(), t.clone())))
        .collect();
    let conflicting = crate::rules::conflicts(&pairs);
    let mut out = Vec::with_capacity(accounts.len());
    let mut paired = 0;
    for (a, address) in accounts.iter().zip(addresses) {
        let creds = |side: &str,
                     user: &str,
                     pw: &Option<secrecy::SecretString>,
                     server: &crate::config::Server| {
            if let Some(tokens) = &server.oauth {
                return Ok(Credentials::oauth(user, tokens.clone()));
            }
            match (&server.master, pw) {
                (Some((m, secret)), _) => Ok(Credentials {
                    user: user.to_string(),
                    password: secret.clone(),
                    master: Some(m.clone()),
                    oauth: None,
                }),
                (None, Some(pw)) => Ok(Credentials {
                    user: user.to_string(),
                    password: pw.clone(),
                    master: None,
                    oauth: None,
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
        let side = Side {
            endpoint: s_ep,
            tls: source.tls.clone(),
            credentials: creds("source", &a.source_user, &a.source_password, &source)?,
        };
        let src = match source.protocol {
            crate::config::Protocol::Imap => Source::Imap(side),
            crate::config::Protocol::Pop3 => Source::Pop3(side),
        };
        let strategy = match &a.quota_strategy {
            Some(s) => crate::rules::Strategy::parse(s, rules.keep_days).map_err(|e| {
                ConfigError(format!(
                    "accounts file {} line {}: quota_strategy: {e}",
                    accounts_file.display(),
                    a.line
                ))
            })?,
            None => rules.strategy(),
        };
        let last_login = match &a.last_login {
            Some(d) => Some(crate::rules::parse_day(d).ok_or_else(|| {
                ConfigError(format!(
                    "accounts file {} line {}: last_login {d:?} is not a date; write YYYY-MM-DD",
                    accounts_file.display(),
                    a.line
                ))
            })?),
            None => logins.get(&a.source_user.to_ascii_lowercase()).copied(),
        };
        let mut entry = Entry {
            line: a.line,
            source: src.label(),
            target: String::new(),
            last_login,
            strategy,
            blocked: None,
            job: None,
            display_name: a.display_name.clone(),
        };
        match address {
            Err(why) => {
                entry.target = "(no address)".into();
                entry.blocked = Some(("address".into(), why));
            }
            Ok(address) => {
                let t = Side {
                    endpoint: t_ep,
                    tls: target.tls.clone(),
                    credentials: creds("target", &address, &a.target_password, &target)?,
                };
                entry.target = t.label();
                entry.blocked = conflicting
                    .get(&paired)
                    .map(|why| ("conflict".to_string(), why.clone()));
                paired += 1;
                entry.job = Some(Job {
                    source: src,
                    target: Target::Imap(t),
                    archive: None,
                    refit: None,
                });
            }
        }
        out.push(entry);
    }
    Ok(out)
}

/// Turn entries into jobs, following the saved plan: skipped and blocked mailboxes are left
/// out with their reasons, `migrate-with-archive` ones get their archive part. Without a plan
/// only the address rules apply, and a campaign whose rules need one is refused.
pub fn prepare(
    campaign: &Campaign,
    entries: Vec<Entry>,
    plan: Option<&crate::plan::Plan>,
    include: &[String],
) -> Result<(Vec<Job>, Vec<LeftOut>), ConfigError> {
    use crate::rules::Action;
    if plan.is_none() && crate::plan::required(campaign) {
        return Err(ConfigError(format!(
            "campaign {} has inactivity or quota rules, which need a plan: run `trasloco plan {}` first",
            campaign.path.display(),
            campaign.path.display()
        )));
    }
    let (mut jobs, mut left) = (Vec::new(), Vec::new());
    for e in entries {
        let leave = |action: Action, rule: Option<String>, reasons: Vec<String>| LeftOut {
            source: e.source.clone(),
            target: e.target.clone(),
            action,
            rule,
            reasons,
        };
        let (Some(mut job), None) = (e.job.clone(), &e.blocked) else {
            let (rule, why) = e.blocked.clone().unwrap_or_default();
            left.push(leave(Action::Blocked, Some(rule), vec![why]));
            continue;
        };
        if let Some(plan) = plan {
            let Some(row) = plan.row(&e.source) else {
                left.push(leave(
                    Action::Blocked,
                    Some("plan".into()),
                    vec![
                        "not in the plan (added to the accounts since): run `trasloco plan` again"
                            .into(),
                    ],
                ));
                continue;
            };
            if row.target != e.target {
                left.push(leave(
                    Action::Blocked,
                    Some("plan".into()),
                    vec![format!(
                        "the plan moves it to {}, the accounts now say {}: run `trasloco plan` again",
                        row.target, e.target
                    )],
                ));
                continue;
            }
            let d = &row.decision;
            let forced = d.rule.as_deref() == Some("inactive")
                && include.iter().any(|i| {
                    i.eq_ignore_ascii_case(&e.source)
                        || e.source
                            .rsplit_once('@')
                            .is_some_and(|(u, _)| i.eq_ignore_ascii_case(u))
                });
            let name = e
                .source
                .rsplit_once('@')
                .map_or(e.source.as_str(), |(u, _)| u);
            let archive_target = || {
                Target::Archive(trasloco_sync::ArchiveTarget {
                    root: campaign
                        .archive_dir()
                        .join(trasloco_archive::flags::escape_component(name)),
                    format: trasloco_archive::Format::Maildir,
                    layout: None,
                })
            };
            // archive-oldest: the fit is checked again at every run, as mail keeps arriving.
            if e.strategy == crate::rules::Strategy::ArchiveOldest
                && matches!(d.action, Action::Migrate | Action::MigrateWithArchive)
            {
                job.refit = Some(Refit {
                    quota: campaign.file.rules.quota(),
                    margin: campaign.file.rules.margin(),
                    archive: archive_target(),
                });
            }
            match d.action {
                Action::Skip | Action::Blocked if !forced => {
                    left.push(leave(d.action, d.rule.clone(), d.reasons.clone()));
                    continue;
                }
                Action::MigrateWithArchive => {
                    let before = d
                        .archive_before
                        .as_deref()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.timestamp())
                        .ok_or_else(|| {
                            ConfigError(format!(
                                "plan: {} has no valid archive_before; run `trasloco plan` again",
                                e.source
                            ))
                        })?;
                    job.archive = Some(ArchiveJob {
                        target: archive_target(),
                        before,
                    });
                }
                _ => {}
            }
        }
        jobs.push(job);
    }
    Ok((jobs, left))
}

/// `user,last_login` lines (header optional); user names compared without case.
fn last_logins(
    path: &Path,
) -> Result<std::collections::HashMap<String, chrono::DateTime<chrono::Utc>>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "cannot read last_login_file {}: {}",
            path.display(),
            trasloco_core::words::io_error(&e)
        ))
    })?;
    let mut out = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, date) = line.split_once([',', ';']).unwrap_or((line, ""));
        let (user, date) = (user.trim().trim_matches('"'), date.trim().trim_matches('"'));
        match crate::rules::parse_day(date) {
            Some(d) => {
                out.insert(user.to_ascii_lowercase(), d);
            }
            None if i == 0 => {} // a header
            None if date.is_empty() => {}
            None => {
                return Err(ConfigError(format!(
                    "last_login_file {} line {}: {date:?} is not a date; write YYYY-MM-DD",
                    path.display(),
                    i + 1
                )));
            }
        }
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
    if let Some(n) = r.listing_window {
        sync.listing_window = n.max(1);
    }
    sync.mailboxes_at_once = r.jobs.max(1);
    sync.leave_days = r.leave_days;
    sync.pop3_seen = r.pop3_seen;
    sync.skip_unchanged = !r.full_compare;
    sync.exclude = campaign.file.folders.exclude.clone();
    sync.exclude_roles = campaign.file.folders.roles().unwrap_or_default();
    sync.defer = campaign.file.folders.defer.clone();
    sync.renames = campaign.file.folders.rename.clone();
    let provider = |s: &crate::config::ServerSection| {
        s.provider
            .as_deref()
            .and_then(|p| crate::providers::Provider::parse(p).ok())
    };
    crate::providers::apply(
        provider(&campaign.file.source),
        provider(&campaign.file.target),
        campaign.file.target.max_message_mb,
        campaign.file.target.daily_upload_mb,
        &mut sync,
    );
    Settings {
        jobs: r.jobs,
        sync,
        state: campaign.state(),
        reports_dir: campaign.reports_dir(),
        name: campaign.file.name.clone(),
        command: format!("run {}", campaign.path.display()),
        phase: None,
        left_out: Vec::new(),
        queue: None,
        phases: campaign.file.phases.clone(),
    }
}

/// The file PEC evidence lines go to, in a reports directory.
pub const PEC_MANIFEST: &str = "pec-evidence.jsonl";

/// The PEC checker for a run: the system's anchors plus `extra` PEM files, writing
/// `reports/pec-evidence.jsonl`.
pub fn pec_evidence(
    extra: &[PathBuf],
    reports: &Path,
) -> Result<Arc<trasloco_sync::PecEvidence>, ConfigError> {
    let mut trust = trasloco_pec::TrustStore::system();
    for f in extra {
        trust.add_pem_file(f).map_err(ConfigError)?;
    }
    Ok(Arc::new(trasloco_sync::PecEvidence::new(
        trust,
        Some(reports.join(PEC_MANIFEST)),
    )))
}

/// The exit code for a set of mailbox outcomes: 0 when all are in sync; 2 when any needs
/// another run; otherwise the code of the most common failure class; otherwise 3 when the
/// target altered some copies.
pub fn exit_code(reports: &[MailboxReport]) -> i32 {
    if reports
        .iter()
        .any(|r| r.status == MailboxStatus::Incomplete)
    {
        return exit::INCOMPLETE;
    }
    most_common_failure(
        reports
            .iter()
            .filter(|r| r.status == MailboxStatus::Failed)
            .map(|r| r.failure.unwrap_or(FailureClass::Protocol)),
    )
    .unwrap_or(
        if reports.iter().any(|r| r.status == MailboxStatus::Altered) {
            exit::ALTERED
        } else {
            exit::OK
        },
    )
}

/// The exit code of the most common of these failures; `None` when there is none.
pub fn most_common_failure(classes: impl IntoIterator<Item = FailureClass>) -> Option<i32> {
    let mut counts: Vec<(FailureClass, usize)> = Vec::new();
    for class in classes {
        match counts.iter_mut().find(|(c, _)| *c == class) {
            Some((_, n)) => *n += 1,
            None => counts.push((class, 1)),
        }
    }
    counts
        .iter()
        .max_by_key(|(_, n)| *n)
        .map(|(class, _)| code_of(*class))
}

/// The exit code of a failure class.
pub fn code_of(class: FailureClass) -> i32 {
    match class {
        FailureClass::Connection => exit::CONNECTION,
        FailureClass::Tls => exit::TLS,
        FailureClass::Authentication => exit::AUTHENTICATION,
        FailureClass::Protocol => exit::SERVER,
        FailureClass::State | FailureClass::Local => exit::USAGE,
        FailureClass::Stopped => exit::INCOMPLETE,
    }
}

/// The skip rule under which archived messages are counted on the target side.
pub const ARCHIVED_RULE: &str = "archived (quota)";

pub(crate) fn status_name(s: MailboxStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Check an `archive-oldest` mailbox's fit again: the source as it is now against the quota.
/// Returns the cut to use (never earlier than the plan's or the last run's: what is archived
/// stays archived) and a line for the report when it moved; `None` when the job has no refit
/// or still fits without an archive.
async fn refit(
    job: &Job,
    state: &State,
    opts: &trasloco_sync::Options,
) -> Result<Option<(i64, Option<String>)>, String> {
    let Some(r) = &job.refit else {
        return Ok(None);
    };
    let Target::Imap(side) = &job.target else {
        return Ok(None);
    };
    let id = state
        .mailbox_id(&job.source.label(), &side.label())
        .await
        .map_err(|e| e.to_string())?;
    let recorded = state.archive_cut(id).await.map_err(|e| e.to_string())?;
    let planned = job.archive.as_ref().map(|a| a.before);
    let was = planned.max(recorded);
    let quota = match r.quota {
        Some(q) => Some(q),
        None => trasloco_sync::target_quota(side)
            .await
            .map_err(|(_, why)| why)?
            .map(|(_, limit)| limit),
    };
    let Some(limit) = quota else {
        return Ok(was.map(|c| (c, None)));
    };
    let inv = trasloco_sync::inventory_source(&job.source, state, opts)
        .await
        .map_err(|(_, why)| why)?;
    let messages: Vec<crate::rules::Dated> = inv
        .folders
        .iter()
        .filter(|f| f.rule != Some("folder-excluded"))
        .flat_map(|f| f.messages.iter().copied())
        .collect();
    let fit = crate::rules::quota_fit(
        &messages,
        limit,
        r.margin,
        crate::rules::Strategy::ArchiveOldest,
        chrono::Utc::now(),
    );
    let cut = match (was, fit.archive_before) {
        (Some(w), Some(f)) => w.max(f),
        (w, f) => match w.or(f) {
            Some(c) => c,
            None => return Ok(None),
        },
    };
    if Some(cut) == was {
        return Ok(Some((cut, None)));
    }
    state
        .set_archive_cut(id, cut)
        .await
        .map_err(|e| e.to_string())?;
    let day = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    let moved: Vec<&crate::rules::Dated> = messages
        .iter()
        .filter(|(d, _)| d.is_some_and(|d| d < cut && was.is_none_or(|w| d >= w)))
        .collect();
    Ok(Some((
        cut,
        Some(format!(
            "quota: mail arrived since the plan; the archive cut moved from {} to {}: {} more messages ({}) go to the archive, and their copies leave the target{}",
            was.map_or("none".to_string(), day),
            day(cut),
            moved.len(),
            crate::rules::human_bytes(moved.iter().map(|m| m.1).sum()),
            fit.problem.map(|p| format!("; {p}")).unwrap_or_default()
        )),
    )))
}

/// Whether reports can be written to `dir` (created if missing): a probe file, removed again.
fn writable(dir: &Path) -> Result<(), ConfigError> {
    let probe = dir.join(format!(".trasloco-probe-{}", std::process::id()));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b"probe"))
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            ConfigError(format!(
                "cannot write reports to {}: {}; choose another reports directory (--reports, campaign: run.reports)",
                dir.display(),
                trasloco_core::words::io_error(&e)
            ))
        })
}

/// Run the jobs and write the report. The error is for the state file or report directory.
pub async fn run(
    jobs: Vec<Job>,
    settings: &Settings,
    observer: Arc<dyn Observer>,
) -> Result<(RunReport, Result<PathBuf, ConfigError>), ConfigError> {
    let started_at = now();
    let t0 = Instant::now();
    // The report is written at the end: a folder it cannot go to is found now, before
    // anything moves, not after every message was copied.
    writable(&settings.reports_dir)?;
    // A dry run records nothing: without a state file it reads an empty one of its own, so
    // that it does not leave one behind.
    let missing = settings.state.file().is_some_and(|p| !p.exists());
    let scratch = match settings.sync.dry_run && missing {
        true => Some(tempfile::tempdir().map_err(|e| {
            ConfigError(format!(
                "cannot create a temporary directory: {}",
                trasloco_core::words::io_error(&e)
            ))
        })?),
        false => None,
    };
    let location = match &scratch {
        Some(d) => Location::File(d.path().join("state.sqlite")),
        None => settings.state.clone(),
    };
    let state = State::open_at(&location)
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
    let mut feed = match &settings.queue {
        Some(q) => Some(
            crate::workers::Feed::start(q, &state, &jobs, settings.phase, &settings.sync.stop)
                .await?,
        ),
        None => None,
    };
    let mut jobs = jobs.into_iter().enumerate();
    loop {
        // Mailboxes start in the order of the accounts file (or of the queue): the permit is
        // taken here, before the task exists, since spawned tasks may first run in any order.
        let permit = limit
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let (state, mut opts, mut observer, mut phase) = (
            state.clone(),
            settings.sync.clone(),
            observer.clone(),
            settings.phase,
        );
        let (i, job, lease) = match feed.as_mut() {
            None => match jobs.next() {
                Some((i, job)) => (i, job, None),
                None => break,
            },
            Some(feed) => match feed.next(&state).await {
                crate::workers::Next::Mailbox(i, job, lease) => (i, *job, Some(lease)),
                crate::workers::Next::Report(i, report) => {
                    set.spawn(async move { (i, *report, None) });
                    continue;
                }
                crate::workers::Next::Done => break,
            },
        };
        let state = match &lease {
            Some(l) => {
                // A worker's mailboxes each come with their own phase; a run's are its own.
                if let Some(p) = l.phase.filter(|p| Some(*p) != phase) {
                    p.apply(&settings.phases, &mut opts, chrono::Utc::now());
                }
                phase = l.phase;
                opts.stop = opts.stop.with_lease(l.clock.clone());
                observer = l.observe(observer);
                state.fenced(l.fence.clone())
            }
            None => state,
        };
        set.spawn(async move {
            let _permit = permit;
            let work = one_mailbox(i, job, &state, opts, observer, phase);
            match lease {
                Some(l) => l.hold(&state, work).await,
                None => work.await,
            }
        });
    }
    let mut reports: Vec<(usize, MailboxReport, Option<MailboxReport>)> = Vec::new();
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
    if let Some(feed) = feed {
        reports.extend(feed.finish(&state).await);
    }
    reports.sort_by_key(|(i, _, _)| *i);
    let mut mailboxes: Vec<MailboxReport> = Vec::with_capacity(reports.len());
    let mut archives: Vec<MailboxReport> = Vec::new();
    for (_, r, a) in reports {
        mailboxes.push(r);
        archives.extend(a);
    }
    let mut totals = Buckets::default();
    for m in &mailboxes {
        totals.add(&m.buckets);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let mut code = exit_code(&[mailboxes.as_slice(), archives.as_slice()].concat());
    // A campaign that moved nothing because every mailbox is blocked is not a success.
    if mailboxes.is_empty()
        && settings
            .left_out
            .iter()
            .any(|l| l.action == crate::rules::Action::Blocked)
    {
        code = exit::INCOMPLETE;
    }
    let stopped = settings.sync.stop.requested();
    if let Some(signal) = stopped {
        code = exit::stopped(signal);
    }
    let mut report = RunReport {
        stopped_by: stopped.map(trasloco_sync::signal_name),
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
        mailboxes_altered: mailboxes
            .iter()
            .filter(|m| m.status == MailboxStatus::Altered)
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
        archives,
        left_out: settings.left_out.clone(),
        phase: settings.phase,
        pec: BTreeMap::new(),
    };
    for m in &report.mailboxes {
        for (verdict, n) in &m.pec {
            *report.pec.entry(verdict.clone()).or_default() += n;
        }
    }
    // A report that cannot be written (the disk filled up during the run) does not take the
    // summary with it: the run says what it did, and then that the report is missing.
    let path = write_report(&settings.reports_dir, &report);
    if path.is_err() && report.exit_code == exit::OK {
        report.exit_code = exit::USAGE;
    }
    if let Some(id) = run_id {
        let written = path.as_ref().ok().map(|p| p.display().to_string());
        let _ = state
            .finish_run(
                id,
                &report.finished_at,
                report.exit_code,
                written.as_deref(),
            )
            .await;
    }
    state.close().await;
    Ok((report, path))
}

/// One mailbox of a run: its quota archive part first, then the rest, both recorded.
async fn one_mailbox(
    i: usize,
    job: Job,
    state: &State,
    opts: Options,
    observer: Arc<dyn Observer>,
    phase: Option<crate::phases::Phase>,
) -> (usize, MailboxReport, Option<MailboxReport>) {
    // After a stop was asked for, the mailboxes still waiting are not started.
    if let Some(signal) = opts.stop.requested() {
        let mut r = MailboxReport::failed(
            job.source.label(),
            job.target.label(),
            FailureClass::Stopped,
            format!(
                "not started: the run was stopped by {}; the same command starts it",
                trasloco_sync::signal_name(signal)
            ),
        );
        r.status = MailboxStatus::Incomplete;
        return (i, r, None);
    }
    let progress = observer.start(&job.source.label(), &job.target.label());
    let save = |report: MailboxReport| {
        let state = state.clone();
        async move {
            if opts.dry_run {
                return report;
            }
            let status = status_name(report.status);
            let json = serde_json::to_string(&report).unwrap_or_default();
            let saved = async {
                let id = state.mailbox_id(&report.source, &report.target).await?;
                // The phase's outcome goes with the mailbox's, in one transaction.
                let phase = phase.map(|p| (p.name(), report.buckets.copied));
                state
                    .finish_mailbox(id, &status, &now(), &json, phase)
                    .await?;
                Ok::<_, trasloco_state::Error>(())
            };
            match saved.await {
                // The mailbox is another worker's now: its outcome is that worker's to record.
                Err(e) if e.is_fenced() => {}
                Err(e) => tracing::error!("{e}"),
                Ok(()) => {}
            }
            report
        }
    };
    // archive-oldest: where the cut is now (mail arrived since the plan may move it).
    let mut job = job;
    let mut notes = Vec::new();
    if !opts.dry_run {
        match refit(&job, state, &opts).await {
            Ok(Some((cut, note))) => {
                if let (Some(r), None) = (&job.refit, &job.archive) {
                    job.archive = Some(ArchiveJob {
                        target: r.archive.clone(),
                        before: cut,
                    });
                }
                if let Some(a) = job.archive.as_mut() {
                    a.before = cut;
                }
                notes.extend(note);
            }
            Ok(None) => {}
            Err(why) => notes.push(format!("the quota fit could not be checked again: {why}")),
        }
    }
    // The older part goes to the local archive first, the rest to the target; each
    // side skips, by a named rule, what the other takes.
    let archived = match &job.archive {
        Some(a) => {
            let mut o = opts.clone();
            o.date_rules.push(DateRule {
                rule: "online (newer than the archive cut)".into(),
                skip_before: None,
                skip_from: Some(a.before),
            });
            let r = transfer(&job.source, &a.target, state, &o, progress.as_ref()).await;
            Some(save(r).await)
        }
        None => None,
    };
    let mut o = opts.clone();
    if let Some(a) = &job.archive {
        o.date_rules.push(DateRule {
            rule: ARCHIVED_RULE.into(),
            skip_before: Some(a.before),
            skip_from: None,
        });
        // Copies of messages the archive now holds leave the target, once the archive
        // took them without a failure.
        if let (Target::Archive(t), Some(ar)) = (&a.target, &archived)
            && ar.status == MailboxStatus::InSync
            && let Ok(Some(m)) = trasloco_archive::manifest::load(&t.root)
        {
            o.evict = Some(Arc::new(trasloco_sync::Evict {
                before: a.before,
                archived: m.recorded_ids(),
                rule: ARCHIVED_RULE.into(),
            }));
        }
    }
    let mut transferred = transfer(&job.source, &job.target, state, &o, progress.as_ref()).await;
    transferred.warnings.extend(notes);
    let report = save(transferred).await;
    observer.done(&report);
    (i, report, archived)
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
        assert_eq!(
            exit_code(&[
                report(MailboxStatus::InSync, None),
                report(MailboxStatus::Altered, None)
            ]),
            exit::ALTERED,
            "an altered copy never turns green"
        );
        assert_eq!(
            exit_code(&[
                report(MailboxStatus::Altered, None),
                report(MailboxStatus::Incomplete, None)
            ]),
            exit::INCOMPLETE
        );
    }
}
