//! Message flags: what a target accepts, and how a source change is carried over.

/// The system flags a server must always accept (RFC 3501 §2.3.2), `\Recent` excluded because
/// no client can set it.
pub const SYSTEM_FLAGS: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

/// A set of flags and keywords, kept in a stable order: the system flags (in the order of
/// [`SYSTEM_FLAGS`]), then every other flag sorted.
///
/// A folder's listing holds several of these per message, and folders hold 100,000 messages:
/// the system flags are bits, and only keywords take heap memory, so a message with system
/// flags only costs no allocation (a `BTreeSet<String>` cost about 300 bytes for one flag).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct FlagSet {
    /// Bit `i` set: `SYSTEM_FLAGS[i]` is in the set.
    system: u8,
    /// Every other flag, sorted and without duplicates.
    others: Vec<Box<str>>,
}

impl FlagSet {
    /// The empty set.
    pub fn new() -> FlagSet {
        FlagSet::default()
    }

    fn system_bit(flag: &str) -> Option<u8> {
        SYSTEM_FLAGS.iter().position(|s| *s == flag).map(|i| 1 << i)
    }

    /// Add a flag; false if it was there already.
    pub fn insert(&mut self, flag: impl AsRef<str>) -> bool {
        let flag = flag.as_ref();
        if let Some(bit) = Self::system_bit(flag) {
            let new = self.system & bit == 0;
            self.system |= bit;
            return new;
        }
        match self.others.binary_search_by(|o| (**o).cmp(flag)) {
            Ok(_) => false,
            Err(at) => {
                self.others.insert(at, flag.into());
                true
            }
        }
    }

    /// Whether the set holds this flag (exactly as written).
    pub fn contains(&self, flag: &str) -> bool {
        match Self::system_bit(flag) {
            Some(bit) => self.system & bit != 0,
            None => self.others.binary_search_by(|o| (**o).cmp(flag)).is_ok(),
        }
    }

    /// The flags, system flags first.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        SYSTEM_FLAGS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.system & (1 << i) != 0)
            .map(|(_, s)| *s)
            .chain(self.others.iter().map(|o| &**o))
    }

    /// How many flags the set holds.
    pub fn len(&self) -> usize {
        self.system.count_ones() as usize + self.others.len()
    }

    /// Whether the set holds no flag.
    pub fn is_empty(&self) -> bool {
        self.system == 0 && self.others.is_empty()
    }

    /// Keep only the flags `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        for (i, s) in SYSTEM_FLAGS.iter().enumerate() {
            if self.system & (1 << i) != 0 && !keep(s) {
                self.system &= !(1 << i);
            }
        }
        self.others.retain(|o| keep(o));
    }

    /// The flags in this set and not in `other`.
    pub fn difference<'a>(&'a self, other: &'a FlagSet) -> impl Iterator<Item = &'a str> + 'a {
        self.iter().filter(move |f| !other.contains(f))
    }

    /// The flags as owned strings, in the set's order.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl std::fmt::Debug for FlagSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl IntoIterator for FlagSet {
    type Item = String;
    type IntoIter = std::vec::IntoIter<String>;

    fn into_iter(self) -> Self::IntoIter {
        self.to_vec().into_iter()
    }
}

impl<S: AsRef<str>> Extend<S> for FlagSet {
    fn extend<I: IntoIterator<Item = S>>(&mut self, iter: I) {
        for f in iter {
            self.insert(f);
        }
    }
}

impl<S: AsRef<str>> FromIterator<S> for FlagSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> FlagSet {
        let mut set = FlagSet::new();
        set.extend(iter);
        set
    }
}

