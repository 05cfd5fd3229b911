//! Account lists: our CSV, imapsync's and Microsoft's.

use crate::ConfigError;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::Path;

/// Which CSV dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Decide from the first line.
    #[default]
    Auto,
    /// `source_user,source_password,target_user,target_password` with a header; the password
    /// columns may be empty (or absent) when the campaign uses master users.
    Trasloco,
    /// imapsync's batch file: `host1;user1;password1;host2;user2;password2`, no header.
    Imapsync,
    /// Microsoft 365 IMAP migration: `EmailAddress,UserName,Password` — target address, source
    /// login, source password. The target side needs a master (admin) login.
    Microsoft,
}

/// One mailbox to move.
#[derive(Debug, Clone)]
pub struct Account {
    /// Line in the file (for messages).
    pub line: usize,
    /// Source host override (imapsync format).
    pub source_host: Option<String>,
    /// Source login.
    pub source_user: String,
    /// Source password (None in admin mode).
    pub source_password: Option<SecretString>,
    /// Target host override (imapsync format).
    pub target_host: Option<String>,
    /// Target login; empty when the campaign's `domain_map` derives it.
    pub target_user: String,
    /// Target password (None in admin mode).
    pub target_password: Option<SecretString>,
    /// Last login on the old platform (`last_login` column), as written.
    pub last_login: Option<String>,
    /// This account's quota strategy (`quota_strategy` column), overriding the campaign's.
    pub quota_strategy: Option<String>,
    /// The person's name (`display_name` column), for client settings and guides.
    pub display_name: Option<String>,
}

fn secret(s: &str) -> Option<SecretString> {
    (!s.is_empty()).then(|| SecretString::from(s.to_string()))
}

fn detect(first: &str) -> Option<Format> {
    let lower = first.to_ascii_lowercase();
    if lower.contains("emailaddress") && lower.contains("username") {
        Some(Format::Microsoft)
    } else if lower.contains("source_user") {
        Some(Format::Trasloco)
    } else if first.split(';').count() >= 6 {
        Some(Format::Imapsync)
    } else {
        None
    }
}

/// Read an account list.
pub fn load(path: &Path, format: Format) -> Result<Vec<Account>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigError(format!(
            "cannot read accounts file {}: {}",
            path.display(),
            trasloco_core::words::io_error(&e)
        ))
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        ConfigError(format!(
            "accounts file {} line {line}: not UTF-8 text (saved as Windows-1252 or Latin-1?); save it as UTF-8 (Excel: \"CSV UTF-8\")",
            path.display()
        ))
    })?;
    parse(&text, format, &path.display().to_string())
}

