//! `trasloco`: move mailboxes from one IMAP server to another, byte-exact, incrementally and
//! resumably. See the README for the campaign file and exit codes.

mod progress;
mod serve;
mod summary;

use clap::{Parser, Subcommand, ValueEnum};
use secrecy::SecretString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use trasloco_archive::{Archive, Format, Layout};
use trasloco_campaign::config::{
    Campaign, Protocol, TlsMode, read_secret_file, resolve_security_for,
};
use trasloco_campaign::phases::Phase;
use trasloco_campaign::plan;
use trasloco_campaign::run::{self, Job, Settings};
use trasloco_campaign::{ConfigError, accounts, exit};
use trasloco_imap::{Credentials, Endpoint, Master, MasterStyle, TlsOptions};
use trasloco_sync::{ArchiveTarget, Options, Side, Source, Target};

#[derive(Parser)]
#[command(
    name = "trasloco",
    version,
    about = "Move mailboxes between IMAP servers, POP3 servers and local archives: byte-exact, incremental, resumable."
)]
struct Cli {
    /// More log output (-v info, -vv debug with a protocol trace: commands and responses,
    /// message bodies shown by their size, passwords masked).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// No progress bars, only log lines and the summary.
    #[arg(long, global = true)]
    no_progress: bool,
    /// Seconds a server may send nothing while an answer (or the rest of a message) is
    /// awaited before its connection is given up as stalled [default: 120; campaign:
    /// run.timeout].
    #[arg(long, global = true, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: Option<u64>,
    /// Seconds each step of connecting may take: name lookup, TCP, TLS [default: 30;
    /// campaign: run.connect_timeout].
    #[arg(long, global = true, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    connect_timeout: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Tls {
    Implicit,
    Starttls,
    IfOffered,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum MasterLogin {
    Sasl,
    Separator,
}

#[derive(Clone, Copy, ValueEnum)]
enum ArchiveFormat {
    Maildir,
    Mbox,
    Eml,
}

#[derive(Clone, Copy, ValueEnum)]
enum MaildirLayout {
    /// `.Parent.Child` folders beside INBOX (Dovecot's and Courier's default).
    MaildirPlus,
    /// Nested `Parent/Child` directories.
    Fs,
}

#[derive(Clone, Copy, ValueEnum)]
enum PhaseArg {
    Prestage,
    Delta,
    Final,
    Catchup,
}

impl PhaseArg {
    fn phase(self) -> Phase {
        match self {
            PhaseArg::Prestage => Phase::Prestage,
            PhaseArg::Delta => Phase::Delta,
            PhaseArg::Final => Phase::Final,
            PhaseArg::Catchup => Phase::Catchup,
        }
    }
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Write every file: autoconfig/<domain>/config-v1.1.xml, dns/<domain>.zone,
    /// profiles/<address>.mobileconfig, guides/<address>.html, autodiscover/<address>.xml.
    Generate {
        /// The campaign file.
        campaign: PathBuf,
        /// Output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum TransitionArg {
    Apply,
    Status,
    Remove,
}

#[derive(Subcommand)]
enum FiltersCommand {
    /// Copy every user's scripts (and which one is active), rewriting addresses of renamed
    /// domains; scripts the target refuses are reported with its reason.
    Migrate {
        /// The campaign file.
        campaign: PathBuf,
        /// Check with the target (CHECKSCRIPT) but store nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PecCommand {
    /// Examine every message: counts by PEC type, signature status (valid, valid at signing
    /// time, SHA-1, broken, unsigned), receipt-linking gaps; text, and pec-report.json/csv/html.
    Report(Box<PecArgs>),
    /// Check an evidence manifest (written by migrations, reports/pec-evidence.jsonl) against
    /// the target copies now: every PEC message still at its UID, same SHA-256, same signature
    /// verdict.
    VerifyManifest(Box<ManifestArgs>),
}

#[derive(clap::Args)]
struct ManifestArgs {
    /// The manifest (JSON lines).
    manifest: PathBuf,
    /// The target mailbox: imap[s]://USER@HOST[:PORT] (lines for other targets are skipped).
    #[arg(
        long,
        conflicts_with = "campaign",
        required_unless_present = "campaign"
    )]
    against: Option<String>,
    /// Or a campaign file: each line is checked with the campaign's target login.
    #[arg(long)]
    campaign: Option<PathBuf>,
    /// Trust anchors (PEM), besides the system's (repeatable).
    #[arg(long, value_name = "PEM")]
    trust: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// File holding the target password (first line).
    #[arg(long, env = "TRASLOCO_TO_PASSWORD_FILE")]
    to_password_file: Option<PathBuf>,
    /// Log in as this master user on behalf of the account.
    #[arg(long)]
    to_master: Option<String>,
    /// How the master user logs in.
    #[arg(long, value_enum, default_value = "sasl")]
    master_login: MasterLogin,
    /// TLS mode.
    #[arg(long, value_enum)]
    to_tls: Option<Tls>,
    /// Extra CA certificate (PEM) for the server's TLS certificate.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint.
    #[arg(long, value_name = "SHA256")]
    to_cert_fingerprint: Vec<String>,
    /// Skip TLS certificate verification (test setups only).
    #[arg(long)]
    insecure: bool,
}

#[derive(clap::Args)]
struct PecArgs {
    /// What to examine: imap[s]://USER@HOST[:PORT] or pop3[s]://… (no password in the URL), a
    /// campaign file (every source mailbox), or an archive directory.
    source: String,
    /// Trust anchors (PEM) the providers' chains must reach, besides the system's (repeatable).
    #[arg(long, value_name = "PEM")]
    trust: Vec<PathBuf>,
    /// Do not use the system's anchors (/etc/ssl/certs), only --trust.
    #[arg(long)]
    no_system_trust: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Directory for pec-report.json, .csv and .html.
    #[arg(long, value_name = "DIR", default_value = "trasloco-reports")]
    out: PathBuf,
    /// File holding the password (first line).
    #[arg(long, env = "TRASLOCO_FROM_PASSWORD_FILE")]
    from_password_file: Option<PathBuf>,
    /// Log in as this master user on behalf of the account.
    #[arg(long)]
    from_master: Option<String>,
    /// How the master user logs in.
    #[arg(long, value_enum, default_value = "sasl")]
    master_login: MasterLogin,
    /// TLS mode (default: implicit for imaps://, STARTTLS required for imap://).
    #[arg(long, value_enum)]
    from_tls: Option<Tls>,
    /// Extra CA certificate (PEM) for the server's TLS certificate.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint.
    #[arg(long, value_name = "SHA256")]
    from_cert_fingerprint: Vec<String>,
    /// Skip TLS certificate verification (test setups only).
    #[arg(long)]
    insecure: bool,
}

#[derive(Subcommand)]
enum ArchiveCommand {
    /// Back up a mailbox (IMAP or POP3) into a local archive with a manifest.
    Export {
        /// Archive format.
        #[arg(long, value_enum, default_value = "maildir")]
        format: ArchiveFormat,
        #[command(flatten)]
        args: Box<MigrateArgs>,
    },
    /// Import an archive (Maildir, mbox, EML; trasloco's or another program's) into an IMAP
    /// mailbox: --from is the archive's path.
    Import {
        #[command(flatten)]
        args: Box<MigrateArgs>,
    },
    /// Check an archive written by `archive export` against its manifest, without any server.
    Verify {
        /// The archive directory.
        path: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Migrate one mailbox.
    Migrate(Box<MigrateArgs>),
    /// Local archives: export, import, verify.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// Run a campaign: every mailbox of its accounts file.
    Run {
        /// The campaign file.
        campaign: PathBuf,
        /// Decide and report what would be copied; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Mailboxes in parallel (overrides run.jobs).
        #[arg(long)]
        jobs: Option<usize>,
        /// Back up every account's source mailbox into DIR/<source user> instead of copying to
        /// the target server.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
        /// Archive format for --export.
        #[arg(long, value_enum, default_value = "maildir", requires = "export")]
        format: ArchiveFormat,
        /// Maildir layout for --export.
        #[arg(long, value_enum, requires = "export")]
        layout: Option<MaildirLayout>,
        /// The campaign phase: prestage (old messages ahead of time), delta (everything new,
        /// flags), final (the cutover, deferred folders included), catchup (INBOX and junk
        /// after the MX switch). Without it a run is a delta.
        #[arg(long, value_enum)]
        phase: Option<PhaseArg>,
        /// Start even outside the campaign's [window].
        #[arg(long)]
        force: bool,
        /// Migrate this source account although the plan skipped it as inactive (repeatable).
        #[arg(long, value_name = "ACCOUNT")]
        include: Vec<String>,
    },
    /// Look at every mailbox (read-only), apply the campaign's rules and write the decision
    /// per mailbox: a table, plan.json, plan.csv and plan.html in the reports directory.
    Plan {
        /// The campaign file.
        campaign: PathBuf,
        /// Migrate this source account even if a rule would skip it (repeatable).
        #[arg(long, value_name = "ACCOUNT")]
        include: Vec<String>,
        /// Mailboxes looked at in parallel (default run.jobs).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Log in to every mailbox on both sides and list its folders, nothing else: what would
    /// stop a run, said per mailbox before it starts (cryptic server answers translated).
    Check {
        /// The campaign file.
        campaign: PathBuf,
        /// Mailboxes checked in parallel (default run.jobs).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Compare source and target of every migrated mailbox: counts, content identities with
    /// multiplicity, sizes; with --full the SHA-256 of every message.
    Verify {
        /// The campaign file.
        campaign: PathBuf,
        /// Read every message on both sides and compare SHA-256.
        #[arg(long)]
        full: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the campaign report for people: report.html (self-contained), report.csv (one
    /// row per mailbox) and report.json, in the reports directory or --out.
    Report {
        /// The campaign file.
        campaign: PathBuf,
        /// Directory for the three files.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// PEC (certified mail) mailboxes as evidence.
    #[command(subcommand)]
    Pec(PecCommand),
    /// A renamed domain on the old server: redirect to the new address and an auto-reply only
    /// to senders outside the organisation (Sieve, over ManageSieve).
    Transition {
        /// apply, status or remove.
        #[arg(value_enum)]
        action: TransitionArg,
        /// The campaign file.
        campaign: PathBuf,
        /// apply: check and show what would be installed, per mailbox, and the script for
        /// the first one; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Users' Sieve filters from the old server to the new one.
    #[command(subcommand)]
    Filters(FiltersCommand),
    /// Client settings: autoconfig, Autodiscover, Apple profiles, DNS records, guides.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Serve the client settings over HTTP(S) where mail clients look for them.
    Serve {
        /// The campaign file (its [clients] section and accounts).
        campaign: PathBuf,
        /// Address and port to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// TLS certificate chain (PEM) for HTTPS.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Work on a campaign's queue (a PostgreSQL state): take one mailbox at a time per job
    /// under a lease, on any number of machines, until stopped (SIGTERM, Ctrl-C).
    Worker {
        /// The campaign file (the same on every machine).
        campaign: PathBuf,
        /// Only mailboxes queued for this phase (default: any).
        #[arg(long, value_enum)]
        phase: Option<PhaseArg>,
        /// Mailboxes at once in this worker (overrides run.jobs).
        #[arg(long)]
        jobs: Option<usize>,
        /// End when the queue has nothing left to take, rather than wait for more.
        #[arg(long)]
        until_empty: bool,
        /// Start even outside the campaign's [window].
        #[arg(long)]
        force: bool,
    },
    /// Put a phase's mailboxes in the campaign's queue (a PostgreSQL state) for workers, the
    /// plan's decisions respected.
    Enqueue {
        /// The campaign file.
        campaign: PathBuf,
        /// The phase (without it: a delta run's).
        #[arg(long, value_enum)]
        phase: Option<PhaseArg>,
        /// Migrate this source account although the plan skipped it as inactive (repeatable).
        #[arg(long, value_name = "ACCOUNT")]
        include: Vec<String>,
    },
    /// List the workers of a campaign (host, pid, mailboxes now, heartbeat age, throughput)
    /// and the queue.
    Workers {
        /// The campaign file.
        campaign: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show each mailbox's state from the store.
    Status {
        /// The campaign file (its state file is read).
        campaign: Option<PathBuf>,
        /// A state file or PostgreSQL URL, instead of a campaign.
        #[arg(long, conflicts_with = "campaign")]
        state: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// Source: imap[s]://USER@HOST[:PORT], pop3[s]://USER@HOST[:PORT] (no password in the URL),
    /// or the path of an archive (Maildir, mbox file or directory, EML file or directory).
    #[arg(long)]
    from: String,
    /// Target: imap[s]://USER@HOST[:PORT], or maildir:DIR, mbox:DIR, eml:DIR for an archive.
    #[arg(long)]
    to: String,
    /// Maildir archives: folder layout.
    #[arg(long, value_enum)]
    layout: Option<MaildirLayout>,
    /// PEC messages: trust anchors (PEM) for their signatures, besides the system's
    /// (repeatable).
    #[arg(long, value_name = "PEM")]
    pec_trust: Vec<PathBuf>,
    /// Do not check PEC signatures or write the PEC evidence manifest.
    #[arg(long)]
    no_pec: bool,
    /// Archive sources: stop at the first file that is not mail (by default such files are
    /// left out and listed in the report).
    #[arg(long)]
    strict: bool,
    /// Put the source's INBOX (a POP3 mailbox, a single mbox or EML file) into this target folder.
    #[arg(long)]
    into: Option<String>,
    /// POP3 sources: after a verified copy, delete from the server the messages received more
    /// than N days ago; with --dry-run, list them. Nothing unverified is ever deleted.
    #[arg(long, value_name = "N")]
    leave_days: Option<u32>,
    /// POP3 sources: do not mark copied messages as read.
    #[arg(long)]
    pop3_unseen: bool,
    /// File whose first line is the source password (or the source master password).
    #[arg(long, env = "TRASLOCO_FROM_PASSWORD_FILE")]
    from_password_file: Option<PathBuf>,
    /// File whose first line is the target password (or the target master password).
    #[arg(long, env = "TRASLOCO_TO_PASSWORD_FILE")]
    to_password_file: Option<PathBuf>,
    /// Log in to the source as this master user on behalf of the user (admin mode).
    #[arg(long)]
    from_master: Option<String>,
    /// Log in to the target as this master user on behalf of the user (admin mode).
    #[arg(long)]
    to_master: Option<String>,
    /// OAuth2 for the source: a command that prints a token (or a JSON token response) for
    /// the account given on its standard input; the login is SASL OAUTHBEARER or XOAUTH2.
    #[arg(long, value_name = "COMMAND", conflicts_with_all = ["from_master", "from_password_file", "from_token_file"])]
    from_token_command: Option<String>,
    /// OAuth2 for the target: a command, as --from-token-command.
    #[arg(long, value_name = "COMMAND", conflicts_with_all = ["to_master", "to_password_file", "to_token_file"])]
    to_token_command: Option<String>,
    /// OAuth2 for the source: a file holding the token, re-read at every login.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["from_master", "from_password_file"])]
    from_token_file: Option<PathBuf>,
    /// OAuth2 for the target: a file holding the token, re-read at every login.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["to_master", "to_password_file"])]
    to_token_file: Option<PathBuf>,
    /// How master users log in: SASL PLAIN with authorization identity, or Dovecot's user*master.
    #[arg(long, value_enum, default_value = "sasl")]
    master_login: MasterLogin,
    /// Source TLS mode (default: implicit for imaps://, STARTTLS required for imap://,
    /// STARTTLS-if-offered on loopback).
    #[arg(long, value_enum)]
    from_tls: Option<Tls>,
    /// Target TLS mode.
    #[arg(long, value_enum)]
    to_tls: Option<Tls>,
    /// Extra CA certificate (PEM) trusted on both sides, besides the system store. A
    /// certificate in it that a server presents as its own is trusted as it is.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Trust exactly the source certificate with this SHA-256 fingerprint (`sha256:AB:CD:…`,
    /// as a refused handshake prints it): an old server's self-signed certificate.
    #[arg(long, value_name = "SHA256")]
    from_cert_fingerprint: Vec<String>,
    /// The same for the target.
    #[arg(long, value_name = "SHA256")]
    to_cert_fingerprint: Vec<String>,
    /// Do not verify server certificates (test setups only).
    #[arg(long)]
    insecure: bool,
    /// State file, or a PostgreSQL URL (postgres://user@host/database; the password in
    /// PGPASSWORD or ~/.pgpass, never in the URL).
    #[arg(long, default_value = "trasloco-state.sqlite", env = "TRASLOCO_STATE")]
    state: String,
    /// Directory for the JSON report.
    #[arg(long, default_value = "trasloco-reports")]
    reports: PathBuf,
    /// Decide and report what would be copied; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Skip reading copies back to compare SHA-256.
    #[arg(long)]
    no_verify: bool,
    /// Compare every folder in full, even one whose STATUS counters (CONDSTORE) on both
    /// servers have not moved since its last clean pass.
    #[arg(long)]
    full_compare: bool,
    /// Source folders not to copy (glob, repeatable).
    #[arg(long)]
    exclude: Vec<String>,
    /// Messages per MULTIAPPEND batch (at least 1).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    batch_messages: u32,
    /// Folders copied at once, each with its own source and target connections (1–8).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
    parallel_folders: u8,
    /// Target connections appending at once for each of those folders (1–8).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
    append_connections: u8,
    /// Messages of a folder listed and compared at a time (at least 1): memory follows this,
    /// not the folder's size.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    listing_window: u32,
}

/// Keep the C allocator from holding on to freed message buffers.
///
/// glibc serves allocations above its mmap threshold with mmap and returns them on free, but
/// after the first large free it raises that threshold (up to 32 MiB) and the trim threshold with
/// it, so later multi-megabyte buffers come from per-thread arenas that keep the memory. With
/// several mailboxes in parallel that doubled the peak RSS (84 MiB instead of 57 MiB on the
/// benchmark corpus). A fixed threshold turns the adjustment off.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// Writing to a pipe whose reader has gone (`trasloco run … | head`) ends the process quietly
/// with status 141, as a shell reports a tool that SIGPIPE ended, instead of a panic in
/// `println!` with a backtrace and exit 101. SIGPIPE itself stays ignored: a server that
/// closes its connection must be an error trasloco handles (vectored socket writes are not
/// sent with MSG_NOSIGNAL), never a signal that kills the process mid-copy.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to std") && text.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    // -vv: a protocol trace, every command and response line of every connection (literals
    // shown by their size, passwords never).
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug,trasloco_imap=trace,trasloco_pop3=trace,trasloco_sieve=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRASLOCO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},sqlx=warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: a log redirected to a file gets none of their codes.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("trasloco: cannot start: {e}");
            return ExitCode::from(exit::INTERNAL as u8);
        }
    };
    trasloco_imap::timeouts::set_given(
        cli.connect_timeout.map(std::time::Duration::from_secs),
        cli.timeout.map(std::time::Duration::from_secs),
    );
    let show_progress = !cli.no_progress && std::io::stderr().is_terminal();
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Migrate(args) => migrate(*args, None, show_progress).await,
            Command::Archive(ArchiveCommand::Export { format, args }) => {
                migrate(*args, Some(format), show_progress).await
            }
            Command::Archive(ArchiveCommand::Import { args }) => {
                migrate(*args, None, show_progress).await
            }
            Command::Archive(ArchiveCommand::Verify { path, json }) => verify_archive(&path, json),
            Command::Run {
                campaign,
                dry_run,
                jobs,
                export,
                format,
                layout,
                phase,
                force,
                include,
            } => {
                let export =
                    export.map(|dir| (dir, archive_format(format), layout.map(maildir_layout)));
                let how = RunHow {
                    dry_run,
                    jobs,
                    export,
                    phase: phase.map(PhaseArg::phase),
                    force,
                    include,
                    worker: None,
                };
                run_campaign(&campaign, how, show_progress).await
            }
            Command::Worker {
                campaign,
                phase,
                jobs,
                until_empty,
                force,
            } => {
                let how = RunHow {
                    dry_run: false,
                    jobs,
                    export: None,
                    phase: None,
                    force,
                    include: Vec::new(),
                    worker: Some(WorkerHow {
                        phase: phase.map(PhaseArg::phase),
                        until_empty,
                    }),
                };
                run_campaign(&campaign, how, show_progress).await
            }
            Command::Enqueue {
                campaign,
                phase,
                include,
            } => enqueue(&campaign, phase.map(PhaseArg::phase), &include).await,
            Command::Workers { campaign, json } => workers(&campaign, json).await,
            Command::Plan {
                campaign,
                include,
                jobs,
            } => plan_campaign(&campaign, &include, jobs).await,
            Command::Check { campaign, jobs } => check_campaign(&campaign, jobs).await,
            Command::Verify {
                campaign,
                full,
                json,
            } => verify_campaign(&campaign, full, json).await,
            Command::Report { campaign, out } => report_campaign(&campaign, out).await,
            Command::Pec(PecCommand::Report(args)) => pec_report(*args).await,
            Command::Transition {
                action,
                campaign,
                dry_run,
                json,
            } => {
                if dry_run && !matches!(action, TransitionArg::Apply) {
                    eprintln!("trasloco: --dry-run goes with `transition apply` only");
                    return Ok(exit::USAGE);
                }
                let action = match action {
                    TransitionArg::Apply => {
                        trasloco_campaign::transition::Action::Apply { dry_run }
                    }
                    TransitionArg::Status => trasloco_campaign::transition::Action::Status,
                    TransitionArg::Remove => trasloco_campaign::transition::Action::Remove,
                };
                sieve_command(&campaign, json, |c, e| {
                    Box::pin(async move {
                        trasloco_campaign::transition::transition_all(c, e, action).await
                    })
                })
                .await
            }
            Command::Clients(ClientsCommand::Generate { campaign, out }) => {
                let (site, skipped) = client_site(&campaign)?;
                for line in &skipped {
                    println!("{line}");
                }
                let n = site.generate(&out)?;
                println!(
                    "Wrote {n} files for {} addresses in {} domain(s) to {}{}.",
                    site.users.len(),
                    site.domains.len() + site.old_domains.len(),
                    out.display(),
                    if site.old_domains.is_empty() {
                        String::new()
                    } else {
                        format!(" (old domains: {})", site.old_domains.join(", "))
                    }
                );
                println!(
                    "Certificate names `trasloco serve` answers under (also in certificate-names.txt): {}",
                    site.certificate_names().join(", ")
                );
                println!(
                    "Each user's guide and profile links, for the notification mail: {}",
                    out.join("links.csv").display()
                );
                Ok(exit::OK)
            }
            Command::Serve {
                campaign,
                listen,
                tls_cert,
                tls_key,
            } => {
                let (site, skipped) = client_site(&campaign)?;
                for line in &skipped {
                    eprintln!("trasloco: {line}");
                }
                serve::serve(site, &listen, tls_cert.zip(tls_key)).await
            }
            Command::Filters(FiltersCommand::Migrate {
                campaign,
                dry_run,
                json,
            }) => {
                sieve_command(&campaign, json, |c, e| {
                    Box::pin(async move {
                        trasloco_campaign::transition::migrate_filters(c, e, dry_run).await
                    })
                })
                .await
            }
            Command::Pec(PecCommand::VerifyManifest(args)) => verify_manifest(*args).await,
            Command::Status {
                campaign,
                state,
                json,
            } => status(campaign.as_deref(), state.as_deref(), json).await,
        }
    });
    let code = code.unwrap_or_else(|e| {
        eprintln!("trasloco: {e}");
        exit::USAGE
    });
    ExitCode::from(code as u8)
}

fn tls_mode(t: Option<Tls>) -> Option<TlsMode> {
    t.map(|t| match t {
        Tls::Implicit => TlsMode::Implicit,
        Tls::Starttls => TlsMode::Starttls,
        Tls::IfOffered => TlsMode::IfOffered,
        Tls::None => TlsMode::None,
    })
}

/// A server URL's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Imap,
    Pop3,
}

/// `imap[s]://USER@HOST[:PORT]` or `pop3[s]://…` → (protocol, implicit TLS?, user, host, port).
fn parse_url(
    side: &str,
    url: &str,
) -> Result<(Proto, bool, String, String, Option<u16>), ConfigError> {
    let bad = |why: &str| {
        ConfigError(format!(
            "--{side} {url:?}: {why}; expected imap[s]://USER@HOST[:PORT]{}",
            if side == "from" {
                ", pop3[s]://USER@HOST[:PORT] or an archive path"
            } else {
                " or maildir:DIR, mbox:DIR, eml:DIR"
            }
        ))
    };
    let (proto, implicit, rest) = if let Some(r) = url.strip_prefix("imaps://") {
        (Proto::Imap, true, r)
    } else if let Some(r) = url.strip_prefix("imap://") {
        (Proto::Imap, false, r)
    } else if let Some(r) = url.strip_prefix("pop3s://").filter(|_| side == "from") {
        (Proto::Pop3, true, r)
    } else if let Some(r) = url.strip_prefix("pop3://").filter(|_| side == "from") {
        (Proto::Pop3, false, r)
    } else {
        return Err(bad("unknown scheme"));
    };
    let rest = rest.trim_end_matches('/');
    // A mailbox URL may name a folder (`imap://anna@host:143/INBOX`): trasloco moves whole
    // mailboxes, so that is said, not taken for a bad port.
    let (rest, folder) = match rest.split_once('/') {
        Some((r, f)) => (r, Some(f)),
        None => (rest, None),
    };
    if let Some(f) = folder {
        return Err(bad(&format!(
            "a folder ({f:?}) in the URL: trasloco moves the whole mailbox; leave folders out with --exclude, put a single-folder source elsewhere with --into"
        )));
    }
    let (user, hostport) = rest.rsplit_once('@').ok_or_else(|| bad("no user"))?;
    if user.contains(':') {
        return Err(ConfigError(format!(
            "--{side}: passwords never go in the URL (they would show in the process list); use --{side}-password-file or the environment"
        )));
    }
    let user = trasloco_core::escapes::percent_decode(user, false)
        .ok_or_else(|| bad("a bad %-escape in the user"))?;
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.trim_matches(['[', ']']).to_string(),
            Some(p.parse::<u16>().map_err(|_| bad("bad port"))?),
        ),
        _ => (hostport.trim_matches(['[', ']']).to_string(), None),
    };
    if host.is_empty() || user.is_empty() {
        return Err(bad("empty user or host"));
    }
    Ok((proto, implicit, user, host, port))
}

/// A password: file, then environment, then a prompt on a terminal.
fn password(side: &str, who: &str, file: Option<&Path>) -> Result<SecretString, ConfigError> {
    if let Some(f) = file {
        return read_secret_file(f, &format!("{side} password"));
    }
    let flag = if side == "source" { "from" } else { "to" };
    let var = format!("TRASLOCO_{}_PASSWORD", flag.to_uppercase());
    if let Ok(v) = std::env::var(&var)
        && !v.is_empty()
    {
        return Ok(SecretString::from(v));
    }
    if std::io::stdin().is_terminal() {
        let pw = rpassword::prompt_password(format!("Password for {side} {who}: "))
            .map_err(|e| ConfigError(format!("cannot read the {side} password: {e}")))?;
        return Ok(SecretString::from(pw));
    }
    Err(ConfigError(format!(
        "no {side} password for {who}: use --{flag}-password-file, the {var} variable, or run on a terminal to be asked"
    )))
}

/// What it takes to log in to one side, from whichever command's arguments.
struct Login<'a> {
    which: &'a str,
    flag: &'a str,
    url: &'a str,
    tls: Option<Tls>,
    master: &'a Option<String>,
    file: Option<&'a Path>,
    master_login: MasterLogin,
    ca_file: &'a Option<PathBuf>,
    pins: &'a [String],
    insecure: bool,
    /// OAuth2 tokens instead of a password.
    oauth: Option<trasloco_imap::oauth::Flow>,
}

