//! The campaign file.

use crate::ConfigError;
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use trasloco_imap::{Endpoint, Master, MasterStyle, Security, TlsOptions};
pub use trasloco_state::Location;

/// `tls = …` in a server section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// TLS from the first byte (port 993).
    Implicit,
    /// STARTTLS, required.
    Starttls,
    /// STARTTLS when offered, plain otherwise. Only sensible on a trusted network.
    IfOffered,
    /// No TLS. Only sensible on loopback.
    None,
}

/// `protocol = …` in the `[source]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// IMAP (993 with TLS, 143 with STARTTLS).
    #[default]
    Imap,
    /// POP3 (995 with TLS, 110 with STLS); the mailbox is one folder, INBOX.
    Pop3,
}

impl Protocol {
    /// (implicit-TLS port, plain/STARTTLS port).
    fn ports(self) -> (u16, u16) {
        match self {
            Protocol::Imap => (993, 143),
            Protocol::Pop3 => (995, 110),
        }
    }
}

/// How a master user presents itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MasterLogin {
    /// SASL PLAIN with authorization identity (RFC 4616); Dovecot, Cyrus, Zimbra.
    #[default]
    Sasl,
    /// `LOGIN user*master` (Dovecot's separator form).
    Separator,
}

/// One pinned fingerprint or several.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum Fingerprints {
    /// None given.
    #[default]
    None,
    /// One.
    One(String),
    /// Several (a certificate about to be renewed, and its successor).
    Many(Vec<String>),
}

impl Fingerprints {
    /// The fingerprints as SHA-256 digests, or which one does not read as one.
    pub fn digests(&self) -> Result<Vec<[u8; 32]>, String> {
        let list: Vec<&String> = match self {
            Fingerprints::None => Vec::new(),
            Fingerprints::One(s) => vec![s],
            Fingerprints::Many(v) => v.iter().collect(),
        };
        list.into_iter()
            .map(|s| trasloco_imap::parse_fingerprint(s))
            .collect()
    }
}

/// A `[source]` or `[target]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// `imap` (default) or, for the source, `pop3`.
    #[serde(default)]
    pub protocol: Protocol,
    /// Host name or address.
    pub host: String,
    /// Port; default 993 with implicit TLS, else 143.
    pub port: Option<u16>,
    /// TLS mode; default implicit on 993, STARTTLS required elsewhere (if-offered on loopback).
    pub tls: Option<TlsMode>,
    /// Extra CA certificate (PEM), relative to the campaign file.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification (test setups only; warned).
    #[serde(default)]
    pub insecure: bool,
    /// Trust exactly the certificate with this SHA-256 fingerprint (`sha256:AB:CD:…`), as an
    /// old server's self-signed one; a list is accepted too.
    #[serde(default)]
    pub cert_fingerprint: Fingerprints,
    /// Admin mode: log in as this master user on behalf of every account.
    pub master_user: Option<String>,
    /// File holding the master password (first line).
    pub master_password_file: Option<PathBuf>,
    /// Environment variable holding the master password.
    pub master_password_env: Option<String>,
    /// How the master user logs in.
    #[serde(default)]
    pub master_login: MasterLogin,
    /// Separator for `master_login = "separator"`.
    pub master_separator: Option<char>,
    /// ManageSieve port (default 4190); STARTTLS as `tls` says (implicit TLS here means
    /// STARTTLS required, as ManageSieve has no implicit-TLS port).
    pub sieve_port: Option<u16>,
    /// OAuth2 logins (SASL OAUTHBEARER / XOAUTH2) instead of passwords.
    pub oauth2: Option<OAuth2Section>,
    /// What is known of the service: `microsoft365`, `gmail`, `dovecot` or `generic` (the
    /// default).
    pub provider: Option<String>,
    /// The largest message the target takes, in MB (Microsoft 365: 35 unless raised).
    pub max_message_mb: Option<u64>,
    /// The most a target account takes in a day over IMAP, in MB (Gmail: 500), counted
    /// across runs.
    pub daily_upload_mb: Option<f64>,
    /// Mailboxes at once on this server, over every worker of the campaign (a PostgreSQL
    /// state).
    pub max_mailboxes: Option<u32>,
    /// Connections at once this server allows the campaign, over every worker: mailboxes
    /// are started only while their connections fit (a PostgreSQL state).
    pub max_connections: Option<u32>,
}

