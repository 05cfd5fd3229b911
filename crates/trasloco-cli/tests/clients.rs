//! Client settings: `clients generate` writes well-formed files with Thunderbird's documented
//! fields, and `trasloco serve` answers over real HTTP and HTTPS where clients look — known
//! addresses get their settings, unknown ones a proper error, never someone else's settings.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use support::*;

fn campaign(dir: &Path) -> String {
    std::fs::write(dir.join("master.txt"), "secret\n").unwrap();
    std::fs::write(
        dir.join("accounts.csv"),
        "source_user,target_user\nanna@beniculturali.it,\nbruno@beniculturali.it,b.verdi@cultura.gov.it\n",
    )
    .unwrap();
    let p = dir.join("campaign.toml");
    std::fs::write(
        &p,
        r#"[source]
host = "imap.beniculturali.example"
master_user = "admin"
master_password_file = "master.txt"
[target]
host = "imap.cultura.example"
master_user = "admin"
master_password_file = "master.txt"
[accounts]
file = "accounts.csv"
[rules]
domain_map = { "beniculturali.it" = "cultura.gov.it" }
[clients]
display_name = "Ministero della Cultura"
short_name = "MiC"
imap = { host = "imap.cultura.gov.it", port = 993, tls = "implicit" }
pop3 = { host = "pop.cultura.gov.it", port = 995 }
smtp = { host = "smtp.cultura.gov.it", port = 587, tls = "starttls" }
help_url = "https://aiuto.cultura.gov.it"
activation_url = "https://attiva.cultura.gov.it"
serve_host = "config.cultura.gov.it"
"#,
    )
    .unwrap();
    p.display().to_string()
}

