//! PEC mailboxes through the real Dovecot pair: `pec report` on a mailbox full of generated
//! PEC messages (every verdict and the linking gaps), a migration that checks each PEC
//! signature before upload and on the read-back copy and writes the evidence manifest, the
//! same verdicts at the target, `pec verify-manifest` passing and then catching a message the
//! test removed, and the report of an archive of the mailbox.

mod support;

use support::*;
use trasloco_pec::Kind;
use trasloco_pec::testkit::{Pki, Spec, sent_copy};

fn report_json(pair: &Pair, args: &[&str]) -> (i32, serde_json::Value) {
    let out = pair.trasloco(args, "alice-pw", "alice-pw");
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    let v = serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (code(&out), v)
}

#[tokio::test(flavor = "multi_thread")]
async fn pec_mailboxes_report_migrate_and_keep_their_evidence() {
    let pair = Pair::start();
    let pki = Pki::new();
    let root = pair.dir.path().join("test-root.pem");
    std::fs::write(&root, &pki.root_pem).unwrap();
    let root = root.display().to_string();

    // Sending 1: accepted, delivered to one recipient, not delivered to the other.
    let s1 = Spec::new(Kind::Acceptance, 1);
    let mut s1_ok = s1.clone();
    s1_ok.kind = Kind::DeliveryComplete;
    let mut s1_ko = s1.clone();
    s1_ko.kind = Kind::NonDelivery;
    s1_ko.consegna = Some("protocollo@pec.gamma.example".into());
    // Sending 2: accepted, one delivery only (a gap), receipts signed with SHA-1.
    let s2 = Spec::new(Kind::Acceptance, 2);
    let mut s2_ok = s2.clone();
    s2_ok.kind = Kind::DeliverySynthetic;
    // Sending 3: an old one, signed in 2018 by a certificate expired since.
    let s3 = Spec::new(Kind::Acceptance, 3);
    let mut s3_ok = s3.clone();
    s3_ok.kind = Kind::DeliveryShort;
    s3_ok.recipients.truncate(1);
    let mut s3_acc = s3.clone();
    s3_acc.recipients.truncate(1);
    // A received envelope, one from a provider nobody trusts, one altered, an anomaly.
    let envelope = pki.current.message(&Spec::new(Kind::TransportEnvelope, 4));
    let rogue = pki.rogue.message(&Spec::new(Kind::TransportEnvelope, 5));
    let altered = String::from_utf8(pki.current.message(&Spec::new(Kind::TransportEnvelope, 6)))
        .unwrap()
        .replacen("l'offerta.  \r\n", "l'offerta!  \r\n", 1)
        .into_bytes();
    let anomaly = pki.current.message(&Spec::new(Kind::AnomalyEnvelope, 7));
    // Over 1 MiB: streamed to the target, and still checked as evidence.
    let mut big = Spec::new(Kind::TransportEnvelope, 8);
    big.pad = 1_500_000;
    let big = pki.current.message(&big);
    assert!(big.len() > 1_500_000);
    let inbox: Vec<Vec<u8>> = vec![
        pki.current.message(&s1),
        pki.current.message(&s1_ok),
        pki.current.message(&s1_ko),
        pki.sha1.message(&s2),
        pki.sha1.message(&s2_ok),
        pki.expired.message(&s3_acc),
        pki.expired.message(&s3_ok),
        envelope,
        rogue,
        altered,
        anomaly,
        big,
        b"From: a@b.example\r\nSubject: ordinary\r\n\r\nhello\r\n".to_vec(),
    ];
    let sent: Vec<Vec<u8>> = vec![
        sent_copy(&s1),
        sent_copy(&s2),
        sent_copy(&s3),
        sent_copy(&Spec::new(Kind::Ordinary, 9)),
    ];
    let mut c = pair.client("source", "alice").await;
    seed(&mut c, "INBOX", inbox.into_iter().map(msg).collect()).await;
    seed(&mut c, "Posta inviata", sent.into_iter().map(msg).collect()).await;
    let url = pair.url("source", "alice");
    let ca = pair.ca().display().to_string();

    // 1. The report on the source mailbox.
    let args = |u: &str| {
        vec![
            "pec".to_string(),
            "report".into(),
            u.to_string(),
            "--trust".into(),
            root.clone(),
            "--no-system-trust".into(),
            "--ca-file".into(),
            ca.clone(),
            "--json".into(),
        ]
    };
    let a = args(&url);
    let (code_src, v) = report_json(&pair, &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code_src, 2, "a broken signature is exit 2");
    let m = &v["mailboxes"][0];
    assert_eq!(m["messages"], 17);
    assert_eq!(m["pec_messages"], 12);
    let sig = &m["by_signature"];
    assert_eq!(sig["valid"], 8, "{sig}");
    assert_eq!(sig["valid-at-signing-time"], 2, "{sig}");
    assert_eq!(sig["untrusted"], 1, "{sig}");
    assert_eq!(sig["broken"], 1, "{sig}");
    assert_eq!(
        m["sha1"], 4,
        "SHA-1: the two receipts of sending 2 and the two old ones"
    );
    let kinds = &m["by_kind"];
    assert_eq!(kinds["acceptance"], 3);
    assert_eq!(kinds["transport-envelope"], 4);
    assert_eq!(kinds["ordinary"], 5);
    assert_eq!(m["transactions"], 3);
    let gaps: Vec<String> = m["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["gap"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = gaps.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            "anomaly",
            "recipient-without-outcome",
            "sent-without-acceptance"
        ],
        "{}",
        m["gaps"]
    );
    // Issue 18, point 8: one inventory row per PEC message, with what daticert.xml says.
    let inv = m["inventory"].as_array().unwrap();
    assert_eq!(inv.len(), 12);
    let acc = inv
        .iter()
        .find(|r| r["kind"] == "acceptance" && r["verdict"] == "valid")
        .unwrap();
    assert_eq!(acc["sender"], "ufficio@pec.alfa.example", "{acc}");
    assert!(
        acc["identifier"].as_str().unwrap().starts_with("opec1."),
        "{acc}"
    );
    assert!(
        acc["recipients"][0]
            .as_str()
            .unwrap()
            .contains("(certificato)"),
        "{acc}"
    );
    assert!(
        acc["provider"].is_string() && acc["date"].is_string(),
        "{acc}"
    );
    assert!(
        acc["signer"].is_string() && acc["signing_time"].is_string(),
        "{acc}"
    );
    assert_eq!(acc["message_id"], "<client-1@client.alfa.example>", "{acc}");
    let csv = std::fs::read_to_string(pair.dir.path().join("trasloco-reports/pec-inventory.csv"))
        .unwrap();
    assert!(
        csv.starts_with("source,location,folder,uid,type,verdict,signer,signing_time,sha1,sender")
    );
    assert_eq!(csv.lines().count(), 13, "a header and 12 rows");
    for f in ["pec-report.html", "pec-report.csv", "pec-report.json"] {
        assert!(
            pair.dir.path().join("trasloco-reports").join(f).exists(),
            "{f}"
        );
    }

    // 2. Migrate: every PEC signature checked before upload and on the copy; the manifest.
    let out = pair.migrate("alice", &["--pec-trust", &root]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    // Issue 18, point 9: the run says what it did with PEC messages, by verdict, and names
    // the broken one.
    let t = text(&out);
    assert!(
        t.contains("PEC: 12 messages: 1 broken, 1 untrusted, 8 valid, 2 valid-at-signing-time"),
        "{t}"
    );
    assert!(t.contains("PEC signature broken (copied as it is, recorded as broken): INBOX UID 10 (transport-envelope opec6."), "{t}");
    assert!(
        t.contains("PEC messages copied and checked: 12 messages"),
        "{t}"
    );
    let r = report(&pair, &out);
    assert_eq!(r["pec"]["broken"], 1, "{r}");
    assert_eq!(r["mailboxes"][0]["pec"]["valid"], 8, "{r}");
    let manifest = pair.dir.path().join("trasloco-reports/pec-evidence.jsonl");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&manifest)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        12,
        "one line per PEC message, the streamed one too"
    );
    for l in &lines {
        assert_eq!(l["before"], l["after"], "{l}");
        assert_eq!(l["source"], "alice@127.0.0.1");
    }
    assert!(
        lines.iter().any(|l| l["before"] == "broken"),
        "the altered one stays recorded as it was"
    );

    // 3. The same verdicts at the target.
    let a = args(&pair.url("target", "alice"));
    let (_, t) = report_json(&pair, &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(t["mailboxes"][0]["by_signature"], *sig);
    assert_eq!(t["mailboxes"][0]["gaps"].as_array().unwrap().len(), 3);

    // 4. The manifest against the target: as recorded; then a removed message is caught.
    let check = |pair: &Pair| {
        pair.trasloco(
            &[
                "pec",
                "verify-manifest",
                &manifest.display().to_string(),
                "--against",
                &pair.url("target", "alice"),
                "--trust",
                &root,
                "--ca-file",
                &ca,
            ],
            "",
            "alice-pw",
        )
    };
    let out = check(&pair);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("12 of 12 manifest lines checked: 12 as recorded, 0 differ"),
        "{}",
        text(&out)
    );
    pair.doveadm(
        "target",
        &[
            "expunge",
            "-u",
            "alice",
            "mailbox",
            "INBOX",
            "HEADER",
            "X-Ricevuta",
            "errore-consegna",
        ],
    );
    let out = check(&pair);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("not found"), "{}", text(&out));
    assert!(text(&out).contains("1 differ"), "{}", text(&out));

    // 5. A campaign reports every source mailbox.
    std::fs::write(
        pair.dir.path().join("accounts.csv"),
        "source_user,source_password,target_user,target_password\nalice,alice-pw,alice,alice-pw\n",
    )
    .unwrap();
    std::fs::write(
        pair.dir.path().join("campaign.toml"),
        format!(
            "[source]\nhost = \"127.0.0.1\"\nport = {}\nca_file = \"{ca}\"\n[target]\nhost = \"127.0.0.1\"\nport = {}\nca_file = \"{ca}\"\n[accounts]\nfile = \"accounts.csv\"\n",
            pair.port("SOURCE_IMAP_PORT"),
            pair.port("TARGET_IMAP_PORT")
        ),
    )
    .unwrap();
    let a = args("campaign.toml");
    let (_, cv) = report_json(&pair, &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(cv["mailboxes"][0]["by_signature"], *sig);

    // 6. An archive of the source mailbox reports the same.
    let out = pair.trasloco(
        &[
            "--no-progress",
            "archive",
            "export",
            "--from",
            &url,
            "--to",
            "maildir:backup",
            "--ca-file",
            &ca,
            "--no-pec",
        ],
        "alice-pw",
        "",
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let a = args(&pair.dir.path().join("backup").display().to_string());
    let (_, b) = report_json(&pair, &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(b["mailboxes"][0]["by_signature"], *sig);
    assert_eq!(b["mailboxes"][0]["messages"], 17);
    // An archive's messages are named by their files.
    let backup = pair.dir.path().join("backup").display().to_string();
    for n in b["mailboxes"][0]["notes"].as_array().unwrap() {
        let at = n["location"].as_str().unwrap();
        assert!(at.starts_with(&backup), "{at}");
    }
    for r in b["mailboxes"][0]["inventory"].as_array().unwrap() {
        assert!(r["location"].as_str().unwrap().starts_with(&backup), "{r}");
    }
}

/// Issue 18, point 3: every streamed PEC message (over 1 MiB) gets its evidence line, in two
/// folders copied at once, however the first pieces of its header arrive. These carry a long
/// trail of `Received:` fields before their PEC headers, so no first read holds the whole
/// header.
#[tokio::test(flavor = "multi_thread")]
async fn every_large_pec_message_gets_its_evidence_line() {
    let pair = Pair::start();
    let pki = Pki::new();
    let root = pair.dir.path().join("test-root.pem");
    std::fs::write(&root, &pki.root_pem).unwrap();
    let trail: String = (0..1500)
        .map(|i| {
            format!("Received: from relay{i}.pec.example by mx.pec.example; Tue, 1 Dec 2026 10:00:00 +0100\r\n")
        })
        .collect();
    let big = |n: u32| {
        let mut spec = Spec::new(Kind::TransportEnvelope, n);
        spec.pad = 1_200_000;
        let mut m = trail.clone().into_bytes();
        m.extend(pki.current.message(&spec));
        assert!(m.len() > 1 << 20);
        msg(m)
    };
    let mut c = pair.client("source", "alice").await;
    seed(&mut c, "INBOX", (1..=4).map(big).collect()).await;
    seed(&mut c, "Archivio", (5..=8).map(big).collect()).await;
    c.logout().await;
    let out = pair.migrate("alice", &["--pec-trust", &root.display().to_string()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let r = report(&pair, &out);
    assert_eq!(r["mailboxes"][0]["buckets"]["copied"], 8, "{r}");
    assert_eq!(folder_sum(&r["mailboxes"][0], "verified"), 8, "{r}");
    let manifest = pair.dir.path().join("trasloco-reports/pec-evidence.jsonl");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&manifest)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8, "one evidence line per PEC message");
    for l in &lines {
        assert_eq!(l["before"], "valid", "{l}");
        assert_eq!(l["after"], "valid", "{l}");
    }
}

/// Issue 18, points 5–7: `pec verify-manifest` records and checks where each line was made
/// (server, port, account, folder UIDVALIDITY) and refuses to check nothing; a later line for
/// the same message supersedes the earlier one; a changed copy gets its signature's verdict now.
#[tokio::test(flavor = "multi_thread")]
async fn verify_manifest_judges_the_latest_line_where_it_was_made() {
    let pair = Pair::start();
    let pki = Pki::new();
    let root = pair.dir.path().join("test-root.pem");
    std::fs::write(&root, &pki.root_pem).unwrap();
    let root = root.display().to_string();
    let ca = pair.ca().display().to_string();
    let mut c = pair.client("source", "alice").await;
    let msgs = (1..=3)
        .map(|n| msg(pki.current.message(&Spec::new(Kind::Acceptance, n))))
        .collect();
    seed(&mut c, "INBOX", msgs).await;
    c.logout().await;
    let out = pair.migrate("alice", &["--pec-trust", &root]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let manifest = pair.dir.path().join("trasloco-reports/pec-evidence.jsonl");
    let m = manifest.display().to_string();
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&manifest)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        first["target_port"],
        pair.port("TARGET_IMAP_PORT"),
        "{first}"
    );
    assert!(
        first["target_uid_validity"].as_u64().unwrap() > 0,
        "{first}"
    );
    let check = |user: &str| {
        pair.trasloco(
            &[
                "pec",
                "verify-manifest",
                &m,
                "--against",
                &pair.url("target", user),
                "--trust",
                &root,
                "--ca-file",
                &ca,
            ],
            "",
            &format!("{user}-pw"),
        )
    };
    let out = check("alice");
    assert_eq!(code(&out), 0, "{}", text(&out));

    // Another account: nothing of the manifest is there, which is said, not "0 checked, OK".
    let out = check("bob");
    assert_eq!(code(&out), 64, "{}", text(&out));
    assert!(
        text(&out)
            .contains("records copies on alice@127.0.0.1, but it is checked against bob@127.0.0.1"),
        "{}",
        text(&out)
    );
    // An empty manifest checks nothing.
    let empty = pair.dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = pair.trasloco(
        &[
            "pec",
            "verify-manifest",
            &empty.display().to_string(),
            "--against",
            &pair.url("target", "alice"),
            "--ca-file",
            &ca,
        ],
        "",
        "alice-pw",
    );
    assert_eq!(code(&out), 64, "{}", text(&out));
    assert!(
        text(&out).contains("holds no evidence line"),
        "{}",
        text(&out)
    );

    // Expunged on the target, copied again by a repairing run (`--full-compare`: the source did
    // not change, so a plain run would not look at the target): the new line supersedes.
    pair.doveadm(
        "target",
        &["expunge", "-u", "alice", "mailbox", "INBOX", "uid", "1"],
    );
    let out = check("alice");
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("--full-compare"), "{}", text(&out));
    let out = pair.migrate("alice", &["--pec-trust", &root, "--full-compare"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = check("alice");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("3 of 3 manifest lines checked: 3 as recorded, 0 differ. (4 lines in the file: 1 superseded"),
        "{}",
        text(&out)
    );

    // One byte of a signed part changed on the target: bytes differ, and the verdict now.
    let maildir = pair.dir.path().join("target/home/alice/Maildir");
    let file = ["cur", "new"]
        .iter()
        .flat_map(|d| std::fs::read_dir(maildir.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .contains("Offerta n. 2/2026")
        })
        .expect("the copy of sending 2");
    // The last mention is inside the signed part (the first is the unsigned Subject:).
    let text_of = std::fs::read_to_string(&file).unwrap();
    let at = text_of.rfind("Offerta n. 2/2026").unwrap();
    let changed = format!("{}Offerta n. 7/2026{}", &text_of[..at], &text_of[at + 17..]);
    std::fs::write(&file, changed).unwrap();
    let out = check("alice");
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        text(&out).contains("the signature is broken now (recorded valid)"),
        "{}",
        text(&out)
    );
}
