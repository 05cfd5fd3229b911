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
