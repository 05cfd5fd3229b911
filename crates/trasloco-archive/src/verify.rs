//! `trasloco archive verify`: every message the manifest lists is in the archive with the same
//! bytes, and the archive holds no message the manifest does not list.

use crate::manifest::Entry;
use crate::read::{Archive, is_from_line, item_of};
use crate::write::collect_files;
use crate::{Error, Format, manifest};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::path::Path;

/// What verification found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Messages the manifest lists.
    pub listed: u64,
    /// Of those, found with identical bytes.
    pub intact: u64,
    /// Messages missing, truncated or changed: one line each, naming file and offset.
    pub problems: Vec<String>,
    /// Messages in the archive that the manifest does not list.
    pub unlisted: Vec<String>,
}

impl VerifyReport {
    /// Nothing missing, changed or added.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.unlisted.is_empty() && self.intact == self.listed
    }
}

/// Check the archive at `root` against its manifest.
pub fn verify(root: &Path) -> Result<VerifyReport, Error> {
    if !root.exists() {
        return Err(Error::new(format!("{}: does not exist", root.display())));
    }
    let Some(m) = manifest::load(root)? else {
        return Err(Error::new(format!(
            "{}: no {} here; only archives written by `trasloco archive export` can be verified",
            root.display(),
            manifest::FILE
        )));
    };
    let recorded: HashSet<String> = m.entries.iter().map(|e| e.file.clone()).collect();
    let mut per_mbox: BTreeMap<String, u64> = BTreeMap::new();
    for e in &m.entries {
        *per_mbox.entry(e.file.clone()).or_default() += 1;
    }
    let format = m.header.format;
    let archive = Archive::open(root)?;
    let mut report = VerifyReport::default();
    for f in &archive.folders {
        for item in &f.items {
            report.listed += 1;
            match archive.read(item) {
                Ok(_) => report.intact += 1,
                Err(e) => report.problems.push(format!("folder {:?}: {e}", f.name)),
            }
        }
    }
    let mut files = Vec::new();
    collect_files(root, &mut files, 0);
    for p in files {
        let rel = p
            .strip_prefix(root)
            .unwrap_or(&p)
            .to_string_lossy()
            .replace('\\', "/");
        match format {
            Format::Maildir | Format::Eml => {
                let in_tmp = rel.split('/').any(|c| c == "tmp");
                if !in_tmp && !recorded.contains(&rel) {
                    report
                        .unlisted
                        .push(format!("{}: not in the manifest", p.display()));
                }
            }
            Format::Mbox => {
                let listed = per_mbox.get(&rel).copied().unwrap_or(0);
                let found = count_from_lines(&p)?;
                if found > listed {
                    report.unlisted.push(format!(
                        "{}: {found} messages, the manifest lists {listed}",
                        p.display()
                    ));
                }
            }
        }
    }
    Ok(report)
}

/// Read back just these entries (what one export wrote) against their digests: one line per
/// entry missing, truncated or changed.
pub fn verify_entries(root: &Path, entries: &[Entry]) -> Vec<String> {
    let reader = Archive {
        root: root.to_path_buf(),
        format: Format::Eml, // reading goes by each item's location, not the format
        has_manifest: true,
        folders: Vec::new(),
        skipped: Vec::new(),
    };
    entries
        .iter()
        .filter_map(|e| {
            let item = item_of(root, e.clone());
            reader
                .read(&item)
                .err()
                .map(|err| format!("folder {:?}: {err}", e.folder))
        })
        .collect()
}

