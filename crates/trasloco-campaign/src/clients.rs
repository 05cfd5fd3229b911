//! What mail clients need to find the new servers by themselves, and what people need when
//! they must do it by hand: Thunderbird autoconfig, Outlook Autodiscover (POX), Apple
//! configuration profiles, the DNS records to publish (RFC 6186 SRV, autoconfig/autodiscover
//! names), and per-user instruction pages in Italian and English.

use crate::html::esc;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// One server clients talk to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientServer {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `implicit` (SSL/TLS from the first byte) or `starttls`.
    #[serde(default = "implicit")]
    pub tls: String,
}

fn implicit() -> String {
    "implicit".into()
}

impl ClientServer {
    fn implicit(&self) -> bool {
        !self.tls.eq_ignore_ascii_case("starttls")
    }
    fn socket_type(&self) -> &'static str {
        if self.implicit() { "SSL" } else { "STARTTLS" }
    }
    fn label(&self) -> &'static str {
        if self.implicit() {
            "SSL/TLS"
        } else {
            "STARTTLS"
        }
    }
}

/// `[clients]` in the campaign file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientsSection {
    /// The organisation, as clients show it.
    pub display_name: String,
    /// A short name.
    pub short_name: Option<String>,
    /// Mail domains served (default: the target domains of the accounts).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Incoming IMAP.
    pub imap: ClientServer,
    /// Incoming POP3, if offered.
    pub pop3: Option<ClientServer>,
    /// Outgoing SMTP submission.
    pub smtp: ClientServer,
    /// `address` (default: the full e-mail address) or `local-part`.
    #[serde(default = "address_form")]
    pub username: String,
    /// Where people find help.
    pub help_url: Option<String>,
    /// Webmail.
    pub webmail_url: Option<String>,
    /// The only genuine activation / password page (the guides warn about imitations).
    pub activation_url: Option<String>,
    /// Whether passwords stay the same (the guides say so).
    #[serde(default = "yes")]
    pub password_unchanged: bool,
    /// The host name `trasloco serve` is reached at (for the DNS records).
    pub serve_host: Option<String>,
    /// Sign Apple profiles with this certificate (PEM; its chain may follow), relative to the
    /// campaign file.
    pub profile_sign_cert: Option<std::path::PathBuf>,
    /// The private key for `profile_sign_cert` (PEM, unencrypted RSA).
    pub profile_sign_key: Option<std::path::PathBuf>,
}

fn address_form() -> String {
    "address".into()
}

fn yes() -> bool {
    true
}

/// One user the settings are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The new address.
    pub address: String,
    /// The old address, when it changes.
    pub old_address: Option<String>,
}

impl ClientsSection {
    /// The login name clients use for an address.
    pub fn login(&self, address: &str) -> String {
        if self.username.eq_ignore_ascii_case("local-part") {
            address.split('@').next().unwrap_or(address).to_string()
        } else {
            address.to_string()
        }
    }

    fn login_placeholder(&self) -> &'static str {
        if self.username.eq_ignore_ascii_case("local-part") {
            "%EMAILLOCALPART%"
        } else {
            "%EMAILADDRESS%"
        }
    }

    /// Check the values read later.
    pub fn check(&self) -> Result<(), String> {
        for (name, s) in [
            ("imap", Some(&self.imap)),
            ("pop3", self.pop3.as_ref()),
            ("smtp", Some(&self.smtp)),
        ] {
            if let Some(s) = s
                && !["implicit", "starttls"].contains(&s.tls.to_ascii_lowercase().as_str())
            {
                return Err(format!(
                    "[clients] {name}.tls must be \"implicit\" or \"starttls\""
                ));
            }
        }
        if !["address", "local-part"].contains(&self.username.as_str()) {
            return Err("[clients] username must be \"address\" or \"local-part\"".into());
        }
        Ok(())
    }
}

fn xml(s: &str) -> String {
    esc(s)
}

