//! Reading archives: trasloco's own (through the manifest) and foreign ones (by scanning).

use crate::manifest::{self, Entry, Manifest};
use crate::{Error, Format, component_from_disk, dates, flags, lines, sha256_hex};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where a message's bytes are and how to turn them back into the server's bytes.
#[derive(Debug, Clone)]
enum Loc {
    /// A whole file (Maildir, EML).
    File { path: PathBuf },
    /// A span of an mbox file: `prefix` flag-header bytes, then mboxrd-quoted content.
    Span {
        path: PathBuf,
        offset: u64,
        length: u64,
        prefix: u64,
    },
}

/// One message of an archive.
#[derive(Debug, Clone)]
pub struct Item {
    /// Stable within the archive: file name or mbox offset.
    pub key: String,
    /// Size of the message as it will be uploaded.
    pub size: u64,
    /// IMAP flags.
    pub flags: Vec<String>,
    /// IMAP INTERNALDATE.
    pub internal_date: Option<String>,
    /// SHA-256 from the manifest, checked on every read.
    pub sha256: Option<String>,
    /// Something wrong found while listing (e.g. a truncated last message); reading fails.
    pub problem: Option<String>,
    /// Something doubtful found while listing, read all the same: an mbox whose last message
    /// does not end with the blank line mbox requires (the file may have been cut).
    pub warning: Option<String>,
    /// The message's id on the server it was exported from (manifest archives only).
    pub source_id: Option<String>,
    /// `None`: a foreign file, line ends normalised to CRLF. `Some(lf)`: from the manifest.
    lf: Option<bool>,
    loc: Loc,
}

impl Item {
    /// Where the message is, for people: its file, and the byte offset in an mbox file.
    pub fn place(&self) -> String {
        match &self.loc {
            Loc::File { path } => path.display().to_string(),
            Loc::Span { path, offset, .. } => {
                format!("{} byte offset {offset}", path.display())
            }
        }
    }
}

/// A folder of an archive.
#[derive(Debug, Clone)]
pub struct Folder {
    /// Name, Unicode, `/` between levels; the archive's top level is `INBOX`.
    pub name: String,
    /// Subscribed (from the manifest; foreign folders count as subscribed).
    pub subscribed: bool,
    /// Messages in archive order.
    pub items: Vec<Item>,
}

/// An opened archive.
#[derive(Debug, Clone)]
pub struct Archive {
    /// Where it is.
    pub root: PathBuf,
    /// What it is.
    pub format: Format,
    /// Whether a trasloco manifest describes it (byte-exact import, SHA-256 checked).
    pub has_manifest: bool,
    /// Its folders.
    pub folders: Vec<Folder>,
    /// Files found in it that are not mail, or that could not be read as mail, with why:
    /// left out, and said, instead of stopping the whole archive.
    pub skipped: Vec<Skipped>,
}

/// A file of an archive tree left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why, in words, naming the file.
    pub why: String,
    /// It looked like mail (named `.mbox`, or starting like one) and could not be read as
    /// such; otherwise it is simply not mail (a picture, an index).
    pub unreadable: bool,
}

