//! One mailbox: connect both sides, map folders, sync each folder, retry after drops.

use crate::appends::Appends;
use crate::budget::MemoryBudget;
use crate::daily::DailyCap;
use crate::folder::{
    Checked, Copied, EvidenceCtx, FolderCtx, locate_differences, note_altered, record_check,
    sync_folder, verify_folder,
};
use crate::source::{Source, SourceConn, imap_folders, imap_folders_status};
use crate::unchanged::{Unchanged, is_clean};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use trasloco_core::accounting::{FailureClass, FolderReport, MailboxReport, MailboxStatus};
use trasloco_core::folder_map::{self, Folder, FolderMapping, MapOptions, Role};
use trasloco_imap::{Client, Credentials, Endpoint, Error, ErrorKind, Statuses, TlsOptions};
use trasloco_state::State;

/// Which side of the migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideName {
    /// The old server.
    Source,
    /// The new server.
    Target,
}

impl fmt::Display for SideName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SideName::Source => "source",
            SideName::Target => "target",
        })
    }
}

/// One side: where and as whom.
#[derive(Debug, Clone)]
pub struct Side {
    /// Server.
    pub endpoint: Endpoint,
    /// Certificate options.
    pub tls: TlsOptions,
    /// Login.
    pub credentials: Credentials,
}

impl Side {
    /// `user@host` for reports and state; never includes a secret.
    pub fn label(&self) -> String {
        format!("{}@{}", self.credentials.user, self.endpoint.host)
    }

    /// How the server is known to the governors and to the workers' per-server limits and
    /// back-off: `host:port`.
    pub fn server(&self) -> String {
        format!("{}:{}", self.endpoint.host, self.endpoint.port)
    }
}

/// How to sync.
#[derive(Debug, Clone)]
pub struct Options {
    /// Decide and report, write nothing (no folder, message, flag or state change).
    pub dry_run: bool,
    /// Read copied messages back from the target and compare SHA-256.
    pub verify: bool,
    /// Upper bound of body bytes in one fetch/append batch.
    pub batch_bytes: u64,
    /// Upper bound of messages in one MULTIAPPEND.
    pub batch_messages: usize,
    /// Source folders not to copy (globs over Unicode names; children included when the
    /// pattern ends in `*`).
    pub exclude: Vec<String>,
    /// Explicit folder renames.
    pub renames: BTreeMap<String, String>,
    /// Source folders not copied because of their special-use role.
    pub exclude_roles: Vec<Role>,
    /// Source folders (globs) left for a later phase: skipped as `folder-deferred`.
    pub defer: Vec<String>,
    /// When set, only these folders are looked at (the catch-up phase); the rest are left
    /// out of the run and its report.
    pub only: Option<FolderSelect>,
    /// Messages left out by their INTERNALDATE (phases, quota archive cuts).
    pub date_rules: Vec<DateRule>,
    /// PEC messages: signatures checked before upload and after read-back, evidence manifest.
    pub pec: Option<std::sync::Arc<crate::PecEvidence>>,
    /// A quota archive's cut moved: copies on the target of messages now behind it, and
    /// already in the archive, leave the target.
    pub evict: Option<std::sync::Arc<Evict>>,
    /// How many times a dropped connection is re-established before the mailbox is given up.
    pub max_reconnects: u32,
    /// The largest message the target takes, when known otherwise than by its APPENDLIMIT
    /// (a provider's documented limit); a larger one fails before it is uploaded.
    pub size_limit: Option<u64>,
    /// What the size-limit failure adds (how to raise it).
    pub size_limit_hint: Option<String>,
    /// Flags never set on the target (reported as dropped, per flag).
    pub never_flags: Vec<String>,
    /// Set a copy's flags again by STORE after the APPEND when it is `\Flagged` (Exchange
    /// forgets `\Flagged` given with APPEND).
    pub flag_after_append: bool,
    /// The target ends a session after this many refused commands (Exchange Online: 10):
    /// appends go in batches small enough that a session never reaches it, and a connection
    /// logs in again between batches before it does.
    pub session_errors: Option<u32>,
    /// The longest line (bytes, without its CRLF) the target takes: a message with a longer
    /// one fails before upload with the reason (its bytes are never rewritten).
    pub max_line: Option<usize>,
    /// The most bytes a target account takes in a day (Gmail: 500 MB over IMAP), counted in
    /// the state across runs; at the cap the mailbox stops, incomplete, until the next day.
    pub daily_upload: Option<u64>,
    /// The target stores an APPEND whose Message-ID it already holds as that message (Gmail):
    /// such a copy read back with other bytes but the same Message-ID counts as present.
    pub merges_by_message_id: bool,
    /// Leave out, under `folder-shared`, the source folders the user does not administer
    /// (RFC 4314 MYRIGHTS without `a`): Zimbra shows folders other accounts shared (mounted)
    /// in the user's own tree.
    pub shared_by_rights: bool,
    /// A source that shows one message in several folders (Gmail's labels, X-GM-EXT-1):
    /// copy each message into one of them only (see `labels`).
    pub copy_once: bool,
    /// Mailboxes of the run working at once: the most any server sees; a server that
    /// throttles sees half as many, growing back by one a minute.
    pub mailboxes_at_once: usize,
    /// Source folders that hold no mail (a provider's calendars, contacts, tasks): left out
    /// under the rule `folder-not-mail`, children included.
    pub not_mail: Vec<String>,
    /// First back-off delay after a drop; doubles each time.
    pub backoff: Duration,
    /// Message bytes in memory at once, shared by every mailbox that clones these options.
    pub memory: MemoryBudget,
    /// Target connections that append at once in each lane (each takes whole batches).
    pub append_connections: usize,
    /// Folders synced at once per mailbox, each lane with its own source and target
    /// connections. On a slow link a folder spends most of its time waiting for round trips.
    pub lanes: usize,
    /// Messages of a folder listed, compared and copied at a time: a folder's listing costs
    /// the memory of this many messages, whatever the folder holds.
    pub listing_window: usize,
    /// POP3 sources: mark copied messages `\Seen` (their owner's client downloaded them).
    pub pop3_seen: bool,
    /// POP3 sources: after a verified copy, delete from the server the messages received more
    /// than this many days ago (never one whose copy was not read back identical).
    pub leave_days: Option<u32>,
    /// A clean stop asked for (Ctrl-C, SIGTERM): no new batch, window, folder or mailbox.
    pub stop: crate::Stop,
    /// Folders whose STATUS counters on both servers are those their last clean pass left
    /// are reported as that pass left them, not opened (see `unchanged`).
    pub skip_unchanged: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dry_run: false,
            verify: true,
            batch_bytes: 4 * 1024 * 1024,
            batch_messages: 300,
            exclude: Vec::new(),
            renames: BTreeMap::new(),
            exclude_roles: Vec::new(),
            defer: Vec::new(),
            only: None,
            date_rules: Vec::new(),
            pec: None,
            evict: None,
            max_reconnects: 5,
            size_limit: None,
            size_limit_hint: None,
            never_flags: Vec::new(),
            flag_after_append: false,
            session_errors: None,
            max_line: None,
            copy_once: false,
            shared_by_rights: false,
            merges_by_message_id: false,
            daily_upload: None,
            mailboxes_at_once: 1,
            not_mail: Vec::new(),
            backoff: Duration::from_secs(1),
            memory: MemoryBudget::default(),
            append_connections: 1,
            lanes: 2,
            listing_window: 10_000,
            pop3_seen: true,
            leave_days: None,
            stop: crate::Stop::default(),
            skip_unchanged: true,
        }
    }
}

/// Folders picked by name (globs) or by special-use role.
#[derive(Debug, Clone, Default)]
pub struct FolderSelect {
    /// Globs over source names.
    pub patterns: Vec<String>,
    /// Roles (INBOX is `Role::Inbox`).
    pub roles: Vec<Role>,
}

