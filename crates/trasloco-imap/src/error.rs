//! One error type for the IMAP layer; its kind decides what the caller does (retry, stop the
//! mailbox, stop the run) and which exit code the user sees.

use std::fmt;

/// What kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Could not reach the server: unknown host, refused, unreachable, timeout while connecting.
    Connect,
    /// TLS negotiation or certificate verification failed.
    Tls,
    /// The server refused the credentials.
    Auth,
    /// The connection dropped or stalled after it was established: worth a reconnect.
    Dropped,
    /// The server answered NO or BAD to a command the sync cannot do without.
    Refused,
    /// The server sent something we cannot work with.
    Protocol,
}

/// An IMAP-layer error with a one-line, user-facing message.
#[derive(Debug, Clone)]
pub struct Error {
    /// The kind.
    pub kind: ErrorKind,
    /// What happened, without secrets.
    pub message: String,
}

impl Error {
    /// An error of this kind with this line.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// Whether reconnecting and trying again may help.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Dropped)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
