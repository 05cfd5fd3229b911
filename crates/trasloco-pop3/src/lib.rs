//! A POP3 client (RFC 1939, CAPA RFC 2449, STLS RFC 2595, SASL PLAIN RFC 5034) for reading
//! mailboxes to migrate.
//!
//! Connections, TLS and the error type are the IMAP client's, so both protocols fail the same
//! way (one line naming the host, a kind that decides retry and exit code). Commands are
//! pipelined when the server advertises `PIPELINING`; multi-line answers are dot-unstuffed and
//! returned with their CRLF line ends exactly as the server stored the message.
#![deny(missing_docs)]

use base64::Engine;
use secrecy::ExposeSecret;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufStream};
use trasloco_imap::net::{Stream, open, start_tls};
use trasloco_imap::{Credentials, Endpoint, Error, ErrorKind, MasterStyle, Security, TlsOptions};

/// Commands sent before reading their answers, when the server pipelines.
const WINDOW: usize = 32;

/// One message as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Message number in this session.
    pub number: u32,
    /// Unique id, stable across sessions.
    pub uidl: String,
    /// Size in octets, as the server counts it.
    pub size: u64,
}

/// A logged-in (or about to be) POP3 session.
pub struct Pop3 {
    io: BufStream<Stream>,
    caps: Vec<String>,
    host: String,
}

fn dropped(host: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Dropped,
        format!("POP3 connection to {host} lost: {why}"),
    )
}