impl FolderSelect {
    /// Whether a source folder is picked.
    pub fn picks(&self, name: &str, role: Option<Role>) -> bool {
        self.patterns.iter().any(|p| crate::folder_matches(p, name))
            || role_of(name, role).is_some_and(|r| self.roles.contains(&r))
    }
}

fn role_of(name: &str, role: Option<Role>) -> Option<Role> {
    if name.eq_ignore_ascii_case("INBOX") {
        Some(Role::Inbox)
    } else {
        role.or_else(|| folder_map::role_from_name(name))
    }
}

/// Copies to take off the target because a quota archive now holds their messages: those
/// dated before `before` whose archive id (`UIDVALIDITY:UID` of the source) the archive's
/// manifest records in the same folder. Only copies this tool made and recorded are removed.
#[derive(Debug, Clone, Default)]
pub struct Evict {
    /// Unix seconds: the cut.
    pub before: i64,
    /// The archive's recorded ids per folder (`/` between levels).
    pub archived: std::collections::HashMap<String, std::collections::HashSet<String>>,
    /// The rule the removed copies are counted under.
    pub rule: String,
}

/// Messages skipped by date, counted under `rule`. An undated message is kept by `before`
/// rules and skipped by `from` rules (it is treated as new).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateRule {
    /// The bucket name in reports.
    pub rule: String,
    /// Skip messages dated before this (Unix seconds).
    pub skip_before: Option<i64>,
    /// Skip messages dated at or after this (Unix seconds).
    pub skip_from: Option<i64>,
}

impl Options {
    /// The rule that leaves a whole source folder out, if any. A rule over a folder covers its
    /// subtree: `defer = ["Archivio"]` defers `Archivio/2019` too (`delimiter` is the source's).
    pub(crate) fn folder_rule(
        &self,
        name: &str,
        role: Option<Role>,
        delimiter: Option<char>,
    ) -> Option<&'static str> {
        let glob = |ps: &[String]| {
            ps.iter()
                .any(|p| crate::folder_or_parent_matches(p, name, delimiter))
        };
        if glob(&self.exclude)
            || role_of(name, role).is_some_and(|r| self.exclude_roles.contains(&r))
        {
            Some("folder-excluded")
        } else if glob(&self.not_mail) {
            Some("folder-not-mail")
        } else if glob(&self.defer) {
            Some("folder-deferred")
        } else {
            None
        }
    }

    /// Whether the run looks at a source folder at all.
    pub(crate) fn selected(&self, name: &str, role: Option<Role>) -> bool {
        self.only.as_ref().is_none_or(|s| s.picks(name, role))
    }

    /// The date rule that skips a message with this INTERNALDATE, if any.
    pub(crate) fn date_rule(&self, internal_date: Option<&str>) -> Option<&str> {
        if self.date_rules.is_empty() {
            return None;
        }
        let t = internal_date
            .and_then(trasloco_archive::dates::parse_imap)
            .map(|t| t.timestamp());
        self.date_rules
            .iter()
            .find(|r| match t {
                Some(t) => {
                    r.skip_before.is_some_and(|b| t < b) || r.skip_from.is_some_and(|f| t >= f)
                }
                None => r.skip_from.is_some(),
            })
            .map(|r| r.rule.as_str())
    }
}

/// Lanes, and target connections per lane, for one attempt: what the options say, cut to
/// what servers that throttled allow a mailbox now (a lane holds one source connection and
/// `append_connections` target connections; fewer appenders go first, then fewer lanes).
fn connections_now(opts: &Options, source: &Source, target: &Side) -> (usize, usize) {
    let mut lanes = match source {
        Source::Imap(_) => opts.lanes.max(1),
        _ => 1,
    };
    let mut appenders = if opts.dry_run {
        1
    } else {
        opts.append_connections.max(1)
    };
    if let Source::Imap(s) = source
        && let Some(n) = crate::governor::of(&s.server(), opts.mailboxes_at_once).connections()
    {
        lanes = lanes.min(n).max(1);
    }
    if let Some(n) = crate::governor::of(&target.server(), opts.mailboxes_at_once).connections() {
        appenders = appenders.min((n / lanes).max(1));
        lanes = lanes.min((n / appenders).max(1));
    }
    (lanes, appenders)
}

/// The rule under which another account's folder shown in the user's tree is left out.
pub const SHARED_RULE: &str = "folder-shared";

/// Messages to go through, at most, for a mailbox to be copied on one connection per server
/// (see `sync_once`).
const SMALL_MAILBOX: u64 = 2_000;

/// [`SMALL_MAILBOX`]; debug builds take `TRASLOCO_TEST_SMALL_MAILBOX=N` instead, so that tests
/// of small mailboxes can go through the lanes and reader connections of large ones.
fn small_mailbox() -> u64 {
    #[cfg(debug_assertions)]
    if let Some(n) = std::env::var("TRASLOCO_TEST_SMALL_MAILBOX")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    SMALL_MAILBOX
}

/// With `shared_by_rights` (the `zimbra` source preset) and a source with the ACL extension:
/// the selectable folders the user does not administer — other accounts' folders a server
/// such as Zimbra shows (mounted) in the user's own tree. Their owners' migrations copy them.
pub(crate) async fn shared_folders(
    src: &mut SourceConn,
    mappings: &[FolderMapping],
    opts: &Options,
) -> Result<BTreeSet<String>, Error> {
    let (true, Some(client)) = (opts.shared_by_rights, src.client()) else {
        return Ok(BTreeSet::new());
    };
    let names: Vec<String> = mappings
        .iter()
        .filter(|m| m.selectable && !m.source.eq_ignore_ascii_case("INBOX"))
        .map(|m| m.source.clone())
        .collect();
    let Some(admin) = client.administers(&names).await? else {
        return Ok(BTreeSet::new());
    };
    Ok(names
        .into_iter()
        .zip(admin)
        .filter(|(_, a)| !a)
        .map(|(n, _)| n)
        .collect())
}

/// Progress callbacks, called from the sync task. All have empty defaults.
pub trait Progress: Send + Sync {
    /// Work found in a folder: messages and bytes to copy.
    fn planned(&self, _messages: u64, _bytes: u64) {}
    /// Messages stored on the target.
    fn copied(&self, _messages: u64, _bytes: u64) {}
    /// A folder is being worked on.
    fn folder(&self, _name: &str) {}
    /// The mailbox starts again after a dropped connection: what was planned and not copied
    /// will be planned again.
    fn restart(&self) {}
}

impl Progress for () {}

/// Why a sync attempt stopped: a server (named by its side), or the state store.
pub(crate) enum SyncError {
    Imap {
        side: SideName,
        error: Error,
    },
    State(trasloco_state::Error),
    /// A local archive (the target of an export): its directory, its files.
    Local(String),
    /// A clean stop was asked for (the signal's number): what was started is finished and
    /// recorded, nothing new starts.
    Stopped(i32),
    /// The target account's daily upload cap is reached (the line says when it can go on):
    /// what was sent is recorded, nothing new is sent today.
    DailyCap(String),
}

impl From<trasloco_state::Error> for SyncError {
    fn from(e: trasloco_state::Error) -> SyncError {
        SyncError::State(e)
    }
}

/// Throttling met by one mailbox: how often, how long it waited, and the wait to come when a
/// server does not say. A server that keeps throttling without any progress for an hour ends
/// the mailbox (it resumes at the next run); until then it only slows it.
#[derive(Default)]
struct Throttle {
    times: u32,
    waited: Duration,
    without_progress: Duration,
    unsaid: Duration,
}

impl Throttle {
    const FIRST: Duration = Duration::from_secs(5);
    const MOST: Duration = Duration::from_secs(300);
    const GIVE_UP: Duration = Duration::from_secs(3600);

    fn may_wait(&self) -> bool {
        self.without_progress < Self::GIVE_UP
    }

