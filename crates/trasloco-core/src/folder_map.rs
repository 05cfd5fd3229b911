//! Which target folder each source folder goes to.
//!
//! Order of decisions, per source folder:
//! 1. `INBOX` (any case) is `INBOX`.
//! 2. A special-use role (RFC 6154 attribute first, else a well-known localised name) that the
//!    target also has (declared or by name) maps to the target's folder for that role, and the
//!    children of that folder follow it (`Posta inviata/2019` → `Sent.2019`).
//! 3. Anything else keeps its name, re-joined with the target's hierarchy delimiter.
//!
//! Names here are Unicode (decoded from modified UTF-7); the wire form is the IMAP layer's job.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A special-use role (RFC 6154), plus INBOX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The INBOX.
    Inbox,
    /// Sent messages.
    Sent,
    /// Drafts.
    Drafts,
    /// Deleted messages.
    Trash,
    /// Spam.
    Junk,
    /// Archive.
    Archive,
    /// A virtual "all mail" view (Gmail); never copied as a folder of its own by default.
    All,
    /// A virtual "flagged" view.
    Flagged,
    /// Gmail's "important" view (its `\Important` attribute).
    Important,
}

impl Role {
    /// The RFC 6154 attribute for this role, as in a LIST response (without the backslash).
    pub fn from_attribute(attr: &str) -> Option<Role> {
        let a = attr.trim_start_matches('\\');
        Some(match a.to_ascii_lowercase().as_str() {
            "sent" => Role::Sent,
            "drafts" => Role::Drafts,
            "trash" => Role::Trash,
            "junk" => Role::Junk,
            "archive" => Role::Archive,
            "all" => Role::All,
            "flagged" => Role::Flagged,
            "important" => Role::Important,
            _ => return None,
        })
    }
}

/// Well-known folder names per role, compared case-insensitively. Italian first (our users),
/// then English, Exchange/Outlook, German, French, Spanish, and Gmail's names.
const NAMES: &[(Role, &[&str])] = &[
    (
        Role::Sent,
        &[
            "Posta inviata",
            "Inviata",
            "Inviati",
            "Elementi inviati",
            "Messaggi inviati",
            "Sent",
            "Sent Items",
            "Sent Messages",
            "Sent Mail",
            "Gesendet",
            "Gesendete Elemente",
            "Gesendete Objekte",
            "Éléments envoyés",
            "Envoyés",
            "Messages envoyés",
            "Elementos enviados",
            "Enviados",
            "[Gmail]/Sent Mail",
        ],
    ),
    (
        Role::Drafts,
        &[
            "Bozze",
            "Drafts",
            "Draft",
            "Entwürfe",
            "Brouillons",
            "Borradores",
            "[Gmail]/Drafts",
        ],
    ),
    (
        Role::Trash,
        &[
            "Posta eliminata",
            "Cestino",
            "Elementi eliminati",
            "Trash",
            "Deleted Items",
            "Deleted Messages",
            "Deleted",
            "Papierkorb",
            "Gelöschte Elemente",
            "Corbeille",
            "Éléments supprimés",
            "Papelera",
            "Elementos eliminados",
            "[Gmail]/Trash",
            "[Gmail]/Bin",
        ],
    ),
    (
        Role::Junk,
        &[
            "Posta indesiderata",
            "Spam",
            "Junk",
            "Junk E-mail",
            "Junk Email",
            "Junk Mail",
            "Bulk Mail",
            "Spamverdacht",
            "Courrier indésirable",
            "Pourriel",
            "Correo no deseado",
            "[Gmail]/Spam",
        ],
    ),
    (
        Role::Archive,
        &[
            "Archivio", "Archive", "Archives", "Archiv", "Archivo", "Archivos",
        ],
    ),
    (
        Role::All,
        &["[Gmail]/All Mail", "[Gmail]/Tutti i messaggi", "All Mail"],
    ),
    (
        Role::Flagged,
        &["[Gmail]/Starred", "[Gmail]/Speciali", "Starred"],
    ),
    (
        Role::Important,
        &["[Gmail]/Important", "[Gmail]/Importanti"],
    ),
];