/// `[source.oauth2]` / `[target.oauth2]`: where bearer tokens come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Section {
    /// `microsoft-app`, `google-service-account`, `client-credentials`, `command` or
    /// `token-file`.
    pub flow: String,
    /// client-credentials: the token endpoint.
    pub token_url: Option<String>,
    /// microsoft-app: the tenant (id or domain).
    pub tenant: Option<String>,
    /// client-credentials, microsoft-app: the application (client) id.
    pub client_id: Option<String>,
    /// The client secret's file (first line), relative to the campaign file.
    pub client_secret_file: Option<PathBuf>,
    /// Or the environment variable holding it.
    pub client_secret_env: Option<String>,
    /// client-credentials: the scope (microsoft-app: `https://outlook.office365.com/.default`).
    pub scope: Option<String>,
    /// command: run with `sh -c`, the account on its standard input; it prints a token or a
    /// JSON token response.
    pub token_command: Option<String>,
    /// token-file: a file holding the token (one mailbox), re-read at every login.
    pub token_file: Option<PathBuf>,
    /// google-service-account: the service account's JSON key file.
    pub service_account_file: Option<PathBuf>,
    /// microsoft-app: the application's certificate (PEM), instead of a client secret.
    pub certificate_file: Option<PathBuf>,
    /// microsoft-app: the certificate's private key (PEM, unencrypted RSA).
    pub certificate_key_file: Option<PathBuf>,
}

/// `[accounts]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsSection {
    /// The CSV file, relative to the campaign file.
    pub file: PathBuf,
    /// `auto` (default), `trasloco`, `imapsync` or `microsoft`.
    #[serde(default)]
    pub format: crate::accounts::Format,
}

/// `[run]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Mailboxes in parallel.
    #[serde(default = "default_jobs")]
    pub jobs: usize,
    /// State file, relative to the campaign file.
    pub state: Option<PathBuf>,
    /// Directory for JSON run reports, relative to the campaign file.
    pub reports: Option<PathBuf>,
    /// Read copies back and compare SHA-256 (default true).
    #[serde(default = "yes")]
    pub verify: bool,
    /// Messages per MULTIAPPEND.
    pub batch_messages: Option<usize>,
    /// Megabytes per fetch/append batch.
    pub batch_mb: Option<u64>,
    /// Reconnects per mailbox before giving up on it.
    pub max_reconnects: Option<u32>,
    /// Folders copied at once per mailbox.
    pub parallel_folders: Option<usize>,
    /// Target connections appending at once, per folder being copied.
    pub append_connections: Option<usize>,
    /// Messages of a folder listed and compared at a time.
    pub listing_window: Option<usize>,
    /// POP3 sources: after a verified copy, delete from the server mail received more than this
    /// many days ago.
    pub leave_days: Option<u32>,
    /// POP3 sources: mark copied messages as read (default true).
    #[serde(default = "yes")]
    pub pop3_seen: bool,
    /// Compare every folder in full, even one whose STATUS counters on both servers have not
    /// moved since its last clean pass (default false: such a folder is not opened).
    #[serde(default)]
    pub full_compare: bool,
    /// PEC messages: check signatures before upload and after read-back, and write the
    /// evidence manifest (default true; ordinary mail is only glanced at).
    #[serde(default = "yes")]
    pub pec: bool,
    /// Trust anchors (PEM) for PEC signatures, besides the system's.
    #[serde(default)]
    pub pec_trust: Vec<PathBuf>,
    /// Seconds a server may send nothing while an answer is awaited before the connection is
    /// given up as stalled (default 120).
    pub timeout: Option<u64>,
    /// Seconds each step of connecting may take: lookup, TCP, TLS (default 30).
    pub connect_timeout: Option<u64>,
}

