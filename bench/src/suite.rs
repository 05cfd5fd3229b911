//! One benchmark suite: a Dovecot pair, the corpus seeded into the source, then every tool run
//! `runs` times against a freshly emptied target, measured and verified; and the report that
//! turns the rows of one or more suites into a table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use trasloco_imap::{AppendMsg, Client, Credentials, Endpoint, Security, TlsOptions};

use crate::corpus::{self, EMPTY_FOLDERS, FOLDERS, Spec, Totals};
use crate::measure::{self, Cost, median};
use crate::verify::{self, Manifest};

pub(crate) const SOURCE_PORT: u16 = 51143;
pub(crate) const TARGET_PORT: u16 = 52143;
/// How `doveadm backup` is named in results.
const DOVEADM: &str = "doveadm backup (imapc)";

/// `suite` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Working directory (servers, logs, state); emptied first.
    #[arg(long)]
    dir: PathBuf,
    /// Scenario name in the table, e.g. "loopback" or "40 ms RTT".
    #[arg(long)]
    label: String,
    /// Corpus size as MAILBOXESxMESSAGES.
    #[arg(long, default_value = "4x2000")]
    scale: String,
    /// Corpus seed.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Many small mailboxes (2-20 KB messages in 2-4 folders, between a quarter of the
    /// scale's messages and all of them per mailbox), as `--scale 1000x200`.
    #[arg(long)]
    small: bool,
    /// Measurements per tool (the table shows the median).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Which tools, as TOOL:PARALLEL (tools: trasloco, trasloco-noverify, doveadm, ceiling).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ceiling:1,ceiling:4,doveadm:1,doveadm:4,trasloco:1,trasloco:4,trasloco-noverify:4"
    )]
    tools: Vec<String>,
    /// Address the servers listen on and the tools connect to.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Run the servers in this network namespace (the WAN scenario: tools here, servers there,
    /// joined by `trasloco-bench wire`).
    #[arg(long)]
    servers_netns: Option<String>,
    /// The trasloco binary.
    #[arg(long, default_value = "target/release/trasloco")]
    trasloco: PathBuf,
    /// Where to write the result rows (JSON).
    #[arg(long)]
    out: PathBuf,
}

/// One measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// Scenario label.
    pub scenario: String,
    /// Tool name as shown.
    pub tool: String,
    /// Mailboxes at a time.
    pub parallel: usize,
    /// Which repetition.
    pub run: usize,
    /// Wall seconds.
    pub wall: f64,
    /// CPU seconds of the tool.
    pub cpu: f64,
    /// Peak RSS of the tool in MiB (None where not meaningful).
    pub rss_mib: Option<f64>,
    /// CPU seconds of the source Dovecot.
    pub source_cpu: f64,
    /// CPU seconds of the target Dovecot.
    pub target_cpu: f64,
    /// CPU seconds of the PostgreSQL server holding the state, for runs that use one.
    #[serde(default)]
    pub state_cpu: Option<f64>,
    /// None: every message identical; else what differed.
    pub problem: Option<String>,
}

/// What a suite file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteResult {
    /// Scenario label.
    pub scenario: String,
    /// Corpus parameters.
    pub scale: String,
    /// Corpus seed.
    pub seed: u64,
    /// Corpus totals.
    pub totals: Totals,
    /// Versions of everything measured.
    pub versions: Vec<String>,
    /// Seconds the seeding took.
    pub seed_seconds: f64,
    /// The measurements.
    pub rows: Vec<Row>,
}

pub fn parse_scale(s: &str) -> Result<(usize, usize)> {
    let (u, m) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("--scale {s:?}: expected MAILBOXESxMESSAGES, e.g. 4x2000"))?;
    Ok((u.trim().parse()?, m.trim().parse()?))
}