/// Thunderbird's autoconfig file for a domain (`config-v1.1.xml`).
pub fn autoconfig(c: &ClientsSection, domain: &str) -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n",
    );
    let _ = writeln!(x, "  <emailProvider id=\"{}\">", xml(domain));
    let _ = writeln!(x, "    <domain>{}</domain>", xml(domain));
    let _ = writeln!(x, "    <displayName>{}</displayName>", xml(&c.display_name));
    let _ = writeln!(
        x,
        "    <displayShortName>{}</displayShortName>",
        xml(c.short_name.as_deref().unwrap_or(&c.display_name))
    );
    let server = |x: &mut String, tag: &str, kind: &str, s: &ClientServer| {
        let _ = writeln!(x, "    <{tag} type=\"{kind}\">");
        let _ = writeln!(x, "      <hostname>{}</hostname>", xml(&s.host));
        let _ = writeln!(x, "      <port>{}</port>", s.port);
        let _ = writeln!(x, "      <socketType>{}</socketType>", s.socket_type());
        let _ = writeln!(
            x,
            "      <authentication>password-cleartext</authentication>"
        );
        let _ = writeln!(x, "      <username>{}</username>", c.login_placeholder());
        let _ = writeln!(x, "    </{tag}>");
    };
    server(&mut x, "incomingServer", "imap", &c.imap);
    if let Some(p) = &c.pop3 {
        server(&mut x, "incomingServer", "pop3", p);
    }
    server(&mut x, "outgoingServer", "smtp", &c.smtp);
    if let Some(h) = &c.help_url {
        let _ = writeln!(x, "    <documentation url=\"{}\">", xml(h));
        x.push_str("      <descr lang=\"it\">Istruzioni per configurare la posta</descr>\n      <descr lang=\"en\">How to set up your mail</descr>\n    </documentation>\n");
    }
    x.push_str("  </emailProvider>\n");
    if let Some(w) = &c.webmail_url {
        let _ = writeln!(
            x,
            "  <webMail>\n    <loginPage url=\"{}\"/>\n  </webMail>",
            xml(w)
        );
    }
    x.push_str("</clientConfig>\n");
    x
}

/// The e-mail address in an Autodiscover POX request, if any.
pub fn autodiscover_request_address(body: &str) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let start = lower.find("<emailaddress>")? + "<emailaddress>".len();
    let end = lower[start..].find("</emailaddress>")? + start;
    Some(body[start..end].trim().to_string())
}

/// Outlook's Autodiscover (POX) answer for a known address.
pub fn autodiscover(c: &ClientsSection, address: &str) -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n",
    );
    let _ = writeln!(
        x,
        "    <User>\n      <DisplayName>{}</DisplayName>\n    </User>",
        xml(address)
    );
    x.push_str(
        "    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n",
    );
    let proto = |x: &mut String, kind: &str, s: &ClientServer| {
        let _ = writeln!(x, "      <Protocol>\n        <Type>{kind}</Type>");
        let _ = writeln!(
            x,
            "        <Server>{}</Server>\n        <Port>{}</Port>",
            xml(&s.host),
            s.port
        );
        let _ = writeln!(
            x,
            "        <LoginName>{}</LoginName>",
            xml(&c.login(address))
        );
        x.push_str("        <DomainRequired>off</DomainRequired>\n        <SPA>off</SPA>\n");
        if s.implicit() {
            x.push_str("        <SSL>on</SSL>\n");
        } else {
            x.push_str("        <SSL>on</SSL>\n        <Encryption>TLS</Encryption>\n");
        }
        x.push_str("        <AuthRequired>on</AuthRequired>\n");
        if kind == "SMTP" {
            x.push_str("        <UsePOPAuth>on</UsePOPAuth>\n        <SMTPLast>off</SMTPLast>\n");
        }
        x.push_str("      </Protocol>\n");
    };
    proto(&mut x, "IMAP", &c.imap);
    if let Some(p) = &c.pop3 {
        proto(&mut x, "POP3", p);
    }
    proto(&mut x, "SMTP", &c.smtp);
    x.push_str("    </Account>\n  </Response>\n</Autodiscover>\n");
    x
}

/// The Autodiscover error for an address this service does not know (code 600, as Exchange
/// answers an invalid request): never someone else's settings.
pub fn autodiscover_error(message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  <Response>\n    <Error Time=\"{}\" Id=\"1\">\n      <ErrorCode>600</ErrorCode>\n      <Message>{}</Message>\n      <DebugData />\n    </Error>\n  </Response>\n</Autodiscover>\n",
        chrono::Utc::now().format("%H:%M:%S%.3f"),
        xml(message)
    )
}

/// A stable UUID from text (profiles keep their identity across regenerations).
fn uuid(seed: &str) -> String {
    let h = Sha256::digest(seed.as_bytes());
    let x = hex::encode(&h[..16]).to_uppercase();
    format!(
        "{}-{}-4{}-A{}-{}",
        &x[..8],
        &x[8..12],
        &x[13..16],
        &x[17..20],
        &x[20..32]
    )
}

