//! Campaigns: the accounts formats admins already have, master users, parallel mailboxes,
//! status.

mod support;

use support::*;

fn write(pair: &Pair, name: &str, content: &str) -> String {
    let p = pair.dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p.display().to_string()
}

fn campaign(pair: &Pair, accounts: &str, extra_source: &str, extra_target: &str) -> String {
    write(
        pair,
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
    write(&pair, "accounts.txt", csv);
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
    write(&pair, "master.txt", "admin-secret\n");

    // Microsoft's format: target address, source login, source password; the target side
    // logs in as the master user with Dovecot's user*master form.
    write(
        &pair,
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
    write(
        &pair,
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
    write(&pair, "master.txt", "nope\n");
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
    write(&pair, "ours.csv", "source_user,target_user\nerin,erin\n");
    let c = campaign(&pair, "ours.csv", "", "");
    let out = pair.trasloco(&["run", &c], "", "");
    assert_eq!(code(&out), 64, "{}", text(&out));
    assert!(
        text(&out).contains("ours.csv line 2: no source password for \"erin\""),
        "{}",
        text(&out)
    );
}
