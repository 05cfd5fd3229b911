//! Where messages come from: an IMAP server, a POP3 server or a local archive. The folder and
//! mailbox algorithms see one interface; only IMAP can stream a message straight into the
//! target, the others hand whole messages to the batches.

use crate::mailbox::Side;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use trasloco_archive::Archive;
use trasloco_core::folder_map::{Folder, Role};
use trasloco_imap::{
    Client, Error, ErrorKind, FetchedMeta, ListEntry, Listing, Statuses, UidWindow,
};
use trasloco_pop3::Pop3;
use trasloco_state::State;

/// A mailbox to read from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An IMAP server.
    Imap(Side),
    /// A POP3 server: one folder, INBOX.
    Pop3(Side),
    /// A local archive, opened (and so checked) before the run starts.
    Archive(Arc<Archive>),
}

impl Source {
    /// How reports and the state name it; never includes a secret.
    pub fn label(&self) -> String {
        match self {
            Source::Imap(s) => s.label(),
            Source::Pop3(s) => format!("pop3:{}", s.label()),
            Source::Archive(a) => format!("{}:{}", a.format, a.root.display()),
        }
    }
}

/// Per-message outcome of reading bodies: the bytes, or why they could not be read.
pub(crate) type BodySink<'a> = dyn FnMut(u32, Result<Bytes, String>) + Send + 'a;

pub(crate) struct Pop3Conn {
    pop: Pop3,
    state: State,
    mailbox_id: Option<i64>,
    assign: bool,
    seen: bool,
    /// UID → message number in this session.
    numbers: HashMap<u32, u32>,
    /// UID → size as listed.
    sizes: HashMap<u32, u64>,
}

pub(crate) struct ArchiveConn {
    archive: Arc<Archive>,
    selected: Option<usize>,
}

/// An open source.
pub(crate) enum SourceConn {
    Imap(Box<Client>),
    Pop3(Box<Pop3Conn>),
    Archive(ArchiveConn),
}

/// A POP3 message's received date, from its header block, in IMAP form.
pub(crate) fn received_date(head: &[u8]) -> Option<String> {
    trasloco_archive::dates::received(head).map(|t| trasloco_archive::dates::format_imap(&t))
}

fn folders_of_imap(
    list: &[trasloco_imap::ListEntry],
    subscribed: &BTreeSet<String>,
) -> Vec<Folder> {
    list.iter()
        .filter(|e| {
            !e.attributes
                .iter()
                .any(|a| a.eq_ignore_ascii_case("\\NonExistent"))
        })
        .map(|e| Folder {
            name: e.name.clone(),
            delimiter: e.delimiter,
            declared_role: e.attributes.iter().find_map(|a| Role::from_attribute(a)),
            selectable: !e
                .attributes
                .iter()
                .any(|a| a.eq_ignore_ascii_case("\\Noselect")),
            subscribed: subscribed.contains(&e.name),
        })
        .collect()
}

/// IMAP folders as the mapping wants them: listed, with subscriptions.
pub(crate) async fn imap_folders(
    c: &mut Client,
) -> Result<(Vec<Folder>, BTreeSet<String>, Option<char>), Error> {
    let (list, subs) = c.list_and_lsub().await?;
    Ok(folders_and_subscriptions(&list, subs))
}

/// As [`imap_folders`], with every folder's STATUS where the server keeps modification
/// sequences (see `Client::list_and_lsub_status`).
pub(crate) async fn imap_folders_status(
    c: &mut Client,
) -> Result<(Vec<Folder>, BTreeSet<String>, Option<char>, Statuses), Error> {
    let (list, subs, statuses) = c.list_and_lsub_status().await?;
    let (folders, subs, delim) = folders_and_subscriptions(&list, subs);
    Ok((folders, subs, delim, statuses))
}

fn folders_and_subscriptions(
    list: &[ListEntry],
    subs: Vec<String>,
) -> (Vec<Folder>, BTreeSet<String>, Option<char>) {
    let subs: BTreeSet<String> = subs.into_iter().collect();
    let delim = list.iter().find_map(|e| e.delimiter);
    (folders_of_imap(list, &subs), subs, delim)
}

fn uid_validity_of(keys: impl Iterator<Item = String>) -> u32 {
    let mut h = Sha256::new();
    for k in keys {
        h.update(k.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) | 1
}

fn archive_error(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Protocol, e.to_string())
}