/// The role a folder name suggests, if it is one of the well-known names.
pub fn role_from_name(name: &str) -> Option<Role> {
    if name.eq_ignore_ascii_case("INBOX") {
        return Some(Role::Inbox);
    }
    let lower = name.to_lowercase();
    NAMES
        .iter()
        .find(|(_, names)| names.iter().any(|n| n.to_lowercase() == lower))
        .map(|(role, _)| *role)
}

/// One folder as listed by a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// Full Unicode name, with the server's own delimiter.
    pub name: String,
    /// The server's hierarchy delimiter for this name (`None`: flat namespace).
    pub delimiter: Option<char>,
    /// Role declared by an RFC 6154 attribute.
    pub declared_role: Option<Role>,
    /// `\Noselect` / `\NonExistent`: a hierarchy node without messages.
    pub selectable: bool,
    /// Subscribed (LSUB).
    pub subscribed: bool,
}

impl Folder {
    /// Its role: declared by the server, else a well-known (localised) name.
    pub fn role(&self) -> Option<Role> {
        self.declared_role.or_else(|| role_from_name(&self.name))
    }

    /// The path segments of this folder's name.
    pub fn segments(&self) -> Vec<&str> {
        match self.delimiter {
            Some(d) => self.name.split(d).collect(),
            None => vec![self.name.as_str()],
        }
    }
}

/// Where one source folder goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderMapping {
    /// Source name (Unicode, source delimiter).
    pub source: String,
    /// Target name (Unicode, target delimiter).
    pub target: String,
    /// The role that decided the mapping, if any.
    pub role: Option<Role>,
    /// Whether the source folder holds messages (false for `\Noselect` nodes).
    pub selectable: bool,
    /// Whether the source folder is subscribed.
    pub subscribed: bool,
    /// The source's hierarchy delimiter for this name.
    pub delimiter: Option<char>,
}

/// Folder-mapping options from the campaign.
#[derive(Debug, Clone, Default)]
pub struct MapOptions {
    /// Explicit renames, source name → target name (Unicode, with the respective delimiters).
    /// Children of a renamed folder follow it.
    pub renames: BTreeMap<String, String>,
}

/// The role of a folder: declared first; else its name, when it sits at the top level or
/// directly under INBOX (Courier/Cyrus-style `INBOX.Sent`).
fn effective_role(f: &Folder) -> Option<Role> {
    if let Some(r) = f.declared_role {
        return Some(r);
    }
    if f.name.eq_ignore_ascii_case("INBOX") {
        return Some(Role::Inbox);
    }
    let segs = f.segments();
    let candidate = match segs.as_slice() {
        [one] => *one,
        [first, rest] if first.eq_ignore_ascii_case("INBOX") => rest,
        // Gmail nests its special folders under "[Gmail]".
        [first, rest] if first.starts_with('[') => {
            return role_from_name(&format!("{first}/{rest}"));
        }
        _ => return None,
    };
    role_from_name(candidate)
}

/// For each role, the folder that holds it on one side. A declared attribute beats a name; among
/// equals the first listed wins, so two "Sent" folders never merge into one.
fn role_owners(folders: &[Folder]) -> BTreeMap<Role, usize> {
    let mut owners: BTreeMap<Role, usize> = BTreeMap::new();
    for pass_declared in [true, false] {
        for (i, f) in folders.iter().enumerate() {
            let role = if pass_declared {
                f.declared_role
            } else {
                effective_role(f)
            };
            if let Some(r) = role {
                owners.entry(r).or_insert(i);
            }
        }
    }
    owners
}

/// Re-join segments with the target delimiter; a target delimiter inside a segment would
/// silently create hierarchy, so it is replaced by `_`.
fn join(segments: &[&str], target_delim: Option<char>) -> String {
    match target_delim {
        Some(d) => segments
            .iter()
            .map(|s| s.replace(d, "_"))
            .collect::<Vec<_>>()
            .join(&d.to_string()),
        None => segments.join("_"),
    }
}

