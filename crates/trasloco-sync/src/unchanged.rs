//! Folders that did not change since their last clean pass are not opened again.
//!
//! What a re-run costs is mostly opening and listing folders where nothing happened: the final
//! pass of a cutover over thousands of mailboxes spent most of its time finding that out.
//! Where a server keeps modification sequences (CONDSTORE, RFC 7162), a folder's STATUS
//! counters — UIDVALIDITY, UIDNEXT, MESSAGES, HIGHESTMODSEQ — move with every message added,
//! removed or re-flagged. After a clean pass over a folder (every message in a bucket, none
//! failed or altered, every copy read back) both sides' counters are recorded: the source's as
//! they were when the pass began, the target's when it was over. A later run that finds the
//! same counters on both sides, under the same rules, reports the folder as that pass left it
//! (its copies counted as already present) without selecting it on either side.
//!
//! Anything that moved the counters since — a new message, a flag set by the user, a message
//! deleted on either side, a folder recreated — sends the folder through the full comparison.
//! A pass that was cut short, failed a message or left copies unread forgets the record before
//! it writes anything, so a record only ever describes a folder left complete.
//!
//! A pass that left every folder of a mailbox clean is also recorded as a whole: a digest of
//! the source's listing (names, attributes, subscriptions, every folder's counters) and the
//! run's rules, with the folders' reports. A later run that finds the source listing the same
//! reports the mailbox as that pass left it after one login and one LIST-STATUS on the source,
//! and does not log in to the target at all: nothing arrived, left or changed on the source,
//! so there is nothing to carry, and what the target does meanwhile (new mail after the MX
//! switch, the user's own changes) is the user's. A target that lost copies since is what
//! `verify` finds; it forgets the record of such a mailbox, and the next run compares it in
//! full.

use crate::mailbox::Options;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use trasloco_core::accounting::FolderReport;
use trasloco_core::folder_map::{Folder, FolderMapping};
use trasloco_imap::{FolderStatus, Statuses};
use trasloco_state::{CleanFolder, Error, State};

/// Whether a run may skip unchanged folders and record clean passes at all.
pub(crate) fn applies(opts: &Options) -> bool {
    opts.skip_unchanged
        && opts.verify
        && !opts.dry_run
        // Removing copies for a moved archive cut looks at copies, not counters.
        && opts.evict.is_none()
        // Which folder takes a Gmail message depends on the other folders' labels.
        && !opts.copy_once
}

/// The settings that decide a message's bucket beyond the two folders' contents: a pass under
/// other ones may decide otherwise for the same messages.
pub(crate) fn rules_key(opts: &Options) -> String {
    format!(
        "dates {:?}; never {:?}; merges {}; pec {}; flag-after-append {}; size-limit {:?}; max-line {:?}",
        opts.date_rules,
        opts.never_flags,
        opts.merges_by_message_id,
        opts.pec.is_some(),
        opts.flag_after_append,
        opts.size_limit,
        opts.max_line,
    )
}

/// Whether a whole mailbox may be found unchanged from the source alone: as for folders, and
/// not where the folders taken depend on more than the listing (Zimbra's shared folders are
/// told by the user's rights on each).
pub(crate) fn applies_to_mailbox(opts: &Options) -> bool {
    applies(opts) && !opts.shared_by_rights
}

/// The digest of what decides a mailbox's pass when nothing changed: the source's folders as
/// listed, every selectable folder's STATUS counters, the rules that decide each message's
/// bucket and those that decide which folders are taken and where they go. `None` when a
/// selectable folder has no counters or keeps no modification sequences (its flags could
/// change unseen).
pub(crate) fn mailbox_key(
    folders: &[Folder],
    statuses: &Statuses,
    opts: &Options,
) -> Option<String> {
    let mut h = Sha256::new();
    h.update(rules_key(opts));
    h.update(format!(
        "\nexclude {:?}; renames {:?}; roles {:?}; defer {:?}; only {:?}; not-mail {:?}",
        opts.exclude, opts.renames, opts.exclude_roles, opts.defer, opts.only, opts.not_mail
    ));
    for f in folders {
        h.update(format!(
            "\n{:?} {:?} {:?} {} {}",
            f.name, f.delimiter, f.declared_role, f.selectable, f.subscribed
        ));
        if f.selectable {
            let st = statuses.get(&f.name).filter(|s| s.highest_modseq != 0)?;
            h.update(format!(" {}", st.key()));
        }
    }
    Some(hex::encode(h.finalize()))
}

