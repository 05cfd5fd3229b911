//! The Sieve scripts trasloco writes.
//!
//! **Transition** (seed 000, a renamed domain): on the old mailbox, redirect every message to
//! the new address (optionally keeping a copy) and answer — in Italian and English, at most once
//! per sender every N days — only senders outside the organisation's domains, never lists,
//! bulk or automatic mail (RFC 3834; the vacation extension, RFC 5230, adds its own checks).
//!
//! **Filters** (seed 002): users' own scripts, with the addresses of renamed domains rewritten.

use crate::lex;
use std::collections::BTreeMap;

/// The name of the transition script on the old server.
pub const TRANSITION_SCRIPT: &str = "trasloco-transition";

const MARK_PREVIOUS: &str = "# trasloco: previously active script: ";

/// What a transition script says.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    /// The old address (this mailbox).
    pub old_address: &'a str,
    /// Where mail goes now.
    pub new_address: &'a str,
    /// The organisation's domains: their senders get no auto-reply.
    pub organisation_domains: &'a [String],
    /// Keep a copy in the old mailbox.
    pub keep_copy: bool,
    /// At most one reply per sender in this many days.
    pub days: u32,
    /// The organisation's name, signed under the reply.
    pub organisation: Option<&'a str>,
    /// The user's previously active script, kept in force through `include`.
    pub include: Option<&'a str>,
}

/// A Sieve quoted string.
pub fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| quoted(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The reply text, Italian first. It says how often a sender gets it: at most once every
/// `days` days (the vacation extension's own tracking), not "only once".
pub fn reply_text(old: &str, new: &str, organisation: Option<&str>, days: u32) -> String {
    let sign = organisation.map(|o| format!("\n\n{o}")).unwrap_or_default();
    let (ogni, every) = match days.max(1) {
        1 => ("al giorno".to_string(), "a day".to_string()),
        n => (format!("ogni {n} giorni"), format!("every {n} days")),
    };
    format!(
        "Gentile mittente,\n\nl'indirizzo {old} è cambiato: il nuovo indirizzo è {new}.\nIl suo messaggio è stato inoltrato al nuovo indirizzo; per i prossimi messaggi usi {new}.\nQuesta è una risposta automatica: la riceve al massimo una volta {ogni}.\n\n---\n\nDear sender,\n\nthe address {old} has changed: the new address is {new}.\nYour message has been forwarded to the new address; please write to {new} from now on.\nThis is an automatic reply: you get it at most once {every}.{sign}"
    )
}

/// The name of the transition's copy of the user's own active script.
pub const USER_COPY: &str = "trasloco-transition-user";

/// Variables the transition shares with the copy of the user's script (RFC 6609 `global`).
const GLOBALS: &str = "global [\"trasloco_external\", \"trasloco_refused\"];\n";

/// The transition script.
pub fn transition(t: &Transition<'_>) -> String {
    let mut domains: Vec<String> = Vec::new();
    for d in t.organisation_domains {
        let d = d.trim().to_ascii_lowercase();
        if !d.is_empty() && !domains.contains(&d) {
            domains.push(d);
        }
    }
    let subdomains: Vec<String> = domains.iter().map(|d| format!("*.{d}")).collect();
    let mut requires = vec!["vacation".to_string()];
    if t.keep_copy {
        requires.push("copy".into());
    }
    if t.include.is_some() {
        requires.push("include".into());
        requires.push("variables".into());
    }
    let mut s = String::new();
    s.push_str(&format!(
        "# trasloco: domain transition for {} -> {}\n# Written by trasloco; `trasloco transition remove` takes it away.\n",
        t.old_address, t.new_address
    ));
    if let Some(prev) = t.include {
        s.push_str(&format!("{MARK_PREVIOUS}{prev}\n"));
    }
    s.push_str(&format!("require {};\n", list(&requires)));
    let external = format!(
        "allof (not address :domain :is \"from\" {},\n          not address :domain :matches \"from\" {},\n          not exists [\"list-id\", \"list-post\", \"list-unsubscribe\", \"list-help\"],\n          not header :matches \"auto-submitted\" \"auto-*\",\n          not header :is \"precedence\" [\"bulk\", \"list\", \"junk\"])",
        list(&domains),
        list(&subdomains)
    );
    let vacation = format!(
        "vacation :days {} :addresses {} :handle {} :subject {}\n    {};\n",
        t.days.max(1),
        list(&[t.old_address.to_string()]),
        quoted(TRANSITION_SCRIPT),
        quoted(&format!(
            "Indirizzo cambiato / Address changed: {}",
            t.new_address
        )),
        quoted(&reply_text(
            t.old_address,
            t.new_address,
            t.organisation,
            t.days
        ))
    );
    let redirect = format!(
        "# Every message goes to the new address{}.\nredirect {}{};\n",
        if t.keep_copy {
            "; a copy stays here"
        } else {
            ""
        },
        if t.keep_copy { ":copy " } else { "" },
        quoted(t.new_address)
    );
    let Some(prev) = t.include else {
        s.push_str("\n# An automatic reply only to people outside the organisation, never to lists,\n# bulk or automatic mail (RFC 3834).\n");
        s.push_str(&format!("if {external} {{\n  {vacation}}}\n\n{redirect}"));
        return s;
    };
    s.push_str(GLOBALS);
    s.push_str(
        "\n# Senders outside the organisation, never lists, bulk or automatic mail (RFC 3834).\n",
    );
    s.push_str(&format!(
        "if {external} {{\n  set \"trasloco_external\" \"yes\";\n}}\n\n"
    ));
    s.push_str(&format!(
        "# The user's own filters ({prev:?}, in a copy where `stop` ends only them): their\n# automatic reply answers colleagues, this one everybody else; a message they reject\n# is neither redirected nor answered here.\ninclude :personal {};\n\n",
        quoted(USER_COPY)
    ));
    s.push_str("if string :is \"${trasloco_refused}\" \"\" {\n");
    for l in redirect.lines() {
        s.push_str(&format!("  {l}\n"));
    }
    s.push_str(&format!(
        "  if string :is \"${{trasloco_external}}\" \"yes\" {{\n    {vacation}  }}\n}}\n"
    ));
    s
}

/// The transition's copy of a user's script, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCopy {
    /// The script to store as [`USER_COPY`].
    pub text: String,
    /// `redirect` commands in it (the server limits redirects per message).
    pub redirects: usize,
    /// `include` commands in it: the scripts they name run unchanged.
    pub includes: usize,
}

