//! Modified UTF-7 for IMAP mailbox names (RFC 3501 §5.1.3).
//!
//! Printable US-ASCII (0x20–0x7E) stands for itself, except `&`, written `&-`. Every other run
//! of characters is UTF-16 encoded, base64'd with `,` instead of `/` and no padding, and
//! wrapped in `&` … `-`.

use std::fmt;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// A mailbox name that is not valid modified UTF-7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The name as received.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mailbox name {:?} is not modified UTF-7: {}",
            self.name, self.reason
        )
    }
}

impl std::error::Error for DecodeError {}

/// Encode a Unicode mailbox name for the wire.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut pending, &mut out);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

fn flush(units: &mut Vec<u16>, out: &mut String) {
    if units.is_empty() {
        return;
    }
    let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        // 1 byte → 2 sextets, 2 → 3, 3 → 4 (no padding in modified UTF-7).
        for s in &sextets[..chunk.len() + 1] {
            out.push(ALPHABET[*s as usize] as char);
        }
    }
    out.push('-');
    units.clear();
}

fn sextet(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// Decode a wire mailbox name into Unicode. Strict: rejects what RFC 3501 forbids, so a name
/// that does not round-trip is noticed instead of silently becoming another folder.
pub fn decode(name: &str) -> Result<String, DecodeError> {
    let err = |reason| DecodeError {
        name: name.to_string(),
        reason,
    };
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c != b'&' {
            if !(0x20..=0x7e).contains(&c) {
                return Err(err("contains a byte outside printable ASCII"));
            }
            out.push(c as char);
            i += 1;
            continue;
        }
        let end = bytes[i + 1..]
            .iter()
            .position(|&b| b == b'-')
            .map(|p| i + 1 + p)
            .ok_or_else(|| err("an '&' run is not closed by '-'"))?;
        let run = &bytes[i + 1..end];
        i = end + 1;
        if run.is_empty() {
            out.push('&');
            continue;
        }
        let mut bits: u32 = 0;
        let mut nbits = 0;
        let mut units = Vec::new();
        for &b in run {
            let v = sextet(b).ok_or_else(|| err("invalid base64 character"))?;
            bits = (bits << 6) | v;
            nbits += 6;
            if nbits >= 16 {
                nbits -= 16;
                units.push(((bits >> nbits) & 0xffff) as u16);
            }
        }
        if nbits >= 6 || (bits & ((1 << nbits) - 1)) != 0 {
            return Err(err("base64 run has leftover bits"));
        }
        let text = String::from_utf16(&units).map_err(|_| err("invalid UTF-16 in base64 run"))?;
        if text.chars().any(|ch| (' '..='~').contains(&ch)) {
            return Err(err("printable ASCII encoded in base64"));
        }
        out.push_str(&text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc3501_examples() {
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
    }

    #[test]
    fn ampersand_is_escaped() {
        assert_eq!(encode("R&D"), "R&-D");
        assert_eq!(decode("R&-D").unwrap(), "R&D");
    }

    #[test]
    fn italian_accents() {
        assert_eq!(encode("Società"), "Societ&AOA-");
        assert_eq!(encode("Attività è già"), "Attivit&AOA- &AOg- gi&AOA-");
    }

    #[test]
    fn astral_plane_uses_surrogates() {
        let name = "Posta 📬";
        assert_eq!(decode(&encode(name)).unwrap(), name);
    }

    #[test]
    fn rejects_bad_names() {
        assert!(decode("&AOA").is_err());
        assert!(decode("&QQ-").is_err(), "'A' must not be base64-encoded");
        assert!(decode("a\u{e9}").is_err());
        assert!(decode("&!!-").is_err());
    }

    proptest! {
        #[test]
        fn round_trips(name in "\\PC{0,24}") {
            let wire = encode(&name);
            prop_assert!(wire.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(decode(&wire).unwrap(), name);
        }
    }
}