/// Whether a folder's pass left it complete: nothing failed, altered or refused.
pub(crate) fn is_clean(r: &FolderReport) -> bool {
    r.error.is_none()
        && r.errors.is_empty()
        && r.buckets.failed.is_empty()
        && r.buckets.altered == 0
        && r.altered.is_empty()
        && r.buckets.total() == r.source_messages
}

/// The report a pass that finds a cleanly synced folder unchanged gives: its copies already
/// present, the rest in the same buckets, nothing done.
pub(crate) fn as_unchanged(r: &FolderReport) -> FolderReport {
    let mut u = r.clone();
    u.buckets.already_present += u.buckets.copied;
    u.buckets.copied = 0;
    u.bytes_copied = 0;
    u.bodies_fetched = 0;
    u.flags_updated = 0;
    u.verified = 0;
    u.evicted = 0;
    u.replaced = 0;
    u.late_removed = 0;
    u.seconds = 0.0;
    u.pec.clear();
    u.pec_broken.clear();
    u
}

/// The clean passes recorded for one mailbox, and the rules this run applies.
pub(crate) struct Unchanged {
    records: HashMap<String, CleanFolder>,
    rules: String,
}

impl Unchanged {
    /// The mailbox's records, when the run may use them (see [`applies`]).
    pub(crate) async fn load(
        state: &State,
        mailbox_id: Option<i64>,
        opts: &Options,
    ) -> Result<Option<Unchanged>, Error> {
        let Some(mb) = mailbox_id.filter(|_| applies(opts)) else {
            return Ok(None);
        };
        let records = state
            .clean_folders(mb)
            .await?
            .into_iter()
            .map(|r| (r.source_name.clone(), r))
            .collect();
        Ok(Some(Unchanged {
            records,
            rules: rules_key(opts),
        }))
    }

    /// Whether any folder has a record (a re-run): only then is the target's STATUS asked
    /// before the folders are synced.
    pub(crate) fn any(&self) -> bool {
        !self.records.is_empty()
    }

    /// The report of a folder found as its last clean pass left it, if it was.
    pub(crate) fn report(
        &self,
        m: &FolderMapping,
        source: Option<&FolderStatus>,
        target: Option<&FolderStatus>,
    ) -> Option<FolderReport> {
        let r = self.records.get(&m.source)?;
        let (source, target) = (source?, target?);
        let same = r.target_name == m.target
            && r.rules == self.rules
            && r.source_status == source.key()
            && r.target_status == target.key();
        if !same {
            return None;
        }
        serde_json::from_str(&r.report_json).ok()
    }

    /// The records of the folders this run syncs again (`full_pass`): forgotten before
    /// anything is written to them.
    pub(crate) fn stale(&self, full_pass: &BTreeSet<&str>) -> Vec<i64> {
        self.records
            .values()
            .filter(|r| full_pass.contains(r.source_name.as_str()))
            .map(|r| r.folder_id)
            .collect()
    }

