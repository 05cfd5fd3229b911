//! OAuth2 logins against a real Dovecot whose target validates bearer tokens (its `oauth2`
//! passdb, local JWT validation), with tokens from a client-credentials endpoint (a test
//! double on 127.0.0.1: no token issuer is packaged) or a token file.

mod support;

use support::*;

/// A campaign of alice and bob, passwords on the source, `oauth2` lines for the target.
fn oauth_campaign(pair: &Pair, oauth2: &str) -> String {
    pair.write(
        "accounts.csv",
        "source_user,source_password,target_user\nalice,alice-pw,alice\nbob,bob-pw,bob\n",
    );
    pair.write("app.secret", "app-secret\n");
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
port = {tp}
tls = "starttls"
ca_file = "{ca}"

[target.oauth2]
{oauth2}

[accounts]
file = "accounts.csv"

[run]
jobs = 2
state = "state.sqlite"
reports = "reports"
"#,
            sp = pair.port("SOURCE_IMAP_PORT"),
            tp = pair.port("TARGET_IMAP_PORT"),
            ca = pair.ca().display(),
        ),
    )
}

fn client_credentials(url: &str, scope: &str) -> String {
    format!(
        "flow = \"client-credentials\"\ntoken_url = \"{url}\"\nclient_id = \"trasloco-test-app\"\nclient_secret_file = \"app.secret\"\nscope = \"{scope}\""
    )
}

/// Everything trasloco wrote: reports, state (and its journal), as text.
fn written(pair: &Pair) -> String {
    let mut all = String::new();
    let mut stack = vec![pair.dir.path().join("reports")];
    for f in ["state.sqlite", "state.sqlite-wal"] {
        if let Ok(b) = std::fs::read(pair.dir.path().join(f)) {
            all.push_str(&String::from_utf8_lossy(&b));
        }
    }
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                all.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
            }
        }
    }
    all
}

/// A campaign whose target takes bearer tokens: every mailbox is copied byte-exact with one
/// token from the endpoint for the whole run, the logins are OAUTHBEARER, and neither the
/// token nor the client secret is written anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_into_an_oauth_target_is_copied_with_one_app_token() {
    let pair = Pair::start_with(&[("PAIR_TARGET_OAUTH", "1")]);
    for (user, n) in [("alice", 60), ("bob", 25)] {
        let mut src = pair.client("source", user).await;
        seed(&mut src, "INBOX", padded(n, 500)).await;
        seed(&mut src, "Lavoro", padded(n / 5, 200)).await;
    }
    let endpoint = TokenEndpoint::start(&pair, 3600);
    let c = oauth_campaign(&pair, &client_credentials(&endpoint.url, "mail.migrate"));
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    for user in ["alice", "bob"] {
        let mut src = pair.client("source", user).await;
        let mut tgt = pair.client("target", user).await;
        let (a, b) = (snapshot(&mut src).await, snapshot(&mut tgt).await);
        for folder in ["INBOX", "Lavoro"] {
            assert_eq!(a[folder], b[folder], "{user} {folder}");
        }
    }
    assert_eq!(endpoint.issued(), 1, "one app token serves every mailbox");
    let log = std::fs::read_to_string(pair.dir.path().join("target/log/dovecot.log")).unwrap();
    for user in ["alice", "bob"] {
        assert!(
            log.contains(&format!("Login: user=<{user}>, method=OAUTHBEARER")),
            "{user} logged in with the token"
        );
    }
    let all = format!("{t}{}", written(&pair));
    assert!(
        !all.contains("app-secret"),
        "the client secret is never written"
    );
    assert!(!all.contains("eyJ"), "no token is ever written");
}