fn side(args: &MigrateArgs, which: &str) -> Result<(Proto, Side), ConfigError> {
    use trasloco_imap::oauth::Flow;
    let source = which == "source";
    let (command, file) = if source {
        (&args.from_token_command, &args.from_token_file)
    } else {
        (&args.to_token_command, &args.to_token_file)
    };
    let oauth = match (command, file) {
        (Some(c), _) => Some(Flow::Command(c.clone())),
        (None, Some(f)) => Some(Flow::File(f.clone())),
        (None, None) => None,
    };
    login_side(&Login {
        oauth,
        which,
        flag: if source { "from" } else { "to" },
        url: if source { &args.from } else { &args.to },
        tls: if source { args.from_tls } else { args.to_tls },
        master: if source {
            &args.from_master
        } else {
            &args.to_master
        },
        file: if source {
            args.from_password_file.as_deref()
        } else {
            args.to_password_file.as_deref()
        },
        master_login: args.master_login,
        ca_file: &args.ca_file,
        pins: if source {
            &args.from_cert_fingerprint
        } else {
            &args.to_cert_fingerprint
        },
        insecure: args.insecure,
    })
}

fn login_side(l: &Login<'_>) -> Result<(Proto, Side), ConfigError> {
    let Login {
        which,
        flag,
        url,
        tls,
        master,
        file,
        ..
    } = *l;
    let (proto, implicit, user, host, port) = parse_url(flag, url)?;
    let protocol = match proto {
        Proto::Imap => Protocol::Imap,
        Proto::Pop3 => Protocol::Pop3,
    };
    // `imap://` and `pop3://` without a port mean the plain port (STARTTLS/STLS), not TLS.
    let plain_port = match protocol {
        Protocol::Imap => 143,
        Protocol::Pop3 => 110,
    };
    let port = port.or((!implicit).then_some(plain_port));
    let mode = tls_mode(tls).or(implicit.then_some(TlsMode::Implicit));
    let (port, security) = resolve_security_for(protocol, &host, port, mode);
    let who = match master {
        Some(m) => format!("master user {m} (for {user}@{host})"),
        None => format!("{user}@{host}"),
    };
    let credentials = match &l.oauth {
        Some(flow) => Credentials::oauth(
            user,
            std::sync::Arc::new(trasloco_imap::oauth::Tokens::new(flow.clone())),
        ),
        None => Credentials {
            password: password(which, &who, file)?,
            master: master.as_ref().map(|m| Master {
                user: m.clone(),
                style: match l.master_login {
                    MasterLogin::Sasl => MasterStyle::Sasl,
                    MasterLogin::Separator => MasterStyle::Separator('*'),
                },
            }),
            user,
            oauth: None,
        },
    };
    Ok((
        proto,
        Side {
            endpoint: Endpoint {
                host,
                port,
                security,
            },
            tls: side_tls(l, flag)?,
            credentials,
        },
    ))
}

