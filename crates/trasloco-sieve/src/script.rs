//! The Sieve scripts trasloco writes.
//!
//! **Transition** (seed 000, a renamed domain): on the old mailbox, redirect every message to
//! the new address (optionally keeping a copy) and answer — in Italian and English, at most once
//! per sender every N days — only senders outside the organisation's domains, never lists,
//! bulk or automatic mail (RFC 3834; the vacation extension, RFC 5230, adds its own checks).
//!
//! **Filters** (seed 002): users' own scripts, with the addresses of renamed domains rewritten.

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

/// The reply text, Italian first.
pub fn reply_text(old: &str, new: &str, organisation: Option<&str>) -> String {
    let sign = organisation.map(|o| format!("\n\n{o}")).unwrap_or_default();
    format!(
        "Gentile mittente,\n\nl'indirizzo {old} è cambiato: il nuovo indirizzo è {new}.\nIl suo messaggio è stato inoltrato al nuovo indirizzo; per i prossimi messaggi usi {new}.\nQuesta è una risposta automatica, inviata una sola volta.\n\n---\n\nDear sender,\n\nthe address {old} has changed: the new address is {new}.\nYour message has been forwarded to the new address; please write to {new} from now on.\nThis is an automatic reply, sent only once.{sign}"
    )
}

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
    }
    let mut s = String::new();
    s.push_str(&format!(
        "# trasloco: domain transition for {} -> {}\n# Written by trasloco; `trasloco transition remove` takes it away.\n",
        t.old_address, t.new_address
    ));
    if let Some(prev) = t.include {
        s.push_str(&format!("{MARK_PREVIOUS}{prev}\n"));
    }
    s.push_str(&format!("require {};\n\n", list(&requires)));
    s.push_str("# An automatic reply only to people outside the organisation, never to lists,\n# bulk or automatic mail (RFC 3834).\n");
    s.push_str(&format!(
        "if allof (not address :domain :is \"from\" {},\n          not address :domain :matches \"from\" {},\n          not exists [\"list-id\", \"list-post\", \"list-unsubscribe\", \"list-help\"],\n          not header :matches \"auto-submitted\" \"auto-*\",\n          not header :is \"precedence\" [\"bulk\", \"list\", \"junk\"]) {{\n",
        list(&domains),
        list(&subdomains)
    ));
    s.push_str(&format!(
        "  vacation :days {} :addresses {} :handle {} :subject {}\n    {};\n}}\n\n",
        t.days.max(1),
        list(&[t.old_address.to_string()]),
        quoted(TRANSITION_SCRIPT),
        quoted(&format!(
            "Indirizzo cambiato / Address changed: {}",
            t.new_address
        )),
        quoted(&reply_text(t.old_address, t.new_address, t.organisation))
    ));
    s.push_str(&format!(
        "# Every message goes to the new address{}.\nredirect {}{};\n",
        if t.keep_copy {
            "; a copy stays here"
        } else {
            ""
        },
        if t.keep_copy { ":copy " } else { "" },
        quoted(t.new_address)
    ));
    if let Some(prev) = t.include {
        s.push_str(&format!(
            "\n# The user's own filters stay in force.\ninclude :personal {};\n",
            quoted(prev)
        ));
    }
    s
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
            s.contains("require [\"vacation\", \"copy\", \"include\"];"),
            "{s}"
        );
        assert!(s.contains("redirect :copy \"anna@cultura.gov.it\";"));
        assert!(s.contains(":days 7"));
        assert!(s.contains("[\"*.beniculturali.it\", \"*.cultura.gov.it\"]"));
        assert!(s.contains("include :personal \"filtri\";"));
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