/// What goes wrong with tokens is said in one line that names the endpoint or the server and
/// the reason, with the login failure's exit code: a scope the endpoint refuses, a client
/// secret it refuses, a token the server finds expired.
#[tokio::test(flavor = "multi_thread")]
async fn token_failures_are_one_line_with_the_reason() {
    let pair = Pair::start_with(&[("PAIR_TARGET_OAUTH", "1")]);
    let mut src = pair.client("source", "alice").await;
    seed(&mut src, "INBOX", padded(3, 100)).await;
    let endpoint = TokenEndpoint::start(&pair, 3600);
    let cases = [
        (
            client_credentials(&endpoint.url, "mail.read"),
            format!(
                "token endpoint {}: invalid_scope: AADSTS70011",
                endpoint.url
            ),
        ),
        (
            client_credentials(&endpoint.url, "mail.migrate")
                .replace("trasloco-test-app", "another-app"),
            "invalid_client: AADSTS7000215: Invalid client secret provided.".to_string(),
        ),
    ];
    for (oauth2, needle) in cases {
        let c = oauth_campaign(&pair, &oauth2);
        let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
        let t = text(&out);
        assert_eq!(code(&out), 12, "{t}");
        assert!(t.contains(&needle), "{needle:?} in {t}");
        assert!(!t.contains("app-secret") && !t.contains("panicked"), "{t}");
    }
    pair.write("expired.token", &app_token(&pair, "mail.migrate", -120));
    let c = oauth_campaign(
        &pair,
        "flow = \"token-file\"\ntoken_file = \"expired.token\"",
    );
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 12, "{t}");
    assert!(
        t.contains("OAuth2 login (OAUTHBEARER, token file") && t.contains("the token was refused"),
        "{t}"
    );
    assert!(!t.contains("eyJ"), "{t}");
}

/// Tokens that expire during the run: Exchange ends a session when its token expires, so
/// every connection logs in again with a new token before that, between batches. With
/// four-second tokens and a run of several lifetimes, no session is ever ended for an expired
/// token, every message is copied exactly once, and the report counts the renewals.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_renewed_before_the_session_expires() {
    let pair = Pair::start_with(&[("PAIR_TARGET_OAUTH", "1")]);
    let mut src = pair.client("source", "alice").await;
    seed(&mut src, "INBOX", padded(1500, 300)).await;
    let endpoint = TokenEndpoint::start(&pair, 4);
    let proxy = ExchangeProxy::start(
        pair.port("TARGET_IMAP_PORT"),
        std::time::Duration::from_millis(8),
    );
    pair.write(
        "accounts.csv",
        "source_user,source_password,target_user\nalice,alice-pw,alice\n",
    );
    pair.write("app.secret", "app-secret\n");
    let c = pair.write(
        "campaign.toml",
        &format!(
            r#"[source]
host = "127.0.0.1"
port = {sp}
tls = "starttls"
ca_file = "{ca}"

[target]
host = "127.0.0.1"
port = {port}
tls = "none"

[target.oauth2]
{oauth2}

[accounts]
file = "accounts.csv"

[run]
state = "state.sqlite"
reports = "reports"
verify = false
batch_messages = 5
"#,
            sp = pair.port("SOURCE_IMAP_PORT"),
            ca = pair.ca().display(),
            port = proxy.port,
            oauth2 = client_credentials(&endpoint.url, "mail.migrate"),
        ),
    );
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    let mut tgt = pair.client("target", "alice").await;
    assert_eq!(
        snapshot(&mut src).await["INBOX"],
        snapshot(&mut tgt).await["INBOX"],
        "every message exactly once"
    );
    let r = report(&pair, &out);
    let renewals = r["mailboxes"][0]["token_renewals"].as_u64().unwrap_or(0);
    assert!(renewals >= 1, "{t}");
    assert!(endpoint.issued() >= 2, "{}", endpoint.issued());
    assert_eq!(proxy.byes(), 0, "no session outlived its token: {t}");
    assert!(t.contains("logins with a renewed OAuth2 token"), "{t}");
}