fn sh(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| what.to_string())?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(crate) fn pair(
    action: &str,
    dir: &Path,
    users: &[String],
    host: &str,
    netns: Option<&str>,
) -> Result<()> {
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "bash"]);
            c
        }
        None => Command::new("bash"),
    };
    c.arg("scripts/dovecot-pair.sh")
        .arg(action)
        .arg(dir)
        .env("PAIR_USERS", users.join(" "))
        .env("PAIR_LISTEN", host);
    for (side, base) in [("SOURCE", SOURCE_PORT), ("TARGET", TARGET_PORT)] {
        for (proto, off) in [
            ("IMAP", 0),
            ("IMAPS", 1),
            ("POP3", 2),
            ("POP3S", 3),
            ("SIEVE", 4),
        ] {
            c.env(
                format!("{side}_{proto}_PORT"),
                (base + off * 10).to_string(),
            );
        }
    }
    sh(&mut c, &format!("scripts/dovecot-pair.sh {action}")).map(|_| ())
}

/// Put the corpus into the source server, one mailbox after another.
pub(crate) async fn seed(spec: &Spec, host: &str) -> Result<Totals> {
    let mut totals = Totals::default();
    for (i, user) in spec.user_names().iter().enumerate() {
        let msgs = corpus::mailbox(spec, i);
        totals.add(&msgs);
        let ep = Endpoint {
            host: host.into(),
            port: SOURCE_PORT,
            security: Security::None,
        };
        let mut c = Client::connect(&ep, &TlsOptions::default()).await?;
        c.login(&Credentials::new(user, format!("{user}-pw")))
            .await?;
        // A small mailbox has only the folders its messages are in.
        let used = |f: usize| !spec.small || msgs.iter().any(|m| m.folder == f);
        let empty = if spec.small { &[][..] } else { EMPTY_FOLDERS };
        for name in FOLDERS
            .iter()
            .enumerate()
            .filter(|(f, _)| used(*f))
            .map(|(_, (n, _))| *n)
            .chain(empty.iter().copied())
        {
            if name != "INBOX" {
                c.create(name).await?;
                c.subscribe(name).await?;
            }
        }
        for (f, (name, _)) in FOLDERS.iter().enumerate() {
            let mine: Vec<&corpus::Msg> = msgs.iter().filter(|m| m.folder == f).collect();
            for chunk in mine.chunks(50) {
                let batch: Vec<AppendMsg> = chunk
                    .iter()
                    .map(|m| AppendMsg {
                        flags: m.flags.clone(),
                        internal_date: Some(m.internal_date.clone()),
                        body: Bytes::from(m.body.clone()),
                    })
                    .collect();
                let outcomes = c.append(name, &batch).await?;
                if let Some(bad) = outcomes
                    .iter()
                    .find(|o| matches!(o, trasloco_imap::AppendOutcome::Rejected(_)))
                {
                    bail!("seeding {user}/{name}: {bad:?}");
                }
            }
        }
        c.logout().await;
    }
    Ok(totals)
}

fn versions(trasloco: &Path) -> Vec<String> {
    let run = |c: &str, a: &[&str]| {
        Command::new(c)
            .args(a)
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default()
    };
    // The commit measured, so that a table can be traced to its code ("-dirty" when the
    // working tree had changes). Empty outside a git checkout.
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let commit = run("git", &["-C", repo, "describe", "--always", "--dirty"]);
    vec![
        format!(
            "{}{}",
            run(&trasloco.display().to_string(), &["--version"]),
            if commit.is_empty() {
                String::new()
            } else {
                format!(" (commit {commit})")
            }
        ),
        format!("dovecot {}", run("dovecot", &["--version"])),
        format!("linux {}", run("uname", &["-r"])),
        format!("{} cores", run("nproc", &[])),
    ]
}

struct Ctx {
    dir: PathBuf,
    users: Vec<String>,
    spec: Spec,
    trasloco: PathBuf,
    me: PathBuf,
    host: String,
    netns: Option<String>,
    source: Vec<Manifest>,
    /// The private PostgreSQL cluster's URL, when a tool keeps its state there.
    postgres: Option<String>,
}

