//! A whole campaign against the real Dovecot pair: 14 mailboxes from two source domains into
//! one, with every rule of the campaign file — domain map with an override and a conflict,
//! inactivity by message date and by last login (and an --include), over quota with each
//! strategy (quota read from the target server), a failed login, a role-excluded and a deferred folder — then
//! plan, the window, each phase in order, catch-up after late mail, status, a second plan,
//! verify finding a message the test deleted from the target, and the report rendered in
//! headless Chromium.

mod support;

use chrono::{Duration, Utc};
use std::collections::BTreeMap;
use support::*;

const SOURCE_USERS: &str = "anna@beniculturali.it bruno@beniculturali.it carla@beniculturali.it \
    carla@ministero.it dario@ministero.it elena@ministero.it fabio@ministero.it hugo@ministero.it \
    gino@beniculturali.it ilaria@beniculturali.it luca@beniculturali.it marta@ministero.it nino@ministero.it";

/// The target's mailboxes: none for dario, who is inactive (seed 004 creates no mailbox on
/// the new platform for an inactive box).
fn target_users() -> String {
    "anna b.verdi carla elena fabio hugo gino ilaria luca marta nino"
        .split(' ')
        .map(|u| format!("{u}@cultura.gov.it"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn write(pair: &Pair, name: &str, content: &str) -> String {
    let p = pair.dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p.display().to_string()
}

/// A message with its own Message-ID, subject and INTERNALDATE, padded to about `pad` bytes.
fn dated(user: &str, folder: &str, i: usize, when: chrono::DateTime<Utc>, pad: usize) -> Msg {
    let body = format!(
        "Message-ID: <{i}.{}.{user}@test.example>\r\nDate: {}\r\nFrom: Ufficio <ufficio@example.org>\r\nSubject: {user} {folder} {i}\r\n\r\n{}\r\n",
        folder.replace(' ', "_"),
        when.to_rfc2822(),
        "x".repeat(pad)
    );
    let date: &'static str = Box::leak(
        when.format("%d-%b-%Y %H:%M:%S +0000")
            .to_string()
            .into_boxed_str(),
    );
    Msg {
        body: body.into_bytes(),
        flags: Vec::new(),
        date: Some(date),
    }
}

async fn put(pair: &Pair, user: &str, folder: &str, msgs: Vec<Msg>) {
    let mut c = pair.client("source", user).await;
    seed(&mut c, folder, msgs).await;
}

fn days_ago(n: i64) -> chrono::DateTime<Utc> {
    Utc::now() - Duration::days(n)
}

async fn seed_campaign(pair: &Pair) {
    let series = |user: &str, folder: &str, n: usize, from_days: i64, pad: usize| -> Vec<Msg> {
        (0..n)
            .map(|i| dated(user, folder, i, days_ago(from_days - i as i64), pad))
            .collect()
    };
    let anna = "anna@beniculturali.it";
    let mut inbox = series(anna, "INBOX", 5, 700, 100);
    inbox.extend(series(anna, "INBOX-new", 3, 5, 100));
    put(pair, anna, "INBOX", inbox).await;
    put(
        pair,
        anna,
        "Archivio",
        series(anna, "Archivio", 4, 900, 100),
    )
    .await;
    put(pair, anna, "Cestino", series(anna, "Cestino", 2, 60, 100)).await;
    for u in [
        "bruno@beniculturali.it",
        "carla@beniculturali.it",
        "carla@ministero.it",
    ] {
        put(pair, u, "INBOX", series(u, "INBOX", 2, 3, 100)).await;
    }
    // Inactive by date: newest message in 2023, no last login known.
    for (u, y) in [
        ("dario@ministero.it", "2023"),
        ("elena@ministero.it", "2023"),
        ("fabio@ministero.it", "2023"),
        ("hugo@ministero.it", "2022"),
    ] {
        let when = chrono::DateTime::parse_from_rfc3339(&format!("{y}-03-01T10:00:00Z"))
            .unwrap()
            .with_timezone(&Utc);
        put(
            pair,
            u,
            "INBOX",
            (0..2).map(|i| dated(u, "INBOX", i, when, 100)).collect(),
        )
        .await;
    }
    // Over the target's 300 KiB quota: 20 messages of about 20 KB.
    for u in ["gino@beniculturali.it", "ilaria@beniculturali.it"] {
        put(pair, u, "INBOX", series(u, "INBOX", 20, 100, 20_000)).await;
    }
    let luca = "luca@beniculturali.it";
    let mut m = series(luca, "INBOX-old", 3, 500, 100);
    m.extend(series(luca, "INBOX", 3, 40, 100));
    put(pair, luca, "INBOX", m).await;
    let marta = "marta@ministero.it";
    put(pair, marta, "INBOX", series(marta, "INBOX", 3, 40, 100)).await;
    put(
        pair,
        marta,
        "Posta indesiderata",
        series(marta, "Junk", 1, 40, 100),
    )
    .await;
    put(
        pair,
        marta,
        "Progetti",
        series(marta, "Progetti", 1, 40, 100),
    )
    .await;
    let nino = "nino@ministero.it";
    put(pair, nino, "INBOX", series(nino, "INBOX", 2, 40, 100)).await;
    put(pair, nino, "Cestino", series(nino, "Cestino", 3, 40, 100)).await;
}

fn campaign_file(pair: &Pair, extra: &str) -> String {
    let server = |port: &str| {
        format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\nmaster_user = \"admin\"\nmaster_password_file = \"master.txt\"\n",
            pair.port(port),
            pair.ca().display()
        )
    };
    format!(
        r#"name = "Cultura"
[source]
{}
[target]
{}
[accounts]
file = "accounts.csv"

[run]
jobs = 4
state = "state.sqlite"
reports = "reports"

[rules]
domain_map = {{ "beniculturali.it" = "cultura.gov.it", "ministero.it" = "cultura.gov.it" }}
skip_inactive_months = 12
last_login_file = "logins.csv"
quota_margin_percent = 5
archive_dir = "archives"

[folders]
exclude_roles = ["trash"]
defer = ["Archivio"]

[phases]
prestage_older_than_days = 30
{extra}"#,
        server("SOURCE_IMAP_PORT"),
        server("TARGET_IMAP_PORT"),
    )
}

/// `trasloco plan`, with hugo included by request.
fn run_plan(pair: &Pair, campaign: &str) -> std::process::Output {
    pair.trasloco(
        &[
            "--no-progress",
            "plan",
            campaign,
            "--include",
            "hugo@ministero.it",
        ],
        "",
        "",
    )
}

fn plan_json(pair: &Pair) -> serde_json::Value {
    let t = std::fs::read_to_string(pair.dir.path().join("reports/plan.json")).unwrap();
    serde_json::from_str(&t).unwrap()
}

fn row<'a>(plan: &'a serde_json::Value, source: &str) -> &'a serde_json::Value {
    plan["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"] == format!("{source}@127.0.0.1"))
        .unwrap_or_else(|| panic!("{source} not in the plan"))
}

