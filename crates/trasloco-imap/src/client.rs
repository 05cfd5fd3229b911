//! The IMAP client: one connection, commands pipelined where the protocol allows.

use crate::command::{is_atom, quote_astring, uid_chunks, uid_set};
use crate::connect::{self, Credentials, Endpoint, MasterStyle, Security, Stream, TlsOptions};
use crate::error::{Error, ErrorKind};
use crate::framing::Framer;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use imap_proto::{
    AttributeValue, MailboxDatum, NameAttribute, Response, ResponseCode, Status, StatusAttribute,
};
use secrecy::ExposeSecret;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trasloco_core::mutf7;

/// Characters of a response shown in a protocol trace (`-vv`).
const TRACE_WIDTH: usize = 300;
/// How much to read at a time when no large literal is expected.
const READ_CHUNK: usize = 64 * 1024;
/// Writes are gathered up to this size.
const WRITE_CHUNK: usize = 64 * 1024;
/// A read buffer above this size is replaced by a small one once it has emptied.
const KEEP_CAPACITY: usize = 256 * 1024;
/// Sequence-set ranges per command, to stay under servers' line-length limits.
const MAX_RANGES: usize = 500;
/// The STATUS items that tell whether a folder changed.
const STATUS_ITEMS: &str = "MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ";

/// Every subscribed folder.
const LSUB_ALL: &str = r#"LSUB "" "*""#;

/// A folder as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// Name as on the wire (modified UTF-7).
    pub wire_name: String,
    /// Name decoded to Unicode (the wire name itself if it is not valid modified UTF-7).
    pub name: String,
    /// Hierarchy delimiter.
    pub delimiter: Option<char>,
    /// Attributes, e.g. `\Noselect`, `\Sent`, `\HasChildren`.
    pub attributes: Vec<String>,
}

/// What SELECT/EXAMINE told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selected {
    /// UIDVALIDITY.
    pub uid_validity: u32,
    /// UIDNEXT, when sent.
    pub uid_next: Option<u32>,
    /// EXISTS.
    pub exists: u32,
    /// PERMANENTFLAGS, when sent.
    pub permanent_flags: Option<Vec<String>>,
    /// Whether the folder was opened read-only.
    pub read_only: bool,
}

/// A folder's counters as STATUS tells them (RFC 3501 §6.3.10, HIGHESTMODSEQ from RFC 7162):
/// while none of them moves, no message came, went or changed a flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderStatus {
    /// UIDVALIDITY.
    pub uid_validity: u32,
    /// UIDNEXT.
    pub uid_next: u32,
    /// MESSAGES.
    pub messages: u32,
    /// HIGHESTMODSEQ (0 when the folder keeps no modification sequences).
    pub highest_modseq: u64,
}

impl FolderStatus {
    /// The counters as one comparable text, the form the state keeps.
    pub fn key(&self) -> String {
        format!(
            "{} {} {} {}",
            self.uid_validity, self.uid_next, self.messages, self.highest_modseq
        )
    }
}

/// STATUS of every folder that answered, by Unicode name.
pub type Statuses = std::collections::BTreeMap<String, FolderStatus>;

/// Listing data for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMeta {
    /// UID.
    pub uid: u32,
    /// RFC822.SIZE (0 if not asked).
    pub size: u64,
    /// FLAGS.
    pub flags: Vec<String>,
    /// INTERNALDATE exactly as the server sent it.
    pub internal_date: Option<String>,
}

/// A range of UIDs in a folder: `from` up to `to` included, or to the end of the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidWindow {
    /// The first UID of the range.
    pub from: u32,
    /// The last UID of the range; `None` runs to the end of the folder.
    pub to: Option<u32>,
}

impl UidWindow {
    /// The whole folder.
    pub const ALL: UidWindow = UidWindow { from: 1, to: None };

    /// Whether `uid` lies in the range.
    pub fn contains(&self, uid: u32) -> bool {
        uid >= self.from && self.to.is_none_or(|t| uid <= t)
    }

    fn wire(&self) -> String {
        match self.to {
            Some(t) => format!("{}:{t}", self.from),
            None => format!("{}:*", self.from),
        }
    }
}

/// A folder listed a window at a time: the messages of the first window, in UID order, and
/// the UID ranges that hold the others, each about as many messages as the first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The first window's messages (the whole folder when `rest` is empty); `None` when the
    /// folder was only cut into windows: the first window is then listed like the others.
    pub first: Option<Vec<FetchedMeta>>,
    /// The UID ranges after the first window, ascending; together with the first window they
    /// cover every UID, so a message expunged or added meanwhile cannot fall between two.
    pub rest: Vec<UidWindow>,
}

impl Listing {
    /// The UID range of the first window.
    pub fn first_window(&self) -> UidWindow {
        match self.rest.first() {
            Some(next) => UidWindow {
                from: 1,
                to: Some(next.from - 1),
            },
            None => UidWindow::ALL,
        }
    }
}

/// Collects a listing that arrives in UID order, keeping at most `window` messages and the
/// UIDs where the next windows start.
struct Windowing {
    window: usize,
    seen: usize,
    last_uid: u32,
    starts: Vec<u32>,
    first: Vec<FetchedMeta>,
    /// A server that answered out of UID order: the windows cannot be cut from the stream.
    unordered: bool,
}

impl Windowing {
    fn new(window: usize) -> Windowing {
        Windowing {
            window: window.max(1),
            seen: 0,
            last_uid: 0,
            starts: Vec::new(),
            first: Vec::new(),
            unordered: false,
        }
    }

    fn push(&mut self, m: FetchedMeta) {
        let uid = m.uid;
        if uid <= self.last_uid {
            self.unordered = true;
        }
        if self.seen < self.window {
            self.first.push(m);
        } else if self.seen.is_multiple_of(self.window) {
            // The first message of a new window: that window starts right after the previous
            // message, so no UID in between is left out.
            self.starts.push(self.last_uid.saturating_add(1));
        }
        self.last_uid = self.last_uid.max(uid);
        self.seen += 1;
    }

    /// The listing, or `None` when the server's order made it impossible to cut.
    fn finish(mut self) -> Option<Listing> {
        if self.unordered {
            if self.seen > self.window {
                return None;
            }
            self.first.sort_by_key(|m| m.uid);
        }
        Some(Listing {
            first: Some(self.first),
            rest: windows_from(&self.starts),
        })
    }
}

/// The UID ranges that start at each of `starts` (ascending), each up to the next one, the
/// last to the end of the folder.
fn windows_from(starts: &[u32]) -> Vec<UidWindow> {
    let ends = starts
        .iter()
        .skip(1)
        .map(|s| Some(s - 1))
        .chain(std::iter::once(None));
    starts
        .iter()
        .zip(ends)
        .map(|(&from, to)| UidWindow { from, to })
        .collect()
}

/// One message to append.
#[derive(Debug, Clone)]
pub struct AppendMsg {
    /// Flags to set (already filtered for the target).
    pub flags: Vec<String>,
    /// INTERNALDATE to set, in IMAP date-time form.
    pub internal_date: Option<String>,
    /// The exact bytes.
    pub body: Bytes,
}

/// What became of one appended message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored; the target UID when the server sent APPENDUID.
    Stored {
        /// Target UIDVALIDITY from APPENDUID.
        uid_validity: Option<u32>,
        /// Target UID from APPENDUID.
        uid: Option<u32>,
    },
    /// Refused by the server, with its words.
    Rejected(String),
}

/// An APPEND written to the server whose answer is not read yet.
#[derive(Debug)]
#[must_use = "the answer must be read with append_finish"]
pub struct PendingAppend {
    tag: String,
    folder: String,
    count: usize,
}

/// A message body being read from a FETCH piece by piece.
#[derive(Debug)]
pub struct BodyStream {
    tag: String,
    size: u64,
    remaining: u64,
}

impl BodyStream {
    /// The body's size in bytes, as the server announced it.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// A streamed APPEND under way.
#[derive(Debug)]
pub struct AppendStream {
    tag: String,
}

/// How a streamed APPEND starts.
#[derive(Debug)]
pub enum AppendStart {
    /// Send the body.
    Go(AppendStream),
    /// Refused before the body was sent (synchronising literal): the outcome.
    Refused(AppendOutcome),
}

/// ` (flags) "date" {size[+]}\r\n` of one message in an APPEND.
fn push_message_head(
    head: &mut String,
    flags: &[String],
    internal_date: Option<&str>,
    size: u64,
    plus: bool,
) {
    let flags: Vec<&str> = flags
        .iter()
        .map(String::as_str)
        .filter(|f| is_atom(f))
        .collect();
    head.push_str(&format!(" ({})", flags.join(" ")));
    if let Some(d) = internal_date {
        head.push_str(&format!(" \"{d}\""));
    }
    head.push_str(&format!(" {{{size}{}}}\r\n", if plus { "+" } else { "" }));
}

/// A tagged completion.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Done {
    ok: bool,
    /// OK / NO / BAD.
    status: String,
    /// Text inside the `[…]` response code, if any.
    code: Option<String>,
    text: String,
}

impl Done {
    fn describe(&self) -> String {
        match &self.code {
            Some(c) => format!("{} [{}] {}", self.status, c, self.text),
            None => format!("{} {}", self.status, self.text),
        }
    }
}

/// Parse `TAG SP status SP [ "[" code "]" SP ] text` by hand: robust against response codes no
/// parser knows (`[OVERQUOTA]`, `[LIMIT]`, `[THROTTLED]`…).
fn parse_done(line: &[u8], tag: &str) -> Option<Done> {
    let line = std::str::from_utf8(line)
        .ok()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(line).into_owned());
    let rest = line.strip_prefix(tag)?.strip_prefix(' ')?;
    let rest = rest.trim_end_matches(['\r', '\n']);
    let (status, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = status.to_ascii_uppercase();
    if !matches!(status.as_str(), "OK" | "NO" | "BAD") {
        return None;
    }
    let (code, text) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((code, text)) => (Some(code.to_string()), text.trim_start().to_string()),
        None => (None, rest.to_string()),
    };
    Some(Done {
        ok: status == "OK",
        status,
        code,
        text,
    })
}

