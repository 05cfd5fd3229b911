//! Test support: a real Dovecot pair per test (scripts/dovecot-pair.sh), seeding and reading
//! mailboxes over IMAP, and running the trasloco binary.
#![allow(dead_code)]

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use trasloco_imap::{AppendMsg, Client, Credentials, Endpoint, Security, TlsOptions};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Two running Dovecot instances, stopped on drop.
pub struct Pair {
    pub dir: tempfile::TempDir,
    pub env: HashMap<String, String>,
}

const PORT_VARS: [&str; 10] = [
    "SOURCE_IMAP_PORT",
    "SOURCE_IMAPS_PORT",
    "SOURCE_POP3_PORT",
    "SOURCE_POP3S_PORT",
    "SOURCE_SIEVE_PORT",
    "TARGET_IMAP_PORT",
    "TARGET_IMAPS_PORT",
    "TARGET_POP3_PORT",
    "TARGET_POP3S_PORT",
    "TARGET_SIEVE_PORT",
];

/// Ports for one pair, taken below the kernel's ephemeral range (32768 and up on Linux).
///
/// Ports from `bind(127.0.0.1:0)` come from that range, and between releasing one and Dovecot
/// binding it, a client connection of a test running beside this one could take it as its own
/// local port ("Address already in use", seen once on a fresh clone). Below the range, only an
/// explicit bind can take a port, and the check here sees those. Each test process starts at its
/// own offset; a counter keeps the tests of one process apart.
fn free_ports(n: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 22_000;
    const SPAN: u32 = 9_000; // up to 30999: clear of the demo's 31xxx ports
    let offset = (std::process::id() * 131) % SPAN;
    let mut out = Vec::with_capacity(n);
    for _ in 0..SPAN {
        if out.len() == n {
            break;
        }
        let port = (LOW + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            out.push(port);
        }
    }
    assert_eq!(
        out.len(),
        n,
        "no free ports between {LOW} and {}",
        LOW + SPAN - 1
    );
    out
}

impl Pair {
    pub fn start() -> Pair {
        Pair::start_with(&[])
    }

    /// Start with extra environment for the script (e.g. TARGET_IMAP_CAPABILITY).
    pub fn start_with(extra_env: &[(&str, &str)]) -> Pair {
        let dir = tempfile::Builder::new()
            .prefix("trasloco-pair")
            .tempdir()
            .unwrap();
        let ports = free_ports(PORT_VARS.len());
        let mut cmd = Command::new("bash");
        cmd.arg(repo_root().join("scripts/dovecot-pair.sh"))
            .arg("start")
            .arg(dir.path());
        for (var, port) in PORT_VARS.iter().zip(&ports) {
            cmd.env(var, port.to_string());
        }
        cmd.envs(extra_env.iter().copied());
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "dovecot-pair start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.path().join("env"))
            .unwrap()
            .lines()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        Pair { dir, env }
    }

    pub fn port(&self, var: &str) -> u16 {
        self.env[var].parse().unwrap()
    }

    pub fn ca(&self) -> PathBuf {
        PathBuf::from(&self.env["CA_FILE"])
    }

    pub fn url(&self, side: &str, user: &str) -> String {
        let port = self.port(&format!("{}_IMAP_PORT", side.to_uppercase()));
        format!("imap://{user}@127.0.0.1:{port}")
    }

    pub async fn client(&self, side: &str, user: &str) -> Client {
        let port = self.port(&format!("{}_IMAP_PORT", side.to_uppercase()));
        let ep = Endpoint {
            host: "127.0.0.1".into(),
            port,
            security: Security::None,
        };
        let mut c = Client::connect(&ep, &TlsOptions::default()).await.unwrap();
        c.login(&Credentials::new(user, format!("{user}-pw")))
            .await
            .unwrap();
        c
    }

    /// Run doveadm against one instance.
    pub fn doveadm(&self, side: &str, args: &[&str]) -> Output {
        let conf = &self.env[&format!("{}_CONF", side.to_uppercase())];
        let out = Command::new("doveadm")
            .arg("-c")
            .arg(conf)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "doveadm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Run trasloco in the pair's directory with these passwords in the environment.
    pub fn trasloco(&self, args: &[&str], from_pw: &str, to_pw: &str) -> Output {
        run(command(self.dir.path(), from_pw, to_pw).args(args))
    }

    /// Arguments of `trasloco migrate` for one user between the pair: test CA, own state file.
    pub fn migrate_args(&self, user: &str) -> Vec<String> {
        let args = [
            "--no-progress".to_string(),
            "migrate".into(),
            "--from".into(),
            self.url("source", user),
            "--to".into(),
            self.url("target", user),
            "--ca-file".into(),
            self.ca().display().to_string(),
            "--state".into(),
            self.state_file(user).display().to_string(),
        ];
        args.to_vec()
    }

    /// `trasloco migrate` of one user between the pair, with its own password on both sides.
    pub fn migrate(&self, user: &str, extra: &[&str]) -> Output {
        self.migrate_with(user, extra, &[])
    }

    /// The same with more environment variables.
    pub fn migrate_with(&self, user: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let pw = format!("{user}-pw");
        run(command(self.dir.path(), &pw, &pw)
            .args(self.migrate_args(user))
            .args(extra)
            .envs(env.iter().copied()))
    }

    /// After killing a trasloco run: wait until the server has no session of `user` left.
    /// A killed client's last APPEND may still be committing on the server side; a resumed
    /// run must see what it stored (within a few seconds, as a person restarting would).
    pub fn wait_sessions_closed(&self, side: &str, user: &str) {
        let conf = &self.env[&format!("{}_CONF", side.to_uppercase())];
        for _ in 0..200 {
            let out = Command::new("doveadm")
                .arg("-c")
                .arg(conf)
                .args(["who", user])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            if !text
                .lines()
                .any(|l| l.split_whitespace().next() == Some(user))
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// How many IMAP sessions of `user` the server has closed so far, from its log, once no
    /// session of the user is left and the count has stayed the same for a quarter of a
    /// second (the log is written a moment after the client has gone; on a loaded machine
    /// the stable count alone was read before the last session had ended).
    pub fn imap_sessions_closed(&self, side: &str, user: &str) -> usize {
        self.wait_sessions_closed(side, user);
        let log = self.dir.path().join(side).join("log/dovecot.log");
        let needle = format!("imap({user})<");
        let count = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(&needle) && l.contains("Disconnected"))
                .count()
        };
        let (mut last, mut same) = (count(), 0);
        while same < 5 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let now = count();
            same = if now == last { same + 1 } else { 0 };
            last = now;
        }
        last
    }