impl Archive {
    /// Open and list an archive: a trasloco archive directory, a Maildir, a directory of mbox
    /// files (Thunderbird `.sbd` folders and Apple Mail `.mbox` bundles included), a single mbox
    /// file, a directory tree of `.eml` files or a single `.eml` file.
    pub fn open(path: &Path) -> Result<Archive, Error> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_file() {
            let is_eml = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("eml"))
                || (!starts_like_mbox(path) && looks_like_a_message(path));
            let (format, items) = if is_eml {
                (Format::Eml, vec![eml_item(path, path)?])
            } else {
                (Format::Mbox, scan_mbox(path)?)
            };
            return Ok(Archive {
                root: path.to_path_buf(),
                format,
                has_manifest: false,
                folders: vec![Folder {
                    name: "INBOX".into(),
                    subscribed: true,
                    items,
                }],
                skipped: Vec::new(),
            });
        }
        if let Some(m) = manifest::load(path)? {
            return Ok(from_manifest(path, m));
        }
        if is_maildir(path) {
            return scan_maildir(path);
        }
        let mut found = Found::default();
        walk(path, path, &mut found, 0)?;
        if !found.eml.is_empty() {
            let mut folders: Vec<Folder> = Vec::new();
            for (name, file) in found.eml {
                let item = eml_item(path, &file)?;
                match folders.iter_mut().find(|f| f.name == name) {
                    Some(f) => f.items.push(item),
                    None => folders.push(Folder {
                        name,
                        subscribed: true,
                        items: vec![item],
                    }),
                }
            }
            for (_, path) in found.mbox {
                found.skipped.push(Skipped {
                    why: format!(
                        "{}: an mbox file in a tree of .eml files: import it on its own",
                        path.display()
                    ),
                    path,
                    unreadable: false,
                });
            }
            return Ok(Archive {
                root: path.to_path_buf(),
                format: Format::Eml,
                has_manifest: false,
                folders,
                skipped: found.skipped,
            });
        }
        if !found.mbox.is_empty() {
            let mut folders = Vec::new();
            for (name, file) in found.mbox {
                // One file that is not what its name or first line promised must not keep
                // the others out: it is left out and said.
                match scan_mbox(&file) {
                    Ok(items) => folders.push(Folder {
                        name,
                        subscribed: true,
                        items,
                    }),
                    Err(e) => found.skipped.push(Skipped {
                        path: file,
                        why: e.message,
                        unreadable: true,
                    }),
                }
            }
            if !folders.is_empty() {
                return Ok(Archive {
                    root: path.to_path_buf(),
                    format: Format::Mbox,
                    has_manifest: false,
                    folders,
                    skipped: found.skipped,
                });
            }
        }
        Err(Error::new(format!(
            "{}: not an archive (no trasloco manifest, no Maildir cur/new, no mbox file, no .eml file{})",
            path.display(),
            match found.skipped.first() {
                Some(f) => format!("; {}", f.why),
                None => String::new(),
            }
        )))
    }

    /// What was found doubtful while listing, one line each (e.g. an mbox whose last message
    /// may have been cut).
    pub fn warnings(&self) -> Vec<String> {
        self.folders
            .iter()
            .flat_map(|f| f.items.iter().filter_map(|i| i.warning.clone()))
            .collect()
    }

    /// The message's bytes as they go to the server (CRLF line ends), checked against the
    /// manifest's SHA-256 when there is one.
    pub fn read(&self, item: &Item) -> Result<Vec<u8>, Error> {
        if let Some(p) = &item.problem {
            return Err(Error::new(p.clone()));
        }
        let (raw, where_) = match &item.loc {
            Loc::File { path } => (
                std::fs::read(path).map_err(|e| Error::io(path, e))?,
                path.display().to_string(),
            ),
            Loc::Span {
                path,
                offset,
                length,
                prefix,
            } => {
                let span = read_span(path, *offset, *length)?;
                let at = format!("{} byte offset {offset}", path.display());
                if (*prefix as usize) > span.len() {
                    return Err(Error::new(format!("{at}: shorter than its flag headers")));
                }
                (lines::mboxrd_unquote(&span[*prefix as usize..]), at)
            }
        };
        let body = match item.lf {
            Some(false) => raw,
            _ => lines::lf_to_crlf(&raw),
        };
        if let Some(want) = &item.sha256
            && sha256_hex(&body) != *want
        {
            return Err(Error::new(format!(
                "{where_}: the message differs from the manifest (SHA-256); the archive is damaged or was changed"
            )));
        }
        Ok(body)
    }
}

fn read_span(path: &Path, offset: u64, length: u64) -> Result<Vec<u8>, Error> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if offset + length > len {
        return Err(Error::new(format!(
            "{} byte offset {offset}: message truncated ({length} bytes expected, the file ends at byte {len})",
            path.display()
        )));
    }
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0; length as usize];
    f.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
    Ok(buf)
}