/// Element paths (`a/b/c`, attributes as `a/b@attr=value`) of a well-formed XML document.
fn paths(xml: &str) -> BTreeSet<String> {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut out = BTreeSet::new();
    loop {
        match r
            .read_event()
            .unwrap_or_else(|e| panic!("not well-formed XML ({e}):\n{xml}"))
        {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).to_string();
                stack.push(name);
                let p = stack.join("/");
                for a in e.attributes().flatten() {
                    out.insert(format!(
                        "{p}@{}={}",
                        String::from_utf8_lossy(a.key.as_ref()),
                        a.unescape_value().unwrap()
                    ));
                }
                out.insert(p);
                if matches!(r.read_event(), Ok(quick_xml::events::Event::End(_))) {
                    stack.pop();
                }
            }
            quick_xml::events::Event::End(_) => {
                stack.pop();
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    out
}

fn http(port: u16, request: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get(port: u16, path: &str, host: &str) -> (u16, String) {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
}

fn post(port: u16, path: &str, body: &str) -> (u16, String) {
    http(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: autodiscover.cultura.gov.it\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn autodiscover_request(address: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>{address}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"
    )
}

fn thunderbird_fields(xml: &str) {
    let p = paths(xml);
    for need in [
        "clientConfig@version=1.1",
        "clientConfig/emailProvider@id=cultura.gov.it",
        "clientConfig/emailProvider/domain",
        "clientConfig/emailProvider/displayName",
        "clientConfig/emailProvider/displayShortName",
        "clientConfig/emailProvider/incomingServer@type=imap",
        "clientConfig/emailProvider/incomingServer@type=pop3",
        "clientConfig/emailProvider/incomingServer/hostname",
        "clientConfig/emailProvider/incomingServer/port",
        "clientConfig/emailProvider/incomingServer/socketType",
        "clientConfig/emailProvider/incomingServer/authentication",
        "clientConfig/emailProvider/incomingServer/username",
        "clientConfig/emailProvider/outgoingServer@type=smtp",
        "clientConfig/emailProvider/outgoingServer/hostname",
        "clientConfig/emailProvider/outgoingServer/port",
        "clientConfig/emailProvider/outgoingServer/socketType",
        "clientConfig/emailProvider/outgoingServer/authentication",
        "clientConfig/emailProvider/outgoingServer/username",
    ] {
        assert!(p.contains(need), "autoconfig lacks {need}:\n{xml}");
    }
}

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(dir: &Path, c: &str, extra: &[&str]) -> (Server, u16) {
    let port = free_port();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_trasloco"))
            .current_dir(dir)
            .args(["serve", c, "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (server, port);
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("trasloco serve did not start");
}

#[test]
fn generate_and_serve_client_settings() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path());

    // Files.
    let out = run(command(dir.path(), "", "").args(["clients", "generate", &c, "--out", "site"]));
    assert_eq!(code(&out), 0, "{}", text(&out));
    let site = dir.path().join("site");
    thunderbird_fields(
        &std::fs::read_to_string(site.join("autoconfig/cultura.gov.it/config-v1.1.xml")).unwrap(),
    );
    let zone = std::fs::read_to_string(site.join("dns/cultura.gov.it.zone")).unwrap();
    assert!(
        zone.contains("_imaps._tcp.cultura.gov.it. 3600 IN SRV 0 1 993 imap.cultura.gov.it."),
        "{zone}"
    );
    assert!(
        zone.contains("_pop3s._tcp.cultura.gov.it. 3600 IN SRV 0 1 995 pop.cultura.gov.it."),
        "{zone}"
    );
    assert!(
        zone.contains("autoconfig.cultura.gov.it. 3600 IN CNAME config.cultura.gov.it."),
        "{zone}"
    );
    for a in ["anna@cultura.gov.it", "b.verdi@cultura.gov.it"] {
        let plist =
            std::fs::read_to_string(site.join(format!("profiles/{a}.mobileconfig"))).unwrap();
        let p = paths(&plist);
        assert!(p.contains("plist/dict/array/dict/key"), "{plist}");
        assert!(plist.contains(&format!("<key>EmailAddress</key><string>{a}</string>")));
        let guide = std::fs::read_to_string(site.join(format!("guides/{a}.html"))).unwrap();
        assert!(guide.contains("https://attiva.cultura.gov.it"));
        paths(&std::fs::read_to_string(site.join(format!("autodiscover/{a}.xml"))).unwrap());
    }
    let guide = std::fs::read_to_string(site.join("guides/anna@cultura.gov.it.html")).unwrap();
    assert!(
        guide.contains("anna@beniculturali.it"),
        "the old address is named"
    );

    // HTTP.
    let (_srv, port) = serve(dir.path(), &c, &[]);
    let (s, body) = get(
        port,
        "/.well-known/autoconfig/mail/config-v1.1.xml",
        "cultura.gov.it",
    );
    assert_eq!(s, 200, "{body}");
    thunderbird_fields(&body);
    let (s, body) = get(
        port,
        "/mail/config-v1.1.xml?emailaddress=anna%40cultura.gov.it",
        "autoconfig.cultura.gov.it",
    );
    assert_eq!(s, 200);
    thunderbird_fields(&body);
    // New staff (an address of the domain not in the accounts file) get settings too; an
    // address of another domain does not.
    assert_eq!(
        get(
            port,
            "/mail/config-v1.1.xml?emailaddress=nuova%40cultura.gov.it",
            "autoconfig.cultura.gov.it"
        )
        .0,
        200
    );
    assert_eq!(
        get(
            port,
            "/mail/config-v1.1.xml?emailaddress=eve%40evil.example",
            "autoconfig.cultura.gov.it"
        )
        .0,
        404
    );
    assert_eq!(
        get(
            port,
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            "evil.example"
        )
        .0,
        404
    );
    for path in [
        "/autodiscover/autodiscover.xml",
        "/Autodiscover/Autodiscover.xml",
        "/AutoDiscover/AutoDiscover.xml",
    ] {
        let (s, body) = post(port, path, &autodiscover_request("b.verdi@cultura.gov.it"));
        assert_eq!(s, 200);
        let p = paths(&body);
        for need in [
            "Autodiscover/Response/Account/Protocol/Type",
            "Autodiscover/Response/Account/Protocol/Server",
            "Autodiscover/Response/Account/Protocol/Port",
            "Autodiscover/Response/Account/Protocol/LoginName",
            "Autodiscover/Response/Account/Protocol/SSL",
            "Autodiscover/Response/Account/Action",
        ] {
            assert!(p.contains(need), "{need}:\n{body}");
        }
        assert!(body.contains("<LoginName>b.verdi@cultura.gov.it</LoginName>"));
    }
    let (s, body) = post(
        port,
        "/autodiscover/autodiscover.xml",
        &autodiscover_request("eve@evil.example"),
    );
    assert_eq!(s, 200);
    assert!(
        body.contains("<ErrorCode>600</ErrorCode>") && !body.contains("imap.cultura.gov.it"),
        "{body}"
    );
    let (s, body) = get(
        port,
        "/profile/anna@cultura.gov.it.mobileconfig",
        "config.cultura.gov.it",
    );
    assert_eq!(s, 200);
    assert!(body.contains("com.apple.mail.managed"));
    assert_eq!(
        get(port, "/profile/eve@evil.example.mobileconfig", "x").0,
        404
    );
    let (s, body) = get(port, "/guide/anna@cultura.gov.it", "x");
    assert_eq!(s, 200);
    assert!(body.contains("Cosa cambia / What changes"));
    assert_eq!(get(port, "/guide/eve@evil.example", "x").0, 404);
    assert_eq!(get(port, "/etc/passwd", "x").0, 404);

    // HTTPS, with a certificate the test makes.
    // A test CA and a server certificate it signs (rustls refuses a CA as the server's own).
    let d = dir.path();
    let sh = |args: &str| {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(args)
            .current_dir(d)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "{args}");
    };
    sh(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem",
    );
    sh(
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -keyout k.pem -out c.csr",
    );
    sh(
        "printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf && openssl x509 -req -in c.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out c.pem",
    );
    let (cert, key, ca) = (d.join("c.pem"), d.join("k.pem"), d.join("ca.pem"));
    let (_tls_srv, tport) = serve(
        dir.path(),
        &c,
        &[
            "--tls-cert",
            &cert.display().to_string(),
            "--tls-key",
            &key.display().to_string(),
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ep = trasloco_imap::Endpoint {
            host: "127.0.0.1".into(),
            port: tport,
            security: trasloco_imap::Security::Implicit,
        };
        let tcp = trasloco_imap::net::tcp(&ep).await.unwrap();
        let opts = trasloco_imap::TlsOptions { ca_file: Some(ca.clone()), ..Default::default() };
        let mut s = trasloco_imap::net::tls_wrap(tcp, "127.0.0.1", &opts).await.unwrap();
        s.write_all(b"GET /guide/b.verdi@cultura.gov.it HTTP/1.1\r\nHost: config.cultura.gov.it\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).to_string()
    });
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("b.verdi@cultura.gov.it"));

    // Signed profiles: an RSA certificate from the test CA signs them; OpenSSL verifies the
    // signature and the chain, and gets back the very profile.
    sh(
        "openssl req -newkey rsa:2048 -nodes -subj '/CN=Profili MiC' -keyout sign.key -out sign.csr",
    );
    sh(
        "openssl x509 -req -in sign.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out sign.pem",
    );
    let signed = std::fs::read_to_string(&c).unwrap().replace(
        "serve_host = \"config.cultura.gov.it\"\n",
        "serve_host = \"config.cultura.gov.it\"\nprofile_sign_cert = \"sign.pem\"\nprofile_sign_key = \"sign.key\"\n",
    );
    std::fs::write(d.join("signed.toml"), signed).unwrap();
    let out =
        run(command(d, "", "").args(["clients", "generate", "signed.toml", "--out", "signed"]));
    assert_eq!(code(&out), 0, "{}", text(&out));
    sh(
        "openssl smime -verify -inform DER -in signed/profiles/anna@cultura.gov.it.mobileconfig -CAfile ca.pem -purpose any -out verified.plist",
    );
    assert_eq!(
        std::fs::read(d.join("verified.plist")).unwrap(),
        std::fs::read(site.join("profiles/anna@cultura.gov.it.mobileconfig")).unwrap(),
        "the signed profile carries the same plist"
    );
}

/// The raw answer to a request: status line and headers, and the body.
fn raw(port: u16, request: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

/// Cutover day for clients: people who type their old address, a person's name, an account
/// the campaign cannot move, and HTTP as clients speak it.
#[test]
fn old_addresses_names_skipped_accounts_and_http_details() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path());
    std::fs::write(
        dir.path().join("accounts.csv"),
        "source_user,target_user,display_name\nanna@beniculturali.it,,Anna Rossi\nbruno@beniculturali.it,b.verdi@cultura.gov.it,\ncarlo@altro.example,,\n",
    )
    .unwrap();
    let out = run(command(dir.path(), "", "").args(["clients", "generate", &c, "--out", "site"]));
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(
        t.contains("accounts file line 4: carlo@altro.example@imap.beniculturali.example: skipped, blocked by the address rule"),
        "{t}"
    );
    assert!(
        t.contains("autoconfig.beniculturali.it, autodiscover.beniculturali.it"),
        "certificate names for the old domain too: {t}"
    );
    let site = dir.path().join("site");
    let zone = std::fs::read_to_string(site.join("dns/beniculturali.it.zone")).unwrap();
    assert!(
        zone.contains("_imaps._tcp.beniculturali.it. 3600 IN SRV 0 1 993 imap.cultura.gov.it."),
        "{zone}"
    );
    assert!(
        std::fs::read_to_string(site.join("certificate-names.txt"))
            .unwrap()
            .contains("autodiscover.beniculturali.it\n")
    );
    let links = std::fs::read_to_string(site.join("links.csv")).unwrap();
    assert!(
        links.contains("anna@cultura.gov.it,anna@beniculturali.it,Anna Rossi,https://config.cultura.gov.it/guide/anna@cultura.gov.it,"),
        "{links}"
    );
    let answer =
        std::fs::read_to_string(site.join("autodiscover/anna@cultura.gov.it.xml")).unwrap();
    assert!(answer.contains("<DisplayName>Anna Rossi</DisplayName>"));

    let (_srv, port) = serve(dir.path(), &c, &[]);
    // Outlook asked with the old address: it is told to ask again with the new one.
    let (s, body) = post(
        port,
        "/autodiscover/autodiscover.xml",
        &autodiscover_request("anna@beniculturali.it"),
    );
    assert_eq!(s, 200);
    let p = paths(&body);
    assert!(
        p.contains("Autodiscover/Response/Account/RedirectAddr"),
        "{body}"
    );
    assert!(body.contains("<RedirectAddr>anna@cultura.gov.it</RedirectAddr>"));
    let (s, body) = post(
        port,
        "/autodiscover/autodiscover.xml",
        &autodiscover_request("anna@cultura.gov.it"),
    );
    assert_eq!(s, 200);
    assert!(
        body.contains("<DisplayName>Anna Rossi</DisplayName>"),
        "{body}"
    );
    // HEAD: the headers of GET, no body.
    let (head, body) = raw(
        port,
        "HEAD /guide/anna@cultura.gov.it HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.contains("Content-Length: 0"), "{head}");
    assert_eq!(body, "");
    // A method a route does not take: 405 with Allow.
    let (head, _) = raw(
        port,
        "GET /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        head.starts_with("HTTP/1.1 405") && head.contains("Allow: POST"),
        "{head}"
    );
    let (head, _) = raw(
        port,
        "PUT /guide/anna@cultura.gov.it HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(
        head.starts_with("HTTP/1.1 405") && head.contains("Allow: GET, HEAD"),
        "{head}"
    );

    // A port that is taken: the connection class of exit codes, one line.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(command(dir.path(), "", "").args(["serve", &c, "--listen", &addr]));
    assert_eq!(code(&out), 10, "{}", text(&out));
    assert!(
        text(&out).contains(&format!("cannot listen on {addr}")),
        "{}",
        text(&out)
    );

    // Lookups are limited per client address.
    let limited = std::fs::read_to_string(&c).unwrap().replace(
        "serve_host = \"config.cultura.gov.it\"\n",
        "serve_host = \"config.cultura.gov.it\"\nlookups_per_minute = 3\n",
    );
    std::fs::write(dir.path().join("limited.toml"), limited).unwrap();
    let (_lim, lport) = serve(dir.path(), "limited.toml", &[]);
    let statuses: Vec<u16> = (0..4)
        .map(|_| get(lport, "/guide/anna@cultura.gov.it", "x").0)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
}

/// Values that would end up in every file are checked before anything is written: a URL or a
/// line break where a host name belongs, an address with a space, a signing key that is not
/// RSA or not the certificate's. A failed run leaves the output directory as it was.
#[test]
fn bad_client_settings_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = campaign(d);
    let good = std::fs::read_to_string(&c).unwrap();
    let generate =
        |file: &str| run(command(d, "", "").args(["clients", "generate", file, "--out", "site"]));
    let refused = |file: &str, needle: &str| {
        let out = generate(file);
        let t = text(&out);
        assert_eq!(code(&out), 64, "{t}");
        assert!(t.contains(needle), "{needle:?} in {t}");
        assert_eq!(t.trim().lines().count(), 1, "one line: {t}");
        assert!(!t.contains("panicked"));
    };
    let variant = |name: &str, from: &str, to: &str| {
        assert!(good.contains(from), "{from}");
        std::fs::write(d.join(name), good.replace(from, to)).unwrap();
        name.to_string()
    };
    refused(
        &variant(
            "url.toml",
            "host = \"imap.cultura.gov.it\"",
            "host = \"imaps://imap.cultura.gov.it\"",
        ),
        "[clients] imap.host \"imaps://imap.cultura.gov.it\" is not a host name",
    );
    refused(
        &variant(
            "newline.toml",
            "serve_host = \"config.cultura.gov.it\"",
            "serve_host = \"config.cultura.gov.it\\nevil 3600 IN A 192.0.2.1\"",
        ),
        "[clients] serve_host",
    );
    assert!(!d.join("site").exists(), "nothing written");

    // A good run, then failing ones: the directory stays as the good run left it.
    let out = generate(&c);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let before = std::fs::read_dir(d.join("site/guides")).unwrap().count();
    std::fs::write(
        d.join("accounts.csv"),
        "source_user,target_user\nanna@beniculturali.it,\nanna rossi@beniculturali.it,\n",
    )
    .unwrap();
    refused(
        &c,
        "line 3: address \"anna rossi@cultura.gov.it\" cannot go into client settings",
    );
    std::fs::write(
        d.join("accounts.csv"),
        "source_user,target_user\nanna@beniculturali.it,\n",
    )
    .unwrap();
    let sh = |args: &str| {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(args)
            .current_dir(d)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "{args}");
    };
    sh(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=ec -keyout ec.key -out ec.pem",
    );
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=one -keyout one.key -out one.pem",
    );
    sh("openssl genrsa -out other.key 2048");
    let signing = |name: &str, cert: &str, key: &str| {
        variant(
            name,
            "serve_host = \"config.cultura.gov.it\"\n",
            &format!(
                "serve_host = \"config.cultura.gov.it\"\nprofile_sign_cert = \"{cert}\"\nprofile_sign_key = \"{key}\"\n"
            ),
        )
    };
    refused(
        &signing("ec.toml", "ec.pem", "ec.key"),
        "the key is not an unencrypted RSA key",
    );
    refused(
        &signing("mismatch.toml", "one.pem", "other.key"),
        "the key does not belong to the certificate",
    );
    assert_eq!(
        std::fs::read_dir(d.join("site/guides")).unwrap().count(),
        before,
        "the earlier output is intact"
    );
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".site."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let out = generate(&signing("good-sign.toml", "one.pem", "one.key"));
    assert_eq!(code(&out), 0, "{}", text(&out));
}
