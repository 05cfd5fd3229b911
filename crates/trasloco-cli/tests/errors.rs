//! Bad input and unreachable servers: one clear line naming the side, a documented exit code,
//! no panic, nothing written to the mailboxes.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_names_the_side() {
    let pair = Pair::start();
    let (from, to) = (pair.url("source", "alice"), pair.url("target", "alice"));
    let ca = pair.ca().display().to_string();
    let args = [
        "--no-progress",
        "migrate",
        "--from",
        &from,
        "--to",
        &to,
        "--ca-file",
        &ca,
    ];
    let out = pair.trasloco(&args, "wrong", "alice-pw");
    assert_eq!(code(&out), 12, "{}", text(&out));
    assert!(
        text(&out).contains("source alice@127.0.0.1: login as alice refused"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("check the source user name and password"),
        "{}",
        text(&out)
    );

    let out = pair.trasloco(&args, "alice-pw", "wrong");
    assert_eq!(code(&out), 12, "{}", text(&out));
    assert!(
        text(&out).contains("target alice@127.0.0.1: login as alice refused"),
        "{}",
        text(&out)
    );
    assert!(
        !text(&out).contains("wrong"),
        "the password never appears: {}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_the_test_ca_works_and_an_untrusted_certificate_is_refused() {
    let pair = Pair::start();
    let mut src = pair.client("source", "bob").await;
    seed(&mut src, "INBOX", vec![msg(simple(1, "INBOX"))]).await;
    let from = format!("imaps://bob@127.0.0.1:{}", pair.port("SOURCE_IMAPS_PORT"));
    let to = format!("imap://bob@127.0.0.1:{}", pair.port("TARGET_IMAP_PORT"));
    let ca = pair.ca().display().to_string();

    // No CA given: the system store does not know the test CA.
    let out = pair.trasloco(
        &["--no-progress", "migrate", "--from", &from, "--to", &to],
        "bob-pw",
        "bob-pw",
    );
    assert_eq!(code(&out), 11, "{}", text(&out));
    assert!(
        text(&out).contains("source bob@127.0.0.1: TLS with 127.0.0.1 failed"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("--ca-file"), "{}", text(&out));

    // Implicit TLS on the source, STARTTLS required on the target, both with the test CA.
    let out = pair.trasloco(
        &[
            "--no-progress",
            "migrate",
            "--from",
            &from,
            "--to",
            &to,
            "--to-tls",
            "starttls",
            "--ca-file",
            &ca,
        ],
        "bob-pw",
        "bob-pw",
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(count(&pair, "target", "bob", "INBOX").await, 1);

    // --insecure is the explicit opt-out, and it says so.
    let out = pair.trasloco(
        &[
            "migrate",
            "--from",
            &from,
            "--to",
            &to,
            "--insecure",
            "--no-progress",
        ],
        "bob-pw",
        "bob-pw",
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("NOT verified"), "{}", text(&out));
}

#[test]
fn unreachable_servers_and_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| run(command(dir.path(), "x", "y").args(args));
    // A closed port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let from = format!("imap://a@127.0.0.1:{port}");
    let out = run(&["--no-progress", "migrate", "--from", &from, "--to", &from]);
    assert_eq!(code(&out), 10, "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "source a@127.0.0.1: cannot connect to 127.0.0.1:{port}"
        )),
        "{}",
        text(&out)
    );
    // The advice comes once.
    assert_eq!(text(&out).matches("check").count(), 1, "{}", text(&out));
    // A reports folder that cannot be written is found before anything connects (issue 19,
    // point 8): a file stands where the folder should be.
    std::fs::write(dir.path().join("not-a-dir"), b"x").unwrap();
    let out = run(&[
        "--no-progress",
        "migrate",
        "--from",
        &from,
        "--to",
        &from,
        "--reports",
        "not-a-dir/reports",
    ]);
    assert_eq!(code(&out), 64, "{}", text(&out));
    assert!(
        text(&out).contains("cannot write reports to not-a-dir/reports"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("cannot connect"), "{}", text(&out));
    // A host that does not resolve (.invalid is reserved, RFC 2606; the lookup never leaves the machine's resolver).
    let out = run(&[
        "--no-progress",
        "migrate",
        "--from",
        "imap://a@nohost.invalid:143",
        "--to",
        &from,
    ]);
    assert_eq!(code(&out), 10, "{}", text(&out));
    assert!(
        text(&out).contains("cannot resolve host \"nohost.invalid\""),
        "{}",
        text(&out)
    );
    // A password in the URL is refused before anything connects.
    let out = run(&[
        "migrate",
        "--from",
        "imap://a:secret@127.0.0.1",
        "--to",
        &from,
    ]);
    assert_eq!(code(&out), 64, "{}", text(&out));
    assert!(text(&out).contains("passwords never go in the URL"));
    // Unknown option.
    assert_eq!(code(&run(&["migrate", "--frm", "x"])), 64);
    // Missing campaign.
    let out = run(&["run", "nope.toml"]);
    assert_eq!(code(&out), 64);
    assert!(
        text(&out).contains("cannot read campaign file nope.toml"),
        "{}",
        text(&out)
    );
    // A password file that is not there.
    let out = run(&[
        "migrate",
        "--from",
        &from,
        "--to",
        &from,
        "--from-password-file",
        "missing.txt",
    ]);
    assert_eq!(code(&out), 64);
    assert!(text(&out).contains("missing.txt"), "{}", text(&out));
}

/// `trasloco … | head`: the reader goes away; trasloco ends quietly (status 141, as a shell
/// reports `cat` or `grep` ended by SIGPIPE), never with a panic and exit 101.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        std::fs::write(
            dir.path().join(format!("{i}.eml")),
            format!("From: a@example.org\r\nSubject: {i}\r\n\r\nbody {i}\r\n"),
        )
        .unwrap();
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_trasloco"))
        .args(["--no-progress", "pec", "report"])
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("out"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader is gone before trasloco writes its first line.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(stderr.trim().is_empty(), "nothing said on stderr: {stderr}");
}

