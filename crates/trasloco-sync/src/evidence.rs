//! PEC messages as evidence during a copy: each PEC message's signature is checked on the
//! source bytes before upload and on the target copy read back after, a different verdict
//! fails that message, and every checked message gets a line in an evidence manifest
//! (JSON lines) that an auditor can check against the target later
//! (`trasloco pec verify-manifest`).

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use trasloco_pec::{SignatureStatus, TrustStore};

/// Checks PEC messages and writes the evidence manifest.
pub struct PecEvidence {
    trust: TrustStore,
    manifest: Option<PathBuf>,
    file: Mutex<Option<std::fs::File>>,
}

impl std::fmt::Debug for PecEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PecEvidence")
            .field("manifest", &self.manifest)
            .finish()
    }
}

/// The source side of a PEC message: its type, transaction id and signature verdict.
#[derive(Debug, Clone)]
pub(crate) struct Before {
    pub kind: &'static str,
    pub identificativo: Option<String>,
    pub status: SignatureStatus,
}

/// One line of the evidence manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceLine {
    /// When the copy was checked (RFC 3339).
    pub checked_at: String,
    /// Source account.
    pub source: String,
    /// Target account.
    pub target: String,
    /// Source folder.
    pub folder: String,
    /// Target folder.
    pub target_folder: String,
    /// Source UID.
    pub source_uid: u32,
    /// Target UID.
    pub target_uid: u32,
    /// PEC type.
    pub kind: String,
    /// The transaction's PEC id.
    pub identificativo: Option<String>,
    /// SHA-256 of the bytes (the same on both sides, or the message failed).
    pub sha256: String,
    /// Signature verdict on the source bytes.
    pub before: String,
    /// Signature verdict on the target copy (`same-bytes` when a large message was compared
    /// by SHA-256 only).
    pub after: String,
    /// The source file (and byte offset in an mbox) when the source is an archive, where
    /// `source_uid` is only a position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_file: Option<String>,
    /// The target server's port (with `target`'s host and account: where it was checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u16>,
    /// The target folder's UIDVALIDITY when it was checked: `target_uid` means something only
    /// under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_uid_validity: Option<u32>,
}

impl PecEvidence {
    /// Check against `trust`; append manifest lines to `manifest` when given.
    pub fn new(trust: TrustStore, manifest: Option<PathBuf>) -> PecEvidence {
        PecEvidence {
            trust,
            manifest,
            file: Mutex::new(None),
        }
    }

    /// The trust anchors.
    pub fn trust(&self) -> &TrustStore {
        &self.trust
    }

    /// The source verdict, for PEC messages only (a cheap header look decides).
    pub(crate) fn before(&self, body: &[u8]) -> Option<Before> {
        if !trasloco_pec::might_be_pec(body) {
            return None;
        }
        // The same examination as `pec report`: one classifier, one verdict.
        let e = trasloco_pec::examine(body, &self.trust);
        let c = e.classified;
        if !c.kind.is_pec() {
            return None;
        }
        Some(Before {
            kind: c.kind.name(),
            identificativo: c.daticert.and_then(|d| d.identificativo),
            status: e.signature.status,
        })
    }

    /// The verdict on the target copy.
    pub(crate) fn after(&self, body: &[u8]) -> SignatureStatus {
        trasloco_pec::examine(body, &self.trust).signature.status
    }

    /// Append a line to the manifest (opened on first use). False when it could not be
    /// written: the copy then has no evidence and is not counted as verified.
    pub(crate) fn write(&self, line: &EvidenceLine) -> bool {
        let Some(path) = &self.manifest else {
            return true;
        };
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if file.is_none() {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(f) => *file = Some(f),
                Err(e) => {
                    tracing::error!(
                        "cannot write the PEC evidence manifest {}: {}",
                        path.display(),
                        trasloco_core::words::io_error(&e)
                    );
                    return false;
                }
            }
        }
        let written = match (file.as_mut(), serde_json::to_string(line)) {
            (Some(f), Ok(json)) => writeln!(f, "{json}").and_then(|()| f.flush()),
            _ => Err(std::io::Error::other("the line could not be formed")),
        };
        if let Err(e) = &written {
            tracing::error!(
                "cannot write the PEC evidence manifest {}: {}",
                path.display(),
                trasloco_core::words::io_error(e)
            );
        }
        written.is_ok()
    }
}

/// Header bytes looked at, at most, to tell a streamed message's kind.
const SNIFF_LIMIT: usize = 1024 * 1024;

