//! `daticert.xml`: the certification data a provider signs into every PEC envelope and
//! receipt. Parsed with no DTD and no entity beyond XML's own; a file that is not well formed
//! (real ones are: an unescaped `<msgid>`) is read field by field instead, and the problem is
//! reported as a finding.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use quick_xml::events::Event;
use serde::Serialize;

/// One recipient of the original message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// The address.
    pub address: String,
    /// `certificato` (a PEC mailbox) or `esterno` (ordinary mail).
    pub kind: String,
}

/// What `daticert.xml` says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Daticert {
    /// `postacert/@tipo`: `posta-certificata`, `accettazione`, `avvenuta-consegna`, …
    pub tipo: String,
    /// `postacert/@errore` (`nessuno` when absent).
    pub errore: String,
    /// The original sender.
    pub mittente: Option<String>,
    /// The original recipients.
    pub destinatari: Vec<Recipient>,
    /// Reply-to of the original.
    pub risposte: Option<String>,
    /// Subject of the original.
    pub oggetto: Option<String>,
    /// The provider that issued this (`gestore-emittente`).
    pub gestore: Option<String>,
    /// When, with its zone.
    pub data: Option<DateTime<FixedOffset>>,
    /// The PEC message id of the transaction (`identificativo`).
    pub identificativo: Option<String>,
    /// The client's original Message-ID (`msgid`), with its angle brackets.
    pub msgid: Option<String>,
    /// The delivery receipt type requested (`ricevuta/@tipo`).
    pub ricevuta: Option<String>,
    /// The recipient a delivery or failure notice is about (`consegna`).
    pub consegna: Option<String>,
    /// Recipients a take-charge receipt covers (`ricezione`).
    pub ricezione: Vec<String>,
    /// The error detail (`errore-esteso`).
    pub errore_esteso: Option<String>,
}

fn when(day: &str, time: &str, zone: &str) -> Option<DateTime<FixedOffset>> {
    let d = NaiveDate::parse_from_str(day.trim(), "%d/%m/%Y").ok()?;
    let t = NaiveTime::parse_from_str(time.trim(), "%H:%M:%S").ok()?;
    let z = zone.trim().replace(':', "");
    let (sign, digits) = match z.as_bytes().first()? {
        b'+' => (1, &z[1..]),
        b'-' => (-1, &z[1..]),
        _ => (1, z.as_str()),
    };
    let h: i32 = digits.get(..2)?.parse().ok()?;
    let m: i32 = digits.get(2..4).unwrap_or("00").parse().ok()?;
    let off = FixedOffset::east_opt(sign * (h * 3600 + m * 60))?;
    off.from_local_datetime(&d.and_time(t)).single()
}

/// Parse `daticert.xml`. The second value is a finding when the file is not well formed (the
/// fields were then read by pattern) or lacks what every daticert has.
pub fn parse(xml: &[u8]) -> (Daticert, Option<String>) {
    match strict(xml) {
        Ok(d) if !d.tipo.is_empty() => (d, None),
        Ok(_) => (
            lenient(xml),
            Some("daticert.xml has no postacert element with a tipo".into()),
        ),
        Err(e) => (
            lenient(xml),
            Some(format!(
                "daticert.xml is not well formed ({e}); fields read by pattern"
            )),
        ),
    }
}

/// Store an element's text in its field.
fn set(
    d: &mut Daticert,
    leaf: &str,
    text: String,
    attr_tipo: &mut Option<String>,
    day: &mut String,
    time: &mut String,
) {
    match leaf {
        "mittente" => d.mittente = Some(text),
        "destinatari" => d.destinatari.push(Recipient {
            address: text,
            kind: attr_tipo
                .take()
                .unwrap_or_else(|| "certificato".into())
                .to_ascii_lowercase(),
        }),
        "risposte" => d.risposte = Some(text),
        "oggetto" => d.oggetto = Some(text),
        "gestore-emittente" => d.gestore = Some(text),
        "giorno" => *day = text,
        "ora" => *time = text,
        "identificativo" => d.identificativo = Some(text),
        "msgid" => d.msgid = Some(text),
        "consegna" => d.consegna = Some(text),
        "ricezione" => d.ricezione.push(text),
        "errore-esteso" => d.errore_esteso = Some(text),
        _ => {}
    }
}