fn side_tls(l: &Login<'_>, flag: &str) -> Result<TlsOptions, ConfigError> {
    Ok(TlsOptions {
        ca_file: l.ca_file.clone(),
        insecure: l.insecure,
        pins: l
            .pins
            .iter()
            .map(|p| {
                trasloco_imap::parse_fingerprint(p)
                    .map_err(|e| ConfigError(format!("--{flag}-cert-fingerprint: {e}")))
            })
            .collect::<Result<_, _>>()?,
    })
}

fn is_server_url(s: &str) -> bool {
    ["imap://", "imaps://", "pop3://", "pop3s://"]
        .iter()
        .any(|p| s.starts_with(p))
}

/// The source: a server, or an archive opened now so that a bad path is a usage error.
fn source(args: &MigrateArgs) -> Result<Source, ConfigError> {
    if is_server_url(&args.from) {
        let (proto, side) = side(args, "source")?;
        return Ok(match proto {
            Proto::Imap => Source::Imap(side),
            Proto::Pop3 => Source::Pop3(side),
        });
    }
    let source = archive_source("--from", &args.from)?;
    if let (true, Source::Archive(a)) = (args.strict, &source)
        && let Some(bad) = a.skipped.iter().find(|s| s.unreadable)
    {
        return Err(ConfigError(format!(
            "--from: {} (--strict stops at the first file that cannot be read as mail; without it the file is left out and listed)",
            bad.why
        )));
    }
    Ok(source)
}