/// Issue 18, point 30: an old server with a self-signed certificate (`openssl req -x509`,
/// `CA:TRUE`) can be trusted exactly: given in `--ca-file`, or pinned by the fingerprint that
/// a refused handshake prints; every TLS error is said in words, never as an internal name.
#[tokio::test(flavor = "multi_thread")]
async fn a_self_signed_server_certificate_can_be_pinned() {
    let pair = Pair::start();
    let mut src = pair.client("source", "bob").await;
    seed(&mut src, "INBOX", vec![msg(simple(1, "INBOX"))]).await;
    src.logout().await;
    // The servers' certificate becomes a self-signed one, as small on-premises servers have.
    let tls = pair.dir.path().join("tls");
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=vecchio-server"])
        .arg("-keyout")
        .arg(tls.join("server.key"))
        .arg("-out")
        .arg(tls.join("server.crt"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    pair.doveadm("source", &["reload"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let from = format!("imaps://bob@127.0.0.1:{}", pair.port("SOURCE_IMAPS_PORT"));
    let to = pair.url("target", "bob");
    let cert = tls.join("server.crt").display().to_string();
    let migrate = |extra: &[&str]| {
        let mut args = vec![
            "--no-progress",
            "migrate",
            "--from",
            &from,
            "--to",
            &to,
            "--to-tls",
            "none",
        ];
        args.extend_from_slice(extra);
        pair.trasloco(&args, "bob-pw", "bob-pw")
    };
    // Refused, in words, with the fingerprint to check and pin.
    let out = migrate(&[]);
    let t = text(&out);
    assert_eq!(code(&out), 11, "{t}");
    assert!(
        t.contains("presents a certificate authority's certificate as its own"),
        "{t}"
    );
    assert!(
        !t.contains("CaUsedAsEndEntity") && !t.contains("OtherError"),
        "{t}"
    );
    let fp: String = t
        .split("has the fingerprint ")
        .nth(1)
        .map(|r| r.chars().take_while(|c| !c.is_whitespace()).collect())
        .unwrap_or_else(|| panic!("no fingerprint: {t}"));
    assert!(fp.starts_with("sha256:") && fp.len() == 7 + 95, "{fp}");
    // The certificate itself in --ca-file: trusted as the server's own.
    let out = migrate(&["--ca-file", &cert]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    // Or its fingerprint.
    let out = migrate(&["--from-cert-fingerprint", &fp]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    // Another fingerprint is refused.
    let wrong = format!("sha256:{}", "00:".repeat(31) + "00");
    let out = migrate(&["--from-cert-fingerprint", &wrong]);
    assert_eq!(code(&out), 11, "{}", text(&out));
    let out = migrate(&["--from-cert-fingerprint", "sha256:zz"]);
    assert_eq!(code(&out), 64, "{}", text(&out));
    assert!(
        text(&out).contains("--from-cert-fingerprint"),
        "{}",
        text(&out)
    );
}

/// `-vv` is a protocol trace: every command and response line of every connection, message
/// bodies shown by their size, the password never; and no noise about responses it could not
/// read (a streamed body's closing parenthesis is not a response of its own).
#[tokio::test(flavor = "multi_thread")]
async fn very_verbose_is_a_protocol_trace_without_secrets_or_noise() {
    let pair = Pair::start();
    let mut src = pair.client("source", "bob").await;
    let mut big = simple(1, "INBOX");
    big.extend(std::iter::repeat_n(b'y', 1_500_000));
    big.extend_from_slice(b"\r\n");
    seed(&mut src, "INBOX", vec![msg(simple(0, "INBOX")), msg(big)]).await;
    let out = pair.migrate("bob", &["-vv"]);
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(t.contains(" UID FETCH "), "commands are traced: {t}");
    assert!(t.contains("< * "), "responses are traced");
    assert!(t.contains(" bytes}"), "literals are shown by their size");
    assert!(
        t.contains("AUTHENTICATE PLAIN ***")
            || t.contains("LOGIN \"bob\" ***")
            || t.contains("LOGIN bob ***"),
        "the login is traced, masked"
    );
    assert!(!t.contains("bob-pw"), "the password never");
    assert!(!t.contains("yyyyyyyy"), "message bodies never");
    assert!(
        !t.contains("unparseable"),
        "no noise: {}",
        t.lines()
            .filter(|l| l.contains("unparseable"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
