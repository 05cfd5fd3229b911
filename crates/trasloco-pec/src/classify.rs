//! What a message is: a PEC envelope, one of the receipts and notices, a REM message, or
//! ordinary mail — from the top-level header fields, the MIME structure and `daticert.xml`
//! together, tolerating the variants real providers produce.

use crate::daticert::{self, Daticert};
use crate::mime::{Headers, Part};
use serde::Serialize;

/// The kinds of PEC (and REM) messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Busta di trasporto (`X-Trasporto: posta-certificata`).
    TransportEnvelope,
    /// Busta di anomalia (`X-Trasporto: errore`).
    AnomalyEnvelope,
    /// Ricevuta di accettazione.
    Acceptance,
    /// Avviso di non accettazione.
    NonAcceptance,
    /// Avviso di non accettazione per virus.
    NonAcceptanceVirus,
    /// Ricevuta di presa in carico.
    TakeCharge,
    /// Ricevuta di avvenuta consegna, completa (with the whole original).
    DeliveryComplete,
    /// Ricevuta di avvenuta consegna, breve (attachments replaced by hashes).
    DeliveryShort,
    /// Ricevuta di avvenuta consegna, sintetica (no original).
    DeliverySynthetic,
    /// Avviso di mancata consegna.
    NonDelivery,
    /// Avviso di mancata consegna per virus.
    NonDeliveryVirus,
    /// Avviso di mancata consegna per superamento tempi massimi (12 h / 24 h).
    NonDeliveryTimeout,
    /// Avviso di rilevazione virus (provider to provider).
    VirusDetection,
    /// An ETSI REM message ("European PEC").
    Rem,
    /// Not a PEC system message.
    Ordinary,
}

impl Kind {
    /// Whether it is a PEC or REM system message (provider-signed evidence).
    pub fn is_pec(self) -> bool {
        self != Kind::Ordinary
    }

    /// Whether it is a delivery receipt of any flavour.
    pub fn is_delivery(self) -> bool {
        matches!(
            self,
            Kind::DeliveryComplete | Kind::DeliveryShort | Kind::DeliverySynthetic
        )
    }

    /// Whether it closes a recipient's outcome with a failure.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Kind::NonDelivery | Kind::NonDeliveryVirus | Kind::NonDeliveryTimeout
        )
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::TransportEnvelope => "transport-envelope",
            Kind::AnomalyEnvelope => "anomaly-envelope",
            Kind::Acceptance => "acceptance",
            Kind::NonAcceptance => "non-acceptance",
            Kind::NonAcceptanceVirus => "non-acceptance-virus",
            Kind::TakeCharge => "take-charge",
            Kind::DeliveryComplete => "delivery-complete",
            Kind::DeliveryShort => "delivery-short",
            Kind::DeliverySynthetic => "delivery-synthetic",
            Kind::NonDelivery => "non-delivery",
            Kind::NonDeliveryVirus => "non-delivery-virus",
            Kind::NonDeliveryTimeout => "non-delivery-timeout",
            Kind::VirusDetection => "virus-detection",
            Kind::Rem => "rem",
            Kind::Ordinary => "ordinary",
        }
    }
}

/// Everything read from one message, without the signature check.
#[derive(Debug, Clone, Serialize)]
pub struct Classified {
    /// What it is.
    pub kind: Kind,
    /// The top-level `Message-ID`.
    pub message_id: Option<String>,
    /// `X-Riferimento-Message-ID`: the client's Message-ID of the original.
    pub reference: Option<String>,
    /// The top-level Subject, as written.
    pub subject: Option<String>,
    /// The parsed certification data.
    pub daticert: Option<Daticert>,
    /// Whether it carries the original message (`postacert.eml`).
    pub has_original: bool,
    /// Whether the top level is `multipart/signed` (or a signed part was found inside a
    /// wrapper, which is then a finding).
    pub signed: bool,
    /// Problems and oddities worth an auditor's eye.
    pub findings: Vec<String>,
}

/// The provider-signed part of a message: the `multipart/signed` itself, at the top or (for
/// mailing-list wrappers) nested.
pub(crate) fn signed_part<'a>(top: &Part<'a>, depth: usize) -> Option<Part<'a>> {
    if top.content_type().mime == "multipart/signed" {
        return Some(top.clone());
    }
    if depth == 0 {
        return None;
    }
    top.children()
        .iter()
        .find_map(|c| signed_part(c, depth - 1))
}

