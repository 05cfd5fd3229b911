//! Campaigns: the accounts formats admins already have, master users, parallel mailboxes,
//! status.

mod support;

use support::*;

fn campaign(pair: &Pair, accounts: &str, extra_source: &str, extra_target: &str) -> String {
    pair.write(
        "campaign.toml",
        &format!(
            r#"name = "test campaign"
[source]
host = "127.0.0.1"
port = {sp}
tls = "starttls"
ca_file = "{ca}"
{extra_source}

[target]
host = "127.0.0.1"
port = {tp}
tls = "starttls"
ca_file = "{ca}"
{extra_target}

[accounts]
file = "{accounts}"

[run]
jobs = 3
state = "campaign-state.sqlite"
reports = "reports"

[folders]
exclude = ["Cestino*"]
"#,
            sp = pair.port("SOURCE_IMAP_PORT"),
            tp = pair.port("TARGET_IMAP_PORT"),
            ca = pair.ca().display(),
        ),
    )
}

/// A campaign of alice alone, her password on both sides, with `run_extra` lines added to
/// its `[run]` section.
fn alice_campaign(pair: &Pair, run_extra: &str) -> String {
    pair.write(
        "accounts.csv",
        "source_user,source_password,target_user,target_password\nalice,alice-pw,alice,alice-pw\n",
    );
    let camp = campaign(pair, "accounts.csv", "", "");
    let file = std::fs::read_to_string(&camp).unwrap();
    std::fs::write(
        &camp,
        file.replace("jobs = 3", &format!("jobs = 3\n{run_extra}")),
    )
    .unwrap();
    camp
}

