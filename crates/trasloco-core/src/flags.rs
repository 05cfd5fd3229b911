//! Message flags: what a target accepts, and how a source change is carried over.

use std::collections::BTreeSet;

/// A set of flags and keywords, kept in a stable order.
pub type FlagSet = BTreeSet<String>;

/// The system flags a server must always accept (RFC 3501 §2.3.2), `\Recent` excluded because
/// no client can set it.
pub const SYSTEM_FLAGS: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

/// Parse flags as a server lists them, dropping `\Recent` (session-only) and normalising the
/// case of system flags.
pub fn from_server<'a>(flags: impl IntoIterator<Item = &'a str>) -> FlagSet {
    flags
        .into_iter()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .map(
            |f| match SYSTEM_FLAGS.iter().find(|s| s.eq_ignore_ascii_case(f)) {
                Some(s) => (*s).to_string(),
                None => f.to_string(),
            },
        )
        .collect()
}

/// Whether a flag is a keyword (`$Label1`, `Work`) rather than a system flag (`\Seen`).
pub fn is_keyword(flag: &str) -> bool {
    !flag.starts_with('\\')
}

/// What a target folder accepts (its PERMANENTFLAGS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permanent {
    /// Flags listed explicitly.
    pub listed: FlagSet,
    /// `\*`: any new keyword may be created.
    pub any_keyword: bool,
}

impl Permanent {
    /// Build from a PERMANENTFLAGS list. A server that sent none accepts the system flags only
    /// — the cautious reading of RFC 3501 §7.1.
    pub fn from_list<'a>(flags: Option<impl IntoIterator<Item = &'a str>>) -> Permanent {
        match flags {
            None => Permanent {
                listed: SYSTEM_FLAGS.iter().map(|s| s.to_string()).collect(),
                any_keyword: false,
            },
            Some(list) => {
                let mut listed = FlagSet::new();
                let mut any_keyword = false;
                for f in list {
                    if f == "\\*" {
                        any_keyword = true;
                    } else {
                        listed.extend(from_server([f]));
                    }
                }
                Permanent {
                    listed,
                    any_keyword,
                }
            }
        }
    }

    /// What a folder that does not exist yet will accept, as far as can be known: the system
    /// flags and any keyword (what `\\*` announces).
    pub fn anything() -> Permanent {
        Permanent {
            listed: SYSTEM_FLAGS.iter().map(|s| s.to_string()).collect(),
            any_keyword: true,
        }
    }

    /// Whether the target keeps this flag.
    pub fn accepts(&self, flag: &str) -> bool {
        self.listed.contains(flag) || (self.any_keyword && is_keyword(flag))
    }

    /// Split flags into (kept, dropped).
    pub fn filter(&self, flags: &FlagSet) -> (FlagSet, FlagSet) {
        flags.iter().cloned().partition(|f| self.accepts(f))
    }
}

/// Carry a source flag change over to the target without undoing changes made on the target:
/// flags added on the source since the last sync are added, flags removed are removed, the rest
/// of the target's flags stay as they are.
pub fn propagate(last_synced: &FlagSet, source_now: &FlagSet, target_now: &FlagSet) -> FlagSet {
    let added = source_now.difference(last_synced);
    let removed: FlagSet = last_synced.difference(source_now).cloned().collect();
    let mut out: FlagSet = target_now
        .iter()
        .filter(|f| !removed.contains(*f))
        .cloned()
        .collect();
    out.extend(added.cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> FlagSet {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recent_is_never_carried() {
        assert_eq!(from_server(["\\Recent", "\\seen"]), set(&["\\Seen"]));
    }

    #[test]
    fn keywords_need_backslash_star_or_a_listing() {
        let p = Permanent::from_list(Some(["\\Seen", "\\Flagged", "$Label1"]));
        let (kept, dropped) = p.filter(&set(&["\\Seen", "$Label1", "Progetto"]));
        assert_eq!(kept, set(&["\\Seen", "$Label1"]));
        assert_eq!(dropped, set(&["Progetto"]));
        let any = Permanent::from_list(Some(["\\Seen", "\\*"]));
        assert!(any.accepts("Progetto"));
        assert!(
            !any.accepts("\\Answered"),
            "\\* allows keywords, not unlisted system flags"
        );
    }

    #[test]
    fn no_permanentflags_means_system_flags_only() {
        let p = Permanent::from_list(None::<Vec<&str>>);
        assert!(p.accepts("\\Draft"));
        assert!(!p.accepts("$Forwarded"));
    }

    #[test]
    fn propagation_keeps_target_side_changes() {
        let last = set(&["\\Seen"]);
        let source = set(&["\\Seen", "\\Flagged"]);
        let target = set(&["\\Seen", "\\Answered"]); // the user replied on the new server
        assert_eq!(
            propagate(&last, &source, &target),
            set(&["\\Seen", "\\Flagged", "\\Answered"])
        );
    }

    #[test]
    fn propagation_removes_what_the_source_removed() {
        let last = set(&["\\Seen", "\\Flagged"]);
        let source = set(&["\\Seen"]);
        let target = set(&["\\Seen", "\\Flagged"]);
        assert_eq!(propagate(&last, &source, &target), set(&["\\Seen"]));
    }
}