impl SourceConn {
    /// Connect and log in. POP3 UIDs are assigned in `state` under `mailbox_id` (not stored when
    /// `assign` is false, for dry runs).
    pub(crate) async fn open(
        source: &Source,
        state: &State,
        mailbox_id: Option<i64>,
        assign: bool,
        pop3_seen: bool,
    ) -> Result<SourceConn, Error> {
        Ok(match source {
            Source::Imap(side) => {
                let mut c = Client::connect(&side.endpoint, &side.tls).await?;
                c.login(&side.credentials).await?;
                SourceConn::Imap(Box::new(c))
            }
            Source::Pop3(side) => {
                let mut pop = Pop3::connect(&side.endpoint, &side.tls).await?;
                pop.login(&side.credentials).await?;
                SourceConn::Pop3(Box::new(Pop3Conn {
                    pop,
                    state: state.clone(),
                    mailbox_id,
                    assign,
                    seen: pop3_seen,
                    numbers: HashMap::new(),
                    sizes: HashMap::new(),
                }))
            }
            Source::Archive(a) => SourceConn::Archive(ArchiveConn {
                archive: a.clone(),
                selected: None,
            }),
        })
    }

    /// Open a source only to read it: nothing is stored (POP3 UIDs are numbered for this look
    /// only), and a failure comes back described, naming the source.
    pub(crate) async fn read_only(
        source: &Source,
        state: &State,
    ) -> Result<SourceConn, crate::Failure> {
        use crate::mailbox::{OnSide, SideName};
        SourceConn::open(source, state, None, false, true)
            .await
            .on(SideName::Source)
            .map_err(|e| e.describe(&source.label(), ""))
    }

    /// Whether the source is a local archive (whose messages can change under a UID: an mbox
    /// whose cut last message was completed).
    pub(crate) fn is_archive(&self) -> bool {
        matches!(self, SourceConn::Archive(_))
    }

    /// Where a message of the folder last opened is, when the source is an archive: its file
    /// (and byte offset in an mbox), which names it better than a position.
    pub(crate) fn place(&self, uid: u32) -> Option<String> {
        match self {
            SourceConn::Archive(a) => {
                let f = &a.archive.folders[a.selected?];
                f.items
                    .get((uid as usize).checked_sub(1)?)
                    .map(|i| i.place())
            }
            _ => None,
        }
    }

    /// The IMAP client when the source is IMAP: only IMAP streams large messages piece by piece.
    /// Whether its OAuth2 token is due for renewal (an IMAP source that logged in with one).
    pub(crate) fn token_due(&self) -> bool {
        matches!(self, SourceConn::Imap(c) if c.token_due())
    }

    pub(crate) fn client(&mut self) -> Option<&mut Client> {
        match self {
            SourceConn::Imap(c) => Some(c),
            _ => None,
        }
    }

    /// The source's folders, and their STATUS where an IMAP source keeps modification
    /// sequences (empty otherwise).
    pub(crate) async fn folders_and_status(&mut self) -> Result<(Vec<Folder>, Statuses), Error> {
        match self {
            SourceConn::Imap(c) => {
                let (folders, _, _, statuses) = imap_folders_status(c).await?;
                Ok((folders, statuses))
            }
            _ => Ok((self.folders().await?, Statuses::new())),
        }
    }

    /// The source's folders.
    pub(crate) async fn folders(&mut self) -> Result<Vec<Folder>, Error> {
        Ok(match self {
            SourceConn::Imap(c) => imap_folders(c).await?.0,
            SourceConn::Pop3(_) => vec![Folder {
                name: "INBOX".into(),
                delimiter: None,
                declared_role: None,
                selectable: true,
                subscribed: true,
            }],
            SourceConn::Archive(a) => a
                .archive
                .folders
                .iter()
                .map(|f| Folder {
                    name: f.name.clone(),
                    delimiter: Some('/'),
                    declared_role: None,
                    selectable: true,
                    subscribed: f.subscribed,
                })
                .collect(),
        })
    }

