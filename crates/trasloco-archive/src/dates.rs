//! Dates as archives and servers write them: IMAP INTERNALDATE, the mbox `From ` line
//! (asctime, UTC), RFC 5322 `Date:`/`Received:` headers, and file times.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use std::time::SystemTime;

/// Parse an IMAP date-time (`01-Jan-2020 10:00:00 +0100`, day possibly space-padded).
pub fn parse_imap(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim().trim_matches('"').trim();
    DateTime::parse_from_str(s, "%d-%b-%Y %H:%M:%S %z").ok()
}

/// Format an IMAP date-time.
pub fn format_imap(t: &DateTime<FixedOffset>) -> String {
    t.format("%d-%b-%Y %H:%M:%S %z").to_string()
}

/// A file time as an IMAP date-time in UTC.
pub fn imap_from_system(t: SystemTime) -> String {
    let utc: DateTime<Utc> = t.into();
    format_imap(&utc.fixed_offset())
}

/// An IMAP date-time as a file time.
pub fn system_from_imap(s: &str) -> Option<SystemTime> {
    parse_imap(s).map(|t| t.with_timezone(&Utc).into())
}

/// The `From ` line of an mbox entry for a message received at `date` (IMAP form), or now.
pub fn from_line(date: Option<&str>) -> String {
    let t = date
        .and_then(parse_imap)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    format!("From MAILER-DAEMON {}\n", t.format("%a %b %e %H:%M:%S %Y"))
}

/// The date at the end of an mbox `From ` line (asctime, taken as UTC), as an IMAP date-time.
pub fn from_line_date(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    // "From sender Www Mmm dd hh:mm:ss yyyy" with an optional zone after the year. The weekday
    // is not checked: writers get it wrong often enough.
    for end in [words.len(), words.len().saturating_sub(1)] {
        if end >= 4 {
            let s = words[end - 4..end].join(" ");
            if let Ok(t) = NaiveDateTime::parse_from_str(&s, "%b %d %H:%M:%S %Y") {
                return Some(format_imap(&Utc.from_utc_datetime(&t).fixed_offset()));
            }
        }
    }
    None
}

/// The first header field called `name` (case-insensitive), unfolded, from the header block at
/// the start of `raw`.
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let continuation = line[0] == b' ' || line[0] == b'\t';
        match (&mut found, continuation) {
            (Some(v), true) => {
                v.push(' ');
                v.push_str(String::from_utf8_lossy(line).trim());
            }
            (Some(_), false) => break,
            (None, false) => {
                if let Some(colon) = line.iter().position(|&b| b == b':')
                    && line[..colon].eq_ignore_ascii_case(name.as_bytes())
                {
                    found = Some(
                        String::from_utf8_lossy(&line[colon + 1..])
                            .trim()
                            .to_string(),
                    );
                }
            }
            (None, true) => {}
        }
    }
    found
}

/// An RFC 5322 date, tolerating a trailing comment such as `(CET)`.
pub fn parse_rfc5322(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    let s = match s.find('(') {
        Some(i) => s[..i].trim(),
        None => s,
    };
    DateTime::parse_from_rfc2822(s).ok()
}

/// When the message reached its mailbox: the date of the topmost `Received:` field (the last
/// hop, written by the receiving server), else the `Date:` field.
pub fn received(raw: &[u8]) -> Option<DateTime<FixedOffset>> {
    header(raw, "Received")
        .and_then(|r| r.rsplit_once(';').and_then(|(_, d)| parse_rfc5322(d)))
        .or_else(|| header(raw, "Date").and_then(|d| parse_rfc5322(&d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imap_dates_round_trip() {
        let t = parse_imap("\"05-Mar-2019 08:07:06 +0100\"").unwrap();
        assert_eq!(format_imap(&t), "05-Mar-2019 08:07:06 +0100");
        assert!(parse_imap(" 5-Mar-2019 08:07:06 +0100").is_some());
        let sys = system_from_imap("05-Mar-2019 08:07:06 +0100").unwrap();
        assert_eq!(imap_from_system(sys), "05-Mar-2019 07:07:06 +0000");
    }

    #[test]
    fn from_lines() {
        let l = from_line(Some("05-Mar-2019 08:07:06 +0100"));
        assert_eq!(l, "From MAILER-DAEMON Tue Mar  5 07:07:06 2019\n");
        assert_eq!(
            from_line_date(l.trim_end()).as_deref(),
            Some("05-Mar-2019 07:07:06 +0000")
        );
        assert!(from_line_date("From someone@example.org Sat Jan  3 01:05:34 1996").is_some());
        assert!(from_line_date("From here on, we talk").is_none());
    }

    #[test]
    fn headers_and_received() {
        let raw = b"Received: from a by b;\r\n Tue, 5 Mar 2019 08:07:06 +0100 (CET)\r\nReceived: from c; Mon, 4 Mar 2019 00:00:00 +0000\r\nDate: Sun, 3 Mar 2019 00:00:00 +0000\r\nSubject: x\r\n\r\nReceived: body";
        assert_eq!(header(raw, "subject").as_deref(), Some("x"));
        assert_eq!(
            received(raw).map(|t| format_imap(&t)).as_deref(),
            Some("05-Mar-2019 08:07:06 +0100")
        );
        let only_date = b"Date: Sun, 3 Mar 2019 00:00:00 +0000\n\n";
        assert!(received(only_date).is_some());
        assert!(received(b"Subject: none\n\n").is_none());
    }
}