fn strict(xml: &[u8]) -> Result<Daticert, String> {
    let mut r = quick_xml::Reader::from_reader(xml);
    let mut d = Daticert {
        errore: "nessuno".into(),
        ..Default::default()
    };
    let mut path: Vec<String> = Vec::new();
    let mut attr_tipo: Option<String> = None;
    let (mut day, mut time, mut zone) = (String::new(), String::new(), String::new());
    let mut buf = Vec::new();
    let mut text = String::new();
    loop {
        let ev = r.read_event_into(&mut buf).map_err(|e| e.to_string())?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_string();
                let attr = |want: &str| -> Result<Option<String>, String> {
                    for a in e.attributes() {
                        let a = a.map_err(|e| e.to_string())?;
                        if a.key.as_ref() == want.as_bytes() {
                            let v = a.unescape_value().map_err(|e| e.to_string())?;
                            return Ok(Some(v.trim().to_string()));
                        }
                    }
                    Ok(None)
                };
                match name.as_str() {
                    "postacert" => {
                        d.tipo = attr("tipo")?.unwrap_or_default().to_ascii_lowercase();
                        if let Some(e) = attr("errore")? {
                            d.errore = e.to_ascii_lowercase();
                        }
                    }
                    "destinatari" => attr_tipo = attr("tipo")?,
                    "data" => zone = attr("zona")?.unwrap_or_default(),
                    "ricevuta" => d.ricevuta = attr("tipo")?.map(|t| t.to_ascii_lowercase()),
                    _ => {}
                }
                if matches!(ev, Event::Start(_)) {
                    path.push(name);
                    text.clear();
                }
            }
            Event::End(_) => {
                let text = std::mem::take(&mut text).trim().to_string();
                if let Some(leaf) = path.pop()
                    && !text.is_empty()
                {
                    set(&mut d, &leaf, text, &mut attr_tipo, &mut day, &mut time);
                }
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            // Entity and character references come as events of their own.
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| e.to_string())?;
                let resolved = match name.as_ref() {
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "amp" => Some('&'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    n => n
                        .strip_prefix("#x")
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .or_else(|| n.strip_prefix('#').and_then(|d| d.parse().ok()))
                        .and_then(char::from_u32),
                };
                match resolved {
                    Some(c) => text.push(c),
                    None => return Err(format!("unknown entity &{name};")),
                }
            }
            Event::DocType(_) => return Err("a DOCTYPE is not allowed".into()),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    d.data = when(&day, &time, &zone);
    Ok(d)
}

/// Read fields by pattern from a file that is not XML: `<name …>text</name>`.
fn lenient(xml: &[u8]) -> Daticert {
    let text = String::from_utf8_lossy(xml);
    let element = |name: &str| -> Vec<(String, String)> {
        let mut out = Vec::new();
        let open = format!("<{name}");
        let close = format!("</{name}>");
        let mut rest = text.as_ref();
        while let Some(p) = rest.find(&open) {
            let after = &rest[p + open.len()..];
            // `<name>` or `<name attr…>`, not `<name-longer…>`.
            if !after.starts_with(['>', ' ', '/', '\t', '\r', '\n']) {
                rest = after;
                continue;
            }
            let Some(gt) = after.find('>') else { break };
            let attrs = after[..gt].to_string();
            let body = &after[gt + 1..];
            let inner = if attrs.ends_with('/') {
                String::new()
            } else {
                body.find(&close)
                    .map(|e| body[..e].trim().to_string())
                    .unwrap_or_default()
            };
            out.push((attrs, unescape_loose(&inner)));
            rest = body;
        }
        out
    };
    let attr = |attrs: &str, name: &str| -> Option<String> {
        let key = format!("{name}=");
        let p = attrs.find(&key)? + key.len();
        let q = attrs[p..].chars().next()?;
        let v = &attrs[p + 1..];
        v.find(q).map(|e| v[..e].trim().to_string())
    };
    let first = |name: &str| element(name).into_iter().next();
    let mut d = Daticert {
        errore: "nessuno".into(),
        ..Default::default()
    };
    if let Some((a, _)) = first("postacert") {
        d.tipo = attr(&a, "tipo").unwrap_or_default().to_ascii_lowercase();
        if let Some(e) = attr(&a, "errore") {
            d.errore = e.to_ascii_lowercase();
        }
    }
    d.mittente = first("mittente").map(|x| x.1);
    d.destinatari = element("destinatari")
        .into_iter()
        .map(|(a, t)| Recipient {
            address: t,
            kind: attr(&a, "tipo").unwrap_or_else(|| "certificato".into()),
        })
        .collect();
    d.risposte = first("risposte").map(|x| x.1);
    d.oggetto = first("oggetto").map(|x| x.1);
    d.gestore = first("gestore-emittente").map(|x| x.1);
    d.identificativo = first("identificativo").map(|x| x.1);
    d.msgid = first("msgid").map(|x| x.1);
    d.ricevuta = first("ricevuta").and_then(|(a, _)| attr(&a, "tipo"));
    d.consegna = first("consegna").map(|x| x.1);
    d.ricezione = element("ricezione").into_iter().map(|x| x.1).collect();
    d.errore_esteso = first("errore-esteso").map(|x| x.1);
    let zone = first("data")
        .and_then(|(a, _)| attr(&a, "zona"))
        .unwrap_or_default();
    if let (Some(g), Some(o)) = (first("giorno"), first("ora")) {
        d.data = when(&g.1, &o.1, &zone);
    }
    d
}

