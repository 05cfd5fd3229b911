//! Local archives through `trasloco archive export|import|verify`, against real Dovecot.

mod support;

use std::path::{Path, PathBuf};
use support::*;

/// The Italian mailbox plus messages that stress archive formats: `From ` at the start of body
/// lines (quoted and not), dot-lines, no final line end.
fn archive_mailbox() -> Vec<(&'static str, Vec<Msg>)> {
    let mut m = italian_mailbox();
    let tricky = [
        b"Message-ID: <from@x>\r\nSubject: from lines\r\n\r\nFrom the start of a line.\r\n>From quoted once\r\n>>From quoted twice\r\n\r\nFrom MAILER-DAEMON Tue Mar  5 07:07:06 2019\r\n".to_vec(),
        b"Message-ID: <dots@x>\r\nSubject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n".to_vec(),
        b"Message-ID: <nofinal@x>\r\nSubject: no final line end\r\n\r\nlast line".to_vec(),
    ];
    m[0].1.extend(tricky.into_iter().map(|b| Msg {
        body: b,
        flags: vec!["\\Seen", "Lavoro"],
        date: Some("05-Mar-2019 08:07:06 +0100"),
    }));
    m
}

fn export(
    pair: &Pair,
    user: &str,
    format: &str,
    dir: &Path,
    extra: &[&str],
) -> std::process::Output {
    let pw = format!("{user}-pw");
    let state = pair
        .dir
        .path()
        .join(format!("export-{user}-{format}.sqlite"));
    run(command(pair.dir.path(), &pw, "")
        .args(["--no-progress", "archive", "export", "--format", format])
        .args(["--from", &pair.url("source", user)])
        .arg("--to")
        .arg(dir)
        .arg("--state")
        .arg(state)
        .arg("--ca-file")
        .arg(pair.ca())
        .args(extra))
}

fn import(pair: &Pair, from: &Path, user: &str, extra: &[&str]) -> std::process::Output {
    let pw = format!("{user}-pw");
    let state = pair.dir.path().join(format!("import-{user}.sqlite"));
    run(command(pair.dir.path(), "", &pw)
        .args(["--no-progress", "archive", "import", "--from"])
        .arg(from)
        .args(["--to", &pair.url("target", user)])
        .arg("--state")
        .arg(state)
        .arg("--ca-file")
        .arg(pair.ca())
        .args(extra))
}

