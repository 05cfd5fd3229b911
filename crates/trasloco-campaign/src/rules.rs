//! The campaign's rules, as pure functions: which address a mailbox moves to, whether it is
//! inactive, whether it fits the target's quota and what the quota strategy does about it, and
//! the decision that follows. `plan` feeds them an inventory; `run` and `verify` read the
//! decisions back from the plan.

use chrono::{DateTime, Months, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use trasloco_core::folder_map::Role;

/// `[rules]` in the campaign file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSection {
    /// Source domain → target domain; the local part is kept. An account's `target_user`
    /// column, when filled, wins.
    #[serde(default)]
    pub domain_map: BTreeMap<String, String>,
    /// Skip a mailbox when neither its newest message nor its last login is this recent.
    pub skip_inactive_months: Option<u32>,
    /// CSV of `user,last_login` (exported from the old platform), relative to the campaign file.
    pub last_login_file: Option<PathBuf>,
    /// Source accounts migrated even when a rule would skip them.
    #[serde(default)]
    pub include: Vec<String>,
    /// The target quota per mailbox (`3GB`, `500MB`, `2048KB`, bytes; binary units, as
    /// Dovecot counts). When unset, the quota the target server reports is used.
    pub target_quota: Option<String>,
    /// What to do with a mailbox that does not fit: `report` (default: blocked until someone
    /// decides), `archive-oldest`, or `keep-days` (with `keep_days`). An account's
    /// `quota_strategy` column overrides it.
    pub quota_strategy: Option<String>,
    /// Days kept online with `keep-days`.
    pub keep_days: Option<u32>,
    /// Safety margin kept free below the quota by `archive-oldest`, in percent (default 5).
    pub quota_margin_percent: Option<f64>,
    /// Where archived messages go, one archive per source account (default
    /// `trasloco-archives`).
    pub archive_dir: Option<PathBuf>,
}

impl RulesSection {
    /// Check the values that are parsed later, so mistakes show when the file is loaded.
    pub fn check(&self) -> Result<(), String> {
        if let Some(q) = &self.target_quota {
            parse_size(q).map_err(|e| format!("[rules] target_quota: {e}"))?;
        }
        if let Some(s) = &self.quota_strategy {
            Strategy::parse(s, self.keep_days)
                .map_err(|e| format!("[rules] quota_strategy: {e}"))?;
        }
        if let Some(m) = self.quota_margin_percent
            && !(0.0..90.0).contains(&m)
        {
            return Err("[rules] quota_margin_percent must be between 0 and 90".into());
        }
        for (from, to) in &self.domain_map {
            if from.contains('@') || to.contains('@') || from.is_empty() || to.is_empty() {
                return Err(format!(
                    "[rules] domain_map: {from:?} = {to:?} must map a domain to a domain (no @)"
                ));
            }
        }
        Ok(())
    }

    /// The campaign-wide quota strategy.
    pub fn strategy(&self) -> Strategy {
        self.quota_strategy
            .as_deref()
            .and_then(|s| Strategy::parse(s, self.keep_days).ok())
            .unwrap_or(Strategy::Report)
    }

    /// The configured quota, in bytes.
    pub fn quota(&self) -> Option<u64> {
        self.target_quota
            .as_deref()
            .and_then(|q| parse_size(q).ok())
    }

    /// The margin as a fraction.
    pub fn margin(&self) -> f64 {
        self.quota_margin_percent.unwrap_or(5.0) / 100.0
    }

    /// Whether a source account is listed in `include` (or on the command line).
    pub fn included(&self, extra: &[String], source: &str) -> bool {
        self.include
            .iter()
            .chain(extra)
            .any(|i| i.eq_ignore_ascii_case(source))
    }
}

/// What happens to a mailbox over its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "strategy", content = "days")]
pub enum Strategy {
    /// Blocked until someone decides.
    Report,
    /// The oldest messages beyond the quota (less a margin) go to a local archive.
    ArchiveOldest,
    /// Only the last N days online; everything older goes to a local archive.
    KeepDays(u32),
}