impl Ctx {
    /// Change 1 % of the source mailboxes (every hundredth, at least one): 5 new messages in
    /// the INBOX and `\Flagged` turned on or off (by `round`) on its first three messages.
    /// The changed mailboxes' source manifests are read again, so the check after the next
    /// run compares with what the source now holds.
    async fn change_some(&mut self, round: usize) -> Result<()> {
        let ep = Endpoint {
            host: self.host.clone(),
            port: SOURCE_PORT,
            security: Security::None,
        };
        for i in (0..self.users.len()).step_by(100) {
            let user = &self.users[i];
            let mut c = Client::connect(&ep, &TlsOptions::default()).await?;
            c.login(&Credentials::new(user, format!("{user}-pw")))
                .await?;
            let batch: Vec<AppendMsg> = (0..5)
                .map(|n| AppendMsg {
                    flags: Vec::new(),
                    internal_date: None,
                    body: Bytes::from(format!(
                        "Message-ID: <change-{round}-{n}-{i}@bench.example>\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\nFrom: bench@example.org\r\nSubject: new mail {round}/{n}\r\n\r\nArrived between two passes.\r\n"
                    )),
                })
                .collect();
            c.append("INBOX", &batch).await?;
            c.select("INBOX", false).await?;
            let flags = if round % 2 == 1 {
                vec!["\\Flagged".to_string()]
            } else {
                Vec::new()
            };
            let uids: Vec<u32> = c.fetch_uids().await?.into_iter().take(3).collect();
            let set: Vec<(u32, Vec<String>)> = uids.iter().map(|&u| (u, flags.clone())).collect();
            c.store_flags(&set).await?;
            c.logout().await;
            self.source[i] = verify::manifest(&self.host, SOURCE_PORT, user).await?;
        }
        Ok(())
    }

