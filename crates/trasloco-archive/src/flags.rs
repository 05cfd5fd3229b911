//! Flags as archives store them: Maildir info letters (and Dovecot's keyword letters), and the
//! `Status`, `X-Status`, `X-Keywords` and `X-Mozilla-Status` headers of mbox files.

use crate::dates::header;

const MAILDIR: [(char, &str); 6] = [
    ('D', "\\Draft"),
    ('F', "\\Flagged"),
    ('P', "$Forwarded"),
    ('R', "\\Answered"),
    ('S', "\\Seen"),
    ('T', "\\Deleted"),
];

/// Flags from a Maildir file name's info part (`…:2,FRS` or `…:2,Sab`), with `keywords[i]` the
/// keyword of lowercase letter `a + i` (Dovecot's `dovecot-keywords`). Unknown letters are
/// ignored; a name without `:2,` has no flags.
pub fn from_maildir_name(name: &str, keywords: &[String]) -> Vec<String> {
    let Some((_, info)) = name.rsplit_once(":2,") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in info.chars() {
        if let Some((_, f)) = MAILDIR.iter().find(|(l, _)| *l == c) {
            out.push(f.to_string());
        } else if c.is_ascii_lowercase()
            && let Some(k) = keywords.get((c as u8 - b'a') as usize)
        {
            out.push(k.clone());
        }
    }
    out
}

/// The info letters for `flags`; keywords get letters from `keywords` (extended as needed, at
/// most 26). Returns the letters (sorted, as the Maildir spec wants) and the flags that found
/// no letter. `$Forwarded` is written as a keyword, as Dovecot keeps it: Dovecot does not read
/// the letter `P` as `$Forwarded` (reading still accepts `P`, which other programs write).
pub fn to_maildir_info(flags: &[String], keywords: &mut Vec<String>) -> (String, Vec<String>) {
    let mut letters = Vec::new();
    let mut unstored = Vec::new();
    for f in flags {
        if let Some((l, _)) = MAILDIR
            .iter()
            .find(|(l, n)| *l != 'P' && n.eq_ignore_ascii_case(f))
        {
            letters.push(*l);
        } else if f.starts_with('\\') {
            unstored.push(f.clone()); // \Recent and unknown system flags
        } else if let Some(i) = keywords.iter().position(|k| k == f) {
            letters.push((b'a' + i as u8) as char);
        } else if keywords.len() < 26 {
            keywords.push(f.clone());
            letters.push((b'a' + (keywords.len() - 1) as u8) as char);
        } else {
            unstored.push(f.clone());
        }
    }
    letters.sort_unstable();
    letters.dedup();
    (letters.into_iter().collect(), unstored)
}

/// Flags from mbox headers: `Status` (R seen), `X-Status` (A answered, F flagged, T draft,
/// D deleted), `X-Keywords`, Thunderbird's `X-Mozilla-Status` bits and its tags in
/// `X-Mozilla-Keys`.
pub fn from_mbox_headers(raw: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |f: &str| {
        if !out.iter().any(|x| x == f) {
            out.push(f.to_string());
        }
    };
    if let Some(s) = header(raw, "Status")
        && s.contains('R')
    {
        add("\\Seen");
    }
    if let Some(s) = header(raw, "X-Status") {
        for (c, f) in [
            ('A', "\\Answered"),
            ('F', "\\Flagged"),
            ('T', "\\Draft"),
            ('D', "\\Deleted"),
        ] {
            if s.contains(c) {
                add(f);
            }
        }
    }
    if let Some(s) = header(raw, "X-Mozilla-Status")
        && let Ok(bits) = u32::from_str_radix(s.trim(), 16)
    {
        for (bit, f) in [
            (0x1, "\\Seen"),
            (0x2, "\\Answered"),
            (0x4, "\\Flagged"),
            (0x8, "\\Deleted"),
            (0x1000, "$Forwarded"),
        ] {
            if bits & bit != 0 {
                add(f);
            }
        }
    }
    // Thunderbird's tags (`$label1`…`$label5` and the user's own), space-separated in a header
    // it pads with blanks.
    for name in ["X-Keywords", "X-Mozilla-Keys"] {
        if let Some(s) = header(raw, name) {
            for k in s.split([' ', ',', '\t']).filter(|k| !k.is_empty()) {
                add(k);
            }
        }
    }
    out
}

