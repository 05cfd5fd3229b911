//! Line endings and mboxrd quoting: the two reversible transformations an archive applies to
//! a message's bytes.
//!
//! IMAP carries messages with CRLF line ends; files on disk (mbox, Maildir) conventionally use
//! LF. A message converts to LF only when the conversion can be undone exactly: every LF is
//! preceded by CR and there is no other CR. Otherwise its bytes are stored as they are.

/// Whether `crlf_to_lf` followed by `lf_to_crlf` gives back exactly `body`.
pub fn lf_convertible(body: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &b) in body.iter().enumerate() {
        match b {
            b'\n' if prev != b'\r' => return false,
            b'\r' if body.get(i + 1) != Some(&b'\n') => return false,
            _ => {}
        }
        prev = b;
    }
    true
}

/// CRLF → LF (call only when [`lf_convertible`]).
pub fn crlf_to_lf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(body[i]);
        i += 1;
    }
    out
}

/// Every LF not already preceded by CR becomes CRLF: the inverse of [`crlf_to_lf`], and the
/// normalisation applied to foreign files before they are uploaded over IMAP.
pub fn lf_to_crlf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 40);
    let mut prev = 0u8;
    for &b in body {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// Size of `lf_to_crlf(body)` without building it.
pub fn crlf_size(body: &[u8]) -> u64 {
    let mut n = body.len() as u64;
    let mut prev = 0u8;
    for &b in body {
        if b == b'\n' && prev != b'\r' {
            n += 1;
        }
        prev = b;
    }
    n
}

/// Whether a line (without its end) is `From ` after zero (`min_gt = 0`) or more `>`.
fn is_from_quoted(line: &[u8], min_gt: usize) -> bool {
    let gt = line.iter().take_while(|&&b| b == b'>').count();
    gt >= min_gt && line[gt..].starts_with(b"From ")
}

fn map_lines(body: &[u8], mut f: impl FnMut(&[u8], &mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    for line in body.split_inclusive(|&b| b == b'\n') {
        f(line, &mut out);
    }
    out
}

/// mboxrd quoting: a line that is `From ` after any number of `>` gets one more `>`.
pub fn mboxrd_quote(body: &[u8]) -> Vec<u8> {
    map_lines(body, |line, out| {
        if is_from_quoted(line, 0) {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    })
}

/// mboxrd unquoting: a line that is `From ` after one or more `>` loses one `>`.
pub fn mboxrd_unquote(body: &[u8]) -> Vec<u8> {
    map_lines(body, |line, out| {
        if is_from_quoted(line, 1) {
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn convertible_only_when_reversible() {
        assert!(lf_convertible(b"a\r\nb\r\n"));
        assert!(lf_convertible(b"no newline at all"));
        assert!(!lf_convertible(b"a\nb\r\n"));
        assert!(!lf_convertible(b"a\rb\r\n"));
        assert!(!lf_convertible(b"ends in CR\r"));
    }

    #[test]
    fn quoting_examples() {
        let q = mboxrd_quote(b"From me\n>From you\nFrom: header\n>>From x\n");
        assert_eq!(q, b">From me\n>>From you\nFrom: header\n>>>From x\n");
        assert_eq!(
            mboxrd_unquote(&q),
            b"From me\n>From you\nFrom: header\n>>From x\n"
        );
    }

    proptest! {
        #[test]
        fn crlf_round_trip(body in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), Just(b'>')], 0..200)) {
            if lf_convertible(&body) {
                prop_assert_eq!(lf_to_crlf(&crlf_to_lf(&body)), body.clone());
            }
            prop_assert_eq!(crlf_size(&body), lf_to_crlf(&body).len() as u64);
        }

        #[test]
        fn mboxrd_round_trip(lines in proptest::collection::vec("(>{0,3}From |From:|x)[a-z ]{0,5}", 0..20)) {
            let body = lines.join("\n").into_bytes();
            prop_assert_eq!(mboxrd_unquote(&mboxrd_quote(&body)), body);
        }
    }
}