/// An archive as a source: `maildir:`/`mbox:`/`eml:`/`archive:` prefixes are optional.
fn archive_source(what: &str, given: &str) -> Result<Source, ConfigError> {
    let path = ["maildir:", "mbox:", "eml:", "archive:"]
        .iter()
        .find_map(|p| given.strip_prefix(p))
        .unwrap_or(given);
    if path.contains("://") {
        return Err(parse_url("from", given)
            .err()
            .unwrap_or_else(|| ConfigError(format!("{what} {given:?}: unknown scheme"))));
    }
    let archive =
        Archive::open(Path::new(path)).map_err(|e| ConfigError(format!("{what}: {e}")))?;
    Ok(Source::Archive(Arc::new(archive)))
}

fn maildir_layout(l: MaildirLayout) -> Layout {
    match l {
        MaildirLayout::MaildirPlus => Layout::MaildirPlus,
        MaildirLayout::Fs => Layout::Fs,
    }
}

fn archive_format(f: ArchiveFormat) -> Format {
    match f {
        ArchiveFormat::Maildir => Format::Maildir,
        ArchiveFormat::Mbox => Format::Mbox,
        ArchiveFormat::Eml => Format::Eml,
    }
}

fn target(args: &MigrateArgs, export: Option<ArchiveFormat>) -> Result<Target, ConfigError> {
    let layout = args.layout.map(maildir_layout);
    let archive = |format: Format, root: &str| {
        if root.is_empty() {
            return Err(ConfigError(format!(
                "--to {:?}: no directory after the format",
                args.to
            )));
        }
        Ok(Target::Archive(ArchiveTarget {
            root: PathBuf::from(root),
            format,
            layout,
        }))
    };
    for (prefix, format) in [
        ("maildir:", Format::Maildir),
        ("mbox:", Format::Mbox),
        ("eml:", Format::Eml),
    ] {
        if let Some(root) = args.to.strip_prefix(prefix) {
            return archive(format, root);
        }
    }
    if let Some(f) = export {
        if is_server_url(&args.to) {
            return Err(ConfigError(format!(
                "--to {:?}: archive export writes a directory, not a server; use `trasloco migrate` to copy between servers",
                args.to
            )));
        }
        return archive(archive_format(f), &args.to);
    }
    Ok(Target::Imap(side(args, "target")?.1))
}

