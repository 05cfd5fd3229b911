//! Exchange Online's behaviour in front of a real Dovecot target (the proxy in the test
//! support is a test double: no Exchange exists to test against): throttled APPENDs slow the
//! run down and never fail it.

mod support;

use support::*;

/// A campaign of alice through the proxy, passwords on both sides.
fn through(pair: &Pair, proxy_port: u16, run: &str) -> String {
    pair.write(
        "accounts.csv",
        "source_user,source_password,target_user,target_password\nalice,alice-pw,alice,alice-pw\n",
    );
    pair.write(
        "campaign.toml",
        &format!(
            r#"[source]
host = "127.0.0.1"
port = {sp}
tls = "starttls"
ca_file = "{ca}"

[target]
host = "127.0.0.1"
port = {proxy_port}
tls = "none"

[accounts]
file = "accounts.csv"

[run]
state = "state.sqlite"
reports = "reports"
{run}
"#,
            sp = pair.port("SOURCE_IMAP_PORT"),
            ca = pair.ca().display(),
        ),
    )
}

/// Every fifteenth APPEND is answered with Exchange's throttling sentence and a backoff of
/// 1.5 s: the run waits at least that each time, resumes from the state, completes with every
/// message exactly once and exit 0, and the report says how often and how long it waited. The
/// mailboxes allowed against that server at once are halved.
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
}

/// `check` logs in to every mailbox on both sides and lists its folders, nothing else, and
/// says what stands in the way: a wrong password with the usual hint, and Exchange's
/// "authenticated but not connected" translated into the permission to grant.
#[tokio::test(flavor = "multi_thread")]
async fn check_logs_in_everywhere_and_translates_what_exchange_says() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    seed(&mut src, "INBOX", padded(5, 100)).await;
    let c = through(&pair, pair.port("TARGET_IMAP_PORT"), "");
    pair.write("accounts.csv",
        "source_user,source_password,target_user,target_password\nalice,alice-pw,alice,alice-pw\nbob,bob-pw,bob,not-bobs\n",
    );
    let campaign = std::fs::read_to_string(&c).unwrap().replace(
        "tls = \"none\"",
        &format!("tls = \"starttls\"\nca_file = \"{}\"", pair.ca().display()),
    );
    std::fs::write(&c, campaign).unwrap();
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
    let c = through(&pair, pair.port("TARGET_IMAP_PORT"), "");
    let text_of = std::fs::read_to_string(&c).unwrap();
    let text_of = text_of
        .replacen(
            "ca_file = \"",
            "provider = \"microsoft365\"\nca_file = \"",
            1,
        )
        .replace(
            "tls = \"none\"",
            &format!(
                "tls = \"starttls\"\nca_file = \"{}\"\nprovider = \"microsoft365\"\nmax_message_mb = 1",
                pair.ca().display()
            ),
        );
    std::fs::write(&c, text_of).unwrap();
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
    let c = through(&pair, proxy.port, "");
    let file = std::fs::read_to_string(&c).unwrap().replace(
        "tls = \"none\"",
        "tls = \"none\"\nprovider = \"microsoft365\"",
    );
    std::fs::write(&c, file).unwrap();
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
