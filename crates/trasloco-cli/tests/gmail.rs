//! Gmail as a source and as a target. No Gmail runs here: the source is the real Dovecot with
//! a test double in front of it (`Behaviour::gmail`) that speaks Gmail's IMAP extension
//! (X-GM-EXT-1, X-GM-MSGID, the `\All` `\Flagged` `\Important` views), on 127.0.0.1 only.

mod support;

use support::*;

/// The source through the test double (plain IMAP on 127.0.0.1), Gmail's preset.
fn gmail_source(port: u16) -> String {
    format!("{}provider = \"gmail\"\n", plain_side(port))
}

/// A message Gmail shows under three labels (INBOX, a label, All Mail) and starred arrives
/// once, in the first of its folders; a message only in All Mail (archived) arrives in All
/// Mail. The others are counted under `copied-under-another-label`, the buckets add up, a
/// second run copies nothing, and verification finds nothing missing. Starred and Important,
/// which take none of their messages, are not made on the target. A run of All Mail alone
/// (a phase) still leaves out what belongs to the INBOX. Without `provider`, the preset is
/// found by the source's capabilities.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_under_several_labels_is_copied_once() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    let m = |i: usize| msg(simple(i, "gmail"));
    // 0,1: INBOX; 0 also "Progetti"; 2: "Progetti" only; 3: archived (All Mail only);
    // 2 starred, 0 important.
    seed(&mut src, "INBOX", vec![m(0), m(1)]).await;
    seed(&mut src, "Progetti", vec![m(0), m(2)]).await;
    seed(&mut src, "[Gmail]/All Mail", vec![m(0), m(1), m(2), m(3)]).await;
    seed(&mut src, "[Gmail]/Starred", vec![m(2)]).await;
    seed(&mut src, "[Gmail]/Important", vec![m(0)]).await;
    let proxy = ExchangeProxy::start_with(
        pair.port("SOURCE_IMAP_PORT"),
        Behaviour {
            gmail: true,
            ..Behaviour::default()
        },
    );

    // All Mail alone first, as a phase that defers the rest would.
    let c = pair.alice_campaign(&gmail_source(proxy.port), &pair.imap_side("target"), "");
    let first = std::fs::read_to_string(&c).unwrap().replace(
        "[accounts]",
        "[folders]\ndefer = [\"INBOX\", \"Progetti\", \"[Gmail]/Starred\", \"[Gmail]/Important\"]\n\n[accounts]",
    );
    std::fs::write(&c, first).unwrap();
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    let all_mail = target_name("[Gmail]/All Mail");
    assert_eq!(
        count(&pair, "target", "alice", &all_mail).await,
        1,
        "only the archived message belongs to All Mail: {t}"
    );

    // Then everything, the preset found by what the source says of itself.
    let c = pair.alice_campaign(&plain_side(proxy.port), &pair.imap_side("target"), "");
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(
        t.contains(&format!(
            "source 127.0.0.1:{} says \"X-GM-EXT-1\": provider = \"gmail\" applied",
            proxy.port
        )),
        "{t}"
    );
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["status"], "in-sync", "{mb}");
    let b = &mb["buckets"];
    assert_eq!(b["copied"], 3, "{mb}");
    assert_eq!(b["already_present"], 1, "{mb}");
    assert_eq!(b["skipped"]["copied-under-another-label"], 6, "{mb}");
    assert_eq!(folder_sum(mb, "source_messages"), 10, "{mb}");
    for (folder, n) in [
        ("INBOX", 2),
        ("Progetti", 1),
        ("[Gmail]/All Mail", 1),
        ("[Gmail]/Starred", 0),
        ("[Gmail]/Important", 0),
    ] {
        assert_eq!(
            count(&pair, "target", "alice", &target_name(folder)).await,
            n,
            "{folder}: {mb}"
        );
    }

    // Starred and Important take none of their messages: they are not made on the target.
    let names = folder_names(&pair, "target", "alice").await;
    assert!(
        !names
            .iter()
            .any(|n| n.contains("Starred") || n.contains("Important")),
        "{names:?}"
    );

    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        mb["buckets"]["copied"], 0,
        "a second run copies nothing: {mb}"
    );
    assert_eq!(mb["buckets"]["already_present"], 4, "{mb}");

    let out = pair.trasloco(&["verify", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "verification finds nothing missing: {t}");
    assert!(t.contains("copied-under-another-label"), "{t}");
}

