//! The renamed domain's transition and users' filters, against Dovecot + Pigeonhole:
//! `transition apply` installs and activates a script on the old server (the user's own script
//! kept in force by include), `sieve-test` shows that an external sender gets a redirect and one
//! auto-reply while an internal sender and a mailing list get the redirect only, `status` and
//! `remove` (which makes the user's script active again); `filters migrate` copies scripts with
//! addresses rewritten and reports the one the target refuses.

mod support;

use std::process::Command;
use support::*;
use trasloco_imap::{Credentials, Endpoint, Security, TlsOptions};
use trasloco_sieve::ManageSieve;

const OLD: &str = "anna@beniculturali.it";
const NEW: &str = "anna@cultura.gov.it";

async fn sieve(pair: &Pair, side: &str, user: &str) -> ManageSieve {
    let ep = Endpoint {
        host: "127.0.0.1".into(),
        port: pair.port(&format!("{}_SIEVE_PORT", side.to_uppercase())),
        security: Security::StartTls,
    };
    let tls = TlsOptions {
        ca_file: Some(pair.ca()),
        ..TlsOptions::default()
    };
    let mut s = ManageSieve::connect(&ep, &tls).await.unwrap();
    s.login(&Credentials::new(user, format!("{user}-pw")))
        .await
        .unwrap();
    s
}

/// Run `sieve-test` on a user's stored script with one message; its report of the actions.
fn sieve_test(pair: &Pair, user: &str, script: &str, message: &str) -> String {
    let home = pair.dir.path().join("source/home").join(user).join("sieve");
    let conf = pair.dir.path().join("sieve-test.conf");
    // The mail user the pair runs as; scripts are found in the user's sieve directory (include).
    let (uid, gid) = if unsafe { libc::geteuid() } == 0 {
        ("trasloco-mail".to_string(), "trasloco-mail".to_string())
    } else {
        let id = |f: &str| {
            String::from_utf8(Command::new("id").arg(f).output().unwrap().stdout)
                .unwrap()
                .trim()
                .to_string()
        };
        (id("-u"), id("-g"))
    };
    std::fs::write(
        &conf,
        format!(
            "mail_uid = {uid}\nmail_gid = {gid}\nmail_location = maildir:{}/sieve-test-mail\nplugin {{\n  sieve = file:{}\n}}\n",
            pair.dir.path().display(),
            home.display()
        ),
    )
    .unwrap();
    let msg = pair.dir.path().join("message.eml");
    std::fs::write(&msg, message).unwrap();
    let out = Command::new("sieve-test")
        .arg("-c")
        .arg(&conf)
        .args(["-f", "sender@example.com", "-r", OLD])
        .arg(home.join(format!("{script}.sieve")))
        .arg(&msg)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sieve-test: {text}");
    text
}