/// The item a manifest entry describes, read and checked through its digest.
pub(crate) fn item_of(root: &Path, e: Entry) -> Item {
    let path = root.join(&e.file);
    let loc = match (e.offset, e.length) {
        (Some(offset), Some(length)) => Loc::Span {
            path,
            offset,
            length,
            prefix: e.prefix,
        },
        _ => Loc::File { path },
    };
    Item {
        key: match e.offset {
            Some(o) => format!("{}@{o}", e.file),
            None => e.file.clone(),
        },
        size: e.size,
        flags: e.flags,
        internal_date: e.internal_date,
        sha256: Some(e.sha256),
        problem: None,
        warning: None,
        source_id: e.source_id,
        lf: Some(e.lf),
        loc,
    }
}

fn from_manifest(root: &Path, m: Manifest) -> Archive {
    // Files in the directory the manifest does not list are not imported, and are said.
    let mut listed: std::collections::HashSet<PathBuf> =
        m.entries.iter().map(|e| root.join(&e.file)).collect();
    if m.header.format == Format::Mbox {
        listed.extend(
            m.folders.iter().map(|f| {
                crate::write::folder_path(root, m.header.format, m.header.layout, &f.folder)
            }),
        );
    }
    let mut files = Vec::new();
    crate::write::collect_files(root, &mut files, 0);
    files.sort();
    let skipped = files
        .into_iter()
        .filter(|p| !listed.contains(p))
        .map(|p| Skipped {
            why: format!(
                "{}: in the archive's directory but not in its manifest: not imported (`trasloco archive verify` lists it)",
                p.display()
            ),
            path: p,
            unreadable: false,
        })
        .collect();
    let mut folders: Vec<Folder> = m
        .folders
        .iter()
        .map(|f| Folder {
            name: f.folder.clone(),
            subscribed: f.subscribed,
            items: Vec::new(),
        })
        .collect();
    for e in m.entries {
        let folder = e.folder.clone();
        let item = item_of(root, e);
        match folders.iter_mut().find(|f| f.name == folder) {
            Some(f) => f.items.push(item),
            None => folders.push(Folder {
                name: folder,
                subscribed: true,
                items: vec![item],
            }),
        }
    }
    Archive {
        root: root.to_path_buf(),
        format: m.header.format,
        has_manifest: true,
        folders,
        skipped,
    }
}

/// Whether a line (without its end) can start an mbox entry: `From `, a sender, and an asctime
/// date (a time and a year). Body lines that merely start with "From " do not.
pub(crate) fn is_from_line(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"From ") else {
        return false;
    };
    let s = String::from_utf8_lossy(rest);
    let words: Vec<&str> = s.split_whitespace().collect();
    let time = words.iter().any(|w| {
        let p: Vec<&str> = w.split(':').collect();
        (2..=3).contains(&p.len())
            && p.iter()
                .all(|x| !x.is_empty() && x.len() <= 2 && x.bytes().all(|b| b.is_ascii_digit()))
    });
    let year = words
        .iter()
        .any(|w| w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit()));
    words.len() >= 3 && time && year
}

