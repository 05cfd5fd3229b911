//! The throttling scenario: the corpus migrated into a target that rations APPENDs per
//! mailbox, as Exchange Online does. A proxy in front of the real target Dovecot (a test
//! double: no Exchange to measure against) gives each mailbox a budget of `rate` messages a
//! second with a burst of `burst`; an APPEND beyond it is answered with Exchange's own
//! sentence, `NO Request is throttled. Suggested Backoff Time: N milliseconds`, N being the
//! time the budget needs to fill half the burst again. MULTIAPPEND is not offered, as Exchange
//! does not. trasloco runs with its defaults; its effective rate per mailbox is set against
//! the fixed rates imapsync users are told to use for Office 365 (`--office2`: 4 messages a
//! second; the FAQ's `--maxmessagespersecond 1`), computed for the same corpus, as imapsync
//! is not packaged here.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use base64::Engine;

use crate::corpus::Spec;
use crate::suite::{SOURCE_PORT, TARGET_PORT, pair, parse_scale, seed};

/// `throttle` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Working directory (servers, campaign, state); emptied first.
    #[arg(long, default_value = "bench/work/throttle")]
    dir: PathBuf,
    /// Corpus size as MAILBOXESxMESSAGES.
    #[arg(long, default_value = "4x300")]
    scale: String,
    /// Corpus seed.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Messages a second each mailbox may append, on average.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Messages a mailbox may append at once before the rate applies.
    #[arg(long, default_value_t = 30.0)]
    burst: f64,
    /// The target's `provider` in the campaign (`generic`: none of Exchange's presets).
    #[arg(long, default_value = "microsoft365")]
    provider: String,
    /// The trasloco binary.
    #[arg(long, default_value = "target/release/trasloco")]
    trasloco: PathBuf,
    /// Append the result to this Markdown file (e.g. BENCHMARKS.md).
    #[arg(long)]
    append: Option<PathBuf>,
}

/// One mailbox's budget.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The budgets of every mailbox, and how often the proxy said no.
struct Budget {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
    throttled: AtomicU64,
}

impl Budget {
    /// Take one message's place for `user`; `Err(ms)`: throttled, try again in `ms`.
    fn take(&self, user: &str) -> Result<(), u64> {
        let mut all = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let b = all.entry(user.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: Instant::now(),
        });
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        self.throttled.fetch_add(1, Ordering::Relaxed);
        let wait = (self.burst / 2.0 - b.tokens) / self.rate;
        Err((wait * 1000.0).ceil() as u64)
    }
}

/// The length of the first whole command or response in `buf` (its lines and the literals
/// they announce), if all of it is there.
fn unit_len(buf: &[u8]) -> Option<usize> {
    trasloco_imap::framing::Framer::default().next_frame(buf, &mut 0)
}

/// Who a login names: the authorization identity of SASL PLAIN (a master login), else the
/// LOGIN user.
fn login_user(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.get(1).map(|v| v.to_ascii_uppercase()).as_deref() {
        Some("AUTHENTICATE") => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(words.get(3)?)
                .ok()?;
            let text = String::from_utf8_lossy(&raw).to_string();
            let mut parts = text.split('\0');
            let (authz, authc) = (parts.next()?, parts.next()?);
            Some(if authz.is_empty() { authc } else { authz }.to_string())
        }
        Some("LOGIN") => Some(words.get(2)?.trim_matches('"').to_string()),
        _ => None,
    }
}

