//! Local mail archives — Maildir, mbox and EML trees — read and written byte-exact.
//!
//! An archive written by trasloco carries a manifest ([`manifest`]): per message its folder,
//! file (and byte span for mbox), SHA-256 of the bytes as the server had them, size, flags and
//! internal date. The manifest makes three things possible without the server: verifying the
//! archive ([`verify`]), importing it back byte-identical (the reversible transformations —
//! LF line ends, mboxrd quoting, flag headers in mbox — are recorded and undone), and resuming
//! an export that was killed (unrecorded files are removed, a cut mbox is trimmed).
//!
//! Archives from elsewhere (Thunderbird and Apple Mail mbox, mboxo/mboxrd, Dovecot or Courier
//! Maildir, folders of `.eml` files) are read too ([`Archive::open`]); their line ends are
//! normalised to CRLF for IMAP and flags come from the file names or status headers.
//!
//! Everything here is synchronous file I/O; the sync layer decides where to run it. An Outlook
//! PST reader fits in as one more [`Format`] producing [`Item`]s.
#![deny(missing_docs)]

pub mod dates;
pub mod flags;
pub mod lines;
pub mod manifest;
mod read;
mod verify;
mod write;

pub use read::{Archive, Folder, Item, Skipped};
pub use verify::{VerifyReport, verify, verify_entries};
pub use write::Writer;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// Archive formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// One directory per folder with `cur`/`new`/`tmp`; flags in file names.
    Maildir,
    /// One mbox file (mboxrd) per folder; flags in `Status`/`X-Status`/`X-Keywords`.
    Mbox,
    /// One `.eml` file per message, one directory per folder; flags only in the manifest.
    Eml,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Maildir => "maildir",
            Format::Mbox => "mbox",
            Format::Eml => "eml",
        })
    }
}

/// How Maildir folders nest on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Maildir++: `.Parent.Child` directories beside the INBOX's `cur`/`new`/`tmp`.
    MaildirPlus,
    /// Nested directories: `Parent/Child/cur`.
    Fs,
}

/// An archive problem, as one line naming the file (and byte offset or item where it helps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The line.
    pub message: String,
}

impl Error {
    /// An error with this line.
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
        }
    }

    /// An I/O error on a file.
    pub fn io(path: &Path, e: std::io::Error) -> Error {
        Error::new(format!(
            "{}: {}",
            path.display(),
            trasloco_core::words::io_error(&e)
        ))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// SHA-256 in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Reserved names inside a Maildir directory, which a folder component must not take.
const MAILDIR_RESERVED: [&str; 3] = ["cur", "new", "tmp"];

/// A folder-name component as a directory or file name for `format`.
fn component_to_disk(c: &str, format: Format, layout: Option<Layout>) -> String {
    match format {
        Format::Maildir => {
            // Dovecot keeps Maildir folder names in modified UTF-7 on disk; so do we.
            let mut e = flags::escape_component(&trasloco_core::mutf7::encode(c));
            if layout == Some(Layout::MaildirPlus) {
                e = e.replace('.', "%2E");
            }
            if MAILDIR_RESERVED.contains(&e.as_str()) {
                e = format!("%{:02X}{}", e.as_bytes()[0], &e[1..]);
            }
            e
        }
        Format::Mbox | Format::Eml => flags::escape_component(c),
    }
}

/// The inverse of `component_to_disk`, tolerant of names trasloco did not write.
fn component_from_disk(c: &str, format: Format) -> String {
    let u = flags::unescape_component(c);
    match format {
        Format::Maildir => trasloco_core::mutf7::decode(&u).unwrap_or(u),
        _ => u,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_components_round_trip() {
        for (fmt, layout) in [
            (Format::Maildir, Some(Layout::MaildirPlus)),
            (Format::Maildir, Some(Layout::Fs)),
            (Format::Mbox, None),
            (Format::Eml, None),
        ] {
            for c in [
                "Posta inviata",
                "Società",
                "v1.2",
                "cur",
                "100%",
                ".x",
                "Ελληνικά",
            ] {
                let d = component_to_disk(c, fmt, layout);
                assert!(!d.starts_with('.') && !d.contains('/'), "{d}");
                if layout == Some(Layout::MaildirPlus) {
                    assert!(!d.contains('.'), "{d}");
                }
                assert_eq!(component_from_disk(&d, fmt), c, "{fmt} {d}");
            }
        }
    }
}