    /// The wait for this throttling: what the server said (at most 15 minutes), else a
    /// back-off that doubles from 5 s to 5 minutes and starts again after progress.
    fn next(&mut self, told: Option<Duration>, moved: bool) -> Duration {
        if moved {
            self.without_progress = Duration::ZERO;
            self.unsaid = Duration::ZERO;
        }
        let wait = match told {
            Some(t) => t.min(Duration::from_secs(900)),
            None => {
                self.unsaid = if self.unsaid.is_zero() {
                    Self::FIRST
                } else {
                    (self.unsaid * 2).min(Self::MOST)
                };
                self.unsaid
            }
        };
        self.times += 1;
        self.waited += wait;
        self.without_progress += wait;
        wait
    }

    /// A wait ended `left` early (a clean stop): only the time waited counts.
    fn cut_short(&mut self, left: Duration) {
        self.waited = self.waited.saturating_sub(left);
        self.without_progress = self.without_progress.saturating_sub(left);
    }

    fn report_into(&self, r: &mut MailboxReport) {
        r.throttled = self.times;
        r.throttled_seconds = self.waited.as_secs_f64();
    }
}

/// Why an attempt ends between batches when a connection's OAuth2 token is due: the next
/// attempt logs in with a fresh one, before the server ends the session (Exchange Online
/// closes it at expiry, `* BYE Session invalidated - AccessTokenExpired`).
pub(crate) const TOKEN_RENEWAL: &str = "the OAuth2 token is due for renewal";

/// The attempt ends here so `side` logs in again with a fresh token.
pub(crate) fn renew(side: SideName) -> SyncError {
    SyncError::Imap {
        side,
        error: Error::new(ErrorKind::Dropped, TOKEN_RENEWAL),
    }
}

/// Why an attempt ends between batches when the target's session is near the number of
/// refused commands after which the server ends it (Exchange Online: 10).
pub(crate) const SESSION_RESET: &str =
    "the session is near the number of refusals after which the server ends it";

/// The attempt ends here so `side` starts a new session before the server ends this one.
pub(crate) fn reset(side: SideName) -> SyncError {
    SyncError::Imap {
        side,
        error: Error::new(ErrorKind::Dropped, SESSION_RESET),
    }
}

impl SyncError {
    /// Whether this ends an attempt only to log in again (a token due, a session near its
    /// error limit): every answer was read first.
    pub(crate) fn is_renewal(&self) -> bool {
        matches!(self, SyncError::Imap { error, .. }
            if error.message == TOKEN_RENEWAL || error.message == SESSION_RESET)
    }

    /// Whether this ends an attempt because the session had too many refusals.
    fn is_reset(&self) -> bool {
        matches!(self, SyncError::Imap { error, .. } if error.message == SESSION_RESET)
    }

    /// The failure class and the one line for the report, naming the side and its account.
    pub(crate) fn describe(self, src_label: &str, tgt_label: &str) -> (FailureClass, String) {
        match self {
            SyncError::Imap { side, error } => {
                let who = if side == SideName::Source {
                    src_label
                } else {
                    tgt_label
                };
                // An error that already says what to do needs no second hint; one whose
                // server words are known to mislead gets what they mean.
                let text = error.to_string();
                let advised = text.contains("--ca-file")
                    || text.contains("; check ")
                    || text.contains("OAuth2 login")
                    || text.contains("token endpoint");
                let line = match (known_failure(&text), hint(error.kind, side)) {
                    (Some(k), _) => format!("{side} {who}: {error}; {k}"),
                    (None, h) if h.is_empty() || advised => format!("{side} {who}: {error}"),
                    (None, h) => format!("{side} {who}: {error}; {h}"),
                };
                (failure_class(error.kind), line)
            }
            SyncError::State(e) if e.is_fenced() => (FailureClass::Stopped, e.to_string()),
            SyncError::State(e) => (FailureClass::State, e.to_string()),
            SyncError::Local(why) => (FailureClass::Local, format!("target {tgt_label}: {why}")),
            SyncError::DailyCap(line) => (FailureClass::Stopped, line),
            SyncError::Stopped(signal) => (
                FailureClass::Stopped,
                format!(
                    "stopped by {} before every message was reached; the same command resumes it",
                    signal_name(signal)
                ),
            ),
        }
    }

    /// Worth reconnecting and trying again.
    fn is_transient(&self) -> bool {
        matches!(self, SyncError::Imap { error, .. } if error.is_transient())
    }
}

/// How people know a signal: `Ctrl-C (SIGINT)`, `SIGTERM`.
pub fn signal_name(signal: i32) -> String {
    match signal {
        2 => "Ctrl-C (SIGINT)".into(),
        15 => "SIGTERM".into(),
        crate::stop::LEASE_ENDED => "the end of this worker's lease on the mailbox".into(),
        n => format!("signal {n}"),
    }
}

impl Options {
    /// `Err(Stopped)` once a clean stop was asked for: checked before anything new starts.
    pub(crate) fn go_on(&self) -> Result<(), SyncError> {
        match self.stop.requested() {
            Some(signal) => Err(SyncError::Stopped(signal)),
            None => Ok(()),
        }
    }
}

pub(crate) trait OnSide<T> {
    fn on(self, side: SideName) -> Result<T, SyncError>;
}

impl<T> OnSide<T> for Result<T, Error> {
    fn on(self, side: SideName) -> Result<T, SyncError> {
        self.map_err(|error| SyncError::Imap { side, error })
    }
}

/// The failure class of a server error, as reports and exit codes count it.
pub fn failure_class(kind: ErrorKind) -> FailureClass {
    match kind {
        ErrorKind::Connect | ErrorKind::Dropped => FailureClass::Connection,
        ErrorKind::Tls => FailureClass::Tls,
        ErrorKind::Auth => FailureClass::Authentication,
        ErrorKind::Refused | ErrorKind::Protocol => FailureClass::Protocol,
        ErrorKind::Throttled => FailureClass::Connection,
    }
}

/// What to do about failures whose server words do not say it (seen with Exchange Online,
/// Zimbra and Google).
pub fn known_failure(text: &str) -> Option<&'static str> {
    let l = text.to_ascii_lowercase();
    let has = |s: &str| l.contains(s);
    if has("user is authenticated but not connected") {
        Some(
            "the login worked but the mailbox cannot be opened: for an Exchange Online app, grant its service principal FullAccess on this mailbox (Add-MailboxPermission) and check that New-ServicePrincipal was given the Enterprise application's Object ID, not the App registration's; with a password login the password may be wrong",
        )
    } else if has("does not have imap access")
        || has("imap access disabled")
        || has("imap is disabled")
    {
        Some(
            "IMAP is switched off for this account: on Zimbra `zmprov ma ACCOUNT zimbraImapEnabled TRUE`, on Exchange Online `Set-CASMailbox ACCOUNT -ImapEnabled $true`",
        )
    } else if has("adminloginas") {
        Some(
            "the admin may not log in as this user: on Zimbra `zmprov grantRight domain DOMAIN usr ADMIN adminLoginAs` (or use a global admin)",
        )
    } else if has("unauthorized client or scope") || has("unauthorized_client") {
        Some(
            "Google: in the Admin console (Security, API controls, Domain-wide delegation) give the service account's client id the scope https://mail.google.com/",
        )
    } else if has("maximum size of appendable message") {
        Some(
            "raise the mailbox's limit: `Set-Mailbox ACCOUNT -MaxReceiveSize 150MB -MaxSendSize 150MB` (Exchange Online allows up to 150 MB)",
        )
    } else if has("folder name is reserved") {
        Some("the target reserves this folder name: map it to another with [folders] rename")
    } else {
        None
    }
}

fn hint(kind: ErrorKind, side: SideName) -> &'static str {
    match (kind, side) {
        (ErrorKind::Auth, SideName::Source) => {
            "check the source user name and password (or master user)"
        }
        (ErrorKind::Auth, SideName::Target) => {
            "check the target user name and password (or master user)"
        }
        (ErrorKind::Tls, _) => {
            "if the server uses a private CA, trust it with --ca-file (campaign: ca_file); check the TLS mode"
        }
        (ErrorKind::Connect, _) => "check host, port and firewall",
        _ => "",
    }
}

