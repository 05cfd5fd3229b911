//! `trasloco plan`: look at every mailbox (read-only), apply the rules, and write the decision
//! per mailbox with its reasons — terminal table, plan.json, plan.csv, plan.html — plus what
//! changed since the previous plan. `run` follows the saved plan.

use crate::ConfigError;
use crate::config::Campaign;
use crate::html::{self, Cell};
use crate::rules::{self, Action, Decision, Facts, human_bytes};
use crate::run::Entry;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Semaphore;
use trasloco_state::State;
use trasloco_sync::{SourceInventory, Target, inventory_source, target_quota};

/// (used, limit) in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUse {
    /// Bytes used.
    pub used: u64,
    /// Bytes allowed.
    pub limit: u64,
}

/// One folder in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanFolder {
    /// Source name.
    pub name: String,
    /// Special-use role, if any.
    pub role: Option<String>,
    /// Messages.
    pub messages: u64,
    /// Bytes.
    pub bytes: u64,
    /// Oldest message (RFC 3339).
    pub oldest: Option<String>,
    /// Newest message (RFC 3339).
    pub newest: Option<String>,
    /// `folder-excluded` or `folder-deferred`, when a folder rule applies.
    pub rule: Option<String>,
}

/// One mailbox in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRow {
    /// Source account (`user@host`).
    pub source: String,
    /// Target account (`user@host`).
    pub target: String,
    /// Line in the accounts file.
    pub line: usize,
    /// What happens and why.
    pub decision: Decision,
    /// The quota strategy that applies.
    pub strategy: String,
    /// Messages in the source mailbox (all folders).
    pub messages: u64,
    /// Bytes in the source mailbox.
    pub bytes: u64,
    /// Oldest message.
    pub oldest: Option<String>,
    /// Newest message.
    pub newest: Option<String>,
    /// Last login on the old platform.
    pub last_login: Option<String>,
    /// The source server's quota, when it reports one.
    pub source_quota: Option<QuotaUse>,
    /// The target server's quota, when it reports one.
    pub target_quota: Option<QuotaUse>,
    /// Folders.
    pub folders: Vec<PlanFolder>,
}

/// A saved plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Campaign name.
    pub campaign: Option<String>,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// Per mailbox, in accounts-file order.
    pub mailboxes: Vec<PlanRow>,
    /// What changed since the previous plan (empty for the first).
    pub changes: Vec<String>,
}

impl Plan {
    /// The row for a source account.
    pub fn row(&self, source: &str) -> Option<&PlanRow> {
        self.mailboxes.iter().find(|r| r.source == source)
    }

    /// Mailboxes per action.
    pub fn count(&self, action: Action) -> usize {
        self.mailboxes
            .iter()
            .filter(|r| r.decision.action == action)
            .count()
    }
}