    /// Open a folder read-only and list its messages: UIDVALIDITY and per message UID, size,
    /// flags and internal date.
    pub(crate) async fn select_and_list(
        &mut self,
        name: &str,
    ) -> Result<(u32, Vec<FetchedMeta>), Error> {
        match self {
            SourceConn::Imap(c) => {
                let (sel, meta) = c.select_and_list(name, true, true).await?;
                Ok((sel.uid_validity, meta))
            }
            SourceConn::Pop3(p) => p.list().await,
            SourceConn::Archive(a) => {
                let i = a
                    .archive
                    .folders
                    .iter()
                    .position(|f| f.name == name)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Refused,
                            format!("no folder {name:?} in the archive"),
                        )
                    })?;
                a.selected = Some(i);
                let f = &a.archive.folders[i];
                let meta = f
                    .items
                    .iter()
                    .enumerate()
                    .map(|(n, it)| FetchedMeta {
                        uid: n as u32 + 1,
                        size: it.size,
                        flags: it.flags.clone(),
                        internal_date: it.internal_date.clone(),
                    })
                    .collect();
                Ok((uid_validity_of(f.items.iter().map(|i| i.key.clone())), meta))
            }
        }
    }

    /// Open a folder read-only and list its first `window` messages, with the UID ranges that
    /// hold the rest ([`SourceConn::list_window`]); `large` as for
    /// [`Client::select_and_list_window`]. POP3 and archives are listed whole: their listings
    /// are in memory anyway.
    pub(crate) async fn select_and_list_window(
        &mut self,
        name: &str,
        window: usize,
        large: bool,
    ) -> Result<(u32, Listing), Error> {
        match self {
            SourceConn::Imap(c) => {
                let (sel, listing) = c
                    .select_and_list_window(name, true, true, window, large)
                    .await?;
                Ok((sel.uid_validity, listing))
            }
            _ => {
                let (uv, first) = self.select_and_list(name).await?;
                Ok((
                    uv,
                    Listing {
                        first: Some(first),
                        rest: Vec::new(),
                    },
                ))
            }
        }
    }

    /// The messages of one further listing window of the folder last opened.
    pub(crate) async fn list_window(
        &mut self,
        window: UidWindow,
    ) -> Result<Vec<FetchedMeta>, Error> {
        match self {
            SourceConn::Imap(c) => c.list_window(window, true).await,
            // Listed whole: there is no further window.
            _ => Ok(Vec::new()),
        }
    }

    /// How many messages a folder holds (for folders skipped by a rule).
    pub(crate) async fn count(&mut self, name: &str) -> Result<u32, Error> {
        match self {
            SourceConn::Imap(c) => Ok(c.select(name, true).await?.exists),
            _ => Ok(self.select_and_list(name).await?.1.len() as u32),
        }
    }

    /// UID, size and header block of messages, for content identity.
    pub(crate) async fn identity_headers(
        &mut self,
        uids: &[u32],
    ) -> Result<Vec<(u32, u64, Bytes)>, Error> {
        match self {
            SourceConn::Imap(c) => c.fetch_identity_headers(uids).await,
            _ => {
                let mut out = Vec::with_capacity(uids.len());
                self.bodies_inner(uids, true, &mut |uid, r| {
                    if let Ok(b) = r {
                        out.push((uid, b));
                    }
                })
                .await?;
                // The size is the listed one, as the identity on the target side uses it.
                let sizes = self.sizes(uids).await?;
                Ok(out
                    .into_iter()
                    .map(|(u, b)| (u, sizes.get(&u).copied().unwrap_or(b.len() as u64), b))
                    .collect())
            }
        }
    }

    async fn sizes(&mut self, uids: &[u32]) -> Result<HashMap<u32, u64>, Error> {
        Ok(match self {
            SourceConn::Archive(a) => {
                let f = &a.archive.folders[a.selected.unwrap_or(0)];
                uids.iter()
                    .filter_map(|&u| f.items.get(u as usize - 1).map(|i| (u, i.size)))
                    .collect()
            }
            SourceConn::Pop3(p) => uids
                .iter()
                .filter_map(|u| p.sizes.get(u).map(|s| (*u, *s)))
                .collect(),
            SourceConn::Imap(_) => HashMap::new(),
        })
    }

    /// Message bodies: each one handed to `sink` as it is read, or the reason it could not be.
    pub(crate) async fn bodies(
        &mut self,
        uids: &[u32],
        sink: &mut BodySink<'_>,
    ) -> Result<(), Error> {
        match self {
            SourceConn::Imap(c) => c.fetch_bodies(uids, &mut |u, b| sink(u, Ok(b))).await,
            _ => self.bodies_inner(uids, false, &mut |u, r| sink(u, r)).await,
        }
    }

    async fn bodies_inner(
        &mut self,
        uids: &[u32],
        headers_only: bool,
        sink: &mut BodySink<'_>,
    ) -> Result<(), Error> {
        match self {
            SourceConn::Imap(_) => unreachable!("IMAP bodies are fetched by the client"),
            SourceConn::Pop3(p) => {
                let mut numbers = Vec::with_capacity(uids.len());
                let mut back = HashMap::with_capacity(uids.len());
                for &u in uids {
                    if let Some(&n) = p.numbers.get(&u) {
                        numbers.push(n);
                        back.insert(n, u);
                    }
                }
                let mut each = |n: u32, r: Result<Vec<u8>, String>| {
                    if let Some(&u) = back.get(&n) {
                        sink(
                            u,
                            r.map(Bytes::from)
                                .map_err(|e| format!("source refused: {e}")),
                        );
                    }
                };
                if headers_only {
                    p.pop.headers(&numbers, &mut each).await
                } else {
                    p.pop.retrieve(&numbers, &mut each).await
                }
            }
            SourceConn::Archive(a) => {
                let archive = a.archive.clone();
                let folder = a.selected.unwrap_or(0);
                let uids = uids.to_vec();
                let read = tokio::task::spawn_blocking(move || {
                    let f = &archive.folders[folder];
                    uids.into_iter()
                        .filter_map(|u| {
                            let item = f.items.get(u as usize - 1)?;
                            Some((
                                u,
                                archive
                                    .read(item)
                                    .map(|b| {
                                        if headers_only {
                                            let end = header_end(&b);
                                            Bytes::from(b).slice(..end)
                                        } else {
                                            Bytes::from(b)
                                        }
                                    })
                                    .map_err(|e| e.to_string()),
                            ))
                        })
                        .collect::<Vec<_>>()
                })
                .await
                .map_err(archive_error)?;
                for (u, r) in read {
                    sink(u, r);
                }
                Ok(())
            }
        }
    }

    /// Log out (POP3: QUIT, which deletes nothing here: this connection never marks).
    pub(crate) async fn logout(self) {
        match self {
            SourceConn::Imap(c) => c.logout().await,
            SourceConn::Pop3(p) => {
                let _ = p.pop.quit().await;
            }
            SourceConn::Archive(_) => {}
        }
    }
}