/// A copy of the user's script that can run inside the transition: `stop` becomes `return`
/// (ending the user's filters, not the transition), `vacation` answers only senders the
/// transition does not answer (one automatic reply per message is all Sieve allows), and a
/// `reject`/`ereject` marks the message so the transition neither redirects nor answers it
/// (a refusal conflicts with both). Everything else stays as the user wrote it.
pub fn user_copy(name: &str, script: &str) -> Result<UserCopy, String> {
    let toks = lex::tokens(script)?;
    let cmds = lex::commands(&toks);
    let mut edits = lex::Edits::default();
    // After the leading `require`s: what the copy needs, and the shared variables.
    let mut head = 0;
    for c in &cmds {
        if c.depth == 0 && lex::name(script, &toks, c) == "require" {
            head = toks[c.end].span.end;
        } else {
            break;
        }
    }
    edits.insert(
        head,
        format!(
            "{}require [\"include\", \"variables\"];\n{GLOBALS}",
            if head == 0 { "" } else { "\n" }
        ),
    );
    let (mut redirects, mut includes) = (0, 0);
    for c in &cmds {
        let start = toks[c.name].span.clone();
        let end = toks[c.end].span.end;
        match lex::name(script, &toks, c).as_str() {
            "stop" => edits.replace(start, "return"),
            "vacation" => {
                edits.insert(
                    start.start,
                    "if string :is \"${trasloco_external}\" \"\" { ",
                );
                edits.insert(end, " }");
            }
            "reject" | "ereject" => edits.insert(start.start, "set \"trasloco_refused\" \"yes\"; "),
            "redirect" => redirects += 1,
            "include" => includes += 1,
            _ => {}
        }
    }
    let text = format!(
        "# trasloco: a copy of the script {name:?} for the domain transition; the original is\n# unchanged and becomes active again when the transition is removed.\n{}",
        edits.apply(script)
    );
    Ok(UserCopy {
        text,
        redirects,
        includes,
    })
}

