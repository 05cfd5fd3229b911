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
    /// Which addresses get settings: `domain` (default: every address in the served domains,
    /// new staff included) or `listed` (only the accounts file's, old addresses included).
    #[serde(default = "every_address")]
    pub addresses: String,
    /// Guides and profiles only through links that carry a per-user key (sent in each user's
    /// notification), so nobody can look up which addresses exist or what they became.
    #[serde(default)]
    pub private_links: bool,
    /// The secret the per-user keys are made from (any text; keep it), relative to the
    /// campaign file. Needed with `private_links`.
    pub link_secret_file: Option<std::path::PathBuf>,
    /// Requests `serve` answers per client address and minute (default 60); more get 429.
    #[serde(default = "per_minute")]
    pub lookups_per_minute: u32,
    /// The cutover day (YYYY-MM-DD), named in the guides.
    pub cutover: Option<String>,
}

fn every_address() -> String {
    "domain".into()
}

fn per_minute() -> u32 {
    60
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
    /// The person's name, when the accounts file has one.
    pub display_name: Option<String>,
}

impl User {
    /// The name clients show for the account: the person's, else the address.
    pub fn shown_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.address)
    }
}

/// Whether `h` is a host name (or an IPv4 address) as DNS and mail clients take it: labels of
/// letters, digits and hyphens, no scheme, port, path or white space.
pub fn valid_host(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Why an address cannot go into client settings, if it cannot: one `@`, a domain that is a
/// host name, and a local part without white space, quotes, angle brackets or controls.
pub fn address_problem(a: &str) -> Option<String> {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return Some("it has no @".into());
    };
    if local.is_empty()
        || local.contains('@')
        || local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'<>\\/,;:()[]".contains(c))
    {
        return Some(
            "its local part has white space, quotes or other characters addresses cannot hold"
                .into(),
        );
    }
    if !valid_host(domain) {
        return Some(format!("{domain:?} is not a domain name"));
    }
    None
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
        for (name, host) in [
            ("imap.host", Some(&self.imap.host)),
            ("pop3.host", self.pop3.as_ref().map(|p| &p.host)),
            ("smtp.host", Some(&self.smtp.host)),
            ("serve_host", self.serve_host.as_ref()),
        ] {
            if let Some(h) = host
                && !valid_host(h)
            {
                return Err(format!(
                    "[clients] {name} {h:?} is not a host name: write the name alone, such as \"imap.example.org\" (no scheme, port or path)"
                ));
            }
        }
        for (name, url) in [
            ("help_url", &self.help_url),
            ("webmail_url", &self.webmail_url),
            ("activation_url", &self.activation_url),
        ] {
            if let Some(u) = url
                && (!(u.starts_with("https://") || u.starts_with("http://"))
                    || u.chars().any(|c| c.is_whitespace() || c.is_control()))
            {
                return Err(format!(
                    "[clients] {name} {u:?} must be a web address starting with https:// and without spaces"
                ));
            }
        }
        for (name, text) in [
            ("display_name", Some(&self.display_name)),
            ("short_name", self.short_name.as_ref()),
        ] {
            if let Some(t) = text
                && t.chars().any(char::is_control)
            {
                return Err(format!("[clients] {name} must be one line of text"));
            }
        }
        if !["domain", "listed"].contains(&self.addresses.as_str()) {
            return Err("[clients] addresses must be \"domain\" or \"listed\"".into());
        }
        if self.private_links && self.link_secret_file.is_none() {
            return Err(
                "[clients] private_links needs link_secret_file: a file holding any secret text"
                    .into(),
            );
        }
        if let Some(d) = &self.cutover
            && chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err()
        {
            return Err(format!(
                "[clients] cutover {d:?} is not a date: write YYYY-MM-DD"
            ));
        }
        Ok(())
    }
}

fn xml(s: &str) -> String {
    esc(s)
}

/// Thunderbird's autoconfig file for a domain (`config-v1.1.xml`). `login` gives the login
/// name outright (an old address asks: the login is the new one), else the placeholder.
pub fn autoconfig(c: &ClientsSection, domain: &str, login: Option<&str>) -> String {
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
        let name = login.map_or_else(|| c.login_placeholder().to_string(), xml);
        let _ = writeln!(x, "      <username>{name}</username>");
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
    Some(xml_text(body[start..end].trim()))
}