/// Map every source folder to a target folder name. Two source folders never land in the same
/// target folder: a later collision gets a ` (2)`, ` (3)` … suffix.
pub fn map_folders(
    source: &[Folder],
    target: &[Folder],
    target_delim: Option<char>,
    options: &MapOptions,
) -> Vec<FolderMapping> {
    let src_owners = role_owners(source);
    let tgt_owners = role_owners(target);
    // Source folder index → the target base name for it and its children.
    let mut anchors: Vec<(Vec<&str>, Vec<String>, Option<Role>)> = Vec::new();
    for (role, &si) in &src_owners {
        let segs = source[si].segments();
        let target_name = if *role == Role::Inbox {
            "INBOX".to_string()
        } else if let Some(&ti) = tgt_owners.get(role) {
            target[ti].name.clone()
        } else {
            continue;
        };
        let tsegs = match target_delim {
            Some(d) => target_name.split(d).map(str::to_string).collect(),
            None => vec![target_name],
        };
        anchors.push((segs, tsegs, Some(*role)));
    }
    for (from, to) in &options.renames {
        let src = source.iter().find(|f| &f.name == from);
        if let Some(f) = src {
            let tsegs = match target_delim {
                Some(d) => to.split(d).map(str::to_string).collect(),
                None => vec![to.clone()],
            };
            // An explicit rename beats a role.
            anchors.retain(|(s, _, _)| *s != f.segments());
            anchors.push((f.segments(), tsegs, None));
        }
    }
    // Longest anchor first so the most specific rule wins.
    anchors.sort_by_key(|(s, _, _)| std::cmp::Reverse(s.len()));

    // Names first, collisions after: folders that are exactly an anchor (role owners, renames)
    // claim their target name before any plain folder that happens to share it.
    let planned: Vec<(String, Option<Role>, bool)> = source
        .iter()
        .map(|f| {
            let segs = f.segments();
            match anchors.iter().find(|(a, _, _)| segs.starts_with(a)) {
                Some((a, t, role)) => {
                    let mut all: Vec<&str> = t.iter().map(String::as_str).collect();
                    all.extend_from_slice(&segs[a.len()..]);
                    let exact = a.len() == segs.len();
                    (
                        join(&all, target_delim),
                        if exact { *role } else { None },
                        exact,
                    )
                }
                None => (join(&segs, target_delim), None, false),
            }
        })
        .collect();
    let mut names: Vec<Option<String>> = vec![None; source.len()];
    let mut used: BTreeSet<String> = BTreeSet::new();
    for priority in [true, false] {
        for (i, (name, _, exact)) in planned.iter().enumerate() {
            if *exact != priority {
                continue;
            }
            let mut candidate = name.clone();
            let mut n = 2;
            while used.contains(&candidate) {
                candidate = format!("{name} ({n})");
                n += 1;
            }
            used.insert(candidate.clone());
            names[i] = Some(candidate);
        }
    }
    source
        .iter()
        .zip(planned)
        .zip(names)
        .map(|((f, (_, role, _)), name)| FolderMapping {
            source: f.name.clone(),
            target: name.unwrap_or_default(),
            role,
            selectable: f.selectable,
            subscribed: f.subscribed,
            delimiter: f.delimiter,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, delim: char) -> Folder {
        Folder {
            name: name.into(),
            delimiter: Some(delim),
            declared_role: None,
            selectable: true,
            subscribed: true,
        }
    }

    fn declared(name: &str, delim: char, role: Role) -> Folder {
        Folder {
            declared_role: Some(role),
            ..folder(name, delim)
        }
    }

    fn dovecot_target() -> Vec<Folder> {
        vec![
            folder("INBOX", '.'),
            declared("Sent", '.', Role::Sent),
            declared("Drafts", '.', Role::Drafts),
            declared("Trash", '.', Role::Trash),
            declared("Junk", '.', Role::Junk),
            declared("Archive", '.', Role::Archive),
        ]
    }

    fn map(source: &[Folder], target: &[Folder]) -> BTreeMap<String, String> {
        map_folders(source, target, Some('.'), &MapOptions::default())
            .into_iter()
            .map(|m| (m.source, m.target))
            .collect()
    }

    #[test]
    fn italian_special_folders_map_to_target_roles() {
        let src: Vec<Folder> = [
            "INBOX",
            "Posta inviata",
            "Bozze",
            "Posta eliminata",
            "Posta indesiderata",
            "Archivio",
        ]
        .iter()
        .map(|n| folder(n, '/'))
        .collect();
        let m = map(&src, &dovecot_target());
        assert_eq!(m["Posta inviata"], "Sent");
        assert_eq!(m["Bozze"], "Drafts");
        assert_eq!(m["Posta eliminata"], "Trash");
        assert_eq!(m["Posta indesiderata"], "Junk");
        assert_eq!(m["Archivio"], "Archive");
        assert_eq!(m["INBOX"], "INBOX");
    }

    #[test]
    fn exchange_and_german_names_are_recognised() {
        for (name, role) in [
            ("Sent Items", Role::Sent),
            ("Deleted Items", Role::Trash),
            ("Junk E-mail", Role::Junk),
            ("Gesendete Elemente", Role::Sent),
            ("Éléments envoyés", Role::Sent),
            ("Elementos eliminados", Role::Trash),
            ("bozze", Role::Drafts),
        ] {
            assert_eq!(role_from_name(name), Some(role), "{name}");
        }
        assert_eq!(role_from_name("Progetti"), None);
    }

    #[test]
    fn declared_attribute_beats_name() {
        // The source declares "Spediti" as \Sent and also has a plain folder called "Sent".
        let src = vec![
            folder("INBOX", '/'),
            folder("Sent", '/'),
            declared("Spediti", '/', Role::Sent),
        ];
        let m = map(&src, &dovecot_target());
        assert_eq!(m["Spediti"], "Sent");
        assert_eq!(m["Sent"], "Sent (2)", "a second Sent never merges silently");
    }

    #[test]
    fn children_follow_their_special_parent() {
        let src = vec![
            folder("INBOX", '/'),
            folder("Posta inviata", '/'),
            folder("Posta inviata/2019", '/'),
        ];
        let m = map(&src, &dovecot_target());
        assert_eq!(m["Posta inviata/2019"], "Sent.2019");
    }

    #[test]
    fn hierarchy_delimiter_is_translated() {
        let src = vec![
            folder("Progetti", '/'),
            folder("Progetti/Società", '/'),
            folder("Progetti/Società/2024", '/'),
        ];
        let m = map(&src, &dovecot_target());
        assert_eq!(m["Progetti/Società"], "Progetti.Società");
        assert_eq!(m["Progetti/Società/2024"], "Progetti.Società.2024");
    }

    #[test]
    fn target_delimiter_inside_a_name_does_not_create_hierarchy() {
        let src = vec![folder("v1.2 release", '/'), folder("a/b.c", '/')];
        let m = map(&src, &dovecot_target());
        assert_eq!(m["v1.2 release"], "v1_2 release");
        assert_eq!(m["a/b.c"], "a.b_c");
    }

    #[test]
    fn role_missing_on_target_keeps_the_name() {
        let src = vec![folder("Posta inviata", '/')];
        let target = vec![folder("INBOX", '.')];
        assert_eq!(map(&src, &target)["Posta inviata"], "Posta inviata");
    }

    #[test]
    fn courier_inbox_prefixed_names() {
        let src = vec![
            folder("INBOX", '.'),
            folder("INBOX.Sent Items", '.'),
            folder("INBOX.Clienti", '.'),
        ];
        let m = map(&src, &dovecot_target());
        assert_eq!(m["INBOX.Sent Items"], "Sent");
        assert_eq!(m["INBOX.Clienti"], "INBOX.Clienti");
    }

    #[test]
    fn explicit_rename_wins_and_children_follow() {
        let src = vec![
            folder("Vecchio", '/'),
            folder("Vecchio/2020", '/'),
            folder("Posta inviata", '/'),
        ];
        let mut options = MapOptions::default();
        options
            .renames
            .insert("Vecchio".into(), "Storico.Vecchio".into());
        options
            .renames
            .insert("Posta inviata".into(), "Inviati 2024".into());
        let m: BTreeMap<_, _> = map_folders(&src, &dovecot_target(), Some('.'), &options)
            .into_iter()
            .map(|m| (m.source, m.target))
            .collect();
        assert_eq!(m["Vecchio/2020"], "Storico.Vecchio.2020");
        assert_eq!(m["Posta inviata"], "Inviati 2024");
    }

    #[test]
    fn gmail_folders() {
        let src = vec![
            folder("INBOX", '/'),
            folder("[Gmail]", '/'),
            folder("[Gmail]/Sent Mail", '/'),
        ];
        let m = map(&src, &dovecot_target());
        assert_eq!(m["[Gmail]/Sent Mail"], "Sent");
    }
}