/// Rewrite the folder names a script files into (`fileinto`, `mailboxexists`) with `map`,
/// which gives the new name of a folder or `None` to leave it. Returns the script and each
/// name changed, old and new, once.
pub fn rewrite_folders(
    script: &str,
    map: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<(String, String)>), String> {
    let toks = lex::tokens(script)?;
    let mut edits = lex::Edits::default();
    let mut changed: Vec<(String, String)> = Vec::new();
    let mut change = |t: &lex::Token, edits: &mut lex::Edits| {
        if let lex::Kind::Str(old) = &t.kind
            && !old.contains("${")
            && let Some(new) = map(old).filter(|n| n != old)
        {
            edits.replace(t.span.clone(), quoted(&new));
            if !changed.iter().any(|(o, _)| o == old) {
                changed.push((old.clone(), new));
            }
        }
    };
    for c in lex::commands(&toks) {
        if lex::name(script, &toks, &c) == "fileinto" && c.end > c.name + 1 {
            // The folder is the last argument; tags before it take their own values.
            change(&toks[c.end - 1], &mut edits);
        }
    }
    for (i, t) in toks.iter().enumerate() {
        if t.kind == lex::Kind::Ident
            && script[t.span.clone()].eq_ignore_ascii_case("mailboxexists")
        {
            let mut j = i + 1;
            if toks.get(j).is_some_and(|t| t.kind == lex::Kind::Punct('[')) {
                j += 1;
                while let Some(t) = toks.get(j) {
                    match t.kind {
                        lex::Kind::Punct(']') => break,
                        lex::Kind::Str(_) => change(t, &mut edits),
                        _ => {}
                    }
                    j += 1;
                }
            } else if let Some(t) = toks.get(j) {
                change(t, &mut edits);
            }
        }
    }
    Ok((edits.apply(script), changed))
}

/// The previously active script a transition script keeps in force, if it names one.
pub fn previous_active(script: &str) -> Option<String> {
    script
        .lines()
        .find_map(|l| l.strip_prefix(MARK_PREVIOUS))
        .map(|s| s.trim().to_string())
}