/// The mailbox's row in the state: created for a real run (`None` in a dry run, which records
/// nothing), and the row whose POP3 UIDs the source uses (a dry run reads an existing one).
pub(crate) async fn mailbox_ids(
    state: &State,
    src_label: &str,
    tgt_label: &str,
    dry_run: bool,
) -> Result<(Option<i64>, Option<i64>), SyncError> {
    if dry_run {
        Ok((None, state.find_mailbox(src_label, tgt_label).await?))
    } else {
        let id = state.mailbox_id(src_label, tgt_label).await?;
        Ok((Some(id), Some(id)))
    }
}

pub(crate) async fn connect(side: &Side, name: SideName) -> Result<Client, SyncError> {
    let mut client = Client::connect(&side.endpoint, &side.tls).await.on(name)?;
    client.login(&side.credentials).await.on(name)?;
    Ok(client)
}

/// Synchronise one mailbox and report. Never panics on server behaviour; every failure ends
/// up in the report with a one-line reason naming the side.
pub async fn sync_mailbox(
    source: &Source,
    target: &Side,
    state: &State,
    opts: &Options,
    progress: &dyn Progress,
) -> MailboxReport {
    let started = Instant::now();
    let (src_label, tgt_label) = (source.label(), target.label());
    let mut reconnects = 0u32;
    let mut renewals = 0u32;
    let mut resets = 0u32;
    let mut throttle = Throttle::default();
    // Reconnects in a row that made no progress: those are what `max_reconnects` bounds. A
    // reconnect after progress is not a failure: a connection reset every few minutes must
    // not end a mailbox that moves between the resets.
    let mut fruitless = 0u32;
    let mut earlier = Earlier::default();
    let mut delay = opts.backoff;
    let appends = Appends::default();
    // Each attempt takes a place with both servers (source first, always, so mailboxes never
    // wait on each other in a circle); a server that throttles gives out fewer places.
    let source_key = match source {
        Source::Imap(s) | Source::Pop3(s) => Some(s.server()),
        Source::Archive(_) => None,
    };
    let target_key = target.server();
    let governors: Vec<std::sync::Arc<crate::governor::Governor>> = source_key
        .iter()
        .filter(|k| **k != target_key)
        .chain(std::iter::once(&target_key))
        .map(|k| crate::governor::of(k, opts.mailboxes_at_once))
        .collect();
    let governor_of = |side: SideName| {
        let k = if side == SideName::Source {
            source_key.clone().unwrap_or_else(|| target_key.clone())
        } else {
            target_key.clone()
        };
        crate::governor::of(&k, opts.mailboxes_at_once)
    };
    // A stop asked for while waiting out a throttling server: the attempt that was throttled
    // is the last one, reported with what it did.
    let mut stopped_waiting: Option<(i32, Vec<FolderReport>)> = None;
    loop {
        let mut partial: Vec<FolderReport> = Vec::new();
        // What attempts before this one finished: reported again as they were, no progress.
        let finished_before: BTreeSet<String> = earlier.finished.keys().cloned().collect();
        // Messages the target refused count as progress: they are not sent again.
        let refused_before = appends.refusals();
        let result = match stopped_waiting.take() {
            Some((signal, last)) => {
                partial = last;
                Err(SyncError::Stopped(signal))
            }
            None => {
                let mut slots = Vec::with_capacity(governors.len());
                for g in &governors {
                    slots.push(g.slot().await);
                }
                let result = sync_once(
                    source,
                    target,
                    state,
                    opts,
                    progress,
                    &appends,
                    &mut earlier,
                    &mut partial,
                )
                .await;
                drop(slots);
                result
            }
        };
        // Progress: a folder finished, a copy made, or a message the target refused (it is
        // not sent again in this run).
        let moved =
            earlier.moved_since(&finished_before, &partial) || appends.refusals() > refused_before;
        match result {
            Ok(()) => {
                appends.finish(state, None).await;
                earlier.carry(&mut partial);
                let mut report = MailboxReport::new(src_label.clone(), tgt_label.clone());
                report.folders = partial;
                report.reconnects = reconnects;
                report.token_renewals = renewals;
                report.session_resets = resets;
                throttle.report_into(&mut report);
                if let Source::Archive(a) = source {
                    report.skipped_files = a.skipped.iter().map(|s| s.why.clone()).collect();
                    report.warnings = a.warnings();
                }
                if let (Source::Pop3(side), Some(days)) = (source, opts.leave_days) {
                    let names = (src_label.as_str(), tgt_label.as_str());
                    match crate::pop3_cleanup::leave_days(
                        side,
                        crate::pop3_cleanup::Dest::Imap(target),
                        state,
                        names,
                        days,
                        opts,
                    )
                    .await
                    {
                        Ok(c) => report.source_cleanup = Some(c),
                        Err(e) => {
                            report.source_cleanup = Some(crate::pop3_cleanup::failed(days, e))
                        }
                    }
                }
                report.finish(opts.dry_run);
                // A mailbox found as its last clean pass left it has every copy read back.
                if !earlier.whole {
                    report.not_read_back = not_read_back(state, &report, opts).await;
                }
                report.seconds = started.elapsed().as_secs_f64();
                return report;
            }
            Err(SyncError::Imap { side, error })
                if error.kind == ErrorKind::Throttled && throttle.may_wait() =>
            {
                // Throttling slows, never fails: wait what the server said (or back off when
                // it said nothing), then resume from the state.
                let wait = throttle.next(error.retry_after, moved);
                let (lanes, appenders) = connections_now(opts, source, target);
                let used = if side == SideName::Source {
                    lanes
                } else {
                    lanes * appenders
                };
                governor_of(side).throttled(used, opts.batch_messages);
                let who = if side == SideName::Source {
                    &src_label
                } else {
                    &tgt_label
                };
                tracing::warn!(
                    "{side} {who}: {error}; resuming in {} s (throttled {} time(s))",
                    wait.as_secs(),
                    throttle.times
                );
                let host = if side == SideName::Source {
                    match source {
                        Source::Imap(s) | Source::Pop3(s) => s.endpoint.host.clone(),
                        Source::Archive(_) => String::new(),
                    }
                } else {
                    target.endpoint.host.clone()
                };
                let _pause = trasloco_imap::timeouts::pause(&host, Instant::now() + wait);
                let until = Instant::now() + wait;
                while Instant::now() < until && opts.stop.requested().is_none() {
                    tokio::time::sleep(
                        until
                            .saturating_duration_since(Instant::now())
                            .min(Duration::from_millis(250)),
                    )
                    .await;
                }
                throttle.cut_short(until.saturating_duration_since(Instant::now()));
                match opts.stop.requested() {
                    Some(signal) => stopped_waiting = Some((signal, partial)),
                    None => {
                        earlier.keep(&partial);
                        progress.restart();
                    }
                }
            }
            Err(e) if e.is_reset() && (moved || fruitless < opts.max_reconnects) => {
                // Refused messages are not sent again in this run, so each new session gets
                // further; one that got nowhere counts as a fruitless reconnect.
                fruitless = if moved { 0 } else { fruitless + 1 };
                earlier.keep(&partial);
                resets += 1;
                progress.restart();
                tracing::info!(
                    "{src_label} → {tgt_label}: a new session before the server's error limit"
                );
            }
            Err(e) if e.is_renewal() && !e.is_reset() => {
                // Not a failure, and not a dropped connection: log in again at once.
                earlier.keep(&partial);
                renewals += 1;
                progress.restart();
                tracing::info!(
                    "{src_label} → {tgt_label}: logging in again with a new OAuth2 token"
                );
            }
            Err(e) if e.is_transient() && fruitless < opts.max_reconnects => {
                earlier.keep(&partial);
                reconnects += 1;
                // After progress the connection is made again at once; connections that fail
                // without progress back off, doubling each time. (An APPEND whose answer never
                // came may still be stored by the target: the next attempt takes over the
                // folders' lines and sweeps above them, so it need not wait for that.)
                let wait = if moved {
                    fruitless = 0;
                    delay = opts.backoff;
                    Duration::ZERO
                } else {
                    fruitless += 1;
                    delay
                };
                progress.restart();
                if let SyncError::Imap { side, error } = &e {
                    let who = if *side == SideName::Source {
                        &src_label
                    } else {
                        &tgt_label
                    };
                    let tries = match fruitless {
                        0 => "after progress".to_string(),
                        n => format!("{n}/{} without progress", opts.max_reconnects),
                    };
                    tracing::warn!(
                        "{side} {who}: {error}; reconnecting in {wait:?} (reconnect {reconnects}, {tries})"
                    );
                }
                tokio::time::sleep(wait).await;
                if fruitless > 0 {
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
            }
            Err(e) => {
                appends.finish(state, Some(&e)).await;
                // A worker whose lease ended (another one has the mailbox now) stops, as for a
                // signal: what it reached stays recorded, the rest is the new holder's.
                let stopped = matches!(e, SyncError::Stopped(_) | SyncError::DailyCap(_))
                    || matches!(&e, SyncError::State(s) if s.is_fenced());
                let (class, line) = e.describe(&src_label, &tgt_label);
                let mut report = MailboxReport::failed(src_label, tgt_label, class, line);
                report.reconnects = reconnects;
                report.token_renewals = renewals;
                report.session_resets = resets;
                throttle.report_into(&mut report);
                // What earlier attempts copied counts too (their folders were listed again).
                earlier.carry(&mut partial);
                report.folders = partial;
                report.tally();
                if stopped {
                    // Not a failure: what it reached is done; the rest is for the next run.
                    let line = report.error.clone();
                    report.finish(opts.dry_run);
                    if report.status == MailboxStatus::InSync && !earlier.got_through {
                        // Stopped before some folder was reached (while waiting out a
                        // throttling server, say): not in sync, whatever the folders reached say.
                        report.status = MailboxStatus::Incomplete;
                        report.error = line;
                    } else if report.status == MailboxStatus::InSync {
                        report.failure = None;
                        report.error = None;
                    }
                } else if earlier.got_through {
                    // It failed after every folder was copied (reading the copies back, say):
                    // every message is on the target, and "failed" would say otherwise.
                    let line = report.error.take().unwrap_or_default();
                    report.finish(opts.dry_run);
                    if matches!(
                        report.status,
                        MailboxStatus::InSync | MailboxStatus::Altered
                    ) {
                        report.status = MailboxStatus::Incomplete;
                        report.error = Some(format!(
                            "every message is on the target, but then {line}; the next run reads back the copies this one could not"
                        ));
                    } else {
                        report.status = MailboxStatus::Failed;
                        report.error = Some(line);
                    }
                }
                report.not_read_back = not_read_back(state, &report, opts).await;
                report.seconds = started.elapsed().as_secs_f64();
                return report;
            }
        }
    }
}

/// The mailbox's copies never read back, when copies are read back at all.
async fn not_read_back(state: &State, report: &MailboxReport, opts: &Options) -> u64 {
    if !opts.verify || opts.dry_run {
        return 0;
    }
    match state.find_mailbox(&report.source, &report.target).await {
        Ok(Some(id)) => state.unchecked_count(id).await.unwrap_or(0),
        _ => 0,
    }
}

/// What reading copies back needs besides the connection.
struct Reading<'a> {
    opts: &'a Options,
    state: &'a State,
    mailbox_id: Option<i64>,
    source: &'a str,
    target: &'a str,
    target_port: u16,
}

