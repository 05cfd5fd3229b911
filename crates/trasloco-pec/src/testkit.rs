//! A test PKI and a generator of every PEC message type, for tests (feature `testkit`).
//!
//! The PKI mirrors the real one: a root (like Actalis Authentication Root CA), an "AgID-like"
//! intermediate, and provider signing certificates — one current (SHA-256), one SHA-1 (as most
//! providers still sign), one expired long ago (signing times inside its validity). Messages
//! follow the reference's §1.2/§1.5 layout: `multipart/signed` around a `multipart/mixed` with
//! the text, `daticert.xml` and, where the type carries it, `postacert.eml`.

use crate::Kind;
use base64::Engine;
use chrono::{DateTime, Duration, TimeZone, Utc};
use der::asn1::Ia5String;
use der::{Decode, Encode};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use sha2::Sha256;
use spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};
use std::str::FromStr;
use std::time::SystemTime;
use x509_cert::Certificate;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

fn key() -> RsaPrivateKey {
    let mut rng = rand_core::OsRng;
    RsaPrivateKey::new(&mut rng, 1024).expect("RSA key")
}

fn time(t: DateTime<Utc>) -> Time {
    Time::try_from(SystemTime::from(t)).expect("time")
}

fn spki(k: &RsaPrivateKey) -> SubjectPublicKeyInfoOwned {
    let der = k.to_public_key().to_public_key_der().expect("spki");
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).expect("spki")
}

/// What a test certificate says.
struct CertSpec<'a> {
    serial: u32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    subject: &'a str,
    email: Option<&'a str>,
}

fn cert(
    profile: Profile,
    c: CertSpec<'_>,
    subject_key: &RsaPrivateKey,
    issuer_key: &RsaPrivateKey,
) -> Certificate {
    let CertSpec {
        serial,
        from,
        to,
        subject,
        email,
    } = c;
    let signer = SigningKey::<Sha256>::new(issuer_key.clone());
    let validity = Validity {
        not_before: time(from),
        not_after: time(to),
    };
    let mut b = CertificateBuilder::new(
        profile,
        SerialNumber::from(serial),
        validity,
        Name::from_str(subject).expect("name"),
        spki(subject_key),
        &signer,
    )
    .expect("builder");
    if let Some(e) = email {
        b.add_extension(&SubjectAltName(vec![GeneralName::Rfc822Name(
            Ia5String::new(e).expect("ia5"),
        )]))
        .expect("san");
    }
    b.build::<rsa::pkcs1v15::Signature>().expect("certificate")
}

/// A provider that signs PEC messages.
#[derive(Clone)]
pub struct Provider {
    /// `gestore-emittente`, e.g. "Esempio PEC S.p.A.".
    pub name: String,
    /// Its mail domain (the From is `posta-certificata@<domain>`).
    pub domain: String,
    /// Whether it signs with SHA-1 (else SHA-256).
    pub sha1: bool,
    /// A signing time inside its certificate's validity.
    pub signs_at: DateTime<Utc>,
    key: RsaPrivateKey,
    /// Its certificate.
    pub cert: Certificate,
    chain: Vec<Certificate>,
}

/// The whole test PKI.
pub struct Pki {
    /// The root (PEM), the trust anchor to configure.
    pub root_pem: String,
    /// Current certificate, SHA-256.
    pub current: Provider,
    /// Current certificate, SHA-1 signatures.
    pub sha1: Provider,
    /// Certificate valid 2017–2020, SHA-1; signing times in 2018.
    pub expired: Provider,
    /// Signs with a certificate the root never issued.
    pub rogue: Provider,
}