fn unescape_loose(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIPT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<postacert tipo="avvenuta-consegna" errore="nessuno">
    <intestazione>
        <mittente>ufficio@pec.alfa.example</mittente>
        <destinatari tipo="certificato">info@pec.beta.example</destinatari>
        <destinatari tipo="esterno">archivio@beta.example</destinatari>
        <risposte>ufficio@pec.alfa.example</risposte>
        <oggetto>Offerta n. 12/2026 &amp; più</oggetto>
    </intestazione>
    <dati>
        <gestore-emittente>Example PEC S.p.A.</gestore-emittente>
        <data zona="+0100">
            <giorno>03/02/2026</giorno>
            <ora>09:14:07</ora>
        </data>
        <identificativo>opec0001.20260203091405.1234.5.1.7@pec.provider.example</identificativo>
        <msgid>&lt;8f2c1e@client.alfa.example&gt;</msgid>
        <ricevuta tipo="completa" />
        <consegna>info@pec.beta.example</consegna>
    </dati>
</postacert>"#;

    #[test]
    fn a_delivery_receipt_element_by_element() {
        let (d, finding) = parse(RECEIPT.as_bytes());
        assert_eq!(finding, None);
        assert_eq!(d.tipo, "avvenuta-consegna");
        assert_eq!(d.errore, "nessuno");
        assert_eq!(d.mittente.as_deref(), Some("ufficio@pec.alfa.example"));
        assert_eq!(d.destinatari.len(), 2);
        assert_eq!(d.destinatari[1].kind, "esterno");
        assert_eq!(d.oggetto.as_deref(), Some("Offerta n. 12/2026 & più"));
        assert_eq!(d.gestore.as_deref(), Some("Example PEC S.p.A."));
        assert_eq!(d.data.unwrap().to_rfc3339(), "2026-02-03T09:14:07+01:00");
        assert_eq!(d.msgid.as_deref(), Some("<8f2c1e@client.alfa.example>"));
        assert_eq!(d.ricevuta.as_deref(), Some("completa"));
        assert_eq!(d.consegna.as_deref(), Some("info@pec.beta.example"));
    }

    #[test]
    fn malformed_files_are_read_by_pattern_and_reported() {
        let bad = RECEIPT.replace(
            "&lt;8f2c1e@client.alfa.example&gt;",
            "<8f2c1e@client.alfa.example>",
        );
        let (d, finding) = parse(bad.as_bytes());
        assert!(finding.unwrap().contains("not well formed"));
        assert_eq!(d.tipo, "avvenuta-consegna");
        assert_eq!(
            d.identificativo.as_deref(),
            Some("opec0001.20260203091405.1234.5.1.7@pec.provider.example")
        );
        assert_eq!(d.consegna.as_deref(), Some("info@pec.beta.example"));
        assert_eq!(d.data.unwrap().to_rfc3339(), "2026-02-03T09:14:07+01:00");
        let (_, f) = parse(b"<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><postacert tipo=\"accettazione\">&e;</postacert>");
        assert!(f.is_some(), "DTDs are refused");
        let (d, f) = parse(b"\xff\xfe garbage");
        assert!(f.is_some() && d.tipo.is_empty());
    }
}