/// Parts of the signed content: (daticert bytes, original message part).
fn contents<'a>(signed: &Part<'a>) -> (Option<Vec<u8>>, Option<Part<'a>>) {
    let Some(content) = signed.children().into_iter().next() else {
        return (None, None);
    };
    let mut dati = None;
    let mut original = None;
    let mut queue = vec![content];
    while let Some(p) = queue.pop() {
        let ct = p.content_type();
        let name = p.file_name().unwrap_or_default().to_ascii_lowercase();
        if ct.mime.starts_with("multipart/") {
            queue.extend(p.children());
        } else if ct.mime == "message/rfc822" && original.is_none() {
            original = Some(Part::parse(p.body));
        } else if dati.is_none()
            && (name == "daticert.xml"
                || name == "certdata.xml"
                || (ct.mime.ends_with("/xml") && contains(&p.decoded(), b"<postacert")))
        {
            dati = Some(p.decoded());
        }
    }
    (dati, original)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// The original message carried by an envelope or a complete/short delivery receipt (the
/// `postacert.eml` part), exactly as stored inside.
pub fn original(raw: &[u8]) -> Option<&[u8]> {
    let top = Part::parse(raw);
    let signed = signed_part(&top, 3)?;
    contents(&signed).1.map(|p| p.raw)
}

/// A cheap look at the top-level header only: PEC/REM type fields, or a `multipart/signed`
/// top level (which may be a PEC whose type fields a tool stripped). Everything else is
/// ordinary mail and needs no closer look — what a migration asks of every message.
pub fn might_be_pec(raw: &[u8]) -> bool {
    let (head, _) = crate::mime::split(raw);
    let h = Headers::parse(head);
    h.get("X-Ricevuta").is_some()
        || h.get("X-Trasporto").is_some()
        || h.get("REM-MessageType").is_some()
        || h.get("REM-MetadataVersion").is_some()
        || h.content_type().mime == "multipart/signed"
}

/// Classify one message.
pub fn classify(raw: &[u8]) -> Classified {
    let top = Part::parse(raw);
    let h = &top.headers;
    let mut c = Classified {
        kind: Kind::Ordinary,
        message_id: h.get("Message-ID").map(str::to_string),
        reference: h.get("X-Riferimento-Message-ID").map(str::to_string),
        subject: h.get("Subject").map(str::to_string),
        daticert: None,
        has_original: false,
        signed: false,
        findings: Vec::new(),
    };
    let ricevuta = h.word("X-Ricevuta");
    let trasporto = h.word("X-Trasporto");
    let rem = h.get("REM-MessageType").is_some() || h.get("REM-MetadataVersion").is_some();
    let security_error = h.word("X-VerificaSicurezza").as_deref() == Some("errore");
    // The signed part is looked for the same way as the signature check looks for it (a list
    // may wrap it and keep the PEC headers on its wrapper), so that one message has one
    // verdict everywhere.
    let signed = signed_part(&top, 2);
    let (dati, orig) = signed.as_ref().map(contents).unwrap_or((None, None));
    if let Some(sp) = &signed
        && let Some(b) = sp.content_type().param("boundary")
        && !crate::mime::is_closed(sp.body, b)
    {
        c.findings.push(format!(
            "the multipart/signed ends without its closing boundary (--{b}--): the message may have been cut; its parts are read as far as they go"
        ));
    }
    c.signed = signed.is_some();
    c.has_original = orig.is_some();
    let d = dati.map(|x| {
        let (d, finding) = daticert::parse(&x);
        c.findings.extend(finding);
        d
    });
    // The header decides; daticert confirms (or stands in when a tool stripped the header).
    let tipo = d.as_ref().map(|d| d.tipo.clone());
    let word = ricevuta
        .clone()
        .or_else(|| {
            trasporto.as_deref().map(|t| {
                if t == "errore" {
                    "errore-trasporto".to_string()
                } else {
                    t.to_string()
                }
            })
        })
        .or_else(|| tipo.clone().filter(|t| !t.is_empty()));
    if ricevuta.is_none() && trasporto.is_none() && word.is_some() {
        c.findings
            .push("no X-Ricevuta/X-Trasporto header: classified from daticert.xml".into());
    }
    let virus = security_error || d.as_ref().is_some_and(|d| d.errore == "virus");
    let timeout_text = |d: &Option<Daticert>| {
        d.as_ref()
            .and_then(|d| d.errore_esteso.clone())
            .unwrap_or_default()
    };
    c.kind = match word.as_deref() {
        Some("posta-certificata") => Kind::TransportEnvelope,
        Some("errore-trasporto") => Kind::AnomalyEnvelope,
        Some("accettazione") => Kind::Acceptance,
        Some("non-accettazione") if virus => Kind::NonAcceptanceVirus,
        Some("non-accettazione") => Kind::NonAcceptance,
        Some("presa-in-carico") => Kind::TakeCharge,
        Some("avvenuta-consegna") => {
            let asked = d.as_ref().and_then(|d| d.ricevuta.clone());
            match (asked.as_deref(), c.has_original) {
                (_, false) => Kind::DeliverySynthetic,
                (Some("breve"), true) => Kind::DeliveryShort,
                _ if orig.as_ref().is_some_and(has_hash_parts) => Kind::DeliveryShort,
                _ => Kind::DeliveryComplete,
            }
        }
        Some("errore-consegna") if virus => Kind::NonDeliveryVirus,
        Some("errore-consegna") => Kind::NonDelivery,
        Some("preavviso-errore-consegna") => Kind::NonDeliveryTimeout,
        Some("rilevazione-virus") => Kind::VirusDetection,
        Some(other) => {
            c.findings.push(format!("unknown PEC type {other:?}"));
            Kind::Ordinary
        }
        None if rem => Kind::Rem,
        None => Kind::Ordinary,
    };
    if c.kind.is_pec() {
        if !c.signed {
            c.findings
                .push("a PEC system message that is not multipart/signed".into());
        } else if top.content_type().mime != "multipart/signed" {
            c.findings.push(
                "the signed PEC message is wrapped in another message (a mailing list?): the outer header is not the provider's".into(),
            );
        }
        let expects_daticert = !matches!(c.kind, Kind::AnomalyEnvelope | Kind::Rem);
        match (&d, expects_daticert) {
            (None, true) => c.findings.push("no daticert.xml".into()),
            (Some(d), _) => {
                let header_tipo = ricevuta.clone().or_else(|| trasporto.clone());
                if let Some(ht) = header_tipo
                    && !d.tipo.is_empty()
                    && ht != d.tipo
                {
                    c.findings.push(format!(
                        "the header says {ht:?} but daticert.xml says {:?}",
                        d.tipo
                    ));
                }
                if let (Some(r), Some(m)) = (&c.reference, &d.msgid)
                    && r.trim() != m.trim()
                {
                    c.findings.push(format!(
                        "X-Riferimento-Message-ID {r} differs from daticert msgid {m}"
                    ));
                }
                if c.kind == Kind::TransportEnvelope
                    && let (Some(o), Some(id)) = (&orig, &d.identificativo)
                {
                    let inner = o.headers.get("Message-ID").unwrap_or("");
                    if inner.trim().trim_matches(['<', '>']) != id.trim() {
                        c.findings.push(format!(
                            "postacert.eml Message-ID {inner} differs from identificativo {id}"
                        ));
                    }
                }
            }
            _ => {}
        }
        if c.kind == Kind::NonDeliveryTimeout && timeout_text(&d).starts_with("5.4.1") {
            c.findings
                .push("24 h timeout (errore-esteso 5.4.1): the delivery failed for good".into());
        }
    }
    c.daticert = d;
    c
}

/// Whether a delivery receipt's copy of the original had its attachments replaced by `.hash`
/// parts (the "breve" form).
fn has_hash_parts(orig: &Part<'_>) -> bool {
    let mut queue = vec![orig.clone()];
    while let Some(p) = queue.pop() {
        if p.file_name()
            .is_some_and(|n| n.to_ascii_lowercase().ends_with(".hash"))
        {
            return true;
        }
        queue.extend(p.children());
    }
    false
}