impl Strategy {
    /// `report`, `archive-oldest`, `keep-days` (with the campaign's `keep_days`) or
    /// `keep-days N` / `keep-days:N`.
    pub fn parse(s: &str, keep_days: Option<u32>) -> Result<Strategy, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "report" => Ok(Strategy::Report),
            "archive-oldest" => Ok(Strategy::ArchiveOldest),
            "keep-days" => keep_days.map(Strategy::KeepDays).ok_or_else(|| {
                "keep-days needs a number of days: set [rules] keep_days or write \"keep-days 365\"".to_string()
            }),
            other => match other
                .strip_prefix("keep-days")
                .map(|d| d.trim_start_matches([' ', ':', '=']).parse::<u32>())
            {
                Some(Ok(n)) if n > 0 => Ok(Strategy::KeepDays(n)),
                _ => Err(format!(
                    "unknown strategy {s:?}; use report, archive-oldest or keep-days N"
                )),
            },
        }
    }

    /// How people read it.
    pub fn label(self) -> String {
        match self {
            Strategy::Report => "report".into(),
            Strategy::ArchiveOldest => "archive-oldest".into(),
            Strategy::KeepDays(n) => format!("keep-days {n}"),
        }
    }
}

/// A size like `3GB`, `3 GiB`, `500M`, `2048KB` or `1000` (bytes); binary units.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; write e.g. \"3GB\" or \"500MB\""))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => return Err(format!("{s:?}: unknown unit {u:?}; use KB, MB, GB or TB")),
    };
    Ok((n * mult as f64).round() as u64)
}

/// A role named in the campaign file.
pub fn role_named(s: &str) -> Option<Role> {
    match s.trim().to_ascii_lowercase().as_str() {
        "inbox" => Some(Role::Inbox),
        other => Role::from_attribute(other),
    }
}

/// The target address of a source account: the accounts file's `target_user` when filled,
/// else the source address with its domain mapped by `domain_map`.
pub fn target_address(
    source: &str,
    explicit: &str,
    domain_map: &BTreeMap<String, String>,
) -> Result<String, String> {
    if !explicit.is_empty() {
        return Ok(explicit.to_string());
    }
    let Some((local, domain)) = source.rsplit_once('@') else {
        return Err(format!(
            "no target_user for {source:?}, and it has no @domain for domain_map to map"
        ));
    };
    domain_map
        .iter()
        .find(|(from, _)| from.eq_ignore_ascii_case(domain))
        .map(|(_, to)| format!("{local}@{to}"))
        .ok_or_else(|| {
            format!("no target_user for {source:?}, and domain_map has no entry for {domain:?}")
        })
}

/// Accounts whose target address is also another account's: index → reason. Such mailboxes
/// are blocked, never merged.
pub fn conflicts(pairs: &[(String, String)]) -> BTreeMap<usize, String> {
    let mut by_target: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (_, t)) in pairs.iter().enumerate() {
        by_target.entry(t.to_ascii_lowercase()).or_default().push(i);
    }
    let mut out = BTreeMap::new();
    for (target, idx) in by_target.into_iter().filter(|(_, v)| v.len() > 1) {
        let sources: Vec<&str> = idx.iter().map(|&i| pairs[i].0.as_str()).collect();
        for &i in &idx {
            out.insert(
                i,
                format!(
                    "address conflict: {} all map to {target}; give one a target_user of its own",
                    sources.join(", ")
                ),
            );
        }
    }
    out
}

/// The evidence that a mailbox is inactive, or None when it is active: neither its newest
/// message nor its last login is within `months` before `now`.
pub fn inactive(
    newest: Option<DateTime<Utc>>,
    last_login: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    months: u32,
) -> Option<String> {
    let since = window_start(now, months);
    let recent = |d: Option<DateTime<Utc>>| d.is_some_and(|d| d >= since);
    if recent(newest) || recent(last_login) {
        return None;
    }
    Some(format!(
        "inactive for {months} months: newest message {}, last login {} (window starts {})",
        day(newest),
        day(last_login),
        since.format("%Y-%m-%d")
    ))
}

