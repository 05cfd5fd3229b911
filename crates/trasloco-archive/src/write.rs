//! Writing archives, resumably: every message's bytes are in place before its manifest line
//! is appended, and opening an archive again removes whatever a killed run left unrecorded.

use crate::manifest::{self, Appender, Entry, FolderLine, Header, Manifest};
use crate::read::read_keywords;
use crate::{Error, Format, Layout, dates, flags, lines, sha256_hex};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// An archive open for writing.
pub struct Writer {
    root: PathBuf,
    format: Format,
    layout: Option<Layout>,
    appender: Appender,
    /// Source ids already archived, per folder.
    done: HashMap<String, HashSet<String>>,
    /// SHA-256 of archived messages per folder, with multiplicity (for sources whose ids
    /// changed).
    digests: HashMap<String, HashMap<String, u32>>,
    folders: HashSet<String>,
    /// Maildir keyword letters per folder directory.
    keywords: HashMap<PathBuf, Vec<String>>,
    seq: u64,
    /// Files in the directory that the manifest does not list and this tool did not write:
    /// left alone.
    unrecorded: Vec<PathBuf>,
    /// The current entry of every archived message with a source id, for flag updates.
    current: HashMap<(String, String), Entry>,
}

impl Writer {
    /// Open the archive at `root` for writing, creating it, or resuming it if it holds a
    /// manifest of the same format. `source` is recorded in a new manifest.
    pub fn open(
        root: &Path,
        format: Format,
        layout: Option<Layout>,
        source: &str,
    ) -> Result<Writer, Error> {
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        let existing = manifest::load(root)?;
        let layout = match format {
            Format::Maildir => Some(layout.unwrap_or(Layout::MaildirPlus)),
            _ => None,
        };
        if let Some(m) = &existing {
            if m.header.format != format {
                return Err(Error::new(format!(
                    "{}: this archive is {}, not {format}; choose another directory",
                    root.display(),
                    m.header.format
                )));
            }
        } else if std::fs::read_dir(root)
            .map_err(|e| Error::io(root, e))?
            .next()
            .is_some()
        {
            return Err(Error::new(format!(
                "{}: the directory is not empty and is not a trasloco archive; choose an empty or new directory",
                root.display()
            )));
        }
        let layout = existing.as_ref().map_or(layout, |m| m.header.layout);
        let header = Header {
            trasloco_archive: 1,
            format,
            layout,
            created: chrono::Utc::now().to_rfc3339(),
            source: source.to_string(),
        };
        let unrecorded = match &existing {
            Some(m) => repair(root, format, m)?,
            None => Vec::new(),
        };
        let appender = Appender::open(root, existing.as_ref(), &header)?;
        let mut w = Writer {
            root: root.to_path_buf(),
            format,
            layout,
            appender,
            done: HashMap::new(),
            digests: HashMap::new(),
            folders: HashSet::new(),
            keywords: HashMap::new(),
            seq: 0,
            unrecorded,
            current: HashMap::new(),
        };
        if let Some(m) = existing {
            // File numbers go on from every line ever written, replaced ones included.
            w.seq = (m.entries.len() + m.superseded.len()) as u64;
            w.current = m
                .entries
                .iter()
                .filter_map(|e| {
                    let id = e.source_id.clone()?;
                    Some(((e.folder.clone(), id), e.clone()))
                })
                .collect();
            w.folders = m.folders.iter().map(|f| f.folder.clone()).collect();
            w.done = m.recorded_ids();
            for e in m.entries {
                *w.digests
                    .entry(e.folder)
                    .or_default()
                    .entry(e.sha256)
                    .or_default() += 1;
            }
        }
        Ok(w)
    }

    /// Files in the archive's directory that its manifest does not list and that this tool
    /// did not write (someone put them there): left alone, to be reported.
    pub fn unrecorded(&self) -> &[PathBuf] {
        &self.unrecorded
    }