/// Print a value as pretty JSON on standard output (`--json`).
fn print_json(v: &impl serde::Serialize) -> Result<(), ConfigError> {
    let text =
        serde_json::to_string_pretty(v).map_err(|e| ConfigError(format!("internal error: {e}")))?;
    println!("{text}");
    Ok(())
}

/// `trasloco archive verify`: 0 when the archive matches its manifest, 2 when it does not.
fn verify_archive(path: &Path, json: bool) -> Result<i32, ConfigError> {
    let r = trasloco_archive::verify(path).map_err(|e| ConfigError(e.to_string()))?;
    if json {
        print_json(&r)?;
    } else {
        println!(
            "{}: {} of {} messages intact{}",
            path.display(),
            r.intact,
            r.listed,
            if r.unlisted.is_empty() {
                String::new()
            } else {
                format!(", {} not in the manifest", r.unlisted.len())
            }
        );
        for p in r.problems.iter().chain(&r.unlisted).take(100) {
            println!("  {p}");
        }
        println!("{}", if r.ok() { "OK" } else { "DAMAGED" });
    }
    Ok(if r.ok() { exit::OK } else { exit::INCOMPLETE })
}

async fn migrate(
    args: MigrateArgs,
    export: Option<ArchiveFormat>,
    show_progress: bool,
) -> Result<i32, ConfigError> {
    if args.insecure {
        tracing::warn!(
            "--insecure: server certificates are NOT verified; anyone on the path can read the mail and the passwords"
        );
    }
    let source = source(&args)?;
    let target = target(&args, export)?;
    if args.leave_days.is_some() && !matches!(source, Source::Pop3(_)) {
        return Err(ConfigError(
            "--leave-days applies to POP3 sources (pop3:// or pop3s://) only".into(),
        ));
    }
    let mut renames = std::collections::BTreeMap::new();
    if let Some(f) = &args.into {
        renames.insert("INBOX".to_string(), f.clone());
    }
    let pec = if args.no_pec {
        None
    } else {
        Some(run::pec_evidence(&args.pec_trust, &args.reports)?)
    };
    let sync = Options {
        pec,
        dry_run: args.dry_run,
        verify: !args.no_verify,
        skip_unchanged: !args.full_compare,
        batch_messages: args.batch_messages as usize,
        append_connections: usize::from(args.append_connections),
        lanes: usize::from(args.parallel_folders),
        listing_window: args.listing_window as usize,
        exclude: args.exclude.clone(),
        renames,
        pop3_seen: !args.pop3_unseen,
        leave_days: args.leave_days,
        ..Options::default()
    };
    let state = trasloco_state::Location::parse(&args.state);
    // On a PostgreSQL state the mailbox is taken under a lease, like a run's: another
    // command on the same mailbox meanwhile finds it held and says so (exit 2) rather than
    // copying alongside.
    let queue =
        matches!(state, trasloco_state::Location::Postgres(_) if !sync.dry_run).then(|| {
            trasloco_campaign::workers::QueueFeed::new(
                "migrate".into(),
                true,
                false,
                Some(String::new()),
                std::time::Duration::from_secs(60),
                Default::default(),
            )
        });
    let settings = Settings {
        jobs: 1,
        sync,
        state,
        reports_dir: args.reports.clone(),
        name: None,
        command: format!("migrate --from {} --to {}", args.from, args.to),
        phase: None,
        left_out: Vec::new(),
        queue,
        phases: Default::default(),
    };
    let job = Job {
        source,
        target,
        archive: None,
        refit: None,
    };
    execute(vec![job], &settings, show_progress).await
}

/// How `run` was asked to run.
struct RunHow {
    dry_run: bool,
    jobs: Option<usize>,
    export: Option<(PathBuf, Format, Option<Layout>)>,
    phase: Option<Phase>,
    force: bool,
    include: Vec<String>,
    /// `trasloco worker`: mailboxes from the queue only.
    worker: Option<WorkerHow>,
}

struct WorkerHow {
    phase: Option<Phase>,
    until_empty: bool,
}

/// Workers need a state every machine reaches: one line saying so otherwise.
fn shared_state(campaign: &Campaign, what: &str) -> Result<trasloco_state::Location, ConfigError> {
    match campaign.state() {
        pg @ trasloco_state::Location::Postgres(_) => Ok(pg),
        trasloco_state::Location::File(f) => Err(ConfigError(format!(
            "campaign {}: {what} needs a state shared by every worker, and {} is a file that serves one process; set run.state = \"postgres://…\" (or TRASLOCO_STATE), or use `trasloco run`",
            campaign.path.display(),
            f.display()
        ))),
    }
}

fn campaign_entries(campaign: &Campaign) -> Result<Vec<run::Entry>, ConfigError> {
    let list = accounts::load(
        &campaign.resolve(&campaign.file.accounts.file),
        campaign.file.accounts.format,
    )?;
    run::entries(campaign, &list)
}

/// Load a campaign for a command that talks to the servers: a side without `provider` gets
/// the preset its greeting names (said on stderr).
async fn load_detected(path: &Path) -> Result<Campaign, ConfigError> {
    let mut campaign = Campaign::load(path)?;
    for line in trasloco_campaign::providers::detect(&mut campaign).await {
        eprintln!("trasloco: {line}");
    }
    Ok(campaign)
}

async fn run_campaign(path: &Path, how: RunHow, show_progress: bool) -> Result<i32, ConfigError> {
    let campaign = load_detected(path).await?;
    // A dry run writes nothing, so the window does not hold it back.
    if let (Some(w), false) = (&campaign.file.window, how.force || how.dry_run) {
        let now = chrono::Local::now();
        if !w.contains(now.time()) {
            eprintln!(
                "trasloco: campaign {}: now ({}) is outside the window {}–{} (local time); runs start inside it, or use --force",
                path.display(),
                now.format("%H:%M"),
                w.start,
                w.end
            );
            return Ok(exit::WINDOW);
        }
    }
    if how.worker.is_some() {
        shared_state(&campaign, "a worker")?;
    }
    let entries = campaign_entries(&campaign)?;
    let mut settings = run::settings(&campaign, how.dry_run);
    if campaign.file.run.pec {
        let extra: Vec<PathBuf> = campaign
            .file
            .run
            .pec_trust
            .iter()
            .map(|p| campaign.resolve(p))
            .collect();
        settings.sync.pec = Some(run::pec_evidence(&extra, &campaign.reports_dir())?);
    }
    if let Some(p) = how.phase {
        p.apply(
            &campaign.file.phases,
            &mut settings.sync,
            chrono::Utc::now(),
        );
        settings.command = format!("{} --phase {}", settings.command, p.name());
    }
    settings.phase = how.phase;
    let exporting = how.export.is_some();
    let jobs_list = if let Some((dir, format, layout)) = how.export {
        // One archive per account, named after the source user; the plan does not apply.
        let mut jobs = Vec::new();
        for e in entries {
            let Some(mut job) = e.job else { continue };
            let user = e
                .source
                .rsplit_once('@')
                .map_or(e.source.as_str(), |(u, _)| u);
            job.target = Target::Archive(ArchiveTarget {
                root: dir.join(trasloco_archive::flags::escape_component(user)),
                format,
                layout,
            });
            jobs.push(job);
        }
        settings.command = format!("{} --export {}", settings.command, dir.display());
        jobs
    } else {
        let plan = plan::load(&campaign.plan_path())?;
        let (jobs, left) = run::prepare(&campaign, entries, plan.as_ref(), &how.include)?;
        settings.left_out = left;
        jobs
    };
    if let Some(j) = how.jobs {
        settings.jobs = j.max(1);
    }
    // On a PostgreSQL state mailboxes go through the shared queue under leases: a run queues
    // its own and ends when none is left to take; a worker takes whatever is queued.
    let shared = matches!(settings.state, trasloco_state::Location::Postgres(_));
    if shared && !how.dry_run && !exporting {
        let (enqueue, wait, phase) = match &how.worker {
            Some(w) => (false, !w.until_empty, w.phase.map(|p| p.name().to_string())),
            None => (true, false, Some(how.phase.map_or("", |p| p.name()).into())),
        };
        settings.queue = Some(trasloco_campaign::workers::queue_feed(
            &campaign,
            &settings.sync,
            enqueue,
            wait,
            phase,
        ));
        if how.worker.is_some() {
            settings.command = format!("worker {}", campaign.path.display());
        }
    }
    if campaign.file.source.insecure || campaign.file.target.insecure {
        tracing::warn!("insecure = true: server certificates are NOT verified");
    }
    execute(jobs_list, &settings, show_progress).await
}

