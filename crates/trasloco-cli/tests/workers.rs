//! Workers sharing a PostgreSQL state (issue 22): leases, take-over after `kill -9` and after
//! a pause longer than the lease, fencing of the paused worker's writes, and per-server
//! limits counted on the Dovecot side. They run when the suite has a PostgreSQL cluster
//! (`TRASLOCO_TEST_POSTGRES`, scripts/test.sh); without one they return at once.

mod support;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::*;

const USERS: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];

/// A schema of its own in the suite's cluster: its URL and `base|schema` for [`sql`];
/// `None` without a cluster.
fn database(name: &str) -> Option<(String, String)> {
    let (url, base, schema) = postgres_schema(name)?;
    Some((url, format!("{base}|{schema}")))
}

/// Rows of an SQL query in the campaign's schema, as `|`-separated lines.
fn sql(db: &str, query: &str) -> Vec<String> {
    let (base, schema) = db.split_once('|').unwrap();
    let out = std::process::Command::new("psql")
        .args([base, "-At", "-c"])
        .arg(format!("SET search_path = {schema}; {query}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty() && *l != "SET")
        .map(str::to_string)
        .collect()
}

/// Every user gets two folders of small messages.
async fn seed_all(pair: &Pair) -> BTreeMap<&'static str, u32> {
    let mut counts = BTreeMap::new();
    for (i, u) in USERS.iter().enumerate() {
        let mut c = pair.client("source", u).await;
        let n = 150 + 10 * i;
        seed(&mut c, "INBOX", padded(n, 300)).await;
        seed(&mut c, "Archivio", padded(100, 300)).await;
        c.logout().await;
        counts.insert(*u, n as u32 + 100);
    }
    counts
}

fn workers_campaign(pair: &Pair, target_extra: &str) -> String {
    let accounts: String = USERS.iter().fold(
        "source_user,source_password,target_user,target_password\n".to_string(),
        |mut a, u| {
            a.push_str(&format!("{u},{u}-pw,{u},{u}-pw\n"));
            a
        },
    );
    pair.write("accounts.csv", &accounts);
    pair.write(
        "campaign.toml",
        &format!(
            "name = \"workers\"\n[source]\n{}provider = \"dovecot\"\n[target]\n{}provider = \"dovecot\"\n{target_extra}\n\
             [accounts]\nfile = \"accounts.csv\"\n\n[run]\njobs = 1\nbatch_messages = 10\n\
             parallel_folders = 1\nappend_connections = 1\nreports = \"reports\"\n\n\
             [workers]\nlease_seconds = 3\n",
            pair.imap_side("source"),
            pair.imap_side("target"),
        ),
    )
}

/// A trasloco command run to its end with the state at `url`.
fn on_state(pair: &Pair, url: &str, args: &[&str]) -> std::process::Output {
    run(command(pair.dir.path(), "", "")
        .env("TRASLOCO_STATE", url)
        .args(args))
}

fn worker(pair: &Pair, url: &str, camp: &str, delay_ms: u32) -> Child {
    command(pair.dir.path(), "", "")
        .env("TRASLOCO_STATE", url)
        .env("TRASLOCO_TEST_BATCH_DELAY_MS", delay_ms.to_string())
        .args(["--no-progress", "worker", camp, "--until-empty"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The mailbox a worker (by pid) holds now and the messages it says it copied, if any.
fn holding(db: &str, pid: u32) -> Option<(String, i64, i64)> {
    sql(
        db,
        &format!(
            "SELECT source, generation, COALESCE((progress::json->>'copied')::bigint, 0) FROM queue \
             WHERE state = 'leased' AND worker LIKE '%:{pid}:%'"
        ),
    )
    .first()
    .map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        (f[0].to_string(), f[1].parse().unwrap(), f[2].parse().unwrap())
    })
}

fn wait_until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_exit(child: Child, secs: u64) -> std::process::Output {
    let pid = child.id();
    let t0 = Instant::now();
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "worker {pid} did not end"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// Every message of every user on the target exactly once: the counts per folder, and no
/// Message-ID twice.
async fn assert_each_once(pair: &Pair, counts: &BTreeMap<&str, u32>) {
    for (user, n) in counts {
        let mut src = pair.client("source", user).await;
        assert_target_mirrors(pair, &mut src, user).await;
        src.logout().await;
        let total = count(pair, "target", user, "INBOX").await
            + count(pair, "target", user, &target_name("Archivio")).await;
        assert_eq!(total, *n, "{user}: every message once");
    }
}

/// Issue 22, points 2, 3 and 9: three workers on one campaign; one is killed -9 in the
/// middle of a mailbox, one is paused (SIGSTOP) longer than its lease while its mailbox is
/// taken over, then continued. Every message lands on the target exactly once, the paused
/// worker's late writes are refused (it says so and stops that mailbox), and the cutover
/// pass after them counts every message in a bucket.
#[tokio::test(flavor = "multi_thread")]
async fn workers_survive_a_kill_and_a_pause_past_the_lease_without_a_duplicate() {
    let Some((url, db)) = database("workers") else {
        return;
    };
    let pair = Pair::start();
    let counts = seed_all(&pair).await;
    let camp = workers_campaign(&pair, "");
    let out = on_state(&pair, &url, &["enqueue", &camp]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("queued 6 of 6 mailboxes"),
        "{}",
        text(&out)
    );
    let mut killed = worker(&pair, &url, &camp, 60);
    let paused = worker(&pair, &url, &camp, 60);
    let third = worker(&pair, &url, &camp, 60);
    // The first is killed once its mailbox is well under way.
    let (lost, _, _) = wait_until("the first worker copies", 60, || {
        holding(&db, killed.id()).filter(|h| h.2 >= 20)
    });
    killed.kill().unwrap();
    killed.wait().unwrap();
    // The second is paused in the middle of a mailbox, until another worker has it.
    let (stalled, generation, _) = wait_until("the second worker copies", 60, || {
        holding(&db, paused.id()).filter(|h| h.2 >= 20)
    });
    let pid = paused.id().to_string();
    let signal = |s: &str| {
        std::process::Command::new("kill")
            .args([s, &pid])
            .status()
            .unwrap()
    };
    signal("-STOP");
    wait_until("the paused worker's mailbox is taken over", 90, || {
        sql(
            &db,
            &format!(
                "SELECT worker FROM queue WHERE source = '{stalled}' AND generation > {generation} \
                 AND worker NOT LIKE '%:{pid}:%'"
            ),
        )
        .first()
        .cloned()
    });
    // Let the new holder copy for a while, then wake the paused one up.
    std::thread::sleep(Duration::from_millis(1_500));
    signal("-CONT");
    let woke = wait_exit(paused, 180);
    let last = wait_exit(third, 180);
    let said = text(&woke);
    eprintln!("PAUSED-SAID {said}");
    assert!(
        said.contains("another worker"),
        "the paused worker learns that its mailbox is another's: {said}"
    );
    assert!(!said.contains("panicked"), "{said}");
    assert!(!text(&last).contains("panicked"), "{}", text(&last));
    // The dead worker's mailbox was taken over too, and every mailbox is done.
    let rows = sql(
        &db,
        "SELECT source, state, generation FROM queue ORDER BY source",
    );
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(rows.iter().all(|r| r.contains("|done|")), "{rows:?}");
    assert!(
        rows.iter()
            .any(|r| r.starts_with(&format!("{lost}|")) && !r.ends_with("|1")),
        "{lost} taken over: {rows:?}"
    );
    assert_each_once(&pair, &counts).await;
    // The cutover pass finds everything, each message in one bucket.
    let out = on_state(
        &pair,
        &url,
        &["--no-progress", "run", &camp, "--phase", "final"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let r = report(&pair, &out);
    for m in r["mailboxes"].as_array().unwrap() {
        let b = &m["buckets"];
        let sum: u64 = ["copied", "already_present"]
            .iter()
            .map(|k| b[k].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(sum, m["source_messages"].as_u64().unwrap(), "{m}");
        assert_eq!(b["copied"], 0, "nothing left to copy: {m}");
    }
    assert_each_once(&pair, &counts).await;
    // `status` and `workers` read the shared state.
    let out = on_state(&pair, &url, &["workers", &camp]);
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(t.contains("queue: 0 waiting, 0 held, 6 done"), "{t}");
    assert!(t.contains("stopped") && t.contains("silent"), "{t}");
}

/// The number of connections open to a server port, as the server's side sees them.
fn connections(port: u16) -> usize {
    let out = std::process::Command::new("ss")
        .args(["-Htn", "state", "established"])
        .arg(format!("( sport = :{port} )"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Issue 22, point 4: `max_connections` of a server holds for every worker together: three
/// workers, a target that allows two connections (a mailbox may hold two), one mailbox at a
/// time, counted on the Dovecot side while they work. While they work, `status` shows the
/// mailbox being copied with its worker and progress.
#[tokio::test(flavor = "multi_thread")]
async fn three_workers_keep_to_the_targets_connection_limit() {
    let Some((url, db)) = database("limits") else {
        return;
    };
    let pair = Pair::start();
    let counts = seed_all(&pair).await;
    let camp = workers_campaign(&pair, "max_connections = 2");
    let out = on_state(&pair, &url, &["enqueue", &camp, "--phase", "final"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let port = pair.port("TARGET_IMAP_PORT");
    let ws: Vec<Child> = (0..3).map(|_| worker(&pair, &url, &camp, 20)).collect();
    let (mut most, mut held, mut seen_copying) = (0, 0, false);
    while ws.iter().any(|w| {
        std::fs::metadata(format!("/proc/{}/stat", w.id())).is_ok()
            && !std::fs::read_to_string(format!("/proc/{}/stat", w.id()))
                .unwrap_or_default()
                .contains(") Z ")
    }) {
        most = most.max(connections(port));
        let leased = sql(&db, "SELECT count(*) FROM queue WHERE state = 'leased'");
        held = held.max(leased[0].parse::<usize>().unwrap());
        if !seen_copying {
            let out = on_state(&pair, &url, &["status", &camp]);
            let t = text(&out);
            seen_copying = t.contains("copying") && t.contains("copied so far");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for w in ws {
        let out = w.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    assert!(most >= 1, "the target was seen working");
    assert!(most <= 2, "at most 2 connections to the target, saw {most}");
    assert_eq!(held, 1, "one mailbox at a time");
    assert!(seen_copying, "status showed a mailbox being copied");
    assert_each_once(&pair, &counts).await;
}

/// Workers, `enqueue` and `workers` need a state every machine reaches: with a state file
/// they say so in one line and exit 64, touching nothing (no PostgreSQL needed for this one).
#[test]
fn workers_on_a_state_file_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("accounts.csv"),
        "source_user,target_user\nalice,alice\n",
    )
    .unwrap();
    let side = "host = \"127.0.0.1\"\nport = 9\ntls = \"none\"\nprovider = \"dovecot\"\nmaster_user = \"admin\"\nmaster_password_file = \"pw\"\n";
    std::fs::write(dir.path().join("pw"), "secret\n").unwrap();
    let camp = dir.path().join("campaign.toml");
    std::fs::write(
        &camp,
        format!("[source]\n{side}[target]\n{side}[accounts]\nfile = \"accounts.csv\"\n"),
    )
    .unwrap();
    let camp = camp.display().to_string();
    for args in [
        vec!["worker", camp.as_str()],
        vec!["enqueue", camp.as_str()],
        vec!["workers", camp.as_str()],
    ] {
        let out = run(command(dir.path(), "", "")
            .env_remove("TRASLOCO_STATE")
            .args(&args));
        let t = text(&out);
        assert_eq!(code(&out), 64, "{args:?}: {t}");
        assert!(
            t.contains("needs a state shared by every worker") && t.contains("postgres://"),
            "{args:?}: {t}"
        );
        assert_eq!(t.trim().lines().count(), 1, "one line: {t}");
        assert!(
            !dir.path().join("trasloco-state.sqlite").exists(),
            "{args:?}"
        );
    }
}

/// Issue 22, point 4: a server that fails a mailbox makes every worker leave it alone for a
/// while (shared back-off in the database), rather than each worker failing mailbox after
/// mailbox against it. The target here is a closed port: after the first failure the other
/// mailboxes wait in the queue, `workers` names the server and why, and SIGTERM ends the
/// waiting workers cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_server_backs_every_worker_off() {
    let Some((url, db)) = database("backoff") else {
        return;
    };
    let pair = Pair::start();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let camp = workers_campaign(&pair, "");
    let text_of = std::fs::read_to_string(&camp).unwrap();
    let target = pair.imap_side("target");
    let broken = text_of.replacen(
        &target,
        &format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n"),
        1,
    );
    assert_ne!(broken, text_of);
    std::fs::write(
        &camp,
        broken.replace("jobs = 1", "jobs = 1\nmax_reconnects = 0"),
    )
    .unwrap();
    let out = on_state(&pair, &url, &["enqueue", &camp]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let ws: Vec<Child> = (0..2).map(|_| worker(&pair, &url, &camp, 0)).collect();
    let backing_off = wait_until("the target backs off", 60, || {
        let out = on_state(&pair, &url, &["workers", &camp, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["backing_off"]
            .as_array()
            .filter(|a| !a.is_empty())
            .cloned()
    });
    assert_eq!(
        backing_off[0]["server"],
        format!("127.0.0.1:{port}"),
        "{backing_off:?}"
    );
    // Two workers, two failures at most (one each, taken before the first was recorded);
    // the other mailboxes wait out the back-off.
    std::thread::sleep(Duration::from_secs(3));
    let done = sql(&db, "SELECT count(*) FROM queue WHERE state = 'done'");
    let done: usize = done[0].parse().unwrap();
    assert!(
        (1..=2).contains(&done),
        "{done} mailboxes tried against a failing server"
    );
    let t = text(&on_state(&pair, &url, &["workers", &camp]));
    assert!(
        t.contains(&format!("server 127.0.0.1:{port}: no new mailbox for")),
        "{t}"
    );
    for w in ws {
        std::process::Command::new("kill")
            .args(["-TERM", &w.id().to_string()])
            .status()
            .unwrap();
        let out = wait_exit(w, 60);
        assert_eq!(code(&out), 143, "{}", text(&out));
    }
}
