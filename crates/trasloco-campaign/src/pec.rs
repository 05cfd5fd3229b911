//! `trasloco pec report`: a PEC mailbox (or an archive, or every mailbox of a campaign) as
//! evidence — counts by type, signature status, the receipt-linking gaps, and every message
//! whose signature is not plainly valid; terminal, JSON, CSV and HTML like the other reports.

use crate::ConfigError;
use crate::html::{self, Cell};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use trasloco_core::folder_map::Role;
use trasloco_pec::link::{Gap, Item, link};
use trasloco_pec::{SignatureStatus, TrustStore, examine};
use trasloco_state::State;
use trasloco_sync::{Options, Scanned, Source, scan};

/// Messages listed individually per mailbox, at most.
const MAX_NOTES: usize = 1000;

/// A message worth an auditor's look.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    /// Folder and UID.
    pub location: String,
    /// Its PEC type.
    pub kind: String,
    /// Its signature status.
    pub signature: String,
    /// What is wrong or notable.
    pub problems: Vec<String>,
}

/// One PEC message in the inventory: where it is, what it is, who signed it and when, and
/// what its `daticert.xml` certifies.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InventoryRow {
    /// The mailbox or archive.
    pub source: String,
    /// Its file (archives), or folder/UID.
    pub location: String,
    /// Folder.
    pub folder: String,
    /// UID (position in an archive).
    pub uid: u32,
    /// PEC type.
    pub kind: String,
    /// Signature verdict.
    pub verdict: String,
    /// The signer certificate's subject.
    pub signer: Option<String>,
    /// The signed signing time.
    pub signing_time: Option<String>,
    /// Signed with SHA-1.
    pub sha1: bool,
    /// daticert.xml: the original sender.
    pub sender: Option<String>,
    /// daticert.xml: the recipients, `address (certificato|esterno)`.
    pub recipients: Vec<String>,
    /// daticert.xml: the original subject.
    pub subject: Option<String>,
    /// daticert.xml: the issuing provider.
    pub provider: Option<String>,
    /// daticert.xml: date and time, with zone.
    pub date: Option<String>,
    /// daticert.xml: the transaction's identifier.
    pub identifier: Option<String>,
    /// daticert.xml: the client's Message-ID.
    pub message_id: Option<String>,
    /// SHA-256 of the bytes as stored.
    pub sha256: String,
}

/// One mailbox examined.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MailboxPec {
    /// The source account or archive.
    pub source: String,
    /// Messages read.
    pub messages: u64,
    /// Of which PEC/REM system messages.
    pub pec_messages: u64,
    /// Per type.
    pub by_kind: BTreeMap<String, u64>,
    /// Per signature status (PEC messages only).
    pub by_signature: BTreeMap<String, u64>,
    /// Signed with SHA-1.
    pub sha1: u64,
    /// Sendings found (acceptances).
    pub transactions: usize,
    /// The linking gaps.
    pub gaps: Vec<Gap>,
    /// Messages that are not plainly valid, or have findings (first 1000).
    pub notes: Vec<Note>,
    /// Every PEC message, one row each (also written as pec-inventory.csv).
    pub inventory: Vec<InventoryRow>,
    /// Why the mailbox could not be read, if so.
    pub error: Option<String>,
}

