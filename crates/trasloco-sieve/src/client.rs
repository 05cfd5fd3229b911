//! ManageSieve (RFC 5804): STARTTLS, SASL PLAIN (with an authorization identity for master
//! users), LISTSCRIPTS, GETSCRIPT, CHECKSCRIPT, PUTSCRIPT, SETACTIVE, DELETESCRIPT. Connections,
//! TLS and errors are the IMAP client's, so failures read the same way.

use base64::Engine;
use secrecy::ExposeSecret;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use trasloco_imap::net::{Stream, open, start_tls};
use trasloco_imap::{Credentials, Endpoint, Error, ErrorKind, MasterStyle, Security, TlsOptions};

/// A script on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptInfo {
    /// Its name.
    pub name: String,
    /// Whether it is the active one.
    pub active: bool,
}

/// A ManageSieve session.
pub struct ManageSieve {
    io: BufStream<Stream>,
    caps: Vec<(String, String)>,
    host: String,
}

/// The end of a command: OK, NO or BYE, a response code and the server's words.
struct Done {
    ok: bool,
    text: String,
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl ManageSieve {
    /// Connect, read the capabilities, upgrade with STARTTLS as the endpoint says.
    pub async fn connect(ep: &Endpoint, tls: &TlsOptions) -> Result<ManageSieve, Error> {
        let (stream, _) = open(ep, tls).await?;
        let mut s = ManageSieve {
            io: BufStream::new(stream),
            caps: Vec::new(),
            host: ep.host.clone(),
        };
        s.read_caps().await.map_err(|e| {
            Error::new(
                e.kind,
                format!(
                    "{}:{} is not a ManageSieve server ready for us: {}",
                    ep.host, ep.port, e.message
                ),
            )
        })?;
        if matches!(
            ep.security,
            Security::StartTls | Security::StartTlsIfOffered
        ) {
            if s.has_cap("STARTTLS") {
                s.send(b"STARTTLS\r\n").await?;
                let done = s.done(&mut Vec::new()).await?;
                if !done.ok {
                    return Err(Error::new(
                        ErrorKind::Tls,
                        format!("{}: STARTTLS refused: {}", ep.host, done.text),
                    ));
                }
                let plain = std::mem::replace(s.io.get_mut(), Stream::Closed);
                // A fresh buffer: nothing read before the handshake counts after it.
                s.io = BufStream::new(start_tls(plain, &ep.host, tls).await?);
                s.read_caps().await?;
            } else if ep.security == Security::StartTls {
                return Err(Error::new(
                    ErrorKind::Tls,
                    format!(
                        "{}:{} does not offer STARTTLS and TLS is required; set tls = \"implicit\" or, on a trusted network, \"if-offered\"",
                        ep.host, ep.port
                    ),
                ));
            }
        }
        Ok(s)
    }

    /// Whether the server announced a capability.
    pub fn has_cap(&self, name: &str) -> bool {
        self.caps.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// How many redirects one message may cause (`MAXREDIRECTS`), when the server says.
    pub fn max_redirects(&self) -> Option<usize> {
        self.caps
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("MAXREDIRECTS"))
            .and_then(|(_, v)| v.trim().parse().ok())
    }

    /// The Sieve extensions the server supports (the `SIEVE` capability).
    pub fn extensions(&self) -> Vec<String> {
        self.caps
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("SIEVE"))
            .map(|(_, v)| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    async fn read_caps(&mut self) -> Result<(), Error> {
        let mut lines = Vec::new();
        let done = self.done(&mut lines).await?;
        if !done.ok {
            return Err(Error::new(ErrorKind::Protocol, done.text));
        }
        self.caps = lines
            .iter()
            .filter_map(|l| {
                let words = strings(l);
                words
                    .first()
                    .map(|k| (k.clone(), words.get(1).cloned().unwrap_or_default()))
            })
            .collect();
        Ok(())
    }

    /// Log in with SASL PLAIN (a master user logs in on behalf of the user with an
    /// authorization identity; Dovecot's `user*master` form is sent as the user name).
    pub async fn login(&mut self, creds: &Credentials) -> Result<(), Error> {
        if let Some(tokens) = &creds.oauth {
            return self.login_bearer(&creds.user, tokens).await;
        }
        let password = creds.password.expose_secret();
        let (authz, authc) = match &creds.master {
            Some(m) => match m.style {
                MasterStyle::Sasl => (creds.user.clone(), m.user.clone()),
                MasterStyle::Separator(c) => {
                    (String::new(), format!("{}{c}{}", creds.user, m.user))
                }
            },
            None => (String::new(), creds.user.clone()),
        };
        let payload = base64::engine::general_purpose::STANDARD
            .encode(format!("{authz}\0{authc}\0{password}"));
        self.send(format!("AUTHENTICATE \"PLAIN\" \"{payload}\"\r\n").as_bytes())
            .await?;
        let done = self.done(&mut Vec::new()).await?;
        if !done.ok {
            let who = match &creds.master {
                Some(m) => format!("{} (master user {})", creds.user, m.user),
                None => creds.user.clone(),
            };
            return Err(Error::new(
                ErrorKind::Auth,
                format!(
                    "{} refused the ManageSieve login of {who}: {}",
                    self.host, done.text
                ),
            ));
        }
        // RFC 5804 §2.1: after a successful AUTHENTICATE the server may send capabilities
        // again only on request; nothing more to read here.
        Ok(())
    }

    /// SASL OAUTHBEARER, else XOAUTH2, with a token from `tokens` (where the server offers
    /// either in its SASL capability).
    async fn login_bearer(
        &mut self,
        user: &str,
        tokens: &trasloco_imap::oauth::Tokens,
    ) -> Result<(), Error> {
        let offered = |m: &str| {
            self.caps.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("SASL")
                    && v.split_whitespace().any(|x| x.eq_ignore_ascii_case(m))
            })
        };
        let (mech, ir, _token) =
            trasloco_imap::oauth::begin(tokens, user, &self.host, "ManageSieve", offered).await?;
        self.send(format!("AUTHENTICATE \"{mech}\" \"{ir}\"\r\n").as_bytes())
            .await?;
        let first = self.line().await?;
        let mut reason = None;
        let done = if first.starts_with('"') || first.starts_with('{') {
            // A failure challenge; answered with a dummy response, then the NO.
            reason = trasloco_imap::oauth::failure_reason(first.trim_matches('"'));
            let dummy = if mech == "OAUTHBEARER" {
                "\"AQ==\""
            } else {
                "\"\""
            };
            self.send(format!("{dummy}\r\n").as_bytes()).await?;
            self.done(&mut Vec::new()).await?
        } else {
            let upper = first.to_ascii_uppercase();
            Done {
                ok: upper == "OK" || upper.starts_with("OK "),
                text: first.clone(),
            }
        };
        if !done.ok {
            return Err(Error::new(
                ErrorKind::Auth,
                format!(
                    "OAuth2 ManageSieve login ({mech}, {}) as {user} refused by {}: {}",
                    tokens.describe(),
                    self.host,
                    reason.unwrap_or(done.text)
                ),
            ));
        }
        Ok(())
    }