/// Tells whether a message that arrives in pieces is a PEC message, and keeps it whole if so.
/// The decision is taken on the whole header (up to the blank line that ends it), never on a
/// first piece that may end anywhere: a piece boundary inside the header once hid a PEC
/// message's `X-Trasporto` and left it without its evidence line.
pub(crate) struct Sniff {
    /// Still undecided: the bytes so far.
    head: Option<Vec<u8>>,
    /// A PEC message: the whole of it so far.
    whole: Option<Vec<u8>>,
    size: usize,
}

impl Sniff {
    /// `on`: PEC checks are wanted at all; `size`: the message's size.
    pub(crate) fn new(on: bool, size: u64) -> Sniff {
        Sniff {
            head: on.then(Vec::new),
            whole: None,
            size: size as usize,
        }
    }

    /// The next piece.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        if let Some(w) = self.whole.as_mut() {
            w.extend_from_slice(chunk);
            return;
        }
        let Some(h) = self.head.as_mut() else {
            return;
        };
        h.extend_from_slice(chunk);
        let ended = memchr::memmem::find(h, b"\r\n\r\n").is_some()
            || memchr::memmem::find(h, b"\n\n").is_some();
        if ended || h.len() > SNIFF_LIMIT {
            self.decide();
        }
    }

    fn decide(&mut self) {
        if let Some(h) = self.head.take()
            && trasloco_pec::might_be_pec(&h)
        {
            let mut w = Vec::with_capacity(self.size.max(h.len()));
            w.extend_from_slice(&h);
            self.whole = Some(w);
        }
    }

    /// The whole message when it is a PEC message (or looks like one).
    pub(crate) fn finish(mut self) -> Option<Vec<u8>> {
        self.decide();
        self.whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(source_uid: u32, target_uid: u32, at: &str) -> EvidenceLine {
        EvidenceLine {
            checked_at: at.into(),
            source: "a@old".into(),
            target: "a@new".into(),
            folder: "INBOX".into(),
            target_folder: "INBOX".into(),
            source_uid,
            target_uid,
            kind: "acceptance".into(),
            identificativo: None,
            sha256: "ab".into(),
            before: "valid".into(),
            after: "valid".into(),
            source_file: None,
            target_port: Some(993),
            target_uid_validity: Some(7),
        }
    }

    #[test]
    fn a_later_line_for_the_same_message_supersedes_the_earlier() {
        let lines = vec![
            line(1, 1, "t1"),
            line(2, 2, "t1"),
            // UID 1 expunged on the target and copied again by a repairing run.
            line(1, 3, "t2"),
        ];
        let (kept, superseded) = latest_lines(&lines);
        assert_eq!(superseded, 1);
        assert_eq!(kept, vec![line(2, 2, "t1"), line(1, 3, "t2")]);
        let (kept, superseded) = latest_lines(&[]);
        assert!(kept.is_empty() && superseded == 0);
    }

    #[test]
    fn a_pec_header_split_anywhere_is_still_recognised() {
        let mut msg = Vec::new();
        for i in 0..500 {
            msg.extend_from_slice(
                format!("Received: from relay{i}.example by mx.example; Tue, 1 Dec 2026\r\n")
                    .as_bytes(),
            );
        }
        msg.extend_from_slice(b"X-Trasporto: posta-certificata\r\nSubject: x\r\n\r\nbody\r\n");
        for piece in [1, 7, 100, 4096, 65536, msg.len()] {
            let mut s = Sniff::new(true, msg.len() as u64);
            for c in msg.chunks(piece) {
                s.feed(c);
            }
            assert_eq!(s.finish().as_deref(), Some(&msg[..]), "pieces of {piece}");
        }
        let plain = b"Subject: x\r\n\r\nX-Trasporto: in the body\r\n";
        let mut s = Sniff::new(true, plain.len() as u64);
        for c in plain.chunks(3) {
            s.feed(c);
        }
        assert_eq!(s.finish(), None);
        let mut off = Sniff::new(false, msg.len() as u64);
        off.feed(&msg);
        assert_eq!(off.finish(), None);
    }
}

/// One manifest line checked against the target now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineCheck {
    /// The line.
    pub line: EvidenceLine,
    /// None when the copy is still exactly as recorded; else what differs.
    pub problem: Option<String>,
    /// The signature verdict on the copy now, when it was found.
    pub verdict_now: Option<String>,
}

