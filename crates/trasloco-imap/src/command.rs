//! Serialising command arguments.

/// An IMAP astring for a command: a quoted string when the value is printable ASCII without
/// CR/LF, else a non-synchronising literal (the caller checked LITERAL+) is not used here:
/// values that cannot be quoted are rejected by returning `None`.
pub fn quote_astring(value: &str) -> Option<String> {
    if value.bytes().any(|b| !(0x20..=0x7e).contains(&b)) {
        return None;
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for ch in value.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
    Some(out)
}

/// Compress UIDs into IMAP sequence-set syntax (`1:5,7,9:12`), sorting and removing duplicates.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// Split UIDs into chunks whose sequence sets stay short enough for any server's line limit.
pub fn uid_chunks(uids: &[u32], max_ranges: usize) -> Vec<Vec<u32>> {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut chunks = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    let mut ranges = 0;
    for uid in sorted {
        let continues = current.last().is_some_and(|&l| l + 1 == uid);
        if !continues {
            ranges += 1;
            if ranges > max_ranges {
                chunks.push(std::mem::take(&mut current));
                ranges = 1;
            }
        }
        current.push(uid);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Whether a keyword can be sent as an IMAP atom (RFC 3501 `flag-keyword`).
pub fn is_atom(flag: &str) -> bool {
    let body = flag.strip_prefix('\\').unwrap_or(flag);
    !body.is_empty()
        && body
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !b"(){ %*\"\\]".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_ranges() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 7, 9, 10, 11, 11]), "1:3,5,7,9:11");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn uid_chunks_bound_the_ranges() {
        let uids: Vec<u32> = (1..=10).map(|i| i * 2).collect();
        let chunks = uid_chunks(&uids, 3);
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks.concat(), uids);
        assert_eq!(uid_chunks(&(1..=1000).collect::<Vec<_>>(), 1).len(), 1);
    }

    #[test]
    fn quoting_escapes_and_refuses_controls() {
        assert_eq!(quote_astring(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
        assert!(quote_astring("a\r\nb").is_none());
    }

    #[test]
    fn atoms() {
        assert!(is_atom("$Label1"));
        assert!(is_atom("\\Seen"));
        assert!(!is_atom("two words"));
        assert!(!is_atom("a(b"));
        assert!(!is_atom(""));
    }
}
