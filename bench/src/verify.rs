//! The verification column: after a tool ran, every source message must be in the target, in the
//! folder it belongs to, with identical bytes (SHA-256), flags and internal date, and nothing
//! else may be there. Read over IMAP from both servers, independently of the tool measured.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use trasloco_core::folder_map::{Role, role_from_name};
use trasloco_imap::{Client, Credentials, Endpoint, Security, TlsOptions};

/// One message as the verification sees it: (SHA-256, sorted flags, internal date as Unix time).
pub type Fingerprint = (String, Vec<String>, i64);

/// A mailbox: folder name (Unicode) → sorted fingerprints, plus folder roles.
#[derive(Debug, Default, Clone)]
pub struct Manifest {
    /// Messages per folder, sorted.
    pub folders: BTreeMap<String, Vec<Fingerprint>>,
    /// Special-use role declared per folder.
    pub roles: HashMap<String, Role>,
    /// The hierarchy delimiter.
    pub delimiter: char,
}

impl Manifest {
    /// Number of messages.
    pub fn count(&self) -> usize {
        self.folders.values().map(Vec::len).sum()
    }
}

fn parse_date(s: &str) -> i64 {
    chrono::DateTime::parse_from_str(s.trim(), "%d-%b-%Y %H:%M:%S %z")
        .map(|d| d.timestamp())
        .unwrap_or(i64::MIN)
}

/// Read a whole mailbox.
pub async fn manifest(host: &str, port: u16, user: &str) -> Result<Manifest> {
    let ep = Endpoint {
        host: host.into(),
        port,
        security: Security::None,
    };
    let mut c = Client::connect(&ep, &TlsOptions::default())
        .await
        .with_context(|| format!("{host}:{port}"))?;
    c.login(&Credentials::new(user, format!("{user}-pw")))
        .await
        .with_context(|| format!("login {user} on port {port}"))?;
    let mut out = Manifest {
        delimiter: '/',
        ..Manifest::default()
    };
    for entry in c.list().await? {
        if let Some(d) = entry.delimiter {
            out.delimiter = d;
        }
        if entry.attributes.iter().any(|a| {
            a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
        }) {
            continue;
        }
        if let Some(role) = entry
            .attributes
            .iter()
            .find_map(|a| Role::from_attribute(a))
        {
            out.roles.insert(entry.name.clone(), role);
        }
        // A name listed without \Noselect that cannot be opened (dsync leaves such hierarchy
        // nodes behind) holds no messages.
        if c.select(&entry.name, true).await.is_err() {
            continue;
        }
        let metas = c.fetch_all_meta(true).await?;
        let uids: Vec<u32> = metas.iter().map(|m| m.uid).collect();
        let mut digests: HashMap<u32, String> = HashMap::with_capacity(uids.len());
        c.fetch_bodies(&uids, &mut |uid, body| {
            digests.insert(uid, hex::encode(Sha256::digest(&body)));
        })
        .await?;
        let mut prints: Vec<Fingerprint> = metas
            .iter()
            .map(|m| {
                let mut flags: Vec<String> = m
                    .flags
                    .iter()
                    .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                    .cloned()
                    .collect();
                flags.sort();
                (
                    digests.remove(&m.uid).unwrap_or_default(),
                    flags,
                    m.internal_date
                        .as_deref()
                        .map(parse_date)
                        .unwrap_or(i64::MIN),
                )
            })
            .collect();
        prints.sort();
        out.folders.insert(entry.name.clone(), prints);
    }
    c.logout().await;
    Ok(out)
}

/// Compare a target with its source. A source folder may land under its own name (delimiter
/// translated) or, for a special folder, in the target folder with the same special-use role.
/// Returns None when everything matches, else what is wrong.
pub fn compare(source: &Manifest, target: &Manifest) -> Option<String> {
    let mut problems = Vec::new();
    let mut expected_total = 0;
    for (name, prints) in &source.folders {
        if prints.is_empty() {
            continue;
        }
        expected_total += prints.len();
        let literal = name.replace(source.delimiter, &target.delimiter.to_string());
        let by_role = role_from_name(name).and_then(|r| {
            target
                .roles
                .iter()
                .find(|(_, tr)| **tr == r)
                .map(|(n, _)| n.clone())
        });
        let by_role = if name.eq_ignore_ascii_case("INBOX") {
            Some("INBOX".to_string())
        } else {
            by_role
        };
        let matched = [Some(literal.clone()), by_role]
            .into_iter()
            .flatten()
            .any(|n| target.folders.get(&n) == Some(prints));
        if !matched {
            let got = target.folders.get(&literal).map(Vec::len).unwrap_or(0);
            problems.push(format!(
                "{name}: {} messages, target {literal:?} has {got} matching-or-not",
                prints.len()
            ));
        }
    }
    let total = target.count();
    if total != expected_total {
        problems.push(format!(
            "target holds {total} messages, source {expected_total}"
        ));
    }
    if problems.is_empty() {
        None
    } else {
        Some(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(delim: char, folders: &[(&str, &[&str])], roles: &[(&str, Role)]) -> Manifest {
        Manifest {
            folders: folders
                .iter()
                .map(|(n, ds)| {
                    (
                        n.to_string(),
                        ds.iter().map(|d| (d.to_string(), vec![], 0)).collect(),
                    )
                })
                .collect(),
            roles: roles.iter().map(|(n, r)| (n.to_string(), *r)).collect(),
            delimiter: delim,
        }
    }

    #[test]
    fn literal_and_role_placements_match_and_strays_do_not() {
        let src = m(
            '/',
            &[
                ("INBOX", &["a"]),
                ("Posta inviata", &["b"]),
                ("X/Y", &["c"]),
            ],
            &[],
        );
        let by_role = m(
            '.',
            &[("INBOX", &["a"]), ("Sent", &["b"]), ("X.Y", &["c"])],
            &[("Sent", Role::Sent)],
        );
        assert_eq!(compare(&src, &by_role), None);
        let literal = m(
            '.',
            &[
                ("INBOX", &["a"]),
                ("Posta inviata", &["b"]),
                ("X.Y", &["c"]),
            ],
            &[],
        );
        assert_eq!(compare(&src, &literal), None);
        let extra = m(
            '.',
            &[
                ("INBOX", &["a", "a"]),
                ("Posta inviata", &["b"]),
                ("X.Y", &["c"]),
            ],
            &[],
        );
        assert!(compare(&src, &extra).is_some());
        let missing = m('.', &[("INBOX", &["a"]), ("X.Y", &["c"])], &[]);
        assert!(compare(&src, &missing).is_some());
    }
}
