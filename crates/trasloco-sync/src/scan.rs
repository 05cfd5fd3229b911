//! Read every message of a source (IMAP, POP3 or an archive), read-only, and hand each one's
//! bytes to a sink: what `trasloco pec report` examines. Bodies come in byte-bounded batches
//! under the shared memory budget, and the source is opened with EXAMINE.

use crate::folder::batches;
use crate::mailbox::{OnSide, Options, SideName, SyncError};
use crate::source::{Source, SourceConn};
use std::collections::HashMap;
use trasloco_core::folder_map::Role;
use trasloco_state::State;

/// One message as the scan hands it over.
pub struct Scanned<'a> {
    /// Source folder.
    pub folder: &'a str,
    /// The folder's special-use role (declared or by a well-known name).
    pub role: Option<Role>,
    /// UID (position in an archive).
    pub uid: u32,
    /// The bytes, exactly as stored.
    pub bytes: &'a [u8],
    /// Its file (and byte offset in an mbox), when the source is an archive.
    pub place: Option<&'a str>,
}

/// Read every message of every selectable folder the options select (folder rules apply).
pub async fn scan(
    source: &Source,
    state: &State,
    opts: &Options,
    sink: &mut (dyn FnMut(Scanned<'_>) + Send),
) -> Result<u64, crate::Failure> {
    let label = source.label();
    let describe = |e: SyncError| e.describe(&label, "");
    let mut src = SourceConn::read_only(source, state).await?;
    let result = async {
        let mut n = 0u64;
        let folders = src.folders().await.on(SideName::Source)?;
        for f in folders.iter().filter(|f| f.selectable) {
            let role = f.role();
            if !opts.selected(&f.name, role)
                || opts.folder_rule(&f.name, role, f.delimiter).is_some()
            {
                continue;
            }
            let (_, meta) = src.select_and_list(&f.name).await.on(SideName::Source)?;
            let sizes: HashMap<u32, u64> = meta.iter().map(|m| (m.uid, m.size)).collect();
            for batch in batches(
                meta.iter().map(|m| (m.uid, m.size)),
                opts.batch_bytes,
                opts.batch_messages,
            ) {
                let bytes: u64 = batch.iter().map(|u| sizes[u]).sum();
                let held = opts.memory.reserve(bytes).await;
                let places: HashMap<u32, String> = batch
                    .iter()
                    .filter_map(|u| src.place(*u).map(|p| (*u, p)))
                    .collect();
                src.bodies(&batch, &mut |uid, r| {
                    if let Ok(b) = r {
                        n += 1;
                        sink(Scanned {
                            folder: &f.name,
                            role,
                            uid,
                            bytes: &b,
                            place: places.get(&uid).map(String::as_str),
                        });
                    }
                })
                .await
                .on(SideName::Source)?;
                drop(held);
            }
        }
        Ok::<_, SyncError>(n)
    }
    .await;
    src.logout().await;
    result.map_err(describe)
}