impl FoldersSection {
    /// The special-use roles named in `exclude_roles`.
    pub fn roles(&self) -> Result<Vec<trasloco_core::folder_map::Role>, String> {
        self.exclude_roles
            .iter()
            .map(|r| {
                crate::rules::role_named(r).ok_or_else(|| {
                    format!(
                        "[folders] exclude_roles: unknown role {r:?}; use inbox, sent, drafts, trash, junk, archive, all, flagged or important"
                    )
                })
            })
            .collect()
    }

    fn check(&self) -> Result<(), String> {
        self.roles().map(|_| ())
    }
}

/// The limits `migrate`'s options and a campaign's `[run]` share: one validation for both.
pub const PARALLEL_MAX: usize = 8;

impl RunSection {
    /// Values out of range are refused when the file is loaded, naming the key, as `migrate`
    /// refuses the same values on its command line.
    pub fn check(&self) -> Result<(), String> {
        let at_least_one = [
            ("batch_messages", self.batch_messages),
            ("batch_mb", self.batch_mb.map(|v| v as usize)),
            ("listing_window", self.listing_window),
        ];
        for (key, v) in at_least_one {
            if v == Some(0) {
                return Err(format!("[run] {key}: must be at least 1"));
            }
        }
        let most = trasloco_imap::timeouts::MAX_SECONDS;
        for (key, v) in [
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if let Some(n) = v
                && !(1..=most).contains(&n)
            {
                return Err(format!(
                    "[run] {key}: {n} seconds is not between 1 and {most}"
                ));
            }
        }
        for (key, v) in [
            ("parallel_folders", self.parallel_folders),
            ("append_connections", self.append_connections),
        ] {
            if let Some(n) = v
                && !(1..=PARALLEL_MAX).contains(&n)
            {
                return Err(format!(
                    "[run] {key}: {n} is not between 1 and {PARALLEL_MAX}"
                ));
            }
        }
        Ok(())
    }
}

impl Default for RunSection {
    fn default() -> RunSection {
        RunSection {
            jobs: default_jobs(),
            state: None,
            reports: None,
            verify: true,
            batch_messages: None,
            batch_mb: None,
            max_reconnects: None,
            parallel_folders: None,
            append_connections: None,
            listing_window: None,
            leave_days: None,
            pop3_seen: true,
            full_compare: false,
            pec: true,
            pec_trust: Vec::new(),
            timeout: None,
            connect_timeout: None,
        }
    }
}

fn default_jobs() -> usize {
    4
}

fn yes() -> bool {
    true
}

/// `[folders]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoldersSection {
    /// Source folders not copied (globs, `*` = any characters).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Explicit renames: source name = target name (children follow).
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Source folders not copied because of their special-use role: `inbox`, `sent`,
    /// `drafts`, `trash`, `junk`, `archive`, `all`, `flagged`.
    #[serde(default)]
    pub exclude_roles: Vec<String>,
    /// Source folders (globs) left out of every phase but `final`, the cutover pass.
    #[serde(default)]
    pub defer: Vec<String>,
}

/// The whole campaign file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignFile {
    /// Optional name shown in reports.
    pub name: Option<String>,
    /// The old server.
    pub source: ServerSection,
    /// The new server.
    pub target: ServerSection,
    /// The account list.
    pub accounts: AccountsSection,
    /// Run options.
    #[serde(default)]
    pub run: RunSection,
    /// Folder rules.
    #[serde(default)]
    pub folders: FoldersSection,
    /// Address, inactivity and quota rules.
    #[serde(default)]
    pub rules: crate::rules::RulesSection,
    /// Phase settings.
    #[serde(default)]
    pub phases: crate::phases::PhasesSection,
    /// When runs may start.
    pub window: Option<crate::phases::Window>,
    /// The domain transition on the old server (redirect + auto-reply).
    #[serde(default)]
    pub transition: crate::transition::TransitionSection,
    /// What mail clients are told about the new servers.
    pub clients: Option<crate::clients::ClientsSection>,
    /// Workers sharing a PostgreSQL state.
    #[serde(default)]
    pub workers: WorkersSection,
}

/// `[workers]`: how workers hold their mailboxes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersSection {
    /// Seconds a worker holds a mailbox without renewing its lease (renewed every quarter
    /// of it); a worker that stops renewing loses the mailbox to another one after this.
    #[serde(default = "default_lease")]
    pub lease_seconds: u64,
}