/// List the messages of one mbox file. An entry starts at a `From ` line at the start of the
/// file or after an empty line; its last empty line is the separator, not part of the message.
fn scan_mbox(path: &Path) -> Result<Vec<Item>, Error> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut r = BufReader::with_capacity(256 * 1024, f);
    let mut items: Vec<Item> = Vec::new();
    let mut line = Vec::new();
    let mut pos = 0u64;
    let mut prev_blank = true;
    // The entry being read: start of content, its header bytes (for flags), CRLF size so far,
    // and the last line's position and contribution (dropped when it is the separator).
    struct Cur {
        from_date: Option<String>,
        start: u64,
        head: Vec<u8>,
        in_head: bool,
        size: u64,
        last: Option<(u64, u64, bool)>,
        end: u64,
    }
    let mut cur: Option<Cur> = None;
    let mut ended_with_newline = true;
    let finish = |c: Cur, items: &mut Vec<Item>, truncated: Option<String>| {
        let (mut end, mut size) = (c.end, c.size);
        if let Some((at, contribution, blank)) = c.last
            && blank
        {
            end = at;
            size -= contribution;
        }
        items.push(Item {
            key: c.start.to_string(),
            size,
            flags: flags::from_mbox_headers(&c.head),
            // A `From ` line without a readable date: the `Date:` header, before the import
            // time.
            internal_date: c.from_date.or_else(|| {
                dates::header(&c.head, "Date")
                    .and_then(|d| dates::lenient_rfc5322(&d))
                    .map(|t| dates::format_imap(&t))
            }),
            sha256: None,
            problem: truncated,
            warning: None,
            source_id: None,
            lf: None,
            loc: Loc::Span {
                path: path.to_path_buf(),
                offset: c.start,
                length: end - c.start,
                prefix: 0,
            },
        });
    };
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(path, e))? as u64;
        if n == 0 {
            break;
        }
        ended_with_newline = line.ends_with(b"\n");
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if prev_blank && is_from_line(body) {
            if let Some(c) = cur.take() {
                finish(c, &mut items, None);
            }
            cur = Some(Cur {
                from_date: dates::from_line_date(&String::from_utf8_lossy(body)),
                start: pos + n,
                head: Vec::new(),
                in_head: true,
                size: 0,
                last: None,
                end: pos + n,
            });
        } else if let Some(c) = cur.as_mut() {
            let unquoted = lines::mboxrd_unquote(&line);
            let contribution = lines::crlf_size(&unquoted);
            if c.in_head {
                if body.is_empty() {
                    c.in_head = false;
                } else if c.head.len() < 64 * 1024 {
                    c.head.extend_from_slice(&line);
                }
            }
            c.size += contribution;
            c.last = Some((pos, contribution, body.is_empty()));
            c.end = pos + n;
        } else {
            return Err(Error::new(format!(
                "{} byte offset {pos}: not an mbox file (expected a line starting with \"From \" and a date); a single message is read as one when its first line is a header field or its name ends in .eml",
                path.display()
            )));
        }
        prev_blank = body.is_empty();
        pos += n;
    }
    if let Some(c) = cur {
        let truncated = (!ended_with_newline).then(|| {
            format!(
                "{} byte offset {}: the last message is truncated (the file ends at byte {pos} in the middle of a line)",
                path.display(),
                c.start
            )
        });
        // Every mbox message ends with a blank line; a last one without it may have been cut
        // at a line end: read, and said.
        let unterminated = ended_with_newline && c.last.is_some_and(|(_, _, blank)| !blank);
        let start = c.start;
        finish(c, &mut items, truncated);
        if unterminated && let Some(last) = items.last_mut() {
            last.warning = Some(format!(
                "{} byte offset {start}: the last message does not end with the blank line mbox requires: the file may have been cut; it is imported as it is, and replaced if the file is completed",
                path.display()
            ));
        }
    }
    Ok(items)
}

fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() || dir.join("new").is_dir()
}

/// Dovecot's `dovecot-keywords`: `N keyword` lines, letter `a + N`.
pub(crate) fn read_keywords(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Ok(s) = std::fs::read_to_string(dir.join("dovecot-keywords")) {
        for l in s.lines() {
            if let Some((n, k)) = l.split_once(' ')
                && let Ok(n) = n.parse::<usize>()
                && n < 26
            {
                if out.len() <= n {
                    out.resize(n + 1, String::new());
                }
                out[n] = k.to_string();
            }
        }
    }
    out
}