/// The lines that count: for each message (by its source account, folder and UID and its
/// target account and folder), the latest line; earlier ones are history, kept in the file
/// but not judged. Returns them in file order, and how many were superseded.
pub fn latest_lines(lines: &[EvidenceLine]) -> (Vec<EvidenceLine>, usize) {
    let key = |l: &EvidenceLine| {
        (
            l.source.clone(),
            l.folder.clone(),
            l.source_uid,
            l.target.clone(),
            l.target_folder.clone(),
        )
    };
    let mut last: std::collections::HashMap<_, usize> = Default::default();
    for (i, l) in lines.iter().enumerate() {
        last.insert(key(l), i);
    }
    let kept: Vec<EvidenceLine> = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| last.get(&key(l)) == Some(i))
        .map(|(_, l)| l.clone())
        .collect();
    let superseded = lines.len() - kept.len();
    (kept, superseded)
}

/// Check manifest lines against the target copies now: the line was recorded on this server
/// (host, account, port), the folder's UIDVALIDITY is the recorded one, the message is still
/// at its UID, its SHA-256 is the recorded one, and its signature verdict is the recorded one.
/// Whatever differs is said, with the signature's verdict now.
pub async fn check_manifest(
    target: &crate::Side,
    lines: &[EvidenceLine],
    trust: &TrustStore,
) -> Result<Vec<LineCheck>, crate::Failure> {
    use crate::mailbox::{OnSide, SideName, SyncError, connect};
    use sha2::Digest;
    let label = target.label();
    let port = target.endpoint.port;
    let run = async {
        let mut tgt = connect(target, SideName::Target).await?;
        let mut by_folder: std::collections::BTreeMap<&str, Vec<&EvidenceLine>> =
            Default::default();
        for l in lines {
            by_folder
                .entry(l.target_folder.as_str())
                .or_default()
                .push(l);
        }
        let mut out = Vec::with_capacity(lines.len());
        for (folder, ls) in by_folder {
            let mut bodies: std::collections::HashMap<u32, (String, SignatureStatus)> =
                Default::default();
            let mut uid_validity = None;
            match tgt.select(folder, true).await {
                Ok(sel) => {
                    uid_validity = Some(sel.uid_validity);
                    let uids: Vec<u32> = ls.iter().map(|l| l.target_uid).collect();
                    tgt.fetch_bodies(&uids, &mut |uid, b| {
                        let sha = hex::encode(sha2::Sha256::digest(&b));
                        let status = trasloco_pec::examine(&b, trust).signature.status;
                        bodies.insert(uid, (sha, status));
                    })
                    .await
                    .on(SideName::Target)?;
                }
                Err(e) if e.kind == trasloco_imap::ErrorKind::Refused => {}
                Err(e) => {
                    return Err(SyncError::Imap {
                        side: SideName::Target,
                        error: e,
                    });
                }
            }
            for l in ls {
                let found = bodies.get(&l.target_uid);
                let verdict_now = found.map(|(_, s)| s.name().to_string());
                let problem = match (l.target_port, l.target_uid_validity, found) {
                    (Some(p), _, _) if p != port => Some(format!(
                        "recorded on {} port {p}, checked against port {port}: another server",
                        l.target
                    )),
                    (_, Some(recorded), _) if uid_validity.is_some_and(|u| u != recorded) => {
                        Some(format!(
                            "folder {:?} has UIDVALIDITY {} now, recorded {recorded}: its UIDs no longer name the recorded messages",
                            l.target_folder,
                            uid_validity.unwrap_or_default()
                        ))
                    }
                    (_, _, None) => Some(format!(
                        "not found: folder {:?} has no UID {}",
                        l.target_folder, l.target_uid
                    )),
                    (_, _, Some((sha, status))) if *sha != l.sha256 => Some(format!(
                        "bytes differ (SHA-256 {sha}, recorded {}); the signature is {} now (recorded {})",
                        l.sha256,
                        status.name(),
                        l.after
                    )),
                    (_, _, Some((_, status)))
                        if l.after != "same-bytes" && status.name() != l.after =>
                    {
                        Some(format!(
                            "signature is {} now, recorded {}",
                            status.name(),
                            l.after
                        ))
                    }
                    _ => None,
                };
                out.push(LineCheck {
                    line: l.clone(),
                    problem,
                    verdict_now,
                });
            }
        }
        tgt.logout().await;
        Ok::<_, SyncError>(out)
    };
    run.await.map_err(|e| e.describe("", &label))
}