    /// Stop every IMAP process of one side's Dovecot (SIGSTOP), as a stalled server would be:
    /// what they have read stays unprocessed until [`Pair::resume`]. New connections get
    /// processes of their own and are served. Returns the process ids stopped.
    pub fn pause_imap(&self, side: &str) -> Vec<String> {
        let master = std::fs::read_to_string(self.dir.path().join(side).join("run/master.pid"))
            .unwrap()
            .trim()
            .to_string();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …
            let Some((head, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let comm = head.split_once(" (").map(|(_, c)| c).unwrap_or("");
            let ppid = rest.split_whitespace().nth(1).unwrap_or("");
            if comm == "imap" && ppid == master {
                pids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        if !pids.is_empty() {
            // A process that ended meanwhile is not there to stop.
            Command::new("kill")
                .arg("-STOP")
                .args(&pids)
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
        }
        pids
    }

    /// Let processes stopped by [`Pair::pause_imap`] go on.
    pub fn resume(&self, pids: &[String]) {
        if !pids.is_empty() {
            // A process that ended meanwhile is no longer there to go on.
            Command::new("kill")
                .arg("-CONT")
                .args(pids)
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
        }
    }

    pub fn state_file(&self, user: &str) -> PathBuf {
        self.dir.path().join(format!("{user}.sqlite"))
    }
}

/// The trasloco binary, run in `dir`, with the two passwords in the environment.
pub fn command(dir: &Path, from_pw: &str, to_pw: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trasloco"));
    cmd.current_dir(dir)
        .env("TRASLOCO_FROM_PASSWORD", from_pw)
        .env("TRASLOCO_TO_PASSWORD", to_pw);
    cmd
}

/// Run a command to completion; trasloco must never panic, whatever the input.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        !text(&out).contains("panicked"),
        "trasloco panicked:\n{}",
        text(&out)
    );
    out
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/dovecot-pair.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The JSON report a run wrote (its path is on the "Report:" line).
pub fn report(pair: &Pair, out: &Output) -> serde_json::Value {
    let t = text(out);
    let line = t
        .lines()
        .find_map(|l| l.strip_prefix("Report: "))
        .unwrap_or_else(|| panic!("no report line:\n{t}"));
    let path = pair.dir.path().join(line.trim());
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A message as seeded.
pub struct Msg {
    pub body: Vec<u8>,
    pub flags: Vec<&'static str>,
    pub date: Option<&'static str>,
}

pub fn msg(body: impl Into<Vec<u8>>) -> Msg {
    Msg {
        body: body.into(),
        flags: Vec::new(),
        date: None,
    }
}

pub fn simple(i: usize, folder: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{i}.{}@test.example>\r\nDate: Mon, 1 Jan 2024 10:{:02}:00 +0100\r\nFrom: Anna <anna@example.org>\r\nSubject: message {i} in {folder}\r\n\r\nBody of message {i}.\r\n",
        folder.replace(['/', ' '], "_"),
        i % 60
    )
    .into_bytes()
}

pub async fn seed(client: &mut Client, folder: &str, msgs: Vec<Msg>) {
    if !folder.eq_ignore_ascii_case("INBOX") {
        client.create(folder).await.unwrap();
    }
    let batch: Vec<AppendMsg> = msgs
        .into_iter()
        .map(|m| AppendMsg {
            flags: m.flags.iter().map(|s| s.to_string()).collect(),
            internal_date: m.date.map(str::to_string),
            body: Bytes::from(m.body),
        })
        .collect();
    for chunk in batch.chunks(200) {
        let out = client.append(folder, chunk).await.unwrap();
        assert!(
            out.iter()
                .all(|o| matches!(o, trasloco_imap::AppendOutcome::Stored { .. })),
            "seeding {folder}: {out:?}"
        );
    }
}

/// What a folder holds, order-free: sorted (sha256, flags, internal date) per message.
pub type Snapshot = BTreeMap<String, Vec<(String, Vec<String>, String)>>;

pub async fn snapshot(client: &mut Client) -> Snapshot {
    let mut out = Snapshot::new();
    for entry in client.list().await.unwrap() {
        if entry
            .attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case("\\Noselect"))
        {
            continue;
        }
        client.select(&entry.name, true).await.unwrap();
        let meta = client.fetch_all_meta(true).await.unwrap();
        let uids: Vec<u32> = meta.iter().map(|m| m.uid).collect();
        let mut bodies: HashMap<u32, String> = HashMap::new();
        if !uids.is_empty() {
            client
                .fetch_bodies(&uids, &mut |uid, b| {
                    bodies.insert(uid, hex::encode(Sha256::digest(&b)));
                })
                .await
                .unwrap();
        }
        let mut msgs: Vec<_> = meta
            .into_iter()
            .map(|m| {
                let mut flags: Vec<String> =
                    m.flags.into_iter().filter(|f| f != "\\Recent").collect();
                flags.sort();
                (
                    bodies[&m.uid].clone(),
                    flags,
                    m.internal_date.unwrap_or_default(),
                )
            })
            .collect();
        msgs.sort();
        out.insert(entry.name, msgs);
    }
    out
}

/// Every source folder's messages (bytes, flags, internal dates) are in the target folder its
/// name maps to.
pub async fn assert_target_mirrors(pair: &Pair, src: &mut Client, user: &str) {
    let source = snapshot(src).await;
    let mut tgt = pair.client("target", user).await;
    let target = snapshot(&mut tgt).await;
    tgt.logout().await;
    for (name, msgs) in &source {
        assert_eq!(target.get(&target_name(name)), Some(msgs), "folder {name}");
    }
}

/// The folder names of a user on one side, through a fresh connection.
pub async fn folder_names(pair: &Pair, side: &str, user: &str) -> Vec<String> {
    let mut c = pair.client(side, user).await;
    let names = c
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    c.logout().await;
    names
}

/// Message count of a folder through a fresh connection.
pub async fn count(pair: &Pair, side: &str, user: &str, folder: &str) -> u32 {
    let mut c = pair.client(side, user).await;
    let n = c.select(folder, true).await.map(|s| s.exists).unwrap_or(0);
    c.logout().await;
    n
}

/// `n` messages of about `pad` bytes each, for tests that need a run to take a while.
pub fn padded(n: usize, pad: usize) -> Vec<Msg> {
    let filler = "x".repeat(pad);
    (0..n)
        .map(|i| {
            let mut b = simple(i, "INBOX");
            b.extend_from_slice(filler.as_bytes());
            b.extend_from_slice(b"\r\n");
            msg(b)
        })
        .collect()
}

/// Start `trasloco migrate` for `user` in the background, in small batches so it takes a
/// while; output is captured.
pub fn spawn_migrate(pair: &Pair, user: &str) -> std::process::Child {
    let pw = format!("{user}-pw");
    command(pair.dir.path(), &pw, &pw)
        .args(pair.migrate_args(user))
        .args(["--batch-messages", "10"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until the target INBOX of `user` holds at least `n` messages (at most a minute).
pub async fn wait_for_target(pair: &Pair, user: &str, n: u32, child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count(pair, "target", user, "INBOX").await < n && std::time::Instant::now() < deadline {
        assert!(
            child.try_wait().unwrap().is_none(),
            "trasloco ended before the test could interrupt it"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Sum a per-folder report field over a mailbox report.
pub fn folder_sum(mailbox: &serde_json::Value, field: &str) -> u64 {
    mailbox["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f[field].as_u64().unwrap())
        .sum()
}

/// The mailbox most tests migrate: Italian special folders, nested and empty folders, flags,
/// keywords, dates over ten years, a message without Message-ID, 8-bit headers, a duplicate pair.
pub fn italian_mailbox() -> Vec<(&'static str, Vec<Msg>)> {
    let mut inbox: Vec<Msg> = (0..20)
        .map(|i| Msg {
            body: simple(i, "INBOX"),
            flags: match i % 4 {
                0 => vec![],
                1 => vec!["\\Seen"],
                2 => vec!["\\Seen", "\\Answered", "$Forwarded"],
                _ => vec!["\\Flagged", "Progetto_Alfa"],
            },
            date: Some(
                [
                    "02-Mar-2016 08:15:00 +0100",
                    "31-Dec-2025 23:59:59 -0500",
                    "15-Aug-2020 12:00:00 +0200",
                ][i % 3],
            ),
        })
        .collect();
    // No Message-ID at all.
    inbox.push(msg("Date: Tue, 2 Jan 2024 09:00:00 +0100\r\nFrom: x@example.org\r\nSubject: senza id\r\n\r\nno id\r\n"));
    // 8-bit and malformed headers.
    inbox.push(msg(b"From: Citt\xe0 <c@example.org>\r\nSubject: Societ\xe0 \xff\xfe\r\nthis header line has no colon\r\nX-Broken:\r\n\tfolded\r\n\r\nCorpo con byte \xe8 8-bit\r\n".to_vec()));
    // A duplicate pair: must stay two.
    let dup = b"Message-ID: <dup@example.org>\r\nDate: Wed, 3 Jan 2024 10:00:00 +0100\r\nFrom: d@example.org\r\nSubject: doppio\r\n\r\nsame\r\n";
    inbox.push(msg(dup.to_vec()));
    inbox.push(msg(dup.to_vec()));
    let folder = |name: &str, n: usize| (0..n).map(|i| msg(simple(i, name))).collect::<Vec<_>>();
    vec![
        ("INBOX", inbox),
        ("Posta inviata", folder("Posta inviata", 3)),
        (
            "Bozze",
            vec![Msg {
                body: simple(1, "Bozze"),
                flags: vec!["\\Draft"],
                date: None,
            }],
        ),
        ("Posta eliminata", folder("Posta eliminata", 2)),
        ("Posta indesiderata", folder("Posta indesiderata", 2)),
        ("Archivio", folder("Archivio", 4)),
        ("Progetti", folder("Progetti", 1)),
        ("Progetti/Società", folder("Progetti/Società", 2)),
        ("Progetti/Società/2024", folder("Progetti/Società/2024", 3)),
        ("Vuota", vec![]),
    ]
}

/// The source folder names as the target must show them.
pub fn target_name(source: &str) -> String {
    match source {
        "Posta inviata" => "Sent".into(),
        "Bozze" => "Drafts".into(),
        "Posta eliminata" => "Trash".into(),
        "Posta indesiderata" => "Junk".into(),
        "Archivio" => "Archive".into(),
        other => other.replace('/', "."),
    }
}

/// Write a message file straight into a user's Maildir on one side, as delivered mail (bytes
/// no IMAP APPEND would store as they are).
pub fn deliver_raw(pair: &Pair, side: &str, user: &str, name: &str, bytes: &[u8]) {
    use std::os::unix::fs::MetadataExt;
    let home = pair.dir.path().join(side).join("home").join(user);
    let new = home.join("Maildir/new");
    std::fs::create_dir_all(&new).unwrap();
    let file = new.join(name);
    std::fs::write(&file, bytes).unwrap();
    let owner = std::fs::metadata(home.parent().unwrap()).unwrap();
    for p in [&file, &new, &new.parent().unwrap().to_path_buf(), &home] {
        std::os::unix::fs::chown(p, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
}

/// Deliver a message to `user` on one side with Dovecot's own LDA, which runs the user's active
/// Sieve script; `rcpt` is the address the message was sent to. What the script sends goes to
/// the pair's sendmail sink: see [`Pair::outbox`].
pub fn deliver(pair: &Pair, side: &str, user: &str, rcpt: &str, from: &str, message: &str) {
    use std::io::Write;
    let conf = pair.dir.path().join(side).join("dovecot.conf");
    let mut child = Command::new("/usr/lib/dovecot/dovecot-lda")
        .arg("-c")
        .arg(&conf)
        .args(["-d", user, "-f", from, "-a", rcpt])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dovecot-lda for {user}: {}",
        text(&out)
    );
}

/// `[source]` or `[target]` lines for a test double in front of a side: plain IMAP on
/// 127.0.0.1 at `port`.
pub fn plain_side(port: u16) -> String {
    format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n")
}

impl Pair {
    /// `[source]` or `[target]` lines for one side's IMAP: 127.0.0.1, its port, STARTTLS
    /// verified with the pair's CA.
    pub fn imap_side(&self, side: &str) -> String {
        format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\n",
            self.port(&format!("{}_IMAP_PORT", side.to_uppercase())),
            self.ca().display()
        )
    }

    /// The campaign most tests run, alice to alice: `[source]`, `[target]` and `[run]` lines
    /// as given, state and reports beside it. Returns the campaign file's path.
    pub fn alice_campaign(&self, source: &str, target: &str, run: &str) -> String {
        self.write(
            "accounts.csv",
            "source_user,source_password,target_user,target_password\nalice,alice-pw,alice,alice-pw\n",
        );
        self.write(
            "campaign.toml",
            &format!(
                "[source]\n{source}\n[target]\n{target}\n[accounts]\nfile = \"accounts.csv\"\n\n[run]\nstate = \"state.sqlite\"\nreports = \"reports\"\n{run}\n"
            ),
        )
    }
}

impl Pair {
    /// Write a file into the pair's directory (campaign files, accounts, secrets); its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    /// What the servers sent out since the last call (redirects, automatic replies,
    /// rejections): per message, its sendmail arguments (`-f <sender> -- <recipient>`) and
    /// text, oldest first. The outbox is emptied.
    pub fn outbox(&self) -> Vec<(String, String)> {
        let dir = self.dir.path().join("outbox");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|p| {
                let t = std::fs::read_to_string(&p).unwrap();
                std::fs::remove_file(&p).unwrap();
                let (args, rest) = t.split_once('\n').unwrap_or((&t, ""));
                (
                    args.trim_start_matches("X-Sink-Args: ").to_string(),
                    rest.to_string(),
                )
            })
            .collect()
    }
}

/// A JWT the pair's OAuth target accepts: an app token (`appid` trasloco-test-app) with the
/// given scope, valid for `lifetime` seconds from now (negative: already expired).
pub fn app_token(pair: &Pair, scope: &str, lifetime: i64) -> String {
    app_token_in(pair.dir.path(), scope, lifetime)
}

fn app_token_in(dir: &Path, scope: &str, lifetime: i64) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let key_text = std::fs::read_to_string(dir.join("oauth/key")).unwrap();
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_text.trim())
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64(serde_json::json!({
        "sub": "trasloco-test-app",
        "appid": "trasloco-test-app",
        "scope": scope,
        "iat": now - 5,
        "exp": now + lifetime,
    })
    .to_string()
    .as_bytes());
    let signed = format!("{header}.{claims}");
    let sig = b64(&trasloco_core::escapes::hmac_sha256(
        &key,
        signed.as_bytes(),
    ));
    format!("{signed}.{sig}")
}

/// A client-credentials token endpoint on 127.0.0.1 (a test double: no OAuth2 token issuer
/// is packaged for Debian). It checks the client id and secret (`trasloco-test-app`,
/// `app-secret`) and the scope (`mail.migrate`), and answers as Microsoft's does: a JSON
/// token response, or `error` with `error_description`. Tokens are JWTs the pair's target
/// validates, valid for `lifetime` seconds.
pub struct TokenEndpoint {
    /// Its URL.
    pub url: String,
    /// Tokens issued so far.
    pub issued: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The users tokens were issued for (JWT grants), in order.
    pub subjects: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// The claims of an RS256 JWT whose signature `public_pem` verifies.
fn verify_rs256(jwt: &str, public_pem: &str) -> Option<serde_json::Value> {
    use base64::Engine;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    let b64 = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()
    };
    let mut parts = jwt.split('.');
    let (h, c, sig) = (parts.next()?, parts.next()?, parts.next()?);
    let header: serde_json::Value = serde_json::from_slice(&b64(h)?).ok()?;
    if header["alg"] != "RS256" {
        return None;
    }
    let key = rsa::RsaPublicKey::from_public_key_pem(public_pem).ok()?;
    let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key);
    let sig = rsa::pkcs1v15::Signature::try_from(b64(sig)?.as_slice()).ok()?;
    verifier.verify(format!("{h}.{c}").as_bytes(), &sig).ok()?;
    let mut claims: serde_json::Value = serde_json::from_slice(&b64(c)?).ok()?;
    claims["header"] = header;
    Some(claims)
}

impl TokenEndpoint {
    pub fn start(pair: &Pair, lifetime: i64) -> TokenEndpoint {
        Self::start_with(pair, lifetime, None)
    }

    /// With `public_pem`, JWT assertions signed by its private key are accepted too: a
    /// service account's grant per user (`iss` svc@trasloco-test.iam.gserviceaccount.com,
    /// scope https://mail.google.com/) and an app's certificate assertion (`iss` = `sub` =
    /// trasloco-test-app), each checked for its audience (this URL) and signature.
    pub fn start_with(pair: &Pair, lifetime: i64, public_pem: Option<String>) -> TokenEndpoint {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/tenant/oauth2/v2.0/token",
            listener.local_addr().unwrap().port()
        );
        let issued = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = issued.clone();
        let subjects: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let seen = subjects.clone();
        let own_url = url.clone();
        let dir = pair.dir.path().to_path_buf();
        std::thread::spawn(move || {
            let pair_dir = dir;
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { return };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let n = s.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break String::new();
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break body.to_string();
                        }
                    }
                };
                let form: HashMap<String, String> = body
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| {
                        let v = trasloco_core::escapes::percent_decode(v, true);
                        (k.to_string(), v.unwrap_or_default())
                    })
                    .collect();
                let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
                let assertion = |jwt: &str| {
                    public_pem
                        .as_deref()
                        .and_then(|p| verify_rs256(jwt, p))
                        .filter(|c| c["aud"] == own_url.as_str())
                };
                let token = |sub: &str| {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    seen.lock().unwrap().push(sub.to_string());
                    serde_json::json!({"token_type": "Bearer", "expires_in": lifetime, "access_token": app_token_in(&pair_dir, "mail.migrate", lifetime)})
                };
                let (status, json) = if get("grant_type")
                    == "urn:ietf:params:oauth:grant-type:jwt-bearer"
                {
                    match assertion(get("assertion")) {
                        Some(c)
                            if c["iss"] == "svc@trasloco-test.iam.gserviceaccount.com"
                                && c["scope"] == "https://mail.google.com/" =>
                        {
                            (200, token(c["sub"].as_str().unwrap_or("")))
                        }
                        Some(_) => (
                            401,
                            serde_json::json!({"error": "unauthorized_client", "error_description": "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}),
                        ),
                        None => (
                            400,
                            serde_json::json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
                        ),
                    }
                } else if !get("client_assertion").is_empty() {
                    match assertion(get("client_assertion")) {
                        Some(c)
                            if c["iss"] == "trasloco-test-app"
                                && c["sub"] == "trasloco-test-app"
                                && get("scope") == "mail.migrate"
                                && c["header"]["x5t"].is_string() =>
                        {
                            (200, token("trasloco-test-app"))
                        }
                        _ => (
                            401,
                            serde_json::json!({"error": "invalid_client", "error_description": "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application."}),
                        ),
                    }
                } else if get("grant_type") != "client_credentials" {
                    (400, serde_json::json!({"error": "unsupported_grant_type"}))
                } else if get("client_id") != "trasloco-test-app"
                    || get("client_secret") != "app-secret"
                {
                    (
                        401,
                        serde_json::json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 0"}),
                    )
                } else if get("scope") != "mail.migrate" {
                    (
                        400,
                        serde_json::json!({"error": "invalid_scope", "error_description": "AADSTS70011: The provided value for the input parameter 'scope' is not valid."}),
                    )
                } else {
                    (200, token("trasloco-test-app"))
                };
                let body = json.to_string();
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenEndpoint {
            url,
            issued,
            subjects,
        }
    }

    pub fn issued(&self) -> u64 {
        self.issued.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// What the Exchange-behaviour proxy does besides passing bytes on.
#[derive(Clone, Default)]
pub struct Behaviour {
    /// Each chunk the client sends is held back this long first.
    pub delay: std::time::Duration,
    /// Every Nth APPEND is answered `NO Request is throttled. Suggested Backoff Time: …`
    /// instead of reaching the server (it becomes a NOOP there, so answers stay in order).
    pub throttle_every: Option<u64>,
    /// The backoff the throttling answer suggests.
    pub backoff_ms: u64,
    /// Every LIST is answered `BAD User is authenticated but not connected.`, as Exchange
    /// Online answers an app without FullAccess on the mailbox.
    pub not_connected: bool,
    /// An APPEND whose message contains this text is answered `BAD Command Argument Error.
    /// 11` (Exchange's answer to a message it does not take) instead of reaching the server.
    pub refuse_containing: Option<String>,
    /// After this many commands answered NO or BAD in one session, the session ends with
    /// `* BYE Connection closed. 14` (Exchange Online: ten).
    pub error_limit: Option<u32>,
    /// Capabilities as Exchange Online's: no MULTIAPPEND, and PERMANENTFLAGS without `\*`
    /// (no keywords).
    pub exchange_caps: bool,
    /// Gmail's IMAP extension on top of the real server: X-GM-EXT-1 in the capabilities,
    /// `\All`, `\Flagged`, `\Important` on `[Gmail]/All Mail`, `Starred`, `Important`, and
    /// X-GM-MSGID answered with a number derived from the message's Message-ID (so the same
    /// message appended to several folders, as Gmail shows one message under several labels,
    /// has one id everywhere).
    pub gmail: bool,
    /// Gmail's merge as a target: an APPEND whose Message-ID the account already holds is
    /// not a new message. Into a folder that shows it already, the answer names the message
    /// there and nothing is stored; into another folder, the first copy's bytes are stored
    /// (Gmail adds a label to the message it has). MULTIAPPEND is not offered (Gmail has none).
    pub gmail_merge: bool,
}

/// What a Gmail-merging target remembers, over all its sessions.
#[derive(Default)]
struct Merges {
    /// Message-ID → the bytes first stored with it.
    first: HashMap<String, Vec<u8>>,
    /// (Message-ID, folder) → the `APPENDUID` answer's "uidvalidity uid".
    stored: HashMap<(String, String), String>,
    /// Tags of APPENDs on their way to the server → (Message-ID, folder).
    pending: HashMap<String, (String, String)>,
}

/// An APPEND of one message, as a merging target sees it: (folder, Message-ID, literal's
/// range in the unit).
fn append_parts(unit: &[u8]) -> Option<(String, String, std::ops::Range<usize>)> {
    let cr = unit.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&unit[..cr]).ok()?;
    let folder = line.split(' ').nth(2)?.trim_matches('"').to_string();
    let open = line.rfind('{')?;
    let n: usize = line[open + 1..line.len() - 1]
        .trim_end_matches('+')
        .parse()
        .ok()?;
    let body = cr + 2..cr + 2 + n;
    let head = &unit[body.clone()];
    let text = String::from_utf8_lossy(&head[..head.len().min(4096)]).to_string();
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID:"))?
        .trim()
        .to_string();
    Some((folder, id, body))
}

/// The fetch item that stands in for X-GM-MSGID on its way to the real server.
const GM_STANDIN: &str = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID X-GM-EMU)]";

/// A server answer as Gmail's: see `Behaviour::gmail`.
fn as_gmail(unit: Vec<u8>) -> Vec<u8> {
    let echoed = b"BODY[HEADER.FIELDS (MESSAGE-ID X-GM-EMU)] {";
    let mut unit = unit;
    while let Some(at) = unit.windows(echoed.len()).position(|w| w == echoed) {
        let open = at + echoed.len();
        let close = open + unit[open..].iter().position(|&c| c == b'}').unwrap();
        let n: usize = std::str::from_utf8(&unit[open..close])
            .unwrap()
            .parse()
            .unwrap();
        let (start, end) = (close + 3, close + 3 + n);
        let value = String::from_utf8_lossy(&unit[start..end]).to_string();
        let id = value
            .split_once(':')
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        let digest = Sha256::digest(id.as_bytes());
        let number = u64::from_be_bytes(digest[..8].try_into().unwrap()) >> 1;
        unit.splice(at..end, format!("X-GM-MSGID {number}").into_bytes());
    }
    if unit.len() > 4096 {
        return unit;
    }
    let mut text = String::from_utf8_lossy(&unit).to_string();
    if text.contains("CAPABILITY") {
        text = text.replace("IMAP4rev1", "IMAP4rev1 X-GM-EXT-1");
    }
    if text.starts_with("* LIST (") {
        for (name, attr) in [
            ("All Mail\"", "\\All"),
            ("Starred\"", "\\Flagged"),
            ("Important\"", "\\Important"),
        ] {
            if text.trim_end().ends_with(name) {
                text = text.replacen("* LIST (", &format!("* LIST ({attr} "), 1);
            }
        }
    }
    text.into_bytes()
}

/// A stand-in for Exchange Online in front of the real target (plain IMAP on 127.0.0.1; a
/// test double, as no Exchange exists to test against). A session that logged in with a
/// bearer token ends when the token expires, with Exchange's own words `* BYE Session
/// invalidated - AccessTokenExpired`, at the client's next command; with `throttle_every`,
/// APPENDs are throttled with Exchange's sentence.
pub struct ExchangeProxy {
    /// Where clients connect.
    pub port: u16,
    /// Sessions it ended because their token expired.
    pub byes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// APPENDs it throttled.
    pub throttled: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The first line of every command clients sent, in order.
    pub commands: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Sessions it ended because they reached `error_limit`.
    pub error_closes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// The `exp` of the bearer token in an AUTHENTICATE line with an initial response.
fn bearer_expiry(line: &str) -> Option<u64> {
    use base64::Engine;
    let ir = line.split_whitespace().nth(3)?;
    let raw = base64::engine::general_purpose::STANDARD.decode(ir).ok()?;
    let raw = String::from_utf8_lossy(&raw).to_string();
    let token = raw.split("auth=Bearer ").nth(1)?.split('\x01').next()?;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1)?)
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&claims)
        .ok()?
        .get("exp")?
        .as_u64()
}