async fn plan_campaign(
    path: &Path,
    include: &[String],
    jobs: Option<usize>,
) -> Result<i32, ConfigError> {
    let campaign = load_detected(path).await?;
    let entries = campaign_entries(&campaign)?;
    let jobs = jobs.unwrap_or(campaign.file.run.jobs);
    let mut new = plan::make(&campaign, &entries, include, jobs, chrono::Utc::now()).await?;
    let json = campaign.plan_path();
    if let Some(old) = plan::load(&json)? {
        new.changes = plan::changes(&old, &new);
    }
    let written = plan::write(json.parent().unwrap_or(Path::new(".")), &new)?;
    print!("{}", plan::table(&new));
    println!(
        "\nPlan written to {} (and plan.csv, plan.html beside it).",
        written.display()
    );
    Ok(exit::OK)
}

/// `trasloco check`: every mailbox's logins on both sides, and its folders listed.
async fn check_campaign(path: &Path, jobs: Option<usize>) -> Result<i32, ConfigError> {
    use futures_util::StreamExt;
    let campaign = load_detected(path).await?;
    let entries = campaign_entries(&campaign)?;
    let jobs = jobs.unwrap_or(campaign.file.run.jobs).max(1);
    let (state, _scratch) = campaign_state(&campaign).await?;
    // Looked at as a run would: its folder renames, exclusions and provider presets.
    let opts = run::settings(&campaign, true).sync;
    let mut pending = Vec::new();
    for e in &entries {
        let (state, opts) = (&state, &opts);
        pending.push(async move {
            let label = format!("{} → {}", e.source, e.target);
            if let Some((rule, why)) = &e.blocked {
                return (
                    label,
                    Err(None),
                    format!("not checked: blocked by the {rule} rule: {why}"),
                );
            }
            let Some(job) = &e.job else {
                return (label, Err(None), "not checked: no target address".into());
            };
            let checked = match (&job.source, &job.target) {
                (Source::Imap(s), Target::Imap(t)) => trasloco_sync::folder_mappings(s, t, opts)
                    .await
                    .map(|m| format!("{} folder(s) on the source", m.len())),
                (source @ Source::Pop3(_), Target::Imap(t)) => {
                    match trasloco_sync::inventory_source(source, state, opts).await {
                        Ok(inv) => trasloco_sync::target_quota(t)
                            .await
                            .map(|_| format!("{} folder(s) on the POP3 source", inv.folders.len())),
                        Err(f) => Err(f),
                    }
                }
                _ => Ok("nothing to log in to (a local archive)".into()),
            };
            match checked {
                Ok(what) => (label, Ok(()), format!("ok: both logins work, {what}")),
                Err((class, line)) => (label, Err(Some(class)), line),
            }
        });
    }
    let results: Vec<_> = futures_util::stream::iter(pending)
        .buffered(jobs)
        .collect()
        .await;
    let mut failures = Vec::new();
    let mut ok = 0;
    for (label, r, line) in &results {
        match r {
            Ok(()) => {
                ok += 1;
                println!("{label}: {line}");
            }
            Err(class) => {
                failures.extend(*class);
                println!(
                    "{label}: {}{line}",
                    if class.is_some() { "FAILED " } else { "" }
                );
            }
        }
    }
    println!(
        "\nChecked {} mailbox(es): {ok} reachable on both sides, {} failing{}.",
        results.len(),
        failures.len(),
        if results.len() > ok + failures.len() {
            format!(", {} not checked", results.len() - ok - failures.len())
        } else {
            String::new()
        }
    );
    Ok(run::most_common_failure(failures).unwrap_or(exit::OK))
}

/// The campaign's state store for reading; an empty scratch one (kept alive by the returned
/// directory) when nothing has run yet, so reading never creates the campaign's file.
async fn campaign_state(
    campaign: &Campaign,
) -> Result<(trasloco_state::State, tempfile::TempDir), ConfigError> {
    let scratch = tempfile::tempdir()
        .map_err(|e| ConfigError(format!("cannot create a temporary directory: {e}")))?;
    let location = match campaign.state() {
        trasloco_state::Location::File(p) if !p.exists() => {
            trasloco_state::Location::File(scratch.path().join("state.sqlite"))
        }
        l => l,
    };
    let state = trasloco_state::State::open_at(&location)
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    Ok((state, scratch))
}

async fn verify_campaign(path: &Path, full: bool, json: bool) -> Result<i32, ConfigError> {
    let campaign = load_detected(path).await?;
    let entries = campaign_entries(&campaign)?;
    let plan = plan::load(&campaign.plan_path())?;
    let (jobs, left) = run::prepare(&campaign, entries, plan.as_ref(), &[])?;
    let settings = run::settings(&campaign, false);
    // Without a state file nothing has run: compare anyway (everything counts as missing).
    let (state, _scratch) = campaign_state(&campaign).await?;
    let v = trasloco_campaign::verify::verify(
        jobs,
        left,
        &settings.sync,
        &campaign.file.phases,
        &state,
        settings.jobs,
        full,
    )
    .await?;
    state.close().await;
    let out = serde_json::to_string_pretty(&v)
        .map_err(|e| ConfigError(format!("internal error: verify: {e}")))?;
    let dir = campaign.reports_dir();
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("verify.json"), &out))
        .map_err(|e| {
            ConfigError(format!(
                "cannot write {}: {}",
                dir.join("verify.json").display(),
                trasloco_core::words::io_error(&e)
            ))
        })?;
    if json {
        println!("{out}");
    } else {
        print!("{}", trasloco_campaign::verify::text(&v));
    }
    Ok(v.exit_code)
}

async fn report_campaign(path: &Path, out: Option<PathBuf>) -> Result<i32, ConfigError> {
    let campaign = Campaign::load(path)?;
    // Before any run there is only the plan: report it from an empty store.
    let (state, _scratch) = campaign_state(&campaign).await?;
    let r = trasloco_campaign::report::gather(&campaign, &state).await?;
    state.close().await;
    let dir = out.unwrap_or_else(|| campaign.reports_dir());
    let html = trasloco_campaign::report::write(&dir, &r)?;
    println!(
        "Report written: {} (and report.csv, report.json beside it): {} mailboxes.",
        html.display(),
        r.mailboxes.len()
    );
    Ok(exit::OK)
}

async fn pec_report(args: PecArgs) -> Result<i32, ConfigError> {
    let mut trust = if args.no_system_trust {
        trasloco_pec::TrustStore::empty()
    } else {
        trasloco_pec::TrustStore::system()
    };
    for f in &args.trust {
        trust.add_pem_file(f).map_err(ConfigError)?;
    }
    let sources: Vec<Source> = if is_server_url(&args.source) {
        let (proto, side) = login_side(&Login {
            which: "source",
            flag: "from",
            url: &args.source,
            tls: args.from_tls,
            master: &args.from_master,
            file: args.from_password_file.as_deref(),
            master_login: args.master_login,
            ca_file: &args.ca_file,
            pins: &args.from_cert_fingerprint,
            insecure: args.insecure,
            oauth: None,
        })?;
        vec![match proto {
            Proto::Imap => Source::Imap(side),
            Proto::Pop3 => Source::Pop3(side),
        }]
    } else if args.source.ends_with(".toml") {
        let campaign = Campaign::load(Path::new(&args.source))?;
        campaign_entries(&campaign)?
            .into_iter()
            .filter_map(|e| e.job.map(|j| j.source))
            .collect()
    } else {
        vec![archive_source("source", &args.source)?]
    };
    let scratch = tempfile::tempdir()
        .map_err(|e| ConfigError(format!("cannot create a temporary directory: {e}")))?;
    let state = trasloco_state::State::open(&scratch.path().join("scan.sqlite"))
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    let opts = Options::default();
    let mut mailboxes = Vec::new();
    let mut failures = Vec::new();
    for s in &sources {
        let (m, failure) = trasloco_campaign::pec::examine_source(s, &state, &opts, &trust).await;
        mailboxes.push(m);
        failures.extend(failure);
    }
    state.close().await;
    let report = trasloco_campaign::pec::PecReport {
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        mailboxes,
    };
    let html = trasloco_campaign::pec::write(&args.out, &report)?;
    if args.json {
        print_json(&report)?;
    } else {
        print!("{}", trasloco_campaign::pec::text(&report));
        println!(
            "Report written: {} (and .json, .csv beside it).",
            html.display()
        );
    }
    Ok(report.exit_code(&failures))
}