impl Default for WorkersSection {
    fn default() -> Self {
        WorkersSection {
            lease_seconds: default_lease(),
        }
    }
}

fn default_lease() -> u64 {
    60
}

/// A loaded campaign: the file plus the directory its relative paths start from.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// Parsed file.
    pub file: CampaignFile,
    /// Where the campaign file is.
    pub path: PathBuf,
    /// Its directory.
    pub dir: PathBuf,
}

/// A resolved server: protocol, endpoint, TLS options and admin login.
#[derive(Debug, Clone)]
pub struct Server {
    /// IMAP or POP3.
    pub protocol: Protocol,
    /// Where.
    pub endpoint: Endpoint,
    /// Certificates.
    pub tls: TlsOptions,
    /// Admin login, with its password.
    pub master: Option<(Master, SecretString)>,
    /// OAuth2 tokens for every account's login, one source (and cache) for the whole run.
    pub oauth: Option<std::sync::Arc<trasloco_imap::oauth::Tokens>>,
}

/// Whether a host is on this machine (where plain IMAP is acceptable).
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Turn an IMAP TLS mode (or its default) into a port and a security setting.
pub fn resolve_security(host: &str, port: Option<u16>, tls: Option<TlsMode>) -> (u16, Security) {
    resolve_security_for(Protocol::Imap, host, port, tls)
}

/// Turn a TLS mode (or its default) into a port and a security setting: implicit TLS on the
/// protocol's TLS port or when no port is given; STARTTLS required elsewhere, if offered on
/// loopback.
pub fn resolve_security_for(
    protocol: Protocol,
    host: &str,
    port: Option<u16>,
    tls: Option<TlsMode>,
) -> (u16, Security) {
    let (tls_port, plain_port) = protocol.ports();
    let tls = tls.unwrap_or(match port {
        None => TlsMode::Implicit,
        Some(p) if p == tls_port => TlsMode::Implicit,
        _ if is_loopback(host) => TlsMode::IfOffered,
        _ => TlsMode::Starttls,
    });
    let security = match tls {
        TlsMode::Implicit => Security::Implicit,
        TlsMode::Starttls => Security::StartTls,
        TlsMode::IfOffered => Security::StartTlsIfOffered,
        TlsMode::None => Security::None,
    };
    let port = port.unwrap_or(if tls == TlsMode::Implicit {
        tls_port
    } else {
        plain_port
    });
    (port, security)
}

/// Read a secret from the first line of a file.
pub fn read_secret_file(path: &Path, what: &str) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "cannot read the {what} file {}: {}",
            path.display(),
            trasloco_core::words::io_error(&e)
        ))
    })?;
    // Notepad saves UTF-8 with a byte-order mark: it is not part of the password.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let line = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_end_matches('\r')
        .to_string();
    if line.is_empty() {
        return Err(ConfigError(if text.trim().is_empty() {
            format!("the {what} file {} is empty", path.display())
        } else {
            format!(
                "the {what} file {}: its first line is empty; the password must be on the first line",
                path.display()
            )
        }));
    }
    Ok(SecretString::from(line))
}

/// The line of the key a check's message is about (`[rules] quota_strategy: …`), so the
/// message can name it as TOML's own errors do.
fn line_of_key(text: &str, message: &str) -> Option<usize> {
    let rest = message.strip_prefix('[')?;
    let (section, rest) = rest.split_once(']')?;
    let key: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if key.is_empty() {
        return None;
    }
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if let Some(h) = l.strip_prefix('[') {
            current = h.trim_end_matches(']').trim().to_string();
            continue;
        }
        if current == section
            && let Some(after) = l.strip_prefix(key.as_str())
            && after.trim_start().starts_with('=')
        {
            return Some(i + 1);
        }
    }
    None
}