/// An Apple configuration profile (`.mobileconfig`, unsigned plist) for one user.
pub fn mobileconfig(c: &ClientsSection, address: &str) -> String {
    let domain = address.rsplit('@').next().unwrap_or(address);
    let reverse: String = domain.split('.').rev().collect::<Vec<_>>().join(".");
    let login = xml(&c.login(address));
    let (i, o) = (&c.imap, &c.smtp);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>EmailAccountDescription</key><string>{name}</string>
      <key>EmailAccountName</key><string>{addr}</string>
      <key>EmailAccountType</key><string>EmailTypeIMAP</string>
      <key>EmailAddress</key><string>{addr}</string>
      <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>IncomingMailServerHostName</key><string>{ih}</string>
      <key>IncomingMailServerPortNumber</key><integer>{ip}</integer>
      <key>IncomingMailServerUseSSL</key><{iss}/>
      <key>IncomingMailServerUsername</key><string>{login}</string>
      <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>OutgoingMailServerHostName</key><string>{oh}</string>
      <key>OutgoingMailServerPortNumber</key><integer>{op}</integer>
      <key>OutgoingMailServerUseSSL</key><true/>
      <key>OutgoingMailServerUsername</key><string>{login}</string>
      <key>OutgoingPasswordSameAsIncomingPassword</key><true/>
      <key>PayloadDescription</key><string>{name}: posta / mail</string>
      <key>PayloadDisplayName</key><string>{addr}</string>
      <key>PayloadIdentifier</key><string>{rev}.trasloco.mail.{uid_a}</string>
      <key>PayloadType</key><string>com.apple.mail.managed</string>
      <key>PayloadUUID</key><string>{uid_a}</string>
      <key>PayloadVersion</key><integer>1</integer>
    </dict>
  </array>
  <key>PayloadDescription</key><string>Configura la posta di {addr} / Sets up mail for {addr}</string>
  <key>PayloadDisplayName</key><string>{name}</string>
  <key>PayloadIdentifier</key><string>{rev}.trasloco.{uid_p}</string>
  <key>PayloadOrganization</key><string>{name}</string>
  <key>PayloadRemovalDisallowed</key><false/>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadUUID</key><string>{uid_p}</string>
  <key>PayloadVersion</key><integer>1</integer>
</dict>
</plist>
"#,
        name = xml(&c.display_name),
        addr = xml(address),
        ih = xml(&i.host),
        ip = i.port,
        // STARTTLS on 143 is still TLS for Apple Mail ("Use SSL" covers both).
        iss = "true",
        oh = xml(&o.host),
        op = o.port,
        rev = xml(&reverse),
        uid_a = uuid(&format!("account {address}")),
        uid_p = uuid(&format!("profile {address}")),
    )
}

fn pick(s: Option<&ClientServer>, want_implicit: bool) -> Option<&ClientServer> {
    s.filter(|s| s.implicit() == want_implicit)
}

/// The DNS records to publish for a domain, as a zone-file snippet.
pub fn dns(c: &ClientsSection, domain: &str) -> String {
    let mut z = format!(
        "; trasloco: mail client discovery for {domain} (RFC 6186, RFC 8314, autoconfig, Autodiscover)\n"
    );
    let srv = |z: &mut String, service: &str, s: Option<&ClientServer>| {
        match s {
            Some(s) => {
                let _ = writeln!(
                    z,
                    "{service}._tcp.{domain}. 3600 IN SRV 0 1 {} {}.",
                    s.port, s.host
                );
            }
            // "Not offered" per RFC 6186: target ".".
            None => {
                let _ = writeln!(z, "{service}._tcp.{domain}. 3600 IN SRV 0 0 0 .");
            }
        }
    };
    srv(&mut z, "_imaps", pick(Some(&c.imap), true));
    srv(&mut z, "_imap", pick(Some(&c.imap), false));
    srv(&mut z, "_pop3s", pick(c.pop3.as_ref(), true));
    srv(&mut z, "_pop3", pick(c.pop3.as_ref(), false));
    srv(&mut z, "_submissions", pick(Some(&c.smtp), true));
    srv(&mut z, "_submission", pick(Some(&c.smtp), false));
    match &c.serve_host {
        Some(h) => {
            let _ = writeln!(z, "autoconfig.{domain}. 3600 IN CNAME {h}.");
            let _ = writeln!(z, "autodiscover.{domain}. 3600 IN CNAME {h}.");
            let _ = writeln!(z, "_autodiscover._tcp.{domain}. 3600 IN SRV 0 0 443 {h}.");
        }
        None => z.push_str("; set [clients] serve_host to get the autoconfig/autodiscover names\n"),
    }
    z
}