fn rfc3339(t: i64) -> Option<String> {
    Utc.timestamp_opt(t, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn span(messages: &[(Option<i64>, u64)]) -> (Option<String>, Option<String>) {
    let dates = messages.iter().filter_map(|m| m.0);
    (
        dates.clone().min().and_then(rfc3339),
        dates.max().and_then(rfc3339),
    )
}

/// Whether the campaign's rules need a plan before `run` (they depend on what is in the
/// mailboxes).
pub fn required(campaign: &Campaign) -> bool {
    let r = &campaign.file.rules;
    r.skip_inactive_months.is_some() || r.target_quota.is_some() || r.quota_strategy.is_some()
}

/// Load the saved plan, if there is one.
pub fn load(path: &Path) -> Result<Option<Plan>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            ConfigError(format!(
                "plan {} is damaged ({e}); run `trasloco plan` again",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError(format!(
            "cannot read plan {}: {e}",
            path.display()
        ))),
    }
}

/// What looking at a mailbox gave: the source's inventory and the target's quota, each or why
/// its login failed. The source is examined even when the target cannot be: a mailbox the
/// inactivity rule leaves behind needs no target (seed 004 creates none for inactive boxes).
struct Seen {
    source: Result<SourceInventory, String>,
    target: Result<Option<(u64, u64)>, String>,
}

/// Build the row of one mailbox from what was seen.
fn row_of(
    entry: &Entry,
    seen: Seen,
    rules_section: &rules::RulesSection,
    include: &[String],
    now: DateTime<Utc>,
) -> PlanRow {
    let mut row = PlanRow {
        source: entry.source.clone(),
        target: entry.target.clone(),
        line: entry.line,
        decision: Decision {
            action: Action::Migrate,
            rule: None,
            reasons: Vec::new(),
            online_messages: 0,
            online_bytes: 0,
            archived_messages: 0,
            archived_bytes: 0,
            archive_before: None,
            quota: None,
            overflow: 0,
        },
        strategy: entry.strategy.label(),
        messages: 0,
        bytes: 0,
        oldest: None,
        newest: None,
        last_login: entry
            .last_login
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        source_quota: None,
        target_quota: None,
        folders: Vec::new(),
    };
    let mut facts = Facts {
        blocked: entry.blocked.clone(),
        newest: None,
        last_login: entry.last_login,
        included: rules_section.included(include, &entry.source)
            || entry
                .source
                .rsplit_once('@')
                .is_some_and(|(user, _)| rules_section.included(include, user)),
        messages: Vec::new(),
        quota: None,
        strategy: entry.strategy,
    };
    let target_problem = seen.target.as_ref().err().cloned();
    match seen.source {
        Err(why) => {
            if facts.blocked.is_none() {
                facts.blocked = Some(("login".into(), why));
            }
        }
        Ok(inv) => {
            let tq = seen.target.unwrap_or(None);
            let all: Vec<(Option<i64>, u64)> = inv
                .folders
                .iter()
                .flat_map(|f| f.messages.iter().copied())
                .collect();
            row.messages = all.len() as u64;
            row.bytes = all.iter().map(|m| m.1).sum();
            (row.oldest, row.newest) = span(&all);
            facts.newest = all
                .iter()
                .filter_map(|m| m.0)
                .max()
                .and_then(|t| Utc.timestamp_opt(t, 0).single());
            for f in &inv.folders {
                let (oldest, newest) = span(&f.messages);
                row.folders.push(PlanFolder {
                    name: f.name.clone(),
                    role: f.role.map(|r| format!("{r:?}").to_lowercase()),
                    messages: f.messages.len() as u64,
                    bytes: f.messages.iter().map(|m| m.1).sum(),
                    oldest,
                    newest,
                    rule: f.rule.map(str::to_string),
                });
                // Deferred folders move later, but they move: they count against the quota.
                if f.rule != Some("folder-excluded") {
                    facts.messages.extend(f.messages.iter().copied());
                }
            }
            row.source_quota = inv.quota.map(|(used, limit)| QuotaUse { used, limit });
            row.target_quota = tq.map(|(used, limit)| QuotaUse { used, limit });
            facts.quota = rules_section.quota().or(tq.map(|q| q.1));
        }
    }
    row.decision = rules::decide(&facts, rules_section, now);
    // The target's login matters only for a mailbox that is to move.
    if let Some(why) = target_problem
        && facts.blocked.is_none()
    {
        if row.decision.action == Action::Skip {
            row.decision.reasons.push(format!(
                "the target mailbox cannot be logged in to ({why}): not needed, it is not moved"
            ));
        } else {
            facts.blocked = Some(("login".into(), why));
            row.decision = rules::decide(&facts, rules_section, now);
        }
    }
    row
}

/// Look at every mailbox and decide. Nothing is written to any server or to the state.
pub async fn make(
    campaign: &Campaign,
    entries: &[Entry],
    include: &[String],
    jobs: usize,
    now: DateTime<Utc>,
) -> Result<Plan, ConfigError> {
    // POP3 sources need a store to number messages; plan uses a scratch one.
    let scratch = tempfile::tempdir()
        .map_err(|e| ConfigError(format!("cannot create a temporary directory: {e}")))?;
    let state = State::open(&scratch.path().join("plan.sqlite"))
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    let opts = crate::run::settings(campaign, true).sync;
    let limit = Arc::new(Semaphore::new(jobs.max(1)));
    let rules = Arc::new((campaign.file.rules.clone(), include.to_vec()));
    // Each task turns what it saw into its row at once: a mailbox's message list (dates and
    // sizes) is dropped as soon as it is decided, so memory does not grow with the campaign.
    let mut set = tokio::task::JoinSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let (limit, state, opts, rules, entry) = (
            limit.clone(),
            state.clone(),
            opts.clone(),
            rules.clone(),
            entry.clone(),
        );
        set.spawn(async move {
            let seen = match &entry.job {
                // No target address: nothing to look at; the entry says why it is blocked.
                None => Seen {
                    source: Err(String::new()),
                    target: Ok(None),
                },
                Some(job) => {
                    let _permit = limit.acquire_owned().await.expect("semaphore never closed");
                    let (src, tgt) =
                        tokio::join!(inventory_source(&job.source, &state, &opts), async {
                            match &job.target {
                                Target::Imap(side) => target_quota(side).await,
                                Target::Archive(_) => Ok(None),
                            }
                        });
                    Seen {
                        source: src.map_err(|(_, why)| why),
                        target: tgt.map_err(|(_, why)| why),
                    }
                }
            };
            (i, row_of(&entry, seen, &rules.0, &rules.1, now))
        });
    }
    let mut rows: Vec<(usize, PlanRow)> = Vec::with_capacity(entries.len());
    while let Some(r) = set.join_next().await {
        rows.push(r.map_err(|e| ConfigError(format!("internal error: a plan task failed: {e}")))?);
    }
    state.close().await;
    rows.sort_by_key(|(i, _)| *i);
    let mut mailboxes: Vec<PlanRow> = rows.into_iter().map(|(_, r)| r).collect();
    let exchange = campaign
        .file
        .target
        .provider
        .as_deref()
        .and_then(|p| crate::providers::Provider::parse(p).ok())
        == Some(crate::providers::Provider::Microsoft365);
    if exchange {
        for row in mailboxes
            .iter_mut()
            .filter(|r| r.decision.action != Action::Skip)
        {
            let warnings = retention_warnings(&row.folders);
            row.decision.reasons.extend(warnings);
        }
    }
    Ok(Plan {
        campaign: campaign.file.name.clone(),
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        mailboxes,
        changes: Vec::new(),
    })
}

