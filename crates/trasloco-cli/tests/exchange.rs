//! Exchange Online's behaviour in front of a real Dovecot target (the proxy in the test
//! support is a test double: no Exchange exists to test against): throttled APPENDs slow the
//! run down and never fail it.

mod support;

use support::*;

/// A campaign of alice through the proxy, passwords on both sides.
fn through(pair: &Pair, proxy_port: u16, run: &str) -> String {
    pair.alice_campaign(&pair.imap_side("source"), &plain_side(proxy_port), run)
}

/// The same, the target named `provider = "microsoft365"`.
fn into_exchange(pair: &Pair, proxy_port: u16) -> String {
    let target = format!("{}provider = \"microsoft365\"\n", plain_side(proxy_port));
    pair.alice_campaign(&pair.imap_side("source"), &target, "")
}

/// Every fifteenth APPEND is answered with Exchange's throttling sentence and a backoff of
/// 1.5 s: the run waits at least that each time, resumes from the state, completes with every
/// message exactly once and exit 0, and the report says how often and how long it waited. The
/// mailboxes allowed against that server at once are halved, and so are the connections each
/// mailbox opens to it.
#[tokio::test(flavor = "multi_thread")]
async fn throttled_appends_slow_the_run_and_never_fail_it() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    seed(&mut src, "INBOX", padded(300, 400)).await;
    seed(&mut src, "Lavoro", padded(60, 200)).await;
    let proxy = ExchangeProxy::start_with(
        pair.port("TARGET_IMAP_PORT"),
        Behaviour {
            throttle_every: Some(15),
            backoff_ms: 1500,
            ..Behaviour::default()
        },
    );
    let c = through(&pair, proxy.port, "batch_messages = 10");
    let started = std::time::Instant::now();
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    let mut tgt = pair.client("target", "alice").await;
    let (a, b) = (snapshot(&mut src).await, snapshot(&mut tgt).await);
    for folder in ["INBOX", "Lavoro"] {
        assert_eq!(a[folder], b[folder], "{folder}: every message exactly once");
    }
    let times = proxy.throttled();
    assert!(times >= 2, "{times}");
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["status"], "in-sync", "{mb}");
    assert_eq!(mb["throttled"].as_u64().unwrap(), times, "{mb}");
    let waited = mb["throttled_seconds"].as_f64().unwrap();
    assert!(waited >= 1.5 * times as f64, "waits what it was told: {mb}");
    assert!(started.elapsed().as_secs_f64() >= 1.5 * times as f64);
    assert_eq!(
        mb["buckets"]["failed"],
        serde_json::json!({}),
        "nothing failed: {mb}"
    );
    assert_eq!(mb["buckets"]["copied"], 360, "{mb}");
    assert!(t.contains(&format!("throttled {times} time(s)")), "{t}");
    assert!(
        t.contains(&format!(
            "127.0.0.1:{} throttles: at most 2 mailbox(es) at a time against it (was 4)",
            proxy.port
        )),
        "fewer mailboxes against a throttling server: {t}"
    );
    assert!(
        t.contains(&format!(
            "127.0.0.1:{} throttles: at most 1 connection(s) per mailbox against it (was 2)",
            proxy.port
        )),
        "fewer connections per mailbox against a throttling server: {t}"
    );
}