/// Why a mailbox the inactivity rule would skip by its mail alone is kept: a recent login.
/// `None` when its newest message is recent enough by itself.
pub fn kept_by_login(
    newest: Option<DateTime<Utc>>,
    last_login: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    months: u32,
) -> Option<String> {
    let since = window_start(now, months);
    if newest.is_some_and(|d| d >= since) {
        return None;
    }
    let login = last_login.filter(|d| *d >= since)?;
    Some(format!(
        "kept: last login {} (newest message {}, older than {months} months)",
        day(Some(login)),
        day(newest)
    ))
}

/// Where the inactivity window starts.
fn window_start(now: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    now.checked_sub_months(Months::new(months)).unwrap_or(now)
}

/// A day for reasons: `2026-11-23`, or `none`.
fn day(d: Option<DateTime<Utc>>) -> String {
    d.map_or("none".to_string(), |d| d.format("%Y-%m-%d").to_string())
}

/// One message as the quota arithmetic sees it: date (Unix seconds, None when unknown) and
/// size.
pub type Dated = (Option<i64>, u64);

/// How a mailbox fits its quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaFit {
    /// Whether everything fits (below the limit).
    pub fits: bool,
    /// Bytes beyond the limit when everything is migrated.
    pub overflow: u64,
    /// Messages dated before this go to the archive (None: nothing archived).
    pub archive_before: Option<i64>,
    /// Messages and bytes left online.
    pub online: (u64, u64),
    /// Messages and bytes archived.
    pub archived: (u64, u64),
    /// Why the strategy could not make it fit, if so.
    pub problem: Option<String>,
}

/// Fit `messages` into `limit` bytes with `strategy`. `archive-oldest` keeps the newest
/// messages within `limit × (1 − margin)`; messages with the same date go together, undated
/// ones stay online. `keep-days N` archives what is older than N days before `now`.
pub fn quota_fit(
    messages: &[Dated],
    limit: u64,
    margin: f64,
    strategy: Strategy,
    now: DateTime<Utc>,
) -> QuotaFit {
    let total: u64 = messages.iter().map(|m| m.1).sum();
    let count = messages.len() as u64;
    let overflow = total.saturating_sub(limit);
    let mut fit = QuotaFit {
        fits: total <= limit,
        overflow,
        archive_before: None,
        online: (count, total),
        archived: (0, 0),
        problem: None,
    };
    let split = |before: i64| {
        let (mut on, mut ar) = ((0u64, 0u64), (0u64, 0u64));
        for (d, s) in messages {
            let slot = if d.is_some_and(|d| d < before) {
                &mut ar
            } else {
                &mut on
            };
            slot.0 += 1;
            slot.1 += s;
        }
        (on, ar)
    };
    // Archive what is dated before `before`; a problem when the rest still does not fit.
    let archive = |fit: &mut QuotaFit, before: i64, how: String| {
        let (on, ar) = split(before);
        fit.archive_before = (ar.0 > 0).then_some(before);
        fit.online = on;
        fit.archived = ar;
        if on.1 > limit {
            fit.problem = Some(format!(
                "still over quota by {} {how}",
                human_bytes(on.1 - limit)
            ));
        }
    };
    match strategy {
        _ if fit.fits && !matches!(strategy, Strategy::KeepDays(_)) => {}
        Strategy::Report => {
            fit.problem = Some(format!(
                "over quota by {} (strategy report: decide, e.g. set quota_strategy for this account)",
                human_bytes(overflow)
            ))
        }
        Strategy::ArchiveOldest => {
            let budget = (limit as f64 * (1.0 - margin)) as u64;
            let mut dated: Vec<(i64, u64)> = messages
                .iter()
                .filter_map(|(d, s)| d.map(|d| (d, *s)))
                .collect();
            dated.sort_unstable_by_key(|m| std::cmp::Reverse(m.0));
            let mut used: u64 = messages.iter().filter(|m| m.0.is_none()).map(|m| m.1).sum();
            // Walk from the newest, a whole date at a time; the cut is the oldest date kept.
            let mut cut: Option<i64> = None;
            let mut i = 0;
            while i < dated.len() {
                let d = dated[i].0;
                let group: u64 = dated[i..]
                    .iter()
                    .take_while(|m| m.0 == d)
                    .map(|m| m.1)
                    .sum();
                let n = dated[i..].iter().take_while(|m| m.0 == d).count();
                if used + group > budget {
                    break;
                }
                used += group;
                cut = Some(d);
                i += n;
            }
            let before = match (cut, dated.first()) {
                (Some(c), _) => c,
                // Not even the newest date fits: everything dated is archived.
                (None, Some(newest)) => newest.0 + 1,
                (None, None) => i64::MIN,
            };
            archive(
                &mut fit,
                before,
                "after archiving every dated message".into(),
            );
        }
        Strategy::KeepDays(days) => {
            // From the start of that day, so plans made on the same day agree.
            let before = (now - chrono::Duration::days(i64::from(days)))
                .date_naive()
                .and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp();
            archive(
                &mut fit,
                before,
                format!("with only the last {days} days online"),
            );
        }
    }
    fit
}

