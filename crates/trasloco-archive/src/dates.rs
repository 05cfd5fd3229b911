//! Dates as archives and servers write them: IMAP INTERNALDATE, the mbox `From ` line
//! (asctime, UTC), RFC 5322 `Date:`/`Received:` headers, and file times.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
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

/// Time-zone names as old mbox writers put them on `From ` lines, with their offsets in
/// minutes.
const ZONES: [(&str, i32); 22] = [
    ("UT", 0),
    ("UTC", 0),
    ("GMT", 0),
    ("Z", 0),
    ("WET", 0),
    ("MET", 60),
    ("CET", 60),
    ("BST", 60),
    ("WEST", 60),
    ("MEST", 120),
    ("MESZ", 120),
    ("CEST", 120),
    ("EET", 120),
    ("EEST", 180),
    ("EST", -300),
    ("EDT", -240),
    ("CST", -360),
    ("CDT", -300),
    ("MST", -420),
    ("MDT", -360),
    ("PST", -480),
    ("PDT", -420),
];

fn zone_name(z: &str) -> Option<i32> {
    ZONES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(z))
        .map(|(_, m)| *m)
}

/// A numeric zone (`+0100`, `-0500`) in minutes.
fn zone_number(z: &str) -> Option<i32> {
    let (sign, digits) = match z.as_bytes().first()? {
        b'+' => (1, &z[1..]),
        b'-' => (-1, &z[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i32 = digits.parse().ok()?;
    Some(sign * ((n / 100) * 60 + n % 100))
}

/// The date of an mbox `From ` line, as an IMAP date-time. The asctime form is read leniently,
/// as Dovecot and mutt read it: `Www Mmm dd hh:mm[:ss] [zone] yyyy [zone]`, the weekday not
/// checked (writers get it wrong often enough), the seconds optional, a zone by name (`MET`) or
/// number (`+0100`) before or after the year; without a zone the time is UTC.
pub fn from_line_date(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let month = |w: &str| {
        [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ]
        .iter()
        .position(|m| w.eq_ignore_ascii_case(m))
        .map(|i| i as u32 + 1)
    };
    // The month word, then the day, the time and the rest; the sender comes before.
    for i in 2..words.len() {
        let Some(mon) = month(words[i]) else { continue };
        let Some(day) = words.get(i + 1).and_then(|d| d.parse::<u32>().ok()) else {
            continue;
        };
        let Some(time) = words.get(i + 2) else {
            continue;
        };
        let hms: Vec<u32> = match time.split(':').map(|x| x.parse::<u32>().ok()).collect() {
            Some(v) => v,
            None => continue,
        };
        let (h, m, sec) = match hms[..] {
            [h, m] => (h, m, 0),
            [h, m, s] => (h, m, s),
            _ => continue,
        };
        let mut year = None;
        let mut offset = None;
        for w in words.iter().skip(i + 3).take(3) {
            if w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit()) && year.is_none() {
                year = w.parse::<i32>().ok();
            } else if offset.is_none() {
                offset = zone_number(w).or_else(|| zone_name(w));
            }
        }
        let Some(year) = year else { continue };
        let naive = chrono::NaiveDate::from_ymd_opt(year, mon, day)?.and_hms_opt(h, m, sec)?;
        let zone = FixedOffset::east_opt(offset.unwrap_or(0) * 60)?;
        let t = zone.from_local_datetime(&naive).single()?;
        return Some(format_imap(&t));
    }
    None
}

/// An RFC 5322 `Date:` value read leniently, for archives without a better date: the weekday
/// is ignored (old mailers wrote wrong ones), a trailing comment too.
pub fn lenient_rfc5322(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    let s = match s.split_once(',') {
        Some((day, rest))
            if day.trim().len() <= 9 && day.trim().chars().all(char::is_alphabetic) =>
        {
            rest
        }
        _ => s,
    };
    parse_rfc5322(s)
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
        // Old archives: no seconds, a zone name before the year, a numeric zone after it.
        assert_eq!(
            from_line_date("From x Wed Feb  9 22:02 MET 2000").as_deref(),
            Some("09-Feb-2000 22:02:00 +0100")
        );
        assert_eq!(
            from_line_date("From x@y Sat Jan  3 01:05:34 1996 -0500").as_deref(),
            Some("03-Jan-1996 01:05:34 -0500")
        );
        assert_eq!(
            from_line_date("From x Mon Feb  9 22:02:10 2000").as_deref(),
            Some("09-Feb-2000 22:02:10 +0000"),
            "a wrong weekday is accepted"
        );
        assert_eq!(
            lenient_rfc5322("Mon, 9 Feb 2000 22:02:00 +0100").map(|t| format_imap(&t)),
            Some("09-Feb-2000 22:02:00 +0100".into()),
            "9 Feb 2000 was a Wednesday"
        );
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