/// End of the header block (after the empty line), or the whole length.
fn header_end(b: &[u8]) -> usize {
    b.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(b.len(), |i| i + 4)
}

/// A POP3 message with its stable UID and, when readable, its received date.
pub(crate) struct Dated {
    pub listed: trasloco_pop3::Listed,
    pub uid: u32,
    pub received: Option<String>,
}

/// The maildrop with stable UIDs from the state and received dates: recorded ones, the others
/// read once with `TOP n 0` (and recorded when `assign`).
pub(crate) async fn dated_listing(
    pop: &mut Pop3,
    state: &State,
    mailbox_id: Option<i64>,
    assign: bool,
) -> Result<Vec<Dated>, Error> {
    let state_error = |e: trasloco_state::Error| Error::new(ErrorKind::Protocol, e.to_string());
    let listed = pop.listing().await?;
    let uidls: Vec<String> = listed.iter().map(|l| l.uidl.clone()).collect();
    let known = state
        .pop3_uids(mailbox_id, &uidls, assign)
        .await
        .map_err(state_error)?;
    let mut out: Vec<Dated> = listed
        .into_iter()
        .map(|l| {
            let (uid, received) = known[&l.uidl].clone();
            Dated {
                listed: l,
                uid,
                received,
            }
        })
        .collect();
    let undated: Vec<u32> = out
        .iter()
        .filter(|d| d.received.is_none())
        .map(|d| d.listed.number)
        .collect();
    if undated.is_empty() {
        return Ok(out);
    }
    let mut found: HashMap<u32, String> = HashMap::new();
    pop.headers(&undated, &mut |n, r| {
        if let Some(d) = r.ok().and_then(|h| received_date(&h)) {
            found.insert(n, d);
        }
    })
    .await?;
    let mut record = Vec::new();
    for d in &mut out {
        if let Some(date) = found.remove(&d.listed.number) {
            record.push((d.uid, date.clone()));
            d.received = Some(date);
        }
    }
    if assign && let Some(mb) = mailbox_id {
        state
            .set_pop3_received(mb, &record)
            .await
            .map_err(state_error)?;
    }
    Ok(out)
}

impl Pop3Conn {
    /// The maildrop as one folder: stable UIDs from the state, received dates from the headers
    /// the first time a message is seen.
    async fn list(&mut self) -> Result<(u32, Vec<FetchedMeta>), Error> {
        let dated = dated_listing(&mut self.pop, &self.state, self.mailbox_id, self.assign).await?;
        self.numbers = dated.iter().map(|d| (d.uid, d.listed.number)).collect();
        self.sizes = dated.iter().map(|d| (d.uid, d.listed.size)).collect();
        let flags: Vec<String> = if self.seen {
            vec!["\\Seen".into()]
        } else {
            Vec::new()
        };
        let meta = dated
            .into_iter()
            .map(|d| FetchedMeta {
                uid: d.uid,
                size: d.listed.size,
                flags: flags.clone(),
                internal_date: d.received,
            })
            .collect();
        // UIDs are kept in the state for good: one validity forever.
        Ok((1, meta))
    }
}