/// Rewrite `local@old-domain` into `local@new-domain` for every mapped domain (case-insensitive,
/// only where the domain ends — `old.it` does not touch `old.it.example`). Returns the script
/// and how many addresses changed.
pub fn rewrite_addresses(script: &str, map: &BTreeMap<String, String>) -> (String, usize) {
    let mut out = script.to_string();
    let mut changed = 0;
    for (from, to) in map {
        let needle = format!("@{}", from.to_ascii_lowercase());
        let mut result = String::with_capacity(out.len());
        let lower = out.to_ascii_lowercase();
        let mut at = 0;
        while let Some(p) = lower[at..].find(&needle) {
            let start = at + p;
            let end = start + needle.len();
            let next = lower[end..].chars().next();
            let boundary = !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                || (next == Some('.')
                    && !lower[end + 1..]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphanumeric()));
            result.push_str(&out[at..start]);
            if boundary {
                result.push('@');
                result.push_str(to);
                changed += 1;
            } else {
                result.push_str(&out[start..end]);
            }
            at = end;
        }
        result.push_str(&out[at..]);
        out = result;
    }
    (out, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_script_shape() {
        let domains = vec!["beniculturali.it".to_string(), "cultura.gov.it".to_string()];
        let s = transition(&Transition {
            old_address: "anna@beniculturali.it",
            new_address: "anna@cultura.gov.it",
            organisation_domains: &domains,
            keep_copy: true,
            days: 7,
            organisation: Some("Ministero della Cultura"),
            include: Some("filtri"),
        });
        assert!(
            s.contains("require [\"vacation\", \"copy\", \"include\", \"variables\"];"),
            "{s}"
        );
        assert!(s.contains("redirect :copy \"anna@cultura.gov.it\";"));
        assert!(s.contains(":days 7"));
        assert!(s.contains("[\"*.beniculturali.it\", \"*.cultura.gov.it\"]"));
        assert!(s.contains("include :personal \"trasloco-transition-user\";"));
        // The user's filters run first; the redirect and the reply only when they did not
        // reject the message, the reply only to outsiders.
        let include = s.find("include :personal").unwrap();
        assert!(include < s.find("redirect :copy").unwrap());
        assert!(s.contains("if string :is \"${trasloco_refused}\" \"\" {"));
        assert!(s.contains("at most once every 7 days"), "{s}");
        assert!(!s.contains("only once"));
        assert_eq!(previous_active(&s).as_deref(), Some("filtri"));
        assert!(s.contains("Dear sender") && s.contains("Gentile mittente"));
        let plain = transition(&Transition {
            keep_copy: false,
            include: None,
            ..Transition {
                old_address: "a@x.it",
                new_address: "a@y.it",
                organisation_domains: &domains,
                keep_copy: true,
                days: 0,
                organisation: None,
                include: None,
            }
        });
        assert!(plain.contains("redirect \"a@y.it\";") && plain.contains(":days 1"));
        assert_eq!(previous_active(&plain), None);
    }

    #[test]
    fn the_reply_says_how_often_it_comes() {
        let daily = reply_text("a@x.it", "a@y.it", None, 1);
        assert!(daily.contains("una volta al giorno") && daily.contains("once a day"));
        let weekly = reply_text("a@x.it", "a@y.it", None, 7);
        assert!(weekly.contains("ogni 7 giorni") && weekly.contains("every 7 days"));
    }

    #[test]
    fn the_users_copy_ends_only_itself_and_yields_its_reply_and_marks_refusals() {
        let src = "# my rules\nrequire \"vacation\";\nrequire [\"reject\", \"fileinto\"];\nif header :contains \"subject\" \"stop\" { fileinto \"Stop\"; stop; }\nif address :is \"from\" \"x@spam.com\" { reject text:\nno; stop;\n.\n; }\nvacation :days 2 \"away\";\nredirect \"me@home.net\";\n";
        let c = user_copy("mine", src).unwrap();
        assert_eq!(c.redirects, 1);
        assert_eq!(c.includes, 0);
        let t = &c.text;
        let head = "require [\"reject\", \"fileinto\"];\nrequire [\"include\", \"variables\"];\nglobal [\"trasloco_external\", \"trasloco_refused\"];\n";
        assert!(t.contains(head), "{t}");
        assert!(t.contains("fileinto \"Stop\"; return; }"), "{t}");
        assert!(
            t.contains("set \"trasloco_refused\" \"yes\"; reject text:\nno; stop;\n.\n; }"),
            "a stop in a string stays: {t}"
        );
        assert!(
            t.contains(
                "if string :is \"${trasloco_external}\" \"\" { vacation :days 2 \"away\"; }"
            ),
            "{t}"
        );
        assert!(
            t.contains("subject\" \"stop\""),
            "strings are not commands: {t}"
        );
        assert!(t.starts_with("# trasloco: a copy of the script \"mine\""));
        // Without a require, the additions come first.
        let bare = user_copy("k", "keep;\n").unwrap();
        assert!(
            bare.text
                .contains("require [\"include\", \"variables\"];\nglobal")
        );
        assert!(user_copy("bad", "if true { \"open").is_err());
    }

    #[test]
    fn folder_names_in_filters_follow_the_map() {
        let map = |name: &str| match name {
            "Progetti/Bilancio" => Some("Progetti.Bilancio".to_string()),
            "Posta inviata" => Some("Sent".to_string()),
            _ => None,
        };
        let src = "require [\"fileinto\", \"mailbox\", \"imap4flags\"];\nif mailboxexists [\"Progetti/Bilancio\", \"Altro\"] { fileinto :create :flags [\"\\\\Seen\"] \"Progetti/Bilancio\"; }\nif header :is \"subject\" \"Posta inviata\" { fileinto \"Posta inviata\"; }\nfileinto \"${folder}\";\n";
        let (out, changed) = rewrite_folders(src, &map).unwrap();
        assert_eq!(
            changed,
            [
                (
                    "Progetti/Bilancio".to_string(),
                    "Progetti.Bilancio".to_string()
                ),
                ("Posta inviata".to_string(), "Sent".to_string())
            ]
        );
        assert!(
            out.contains("mailboxexists [\"Progetti.Bilancio\", \"Altro\"]"),
            "{out}"
        );
        assert!(
            out.contains("\"\\\\Seen\"] \"Progetti.Bilancio\";"),
            "{out}"
        );
        assert!(
            out.contains("header :is \"subject\" \"Posta inviata\""),
            "only folders: {out}"
        );
        assert!(out.contains("fileinto \"Sent\";"), "{out}");
        assert!(out.contains("fileinto \"${folder}\";"), "{out}");
    }

    #[test]
    fn quoting() {
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn addresses_are_rewritten_only_at_domain_ends() {
        let map: BTreeMap<String, String> =
            [("beniculturali.it".to_string(), "cultura.gov.it".to_string())].into();
        let (s, n) = rewrite_addresses(
            "if address :is \"from\" [\"capo@BeniCulturali.it\", \"x@beniculturali.it.example\"] { redirect \"archivio@beniculturali.it\"; }",
            &map,
        );
        assert_eq!(n, 2);
        assert!(s.contains("capo@cultura.gov.it"));
        assert!(s.contains("x@beniculturali.it.example"));
        assert!(s.contains("archivio@cultura.gov.it"));
    }
}