/// What the plan decided for a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Migrate everything the folder rules allow.
    Migrate,
    /// Migrate the newer part; the older part goes to a verified local archive.
    MigrateWithArchive,
    /// Left behind by a rule.
    Skip,
    /// Cannot go until someone acts.
    Blocked,
}

impl Action {
    /// How tables print it.
    pub fn label(self) -> &'static str {
        match self {
            Action::Migrate => "migrate",
            Action::MigrateWithArchive => "migrate+archive",
            Action::Skip => "skip",
            Action::Blocked => "blocked",
        }
    }
}

/// The plan's decision for one mailbox, with its reasons and numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// What happens.
    pub action: Action,
    /// The rule behind a skip or block: `inactive`, `conflict`, `over-quota`, `login`,
    /// `address`.
    pub rule: Option<String>,
    /// Why, in words, with the evidence.
    pub reasons: Vec<String>,
    /// Messages and bytes that go to the target.
    pub online_messages: u64,
    /// Bytes that go to the target.
    pub online_bytes: u64,
    /// Messages that go to the local archive.
    pub archived_messages: u64,
    /// Bytes that go to the local archive.
    pub archived_bytes: u64,
    /// Messages dated before this (RFC 3339) go to the archive.
    pub archive_before: Option<String>,
    /// The quota the plan used, in bytes.
    pub quota: Option<u64>,
    /// Bytes over the quota if everything were migrated.
    pub overflow: u64,
}

/// What the rules need to know about one mailbox.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Why the mailbox cannot even be looked at (login failed, no target address, conflict):
    /// (rule, reason).
    pub blocked: Option<(String, String)>,
    /// Newest message date.
    pub newest: Option<DateTime<Utc>>,
    /// Last login, from the old platform.
    pub last_login: Option<DateTime<Utc>>,
    /// Listed in `include`.
    pub included: bool,
    /// Dates and sizes of the messages the folder rules let through.
    pub messages: Vec<Dated>,
    /// The quota to fit, in bytes.
    pub quota: Option<u64>,
    /// The strategy for this mailbox.
    pub strategy: Strategy,
}