fn maildir_items(dir: &Path) -> Result<Vec<Item>, Error> {
    let keywords = read_keywords(dir);
    let mut files: Vec<(String, PathBuf, bool)> = Vec::new();
    for sub in ["cur", "new"] {
        let d = dir.join(sub);
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let e = e.map_err(|e| Error::io(&d, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !e.path().is_file() {
                continue;
            }
            files.push((name, e.path(), sub == "new"));
        }
    }
    files.sort();
    let mut items = Vec::with_capacity(files.len());
    for (name, path, new) in files {
        let base = name.split(':').next().unwrap_or(&name).to_string();
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        // Dovecot's W= is the CRLF size; otherwise the file is read to count line ends.
        let size = match base
            .split(',')
            .find_map(|p| p.strip_prefix("W=").and_then(|v| v.parse::<u64>().ok()))
        {
            Some(w) => w,
            None => lines::crlf_size(&std::fs::read(&path).map_err(|e| Error::io(&path, e))?),
        };
        items.push(Item {
            key: base,
            size,
            flags: if new {
                Vec::new()
            } else {
                flags::from_maildir_name(&name, &keywords)
            },
            internal_date: meta.modified().ok().map(dates::imap_from_system),
            sha256: None,
            problem: None,
            warning: None,
            source_id: None,
            lf: None,
            loc: Loc::File { path },
        });
    }
    Ok(items)
}

/// A Maildir: the root is INBOX; folders are Maildir++ `.A.B` directories or nested `A/B`.
fn scan_maildir(root: &Path) -> Result<Archive, Error> {
    let mut folders = vec![Folder {
        name: "INBOX".into(),
        subscribed: true,
        items: maildir_items(root)?,
    }];
    let mut dirs: Vec<(String, PathBuf)> = Vec::new();
    let rd = std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    let mut plus = false;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix('.')
            && !rest.is_empty()
            && rest != "."
            && is_maildir(&e.path())
        {
            plus = true;
            let folder: Vec<String> = rest
                .split('.')
                .map(|c| component_from_disk(c, Format::Maildir))
                .collect();
            dirs.push((folder.join("/"), e.path()));
        }
    }
    if !plus {
        fs_folders(root, root, &mut dirs, 0)?;
    }
    dirs.sort();
    for (name, dir) in dirs {
        folders.push(Folder {
            name,
            subscribed: true,
            items: maildir_items(&dir)?,
        });
    }
    Ok(Archive {
        root: root.to_path_buf(),
        format: Format::Maildir,
        has_manifest: false,
        folders,
        skipped: Vec::new(),
    })
}

fn fs_folders(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
    depth: usize,
) -> Result<(), Error> {
    if depth > 32 {
        return Ok(());
    }
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        if !p.is_dir() || name.starts_with('.') || ["cur", "new", "tmp"].contains(&name.as_str()) {
            continue;
        }
        if is_maildir(&p) {
            out.push((folder_name(root, &p, Format::Maildir, ""), p.clone()));
        }
        fs_folders(root, &p, out, depth + 1)?;
    }
    Ok(())
}

/// Folder name of `path` relative to `root`, each component decoded, `suffix` dropped from
/// each component (e.g. `.sbd`).
fn folder_name(root: &Path, path: &Path, format: Format, suffix: &str) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<String> = rel
        .components()
        .map(|c| {
            let s = c.as_os_str().to_string_lossy();
            let s = s.strip_suffix(suffix).unwrap_or(&s).to_string();
            component_from_disk(&s, format)
        })
        .collect();
    if parts.is_empty() {
        "INBOX".into()
    } else {
        parts.join("/")
    }
}

#[derive(Default)]
struct Found {
    eml: Vec<(String, PathBuf)>,
    mbox: Vec<(String, PathBuf)>,
    /// Files that are not mail.
    skipped: Vec<Skipped>,
}

/// Look for `.eml` files and mbox files under `dir`.
fn walk(root: &Path, dir: &Path, found: &mut Found, depth: usize) -> Result<(), Error> {
    if depth > 32 {
        return Ok(());
    }
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if p.is_dir() {
            // Apple Mail: `Name.mbox/mbox` is the folder Name.
            let apple = p.join("mbox");
            if lower.ends_with(".mbox") && apple.is_file() {
                let folder = folder_name(root, &p, Format::Mbox, ".mbox");
                found.mbox.push((folder, apple));
            }
            walk(root, &p, found, depth + 1)?;
            continue;
        }
        if lower.ends_with(".eml") {
            let folder = match p.parent() {
                Some(d) if d != root => folder_name(root, d, Format::Eml, ""),
                _ => "INBOX".into(),
            };
            found.eml.push((folder, p));
            continue;
        }
        let skip = [".msf", ".dat", ".json", ".jsonl", ".plist", ".txt", ".html"];
        if skip.iter().any(|s| lower.ends_with(s)) || name == "mbox" {
            continue;
        }
        let mbox_named = lower.ends_with(".mbox") || lower.ends_with(".mbx");
        // An empty file is an empty folder (Thunderbird keeps one for every folder).
        let empty = std::fs::metadata(&p).is_ok_and(|m| m.len() == 0);
        if mbox_named || empty || starts_like_mbox(&p) {
            // Thunderbird keeps the children of `Name` in `Name.sbd/`.
            let mut folder = folder_name(root, &p, Format::Mbox, ".sbd");
            for ext in [".mbox", ".mbx"] {
                if folder.to_ascii_lowercase().ends_with(ext) {
                    folder.truncate(folder.len() - ext.len());
                }
            }
            found.mbox.push((folder, p));
        } else {
            found.skipped.push(Skipped {
                why: format!(
                    "{}: not mail: no \"From \" line at its start (mbox) and not named .eml",
                    p.display()
                ),
                path: p,
                unreadable: false,
            });
        }
    }
    Ok(())
}