fn message(from: &str, extra: &str) -> String {
    format!(
        "From: {from}\r\nTo: {OLD}\r\nSubject: prova\r\nMessage-ID: <{}@example>\r\n{extra}\r\nciao\r\n",
        from.len()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn transition_and_filters_over_managesieve() {
    let pair = Pair::start_with(&[
        (
            "PAIR_SOURCE_USERS",
            "anna@beniculturali.it luigi@beniculturali.it",
        ),
        (
            "PAIR_TARGET_USERS",
            "anna@cultura.gov.it luigi@cultura.gov.it",
        ),
    ]);
    // Anna's own filters on the old server, one active.
    let mut s = sieve(&pair, "source", OLD).await;
    s.put(
        "filtri",
        "require [\"fileinto\"];\nif address :is \"from\" \"capo@beniculturali.it\" { fileinto \"Capo\"; }\n",
    )
    .await
    .unwrap();
    s.set_active(Some("filtri")).await.unwrap();
    s.put(
        "espressioni",
        "require [\"regex\", \"fileinto\"];\nif header :regex \"subject\" \"^\\\\[fattura\\\\]\" { fileinto \"Fatture\"; }\n",
    )
    .await
    .unwrap();
    s.logout().await;
    std::fs::write(pair.dir.path().join("master.txt"), "admin-secret\n").unwrap();
    std::fs::write(
        pair.dir.path().join("accounts.csv"),
        "source_user,target_user\nanna@beniculturali.it,\nluigi@beniculturali.it,\n",
    )
    .unwrap();
    let server = |port: &str| {
        format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\nmaster_user = \"admin\"\nmaster_password_file = \"master.txt\"\nsieve_port = {}\n",
            pair.port(&format!("{port}_IMAP_PORT")),
            pair.ca().display(),
            pair.port(&format!("{port}_SIEVE_PORT"))
        )
    };
    let campaign = pair.dir.path().join("campaign.toml");
    std::fs::write(
        &campaign,
        format!(
            "[source]\n{}\n[target]\n{}\n[accounts]\nfile = \"accounts.csv\"\n[rules]\ndomain_map = {{ \"beniculturali.it\" = \"cultura.gov.it\" }}\n[transition]\norganisation = \"Ministero della Cultura\"\ndays = 5\n",
            server("SOURCE"),
            server("TARGET")
        ),
    )
    .unwrap();
    let c = campaign.display().to_string();

    // 0. A dry run says what would be installed and shows the script; nothing changes.
    let out = pair.trasloco(&["transition", "apply", "--dry-run", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(t.contains("anna@cultura.gov.it@127.0.0.1: would-install redirects to anna@cultura.gov.it; the user's script \"filtri\" stays in force"), "{t}");
    assert!(
        t.contains("luigi@cultura.gov.it@127.0.0.1: would-install"),
        "{t}"
    );
    assert!(
        t.contains("The script for anna@beniculturali.it@127.0.0.1")
            && t.contains("redirect :copy \"anna@cultura.gov.it\";")
            && !t.contains("redirect :copy \"luigi@cultura.gov.it\";"),
        "one script shown: {t}"
    );
    let mut s = sieve(&pair, "source", OLD).await;
    let scripts = s.list().await.unwrap();
    assert!(
        scripts.iter().all(|x| !x.name.starts_with("trasloco")),
        "{scripts:?}"
    );
    assert!(scripts.iter().any(|x| x.name == "filtri" && x.active));
    s.logout().await;
    let out = pair.trasloco(&["transition", "status", "--dry-run", &c], "", "");
    assert_eq!(code(&out), 64, "{}", text(&out));

    // 1. Apply: installed and active for both renamed mailboxes.
    let out = pair.trasloco(&["transition", "apply", &c], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("anna@beniculturali.it@127.0.0.1 → anna@cultura.gov.it@127.0.0.1: installed redirects to anna@cultura.gov.it"), "{t}");
    let mut s = sieve(&pair, "source", OLD).await;
    let scripts = s.list().await.unwrap();
    assert!(
        scripts
            .iter()
            .any(|x| x.name == "trasloco-transition" && x.active),
        "{scripts:?}"
    );
    assert!(scripts.iter().any(|x| x.name == "filtri" && !x.active));
    let installed = s.get("trasloco-transition").await.unwrap();
    assert!(
        installed.contains("include :personal \"trasloco-transition-user\";"),
        "{installed}"
    );
    let copy = s.get("trasloco-transition-user").await.unwrap();
    assert!(copy.contains("fileinto \"Capo\";"), "{copy}");
    s.logout().await;

    // 2. What the script does, by Pigeonhole's own sieve-test.
    let ext = sieve_test(
        &pair,
        OLD,
        "trasloco-transition",
        &message("Mario <mario@example.com>", ""),
    );
    assert!(ext.contains("send vacation message"), "{ext}");
    assert!(
        ext.contains("redirect message to: <anna@cultura.gov.it>"),
        "{ext}"
    );
    assert!(
        ext.contains("Dear sender") && ext.contains("Gentile mittente"),
        "{ext}"
    );
    assert!(
        ext.contains("seconds : 432000"),
        "once per sender in 5 days: {ext}"
    );
    assert!(
        ext.contains("store message in folder: INBOX"),
        "a copy stays: {ext}"
    );
    let internal = sieve_test(
        &pair,
        OLD,
        "trasloco-transition",
        &message("Luigi <luigi@beniculturali.it>", ""),
    );
    assert!(!internal.contains("vacation"), "{internal}");
    assert!(
        internal.contains("redirect message to: <anna@cultura.gov.it>"),
        "{internal}"
    );
    let list = sieve_test(
        &pair,
        OLD,
        "trasloco-transition",
        &message(
            "news@lists.example.org",
            "List-Id: <notizie.lists.example.org>\r\nPrecedence: list\r\n",
        ),
    );
    assert!(!list.contains("vacation"), "{list}");
    assert!(list.contains("redirect message to:"), "{list}");
    let boss = sieve_test(
        &pair,
        OLD,
        "trasloco-transition",
        &message("capo@beniculturali.it", ""),
    );
    assert!(
        boss.contains("store message in folder: Capo"),
        "the user's filter still applies: {boss}"
    );

    // 3. Status, then remove: the user's script is active again.
    let out = pair.trasloco(&["transition", "status", &c], "", "");
    assert_eq!(code(&out), 0);
    assert!(
        text(&out).contains("anna@cultura.gov.it@127.0.0.1: active"),
        "{}",
        text(&out)
    );
    let out = pair.trasloco(&["transition", "remove", &c], "", "");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("removed \"filtri\" is active again"),
        "{}",
        text(&out)
    );
    let mut s = sieve(&pair, "source", OLD).await;
    let scripts = s.list().await.unwrap();
    assert!(!scripts.iter().any(|x| x.name == "trasloco-transition"));
    assert!(scripts.iter().any(|x| x.name == "filtri" && x.active));
    s.logout().await;

    // 4. Filters to the new server: addresses rewritten, the active one active, the script
    // using an extension the target lacks reported with the target's reason.
    let out = pair.trasloco(&["filters", "migrate", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    assert!(
        t.contains("1 script(s) copied, 1 address(es) rewritten, \"filtri\" active"),
        "{t}"
    );
    assert!(t.contains("refused by the target: \"espressioni\""), "{t}");
    assert!(
        t.to_lowercase().contains("regex"),
        "the target's reason: {t}"
    );
    let mut s = sieve(&pair, "target", NEW).await;
    let scripts = s.list().await.unwrap();
    assert!(
        scripts.iter().any(|x| x.name == "filtri" && x.active),
        "{scripts:?}"
    );
    let copied = s.get("filtri").await.unwrap();
    assert!(
        copied.contains("capo@cultura.gov.it") && !copied.contains("beniculturali"),
        "{copied}"
    );
    s.logout().await;

    // 5. Failures exit with the code of what failed, and the line names the side: a refused
    // login on the target is 12, a source ManageSieve port that nobody listens on is 10.
    std::fs::write(pair.dir.path().join("wrong.txt"), "not-the-secret\n").unwrap();
    let wrong_target = std::fs::read_to_string(&campaign).unwrap().replacen(
        "master_password_file = \"master.txt\"\nsieve_port",
        "master_password_file = \"wrong.txt\"\nsieve_port",
        2,
    );
    let (source_part, target_part) = wrong_target.split_once("[target]").unwrap();
    let wrong_target = format!(
        "{}[target]{}",
        source_part.replace("wrong.txt", "master.txt"),
        target_part
    );
    std::fs::write(&campaign, &wrong_target).unwrap();
    let out = pair.trasloco(&["filters", "migrate", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 12, "{t}");
    assert!(t.contains("failed target anna@cultura.gov.it"), "{t}");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let no_source = wrong_target.replacen(
        &format!("sieve_port = {}", pair.port("SOURCE_SIEVE_PORT")),
        &format!("sieve_port = {closed}"),
        1,
    );
    std::fs::write(&campaign, no_source).unwrap();
    let out = pair.trasloco(&["transition", "status", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 10, "{t}");
    assert!(t.contains("failed source anna@beniculturali.it"), "{t}");
}

/// A campaign over the pair for the given old-domain users (`beniculturali.it` →
/// `cultura.gov.it`), master logins on both sides; its path.
fn renaming_campaign(pair: &Pair, users: &[&str], target_extra: &str) -> String {
    std::fs::write(pair.dir.path().join("master.txt"), "admin-secret\n").unwrap();
    let rows: String = users
        .iter()
        .map(|u| format!("{u}@beniculturali.it,\n"))
        .collect();
    std::fs::write(
        pair.dir.path().join("accounts.csv"),
        format!("source_user,target_user\n{rows}"),
    )
    .unwrap();
    let server = |port: &str| {
        format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\nmaster_user = \"admin\"\nmaster_password_file = \"master.txt\"\nsieve_port = {}\n",
            pair.port(&format!("{port}_IMAP_PORT")),
            pair.ca().display(),
            pair.port(&format!("{port}_SIEVE_PORT"))
        )
    };
    let campaign = pair.dir.path().join("campaign.toml");
    std::fs::write(
        &campaign,
        format!(
            "[source]\n{}\n[target]\n{}{target_extra}\n[accounts]\nfile = \"accounts.csv\"\n[rules]\ndomain_map = {{ \"beniculturali.it\" = \"cultura.gov.it\" }}\n",
            server("SOURCE"),
            server("TARGET")
        ),
    )
    .unwrap();
    campaign.display().to_string()
}

/// Users of both sides of a renaming pair.
fn renaming_pair(users: &[&str]) -> Pair {
    let side = |domain: &str| {
        users
            .iter()
            .map(|u| format!("{u}@{domain}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    Pair::start_with(&[
        ("PAIR_SOURCE_USERS", &side("beniculturali.it")),
        ("PAIR_TARGET_USERS", &side("cultura.gov.it")),
    ])
}

/// Who got what from the servers: (recipient, what kind) per message sent, sorted.
fn sent(pair: &Pair) -> Vec<(String, &'static str)> {
    let mut got: Vec<(String, &'static str)> = pair
        .outbox()
        .into_iter()
        .map(|(args, body)| {
            let to = args.rsplit("-- ").next().unwrap_or("").trim().to_string();
            let kind = if body.contains("X-Sieve-Redirected-From") {
                "redirect"
            } else if body.contains("Address changed") {
                "our reply"
            } else if body.contains("Sono in ferie") {
                "their reply"
            } else if body.to_lowercase().contains("rejected") {
                "rejection"
            } else {
                "other"
            };
            (to, kind)
        })
        .collect();
    got.sort();
    got
}

fn pairs(list: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    let mut v: Vec<(String, &'static str)> =
        list.iter().map(|(a, k)| (a.to_string(), *k)).collect();
    v.sort();
    v
}

/// Cutover day with real delivery (Dovecot's LDA running the installed scripts, a sendmail
/// sink counting what goes out): a user on holiday with an active out-of-office, one who
/// forwards to a personal address and stops after filing, one who rejects a sender. The
/// transition redirects every message to the new address whatever the user had active; one
/// automatic reply per message (ours to outsiders, theirs to colleagues); a rejected message
/// is neither redirected nor answered. Then `filters migrate` makes the user's own script
/// active on the new server, with folder names mapped as the migration maps them, and a
/// message delivered there lands in the mapped folder.
#[tokio::test(flavor = "multi_thread")]
async fn the_transition_keeps_mail_flowing_whatever_the_user_had_active() {
    let pair = renaming_pair(&["anna", "bruno", "carla"]);
    let old = |u: &str| format!("{u}@beniculturali.it");
    let new = |u: &str| format!("{u}@cultura.gov.it");
    let scripts = [
        (
            "anna",
            "ferie",
            "require [\"vacation\"];\nvacation :days 1 :addresses [\"anna@beniculturali.it\"] :subject \"Fuori ufficio\" \"Sono in ferie fino al 10.\";\n",
        ),
        (
            "bruno",
            "regole",
            "require [\"fileinto\", \"mailbox\"];\nif header :contains \"subject\" \"bilancio\" {\n  fileinto \"Progetti/Bilancio\";\n  stop;\n}\nif header :contains \"subject\" \"inviata\" { fileinto \"Posta inviata\"; }\nif header :contains \"subject\" \"file\" { fileinto \"Files\"; }\nredirect \"bruno.personale@example.net\";\n",
        ),
        (
            "carla",
            "blocchi",
            "require [\"reject\"];\nif address :is \"from\" \"molesto@example.com\" {\n  reject \"Non accetto messaggi da questo indirizzo.\";\n  stop;\n}\n",
        ),
    ];
    for (user, name, text) in scripts {
        let mut s = sieve(&pair, "source", &old(user)).await;
        s.put(name, text).await.unwrap();
        s.set_active(Some(name)).await.unwrap();
        s.logout().await;
    }
    let mut imap = pair.client("source", &old("bruno")).await;
    imap.create("Progetti/Bilancio").await.unwrap();
    imap.create("Posta inviata").await.unwrap();
    imap.create("Files").await.unwrap();
    // The new platform is Exchange-like: its preset renames the reserved `Files`, and filters
    // follow the migration's map, presets included.
    let c = renaming_campaign(
        &pair,
        &["anna", "bruno", "carla"],
        "provider = \"microsoft365\"\n",
    );

    let out = pair.trasloco(&["transition", "apply", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    for (user, name, _) in scripts {
        assert!(
            t.contains(&format!(
                "{}@127.0.0.1: installed redirects to {}; the user's script {name:?} stays in force",
                new(user),
                new(user)
            )),
            "{t}"
        );
    }

    let mail = |from: &str, to: &str, subject: &str| {
        format!(
            "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}.{}@example>\r\n\r\nciao\r\n",
            from.len()
        )
    };
    let deliver_to = |user: &str, from: &str, subject: &str| {
        deliver(
            &pair,
            "source",
            &old(user),
            &old(user),
            from,
            &mail(from, &old(user), subject),
        )
    };
    pair.outbox();
    // On holiday: an outsider gets the address notice, a colleague the out-of-office.
    deliver_to("anna", "mario@example.com", "preventivo");
    assert_eq!(
        sent(&pair),
        pairs(&[
            ("mario@example.com", "our reply"),
            ("anna@cultura.gov.it", "redirect")
        ])
    );
    deliver_to("anna", "luigi@beniculturali.it", "riunione");
    assert_eq!(
        sent(&pair),
        pairs(&[
            ("luigi@beniculturali.it", "their reply"),
            ("anna@cultura.gov.it", "redirect")
        ])
    );
    // Forwards and stops: both redirects, and a `stop` after filing ends only their filters.
    deliver_to("bruno", "mario@example.com", "ordine");
    assert_eq!(
        sent(&pair),
        pairs(&[
            ("bruno.personale@example.net", "redirect"),
            ("bruno@cultura.gov.it", "redirect"),
            ("mario@example.com", "our reply"),
        ])
    );
    deliver_to("bruno", "anna@beniculturali.it", "bilancio 2026");
    assert_eq!(sent(&pair), pairs(&[("bruno@cultura.gov.it", "redirect")]));
    assert_eq!(
        count(&pair, "source", &old("bruno"), "Progetti/Bilancio").await,
        1,
        "filed on the old server too"
    );
    // A rejected sender is refused, not redirected; everyone else is.
    deliver_to("carla", "molesto@example.com", "ancora");
    let got = sent(&pair);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "molesto@example.com");
    deliver_to("carla", "mario@example.com", "fattura");
    assert_eq!(
        sent(&pair),
        pairs(&[
            ("mario@example.com", "our reply"),
            ("carla@cultura.gov.it", "redirect")
        ])
    );

    // Filters to the new server during the transition: the user's own script is the active one,
    // and folder names follow the migration's map.
    let out = pair.trasloco(&["filters", "migrate", &c], "", "");
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(t.contains("\"ferie\" active"), "{t}");
    assert!(
        t.contains("folders renamed: \"Progetti/Bilancio\" → \"Progetti.Bilancio\", \"Posta inviata\" → \"Sent\", \"Files\" → \"Files (migrated)\""),
        "{t}"
    );
    for (user, name, _) in scripts {
        let mut s = sieve(&pair, "target", &new(user)).await;
        let list = s.list().await.unwrap();
        assert!(
            list.iter().any(|x| x.name == name && x.active),
            "{user}: {list:?}"
        );
        assert!(
            !list.iter().any(|x| x.name.starts_with("trasloco")),
            "{list:?}"
        );
        s.logout().await;
    }
    let mut target = pair.client("target", &new("bruno")).await;
    target.create("Progetti.Bilancio").await.unwrap();
    deliver(
        &pair,
        "target",
        &new("bruno"),
        &new("bruno"),
        "anna@cultura.gov.it",
        &mail("anna@cultura.gov.it", &new("bruno"), "bilancio 2027"),
    );
    assert_eq!(
        count(&pair, "target", &new("bruno"), "Progetti.Bilancio").await,
        1
    );
}