impl MailboxPec {
    /// PEC messages whose bytes no longer match their signature.
    pub fn broken(&self) -> u64 {
        self.by_signature.get("broken").copied().unwrap_or(0)
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct PecReport {
    /// When it was made.
    pub created_at: String,
    /// Per mailbox.
    pub mailboxes: Vec<MailboxPec>,
}

impl PecReport {
    /// 0 when every PEC signature is intact and every mailbox was read; 2 when a signature is
    /// broken; 10–13 when a mailbox could not be read.
    pub fn exit_code(&self, failures: &[trasloco_core::accounting::FailureClass]) -> i32 {
        if self.mailboxes.iter().any(|m| m.broken() > 0) {
            crate::exit::INCOMPLETE
        } else {
            failures
                .first()
                .map_or(crate::exit::OK, |c| crate::run::code_of(*c))
        }
    }
}

/// Read every message of a source and examine it.
pub async fn examine_source(
    source: &Source,
    state: &State,
    opts: &Options,
    trust: &TrustStore,
) -> (MailboxPec, Option<trasloco_core::accounting::FailureClass>) {
    let mut m = MailboxPec {
        source: source.label(),
        ..Default::default()
    };
    let mut items: Vec<Item> = Vec::new();
    let result = scan(source, state, opts, &mut |s: Scanned<'_>| {
        m.messages += 1;
        let e = examine(s.bytes, trust);
        let c = &e.classified;
        // An archive's message is named by its file, a server's by folder and UID.
        let location = match s.place {
            Some(p) => p.to_string(),
            None => format!("{}/{}", s.folder, s.uid),
        };
        *m.by_kind.entry(c.kind.name().into()).or_default() += 1;
        if c.kind.is_pec() {
            m.pec_messages += 1;
            *m.by_signature
                .entry(e.signature.status.name().into())
                .or_default() += 1;
            if e.signature.sha1 {
                m.sha1 += 1;
            }
            let plain = matches!(
                e.signature.status,
                SignatureStatus::Valid | SignatureStatus::ValidAtSigningTime
            );
            let mut problems = c.findings.clone();
            if !plain {
                problems.extend(e.signature.problems.iter().cloned());
            }
            let d = c.daticert.as_ref();
            m.inventory.push(InventoryRow {
                source: m.source.clone(),
                location: location.clone(),
                folder: s.folder.to_string(),
                uid: s.uid,
                kind: c.kind.name().into(),
                verdict: e.signature.status.name().into(),
                signer: e.signature.signer.clone(),
                signing_time: e.signature.signing_time.clone(),
                sha1: e.signature.sha1,
                sender: d.and_then(|d| d.mittente.clone()),
                recipients: d.map_or_else(Vec::new, |d| {
                    d.destinatari
                        .iter()
                        .map(|r| format!("{} ({})", r.address, r.kind))
                        .collect()
                }),
                subject: d.and_then(|d| d.oggetto.clone()),
                provider: d.and_then(|d| d.gestore.clone()),
                date: d.and_then(|d| d.data).map(|t| t.to_rfc3339()),
                identifier: d.and_then(|d| d.identificativo.clone()),
                message_id: d.and_then(|d| d.msgid.clone()),
                sha256: e.sha256.clone(),
            });
            if (!plain || !problems.is_empty()) && m.notes.len() < MAX_NOTES {
                m.notes.push(Note {
                    location: location.clone(),
                    kind: c.kind.name().into(),
                    signature: e.signature.status.name().into(),
                    problems,
                });
            }
        }
        items.push(Item::of(location, s.role == Some(Role::Sent), c));
    })
    .await;
    let class = match result {
        Ok(_) => None,
        Err((class, why)) => {
            m.error = Some(why);
            Some(class)
        }
    };
    let linked = link(&items);
    m.transactions = linked.transactions.len();
    m.gaps = linked.gaps;
    (m, class)
}

fn gap_text(g: &Gap) -> String {
    match g {
        Gap::SentWithoutAcceptance {
            location,
            message_id,
            subject,
        } => format!(
            "sent with no acceptance receipt: {location} {} {:?}",
            message_id.as_deref().unwrap_or(""),
            subject.as_deref().unwrap_or("")
        ),
        Gap::RecipientWithoutOutcome {
            identificativo,
            recipient,
            subject,
        } => format!(
            "no delivery or non-delivery notice for {recipient} (sending {}, {:?})",
            identificativo.as_deref().unwrap_or("?"),
            subject.as_deref().unwrap_or("")
        ),
        Gap::ReceiptWithoutMessage {
            location,
            identificativo,
        } => format!(
            "receipt whose sending is not in the mailbox: {location} ({})",
            identificativo.as_deref().unwrap_or("?")
        ),
        Gap::Anomaly { location, subject } => format!(
            "anomaly envelope (mail without PEC guarantees): {location} {:?}",
            subject.as_deref().unwrap_or("")
        ),
    }
}

fn counts(map: &BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text people read.
pub fn text(r: &PecReport) -> String {
    let mut out = String::new();
    for m in &r.mailboxes {
        out.push_str(&format!("{}\n", m.source));
        if let Some(e) = &m.error {
            out.push_str(&format!("  NOT READ COMPLETELY: {e}\n"));
        }
        out.push_str(&format!(
            "  {} messages, {} PEC: {}\n",
            m.messages,
            m.pec_messages,
            counts(&m.by_kind)
        ));
        out.push_str(&format!(
            "  signatures: {}{}\n",
            if m.by_signature.is_empty() {
                "none".to_string()
            } else {
                counts(&m.by_signature)
            },
            if m.sha1 > 0 {
                format!(" ({} with SHA-1)", m.sha1)
            } else {
                String::new()
            }
        ));
        out.push_str(&format!(
            "  {} sendings linked, {} gaps\n",
            m.transactions,
            m.gaps.len()
        ));
        for g in &m.gaps {
            out.push_str(&format!("    {}\n", gap_text(g)));
        }
        for n in &m.notes {
            out.push_str(&format!(
                "    {} {} signature {}: {}\n",
                n.location,
                n.kind,
                n.signature,
                n.problems.join("; ")
            ));
        }
    }
    out
}

fn csv_text(r: &PecReport) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "source",
        "messages",
        "pec",
        "kinds",
        "signatures",
        "sha1",
        "sendings",
        "gaps",
        "error",
    ])?;
    for m in &r.mailboxes {
        w.write_record([
            m.source.clone(),
            m.messages.to_string(),
            m.pec_messages.to_string(),
            counts(&m.by_kind),
            counts(&m.by_signature),
            m.sha1.to_string(),
            m.transactions.to_string(),
            m.gaps.len().to_string(),
            m.error.clone().unwrap_or_default(),
        ])?;
    }
    Ok(String::from_utf8_lossy(&w.into_inner().map_err(|e| e.into_error())?).into_owned())
}

