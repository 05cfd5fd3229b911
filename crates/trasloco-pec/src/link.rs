//! Receipt linking: across a mailbox (or an archive), join every sent message to its
//! acceptance and, per certified recipient, to a delivery or non-delivery notice, and list the
//! gaps — what an auditor asks first about a PEC mailbox.
//!
//! Keys (reference §1.6): `daticert/identificativo` joins the receipts of one transaction; the
//! client's Message-ID (`daticert/msgid`, `X-Riferimento-Message-ID`) joins them to the copy in
//! the Sent folder; `daticert/consegna` tells per-recipient notices apart.

use crate::classify::{Classified, Kind};
use serde::Serialize;
use std::collections::BTreeMap;

/// What linking needs of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Where it is (folder and UID, or archive path).
    pub location: String,
    /// Whether it lies in the Sent folder (a message the owner sent).
    pub in_sent: bool,
    /// Its kind.
    pub kind: Kind,
    /// Top-level Message-ID.
    pub message_id: Option<String>,
    /// The transaction's PEC id.
    pub identificativo: Option<String>,
    /// The client's Message-ID of the original.
    pub msgid: Option<String>,
    /// The recipient a notice is about.
    pub consegna: Option<String>,
    /// Certified recipients (acceptance receipts list them).
    pub certified: Vec<String>,
    /// Subject, for people.
    pub subject: Option<String>,
}

impl Item {
    /// The linking view of a classified message.
    pub fn of(location: String, in_sent: bool, c: &Classified) -> Item {
        let d = c.daticert.as_ref();
        Item {
            location,
            in_sent,
            kind: c.kind,
            message_id: c.message_id.clone(),
            identificativo: d.and_then(|d| d.identificativo.clone()),
            msgid: d
                .and_then(|d| d.msgid.clone())
                .or_else(|| c.reference.clone()),
            consegna: d.and_then(|d| d.consegna.clone()),
            certified: d
                .map(|d| {
                    d.destinatari
                        .iter()
                        .filter(|r| r.kind == "certificato")
                        .map(|r| r.address.to_ascii_lowercase())
                        .collect()
                })
                .unwrap_or_default(),
            subject: d
                .and_then(|d| d.oggetto.clone())
                .or_else(|| c.subject.clone()),
        }
    }
}

/// One recipient's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The recipient.
    pub recipient: String,
    /// `delivered`, `not-delivered`, `timeout` or `none`.
    pub outcome: String,
    /// Where the notice is.
    pub notice: Option<String>,
}

/// One sending: its copy, its acceptance and each recipient's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transaction {
    /// The PEC id (`identificativo`), when a receipt gave it.
    pub identificativo: Option<String>,
    /// The client's Message-ID.
    pub msgid: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// The copy in the Sent folder.
    pub sent_copy: Option<String>,
    /// The acceptance (or non-acceptance) receipt.
    pub acceptance: Option<String>,
    /// Whether the provider refused it (non-acceptance).
    pub refused: bool,
    /// Per certified recipient.
    pub recipients: Vec<Outcome>,
}

/// A hole in the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "gap", rename_all = "kebab-case")]
pub enum Gap {
    /// A message in Sent with no acceptance receipt.
    SentWithoutAcceptance {
        /// Where the sent copy is.
        location: String,
        /// Its Message-ID.
        message_id: Option<String>,
        /// Subject.
        subject: Option<String>,
    },
    /// A certified recipient with neither a delivery nor a non-delivery notice.
    RecipientWithoutOutcome {
        /// The transaction.
        identificativo: Option<String>,
        /// Who.
        recipient: String,
        /// Subject.
        subject: Option<String>,
    },
    /// A receipt whose sent message is not in the mailbox (neither the copy nor the
    /// acceptance).
    ReceiptWithoutMessage {
        /// Where the receipt is.
        location: String,
        /// The transaction.
        identificativo: Option<String>,
    },
    /// An anomaly envelope: mail that reached the PEC box without PEC's guarantees.
    Anomaly {
        /// Where it is.
        location: String,
        /// Subject.
        subject: Option<String>,
    },
}

/// Transactions and gaps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Linked {
    /// Every sending found.
    pub transactions: Vec<Transaction>,
    /// What is missing.
    pub gaps: Vec<Gap>,
}