    /// The scripts, and which one is active.
    pub async fn list(&mut self) -> Result<Vec<ScriptInfo>, Error> {
        self.send(b"LISTSCRIPTS\r\n").await?;
        let mut lines = Vec::new();
        let done = self.done(&mut lines).await?;
        self.check(done, "LISTSCRIPTS")?;
        Ok(lines
            .iter()
            .filter_map(|l| {
                let words = strings(l);
                let name = words.first()?.clone();
                let active = l.trim_end().to_ascii_uppercase().ends_with("ACTIVE");
                Some(ScriptInfo { name, active })
            })
            .collect())
    }

    /// A script's text.
    pub async fn get(&mut self, name: &str) -> Result<String, Error> {
        self.send(format!("GETSCRIPT {}\r\n", quote(name)).as_bytes())
            .await?;
        let mut lines = Vec::new();
        let done = self.done(&mut lines).await?;
        self.check(done, &format!("GETSCRIPT {name:?}"))?;
        Ok(lines.into_iter().next().unwrap_or_default())
    }

    /// Ask the server whether it would accept this script: None when it would, else its reason.
    pub async fn check_script(&mut self, script: &str) -> Result<Option<String>, Error> {
        self.send_with_literal("CHECKSCRIPT", script).await?;
        let done = self.done(&mut Vec::new()).await?;
        Ok((!done.ok).then_some(done.text))
    }

    /// Store a script (replacing one of the same name). Err with the server's reason when it
    /// refuses the script.
    pub async fn put(&mut self, name: &str, script: &str) -> Result<(), Error> {
        self.send_with_literal(&format!("PUTSCRIPT {}", quote(name)), script)
            .await?;
        let done = self.done(&mut Vec::new()).await?;
        self.check(done, &format!("PUTSCRIPT {name:?}"))
    }

    /// Make a script the active one; `None` deactivates all.
    pub async fn set_active(&mut self, name: Option<&str>) -> Result<(), Error> {
        self.send(format!("SETACTIVE {}\r\n", quote(name.unwrap_or(""))).as_bytes())
            .await?;
        let done = self.done(&mut Vec::new()).await?;
        self.check(done, "SETACTIVE")
    }