/// Mail that Exchange Online may purge after it arrives: Junk Email is emptied after 30
/// days, and Deleted Items by any retention policy. One line per such folder that moves.
fn retention_warnings(folders: &[PlanFolder]) -> Vec<String> {
    folders
        .iter()
        .filter(|f| f.messages > 0 && f.rule.is_none())
        .filter_map(|f| {
            let (into, why) = match f.role.as_deref()? {
                "junk" => ("Junk Email", "Exchange Online empties it after 30 days"),
                "trash" => ("Deleted Items", "retention policies may purge it"),
                _ => return None,
            };
            Some(format!(
                "{} message(s) in {:?} go to {into}, and {why}: to keep them, map the folder elsewhere with [folders] rename",
                f.messages, f.name
            ))
        })
        .collect()
}

/// What changed from `old` to `new`, one line each.
pub fn changes(old: &Plan, new: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for n in &new.mailboxes {
        let Some(o) = old.row(&n.source) else {
            out.push(format!(
                "{}: new in this plan ({})",
                n.source,
                n.decision.action.label()
            ));
            continue;
        };
        if o.target != n.target {
            out.push(format!("{}: target {} → {}", n.source, o.target, n.target));
        }
        if o.decision.action != n.decision.action || o.decision.rule != n.decision.rule {
            let why = if n.decision.reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", n.decision.reasons.join("; "))
            };
            out.push(format!(
                "{}: {} → {}{why}",
                n.source,
                o.decision.action.label(),
                n.decision.action.label(),
            ));
        }
        if o.messages != n.messages || o.bytes != n.bytes {
            out.push(format!(
                "{}: {} messages ({}) → {} messages ({})",
                n.source,
                o.messages,
                human_bytes(o.bytes),
                n.messages,
                human_bytes(n.bytes)
            ));
        }
        if o.decision.archive_before != n.decision.archive_before {
            out.push(format!(
                "{}: archive cut {} → {}",
                n.source,
                o.decision.archive_before.as_deref().unwrap_or("none"),
                n.decision.archive_before.as_deref().unwrap_or("none")
            ));
        }
    }
    for o in &old.mailboxes {
        if new.row(&o.source).is_none() {
            out.push(format!("{}: no longer in the accounts file", o.source));
        }
    }
    out
}