impl Pki {
    /// Make the keys and certificates (a few hundred milliseconds).
    pub fn new() -> Pki {
        let now = Utc::now();
        let root_key = key();
        let root_name = "CN=Test Root CA,O=Trasloco Test Trust,C=IT";
        let root = cert(
            Profile::Root,
            CertSpec {
                serial: 1,
                from: Utc.with_ymd_and_hms(2011, 9, 22, 0, 0, 0).unwrap(),
                to: now + Duration::days(3650),
                subject: root_name,
                email: None,
            },
            &root_key,
            &root_key,
        );
        let ca_key = key();
        let ca_name = "CN=Test AgID CA1,OU=Area Soluzioni,O=Agenzia di Prova,C=IT";
        let ca = cert(
            Profile::SubCA {
                issuer: Name::from_str(root_name).unwrap(),
                path_len_constraint: Some(0),
            },
            CertSpec {
                serial: 2,
                from: Utc.with_ymd_and_hms(2016, 1, 1, 0, 0, 0).unwrap(),
                to: now + Duration::days(3000),
                subject: ca_name,
                email: None,
            },
            &ca_key,
            &root_key,
        );
        let leaf = |serial: u32,
                    name: &str,
                    domain: &str,
                    from,
                    to,
                    issuer_key: &RsaPrivateKey,
                    issuer: &str| {
            let k = key();
            let c = cert(
                Profile::Leaf {
                    issuer: Name::from_str(issuer).unwrap(),
                    enable_key_agreement: false,
                    enable_key_encipherment: false,
                },
                CertSpec {
                    serial,
                    from,
                    to,
                    subject: &format!("CN=Posta Certificata {name},O={name},C=IT"),
                    email: Some(&format!("posta-certificata@{domain}")),
                },
                &k,
                issuer_key,
            );
            (k, c)
        };
        let provider = |name: &str,
                        domain: &str,
                        sha1: bool,
                        signs_at,
                        (key, cert): (RsaPrivateKey, Certificate),
                        chain: Vec<Certificate>| Provider {
            name: name.into(),
            domain: domain.into(),
            sha1,
            signs_at,
            key,
            cert,
            chain,
        };
        let recent = now - Duration::days(2);
        let current = provider(
            "Esempio PEC S.p.A.",
            "pec.esempio.example",
            false,
            recent,
            leaf(
                10,
                "Esempio PEC S.p.A.",
                "pec.esempio.example",
                now - Duration::days(365),
                now + Duration::days(700),
                &ca_key,
                ca_name,
            ),
            vec![ca.clone()],
        );
        let sha1 = provider(
            "Vecchia Scuola PEC S.p.A.",
            "pec.vecchia.example",
            true,
            recent,
            leaf(
                11,
                "Vecchia Scuola PEC S.p.A.",
                "pec.vecchia.example",
                now - Duration::days(365),
                now + Duration::days(700),
                &ca_key,
                ca_name,
            ),
            vec![ca.clone()],
        );
        let expired = provider(
            "Storica PEC S.p.A.",
            "pec.storica.example",
            true,
            Utc.with_ymd_and_hms(2018, 11, 13, 16, 39, 26).unwrap(),
            leaf(
                12,
                "Storica PEC S.p.A.",
                "pec.storica.example",
                Utc.with_ymd_and_hms(2017, 12, 4, 0, 0, 0).unwrap(),
                Utc.with_ymd_and_hms(2020, 12, 3, 0, 0, 0).unwrap(),
                &ca_key,
                ca_name,
            ),
            vec![ca.clone()],
        );
        let rogue_key = key();
        let rogue_ca = "CN=Rogue CA,O=Nobody,C=IT";
        let rogue = provider(
            "Falsa PEC S.p.A.",
            "pec.falsa.example",
            false,
            recent,
            leaf(
                13,
                "Falsa PEC S.p.A.",
                "pec.falsa.example",
                now - Duration::days(10),
                now + Duration::days(10),
                &rogue_key,
                rogue_ca,
            ),
            Vec::new(),
        );
        let der = root.to_der().expect("root der");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut root_pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            root_pem.push_str(std::str::from_utf8(chunk).unwrap());
            root_pem.push('\n');
        }
        root_pem.push_str("-----END CERTIFICATE-----\n");
        Pki {
            root_pem,
            current,
            sha1,
            expired,
            rogue,
        }
    }

    /// A trust store holding the test root.
    pub fn trust(&self) -> crate::TrustStore {
        let mut t = crate::TrustStore::empty();
        t.add_pem(self.root_pem.as_bytes());
        t
    }
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The type.
    pub kind: Kind,
    /// The original sender.
    pub sender: String,
    /// Certified recipients.
    pub recipients: Vec<String>,
    /// The original subject.
    pub subject: String,
    /// The PEC id of the transaction.
    pub identificativo: String,
    /// The client's Message-ID, with angle brackets.
    pub msgid: String,
    /// The recipient a delivery/failure notice is about.
    pub consegna: Option<String>,
    /// Bytes of base64 padding in the original's attachment (to make large messages).
    pub pad: usize,
}

