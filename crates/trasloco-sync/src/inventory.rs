//! Looking without touching: what a source mailbox holds (folders, counts, sizes, dates) and
//! how full both sides are. Used by `plan`; opens every folder read-only (EXAMINE) and fetches
//! no message body.

use crate::mailbox::{OnSide, Options, Side, SideName, SyncError, connect};
use crate::source::{Source, SourceConn};
use trasloco_core::accounting::FailureClass;
use trasloco_core::folder_map::Role;
use trasloco_state::State;

/// One source folder as the plan sees it.
#[derive(Debug, Clone)]
pub struct FolderListing {
    /// Unicode name.
    pub name: String,
    /// Special-use role (declared or by a well-known name).
    pub role: Option<Role>,
    /// The folder rule that leaves it out of some or all phases (`folder-excluded`,
    /// `folder-deferred`).
    pub rule: Option<&'static str>,
    /// (INTERNALDATE as Unix seconds, RFC822.SIZE) per message.
    pub messages: Vec<(Option<i64>, u64)>,
}

/// A source mailbox's contents and quota.
#[derive(Debug, Clone, Default)]
pub struct SourceInventory {
    /// Selectable folders in listing order.
    pub folders: Vec<FolderListing>,
    /// (used, limit) bytes, when the server reports a storage quota.
    pub quota: Option<(u64, u64)>,
}

/// A failure while looking: class and the one line naming side and account.
pub type Failure = (FailureClass, String);

/// List every folder of a source mailbox with its messages' dates and sizes, and its quota.
/// `state` is only read (a scratch store will do).
pub async fn inventory_source(
    source: &Source,
    state: &State,
    opts: &Options,
) -> Result<SourceInventory, Failure> {
    let label = source.label();
    let describe = |e: SyncError| e.describe(&label, "");
    let mut src = SourceConn::read_only(source, state).await?;
    let result = async {
        let mut inv = SourceInventory::default();
        if let Some(c) = src.client() {
            inv.quota = c.storage_quota().await.on(SideName::Source)?;
        }
        let folders = src.folders().await.on(SideName::Source)?;
        for f in folders.iter().filter(|f| f.selectable) {
            let role = f.role();
            let (_, meta) = src.select_and_list(&f.name).await.on(SideName::Source)?;
            inv.folders.push(FolderListing {
                name: f.name.clone(),
                role,
                rule: opts.folder_rule(&f.name, role, f.delimiter),
                messages: meta
                    .iter()
                    .map(|m| {
                        let t = m
                            .internal_date
                            .as_deref()
                            .and_then(trasloco_archive::dates::parse_imap)
                            .map(|t| t.timestamp());
                        (t, m.size)
                    })
                    .collect(),
            });
        }
        Ok::<_, SyncError>(inv)
    }
    .await;
    src.logout().await;
    result.map_err(describe)
}

/// Log in to the target account and read its storage quota (None: no QUOTA extension or no
/// limit).
pub async fn target_quota(target: &Side) -> Result<Option<(u64, u64)>, Failure> {
    let label = target.label();
    let mut c = connect(target, SideName::Target)
        .await
        .map_err(|e| e.describe("", &label))?;
    let q = c
        .storage_quota()
        .await
        .on(SideName::Target)
        .map_err(|e| e.describe("", &label));
    c.logout().await;
    q
}