/// The header lines that carry `flags` in an mbox written by trasloco: always `Status`, then
/// `X-Status` and `X-Keywords` when there is something to say.
pub fn to_mbox_headers(flags: &[String]) -> String {
    let has = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    let mut out = format!("Status: {}O\n", if has("\\Seen") { "R" } else { "" });
    let x: String = [
        ('A', "\\Answered"),
        ('F', "\\Flagged"),
        ('T', "\\Draft"),
        ('D', "\\Deleted"),
    ]
    .iter()
    .filter(|(_, f)| has(f))
    .map(|(c, _)| *c)
    .collect();
    if !x.is_empty() {
        out.push_str(&format!("X-Status: {x}\n"));
    }
    let kw: Vec<&str> = flags
        .iter()
        .filter(|f| trasloco_core::flags::is_keyword(f))
        .map(String::as_str)
        .collect();
    if !kw.is_empty() {
        out.push_str(&format!("X-Keywords: {}\n", kw.join(" ")));
    }
    out
}

/// A folder-name component as a file name: `%`, path separators, a leading dot and characters
/// Windows refuses become `%XX`, so every name maps to one file and back.
pub fn escape_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, c) in name.chars().enumerate() {
        let bad = matches!(
            c,
            '%' | '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|'
        ) || c.is_control()
            || (i == 0 && c == '.');
        if bad {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The inverse of [`escape_component`]; names not written by it come back unchanged.
pub fn unescape_component(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = bytes.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(h).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maildir_letters() {
        let kw = vec!["$Label1".to_string(), "NonJunk".to_string()];
        assert_eq!(
            from_maildir_name("123.M1.host,S=10:2,FRSab", &kw),
            vec!["\\Flagged", "\\Answered", "\\Seen", "$Label1", "NonJunk"]
        );
        // Odd names: no info, unknown letters, a keyword letter with no keyword file.
        assert!(from_maildir_name("123.host", &kw).is_empty());
        assert_eq!(from_maildir_name("1.h:2,XSz", &[]), vec!["\\Seen"]);
        let mut kws = Vec::new();
        let (info, rest) = to_maildir_info(
            &[
                "\\Seen".into(),
                "Work".into(),
                "\\Recent".into(),
                "\\Flagged".into(),
            ],
            &mut kws,
        );
        assert_eq!(info, "FSa");
        assert_eq!(rest, vec!["\\Recent"]);
        assert_eq!(kws, vec!["Work"]);
        // $Forwarded is a keyword letter for Dovecot; `P` from other programs is still read.
        let (info, _) = to_maildir_info(&["$Forwarded".into()], &mut kws);
        assert_eq!(info, "b");
        assert_eq!(kws, vec!["Work", "$Forwarded"]);
        assert_eq!(from_maildir_name("1.h:2,P", &[]), vec!["$Forwarded"]);
    }

    #[test]
    fn thunderbird_tags_become_keywords() {
        let raw = b"X-Mozilla-Status: 0001\nX-Mozilla-Status2: 00000000\nX-Mozilla-Keys: $label1 lavoro                                        \nSubject: x\n\n";
        assert_eq!(from_mbox_headers(raw), vec!["\\Seen", "$label1", "lavoro"]);
        let blank = b"X-Mozilla-Keys:                                                      \n\n";
        assert!(from_mbox_headers(blank).is_empty());
    }

    #[test]
    fn mbox_headers_round_trip() {
        let flags: Vec<String> = vec![
            "\\Seen".into(),
            "\\Answered".into(),
            "\\Flagged".into(),
            "Work".into(),
        ];
        let h = to_mbox_headers(&flags);
        assert_eq!(h, "Status: RO\nX-Status: AF\nX-Keywords: Work\n");
        let mut back = from_mbox_headers(format!("{h}\n").as_bytes());
        back.sort();
        let mut want = flags.clone();
        want.sort();
        assert_eq!(back, want);
        assert_eq!(
            from_mbox_headers(b"X-Mozilla-Status: 0003\n\n"),
            vec!["\\Seen", "\\Answered"]
        );
    }

    #[test]
    fn components_escape_and_back() {
        for n in ["Posta inviata", "a/b", ".hidden", "100%", "Ελληνικά", "x:y"] {
            let e = escape_component(n);
            assert!(!e.contains('/') && !e.starts_with('.'));
            assert_eq!(unescape_component(&e), n);
        }
    }
}