/// XML character data with its entity and character references resolved (`a&amp;b` is how a
/// conforming client sends `a&b`).
fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(end) = after.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = after;
            continue;
        };
        let name = &after[..end];
        let c = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => name
                .strip_prefix("#x")
                .or_else(|| name.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The Autodiscover answer for an old address: ask again with the new one (Outlook and
/// Thunderbird follow `redirectAddr`).
pub fn autodiscover_redirect(new_address: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n    <Account>\n      <AccountType>email</AccountType>\n      <Action>redirectAddr</Action>\n      <RedirectAddr>{}</RedirectAddr>\n    </Account>\n  </Response>\n</Autodiscover>\n",
        xml(new_address)
    )
}

/// Outlook's Autodiscover (POX) answer for a user.
pub fn autodiscover(c: &ClientsSection, user: &User) -> String {
    let address = user.address.as_str();
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n",
    );
    let _ = writeln!(
        x,
        "    <User>\n      <DisplayName>{}</DisplayName>\n    </User>",
        xml(user.shown_name())
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
pub fn mobileconfig(c: &ClientsSection, user: &User) -> String {
    let address = user.address.as_str();
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
      <key>EmailAccountName</key><string>{person}</string>
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
        person = xml(user.shown_name()),
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

/// A day written out in Italian and in English.
fn day_words(d: chrono::NaiveDate) -> (String, String) {
    use chrono::Datelike;
    const MESI: [&str; 12] = [
        "gennaio",
        "febbraio",
        "marzo",
        "aprile",
        "maggio",
        "giugno",
        "luglio",
        "agosto",
        "settembre",
        "ottobre",
        "novembre",
        "dicembre",
    ];
    (
        format!("{} {} {}", d.day(), MESI[d.month0() as usize], d.year()),
        d.format("%-d %B %Y").to_string(),
    )
}

fn link(url: &str) -> String {
    format!("<a href=\"{0}\">{0}</a>", esc(url))
}

/// A print-friendly page for one user, in Italian and English. `profile_link` is where the
/// user's Apple profile is. The wording holds whether the page is read before or after the
/// move.
pub fn guide(c: &ClientsSection, u: &User, profile_link: &str) -> String {
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
    let when = c
        .cutover
        .as_deref()
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .map(day_words);
    let (quando, when_en) = match &when {
        Some((it, en)) => (
            format!("Il passaggio al nuovo servizio avviene il <b>{it}</b>. "),
            format!("The move to the new service takes place on <b>{en}</b>. "),
        ),
        None => (String::new(), String::new()),
    };
    let moved_it = "Il contenuto della casella viene trasferito per lei dal servizio informatico: non deve fare copie né inoltri.";
    let moved_en = "Your mailbox content is moved for you by the IT service: you need not back anything up or forward anything.";
    let greeting = u
        .display_name
        .as_deref()
        .map(|n| format!("<p>{}</p>", esc(n)))
        .unwrap_or_default();
    let change = match &u.old_address {
        Some(old) => format!(
            "{greeting}<p lang=\"it\">{quando}Il suo indirizzo cambia da <b>{}</b> a <b>{addr}</b>. Dal passaggio, la posta inviata al vecchio indirizzo le arriva comunque al nuovo, e chi le scrive da fuori dell'organizzazione riceve l'indicazione del nuovo indirizzo. {moved_it}</p><p lang=\"en\">{when_en}Your address changes from <b>{}</b> to <b>{addr}</b>. From the move on, mail sent to the old address still reaches you at the new one, and people writing from outside the organisation are told the new address. {moved_en}</p>",
            esc(old),
            esc(old)
        ),
        None => format!(
            "{greeting}<p lang=\"it\">{quando}Il suo indirizzo resta <b>{addr}</b>; cambiano solo i server. {moved_it}</p><p lang=\"en\">{when_en}Your address stays <b>{addr}</b>; only the servers change. {moved_en}</p>"
        ),
    };
    let profile = link(profile_link);
    let steps = format!(
        "<h2>Come fare / How to</h2>\
<h3>Outlook</h3><ol><li>File → Aggiungi account / Add account.</li><li>Scriva / Type <b>{addr}</b> e / and <i>Connetti / Connect</i>: Outlook trova da solo le impostazioni / finds the settings by itself.</li><li>Inserisca la password / Enter your password.</li></ol>\
<h3>Thunderbird</h3><ol><li>Impostazioni account → Aggiungi account di posta / Account settings → Add mail account.</li><li>Nome, <b>{addr}</b>, password: Thunderbird trova le impostazioni / finds the settings.</li><li>Se non le trova, usi la tabella sopra / If not, use the table above.</li></ol>\
<h3>Apple Mail (macOS), iPhone, iPad</h3><ol><li>Apra il suo profilo di configurazione / Open your configuration profile: {profile}</li><li>Impostazioni → Profilo scaricato → Installa / Settings → Profile downloaded → Install.</li><li>Inserisca la password quando richiesto / Enter your password when asked.</li></ol>\
<h3>Android (Gmail, Outlook, K-9/Thunderbird)</h3><ol><li>Aggiungi account → Altro / Personale (IMAP) / Add account → Other / Personal (IMAP).</li><li><b>{addr}</b> e password; se l'app chiede i server, usi la tabella sopra / and password; if the app asks for servers, use the table above.</li></ol>"
    );
    let webmail = c
        .webmail_url
        .as_deref()
        .map(|w| {
            format!(
                "<h3>Webmail</h3><p>Dal browser, senza installare nulla / From a browser, nothing to install: {}</p>",
                link(w)
            )
        })
        .unwrap_or_default();
    let phishing = format!(
        "<h2>Attenzione / Beware</h2><p lang=\"it\">Non le chiederemo mai la password per e-mail o telefono. {} Diffidi di messaggi che la invitano con urgenza a «riattivare» la casella.</p><p lang=\"en\">We will never ask for your password by e-mail or phone. {} Distrust messages urging you to \"reactivate\" your mailbox.</p>",
        c.activation_url
            .as_deref()
            .map(|u| format!(
                "L'unica pagina autentica è {}: controlli l'indirizzo nel browser.",
                link(u)
            ))
            .unwrap_or_default(),
        c.activation_url
            .as_deref()
            .map(|u| format!(
                "The only genuine page is {}: check the address in your browser.",
                link(u)
            ))
            .unwrap_or_default()
    );
    let help = c
        .help_url
        .as_deref()
        .map(|h| format!("<p>Aiuto / Help: {}</p>", link(h)))
        .unwrap_or_default();
    let body = format!(
        "<h1>{} — posta / mail: {addr}</h1><h2>Cosa cambia / What changes</h2>{change}<h2>Impostazioni / Settings</h2>{settings}{steps}{webmail}{phishing}{help}",
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
            webmail_url: Some("https://webmail.cultura.gov.it".into()),
            activation_url: Some("https://attiva.cultura.gov.it".into()),
            password_unchanged: true,
            serve_host: Some("config.cultura.gov.it".into()),
            profile_sign_cert: None,
            profile_sign_key: None,
            addresses: "domain".into(),
            private_links: false,
            link_secret_file: None,
            lookups_per_minute: 60,
            cutover: Some("2027-01-15".into()),
        }
    }

    fn user(address: &str, old: Option<&str>, name: Option<&str>) -> User {
        User {
            address: address.into(),
            old_address: old.map(str::to_string),
            display_name: name.map(str::to_string),
        }
    }

    fn body(a: &Answer) -> String {
        String::from_utf8_lossy(&a.2).into_owned()
    }

    fn autodiscover_for(site: &Site, address: &str) -> String {
        let req = format!(
            "<Autodiscover><Request><EMailAddress>{address}</EMailAddress></Request></Autodiscover>"
        );
        body(&site.respond("POST", "/Autodiscover/Autodiscover.xml", "x", &req))
    }

    #[test]
    fn the_site_answers_known_addresses_only() {
        let mut c = section();
        c.addresses = "listed".into();
        let site = Site::new(c, vec![user("anna@cultura.gov.it", None, None)]);
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
        let b = autodiscover_for(&site, "eve@cultura.gov.it");
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
    fn old_addresses_are_sent_to_the_new_ones() {
        let site = Site::new(
            section(),
            vec![user(
                "anna@cultura.gov.it",
                Some("anna@beniculturali.it"),
                Some("Anna Rossi"),
            )],
        );
        assert_eq!(site.old_domains, ["beniculturali.it"]);
        let b = autodiscover_for(&site, "Anna@BeniCulturali.it");
        assert!(
            b.contains("<Action>redirectAddr</Action>")
                && b.contains("<RedirectAddr>anna@cultura.gov.it</RedirectAddr>"),
            "{b}"
        );
        let b = autodiscover_for(&site, "anna@cultura.gov.it");
        assert!(b.contains("<DisplayName>Anna Rossi</DisplayName>"), "{b}");
        // Thunderbird has no redirect: the new server and the new login, named outright.
        let a = site.respond(
            "GET",
            "/mail/config-v1.1.xml?emailaddress=anna%40beniculturali.it",
            "autoconfig.beniculturali.it",
            "",
        );
        assert_eq!(a.0, 200);
        assert!(body(&a).contains("<username>anna@cultura.gov.it</username>"));
        let a = site.respond(
            "GET",
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            "autoconfig.beniculturali.it",
            "",
        );
        assert_eq!(a.0, 200, "the old domain is served");
        assert_eq!(
            site.certificate_names(),
            [
                "config.cultura.gov.it",
                "autoconfig.cultura.gov.it",
                "autodiscover.cultura.gov.it",
                "autoconfig.beniculturali.it",
                "autodiscover.beniculturali.it"
            ]
        );
        let g = body(&site.respond("GET", "/guide/anna@beniculturali.it", "x", ""));
        assert!(g.contains("anna@cultura.gov.it") && g.contains("Anna Rossi"));
        let p = body(&site.respond("GET", "/profile/anna@cultura.gov.it.mobileconfig", "x", ""));
        assert!(p.contains("<key>EmailAccountName</key><string>Anna Rossi</string>"));
    }

    #[test]
    fn new_staff_get_settings_unless_only_listed_addresses_are_served() {
        let site = Site::new(section(), vec![user("anna@cultura.gov.it", None, None)]);
        let b = autodiscover_for(&site, "nuovo.assunto@cultura.gov.it");
        assert!(
            b.contains("<LoginName>nuovo.assunto@cultura.gov.it</LoginName>"),
            "{b}"
        );
        let a = site.respond(
            "GET",
            "/mail/config-v1.1.xml?emailaddress=nuovo.assunto%40cultura.gov.it",
            "x",
            "",
        );
        assert_eq!(a.0, 200);
        assert!(autodiscover_for(&site, "eve@evil.example").contains("<ErrorCode>600"));
        let mut listed = section();
        listed.addresses = "listed".into();
        let site = Site::new(listed, vec![user("anna@cultura.gov.it", None, None)]);
        assert!(autodiscover_for(&site, "nuovo.assunto@cultura.gov.it").contains("<ErrorCode>600"));
        let a = site.respond(
            "GET",
            "/mail/config-v1.1.xml?emailaddress=nuovo.assunto%40cultura.gov.it",
            "x",
            "",
        );
        assert_eq!(a.0, 404);
    }

    #[test]
    fn private_links_need_the_users_key() {
        let mut site = Site::new(
            section(),
            vec![user(
                "anna@cultura.gov.it",
                Some("anna@beniculturali.it"),
                None,
            )],
        );
        site.link_secret = Some(b"segreto".to_vec());
        let key = site.link_key("anna@cultura.gov.it").unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(
            site.guide_url("anna@cultura.gov.it"),
            format!("https://config.cultura.gov.it/guide/anna@cultura.gov.it?key={key}")
        );
        for path in [
            "/guide/anna@cultura.gov.it".to_string(),
            "/guide/anna@cultura.gov.it?key=00000000000000000000000000000000".into(),
            "/profile/anna@cultura.gov.it.mobileconfig".into(),
            "/guide/nessuno@cultura.gov.it".into(),
        ] {
            assert_eq!(site.respond("GET", &path, "x", "").0, 404, "{path}");
        }
        for path in [
            format!("/guide/anna@cultura.gov.it?key={key}"),
            format!("/guide/anna@beniculturali.it?key={key}"),
            format!("/profile/anna@cultura.gov.it.mobileconfig?key={key}"),
        ] {
            assert_eq!(site.respond("GET", &path, "x", "").0, 200, "{path}");
        }
        let g = body(&site.respond(
            "GET",
            &format!("/guide/anna@cultura.gov.it?key={key}"),
            "x",
            "",
        ));
        assert!(
            g.contains(&format!(
                "https://config.cultura.gov.it/profile/anna@cultura.gov.it.mobileconfig?key={key}"
            )),
            "the profile link carries the key: {g}"
        );
    }

    #[test]
    fn requests_are_read_as_http_and_xml_define_them() {
        let site = Site::new(
            section(),
            vec![
                user("a&b@cultura.gov.it", None, None),
                user("protocollo+pec@cultura.gov.it", None, None),
            ],
        );
        let b = autodiscover_for(&site, "a&amp;b@cultura.gov.it");
        assert!(
            b.contains("<LoginName>a&amp;b@cultura.gov.it</LoginName>"),
            "{b}"
        );
        assert_eq!(
            xml_text("x&#64;y &#x41; &lt;&gt;&quot;&apos; &bogus; & end"),
            "x@y A <>\"' &bogus; & end"
        );
        let g = site.respond("GET", "/guide/protocollo+pec@cultura.gov.it", "x", "");
        assert_eq!(g.0, 200, "a plus in a path is a plus");
        let g = site.respond("GET", "/guide/protocollo%2Bpec@cultura.gov.it", "x", "");
        assert_eq!(g.0, 200);
        assert_eq!(
            site.respond("HEAD", "/guide/protocollo+pec@cultura.gov.it", "x", "")
                .0,
            200
        );
        assert_eq!(
            site.respond("POST", "/guide/protocollo+pec@cultura.gov.it", "x", "")
                .0,
            405
        );
        assert_eq!(
            site.respond("DELETE", "/mail/config-v1.1.xml", "x", "").0,
            405
        );
        assert_eq!(
            site.respond("GET", "/autodiscover/autodiscover.xml", "x", "")
                .0,
            405
        );
        assert_eq!(allowed_methods("/AutoDiscover/AutoDiscover.xml"), "POST");
        assert_eq!(allowed_methods("/guide/x"), "GET, HEAD");
    }

    #[test]
    fn host_names_and_addresses_are_checked() {
        for ok in [
            "imap.example.org",
            "mail-1.example.org.",
            "192.0.2.10",
            "localhost",
        ] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in [
            "imaps://imap.example.org",
            "imap.example.org\nevil IN A 1.2.3.4",
            "imap.example.org:993",
            "",
            "-a.example",
            "a..b",
            "imap example.org",
        ] {
            assert!(!valid_host(bad), "{bad:?}");
        }
        let mut c = section();
        c.imap.host = "imaps://imap.cultura.gov.it".into();
        assert!(c.check().unwrap_err().contains("[clients] imap.host"));
        let mut c = section();
        c.serve_host = Some("config.cultura.gov.it\nx".into());
        assert!(c.check().unwrap_err().contains("serve_host"));
        let mut c = section();
        c.webmail_url = Some("webmail.cultura.gov.it".into());
        assert!(c.check().unwrap_err().contains("webmail_url"));
        let mut c = section();
        c.private_links = true;
        assert!(c.check().unwrap_err().contains("link_secret_file"));
        let mut c = section();
        c.cutover = Some("15/01/2027".into());
        assert!(c.check().unwrap_err().contains("YYYY-MM-DD"));
        assert!(section().check().is_ok());
        assert_eq!(address_problem("anna@cultura.gov.it"), None);
        assert_eq!(address_problem("a&b+pec@cultura.gov.it"), None);
        for bad in [
            "anna rossi@cultura.gov.it",
            "\"anna\"@cultura.gov.it",
            "anna",
            "anna@cultura gov.it",
            "a<b@x.it",
        ] {
            assert!(address_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn addresses_never_leave_the_output_directory() {
        let dir = std::env::temp_dir().join(format!("trasloco-clients-{}", std::process::id()));
        let site = Site::new(
            section(),
            vec![user("../../etc/x@cultura.gov.it", None, None)],
        );
        let e = site.generate(&dir).unwrap_err().0;
        assert!(e.contains("cannot be a file name"), "{e}");
        assert!(!dir.exists(), "nothing written");
    }

    #[test]
    fn generated_files_carry_the_settings() {
        let c = section();
        let a = autoconfig(&c, "cultura.gov.it", None);
        assert!(
            a.contains("<socketType>SSL</socketType>")
                && a.contains("<socketType>STARTTLS</socketType>")
        );
        assert!(a.contains("<username>%EMAILADDRESS%</username>"));
        let anna = user("anna@cultura.gov.it", Some("anna@beniculturali.it"), None);
        let d = autodiscover(&c, &anna);
        assert!(
            d.contains("<LoginName>anna@cultura.gov.it</LoginName>")
                && d.contains("<Type>SMTP</Type>")
                && d.contains("<DisplayName>anna@cultura.gov.it</DisplayName>")
        );
        assert_eq!(
            autodiscover_request_address("<Autodiscover><Request><EMailAddress> anna@cultura.gov.it </EMailAddress></Request></Autodiscover>").as_deref(),
            Some("anna@cultura.gov.it")
        );
        let m = mobileconfig(&c, &anna);
        assert_eq!(m, mobileconfig(&c, &anna), "stable UUIDs");
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
            &anna,
            "https://config.cultura.gov.it/profile/anna@cultura.gov.it.mobileconfig",
        );
        assert!(g.contains("anna@beniculturali.it"));
        assert!(g.contains("<a href=\"https://attiva.cultura.gov.it\">"));
        assert!(g.contains("<a href=\"https://webmail.cultura.gov.it\">"));
        assert!(g.contains(
            "<a href=\"https://config.cultura.gov.it/profile/anna@cultura.gov.it.mobileconfig\">"
        ));
        assert!(
            g.contains("15 gennaio 2027") && g.contains("15 January 2027"),
            "{g}"
        );
        assert!(!g.contains("già stato trasferito") && !g.contains("has already been moved"));
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
    /// Old addresses (lower case) and the new address they became (lower case).
    pub old: std::collections::BTreeMap<String, String>,
    /// The mail domains served: the new ones.
    pub domains: Vec<String>,
    /// The old domains of renamed addresses: their clients are sent to the new settings.
    pub old_domains: Vec<String>,
    /// Certificate chain and key (PEM) that sign the Apple profiles.
    pub signer: Option<(Vec<u8>, String)>,
    /// The secret per-user link keys are made from (`private_links`).
    pub link_secret: Option<Vec<u8>>,
}

/// An HTTP answer: status, content type, body.
pub type Answer = (u16, &'static str, Vec<u8>);

/// The routes `serve` answers and the methods each takes (for 405 and `Allow`).
pub fn allowed_methods(path: &str) -> &'static str {
    let lower = path.to_ascii_lowercase();
    if lower == "/autodiscover/autodiscover.xml" {
        "POST"
    } else {
        "GET, HEAD"
    }
}

/// How an address asked for settings: a listed user, an old address, or an address of a
/// served domain that is not in the accounts file (with `addresses = "domain"`).
enum Asked {
    Listed(User),
    Old(User),
    Unlisted(User),
}

impl Asked {
    fn user(&self) -> &User {
        match self {
            Asked::Listed(u) | Asked::Old(u) | Asked::Unlisted(u) => u,
        }
    }
}

impl Site {
    /// The site of a campaign: every account with a target address.
    pub fn new(clients: ClientsSection, users: Vec<User>) -> Site {
        let domain_of = |a: &str| a.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
        let mut domains: Vec<String> = clients
            .domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        if domains.is_empty() {
            for u in &users {
                let d = domain_of(&u.address);
                if !d.is_empty() && !domains.contains(&d) {
                    domains.push(d);
                }
            }
        }
        let mut old_domains: Vec<String> = Vec::new();
        let mut old = std::collections::BTreeMap::new();
        for u in &users {
            if let Some(o) = &u.old_address {
                old.insert(o.to_ascii_lowercase(), u.address.to_ascii_lowercase());
                let d = domain_of(o);
                if !d.is_empty() && !domains.contains(&d) && !old_domains.contains(&d) {
                    old_domains.push(d);
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
            old,
            domains,
            old_domains,
            signer: None,
            link_secret: None,
        }
    }

    /// A user's profile: signed when a signer is configured.
    pub fn profile(&self, user: &User) -> Result<Vec<u8>, String> {
        let plist = mobileconfig(&self.clients, user);
        match &self.signer {
            None => Ok(plist.into_bytes()),
            Some((cert, key)) => sign_profile(plist.as_bytes(), cert, key),
        }
    }

    /// The key in a user's private links (`private_links`), if links carry one.
    pub fn link_key(&self, address: &str) -> Option<String> {
        let secret = self.link_secret.as_ref()?;
        let mac = trasloco_core::escapes::hmac_sha256(
            secret,
            format!("trasloco link {}", address.to_ascii_lowercase()).as_bytes(),
        );
        Some(hex::encode(&mac[..16]))
    }

    fn key_param(&self, address: &str) -> String {
        self.link_key(address)
            .map(|k| format!("?key={k}"))
            .unwrap_or_default()
    }

    /// Where a user's guide is served (absolute with `serve_host`).
    pub fn guide_url(&self, address: &str) -> String {
        format!(
            "{}/guide/{address}{}",
            self.base_url(),
            self.key_param(address)
        )
    }

    /// Where a user's profile is served (absolute with `serve_host`).
    pub fn profile_url(&self, address: &str) -> String {
        format!(
            "{}/profile/{address}.mobileconfig{}",
            self.base_url(),
            self.key_param(address)
        )
    }

    fn base_url(&self) -> String {
        self.clients
            .serve_host
            .as_deref()
            .map(|h| format!("https://{h}"))
            .unwrap_or_default()
    }

    /// Who an address is: listed, an old address, or (with `addresses = "domain"`) anyone in a
    /// served domain.
    fn resolve(&self, address: &str) -> Option<Asked> {
        let a = address.trim().to_ascii_lowercase();
        if let Some(u) = self.users.get(&a) {
            return Some(Asked::Listed(u.clone()));
        }
        if let Some(u) = self.old.get(&a).and_then(|n| self.users.get(n)) {
            return Some(Asked::Old(u.clone()));
        }
        let domain = a.rsplit_once('@').map(|(_, d)| d)?;
        (self.clients.addresses == "domain"
            && self.domains.iter().any(|d| d == domain)
            && address_problem(&a).is_none())
        .then(|| {
            Asked::Unlisted(User {
                address: a.clone(),
                old_address: None,
                display_name: None,
            })
        })
    }

    fn domain_of_host(&self, host: &str) -> Option<&String> {
        let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
        let bare = host
            .strip_prefix("autoconfig.")
            .or_else(|| host.strip_prefix("autodiscover."))
            .unwrap_or(&host);
        self.domains
            .iter()
            .chain(&self.old_domains)
            .find(|d| d.as_str() == bare)
    }

    /// The certificate names `serve` answers under: `autoconfig.` and `autodiscover.` of every
    /// domain, old ones included, and `serve_host`.
    pub fn certificate_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.clients.serve_host.iter().cloned().collect();
        for d in self.domains.iter().chain(&self.old_domains) {
            names.push(format!("autoconfig.{d}"));
            names.push(format!("autodiscover.{d}"));
        }
        names
    }

    /// Answer one request. Unknown addresses and domains get an error, never another user's
    /// settings. HEAD is answered as GET (the server leaves the body out).
    pub fn respond(&self, method: &str, target: &str, host: &str, body: &str) -> Answer {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let param = |name: &str| {
            query.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                k.eq_ignore_ascii_case(name)
                    .then(|| trasloco_core::escapes::percent_decode(v, true))
                    .flatten()
            })
        };
        let lower = path.to_ascii_lowercase();
        let text = "text/plain; charset=utf-8";
        let not_found = |what: String| (404, text, what.into_bytes());
        let is_get = method == "GET" || method == "HEAD";
        let wrong_method = || {
            (
                405,
                text,
                format!("use {}\n", allowed_methods(path)).into_bytes(),
            )
        };
        if lower == "/.well-known/autoconfig/mail/config-v1.1.xml"
            || lower == "/mail/config-v1.1.xml"
        {
            if !is_get {
                return wrong_method();
            }
            let (domain, login) = match param("emailaddress") {
                Some(a) => match self.resolve(&a) {
                    Some(Asked::Old(u)) => (
                        u.address.rsplit('@').next().map(str::to_ascii_lowercase),
                        Some(self.clients.login(&u.address)),
                    ),
                    Some(asked) => (
                        asked
                            .user()
                            .address
                            .rsplit('@')
                            .next()
                            .map(str::to_ascii_lowercase),
                        None,
                    ),
                    None => return not_found(format!("unknown address {a}\n")),
                },
                None => (self.domain_of_host(host).cloned(), None),
            };
            return match domain {
                Some(d) => (
                    200,
                    "application/xml; charset=utf-8",
                    autoconfig(&self.clients, &d, login.as_deref()).into_bytes(),
                ),
                None => not_found(format!("no mail domain for host {host}\n")),
            };
        }
        if lower == "/autodiscover/autodiscover.xml" {
            if method != "POST" {
                return wrong_method();
            }
            let xml_answer = |x: String| (200, "application/xml; charset=utf-8", x.into_bytes());
            return match autodiscover_request_address(body).and_then(|a| self.resolve(&a)) {
                Some(Asked::Old(u)) => xml_answer(autodiscover_redirect(&u.address)),
                Some(asked) => xml_answer(autodiscover(&self.clients, asked.user())),
                None => xml_answer(autodiscover_error(
                    "Invalid Request: unknown e-mail address",
                )),
            };
        }
        let personal = if lower.starts_with("/profile/") && lower.ends_with(".mobileconfig") {
            Some((true, &path[9..path.len() - 13]))
        } else if lower.starts_with("/guide/") {
            Some((false, &path[7..]))
        } else {
            None
        };
        if let Some((is_profile, a)) = personal {
            if !is_get {
                return wrong_method();
            }
            // A broken escape names nobody.
            let asked =
                trasloco_core::escapes::percent_decode(a, false).and_then(|a| self.resolve(&a));
            // With private links, only the right key opens a page: the same answer for a
            // wrong key and an unknown address, so nothing tells which addresses exist.
            let allowed = asked.as_ref().is_some_and(|x| {
                self.link_secret.is_none()
                    || param("key").as_deref() == self.link_key(&x.user().address).as_deref()
            });
            let Some(asked) = asked.filter(|_| allowed) else {
                return not_found("unknown address\n".into());
            };
            let u = asked.user();
            return if is_profile {
                match self.profile(u) {
                    Ok(p) => (200, "application/x-apple-aspen-config", p),
                    Err(e) => (500, text, e.into_bytes()),
                }
            } else {
                (
                    200,
                    "text/html; charset=utf-8",
                    guide(&self.clients, u, &self.profile_url(&u.address)).into_bytes(),
                )
            };
        }
        not_found("not here\n".into())
    }

    /// Write every file into `dir`: autoconfig and DNS per domain (old domains included), a
    /// profile, a guide and an Autodiscover answer per user, `links.csv` (each user's guide
    /// and profile links, for the notification mail) and `certificate-names.txt`. Everything
    /// is written into a new directory beside `dir` first and moved into place at the end,
    /// so a failure leaves `dir` as it was. Returns how many files.
    pub fn generate(&self, dir: &std::path::Path) -> Result<usize, crate::ConfigError> {
        let err = |what: String| crate::ConfigError(what);
        for u in self.users.values() {
            let a = &u.address;
            // File names come from addresses: nothing that could leave `dir`.
            if a.contains(['/', '\\', '\0']) || a.starts_with('.') {
                return Err(err(format!(
                    "address {a:?} cannot be a file name; fix it in the accounts file"
                )));
            }
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "site".into());
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .map_err(|e| err(format!("cannot create directory {}: {e}", parent.display())))?;
        let tmp = parent.join(format!(".{name}.new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let written = self.write_all(&tmp);
        let n = match written {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        if dir.exists() {
            std::fs::rename(dir, &old)
                .map_err(|e| err(format!("cannot replace {}: {e}", dir.display())))?;
        }
        if let Err(e) = std::fs::rename(&tmp, dir) {
            let _ = std::fs::rename(&old, dir);
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(err(format!("cannot write {}: {e}", dir.display())));
        }
        let _ = std::fs::remove_dir_all(&old);
        Ok(n)
    }

    fn write_all(&self, dir: &std::path::Path) -> Result<usize, crate::ConfigError> {
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
        for d in self.domains.iter().chain(&self.old_domains) {
            let config = autoconfig(&self.clients, d, None);
            put(format!("autoconfig/{d}/config-v1.1.xml"), config.as_bytes())?;
            put(format!("dns/{d}.zone"), dns(&self.clients, d).as_bytes())?;
        }
        let mut links = String::from("address,old_address,display_name,guide,profile\n");
        let cell = |s: &str| {
            if s.contains([',', '"']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        for u in self.users.values() {
            let a = &u.address;
            let profile = self
                .profile(u)
                .map_err(|e| crate::ConfigError(format!("[clients] profile signing: {e}")))?;
            put(format!("profiles/{a}.mobileconfig"), &profile)?;
            // Offline, the profile is the file beside the guides; served, its URL.
            let profile_link = if self.clients.serve_host.is_some() {
                self.profile_url(a)
            } else {
                format!("../profiles/{a}.mobileconfig")
            };
            put(
                format!("guides/{a}.html"),
                guide(&self.clients, u, &profile_link).as_bytes(),
            )?;
            let answer = autodiscover(&self.clients, u);
            put(format!("autodiscover/{a}.xml"), answer.as_bytes())?;
            let _ = writeln!(
                links,
                "{},{},{},{},{}",
                cell(a),
                cell(u.old_address.as_deref().unwrap_or("")),
                cell(u.display_name.as_deref().unwrap_or("")),
                cell(&self.guide_url(a)),
                cell(&self.profile_url(a))
            );
        }
        put("links.csv".into(), links.as_bytes())?;
        let mut names = self.certificate_names().join("\n");
        names.push('\n');
        put("certificate-names.txt".into(), names.as_bytes())?;
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