    /// Delete a script (it must not be active).
    pub async fn delete(&mut self, name: &str) -> Result<(), Error> {
        self.send(format!("DELETESCRIPT {}\r\n", quote(name)).as_bytes())
            .await?;
        let done = self.done(&mut Vec::new()).await?;
        self.check(done, &format!("DELETESCRIPT {name:?}"))
    }

    /// Say goodbye.
    pub async fn logout(mut self) {
        if self.send(b"LOGOUT\r\n").await.is_ok() {
            let _ = self.done(&mut Vec::new()).await;
        }
    }

    fn check(&self, done: Done, what: &str) -> Result<(), Error> {
        if done.ok {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Refused,
                format!("{what} refused by {}: {}", self.host, done.text),
            ))
        }
    }

    async fn send_with_literal(&mut self, cmd: &str, data: &str) -> Result<(), Error> {
        let mut out = format!("{cmd} {{{}+}}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data.as_bytes());
        out.extend_from_slice(b"\r\n");
        self.send(&out).await
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let host = self.host.clone();
        let lost = |e: std::io::Error| {
            Error::new(
                ErrorKind::Dropped,
                format!("ManageSieve connection to {host} lost: {e}"),
            )
        };
        self.io.write_all(bytes).await.map_err(lost)?;
        self.io.flush().await.map_err(lost)
    }

    /// One response line, with any literal it announces (`{n}` at the end) read into it.
    async fn line(&mut self) -> Result<String, Error> {
        let host = self.host.clone();
        let lost = |why: String| {
            Error::new(
                ErrorKind::Dropped,
                format!("ManageSieve connection to {host} lost: {why}"),
            )
        };
        let mut out = String::new();
        loop {
            let mut raw = Vec::new();
            let n = tokio::time::timeout(
                trasloco_imap::timeouts::get().idle,
                self.io.read_until(b'\n', &mut raw),
            )
            .await
            .map_err(|_| lost("no answer".into()))?
            .map_err(|e| lost(e.to_string()))?;
            if n == 0 {
                return Err(lost("closed by the server".into()));
            }
            let text = String::from_utf8_lossy(&raw)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            let literal = text
                .strip_suffix('}')
                .and_then(|t| t.rsplit_once('{'))
                .and_then(|(head, n)| {
                    n.trim_end_matches('+')
                        .parse::<usize>()
                        .ok()
                        .map(|n| (head.to_string(), n))
                });
            match literal {
                Some((head, len)) if len <= 16 * 1024 * 1024 => {
                    let mut buf = vec![0u8; len];
                    self.io
                        .read_exact(&mut buf)
                        .await
                        .map_err(|e| lost(e.to_string()))?;
                    out.push_str(&head);
                    // Mark the literal so `strings` takes it whole.
                    out.push('\u{0}');
                    out.push_str(&String::from_utf8_lossy(&buf));
                    out.push('\u{0}');
                }
                _ => {
                    out.push_str(&text);
                    return Ok(out);
                }
            }
        }
    }

    /// Read lines up to the OK/NO/BYE that ends a command; the lines before it go to `lines`
    /// (a literal-only line becomes its text).
    async fn done(&mut self, lines: &mut Vec<String>) -> Result<Done, Error> {
        loop {
            let l = self.line().await?;
            let upper = l.to_ascii_uppercase();
            let end = ["OK", "NO", "BYE"]
                .into_iter()
                .find(|w| upper == *w || upper.starts_with(&format!("{w} ")));
            match end {
                Some(w) => {
                    let rest = l[w.len()..].trim();
                    let text = strings(rest)
                        .into_iter()
                        .last()
                        .unwrap_or_else(|| rest.to_string());
                    return Ok(Done {
                        ok: w == "OK",
                        text,
                    });
                }
                None => {
                    if let Some(t) = l
                        .strip_prefix('\u{0}')
                        .and_then(|t| t.strip_suffix('\u{0}'))
                    {
                        lines.push(t.to_string());
                    } else {
                        lines.push(l);
                    }
                }
            }
        }
    }
}

/// The quoted strings and literals of a response line, unquoted.
fn strings(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                s.push(n);
                            }
                        }
                        '"' => break,
                        c => s.push(c),
                    }
                }
                out.push(s);
            }
            '\u{0}' => {
                let s: String = chars.by_ref().take_while(|c| *c != '\u{0}').collect();
                out.push(s);
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strings;

    #[test]
    fn response_strings() {
        assert_eq!(
            strings("\"SIEVE\" \"fileinto vacation\""),
            vec!["SIEVE", "fileinto vacation"]
        );
        assert_eq!(strings("\"a \\\"b\\\"\" ACTIVE"), vec!["a \"b\""]);
        assert_eq!(strings("(WARNINGS) \u{0}line 1: x\u{0}"), vec!["line 1: x"]);
    }
}
