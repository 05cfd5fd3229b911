//! Words for people: header values with their RFC 2047 encoded words (`=?UTF-8?B?…?=`)
//! decoded for display (what cannot be decoded, an unknown charset or broken base64, is shown
//! as it was written), and file errors said without the operating system's error numbers.

use base64::Engine;

/// Decode the encoded words of a header value. Whitespace between two encoded words is
/// dropped, as RFC 2047 §6.2 says; UTF-8, US-ASCII, ISO-8859-1, ISO-8859-15 and Windows-1252
/// are understood, other charsets are left encoded.
pub fn decode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, from) = rest.split_at(start);
        match word(from) {
            Some((text, used)) => {
                if !(after_word && before.chars().all(char::is_whitespace)) {
                    out.push_str(before);
                }
                out.push_str(&text);
                rest = &from[used..];
                after_word = true;
            }
            None => {
                out.push_str(&rest[..start + 2]);
                rest = &rest[start + 2..];
                after_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A file error in words an admin acts on: what is wrong with the file, not "(os error 2)".
pub fn io_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "it does not exist (check the path)".into(),
        K::PermissionDenied => {
            "permission denied (check the owner and mode of the file and its directory)".into()
        }
        K::AlreadyExists => "it exists already".into(),
        K::IsADirectory => "it is a directory, not a file".into(),
        K::NotADirectory => "a part of the path is a file, not a directory".into(),
        K::StorageFull => "the disk is full".into(),
        K::ReadOnlyFilesystem => "the file system is read-only".into(),
        K::InvalidData => "it is not text (UTF-8)".into(),
        _ => {
            // The system's own words, without the "(os error N)" tail.
            let text = e.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    }
}

/// One encoded word at the start of `s`: its text and how many bytes it took.
fn word(s: &str) -> Option<(String, usize)> {
    let body = s.strip_prefix("=?")?;
    let (charset, body) = body.split_once('?')?;
    let (enc, body) = body.split_once('?')?;
    let end = body.find("?=")?;
    let data = &body[..end];
    if data.contains(char::is_whitespace) {
        return None;
    }
    let used = 2 + charset.len() + 1 + enc.len() + 1 + end + 2;
    // RFC 2231 language suffix: `UTF-8*it`.
    let charset = charset.split('*').next().unwrap_or(charset);
    let bytes = match enc {
        "B" | "b" => base64::engine::general_purpose::STANDARD
            .decode(data)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(data))
            .ok()?,
        "Q" | "q" => q_decode(data)?,
        _ => return None,
    };
    Some((to_text(charset, &bytes)?, used))
}

fn q_decode(data: &str) -> Option<Vec<u8>> {
    let b = data.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

/// Windows-1252's 0x80–0x9F, where it differs from ISO-8859-1.
const CP1252: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

fn to_text(charset: &str, bytes: &[u8]) -> Option<String> {
    match charset.to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" => Some(String::from_utf8_lossy(bytes).into_owned()),
        "us-ascii" | "ascii" | "iso-8859-1" | "latin1" | "iso8859-1" => {
            Some(bytes.iter().map(|&b| char::from(b)).collect())
        }
        "windows-1252" | "cp1252" => Some(
            bytes
                .iter()
                .map(|&b| match b {
                    0x80..=0x9f => CP1252[usize::from(b - 0x80)],
                    _ => char::from(b),
                })
                .collect(),
        ),
        "iso-8859-15" | "latin9" => Some(
            bytes
                .iter()
                .map(|&b| match b {
                    0xa4 => '€',
                    0xa6 => 'Š',
                    0xa8 => 'š',
                    0xb4 => 'Ž',
                    0xb8 => 'ž',
                    0xbc => 'Œ',
                    0xbd => 'œ',
                    0xbe => 'Ÿ',
                    _ => char::from(b),
                })
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encoded_words_are_decoded() {
        assert_eq!(decode("=?UTF-8?B?U29jaWV0w6A=?="), "Società");
        assert_eq!(decode("=?iso-8859-1?Q?Citt=E0_di_Roma?="), "Città di Roma");
        assert_eq!(
            decode("Re: =?UTF-8?Q?Verbale_n=C2=B0?= 3 del consiglio"),
            "Re: Verbale n° 3 del consiglio"
        );
        assert_eq!(
            decode("=?UTF-8?B?U29j?= =?UTF-8?B?aWV0w6A=?="),
            "Società",
            "whitespace between encoded words goes"
        );
        assert_eq!(
            decode("\"=?utf-8?q?Ufficio_Stampa?=\" <stampa@example.org>"),
            "\"Ufficio Stampa\" <stampa@example.org>"
        );
        assert_eq!(decode("=?windows-1252?Q?=80_100?="), "€ 100");
    }

    #[test]
    fn what_cannot_be_decoded_stays_as_written() {
        assert_eq!(decode("plain text"), "plain text");
        assert_eq!(decode("=?KOI8-R?B?8NLJ18XU?="), "=?KOI8-R?B?8NLJ18XU?=");
        assert_eq!(decode("=?UTF-8?B?***?="), "=?UTF-8?B?***?=");
        assert_eq!(decode("a =? b"), "a =? b");
        assert_eq!(decode("=?UTF-8?Q?unterminated"), "=?UTF-8?Q?unterminated");
    }

    #[test]
    fn file_errors_say_what_is_wrong() {
        let e = std::fs::read("/nonexistent/trasloco/file").unwrap_err();
        assert_eq!(io_error(&e), "it does not exist (check the path)");
        let e = std::io::Error::from_raw_os_error(5);
        assert!(!io_error(&e).contains("os error"), "{}", io_error(&e));
    }

    proptest! {
        /// Any text: no panic, and text without "=?" comes back as it was.
        #[test]
        fn never_panics(s in ".{0,80}") {
            let d = decode(&s);
            if !s.contains("=?") {
                prop_assert_eq!(d, s);
            }
        }
    }
}