async fn verify_manifest(args: ManifestArgs) -> Result<i32, ConfigError> {
    let text = std::fs::read_to_string(&args.manifest).map_err(|e| {
        ConfigError(format!(
            "cannot read manifest {}: {}",
            args.manifest.display(),
            trasloco_core::words::io_error(&e)
        ))
    })?;
    let mut lines = Vec::new();
    for (i, l) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        lines.push(
            serde_json::from_str::<trasloco_sync::EvidenceLine>(l).map_err(|e| {
                ConfigError(format!(
                    "manifest {} line {}: not an evidence line ({e})",
                    args.manifest.display(),
                    i + 1
                ))
            })?,
        );
    }
    if lines.is_empty() {
        return Err(ConfigError(format!(
            "manifest {} holds no evidence line: nothing to check (is it the right file?)",
            args.manifest.display()
        )));
    }
    // Later lines for the same message (a repairing run after an expunge) supersede earlier
    // ones: the file keeps the history, the latest is judged.
    let all = lines.len();
    let (lines, superseded) = trasloco_sync::latest_lines(&lines);
    let mut trust = trasloco_pec::TrustStore::system();
    for f in &args.trust {
        trust.add_pem_file(f).map_err(ConfigError)?;
    }
    // The target login per target label.
    let mut sides: Vec<Side> = Vec::new();
    if let Some(url) = &args.against {
        let (_, side) = login_side(&Login {
            which: "target",
            flag: "to",
            url,
            tls: args.to_tls,
            master: &args.to_master,
            file: args.to_password_file.as_deref(),
            master_login: args.master_login,
            ca_file: &args.ca_file,
            pins: &args.to_cert_fingerprint,
            insecure: args.insecure,
            oauth: None,
        })?;
        sides.push(side);
    } else if let Some(c) = &args.campaign {
        let campaign = Campaign::load(c)?;
        for e in campaign_entries(&campaign)? {
            if let Some(run::Job {
                target: Target::Imap(side),
                ..
            }) = e.job
            {
                sides.push(side);
            }
        }
    }
    let recorded: std::collections::BTreeSet<&str> =
        lines.iter().map(|l| l.target.as_str()).collect();
    if !sides.iter().any(|s| recorded.contains(s.label().as_str())) {
        let given: Vec<String> = sides.iter().map(Side::label).collect();
        return Err(ConfigError(format!(
            "manifest {} records copies on {}, but it is checked against {}: nothing to check; name the target the copies were made to",
            args.manifest.display(),
            recorded.into_iter().collect::<Vec<_>>().join(", "),
            if given.is_empty() {
                "no target".to_string()
            } else {
                given.join(", ")
            }
        )));
    }
    let mut checks = Vec::new();
    let mut failure = None;
    for side in &sides {
        let mine: Vec<trasloco_sync::EvidenceLine> = lines
            .iter()
            .filter(|l| l.target == side.label())
            .cloned()
            .collect();
        if mine.is_empty() {
            continue;
        }
        match trasloco_sync::check_manifest(side, &mine, &trust).await {
            Ok(c) => checks.extend(c),
            Err((class, why)) => {
                eprintln!("trasloco: {why}");
                failure.get_or_insert(class);
            }
        }
    }
    let bad: Vec<&trasloco_sync::LineCheck> =
        checks.iter().filter(|c| c.problem.is_some()).collect();
    if args.json {
        print_json(&checks)?;
    } else {
        for c in &bad {
            println!(
                "{} {:?} UID {} ({} {}): {}",
                c.line.target,
                c.line.target_folder,
                c.line.target_uid,
                c.line.kind,
                c.line.identificativo.as_deref().unwrap_or("-"),
                c.problem.as_deref().unwrap_or("")
            );
        }
        println!(
            "{} of {} manifest lines checked: {} as recorded, {} differ.{}",
            checks.len(),
            lines.len(),
            checks.len() - bad.len(),
            bad.len(),
            if superseded > 0 {
                format!(
                    " ({all} lines in the file: {superseded} superseded by later lines for the same message)"
                )
            } else {
                String::new()
            }
        );
        if !bad.is_empty() {
            println!(
                "A copy not found is copied again by a run with --full-compare (a run whose source did not change does not look at the target)."
            );
        }
    }
    Ok(if !bad.is_empty() {
        exit::INCOMPLETE
    } else if let Some(class) = failure {
        run::code_of(class)
    } else {
        exit::OK
    })
}

/// The client-settings site of a campaign: its [clients] section and every account with a
/// target address.
/// The client-settings site of a campaign, and a line for every account it leaves out and
/// why. Every value is checked before anything is written or served.
fn client_site(
    path: &Path,
) -> Result<(trasloco_campaign::clients::Site, Vec<String>), ConfigError> {
    use trasloco_campaign::clients::{Site, User, address_problem};
    let campaign = Campaign::load(path)?;
    let Some(section) = campaign.file.clients.clone() else {
        return Err(ConfigError(format!(
            "campaign file {} has no [clients] section: add the new servers' host names and ports (see the README)",
            path.display()
        )));
    };
    let accounts_file = campaign.resolve(&campaign.file.accounts.file);
    let mut users = Vec::new();
    let mut skipped = Vec::new();
    for e in campaign_entries(&campaign)? {
        let label = format!("accounts file line {}: {}", e.line, e.source);
        if let Some((rule, why)) = &e.blocked {
            skipped.push(format!(
                "{label}: skipped, blocked by the {rule} rule: {why}"
            ));
            continue;
        }
        let Some(job) = e.job else {
            skipped.push(format!("{label}: skipped, it has no target address"));
            continue;
        };
        let (Target::Imap(t), Source::Imap(s) | Source::Pop3(s)) = (&job.target, &job.source)
        else {
            skipped.push(format!(
                "{label}: skipped, it does not move to a mail server"
            ));
            continue;
        };
        let address = t.credentials.user.clone();
        let old = &s.credentials.user;
        let old_address =
            (old.contains('@') && !old.eq_ignore_ascii_case(&address)).then(|| old.clone());
        for a in std::iter::once(&address).chain(old_address.as_ref()) {
            if let Some(why) = address_problem(a) {
                return Err(ConfigError(format!(
                    "accounts file {} line {}: address {a:?} cannot go into client settings: {why}; correct it there",
                    accounts_file.display(),
                    e.line
                )));
            }
        }
        if let Some(n) = &e.display_name
            && n.chars().any(char::is_control)
        {
            return Err(ConfigError(format!(
                "accounts file {} line {}: display_name must be one line of text",
                accounts_file.display(),
                e.line
            )));
        }
        users.push(User {
            old_address,
            address,
            display_name: e.display_name.clone(),
        });
    }
    let mut site = Site::new(section.clone(), users);
    let read = |p: &Path| {
        std::fs::read(campaign.resolve(p)).map_err(|e| {
            ConfigError(format!(
                "[clients] cannot read {}: {e}",
                campaign.resolve(p).display()
            ))
        })
    };
    match (&section.profile_sign_cert, &section.profile_sign_key) {
        (Some(cert), Some(key)) => {
            let (cert, key) = (
                read(cert)?,
                String::from_utf8_lossy(&read(key)?).into_owned(),
            );
            // A key that is not RSA or not the certificate's is refused here, before any
            // profile is made.
            trasloco_pec::sign::load_pem(&cert, &key).map_err(|e| {
                ConfigError(format!(
                    "[clients] profile_sign_cert / profile_sign_key: {e}"
                ))
            })?;
            site.signer = Some((cert, key));
        }
        (None, None) => {}
        _ => {
            return Err(ConfigError(
                "[clients] profile_sign_cert and profile_sign_key go together".into(),
            ));
        }
    }
    if let Some(f) = &section.link_secret_file {
        let secret = read(f)?;
        if secret.iter().all(u8::is_ascii_whitespace) {
            return Err(ConfigError(format!(
                "[clients] link_secret_file {} is empty: put any secret text in it",
                campaign.resolve(f).display()
            )));
        }
        if section.private_links {
            site.link_secret = Some(secret);
        }
    }
    Ok((site, skipped))
}

type Outcomes<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Vec<trasloco_campaign::transition::Outcome>> + Send + 'a>,
>;