fn day(s: &Option<String>) -> String {
    s.as_deref()
        .map_or("-".into(), |d| d.get(..10).unwrap_or(d).to_string())
}

fn quota_text(q: &Option<QuotaUse>) -> String {
    q.map_or("-".into(), |q| {
        format!("{} / {}", human_bytes(q.used), human_bytes(q.limit))
    })
}

/// The terminal table.
pub fn table(plan: &Plan) -> String {
    let mut out = String::new();
    let w_src = plan
        .mailboxes
        .iter()
        .map(|r| r.source.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let w_tgt = plan
        .mailboxes
        .iter()
        .map(|r| r.target.len())
        .max()
        .unwrap_or(6)
        .max(6);
    out.push_str(&format!(
        "{:<w_src$}  {:<w_tgt$}  {:<15}  {:>8}  {:>10}  {:>8}  {:>10}  {:>10}  {:>10}  reason\n",
        "source", "target", "decision", "messages", "size", "to move", "size", "newest", "archived"
    ));
    for r in &plan.mailboxes {
        let moving = r.decision.online_messages + r.decision.archived_messages;
        let moving_bytes = r.decision.online_bytes + r.decision.archived_bytes;
        out.push_str(&format!(
            "{:<w_src$}  {:<w_tgt$}  {:<15}  {:>8}  {:>10}  {:>8}  {:>10}  {:>10}  {:>10}  {}\n",
            r.source,
            r.target,
            r.decision.action.label(),
            r.messages,
            human_bytes(r.bytes),
            moving,
            human_bytes(moving_bytes),
            day(&r.newest),
            if r.decision.archived_bytes > 0 {
                human_bytes(r.decision.archived_bytes)
            } else {
                "-".into()
            },
            r.decision.reasons.join("; ")
        ));
    }
    out.push_str(
        "\nmessages, size: every folder of the source mailbox; to move: what the folder rules let \
         through (excluded folders left out, deferred ones in), online and archived together.\n",
    );
    out.push_str(&format!(
        "\n{} mailboxes: {} migrate, {} migrate with archive, {} skip, {} blocked\n",
        plan.mailboxes.len(),
        plan.count(Action::Migrate),
        plan.count(Action::MigrateWithArchive),
        plan.count(Action::Skip),
        plan.count(Action::Blocked)
    ));
    if !plan.changes.is_empty() {
        out.push_str("\nChanged since the last plan:\n");
        for c in &plan.changes {
            out.push_str(&format!("  {c}\n"));
        }
    }
    out
}

const CSV_HEAD: [&str; 17] = [
    "source",
    "target",
    "decision",
    "rule",
    "reasons",
    "messages",
    "bytes",
    "oldest",
    "newest",
    "last_login",
    "online_bytes",
    "archived_messages",
    "archived_bytes",
    "archive_before",
    "quota",
    "overflow",
    "strategy",
];

fn csv_text(plan: &Plan) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEAD)?;
    for r in &plan.mailboxes {
        let d = &r.decision;
        w.write_record([
            r.source.clone(),
            r.target.clone(),
            d.action.label().to_string(),
            d.rule.clone().unwrap_or_default(),
            d.reasons.join("; "),
            r.messages.to_string(),
            r.bytes.to_string(),
            r.oldest.clone().unwrap_or_default(),
            r.newest.clone().unwrap_or_default(),
            r.last_login.clone().unwrap_or_default(),
            d.online_bytes.to_string(),
            d.archived_messages.to_string(),
            d.archived_bytes.to_string(),
            d.archive_before.clone().unwrap_or_default(),
            d.quota.map(|q| q.to_string()).unwrap_or_default(),
            d.overflow.to_string(),
            r.strategy.clone(),
        ])?;
    }
    Ok(String::from_utf8_lossy(&w.into_inner().map_err(|e| e.into_error())?).into_owned())
}