impl Spec {
    /// A transaction's spec for `kind`; `n` makes the ids unique.
    pub fn new(kind: Kind, n: u32) -> Spec {
        Spec {
            kind,
            sender: "ufficio@pec.alfa.example".into(),
            recipients: vec![
                "info@pec.beta.example".into(),
                "protocollo@pec.gamma.example".into(),
            ],
            subject: format!("Offerta n. {n}/2026 — più dettagli"),
            identificativo: format!("opec{n}.20260203091405.1234.5.1.7@pec.esempio.example"),
            msgid: format!("<client-{n}@client.alfa.example>"),
            consegna: Some("info@pec.beta.example".into()),
            pad: 0,
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn tipo_of(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::TransportEnvelope => ("posta-certificata", "nessuno"),
        Kind::Acceptance => ("accettazione", "nessuno"),
        Kind::NonAcceptance => ("non-accettazione", "altro"),
        Kind::NonAcceptanceVirus => ("non-accettazione", "virus"),
        Kind::TakeCharge => ("presa-in-carico", "nessuno"),
        Kind::DeliveryComplete | Kind::DeliveryShort | Kind::DeliverySynthetic => {
            ("avvenuta-consegna", "nessuno")
        }
        Kind::NonDelivery => ("errore-consegna", "no-dest"),
        Kind::NonDeliveryVirus => ("errore-consegna", "virus"),
        Kind::NonDeliveryTimeout => ("preavviso-errore-consegna", "altro"),
        Kind::VirusDetection => ("rilevazione-virus", "virus"),
        Kind::AnomalyEnvelope | Kind::Rem | Kind::Ordinary => ("", ""),
    }
}

fn subject_prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::TransportEnvelope => "POSTA CERTIFICATA: ",
        Kind::AnomalyEnvelope => "ANOMALIA MESSAGGIO: ",
        Kind::Acceptance => "ACCETTAZIONE: ",
        Kind::NonAcceptance => "AVVISO DI NON ACCETTAZIONE: ",
        Kind::NonAcceptanceVirus => "AVVISO DI NON ACCETTAZIONE PER VIRUS: ",
        Kind::TakeCharge => "PRESA IN CARICO: ",
        Kind::DeliveryComplete | Kind::DeliveryShort | Kind::DeliverySynthetic => "CONSEGNA: ",
        Kind::NonDelivery => "AVVISO DI MANCATA CONSEGNA: ",
        Kind::NonDeliveryVirus => "AVVISO DI MANCATA CONSEGNA PER VIRUS: ",
        Kind::NonDeliveryTimeout => "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: ",
        Kind::VirusDetection => "PROBLEMA DI SICUREZZA: ",
        Kind::Rem | Kind::Ordinary => "",
    }
}

/// The original message as the sender's client wrote it, after the provider replaced its
/// Message-ID (as in `postacert.eml`). With `short`, its attachment is a `.hash` part.
pub fn original_message(s: &Spec, short: bool) -> Vec<u8> {
    let attachment = if short {
        "Content-Type: text/plain; name=\"offerta.pdf.hash\"\r\nContent-Disposition: attachment; filename=\"offerta.pdf.hash\"\r\n\r\n3f786850e387550fdab836ed7e6dc881de23001b\r\n"
            .to_string()
    } else {
        format!(
            "Content-Type: application/pdf; name=\"offerta.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"offerta.pdf\"\r\n\r\nJVBERi0xLjQKJcfsj6IK\r\n{}",
            format!("{}\r\n", "A".repeat(76)).repeat(s.pad / 78)
        )
    };
    format!(
        "Received: from client.alfa.example by pec.esempio.example\r\nMessage-ID: <{}>\r\nX-Riferimento-Message-ID: {}\r\nFrom: {}\r\nTo: {}\r\nSubject: {}\r\nDate: Tue, 3 Feb 2026 09:14:05 +0100\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"orig\"\r\n\r\n--orig\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nIn allegato l'offerta.  \r\n--orig\r\n{attachment}--orig--\r\n",
        s.identificativo,
        s.msgid,
        s.sender,
        s.recipients.join(", "),
        s.subject
    )
    .into_bytes()
}