/// `trasloco run` of a campaign in the background, its output captured.
fn spawn_run(pair: &Pair, camp: &str) -> std::process::Child {
    command(pair.dir.path(), "", "")
        .args(["--no-progress", "run", camp])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

async fn seed_users(pair: &Pair, users: &[&str]) {
    for u in users {
        let mut c = pair.client("source", u).await;
        seed(&mut c, "INBOX", (0..7).map(|i| msg(simple(i, u))).collect()).await;
        seed(
            &mut c,
            "Cestino",
            (0..2).map(|i| msg(simple(i, "Cestino"))).collect(),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn imapsync_csv_with_user_passwords_and_status() {
    let pair = Pair::start();
    seed_users(&pair, &["alice", "bob", "carol"]).await;
    let csv = "# imapsync batch file\n;alice;alice-pw;;alice;alice-pw\n;bob;bob-pw;;bob;bob-pw\n;carol;carol-pw;;carol;carol-pw\n";
    pair.write("accounts.txt", csv);
    let c = campaign(&pair, "accounts.txt", "", "");

    let out = pair.trasloco(&["--no-progress", "run", &c, "--dry-run"], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        count(&pair, "target", "alice", "INBOX").await,
        0,
        "dry run wrote nothing"
    );

    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let r = report(&pair, &out);
    assert_eq!(r["mailboxes_in_sync"], 3);
    assert_eq!(r["totals"]["copied"], 21);
    assert_eq!(
        r["totals"]["skipped"]["folder-excluded"], 6,
        "excluded folders are accounted as skipped"
    );
    assert_eq!(r["source_messages"], 27);
    for u in ["alice", "bob", "carol"] {
        assert_eq!(count(&pair, "target", u, "INBOX").await, 7);
    }
    let out = pair.trasloco(&["status", &c], "", "");
    assert_eq!(code(&out), 0);
    let t = text(&out);
    assert_eq!(t.matches("in-sync").count(), 3, "{t}");
    assert!(!t.contains("-pw"), "no secret in status: {t}");
    let state = std::fs::read(pair.dir.path().join("campaign-state.sqlite")).unwrap();
    assert!(
        !state.windows(8).any(|w| w == b"alice-pw"),
        "no secret in the state file"
    );
    let out = pair.trasloco(&["status", &c, "--json"], "", "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);

    // The whole campaign backed up to local archives, one per account, the same rules applied.
    let backups = pair.dir.path().join("backups");
    let b = backups.display().to_string();
    let out = pair.trasloco(
        &[
            "--no-progress",
            "run",
            &c,
            "--export",
            &b,
            "--format",
            "mbox",
        ],
        "",
        "",
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let r = report(&pair, &out);
    assert_eq!(r["totals"]["copied"], 21);
    assert_eq!(r["totals"]["skipped"]["folder-excluded"], 6);
    for u in ["alice", "bob", "carol"] {
        let dir = backups.join(u);
        assert!(dir.join("INBOX.mbox").is_file(), "{u}");
        let v = pair.trasloco(&["archive", "verify", &dir.display().to_string()], "", "");
        assert_eq!(code(&v), 0, "{}", text(&v));
        assert!(text(&v).contains("7 of 7 messages intact"), "{}", text(&v));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn master_users_on_both_sides_with_microsoft_csv_and_our_csv() {
    let pair = Pair::start();
    seed_users(&pair, &["dave", "erin", "frank"]).await;
    pair.write("master.txt", "admin-secret\n");

    // Microsoft's format: target address, source login, source password; the target side
    // logs in as the master user with Dovecot's user*master form.
    pair.write(
        "ms.csv",
        "EmailAddress,UserName,Password\ndave,dave,dave-pw\n",
    );
    let c = campaign(
        &pair,
        "ms.csv",
        "",
        "master_user = \"admin\"\nmaster_password_file = \"master.txt\"\nmaster_login = \"separator\"",
    );
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(count(&pair, "target", "dave", "INBOX").await, 7);

    // Our format without passwords: SASL PLAIN with an authorization identity on both sides.
    pair.write(
        "ours.csv",
        "source_user,target_user\nerin,erin\nfrank,frank\n",
    );
    let master = "master_user = \"admin\"\nmaster_password_file = \"master.txt\"";
    let c = campaign(&pair, "ours.csv", master, master);
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(count(&pair, "target", "erin", "INBOX").await, 7);
    assert_eq!(count(&pair, "target", "frank", "INBOX").await, 7);

    // A wrong master password fails every mailbox as an authentication failure.
    pair.write("master.txt", "nope\n");
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    assert_eq!(code(&out), 12, "{}", text(&out));
    assert!(
        text(&out).contains("as master user admin"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_without_passwords_need_a_master_user() {
    let pair = Pair::start();
    pair.write("ours.csv", "source_user,target_user\nerin,erin\n");
    let c = campaign(&pair, "ours.csv", "", "");
    let out = pair.trasloco(&["run", &c], "", "");
    assert_eq!(code(&out), 64, "{}", text(&out));
    assert!(
        text(&out).contains("ours.csv line 2: no source password for \"erin\""),
        "{}",
        text(&out)
    );
}

/// Issue 18, points 1 and 15: `verify` names the copies the target altered (not "on the
/// target", not "missing"), decodes RFC 2047 headers for people (verify.json keeps them as
/// written), and caps long lists on the terminal with the count of the rest.
#[tokio::test(flavor = "multi_thread")]
async fn verify_names_altered_copies_decodes_headers_and_caps_lists() {
    let pair = Pair::start();
    let mut c = pair.client("source", "alice").await;
    seed(&mut c, "INBOX", vec![msg(simple(1, "INBOX"))]).await;
    c.logout().await;
    let odd = b"Message-ID: <cr@test.example>\r\nDate: Mon, 1 Jan 2024 11:00:00 +0100\r\nFrom: Anna <anna@example.org>\r\nSubject: ends in a bare CR\r\n\r\nlast line\r";
    deliver_raw(&pair, "source", "alice", "1704103200.M1P1.test", odd);
    let camp = alice_campaign(&pair, "");
    let out = pair.trasloco(&["--no-progress", "run", &camp], "", "");
    assert_eq!(code(&out), 3, "{}", text(&out));

    // 25 messages arrive after the run, with encoded From and Subject.
    let mut c = pair.client("source", "alice").await;
    let late: Vec<Msg> = (0..25)
        .map(|i| {
            msg(format!(
                "Message-ID: <late{i}@test.example>\r\nDate: Tue, 2 Jan 2024 10:{i:02}:00 +0100\r\nFrom: =?UTF-8?B?VWZmaWNpbyBTb2NpZXTDoA==?= <u@example.org>\r\nSubject: =?iso-8859-1?Q?Citt=E0_n=B0_{i}?=\r\n\r\nbody\r\n"
            ))
        })
        .collect();
    seed(&mut c, "INBOX", late).await;
    c.logout().await;
    let out = pair.trasloco(&["--no-progress", "verify", &camp], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    assert!(t.contains("1 altered by the target"), "{t}");
    assert!(
        t.contains("altered by the target alice@127.0.0.1: folder \"INBOX\"")
            && t.contains(&format!("first difference at byte {}", odd.len() - 1)),
        "{t}"
    );
    assert!(
        t.contains("from \"Ufficio Società <u@example.org>\""),
        "{t}"
    );
    assert!(t.contains("subject \"Città n° 0\""), "{t}");
    assert!(!t.contains("=?UTF-8?"), "{t}");
    assert_eq!(t.matches("missing from the target").count(), 20, "{t}");
    assert!(
        t.contains("… and 5 more missing messages (all in verify.json)"),
        "{t}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(pair.dir.path().join("reports/verify.json")).unwrap(),
    )
    .unwrap();
    let m = &json["mailboxes"][0];
    assert_eq!(m["missing"].as_array().unwrap().len(), 25);
    assert!(
        m["missing"][0]["subject"]
            .as_str()
            .unwrap()
            .starts_with("=?iso-8859-1?Q?"),
        "raw in JSON: {m}"
    );

    // Once the late mail is copied, nothing is lost, but the altered copy still counts: 3.
    let out = pair.trasloco(&["--no-progress", "run", &camp], "", "");
    assert_eq!(code(&out), 3, "{}", text(&out));
    for full in [false, true] {
        let mut args = vec!["--no-progress", "verify", &camp];
        if full {
            args.push("--full");
        }
        let out = pair.trasloco(&args, "", "");
        let t = text(&out);
        assert_eq!(code(&out), 3, "{t}");
        assert!(
            t.contains("nothing lost, but COPIES ALTERED BY THE TARGET: 27 on the source = 26 on the target + 1 altered by the target"),
            "{t}"
        );
    }
}

/// A re-run of a mailbox whose source did not change does not look at the target, so a copy
/// lost there since (deleted by hand) is not noticed by the run; `verify` notices it, and the
/// run after it compares that mailbox in full and copies the message again.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_lost_on_the_target_is_found_by_verify_and_copied_again() {
    let pair = Pair::start();
    let mut c = pair.client("source", "alice").await;
    seed(
        &mut c,
        "INBOX",
        (1..=3).map(|i| msg(simple(i, "INBOX"))).collect(),
    )
    .await;
    seed(
        &mut c,
        "Archivio",
        (4..=5).map(|i| msg(simple(i, "Archivio"))).collect(),
    )
    .await;
    c.logout().await;
    let camp = alice_campaign(&pair, "");
    let out = pair.trasloco(&["--no-progress", "run", &camp], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));

    let mut t = pair.client("target", "alice").await;
    t.select(&target_name("Archivio"), false).await.unwrap();
    assert!(t.uid_expunge(&[1]).await.unwrap());
    t.logout().await;
    let before = pair.imap_sessions_closed("target", "alice");
    let out = pair.trasloco(&["--no-progress", "run", &camp], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(pair.imap_sessions_closed("target", "alice"), before);

    let out = pair.trasloco(&["--no-progress", "verify", &camp], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    assert_eq!(t.matches("missing from the target").count(), 1, "{t}");
    let out = pair.trasloco(&["--no-progress", "run", &camp], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["buckets"]["copied"], 1, "{mb}");
    assert_eq!(mb["buckets"]["already_present"], 4, "{mb}");
    let out = pair.trasloco(&["--no-progress", "verify", &camp], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
}

/// Issue 18, point 18: a folder rule covers the folder's subtree. `defer = ["Archivio"]`
/// defers `Archivio/2019` too, which must not reach the target before its parent.
#[tokio::test(flavor = "multi_thread")]
async fn a_deferred_folder_defers_its_subfolders() {
    let pair = Pair::start();
    let mut c = pair.client("source", "alice").await;
    seed(&mut c, "INBOX", vec![msg(simple(1, "INBOX"))]).await;
    seed(&mut c, "Archivio", vec![msg(simple(2, "Archivio"))]).await;
    seed(
        &mut c,
        "Archivio/2019",
        vec![msg(simple(3, "Archivio/2019"))],
    )
    .await;
    c.logout().await;
    let camp = alice_campaign(&pair, "");
    let text_of = std::fs::read_to_string(&camp).unwrap();
    std::fs::write(
        &camp,
        text_of.replace(
            "exclude = [\"Cestino*\"]",
            "exclude = [\"Cestino*\"]\ndefer = [\"Archivio\"]",
        ),
    )
    .unwrap();
    let out = pair.trasloco(&["--no-progress", "run", &camp, "--phase", "delta"], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let r = report(&pair, &out);
    assert_eq!(
        r["totals"]["skipped"]["folder-deferred"], 2,
        "Archivio and Archivio/2019: {r}"
    );
    let names = folder_names(&pair, "target", "alice").await;
    assert!(
        !names.iter().any(|n| n.contains("2019")),
        "the subfolder waits for its parent: {names:?}"
    );
    let out = pair.trasloco(&["--no-progress", "run", &camp, "--phase", "final"], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(report(&pair, &out)["totals"]["copied"], 2);
}

/// Issue 18, points 11–13: `report` counts from the state what every run copied, a killed one
/// too; a mailbox that fails part-way keeps the totals of the folders it got through.
#[tokio::test(flavor = "multi_thread")]
async fn report_counts_a_killed_runs_copies_and_a_failed_mailbox_keeps_its_totals() {
    let pair = Pair::start();
    let mut c = pair.client("source", "alice").await;
    seed(&mut c, "INBOX", padded(400, 2_000)).await;
    c.logout().await;
    let camp = alice_campaign(&pair, "batch_messages = 10");
    let mut child = spawn_run(&pair, &camp);
    wait_for_target(&pair, "alice", 50, &mut child).await;
    child.kill().unwrap();
    child.wait().unwrap();
    pair.wait_sessions_closed("target", "alice");
    let on_target = count(&pair, "target", "alice", "INBOX").await;
    assert!((50..400).contains(&on_target), "{on_target}");
    let out = pair.trasloco(&["report", &camp], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(pair.dir.path().join("reports/report.json")).unwrap(),
    )
    .unwrap();
    let row = &json["mailboxes"][0];
    // The state may lag the target by the batches whose answers the kill cut off: an append
    // connection sends the next batch ahead while the one before waits for its answers, so
    // two batches (of 10 here) can be stored by the target and never recorded.
    let copied = row["copied"].as_u64().unwrap();
    assert!(
        copied + 20 >= u64::from(on_target) && copied <= u64::from(on_target),
        "copied {copied}, on the target {on_target}: {row}"
    );
    assert_eq!(row["on_target"], copied, "{row}");

    // The rest, with no reconnection allowed, cut off by the target part-way: the mailbox
    // failed, and still says what it listed and copied before it did.
    let file = std::fs::read_to_string(&camp).unwrap();
    std::fs::write(
        &camp,
        file.replace("jobs = 3", "jobs = 3\nmax_reconnects = 0"),
    )
    .unwrap();
    let mut child = spawn_run(&pair, &camp);
    wait_for_target(&pair, "alice", on_target + 30, &mut child).await;
    pair.doveadm("target", &["kick", "alice"]);
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert_eq!(code(&out), 10, "{t}");
    let r = report(&pair, &out);
    let m = &r["mailboxes"][0];
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["source_messages"], 400, "{m}");
    assert!(m["buckets"]["copied"].as_u64().unwrap() >= 30, "{m}");
    assert!(t.contains("before it failed: 400 messages listed:"), "{t}");
    assert!(
        t.contains("not reached (mailboxes that stopped part-way)"),
        "{t}"
    );
}

/// Issue 19, point 1: two runs of one campaign at once would copy everything twice. The second
/// says who holds the campaign's state (host, pid, since when) and exits 16, touching nothing;
/// the first ends with every message once.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_of_the_same_campaign_is_refused_while_the_first_works() {
    let pair = Pair::start();
    let mut c = pair.client("source", "alice").await;
    seed(&mut c, "INBOX", padded(600, 2_000)).await;
    c.logout().await;
    let camp = alice_campaign(&pair, "batch_messages = 10");
    let mut first = spawn_run(&pair, &camp);
    wait_for_target(&pair, "alice", 20, &mut first).await;
    let out = pair.trasloco(&["--no-progress", "run", &camp], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 16, "{t}");
    assert!(
        t.contains("another trasloco run is working with this state")
            && t.contains(&format!("pid {}", first.id())),
        "{t}"
    );
    assert_eq!(t.trim().lines().count(), 1, "one line: {t}");
    let out = first.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        count(&pair, "target", "alice", "INBOX").await,
        600,
        "every message once"
    );
    // The lock went with the process: the next run works (and has nothing to copy).
    let out = pair.trasloco(&["--no-progress", "run", &camp], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
}

/// Issue 22, points 1 and 2: the state in PostgreSQL (`TRASLOCO_STATE=postgres://…`, a schema
/// of its own). A second run of the campaign while the first works finds the mailbox held
/// under the first one's lease: it copies nothing, says which worker has it and exits 2; the
/// first copies every message once, a re-run finds them all, and `status` reads the
/// database. Runs when the suite has a PostgreSQL cluster (`TRASLOCO_TEST_POSTGRES`,
/// scripts/test.sh).
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_state_shares_a_mailbox_with_one_run_at_a_time_and_is_read_by_status() {
    let Some((url, _, _)) = postgres_schema("campaign") else {
        return;
    };
    let pair = Pair::start();
    let mut c = pair.client("source", "alice").await;
    seed(&mut c, "INBOX", padded(600, 2_000)).await;
    c.logout().await;
    let camp = alice_campaign(&pair, "batch_messages = 10");
    let run = || {
        let mut cmd = command(pair.dir.path(), "", "");
        cmd.env("TRASLOCO_STATE", &url)
            .args(["--no-progress", "run", &camp]);
        cmd
    };
    let mut first = run()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_target(&pair, "alice", 20, &mut first).await;
    let out = support::run(&mut run());
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    assert!(
        t.contains(&format!(":{}:", first.id())) && t.contains("being copied by worker"),
        "{t}"
    );
    assert_eq!(report(&pair, &out)["totals"]["copied"], 0, "{t}");
    assert!(
        !t.contains("state.sqlite"),
        "the campaign's file is not used: {t}"
    );
    let out = first.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(count(&pair, "target", "alice", "INBOX").await, 600);
    assert!(
        !pair.dir.path().join("state.sqlite").exists(),
        "no SQLite file is made"
    );
    let out = support::run(&mut run());
    assert_eq!(code(&out), 0, "{}", text(&out));
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["buckets"]["already_present"], 600, "{mb}");
    let out = support::run(
        command(pair.dir.path(), "", "")
            .env("TRASLOCO_STATE", &url)
            .args(["status", &camp]),
    );
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(
        t.contains("alice") && t.contains("in-sync") && t.contains("600"),
        "{t}"
    );
}

/// Issue 19, point 10: a campaign whose every mailbox is blocked moved nothing: it is not
/// "in sync", and it does not exit 0.
#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_of_blocked_mailboxes_is_not_a_success() {
    let pair = Pair::start();
    pair.write("accounts.csv",
        "source_user,source_password,target_user,target_password\nalice,alice-pw,bob,bob-pw\ncarol,carol-pw,bob,bob-pw\n",
    );
    let camp = campaign(&pair, "accounts.csv", "", "");
    let out = pair.trasloco(&["--no-progress", "run", &camp], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    assert!(!t.contains("Everything is in sync"), "{t}");
    assert!(
        t.contains("Nothing was copied: every mailbox of the campaign is skipped or blocked"),
        "{t}"
    );
    assert!(t.contains("BLOCKED (conflict)"), "{t}");
}

/// Issue 19, point 3: `verify` says what the target holds beyond the source: duplicates of a
/// source message (exit 2) and messages with no source counterpart; "0 duplicated" is
/// something it shows.
#[tokio::test(flavor = "multi_thread")]
async fn verify_shows_duplicates_and_messages_of_the_targets_own() {
    let pair = Pair::start();
    let mut c = pair.client("source", "alice").await;
    seed(
        &mut c,
        "INBOX",
        (0..3).map(|i| msg(simple(i, "INBOX"))).collect(),
    )
    .await;
    c.logout().await;
    let camp = alice_campaign(&pair, "");
    let out = pair.trasloco(&["--no-progress", "run", &camp], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    for full in [false, true] {
        let mut args = vec!["--no-progress", "verify", camp.as_str()];
        if full {
            args.push("--full");
        }
        let out = pair.trasloco(&args, "", "");
        assert_eq!(code(&out), 0, "{}", text(&out));
        assert!(
            text(&out).contains("the target holds 3: 0 duplicated, 0 with no source counterpart"),
            "{}",
            text(&out)
        );
    }
    // A second copy of a message, and a message of the target's own.
    let mut t = pair.client("target", "alice").await;
    seed(
        &mut t,
        "INBOX",
        vec![msg(simple(1, "INBOX")), msg(simple(99, "new server"))],
    )
    .await;
    t.logout().await;
    for full in [false, true] {
        let mut args = vec!["--no-progress", "verify", camp.as_str()];
        if full {
            args.push("--full");
        }
        let out = pair.trasloco(&args, "", "");
        let t = text(&out);
        assert_eq!(code(&out), 2, "{t}");
        assert!(
            t.contains("nothing lost, but DUPLICATES ON THE TARGET"),
            "{t}"
        );
        assert!(
            t.contains("the target holds 5: 1 duplicated, 1 with no source counterpart"),
            "{t}"
        );
    }
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(pair.dir.path().join("reports/verify.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(v["mailboxes"][0]["duplicates"], 1, "{v}");
    assert_eq!(v["mailboxes"][0]["folders"][0]["without_source"], 1, "{v}");
}

/// SIGTERM (a service manager stopping the run) ends it cleanly: the batches in flight are
/// answered and recorded, the mailbox being copied ends part-way with its folders counted, the
/// one still waiting is not started, the summary is printed and the report written, and the
/// run exits 143. Nothing is left for the next run to sweep, and that run completes both.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_cleanly_with_summary_report_and_exit_143() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    seed(&mut src, "INBOX", padded(2000, 6000)).await;
    seed_users(&pair, &["bob"]).await;
    pair.write("accounts.csv",
        "source_user,source_password,target_user,target_password\nalice,alice-pw,alice,alice-pw\nbob,bob-pw,bob,bob-pw\n",
    );
    let camp = campaign(&pair, "accounts.csv", "", "");
    let file = std::fs::read_to_string(&camp).unwrap();
    std::fs::write(
        &camp,
        file.replace("jobs = 3", "jobs = 1\nbatch_messages = 10"),
    )
    .unwrap();
    let mut child = spawn_run(&pair, &camp);
    wait_for_target(&pair, "alice", 200, &mut child).await;
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert_eq!(code(&out), 143, "{t}");
    assert!(t.contains("Stopped by SIGTERM"), "{t}");
    assert!(t.contains("1 mailbox(es) not started"), "{t}");
    let r = report(&pair, &out);
    assert_eq!(r["stopped_by"], "SIGTERM", "{r}");
    assert_eq!(r["exit_code"], 143, "{r}");
    let (alice, bob) = (&r["mailboxes"][0], &r["mailboxes"][1]);
    assert_eq!(alice["status"], "incomplete", "{alice}");
    let copied = alice["buckets"]["copied"].as_u64().unwrap();
    assert!((200..2000).contains(&copied), "{alice}");
    assert_eq!(
        u64::from(count(&pair, "target", "alice", "INBOX").await),
        copied,
        "every copy made is recorded and counted"
    );
    assert!(
        bob["error"].as_str().unwrap().starts_with("not started"),
        "{bob}"
    );
    let out = pair.trasloco(&["--no-progress", "run", &camp], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(
        !t.contains("answered every APPEND"),
        "a clean stop leaves nothing unanswered: {t}"
    );
    let mut tgt = pair.client("target", "alice").await;
    assert_eq!(
        snapshot(&mut src).await["INBOX"],
        snapshot(&mut tgt).await["INBOX"]
    );
}
