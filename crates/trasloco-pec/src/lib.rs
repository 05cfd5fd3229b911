//! PEC (Posta Elettronica Certificata, Italian certified mail) as evidence.
//!
//! Given the raw bytes of a message, as stored:
//! - [`classify`]: transport envelope, each receipt and notice, anomaly envelope, REM, or
//!   ordinary mail — from the header fields, the MIME structure and `daticert.xml` together;
//! - [`daticert`]: the certification data, typed; malformed files are a finding, not a crash;
//! - [`signature`]: the provider's CMS signature over the first MIME part, its digest, the
//!   signer certificate and its chain to a trust store **at signing time** (SHA-1 accepted for
//!   historical evidence, and flagged);
//! - [`original`]: the original message (`postacert.eml`) of envelopes and delivery receipts;
//! - [`link`]: every sent message with its acceptance and per-recipient outcome, and the gaps;
//! - [`sign`]: making CMS signatures (the test PKI's messages, signed Apple profiles).
//!
//! The reference is `research/pec-spec.md` (RFC 6109 and what real providers send).
#![deny(missing_docs)]

pub mod classify;
pub mod daticert;
pub mod link;
pub mod mime;
pub mod sign;
pub mod signature;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use classify::{Classified, Kind, classify, might_be_pec, original};
pub use daticert::Daticert;
pub use signature::{SignatureCheck, SignatureStatus, TrustStore, verify};

use serde::Serialize;

/// Everything trasloco knows about one message as evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// Classification and certification data.
    #[serde(flatten)]
    pub classified: Classified,
    /// The signature check.
    pub signature: SignatureCheck,
    /// SHA-256 of the bytes as stored.
    pub sha256: String,
}

/// Classify a message and check its signature.
pub fn examine(raw: &[u8], trust: &TrustStore) -> Evidence {
    use sha2::Digest;
    let classified = classify(raw);
    let signature = if classified.signed {
        verify(raw, trust)
    } else {
        SignatureCheck::unsigned()
    };
    Evidence {
        classified,
        signature,
        sha256: hex::encode(sha2::Sha256::digest(raw)),
    }
}
