//! The manifest: one JSON line per archived message, so an archive can be checked (and
//! imported byte-exact) without the server it came from.
//!
//! `trasloco-manifest.jsonl` at the archive's root: a header line, then one [`Entry`] per
//! message, appended as each message is written. A run killed mid-write leaves at most a
//! partial last line, which the next run drops.

use crate::{Error, Format, Layout};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the manifest in an archive's root.
pub const FILE: &str = "trasloco-manifest.jsonl";

/// The first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// Manifest version (1).
    pub trasloco_archive: u32,
    /// Archive format.
    pub format: Format,
    /// Maildir folder layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    /// When the archive was started (RFC 3339).
    pub created: String,
    /// Where the messages came from (`user@host`, never a secret).
    pub source: String,
}

/// One archived message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Folder name (Unicode, `/` between levels).
    pub folder: String,
    /// File holding it, relative to the archive root, `/`-separated.
    pub file: String,
    /// mbox: where the stored bytes start (after the `From ` line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// mbox: how many bytes are stored (flag headers and quoting included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// mbox: bytes of flag header lines trasloco put in front of the message.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prefix: u64,
    /// Stored with LF line ends, converted from CRLF (undone on reading).
    pub lf: bool,
    /// SHA-256 of the message exactly as the server had it.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// IMAP flags and keywords.
    pub flags: Vec<String>,
    /// IMAP INTERNALDATE.
    pub internal_date: Option<String>,
    /// `UIDVALIDITY:UID` (or `pop3:UIDL`) on the source, so a re-export copies only new mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
}

/// A folder of the archive, recorded when the export reaches it (so empty folders and
/// subscriptions survive a round trip).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderLine {
    /// Folder name (Unicode, `/` between levels).
    pub folder: String,
    /// Whether the user was subscribed to it.
    #[serde(default)]
    pub subscribed: bool,
}

/// A line after the header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Entry(Entry),
    Folder(FolderLine),
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A loaded manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Header.
    pub header: Header,
    /// Entries in the order written.
    pub entries: Vec<Entry>,
    /// Folders in the order reached.
    pub folders: Vec<FolderLine>,
    /// Entries a later line for the same message replaced (its flags changed on the source):
    /// history, not what the archive holds now.
    pub superseded: Vec<Entry>,
    /// Bytes of complete lines (a partial last line starts here).
    pub complete_len: u64,
}

impl Manifest {
    /// Source ids already archived, per folder (what a re-export skips).
    pub fn recorded_ids(&self) -> HashMap<String, HashSet<String>> {
        let mut out: HashMap<String, HashSet<String>> = HashMap::new();
        for e in &self.entries {
            if let Some(id) = &e.source_id {
                out.entry(e.folder.clone()).or_default().insert(id.clone());
            }
        }
        out
    }
}

/// Path of the manifest under `root`.
pub fn path(root: &Path) -> PathBuf {
    root.join(FILE)
}

/// Load the manifest of the archive at `root`, if it has one.
pub fn load(root: &Path) -> Result<Option<Manifest>, Error> {
    let p = path(root);
    let data = match std::fs::read(&p) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&p, e)),
    };
    let complete_len = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut lines = data[..complete_len]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty());
    let bad = |n: usize, e: String| Error::new(format!("{} line {n}: {e}", p.display()));
    let header: Header = match lines.next() {
        Some(l) => serde_json::from_slice(l).map_err(|e| bad(1, e.to_string()))?,
        None => return Err(bad(1, "empty manifest".into())),
    };
    let mut entries: Vec<Entry> = Vec::new();
    let mut folders = Vec::new();
    let mut superseded = Vec::new();
    // A later entry for the same message (folder and source id) replaces the earlier one in
    // place: that is how a flag change reaches an archive that is only ever appended to.
    let mut at: HashMap<(String, String), usize> = HashMap::new();
    for (i, l) in lines.enumerate() {
        match serde_json::from_slice(l).map_err(|e| bad(i + 2, e.to_string()))? {
            Line::Entry(e) => {
                let key = e.source_id.clone().map(|id| (e.folder.clone(), id));
                match key.as_ref().and_then(|k| at.get(k)) {
                    Some(&n) => superseded.push(std::mem::replace(&mut entries[n], e)),
                    None => {
                        if let Some(k) = key {
                            at.insert(k, entries.len());
                        }
                        entries.push(e);
                    }
                }
            }
            Line::Folder(f) => folders.push(f),
        }
    }
    Ok(Some(Manifest {
        header,
        entries,
        folders,
        superseded,
        complete_len: complete_len as u64,
    }))
}

/// Appends entries to a manifest file.
pub struct Appender {
    file: std::fs::File,
    path: PathBuf,
}

impl Appender {
    /// Open for appending, cutting a partial last line left by a killed run; create with
    /// `header` when there is no manifest yet.
    pub fn open(
        root: &Path,
        existing: Option<&Manifest>,
        header: &Header,
    ) -> Result<Appender, Error> {
        let path = path(root);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut a = Appender { file, path };
        match existing {
            Some(m) => {
                a.file
                    .set_len(m.complete_len)
                    .map_err(|e| Error::io(&a.path, e))?;
            }
            None => {
                a.file.set_len(0).map_err(|e| Error::io(&a.path, e))?;
                a.line(header)?;
            }
        }
        Ok(a)
    }

    fn line<T: Serialize>(&mut self, v: &T) -> Result<(), Error> {
        let mut line = serde_json::to_vec(v).map_err(|e| Error::new(e.to_string()))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Record one message (after its bytes are in place).
    pub fn append(&mut self, e: &Entry) -> Result<(), Error> {
        self.line(e)
    }

    /// Record a folder.
    pub fn folder(&mut self, f: &FolderLine) -> Result<(), Error> {
        self.line(f)
    }

    /// Flush to disk.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.file.sync_all().map_err(|e| Error::io(&self.path, e))
    }
}