impl Campaign {
    /// Load and check a campaign file.
    pub fn load(path: &Path) -> Result<Campaign, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "cannot read campaign file {}: {}",
                path.display(),
                trasloco_core::words::io_error(&e)
            ))
        })?;
        let file: CampaignFile = toml::from_str(&text).map_err(|e| {
            let msg = e.message().to_string();
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
            match line {
                Some(l) => ConfigError(format!("campaign file {} line {l}: {msg}", path.display())),
                None => ConfigError(format!("campaign file {}: {msg}", path.display())),
            }
        })?;
        if file.run.jobs == 0 {
            return Err(ConfigError(format!(
                "campaign file {}: run.jobs must be at least 1",
                path.display()
            )));
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        file.rules
            .check()
            .and_then(|()| {
                for (which, side) in [("source", &file.source), ("target", &file.target)] {
                    side.cert_fingerprint
                        .digests()
                        .map_err(|e| format!("[{which}] cert_fingerprint: {e}"))?;
                    if let Some(p) = &side.provider {
                        crate::providers::Provider::parse(p)
                            .map_err(|e| format!("[{which}] {e}"))?;
                    }
                    if side.max_message_mb == Some(0) {
                        return Err(format!("[{which}] max_message_mb must be at least 1"));
                    }
                    if side
                        .daily_upload_mb
                        .is_some_and(|m| !(m > 0.0 && m.is_finite()))
                    {
                        return Err(format!(
                            "[{which}] daily_upload_mb must be a number of MB above 0"
                        ));
                    }
                }
                Ok(())
            })
            .and_then(|()| file.run.check())
            .and_then(|()| file.folders.check())
            .and_then(|()| file.window.as_ref().map_or(Ok(()), |w| w.check()))
            .and_then(|()| file.clients.as_ref().map_or(Ok(()), |c| c.check()))
            .map_err(|e| match line_of_key(&text, &e) {
                Some(l) => ConfigError(format!("campaign file {} line {l}: {e}", path.display())),
                None => ConfigError(format!("campaign file {}: {e}", path.display())),
            })?;
        // Every command that talks to the campaign's servers waits as the campaign says.
        let secs = |v: Option<u64>| v.map(std::time::Duration::from_secs);
        trasloco_imap::timeouts::set_configured(
            secs(file.run.connect_timeout),
            secs(file.run.timeout),
        );
        Ok(Campaign {
            file,
            path: path.to_path_buf(),
            dir,
        })
    }

    /// A path from the file, relative to the campaign's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// Where the state is kept: `TRASLOCO_STATE` when set, else `run.state`: a PostgreSQL URL
    /// as written, a file path relative to the campaign file (default
    /// `trasloco-state.sqlite`).
    pub fn state(&self) -> Location {
        let written = std::env::var("TRASLOCO_STATE")
            .ok()
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(|| self.file.run.state.clone())
            .unwrap_or_else(|| PathBuf::from("trasloco-state.sqlite"));
        match Location::parse(&written.to_string_lossy()) {
            Location::File(p) => Location::File(self.resolve(&p)),
            pg => pg,
        }
    }

    /// Where `plan` writes plan.json/csv/html (and `report` its files): the reports directory.
    pub fn plan_path(&self) -> PathBuf {
        self.reports_dir().join("plan.json")
    }

    /// Where archived messages (quota strategies) go: one archive per source account.
    pub fn archive_dir(&self) -> PathBuf {
        self.resolve(
            self.file
                .rules
                .archive_dir
                .as_deref()
                .unwrap_or(Path::new("trasloco-archives")),
        )
    }

    /// Reports directory.
    pub fn reports_dir(&self) -> PathBuf {
        self.resolve(
            self.file
                .run
                .reports
                .as_deref()
                .unwrap_or(Path::new("trasloco-reports")),
        )
    }

    /// The ManageSieve endpoint of a side: its host (or an account's host override), the sieve
    /// port, STARTTLS as the side's TLS mode says.
    pub fn sieve_endpoint(&self, which: &str, host: &str) -> Endpoint {
        let s = if which == "source" {
            &self.file.source
        } else {
            &self.file.target
        };
        let (_, imap_security) = resolve_security(host, s.port, s.tls);
        let security = match imap_security {
            Security::Implicit | Security::StartTls => Security::StartTls,
            other => other,
        };
        Endpoint {
            host: host.to_string(),
            port: s.sieve_port.unwrap_or(4190),
            security,
        }
    }

    /// Resolve a server section, reading the master password if there is a master user.
    pub fn server(&self, which: &str) -> Result<Server, ConfigError> {
        let s = if which == "source" {
            &self.file.source
        } else {
            &self.file.target
        };
        if which == "target" && s.protocol != Protocol::Imap {
            return Err(ConfigError(format!(
                "campaign file {}: [target] protocol must be imap: mail is copied into an IMAP server",
                self.path.display()
            )));
        }
        let (port, security) = resolve_security_for(s.protocol, &s.host, s.port, s.tls);
        let master = match &s.master_user {
            None => None,
            Some(user) => {
                let secret = if let Some(f) = &s.master_password_file {
                    read_secret_file(&self.resolve(f), &format!("{which} master password"))?
                } else if let Some(var) = &s.master_password_env {
                    SecretString::from(std::env::var(var).map_err(|_| {
                        ConfigError(format!(
                            "campaign file {}: [{which}] master_password_env names {var}, which is not set",
                            self.path.display()
                        ))
                    })?)
                } else {
                    return Err(ConfigError(format!(
                        "campaign file {}: [{which}] has master_user but neither master_password_file nor master_password_env",
                        self.path.display()
                    )));
                };
                let style = match s.master_login {
                    MasterLogin::Sasl => MasterStyle::Sasl,
                    MasterLogin::Separator => {
                        MasterStyle::Separator(s.master_separator.unwrap_or('*'))
                    }
                };
                Some((
                    Master {
                        user: user.clone(),
                        style,
                    },
                    secret,
                ))
            }
        };
        Ok(Server {
            protocol: s.protocol,
            endpoint: Endpoint {
                host: s.host.clone(),
                port,
                security,
            },
            tls: TlsOptions {
                ca_file: s.ca_file.as_ref().map(|p| self.resolve(p)),
                insecure: s.insecure,
                pins: s
                    .cert_fingerprint
                    .digests()
                    .map_err(|e| ConfigError(format!("[{which}] cert_fingerprint: {e}")))?,
            },
            master,
            oauth: match &s.oauth2 {
                Some(o) => Some(std::sync::Arc::new(trasloco_imap::oauth::Tokens::new(
                    self.oauth_flow(which, o, &s.tls_options_for_tokens(self))?,
                ))),
                None => None,
            },
        })
    }

    /// The token flow `[which.oauth2]` describes; a missing or contradictory key is named.
    fn oauth_flow(
        &self,
        which: &str,
        o: &OAuth2Section,
        tls: &TlsOptions,
    ) -> Result<trasloco_imap::oauth::Flow, ConfigError> {
        use trasloco_imap::oauth::Flow;
        let at = format!("campaign file {}: [{which}.oauth2]", self.path.display());
        let need = |v: &Option<String>, key: &str| {
            v.clone()
                .filter(|x| !x.trim().is_empty())
                .ok_or_else(|| ConfigError(format!("{at} flow = {:?} needs {key}", o.flow)))
        };
        let secret = || -> Result<SecretString, ConfigError> {
            match (&o.client_secret_file, &o.client_secret_env) {
                (Some(f), None) => {
                    read_secret_file(&self.resolve(f), &format!("{which} OAuth2 client secret"))
                }
                (None, Some(var)) => std::env::var(var).map(SecretString::from).map_err(|_| {
                    ConfigError(format!(
                        "{at} client_secret_env names {var}, which is not set"
                    ))
                }),
                _ => Err(ConfigError(format!(
                    "{at} needs exactly one of client_secret_file and client_secret_env"
                ))),
            }
        };
        Ok(match o.flow.as_str() {
            "client-credentials" => Flow::ClientCredentials {
                url: need(&o.token_url, "token_url")?,
                client_id: need(&o.client_id, "client_id")?,
                secret: secret()?,
                scope: need(&o.scope, "scope")?,
                tls: tls.clone(),
            },
            "microsoft-app" => {
                let tenant = need(&o.tenant, "tenant (the directory id or its domain)")?;
                let url = o.token_url.clone().unwrap_or_else(|| {
                    format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
                });
                let client_id = need(&o.client_id, "client_id")?;
                let scope = o
                    .scope
                    .clone()
                    .unwrap_or_else(|| "https://outlook.office365.com/.default".into());
                match (&o.certificate_file, &o.certificate_key_file) {
                    (Some(cert), Some(key)) => {
                        let read = |p: &PathBuf| {
                            std::fs::read(self.resolve(p)).map_err(|e| {
                                ConfigError(format!(
                                    "{at} cannot read {}: {e}",
                                    self.resolve(p).display()
                                ))
                            })
                        };
                        let thumbprints = trasloco_imap::oauth::thumbprints(&read(cert)?)
                            .map_err(|e| ConfigError(format!("{at} certificate_file: {e}")))?;
                        let key =
                            trasloco_imap::oauth::rsa_key(&String::from_utf8_lossy(&read(key)?))
                                .map_err(|e| {
                                    ConfigError(format!("{at} certificate_key_file: {e}"))
                                })?;
                        Flow::CertificateAssertion {
                            url,
                            client_id,
                            thumbprints,
                            key: std::sync::Arc::new(key),
                            scope,
                            tls: tls.clone(),
                        }
                    }
                    (None, None) => Flow::ClientCredentials {
                        url,
                        client_id,
                        secret: secret()?,
                        scope,
                        tls: tls.clone(),
                    },
                    _ => {
                        return Err(ConfigError(format!(
                            "{at} certificate_file and certificate_key_file go together"
                        )));
                    }
                }
            }
            "google-service-account" => {
                let Some(f) = &o.service_account_file else {
                    return Err(ConfigError(format!(
                        "{at} flow = \"google-service-account\" needs service_account_file (the service account's JSON key)"
                    )));
                };
                let path = self.resolve(f);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError(format!("{at} cannot read {}: {e}", path.display()))
                })?;
                let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    ConfigError(format!(
                        "{at} {} is not a service account's JSON key: {e}",
                        path.display()
                    ))
                })?;
                let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
                let (Some(issuer), Some(pem)) = (field("client_email"), field("private_key"))
                else {
                    return Err(ConfigError(format!(
                        "{at} {} has no client_email or private_key: download a JSON key for the service account",
                        path.display()
                    )));
                };
                let key = trasloco_imap::oauth::rsa_key(&pem).map_err(|e| {
                    ConfigError(format!("{at} {}: private_key: {e}", path.display()))
                })?;
                Flow::ServiceAccount {
                    url: o
                        .token_url
                        .clone()
                        .or_else(|| field("token_uri"))
                        .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
                    issuer,
                    key_id: field("private_key_id"),
                    key: std::sync::Arc::new(key),
                    scope: o
                        .scope
                        .clone()
                        .unwrap_or_else(|| "https://mail.google.com/".into()),
                    tls: tls.clone(),
                }
            }
            "command" => Flow::Command(need(&o.token_command, "token_command")?),
            "token-file" => match &o.token_file {
                Some(f) => Flow::File(self.resolve(f)),
                None => {
                    return Err(ConfigError(format!(
                        "{at} flow = \"token-file\" needs token_file"
                    )));
                }
            },
            other => {
                return Err(ConfigError(format!(
                    "{at} flow {other:?} is not one of microsoft-app, google-service-account, client-credentials, command, token-file"
                )));
            }
        })
    }
}