/// One client connection through the proxy.
fn relay(mut client: TcpStream, budget: Arc<Budget>) -> Result<()> {
    let mut server = TcpStream::connect(("127.0.0.1", TARGET_PORT))?;
    let answers: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let (mut c2, mut s2, swap) = (client.try_clone()?, server.try_clone()?, answers.clone());
    let back = std::thread::spawn(move || {
        let (mut pending, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
        while let Ok(n @ 1..) = s2.read(&mut buf) {
            pending.extend_from_slice(&buf[..n]);
            while let Some(len) = unit_len(&pending) {
                let mut unit: Vec<u8> = pending.drain(..len).collect();
                let tag = String::from_utf8_lossy(&unit[..unit.len().min(64)])
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .to_string();
                if let Some(answer) = swap.lock().unwrap_or_else(|e| e.into_inner()).remove(&tag) {
                    unit = answer.into_bytes();
                } else if unit.len() < 4096 {
                    unit = String::from_utf8_lossy(&unit)
                        .replace(" MULTIAPPEND", "")
                        .into_bytes();
                }
                if c2.write_all(&unit).is_err() {
                    return;
                }
            }
        }
        let _ = c2.shutdown(std::net::Shutdown::Both);
    });
    let (mut user, mut pending, mut buf) = (String::new(), Vec::new(), vec![0u8; 64 * 1024]);
    while let Ok(n @ 1..) = client.read(&mut buf) {
        pending.extend_from_slice(&buf[..n]);
        while let Some(len) = unit_len(&pending) {
            let mut unit: Vec<u8> = pending.drain(..len).collect();
            let head = String::from_utf8_lossy(&unit[..unit.len().min(512)]).to_string();
            let line = head.lines().next().unwrap_or("");
            if let Some(u) = login_user(line) {
                user = u;
            }
            let mut words = line.split(' ');
            let (tag, verb) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            if verb.eq_ignore_ascii_case("APPEND")
                && let Err(ms) = budget.take(&user)
            {
                answers.lock().unwrap_or_else(|e| e.into_inner()).insert(
                    tag.to_string(),
                    format!("{tag} NO Request is throttled. Suggested Backoff Time: {ms} milliseconds\r\n"),
                );
                unit = format!("{tag} NOOP\r\n").into_bytes();
            }
            server.write_all(&unit)?;
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Both);
    let _ = back.join();
    Ok(())
}

/// Start the proxy; returns its port.
fn proxy(budget: Arc<Budget>) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let budget = budget.clone();
            std::thread::spawn(move || relay(conn, budget));
        }
    });
    Ok(port)
}

pub async fn run(args: Args) -> Result<()> {
    let (users, messages) = parse_scale(&args.scale)?;
    let spec = Spec {
        users,
        messages,
        seed: args.seed,
        small: false,
    };
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let names = spec.user_names();
    let servers = dir.join("servers");
    pair("start", &servers, &names, "127.0.0.1", None)?;
    let outcome = measure(&args, &spec, &dir).await;
    pair("stop", &servers, &names, "127.0.0.1", None)?;
    let section = outcome?;
    print!("{section}");
    if let Some(path) = &args.append {
        let mut text = std::fs::read_to_string(path).unwrap_or_default();
        text.push_str(&section);
        std::fs::write(path, text)?;
        eprintln!("appended to {}", path.display());
    }
    Ok(())
}