fn daticert(s: &Spec, p: &Provider, kind: Kind) -> String {
    let (tipo, errore) = tipo_of(kind);
    let when = p
        .signs_at
        .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap());
    let mut dati = format!(
        "<gestore-emittente>{}</gestore-emittente><data zona=\"+0100\"><giorno>{}</giorno><ora>{}</ora></data><identificativo>{}</identificativo><msgid>{}</msgid>",
        xml_escape(&p.name),
        when.format("%d/%m/%Y"),
        when.format("%H:%M:%S"),
        xml_escape(&s.identificativo),
        xml_escape(&s.msgid)
    );
    match kind {
        Kind::TransportEnvelope | Kind::DeliveryComplete => {
            dati.push_str("<ricevuta tipo=\"completa\"/>")
        }
        Kind::DeliveryShort => dati.push_str("<ricevuta tipo=\"breve\"/>"),
        Kind::DeliverySynthetic => dati.push_str("<ricevuta tipo=\"sintetica\"/>"),
        _ => {}
    }
    if kind.is_delivery() || kind.is_failure() || kind == Kind::VirusDetection {
        dati.push_str(&format!(
            "<consegna>{}</consegna>",
            xml_escape(s.consegna.as_deref().unwrap_or(""))
        ));
    }
    if kind == Kind::TakeCharge {
        for r in &s.recipients {
            dati.push_str(&format!("<ricezione>{}</ricezione>", xml_escape(r)));
        }
    }
    let extended = match kind {
        Kind::NonDelivery => Some("5.1.1 - Esempio PEC S.p.A. - indirizzo non valido"),
        Kind::NonDeliveryTimeout => Some("5.4.1 - Esempio PEC S.p.A. - tempo massimo superato"),
        Kind::NonDeliveryVirus | Kind::NonAcceptanceVirus | Kind::VirusDetection => {
            Some("5.7.1 - virus rilevato")
        }
        Kind::NonAcceptance => Some("destinatario in Bcc non ammesso"),
        _ => None,
    };
    if let Some(e) = extended {
        dati.push_str(&format!("<errore-esteso>{e}</errore-esteso>"));
    }
    let recipients: String = s
        .recipients
        .iter()
        .map(|r| {
            format!(
                "<destinatari tipo=\"certificato\">{}</destinatari>",
                xml_escape(r)
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<postacert tipo=\"{tipo}\" errore=\"{errore}\"><intestazione><mittente>{}</mittente>{recipients}<risposte>{}</risposte><oggetto>{}</oggetto></intestazione><dati>{dati}</dati></postacert>\n",
        xml_escape(&s.sender),
        xml_escape(&s.sender),
        xml_escape(&s.subject)
    )
}

fn b64_lines(data: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::new();
    for c in b64.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(c).unwrap());
        out.push_str("\r\n");
    }
    out
}

impl Provider {
    /// A detached CMS SignedData over `content`, made at this provider's signing time.
    pub fn sign(&self, content: &[u8]) -> Vec<u8> {
        let signer = crate::sign::Signer {
            key: &self.key,
            cert: &self.cert,
            chain: &self.chain,
            sha1: self.sha1,
            at: SystemTime::from(self.signs_at),
        };
        crate::sign::sign(content, &signer, false).expect("test signature")
    }

