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
    /// The server asked the client to slow down (Exchange's "Request is throttled",
    /// `[THROTTLED]`, `[UNAVAILABLE]`, Gmail's bandwidth limit): wait and go on.
    Throttled,
}

/// An IMAP-layer error with a one-line, user-facing message.
#[derive(Debug, Clone)]
pub struct Error {
    /// The kind.
    pub kind: ErrorKind,
    /// What happened, without secrets.
    pub message: String,
    /// How long the server asked the client to wait, when it said (throttling).
    pub retry_after: Option<std::time::Duration>,
}

impl Error {
    /// An error of this kind with this line.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Whether reconnecting and trying again may help.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Dropped | ErrorKind::Throttled)
    }

    /// The server's words `text` as a throttling error, if they are one (see [`throttling`]).
    pub fn throttled(host: &str, text: &str) -> Option<Error> {
        let wait = throttling(text)?;
        Some(Error {
            kind: ErrorKind::Throttled,
            message: format!("{host} is throttling: {}", text.trim()),
            retry_after: wait,
        })
    }
}

/// Whether a server's answer asks the client to slow down, and for how long when it says:
/// Exchange Online's `Request is throttled. Suggested Backoff Time: N milliseconds` (on NO or
/// BAD, up to about five minutes), its `Connection closed. 14` after throttling, the
/// `[THROTTLED]` and `[UNAVAILABLE]` response codes, Gmail's "exceeded command or bandwidth
/// limits". Not `[LIMIT]` (RFC 5530): servers use it for a message over a size limit, which
/// waiting cannot change. `Some(None)`: throttled, for an unsaid time.
pub fn throttling(text: &str) -> Option<Option<std::time::Duration>> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = lower.find("suggested backoff time:") {
        let n: String = lower[i + 23..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let ms = n.parse::<u64>().ok();
        return Some(ms.map(std::time::Duration::from_millis));
    }
    let said = lower.contains("request is throttled")
        || lower.contains("[throttled]")
        || lower.contains("[unavailable]")
        || lower.contains("exceeded command or bandwidth limits")
        || lower.trim_end().ends_with("connection closed. 14");
    said.then_some(None)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn throttling_is_recognised_with_its_backoff() {
        assert_eq!(
            throttling("Request is throttled. Suggested Backoff Time: 299609 milliseconds"),
            Some(Some(Duration::from_millis(299_609)))
        );
        assert_eq!(throttling("[THROTTLED] slow down"), Some(None));
        assert_eq!(throttling("[UNAVAILABLE] try later"), Some(None));
        assert_eq!(
            throttling("[LIMIT] Mail size is larger than the maximum size allowed"),
            None,
            "a size limit is not throttling"
        );
        assert_eq!(throttling("Connection closed. 14"), Some(None));
        assert_eq!(
            throttling("Account exceeded command or bandwidth limits. (Failure)"),
            Some(None)
        );
        assert_eq!(throttling("[OVERQUOTA] Mailbox is full"), None);
        assert_eq!(
            throttling("Maximum size of appendable message has been exceeded"),
            None
        );
        let e = Error::throttled(
            "outlook.office365.com",
            "Request is throttled. Suggested Backoff Time: 1500 milliseconds",
        )
        .unwrap();
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert!(e.is_transient());
        assert_eq!(e.retry_after, Some(Duration::from_millis(1500)));
    }
}