async fn measure(args: &Args, spec: &Spec, dir: &std::path::Path) -> Result<String> {
    let totals = seed(spec, "127.0.0.1").await?;
    let budget = Arc::new(Budget {
        rate: args.rate,
        burst: args.burst,
        buckets: Mutex::default(),
        throttled: AtomicU64::new(0),
    });
    let port = proxy(budget.clone())?;
    std::fs::write(dir.join("master-password"), "admin-secret\n")?;
    let mut csv = String::from("source_user,target_user\n");
    for u in spec.user_names() {
        writeln!(csv, "{u},{u}")?;
    }
    std::fs::write(dir.join("accounts.csv"), csv)?;
    let side = |port: u16| {
        format!(
            "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nmaster_user = \"admin\"\nmaster_password_file = \"master-password\"\n"
        )
    };
    let campaign = dir.join("campaign.toml");
    std::fs::write(
        &campaign,
        format!(
            "name = \"throttled\"\n\n[source]\n{}\n[target]\n{}provider = \"{}\"\n\n[accounts]\nfile = \"accounts.csv\"\n\n[run]\njobs = {}\nreports = \"reports\"\n",
            side(SOURCE_PORT),
            side(port),
            args.provider,
            spec.users
        ),
    )?;
    let trasloco = std::fs::canonicalize(&args.trasloco)
        .with_context(|| format!("{} (cargo build --release)", args.trasloco.display()))?;
    let started = Instant::now();
    let out = std::process::Command::new(&trasloco)
        .args(["--no-progress", "run"])
        .arg(&campaign)
        .output()?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "trasloco run exited {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let verified = std::process::Command::new(&trasloco)
        .arg("verify")
        .arg(&campaign)
        .output()?;
    if !verified.status.success() {
        bail!(
            "trasloco verify: {}",
            String::from_utf8_lossy(&verified.stdout)
        );
    }
    // The report: how often and how long the mailboxes waited.
    let reports = dir.join("reports");
    let latest = std::fs::read_dir(&reports)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("run-") && n.ends_with(".json"))
        })
        .max()
        .context("no report written")?;
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(latest)?)?;
    let mailboxes = report["mailboxes"].as_array().cloned().unwrap_or_default();
    let waited: f64 = mailboxes
        .iter()
        .map(|m| m["throttled_seconds"].as_f64().unwrap_or(0.0))
        .sum();
    let times: u64 = mailboxes
        .iter()
        .map(|m| m["throttled"].as_u64().unwrap_or(0))
        .sum();
    let per_mailbox = spec.messages as f64;
    let rate = per_mailbox / seconds;
    let fixed = |r: f64| per_mailbox / r;
    let mut s = String::new();
    writeln!(
        s,
        "\n### Throttled target: {} UTC, `trasloco-bench throttle --scale {} --rate {} --burst {} --provider {}`\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
        args.scale,
        args.rate,
        args.burst,
        args.provider
    )?;
    writeln!(
        s,
        "{} mailboxes × {} messages ({:.1} MB), all mailboxes at once; each mailbox may append {} messages/s (burst {}). Every copy read back; `trasloco verify` found every message.\n",
        spec.users,
        spec.messages,
        totals.bytes as f64 / 1e6,
        args.rate,
        args.burst
    )?;
    writeln!(
        s,
        "| tool | wall s | messages/s per mailbox | share of the budget | throttled answers | waits (mailboxes × s) |"
    )?;
    writeln!(s, "|---|---:|---:|---:|---:|---:|")?;
    writeln!(
        s,
        "| trasloco (measured) | {seconds:.1} | {rate:.2} | {:.0} % | {} answered, {times} waited | {waited:.1} |",
        100.0 * rate / args.rate,
        budget.throttled.load(Ordering::Relaxed)
    )?;
    for (name, r) in [
        ("imapsync `--office2`, 4 msg/s (computed)", 4.0_f64),
        ("imapsync `--maxmessagespersecond 1` (computed)", 1.0),
    ] {
        let r_eff = r.min(args.rate);
        writeln!(
            s,
            "| {name} | {:.1} | {r_eff:.2} | {:.0} % | 0 | 0 |",
            fixed(r_eff),
            100.0 * r_eff / args.rate
        )?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_lets_a_burst_through_then_says_when_to_come_back() {
        let b = Budget {
            rate: 10.0,
            burst: 4.0,
            buckets: Mutex::default(),
            throttled: AtomicU64::new(0),
        };
        for _ in 0..4 {
            assert!(b.take("alice").is_ok());
        }
        let ms = b.take("alice").unwrap_err();
        assert!((150..=210).contains(&ms), "{ms}");
        assert!(b.take("bob").is_ok(), "each mailbox has its own budget");
        assert_eq!(b.throttled.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn master_logins_name_the_mailbox() {
        let ir = base64::engine::general_purpose::STANDARD.encode("b01\0admin\0secret");
        assert_eq!(
            login_user(&format!("t1 AUTHENTICATE PLAIN {ir}")).as_deref(),
            Some("b01")
        );
        assert_eq!(login_user("t1 LOGIN \"b02\" x").as_deref(), Some("b02"));
        assert_eq!(login_user("t2 SELECT INBOX"), None);
    }
}
