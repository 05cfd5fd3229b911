//! The benchmark corpus: deterministic, generated from a seed, with the shapes real mailboxes
//! have (a long tail of small text mails, a few big attachments, one 30 MB message, nested and
//! non-ASCII folders, Italian special-folder names, flags and keywords, ten years of dates,
//! messages without Message-ID, exact duplicates, raw 8-bit headers).

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};

/// Source folders (source delimiter `/`) and their share of the messages, in per mille.
pub const FOLDERS: &[(&str, u32)] = &[
    ("INBOX", 380),
    ("Posta inviata", 160),
    ("Bozze", 15),
    ("Cestino", 30),
    ("Posta indesiderata", 20),
    ("Archivio", 100),
    ("Progetti/Società/2024", 80),
    ("Progetti/Società/2025", 50),
    ("Clienti/Rossi & Figli", 50),
    ("Fatture/2019", 50),
    ("Corrispondenza/Città di Torino", 45),
    ("Ελληνικά/Σημειώσεις", 20),
];

/// Folders that exist but stay empty.
pub const EMPTY_FOLDERS: &[&str] = &["Vuota", "Progetti/Società/Vecchi"];

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Number of mailboxes.
    pub users: usize,
    /// Messages per mailbox.
    pub messages: usize,
    /// PRNG seed.
    pub seed: u64,
    /// Many small mailboxes instead: each holds between a quarter of `messages` and
    /// `messages` messages of 2-20 KB, in 2-4 folders, nothing large (issue 22's shape: a
    /// ministry's thousands of ordinary mailboxes).
    pub small: bool,
}

impl Spec {
    /// Login names of the mailboxes: `b01`, `b02`, …
    pub fn user_names(&self) -> Vec<String> {
        (1..=self.users).map(|i| format!("b{i:02}")).collect()
    }
}

/// One generated message.
#[derive(Debug, Clone)]
pub struct Msg {
    /// Index into [`FOLDERS`].
    pub folder: usize,
    /// System flags and keywords.
    pub flags: Vec<String>,
    /// INTERNALDATE in IMAP date-time form.
    pub internal_date: String,
    /// The exact bytes.
    pub body: Vec<u8>,
}

/// splitmix64: small, fast, and the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    /// A generator for one stream.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` per mille.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// Log-uniform in [lo, hi]: many small values, a long tail, like mail sizes.
    pub fn log_uniform(&mut self, lo: f64, hi: f64) -> usize {
        (lo * (hi / lo).powf(self.unit())) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "riunione",
    "progetto",
    "fattura",
    "consegna",
    "cliente",
    "preventivo",
    "allegato",
    "verbale",
    "città",
    "perché",
    "più",
    "attività",
    "ufficio",
    "settimana",
    "scadenza",
    "documento",
    "the",
    "meeting",
    "invoice",
    "schedule",
    "approval",
    "budget",
    "review",
    "contract",
    "già",
    "qualità",
    "e",
    "di",
    "per",
    "con",
    "una",
    "della",
];

const SENDERS: &[&str] = &[
    "\"Mario Rossi\" <mario.rossi@fornitore.example>",
    "Ufficio Acquisti <acquisti@comune.example>",
    "\"Giulia Bianchi\" <g.bianchi@studio.example>",
    "noreply@banca.example",
    "\"Anna Müller\" <anna@partner.example>",
    "PEC Comune <protocollo@pec.comune.example>",
];

const SUBJECTS: &[&str] = &[
    "Verbale della riunione",
    "Fattura n. 2024/118",
    "Richiesta preventivo",
    "Convocazione assemblea",
    "Aggiornamento progetto",
    "Re: consegna materiali",
    "Invoice overdue",
    "Weekly report",
];

const KEYWORDS: &[(&str, u64)] = &[
    ("$Forwarded", 50),
    ("$Label1", 30),
    ("Lavoro", 40),
    ("$MDNSent", 20),
    ("Importante", 15),
];

/// The 30 MB message that every corpus carries once (first mailbox, INBOX).
const HUGE_BYTES: usize = 30 * 1024 * 1024;

/// The folders of a small mailbox: INBOX and one to three of these.
const SMALL_FOLDERS: &[usize] = &[1, 5, 6];

