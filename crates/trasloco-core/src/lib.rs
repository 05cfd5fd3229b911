//! The pure decisions of a mailbox migration, with no I/O.
//!
//! Everything here takes data and returns data, so it is tested exhaustively without servers:
//! - [`mutf7`]: IMAP's modified UTF-7 mailbox names (RFC 3501 §5.1.3);
//! - [`folder_map`]: which target folder each source folder goes to (special-use roles,
//!   localised names, hierarchy delimiters);
//! - [`identity`]: a content identity for a message that survives lost state and UIDVALIDITY
//!   changes without ever touching the message bytes;
//! - [`flags`]: which flags a target accepts, and how a source flag change is carried over;
//! - [`diff`]: what to copy, what is already there, what flags to update;
//! - [`accounting`]: the buckets every source message ends in, which always add up;
//! - [`words`]: RFC 2047 encoded words in header values, decoded for display;
//! - [`escapes`]: URL percent-decoding and HMAC-SHA256.
//!
//! ```
//! use trasloco_core::mutf7;
//! assert_eq!(mutf7::encode("Progetti/Società"), "Progetti/Societ&AOA-");
//! assert_eq!(mutf7::decode("Progetti/Societ&AOA-").unwrap(), "Progetti/Società");
//! ```
#![deny(missing_docs)]

pub mod accounting;
pub mod diff;
pub mod escapes;
pub mod flags;
pub mod folder_map;
pub mod identity;
pub mod mutf7;
pub mod words;