/// One row per PEC message of every mailbox: the inventory an auditor sorts and filters.
fn inventory_csv(r: &PecReport) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "source",
        "location",
        "folder",
        "uid",
        "type",
        "verdict",
        "signer",
        "signing_time",
        "sha1",
        "sender",
        "recipients",
        "subject",
        "provider",
        "date",
        "identifier",
        "message_id",
        "sha256",
    ])?;
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    for m in &r.mailboxes {
        for i in &m.inventory {
            w.write_record([
                i.source.clone(),
                i.location.clone(),
                i.folder.clone(),
                i.uid.to_string(),
                i.kind.clone(),
                i.verdict.clone(),
                opt(&i.signer),
                opt(&i.signing_time),
                i.sha1.to_string(),
                opt(&i.sender),
                i.recipients.join("; "),
                opt(&i.subject),
                opt(&i.provider),
                opt(&i.date),
                opt(&i.identifier),
                opt(&i.message_id),
                i.sha256.clone(),
            ])?;
        }
    }
    Ok(String::from_utf8_lossy(&w.into_inner().map_err(|e| e.into_error())?).into_owned())
}

fn html_text(r: &PecReport) -> String {
    let mut body = format!(
        "<h1>Posta certificata: rapporto / PEC evidence report</h1><p class=\"sub\">{}</p>",
        html::esc(&r.created_at)
    );
    for m in &r.mailboxes {
        body.push_str(&format!("<h2>{}</h2>", html::esc(&m.source)));
        body.push_str(&html::cards(&[
            ("messages / messaggi", m.messages.to_string()),
            ("PEC", m.pec_messages.to_string()),
            ("broken / alterate", m.broken().to_string()),
            ("SHA-1", m.sha1.to_string()),
            ("gaps / lacune", m.gaps.len().to_string()),
        ]));
        let kinds: Vec<(String, f64)> = m
            .by_kind
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64))
            .collect();
        body.push_str(&html::bars("messages by type", &kinds));
        let sigs: Vec<(String, f64)> = m
            .by_signature
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64))
            .collect();
        body.push_str(&html::bars("signatures by status", &sigs));
        if !m.gaps.is_empty() {
            body.push_str("<h3>Gaps / Lacune</h3><ul>");
            for g in &m.gaps {
                body.push_str(&format!("<li>{}</li>", html::esc(&gap_text(g))));
            }
            body.push_str("</ul>");
        }
        let rows: Vec<(String, Vec<Cell>)> = m
            .notes
            .iter()
            .map(|n| {
                (
                    if n.signature == "broken" {
                        "blocked"
                    } else {
                        "skip"
                    }
                    .to_string(),
                    vec![
                        Cell::Text(n.location.clone()),
                        Cell::Text(n.kind.clone()),
                        Cell::Text(n.signature.clone()),
                        Cell::Text(n.problems.join("; ")),
                    ],
                )
            })
            .collect();
        if !rows.is_empty() {
            let id = format!("notes{}", body.len());
            body.push_str(&html::table(
                &id,
                &["message", "type", "signature", "problems"],
                &rows,
            ));
        }
    }
    html::page("trasloco PEC report", &body)
}

/// Write pec-report.json (with the inventory), pec-report.csv, pec-report.html and
/// pec-inventory.csv into `dir`; returns the HTML path.
pub fn write(dir: &Path, r: &PecReport) -> Result<PathBuf, ConfigError> {
    crate::write_files(
        dir,
        [
            (
                "pec-report.json",
                serde_json::to_string_pretty(r).map_err(|e| e.to_string()),
            ),
            ("pec-report.csv", csv_text(r).map_err(|e| e.to_string())),
            ("pec-report.html", Ok(html_text(r))),
            (
                "pec-inventory.csv",
                inventory_csv(r).map_err(|e| e.to_string()),
            ),
        ],
    )?;
    Ok(dir.join("pec-report.html"))
}