/// Read back a listing window's copies of one folder (into `target_folder`, whose UIDVALIDITY
/// is `uid_validity`) and mark them read back in the state.
async fn read_back(
    c: &mut Client,
    r: &Reading<'_>,
    source_folder: &str,
    target_folder: &str,
    copied: &[Copied],
    uid_validity: u32,
) -> Result<Checked, SyncError> {
    let evidence = r.opts.pec.as_deref().map(|pec| EvidenceCtx {
        pec,
        source: r.source,
        target: r.target,
        source_folder,
        target_port: r.target_port,
        target_uid_validity: uid_validity,
    });
    let checked = verify_folder(
        c,
        target_folder,
        copied,
        evidence,
        r.opts.merges_by_message_id,
    )
    .await?;
    if let Some(mb) = r.mailbox_id
        && let Some(f) = r.state.find_folder(mb, source_folder).await?
    {
        r.state.mark_checked(f.id, &checked.read).await?;
    }
    Ok(checked)
}

/// What the attempts of a mailbox that ended on a dropped connection did.
#[derive(Default)]
struct Earlier {
    /// Folders an attempt finished (copied, read back): later attempts do not look at them
    /// again, and report them as that attempt did.
    finished: BTreeMap<String, FolderReport>,
    /// In folders not finished: what was done before the drop. The attempt that finishes the
    /// folder finds those copies present, but this run made (and read back) them.
    unfinished: BTreeMap<String, Done>,
    /// Whether the last attempt got through every folder (copied what it had to) before it
    /// failed: a failure after that (reading copies back, logging out) leaves every message
    /// on the target.
    got_through: bool,
    /// Which folder takes each message of a Gmail source, read by the first attempt: the
    /// next attempts (after a throttle, a drop) use it again instead of reading every folder's
    /// ids once more.
    owners: Option<std::sync::Arc<crate::labels::Owners>>,
    /// The attempt found the whole mailbox as its last clean pass left it: nothing was copied
    /// and no copy is left unread.
    whole: bool,
}

/// Work done in a folder by attempts that did not finish it.
#[derive(Default)]
struct Done {
    copied: u64,
    bytes: u64,
    verified: u64,
    fetched: u64,
}

impl Earlier {
    /// Whether the attempt that ended with `partial` moved anything: a folder finished that
    /// was not before, or copies made in a folder it had not finished.
    fn moved_since(&self, finished_before: &BTreeSet<String>, partial: &[FolderReport]) -> bool {
        self.finished.len() > finished_before.len()
            || partial
                .iter()
                .any(|f| !finished_before.contains(&f.source) && f.buckets.copied > 0)
    }

    /// After a failed attempt: keep what it did in the folders it did not finish.
    fn keep(&mut self, partial: &[FolderReport]) {
        for f in partial
            .iter()
            .filter(|f| !self.finished.contains_key(&f.source))
        {
            let d = self.unfinished.entry(f.source.clone()).or_default();
            d.copied += f.buckets.copied;
            d.bytes += f.bytes_copied;
            d.verified += f.verified;
            d.fetched += f.bodies_fetched;
        }
    }