fn action(plan: &serde_json::Value, source: &str) -> String {
    row(plan, source)["decision"]["action"]
        .as_str()
        .unwrap()
        .to_string()
}

fn reasons(plan: &serde_json::Value, source: &str) -> String {
    row(plan, source)["decision"]["reasons"].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_from_plan_to_report() {
    let users = target_users();
    let pair = Pair::start_with(&[
        ("PAIR_SOURCE_USERS", SOURCE_USERS),
        ("PAIR_TARGET_USERS", &users),
        (
            "PAIR_TARGET_QUOTAS",
            "gino@cultura.gov.it=300k ilaria@cultura.gov.it=300k",
        ),
    ]);
    seed_campaign(&pair).await;
    write(&pair, "master.txt", "admin-secret\n");
    let recent_login = days_ago(10).format("%Y-%m-%d").to_string();
    write(
        &pair,
        "accounts.csv",
        &format!(
            "source_user,target_user,last_login,quota_strategy\n\
             anna@beniculturali.it,,,\n\
             bruno@beniculturali.it,b.verdi@cultura.gov.it,,\n\
             carla@beniculturali.it,,,\n\
             carla@ministero.it,,,\n\
             dario@ministero.it,,,\n\
             elena@ministero.it,,{recent_login},\n\
             fabio@ministero.it,,,\n\
             hugo@ministero.it,,,\n\
             gino@beniculturali.it,,,\n\
             ilaria@beniculturali.it,,,archive-oldest\n\
             luca@beniculturali.it,,,keep-days 365\n\
             marta@ministero.it,,,\n\
             nino@ministero.it,,,\n\
             zeno@ministero.it,,,\n"
        ),
    );
    write(
        &pair,
        "logins.csv",
        "user,last_login\nfabio@ministero.it,2024-02-01\n",
    );
    let c = write(&pair, "campaign.toml", &campaign_file(&pair, ""));

    // Before a plan, a campaign with inactivity and quota rules does not run.
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    assert_eq!(code(&out), 64, "{}", text(&out));
    assert!(text(&out).contains("trasloco plan"), "{}", text(&out));

    // 1. Plan.
    let out = run_plan(&pair, &c);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("14 mailboxes: 6 migrate, 2 migrate with archive, 2 skip, 4 blocked"),
        "{t}"
    );
    let plan = plan_json(&pair);
    assert_eq!(action(&plan, "anna@beniculturali.it"), "migrate");
    assert_eq!(
        row(&plan, "anna@beniculturali.it")["target"],
        "anna@cultura.gov.it@127.0.0.1",
        "domain map keeps the local part"
    );
    assert_eq!(
        row(&plan, "bruno@beniculturali.it")["target"],
        "b.verdi@cultura.gov.it@127.0.0.1",
        "the accounts file's target_user wins"
    );
    for carla in ["carla@beniculturali.it", "carla@ministero.it"] {
        assert_eq!(action(&plan, carla), "blocked");
        assert!(
            reasons(&plan, carla).contains(
                "carla@beniculturali.it, carla@ministero.it all map to carla@cultura.gov.it"
            ),
            "{}",
            reasons(&plan, carla)
        );
    }
    // Issue 18, point 19: the source decides an inactive box; its missing target does not
    // block it, and is said.
    assert_eq!(action(&plan, "dario@ministero.it"), "skip");
    assert!(
        reasons(&plan, "dario@ministero.it").contains("newest message 2023-03-01, last login none")
    );
    assert!(
        reasons(&plan, "dario@ministero.it").contains("the target mailbox cannot be logged in to"),
        "{}",
        reasons(&plan, "dario@ministero.it")
    );
    assert_eq!(
        action(&plan, "elena@ministero.it"),
        "migrate",
        "a recent last login keeps an old mailbox"
    );
    assert_eq!(action(&plan, "fabio@ministero.it"), "skip");
    assert!(
        reasons(&plan, "fabio@ministero.it").contains("last login 2024-02-01"),
        "last login from the file: {}",
        reasons(&plan, "fabio@ministero.it")
    );
    assert_eq!(action(&plan, "hugo@ministero.it"), "migrate");
    assert!(reasons(&plan, "hugo@ministero.it").contains("included by request"));
    let gino = row(&plan, "gino@beniculturali.it");
    assert_eq!(gino["decision"]["action"], "blocked");
    assert_eq!(gino["decision"]["rule"], "over-quota");
    assert_eq!(
        gino["target_quota"]["limit"],
        300 * 1024,
        "quota read from the target server"
    );
    assert!(gino["decision"]["overflow"].as_u64().unwrap() > 0);
    let ilaria = row(&plan, "ilaria@beniculturali.it");
    assert_eq!(ilaria["decision"]["action"], "migrate-with-archive");
    let ilaria_online = ilaria["decision"]["online_messages"].as_u64().unwrap();
    let ilaria_archived = ilaria["decision"]["archived_messages"].as_u64().unwrap();
    assert_eq!(ilaria_online + ilaria_archived, 20);
    assert!(ilaria_archived > 0);
    assert!(ilaria["decision"]["online_bytes"].as_u64().unwrap() <= 300 * 1024 * 95 / 100);
    let luca = row(&plan, "luca@beniculturali.it");
    assert_eq!(luca["decision"]["action"], "migrate-with-archive");
    assert_eq!(luca["decision"]["archived_messages"], 3);
    let anna_folders: BTreeMap<String, serde_json::Value> =
        row(&plan, "anna@beniculturali.it")["folders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_string(), f["rule"].clone()))
            .collect();
    assert_eq!(anna_folders["Cestino"], "folder-excluded");
    assert_eq!(anna_folders["Archivio"], "folder-deferred");
    let zeno = row(&plan, "zeno@ministero.it");
    assert_eq!(zeno["decision"]["action"], "blocked");
    assert_eq!(zeno["decision"]["rule"], "login");
    assert!(
        reasons(&plan, "zeno@ministero.it").contains("source zeno@ministero.it@127.0.0.1"),
        "the failed login names its side and account: {}",
        reasons(&plan, "zeno@ministero.it")
    );
    for f in ["plan.csv", "plan.html"] {
        assert!(pair.dir.path().join("reports").join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(pair.dir.path().join("reports/plan.csv")).unwrap();
    assert_eq!(csv.lines().count(), 15, "{csv}");

    // 2. The window: outside it nothing starts (exit 75), nothing is written.
    let closed = format!(
        "[window]\nstart = \"{}\"\nend = \"{}\"\n",
        (chrono::Local::now() + Duration::hours(2)).format("%H:%M"),
        (chrono::Local::now() + Duration::hours(3)).format("%H:%M")
    );
    let c2 = write(&pair, "closed.toml", &campaign_file(&pair, &closed));
    let out = pair.trasloco(
        &["--no-progress", "run", &c2, "--phase", "prestage"],
        "",
        "",
    );
    assert_eq!(code(&out), 75, "{}", text(&out));
    assert!(text(&out).contains("outside the window"), "{}", text(&out));
    assert!(!pair.dir.path().join("state.sqlite").exists());

    // 3. Prestage (with --force through the window): old mail only, deferred folder waits.
    let out = pair.trasloco(
        &[
            "--no-progress",
            "run",
            &c2,
            "--phase",
            "prestage",
            "--force",
        ],
        "",
        "",
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let anna = "anna@cultura.gov.it";
    assert_eq!(count(&pair, "target", anna, "INBOX").await, 5);
    assert_eq!(
        count(&pair, "target", anna, "Trash").await,
        0,
        "trash role excluded"
    );
    let rep = report(&pair, &out);
    assert_eq!(rep["left_out"].as_array().unwrap().len(), 6, "{rep}");
    assert_eq!(rep["phase"], "prestage");
    assert_eq!(
        count(&pair, "target", "gino@cultura.gov.it", "INBOX").await,
        0
    );
    assert_eq!(
        count(&pair, "target", "hugo@cultura.gov.it", "INBOX").await,
        2
    );

    // 4. Delta: the new mail.
    let out = pair.trasloco(&["--no-progress", "run", &c, "--phase", "delta"], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(count(&pair, "target", anna, "INBOX").await, 8);
    assert_eq!(count(&pair, "target", anna, "Archive").await, 0, "deferred");
    assert_eq!(
        u64::from(count(&pair, "target", "ilaria@cultura.gov.it", "INBOX").await),
        ilaria_online
    );
    assert_eq!(
        count(&pair, "target", "luca@cultura.gov.it", "INBOX").await,
        3
    );
    let out = pair.trasloco(
        &["archive", "verify", "archives/ilaria@beniculturali.it"],
        "",
        "",
    );
    assert_eq!(code(&out), 0, "{}", text(&out));

    // 5. Final: the deferred folder moves (Archivio → the target's \Archive folder).
    let out = pair.trasloco(&["--no-progress", "run", &c, "--phase", "final"], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(count(&pair, "target", anna, "Archive").await, 4);

    // 6. Late mail after the MX switch; catch-up reads INBOX and junk only.
    let marta = "marta@ministero.it";
    put(
        &pair,
        marta,
        "INBOX",
        vec![dated(marta, "INBOX-late", 0, Utc::now(), 100)],
    )
    .await;
    // Into existing folders (seed() would create them).
    let mut sc = pair.client("source", marta).await;
    for (folder, tag) in [
        ("Posta indesiderata", "Junk-late"),
        ("Progetti", "Progetti-late"),
    ] {
        let m = dated(marta, tag, 0, Utc::now(), 100);
        let appended = trasloco_imap::AppendMsg {
            flags: Vec::new(),
            internal_date: m.date.map(str::to_string),
            body: bytes::Bytes::from(m.body),
        };
        sc.append(folder, &[appended]).await.unwrap();
    }
    let out = pair.trasloco(&["--no-progress", "run", &c, "--phase", "catchup"], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let tm = "marta@cultura.gov.it";
    assert_eq!(count(&pair, "target", tm, "INBOX").await, 4);
    assert_eq!(count(&pair, "target", tm, "Junk").await, 2);
    assert_eq!(
        count(&pair, "target", tm, "Progetti").await,
        1,
        "not a catch-up folder"
    );

    // 7. Status shows each phase per mailbox.
    let out = pair.trasloco(&["status", &c], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let t = text(&out);
    let line = t
        .lines()
        .find(|l| l.starts_with("anna@beniculturali.it"))
        .unwrap_or_else(|| panic!("{t}"));
    for p in [
        "prestage in-sync",
        "delta in-sync",
        "final in-sync",
        "catchup in-sync",
    ] {
        assert!(line.contains(p), "{line}");
    }
    // Issue 18, point 14: every account of the campaign, with its decision; a mailbox with a
    // quota archive shows what is on the target and what is in the archive.
    assert_eq!(
        t.lines().skip(1).filter(|l| !l.trim().is_empty()).count(),
        14,
        "{t}"
    );
    let dario = t
        .lines()
        .find(|l| l.starts_with("dario@ministero.it"))
        .unwrap_or_else(|| panic!("skipped accounts are listed: {t}"));
    assert!(
        dario.contains(" skip ") && dario.contains("skipped"),
        "{dario}"
    );
    let gino = t
        .lines()
        .find(|l| l.starts_with("gino@beniculturali.it"))
        .unwrap_or_else(|| panic!("blocked accounts are listed: {t}"));
    assert!(gino.contains("blocked"), "{gino}");
    let ilaria_line: Vec<&str> = t
        .lines()
        .find(|l| l.starts_with("ilaria@beniculturali.it"))
        .unwrap_or_else(|| panic!("{t}"))
        .split_whitespace()
        .collect();
    assert_eq!(ilaria_line[2], "migrate+archive", "{ilaria_line:?}");
    assert_eq!(ilaria_line[4], ilaria_online.to_string(), "{ilaria_line:?}");
    assert_eq!(
        ilaria_line[5],
        ilaria_archived.to_string(),
        "{ilaria_line:?}"
    );

    // 8. A second plan says what changed.
    let out = run_plan(&pair, &c);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("Changed since the last plan"), "{t}");
    assert!(
        t.contains("marta@ministero.it@127.0.0.1: 5 messages"),
        "{t}"
    );

    // 9. Verify: a message deleted from the target is found and named.
    pair.doveadm(
        "target",
        &[
            "expunge",
            "-u",
            anna,
            "mailbox",
            "INBOX",
            "HEADER",
            "Subject",
            "anna@beniculturali.it INBOX-new 1",
        ],
    );
    // The same again with windows of two messages: what verify holds of a folder at a time.
    for (full, window) in [(false, false), (true, false), (false, true), (true, true)] {
        let file = std::fs::read_to_string(&c).unwrap();
        if window && !file.contains("listing_window") {
            let file = file.replacen("jobs = 4\n", "jobs = 4\nlisting_window = 2\n", 1);
            std::fs::write(&c, file).unwrap();
        }
        let mut args = vec!["--no-progress", "verify", c.as_str()];
        if full {
            args.push("--full");
        }
        let out = pair.trasloco(&args, "", "");
        let t = text(&out);
        assert_eq!(code(&out), 2, "{t}");
        let anna_line = t
            .lines()
            .find(|l| l.starts_with("anna@beniculturali.it"))
            .unwrap_or_else(|| panic!("{t}"));
        assert!(anna_line.contains("MISSING MESSAGES: 14 on the source = 11 on the target + 2 left out by rules + 1 missing"), "{anna_line}");
        assert!(
            t.contains("missing from the target: folder \"INBOX\"")
                && t.contains("subject \"anna@beniculturali.it INBOX-new 1\""),
            "{t}"
        );
        assert!(
            t.contains("subject \"marta@ministero.it Progetti-late 0\""),
            "late mail outside the catch-up folders is reported: {t}"
        );
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(pair.dir.path().join("reports/verify.json")).unwrap(),
        )
        .unwrap();
        for m in v["mailboxes"].as_array().unwrap() {
            let skipped: u64 = m["skipped"]
                .as_object()
                .unwrap()
                .values()
                .map(|x| x.as_u64().unwrap())
                .sum();
            assert_eq!(
                m["source_messages"].as_u64().unwrap(),
                m["matched"].as_u64().unwrap()
                    + skipped
                    + m["missing"].as_array().unwrap().len() as u64,
                "totals reconcile: {m}"
            );
            let src = m["source"].as_str().unwrap();
            if !src.starts_with("anna@") && !src.starts_with("marta@") {
                assert_eq!(m["verdict"], "nothing-lost", "{m}");
            }
            if src.starts_with("ilaria@") {
                assert_eq!(
                    m["skipped"]["archived"].as_u64(),
                    Some(ilaria_archived),
                    "{m}"
                );
            }
        }
        assert_eq!(v["left_out"].as_array().unwrap().len(), 6);
    }

    // 10. The report, rendered by a real browser.
    let out = pair.trasloco(&["report", &c], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let dir = pair.dir.path().join("reports");
    let csv = std::fs::read_to_string(dir.join("report.csv")).unwrap();
    assert_eq!(csv.lines().count(), 15, "one row per mailbox: {csv}");
    assert!(csv.contains("blocked") && csv.contains("skip"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["mailboxes"].as_array().unwrap().len(), 14);
    // Campaign totals from the state and the archive's manifest, not the last run's (point 11).
    let ilaria_row = json["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["source"].as_str().unwrap().starts_with("ilaria@"))
        .unwrap();
    assert_eq!(ilaria_row["archived"], ilaria_archived, "{ilaria_row}");
    assert_eq!(ilaria_row["on_target"], ilaria_online, "{ilaria_row}");
    assert_eq!(ilaria_row["copied"], 20, "{ilaria_row}");
    assert!(!json["progress"].as_array().unwrap().is_empty());
    let html = dir.join("report.html");
    let dom = std::process::Command::new("chromium-headless-shell")
        .args(["--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium-headless-shell (Debian package; scripts/test.sh installs it)");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("data-ready=\"yes\""),
        "the page's script ran: {dom}"
    );
    assert!(dom.contains("14 / 14"), "the filter counted the rows");
    assert!(dom.contains("<svg"), "charts are inline");
    assert!(
        dom.contains("address conflict"),
        "blocked reasons are listed"
    );
}

/// Issue 18, point 20: the archive-oldest cut is checked again at every run. Mail that arrives
/// after the plan would push the target over its quota: the cut moves, the messages behind it
/// go to the archive (verified), and the copies this tool had made of them leave the target,
/// with a line in the report; nothing is lost, and `verify` agrees.
#[tokio::test(flavor = "multi_thread")]
async fn the_archive_cut_moves_as_mail_arrives() {
    let pair = Pair::start_with(&[("PAIR_TARGET_QUOTAS", "erin=300k")]);
    let user = "erin";
    // 12 old messages of about 20 KB: 240 KB, within the 300 KiB quota.
    let old: Vec<Msg> = (0..12)
        .map(|i| dated(user, "INBOX", i, days_ago(900 - i as i64 * 10), 20_000))
        .collect();
    put(&pair, user, "INBOX", old).await;
    write(
        &pair,
        "accounts.csv",
        "source_user,source_password,target_user,target_password\nerin,erin-pw,erin,erin-pw\n",
    );
    let c = write(
        &pair,
        "campaign.toml",
        &format!(
            "[source]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{ca}\"\n[target]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{ca}\"\n[accounts]\nfile = \"accounts.csv\"\n[run]\nstate = \"state.sqlite\"\nreports = \"reports\"\n[rules]\nquota_strategy = \"archive-oldest\"\narchive_dir = \"archives\"\n",
            pair.port("SOURCE_IMAP_PORT"),
            pair.port("TARGET_IMAP_PORT"),
            ca = pair.ca().display()
        ),
    );
    let out = pair.trasloco(&["--no-progress", "plan", &c], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        row(&plan_json(&pair), user)["decision"]["action"],
        "migrate"
    );
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(count(&pair, "target", user, "INBOX").await, 12);

    // Six new messages after the plan: 360 KB no longer fit.
    let new: Vec<Msg> = (0..6)
        .map(|i| dated(user, "INBOX-new", i, days_ago(5 - i as i64), 20_000))
        .collect();
    put(&pair, user, "INBOX", new).await;
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(
        t.contains("note: quota: mail arrived since the plan; the archive cut moved from none to"),
        "{t}"
    );
    assert!(!t.contains("OVERQUOTA"), "{t}");
    let r = report(&pair, &out);
    let m = &r["mailboxes"][0];
    let evicted = folder_sum(m, "evicted");
    assert!(evicted > 0, "{m}");
    let on_target = count(&pair, "target", user, "INBOX").await;
    let archived = r["archives"][0]["buckets"]["copied"].as_u64().unwrap();
    assert_eq!(
        u64::from(on_target) + archived,
        18,
        "every message in exactly one place: {r}"
    );
    assert_eq!(u64::from(on_target), 18 - archived);
    assert_eq!(evicted, archived, "the archived ones left the target");
    let out = pair.trasloco(&["archive", "verify", "archives/erin"], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));

    // The next run is quiet, and verify finds nothing lost.
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(!text(&out).contains("archive cut moved"), "{}", text(&out));
    assert_eq!(count(&pair, "target", user, "INBOX").await, on_target);
    let out = pair.trasloco(&["--no-progress", "verify", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(t.contains(&format!("{archived} archived")), "{t}");
}