fn norm_id(s: &str) -> String {
    s.trim().trim_matches(['<', '>']).to_ascii_lowercase()
}

/// Link the messages of a mailbox.
pub fn link(items: &[Item]) -> Linked {
    // Transactions keyed by the client msgid when known, else by the PEC id.
    let mut by_key: BTreeMap<String, Transaction> = BTreeMap::new();
    let mut pec_to_key: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Linked::default();
    let key_of = |i: &Item| {
        i.msgid.as_deref().map(norm_id).or_else(|| {
            i.identificativo
                .as_deref()
                .map(|p| format!("pec:{}", norm_id(p)))
        })
    };
    // Acceptances first: they open transactions and list the recipients.
    for i in items.iter().filter(|i| {
        matches!(
            i.kind,
            Kind::Acceptance | Kind::NonAcceptance | Kind::NonAcceptanceVirus
        )
    }) {
        let Some(key) = key_of(i) else { continue };
        if let Some(p) = &i.identificativo {
            pec_to_key.insert(norm_id(p), key.clone());
        }
        let t = by_key.entry(key).or_insert_with(|| Transaction {
            identificativo: i.identificativo.clone(),
            msgid: i.msgid.clone(),
            subject: i.subject.clone(),
            sent_copy: None,
            acceptance: None,
            refused: false,
            recipients: Vec::new(),
        });
        t.acceptance = Some(i.location.clone());
        t.refused = i.kind != Kind::Acceptance;
        for r in &i.certified {
            if !t.recipients.iter().any(|o| &o.recipient == r) {
                t.recipients.push(Outcome {
                    recipient: r.clone(),
                    outcome: "none".into(),
                    notice: None,
                });
            }
        }
    }
    // Copies in Sent.
    for i in items
        .iter()
        .filter(|i| i.in_sent && i.kind == Kind::Ordinary)
    {
        let found = i
            .message_id
            .as_deref()
            .map(norm_id)
            .and_then(|k| by_key.get_mut(&k));
        match found {
            Some(t) => t.sent_copy = Some(i.location.clone()),
            None => out.gaps.push(Gap::SentWithoutAcceptance {
                location: i.location.clone(),
                message_id: i.message_id.clone(),
                subject: i.subject.clone(),
            }),
        }
    }
    // Outcomes per recipient.
    for i in items
        .iter()
        .filter(|i| i.kind.is_delivery() || i.kind.is_failure())
    {
        let key = key_of(i).filter(|k| by_key.contains_key(k)).or_else(|| {
            i.identificativo
                .as_deref()
                .and_then(|p| pec_to_key.get(&norm_id(p)).cloned())
        });
        let Some(t) = key.and_then(|k| by_key.get_mut(&k)) else {
            out.gaps.push(Gap::ReceiptWithoutMessage {
                location: i.location.clone(),
                identificativo: i.identificativo.clone(),
            });
            continue;
        };
        let who = i.consegna.as_deref().unwrap_or("").to_ascii_lowercase();
        let outcome = if i.kind.is_delivery() {
            "delivered"
        } else if i.kind == Kind::NonDeliveryTimeout {
            "timeout"
        } else {
            "not-delivered"
        };
        match t.recipients.iter_mut().find(|o| o.recipient == who) {
            // A delivery beats a timeout notice that came before it.
            Some(o) if o.outcome == "none" || o.outcome == "timeout" => {
                o.outcome = outcome.into();
                o.notice = Some(i.location.clone());
            }
            Some(_) => {}
            None => t.recipients.push(Outcome {
                recipient: who,
                outcome: outcome.into(),
                notice: Some(i.location.clone()),
            }),
        }
    }
    for i in items.iter().filter(|i| i.kind == Kind::AnomalyEnvelope) {
        out.gaps.push(Gap::Anomaly {
            location: i.location.clone(),
            subject: i.subject.clone(),
        });
    }
    for t in by_key.into_values() {
        if !t.refused {
            for o in t.recipients.iter().filter(|o| o.outcome == "none") {
                out.gaps.push(Gap::RecipientWithoutOutcome {
                    identificativo: t.identificativo.clone(),
                    recipient: o.recipient.clone(),
                    subject: t.subject.clone(),
                });
            }
        }
        out.transactions.push(t);
    }
    out
}