    /// The records of folders this pass left clean: `passed` maps each folder's source name
    /// to (target name, source status when it was listed, its report); `target` holds the
    /// target's STATUS now. A folder without both counters is not recorded.
    pub(crate) fn records(
        &self,
        passed: &BTreeMap<String, (String, FolderStatus, FolderReport)>,
        target: &Statuses,
    ) -> Vec<CleanFolder> {
        passed
            .iter()
            .filter_map(|(source_name, (target_name, source, report))| {
                let t = target.get(target_name)?;
                Some(CleanFolder {
                    folder_id: 0,
                    source_name: source_name.clone(),
                    target_name: target_name.clone(),
                    source_status: source.key(),
                    target_status: t.key(),
                    rules: self.rules.clone(),
                    report_json: serde_json::to_string(&as_unchanged(report)).ok()?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(next: u32, modseq: u64) -> FolderStatus {
        FolderStatus {
            uid_validity: 7,
            uid_next: next,
            messages: next - 1,
            highest_modseq: modseq,
        }
    }

    fn mapping(source: &str, target: &str) -> FolderMapping {
        FolderMapping {
            source: source.into(),
            target: target.into(),
            role: None,
            delimiter: Some('/'),
            selectable: true,
            subscribed: true,
        }
    }

    fn copied(n: u64) -> FolderReport {
        let mut r = FolderReport {
            source: "INBOX".into(),
            target: "INBOX".into(),
            source_messages: n + 1,
            bytes_copied: 100,
            verified: n,
            seconds: 1.5,
            ..Default::default()
        };
        r.buckets.copied = n;
        r.buckets.skip("older");
        r
    }

    fn recorded(opts: &Options) -> Unchanged {
        let u = Unchanged {
            records: HashMap::new(),
            rules: rules_key(opts),
        };
        let passed = BTreeMap::from([(
            "INBOX".to_string(),
            ("INBOX".to_string(), status(5, 20), copied(3)),
        )]);
        let target = Statuses::from([("INBOX".to_string(), status(4, 9))]);
        let records = u.records(&passed, &target);
        Unchanged {
            records: records
                .into_iter()
                .map(|r| (r.source_name.clone(), r))
                .collect(),
            rules: u.rules,
        }
    }

    #[test]
    fn an_unchanged_folder_is_reported_as_its_clean_pass_left_it() {
        let u = recorded(&Options::default());
        let r = u
            .report(
                &mapping("INBOX", "INBOX"),
                Some(&status(5, 20)),
                Some(&status(4, 9)),
            )
            .expect("unchanged");
        assert_eq!(r.buckets.copied, 0);
        assert_eq!(r.buckets.already_present, 3);
        assert_eq!(r.buckets.skipped.get("older"), Some(&1));
        assert_eq!(r.buckets.total(), r.source_messages);
        assert_eq!((r.bytes_copied, r.verified), (0, 0));
    }

    #[test]
    fn any_moved_counter_another_target_or_other_rules_mean_a_full_pass() {
        let u = recorded(&Options::default());
        let m = mapping("INBOX", "INBOX");
        // A flag changed on the source; a message arrived on the target; a message deleted.
        assert!(
            u.report(&m, Some(&status(5, 21)), Some(&status(4, 9)))
                .is_none()
        );
        assert!(
            u.report(&m, Some(&status(5, 20)), Some(&status(5, 10)))
                .is_none()
        );
        let mut fewer = status(5, 20);
        fewer.messages -= 1;
        assert!(u.report(&m, Some(&fewer), Some(&status(4, 9))).is_none());
        // Unknown counters, another target folder, another folder.
        assert!(u.report(&m, None, Some(&status(4, 9))).is_none());
        assert!(u.report(&m, Some(&status(5, 20)), None).is_none());
        let renamed = mapping("INBOX", "Posta");
        assert!(
            u.report(&renamed, Some(&status(5, 20)), Some(&status(4, 9)))
                .is_none()
        );
        assert!(
            u.report(
                &mapping("Sent", "Sent"),
                Some(&status(5, 20)),
                Some(&status(4, 9))
            )
            .is_none()
        );
        // Other date rules: the same messages may fall in other buckets.
        let mut dated = Options::default();
        dated.date_rules.push(crate::DateRule {
            rule: "older".into(),
            skip_before: Some(1),
            skip_from: None,
        });
        let mut other = recorded(&Options::default());
        other.rules = rules_key(&dated);
        assert!(
            other
                .report(&m, Some(&status(5, 20)), Some(&status(4, 9)))
                .is_none()
        );
    }

    #[test]
    fn records_of_folders_synced_again_are_stale() {
        let u = recorded(&Options::default());
        assert_eq!(u.stale(&BTreeSet::from(["INBOX"])).len(), 1);
        assert_eq!(u.stale(&BTreeSet::from(["Sent"])), Vec::<i64>::new());
    }

    #[test]
    fn only_complete_passes_are_clean() {
        let mut r = copied(3);
        assert!(is_clean(&r));
        r.buckets.fail("refused");
        r.source_messages += 1;
        assert!(!is_clean(&r));
        let mut short = copied(3);
        short.source_messages += 1;
        assert!(!is_clean(&short));
        let mut refused = copied(3);
        refused.error = Some("no right".into());
        assert!(!is_clean(&refused));
    }

    #[test]
    fn dry_runs_runs_without_read_back_and_gmail_sources_never_skip() {
        assert!(applies(&Options::default()));
        for o in [
            Options {
                dry_run: true,
                ..Options::default()
            },
            Options {
                verify: false,
                ..Options::default()
            },
            Options {
                copy_once: true,
                ..Options::default()
            },
            Options {
                skip_unchanged: false,
                ..Options::default()
            },
        ] {
            assert!(!applies(&o));
        }
    }

    fn folder(name: &str, selectable: bool) -> Folder {
        Folder {
            name: name.into(),
            delimiter: Some('/'),
            declared_role: None,
            selectable,
            subscribed: true,
        }
    }

    #[test]
    fn a_mailbox_key_moves_with_any_counter_folder_subscription_or_rule() {
        let folders = vec![
            folder("INBOX", true),
            folder("Lavoro", false),
            folder("Lavoro/2024", true),
        ];
        let statuses = Statuses::from([
            ("INBOX".to_string(), status(5, 20)),
            ("Lavoro/2024".to_string(), status(3, 4)),
        ]);
        let opts = Options::default();
        let key = mailbox_key(&folders, &statuses, &opts).expect("every folder has counters");
        assert_eq!(
            mailbox_key(&folders, &statuses, &opts).as_deref(),
            Some(key.as_str())
        );

        let differs = |f: &[Folder], s: &Statuses, o: &Options| {
            mailbox_key(f, s, o).is_some_and(|k| k != key)
        };
        // A flag changed (HIGHESTMODSEQ), a message arrived (UIDNEXT).
        let mut s = statuses.clone();
        s.insert("INBOX".into(), status(5, 21));
        assert!(differs(&folders, &s, &opts));
        let mut s = statuses.clone();
        s.insert("Lavoro/2024".into(), status(4, 5));
        assert!(differs(&folders, &s, &opts));
        // A folder added, a subscription dropped.
        let mut f = folders.clone();
        f.push(folder("Nuova", true));
        let mut s = statuses.clone();
        s.insert("Nuova".into(), status(1, 1));
        assert!(differs(&f, &s, &opts));
        let mut f = folders.clone();
        f[0].subscribed = false;
        assert!(differs(&f, &statuses, &opts));
        // Other rules: a deferred folder, a rename, other date rules' flags.
        for o in [
            Options {
                defer: vec!["Lavoro*".into()],
                ..Options::default()
            },
            Options {
                renames: BTreeMap::from([("Lavoro".into(), "Work".into())]),
                ..Options::default()
            },
            Options {
                never_flags: vec!["$Junk".into()],
                ..Options::default()
            },
        ] {
            assert!(differs(&folders, &statuses, &o));
        }
        // A selectable folder without counters, or without modification sequences: no key.
        let mut s = statuses.clone();
        s.remove("Lavoro/2024");
        assert_eq!(mailbox_key(&folders, &s, &opts), None);
        let mut s = statuses.clone();
        s.insert("INBOX".into(), status(5, 0));
        assert_eq!(mailbox_key(&folders, &s, &opts), None);
    }

    #[test]
    fn zimbra_sources_never_skip_a_whole_mailbox() {
        assert!(applies_to_mailbox(&Options::default()));
        let zimbra = Options {
            shared_by_rights: true,
            ..Options::default()
        };
        assert!(applies(&zimbra) && !applies_to_mailbox(&zimbra));
    }
}