/// Every message of one small mailbox (see [`Spec::small`]).
fn small_mailbox(spec: &Spec, user_index: usize) -> Vec<Msg> {
    let mut rng = Rng::new(spec.seed ^ (user_index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let user = &spec.user_names()[user_index];
    let least = (spec.messages / 4).max(1);
    let count = least + rng.below((spec.messages - least + 1) as u64) as usize;
    let folders = 1 + 1 + rng.below(SMALL_FOLDERS.len() as u64) as usize;
    let start = Utc
        .with_ymd_and_hms(2016, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    (0..count)
        .map(|i| {
            let pick = rng.below(folders as u64) as usize;
            let folder = if pick == 0 {
                0
            } else {
                SMALL_FOLDERS[pick - 1]
            };
            let size = rng.log_uniform(2.0 * 1024.0, 20.0 * 1024.0);
            let when = start + rng.below(10 * 365 * 86_400) as i64;
            let when = DateTime::from_timestamp(when, 0).unwrap_or_default();
            let mut flags = Vec::new();
            if rng.chance(750) {
                flags.push("\\Seen".to_string());
            }
            if rng.chance(60) {
                flags.push("\\Flagged".to_string());
            }
            Msg {
                folder,
                flags,
                internal_date: when.format("%d-%b-%Y %H:%M:%S +0000").to_string(),
                body: message(&mut rng, user, i, size, when),
            }
        })
        .collect()
}

/// Every message of one mailbox, in the order they are appended.
pub fn mailbox(spec: &Spec, user_index: usize) -> Vec<Msg> {
    if spec.small {
        return small_mailbox(spec, user_index);
    }
    let mut rng = Rng::new(spec.seed ^ (user_index as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let user = &spec.user_names()[user_index];
    // About 6 attachments of 1-20 MB per 2,000 messages: with the seed 2026 the default corpus
    // is 8,000 messages and 311 MB.
    let large_every = 320;
    let mut out: Vec<Msg> = Vec::with_capacity(spec.messages);
    let start = Utc
        .with_ymd_and_hms(2016, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    let end = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    let total_weight: u32 = FOLDERS.iter().map(|(_, w)| w).sum();
    while out.len() < spec.messages {
        let i = out.len();
        // 1 % exact duplicates of the previous message (same folder, bytes, flags, date).
        if i > 0 && rng.chance(10) {
            let dup = out[i - 1].clone();
            out.push(dup);
            continue;
        }
        let mut w = rng.below(u64::from(total_weight)) as u32;
        let folder = FOLDERS
            .iter()
            .position(|(_, fw)| {
                if w < *fw {
                    true
                } else {
                    w -= fw;
                    false
                }
            })
            .unwrap_or(0);
        let size = if user_index == 0 && i == 7 {
            HUGE_BYTES
        } else if rng.below(large_every) == 0 {
            rng.log_uniform(1024.0 * 1024.0, 20.0 * 1024.0 * 1024.0)
        } else {
            rng.log_uniform(2.0 * 1024.0, 50.0 * 1024.0)
        };
        let when = start + rng.below((end - start) as u64) as i64;
        let when = DateTime::from_timestamp(when, 0).unwrap_or_default();
        let internal_date = when.format("%d-%b-%Y %H:%M:%S +0000").to_string();
        let mut flags = Vec::new();
        if FOLDERS[folder].0 == "Bozze" {
            flags.push("\\Draft".to_string());
        } else if rng.chance(750) {
            flags.push("\\Seen".to_string());
        }
        if rng.chance(120) {
            flags.push("\\Answered".to_string());
        }
        if rng.chance(60) {
            flags.push("\\Flagged".to_string());
        }
        for (kw, p) in KEYWORDS {
            if rng.chance(*p) {
                flags.push(kw.to_string());
            }
        }
        let body = message(&mut rng, user, i, size, when);
        out.push(Msg {
            folder,
            flags,
            internal_date,
            body,
        });
    }
    out
}

/// One RFC 5322 message of about `size` bytes.
fn message(rng: &mut Rng, user: &str, i: usize, size: usize, when: DateTime<Utc>) -> Vec<u8> {
    let mut m = Vec::with_capacity(size + 1024);
    let hops = 1 + rng.below(3);
    for h in 0..hops {
        m.extend_from_slice(
            format!(
                "Received: from mx{h}.provider.example (mx{h}.provider.example [192.0.2.{h}])\r\n\tby mail.bench.example with ESMTPS id {:016x}\r\n\tfor <{user}@bench.example>; {}\r\n",
                rng.next_u64(),
                when.format("%a, %d %b %Y %H:%M:%S +0000")
            )
            .as_bytes(),
        );
    }
    // 3 % without Message-ID, as old gateways and some drafts produce.
    if !rng.chance(30) {
        m.extend_from_slice(
            format!(
                "Message-ID: <{i}.{:x}@{user}.bench.example>\r\n",
                rng.next_u64()
            )
            .as_bytes(),
        );
    }
    m.extend_from_slice(
        format!("Date: {}\r\n", when.format("%a, %d %b %Y %H:%M:%S +0000")).as_bytes(),
    );
    m.extend_from_slice(format!("From: {}\r\n", rng.pick(SENDERS)).as_bytes());
    m.extend_from_slice(format!("To: {user}@bench.example\r\n").as_bytes());
    // 4 % raw 8-bit (unencoded UTF-8) subjects, as broken clients send them.
    if rng.chance(40) {
        m.extend_from_slice(format!("Subject: Perché la città è già qui #{i}\r\n").as_bytes());
    } else {
        m.extend_from_slice(format!("Subject: {} #{i}\r\n", rng.pick(SUBJECTS)).as_bytes());
    }
    m.extend_from_slice(b"MIME-Version: 1.0\r\n");
    let attach = size > 60 * 1024 || rng.chance(80);
    if attach {
        let boundary = format!("=_b{:016x}", rng.next_u64());
        m.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n").as_bytes(),
        );
        let intro = 1024 + rng.below(3000) as usize;
        text(rng, &mut m, intro);
        m.extend_from_slice(
            format!("\r\n--{boundary}\r\nContent-Type: application/pdf; name=\"documento-{i}.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"documento-{i}.pdf\"\r\n\r\n").as_bytes(),
        );
        let raw_len = size.saturating_sub(m.len() + 100) / 4 * 3;
        attachment(rng, &mut m, raw_len);
        m.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    } else {
        m.extend_from_slice(
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        );
        let want = size.saturating_sub(m.len());
        text(rng, &mut m, want);
    }
    m
}

/// About `bytes` bytes of CRLF-terminated lines of words.
fn text(rng: &mut Rng, m: &mut Vec<u8>, bytes: usize) {
    let stop = m.len() + bytes;
    let mut line = 0;
    while m.len() < stop {
        let w = rng.pick(WORDS);
        m.extend_from_slice(w.as_bytes());
        line += w.len() + 1;
        if line > 72 {
            m.extend_from_slice(b"\r\n");
            line = 0;
        } else {
            m.push(b' ');
        }
    }
    m.extend_from_slice(b"\r\n");
}

/// `raw_len` random bytes, base64 in 76-column lines.
fn attachment(rng: &mut Rng, m: &mut Vec<u8>, raw_len: usize) {
    let mut raw = [0u8; 57];
    let mut left = raw_len;
    let mut enc = String::with_capacity(80);
    while left > 0 {
        let n = left.min(57);
        for chunk in raw[..n].chunks_mut(8) {
            let r = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        enc.clear();
        base64::engine::general_purpose::STANDARD.encode_string(&raw[..n], &mut enc);
        m.extend_from_slice(enc.as_bytes());
        m.extend_from_slice(b"\r\n");
        left -= n;
    }
}

/// Totals of a corpus, for the report.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    /// Messages.
    pub messages: u64,
    /// Bytes.
    pub bytes: u64,
    /// The largest message.
    pub largest: u64,
}

impl Totals {
    /// Add one mailbox.
    pub fn add(&mut self, msgs: &[Msg]) {
        for m in msgs {
            self.messages += 1;
            self.bytes += m.body.len() as u64;
            self.largest = self.largest.max(m.body.len() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let spec = Spec {
            small: false,
            users: 2,
            messages: 50,
            seed: 7,
        };
        let a = mailbox(&spec, 1);
        let b = mailbox(&spec, 1);
        assert_eq!(a.len(), 50);
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.body == y.body && x.flags == y.flags)
        );
        let first = mailbox(&spec, 0);
        assert!(first.iter().any(|m| m.body.len() >= HUGE_BYTES - 1024));
        assert!(first.iter().all(|m| m.body.ends_with(b"\r\n")));
    }
}