/// Apply the rules: blocked first (it cannot go), then inactivity (it need not go), then the
/// quota.
pub fn decide(facts: &Facts, rules: &RulesSection, now: DateTime<Utc>) -> Decision {
    let bytes: u64 = facts.messages.iter().map(|m| m.1).sum();
    let mut d = Decision {
        action: Action::Migrate,
        rule: None,
        reasons: Vec::new(),
        online_messages: facts.messages.len() as u64,
        online_bytes: bytes,
        archived_messages: 0,
        archived_bytes: 0,
        archive_before: None,
        quota: facts.quota,
        overflow: 0,
    };
    if let Some((rule, why)) = &facts.blocked {
        d.action = Action::Blocked;
        d.rule = Some(rule.clone());
        d.reasons.push(why.clone());
        return d;
    }
    if let Some(months) = rules.skip_inactive_months {
        match inactive(facts.newest, facts.last_login, now, months) {
            Some(evidence) if facts.included => {
                d.reasons.push(format!("{evidence}; included by request"));
            }
            Some(evidence) => {
                d.action = Action::Skip;
                d.rule = Some("inactive".into());
                d.reasons.push(evidence);
                return d;
            }
            None => {
                if let Some(why) = kept_by_login(facts.newest, facts.last_login, now, months) {
                    d.reasons.push(why);
                }
            }
        }
    }
    if let Some(limit) = facts.quota {
        let fit = quota_fit(&facts.messages, limit, rules.margin(), facts.strategy, now);
        d.overflow = fit.overflow;
        if let Some(problem) = fit.problem {
            d.action = Action::Blocked;
            d.rule = Some("over-quota".into());
            d.reasons.push(problem);
            return d;
        }
        if let Some(before) = fit.archive_before {
            d.action = Action::MigrateWithArchive;
            d.online_messages = fit.online.0;
            d.online_bytes = fit.online.1;
            d.archived_messages = fit.archived.0;
            d.archived_bytes = fit.archived.1;
            d.archive_before = Utc
                .timestamp_opt(before, 0)
                .single()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            d.reasons.push(if fit.fits {
                format!(
                    "{}: {} older than {} archived",
                    facts.strategy.label(),
                    human_bytes(fit.archived.1),
                    d.archive_before.as_deref().unwrap_or("?")
                )
            } else {
                format!(
                    "over quota by {}; {}: {} online, {} archived",
                    human_bytes(fit.overflow),
                    facts.strategy.label(),
                    human_bytes(fit.online.1),
                    human_bytes(fit.archived.1)
                )
            });
        }
        // Mail keeps arriving until the cutover: a mailbox that moves within a tenth of its
        // quota is said to be close to the edge.
        if d.online_bytes.saturating_mul(10) >= limit.saturating_mul(9) {
            d.reasons.push(format!(
                "close to the quota: {} of {} online; mail arriving before the cutover may push it over{}",
                human_bytes(d.online_bytes),
                human_bytes(limit),
                match facts.strategy {
                    Strategy::ArchiveOldest => {
                        " (archive-oldest checks the fit again at every run)"
                    }
                    _ => " (archive-oldest would check the fit again at every run)",
                }
            ));
        }
    }
    d
}

/// `1.5 GiB`-style sizes for people (binary units, as the quota, and named so).
pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    let (v, unit) = if n >= (1u64 << 30) as f64 {
        (n / (1u64 << 30) as f64, "GiB")
    } else if n >= (1u64 << 20) as f64 {
        (n / (1u64 << 20) as f64, "MiB")
    } else if n >= 1024.0 {
        (n / 1024.0, "KiB")
    } else {
        return format!("{n} B");
    };
    format!("{v:.1} {unit}")
}