/// The list of a `CAPABILITY …` response code (the text inside `[…]`), if that is what it is.
fn caps_in_code(code: &str) -> Option<Vec<String>> {
    let (name, rest) = code.split_once(' ')?;
    if !name.eq_ignore_ascii_case("CAPABILITY") {
        return None;
    }
    let caps: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
    caps.iter()
        .any(|c| c.eq_ignore_ascii_case("IMAP4rev1") || c.eq_ignore_ascii_case("IMAP4rev2"))
        .then_some(caps)
}

/// The capabilities a greeting (`* OK [CAPABILITY …] …`) lists, if it lists them.
fn caps_in_greeting(greeting: &[u8]) -> Option<Vec<String>> {
    let line = std::str::from_utf8(greeting).ok()?;
    let rest = line
        .strip_prefix("* OK ")
        .or_else(|| line.strip_prefix("* PREAUTH "))?;
    let (code, _) = rest.strip_prefix('[')?.split_once(']')?;
    caps_in_code(code)
}

/// Expand a uid-set (`4:6,8`) in order.
fn expand_uid_set(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once(':') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                if hi - lo > 10_000_000 {
                    return None;
                }
                out.extend(lo..=hi);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// `APPENDUID uidvalidity uid-set` → (uidvalidity, uids).
fn parse_appenduid(code: &str) -> Option<(u32, Vec<u32>)> {
    let mut it = code.split_whitespace();
    if !it.next()?.eq_ignore_ascii_case("APPENDUID") {
        return None;
    }
    let validity = it.next()?.parse().ok()?;
    let uids = expand_uid_set(it.next()?)?;
    Some((validity, uids))
}

/// One IMAP connection.
pub struct Client {
    stream: Stream,
    buf: BytesMut,
    framer: Framer,
    /// Bytes written but not yet sent (see `write_all`).
    wbuf: Vec<u8>,
    /// Something was written since the last flush.
    unflushed: bool,
    next_tag: u32,
    caps: Vec<String>,
    host: String,
    /// `host:port/local-port`, to tell connections apart in trace logs.
    trace_id: String,
    /// Body bytes read from the server so far (for reports and benchmarks).
    pub bytes_read: u64,
    /// When the OAuth2 token this session logged in with expires (a server may end the
    /// session then, as Exchange Online does).
    token: Option<Box<crate::oauth::Token>>,
    /// Commands this session's server answered NO or BAD (Exchange Online ends a session
    /// after ten).
    refusals: u32,
    /// The greeting line, as the server sent it.
    greeting: String,
}

impl Client {
    /// Connect, read the greeting, upgrade with STARTTLS as the endpoint says, and learn the
    /// capabilities.
    pub async fn connect(ep: &Endpoint, tls: &TlsOptions) -> Result<Client, Error> {
        let (stream, local) = connect::open(ep, tls).await?;
        let trace_id = format!("{}:{}/{local}", ep.host, ep.port);
        let mut client = Client {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            framer: Framer::default(),
            wbuf: Vec::with_capacity(WRITE_CHUNK),
            unflushed: false,
            next_tag: 1,
            caps: Vec::new(),
            host: ep.host.clone(),
            trace_id,
            bytes_read: 0,
            token: None,
            refusals: 0,
            greeting: String::new(),
        };
        let greeting = client.read_frame().await.map_err(|e| {
            if ep.security == Security::Implicit {
                e
            } else {
                Error::new(
                    ErrorKind::Connect,
                    format!("{}:{} sent no IMAP greeting ({e})", ep.host, ep.port),
                )
            }
        })?;
        if !greeting.starts_with(b"* OK") && !greeting.starts_with(b"* PREAUTH") {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "{}:{} is not an IMAP server ready for us: {}",
                    ep.host,
                    ep.port,
                    String::from_utf8_lossy(&greeting).trim_end()
                ),
            ));
        }
        client.greeting = String::from_utf8_lossy(&greeting[..greeting.len().min(300)])
            .trim_end()
            .to_string();
        // Most servers list their capabilities in the greeting: no CAPABILITY round trip then.
        match caps_in_greeting(&greeting) {
            Some(caps) => client.caps = caps,
            None => client.refresh_capabilities().await?,
        }
        let wants_tls = matches!(
            ep.security,
            Security::StartTls | Security::StartTlsIfOffered
        );
        if wants_tls {
            if client.has_cap("STARTTLS") {
                let done = client.simple("STARTTLS").await?;
                if !done.ok {
                    return Err(Error::new(
                        ErrorKind::Tls,
                        format!("{} refused STARTTLS: {}", ep.host, done.describe()),
                    ));
                }
                let plain = std::mem::replace(&mut client.stream, Stream::Closed);
                client.stream = connect::start_tls(plain, &ep.host, tls).await?;
                client.buf.clear();
                client.refresh_capabilities().await?;
            } else if ep.security == Security::StartTls {
                return Err(Error::new(
                    ErrorKind::Tls,
                    format!(
                        "{}:{} does not offer STARTTLS and TLS is required; use imaps:// (port 993) or set tls = \"if-offered\" for a trusted network",
                        ep.host, ep.port
                    ),
                ));
            }
        }
        Ok(client)
    }

    /// Whether the server advertised a capability (case-insensitive).
    pub fn has_cap(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c.eq_ignore_ascii_case(cap))
    }

    /// The server's greeting line (at most 300 bytes): what a server says it is.
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// The host this client talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    async fn refresh_capabilities(&mut self) -> Result<(), Error> {
        let mut caps = Vec::new();
        let done = self
            .run("CAPABILITY", &mut |_, resp| {
                if let Response::Capabilities(list) = resp {
                    for c in list {
                        caps.push(match c {
                            imap_proto::Capability::Imap4rev1 => "IMAP4rev1".to_string(),
                            imap_proto::Capability::Auth(a) => format!("AUTH={a}"),
                            imap_proto::Capability::Atom(a) => a.to_string(),
                        });
                    }
                }
            })
            .await?;
        if !done.ok {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("CAPABILITY failed: {}", done.describe()),
            ));
        }
        self.caps = caps;
        Ok(())
    }

    /// Log in: SASL PLAIN when offered (with an authorization identity in master mode), else
    /// LOGIN; Dovecot's `user*master` form when the master style says so.
    pub async fn login(&mut self, creds: &Credentials) -> Result<(), Error> {
        if self.has_cap("LOGINDISABLED") {
            return Err(Error::new(
                ErrorKind::Tls,
                format!(
                    "{} refuses to log in without TLS; use imaps:// or STARTTLS",
                    self.host
                ),
            ));
        }
        if let Some(tokens) = &creds.oauth {
            return self.login_bearer(&creds.user, tokens).await;
        }
        let password = creds.password.expose_secret();
        let (login_user, plain) = match &creds.master {
            Some(m) => match m.style {
                MasterStyle::Sasl => (None, Some((creds.user.as_str(), m.user.as_str()))),
                MasterStyle::Separator(sep) => {
                    (Some(format!("{}{}{}", creds.user, sep, m.user)), None)
                }
            },
            None if self.has_cap("AUTH=PLAIN") => (None, Some(("", creds.user.as_str()))),
            None => (Some(creds.user.clone()), None),
        };
        let who = match &creds.master {
            Some(m) => format!("{} (as master user {})", creds.user, m.user),
            None => creds.user.clone(),
        };
        let done = if let Some((authzid, authcid)) = plain {
            if !self.has_cap("AUTH=PLAIN") {
                return Err(Error::new(
                    ErrorKind::Auth,
                    format!(
                        "{} does not offer SASL PLAIN, needed for master-user login of {who}",
                        self.host
                    ),
                ));
            }
            let payload = base64::engine::general_purpose::STANDARD
                .encode(format!("{authzid}\0{authcid}\0{password}"));
            if self.has_cap("SASL-IR") {
                self.simple_secret(&format!("AUTHENTICATE PLAIN {payload}"))
                    .await?
            } else {
                let tag = self.tag();
                self.write_all(&[format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes()])
                    .await?;
                let frame = self.read_frame().await?;
                if !frame.starts_with(b"+") {
                    return Err(Error::new(
                        ErrorKind::Auth,
                        format!("{} refused AUTHENTICATE PLAIN", self.host),
                    ));
                }
                self.write_all(&[payload.as_bytes(), b"\r\n"]).await?;
                self.wait_done(&tag, &mut |_, _| {}).await?
            }
        } else {
            let user = login_user.unwrap_or_default();
            let (Some(u), Some(p)) = (quote_astring(&user), quote_astring(password)) else {
                return Err(Error::new(
                    ErrorKind::Auth,
                    format!(
                        "the user name or password for {who} has characters LOGIN cannot carry; use a server with AUTH=PLAIN"
                    ),
                ));
            };
            self.simple_secret(&format!("LOGIN {u} {p}")).await?
        };
        if !done.ok {
            return Err(Error::new(
                ErrorKind::Auth,
                format!(
                    "login as {who} refused by {}: {}",
                    self.host,
                    done.text.trim()
                ),
            ));
        }
        // The login's OK usually carries the post-login capabilities (RFC 3501 §7.1): when it
        // does, they are the ones to use, and asking again would cost a round trip.
        match done.code.as_deref().and_then(caps_in_code) {
            Some(caps) => {
                self.caps = caps;
                Ok(())
            }
            None => self.refresh_capabilities().await,
        }
    }

    /// The largest message the server takes, when it says (`APPENDLIMIT=N`, RFC 7889).
    pub fn append_limit(&self) -> Option<u64> {
        self.caps.iter().find_map(|c| {
            let (k, v) = c.split_once('=')?;
            k.eq_ignore_ascii_case("APPENDLIMIT")
                .then(|| v.parse().ok())
                .flatten()
        })
    }

    /// Whether this session logged in with an OAuth2 token that is due for renewal: the
    /// caller reconnects (between batches) before the server ends the session at expiry.
    pub fn token_due(&self) -> bool {
        self.token.as_ref().is_some_and(|t| !t.fresh())
    }

    /// How many commands of this session the server answered NO or BAD.
    pub fn refusals(&self) -> u32 {
        self.refusals
    }

    /// SASL OAUTHBEARER (RFC 7628), else XOAUTH2, with a token from `tokens`.
    async fn login_bearer(
        &mut self,
        user: &str,
        tokens: &crate::oauth::Tokens,
    ) -> Result<(), Error> {
        let (mech, ir, token) = crate::oauth::begin(tokens, user, &self.host, "IMAP", |m| {
            self.has_cap(&format!("AUTH={m}"))
        })
        .await?;
        let tag = self.tag();
        tracing::trace!(conn = %self.trace_id, "> {tag} AUTHENTICATE {mech} ***");
        let mut sent = self.has_cap("SASL-IR");
        if sent {
            self.write_all(&[
                tag.as_bytes(),
                b" AUTHENTICATE ",
                mech.as_bytes(),
                b" ",
                ir.as_bytes(),
                b"\r\n",
            ])
            .await?;
        } else {
            self.write_all(&[tag.as_bytes(), b" AUTHENTICATE ", mech.as_bytes(), b"\r\n"])
                .await?;
        }
        self.flush().await?;
        let mut reason = None;
        let done = loop {
            let frame = self.read_frame().await?;
            if frame.starts_with(b"+") {
                if sent {
                    // A failure comes as a challenge with the reason; the client answers it
                    // with a dummy response and then gets the NO (RFC 7628 §3.2.3).
                    reason = crate::oauth::failure_reason(&String::from_utf8_lossy(&frame[1..]));
                    let dummy: &[u8] = if mech == "OAUTHBEARER" {
                        b"AQ==\r\n"
                    } else {
                        b"\r\n"
                    };
                    self.write_all(&[dummy]).await?;
                } else {
                    self.write_all(&[ir.as_bytes(), b"\r\n"]).await?;
                    sent = true;
                }
                self.flush().await?;
                continue;
            }
            tracing::trace!(conn = %self.trace_id, "< {}", crate::framing::summarise(&frame, TRACE_WIDTH));
            if frame.starts_with(tag.as_bytes()) && frame.get(tag.len()) == Some(&b' ') {
                break parse_done(&frame, &tag).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Protocol,
                        format!("{} sent an unreadable completion", self.host),
                    )
                })?;
            }
        };
        if !done.ok {
            return Err(Error::new(
                ErrorKind::Auth,
                format!(
                    "OAuth2 login ({mech}, {}) as {user} refused by {}: {}",
                    tokens.describe(),
                    self.host,
                    reason.unwrap_or_else(|| done.text.trim().to_string())
                ),
            ));
        }
        // A token already due at login (a file nobody renews) is not renewed by reconnecting.
        self.token = token.fresh().then(|| Box::new(token));
        match done.code.as_deref().and_then(caps_in_code) {
            Some(caps) => {
                self.caps = caps;
                Ok(())
            }
            None => self.refresh_capabilities().await,
        }
    }

    /// LIST every folder, with special-use attributes when the server can return them.
    pub async fn list(&mut self) -> Result<Vec<ListEntry>, Error> {
        let cmd = self.list_all();
        let tag = self.send(cmd).await?;
        self.list_finish(cmd, &tag, None).await
    }

    /// LIST every folder and LSUB the subscribed ones, both commands sent at once: one round
    /// trip instead of two.
    pub async fn list_and_lsub(&mut self) -> Result<(Vec<ListEntry>, Vec<String>), Error> {
        let cmd = self.list_all();
        let list = self.send(cmd).await?;
        let lsub = self.send(LSUB_ALL).await?;
        let listed = self.list_finish(cmd, &list, None).await;
        // The LSUB answer is read even when LIST failed, so the connection stays usable.
        let subscribed = self.list_finish(LSUB_ALL, &lsub, None).await;
        Ok((listed?, subscribed?.into_iter().map(|e| e.name).collect()))
    }

    /// LIST and LSUB as [`Client::list_and_lsub`], and the STATUS of every folder when the
    /// server keeps modification sequences (CONDSTORE): with LIST-STATUS (RFC 5819) in the
    /// LIST itself, one round trip; otherwise pipelined STATUS commands, one more round trip.
    /// Without CONDSTORE no status is asked (without HIGHESTMODSEQ a flag change would not
    /// show) and the map is empty. A folder whose STATUS is refused is left out of the map.
    pub async fn list_and_lsub_status(
        &mut self,
    ) -> Result<(Vec<ListEntry>, Vec<String>, Statuses), Error> {
        if !self.has_cap("CONDSTORE") {
            let (listed, subscribed) = self.list_and_lsub().await?;
            return Ok((listed, subscribed, Statuses::new()));
        }
        if self.has_cap("LIST-STATUS") {
            let cmd = if self.has_cap("SPECIAL-USE") {
                format!(r#"LIST "" "*" RETURN (SPECIAL-USE STATUS ({STATUS_ITEMS}))"#)
            } else {
                format!(r#"LIST "" "*" RETURN (STATUS ({STATUS_ITEMS}))"#)
            };
            let mut statuses = Statuses::new();
            let list = self.send(&cmd).await?;
            let lsub = self.send(LSUB_ALL).await?;
            let listed = self.list_finish(&cmd, &list, Some(&mut statuses)).await;
            let subscribed = self.list_finish(LSUB_ALL, &lsub, None).await;
            let subscribed = subscribed?.into_iter().map(|e| e.name).collect();
            return Ok((listed?, subscribed, statuses));
        }
        let (listed, subscribed) = self.list_and_lsub().await?;
        let names = listed
            .iter()
            .filter(|e| !is_noselect(e))
            .map(|e| e.name.as_str());
        let statuses = self.statuses(names).await?;
        Ok((listed, subscribed, statuses))
    }

    /// STATUS of these folders, the commands pipelined: one round trip. Empty without
    /// CONDSTORE; a folder whose STATUS is refused (gone since it was listed) is left out.
    pub async fn statuses<'n>(
        &mut self,
        names: impl Iterator<Item = &'n str>,
    ) -> Result<Statuses, Error> {
        let mut statuses = Statuses::new();
        if !self.has_cap("CONDSTORE") {
            return Ok(statuses);
        }
        let mut tags = Vec::new();
        for name in names {
            let cmd = format!("STATUS {} ({STATUS_ITEMS})", mailbox_arg(name));
            tags.push(self.send(&cmd).await?);
        }
        for tag in tags {
            self.finish(&tag, &mut |_, resp| collect_status(&mut statuses, resp))
                .await?;
        }
        Ok(statuses)
    }

    fn list_all(&self) -> &'static str {
        if self.has_cap("SPECIAL-USE") && self.has_cap("LIST-EXTENDED") {
            r#"LIST "" "*" RETURN (SPECIAL-USE)"#
        } else {
            r#"LIST "" "*""#
        }
    }

    /// The storage quota of the INBOX's quota root (RFC 2087 GETQUOTAROOT): (used, limit) in
    /// bytes. None when the server has no QUOTA extension or sets no storage limit.
    pub async fn storage_quota(&mut self) -> Result<Option<(u64, u64)>, Error> {
        if !self.has_cap("QUOTA") {
            return Ok(None);
        }
        let mut found = None;
        let done = self
            .run("GETQUOTAROOT INBOX", &mut |_, resp| {
                if let Response::Quota(q) = resp {
                    for r in q.resources {
                        if r.name == imap_proto::rfc2087::QuotaResourceName::Storage
                            && found.is_none()
                        {
                            // RFC 2087 counts storage in units of 1024 octets.
                            found = Some((r.usage * 1024, r.limit * 1024));
                        }
                    }
                }
            })
            .await?;
        // A server may refuse for a user without a quota root: no limit known.
        Ok(if done.ok { found } else { None })
    }

    /// LSUB: the subscribed folders' Unicode names.
    pub async fn lsub(&mut self) -> Result<Vec<String>, Error> {
        let tag = self.send(LSUB_ALL).await?;
        Ok(self
            .list_finish(LSUB_ALL, &tag, None)
            .await?
            .into_iter()
            .map(|e| e.name)
            .collect())
    }

    /// Read the answer to a LIST or LSUB `cmd` sent as `tag`.
    /// STATUS answers that come with it (LIST-STATUS) go into `statuses`.
    async fn list_finish(
        &mut self,
        cmd: &str,
        tag: &str,
        mut statuses: Option<&mut Statuses>,
    ) -> Result<Vec<ListEntry>, Error> {
        let mut out = Vec::new();
        let done = self
            .finish(tag, &mut |_, resp| {
                if let Some(st) = statuses.as_deref_mut()
                    && matches!(resp, Response::MailboxData(MailboxDatum::Status { .. }))
                {
                    collect_status(st, resp);
                } else if let Response::MailboxData(MailboxDatum::List(l)) = resp {
                    let wire = l.name.to_string();
                    out.push(ListEntry {
                        name: mutf7::decode(&wire).unwrap_or_else(|_| wire.clone()),
                        wire_name: wire,
                        delimiter: l.delimiter.as_ref().and_then(|d| d.chars().next()),
                        attributes: l.name_attributes.iter().map(attribute_name).collect(),
                    });
                }
            })
            .await?;
        if !done.ok {
            return Err(Error::new(
                ErrorKind::Refused,
                format!("{cmd} failed on {}: {}", self.host, done.describe()),
            ));
        }
        Ok(out)
    }

    /// SELECT (or EXAMINE when `read_only`) a folder by its Unicode name.
    pub async fn select(&mut self, name: &str, read_only: bool) -> Result<Selected, Error> {
        let tag = self.select_send(name, read_only).await?;
        self.select_finish(&tag, name, read_only).await
    }

    /// SELECT/EXAMINE a folder and list UID, FLAGS (and RFC822.SIZE, INTERNALDATE) of all its
    /// messages, both commands sent at once: one round trip instead of two.
    pub async fn select_and_list(
        &mut self,
        name: &str,
        read_only: bool,
        with_size_and_date: bool,
    ) -> Result<(Selected, Vec<FetchedMeta>), Error> {
        let (sel, listing) = self
            .select_and_list_window(name, read_only, with_size_and_date, usize::MAX, false)
            .await?;
        Ok((sel, listing.first.unwrap_or_default()))
    }

    /// Finish a SELECT/EXAMINE that was sent with the command `next` pipelined behind it. If
    /// the folder cannot be opened, `next`'s (failed) answer is read too, so the connection is
    /// ready for the next command.
    async fn select_finish_before(
        &mut self,
        select: &str,
        next: &str,
        name: &str,
        read_only: bool,
    ) -> Result<Selected, Error> {
        let result = self.select_finish(select, name, read_only).await;
        if let Err(e) = &result
            && e.kind != ErrorKind::Dropped
        {
            self.wait_done(next, &mut |_, _| {}).await?;
        }
        result
    }

    async fn select_send(&mut self, name: &str, read_only: bool) -> Result<String, Error> {
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        self.send(&format!("{verb} {}", mailbox_arg(name))).await
    }

    async fn select_finish(
        &mut self,
        tag: &str,
        name: &str,
        read_only: bool,
    ) -> Result<Selected, Error> {
        let mut sel = Selected::default();
        let done = self
            .finish(tag, &mut |_, resp| match resp {
                Response::Data { outcome, .. } => match outcome.code {
                    Some(ResponseCode::UidValidity(v)) => sel.uid_validity = v,
                    Some(ResponseCode::UidNext(v)) => sel.uid_next = Some(v),
                    Some(ResponseCode::PermanentFlags(f)) => {
                        sel.permanent_flags = Some(f.iter().map(|s| s.to_string()).collect())
                    }
                    _ => {}
                },
                Response::MailboxData(MailboxDatum::Exists(n)) => sel.exists = n,
                _ => {}
            })
            .await?;
        if !done.ok {
            return Err(Error::new(
                ErrorKind::Refused,
                format!(
                    "cannot open folder {name:?} on {}: {}",
                    self.host,
                    done.describe()
                ),
            ));
        }
        sel.read_only = read_only
            || done
                .code
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case("READ-ONLY"));
        Ok(sel)
    }

    /// CREATE several folders with one round trip; an existing folder is fine. One result per
    /// name, in order.
    pub async fn create_many(&mut self, names: &[String]) -> Result<Vec<Result<(), Error>>, Error> {
        self.each_folder("CREATE", names, Client::created).await
    }

    /// SUBSCRIBE several folders with one round trip. One result per name, in order.
    pub async fn subscribe_many(
        &mut self,
        names: &[String],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        self.each_folder("SUBSCRIBE", names, Client::subscribed)
            .await
    }

    /// Whether the logged-in user holds the administer right (`a`, RFC 4314 MYRIGHTS) on each
    /// folder, all asked at once: on a server that shows other accounts' shared folders in the
    /// user's own tree (Zimbra's mounted folders), what the user does not administer is not
    /// the user's own. `None` without the ACL extension; a folder the server refuses to answer
    /// for counts as administered (it stays in).
    pub async fn administers(&mut self, names: &[String]) -> Result<Option<Vec<bool>>, Error> {
        if !self.has_cap("ACL") {
            return Ok(None);
        }
        let mut tags = Vec::with_capacity(names.len());
        for n in names {
            tags.push(self.send(&format!("MYRIGHTS {}", mailbox_arg(n))).await?);
        }
        let mut out = Vec::with_capacity(names.len());
        for tag in &tags {
            let mut admin = None;
            let done = self
                .finish(tag, &mut |_, resp| {
                    if let Response::MyRights(r) = resp {
                        admin = Some(
                            r.rights
                                .contains(&imap_proto::rfc4314::AclRight::Administer),
                        );
                    }
                })
                .await?;
            out.push(!done.ok || admin.unwrap_or(true));
        }
        Ok(Some(out))
    }

    /// `VERB folder` for each name, all sent before any answer is read.
    async fn each_folder(
        &mut self,
        verb: &str,
        names: &[String],
        judge: fn(&Client, &Done, &str) -> Result<(), Error>,
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let mut tags = Vec::with_capacity(names.len());
        for n in names {
            tags.push(self.send(&format!("{verb} {}", mailbox_arg(n))).await?);
        }
        let mut out = Vec::with_capacity(names.len());
        for (tag, name) in tags.iter().zip(names) {
            let done = self.finish(tag, &mut |_, _| {}).await?;
            out.push(judge(self, &done, name));
        }
        Ok(out)
    }

    /// CREATE a folder; an existing folder is fine.
    pub async fn create(&mut self, name: &str) -> Result<(), Error> {
        let done = self
            .simple(&format!("CREATE {}", mailbox_arg(name)))
            .await?;
        self.created(&done, name)
    }

    fn created(&self, done: &Done, name: &str) -> Result<(), Error> {
        if done.ok
            || done
                .code
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case("ALREADYEXISTS"))
        {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Refused,
            format!(
                "cannot create folder {name:?} on {}: {}",
                self.host,
                done.describe()
            ),
        ))
    }

    /// SUBSCRIBE a folder.
    pub async fn subscribe(&mut self, name: &str) -> Result<(), Error> {
        let done = self
            .simple(&format!("SUBSCRIBE {}", mailbox_arg(name)))
            .await?;
        self.subscribed(&done, name)
    }

    fn subscribed(&self, done: &Done, name: &str) -> Result<(), Error> {
        if done.ok {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Refused,
                format!(
                    "cannot subscribe {name:?} on {}: {}",
                    self.host,
                    done.describe()
                ),
            ))
        }
    }

    /// UID, FLAGS and optionally RFC822.SIZE and INTERNALDATE of every message in the selected
    /// folder. No bodies.
    pub async fn fetch_all_meta(
        &mut self,
        with_size_and_date: bool,
    ) -> Result<Vec<FetchedMeta>, Error> {
        let tag = self
            .send(&format!("UID FETCH 1:* {}", meta_items(with_size_and_date)))
            .await?;
        self.meta_finish(&tag).await
    }

    async fn meta_finish(&mut self, tag: &str) -> Result<Vec<FetchedMeta>, Error> {
        let mut out = Vec::new();
        self.meta_each(tag, &mut |m| out.push(m)).await?;
        out.sort_by_key(|m| m.uid);
        Ok(out)
    }

    /// Hand every message of a listing FETCH to `sink` as it arrives.
    async fn meta_each(
        &mut self,
        tag: &str,
        sink: &mut (dyn FnMut(FetchedMeta) + Send),
    ) -> Result<(), Error> {
        let done = self
            .finish(tag, &mut |_, resp| {
                if let Response::Fetch(_, attrs) = resp {
                    let mut m = FetchedMeta {
                        uid: 0,
                        size: 0,
                        flags: Vec::new(),
                        internal_date: None,
                    };
                    for a in attrs {
                        match a {
                            AttributeValue::Uid(u) => m.uid = u,
                            AttributeValue::Rfc822Size(s) => m.size = u64::from(s),
                            AttributeValue::Flags(f) => {
                                m.flags = f.iter().map(|s| s.to_string()).collect()
                            }
                            AttributeValue::InternalDate(d) => {
                                m.internal_date = Some(d.to_string())
                            }
                            _ => {}
                        }
                    }
                    if m.uid != 0 {
                        sink(m);
                    }
                }
            })
            .await?;
        if !done.ok {
            return Err(self.fetch_failed(&done));
        }
        Ok(())
    }

    /// SELECT/EXAMINE a folder and list it like [`Client::select_and_list`], both commands in
    /// one round trip, but keep only the first `window` messages: a folder of any size costs
    /// the memory of one window. The other windows are listed with [`Client::list_window`].
    ///
    /// With `large` (a folder expected to span several windows) nothing is listed yet: after
    /// the SELECT, one FETCH asks for the UIDs of the messages that start each window, by
    /// sequence number, and the first window is listed like the others. A large folder's
    /// listing then travels and is parsed once, not once whole and again window by window.
    pub async fn select_and_list_window(
        &mut self,
        name: &str,
        read_only: bool,
        with_size_and_date: bool,
        window: usize,
        large: bool,
    ) -> Result<(Selected, Listing), Error> {
        if large {
            let sel = self.select(name, read_only).await?;
            let starts = self.window_starts(sel.exists, window).await?;
            let rest = windows_from(&starts);
            return Ok((sel, Listing { first: None, rest }));
        }
        let select = self.select_send(name, read_only).await?;
        let items = meta_items(with_size_and_date);
        let fetch = self.send(&format!("UID FETCH 1:* {items}")).await?;
        let sel = self
            .select_finish_before(&select, &fetch, name, read_only)
            .await?;
        let mut cut = Windowing::new(window);
        match self.meta_each(&fetch, &mut |m| cut.push(m)).await {
            Ok(()) => {}
            // Some servers refuse `1:*` in an empty folder.
            Err(e) if e.kind == ErrorKind::Refused && sel.exists == 0 => {}
            Err(e) => return Err(e),
        }
        let listing = match cut.finish() {
            Some(l) => l,
            // Out of UID order and too long to keep: listed again, whole.
            None => Listing {
                first: Some(self.fetch_all_meta(with_size_and_date).await?),
                rest: Vec::new(),
            },
        };
        Ok((sel, listing))
    }

    /// The UIDs of messages `window + 1`, `2 × window + 1`, … of the selected folder, which
    /// holds `exists` messages: where each window after the first starts.
    async fn window_starts(&mut self, exists: u32, window: usize) -> Result<Vec<u32>, Error> {
        let window = window.max(1);
        let seqs: Vec<String> = (window + 1..=exists as usize)
            .step_by(window)
            .map(|n| n.to_string())
            .collect();
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let tag = self
            .send(&format!("FETCH {} (UID)", seqs.join(",")))
            .await?;
        let mut starts = Vec::with_capacity(seqs.len());
        self.meta_each(&tag, &mut |m| starts.push(m.uid)).await?;
        starts.sort_unstable();
        starts.dedup();
        Ok(starts)
    }

    /// The messages of one UID range of the selected folder, in UID order.
    pub async fn list_window(
        &mut self,
        window: UidWindow,
        with_size_and_date: bool,
    ) -> Result<Vec<FetchedMeta>, Error> {
        let items = meta_items(with_size_and_date);
        let tag = self
            .send(&format!("UID FETCH {} {items}", window.wire()))
            .await?;
        let mut out = self.meta_finish(&tag).await?;
        // `N:*` names the last message even when its UID is below N.
        out.retain(|m| window.contains(m.uid));
        Ok(out)
    }

    /// UID and FLAGS of the given messages of the selected folder (those that still exist).
    pub async fn fetch_flags(&mut self, uids: &[u32]) -> Result<Vec<FetchedMeta>, Error> {
        let mut out = Vec::with_capacity(uids.len());
        for chunk in uid_chunks(uids, MAX_RANGES) {
            let tag = self
                .send(&format!("UID FETCH {} (UID FLAGS)", uid_set(&chunk)))
                .await?;
            self.meta_each(&tag, &mut |m| out.push(m)).await?;
        }
        out.sort_by_key(|m| m.uid);
        Ok(out)
    }

    /// Every UID of the selected folder, ascending. Some servers refuse `1:*` in an empty
    /// folder: ask only when SELECT counted messages.
    pub async fn fetch_uids(&mut self) -> Result<Vec<u32>, Error> {
        let tag = self.send("UID FETCH 1:* (UID)").await?;
        let mut out = Vec::new();
        self.meta_each(&tag, &mut |m| out.push(m.uid)).await?;
        out.sort_unstable();
        Ok(out)
    }

    /// The UIDs from `from` on of the selected folder, ascending (`n:*` names the last
    /// message even when its UID is below `n`: it is left out).
    pub async fn fetch_uids_from(&mut self, from: u32) -> Result<Vec<u32>, Error> {
        let tag = self
            .send(&format!("UID FETCH {}:* (UID)", from.max(1)))
            .await?;
        let mut out = Vec::new();
        self.meta_each(&tag, &mut |m| {
            if m.uid >= from {
                out.push(m.uid)
            }
        })
        .await?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Gmail's message ids (X-GM-MSGID, with the X-GM-EXT-1 capability) of the selected
    /// folder's messages: the given UIDs, or every message with `None`. One id names one
    /// message in every folder (label) that shows it.
    pub async fn fetch_gmail_ids(
        &mut self,
        uids: Option<&[u32]>,
    ) -> Result<Vec<(u32, u64)>, Error> {
        let sets = match uids {
            Some(u) => uid_chunks(u, MAX_RANGES)
                .iter()
                .map(|c| uid_set(c))
                .collect(),
            None => vec!["1:*".to_string()],
        };
        let mut out = Vec::new();
        for set in sets {
            let cmd = format!("UID FETCH {set} (UID X-GM-MSGID)");
            let done = self
                .run(&cmd, &mut |_, resp| {
                    if let Response::Fetch(_, attrs) = resp {
                        let (mut uid, mut id) = (0, None);
                        for a in attrs {
                            match a {
                                AttributeValue::Uid(u) => uid = u,
                                AttributeValue::GmailMsgId(g) => id = Some(g),
                                _ => {}
                            }
                        }
                        if let (true, Some(id)) = (uid != 0, id) {
                            out.push((uid, id));
                        }
                    }
                })
                .await?;
            if !done.ok {
                return Err(self.fetch_failed(&done));
            }
        }
        Ok(out)
    }

    /// The identity header fields and size of the given UIDs: (uid, size, header block).
    pub async fn fetch_identity_headers(
        &mut self,
        uids: &[u32],
    ) -> Result<Vec<(u32, u64, Bytes)>, Error> {
        let mut out = Vec::with_capacity(uids.len());
        for chunk in uid_chunks(uids, MAX_RANGES) {
            let cmd = format!(
                "UID FETCH {} (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)])",
                uid_set(&chunk)
            );
            let done = self
                .run(&cmd, &mut |frame, resp| {
                    if let Response::Fetch(_, attrs) = resp {
                        let (mut uid, mut size, mut hdr) = (0, 0, Bytes::new());
                        for a in attrs {
                            match a {
                                AttributeValue::Uid(u) => uid = u,
                                AttributeValue::Rfc822Size(s) => size = u64::from(s),
                                AttributeValue::BodySection { data: Some(d), .. } => {
                                    hdr = slice_of(frame, &d)
                                }
                                _ => {}
                            }
                        }
                        if uid != 0 {
                            out.push((uid, size, hdr));
                        }
                    }
                })
                .await?;
            if !done.ok {
                return Err(self.fetch_failed(&done));
            }
        }
        Ok(out)
    }

    /// Fetch whole messages (`BODY.PEEK[]`, so `\Seen` is untouched), handing each to `on_msg`
    /// as it arrives: (uid, bytes). The bytes are a view into the read buffer, not a copy.
    pub async fn fetch_bodies(
        &mut self,
        uids: &[u32],
        on_msg: &mut (dyn FnMut(u32, Bytes) + Send),
    ) -> Result<(), Error> {
        self.fetch_bodies_after(None, uids, true, on_msg).await
    }

    /// EXAMINE a folder and fetch whole messages from it, the EXAMINE and the first FETCH sent
    /// at once: one round trip instead of two. For bodies that are looked at and dropped (read
    /// back, hashed): unlike [`Client::fetch_bodies`], they are views into the read buffer even
    /// when small, never copied.
    pub async fn examine_and_fetch_bodies(
        &mut self,
        folder: &str,
        uids: &[u32],
        on_msg: &mut (dyn FnMut(u32, Bytes) + Send),
    ) -> Result<(), Error> {
        self.fetch_bodies_after(Some(folder), uids, false, on_msg)
            .await
    }

    async fn fetch_bodies_after(
        &mut self,
        mut examine: Option<&str>,
        uids: &[u32],
        copy_small: bool,
        on_msg: &mut (dyn FnMut(u32, Bytes) + Send),
    ) -> Result<(), Error> {
        if uids.is_empty() {
            if let Some(folder) = examine {
                self.select(folder, true).await?;
            }
            return Ok(());
        }
        for chunk in uid_chunks(uids, MAX_RANGES) {
            let opened = match examine.take() {
                Some(folder) => Some((folder, self.select_send(folder, true).await?)),
                None => None,
            };
            let cmd = format!("UID FETCH {} (UID BODY.PEEK[])", uid_set(&chunk));
            let tag = self.send(&cmd).await?;
            if let Some((folder, select)) = opened {
                self.select_finish_before(&select, &tag, folder, true)
                    .await?;
            }
            let mut read = 0u64;
            let done = self
                .finish(&tag, &mut |frame, resp| {
                    if let Response::Fetch(_, attrs) = resp {
                        let (mut uid, mut body) = (0, None);
                        for a in attrs {
                            match a {
                                AttributeValue::Uid(u) => uid = u,
                                AttributeValue::BodySection {
                                    section: None,
                                    data: Some(d),
                                    ..
                                } => body = Some(slice_of(frame, &d)),
                                AttributeValue::Rfc822(Some(d)) => body = Some(slice_of(frame, &d)),
                                _ => {}
                            }
                        }
                        if let (true, Some(b)) = (uid != 0, body) {
                            read += b.len() as u64;
                            // A small body is copied out, so it does not keep the read buffer
                            // it arrived in alive while the batch waits for its APPEND (a batch
                            // held slices of many half-used buffers: 58 MB at 40 ms RTT). A
                            // large frame has a buffer of its own and is passed on as it is.
                            let b = if copy_small && frame.len() < KEEP_CAPACITY {
                                Bytes::copy_from_slice(&b)
                            } else {
                                b
                            };
                            on_msg(uid, b);
                        }
                    }
                })
                .await?;
            self.bytes_read += read;
            if !done.ok {
                return Err(self.fetch_failed(&done));
            }
        }
        Ok(())
    }

    /// Append messages to a folder: one MULTIAPPEND when the server has it, else pipelined
    /// APPENDs; literals are non-synchronising with LITERAL+. If a MULTIAPPEND is refused (it is
    /// all-or-nothing), the messages are appended one by one so only the bad ones fail.
    pub async fn append(
        &mut self,
        folder: &str,
        msgs: &[AppendMsg],
    ) -> Result<Vec<AppendOutcome>, Error> {
        if msgs.is_empty() {
            return Ok(Vec::new());
        }
        if msgs.len() > 1 && self.has_cap("MULTIAPPEND") {
            let tag = self.tag();
            let done = match self.send_append(&tag, folder, msgs).await? {
                Some(early) => early,
                None => self.wait_done(&tag, &mut |_, _| {}).await?,
            };
            if let Some(outcomes) = self.appended(folder, &done, msgs.len())? {
                return Ok(outcomes);
            }
        }
        self.append_each(folder, msgs).await
    }

    /// One APPEND per message; with LITERAL+ all are sent before any answer is read.
    pub async fn append_each(
        &mut self,
        folder: &str,
        msgs: &[AppendMsg],
    ) -> Result<Vec<AppendOutcome>, Error> {
        let pipelined = self.has_cap("LITERAL+");
        let mut out: Vec<Option<AppendOutcome>> = vec![None; msgs.len()];
        let mut pending = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let tag = self.tag();
            match self
                .send_append(&tag, folder, std::slice::from_ref(m))
                .await?
            {
                Some(early) => out[i] = Some(append_outcome(&early)),
                None if pipelined => pending.push((i, tag)),
                None => out[i] = Some(append_outcome(&self.wait_done(&tag, &mut |_, _| {}).await?)),
            }
        }
        for (i, tag) in pending {
            out[i] = Some(append_outcome(&self.wait_done(&tag, &mut |_, _| {}).await?));
        }
        Ok(out
            .into_iter()
            .map(|o| o.expect("every message has an outcome"))
            .collect())
    }

    /// Whether appends can be written one after another without waiting for answers: the
    /// server takes non-synchronising literals (LITERAL+) and several messages per APPEND
    /// (MULTIAPPEND).
    pub fn pipelines_appends(&self) -> bool {
        self.has_cap("LITERAL+") && self.has_cap("MULTIAPPEND")
    }

    /// Write one APPEND of `msgs` (a MULTIAPPEND for several) and return without reading the
    /// answer, so the next batch can follow at once. Only where [`Client::pipelines_appends`];
    /// answers are read with [`Client::append_finish`] in the order the appends were sent, and
    /// no other command may be started while one is unread.
    pub async fn append_send(
        &mut self,
        folder: &str,
        msgs: &[AppendMsg],
    ) -> Result<PendingAppend, Error> {
        let tag = self.tag();
        // With LITERAL+ nothing waits for a continuation, so there is no early answer.
        if let Some(early) = self.send_append(&tag, folder, msgs).await? {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "{} answered an APPEND before its literals: {}",
                    self.host,
                    early.describe()
                ),
            ));
        }
        Ok(PendingAppend {
            tag,
            folder: folder.to_string(),
            count: msgs.len(),
        })
    }

    /// Read the answer to an [`Client::append_send`]: one outcome per message, or `None` when
    /// the server refused a MULTIAPPEND as a whole (retry with [`Client::append_each`], so only
    /// the bad messages fail). A missing folder is an error, as for [`Client::append`].
    pub async fn append_finish(
        &mut self,
        sent: PendingAppend,
    ) -> Result<Option<Vec<AppendOutcome>>, Error> {
        let done = self.wait_done(&sent.tag, &mut |_, _| {}).await?;
        if sent.count == 1 && !done.ok && !is_folder_missing(&done) {
            return Ok(Some(vec![append_outcome(&done)]));
        }
        self.appended(&sent.folder, &done, sent.count)
    }

    /// The outcomes of a (MULTI)APPEND of `count` messages that ended with `done`; `None` when
    /// it was refused as a whole.
    fn appended(
        &self,
        folder: &str,
        done: &Done,
        count: usize,
    ) -> Result<Option<Vec<AppendOutcome>>, Error> {
        if done.ok {
            let (validity, uids) = done.code.as_deref().and_then(parse_appenduid).unzip();
            let uids = uids.filter(|u| u.len() == count);
            return Ok(Some(
                (0..count)
                    .map(|i| AppendOutcome::Stored {
                        uid_validity: validity,
                        uid: uids.as_ref().map(|u| u[i]),
                    })
                    .collect(),
            ));
        }
        if is_folder_missing(done) {
            return Err(Error::new(
                ErrorKind::Refused,
                format!("folder {folder:?} on {}: {}", self.host, done.describe()),
            ));
        }
        Ok(None)
    }

    /// Send an APPEND (one message, or several as MULTIAPPEND). Returns the completion if the
    /// server answered before taking a synchronising literal (e.g. `NO [TOOBIG]`): that is
    /// the command's outcome, not a broken connection.
    async fn send_append(
        &mut self,
        tag: &str,
        folder: &str,
        msgs: &[AppendMsg],
    ) -> Result<Option<Done>, Error> {
        let plus = self.has_cap("LITERAL+");
        tracing::trace!(conn = %self.trace_id, "> {tag} APPEND {folder} ({} messages)", msgs.len());
        let mut head = format!("{tag} APPEND {}", mailbox_arg(folder));
        for (i, m) in msgs.iter().enumerate() {
            push_message_head(
                &mut head,
                &m.flags,
                m.internal_date.as_deref(),
                m.body.len() as u64,
                plus,
            );
            if plus {
                let h = std::mem::take(&mut head);
                self.write_all(&[h.as_bytes(), &m.body]).await?;
            } else {
                let h = std::mem::take(&mut head);
                self.write_all(&[h.as_bytes()]).await?;
                if let Some(early) = self.continuation(tag).await? {
                    return Ok(Some(early));
                }
                self.write_all(&[&m.body]).await?;
            }
            if i + 1 == msgs.len() {
                self.write_all(&[b"\r\n"]).await?;
            }
        }
        self.flush().await?;
        Ok(None)
    }

    /// Start streaming one message out of the selected folder (`UID FETCH uid (UID BODY.PEEK[])`)
    /// without holding it in memory: returns once the body's literal begins, or `None` when the
    /// server has no such message. Read it with [`Client::body_chunk`], then call
    /// [`Client::body_end`].
    pub async fn body_begin(&mut self, uid: u32) -> Result<Option<BodyStream>, Error> {
        let tag = self.tag();
        self.write_all(&[format!("{tag} UID FETCH {uid} (UID BODY.PEEK[])\r\n").as_bytes()])
            .await?;
        self.flush().await?;
        loop {
            let line = self.read_line().await?;
            if line.starts_with(tag.as_bytes()) && line.get(tag.len()) == Some(&b' ') {
                let done = parse_done(&line, &tag).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Protocol,
                        format!("{} sent an unreadable completion", self.host),
                    )
                })?;
                if done.ok {
                    return Ok(None);
                }
                self.refusals += 1;
                return Err(self.fetch_failed(&done));
            }
            if line.starts_with(b"* ")
                && let Some(size) = crate::framing::literal_len(&line)
            {
                self.bytes_read += size as u64;
                return Ok(Some(BodyStream {
                    tag,
                    size: size as u64,
                    remaining: size as u64,
                }));
            }
            // Anything else before the body (an unsolicited EXISTS or FLAGS update) is a whole
            // line, since only a line ending in a literal announcement continues.
        }
    }

    /// The next piece of a streamed body (at most one read's worth), `None` at its end.
    pub async fn body_chunk(&mut self, body: &mut BodyStream) -> Result<Option<Bytes>, Error> {
        if body.remaining == 0 {
            return Ok(None);
        }
        if self.buf.is_empty() {
            self.fill(0).await?;
        }
        let n = (self.buf.len() as u64).min(body.remaining) as usize;
        body.remaining -= n as u64;
        Ok(Some(self.buf.split_to(n).freeze()))
    }

    /// Finish a streamed FETCH: skip what is left of the body and read the completion.
    pub async fn body_end(&mut self, mut body: BodyStream) -> Result<(), Error> {
        while self.body_chunk(&mut body).await?.is_some() {}
        // The rest of the FETCH response after the literal (`)` or ` UID 7)`): not a
        // response of its own, so not one to parse.
        self.read_line().await?;
        let done = self.wait_done(&body.tag, &mut |_, _| {}).await?;
        if !done.ok {
            return Err(self.fetch_failed(&done));
        }
        Ok(())
    }

    /// Start appending one message of `size` bytes whose body will be written in pieces with
    /// [`Client::append_chunk`] and finished with [`Client::append_end`]. Without LITERAL+ the
    /// server may refuse before taking the body: that is returned as the outcome.
    pub async fn append_begin(
        &mut self,
        folder: &str,
        flags: &[String],
        internal_date: Option<&str>,
        size: u64,
    ) -> Result<AppendStart, Error> {
        let plus = self.has_cap("LITERAL+");
        let tag = self.tag();
        let mut head = format!("{tag} APPEND {}", mailbox_arg(folder));
        push_message_head(&mut head, flags, internal_date, size, plus);
        self.write_all(&[head.as_bytes()]).await?;
        if !plus && let Some(early) = self.continuation(&tag).await? {
            return Ok(AppendStart::Refused(append_outcome(&early)));
        }
        Ok(AppendStart::Go(AppendStream { tag }))
    }

    /// After an APPEND announced a synchronising literal: `None` when the server says go on
    /// (`+`), or its completion when it refused before taking the literal (`NO [TOOBIG]`).
    async fn continuation(&mut self, tag: &str) -> Result<Option<Done>, Error> {
        self.flush().await?;
        let frame = self.read_frame().await?;
        if frame.starts_with(b"+") {
            return Ok(None);
        }
        match parse_done(&frame, tag) {
            Some(done) => {
                self.refusals += u32::from(!done.ok);
                Ok(Some(done))
            }
            None => Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "{}: APPEND expected a continuation, got: {}",
                    self.host,
                    String::from_utf8_lossy(&frame).trim_end()
                ),
            )),
        }
    }

    /// Write the next piece of a streamed APPEND.
    pub async fn append_chunk(&mut self, chunk: &[u8]) -> Result<(), Error> {
        self.write_all(&[chunk]).await
    }

    /// End a streamed APPEND and read its outcome.
    pub async fn append_end(&mut self, append: AppendStream) -> Result<AppendOutcome, Error> {
        self.write_all(&[b"\r\n"]).await?;
        self.flush().await?;
        let done = self.wait_done(&append.tag, &mut |_, _| {}).await?;
        if !done.ok && is_folder_missing(&done) {
            return Err(Error::new(
                ErrorKind::Refused,
                format!("APPEND on {}: {}", self.host, done.describe()),
            ));
        }
        Ok(append_outcome(&done))
    }

    /// Set flags on target messages, all commands pipelined: (uid, flags).
    pub async fn store_flags(
        &mut self,
        updates: &[(u32, Vec<String>)],
    ) -> Result<Vec<Option<String>>, Error> {
        let mut tags = Vec::with_capacity(updates.len());
        for (uid, flags) in updates {
            let tag = self.tag();
            let flags: Vec<&str> = flags
                .iter()
                .map(String::as_str)
                .filter(|f| is_atom(f))
                .collect();
            let line = format!(
                "{tag} UID STORE {uid} FLAGS.SILENT ({})\r\n",
                flags.join(" ")
            );
            self.write_all(&[line.as_bytes()]).await?;
            tags.push(tag);
        }
        self.flush().await?;
        let mut out = Vec::with_capacity(tags.len());
        for tag in tags {
            let done = self.wait_done(&tag, &mut |_, _| {}).await?;
            out.push((!done.ok).then(|| done.describe()));
        }
        Ok(out)
    }

    /// Remove messages by UID from the folder selected read-write: `UID STORE … +FLAGS.SILENT
    /// (\Deleted)` then `UID EXPUNGE …` (RFC 4315), so that only these messages go. Without
    /// UIDPLUS nothing is removed and `Ok(false)` says so: a plain EXPUNGE would also remove
    /// whatever else someone marked deleted.
    pub async fn uid_expunge(&mut self, uids: &[u32]) -> Result<bool, Error> {
        if !self.has_cap("UIDPLUS") {
            return Ok(false);
        }
        for chunk in uid_chunks(uids, MAX_RANGES) {
            let set = uid_set(&chunk);
            for cmd in [
                format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"),
                format!("UID EXPUNGE {set}"),
            ] {
                let done = self.simple(&cmd).await?;
                if !done.ok {
                    return Err(Error::new(
                        ErrorKind::Refused,
                        format!("{} refused {cmd}: {}", self.host, done.describe()),
                    ));
                }
            }
        }
        Ok(true)
    }

    /// LOGOUT, ignoring errors: the work is done either way.
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.simple("LOGOUT")).await;
    }

    // ---- plumbing ----

    fn tag(&mut self) -> String {
        let t = format!("t{}", self.next_tag);
        self.next_tag += 1;
        t
    }

    async fn simple(&mut self, cmd: &str) -> Result<Done, Error> {
        self.run(cmd, &mut |_, _| {}).await
    }

    /// Like `simple`, for commands that carry a secret: nothing of it is ever logged.
    async fn simple_secret(&mut self, cmd: &str) -> Result<Done, Error> {
        let tag = self.tag();
        // The command's name only: what follows it is a password or carries one.
        let verb = cmd.split(' ').take(2).collect::<Vec<_>>().join(" ");
        tracing::trace!(conn = %self.trace_id, "> {tag} {verb} ***");
        self.write_all(&[tag.as_bytes(), b" ", cmd.as_bytes(), b"\r\n"])
            .await?;
        self.flush().await?;
        self.wait_done(&tag, &mut |_, _| {}).await
    }

    async fn run(
        &mut self,
        cmd: &str,
        on: &mut (dyn FnMut(&Bytes, Response<'_>) + Send),
    ) -> Result<Done, Error> {
        let tag = self.send(cmd).await?;
        self.finish(&tag, on).await
    }

    /// Write a command without waiting for its answer. Answers are read with [`Client::finish`]
    /// in the order the commands were sent: that is how commands are pipelined.
    async fn send(&mut self, cmd: &str) -> Result<String, Error> {
        let tag = self.tag();
        tracing::trace!(conn = %self.trace_id, "> {tag} {cmd}");
        self.write_all(&[tag.as_bytes(), b" ", cmd.as_bytes(), b"\r\n"])
            .await?;
        Ok(tag)
    }

    /// Read up to the completion of a command sent with [`Client::send`].
    async fn finish(
        &mut self,
        tag: &str,
        on: &mut (dyn FnMut(&Bytes, Response<'_>) + Send),
    ) -> Result<Done, Error> {
        self.flush().await?;
        self.wait_done(tag, on).await
    }

    async fn wait_done(
        &mut self,
        tag: &str,
        on: &mut (dyn FnMut(&Bytes, Response<'_>) + Send),
    ) -> Result<Done, Error> {
        loop {
            let frame = self.read_frame().await?;
            tracing::trace!(conn = %self.trace_id, "< {}", crate::framing::summarise(&frame, TRACE_WIDTH));
            if frame.starts_with(tag.as_bytes()) && frame.get(tag.len()) == Some(&b' ') {
                let done = parse_done(&frame, tag).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Protocol,
                        format!(
                            "{} sent an unreadable completion: {}",
                            self.host,
                            String::from_utf8_lossy(&frame).trim_end()
                        ),
                    )
                })?;
                if !done.ok {
                    self.refusals += 1;
                }
                // Throttling is not a refusal of this command: the caller waits and goes on.
                if !done.ok
                    && let Some(e) = Error::throttled(&self.host, &done.describe())
                {
                    return Err(e);
                }
                return Ok(done);
            }
            match Response::parse(&frame) {
                Ok((
                    _,
                    Response::Data {
                        status: Status::Bye,
                        outcome,
                    },
                )) => {
                    // The whole line: a response code such as [UNAVAILABLE] says why.
                    let raw = String::from_utf8_lossy(&frame);
                    let words = raw.trim_end().trim_start_matches("* BYE ").trim_start();
                    if let Some(e) = Error::throttled(&self.host, words) {
                        return Err(e);
                    }
                    return Err(Error::new(
                        ErrorKind::Dropped,
                        format!(
                            "{} closed the connection: {}",
                            self.host,
                            outcome.information.unwrap_or_default()
                        ),
                    ));
                }
                Ok((_, resp)) => on(&frame, resp),
                Err(_) => {
                    // A response we cannot parse is skipped, not fatal: the framing layer knows
                    // where it ends.
                    tracing::debug!(host = %self.host, "skipping unparseable response: {}",
                        String::from_utf8_lossy(&frame[..frame.len().min(200)]).trim_end());
                }
            }
        }
    }

    async fn read_frame(&mut self) -> Result<Bytes, Error> {
        loop {
            let mut hint = 0;
            if let Some(n) = self.framer.next_frame(&self.buf, &mut hint) {
                let frame = self.buf.split_to(n).freeze();
                // A buffer that grew for one large message is not kept for the small ones that
                // follow: the frame keeps its bytes alive only as long as the caller needs them.
                if self.buf.capacity() > KEEP_CAPACITY && self.buf.len() < READ_CHUNK {
                    let mut fresh = BytesMut::with_capacity(READ_CHUNK);
                    fresh.extend_from_slice(&self.buf);
                    self.buf = fresh;
                }
                return Ok(frame);
            }
            self.fill(hint).await?;
        }
    }

    /// One line, up to and including its LF, with no regard for literals: for the start of a
    /// streamed body, where the literal must not be read whole.
    async fn read_line(&mut self) -> Result<Bytes, Error> {
        let mut scanned = 0;
        loop {
            if let Some(nl) = memchr::memchr(b'\n', &self.buf[scanned..]) {
                return Ok(self.buf.split_to(scanned + nl + 1).freeze());
            }
            scanned = self.buf.len();
            self.fill(0).await?;
        }
    }

    /// Read whatever the server has sent into the buffer (at least one byte). `expected` is the
    /// size the current response is known to need (0 if unknown): the buffer gets room for it
    /// and one more read.
    async fn fill(&mut self, expected: usize) -> Result<(), Error> {
        // Waiting for the server: whatever was written must have left first.
        if self.unflushed {
            self.flush().await?;
        }
        let need = expected.max(self.buf.len()) + READ_CHUNK;
        if self.buf.capacity() < need {
            if need > KEEP_CAPACITY {
                // Exactly the size of a large response: `reserve` would double it.
                let mut fresh = BytesMut::with_capacity(need);
                fresh.extend_from_slice(&self.buf);
                self.buf = fresh;
            } else {
                self.buf.reserve(need - self.buf.len());
            }
        }
        // The read is given up after the idle limit; one that waits longer than a notice's
        // worth is listed meanwhile, so progress can say whom it waits for. (`read_buf` loses
        // nothing when a timeout drops it unfinished.)
        let idle = crate::timeouts::get().idle;
        let started = std::time::Instant::now();
        let mut listed = None;
        let read = loop {
            let left = idle.saturating_sub(started.elapsed());
            let step = left.min(crate::timeouts::NOTICE);
            match tokio::time::timeout(step, self.stream.read_buf(&mut self.buf)).await {
                Ok(r) => break Some(r),
                Err(_) if started.elapsed() >= idle => break None,
                Err(_) => {
                    listed.get_or_insert_with(|| crate::timeouts::waiting(&self.host, started));
                }
            }
        };
        drop(listed);
        let why = match read {
            Some(Ok(0)) => format!("{} closed the connection", self.host),
            Some(Ok(_)) => return Ok(()),
            Some(Err(e)) => format!("connection to {} lost: {e}", self.host),
            None => format!(
                "{} stopped answering (nothing for {} s; the limit is the idle timeout, `--timeout` or the campaign's `timeout`)",
                self.host,
                idle.as_secs()
            ),
        };
        Err(Error::new(ErrorKind::Dropped, why))
    }

    /// Queue bytes for the server. Small pieces are gathered into full-sized writes: a command
    /// head and a 15 KB message each sent on their own would each become a packet, and a
    /// congestion window counted in packets would then carry a fraction of what it can.
    async fn write_all(&mut self, parts: &[&[u8]]) -> Result<(), Error> {
        self.unflushed = true;
        for p in parts {
            if self.wbuf.len() + p.len() > WRITE_CHUNK {
                self.send_wbuf().await?;
            }
            if p.len() >= WRITE_CHUNK {
                self.stream.write_all(p).await.map_err(|e| self.lost(e))?;
            } else {
                self.wbuf.extend_from_slice(p);
            }
        }
        Ok(())
    }

    async fn send_wbuf(&mut self) -> Result<(), Error> {
        if !self.wbuf.is_empty() {
            let r = self.stream.write_all(&self.wbuf).await;
            self.wbuf.clear();
            r.map_err(|e| self.lost(e))?;
        }
        Ok(())
    }

    fn fetch_failed(&self, done: &Done) -> Error {
        Error::new(
            ErrorKind::Refused,
            format!("UID FETCH failed on {}: {}", self.host, done.describe()),
        )
    }

    fn lost(&self, e: std::io::Error) -> Error {
        Error::new(
            ErrorKind::Dropped,
            format!("connection to {} lost while sending: {e}", self.host),
        )
    }

    async fn flush(&mut self) -> Result<(), Error> {
        self.send_wbuf().await?;
        self.stream.flush().await.map_err(|e| self.lost(e))?;
        self.unflushed = false;
        Ok(())
    }
}

fn meta_items(with_size_and_date: bool) -> &'static str {
    if with_size_and_date {
        "(UID FLAGS RFC822.SIZE INTERNALDATE)"
    } else {
        "(UID FLAGS)"
    }
}

fn append_outcome(done: &Done) -> AppendOutcome {
    if done.ok {
        let parsed = done.code.as_deref().and_then(parse_appenduid);
        AppendOutcome::Stored {
            uid_validity: parsed.as_ref().map(|p| p.0),
            uid: parsed.and_then(|p| p.1.first().copied()),
        }
    } else {
        AppendOutcome::Rejected(done.describe())
    }
}

fn is_folder_missing(done: &Done) -> bool {
    done.code.as_deref().is_some_and(|c| {
        c.eq_ignore_ascii_case("TRYCREATE") || c.eq_ignore_ascii_case("NONEXISTENT")
    })
}

/// A zero-copy view of `data`, which points into `frame`.
fn slice_of(frame: &Bytes, data: &[u8]) -> Bytes {
    let start = data.as_ptr() as usize;
    let base = frame.as_ptr() as usize;
    if start >= base && start + data.len() <= base + frame.len() {
        frame.slice(start - base..start - base + data.len())
    } else {
        Bytes::copy_from_slice(data)
    }
}

/// A folder that cannot be opened (it only holds others in the hierarchy).
fn is_noselect(e: &ListEntry) -> bool {
    e.attributes
        .iter()
        .any(|a| a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent"))
}

/// One `* STATUS` answer into `statuses`, under the folder's Unicode name; an answer without
/// all four counters is left out (no comparison could rest on it).
fn collect_status(statuses: &mut Statuses, resp: Response<'_>) {
    let Response::MailboxData(MailboxDatum::Status { mailbox, status }) = resp else {
        return;
    };
    let (mut uv, mut next, mut messages, mut modseq) = (None, None, None, None);
    for a in status {
        match a {
            StatusAttribute::UidValidity(v) => uv = Some(v),
            StatusAttribute::UidNext(v) => next = Some(v),
            StatusAttribute::Messages(v) => messages = Some(v),
            StatusAttribute::HighestModSeq(v) => modseq = Some(v),
            _ => {}
        }
    }
    if let (Some(uid_validity), Some(uid_next), Some(messages), Some(highest_modseq)) =
        (uv, next, messages, modseq)
    {
        let wire = mailbox.to_string();
        let name = mutf7::decode(&wire).unwrap_or(wire);
        statuses.insert(
            name,
            FolderStatus {
                uid_validity,
                uid_next,
                messages,
                highest_modseq,
            },
        );
    }
}

fn attribute_name(a: &NameAttribute<'_>) -> String {
    match a {
        NameAttribute::NoInferiors => "\\Noinferiors".into(),
        NameAttribute::NoSelect => "\\Noselect".into(),
        NameAttribute::Marked => "\\Marked".into(),
        NameAttribute::Unmarked => "\\Unmarked".into(),
        NameAttribute::All => "\\All".into(),
        NameAttribute::Archive => "\\Archive".into(),
        NameAttribute::Drafts => "\\Drafts".into(),
        NameAttribute::Flagged => "\\Flagged".into(),
        NameAttribute::Junk => "\\Junk".into(),
        NameAttribute::Sent => "\\Sent".into(),
        NameAttribute::Trash => "\\Trash".into(),
        NameAttribute::Extension(s) => s.to_string(),
        _ => String::new(),
    }
}

/// A mailbox argument: modified UTF-7, quoted.
fn mailbox_arg(name: &str) -> String {
    let wire = mutf7::encode(name);
    quote_astring(&wire).unwrap_or(wire)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(uids: &[u32]) -> Listing {
        let mut w = Windowing::new(3);
        for &uid in uids {
            w.push(FetchedMeta {
                uid,
                size: 1,
                flags: Vec::new(),
                internal_date: None,
            });
        }
        w.finish().expect("cut")
    }

    #[test]
    fn listing_windows_cover_every_uid_once() {
        let small = listed(&[4, 9, 12]);
        assert_eq!(small.first.as_ref().map(Vec::len), Some(3));
        assert!(small.rest.is_empty());
        assert_eq!(small.first_window(), UidWindow::ALL);

        let l = listed(&[2, 3, 5, 8, 13, 21, 34]);
        let uids = |l: &Listing| l.first.iter().flatten().map(|m| m.uid).collect::<Vec<_>>();
        assert_eq!(uids(&l), [2, 3, 5]);
        let w = |from, to| UidWindow { from, to };
        assert_eq!(l.first_window(), w(1, Some(5)));
        assert_eq!(l.rest, [w(6, Some(21)), w(22, None)]);
        // Each message is in exactly one window, and so is every UID in between.
        for uid in 1..40 {
            let n = std::iter::once(l.first_window())
                .chain(l.rest.iter().copied())
                .filter(|w| w.contains(uid))
                .count();
            assert_eq!(n, 1, "UID {uid}");
        }
        // Exactly one window's worth: nothing further to ask for.
        assert!(listed(&[1, 2, 3]).rest.is_empty());
        assert_eq!(listed(&[]).first, Some(Vec::new()));
    }

    #[test]
    fn an_unordered_listing_is_cut_only_when_it_fits_one_window() {
        assert_eq!(
            listed(&[9, 4, 7])
                .first
                .iter()
                .flatten()
                .map(|m| m.uid)
                .collect::<Vec<_>>(),
            [4, 7, 9]
        );
        let mut w = Windowing::new(2);
        for uid in [5, 3, 8] {
            w.push(FetchedMeta {
                uid,
                size: 0,
                flags: Vec::new(),
                internal_date: None,
            });
        }
        assert!(w.finish().is_none());
    }

    #[test]
    fn capabilities_from_greeting_and_login_codes() {
        let caps = caps_in_greeting(
            b"* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.\r\n",
        )
        .unwrap();
        assert_eq!(
            caps,
            ["IMAP4rev1", "SASL-IR", "LITERAL+", "STARTTLS", "AUTH=PLAIN"]
        );
        let login = parse_done(
            b"t2 OK [CAPABILITY IMAP4rev1 MULTIAPPEND UIDPLUS QUOTA] Logged in\r\n",
            "t2",
        )
        .unwrap();
        let caps = login.code.as_deref().and_then(caps_in_code).unwrap();
        assert!(caps.iter().any(|c| c == "MULTIAPPEND"));
        // Anything else means: ask with CAPABILITY.
        for greeting in [
            &b"* OK IMAP server ready\r\n"[..],
            b"* OK [ALERT] maintenance tonight\r\n",
            b"* OK [CAPABILITY] empty\r\n",
            b"* OK [CAPABILITY STARTTLS AUTH=PLAIN] no IMAP4rev1 in it\r\n",
            b"* BYE too many connections\r\n",
        ] {
            assert_eq!(caps_in_greeting(greeting), None, "{greeting:?}");
        }
        assert_eq!(caps_in_code("APPENDUID 7 1:3"), None);
    }

    #[test]
    fn completion_with_unknown_code() {
        let d = parse_done(
            b"t7 NO [OVERQUOTA] Quota exceeded (mailbox for user is full)\r\n",
            "t7",
        )
        .unwrap();
        assert!(!d.ok);
        assert_eq!(d.code.as_deref(), Some("OVERQUOTA"));
        assert_eq!(d.text, "Quota exceeded (mailbox for user is full)");
        assert!(
            parse_done(b"t70 OK x\r\n", "t7").is_none(),
            "t7 must not match t70"
        );
    }

    #[test]
    fn appenduid_ranges() {
        assert_eq!(
            parse_appenduid("APPENDUID 1700000000 4:6,9"),
            Some((1700000000, vec![4, 5, 6, 9]))
        );
        assert_eq!(parse_appenduid("APPENDUID 5 3"), Some((5, vec![3])));
        assert_eq!(parse_appenduid("READ-WRITE"), None);
    }

    #[test]
    fn mailbox_args_are_encoded_and_quoted() {
        assert_eq!(mailbox_arg("Progetti/Società"), "\"Progetti/Societ&AOA-\"");
        assert_eq!(mailbox_arg("a \"b\""), r#""a \"b\"""#);
    }
}