/// The row class an action gets in HTML tables.
pub fn css_class(action: Action) -> &'static str {
    match action {
        Action::Migrate => "migrate",
        Action::MigrateWithArchive => "migrate-archive",
        Action::Skip => "skip",
        Action::Blocked => "blocked",
    }
}

fn html_text(plan: &Plan) -> String {
    let mut body = format!(
        "<h1>Piano di migrazione / Migration plan{}</h1><p class=\"sub\">{}</p>",
        plan.campaign
            .as_deref()
            .map(|n| format!(": {}", html::esc(n)))
            .unwrap_or_default(),
        html::esc(&plan.created_at)
    );
    body.push_str(&html::cards(&[
        ("mailboxes / caselle", plan.mailboxes.len().to_string()),
        ("migrate", plan.count(Action::Migrate).to_string()),
        (
            "migrate + archive",
            plan.count(Action::MigrateWithArchive).to_string(),
        ),
        ("skip", plan.count(Action::Skip).to_string()),
        (
            "blocked / bloccate",
            plan.count(Action::Blocked).to_string(),
        ),
        (
            "online",
            human_bytes(plan.mailboxes.iter().map(|r| r.decision.online_bytes).sum()),
        ),
        (
            "archived / archiviati",
            human_bytes(
                plan.mailboxes
                    .iter()
                    .map(|r| r.decision.archived_bytes)
                    .sum(),
            ),
        ),
    ]));
    if !plan.changes.is_empty() {
        body.push_str("<h2>Changed since the last plan / Modifiche dall'ultimo piano</h2><ul>");
        for c in &plan.changes {
            body.push_str(&format!("<li>{}</li>", html::esc(c)));
        }
        body.push_str("</ul>");
    }
    body.push_str("<h2>Mailboxes / Caselle</h2>");
    let rows: Vec<(String, Vec<Cell>)> = plan
        .mailboxes
        .iter()
        .map(|r| {
            let d = &r.decision;
            (
                css_class(d.action).to_string(),
                vec![
                    Cell::Text(r.source.clone()),
                    Cell::Text(r.target.clone()),
                    Cell::Text(d.action.label().into()),
                    Cell::Num(r.messages.to_string(), r.messages as f64),
                    Cell::Num(human_bytes(r.bytes), r.bytes as f64),
                    Cell::Text(day(&r.newest)),
                    Cell::Text(day(&r.last_login)),
                    Cell::Text(quota_text(&r.target_quota)),
                    Cell::Num(human_bytes(d.online_bytes), d.online_bytes as f64),
                    Cell::Num(human_bytes(d.archived_bytes), d.archived_bytes as f64),
                    Cell::Text(d.reasons.join("; ")),
                ],
            )
        })
        .collect();
    body.push_str(&html::table(
        "plan",
        &[
            "source",
            "target",
            "decision",
            "messages",
            "size",
            "newest",
            "last login",
            "target quota",
            "online",
            "archived",
            "reasons",
        ],
        &rows,
    ));
    html::page("trasloco plan", &body)
}

