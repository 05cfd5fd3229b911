//! POP3 sources (seed 003) against Dovecot's own POP3 server: copy into IMAP, incremental by
//! UIDL, and `--leave-days` deleting only old mail whose copy was read back identical.

mod support;

use support::*;

fn rfc2822(days_ago: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days_ago))
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

/// A message delivered `days_ago` days ago, as the receiving server stamped it.
fn delivered(i: usize, days_ago: i64, extra: &str) -> Msg {
    let d = rfc2822(days_ago);
    msg(format!(
        "Received: from mx.example.org by pop.example.org;\r\n {d}\r\nMessage-ID: <{i}@pop>\r\nDate: {d}\r\nFrom: a@example.org\r\nSubject: pop {i}\r\n\r\nBody {i}.\r\n{extra}"
    ))
}

fn pop3_url(pair: &Pair, user: &str) -> String {
    format!("pop3://{user}@127.0.0.1:{}", pair.port("SOURCE_POP3_PORT"))
}

fn pop3_migrate(pair: &Pair, user: &str, extra: &[&str]) -> std::process::Output {
    let pw = format!("{user}-pw");
    run(command(pair.dir.path(), &pw, &pw)
        .args(["--no-progress", "migrate", "--from", &pop3_url(pair, user)])
        .args(["--to", &pair.url("target", user)])
        .arg("--ca-file")
        .arg(pair.ca())
        .arg("--state")
        .arg(pair.state_file(user))
        .args(extra))
}

