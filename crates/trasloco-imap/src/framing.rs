//! Cutting a byte stream into complete IMAP responses.
//!
//! A response is one line, unless a line ends in a literal announcement `{N}` (or `{N+}`), in
//! which case N raw bytes follow and the response continues after them. [`Framer`] remembers
//! how far it has scanned, so bytes are looked at once however many reads a large literal
//! takes.

/// Incremental scanner for complete responses at the front of a buffer.
#[derive(Debug, Default, Clone)]
pub struct Framer {
    /// Where to resume scanning in the current (incomplete) response.
    pos: usize,
}

impl Framer {
    /// If `buf` starts with a complete response, its length; else `None` (read more).
    /// Also returns, through `hint`, how many bytes the buffer needs at least, so the caller can
    /// reserve for a large literal in one step.
    pub fn next_frame(&mut self, buf: &[u8], hint: &mut usize) -> Option<usize> {
        loop {
            if self.pos > buf.len() {
                *hint = self.pos;
                return None;
            }
            let nl = memchr::memchr(b'\n', &buf[self.pos..])?;
            let end = self.pos + nl + 1;
            match literal_len(&buf[..end]) {
                Some(n) => self.pos = end + n,
                None => {
                    self.pos = 0;
                    return Some(end);
                }
            }
        }
    }
}

/// If the line ending at `line.len()` announces a literal, its length.
pub(crate) fn literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"\n")?;
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let body = body.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A complete response as one line for a protocol trace: each literal is replaced by its size
/// (`{1234 bytes}`), line breaks are shown as spaces, and the whole is cut at `max` characters.
/// Message contents never reach a log this way.
pub fn summarise(frame: &[u8], max: usize) -> String {
    let mut out = String::new();
    let mut rest = frame;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        let text = String::from_utf8_lossy(line);
        match literal_len(line) {
            Some(n) => {
                let head = text.trim_end();
                let open = head.rfind('{').unwrap_or(head.len());
                out.push_str(&head[..open]);
                out.push_str(&format!("{{{n} bytes}}"));
                rest = &rest[(end + n).min(rest.len())..];
            }
            None => {
                out.push_str(text.trim_end_matches(['\r', '\n']));
                rest = &rest[end..];
            }
        }
        if out.chars().count() > max {
            let cut: String = out.chars().take(max).collect();
            return cut + "…";
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_trace_line_shows_literal_sizes_not_their_bytes() {
        let frame = b"* 1 FETCH (UID 7 BODY[] {12}\r\nHello\r\nWorld)\r\n";
        assert_eq!(summarise(frame, 200), "* 1 FETCH (UID 7 BODY[] {12 bytes})");
        assert_eq!(summarise(b"a1 OK done\r\n", 200), "a1 OK done");
        assert_eq!(summarise(b"* OK 0123456789\r\n", 6), "* OK 0…");
        // A literal cut short (the frame ends early) does not panic.
        assert_eq!(
            summarise(b"* 1 FETCH (BODY[] {99}\r\nab", 200),
            "* 1 FETCH (BODY[] {99 bytes}"
        );
    }

    fn frames(data: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let mut framer = Framer::default();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            let mut hint = 0;
            while let Some(n) = framer.next_frame(&buf, &mut hint) {
                out.push(buf.drain(..n).collect());
            }
        }
        assert!(
            buf.is_empty(),
            "left over: {:?}",
            String::from_utf8_lossy(&buf)
        );
        out
    }

    #[test]
    fn simple_lines() {
        let f = frames(b"* OK hi\r\na1 OK done\r\n", 100);
        assert_eq!(f, vec![b"* OK hi\r\n".to_vec(), b"a1 OK done\r\n".to_vec()]);
    }

    #[test]
    fn literal_with_newlines_and_braces_inside() {
        let msg = b"* 1 FETCH (UID 5 BODY[] {14}\r\nab\r\n{3}\r\nxyz\r\n)\r\n";
        let f = frames(msg, 3);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0], msg.to_vec());
    }

    #[test]
    fn two_literals_in_one_response() {
        let msg = b"* 2 FETCH (BODY[HEADER] {2}\r\nhi BODY[TEXT] {3}\r\nabc)\r\n";
        assert_eq!(frames(msg, 1), vec![msg.to_vec()]);
    }

    #[test]
    fn non_sync_literal_marker() {
        let msg = b"a APPEND x {3+}\r\nabc\r\n";
        assert_eq!(frames(msg, 2), vec![msg.to_vec()]);
    }

    #[test]
    fn hint_asks_for_the_whole_literal() {
        let mut framer = Framer::default();
        let buf = b"* 1 FETCH (BODY[] {1000}\r\nabc";
        let mut hint = 0;
        assert_eq!(framer.next_frame(buf, &mut hint), None);
        assert_eq!(framer.next_frame(buf, &mut hint), None);
        assert_eq!(hint, 26 + 1000);
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_frames(body in proptest::collection::vec(any::<u8>(), 0..200), chunk in 1usize..50) {
            let mut data = format!("* 1 FETCH (BODY[] {{{}}}\r\n", body.len()).into_bytes();
            data.extend_from_slice(&body);
            data.extend_from_slice(b")\r\na1 OK x\r\n");
            let f = frames(&data, chunk);
            prop_assert_eq!(f.len(), 2);
            prop_assert_eq!(f.concat(), data);
        }
    }
}