fn verify(pair: &Pair, dir: &Path) -> std::process::Output {
    run(command(pair.dir.path(), "", "")
        .args(["archive", "verify"])
        .arg(dir))
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_to_archive_to_imap_is_byte_identical_in_every_format() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    for (folder, msgs) in archive_mailbox() {
        seed(&mut src, folder, msgs).await;
    }
    let source = snapshot(&mut src).await;
    let total: usize = source.values().map(Vec::len).sum();
    for (format, user) in [("maildir", "bob"), ("mbox", "carol"), ("eml", "dave")] {
        let dir = pair.dir.path().join(format!("backup-{format}"));
        let out = export(&pair, "alice", format, &dir, &[]);
        assert_eq!(code(&out), 0, "{format}: {}", text(&out));
        let mb = &report(&pair, &out)["mailboxes"][0];
        assert_eq!(mb["buckets"]["copied"], total as u64, "{format}");
        assert_eq!(folder_sum(mb, "verified"), total as u64, "{format}");
        let out = verify(&pair, &dir);
        assert_eq!(code(&out), 0, "{format}: {}", text(&out));
        assert!(text(&out).contains(&format!("{total} of {total} messages intact")));

        // Unchanged re-export: nothing fetched.
        let out = export(&pair, "alice", format, &dir, &[]);
        assert_eq!(code(&out), 0, "{format}: {}", text(&out));
        let mb = &report(&pair, &out)["mailboxes"][0];
        assert_eq!(mb["buckets"]["copied"], 0);
        assert_eq!(folder_sum(mb, "bodies_fetched"), 0);

        // Back into a server: same bytes, flags, dates, under the target's folder names.
        let out = import(&pair, &dir, user, &[]);
        assert_eq!(code(&out), 0, "{format}: {}", text(&out));
        let mb = &report(&pair, &out)["mailboxes"][0];
        assert_eq!(mb["buckets"]["copied"], total as u64);
        assert_eq!(mb["source"], format!("{format}:{}", dir.display()));
        let mut tgt = pair.client("target", user).await;
        let target = snapshot(&mut tgt).await;
        for (name, msgs) in &source {
            assert_eq!(
                target.get(&target_name(name)),
                Some(msgs),
                "{format}: folder {name}"
            );
        }
        let out = import(&pair, &dir, user, &[]);
        let mb = &report(&pair, &out)["mailboxes"][0];
        assert_eq!(
            mb["buckets"]["copied"], 0,
            "{format}: re-import is incremental"
        );
        assert_eq!(mb["buckets"]["already_present"], total as u64);
    }
    // The mbox is an ordinary mboxrd file other programs read: flags in Status headers, body
    // lines starting with "From " quoted.
    let mbox = std::fs::read(pair.dir.path().join("backup-mbox/INBOX.mbox")).unwrap();
    let text = String::from_utf8_lossy(&mbox);
    assert!(text.starts_with("From MAILER-DAEMON "));
    assert!(text.contains("\nStatus: RO\nX-Keywords: Lavoro\n"));
    assert!(
        text.contains("\n>From the start of a line.\n>>From quoted once\n>>>From quoted twice\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_export_and_killed_import_resume_with_every_message_once() {
    let pair = Pair::start();
    let mut src = pair.client("source", "erin").await;
    seed(&mut src, "INBOX", padded(400, 2000)).await;
    let dir = pair.dir.path().join("backup");
    let manifest = dir.join("trasloco-manifest.jsonl");
    let pw = "erin-pw";
    let mut child = command(pair.dir.path(), pw, "")
        .args(["--no-progress", "archive", "export", "--format", "mbox"])
        .args([
            "--from",
            &pair.url("source", "erin"),
            "--batch-messages",
            "5",
        ])
        .arg("--ca-file")
        .arg(pair.ca())
        .arg("--to")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&manifest)
        .map(|s| s.lines().count())
        .unwrap_or(0)
        < 60
        && std::time::Instant::now() < deadline
    {
        assert!(child.try_wait().unwrap().is_none(), "export ended too soon");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = export(&pair, "erin", "mbox", &dir, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let mb = &report(&pair, &out)["mailboxes"][0];
    let copied = mb["buckets"]["copied"].as_u64().unwrap();
    let present = mb["buckets"]["already_present"].as_u64().unwrap();
    assert_eq!(copied + present, 400);
    assert!(copied > 0 && present >= 50, "{copied} + {present}");
    let out = verify(&pair, &dir);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("400 of 400 messages intact"),
        "{}",
        text(&out)
    );

    // Import, killed half-way, then resumed.
    let mut child = command(pair.dir.path(), "", pw)
        .args([
            "--no-progress",
            "archive",
            "import",
            "--batch-messages",
            "5",
            "--from",
        ])
        .arg(&dir)
        .args(["--to", &pair.url("target", "erin")])
        .arg("--ca-file")
        .arg(pair.ca())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_target(&pair, "erin", 50, &mut child).await;
    child.kill().unwrap();
    child.wait().unwrap();
    pair.wait_sessions_closed("target", "erin");
    let out = run(command(pair.dir.path(), "", pw)
        .args(["--no-progress", "archive", "import", "--from"])
        .arg(&dir)
        .args(["--to", &pair.url("target", "erin")])
        .arg("--ca-file")
        .arg(pair.ca()));
    assert_eq!(code(&out), 0, "{}", text(&out));
    let mut tgt = pair.client("target", "erin").await;
    let target = snapshot(&mut tgt).await;
    let source = snapshot(&mut src).await;
    assert_eq!(
        target["INBOX"], source["INBOX"],
        "every message exactly once"
    );
}

fn write(path: &Path, data: &[u8]) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
    path.to_path_buf()
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_and_damaged_archives_are_imported_as_far_as_they_go() {
    let pair = Pair::start();
    let root = pair.dir.path().join("thunderbird");
    // A Thunderbird profile folder: LF line ends, mboxo quoting, a body line starting with
    // "From " that is not a separator, a subfolder in Name.sbd, an index file to ignore.
    write(
        &root.join("Inbox"),
        b"From - Mon Jan 15 10:00:00 2024\nX-Mozilla-Status: 0001\nSubject: uno\nMessage-ID: <1@tb>\n\nFrom here on, the body.\n>From quoted\n\nFrom - Tue Jan 16 10:00:00 2024\nX-Mozilla-Status: 0000\nSubject: due\nMessage-ID: <2@tb>\n\nsecondo\n\n",
    );
    write(&root.join("Inbox.msf"), b"// mork index");
    write(
        &root.join("Clienti.sbd/Rossi"),
        b"From - Wed Jan 17 10:00:00 2024\nSubject: tre\n\nterzo\n",
    );
    // Cut in the middle of its second message.
    write(
        &root.join("Tagliato"),
        b"From - Wed Jan 17 10:00:00 2024\nSubject: intero\n\nok\n\nFrom - Wed Jan 17 11:00:00 2024\nSubject: tagliato\n\nmeta del mess",
    );
    let out = import(&pair, &root, "frank", &[]);
    assert_eq!(
        code(&out),
        2,
        "one message could not be read: {}",
        text(&out)
    );
    let r = report(&pair, &out);
    let mb = &r["mailboxes"][0];
    assert_eq!(mb["source_messages"], 5);
    assert_eq!(mb["buckets"]["copied"], 4);
    assert_eq!(mb["buckets"]["failed"]["source: message unreadable"], 1);
    let t = text(&out);
    assert!(
        t.contains("Tagliato byte offset") && t.contains("truncated"),
        "the file and offset are named: {t}"
    );
    let mut tgt = pair.client("target", "frank").await;
    tgt.select("INBOX", true).await.unwrap();
    let meta = tgt.fetch_all_meta(true).await.unwrap();
    assert_eq!(meta.len(), 2);
    assert!(meta[0].flags.contains(&"\\Seen".to_string()), "{meta:?}");
    assert_eq!(
        meta[0].internal_date.as_deref(),
        Some("15-Jan-2024 10:00:00 +0000")
    );
    let mut body = Vec::new();
    tgt.fetch_bodies(&[meta[0].uid], &mut |_, b| body = b.to_vec())
        .await
        .unwrap();
    assert!(
        body.ends_with(b"\r\n\r\nFrom here on, the body.\r\nFrom quoted\r\n"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(count(&pair, "target", "frank", "Clienti.Rossi").await, 1);

    // The next run copies only what failed before, once the file is whole again.
    let mut whole = std::fs::read(root.join("Tagliato")).unwrap();
    whole.extend_from_slice(b"aggio\n");
    std::fs::write(root.join("Tagliato"), whole).unwrap();
    let out = import(&pair, &root, "frank", &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let mb = &report(&pair, &out)["mailboxes"][0];
    assert_eq!(mb["buckets"]["copied"], 1);
    assert_eq!(mb["buckets"]["already_present"], 4);

    // A Maildir with odd file names: keywords from dovecot-keywords, unknown letters, no info
    // part, a file still in tmp/ (not delivered yet, so not mail).
    let md = pair.dir.path().join("maildir");
    write(&md.join("cur/1700000000.a.h:2,FSa"), b"Subject: a\n\nx\n");
    write(&md.join("cur/1700000001.b.h:2,XYZ"), b"Subject: b\n\nx\n");
    write(&md.join("cur/1700000002.c.h"), b"Subject: c\n\nx\n");
    write(&md.join("tmp/1700000003.d.h"), b"Subject: partial");
    write(&md.join("dovecot-keywords"), b"0 Fatture\n");
    let out = import(&pair, &md, "tiny", &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let mut tgt = pair.client("target", "tiny").await;
    tgt.select("INBOX", true).await.unwrap();
    let mut flags: Vec<Vec<String>> = tgt
        .fetch_all_meta(false)
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            let mut f: Vec<String> = m.flags.into_iter().filter(|f| f != "\\Recent").collect();
            f.sort();
            f
        })
        .collect();
    flags.sort();
    assert_eq!(
        flags,
        vec![
            vec![],
            vec![],
            vec!["Fatture".to_string(), "\\Flagged".into(), "\\Seen".into()]
        ]
    );

    // Not an archive at all, and a path that does not exist: usage errors naming the file.
    let junk = write(&pair.dir.path().join("photo.jpg"), b"\xff\xd8\xff\xe0 JFIF");
    let out = import(&pair, &junk, "frank", &[]);
    assert_eq!(code(&out), 64, "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("photo.jpg byte offset 0") && t.contains("not an mbox"),
        "{t}"
    );
    assert_eq!(t.trim().lines().count(), 1, "one line: {t}");
    let out = import(&pair, &pair.dir.path().join("missing"), "frank", &[]);
    assert_eq!(code(&out), 64, "{}", text(&out));
    assert!(text(&out).contains("missing"), "{}", text(&out));

    // verify on a directory without a manifest, and on a damaged archive.
    let out = verify(&pair, &root);
    assert_eq!(code(&out), 64, "{}", text(&out));
    assert!(
        text(&out).contains("trasloco-manifest.jsonl"),
        "{}",
        text(&out)
    );
}

/// Issue 18, point 24: a Maildir export handed to Dovecot as its mail_location shows every
/// message with the same bytes, flags (`$Forwarded` included), keywords and dates.
#[tokio::test(flavor = "multi_thread")]
async fn a_maildir_export_is_read_back_by_dovecot_with_the_same_flags() {
    use std::os::unix::fs::MetadataExt;
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    for (folder, msgs) in archive_mailbox() {
        seed(&mut src, folder, msgs).await;
    }
    let source = snapshot(&mut src).await;
    // Erin's home on the target server (Maildir++, `.` as delimiter) receives the export.
    let home = pair.dir.path().join("target/home/erin");
    let dir = home.join("Maildir");
    let out = export(
        &pair,
        "alice",
        "maildir",
        &dir,
        &["--layout", "maildir-plus"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let owner = std::fs::metadata(home.parent().unwrap()).unwrap();
    let chown = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", owner.uid(), owner.gid()))
        .arg(&home)
        .status()
        .unwrap();
    assert!(chown.success());
    let mut served = pair.client("target", "erin").await;
    let target = snapshot(&mut served).await;
    for (name, msgs) in &source {
        assert_eq!(
            target.get(&name.replace('/', ".")),
            Some(msgs),
            "folder {name} as Dovecot serves it"
        );
    }
}

/// Issue 18, point 27: a file the reader does not understand is left out and named, not a
/// reason to import nothing (`--strict` stops as before); a single message file without the
/// `.eml` name is read as one message.
#[tokio::test(flavor = "multi_thread")]
async fn files_that_are_not_mail_are_left_out_and_named() {
    let pair = Pair::start();
    let root = pair.dir.path().join("profile");
    write(
        &root.join("Inbox"),
        b"From - Mon Jan 15 10:00:00 2024\nSubject: uno\n\nprimo\n",
    );
    write(&root.join("Trash"), b"");
    write(&root.join("Notes.mbox"), b"these are my notes, not mail\n");
    write(&root.join("photo.jpg"), b"\xff\xd8\xff\xe0 JFIF");
    let out = import(&pair, &root, "frank", &[]);
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    let r = report(&pair, &out);
    assert_eq!(r["mailboxes"][0]["buckets"]["copied"], 1, "{r}");
    let skipped = r["mailboxes"][0]["skipped_files"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(
        t.contains("file left out: ") && t.contains("Notes.mbox byte offset 0: not an mbox file"),
        "{t}"
    );
    assert!(t.contains("photo.jpg: not mail"), "{t}");
    // --strict: today's behaviour, one line naming the file.
    let out = import(&pair, &root, "frank", &["--strict"]);
    assert_eq!(code(&out), 64, "{}", text(&out));
    assert!(text(&out).contains("Notes.mbox"), "{}", text(&out));

    // One message saved without a name ending in .eml.
    let single = write(
        &pair.dir.path().join("lettera"),
        b"From: Anna <anna@example.org>\r\nSubject: una lettera\r\nDate: Tue, 2 Jan 2024 09:00:00 +0100\r\n\r\nciao\r\n",
    );
    let out = import(&pair, &single, "tiny", &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(report(&pair, &out)["mailboxes"][0]["buckets"]["copied"], 1);
}

/// Issue 18, point 28: an mbox cut exactly at a line end is imported with a warning, and once
/// the file is complete the next import replaces the cut copy instead of leaving it beside the
/// whole one.
#[tokio::test(flavor = "multi_thread")]
async fn an_mbox_cut_at_a_line_end_is_said_and_replaced_when_completed() {
    let pair = Pair::start();
    let file = pair.dir.path().join("posta.mbox");
    let head = b"From a@b Mon Jan 15 10:00:00 2024\nSubject: uno\n\nprimo\n\nFrom a@b Mon Jan 15 11:00:00 2024\nSubject: due\n\nprima riga\n";
    write(&file, head);
    let out = import(&pair, &file, "frank", &[]);
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(
        t.contains("note: ") && t.contains("does not end with the blank line mbox requires"),
        "{t}"
    );
    assert_eq!(count(&pair, "target", "frank", "INBOX").await, 2);

    let mut whole = head.to_vec();
    whole.extend_from_slice(b"seconda riga\n\n");
    std::fs::write(&file, &whole).unwrap();
    let out = import(&pair, &file, "frank", &[]);
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(!t.contains("note: "), "{t}");
    let r = report(&pair, &out);
    assert_eq!(folder_sum(&r["mailboxes"][0], "replaced"), 1, "{r}");
    assert_eq!(
        count(&pair, "target", "frank", "INBOX").await,
        2,
        "no cut copy beside the whole one"
    );
    let mut tgt = pair.client("target", "frank").await;
    tgt.select("INBOX", true).await.unwrap();
    let uids: Vec<u32> = tgt
        .fetch_all_meta(false)
        .await
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    let mut bodies = Vec::new();
    tgt.fetch_bodies(&uids, &mut |_, b| bodies.push(b.to_vec()))
        .await
        .unwrap();
    assert!(
        bodies
            .iter()
            .any(|b| b.ends_with(b"prima riga\r\nseconda riga\r\n")),
        "{bodies:?}"
    );
}

/// Issue 18, point 29: a target directory that is not empty and not an archive is a local
/// problem (exit 64), not a server's refusal; files in an archive's directory that its
/// manifest does not list are reported by a re-export, an import and `archive verify`, and
/// never deleted or cut by a re-export.
#[tokio::test(flavor = "multi_thread")]
async fn files_beside_an_archive_are_named_and_never_touched() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    seed(
        &mut src,
        "INBOX",
        (0..3).map(|i| msg(simple(i, "INBOX"))).collect(),
    )
    .await;
    src.logout().await;
    let busy = pair.dir.path().join("busy");
    write(&busy.join("notes.txt"), b"mine");
    let out = export(&pair, "alice", "mbox", &busy, &[]);
    assert_eq!(code(&out), 64, "{}", text(&out));
    assert!(
        text(&out).contains("is not empty and is not a trasloco archive"),
        "{}",
        text(&out)
    );

    let dir = pair.dir.path().join("backup");
    let out = export(&pair, "alice", "mbox", &dir, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let mine = b"From me Mon Jan 15 10:00:00 2024\nSubject: my own\n\nnot yours\n\n";
    write(&dir.join("Personale.mbox"), mine);
    let out = export(&pair, "alice", "mbox", &dir, &[]);
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(
        t.contains(
            "Personale.mbox: not in the archive's manifest and not written by trasloco: left alone"
        ),
        "{t}"
    );
    assert_eq!(
        std::fs::read(dir.join("Personale.mbox")).unwrap(),
        mine,
        "never cut"
    );
    let out = import(&pair, &dir, "bob", &[]);
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(
        t.contains("file left out: ")
            && t.contains("Personale.mbox: in the archive's directory but not in its manifest"),
        "{t}"
    );
    assert_eq!(report(&pair, &out)["mailboxes"][0]["buckets"]["copied"], 3);
    let out = verify(&pair, &dir);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("Personale.mbox"), "{}", text(&out));
}

/// Issue 18, point 25: an incremental export carries flag changes over, in every format (a
/// Maildir file renamed to its new letters, a new manifest line for mbox and EML), and what
/// is imported back has the source's flags now.
#[tokio::test(flavor = "multi_thread")]
async fn an_incremental_export_carries_flag_changes() {
    let pair = Pair::start();
    let mut src = pair.client("source", "alice").await;
    let mut msgs: Vec<Msg> = (0..4).map(|i| msg(simple(i, "INBOX"))).collect();
    msgs[0].flags = vec!["\\Seen"];
    msgs[1].flags = vec!["\\Seen", "Lavoro"];
    seed(&mut src, "INBOX", msgs).await;
    for (format, user) in [("maildir", "bob"), ("mbox", "carol"), ("eml", "dave")] {
        let dir = pair.dir.path().join(format!("flags-{format}"));
        let out = export(&pair, "alice", format, &dir, &[]);
        assert_eq!(code(&out), 0, "{format}: {}", text(&out));
        // Marked unread again, and flagged, on the source.
        src.select("INBOX", false).await.unwrap();
        src.store_flags(&[
            (1, vec![]),
            (3, vec!["\\Flagged".into(), "$Forwarded".into()]),
        ])
        .await
        .unwrap();
        let out = export(&pair, "alice", format, &dir, &[]);
        assert_eq!(code(&out), 0, "{format}: {}", text(&out));
        let mb = &report(&pair, &out)["mailboxes"][0];
        assert_eq!(folder_sum(mb, "flags_updated"), 2, "{format}: {mb}");
        assert_eq!(mb["buckets"]["copied"], 0, "{format}");
        let out = verify(&pair, &dir);
        assert_eq!(code(&out), 0, "{format}: {}", text(&out));
        // Unchanged again: nothing to update.
        let out = export(&pair, "alice", format, &dir, &[]);
        assert_eq!(
            folder_sum(&report(&pair, &out)["mailboxes"][0], "flags_updated"),
            0
        );
        let out = import(&pair, &dir, user, &[]);
        assert_eq!(code(&out), 0, "{format}: {}", text(&out));
        let source = snapshot(&mut src).await;
        let mut tgt = pair.client("target", user).await;
        assert_eq!(
            snapshot(&mut tgt).await.get("INBOX"),
            source.get("INBOX"),
            "{format}: the archive has the source's flags now"
        );
        // Back as they were, for the next format.
        src.select("INBOX", false).await.unwrap();
        src.store_flags(&[(1, vec!["\\Seen".into()]), (3, vec![])])
            .await
            .unwrap();
    }
}
