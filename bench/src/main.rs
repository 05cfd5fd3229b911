//! `trasloco-bench`: measures trasloco side by side with Dovecot's own `doveadm backup` over
//! imapc and with a raw pipelined MULTIAPPEND ceiling, on one deterministic corpus, each run
//! against a freshly emptied target, each result verified message by message.
//! `bench/run.sh` is the one command; this binary is its engine:
//!
//! - `suite`: start a Dovecot pair, seed it, run every tool N times, write result rows;
//! - `report`: turn result rows into the table in BENCHMARKS.md;
//! - `ceiling`: the raw MULTIAPPEND writer (run by `suite` as a separate, measured process);
//! - `throttle`: the corpus into a target that throttles as Exchange Online does.

mod ceiling;
mod corpus;
mod measure;
mod suite;
mod throttle;
mod verify;
mod wire;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "trasloco-bench",
    about = "Benchmark trasloco against doveadm backup and a MULTIAPPEND ceiling"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a Dovecot pair in DIR, seed the corpus, measure every tool, write rows to OUT.
    Suite(suite::Args),
    /// Migrate the corpus into a target that rations APPENDs per mailbox as Exchange Online
    /// does (a throttling proxy in front of the target), and set trasloco's effective rate
    /// against imapsync's fixed Office 365 rates.
    Throttle(throttle::Args),
    /// Append the generated corpus straight into a target; prints seconds, CPU and count as JSON.
    Ceiling {
        /// Target host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Target IMAP port.
        #[arg(long)]
        port: u16,
        /// Mailboxes.
        #[arg(long)]
        users: usize,
        /// Messages per mailbox.
        #[arg(long)]
        messages: usize,
        /// Corpus seed.
        #[arg(long)]
        seed: u64,
        /// Mailboxes at a time.
        #[arg(long)]
        parallel: usize,
    },
    /// Relay IP packets between a TUN device in each of two network namespaces with a delay
    /// (the WAN scenario's wire, for kernels without tc netem). Runs until killed.
    Wire {
        /// NETNS:DEVICE of one end.
        #[arg(long)]
        a: String,
        /// NETNS:DEVICE of the other end.
        #[arg(long)]
        b: String,
        /// One-way delay in milliseconds (the round trip is twice this).
        #[arg(long)]
        delay_ms: u64,
    },
    /// Print the totals of a corpus without starting anything.
    Corpus {
        /// Corpus size as MAILBOXESxMESSAGES.
        #[arg(long, default_value = "4x2000")]
        scale: String,
        /// Corpus seed.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
    /// Print the results table of one or more suites and append it to a Markdown file.
    Report {
        /// Result files written by `suite`.
        rows: Vec<PathBuf>,
        /// Append the table here (e.g. BENCHMARKS.md).
        #[arg(long)]
        append: Option<PathBuf>,
        /// The command line to record with the table.
        #[arg(long, default_value = "bash bench/run.sh")]
        command: String,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.cmd {
        Cmd::Suite(args) => suite::run(args).await,
        Cmd::Throttle(args) => throttle::run(args).await,
        Cmd::Ceiling {
            host,
            port,
            users,
            messages,
            seed,
            parallel,
        } => {
            let spec = corpus::Spec {
                users,
                messages,
                seed,
                small: false,
            };
            ceiling_main(&spec, &host, port, parallel).await
        }
        Cmd::Wire { a, b, delay_ms } => {
            let split = |s: &str| {
                s.split_once(':')
                    .map(|(n, d)| (n.to_string(), d.to_string()))
            };
            match (split(&a), split(&b)) {
                (Some(a), Some(b)) => wire::run(
                    (&a.0, &a.1),
                    (&b.0, &b.1),
                    std::time::Duration::from_millis(delay_ms),
                ),
                _ => Err(anyhow::anyhow!("--a and --b take NETNS:DEVICE")),
            }
        }
        Cmd::Corpus { scale, seed } => suite::parse_scale(&scale).map(|(users, messages)| {
            let spec = corpus::Spec {
                users,
                messages,
                seed,
                small: false,
            };
            let mut t = corpus::Totals::default();
            for i in 0..users {
                t.add(&corpus::mailbox(&spec, i));
            }
            println!(
                "{} messages, {:.1} MB, largest {:.1} MB",
                t.messages,
                t.bytes as f64 / 1e6,
                t.largest as f64 / 1e6
            );
        }),
        Cmd::Report {
            rows,
            append,
            command,
        } => suite::report(&rows, append.as_deref(), &command),
    };
    if let Err(e) = result {
        eprintln!("trasloco-bench: {e:#}");
        std::process::exit(1);
    }
}

async fn ceiling_main(spec: &corpus::Spec, host: &str, port: u16, parallel: usize) -> Result<()> {
    // The corpus is generated before the clock starts and its CPU is not counted.
    let (seconds, cpu, stored) = ceiling::run(spec, host, port, parallel).await?;
    println!(
        "{}",
        serde_json::json!({ "seconds": seconds, "cpu": cpu, "stored": stored })
    );
    Ok(())
}