    /// The PostgreSQL cluster's postmaster, when the suite runs one.
    fn postgres_pid(&self) -> Option<u32> {
        self.postgres.as_ref()?;
        let text = std::fs::read_to_string(self.dir.join("postgres/data/postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn servers(&self) -> PathBuf {
        self.dir.join("servers")
    }

    fn campaign(&self, name: &str, parallel: usize, verify: bool) -> Result<PathBuf> {
        let d = self.dir.join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join("master-password"), "admin-secret\n")?;
        let mut csv = String::from("source_user,target_user\n");
        for u in &self.users {
            writeln!(csv, "{u},{u}")?;
        }
        std::fs::write(d.join("accounts.csv"), csv)?;
        let side = |port: u16| {
            format!(
                "host = \"{}\"\nport = {port}\ntls = \"none\"\nmaster_user = \"admin\"\nmaster_password_file = \"master-password\"\n",
                self.host
            )
        };
        // BENCH_RUN_EXTRA adds lines to [run] (e.g. "parallel_folders = 3"), to try settings;
        // the `trasloco-alt` tool gets BENCH_ALT_EXTRA instead, to compare two settings in one
        // invocation.
        let var = if name.starts_with("trasloco-alt") {
            "BENCH_ALT_EXTRA"
        } else {
            "BENCH_RUN_EXTRA"
        };
        let extra = std::env::var(var)
            .map(|e| e.replace("\\n", "\n"))
            .unwrap_or_default();
        // trasloco-pg keeps its state in the suite's PostgreSQL cluster, a schema per run.
        let state = match (&self.postgres, name.starts_with("trasloco-pg")) {
            (Some(url), true) => {
                let schema = name.replace('-', "_");
                sh(
                    Command::new("psql").args([
                        url.as_str(),
                        "-q",
                        "-c",
                        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
                    ]),
                    "psql",
                )?;
                format!("state = \"{url}?options=-c%20search_path%3D{schema}\"\n")
            }
            _ => String::new(),
        };
        let toml = format!(
            "name = \"benchmark\"\n\n[source]\n{}\n[target]\n{}\n[accounts]\nfile = \"accounts.csv\"\n\n[run]\njobs = {parallel}\nverify = {verify}\n{state}{extra}\n",
            side(SOURCE_PORT),
            side(TARGET_PORT)
        );
        let file = d.join("campaign.toml");
        std::fs::write(&file, toml)?;
        Ok(file)
    }

    /// The command line of one tool.
    fn command(&self, tool: &str, parallel: usize, run: usize) -> Result<Vec<String>> {
        Ok(match tool {
            "trasloco" | "trasloco-noverify" | "trasloco-alt" | "trasloco-pg" => {
                let campaign = self.campaign(
                    &format!("{tool}-{parallel}-{run}"),
                    parallel,
                    tool != "trasloco-noverify",
                )?;
                // BENCH_WRAP runs trasloco under a profiler, e.g. "valgrind --tool=callgrind",
                // or with an environment ("env TOKIO_WORKER_THREADS=1"); BENCH_ALT_WRAP, when
                // set, replaces it for `trasloco-alt`.
                let wrap = match std::env::var("BENCH_ALT_WRAP") {
                    Ok(w) if tool == "trasloco-alt" => Ok(w),
                    _ => std::env::var("BENCH_WRAP"),
                };
                let mut v: Vec<String> = wrap
                    .map(|w| w.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default();
                v.extend([
                    self.trasloco.display().to_string(),
                    "--no-progress".into(),
                    "run".into(),
                    campaign.display().to_string(),
                ]);
                v
            }
            t if workers_of(t).is_some() => {
                // N workers of one campaign on a PostgreSQL state, the run's parallelism split
                // between them: the queue is filled, then the workers take from it until it
                // is empty. Measured as one process tree (the script and its workers).
                let n = workers_of(t).unwrap_or(1);
                let campaign =
                    self.campaign(&format!("{tool}-{parallel}-{run}"), parallel, true)?;
                let jobs = (parallel / n).max(1);
                let exe = self.trasloco.display().to_string();
                let script = format!(
                    r#"set -e
'{exe}' enqueue '{c}' >/dev/null
pids=""
for i in $(seq {n}); do '{exe}' --no-progress worker '{c}' --until-empty --jobs {jobs} & pids="$pids $!"; done
rc=0; for p in $pids; do wait "$p" || rc=$?; done; exit $rc"#,
                    c = campaign.display()
                );
                vec!["bash".into(), "-c".into(), script]
            }
            "doveadm" => {
                // Dovecot's documented migration path: dsync with the source as an imapc
                // location, writing the target's storage directly (it never talks to the target
                // server). Same settings the target server runs with.
                let conf = self.servers().join("target/dovecot.conf");
                let script = format!(
                    r#"one() {{ doveadm -c '{conf}' -o imapc_host={host} -o imapc_port={SOURCE_PORT} -o imapc_user="$1" -o imapc_master_user=admin -o imapc_password=admin-secret -o 'imapc_features=rfc822.size fetch-headers' -o mail_prefetch_count=20 backup -R -u "$1" imapc: ; }}
rc=0; pids=""; n=0
for u in "$@"; do
  one "$u" & pids="$pids $!"; n=$((n+1))
  if [ "$n" -ge {parallel} ]; then for p in $pids; do wait "$p" || rc=1; done; pids=""; n=0; fi
done
for p in $pids; do wait "$p" || rc=1; done
exit $rc"#,
                    conf = conf.display(),
                    host = self.host
                );
                let mut v = vec!["bash".into(), "-c".into(), script, "doveadm-batch".into()];
                v.extend(self.users.iter().cloned());
                v
            }
            "ceiling" => vec![
                self.me.display().to_string(),
                "ceiling".into(),
                format!("--host={}", self.host),
                format!("--port={TARGET_PORT}"),
                format!("--users={}", self.spec.users),
                format!("--messages={}", self.spec.messages),
                format!("--seed={}", self.spec.seed),
                format!("--parallel={parallel}"),
            ],
            other => {
                bail!(
                    "unknown tool {other:?} (trasloco, trasloco-noverify, trasloco-alt, trasloco-pg, trasloco-pg-wN, doveadm, ceiling)"
                )
            }
        })
    }

    /// Run one command and measure it and both servers.
    fn measure(&self, tool: &str, argv: &[String], log: &Path) -> Result<(Cost, f64, f64)> {
        let src = measure::master_pid(&self.servers().join("source"))?;
        let tgt = measure::master_pid(&self.servers().join("target"))?;
        let pg = self.postgres_pid();
        let (s0, t0) = (measure::tree_cpu(src), measure::tree_cpu(tgt));
        let p0 = pg.map(measure::tree_cpu);
        let mut cost = measure::timed(argv, log)?;
        // Let the server processes of the closed sessions finish and be reaped.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let (s1, t1) = (measure::tree_cpu(src), measure::tree_cpu(tgt));
        cost.state_cpu = match (pg, p0) {
            (Some(pid), Some(p0)) if tool.starts_with("trasloco-pg") => {
                Some(measure::tree_cpu(pid) - p0)
            }
            _ => None,
        };
        if tool == "ceiling" {
            // The ceiling times only its appending; generating the corpus is not part of it.
            let out = std::fs::read_to_string(log)?;
            let json = out
                .lines()
                .rev()
                .find(|l| l.starts_with('{'))
                .context("ceiling printed no result")?;
            let v: serde_json::Value = serde_json::from_str(json)?;
            cost.wall = v["seconds"].as_f64().unwrap_or(f64::NAN);
            cost.cpu = v["cpu"].as_f64().unwrap_or(f64::NAN);
        }
        Ok((cost, s1 - s0, t1 - t0))
    }

    async fn verify(&self) -> Result<Option<String>> {
        // Many mailboxes are read at once (at 40 ms RTT one after another takes long), but not
        // all of them: a thousand connections at once left the target's listener without a
        // greeting for minutes (its login and imap services allow 100 processes each).
        let mut reads = tokio::task::JoinSet::new();
        let at_once = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
        for (i, u) in self.users.iter().enumerate() {
            let (host, user, at_once) = (self.host.clone(), u.clone(), at_once.clone());
            reads.spawn(async move {
                let _turn = at_once.acquire_owned().await;
                (i, verify::manifest(&host, TARGET_PORT, &user).await)
            });
        }
        let mut problems = Vec::new();
        while let Some(joined) = reads.join_next().await {
            let (i, tgt) = joined?;
            if let Some(p) = verify::compare(&self.source[i], &tgt?) {
                problems.push(format!("{}: {p}", self.users[i]));
            }
        }
        problems.sort();
        Ok((!problems.is_empty()).then(|| problems.join(" | ")))
    }

    /// Measure one command, verify the target, print a line, and return the row.
    async fn row(
        &self,
        scenario: &str,
        tool: &str,
        parallel: usize,
        run: usize,
        argv: &[String],
        log: &Path,
    ) -> Result<Row> {
        let (cost, scpu, tcpu) = self.measure(tool, argv, log)?;
        let problem = self.verify().await?;
        eprintln!(
            "[{scenario}] run {run}: {} x{parallel}: {:.2} s, cpu {:.2} s, rss {:.0} MiB, servers {:.2}/{:.2} s, {}",
            display_name(tool),
            cost.wall,
            cost.cpu,
            cost.rss_mib,
            scpu,
            tcpu,
            problem.as_deref().unwrap_or("verified")
        );
        Ok(Row {
            scenario: scenario.to_string(),
            tool: display_name(tool).to_string(),
            parallel,
            run,
            wall: cost.wall,
            cpu: cost.cpu,
            // The ceiling holds the whole generated corpus in memory: its RSS means nothing.
            rss_mib: (tool != "ceiling").then_some(cost.rss_mib),
            source_cpu: scpu,
            target_cpu: tcpu,
            state_cpu: cost.state_cpu,
            problem,
        })
    }
}

/// `trasloco-pg-wN`: N workers sharing a PostgreSQL state.
fn workers_of(tool: &str) -> Option<usize> {
    tool.strip_prefix("trasloco-pg-w")?.parse().ok()
}

fn display_name(tool: &str) -> &str {
    match tool {
        "trasloco" => "trasloco",
        "trasloco-noverify" => "trasloco --no-verify",
        "trasloco-alt" => "trasloco (alt)",
        "trasloco-pg" => "trasloco, PostgreSQL state",
        "trasloco-pg-w1" => "trasloco, PostgreSQL, 1 worker",
        "trasloco-pg-w2" => "trasloco, PostgreSQL, 2 workers",
        "trasloco-pg-w4" => "trasloco, PostgreSQL, 4 workers",
        "doveadm" => DOVEADM,
        "ceiling" => "MULTIAPPEND ceiling",
        other => other,
    }
}

/// The `suite` command.
pub async fn run(args: Args) -> Result<()> {
    let (users, messages) = parse_scale(&args.scale)?;
    let spec = Spec {
        users,
        messages,
        seed: args.seed,
        small: args.small,
    };
    let tools: Vec<(String, usize)> = args
        .tools
        .iter()
        .map(|t| {
            let (name, p) = t.split_once(':').unwrap_or((t, "1"));
            Ok((name.to_string(), p.parse()?))
        })
        .collect::<Result<_>>()?;
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let user_names = spec.user_names();
    let servers = dir.join("servers");
    let netns = args.servers_netns.as_deref();
    pair("start", &servers, &user_names, &args.host, netns)?;
    // A private PostgreSQL cluster (durable: fsync on, commits not waited for, as SQLite's
    // WAL with synchronous = NORMAL) when a tool keeps its state there.
    let pg_dir = dir.join("postgres");
    let postgres = if tools.iter().any(|t| t.0.starts_with("trasloco-pg")) {
        let out = sh(
            Command::new("bash")
                .args(["scripts/postgres.sh", "start"])
                .arg(&pg_dir)
                .env("POSTGRES_DURABLE", "1"),
            "scripts/postgres.sh start",
        )?;
        Some(out.trim().to_string())
    } else {
        None
    };
    let outcome = suite(&args, spec, &dir, tools, postgres.clone()).await;
    if postgres.is_some() {
        sh(
            Command::new("bash")
                .args(["scripts/postgres.sh", "stop"])
                .arg(&pg_dir),
            "scripts/postgres.sh stop",
        )?;
    }
    pair("stop", &servers, &user_names, &args.host, netns)?;
    let result = outcome?;
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)?)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

async fn suite(
    args: &Args,
    spec: Spec,
    dir: &Path,
    tools: Vec<(String, usize)>,
    postgres: Option<String>,
) -> Result<SuiteResult> {
    let t = Instant::now();
    eprintln!(
        "[{}] seeding {} mailboxes x {} messages",
        args.label, spec.users, spec.messages
    );
    let totals = seed(&spec, &args.host).await?;
    let seed_seconds = t.elapsed().as_secs_f64();
    eprintln!(
        "[{}] seeded {} messages, {:.1} MB (largest {:.1} MB) in {seed_seconds:.1} s",
        args.label,
        totals.messages,
        totals.bytes as f64 / 1e6,
        totals.largest as f64 / 1e6
    );
    let mut source = Vec::new();
    for u in spec.user_names() {
        source.push(verify::manifest(&args.host, SOURCE_PORT, &u).await?);
    }
    let ctx = Ctx {
        dir: dir.to_path_buf(),
        users: spec.user_names(),
        spec,
        trasloco: std::fs::canonicalize(&args.trasloco).with_context(|| {
            format!(
                "{} (build it: cargo build --release)",
                args.trasloco.display()
            )
        })?,
        me: std::env::current_exe()?,
        host: args.host.clone(),
        netns: args.servers_netns.clone(),
        source,
        postgres,
    };
    let mut ctx = ctx;
    let mut rows = Vec::new();
    let mut changes = 0;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    // Each repetition runs every tool once, so noise spreads over all of them alike.
    for run in 1..=args.runs {
        for (tool, parallel) in &tools {
            pair(
                "reset-target",
                &ctx.servers(),
                &ctx.users,
                &ctx.host,
                ctx.netns.as_deref(),
            )?;
            let argv = ctx.command(tool, *parallel, run)?;
            let log = logs.join(format!("{tool}-{parallel}-{run}.log"));
            rows.push(
                ctx.row(&args.label, tool, *parallel, run, &argv, &log)
                    .await?,
            );
            // The unchanged re-run: the very same command again over the migrated target (for
            // trasloco, the same campaign directory and so the same state file).
            // Each tool's re-runs at its highest parallelism.
            let highest = tools
                .iter()
                .filter(|t| t.0 == *tool)
                .map(|t| t.1)
                .max()
                .unwrap_or(1);
            if tool != "ceiling" && *parallel == highest {
                let log = logs.join(format!("{tool}-{parallel}-{run}-rerun.log"));
                let label = format!("{} (unchanged re-run)", args.label);
                rows.push(ctx.row(&label, tool, *parallel, run, &argv, &log).await?);
                // A cutover pass where little changed: 1 % of the mailboxes got 5 new
                // messages and had flags changed since.
                changes += 1;
                ctx.change_some(changes).await?;
                let log = logs.join(format!("{tool}-{parallel}-{run}-changed.log"));
                let label = format!("{} (1 % changed re-run)", args.label);
                rows.push(ctx.row(&label, tool, *parallel, run, &argv, &log).await?);
            }
        }
    }
    Ok(SuiteResult {
        scenario: args.label.clone(),
        scale: args.scale.clone(),
        seed: args.seed,
        totals,
        versions: versions(&ctx.trasloco),
        seed_seconds,
        rows,
    })
}

/// The `report` command.
pub fn report(files: &[PathBuf], append: Option<&Path>, command: &str) -> Result<()> {
    let mut suites = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| f.display().to_string())?;
        let s: SuiteResult = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a suite result", f.display()))?;
        suites.push(s);
    }
    let Some(first) = suites.first() else {
        bail!("no result files given");
    };
    let mut md = String::new();
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    writeln!(md, "\n### Run of {now}\n")?;
    writeln!(md, "- Command: `{command}`")?;
    writeln!(
        md,
        "- Corpus: {} mailboxes × {} messages (seed {}): {} messages, {:.1} MB, largest {:.1} MB",
        first.scale.split(['x', 'X']).next().unwrap_or("?"),
        first.scale.split(['x', 'X']).nth(1).unwrap_or("?"),
        first.seed,
        first.totals.messages,
        first.totals.bytes as f64 / 1e6,
        first.totals.largest as f64 / 1e6
    )?;
    writeln!(md, "- Versions: {}", first.versions.join(", "))?;
    let runs = first.rows.iter().map(|r| r.run).max().unwrap_or(0);
    writeln!(
        md,
        "- Each figure is the median of {runs} runs; every run started from an empty target and was verified.\n"
    )?;
    writeln!(
        md,
        "| scenario | tool | parallel | wall s | msg/s | MB/s | tool CPU s | source CPU s | target CPU s | peak RSS MiB | verified | vs doveadm | vs ceiling |"
    )?;
    writeln!(
        md,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
    )?;
    for s in &suites {
        let mut keys: Vec<(String, String, usize)> = Vec::new();
        for r in &s.rows {
            let k = (r.scenario.clone(), r.tool.clone(), r.parallel);
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let wall_of = |scenario: &str, tool: &str, p: usize| {
            let v: Vec<f64> = s
                .rows
                .iter()
                .filter(|r| r.scenario == scenario && r.tool == tool && r.parallel == p)
                .map(|r| r.wall)
                .collect();
            (!v.is_empty()).then(|| median(&v))
        };
        for (scenario, tool, p) in &keys {
            let rows: Vec<&Row> = s
                .rows
                .iter()
                .filter(|r| &r.scenario == scenario && &r.tool == tool && r.parallel == *p)
                .collect();
            let col =
                |f: &dyn Fn(&Row) -> f64| median(&rows.iter().map(|r| f(r)).collect::<Vec<_>>());
            let wall = col(&|r| r.wall);
            let rerun = scenario.ends_with(" re-run)");
            let (msgs, mb) = (s.totals.messages as f64, s.totals.bytes as f64 / 1e6);
            let rss: Vec<f64> = rows.iter().filter_map(|r| r.rss_mib).collect();
            let bad = rows.iter().filter(|r| r.problem.is_some()).count();
            let verified = if bad == 0 {
                format!("yes ({}/{})", rows.len(), rows.len())
            } else {
                format!("**NO** ({bad}/{} runs differ)", rows.len())
            };
            let ratio = |other: &str| {
                if tool == other {
                    return "".to_string();
                }
                wall_of(scenario, other, *p)
                    .map(|w| format!("{:.2}×", w / wall))
                    .unwrap_or_default()
            };
            writeln!(
                md,
                "| {scenario} | {tool} | {p} | {wall:.2} | {} | {} | {} | {:.2} | {:.2} | {} | {verified} | {} | {} |",
                if rerun {
                    "–".into()
                } else {
                    format!("{:.0}", msgs / wall)
                },
                if rerun {
                    "–".into()
                } else {
                    format!("{:.1}", mb / wall)
                },
                match rows.iter().filter_map(|r| r.state_cpu).collect::<Vec<_>>() {
                    pg if !pg.is_empty() =>
                        format!("{:.2} (+ PostgreSQL {:.2})", col(&|r| r.cpu), median(&pg)),
                    _ => format!("{:.2}", col(&|r| r.cpu)),
                },
                col(&|r| r.source_cpu),
                col(&|r| r.target_cpu),
                if rss.is_empty() {
                    "–".into()
                } else {
                    format!("{:.0}", rss.iter().cloned().fold(0.0, f64::max))
                },
                ratio(DOVEADM),
                ratio("MULTIAPPEND ceiling"),
            )?;
        }
    }
    // Run by run: each repetition runs every tool once, one after the other, so two rows of
    // the same repetition saw the machine in the same mood. The spread of these pairs says
    // how much a median's ratio can be trusted.
    let mut paired: Vec<((String, String, usize), Vec<f64>)> = Vec::new();
    for s in &suites {
        for r in s.rows.iter().filter(|r| r.tool != DOVEADM && r.wall > 0.0) {
            let Some(d) = s.rows.iter().find(|d| {
                d.tool == DOVEADM
                    && d.scenario == r.scenario
                    && d.parallel == r.parallel
                    && d.run == r.run
            }) else {
                continue;
            };
            let key = (r.scenario.clone(), r.tool.clone(), r.parallel);
            let ratio = d.wall / r.wall;
            match paired.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(ratio),
                None => paired.push((key, vec![ratio])),
            }
        }
    }
    if !paired.is_empty() {
        writeln!(
            md,
            "\nAgainst `doveadm backup` run by run (each pair from the same repetition):"
        )?;
        for ((scenario, tool, p), ratios) in &paired {
            let faster = ratios.iter().filter(|r| **r >= 1.0).count();
            let list: Vec<String> = ratios.iter().map(|r| format!("{r:.2}×")).collect();
            writeln!(
                md,
                "- {scenario}, {tool} ×{p}: {} (at least as fast in {faster} of {})",
                list.join(", "),
                ratios.len()
            )?;
        }
    }
    let problems: Vec<String> = suites
        .iter()
        .flat_map(|s| s.rows.iter())
        .filter_map(|r| {
            r.problem.as_ref().map(|p| {
                format!(
                    "- {} / {} ×{} run {}: {p}",
                    r.scenario, r.tool, r.parallel, r.run
                )
            })
        })
        .collect();
    if !problems.is_empty() {
        writeln!(md, "\nVerification failures:\n{}", problems.join("\n"))?;
    }
    writeln!(
        md,
        "\nRatios are throughput ratios (the other tool's wall time over this one's; above 1 is faster). Peak RSS is the largest single process; the ceiling's is not shown because it holds the generated corpus in memory. doveadm writes the target's storage itself, so the target server's CPU is near zero for it and its own CPU includes that work."
    )?;
    print!("{md}");
    if let Some(path) = append {
        let mut old = std::fs::read_to_string(path).unwrap_or_default();
        old.push_str(&md);
        std::fs::write(path, old)?;
        eprintln!("appended to {}", path.display());
    }
    Ok(())
}