impl ServerSection {
    /// Certificates for a token endpoint: the server's extra CA (test setups) on top of the
    /// system's.
    fn tls_options_for_tokens(&self, c: &Campaign) -> TlsOptions {
        TlsOptions {
            ca_file: self.ca_file.as_ref().map(|p| c.resolve(p)),
            ..TlsOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_port_and_host() {
        assert_eq!(
            resolve_security("mail.example.org", None, None),
            (993, Security::Implicit)
        );
        assert_eq!(
            resolve_security("mail.example.org", Some(143), None),
            (143, Security::StartTls)
        );
        assert_eq!(
            resolve_security("127.0.0.1", Some(11143), None),
            (11143, Security::StartTlsIfOffered)
        );
        assert_eq!(
            resolve_security("mail.example.org", None, Some(TlsMode::Starttls)),
            (143, Security::StartTls)
        );
        let pop3 = |port, tls| resolve_security_for(Protocol::Pop3, "pop.example.org", port, tls);
        assert_eq!(pop3(None, None), (995, Security::Implicit));
        assert_eq!(pop3(Some(995), None), (995, Security::Implicit));
        assert_eq!(pop3(Some(110), None), (110, Security::StartTls));
        assert_eq!(
            pop3(None, Some(TlsMode::Starttls)),
            (110, Security::StartTls)
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[source]\nhost = \"a\"\nprot = 1\n[target]\nhost=\"b\"\n[accounts]\nfile=\"a.csv\"\n",
        )
        .unwrap();
        let e = Campaign::load(&p).unwrap_err().0;
        assert!(e.contains("c.toml line 3"), "{e}");
        assert!(e.contains("prot"), "{e}");
    }

    #[test]
    fn rule_mistakes_name_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let base = "[source]\nhost = \"a\"\n[target]\nhost=\"b\"\n[accounts]\nfile=\"a.csv\"\n";
        for (extra, needle) in [
            (
                "[rules]\ntarget_quota = \"3 parsecs\"\n",
                "[rules] target_quota",
            ),
            ("[rules]\nquota_strategy = \"keep-days\"\n", "keep_days"),
            (
                "[rules]\ndomain_map = { \"a@b.it\" = \"c.it\" }\n",
                "domain_map",
            ),
            (
                "[folders]\nexclude_roles = [\"bin\"]\n",
                "unknown role \"bin\"",
            ),
            ("[window]\nstart = \"9pm\"\nend = \"06:00\"\n", "HH:MM"),
        ] {
            std::fs::write(&p, format!("{base}{extra}")).unwrap();
            let e = Campaign::load(&p).unwrap_err().0;
            assert!(
                e.starts_with(&format!("campaign file {}", p.display())),
                "{e}"
            );
            assert!(e.contains(needle), "{e}");
        }
        // [run] limits are those of `migrate`'s options (issue 19, point 13).
        for bad in [
            "batch_messages = 0",
            "batch_mb = 0",
            "listing_window = 0",
            "parallel_folders = 0",
            "parallel_folders = 100",
            "append_connections = 9",
        ] {
            std::fs::write(&p, format!("{base}[run]\n{bad}\n")).unwrap();
            let e = Campaign::load(&p).unwrap_err().0;
            let key = bad.split(' ').next().unwrap();
            assert!(e.contains(&format!("c.toml line 8: [run] {key}")), "{e}");
        }
        // A bad value names its line, as TOML's own errors do.
        std::fs::write(&p, format!("{base}[rules]\nquota_strategy = \"x\"\n")).unwrap();
        let e = Campaign::load(&p).unwrap_err().0;
        assert!(e.contains("c.toml line 8: [rules] quota_strategy"), "{e}");
        std::fs::write(
            &p,
            format!("{base}[window]\nstart = \"9pm\"\nend = \"06:00\"\n"),
        )
        .unwrap();
        let e = Campaign::load(&p).unwrap_err().0;
        assert!(e.contains("c.toml line 8:"), "{e}");
    }

    #[test]
    fn secret_files_lose_a_byte_order_mark_and_say_where_the_password_must_be() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw.txt");
        std::fs::write(&p, "\u{feff}segreto\r\n").unwrap();
        assert_eq!(
            read_secret_file(&p, "password").unwrap().expose_secret(),
            "segreto"
        );
        std::fs::write(&p, "\nsegreto\n").unwrap();
        let e = read_secret_file(&p, "password").unwrap_err().0;
        assert!(e.contains("its first line is empty"), "{e}");
        std::fs::write(&p, "").unwrap();
        assert!(
            read_secret_file(&p, "password")
                .unwrap_err()
                .0
                .contains("is empty")
        );
    }

    #[test]
    fn master_without_password_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[source]\nhost = \"a\"\nmaster_user = \"admin\"\n[target]\nhost=\"b\"\n[accounts]\nfile=\"a.csv\"\n").unwrap();
        let c = Campaign::load(&p).unwrap();
        assert!(
            c.server("source")
                .unwrap_err()
                .0
                .contains("master_password_file")
        );
        assert_eq!(
            c.state(),
            Location::File(dir.path().join("trasloco-state.sqlite"))
        );
    }
}
