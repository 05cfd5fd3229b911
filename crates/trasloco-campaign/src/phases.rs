//! Phases around a cutover, and the window runs may start in.
//!
//! - `prestage`: messages older than `prestage_older_than_days`, while users still work on the
//!   old system; deferred folders wait.
//! - `delta`: everything new since, flags propagated; deferred folders wait.
//! - `final`: the cutover pass, deferred folders included.
//! - `catchup`: after the MX switch, only the folders that can still receive mail (INBOX and
//!   the junk folder, or `catchup_folders`).
//!
//! A run without `--phase` is a delta.

use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use trasloco_core::folder_map::Role;
use trasloco_sync::{DateRule, FolderSelect, Options};

/// `[phases]` in the campaign file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhasesSection {
    /// `prestage` copies messages older than this many days (default 30).
    pub prestage_older_than_days: Option<u32>,
    /// Folders (globs) the `catchup` phase reads; default INBOX and the junk folder.
    #[serde(default)]
    pub catchup_folders: Vec<String>,
}

/// A phase of the campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Old messages ahead of time.
    Prestage,
    /// Everything new, flags propagated.
    Delta,
    /// The cutover pass, deferred folders included.
    Final,
    /// Late mail after the MX switch.
    Catchup,
}

impl Phase {
    /// Every phase in campaign order.
    pub const ALL: [Phase; 4] = [Phase::Prestage, Phase::Delta, Phase::Final, Phase::Catchup];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Prestage => "prestage",
            Phase::Delta => "delta",
            Phase::Final => "final",
            Phase::Catchup => "catchup",
        }
    }

    /// Set up the sync options for this phase.
    pub fn apply(self, phases: &PhasesSection, opts: &mut Options, now: DateTime<Utc>) {
        match self {
            Phase::Prestage => {
                let days = phases.prestage_older_than_days.unwrap_or(30);
                opts.date_rules.push(DateRule {
                    rule: format!("prestage: newer than {days} days (copied in delta)"),
                    skip_before: None,
                    skip_from: Some((now - chrono::Duration::days(i64::from(days))).timestamp()),
                });
            }
            Phase::Delta => {}
            Phase::Final => opts.defer.clear(),
            Phase::Catchup => {
                opts.defer.clear();
                opts.only = Some(if phases.catchup_folders.is_empty() {
                    FolderSelect {
                        patterns: Vec::new(),
                        roles: vec![Role::Inbox, Role::Junk],
                    }
                } else {
                    FolderSelect {
                        patterns: phases.catchup_folders.clone(),
                        roles: Vec::new(),
                    }
                });
            }
        }
    }
}

/// `[window]`: runs start only between `start` and `end` (local time, `HH:MM`); an end
/// before the start crosses midnight.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Opening time.
    pub start: String,
    /// Closing time.
    pub end: String,
}

fn hhmm(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| format!("[window] {s:?} is not a time; write HH:MM, e.g. \"20:00\""))
}

impl Window {
    /// Check both times parse.
    pub fn check(&self) -> Result<(), String> {
        for (key, v) in [("start", &self.start), ("end", &self.end)] {
            hhmm(v).map_err(|_| {
                format!("[window] {key}: {v:?} is not a time; write HH:MM, e.g. \"20:00\"")
            })?;
        }
        Ok(())
    }

    /// Whether `t` is inside the window.
    pub fn contains(&self, t: NaiveTime) -> bool {
        let (Ok(a), Ok(b)) = (hhmm(&self.start), hhmm(&self.end)) else {
            return false;
        };
        if a <= b {
            a <= t && t < b
        } else {
            t >= a || t < b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_may_cross_midnight() {
        let w = |a: &str, b: &str| Window {
            start: a.into(),
            end: b.into(),
        };
        let t = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").unwrap();
        assert!(w("20:00", "06:00").contains(t("23:30")));
        assert!(w("20:00", "06:00").contains(t("05:59")));
        assert!(!w("20:00", "06:00").contains(t("06:00")));
        assert!(!w("20:00", "06:00").contains(t("12:00")));
        assert!(w("09:00", "17:00").contains(t("09:00")));
        assert!(!w("09:00", "17:00").contains(t("17:00")));
        assert!(w("9pm", "06:00").check().unwrap_err().contains("HH:MM"));
    }

    #[test]
    fn phases_set_their_rules() {
        let now = Utc::now();
        let phases = PhasesSection::default();
        let base = Options {
            defer: vec!["Archivio".into()],
            ..Options::default()
        };
        let mut o = base.clone();
        Phase::Prestage.apply(&phases, &mut o, now);
        assert_eq!(o.defer, vec!["Archivio".to_string()]);
        assert_eq!(
            o.date_rules[0].skip_from,
            Some((now - chrono::Duration::days(30)).timestamp())
        );
        let mut o = base.clone();
        Phase::Final.apply(&phases, &mut o, now);
        assert!(o.defer.is_empty() && o.date_rules.is_empty());
        let mut o = base;
        Phase::Catchup.apply(&phases, &mut o, now);
        let only = o.only.unwrap();
        assert!(only.picks("INBOX", None));
        assert!(only.picks("Posta indesiderata", None));
        assert!(!only.picks("Archivio", None));
    }
}