fn digests(s: &Snapshot, folder: &str) -> Vec<String> {
    let mut v: Vec<String> = s[folder].iter().map(|m| m.0.clone()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn pop3_mailbox_moves_and_leave_days_deletes_only_old_verified_mail() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    let mut msgs = vec![
        delivered(1, 60, ""),
        delivered(2, 45, ""),
        delivered(3, 31, ".\r\n..\r\n.leading dot, unstuffed on the wire\r\n"),
        delivered(4, 5, ""),
        delivered(5, 1, ""),
    ];
    msgs.push(msg(
        "Message-ID: <undated@pop>\r\nSubject: no date at all\r\n\r\nx\r\n",
    ));
    seed(&mut src, "INBOX", msgs).await;

    let out = pop3_migrate(&pair, "alice", &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["source"], format!("pop3:alice@127.0.0.1"));
    assert_eq!(mb["buckets"]["copied"], 6);
    assert_eq!(folder_sum(mb, "verified"), 6);
    let source = snapshot(&mut src).await;
    let mut tgt = pair.client("target", "alice").await;
    let target = snapshot(&mut tgt).await;
    assert_eq!(
        digests(&target, "INBOX"),
        digests(&source, "INBOX"),
        "byte-identical"
    );
    tgt.select("INBOX", true).await.unwrap();
    let meta = tgt.fetch_all_meta(true).await.unwrap();
    assert!(meta.iter().all(|m| m.flags.contains(&"\\Seen".to_string())));
    let want = (chrono::Utc::now() - chrono::Duration::days(60))
        .format("%d-%b-%Y")
        .to_string();
    assert!(
        meta.iter()
            .any(|m| m.internal_date.as_deref().unwrap_or("").starts_with(&want)),
        "the internal date is the delivery date: {meta:?}"
    );

    // Unchanged: nothing fetched. New mail: only it.
    let out = pop3_migrate(&pair, "alice", &[]);
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["buckets"]["copied"], 0);
    assert_eq!(folder_sum(mb, "bodies_fetched"), 0);
    seed(&mut src, "INBOX", vec![delivered(7, 0, "")]).await;
    let out = pop3_migrate(&pair, "alice", &[]);
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["buckets"]["copied"], 1);
    assert_eq!(mb["buckets"]["already_present"], 6);

    // Dry run: lists the three old messages, deletes nothing.
    let out = pop3_migrate(&pair, "alice", &["--leave-days", "30", "--dry-run"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let c = &report(&pair, &out)["mailboxes"][0]["source_cleanup"];
    assert_eq!(c["deletable"].as_array().unwrap().len(), 3, "{c}");
    assert_eq!(c["kept_recent"], 3);
    assert_eq!(c["kept_undated"], 1);
    assert_eq!(c["deleted"], 0);
    assert!(text(&out).contains("3 would be deleted"), "{}", text(&out));
    assert_eq!(count(&pair, "source", "alice", "INBOX").await, 7);

    let out = pop3_migrate(&pair, "alice", &["--leave-days", "30"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let c = &report(&pair, &out)["mailboxes"][0]["source_cleanup"];
    assert_eq!(c["deleted"], 3, "{c}");
    assert_eq!(count(&pair, "source", "alice", "INBOX").await, 4);
    assert_eq!(
        count(&pair, "target", "alice", "INBOX").await,
        7,
        "the target keeps all"
    );
    let out = pop3_migrate(&pair, "alice", &[]);
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["buckets"]["copied"], 0);
    assert_eq!(mb["buckets"]["already_present"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn pop3s_master_login_and_nothing_unverified_is_deleted() {
    let pair = Pair::start();
    let mut src = pair.client("source", "tiny").await;
    let big = "y".repeat(300 * 1024);
    seed(
        &mut src,
        "INBOX",
        vec![delivered(1, 90, ""), delivered(2, 90, &big)],
    )
    .await;
    // Implicit TLS with the test CA, and USER/PASS as `tiny*admin` (the separator form).
    let url = format!("pop3s://tiny@127.0.0.1:{}", pair.port("SOURCE_POP3S_PORT"));
    let out = run(command(pair.dir.path(), "admin-secret", "tiny-pw")
        .args(["--no-progress", "migrate", "--from", &url])
        .args(["--from-master", "admin", "--master-login", "separator"])
        .args(["--to", &pair.url("target", "tiny")])
        .arg("--ca-file")
        .arg(pair.ca())
        .args(["--leave-days", "30", "--into", "Vecchia posta"]));
    assert_eq!(code(&out), 2, "the big one is refused: {}", text(&out));
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["buckets"]["copied"], 1);
    assert_eq!(mb["folders"][0]["target"], "Vecchia posta");
    let c = &mb["source_cleanup"];
    assert_eq!(c["deleted"], 1, "{c}");
    assert_eq!(c["kept_unverified"], 1, "{c}");
    assert_eq!(
        count(&pair, "source", "tiny", "INBOX").await,
        1,
        "the refused one stays"
    );

    // A wrong password names the side and the server.
    let out = run(command(pair.dir.path(), "wrong", "tiny-pw")
        .args(["--no-progress", "migrate", "--from", &url])
        .args(["--to", &pair.url("target", "tiny")])
        .arg("--ca-file")
        .arg(pair.ca()));
    assert_eq!(code(&out), 12, "{}", text(&out));
    assert!(
        text(&out).contains("source pop3:tiny@127.0.0.1"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pop3_into_an_archive_with_leave_days() {
    let pair = Pair::start();
    let mut src = pair.client("source", "bob").await;
    seed(
        &mut src,
        "INBOX",
        vec![
            delivered(1, 40, ""),
            delivered(2, 20, ""),
            delivered(3, 2, ""),
        ],
    )
    .await;
    let dir = pair.dir.path().join("pop3-backup");
    let export = || {
        run(command(pair.dir.path(), "bob-pw", "")
            .args(["--no-progress", "archive", "export", "--format", "mbox"])
            .args(["--from", &pop3_url(&pair, "bob")])
            .arg("--to")
            .arg(&dir)
            .arg("--ca-file")
            .arg(pair.ca())
            .args(["--leave-days", "15"]))
    };
    let out = export();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["buckets"]["copied"], 3);
    assert_eq!(
        mb["source_cleanup"]["deleted"], 2,
        "{}",
        mb["source_cleanup"]
    );
    assert_eq!(count(&pair, "source", "bob", "INBOX").await, 1);
    let out = run(command(pair.dir.path(), "", "")
        .args(["archive", "verify"])
        .arg(&dir));
    assert_eq!(code(&out), 0, "{}", text(&out));
    // Again: the one left is archived already; it is recent, so it stays.
    let out = export();
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["buckets"]["copied"], 0);
    assert_eq!(mb["buckets"]["already_present"], 1);
    assert_eq!(mb["source_cleanup"]["kept_recent"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pop3_campaign_with_leave_days() {
    let pair = Pair::start();
    for u in ["alice", "bob"] {
        let mut src = pair.client("source", u).await;
        seed(
            &mut src,
            "INBOX",
            vec![delivered(1, 40, ""), delivered(2, 3, "")],
        )
        .await;
    }
    let dir = pair.dir.path();
    std::fs::write(
        dir.join("pop3.csv"),
        "source_user,source_password,target_user,target_password\nalice,alice-pw,alice,alice-pw\nbob,bob-pw,bob,bob-pw\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("pop3.toml"),
        format!(
            "[source]\nprotocol = \"pop3\"\nhost = \"127.0.0.1\"\nport = {}\nca_file = \"{ca}\"\n\n[target]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{ca}\"\n\n[accounts]\nfile = \"pop3.csv\"\n\n[run]\nleave_days = 30\n",
            pair.port("SOURCE_POP3_PORT"),
            pair.port("TARGET_IMAP_PORT"),
            ca = pair.ca().display()
        ),
    )
    .unwrap();
    let c = dir.join("pop3.toml").display().to_string();
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let r = report(&pair, &out);
    assert_eq!(r["totals"]["copied"], 4);
    for (i, u) in ["alice", "bob"].iter().enumerate() {
        assert_eq!(r["mailboxes"][i]["source_cleanup"]["deleted"], 1, "{u}");
        assert_eq!(count(&pair, "source", u, "INBOX").await, 1, "{u}");
        assert_eq!(count(&pair, "target", u, "INBOX").await, 2, "{u}");
    }
}