fn count_from_lines(p: &Path) -> Result<u64, Error> {
    let f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
    let mut r = std::io::BufReader::new(f);
    let (mut n, mut prev_blank, mut line) = (0, true, Vec::new());
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)
            .map_err(|e| Error::io(p, e))?
            == 0
        {
            return Ok(n);
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        if prev_blank && is_from_line(body) {
            n += 1;
        }
        prev_blank = body.is_empty();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Layout, Writer};

    fn sample() -> Vec<(&'static str, Vec<String>, Vec<u8>)> {
        vec![
            (
                "INBOX",
                vec!["\\Seen".into(), "Lavoro".into()],
                b"Subject: a\r\n\r\nFrom me, greetings\r\n>From you\r\n".to_vec(),
            ),
            (
                "INBOX",
                vec![],
                b"Subject: no final newline\r\n\r\nx".to_vec(),
            ),
            (
                "Posta inviata/2024",
                vec!["\\Answered".into()],
                b"Subject: bare\nLF and CR\r mixed\r\n".to_vec(),
            ),
            ("INBOX", vec![], b"Subject: b\r\n\r\n\r\n".to_vec()),
        ]
    }

    fn round_trip(format: Format, layout: Option<Layout>) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("a");
        let mut w = Writer::open(&root, format, layout, "test").unwrap();
        w.folder("Vuota", false).unwrap();
        for (i, (folder, flags, body)) in sample().into_iter().enumerate() {
            w.write(
                folder,
                Some(format!("1:{i}")),
                &flags,
                Some("05-Mar-2019 08:07:06 +0100"),
                &body,
            )
            .unwrap();
        }
        w.finish().unwrap();
        let r = verify(&root).unwrap();
        assert!(r.ok(), "{format}: {r:?}");
        assert_eq!(r.listed, 4);
        let a = Archive::open(&root).unwrap();
        assert!(a.has_manifest);
        let mut got = Vec::new();
        for f in &a.folders {
            for it in &f.items {
                got.push((f.name.clone(), it.flags.clone(), a.read(it).unwrap()));
            }
        }
        let mut want: Vec<_> = sample()
            .into_iter()
            .map(|(f, fl, b)| (f.to_string(), fl, b))
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{format}");
        assert!(a.folders.iter().any(|f| f.name == "Vuota" && !f.subscribed));
        // Reopening resumes: the ids are known.
        let w = Writer::open(&root, format, layout, "test").unwrap();
        assert!(w.has("INBOX", "1:0") && !w.has("INBOX", "1:9"));
    }

    #[test]
    fn round_trips_are_byte_exact() {
        round_trip(Format::Mbox, None);
        round_trip(Format::Maildir, Some(Layout::MaildirPlus));
        round_trip(Format::Maildir, Some(Layout::Fs));
        round_trip(Format::Eml, None);
    }

    #[test]
    fn damage_is_found_and_named() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("a");
        let mut w = Writer::open(&root, Format::Mbox, None, "test").unwrap();
        for (i, (folder, flags, body)) in sample().into_iter().enumerate() {
            w.write(folder, Some(format!("1:{i}")), &flags, None, &body)
                .unwrap();
        }
        w.finish().unwrap();
        let inbox = root.join("INBOX.mbox");
        let len = std::fs::metadata(&inbox).unwrap().len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&inbox)
            .unwrap();
        f.set_len(len - 5).unwrap();
        let r = verify(&root).unwrap();
        assert!(!r.ok());
        assert_eq!(r.intact, 3);
        assert!(
            r.problems[0].contains("INBOX.mbox byte offset"),
            "{:?}",
            r.problems
        );
        assert!(r.problems[0].contains("truncated"), "{:?}", r.problems);
        // A message slipped in without the manifest is reported.
        let mut data = std::fs::read(root.join("Posta inviata/2024.mbox")).unwrap();
        data.extend_from_slice(b"From x Sat Jan  3 01:05:34 1996\nSubject: extra\n\n\n");
        std::fs::write(root.join("Posta inviata/2024.mbox"), data).unwrap();
        let r = verify(&root).unwrap();
        assert_eq!(r.unlisted.len(), 1, "{r:?}");
    }

    #[test]
    fn a_killed_export_is_repaired_on_reopen() {
        for format in [Format::Mbox, Format::Maildir, Format::Eml] {
            let d = tempfile::tempdir().unwrap();
            let root = d.path().join("a");
            let mut w = Writer::open(&root, format, None, "test").unwrap();
            let s = sample();
            w.write(s[0].0, Some("1:0".into()), &s[0].1, None, &s[0].2)
                .unwrap();
            w.finish().unwrap();
            // A second message written, then the process dies before its manifest line is
            // complete: simulate by writing it and cutting the manifest back.
            let m_len = std::fs::metadata(manifest::path(&root)).unwrap().len();
            let mut w = Writer::open(&root, format, None, "test").unwrap();
            w.write(s[1].0, Some("1:1".into()), &s[1].1, None, &s[1].2)
                .unwrap();
            w.finish().unwrap();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(manifest::path(&root))
                .unwrap();
            f.set_len(m_len + 7).unwrap(); // a partial line
            let w = Writer::open(&root, format, None, "test").unwrap();
            assert!(w.has("INBOX", "1:0") && !w.has("INBOX", "1:1"));
            w.finish().unwrap();
            let r = verify(&root).unwrap();
            assert!(r.ok(), "{format}: {r:?}");
            assert_eq!(r.listed, 1);
        }
    }

    #[test]
    fn same_bytes_under_a_new_id_are_claimed_once_and_written_entries_verify() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("a");
        let body = b"Subject: twice\r\n\r\nsame\r\n";
        let mut w = Writer::open(&root, Format::Maildir, None, "t").unwrap();
        let a = w
            .write("INBOX", Some("1:1".into()), &[], None, body)
            .unwrap();
        let b = w
            .write("INBOX", Some("1:2".into()), &[], None, body)
            .unwrap();
        w.finish().unwrap();
        let written: Vec<Entry> = [a, b].into_iter().flatten().collect();
        assert_eq!(written.len(), 2, "a duplicate pair stays two");
        assert!(verify_entries(&root, &written).is_empty());
        // The source's UIDVALIDITY changed: new ids, the same two messages, plus a third copy.
        let mut w = Writer::open(&root, Format::Maildir, None, "t").unwrap();
        for (i, want_new) in [(1, false), (2, false), (3, true)] {
            let got = w
                .write("INBOX", Some(format!("9:{i}")), &[], None, body)
                .unwrap();
            assert_eq!(got.is_some(), want_new, "message {i}");
        }
        w.finish().unwrap();
        std::fs::remove_file(root.join(&written[0].file)).unwrap();
        let problems = verify_entries(&root, &written);
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn refuses_foreign_directories_and_other_formats() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("notes.txt"), b"x").unwrap();
        let e = Writer::open(d.path(), Format::Mbox, None, "t")
            .err()
            .unwrap();
        assert!(e.message.contains("not empty"), "{e}");
        let root = d.path().join("a");
        Writer::open(&root, Format::Mbox, None, "t")
            .unwrap()
            .finish()
            .unwrap();
        let e = Writer::open(&root, Format::Eml, None, "t").err().unwrap();
        assert!(e.message.contains("this archive is mbox"), "{e}");
    }
}