    /// A complete PEC message of the spec's kind, signed by this provider.
    pub fn message(&self, s: &Spec) -> Vec<u8> {
        let kind = s.kind;
        let from = format!("posta-certificata@{}", self.domain);
        let mut parts: Vec<String> = vec![format!(
            "Content-Type: text/plain; charset=\"iso-8859-1\"\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Disposition: inline\r\n\r\nMessaggio di posta certificata: il messaggio \"{}\" =C3=A8 stato trattato da {}.\r\nIdentificativo messaggio: {}\r\n",
            s.subject, self.name, s.identificativo
        )];
        if kind != Kind::AnomalyEnvelope {
            parts.push(format!(
                "Content-Type: application/xml; name=\"daticert.xml\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: inline; filename=\"daticert.xml\"\r\n\r\n{}",
                b64_lines(daticert(s, self, kind).as_bytes())
            ));
        }
        let original = match kind {
            Kind::TransportEnvelope | Kind::DeliveryComplete | Kind::AnomalyEnvelope => {
                Some(original_message(s, false))
            }
            Kind::DeliveryShort => Some(original_message(s, true)),
            _ => None,
        };
        if let Some(o) = original {
            parts.push(format!(
                "Content-Type: message/rfc822; name=\"postacert.eml\"\r\nContent-Transfer-Encoding: 7bit\r\nContent-Disposition: inline; filename=\"postacert.eml\"\r\n\r\n{}",
                String::from_utf8_lossy(&o)
            ));
        }
        let inner_boundary = "----------=_1770106445-1234-5";
        let mut content = format!(
            "Content-Type: multipart/mixed; boundary=\"{inner_boundary}\"\r\nContent-Transfer-Encoding: binary\r\nMIME-Version: 1.0\r\n\r\nThis is a multi-part message in MIME format.\r\n"
        );
        for p in &parts {
            content.push_str(&format!("--{inner_boundary}\r\n{p}\r\n"));
        }
        content.push_str(&format!("--{inner_boundary}--\r\n"));
        let signature = self.sign(content.as_bytes());
        let outer = "----ABCDEF0123456789ABCDEF0123456789";
        let (tipo, _) = tipo_of(kind);
        let type_header = match kind {
            Kind::TransportEnvelope => {
                "X-Trasporto: posta-certificata\r\nX-TipoRicevuta: completa\r\n".to_string()
            }
            Kind::AnomalyEnvelope => "X-Trasporto: errore\r\n".to_string(),
            _ => {
                let mut h = format!("X-Ricevuta: {tipo}\r\n");
                if matches!(kind, Kind::NonAcceptanceVirus | Kind::NonDeliveryVirus) {
                    h.push_str("X-VerificaSicurezza: errore\r\n");
                }
                if kind == Kind::VirusDetection {
                    h.push_str(&format!("X-Mittente: {}\r\n", s.sender));
                }
                h
            }
        };
        let (msg_id, to, from_header) = match kind {
            Kind::TransportEnvelope | Kind::AnomalyEnvelope => (
                format!("<{}>", s.identificativo),
                s.recipients.join(", "),
                format!("\"Per conto di: {}\" <{from}>", s.sender),
            ),
            _ => (
                format!(
                    "<{}.{}@{}>",
                    tipo,
                    s.identificativo.split('@').next().unwrap_or(""),
                    self.domain
                ),
                s.sender.clone(),
                from.clone(),
            ),
        };
        let date = self.signs_at.to_rfc2822();
        format!(
            "Return-Path: <{from}>\r\nReceived: from pec.esempio.example by mx.pec.beta.example\r\nDate: {date}\r\n{type_header}X-Riferimento-Message-ID: {}\r\nMessage-ID: {msg_id}\r\nFrom: {from_header}\r\nTo: {to}\r\nSubject: {}{}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/x-pkcs7-signature\"; micalg=\"{}\"; boundary=\"{outer}\"\r\n\r\nThis is an S/MIME signed message\r\n--{outer}\r\n{content}\r\n--{outer}\r\nContent-Type: application/x-pkcs7-signature; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n{}\r\n--{outer}--\r\n\r\n",
            s.msgid,
            subject_prefix(kind),
            s.subject,
            if self.sha1 { "sha1" } else { "sha-256" },
            b64_lines(&signature).trim_end()
        )
        .into_bytes()
    }
}

/// An ordinary message as it sits in the Sent folder (Message-ID = the client msgid).
pub fn sent_copy(s: &Spec) -> Vec<u8> {
    format!(
        "Message-ID: {}\r\nFrom: {}\r\nTo: {}\r\nSubject: {}\r\nDate: Tue, 3 Feb 2026 09:14:05 +0100\r\n\r\nIn allegato l'offerta.\r\n",
        s.msgid,
        s.sender,
        s.recipients.join(", "),
        s.subject
    )
    .into_bytes()
}