/// `check` logs in to every mailbox on both sides and lists its folders, nothing else, and
/// says what stands in the way: a wrong password with the usual hint, and Exchange's
/// "authenticated but not connected" translated into the permission to grant.
#[tokio::test(flavor = "multi_thread")]
async fn check_logs_in_everywhere_and_translates_what_exchange_says() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    seed(&mut src, "INBOX", padded(5, 100)).await;
    let c = pair.alice_campaign(&pair.imap_side("source"), &pair.imap_side("target"), "");
    pair.write("accounts.csv",
        "source_user,source_password,target_user,target_password\nalice,alice-pw,alice,alice-pw\nbob,bob-pw,bob,not-bobs\n",
    );
    let out = pair.trasloco(&["check", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 12, "{t}");
    assert!(
        t.contains("alice@127.0.0.1 → alice@127.0.0.1: ok: both logins work"),
        "{t}"
    );
    assert!(
        t.contains("bob@127.0.0.1 → bob@127.0.0.1: FAILED target bob@127.0.0.1:")
            && t.contains("check the target user name and password"),
        "{t}"
    );
    assert!(
        t.contains("Checked 2 mailbox(es): 1 reachable on both sides, 1 failing."),
        "{t}"
    );
    assert_eq!(
        count(&pair, "target", "alice", "INBOX").await,
        0,
        "nothing copied"
    );

    let proxy = ExchangeProxy::start_with(
        pair.port("TARGET_IMAP_PORT"),
        Behaviour {
            not_connected: true,
            ..Behaviour::default()
        },
    );
    let c = through(&pair, proxy.port, "");
    let out = pair.trasloco(&["check", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 13, "{t}");
    assert!(
        t.contains("User is authenticated but not connected")
            && t.contains("Add-MailboxPermission")
            && t.contains("Enterprise application's Object ID"),
        "{t}"
    );
}

/// `provider = "microsoft365"`: from an Exchange source the folders that hold no mail stay
/// behind under their own rule; into an Exchange target a message over the limit fails before
/// upload with how to raise it, `$MDNSent` is never set (reported as dropped), and the
/// reserved `Files` folder gets another name. The plan warns of mail bound for Junk Email.
#[tokio::test(flavor = "multi_thread")]
async fn the_microsoft365_preset_on_both_sides() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    let mdn = Msg {
        flags: vec!["\\Seen", "$MDNSent"],
        ..msg(simple(1, "INBOX"))
    };
    seed(&mut src, "INBOX", vec![mdn, msg(simple(2, "INBOX"))]).await;
    seed(&mut src, "INBOX", padded(1, 1_500_000)).await;
    for folder in ["Calendar", "Contatti", "Posta in uscita"] {
        seed(&mut src, folder, vec![msg(simple(3, folder))]).await;
    }
    seed(&mut src, "Files", vec![msg(simple(4, "Files"))]).await;
    seed(&mut src, "Spam", vec![msg(simple(5, "Spam"))]).await;
    let c = pair.alice_campaign(
        &format!("{}provider = \"microsoft365\"\n", pair.imap_side("source")),
        &format!(
            "{}provider = \"microsoft365\"\nmax_message_mb = 1\n",
            pair.imap_side("target")
        ),
        "",
    );
    // The plan warns of mail that Exchange purges after it arrives.
    let out = pair.trasloco(&["plan", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(
        t.contains("1 message(s) in \"Spam\" go to Junk Email, and Exchange Online empties it after 30 days"),
        "{t}"
    );
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 2, "the large message failed: {t}");
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["buckets"]["skipped"]["folder-not-mail"], 3, "{mb}");
    assert_eq!(
        mb["buckets"]["failed"]["over the target's size limit"], 1,
        "{mb}"
    );
    assert!(t.contains("MaxReceiveSize"), "{t}");
    let dropped: u64 = mb["folders"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["dropped_keywords"]["$MDNSent"].as_u64())
        .sum();
    assert_eq!(dropped, 1, "{mb}");
    let mut tgt = pair.client("target", "alice").await;
    let snap = snapshot(&mut tgt).await;
    assert_eq!(snap["INBOX"].len(), 2);
    assert!(
        snap["INBOX"]
            .iter()
            .all(|(_, flags, _)| !flags.contains(&"$MDNSent".to_string()))
    );
    assert_eq!(snap["Files (migrated)"].len(), 1, "{:?}", snap.keys());
    assert!(!snap.contains_key("Calendar") && !snap.contains_key("Contatti"));
}

/// Exchange forgets `\Flagged` given with APPEND: into a `microsoft365` target, a flagged
/// message's flags are set again by STORE after it is stored.
#[tokio::test(flavor = "multi_thread")]
async fn flagged_is_stored_again_after_the_append_on_exchange() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    let flagged = |i| Msg {
        flags: vec!["\\Flagged", "\\Seen"],
        ..msg(simple(i, "INBOX"))
    };
    seed(
        &mut src,
        "INBOX",
        vec![flagged(1), msg(simple(2, "INBOX")), flagged(3)],
    )
    .await;
    let proxy = ExchangeProxy::start(pair.port("TARGET_IMAP_PORT"), std::time::Duration::ZERO);
    let c = into_exchange(&pair, proxy.port);
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let stores: Vec<String> = proxy
        .commands
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("UID STORE") && l.contains("\\Flagged"))
        .cloned()
        .collect();
    assert_eq!(stores.len(), 2, "{stores:?}");
    let mut tgt = pair.client("target", "alice").await;
    let (a, b) = (snapshot(&mut src).await, snapshot(&mut tgt).await);
    assert_eq!(a["INBOX"], b["INBOX"]);
}