/// The length of the first whole command or response in `buf` (its lines and the literals
/// they announce), if it is all there.
fn unit_len(buf: &[u8]) -> Option<usize> {
    trasloco_imap::framing::Framer::default().next_frame(buf, &mut 0)
}

impl ExchangeProxy {
    pub fn start(upstream: u16, delay: std::time::Duration) -> ExchangeProxy {
        Self::start_with(
            upstream,
            Behaviour {
                delay,
                ..Behaviour::default()
            },
        )
    }

    pub fn start_with(upstream: u16, b: Behaviour) -> ExchangeProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering::SeqCst;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let byes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let throttled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let appends = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (bye_count, throttle_count) = (byes.clone(), throttled.clone());
        let commands: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let log = commands.clone();
        let error_closes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let closes = error_closes.clone();
        let merges: std::sync::Arc<std::sync::Mutex<Merges>> = Default::default();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { return };
                let Ok(mut server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                // Tags whose server answer becomes the throttling answer.
                let rewrite: std::sync::Arc<std::sync::Mutex<HashMap<String, String>>> =
                    Default::default();
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let rw = rewrite.clone();
                let (limit, exchange_caps, gmail, closes) =
                    (b.error_limit, b.exchange_caps, b.gmail, closes.clone());
                let (merging, merges_out) = (b.gmail_merge, merges.clone());
                let to_client = std::thread::spawn(move || {
                    let mut errors = 0u32;
                    let mut pending: Vec<u8> = Vec::new();
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match s2.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        pending.extend_from_slice(&buf[..n]);
                        while let Some(len) = unit_len(&pending) {
                            let unit: Vec<u8> = pending.drain(..len).collect();
                            let text = String::from_utf8_lossy(&unit).to_string();
                            let tag = text.split(' ').next().unwrap_or("").to_string();
                            let swap = rw.lock().unwrap().remove(&tag);
                            let mut out = match swap {
                                Some(answer) => answer.into_bytes(),
                                None => unit,
                            };
                            if gmail {
                                out = as_gmail(out);
                            }
                            if merging && out.len() < 4096 {
                                let line = String::from_utf8_lossy(&out).to_string();
                                let mut m = merges_out.lock().unwrap();
                                if let Some(key) = m.pending.remove(&tag)
                                    && let Some(uid) = line
                                        .split("[APPENDUID ")
                                        .nth(1)
                                        .and_then(|r| r.split(']').next())
                                {
                                    m.stored.insert(key, uid.to_string());
                                }
                                out = line.replace(" MULTIAPPEND", "").into_bytes();
                            }
                            if exchange_caps && out.len() < 4096 {
                                let line = String::from_utf8_lossy(&out)
                                    .replace(" MULTIAPPEND", "")
                                    .replace(" \\*)", ")");
                                out = line.into_bytes();
                            }
                            let refused = {
                                let line = String::from_utf8_lossy(&out[..out.len().min(200)]);
                                !tag.starts_with('*')
                                    && !tag.starts_with('+')
                                    && (line.split(' ').nth(1) == Some("NO")
                                        || line.split(' ').nth(1) == Some("BAD"))
                            };
                            if c2.write_all(&out).is_err() {
                                return;
                            }
                            errors += u32::from(refused);
                            if limit.is_some_and(|l| errors >= l) {
                                closes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                let _ = c2.write_all(b"* BYE Connection closed. 14\r\n");
                                break;
                            }
                        }
                    }
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                });
                let (bye_count, throttle_count) = (bye_count.clone(), throttle_count.clone());
                let appends = appends.clone();
                let merges = merges.clone();
                let b = b.clone();
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut expires: Option<u64> = None;
                    let mut pending: Vec<u8> = Vec::new();
                    let mut buf = vec![0u8; 64 * 1024];
                    'conn: loop {
                        let n = match client.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        std::thread::sleep(b.delay);
                        pending.extend_from_slice(&buf[..n]);
                        while let Some(len) = unit_len(&pending) {
                            let mut unit: Vec<u8> = pending.drain(..len).collect();
                            let now = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap()
                                .as_secs();
                            if expires.is_some_and(|e| now >= e) {
                                bye_count.fetch_add(1, SeqCst);
                                let _ = client.write_all(
                                    b"* BYE Session invalidated - AccessTokenExpired\r\n",
                                );
                                break 'conn;
                            }
                            let head =
                                String::from_utf8_lossy(&unit[..unit.len().min(300)]).to_string();
                            let mut words = head.split(' ');
                            let (tag, verb) = (
                                words.next().unwrap_or("").to_string(),
                                words.next().unwrap_or("").to_ascii_uppercase(),
                            );
                            log.lock().unwrap().push(match verb.as_str() {
                                "AUTHENTICATE" | "LOGIN" => format!("{tag} {verb} ***"),
                                _ => head.lines().next().unwrap_or("").to_string(),
                            });
                            if verb == "AUTHENTICATE" && expires.is_none() {
                                expires = bearer_expiry(head.lines().next().unwrap_or(""));
                            }
                            if verb == "APPEND"
                                && let Some(every) = b.throttle_every
                                && (appends.fetch_add(1, SeqCst) + 1).is_multiple_of(every)
                            {
                                throttle_count.fetch_add(1, SeqCst);
                                rewrite.lock().unwrap().insert(
                                    tag.clone(),
                                    format!(
                                        "{tag} NO Request is throttled. Suggested Backoff Time: {} milliseconds\r\n",
                                        b.backoff_ms
                                    ),
                                );
                                unit = format!("{tag} NOOP\r\n").into_bytes();
                            }
                            if verb == "APPEND"
                                && let Some(marker) = &b.refuse_containing
                                && unit.windows(marker.len()).any(|w| w == marker.as_bytes())
                            {
                                rewrite.lock().unwrap().insert(
                                    tag.clone(),
                                    format!("{tag} BAD Command Argument Error. 11\r\n"),
                                );
                                unit = format!("{tag} NOOP\r\n").into_bytes();
                            }
                            if b.gmail_merge
                                && verb == "APPEND"
                                && let Some((folder, id, body)) = append_parts(&unit)
                            {
                                let key = (id.clone(), folder);
                                // The same message into the same folder, its first APPEND
                                // not answered yet: Gmail takes one after the other.
                                let mut m = loop {
                                    let m = merges.lock().unwrap();
                                    if !m.pending.values().any(|k| *k == key) {
                                        break m;
                                    }
                                    drop(m);
                                    std::thread::sleep(std::time::Duration::from_millis(5));
                                };
                                if let Some(uid) = m.stored.get(&key) {
                                    let answer =
                                        format!("{tag} OK [APPENDUID {uid}] (Success)\r\n");
                                    rewrite.lock().unwrap().insert(tag.clone(), answer);
                                    unit = format!("{tag} NOOP\r\n").into_bytes();
                                } else {
                                    if let Some(first) = m.first.get(&id) {
                                        let line_end = body.start - 2;
                                        let line = String::from_utf8_lossy(&unit[..line_end]);
                                        let open = line.rfind('{').unwrap();
                                        let mut new =
                                            format!("{}{{{}+}}\r\n", &line[..open], first.len())
                                                .into_bytes();
                                        new.extend_from_slice(first);
                                        new.extend_from_slice(&unit[body.end..]);
                                        unit = new;
                                    } else {
                                        m.first.insert(id, unit[body].to_vec());
                                    }
                                    m.pending.insert(tag.clone(), key);
                                }
                            }
                            if b.gmail && verb == "UID" && head.contains("X-GM-MSGID") {
                                let text = String::from_utf8_lossy(&unit).to_string();
                                unit = text.replace("X-GM-MSGID", GM_STANDIN).into_bytes();
                            }
                            if verb == "LIST" && b.not_connected {
                                rewrite.lock().unwrap().insert(
                                    tag.clone(),
                                    format!(
                                        "{tag} BAD User is authenticated but not connected.\r\n"
                                    ),
                                );
                                unit = format!("{tag} NOOP\r\n").into_bytes();
                            }
                            if server.write_all(&unit).is_err() {
                                break 'conn;
                            }
                        }
                    }
                    let _ = server.shutdown(std::net::Shutdown::Both);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    let _ = to_client.join();
                });
            }
        });
        ExchangeProxy {
            port,
            byes,
            throttled,
            commands,
            error_closes,
        }
    }

    pub fn byes(&self) -> u64 {
        self.byes.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn throttled(&self) -> u64 {
        self.throttled.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A schema of its own in the suite's PostgreSQL cluster (`TRASLOCO_TEST_POSTGRES`, made
/// afresh): the URL that selects it, the cluster's URL and the schema's name; `None` when the
/// suite runs without a cluster.
pub fn postgres_schema(name: &str) -> Option<(String, String, String)> {
    let base = std::env::var("TRASLOCO_TEST_POSTGRES").ok()?;
    let schema = format!("{name}_{}", std::process::id());
    let psql = Command::new("psql")
        .args([base.as_str(), "-q", "-c"])
        .arg(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .output()
        .unwrap();
    assert!(psql.status.success(), "{psql:?}");
    let url = format!("{base}?options=-c%20search_path%3D{schema}");
    Some((url, base, schema))
}