/// Into a target with a daily upload cap (Gmail's 500 MB, here 10 kB): a run stops the
/// mailbox cleanly at the cap, incomplete (exit 2), saying the day it can go on; a second
/// run the same day sends nothing; a run with room (the next day, here a larger cap) finishes
/// with every message exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn the_daily_upload_cap_stops_a_mailbox_until_the_next_day() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    seed(&mut src, "INBOX", padded(30, 900)).await;
    let capped = |mb: &str| {
        pair.alice_campaign(
            &pair.imap_side("source"),
            &format!(
                "{}provider = \"gmail\"\ndaily_upload_mb = {mb}\n",
                pair.imap_side("target")
            ),
            "batch_messages = 3",
        )
    };
    let c = capped("0.01");
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["status"], "incomplete", "{mb}");
    let line = mb["error"].as_str().unwrap();
    assert!(
        line.contains(&format!(
            "daily upload cap of 10000 bytes is reached for {today}"
        )) && line.contains("or later"),
        "{line}"
    );
    assert!(
        t.contains("1 mailbox(es) reached the target's daily upload cap"),
        "the summary says why and when: {t}"
    );
    let first = count(&pair, "target", "alice", "INBOX").await;
    assert!(first > 0 && first < 30, "{first}");
    assert!(mb["bytes_copied"].as_u64().unwrap() <= 10_000, "{mb}");

    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert_eq!(
        count(&pair, "target", "alice", "INBOX").await,
        first,
        "the day's cap is used up: nothing more today"
    );

    let c = capped("1");
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let mut tgt = pair.client("target", "alice").await;
    let (a, b) = (snapshot(&mut src).await, snapshot(&mut tgt).await);
    assert_eq!(a["INBOX"], b["INBOX"], "every message exactly once");
}

/// Into a target that merges by Message-ID, as Gmail does: a second message with a
/// Message-ID the account holds (a duplicate in the INBOX, the Sent copy of a message also
/// received) is stored as the message already there. The run counts it as already present,
/// never as altered or missing; the mailbox is in sync (exit 0), a second run copies nothing,
/// and verification finds nothing missing.
#[tokio::test(flavor = "multi_thread")]
async fn messages_gmail_merges_by_message_id_are_present_not_altered() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    let m = |i: usize| simple(i, "gmail");
    let other = |i: usize| {
        let text = String::from_utf8(m(i)).unwrap();
        text.replace("Body of message", "Another copy of message")
            .into_bytes()
    };
    seed(&mut src, "INBOX", vec![msg(m(0)), msg(other(0)), msg(m(1))]).await;
    seed(&mut src, "Posta inviata", vec![msg(other(1))]).await;
    let proxy = ExchangeProxy::start_with(
        pair.port("TARGET_IMAP_PORT"),
        Behaviour {
            gmail_merge: true,
            ..Behaviour::default()
        },
    );
    let c = pair.alice_campaign(
        &pair.imap_side("source"),
        &format!("{}provider = \"gmail\"\n", plain_side(proxy.port)),
        "",
    );
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["status"], "in-sync", "{mb}");
    assert_eq!(mb["buckets"]["copied"], 2, "{mb}");
    assert_eq!(mb["buckets"]["already_present"], 2, "{mb}");
    assert_eq!(mb["buckets"]["altered"], 0, "{mb}");
    let merged: u64 = mb["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["merged"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(merged, 2, "{mb}");
    assert_eq!(count(&pair, "target", "alice", "INBOX").await, 2);
    assert_eq!(count(&pair, "target", "alice", "Sent").await, 1);

    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(mb["buckets"]["copied"], 0, "{mb}");
    assert_eq!(mb["buckets"]["already_present"], 4, "{mb}");

    let out = pair.trasloco(&["verify", &c], "", "");
    assert_eq!(code(&out), 0, "nothing missing: {}", text(&out));
}