    /// Into the final folder reports: copies earlier attempts made count as copied by this
    /// run, with their bytes and read-backs.
    fn carry(&self, folders: &mut [FolderReport]) {
        for f in folders {
            if let Some(d) = self.unfinished.get(&f.source) {
                let n = d.copied.min(f.buckets.already_present);
                f.buckets.already_present -= n;
                f.buckets.copied += n;
                f.bytes_copied += d.bytes;
                f.verified += d.verified;
                f.bodies_fetched += d.fetched;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn sync_once(
    source: &Source,
    target: &Side,
    state: &State,
    opts: &Options,
    progress: &dyn Progress,
    appends: &Appends,
    earlier: &mut Earlier,
    reports: &mut Vec<FolderReport>,
) -> Result<(), SyncError> {
    earlier.got_through = false;
    // Against a target that throttled, smaller batches: fewer APPENDs on their way when it
    // says no again.
    let smaller;
    let opts = match crate::governor::of(&target.server(), opts.mailboxes_at_once).batch() {
        Some(n) if n < opts.batch_messages => {
            smaller = Options {
                batch_messages: n,
                ..opts.clone()
            };
            &smaller
        }
        _ => opts,
    };
    // The two servers are independent: log in and list on both at once.
    // With verification on, a third connection reads copies back while the next folders are
    // copied.
    let (src_label, tgt_label) = (source.label(), target.label());
    let (mailbox_id, uid_owner) = mailbox_ids(state, &src_label, &tgt_label, opts.dry_run).await?;
    let first_attempt = earlier.finished.is_empty() && earlier.unfinished.is_empty();
    let mut lines_left = false;
    if let Some(id) = mailbox_id {
        let left = appends.start_attempt(state, id).await?;
        lines_left = !left.is_empty();
        if let Some(since) = left.iter().map(|l| l.since.as_str()).min() {
            tracing::warn!(
                "target {tgt_label}: the run that started appending at {since} stopped before the target answered every APPEND; what the target stores of them, now or later, is looked for above the UIDs it had then in {} folder(s), and removed where it doubles a copy",
                left.len()
            );
        }
    }
    // A mailbox whose source lists the same folders with the same counters as after its last
    // clean pass is reported as that pass left it, without logging in to the target (see
    // `unchanged`). Any other pass forgets that record before it may write anything.
    let whole = match mailbox_id {
        Some(mb) => state.clean_mailbox(mb).await?.map(|r| (mb, r)),
        None => None,
    };
    let whole_applies =
        crate::unchanged::applies_to_mailbox(opts) && matches!(source, Source::Imap(_));
    let mut listed_first: Option<(SourceConn, Vec<Folder>, Statuses)> = None;
    if let Some((mb, record)) = whole {
        if whole_applies && first_attempt && !lines_left {
            let mut src = SourceConn::open(source, state, uid_owner, !opts.dry_run, opts.pop3_seen)
                .await
                .on(SideName::Source)?;
            let (folders, status) = src.folders_and_status().await.on(SideName::Source)?;
            let same = crate::unchanged::mailbox_key(&folders, &status, opts)
                .is_some_and(|k| k == record.listing);
            if same
                && let Ok(recorded) = serde_json::from_str::<Vec<FolderReport>>(&record.report_json)
            {
                reports.extend(recorded);
                earlier.got_through = true;
                earlier.whole = true;
                src.logout().await;
                return Ok(());
            }
            listed_first = Some((src, folders, status));
        }
        state.forget_clean_mailbox(mb).await?;
    }
    // Folders found as their last clean pass left them are not opened (see `unchanged`).
    let unchanged = Unchanged::load(state, mailbox_id, opts).await?;
    // Folders are synced on `lanes` connection sets at once (one source connection and
    // `append_connections` target connections each); POP3 has one folder and an archive needs
    // no connection, so they use one lane. Where the source's folder counters are asked, one
    // lane opens first, and more only for a mailbox with more than one folder to go through
    // and more than SMALL_MAILBOX messages in them: every connection costs each server a
    // process and a login, which for a small mailbox cost more than the lanes save; most
    // mailboxes of a cutover pass changed in one folder or none.
    let (lanes, appenders) = connections_now(opts, source, target);
    let rerun = unchanged.as_ref().is_some_and(Unchanged::any);
    // The source connection the whole-mailbox check opened is the first lane's.
    let (first_src, listed) = match listed_first {
        Some((src, folders, status)) => (Some(src), Some((folders, status))),
        None => (None, None),
    };
    let first_src = std::sync::Mutex::new(first_src);
    let open_lane = || async {
        let opened = first_src
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let (src, tgts) = tokio::join!(
            async {
                match opened {
                    Some(src) => Ok(src),
                    None => {
                        SourceConn::open(source, state, uid_owner, !opts.dry_run, opts.pop3_seen)
                            .await
                            .on(SideName::Source)
                    }
                }
            },
            futures_util::future::join_all(
                (0..appenders).map(|_| connect(target, SideName::Target))
            )
        );
        // The source's failure first: that is the one to fix first.
        let src = src?;
        let tgts = tgts
            .into_iter()
            .collect::<Result<Vec<Client>, SyncError>>()?;
        Ok::<_, SyncError>((src, tgts))
    };
    // With verification, up to one reader per lane reads copies back while the next folders
    // are copied (one reader fell behind two lanes over a slow link). Readers connect when
    // there is something to read back: a run that copies nothing opens none, and a second
    // reader opens only when a copied folder waits while the first is busy (each connection
    // costs the server a process and a login).
    let mut readers = if opts.verify && !opts.dry_run {
        lanes
    } else {
        0
    };
    let first_lanes = if unchanged.is_some() { 1 } else { lanes };
    let opened = futures_util::future::join_all((0..first_lanes).map(|_| open_lane())).await;
    let mut conns = opened.into_iter().collect::<Result<Vec<_>, SyncError>>()?;
    let (src, tgts) = &mut conns[0];
    let tgt = &mut tgts[0];
    // The source's counters are asked whenever a clean pass may be recorded (they must be
    // those from before the folder is listed); the target's only when a record may be used.
    let (src_folders, tgt_lists) = tokio::join!(
        async {
            if let Some(listed) = listed {
                Ok(listed)
            } else if unchanged.is_some() {
                src.folders_and_status().await
            } else {
                Ok((src.folders().await?, Statuses::new()))
            }
        },
        async {
            if rerun {
                imap_folders_status(tgt).await
            } else {
                let (f, subs, delim) = imap_folders(tgt).await?;
                Ok((f, subs, delim, Statuses::new()))
            }
        }
    );
    let (src_folders, src_status) = src_folders.on(SideName::Source)?;
    let (tgt_folders, tgt_subs, tgt_delim, tgt_status) = tgt_lists.on(SideName::Target)?;
    let map_opts = MapOptions {
        renames: opts.renames.clone(),
    };
    let mut mappings = folder_map::map_folders(&src_folders, &tgt_folders, tgt_delim, &map_opts);
    if earlier.owners.is_none() {
        earlier.owners = crate::labels::for_source(src, &src_folders, &mappings, opts)
            .await
            .on(SideName::Source)?
            .map(std::sync::Arc::new);
    }
    let owners = earlier.owners.clone();
    let owners = owners.as_deref();
    let daily = match (opts.daily_upload, opts.dry_run) {
        (Some(cap), false) => Some(DailyCap::load(state, &tgt_label, cap).await?),
        _ => None,
    };
    let daily = daily.as_ref();
    mappings.retain(|m| opts.selected(&m.source, m.role));
    // INBOX first (users look there first), then the listing order.
    mappings.sort_by_key(|m| !m.source.eq_ignore_ascii_case("INBOX"));
    let mut tgt_existing: BTreeSet<String> = tgt_folders.iter().map(|f| f.name.clone()).collect();
    let shared = shared_folders(src, &mappings, opts)
        .await
        .on(SideName::Source)?;
    let excluded = |m: &FolderMapping| {
        opts.folder_rule(&m.source, m.role, m.delimiter)
            .or_else(|| shared.contains(&m.source).then_some(SHARED_RULE))
            .or_else(|| {
                owners
                    .is_some_and(|o| o.takes_none(&m.source))
                    .then_some(crate::labels::LABEL_ELSEWHERE)
            })
    };
    // Target folders are created and subscribed up front, all commands in one round trip each;
    // a refusal belongs to its folder and is reported when that folder's turn comes.
    let mut setup_errors: BTreeMap<String, Error> = BTreeMap::new();
    if !opts.dry_run {
        let wanted = || {
            mappings
                .iter()
                .filter(|m| m.selectable && excluded(m).is_none())
        };
        let mut to_create: Vec<String> = wanted()
            .filter(|m| !tgt_existing.contains(&m.target))
            .map(|m| m.target.clone())
            .collect();
        to_create.dedup();
        let created = tgt.create_many(&to_create).await.on(SideName::Target)?;
        for (name, r) in to_create.into_iter().zip(created) {
            match r {
                Ok(()) => {
                    tgt_existing.insert(name);
                }
                Err(e) => {
                    setup_errors.insert(name, e);
                }
            }
        }
        let mut to_subscribe: Vec<String> = wanted()
            .filter(|m| m.subscribed && !tgt_subs.contains(&m.target))
            .filter(|m| !setup_errors.contains_key(&m.target))
            .map(|m| m.target.clone())
            .collect();
        to_subscribe.dedup();
        let subscribed = tgt
            .subscribe_many(&to_subscribe)
            .await
            .on(SideName::Target)?;
        for (name, r) in to_subscribe.into_iter().zip(subscribed) {
            if let Err(e) = r {
                setup_errors.insert(name, e);
            }
        }
    }
    // Folders as their last clean pass left them; the records of the others are forgotten
    // before anything is written to them.
    let mut as_left: BTreeMap<usize, FolderReport> = BTreeMap::new();
    let mut full_pass: BTreeSet<&str> = BTreeSet::new();
    for (i, m) in mappings.iter().enumerate() {
        if !m.selectable
            || excluded(m).is_some()
            || earlier.finished.contains_key(&m.source)
            || setup_errors.contains_key(&m.target)
        {
            continue;
        }
        match unchanged
            .as_ref()
            .and_then(|u| u.report(m, src_status.get(&m.source), tgt_status.get(&m.target)))
        {
            Some(r) => {
                as_left.insert(i, r);
            }
            None => {
                full_pass.insert(&m.source);
            }
        }
    }
    if let Some(u) = &unchanged {
        state.forget_clean(&u.stale(&full_pass)).await?;
    }
    // Messages in the folders to go through, when the source told every one's count.
    let work: Option<u64> = full_pass
        .iter()
        .map(|f| src_status.get(*f).map(|st| u64::from(st.messages)))
        .sum();
    let small = work.is_some_and(|w| w <= small_mailbox());
    if first_lanes < lanes && full_pass.len() > 1 && !small {
        let more = lanes.min(full_pass.len()) - first_lanes;
        let opened = futures_util::future::join_all((0..more).map(|_| open_lane())).await;
        for lane in opened {
            conns.push(lane?);
        }
    }
    // A small mailbox on one lane reads its copies back on its own target connection, each
    // folder's once it is copied, rather than on a reader connection of its own.
    let inline_check = readers > 0 && conns.len() == 1 && small;
    if inline_check {
        readers = 0;
    }
    let (to_check, mut checks) = mpsc::unbounded_channel::<(usize, String, Vec<Copied>, u32)>();
    // Without verification nothing is queued.
    let to_check = (readers > 0).then_some(to_check);
    // The verifier returns what it checked and the readers' connections, for the common LOGOUT
    // at the end.
    let reading = Reading {
        opts,
        state,
        mailbox_id,
        source: &src_label,
        target: &tgt_label,
        target_port: target.endpoint.port,
    };
    let reading = &reading;
    // Read back on the lane's own connection (`inline_check`): (folder index, what was found).
    let checked_inline: std::sync::Mutex<Vec<(usize, Checked)>> = Default::default();
    let checked_inline = &checked_inline;
    let verifier = async {
        let queue = tokio::sync::Mutex::new(&mut checks);
        let mappings = &mappings;
        // The queue's lock is fair: an idle reader waits for the next folder holding it, so
        // the next reader in line receives a folder only while every reader before it is busy.
        let readers = (0..readers).map(|_| {
            let queue = &queue;
            async move {
                let mut done = Vec::new();
                let mut conn: Option<Client> = None;
                loop {
                    let next = queue.lock().await.recv().await;
                    let Some((i, folder, copied, uid_validity)) = next else {
                        return Ok::<_, SyncError>((done, conn));
                    };
                    let c = match &mut conn {
                        Some(c) => c,
                        None => conn.insert(connect(target, SideName::Target).await?),
                    };
                    let checked = read_back(
                        c,
                        reading,
                        &mappings[i].source,
                        &folder,
                        &copied,
                        uid_validity,
                    )
                    .await?;
                    done.push((i, checked));
                }
            }
        });
        let (mut done, mut checkers) = (Vec::new(), Vec::new());
        for r in futures_util::future::join_all(readers).await {
            let (checked, conn) = r?;
            done.extend(checked);
            checkers.extend(conn);
        }
        Ok::<_, SyncError>((done, checkers))
    };
    // One slot per folder, filled when a lane takes the folder: what was copied before a
    // dropped connection still counts, and the reports keep the folders' order.
    let slots: Vec<tokio::sync::Mutex<Option<FolderReport>>> = mappings
        .iter()
        .map(|_| tokio::sync::Mutex::new(None))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    // Folders this attempt got through (copied, handed to the read-back).
    let synced: Vec<std::sync::atomic::AtomicBool> = mappings
        .iter()
        .map(|_| std::sync::atomic::AtomicBool::new(false))
        .collect();
    let finished_before = &earlier.finished;
    let halted = &std::sync::atomic::AtomicBool::new(false);
    let (mappings, slots, next, setup_errors, synced) =
        (&mappings, &slots, &next, &setup_errors, &synced);
    let (tgt_existing, excluded, src_label, tgt_label) =
        (&tgt_existing, &excluded, &src_label, &tgt_label);
    let (as_left, src_status) = (&as_left, &src_status);
    let folders =
        async {
            // Owned here, so the senders drop when the folders are done and the verifier stops.
            let to_check = to_check;
            let lanes = conns.iter_mut().map(|(src, tgts)| {
            let to_check = to_check.clone();
            async move {
                loop {
                    opts.go_on()?;
                    // Once a lane failed, the mailbox ends: no lane starts another folder;
                    // nor once the target's daily cap held a batch back.
                    if halted.load(std::sync::atomic::Ordering::Relaxed)
                        || daily.is_some_and(DailyCap::reached)
                    {
                        return Ok(());
                    }
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(m) = mappings.get(i) else {
                        return Ok(());
                    };
                    if !m.selectable {
                        continue;
                    }
                    let mut slot = slots[i].lock().await;
                    if let Some(r) = finished_before.get(&m.source) {
                        *slot = Some(r.clone());
                        continue;
                    }
                    if let Some(r) = as_left.get(&i) {
                        *slot = Some(r.clone());
                        synced[i].store(true, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                    progress.folder(&m.source);
                    let report = slot.insert(FolderReport {
                        source: m.source.clone(),
                        target: m.target.clone(),
                        ..Default::default()
                    });
                    let result = async {
                        if let Some(rule) = excluded(m) {
                            let exists = match src_status.get(&m.source) {
                                Some(st) => st.messages,
                                None => src.count(&m.source).await.on(SideName::Source)?,
                            };
                            report.source_messages = u64::from(exists);
                            if exists > 0 {
                                report.buckets.skipped.insert(rule.into(), u64::from(exists));
                            }
                            return Ok(());
                        }
                        if let Some(error) = setup_errors.get(&m.target) {
                            return Err(SyncError::Imap {
                                side: SideName::Target,
                                error: error.clone(),
                            });
                        }
                        let exists = tgt_existing.contains(&m.target);
                        let ctx = FolderCtx {
                            mapping: m,
                            target_exists: exists || !opts.dry_run,
                            mailbox_id: uid_owner,
                            state,
                            opts,
                            progress,
                            appends,
                            target_label: tgt_label,
                            owners,
                            daily,
                        };
                        // Each listing window's copies are read back while the next
                        // window is copied. The verifier may have stopped on an error of its
                        // own; that error is reported, not this send.
                        let mut held: Vec<(Vec<Copied>, u32)> = Vec::new();
                        let mut hand_off = |copied: Vec<Copied>, uid_validity: u32| {
                            if inline_check {
                                held.push((copied, uid_validity));
                            } else if let Some(tx) = &to_check {
                                let _ = tx.send((i, m.target.clone(), copied, uid_validity));
                            }
                        };
                        let synced = sync_folder(&ctx, src, tgts, report, &mut hand_off).await;
                        // Copies made are read back when a stop cut the folder short too: the
                        // connection still works.
                        if synced.is_err() && !matches!(synced, Err(SyncError::Stopped(_))) {
                            return synced;
                        }
                        for (copied, uv) in held {
                            let checked =
                                read_back(&mut tgts[0], reading, &m.source, &m.target, &copied, uv)
                                    .await?;
                            checked_inline
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push((i, checked));
                        }
                        synced
                    }
                    .await;
                    match result {
                        Ok(()) => {
                            synced[i].store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        // A server that refuses one folder (no right to read it, cannot create
                        // it) must not stop the others: the folder is reported, the mailbox
                        // ends incomplete.
                        Err(SyncError::Imap { side, error })
                            if error.kind == ErrorKind::Refused =>
                        {
                            let who = if side == SideName::Source {
                                src_label
                            } else {
                                tgt_label
                            };
                            let line = format!(
                                "{side} {who}: {error}; check the account's rights on this folder"
                            );
                            tracing::warn!("{line}");
                            report.error = Some(line);
                        }
                        Err(e) => {
                            halted.store(true, std::sync::atomic::Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                }
            }
        });
            // Every lane runs until the folders run out or its own connection fails.
            let results = futures_util::future::join_all(lanes).await;
            results.into_iter().find(Result::is_err).unwrap_or(Ok(()))?;
            match daily {
                Some(d) if d.reached() => Err(d.stop()),
                _ => Ok(()),
            }
        };
    let (folders, verified) = tokio::join!(folders, verifier);
    earlier.got_through = folders.is_ok();
    let mut filled: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, slot) in slots.iter().enumerate() {
        if let Some(r) = slot.lock().await.take() {
            filled.insert(i, reports.len());
            reports.push(r);
        }
    }
    let (mut verified, checkers) = verified?;
    verified.extend(
        checked_inline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..),
    );
    let mut altered = Vec::new();
    for (i, checked) in verified {
        if let Some(&at) = filled.get(&i) {
            let found = record_check(&mut reports[at], checked, tgt_label);
            if !found.is_empty() {
                altered.push((i, at, found));
            }
        }
    }
    let any_altered = !altered.is_empty();
    let finished = &mut earlier.finished;
    // Folders got through and read back are done for the run, whatever happens next. (One
    // with altered copies is looked at again: where they differ is found below.)
    if !opts.dry_run {
        for (i, &at) in &filled {
            if synced[*i].load(std::sync::atomic::Ordering::Relaxed)
                && !altered.iter().any(|(a, _, _)| a == i)
            {
                finished.insert(mappings[*i].source.clone(), reports[at].clone());
            }
        }
    }
    // Copies the target altered: where they differ (both read again; with the connections
    // still working), remembered in the state so that no later run calls them present or
    // appends them again, and listed in the report.
    for (i, at, mut found) in altered {
        let m = &mappings[i];
        if folders.is_ok() {
            let (src, tgts) = &mut conns[0];
            if let Err(e) = locate_differences(src, &mut tgts[0], m, &mut found).await {
                let (_, line) = e.describe(src_label, tgt_label);
                tracing::warn!(
                    "{}: could not read the altered copies again: {line}",
                    m.target
                );
            }
        }
        if let Some(mb) = mailbox_id
            && let Some(f) = state.find_folder(mb, &m.source).await?
        {
            let found_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let rows: Vec<trasloco_state::Altered> = found
                .iter()
                .map(|a| trasloco_state::Altered {
                    source_uid: a.uid,
                    target_uid: a.target_uid,
                    target_sha256: a.target_sha256.clone(),
                    first_difference: a.first_difference,
                    server: a.server.clone(),
                    found_at: found_at.clone(),
                })
                .collect();
            state.mark_altered(f.id, &rows).await?;
        }
        let report = &mut reports[at];
        for a in found {
            note_altered(report, a);
        }
    }
    folders?;
    // Folders this attempt passed over cleanly are recorded with both sides' counters: the
    // target's read now, after every write and read-back.
    let mut unchecked = None;
    if let (Some(u), Some(mb)) = (&unchanged, mailbox_id) {
        let mut passed = BTreeMap::new();
        for (&i, &at) in &filled {
            let m = &mappings[i];
            if synced[i].load(std::sync::atomic::Ordering::Relaxed)
                && !as_left.contains_key(&i)
                && excluded(m).is_none()
                && earlier.finished.contains_key(&m.source)
                && is_clean(&reports[at])
                && let Some(st) = src_status.get(&m.source)
            {
                passed.insert(
                    m.source.clone(),
                    (m.target.clone(), *st, reports[at].clone()),
                );
            }
        }
        if !passed.is_empty() {
            let n = state.unchecked_count(mb).await?;
            unchecked = Some(n);
            if n == 0 {
                let names = passed.values().map(|(t, _, _)| t.as_str());
                let now = conns[0].1[0].statuses(names).await.on(SideName::Target)?;
                state.record_clean(mb, &u.records(&passed, &now)).await?;
            }
        }
    }
    // A first attempt that left every folder clean records the mailbox as a whole, under the
    // source's listing from before any folder was opened.
    let every_folder_clean = first_attempt
        && !any_altered
        && setup_errors.is_empty()
        && mappings.iter().enumerate().all(|(i, m)| {
            !m.selectable
                || (synced[i].load(std::sync::atomic::Ordering::Relaxed)
                    && filled.get(&i).is_some_and(|&at| is_clean(&reports[at])))
        });
    if let (Some(_), Some(mb), true, true) =
        (&unchanged, mailbox_id, whole_applies, every_folder_clean)
        && let Some(listing) = crate::unchanged::mailbox_key(&src_folders, src_status, opts)
    {
        let n = match unchecked {
            Some(n) => n,
            None => state.unchecked_count(mb).await?,
        };
        let folders: Vec<FolderReport> =
            reports.iter().map(crate::unchanged::as_unchanged).collect();
        if n == 0
            && let Ok(report_json) = serde_json::to_string(&folders)
        {
            let record = trasloco_state::CleanMailbox {
                listing,
                report_json,
            };
            state.record_clean_mailbox(mb, &record).await?;
        }
    }
    // Every connection says goodbye at once: over a 40 ms link, six LOGOUTs one after the
    // other added a quarter of a second to every mailbox.
    let lanes = conns.into_iter().map(|(src, tgts)| async move {
        tokio::join!(
            src.logout(),
            futures_util::future::join_all(tgts.into_iter().map(Client::logout))
        );
    });
    tokio::join!(
        futures_util::future::join_all(lanes),
        futures_util::future::join_all(checkers.into_iter().map(Client::logout))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cryptic_server_words_are_translated() {
        let e = SyncError::Imap {
            side: SideName::Target,
            error: Error::new(
                ErrorKind::Refused,
                "LIST failed on outlook.office365.com: BAD User is authenticated but not connected.",
            ),
        };
        let (_, line) = e.describe("a@old", "a@new");
        assert!(
            line.contains("Add-MailboxPermission") && line.contains("Object ID"),
            "{line}"
        );
        let zimbra = known_failure("NO account does not have IMAP access enabled").unwrap();
        assert!(zimbra.contains("zimbraImapEnabled"));
        let admin = known_failure("NO permission denied: need right: adminLoginAs").unwrap();
        assert!(admin.contains("grantRight"));
        let google = known_failure("unauthorized_client: Unauthorized client or scope in request.");
        assert!(google.unwrap().contains("mail.google.com"));
        assert_eq!(
            known_failure("NO [AUTHENTICATIONFAILED] Authentication failed."),
            None
        );
    }

    #[test]
    fn throttling_waits_as_told_or_backs_off_and_gives_up_after_an_hour() {
        let mut t = Throttle::default();
        assert_eq!(
            t.next(Some(Duration::from_millis(1500)), false),
            Duration::from_millis(1500)
        );
        assert_eq!(t.next(None, false), Duration::from_secs(5));
        assert_eq!(t.next(None, false), Duration::from_secs(10));
        assert_eq!(
            t.next(None, true),
            Duration::from_secs(5),
            "progress starts again"
        );
        assert_eq!(
            t.next(Some(Duration::from_secs(7200)), false),
            Duration::from_secs(900)
        );
        assert_eq!(t.times, 5);
        assert!(t.may_wait());
        for _ in 0..4 {
            t.next(Some(Duration::from_secs(900)), false);
        }
        assert!(!t.may_wait(), "an hour without progress");
    }
}