    /// Make sure a folder exists in the archive.
    pub fn folder(&mut self, name: &str, subscribed: bool) -> Result<(), Error> {
        if self.folders.contains(name) {
            return Ok(());
        }
        let p = folder_path(&self.root, self.format, self.layout, name);
        match self.format {
            Format::Maildir => {
                for sub in ["cur", "new", "tmp"] {
                    let d = p.join(sub);
                    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
                }
            }
            Format::Eml => std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?,
            Format::Mbox => {
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
                }
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&p)
                    .map_err(|e| Error::io(&p, e))?;
            }
        }
        self.appender.folder(&FolderLine {
            folder: name.to_string(),
            subscribed,
        })?;
        self.folders.insert(name.to_string());
        Ok(())
    }

    /// Whether the message with this source id is archived in `folder` already.
    pub fn has(&self, folder: &str, source_id: &str) -> bool {
        self.done.get(folder).is_some_and(|s| s.contains(source_id))
    }

    /// Take one archived copy with these bytes in `folder` as matching a source message whose
    /// id is not recorded (the source's UIDVALIDITY changed); false when none is left.
    fn claim_digest(&mut self, folder: &str, sha256: &str) -> bool {
        match self.digests.get_mut(folder).and_then(|m| m.get_mut(sha256)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Write one message (bytes exactly as the server had them) and record it. `None` when the
    /// folder already holds an archived copy with the same bytes that no source id claims yet
    /// (the source's UIDVALIDITY changed, or its state was lost): one archived copy per source
    /// copy, duplicates included.
    pub fn write(
        &mut self,
        folder: &str,
        source_id: Option<String>,
        flags_in: &[String],
        internal_date: Option<&str>,
        body: &[u8],
    ) -> Result<Option<Entry>, Error> {
        let sha256 = sha256_hex(body);
        if self.claim_digest(folder, &sha256) {
            return Ok(None);
        }
        self.folder(folder, true)?;
        self.seq += 1;
        let lf = lines::lf_convertible(body) && body.contains(&b'\n');
        let stored = if lf {
            lines::crlf_to_lf(body)
        } else {
            body.to_vec()
        };
        let dir = folder_path(&self.root, self.format, self.layout, folder);
        let secs = internal_date
            .and_then(dates::parse_imap)
            .map_or(0, |t| t.timestamp().max(0));
        let rel = |p: &Path| {
            p.strip_prefix(&self.root)
                .unwrap_or(p)
                .to_string_lossy()
                .replace('\\', "/")
        };
        let mut entry = Entry {
            folder: folder.to_string(),
            file: String::new(),
            offset: None,
            length: None,
            prefix: 0,
            lf,
            sha256,
            size: body.len() as u64,
            flags: flags_in.to_vec(),
            internal_date: internal_date.map(str::to_string),
            source_id: source_id.clone(),
        };
        match self.format {
            Format::Maildir => {
                let info = maildir_info(&mut self.keywords, &dir, flags_in)?;
                let base = format!(
                    "{secs}.{}.trasloco,S={},W={}",
                    self.seq,
                    stored.len(),
                    body.len()
                );
                let tmp = dir.join("tmp").join(&base);
                let fin = dir.join("cur").join(format!("{base}:2,{info}"));
                write_file(&tmp, &stored, internal_date)?;
                std::fs::rename(&tmp, &fin).map_err(|e| Error::io(&fin, e))?;
                entry.file = rel(&fin);
            }
            Format::Eml => {
                let fin = dir.join(format!("{}.eml", self.seq));
                let tmp = dir.join(format!(".{}.eml.tmp", self.seq));
                write_file(&tmp, body, internal_date)?;
                std::fs::rename(&tmp, &fin).map_err(|e| Error::io(&fin, e))?;
                entry.file = rel(&fin);
                entry.lf = false;
            }
            Format::Mbox => {
                let prefix = flags::to_mbox_headers(flags_in);
                let quoted = lines::mboxrd_quote(&stored);
                let mut f = OpenOptions::new()
                    .append(true)
                    .open(&dir)
                    .map_err(|e| Error::io(&dir, e))?;
                let start = f.seek(SeekFrom::End(0)).map_err(|e| Error::io(&dir, e))?;
                let from = dates::from_line(internal_date);
                let mut buf = Vec::with_capacity(from.len() + prefix.len() + quoted.len() + 2);
                buf.extend_from_slice(from.as_bytes());
                buf.extend_from_slice(prefix.as_bytes());
                buf.extend_from_slice(&quoted);
                buf.extend_from_slice(separator(&quoted));
                f.write_all(&buf).map_err(|e| Error::io(&dir, e))?;
                entry.file = rel(&dir);
                entry.offset = Some(start + from.len() as u64);
                entry.length = Some((prefix.len() + quoted.len()) as u64);
                entry.prefix = prefix.len() as u64;
            }
        }
        self.appender.append(&entry)?;
        if let Some(id) = source_id {
            self.done
                .entry(folder.to_string())
                .or_default()
                .insert(id.clone());
            self.current.insert((folder.to_string(), id), entry.clone());
        }
        Ok(Some(entry))
    }

    /// Carry a flag change of an archived message over, as migrations do: a Maildir file is
    /// renamed to its new info letters (linked under the new name, recorded, then the old name
    /// removed, so a kill at any point leaves one recorded name); for mbox and EML the
    /// manifest is the source of truth, and a new entry line replaces the old one. Returns
    /// whether anything changed.
    pub fn update_flags(
        &mut self,
        folder: &str,
        source_id: &str,
        flags: &[String],
    ) -> Result<bool, Error> {
        let key = (folder.to_string(), source_id.to_string());
        let Some(old) = self.current.get(&key) else {
            return Ok(false);
        };
        // \Recent is the server's, per session: never a change worth carrying.
        let same = |a: &[String], b: &[String]| {
            let set = |x: &[String]| -> std::collections::BTreeSet<String> {
                x.iter()
                    .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                    .cloned()
                    .collect()
            };
            set(a) == set(b)
        };
        if same(&old.flags, flags) {
            return Ok(false);
        }
        let mut entry = old.clone();
        entry.flags = flags.to_vec();
        let mut remove: Option<PathBuf> = None;
        if self.format == Format::Maildir {
            let old_path = self.root.join(&old.file);
            let dir = old_path
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.root.clone());
            let info = maildir_info(&mut self.keywords, &dir, flags)?;
            let base = old
                .file
                .rsplit_once(":2,")
                .map_or(old.file.as_str(), |(b, _)| b);
            let new_file = format!("{base}:2,{info}");
            if new_file != old.file {
                let new_path = self.root.join(&new_file);
                std::fs::hard_link(&old_path, &new_path).map_err(|e| Error::io(&new_path, e))?;
                entry.file = new_file;
                remove = Some(old_path);
            }
        }
        self.appender.append(&entry)?;
        if let Some(p) = remove {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
        self.current.insert(key, entry);
        Ok(true)
    }

    /// Flush the manifest to disk.
    pub fn finish(mut self) -> Result<(), Error> {
        self.appender.sync()
    }
}

/// Where a folder lives: its directory (Maildir, EML) or its mbox file.
/// The Maildir info letters for `flags` in the folder directory `dir` (its keyword letters
/// kept in `keywords`); a keyword new to the folder gets a letter, written to its
/// `dovecot-keywords` at once.
fn maildir_info(
    keywords: &mut HashMap<PathBuf, Vec<String>>,
    dir: &Path,
    flags: &[String],
) -> Result<String, Error> {
    let kws = keywords
        .entry(dir.to_path_buf())
        .or_insert_with(|| read_keywords(dir));
    let before = kws.len();
    let (info, _) = flags::to_maildir_info(flags, kws);
    if kws.len() != before {
        let text: String = kws
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{i} {k}\n"))
            .collect();
        let p = dir.join("dovecot-keywords");
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
    }
    Ok(info)
}

pub(crate) fn folder_path(
    root: &Path,
    format: Format,
    layout: Option<Layout>,
    folder: &str,
) -> PathBuf {
    let parts: Vec<String> = folder
        .split('/')
        .map(|c| crate::component_to_disk(c, format, layout))
        .collect();
    match format {
        Format::Maildir if folder == "INBOX" => root.to_path_buf(),
        Format::Maildir if layout == Some(Layout::MaildirPlus) => {
            root.join(format!(".{}", parts.join(".")))
        }
        Format::Maildir | Format::Eml => parts.iter().fold(root.to_path_buf(), |p, c| p.join(c)),
        Format::Mbox => {
            let mut p = parts.iter().fold(root.to_path_buf(), |p, c| p.join(c));
            let file = format!(
                "{}.mbox",
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
            p.set_file_name(file);
            p
        }
    }
}

/// What follows an mbox entry: an end for its last line if it has none, then the empty line
/// before the next `From `.
fn separator(stored: &[u8]) -> &'static [u8] {
    if stored.is_empty() || stored.ends_with(b"\n") {
        b"\n"
    } else {
        b"\n\n"
    }
}

fn write_file(path: &Path, data: &[u8], internal_date: Option<&str>) -> Result<(), Error> {
    let mut f = File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(data).map_err(|e| Error::io(path, e))?;
    if let Some(t) = internal_date.and_then(dates::system_from_imap) {
        f.set_modified(t).map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// Undo what a killed run left unrecorded: message files without a manifest line are removed,
/// mbox files are cut back to their last recorded entry.
/// Undo what a killed run left unrecorded, touching only files this tool writes: Maildir
/// files named `….trasloco,…`, `N.eml` and `.N.eml.tmp`, and the mbox files of the manifest's
/// folders. Anything else in the directory is left alone and returned, to be reported.
fn repair(root: &Path, format: Format, m: &Manifest) -> Result<Vec<PathBuf>, Error> {
    let recorded: HashSet<PathBuf> = m.entries.iter().map(|e| root.join(&e.file)).collect();
    let mut unrecorded = Vec::new();
    let numbered = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match format {
        Format::Maildir | Format::Eml => {
            let mut stray = Vec::new();
            collect_files(root, &mut stray, 0);
            for p in stray {
                if recorded.contains(&p) {
                    continue;
                }
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let ours = match format {
                    Format::Maildir => name.contains(".trasloco,"),
                    _ => {
                        name.strip_suffix(".eml").is_some_and(numbered)
                            || name
                                .strip_prefix('.')
                                .and_then(|n| n.strip_suffix(".eml.tmp"))
                                .is_some_and(numbered)
                    }
                };
                if ours {
                    std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                } else {
                    unrecorded.push(p);
                }
            }
        }
        Format::Mbox => {
            // Only the folders' own files: an mbox file the manifest does not know is not ours.
            let layout = m.header.layout;
            let ours: HashSet<PathBuf> = m
                .folders
                .iter()
                .map(|f| folder_path(root, format, layout, &f.folder))
                .chain(recorded.iter().cloned())
                .collect();
            let mut files = Vec::new();
            collect_files(root, &mut files, 0);
            unrecorded.extend(files.iter().filter(|p| !ours.contains(*p)).cloned());
            let mut ends: BTreeMap<PathBuf, (u64, bool)> = BTreeMap::new();
            for e in &m.entries {
                if let (Some(o), Some(l)) = (e.offset, e.length) {
                    let p = root.join(&e.file);
                    let end = ends.entry(p).or_insert((0, true));
                    if o + l >= end.0 {
                        *end = (o + l, false);
                    }
                }
            }
            for p in files.into_iter().filter(|p| ours.contains(p)) {
                let (end, empty) = ends.get(&p).copied().unwrap_or((0, true));
                let mut f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&p)
                    .map_err(|e| Error::io(&p, e))?;
                let len = f.metadata().map_err(|e| Error::io(&p, e))?.len();
                if len < end {
                    return Err(Error::new(format!(
                        "{} byte offset {end}: the file is shorter than its manifest says ({len} bytes); verify the archive with `trasloco archive verify`",
                        p.display()
                    )));
                }
                if empty {
                    f.set_len(0).map_err(|e| Error::io(&p, e))?;
                    continue;
                }
                // The stored bytes end at `end`; keep the separator that follows them.
                let mut last = [0u8; 1];
                f.seek(SeekFrom::Start(end - 1))
                    .map_err(|e| Error::io(&p, e))?;
                f.read_exact(&mut last).map_err(|e| Error::io(&p, e))?;
                let sep = if last[0] == b'\n' { 1 } else { 2 };
                if len > end + sep {
                    f.set_len(end + sep).map_err(|e| Error::io(&p, e))?;
                } else if len < end + sep {
                    f.seek(SeekFrom::Start(end)).map_err(|e| Error::io(&p, e))?;
                    f.set_len(end).map_err(|e| Error::io(&p, e))?;
                    f.write_all(&b"\n\n"[..sep as usize])
                        .map_err(|e| Error::io(&p, e))?;
                }
            }
        }
    }
    unrecorded.sort();
    Ok(unrecorded)
}

pub(crate) fn collect_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 40 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out, depth + 1);
        } else if p
            .file_name()
            .is_some_and(|n| n != manifest::FILE && n != "dovecot-keywords")
        {
            out.push(p);
        }
    }
}