/// Load a campaign, run a ManageSieve operation over its mailboxes, print the outcomes.
async fn sieve_command(
    path: &Path,
    json: bool,
    op: impl for<'a> FnOnce(&'a Campaign, &'a [run::Entry]) -> Outcomes<'a>,
) -> Result<i32, ConfigError> {
    let campaign = Campaign::load(path)?;
    let entries = campaign_entries(&campaign)?;
    let outcomes = op(&campaign, &entries).await;
    if json {
        print_json(&outcomes)?;
    } else {
        for o in &outcomes {
            println!("{} → {}: {} {}", o.source, o.target, o.state, o.detail);
        }
        if let Some(o) = outcomes.iter().find(|o| o.script.is_some()) {
            println!(
                "\nThe script for {} (the others differ only in their addresses):\n",
                o.source
            );
            print!("{}", o.script.as_deref().unwrap_or(""));
        }
        if outcomes.is_empty() {
            println!("No mailbox changes its address in this campaign: nothing to do.");
        }
    }
    Ok(trasloco_campaign::transition::exit_code(&outcomes))
}

async fn execute(
    jobs: Vec<Job>,
    settings: &Settings,
    show_progress: bool,
) -> Result<i32, ConfigError> {
    // One run per state file at a time: a second one (say a supervisor restarting a worker
    // that hung) would copy everything again. A dry run writes nothing and needs no lock.
    let _lock = if settings.sync.dry_run {
        None
    } else {
        match &settings.state {
            trasloco_state::Location::File(path) => match trasloco_state::RunLock::acquire(path) {
                Ok(l) => Some(l),
                Err(e @ trasloco_state::LockError::Held { .. }) => {
                    eprintln!("trasloco: state {}: {e}", path.display());
                    return Ok(exit::BUSY);
                }
                Err(e) => return Err(ConfigError(e.to_string())),
            },
            // Runs and workers on a PostgreSQL state share its queue: each mailbox is held
            // by one of them at a time, under a lease.
            trasloco_state::Location::Postgres(_) => None,
        }
    };
    let stopper = tokio::spawn(stop_on_signals(settings.sync.stop.clone()));
    let observer = Arc::new(progress::Bars::new(jobs.len(), show_progress));
    let ticker = observer.keep_ticking();
    let outcome = run::run(jobs, settings, observer.clone()).await;
    ticker.abort();
    stopper.abort();
    let (report, path) = outcome?;
    observer.finish();
    summary::print(&report, path.as_deref().map_err(|e| e.to_string()));
    Ok(report.exit_code)
}

/// Ctrl-C or SIGTERM: the first asks the run to stop cleanly (the batches in flight are
/// answered and recorded, the summary printed, the report written; exit 130 or 143); the
/// second ends the process at once.
async fn stop_on_signals(stop: trasloco_sync::Stop) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    loop {
        let signo = tokio::select! {
            _ = int.recv() => 2,
            _ = term.recv() => 15,
        };
        if stop.request(signo) {
            eprintln!(
                "\ntrasloco: stopping ({}): finishing the batches in flight, then the summary and the report. Press Ctrl-C again to stop at once.",
                trasloco_sync::signal_name(signo)
            );
        } else {
            eprintln!("\ntrasloco: stopped at once; the next run resumes from what was recorded");
            std::process::exit(exit::stopped(signo));
        }
    }
}

async fn status(
    campaign: Option<&Path>,
    state: Option<&str>,
    json: bool,
) -> Result<i32, ConfigError> {
    use trasloco_state::Location;
    let mut plan_rows: Vec<summary::Planned> = Vec::new();
    let location = match (campaign, state) {
        (Some(c), _) => {
            let campaign = Campaign::load(c)?;
            // Every account of the campaign, with the plan's decision: the skipped and blocked
            // ones too, which never reach the state.
            if let Some(plan) = plan::load(&campaign.plan_path())? {
                plan_rows = plan
                    .mailboxes
                    .iter()
                    .map(|r| summary::Planned {
                        source: r.source.clone(),
                        target: r.target.clone(),
                        decision: r.decision.action.label().to_string(),
                        reasons: r.decision.reasons.join("; "),
                    })
                    .collect();
            }
            campaign.state()
        }
        (None, Some(s)) => Location::parse(s),
        (None, None) => {
            return Err(ConfigError(
                "status needs a campaign file or --state FILE".into(),
            ));
        }
    };
    let missing = location.file().is_some_and(|p| !p.exists());
    if missing && plan_rows.is_empty() {
        return Err(ConfigError(format!(
            "state file {} does not exist: nothing has run yet",
            location.describe()
        )));
    }
    // Read only: without a state file (a plan but no run yet), an empty one of our own.
    let scratch = tempfile::tempdir().map_err(|e| {
        ConfigError(format!(
            "cannot create a temporary directory: {}",
            trasloco_core::words::io_error(&e)
        ))
    })?;
    let location = if missing {
        Location::File(scratch.path().join("state.sqlite"))
    } else {
        location
    };
    let store = trasloco_state::State::open_at(&location)
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    let rows = store
        .mailboxes()
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    let phases = store
        .phases()
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    let queue = store
        .queue_rows()
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    store.close().await;
    summary::status(&rows, &phases, &plan_rows, &queue, json);
    Ok(exit::OK)
}

/// `trasloco enqueue`: a phase's mailboxes into the shared queue, the plan respected.
async fn enqueue(
    path: &Path,
    phase: Option<Phase>,
    include: &[String],
) -> Result<i32, ConfigError> {
    let campaign = Campaign::load(path)?;
    let location = shared_state(&campaign, "a queue")?;
    let entries = campaign_entries(&campaign)?;
    let plan = plan::load(&campaign.plan_path())?;
    let (jobs, left) = run::prepare(&campaign, entries, plan.as_ref(), include)?;
    let state = trasloco_state::State::open_at(&location)
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    let key = trasloco_campaign::workers::campaign_key(&campaign);
    let items = trasloco_campaign::workers::queue_items(&key, &jobs, phase);
    let added = state
        .enqueue(&items)
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    let (waiting, held) = state
        .queued(&key, None)
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    state.close().await;
    println!(
        "queued {added} of {} mailboxes for the {} phase ({} left out by the plan or the address rules); the queue has {waiting} to take, {held} held by workers",
        items.len(),
        phase.map_or("delta", |p| p.name()),
        left.len()
    );
    Ok(exit::OK)
}

/// `trasloco workers`: who works on the campaign, and the queue.
async fn workers(path: &Path, json: bool) -> Result<i32, ConfigError> {
    let campaign = Campaign::load(path)?;
    let location = shared_state(&campaign, "listing workers")?;
    let state = trasloco_state::State::open_at(&location)
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    let err = |e: trasloco_state::Error| ConfigError(e.to_string());
    let workers = state.workers().await.map_err(err)?;
    let queue = state.queue_rows().await.map_err(err)?;
    let backoffs = state.back_offs().await.map_err(err)?;
    state.close().await;
    let lease_ms = campaign.file.workers.lease_seconds as i64 * 1000;
    summary::workers(&workers, &queue, &backoffs, lease_ms, json);
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::{Proto, parse_url};

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("from", "imaps://alice@mail.example.org").unwrap(),
            (
                Proto::Imap,
                true,
                "alice".into(),
                "mail.example.org".into(),
                None
            )
        );
        assert_eq!(
            parse_url("from", "pop3://bob@mail.example.org:1110").unwrap(),
            (
                Proto::Pop3,
                false,
                "bob".into(),
                "mail.example.org".into(),
                Some(1110)
            )
        );
        assert!(parse_url("to", "pop3://bob@mail.example.org").is_err());
        assert_eq!(
            parse_url("from", "imap://anna@cultura.gov.it@127.0.0.1:1143").unwrap(),
            (
                Proto::Imap,
                false,
                "anna@cultura.gov.it".into(),
                "127.0.0.1".into(),
                Some(1143)
            )
        );
        assert_eq!(
            parse_url("to", "imap://a%40b@[::1]:143").unwrap(),
            (Proto::Imap, false, "a@b".into(), "::1".into(), Some(143))
        );
        // Issue 19, point 14: %-escapes decoded, a folder in the URL named as such.
        assert_eq!(
            parse_url("from", "imaps://mario%2Erossi%40comune.it@mail.example").unwrap(),
            (
                Proto::Imap,
                true,
                "mario.rossi@comune.it".into(),
                "mail.example".into(),
                None
            )
        );
        let e = parse_url("from", "imap://u@h:143/INBOX").unwrap_err().0;
        assert!(e.contains("a folder (\"INBOX\") in the URL"), "{e}");
        assert!(!e.contains("bad port"), "{e}");
        assert!(
            parse_url("from", "imap://a%4@h")
                .unwrap_err()
                .0
                .contains("bad %-escape")
        );
        assert!(
            parse_url("from", "imap://alice:secret@host")
                .unwrap_err()
                .0
                .contains("never go in the URL")
        );
        assert!(parse_url("from", "ftp://alice@host").is_err());
        assert!(parse_url("from", "imap://host").is_err());
    }
}
