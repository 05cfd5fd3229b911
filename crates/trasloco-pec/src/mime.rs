//! Just enough MIME to take a PEC message apart without changing a byte: header fields
//! (unfolded), content types with parameters, and the exact byte ranges of multipart body
//! parts — the signature covers the first part's bytes exactly, so nothing here copies or
//! normalises the message.

use std::ops::Range;

/// Header fields in order: (name as written, unfolded value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// Parse a header block (without the empty line that ends it).
    pub fn parse(block: &[u8]) -> Headers {
        let text = String::from_utf8_lossy(block);
        let mut out: Vec<(String, String)> = Vec::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.starts_with([' ', '\t']) {
                if let Some(last) = out.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                out.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        Headers(out)
    }

    /// The first field with this name (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A field's value trimmed and lower-cased, for comparing keywords.
    pub fn word(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.trim().to_ascii_lowercase())
    }

    /// The content type, lower-cased, with its parameters (`text/plain` when absent).
    pub fn content_type(&self) -> ContentType {
        ContentType::parse(self.get("Content-Type").unwrap_or("text/plain"))
    }
}

/// `type/subtype; name=value; …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// `type/subtype`, lower case.
    pub mime: String,
    /// Parameters: lower-case name → value without quotes.
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// Parse a Content-Type value; quoted parameter values may hold `;`.
    pub fn parse(v: &str) -> ContentType {
        let mut fields = Vec::new();
        let (mut cur, mut quoted, mut escaped) = (String::new(), false, false);
        for c in v.chars() {
            match c {
                _ if escaped => {
                    cur.push(c);
                    escaped = false;
                }
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                ';' if !quoted => fields.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        fields.push(cur);
        let mime = fields[0].trim().to_ascii_lowercase();
        let params = fields[1..]
            .iter()
            .filter_map(|f| f.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        ContentType { mime, params }
    }

    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Where a message or part splits into header and body: (header block, body start).
pub fn split(raw: &[u8]) -> (&[u8], usize) {
    let mut i = 0;
    // A part may start with its body right away (no header at all).
    if raw.starts_with(b"\r\n") {
        return (&raw[..0], 2);
    }
    if raw.starts_with(b"\n") {
        return (&raw[..0], 1);
    }
    while let Some(p) = memchr::memchr(b'\n', &raw[i..]) {
        let end = i + p + 1;
        let rest = &raw[end..];
        if rest.starts_with(b"\r\n") {
            return (&raw[..end], end + 2);
        }
        if rest.starts_with(b"\n") {
            return (&raw[..end], end + 1);
        }
        i = end;
    }
    (raw, raw.len())
}

/// A message or body part: its bytes, header and body.
#[derive(Debug, Clone)]
pub struct Part<'a> {
    /// The whole part, header included, exactly as stored.
    pub raw: &'a [u8],
    /// Its header fields.
    pub headers: Headers,
    /// Its body (still transfer-encoded).
    pub body: &'a [u8],
}

impl<'a> Part<'a> {
    /// Take a message or part apart.
    pub fn parse(raw: &'a [u8]) -> Part<'a> {
        let (head, start) = split(raw);
        Part {
            raw,
            headers: Headers::parse(head),
            body: &raw[start.min(raw.len())..],
        }
    }

    /// Its content type.
    pub fn content_type(&self) -> ContentType {
        self.headers.content_type()
    }

    /// The body parts of a multipart, exactly as stored (empty for anything else or when the
    /// boundary is missing).
    pub fn children(&self) -> Vec<Part<'a>> {
        let ct = self.content_type();
        match (ct.mime.starts_with("multipart/"), ct.param("boundary")) {
            (true, Some(b)) => part_ranges(self.body, b)
                .into_iter()
                .map(|r| Part::parse(&self.body[r]))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The body with its transfer encoding undone (base64, quoted-printable; anything else
    /// as is).
    pub fn decoded(&self) -> Vec<u8> {
        match self.headers.word("Content-Transfer-Encoding").as_deref() {
            Some("base64") => base64_lenient(self.body),
            Some("quoted-printable") => quoted_printable(self.body),
            _ => self.body.to_vec(),
        }
    }

    /// The file name from Content-Disposition `filename` or Content-Type `name`.
    pub fn file_name(&self) -> Option<String> {
        let from_disp = self
            .headers
            .get("Content-Disposition")
            .map(ContentType::parse)
            .and_then(|d| d.param("filename").map(str::to_string));
        from_disp.or_else(|| self.content_type().param("name").map(str::to_string))
    }
}

/// The byte ranges of the parts of a multipart body with this boundary: each from the line
/// after its delimiter line up to, not including, the line break before the next delimiter.
pub fn part_ranges(body: &[u8], boundary: &str) -> Vec<Range<usize>> {
    part_lines(body, boundary).1
}

/// Whether a multipart body ends with its closing delimiter (`--boundary--`).
pub fn is_closed(body: &[u8], boundary: &str) -> bool {
    part_lines(body, boundary).0
}

fn part_lines(body: &[u8], boundary: &str) -> (bool, Vec<Range<usize>>) {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    // Delimiter lines: at the start of the body or right after a line feed.
    let mut lines: Vec<(usize, usize, bool)> = Vec::new(); // (line start, next line start, closing)
    let mut at = 0;
    while at <= body.len() {
        let line_end = memchr::memchr(b'\n', &body[at..]).map_or(body.len(), |p| at + p + 1);
        let line = &body[at..line_end];
        if line.starts_with(d) {
            let rest = &line[d.len()..];
            let closing = rest.starts_with(b"--");
            let tail = if closing { &rest[2..] } else { rest };
            // Only transport padding may follow the boundary on its line.
            if tail
                .iter()
                .all(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
            {
                lines.push((at, line_end, closing));
                if closing {
                    break;
                }
            }
        }
        if line_end == body.len() {
            break;
        }
        at = line_end;
    }
    // The line break before the next delimiter belongs to the delimiter.
    let without_break = |start: usize, mut e: usize| {
        if e > start && body[e - 1] == b'\n' {
            e -= 1;
            if e > start && body[e - 1] == b'\r' {
                e -= 1;
            }
        }
        start..e
    };
    let mut out = Vec::new();
    for w in lines.windows(2) {
        let (start, end) = (w[0].1, w[1].0);
        if w[0].2 || start > end {
            continue;
        }
        out.push(without_break(start, end));
    }
    // No closing delimiter (`--boundary--`): the last part runs to the end of the body, so
    // that what is there is still read; [`is_closed`] tells that the end is missing.
    let closed = lines.last().is_some_and(|l| l.2);
    if let Some(&(_, start, false)) = lines.last() {
        let r = without_break(start, body.len());
        if !r.is_empty() {
            out.push(r);
        }
    }
    (closed, out)
}

/// Base64 that skips line breaks and anything outside the alphabet, as mail readers do.
pub fn base64_lenient(data: &[u8]) -> Vec<u8> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let mut clean: Vec<u8> = data
        .iter()
        .copied()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/'))
        .collect();
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    LENIENT.decode(&clean).unwrap_or_default()
}

/// Quoted-printable: `=XX` escapes and soft line breaks.
pub fn quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    while i < data.len() {
        match data[i] {
            b'=' if data.get(i + 1) == Some(&b'\r') && data.get(i + 2) == Some(&b'\n') => i += 3,
            b'=' if data.get(i + 1) == Some(&b'\n') => i += 2,
            b'=' => match (
                data.get(i + 1).and_then(|c| hex(*c)),
                data.get(i + 2).and_then(|c| hex(*c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => {
                    out.push(b'=');
                    i += 1;
                }
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Turn bare LF line ends into CRLF, leaving existing CRLF alone (the canonical form the
/// signature was made over, for copies stored with LF).
pub fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 40);
    let mut prev = 0u8;
    for &c in data {
        if c == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(c);
        prev = c;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNED: &[u8] = b"From: a@b\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n boundary=\"XYZ\"\r\n\r\nThis is an S/MIME signed message\r\n--XYZ\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XYZ\r\nContent-Type: application/pkcs7-signature\r\n\r\nAAAA\r\n--XYZ--\r\n\r\n";

    #[test]
    fn parts_are_exact_byte_ranges() {
        let m = Part::parse(SIGNED);
        assert_eq!(m.content_type().mime, "multipart/signed");
        assert_eq!(m.content_type().param("boundary"), Some("XYZ"));
        let kids = m.children();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0].raw, b"Content-Type: text/plain\r\n\r\nhello");
        assert_eq!(kids[0].body, b"hello");
        assert_eq!(kids[1].body, b"AAAA");
    }

    #[test]
    fn lf_only_and_boundaries_inside_lines() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx --b not a delimiter\n--bb\n--b--\n";
        let kids = Part::parse(raw).children();
        assert_eq!(kids.len(), 1);
        assert_eq!(kids[0].raw, b"\nx --b not a delimiter\n--bb");
    }

    #[test]
    fn headers_unfold_and_decode() {
        let h = Headers::parse(b"X-Ricevuta:  Accettazione \r\nSubject: a\r\n b\r\n");
        assert_eq!(h.word("x-ricevuta").as_deref(), Some("accettazione"));
        assert_eq!(h.get("subject"), Some("a b"));
        assert_eq!(base64_lenient(b"aGVs\r\nbG8=\r\n"), b"hello");
        assert_eq!(quoted_printable(b"caf=C3=A9 =\r\nok"), "café ok".as_bytes());
        assert_eq!(crlf(b"a\nb\r\nc"), b"a\r\nb\r\nc");
        let ct = ContentType::parse("application/xml; name=\"dati;cert.xml\"");
        assert_eq!(ct.param("name"), Some("dati;cert.xml"));
    }
}