/// Parse flags as a server lists them, dropping `\Recent` (session-only) and normalising the
/// case of system flags.
pub fn from_server<'a>(flags: impl IntoIterator<Item = &'a str>) -> FlagSet {
    flags
        .into_iter()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .map(
            |f| match SYSTEM_FLAGS.iter().find(|s| s.eq_ignore_ascii_case(f)) {
                Some(s) => *s,
                None => f,
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
    /// Flags never set on this target whatever it accepts (a provider's, such as Exchange's
    /// `$MDNSent`, which Outlook shows as a category on every message).
    pub never: FlagSet,
    /// Patterns (`*` matches any run of characters) of flags never set either: a source's
    /// private flags, such as those Zimbra's add-ons make (`…:FLAG51135`).
    pub never_like: Vec<String>,
}

/// Whether `flag` matches `pattern`, where `*` matches any run of characters (ASCII case
/// ignored, as flags are compared).
pub fn flag_like(pattern: &str, flag: &str) -> bool {
    let (p, f) = (pattern.to_ascii_lowercase(), flag.to_ascii_lowercase());
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == f;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !f.starts_with(first) || !f[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &f[first.len()..f.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

impl Permanent {
    /// Build from a PERMANENTFLAGS list. A server that sent none accepts the system flags only
    /// — the cautious reading of RFC 3501 §7.1.
    pub fn from_list<'a>(flags: Option<impl IntoIterator<Item = &'a str>>) -> Permanent {
        match flags {
            None => Permanent {
                listed: SYSTEM_FLAGS.iter().collect(),
                any_keyword: false,
                never: FlagSet::new(),
                never_like: Vec::new(),
            },
            Some(list) => {
                let mut listed = FlagSet::new();
                let mut any_keyword = false;
                for f in list {
                    if f == "\\*" {
                        any_keyword = true;
                    } else {
                        listed.extend(from_server([f]).iter());
                    }
                }
                Permanent {
                    listed,
                    any_keyword,
                    never: FlagSet::new(),
                    never_like: Vec::new(),
                }
            }
        }
    }

    /// What a folder that does not exist yet will accept, as far as can be known: the system
    /// flags and any keyword (what `\\*` announces).
    pub fn anything() -> Permanent {
        Permanent {
            listed: SYSTEM_FLAGS.iter().collect(),
            any_keyword: true,
            never: FlagSet::new(),
            never_like: Vec::new(),
        }
    }

    /// Whether the target keeps this flag.
    pub fn accepts(&self, flag: &str) -> bool {
        !self.never.contains(flag)
            && !self.never_like.iter().any(|p| flag_like(p, flag))
            && (self.listed.contains(flag) || (self.any_keyword && is_keyword(flag)))
    }

    /// Split flags into (kept, dropped).
    pub fn filter(&self, flags: &FlagSet) -> (FlagSet, FlagSet) {
        let (mut kept, mut dropped) = (FlagSet::new(), FlagSet::new());
        for f in flags.iter() {
            if self.accepts(f) {
                kept.insert(f);
            } else {
                dropped.insert(f);
            }
        }
        (kept, dropped)
    }
}

/// Carry a source flag change over to the target without undoing changes made on the target:
/// flags added on the source since the last sync are added, flags removed are removed, the rest
/// of the target's flags stay as they are.
pub fn propagate(last_synced: &FlagSet, source_now: &FlagSet, target_now: &FlagSet) -> FlagSet {
    let mut out = target_now.clone();
    // What the source removed since the last sync goes; the rest of the target's flags stay.
    out.retain(|f| source_now.contains(f) || !last_synced.contains(f));
    out.extend(source_now.difference(last_synced));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> FlagSet {
        items.iter().collect()
    }

    #[test]
    fn flags_are_matched_by_pattern() {
        assert!(flag_like("*:FLAG*", "EmailswithStickyNotes:FLAG51135"));
        assert!(flag_like("*:flag*", "x:FLAG1"));
        assert!(!flag_like("*:FLAG*", "$Label1"));
        assert!(flag_like("$MDNSent", "$mdnsent"));
        assert!(!flag_like("a*b*c", "abx"));
        assert!(flag_like("a*b*c", "axbyc"));
        let mut p = Permanent::anything();
        p.never_like.push("*:FLAG*".into());
        assert!(!p.accepts("Notes:FLAG7"));
        assert!(p.accepts("Progetto"));
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

    /// The compact set behaves as a sorted set of strings would, whatever is put in.
    mod as_a_set {
        use super::super::*;
        use proptest::prelude::*;
        use std::collections::BTreeSet;

        fn flag() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(SYSTEM_FLAGS.to_vec()).prop_map(str::to_string),
                prop::sample::select(vec!["$Label1", "$Forwarded", "Progetto", "\\Junk", "a"])
                    .prop_map(str::to_string),
                "[$A-Za-z\\\\]{1,6}",
            ]
        }

        proptest! {
            #[test]
            fn matches_a_btreeset(a in prop::collection::vec(flag(), 0..8),
                                  b in prop::collection::vec(flag(), 0..8),
                                  probe in flag()) {
                let (sa, sb): (FlagSet, FlagSet) = (a.iter().collect(), b.iter().collect());
                let (ma, mb): (BTreeSet<String>, BTreeSet<String>) =
                    (a.iter().cloned().collect(), b.iter().cloned().collect());
                prop_assert_eq!(sa.len(), ma.len());
                prop_assert_eq!(sa.is_empty(), ma.is_empty());
                prop_assert_eq!(sa.contains(&probe), ma.contains(&probe));
                prop_assert_eq!(sa.iter().collect::<BTreeSet<_>>(), ma.iter().map(String::as_str).collect());
                prop_assert_eq!(sa == sb, ma == mb);
                let diff: BTreeSet<&str> = sa.difference(&sb).collect();
                prop_assert_eq!(diff, ma.difference(&mb).map(String::as_str).collect());
                // Insertion order does not matter, and the iteration order is stable.
                let rev: FlagSet = a.iter().rev().collect();
                prop_assert_eq!(&rev, &sa);
                prop_assert_eq!(rev.to_vec(), sa.to_vec());
                let mut kept = sa.clone();
                kept.retain(|f| !f.starts_with('$'));
                prop_assert_eq!(kept.to_vec().len(), ma.iter().filter(|f| !f.starts_with('$')).count());
                let mut grown = sa.clone();
                prop_assert_eq!(grown.insert(&probe), !ma.contains(&probe));
                prop_assert!(grown.contains(&probe));
            }
        }
    }

    #[test]
    fn system_flags_come_first_and_in_a_fixed_order() {
        let s = set(&["Progetto", "\\Draft", "$Label1", "\\Seen"]);
        assert_eq!(s.to_vec(), ["\\Seen", "\\Draft", "$Label1", "Progetto"]);
        assert_eq!(
            format!("{s:?}"),
            r#"{"\\Seen", "\\Draft", "$Label1", "Progetto"}"#
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