/// Parse an account list; `name` is used in error messages.
pub fn parse(text: &str, format: Format, name: &str) -> Result<Vec<Account>, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text); // Excel's BOM
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap_or("");
    let format = match format {
        Format::Auto => detect(first).ok_or_else(|| {
            ConfigError(format!(
                "accounts file {name}: cannot tell its format from the first line; expected a header \
                 'source_user,source_password,target_user,target_password', Microsoft's 'EmailAddress,UserName,Password', \
                 or imapsync's 'host1;user1;password1;host2;user2;password2' (or set accounts.format)"
            ))
        })?,
        f => f,
    };
    let err =
        |line: usize, msg: &str| ConfigError(format!("accounts file {name} line {line}: {msg}"));
    let mut out = Vec::new();
    match format {
        Format::Imapsync => {
            for (i, raw) in text.lines().enumerate() {
                let line = raw.trim_end_matches('\r');
                if line.trim().is_empty() || line.trim_start().starts_with('#') {
                    continue;
                }
                let f: Vec<&str> = line.split(';').collect();
                if f.len() < 6 {
                    return Err(err(
                        i + 1,
                        &format!(
                            "{} field{} separated by ';', an imapsync line needs 6: host1;user1;password1;host2;user2;password2 (hosts may be empty)",
                            f.len(),
                            if f.len() == 1 { "" } else { "s" }
                        ),
                    ));
                }
                if f[1].is_empty() || f[4].is_empty() {
                    return Err(err(i + 1, "user1 and user2 must not be empty"));
                }
                out.push(Account {
                    line: i + 1,
                    source_host: (!f[0].is_empty()).then(|| f[0].to_string()),
                    source_user: f[1].to_string(),
                    source_password: secret(f[2]),
                    target_host: (!f[3].is_empty()).then(|| f[3].to_string()),
                    target_user: f[4].to_string(),
                    target_password: secret(f[5]),
                    last_login: None,
                    quota_strategy: None,
                    display_name: None,
                });
            }
        }
        Format::Microsoft | Format::Trasloco | Format::Auto => {
            // Italian Excel saves CSV with semicolons: the header line says which it is.
            let delimiter = if first.contains(';') && !first.contains(',') {
                b';'
            } else {
                b','
            };
            let mut rdr = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .flexible(true)
                .trim(csv::Trim::All)
                .comment(Some(b'#'))
                .from_reader(text.as_bytes());
            let headers: Vec<String> = rdr
                .headers()
                .map_err(|e| err(1, &e.to_string()))?
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect();
            let col = |n: &str| headers.iter().position(|h| h == n);
            // Columns this format does not read are said, not silently dropped.
            let known: &[&str] = if format == Format::Microsoft {
                &["emailaddress", "username", "password"]
            } else {
                &[
                    "source_user",
                    "source_password",
                    "target_user",
                    "target_password",
                    "last_login",
                    "quota_strategy",
                    "display_name",
                ]
            };
            let ignored: Vec<&str> = headers
                .iter()
                .map(String::as_str)
                .filter(|h| !h.is_empty() && !known.contains(h))
                .collect();
            if !ignored.is_empty() {
                tracing::warn!(
                    "accounts file {name}: columns not read: {} (the format reads {})",
                    ignored.join(", "),
                    known.join(", ")
                );
            }
            let need = |n: &str| col(n).ok_or_else(|| err(1, &format!("missing column {n}")));
            let (su, sp, tu, tp) = if format == Format::Microsoft {
                (
                    need("username")?,
                    col("password"),
                    Some(need("emailaddress")?),
                    None,
                )
            } else {
                (
                    need("source_user")?,
                    col("source_password"),
                    col("target_user"),
                    col("target_password"),
                )
            };
            for rec in rdr.records() {
                let rec = rec.map_err(|e| {
                    err(
                        e.position().map_or(0, |p| p.line() as usize),
                        &e.to_string(),
                    )
                })?;
                let line = rec.position().map_or(0, |p| p.line() as usize);
                let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or("");
                if rec.iter().all(str::is_empty) {
                    continue;
                }
                // A quote left open swallows the lines after it into one field.
                if rec.iter().any(|f| f.contains(['\n', '\r'])) {
                    return Err(err(
                        line,
                        "a field runs over a line break: a quote (\") is not closed on this line",
                    ));
                }
                let (s, t) = (get(Some(su)), get(tu));
                // Our format may leave target_user empty for the campaign's domain_map.
                if s.is_empty() || (t.is_empty() && format == Format::Microsoft) {
                    return Err(err(line, "source and target user must not be empty"));
                }
                let cell = |n: &str| {
                    Some(get(col(n)))
                        .filter(|v| !v.is_empty())
                        .map(str::to_string)
                };
                out.push(Account {
                    line,
                    source_host: None,
                    source_user: s.to_string(),
                    source_password: secret(get(sp)),
                    target_host: None,
                    target_user: t.to_string(),
                    target_password: secret(get(tp)),
                    last_login: cell("last_login"),
                    quota_strategy: cell("quota_strategy"),
                    display_name: cell("display_name"),
                });
            }
        }
    }
    if out.is_empty() {
        return Err(ConfigError(format!(
            "accounts file {name} lists no account"
        )));
    }
    // A mailbox is moved once: a second line for the same source account is a mistake to
    // name as such (it would otherwise show up as an address conflict with itself).
    let mut seen: std::collections::HashMap<(Option<String>, String), usize> =
        std::collections::HashMap::new();
    for a in &out {
        let key = (
            a.source_host.as_ref().map(|h| h.to_ascii_lowercase()),
            a.source_user.to_lowercase(),
        );
        if let Some(first) = seen.insert(key, a.line) {
            return Err(err(
                a.line,
                &format!(
                    "repeats line {first} (source account {}); a mailbox is moved once: remove one of the two lines",
                    a.source_user
                ),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn imapsync_batch_file() {
        let a = parse(
            "# old;new\nold.example;alice;pw1;new.example;alice@new.example;pw2\n\n",
            Format::Auto,
            "f",
        )
        .unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].source_host.as_deref(), Some("old.example"));
        assert_eq!(a[0].target_user, "alice@new.example");
        assert_eq!(
            a[0].target_password.as_ref().unwrap().expose_secret(),
            "pw2"
        );
        assert_eq!(a[0].line, 2);
    }

    #[test]
    fn microsoft_csv_maps_columns() {
        let a = parse(
            "EmailAddress,UserName,Password\r\nanna@cultura.gov.it,anna,segreto\r\n",
            Format::Auto,
            "f",
        )
        .unwrap();
        assert_eq!(a[0].source_user, "anna");
        assert_eq!(a[0].target_user, "anna@cultura.gov.it");
        assert_eq!(
            a[0].source_password.as_ref().unwrap().expose_secret(),
            "segreto"
        );
        assert!(a[0].target_password.is_none());
    }

    #[test]
    fn own_format_with_empty_passwords_for_admin_mode() {
        let a = parse(
            "\u{feff}source_user,target_user\nbob,bob\ncarol,carol\n",
            Format::Auto,
            "f",
        )
        .unwrap();
        assert_eq!(a.len(), 2);
        assert!(a[1].source_password.is_none());
        assert_eq!(a[1].line, 3);
    }

    #[test]
    fn target_may_come_from_the_domain_map_and_extra_columns_are_read() {
        let a = parse(
            "source_user,target_user,last_login,quota_strategy\nanna@old.it,,2025-01-02,keep-days 90\nbob@old.it,b@new.it,,\n",
            Format::Auto,
            "f",
        )
        .unwrap();
        assert_eq!(a[0].target_user, "");
        assert_eq!(a[0].last_login.as_deref(), Some("2025-01-02"));
        assert_eq!(a[0].quota_strategy.as_deref(), Some("keep-days 90"));
        assert_eq!(a[1].target_user, "b@new.it");
        assert_eq!(a[1].last_login, None);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = parse("EmailAddress,UserName\n,bob\n", Format::Auto, "acc.csv")
            .unwrap_err()
            .0;
        assert!(e.starts_with("accounts file acc.csv line 2:"), "{e}");
        let e = parse("what,is,this\n", Format::Auto, "acc.csv")
            .unwrap_err()
            .0;
        assert!(e.contains("cannot tell its format"), "{e}");
        let e = parse("a;b;c;d;e;f\nx;y\n", Format::Imapsync, "acc.csv")
            .unwrap_err()
            .0;
        assert!(e.contains("line 2"), "{e}");
        assert!(
            e.contains("2 fields separated by ';', an imapsync line needs 6"),
            "{e}"
        );
    }

    #[test]
    fn an_unclosed_quote_and_a_foreign_encoding_are_named() {
        let e = parse(
            "source_user,target_user\nanna,anna\n\"bruno,bruno\ncarla,carla\n",
            Format::Auto,
            "acc.csv",
        )
        .unwrap_err()
        .0;
        assert!(
            e.contains("acc.csv line 3: a field runs over a line break"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("acc.csv");
        std::fs::write(
            &p,
            b"source_user,target_user\nanna,anna\nniccol\xf2,niccolo\n",
        )
        .unwrap();
        let e = load(&p, Format::Auto).unwrap_err().0;
        assert!(e.contains("line 3: not UTF-8 text"), "{e}");
    }

    #[test]
    fn a_repeated_line_is_named_as_such() {
        let e = parse(
            "source_user,target_user\nanna,anna\nbruno,bruno\nAnna,anna\n",
            Format::Auto,
            "acc.csv",
        )
        .unwrap_err()
        .0;
        assert!(
            e.starts_with("accounts file acc.csv line 4: repeats line 2 (source account Anna)"),
            "{e}"
        );
        let e = parse(
            ";anna;pw;;anna;pw\n;anna;pw;;anna;pw\n",
            Format::Auto,
            "acc.txt",
        )
        .unwrap_err()
        .0;
        assert!(e.contains("line 2: repeats line 1"), "{e}");
    }

    #[test]
    fn semicolon_csv_from_italian_excel_is_read() {
        let a = parse(
            "\u{feff}source_user;source_password;target_user;target_password\r\nanna;pw1;anna@new.it;pw2\r\n",
            Format::Auto,
            "f",
        )
        .unwrap();
        assert_eq!(a[0].source_user, "anna");
        assert_eq!(a[0].target_user, "anna@new.it");
        let a = parse(
            "EmailAddress;UserName;Password\nanna@new.it;anna;pw\n",
            Format::Auto,
            "f",
        )
        .unwrap();
        assert_eq!(a[0].source_user, "anna");
    }
}
