//! A pipelined IMAP client built for moving mail fast and byte-exact.
//!
//! - [`framing`] cuts the byte stream into complete responses (literals included) in one pass,
//!   so a 30 MB message is scanned once and an unparseable response can be skipped without
//!   losing the connection;
//! - `imap-proto` parses each complete response;
//! - [`Client`] runs commands: LIST/LSUB, SELECT/EXAMINE, UID FETCH over ranges with
//!   `BODY.PEEK[]`, MULTIAPPEND with LITERAL+ and APPENDUID, pipelined UID STORE;
//! - [`connect`] opens plain, STARTTLS or implicit-TLS connections with certificate
//!   verification on by default.
//!
//! ```no_run
//! # async fn demo() -> Result<(), trasloco_imap::Error> {
//! use trasloco_imap::{Client, Credentials, Endpoint, Security, TlsOptions};
//! let ep = Endpoint { host: "127.0.0.1".into(), port: 993, security: Security::Implicit };
//! let mut client = Client::connect(&ep, &TlsOptions::default()).await?;
//! client.login(&Credentials::new("alice", "secret".to_string())).await?;
//! let folders = client.list().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod client;
mod command;
mod connect;
mod error;
pub mod framing;
pub mod oauth;
pub mod timeouts;

pub use client::{
    AppendMsg, AppendOutcome, AppendStart, AppendStream, BodyStream, Client, FetchedMeta,
    FolderStatus, ListEntry, Listing, PendingAppend, Selected, Statuses, UidWindow,
};
pub use command::{quote_astring, uid_set};
pub use connect::{
    Credentials, Endpoint, Master, MasterStyle, Security, TlsOptions, fingerprint_text,
    parse_fingerprint,
};
pub use error::{Error, ErrorKind};

/// Connection setup shared with the other protocol clients (POP3): TCP with one-line errors,
/// and TLS with certificate verification on by default.
pub mod net {
    pub use crate::connect::{Stream, open, start_tls, tcp, tls_wrap};
}