/// Whether a file starts as a single message does: a header field (`Name: value`) on its
/// first line. Such a file without the `.eml` name is still read as one message.
fn looks_like_a_message(p: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(n) = File::open(p).and_then(|mut f| f.read(&mut head)) else {
        return false;
    };
    let first = head[..n].split(|&b| b == b'\n').next().unwrap_or(&[]);
    match first.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => first[..colon]
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b':'),
        _ => false,
    }
}

fn starts_like_mbox(p: &Path) -> bool {
    let mut head = [0u8; 5];
    File::open(p)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"From "
}

fn eml_item(root: &Path, path: &Path) -> Result<Item, Error> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let date = dates::header(&raw, "Date")
        .and_then(|d| dates::parse_rfc5322(&d))
        .map(|d| dates::format_imap(&d))
        .or_else(|| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .map(dates::imap_from_system)
        });
    let key = path
        .strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    Ok(Item {
        key,
        size: lines::crlf_size(&raw),
        flags: Vec::new(),
        internal_date: date,
        sha256: None,
        problem: None,
        warning: None,
        source_id: None,
        lf: None,
        loc: Loc::File {
            path: path.to_path_buf(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lines_are_recognised() {
        assert!(is_from_line(b"From MAILER-DAEMON Tue Mar  5 07:07:06 2019"));
        assert!(is_from_line(b"From a@b.c Sat Jan  3 01:05:34 1996 +0100"));
        assert!(!is_from_line(b"From here on we talk about 2019"));
        assert!(!is_from_line(b"From: alice"));
    }

    fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }

    #[test]
    fn foreign_mbox_with_from_in_bodies() {
        let d = tempfile::tempdir().unwrap();
        let data = b"From a@b Sat Jan  3 01:05:34 1996\nStatus: RO\nSubject: one\n\nFrom here on, a body line.\n\nFrom the start of a paragraph too.\n>From quoted\n\nFrom b@c Sun Jan  4 01:05:34 1996\nSubject: two\n\nbody\n";
        let p = write(d.path(), "Inbox", data);
        let items = scan_mbox(&p).unwrap();
        assert_eq!(items.len(), 2);
        let a = Archive {
            root: p.clone(),
            format: Format::Mbox,
            has_manifest: false,
            folders: vec![],
            skipped: Vec::new(),
        };
        let one = a.read(&items[0]).unwrap();
        assert_eq!(
            one,
            b"Status: RO\r\nSubject: one\r\n\r\nFrom here on, a body line.\r\n\r\nFrom the start of a paragraph too.\r\nFrom quoted\r\n"
        );
        assert_eq!(items[0].size, one.len() as u64);
        assert_eq!(items[0].flags, vec!["\\Seen"]);
        assert_eq!(
            items[0].internal_date.as_deref(),
            Some("03-Jan-1996 01:05:34 +0000")
        );
        assert_eq!(a.read(&items[1]).unwrap(), b"Subject: two\r\n\r\nbody\r\n");
    }

    #[test]
    fn old_from_lines_give_their_date_and_the_date_header_is_next() {
        let d = tempfile::tempdir().unwrap();
        let data = b"From x Wed Feb  9 22:02 MET 2000\nSubject: one\n\nbody\n\nFrom y Tue Feb 30 10:00:00 1999\nDate: Mon, 8 Feb 1999 10:00:00 +0100\nSubject: two\n\nbody\n";
        let p = write(d.path(), "old.mbox", data);
        let items = scan_mbox(&p).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0].internal_date.as_deref(),
            Some("09-Feb-2000 22:02:00 +0100")
        );
        // No such day as 30 February: the Date: header (its weekday wrong too) decides.
        assert_eq!(
            items[1].internal_date.as_deref(),
            Some("08-Feb-1999 10:00:00 +0100")
        );
    }

    #[test]
    fn crlf_mbox_files_read_the_same() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "crlf.mbox",
            b"From a@b Sat Jan  3 01:05:34 1996\r\nSubject: one\r\n\r\nbody\r\n\r\nFrom a@b Sat Jan  3 01:05:35 1996\r\nSubject: two\r\n\r\nx\r\n",
        );
        let items = scan_mbox(&p).unwrap();
        assert_eq!(items.len(), 2);
        let a = Archive::open(&p).unwrap();
        let one = a.read(&a.folders[0].items[0]).unwrap();
        assert_eq!(one, b"Subject: one\r\n\r\nbody\r\n");
        assert_eq!(items[0].size, one.len() as u64);
    }

    #[test]
    fn truncated_and_non_mbox_files() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "cut",
            b"From a@b Sat Jan  3 01:05:34 1996\nSubject: one\n\nok\n\nFrom a@b Sat Jan  3 01:05:34 1996\nSubject: two\n\nhalf a li",
        );
        let items = scan_mbox(&p).unwrap();
        assert_eq!(items.len(), 2);
        assert!(items[0].problem.is_none());
        let why = items[1].problem.as_deref().unwrap();
        assert!(
            why.contains("byte offset 86") && why.contains("truncated"),
            "{why}"
        );
        let q = write(d.path(), "notes.bin", b"\x89PNG\r\n");
        let e = Archive::open(&q).unwrap_err().message;
        assert!(
            e.contains("byte offset 0") && e.contains("not an mbox"),
            "{e}"
        );
    }

    #[test]
    fn maildir_with_odd_names() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "cur/1000.a.host:2,S", b"Subject: a\n\nx\n");
        write(r, "cur/1001.b.host", b"Subject: b\n\nx\n"); // no info part
        write(r, "cur/1002.c.host,S=5,W=99:2,RXab", b"Subject: c\n\nx\n");
        write(r, "new/1003.d.host", b"Subject: d\n\nx\n");
        write(r, "tmp/1004.e.host", b"partial");
        write(r, "dovecot-keywords", b"0 $Label1\n1 Lavoro\n");
        write(r, ".Posta inviata.2024/cur/1.x:2,S", b"Subject: s\n\nx\n");
        let a = Archive::open(r).unwrap();
        assert_eq!(a.format, Format::Maildir);
        let names: Vec<&str> = a.folders.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["INBOX", "Posta inviata/2024"]);
        let inbox = &a.folders[0].items;
        assert_eq!(inbox.len(), 4, "tmp/ is not mail yet");
        assert_eq!(inbox[0].flags, vec!["\\Seen"]);
        assert!(inbox[1].flags.is_empty());
        assert_eq!(inbox[2].flags, vec!["\\Answered", "$Label1", "Lavoro"]);
        assert_eq!(inbox[2].size, 99, "W= is trusted as the CRLF size");
        assert!(inbox[3].flags.is_empty());
        assert_eq!(a.read(&inbox[0]).unwrap(), b"Subject: a\r\n\r\nx\r\n");
    }

    #[test]
    fn thunderbird_and_apple_trees() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let m = b"From a@b Sat Jan  3 01:05:34 1996\nSubject: x\n\nx\n";
        write(r, "Inbox", m);
        write(r, "Inbox.msf", b"// index");
        write(r, "Archivio.sbd/2019", m);
        write(r, "Lavoro.mbox/mbox", m);
        write(r, "Lavoro.mbox/Info.plist", b"<plist/>");
        let a = Archive::open(r).unwrap();
        let mut names: Vec<&str> = a.folders.iter().map(|f| f.name.as_str()).collect();
        names.sort();
        assert_eq!(names, vec!["Archivio/2019", "Inbox", "Lavoro"]);
    }
}