/// Write plan.json, plan.csv and plan.html into `dir`; returns the JSON path.
pub fn write(dir: &Path, plan: &Plan) -> Result<PathBuf, ConfigError> {
    crate::write_files(
        dir,
        [
            ("plan.csv", csv_text(plan).map_err(|e| e.to_string())),
            ("plan.html", Ok(html_text(plan))),
            (
                "plan.json",
                serde_json::to_string_pretty(plan).map_err(|e| e.to_string()),
            ),
        ],
    )?;
    Ok(dir.join("plan.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(source: &str, action: Action, messages: u64) -> PlanRow {
        PlanRow {
            source: source.into(),
            target: "t@x".into(),
            line: 2,
            decision: Decision {
                action,
                rule: None,
                reasons: vec!["because".into()],
                online_messages: messages,
                online_bytes: 10,
                archived_messages: 0,
                archived_bytes: 0,
                archive_before: None,
                quota: None,
                overflow: 0,
            },
            strategy: "report".into(),
            messages,
            bytes: 10,
            oldest: None,
            newest: Some("2026-01-02T00:00:00Z".into()),
            last_login: None,
            source_quota: None,
            target_quota: Some(QuotaUse {
                used: 0,
                limit: 1 << 30,
            }),
            folders: Vec::new(),
        }
    }

    #[test]
    fn junk_and_deleted_items_get_a_retention_warning() {
        let folder = |name: &str, role: Option<&str>, messages, rule: Option<&str>| PlanFolder {
            name: name.into(),
            role: role.map(str::to_string),
            messages,
            bytes: 0,
            oldest: None,
            newest: None,
            rule: rule.map(str::to_string),
        };
        let w = retention_warnings(&[
            folder("INBOX", Some("inbox"), 10, None),
            folder("Spam", Some("junk"), 3, None),
            folder("Cestino", Some("trash"), 2, None),
            folder("Posta indesiderata", Some("junk"), 0, None),
            folder("Vecchio cestino", Some("trash"), 5, Some("folder-excluded")),
        ]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("3 message(s) in \"Spam\" go to Junk Email"));
        assert!(w[1].contains("Deleted Items") && w[1].contains("[folders] rename"));
    }

    #[test]
    fn changes_between_plans() {
        let plan = |rows| Plan {
            campaign: None,
            created_at: "now".into(),
            mailboxes: rows,
            changes: Vec::new(),
        };
        let old = plan(vec![
            row("a@h", Action::Migrate, 3),
            row("b@h", Action::Skip, 1),
        ]);
        let new = plan(vec![
            row("a@h", Action::Blocked, 4),
            row("c@h", Action::Migrate, 1),
        ]);
        let c = changes(&old, &new);
        assert!(
            c.iter().any(|l| l.starts_with("a@h: migrate → blocked")),
            "{c:?}"
        );
        assert!(c.iter().any(|l| l.starts_with("a@h: 3 messages")), "{c:?}");
        assert!(
            c.iter().any(|l| l.starts_with("c@h: new in this plan")),
            "{c:?}"
        );
        assert!(
            c.iter().any(|l| l == "b@h: no longer in the accounts file"),
            "{c:?}"
        );
        assert!(changes(&new, &new).is_empty());
        // A decision without reasons gives no empty parentheses.
        let mut kept = row("b@h", Action::Migrate, 1);
        kept.decision.reasons.clear();
        let c = changes(&old, &plan(vec![kept]));
        assert!(c.iter().any(|l| l == "b@h: skip → migrate"), "{c:?}");
    }

    #[test]
    fn outputs_agree() {
        let p = Plan {
            campaign: Some("Cultura <2026>".into()),
            created_at: "2026-11-23T00:00:00Z".into(),
            mailboxes: vec![row("a@h", Action::Migrate, 3)],
            changes: vec!["a@h: new".into()],
        };
        let csv = csv_text(&p).unwrap();
        assert!(csv.starts_with("source,target,decision"));
        assert!(csv.contains("a@h,t@x,migrate,,because,3,10,"));
        let h = html_text(&p);
        assert!(h.contains("Cultura &lt;2026&gt;") && h.contains("a@h"));
        assert!(table(&p).contains("1 mailboxes: 1 migrate"));
        let dir = tempfile::tempdir().unwrap();
        let json = write(dir.path(), &p).unwrap();
        assert_eq!(load(&json).unwrap(), Some(p));
        assert!(dir.path().join("plan.html").exists() && dir.path().join("plan.csv").exists());
    }
}