/// Exchange Online ends a session after ten refused commands. Fourteen messages it refuses
/// (`BAD Command Argument Error. 11`, injected by the proxy) and one with a line over its
/// 10,500 characters: with the `microsoft365` preset no session reaches the limit (appends
/// go in small batches, a new session starts before the limit, a refused message is not sent
/// again in the run), every other message is copied exactly once, and each refused one is
/// failed with what Exchange's words mean. The next run tries them again, same outcome.
#[tokio::test(flavor = "multi_thread")]
async fn refused_messages_never_burn_an_exchange_session() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    let mut msgs: Vec<Msg> = (0..42)
        .map(|i| {
            let body = simple(i, "INBOX");
            msg(if i % 3 == 0 {
                [b"X-Refuse: yes\r\n".as_slice(), &body].concat()
            } else {
                body
            })
        })
        .collect();
    let long = format!(
        "Message-ID: <long@test.example>\r\nSubject: long line\r\n\r\n{}\r\n",
        "x".repeat(12_000)
    );
    msgs.push(msg(long));
    seed(&mut src, "INBOX", msgs).await;
    let proxy = ExchangeProxy::start_with(
        pair.port("TARGET_IMAP_PORT"),
        Behaviour {
            refuse_containing: Some("X-Refuse: yes".into()),
            error_limit: Some(10),
            exchange_caps: true,
            ..Behaviour::default()
        },
    );
    let c = into_exchange(&pair, proxy.port);
    for run in 1..=2 {
        let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
        let t = text(&out);
        assert_eq!(code(&out), 2, "run {run}: {t}");
        assert_eq!(
            proxy.error_closes.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "run {run}: no session reached Exchange's error limit: {t}"
        );
        let mb = &report(&pair, &out)["mailboxes"][0];
        let failed = &mb["buckets"]["failed"];
        let refused: u64 = failed
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.contains("Command Argument Error. 11"))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum();
        assert_eq!(refused, 14, "run {run}: {mb}");
        assert_eq!(
            failed["a line longer than the target takes"], 1,
            "run {run}: {mb}"
        );
        if run == 1 {
            assert_eq!(mb["buckets"]["copied"], 28, "{mb}");
        } else {
            assert_eq!(mb["buckets"]["already_present"], 28, "{mb}");
        }
        assert!(
            mb["session_resets"].as_u64().unwrap() >= 1,
            "run {run}: {mb}"
        );
        let reasons = mb["folders"][0]["errors"].to_string();
        assert!(reasons.contains("a line that is too long"), "{reasons}");
        assert!(
            reasons.contains("a line of 12000 characters, over the 10500"),
            "{reasons}"
        );
        assert!(
            t.contains("new sessions before the target's error limit"),
            "{t}"
        );
    }
    let mut tgt = pair.client("target", "alice").await;
    let (a, b) = (snapshot(&mut src).await, snapshot(&mut tgt).await);
    let copies: std::collections::BTreeSet<&String> = b["INBOX"].iter().map(|m| &m.0).collect();
    assert_eq!(copies.len(), 28, "every other message exactly once");
    assert_eq!(b["INBOX"].len(), 28, "every other message exactly once");
    assert!(copies.iter().all(|h| a["INBOX"].iter().any(|m| &&m.0 == h)));
}

/// A stop (Ctrl-C) while the run waits out a throttling server ends the wait at once: exit
/// 130, and the mailbox is reported incomplete with what it copied — never "in sync" because
/// the attempt after the wait reached no folder.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_while_throttled_reports_the_mailbox_incomplete() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    seed(&mut src, "INBOX", padded(60, 200)).await;
    let proxy = ExchangeProxy::start_with(
        pair.port("TARGET_IMAP_PORT"),
        Behaviour {
            throttle_every: Some(3),
            backoff_ms: 120_000,
            ..Behaviour::default()
        },
    );
    let c = through(&pair, proxy.port, "batch_messages = 10");
    let child = command(pair.dir.path(), "", "")
        .args(["--no-progress", "run", &c])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while proxy.throttled() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert_eq!(code(&out), 130, "{t}");
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["status"], "incomplete", "{mb}");
    assert!(
        mb["error"].as_str().unwrap().contains("stopped by Ctrl-C"),
        "{mb}"
    );
    assert_eq!(
        mb["buckets"]["copied"].as_u64().unwrap(),
        u64::from(count(&pair, "target", "alice", "INBOX").await),
        "every copy made is counted: {mb}"
    );
    assert!(mb["buckets"]["copied"].as_u64().unwrap() > 0, "{mb}");
    let waited = mb["throttled_seconds"].as_f64().unwrap();
    assert!(waited < 60.0, "only the time waited counts: {mb}");
}