/// A print-friendly page for one user, in Italian and English.
pub fn guide(c: &ClientsSection, u: &User) -> String {
    let addr = esc(&u.address);
    let login = esc(&c.login(&u.address));
    let row = |what: &str, s: &ClientServer| {
        format!(
            "<tr><td>{what}</td><td><b>{}</b></td><td>{}</td><td>{}</td></tr>",
            esc(&s.host),
            s.port,
            s.label()
        )
    };
    let mut settings = String::from(
        "<table><thead><tr><th>Servizio / Service</th><th>Server</th><th>Porta / Port</th><th>Sicurezza / Security</th></tr></thead><tbody>",
    );
    settings.push_str(&row("IMAP (in arrivo / incoming)", &c.imap));
    if let Some(p) = &c.pop3 {
        settings.push_str(&row("POP3 (in arrivo / incoming)", p));
    }
    settings.push_str(&row(
        "SMTP (in uscita / outgoing, con autenticazione / with authentication)",
        &c.smtp,
    ));
    settings.push_str(&format!(
        "</tbody></table><p>Nome utente / User name: <b>{login}</b> · Password: {}</p>",
        if c.password_unchanged {
            "quella di sempre / your current one"
        } else {
            "quella nuova che ha ricevuto / the new one you received"
        }
    ));
    let change = match &u.old_address {
        Some(old) => format!(
            "<p lang=\"it\">Il suo indirizzo cambia: da <b>{}</b> a <b>{addr}</b>. La posta inviata al vecchio indirizzo le arriva comunque, e chi le scrive da fuori riceve una volta l'indicazione del nuovo indirizzo. Il contenuto della casella è già stato trasferito: non deve fare copie.</p><p lang=\"en\">Your address changes from <b>{}</b> to <b>{addr}</b>. Mail sent to the old address still reaches you, and outside senders are told the new address once. Your mailbox content has already been moved: you need not back anything up.</p>",
            esc(old),
            esc(old)
        ),
        None => format!(
            "<p lang=\"it\">Il suo indirizzo resta <b>{addr}</b>; cambiano solo i server. Il contenuto della casella è già stato trasferito: non deve fare copie.</p><p lang=\"en\">Your address stays <b>{addr}</b>; only the servers change. Your mailbox content has already been moved: you need not back anything up.</p>"
        ),
    };
    let steps = format!(
        "<h2>Come fare / How to</h2>\
<h3>Outlook</h3><ol><li>File → Aggiungi account / Add account.</li><li>Scriva / Type <b>{addr}</b> e / and <i>Connetti / Connect</i>: Outlook trova da solo le impostazioni / finds the settings by itself.</li><li>Inserisca la password / Enter your password.</li></ol>\
<h3>Thunderbird</h3><ol><li>Impostazioni account → Aggiungi account di posta / Account settings → Add mail account.</li><li>Nome, <b>{addr}</b>, password: Thunderbird trova le impostazioni / finds the settings.</li><li>Se non le trova, usi la tabella sopra / If not, use the table above.</li></ol>\
<h3>Apple Mail (macOS), iPhone, iPad</h3><ol><li>Apra il profilo di configurazione ricevuto / Open the configuration profile you received (<code>{addr}.mobileconfig</code>).</li><li>Impostazioni → Profilo scaricato → Installa / Settings → Profile downloaded → Install.</li><li>Inserisca la password quando richiesto / Enter your password when asked.</li></ol>\
<h3>Android (Gmail, Outlook, K-9/Thunderbird)</h3><ol><li>Aggiungi account → Altro / Personale (IMAP) / Add account → Other / Personal (IMAP).</li><li><b>{addr}</b> e password; se l'app chiede i server, usi la tabella sopra / and password; if the app asks for servers, use the table above.</li></ol>"
    );
    let phishing = format!(
        "<h2>Attenzione / Beware</h2><p lang=\"it\">Non le chiederemo mai la password per e-mail o telefono. {} Diffidi di messaggi che la invitano con urgenza a «riattivare» la casella.</p><p lang=\"en\">We will never ask for your password by e-mail or phone. {} Distrust messages urging you to \"reactivate\" your mailbox.</p>",
        c.activation_url
            .as_deref()
            .map(|u| format!(
                "L'unica pagina autentica è <b>{}</b>: controlli l'indirizzo nel browser.",
                esc(u)
            ))
            .unwrap_or_default(),
        c.activation_url
            .as_deref()
            .map(|u| format!(
                "The only genuine page is <b>{}</b>: check the address in your browser.",
                esc(u)
            ))
            .unwrap_or_default()
    );
    let help = c
        .help_url
        .as_deref()
        .map(|h| format!("<p>Aiuto / Help: <b>{}</b></p>", esc(h)))
        .unwrap_or_default();
    let body = format!(
        "<h1>{} — posta / mail: {addr}</h1><h2>Cosa cambia / What changes</h2>{change}<h2>Impostazioni / Settings</h2>{settings}{steps}{phishing}{help}",
        esc(&c.display_name)
    );
    crate::html::page(&format!("{} — {}", c.display_name, u.address), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn section() -> ClientsSection {
        ClientsSection {
            display_name: "Ministero della Cultura".into(),
            short_name: Some("MiC".into()),
            domains: vec![],
            imap: ClientServer {
                host: "imap.cultura.gov.it".into(),
                port: 993,
                tls: "implicit".into(),
            },
            pop3: Some(ClientServer {
                host: "pop.cultura.gov.it".into(),
                port: 995,
                tls: "implicit".into(),
            }),
            smtp: ClientServer {
                host: "smtp.cultura.gov.it".into(),
                port: 587,
                tls: "starttls".into(),
            },
            username: "address".into(),
            help_url: Some("https://aiuto.cultura.gov.it".into()),
            webmail_url: None,
            activation_url: Some("https://attiva.cultura.gov.it".into()),
            password_unchanged: true,
            serve_host: Some("config.cultura.gov.it".into()),
            profile_sign_cert: None,
            profile_sign_key: None,
        }
    }

    #[test]
    fn the_site_answers_known_addresses_only() {
        let site = Site::new(
            section(),
            vec![User {
                address: "anna@cultura.gov.it".into(),
                old_address: None,
            }],
        );
        let (s, _, b) = site.respond(
            "GET",
            "/mail/config-v1.1.xml?emailaddress=anna%40cultura.gov.it",
            "autoconfig.cultura.gov.it",
            "",
        );
        assert_eq!(s, 200);
        assert!(String::from_utf8_lossy(&b).contains("<domain>cultura.gov.it</domain>"));
        let (s, _, _) = site.respond(
            "GET",
            "/mail/config-v1.1.xml?emailaddress=eve%40evil.example",
            "x",
            "",
        );
        assert_eq!(s, 404);
        let (s, _, b) = site.respond(
            "GET",
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            "cultura.gov.it",
            "",
        );
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
        let req = "<Autodiscover><Request><EMailAddress>eve@cultura.gov.it</EMailAddress></Request></Autodiscover>";
        let (_, _, b) = site.respond("POST", "/Autodiscover/Autodiscover.xml", "x", req);
        let b = String::from_utf8_lossy(&b);
        assert!(b.contains("<ErrorCode>600</ErrorCode>") && !b.contains("imap.cultura"));
        assert_eq!(
            site.respond("GET", "/profile/eve@x.mobileconfig", "x", "")
                .0,
            404
        );
        assert_eq!(
            site.respond("GET", "/guide/anna@cultura.gov.it", "x", "").0,
            200
        );
    }

    #[test]
    fn addresses_never_leave_the_output_directory() {
        let dir = std::env::temp_dir().join(format!("trasloco-clients-{}", std::process::id()));
        let site = Site::new(
            section(),
            vec![User {
                address: "../../etc/x@cultura.gov.it".into(),
                old_address: None,
            }],
        );
        let e = site.generate(&dir).unwrap_err().0;
        assert!(e.contains("cannot be a file name"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn generated_files_carry_the_settings() {
        let c = section();
        let a = autoconfig(&c, "cultura.gov.it");
        assert!(
            a.contains("<socketType>SSL</socketType>")
                && a.contains("<socketType>STARTTLS</socketType>")
        );
        assert!(a.contains("<username>%EMAILADDRESS%</username>"));
        let d = autodiscover(&c, "anna@cultura.gov.it");
        assert!(
            d.contains("<LoginName>anna@cultura.gov.it</LoginName>")
                && d.contains("<Type>SMTP</Type>")
        );
        assert_eq!(
            autodiscover_request_address("<Autodiscover><Request><EMailAddress> anna@cultura.gov.it </EMailAddress></Request></Autodiscover>").as_deref(),
            Some("anna@cultura.gov.it")
        );
        let m = mobileconfig(&c, "anna@cultura.gov.it");
        assert_eq!(m, mobileconfig(&c, "anna@cultura.gov.it"), "stable UUIDs");
        assert!(m.contains("<string>com.apple.mail.managed</string>"));
        let z = dns(&c, "cultura.gov.it");
        assert!(z.contains("_imaps._tcp.cultura.gov.it. 3600 IN SRV 0 1 993 imap.cultura.gov.it."));
        assert!(z.contains("_imap._tcp.cultura.gov.it. 3600 IN SRV 0 0 0 ."));
        assert!(
            z.contains("_submission._tcp.cultura.gov.it. 3600 IN SRV 0 1 587 smtp.cultura.gov.it.")
        );
        assert!(z.contains("autodiscover.cultura.gov.it. 3600 IN CNAME config.cultura.gov.it."));
        let g = guide(
            &c,
            &User {
                address: "anna@cultura.gov.it".into(),
                old_address: Some("anna@beniculturali.it".into()),
            },
        );
        assert!(g.contains("anna@beniculturali.it") && g.contains("https://attiva.cultura.gov.it"));
        assert!(g.contains("lang=\"it\"") && g.contains("lang=\"en\""));
    }
}

/// Everything `clients generate` writes and `serve` answers, for one campaign.
#[derive(Debug, Clone)]
pub struct Site {
    /// The settings.
    pub clients: ClientsSection,
    /// The users, by lower-case address.
    pub users: std::collections::BTreeMap<String, User>,
    /// The mail domains served.
    pub domains: Vec<String>,
    /// Certificate chain and key (PEM) that sign the Apple profiles.
    pub signer: Option<(Vec<u8>, String)>,
}

/// An HTTP answer: status, content type, body.
pub type Answer = (u16, &'static str, Vec<u8>);

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Site {
    /// The site of a campaign: every account with a target address.
    pub fn new(clients: ClientsSection, users: Vec<User>) -> Site {
        let mut domains: Vec<String> = clients
            .domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        if domains.is_empty() {
            for u in &users {
                let d = u
                    .address
                    .rsplit('@')
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if !d.is_empty() && !domains.contains(&d) {
                    domains.push(d);
                }
            }
        }
        let users = users
            .into_iter()
            .map(|u| (u.address.to_ascii_lowercase(), u))
            .collect();
        Site {
            clients,
            users,
            domains,
            signer: None,
        }
    }

    /// A user's profile: signed when a signer is configured.
    pub fn profile(&self, address: &str) -> Result<Vec<u8>, String> {
        let plist = mobileconfig(&self.clients, address);
        match &self.signer {
            None => Ok(plist.into_bytes()),
            Some((cert, key)) => sign_profile(plist.as_bytes(), cert, key),
        }
    }

    fn user(&self, address: &str) -> Option<&User> {
        self.users.get(&address.trim().to_ascii_lowercase())
    }

    fn domain_of_host(&self, host: &str) -> Option<&String> {
        let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
        let bare = host
            .strip_prefix("autoconfig.")
            .or_else(|| host.strip_prefix("autodiscover."))
            .unwrap_or(&host);
        self.domains.iter().find(|d| d.as_str() == bare)
    }

    /// Answer one request. Unknown addresses and domains get an error, never another user's
    /// settings.
    pub fn respond(&self, method: &str, target: &str, host: &str, body: &str) -> Answer {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let param = |name: &str| {
            query.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                k.eq_ignore_ascii_case(name).then(|| percent_decode(v))
            })
        };
        let lower = path.to_ascii_lowercase();
        let not_found = |what: String| (404, "text/plain; charset=utf-8", what.into_bytes());
        if lower == "/.well-known/autoconfig/mail/config-v1.1.xml"
            || lower == "/mail/config-v1.1.xml"
        {
            let domain = match param("emailaddress") {
                Some(a) => match self.user(&a) {
                    Some(u) => u.address.rsplit('@').next().map(str::to_ascii_lowercase),
                    None => return not_found(format!("unknown address {a}\n")),
                },
                None => self.domain_of_host(host).cloned(),
            };
            return match domain {
                Some(d) => (
                    200,
                    "application/xml; charset=utf-8",
                    autoconfig(&self.clients, &d).into_bytes(),
                ),
                None => not_found(format!("no mail domain for host {host}\n")),
            };
        }
        if lower == "/autodiscover/autodiscover.xml" {
            if method != "POST" {
                return (
                    405,
                    "text/plain; charset=utf-8",
                    "Autodiscover needs POST\n".into(),
                );
            }
            return match autodiscover_request_address(body)
                .as_deref()
                .and_then(|a| self.user(a))
            {
                Some(u) => (
                    200,
                    "application/xml; charset=utf-8",
                    autodiscover(&self.clients, &u.address).into_bytes(),
                ),
                None => (
                    200,
                    "application/xml; charset=utf-8",
                    autodiscover_error("Invalid Request: unknown e-mail address").into_bytes(),
                ),
            };
        }
        if let Some(a) = lower
            .strip_prefix("/profile/")
            .and_then(|r| r.strip_suffix(".mobileconfig"))
        {
            return match self.user(&percent_decode(a)) {
                Some(u) => match self.profile(&u.address) {
                    Ok(p) => (200, "application/x-apple-aspen-config", p),
                    Err(e) => (500, "text/plain; charset=utf-8", e.into_bytes()),
                },
                None => not_found("unknown address\n".into()),
            };
        }
        if let Some(a) = lower.strip_prefix("/guide/") {
            return match self.user(&percent_decode(a)) {
                Some(u) => (
                    200,
                    "text/html; charset=utf-8",
                    guide(&self.clients, u).into_bytes(),
                ),
                None => not_found("unknown address\n".into()),
            };
        }
        not_found("not here\n".into())
    }

    /// Write every file into `dir`: autoconfig and DNS per domain, a profile, a guide and an
    /// Autodiscover answer per user. Returns how many files.
    pub fn generate(&self, dir: &std::path::Path) -> Result<usize, crate::ConfigError> {
        let mut n = 0;
        let mut put = |rel: String, text: &[u8]| {
            let p = dir.join(&rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    crate::ConfigError(format!("cannot create directory {}: {e}", parent.display()))
                })?;
            }
            std::fs::write(&p, text)
                .map_err(|e| crate::ConfigError(format!("cannot write {}: {e}", p.display())))?;
            n += 1;
            Ok::<(), crate::ConfigError>(())
        };
        for d in &self.domains {
            let config = autoconfig(&self.clients, d);
            put(format!("autoconfig/{d}/config-v1.1.xml"), config.as_bytes())?;
            put(format!("dns/{d}.zone"), dns(&self.clients, d).as_bytes())?;
        }
        for u in self.users.values() {
            let a = &u.address;
            // File names come from addresses: nothing that could leave `dir`.
            if a.contains(['/', '\\', '\0']) || a.starts_with('.') {
                return Err(crate::ConfigError(format!(
                    "address {a:?} cannot be a file name; fix it in the accounts file"
                )));
            }
            let profile = self
                .profile(a)
                .map_err(|e| crate::ConfigError(format!("[clients] profile signing: {e}")))?;
            put(format!("profiles/{a}.mobileconfig"), &profile)?;
            put(
                format!("guides/{a}.html"),
                guide(&self.clients, u).as_bytes(),
            )?;
            let answer = autodiscover(&self.clients, a);
            put(format!("autodiscover/{a}.xml"), answer.as_bytes())?;
        }
        Ok(n)
    }
}

/// Sign a profile (CMS SignedData with the profile inside, RSA with SHA-256), as Apple devices
/// expect a signed `.mobileconfig`: `cert_pem` holds the signer certificate first, then its
/// chain; `key_pem` its private key (PKCS#8 or PKCS#1, unencrypted).
pub fn sign_profile(profile: &[u8], cert_pem: &[u8], key_pem: &str) -> Result<Vec<u8>, String> {
    let (key, certs) = trasloco_pec::sign::load_pem(cert_pem, key_pem)?;
    let signer = trasloco_pec::sign::Signer {
        key: &key,
        cert: &certs[0],
        chain: &certs[1..],
        sha1: false,
        at: std::time::SystemTime::now(),
    };
    trasloco_pec::sign::sign(profile, &signer, true)
}
