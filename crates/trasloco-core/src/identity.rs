//! A content identity for a message, used where UID state cannot say whether a message is
//! already on the target: first contact with a non-empty target, a lost state file, a changed
//! UIDVALIDITY.
//!
//! The key is SHA-256 over the normalised `Message-ID`, `Date`, `From` and `Subject` header
//! values plus the message size. Identical messages get identical keys, and the diff matches
//! them with multiplicity (two identical copies stay two). Messages are never modified to
//! identify them: no injected header, no watermark — PEC signatures depend on the exact bytes.

use sha2::{Digest, Sha256};
use std::fmt;

/// The header fields that make up the identity, in the order hashed.
pub const IDENTITY_FIELDS: [&str; 4] = ["MESSAGE-ID", "DATE", "FROM", "SUBJECT"];

/// A message's content identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityKey(pub [u8; 32]);

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({})", &hex::encode(self.0)[..16])
    }
}

/// Compute the identity from a header block (as returned for
/// `BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)]`, or a whole header) and the size.
pub fn identity(header_block: &[u8], size: u64) -> IdentityKey {
    let mut values: [Vec<u8>; 4] = Default::default();
    let mut seen = [false; 4];
    for (name, value) in header_fields(header_block) {
        if let Some(i) = IDENTITY_FIELDS
            .iter()
            .position(|f| name.eq_ignore_ascii_case(f.as_bytes()))
        {
            // The first occurrence counts, as for a mail reader.
            if !seen[i] {
                seen[i] = true;
                values[i] = normalise(&value, i == 0);
            }
        }
    }
    let mut h = Sha256::new();
    for (i, v) in values.iter().enumerate() {
        h.update([u8::from(seen[i])]);
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
    }
    h.update(size.to_be_bytes());
    IdentityKey(h.finalize().into())
}

/// The identity without the size: the same headers. Used only to find a copy the target
/// server rewrote (a dropped final CR changes the size), always confirmed by the bytes
/// ([`rewritten_alike`]) before it counts.
pub fn loose_identity(header_block: &[u8]) -> IdentityKey {
    identity(header_block, u64::MAX)
}

/// Whether `stored` is `original` as a server rewrites a message it stores: NUL bytes turned
/// into 0x80, bare LF into CRLF, a final bare CR dropped. Nothing else may differ.
pub fn rewritten_alike(original: &[u8], stored: &[u8]) -> bool {
    fn canonical(b: &[u8]) -> Vec<u8> {
        let b = b.strip_suffix(b"\r").unwrap_or(b);
        let mut out = Vec::with_capacity(b.len() + b.len() / 32);
        for (i, &c) in b.iter().enumerate() {
            match c {
                0 => out.push(0x80),
                b'\n' if i == 0 || b[i - 1] != b'\r' => out.extend_from_slice(b"\r\n"),
                _ => out.push(c),
            }
        }
        out
    }
    canonical(original) == canonical(stored)
}

/// Split a header block into (name, unfolded raw value) pairs. Tolerant: lines without a colon
/// are ignored, bare LF is accepted, 8-bit bytes are kept.
fn header_fields(block: &[u8]) -> Vec<(&[u8], Vec<u8>)> {
    let mut out: Vec<(&[u8], Vec<u8>)> = Vec::new();
    for raw in block.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((_, v)) = out.last_mut() {
                v.push(b' ');
                v.extend_from_slice(line);
            }
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = trim(&line[..colon]);
            out.push((name, line[colon + 1..].to_vec()));
        }
    }
    out
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// Collapse whitespace runs to one space and trim; for Message-ID also drop the angle brackets
/// and lower-case it, since servers and gateways are known to re-fold and re-case it.
fn normalise(value: &[u8], message_id: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut space = false;
    for &b in trim(value) {
        if b.is_ascii_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() && !message_id {
            out.push(b' ');
        }
        space = false;
        out.push(if message_id {
            b.to_ascii_lowercase()
        } else {
            b
        });
    }
    if message_id {
        out.retain(|&b| b != b'<' && b != b'>');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"Message-ID: <abc@example.org>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0100\r\nFrom: Anna <anna@example.org>\r\nSubject: Verbale\r\n\r\n";

    #[test]
    fn same_headers_and_size_give_same_key() {
        assert_eq!(identity(A, 100), identity(A, 100));
    }

    #[test]
    fn size_is_part_of_the_key() {
        assert_ne!(identity(A, 100), identity(A, 101));
    }

    #[test]
    fn folding_and_field_order_do_not_matter() {
        let b = b"Subject: Verbale\r\nFrom: Anna\r\n <anna@example.org>\r\nDate: Mon, 1 Jan 2024  10:00:00 +0100\r\nMessage-Id:   <ABC@example.org>\r\n\r\n";
        assert_eq!(identity(A, 100), identity(b, 100));
    }

    #[test]
    fn message_without_message_id_still_has_an_identity() {
        let a = b"Date: Tue, 2 Jan 2024 10:00:00 +0100\r\nFrom: x@example.org\r\nSubject: no id\r\n\r\n";
        let b = b"Date: Tue, 2 Jan 2024 10:00:01 +0100\r\nFrom: x@example.org\r\nSubject: no id\r\n\r\n";
        assert_eq!(identity(a, 10), identity(a, 10));
        assert_ne!(identity(a, 10), identity(b, 10));
    }

    #[test]
    fn missing_field_differs_from_empty_field() {
        let a = b"Subject:\r\n\r\n";
        let b = b"\r\n";
        assert_ne!(identity(a, 1), identity(b, 1));
    }

    #[test]
    fn eight_bit_and_malformed_headers_are_tolerated() {
        let a = b"Subject: Citt\xe0 \xff\r\nthis line has no colon\r\nFrom: \r\n\r\n";
        assert_eq!(identity(a, 5), identity(a, 5));
        let b = b"Subject: Citt\xe0 \xfe\r\n\r\n";
        assert_ne!(identity(a, 5), identity(b, 5));
    }

    #[test]
    fn server_rewrites_are_recognised_and_nothing_else() {
        let original = b"Subject: x\r\n\r\nbefore\0after\nlast\r";
        assert!(rewritten_alike(
            original,
            b"Subject: x\r\n\r\nbefore\x80after\r\nlast"
        ));
        assert!(rewritten_alike(original, original));
        assert!(!rewritten_alike(
            original,
            b"Subject: x\r\n\r\nbefore\x80afteR\r\nlast"
        ));
        assert!(!rewritten_alike(b"a\r\n", b"a\r\n\r\nfooter\r\n"));
        assert_eq!(loose_identity(A), loose_identity(A));
        assert_ne!(loose_identity(A), identity(A, 100));
    }

    #[test]
    fn lf_only_headers_match_crlf_headers() {
        let lf = b"Message-ID: <abc@example.org>\nDate: Mon, 1 Jan 2024 10:00:00 +0100\nFrom: Anna <anna@example.org>\nSubject: Verbale\n\n";
        assert_eq!(identity(A, 100), identity(lf, 100));
    }
}