impl Pop3 {
    /// Connect, read the greeting, upgrade with STLS as the endpoint says, learn CAPA.
    pub async fn connect(ep: &Endpoint, tls: &TlsOptions) -> Result<Pop3, Error> {
        let (stream, _) = open(ep, tls).await?;
        let mut p = Pop3 {
            io: BufStream::new(stream),
            caps: Vec::new(),
            host: ep.host.clone(),
        };
        let greeting = p.line().await?;
        if !greeting.starts_with("+OK") {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "{}:{} is not a POP3 server ready for us: {}",
                    ep.host,
                    ep.port,
                    greeting.trim_end()
                ),
            ));
        }
        p.capa().await?;
        if matches!(
            ep.security,
            Security::StartTls | Security::StartTlsIfOffered
        ) {
            if p.has_cap("STLS") {
                p.command("STLS").await?;
                let plain = std::mem::replace(p.io.get_mut(), Stream::Closed);
                // A fresh buffer: nothing read before the handshake counts after it.
                p.io = BufStream::new(start_tls(plain, &ep.host, tls).await?);
                p.capa().await?;
            } else if ep.security == Security::StartTls {
                return Err(Error::new(
                    ErrorKind::Tls,
                    format!(
                        "{}:{} does not offer STLS and TLS is required; use pop3s:// (port 995) or --from-tls if-offered on a trusted network",
                        ep.host, ep.port
                    ),
                ));
            }
        }
        Ok(p)
    }

    /// Whether CAPA listed this capability (first word, case-insensitive).
    pub fn has_cap(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| {
            c.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(cap))
        })
    }

    fn sasl_plain(&self) -> bool {
        self.sasl("PLAIN")
    }

    /// Whether CAPA lists this SASL mechanism.
    fn sasl(&self, mechanism: &str) -> bool {
        self.caps.iter().any(|c| {
            let mut w = c.split_whitespace();
            w.next().is_some_and(|x| x.eq_ignore_ascii_case("SASL"))
                && w.any(|m| m.eq_ignore_ascii_case(mechanism))
        })
    }

    /// SASL OAUTHBEARER, else XOAUTH2 (RFC 5034 `AUTH` with an initial response).
    async fn login_bearer(
        &mut self,
        user: &str,
        tokens: &trasloco_imap::oauth::Tokens,
    ) -> Result<(), Error> {
        let (mech, ir, _token) =
            trasloco_imap::oauth::begin(tokens, user, &self.host, "POP3", |m| self.sasl(m)).await?;
        self.send(&format!("AUTH {mech} {ir}")).await?;
        self.flush().await?;
        let mut r = self.line().await?;
        let mut reason = None;
        if r.starts_with('+') && !r.starts_with("+OK") {
            // A failure challenge: answered with a dummy response, then the -ERR.
            reason = trasloco_imap::oauth::failure_reason(r.trim_start_matches('+'));
            self.send(if mech == "OAUTHBEARER" { "AQ==" } else { "" })
                .await?;
            self.flush().await?;
            r = self.line().await?;
        }
        if !r.starts_with("+OK") {
            return Err(Error::new(
                ErrorKind::Auth,
                format!(
                    "OAuth2 login ({mech}, {}) as {user} refused by {}: {}",
                    tokens.describe(),
                    self.host,
                    reason.unwrap_or_else(|| r.trim_end().to_string())
                ),
            ));
        }
        Ok(())
    }

    async fn capa(&mut self) -> Result<(), Error> {
        self.send("CAPA").await?;
        self.flush().await?;
        let first = self.line().await?;
        self.caps = if first.starts_with("+OK") {
            let body = self.multiline().await?;
            String::from_utf8_lossy(&body)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        } else {
            Vec::new()
        };
        Ok(())
    }

    /// Log in: SASL PLAIN when offered (with an authorization identity for a master user),
    /// else USER/PASS (Dovecot's `user*master` form when the master style says so).
    pub async fn login(&mut self, creds: &Credentials) -> Result<(), Error> {
        if let Some(tokens) = &creds.oauth {
            return self.login_bearer(&creds.user, tokens).await;
        }
        let password = creds.password.expose_secret();
        let who = match &creds.master {
            Some(m) => format!("{} (master user {})", creds.user, m.user),
            None => creds.user.clone(),
        };
        let host = self.host.clone();
        let refused = move |why: String| {
            Error::new(
                ErrorKind::Auth,
                format!("{host} refused the login of {who}: {}", why.trim_end()),
            )
        };
        let separator = match &creds.master {
            Some(m) => match m.style {
                MasterStyle::Separator(c) => Some(format!("{}{c}{}", creds.user, m.user)),
                MasterStyle::Sasl => None,
            },
            None => None,
        };
        let use_sasl = self.sasl_plain() && separator.is_none();
        if use_sasl {
            let (authz, authc) = match &creds.master {
                Some(m) => (creds.user.as_str(), m.user.as_str()),
                None => ("", creds.user.as_str()),
            };
            let payload = base64::engine::general_purpose::STANDARD
                .encode(format!("{authz}\0{authc}\0{password}"));
            self.send(&format!("AUTH PLAIN {payload}")).await?;
            self.flush().await?;
            let r = self.line().await?;
            if !r.starts_with("+OK") {
                return Err(refused(r));
            }
            return Ok(());
        }
        if creds.master.is_some() && separator.is_none() {
            return Err(Error::new(
                ErrorKind::Auth,
                format!(
                    "{} does not offer SASL PLAIN, so master user login needs the separator form (--master-login separator)",
                    self.host
                ),
            ));
        }
        let user = separator.unwrap_or_else(|| creds.user.clone());
        self.send(&format!("USER {user}")).await?;
        self.flush().await?;
        let r = self.line().await?;
        if !r.starts_with("+OK") {
            return Err(refused(r));
        }
        self.send(&format!("PASS {password}")).await?;
        self.flush().await?;
        let r = self.line().await?;
        if !r.starts_with("+OK") {
            return Err(refused(r));
        }
        Ok(())
    }

    /// Every message: number, UIDL and size.
    pub async fn listing(&mut self) -> Result<Vec<Listed>, Error> {
        if !self.has_cap("UIDL") && !self.caps.is_empty() {
            tracing::debug!("{} does not list UIDL in CAPA; trying anyway", self.host);
        }
        self.send("UIDL").await?;
        self.send("LIST").await?;
        self.flush().await?;
        self.expect_ok("UIDL").await?;
        let uidl = self.multiline().await.map(|b| pairs(&b))?;
        self.expect_ok("LIST").await?;
        let sizes = self.multiline().await.map(|b| pairs(&b))?;
        let sizes: std::collections::HashMap<u32, u64> = sizes
            .into_iter()
            .filter_map(|(n, s)| Some((n, s.parse().ok()?)))
            .collect();
        Ok(uidl
            .into_iter()
            .map(|(number, uidl)| Listed {
                number,
                size: sizes.get(&number).copied().unwrap_or(0),
                uidl,
            })
            .collect())
    }

    /// Run `command` for each number (pipelined in windows) and hand each multi-line answer
    /// to `each`; a `-ERR` is handed on as `Err(server words)`.
    async fn each_multiline(
        &mut self,
        numbers: &[u32],
        command: impl Fn(u32) -> String,
        each: &mut (dyn FnMut(u32, Result<Vec<u8>, String>) + Send),
    ) -> Result<(), Error> {
        let window = if self.has_cap("PIPELINING") {
            WINDOW
        } else {
            1
        };
        for chunk in numbers.chunks(window) {
            for &n in chunk {
                self.send(&command(n)).await?;
            }
            self.flush().await?;
            for &n in chunk {
                let first = self.line().await?;
                if first.starts_with("+OK") {
                    let body = self.multiline().await?;
                    each(n, Ok(body));
                } else {
                    each(n, Err(first.trim_end().to_string()));
                }
            }
        }
        Ok(())
    }

    /// The header block of each message (`TOP n 0`).
    pub async fn headers(
        &mut self,
        numbers: &[u32],
        each: &mut (dyn FnMut(u32, Result<Vec<u8>, String>) + Send),
    ) -> Result<(), Error> {
        self.each_multiline(numbers, |n| format!("TOP {n} 0"), each)
            .await
    }

    /// The whole message, exactly as stored (after dot-unstuffing).
    pub async fn retrieve(
        &mut self,
        numbers: &[u32],
        each: &mut (dyn FnMut(u32, Result<Vec<u8>, String>) + Send),
    ) -> Result<(), Error> {
        self.each_multiline(numbers, |n| format!("RETR {n}"), each)
            .await
    }

    /// Mark messages for deletion; they go when the session ends with QUIT. Returns the
    /// server's refusal per message, if any.
    pub async fn delete(&mut self, numbers: &[u32]) -> Result<Vec<Option<String>>, Error> {
        let mut out = Vec::with_capacity(numbers.len());
        let window = if self.has_cap("PIPELINING") {
            WINDOW
        } else {
            1
        };
        for chunk in numbers.chunks(window) {
            for n in chunk {
                self.send(&format!("DELE {n}")).await?;
            }
            self.flush().await?;
            for _ in chunk {
                let r = self.line().await?;
                out.push((!r.starts_with("+OK")).then(|| r.trim_end().to_string()));
            }
        }
        Ok(out)
    }

    /// End the session; deletions marked with [`Pop3::delete`] take effect only if this
    /// succeeds.
    pub async fn quit(mut self) -> Result<(), Error> {
        self.send("QUIT").await?;
        self.flush().await?;
        let r = self.line().await?;
        if r.starts_with("+OK") {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Refused,
                format!(
                    "{}: QUIT failed, deletions not committed: {}",
                    self.host,
                    r.trim_end()
                ),
            ))
        }
    }

    async fn command(&mut self, cmd: &str) -> Result<String, Error> {
        self.send(cmd).await?;
        self.flush().await?;
        self.expect_ok(cmd).await
    }

    async fn expect_ok(&mut self, what: &str) -> Result<String, Error> {
        let r = self.line().await?;
        if r.starts_with("+OK") {
            Ok(r)
        } else {
            Err(Error::new(
                ErrorKind::Refused,
                format!("{} refused {what}: {}", self.host, r.trim_end()),
            ))
        }
    }

    async fn send(&mut self, cmd: &str) -> Result<(), Error> {
        let host = self.host.clone();
        self.io
            .write_all(format!("{cmd}\r\n").as_bytes())
            .await
            .map_err(|e| dropped(&host, e))
    }

    async fn flush(&mut self) -> Result<(), Error> {
        let host = self.host.clone();
        self.io.flush().await.map_err(|e| dropped(&host, e))
    }

    async fn raw_line(&mut self, buf: &mut Vec<u8>) -> Result<(), Error> {
        let host = self.host.clone();
        match tokio::time::timeout(
            trasloco_imap::timeouts::get().idle,
            self.io.read_until(b'\n', buf),
        )
        .await
        {
            Err(_) => Err(dropped(&host, "no answer for 120 s")),
            Ok(Err(e)) => Err(dropped(&host, e)),
            Ok(Ok(0)) => Err(dropped(&host, "closed by the server")),
            Ok(Ok(_)) => Ok(()),
        }
    }

    async fn line(&mut self) -> Result<String, Error> {
        let mut buf = Vec::new();
        self.raw_line(&mut buf).await?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// The lines up to the terminating `.`, dot-unstuffed, line ends kept.
    async fn multiline(&mut self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            self.raw_line(&mut line).await?;
            if line == b".\r\n" || line == b".\n" {
                return Ok(out);
            }
            match line.strip_prefix(b".") {
                Some(rest) => out.extend_from_slice(rest),
                None => out.extend_from_slice(&line),
            }
        }
    }
}

/// `n value` lines.
fn pairs(body: &[u8]) -> Vec<(u32, String)> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| {
            let (n, v) = l.trim().split_once(' ')?;
            Some((n.parse().ok()?, v.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::pairs;

    #[test]
    fn listing_lines() {
        assert_eq!(
            pairs(b"1 000000017a\r\n2 b c\r\nbad\r\n"),
            vec![(1, "000000017a".to_string()), (2, "b c".to_string())]
        );
    }
}