/// `migrate` takes OAuth2 too (`--to-token-file`, `--from-token-command`), and so do the
/// target's POP3 and ManageSieve: the same bearer logins open them.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_pop3_and_managesieve_log_in_with_tokens() {
    let pair = Pair::start_with(&[("PAIR_TARGET_OAUTH", "1")]);
    let mut src = pair.client("source", "carol").await;
    seed(&mut src, "INBOX", padded(4, 100)).await;
    pair.write("carol.token", &app_token(&pair, "mail.migrate", 3600));
    std::fs::write(pair.dir.path().join("carol.pw"), "carol-pw\n").unwrap();
    let tp = pair.port("TARGET_IMAP_PORT");
    let out = pair.trasloco(
        &[
            "--no-progress",
            "migrate",
            "--from",
            &format!("imap://carol@127.0.0.1:{}", pair.port("SOURCE_IMAP_PORT")),
            "--to",
            &format!("imap://carol@127.0.0.1:{tp}"),
            "--from-password-file",
            "carol.pw",
            "--to-token-file",
            "carol.token",
            "--ca-file",
            &pair.ca().display().to_string(),
            "--state",
            "carol.sqlite",
        ],
        "",
        "",
    );
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    let mut tgt = pair.client("target", "carol").await;
    assert_eq!(
        snapshot(&mut src).await["INBOX"],
        snapshot(&mut tgt).await["INBOX"]
    );

    // The target's POP3 as a source, its token from a command that is told the account.
    let token = pair.dir.path().join("carol.token").display().to_string();
    let out = pair.trasloco(
        &[
            "--no-progress",
            "migrate",
            "--from",
            &format!("pop3://carol@127.0.0.1:{}", pair.port("TARGET_POP3_PORT")),
            "--to",
            &format!("imap://carol@127.0.0.1:{}", pair.port("SOURCE_IMAP_PORT")),
            "--from-token-command",
            &format!("read account; test \"$account\" = carol && cat {token}"),
            "--to-password-file",
            "carol.pw",
            "--ca-file",
            &pair.ca().display().to_string(),
            "--state",
            "pop3.sqlite",
            "--dry-run",
        ],
        "",
        "",
    );
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(t.contains("4 messages"), "{t}");

    // ManageSieve on the target: filters migrate with [target.oauth2].
    pair.write(
        "accounts.csv",
        "source_user,source_password,target_user\ncarol,carol-pw,carol\n",
    );
    let c = pair.write("campaign.toml",
        &format!(
            "[source]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{ca}\"\nsieve_port = {}\n\n[target]\nhost = \"127.0.0.1\"\nport = {tp}\ntls = \"starttls\"\nca_file = \"{ca}\"\nsieve_port = {}\n\n[target.oauth2]\nflow = \"token-file\"\ntoken_file = \"carol.token\"\n\n[accounts]\nfile = \"accounts.csv\"\n",
            pair.port("SOURCE_IMAP_PORT"),
            pair.port("SOURCE_SIEVE_PORT"),
            pair.port("TARGET_SIEVE_PORT"),
            ca = pair.ca().display(),
        ),
    );
    let mut s = trasloco_sieve::ManageSieve::connect(
        &trasloco_imap::Endpoint {
            host: "127.0.0.1".into(),
            port: pair.port("SOURCE_SIEVE_PORT"),
            security: trasloco_imap::Security::StartTls,
        },
        &trasloco_imap::TlsOptions {
            ca_file: Some(pair.ca()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.login(&trasloco_imap::Credentials::new("carol", "carol-pw".into()))
        .await
        .unwrap();
    s.put(
        "regole",
        "require [\"fileinto\"];\nif header :contains \"subject\" \"x\" { fileinto \"INBOX\"; }\n",
    )
    .await
    .unwrap();
    s.set_active(Some("regole")).await.unwrap();
    s.logout().await;
    let out = pair.trasloco(&["filters", "migrate", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(
        t.contains("1 script(s) copied") && t.contains("\"regole\" active"),
        "{t}"
    );
    let log = std::fs::read_to_string(pair.dir.path().join("target/log/dovecot.log")).unwrap();
    assert!(
        log.contains("managesieve-login: Info: Login: user=<carol>, method=OAUTHBEARER"),
        "sieve login"
    );
    assert!(
        log.contains("pop3-login: Info: Login: user=<carol>, method=OAUTHBEARER"),
        "pop3 login"
    );
}

/// The JWT-assertion flows: Google's service account asks a token per mailbox (`sub` = the
/// mailbox), Microsoft's app proves itself with its certificate's key instead of a secret.
/// The endpoint checks each assertion's RS256 signature, issuer and audience.
#[tokio::test(flavor = "multi_thread")]
async fn service_account_and_certificate_assertions() {
    let pair = Pair::start_with(&[("PAIR_TARGET_OAUTH", "1")]);
    for user in ["alice", "bob"] {
        let mut src = pair.client("source", user).await;
        seed(&mut src, "INBOX", padded(3, 100)).await;
    }
    let sh = |cmd: &str| {
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(pair.dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "{cmd}");
    };
    sh("openssl genrsa -out sa.key 2048 && openssl rsa -in sa.key -pubout -out sa.pub");
    sh("openssl genrsa -out other.key 2048");
    sh("openssl req -x509 -key sa.key -subj /CN=trasloco-test-app -days 2 -out app.pem");
    let public = std::fs::read_to_string(pair.dir.path().join("sa.pub")).unwrap();
    let endpoint = TokenEndpoint::start_with(&pair, 3600, Some(public));
    let service_account = |key: &str| {
        let pem = std::fs::read_to_string(pair.dir.path().join(key)).unwrap();
        serde_json::json!({
            "type": "service_account",
            "client_email": "svc@trasloco-test.iam.gserviceaccount.com",
            "private_key_id": "k1",
            "private_key": pem,
            "token_uri": endpoint.url,
        })
        .to_string()
    };
    pair.write("sa.json", &service_account("sa.key"));
    let c = oauth_campaign(
        &pair,
        "flow = \"google-service-account\"\nservice_account_file = \"sa.json\"",
    );
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    let mut subjects = endpoint.subjects.lock().unwrap().clone();
    subjects.sort();
    assert_eq!(subjects, ["alice", "bob"], "one grant per mailbox");
    for user in ["alice", "bob"] {
        let mut src = pair.client("source", user).await;
        let mut tgt = pair.client("target", user).await;
        assert_eq!(
            snapshot(&mut src).await["INBOX"],
            snapshot(&mut tgt).await["INBOX"]
        );
    }

    // New mail on both sources before each later run: a mailbox whose source did not change
    // is not looked at on the target, so no token would be asked for it.
    let on = &pair;
    let new_mail = |i: usize| async move {
        for user in ["alice", "bob"] {
            let mut src = on.client("source", user).await;
            seed(&mut src, "INBOX", vec![msg(simple(i, "INBOX"))]).await;
            src.logout().await;
        }
    };
    new_mail(100).await;
    pair.write("sa.json", &service_account("other.key"));
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 12, "{t}");
    assert!(t.contains("invalid_grant: Invalid JWT Signature."), "{t}");
    assert!(!t.contains("PRIVATE KEY"), "{t}");

    let c = oauth_campaign(
        &pair,
        &format!(
            "flow = \"microsoft-app\"\ntenant = \"trasloco-test\"\ntoken_url = \"{}\"\nclient_id = \"trasloco-test-app\"\ncertificate_file = \"app.pem\"\ncertificate_key_file = \"sa.key\"\nscope = \"mail.migrate\"",
            endpoint.url
        ),
    );
    new_mail(101).await;
    let before = endpoint.issued();
    let out = pair.trasloco(&["--no-progress", "run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert_eq!(endpoint.issued(), before + 1, "one app token");
}