/// A date from a CSV cell: `2025-03-01`, `2025-03-01 12:00[:00]` or RFC 3339.
pub fn parse_day(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{prop_assert, prop_assert_eq, proptest};

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn sizes_and_strategies_parse() {
        assert_eq!(parse_size("3GB"), Ok(3 << 30));
        assert_eq!(parse_size("3 GiB"), Ok(3 << 30));
        assert_eq!(parse_size("500MB"), Ok(500 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(
            parse_size("3 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("lots").is_err());
        assert_eq!(Strategy::parse("report", None), Ok(Strategy::Report));
        assert_eq!(
            Strategy::parse("Archive-Oldest", None),
            Ok(Strategy::ArchiveOldest)
        );
        assert_eq!(
            Strategy::parse("keep-days", Some(90)),
            Ok(Strategy::KeepDays(90))
        );
        assert_eq!(
            Strategy::parse("keep-days:30", None),
            Ok(Strategy::KeepDays(30))
        );
        assert!(Strategy::parse("keep-days", None).is_err());
        assert!(Strategy::parse("delete-oldest", None).is_err());
    }

    #[test]
    fn addresses_follow_the_domain_map_unless_overridden() {
        let map: BTreeMap<String, String> =
            [("beniculturali.it".to_string(), "cultura.gov.it".to_string())].into();
        assert_eq!(
            target_address("anna.rossi@beniculturali.it", "", &map),
            Ok("anna.rossi@cultura.gov.it".into())
        );
        assert_eq!(
            target_address("anna.rossi@BeniCulturali.it", "", &map),
            Ok("anna.rossi@cultura.gov.it".into())
        );
        assert_eq!(
            target_address(
                "anna.rossi@beniculturali.it",
                "a.rossi@cultura.gov.it",
                &map
            ),
            Ok("a.rossi@cultura.gov.it".into())
        );
        assert!(
            target_address("anna@other.it", "", &map)
                .unwrap_err()
                .contains("\"other.it\"")
        );
        assert!(
            target_address("anna", "", &map)
                .unwrap_err()
                .contains("no @domain")
        );
    }

    #[test]
    fn conflicts_name_every_source() {
        let pairs = vec![
            ("a@x.it".to_string(), "a@y.it".to_string()),
            ("b@x.it".to_string(), "b@y.it".to_string()),
            ("a@z.it".to_string(), "A@y.it".to_string()),
        ];
        let c = conflicts(&pairs);
        assert_eq!(c.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
        assert!(c[&0].contains("a@x.it, a@z.it"), "{}", c[&0]);
    }

    #[test]
    fn inactivity_needs_both_dates_old() {
        let now = at(2026, 11, 1);
        assert!(inactive(Some(at(2025, 1, 1)), None, now, 12).is_some());
        assert!(inactive(Some(at(2026, 1, 1)), None, now, 12).is_none());
        assert!(inactive(Some(at(2020, 1, 1)), Some(at(2026, 10, 1)), now, 12).is_none());
        let e = inactive(None, Some(at(2024, 5, 6)), now, 12).unwrap();
        assert!(e.contains("newest message none"), "{e}");
        assert!(e.contains("last login 2024-05-06"), "{e}");
    }

    #[test]
    fn archive_oldest_keeps_the_newest_within_the_margin() {
        let now = at(2026, 11, 1);
        let day = |d: u32| Some(at(2026, 1, d).timestamp());
        // 10 messages of 100 bytes, one per day; limit 600, margin 10 % → 540 → 5 online.
        let msgs: Vec<Dated> = (1..=10).map(|d| (day(d), 100)).collect();
        let fit = quota_fit(&msgs, 600, 0.10, Strategy::ArchiveOldest, now);
        assert!(!fit.fits);
        assert_eq!(fit.overflow, 400);
        assert_eq!(fit.online, (5, 500));
        assert_eq!(fit.archived, (5, 500));
        assert_eq!(fit.archive_before, day(6));
        assert!(fit.problem.is_none());
        let report = quota_fit(&msgs, 600, 0.10, Strategy::Report, now);
        assert!(report.problem.unwrap().contains("over quota by 400 B"));
        assert_eq!(report.archive_before, None);
    }

    #[test]
    fn keep_days_archives_by_age_and_blocks_when_still_too_big() {
        let now = at(2026, 11, 1);
        let msgs = vec![
            (Some(at(2026, 10, 30).timestamp()), 100),
            (Some(at(2025, 1, 1).timestamp()), 900),
            (None, 50),
        ];
        let fit = quota_fit(&msgs, 10_000, 0.05, Strategy::KeepDays(30), now);
        assert!(fit.fits, "keep-days applies even when everything fits");
        assert_eq!(fit.online, (2, 150));
        assert_eq!(fit.archived, (1, 900));
        let tight = quota_fit(&msgs, 100, 0.05, Strategy::KeepDays(30), now);
        assert!(tight.problem.unwrap().contains("still over quota by 50 B"));
    }

    #[test]
    fn decisions_in_order_blocked_inactive_quota() {
        let now = at(2026, 11, 1);
        let rules = RulesSection {
            skip_inactive_months: Some(12),
            ..Default::default()
        };
        let mut f = Facts {
            blocked: None,
            newest: Some(at(2024, 1, 1)),
            last_login: None,
            included: false,
            messages: vec![(Some(at(2024, 1, 1).timestamp()), 10)],
            quota: Some(5),
            strategy: Strategy::Report,
        };
        assert_eq!(decide(&f, &rules, now).action, Action::Skip);
        f.included = true;
        let d = decide(&f, &rules, now);
        assert_eq!(d.action, Action::Blocked);
        assert_eq!(d.rule.as_deref(), Some("over-quota"));
        assert!(d.reasons[0].contains("included by request"));
        f.strategy = Strategy::ArchiveOldest;
        f.quota = Some(85);
        f.messages.push((Some(at(2026, 10, 1).timestamp()), 80));
        let d = decide(&f, &rules, now);
        assert_eq!(d.action, Action::MigrateWithArchive);
        assert_eq!((d.online_bytes, d.archived_bytes), (80, 10));
        assert_eq!(d.archive_before.as_deref(), Some("2026-10-01T00:00:00Z"));
        f.blocked = Some(("login".into(), "source login failed".into()));
        assert_eq!(decide(&f, &rules, now).action, Action::Blocked);
    }

    #[test]
    fn a_mailbox_close_to_its_quota_is_said_to_be() {
        let now = at(2026, 11, 30);
        let f = Facts {
            blocked: None,
            newest: Some(at(2026, 11, 1)),
            last_login: None,
            included: false,
            messages: vec![(Some(at(2026, 11, 1).timestamp()), 95)],
            quota: Some(100),
            strategy: Strategy::Report,
        };
        let d = decide(&f, &RulesSection::default(), now);
        assert_eq!(d.action, Action::Migrate);
        assert!(
            d.reasons[0].starts_with("close to the quota: 95 B of 100 B online"),
            "{d:?}"
        );
        let roomy = Facts {
            quota: Some(200),
            ..f
        };
        assert!(
            decide(&roomy, &RulesSection::default(), now)
                .reasons
                .is_empty()
        );
    }

    #[test]
    fn a_mailbox_kept_by_a_recent_login_says_so() {
        let now = at(2026, 11, 30);
        let rules = RulesSection {
            skip_inactive_months: Some(12),
            ..Default::default()
        };
        let f = Facts {
            blocked: None,
            newest: Some(at(2024, 6, 30)),
            last_login: Some(at(2026, 11, 23)),
            included: false,
            messages: vec![(Some(at(2024, 6, 30).timestamp()), 10)],
            quota: None,
            strategy: Strategy::Report,
        };
        let d = decide(&f, &rules, now);
        assert_eq!(d.action, Action::Migrate);
        assert_eq!(
            d.reasons,
            ["kept: last login 2026-11-23 (newest message 2024-06-30, older than 12 months)"]
        );
        let recent = Facts {
            newest: Some(at(2026, 11, 1)),
            ..f
        };
        assert!(decide(&recent, &rules, now).reasons.is_empty());
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn days_from_csv_cells() {
        assert_eq!(parse_day("2025-03-01"), Some(at(2025, 3, 1)));
        assert_eq!(
            parse_day("2025-03-01T10:00:00+01:00"),
            Some(Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0).unwrap())
        );
        assert_eq!(parse_day("yesterday"), None);
    }

    proptest! {
        /// Online plus archived is always everything, the archive holds only messages older
        /// than everything online that is dated, and the online part fits when the strategy
        /// says it does.
        #[test]
        fn quota_fit_partitions(
            msgs in proptest::collection::vec((proptest::option::of(0i64..1000), 1u64..500), 0..60),
            limit in 1u64..20_000,
            keep in 1u32..400,
            oldest in proptest::bool::ANY,
        ) {
            let now = Utc.timestamp_opt(400 * 86_400, 0).unwrap();
            let msgs: Vec<Dated> = msgs.into_iter().map(|(d, s)| (d.map(|d| d * 86_400), s)).collect();
            let strategy = if oldest { Strategy::ArchiveOldest } else { Strategy::KeepDays(keep) };
            let fit = quota_fit(&msgs, limit, 0.05, strategy, now);
            let total: u64 = msgs.iter().map(|m| m.1).sum();
            prop_assert_eq!(fit.online.0 + fit.archived.0, msgs.len() as u64);
            prop_assert_eq!(fit.online.1 + fit.archived.1, total);
            // What archive-oldest keeps online fits the budget, unless undated mail alone
            // (which always stays online) is bigger.
            let undated: u64 = msgs.iter().filter(|m| m.0.is_none()).map(|m| m.1).sum();
            if oldest && fit.archived.0 > 0 {
                prop_assert!(fit.online.1 as f64 <= (limit as f64 * 0.95).max(undated as f64) + 1.0);
            }
            if fit.problem.is_none() {
                prop_assert!(fit.online.1 <= limit);
            }
        }
    }
}
