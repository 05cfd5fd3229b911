//! What to do in one folder: the pure difference between source, target and recorded state.
//!
//! It runs in two passes so that the expensive part — fetching identity headers — happens only
//! when it can matter:
//! 1. [`by_state`]: messages the state maps to a target UID that still exists are present
//!    (with a flag update if the source changed); the rest of the source is *unmapped* and the
//!    target messages no mapping claims are *unclaimed*.
//! 2. [`by_identity`]: only if both unmapped and unclaimed are non-empty, match them by content
//!    identity with multiplicity; what stays unmatched is copied.

use crate::flags::{self, FlagSet, Permanent};
use crate::identity::IdentityKey;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A source message as listed (no body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMsg {
    /// Source UID.
    pub uid: u32,
    /// RFC822.SIZE.
    pub size: u64,
    /// Current flags (without `\Recent`).
    pub flags: FlagSet,
}

/// A target message as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetMsg {
    /// Target UID.
    pub uid: u32,
    /// Current flags.
    pub flags: FlagSet,
}

/// A recorded copy: source UID → target UID, valid for the recorded UIDVALIDITY pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// Source UID.
    pub source_uid: u32,
    /// Target UID.
    pub target_uid: u32,
    /// The source flags at the last sync.
    pub synced_flags: FlagSet,
    /// The source message's size when it was copied (an archive's message can grow: an mbox
    /// whose last message was cut, completed later).
    pub size: u64,
    /// Whether this tool made the copy (as opposed to finding it there by content identity):
    /// only such copies are ever removed from the target.
    pub ours: bool,
}

/// A source message found on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    /// Source UID.
    pub source_uid: u32,
    /// Target UID.
    pub target_uid: u32,
    /// New flags to set on the target, if they must change.
    pub set_flags: Option<FlagSet>,
    /// Source flags to record as synced.
    pub synced_flags: FlagSet,
}

/// Result of the state pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatePass {
    /// Mapped messages still on the target.
    pub present: Vec<Present>,
    /// Source UIDs without a valid mapping (in UID order).
    pub unmapped: Vec<u32>,
    /// Target UIDs no mapping claims (in UID order).
    pub unclaimed: Vec<u32>,
}

/// Flags for the target when the source copy is authoritative (first match or copy).
pub fn initial_target_flags(source: &FlagSet, permanent: &Permanent) -> FlagSet {
    permanent.filter(source).0
}

/// Pass 1: classify by recorded state.
pub fn by_state(
    source: &[SourceMsg],
    target: &[TargetMsg],
    mapped: &[Mapped],
    permanent: &Permanent,
) -> StatePass {
    let target_by_uid: HashMap<u32, &TargetMsg> = target.iter().map(|t| (t.uid, t)).collect();
    let mapping: HashMap<u32, &Mapped> = mapped.iter().map(|m| (m.source_uid, m)).collect();
    let mut claimed: HashSet<u32> = HashSet::new();
    let mut pass = StatePass::default();
    for s in source {
        let found = mapping
            .get(&s.uid)
            .and_then(|m| target_by_uid.get(&m.target_uid).map(|t| (*m, *t)))
            .filter(|(m, _)| !claimed.contains(&m.target_uid));
        match found {
            Some((m, t)) => {
                claimed.insert(t.uid);
                let set_flags = if m.synced_flags == s.flags {
                    None
                } else {
                    let wanted = permanent
                        .filter(&flags::propagate(&m.synced_flags, &s.flags, &t.flags))
                        .0;
                    (wanted != t.flags).then_some(wanted)
                };
                pass.present.push(Present {
                    source_uid: s.uid,
                    target_uid: t.uid,
                    set_flags,
                    synced_flags: s.flags.clone(),
                });
            }
            None => pass.unmapped.push(s.uid),
        }
    }
    // Mappings of source messages that no longer exist still claim their target copy: the
    // target message came from us, it must not be matched to another source message.
    for m in mapped {
        claimed.insert(m.target_uid);
    }
    pass.unclaimed = target
        .iter()
        .map(|t| t.uid)
        .filter(|u| !claimed.contains(u))
        .collect();
    pass.unmapped.sort_unstable();
    pass.unclaimed.sort_unstable();
    pass
}

/// Result of the identity pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityPass {
    /// (source UID, target UID) pairs found to be the same message.
    pub matched: Vec<(u32, u32)>,
    /// Source UIDs to copy.
    pub to_copy: Vec<u32>,
}

/// Pass 2: match unmapped source messages to unclaimed target messages by identity, with
/// multiplicity — two identical source messages need two identical target messages.
pub fn by_identity(
    unmapped: &[(u32, IdentityKey)],
    unclaimed: &[(u32, IdentityKey)],
) -> IdentityPass {
    IdentityPool::new(unclaimed.iter().copied()).take(unmapped)
}

/// The unclaimed target messages of a folder by content identity, matched against the source
/// one listing window at a time: a target message matched in one window is gone for the next.
#[derive(Debug, Clone, Default)]
pub struct IdentityPool {
    /// Target UIDs per identity, highest first, so `pop()` yields the lowest.
    pool: BTreeMap<IdentityKey, Vec<u32>>,
    left: usize,
    /// By headers alone ([`crate::identity::loose_identity`]): (target UID, size, identity).
    /// Filled only when copies are read back, to find copies the target rewrote.
    loose: HashMap<IdentityKey, Vec<(u32, u64, IdentityKey)>>,
    /// Target UIDs matched so far (the loose index is not pruned as the pool is).
    taken: HashSet<u32>,
}

impl IdentityPool {
    /// A pool of (target UID, identity) pairs.
    pub fn new(unclaimed: impl IntoIterator<Item = (u32, IdentityKey)>) -> IdentityPool {
        let mut pool: BTreeMap<IdentityKey, Vec<u32>> = BTreeMap::new();
        let mut left = 0;
        for (uid, key) in unclaimed {
            pool.entry(key).or_default().push(uid);
            left += 1;
        }
        for uids in pool.values_mut() {
            uids.sort_unstable_by(|a, b| b.cmp(a));
        }
        IdentityPool {
            pool,
            left,
            ..IdentityPool::default()
        }
    }

    /// Also index a target message by its headers alone (`loose`), with its size.
    pub fn add_loose(&mut self, uid: u32, size: u64, strict: IdentityKey, loose: IdentityKey) {
        self.loose
            .entry(loose)
            .or_default()
            .push((uid, size, strict));
    }

    /// Target messages still unmatched whose headers are `loose` and whose size is within
    /// `slack` bytes of `size`: perhaps a copy the target rewrote. Nothing is taken; confirm
    /// by the bytes, then [`IdentityPool::claim`].
    pub fn near(&self, loose: &IdentityKey, size: u64, slack: u64) -> Vec<u32> {
        self.loose.get(loose).map_or_else(Vec::new, |v| {
            v.iter()
                .filter(|(u, s, _)| !self.taken.contains(u) && s.abs_diff(size) <= slack)
                .map(|(u, _, _)| *u)
                .collect()
        })
    }

    /// Take one target message out of the pool (found by [`IdentityPool::near`]).
    pub fn claim(&mut self, uid: u32) {
        let strict = self
            .loose
            .values()
            .flatten()
            .find(|(u, _, _)| *u == uid)
            .map(|(_, _, k)| *k);
        if let Some(uids) = strict.and_then(|k| self.pool.get_mut(&k))
            && let Some(at) = uids.iter().position(|u| *u == uid)
        {
            uids.remove(at);
            self.left -= 1;
            self.taken.insert(uid);
        }
    }

    /// Whether no target message is left to match.
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// Match source messages (lowest UID first) and take the matched target messages out of
    /// the pool; the unmatched ones are to be copied.
    pub fn take(&mut self, unmapped: &[(u32, IdentityKey)]) -> IdentityPass {
        let mut sorted: Vec<&(u32, IdentityKey)> = unmapped.iter().collect();
        sorted.sort_unstable_by_key(|(uid, _)| *uid);
        let mut pass = IdentityPass::default();
        for (uid, key) in sorted {
            match self.pool.get_mut(key).and_then(Vec::pop) {
                Some(t) => {
                    self.left -= 1;
                    if !self.loose.is_empty() {
                        self.taken.insert(t);
                    }
                    pass.matched.push((*uid, t));
                }
                None => pass.to_copy.push(*uid),
            }
        }
        pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(items: &[&str]) -> FlagSet {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn src(uid: u32, flags: &[&str]) -> SourceMsg {
        SourceMsg {
            uid,
            size: 100,
            flags: set(flags),
        }
    }

    fn tgt(uid: u32, flags: &[&str]) -> TargetMsg {
        TargetMsg {
            uid,
            flags: set(flags),
        }
    }

    fn map(s: u32, t: u32, flags: &[&str]) -> Mapped {
        Mapped {
            size: 100,
            ours: true,
            source_uid: s,
            target_uid: t,
            synced_flags: set(flags),
        }
    }

    fn any() -> Permanent {
        Permanent::anything()
    }

    fn key(n: u8) -> IdentityKey {
        IdentityKey([n; 32])
    }

    #[test]
    fn unchanged_rerun_has_nothing_to_do() {
        let s = [src(1, &["\\Seen"]), src(2, &[])];
        let t = [tgt(10, &["\\Seen"]), tgt(11, &[])];
        let m = [map(1, 10, &["\\Seen"]), map(2, 11, &[])];
        let pass = by_state(&s, &t, &m, &any());
        assert!(pass.unmapped.is_empty() && pass.unclaimed.is_empty());
        assert!(pass.present.iter().all(|p| p.set_flags.is_none()));
    }

    #[test]
    fn new_source_messages_are_unmapped() {
        let s = [src(1, &[]), src(2, &[])];
        let t = [tgt(10, &[])];
        let pass = by_state(&s, &t, &[map(1, 10, &[])], &any());
        assert_eq!(pass.unmapped, vec![2]);
        assert!(pass.unclaimed.is_empty());
    }

    #[test]
    fn source_flag_change_is_propagated() {
        let s = [src(1, &["\\Seen", "\\Flagged"])];
        let t = [tgt(10, &["\\Seen"])];
        let pass = by_state(&s, &t, &[map(1, 10, &["\\Seen"])], &any());
        assert_eq!(
            pass.present[0].set_flags,
            Some(set(&["\\Seen", "\\Flagged"]))
        );
        assert_eq!(pass.present[0].synced_flags, set(&["\\Seen", "\\Flagged"]));
    }

    #[test]
    fn target_copy_deleted_means_copy_again() {
        let s = [src(1, &[])];
        let pass = by_state(&s, &[], &[map(1, 10, &[])], &any());
        assert_eq!(pass.unmapped, vec![1]);
    }

    #[test]
    fn target_copy_of_a_vanished_source_message_is_not_reused() {
        let s = [src(2, &[])];
        let t = [tgt(10, &[])];
        let pass = by_state(&s, &t, &[map(1, 10, &[])], &any());
        assert_eq!(pass.unmapped, vec![2]);
        assert!(pass.unclaimed.is_empty());
    }

    #[test]
    fn duplicate_pair_stays_two() {
        // Two identical messages on the source, one already on the target (e.g. a run killed
        // after the first APPEND): exactly one more copy.
        let pass = by_identity(&[(1, key(7)), (2, key(7))], &[(50, key(7))]);
        assert_eq!(pass.matched, vec![(1, 50)]);
        assert_eq!(pass.to_copy, vec![2]);
    }

    #[test]
    fn identity_match_pairs_lowest_uids_first() {
        let pass = by_identity(
            &[(3, key(1)), (1, key(1)), (2, key(2))],
            &[(20, key(1)), (10, key(1))],
        );
        assert_eq!(pass.matched, vec![(1, 10), (3, 20)]);
        assert_eq!(pass.to_copy, vec![2]);
    }

    proptest! {
        /// Whatever the keys, every unmapped source message ends in exactly one place, and no
        /// target message is matched twice.
        #[test]
        fn identity_pass_accounts_for_every_message(
            src_keys in proptest::collection::vec(0u8..4, 0..30),
            tgt_keys in proptest::collection::vec(0u8..4, 0..30),
        ) {
            let unmapped: Vec<_> = src_keys.iter().enumerate().map(|(i, k)| (i as u32 + 1, key(*k))).collect();
            let unclaimed: Vec<_> = tgt_keys.iter().enumerate().map(|(i, k)| (i as u32 + 100, key(*k))).collect();
            let pass = by_identity(&unmapped, &unclaimed);
            prop_assert_eq!(pass.matched.len() + pass.to_copy.len(), unmapped.len());
            let targets: HashSet<u32> = pass.matched.iter().map(|(_, t)| *t).collect();
            prop_assert_eq!(targets.len(), pass.matched.len());
            for k in 0u8..4 {
                let s = src_keys.iter().filter(|x| **x == k).count();
                let t = tgt_keys.iter().filter(|x| **x == k).count();
                let m = pass.matched.iter().filter(|(su, _)| src_keys[*su as usize - 1] == k).count();
                prop_assert_eq!(m, s.min(t));
            }
        }

        /// Matching window by window against one pool finds the same pairs as one pass over
        /// the whole folder, whatever the window size.
        #[test]
        fn windows_of_one_pool_match_like_one_pass(
            src_keys in proptest::collection::vec(0u8..4, 0..40),
            tgt_keys in proptest::collection::vec(0u8..4, 0..40),
            window in 1usize..12,
        ) {
            let unmapped: Vec<_> = src_keys.iter().enumerate().map(|(i, k)| (i as u32 + 1, key(*k))).collect();
            let unclaimed: Vec<_> = tgt_keys.iter().enumerate().map(|(i, k)| (i as u32 + 100, key(*k))).collect();
            let whole = by_identity(&unmapped, &unclaimed);
            let mut pool = IdentityPool::new(unclaimed.iter().copied());
            let mut windowed = IdentityPass::default();
            for w in unmapped.chunks(window) {
                let p = pool.take(w);
                windowed.matched.extend(p.matched);
                windowed.to_copy.extend(p.to_copy);
            }
            prop_assert_eq!(windowed, whole.clone());
            prop_assert_eq!(pool.is_empty(), whole.matched.len() == unclaimed.len());
        }

        /// A target message found by its headers alone and claimed is never matched again,
        /// by either index.
        #[test]
        fn a_claimed_message_leaves_both_indexes(n in 1u32..6, pick in 0u32..6) {
            let strict = |u: u32| key(u as u8);
            let loose = key(200);
            let mut pool = IdentityPool::new((1..=n).map(|u| (u, strict(u))));
            for u in 1..=n {
                pool.add_loose(u, 100 + u as u64, strict(u), loose);
            }
            let pick = pick % n + 1;
            prop_assert!(pool.near(&loose, 100, 8).contains(&pick));
            pool.claim(pick);
            prop_assert!(!pool.near(&loose, 100, 8).contains(&pick));
            let p = pool.take(&[(50, strict(pick))]);
            prop_assert_eq!(p.to_copy, vec![50]);
            prop_assert_eq!(pool.is_empty(), n == 1);
        }

        /// The state pass never loses a source message and never claims a target twice.
        #[test]
        fn state_pass_partitions_the_source(
            n_src in 0u32..20,
            n_tgt in 0u32..20,
            pairs in proptest::collection::vec((1u32..25, 100u32..125), 0..20),
        ) {
            let s: Vec<_> = (1..=n_src).map(|u| src(u, &[])).collect();
            let t: Vec<_> = (100..100 + n_tgt).map(|u| tgt(u, &[])).collect();
            let m: Vec<_> = pairs.iter().map(|(a, b)| map(*a, *b, &[])).collect();
            let pass = by_state(&s, &t, &m, &any());
            prop_assert_eq!(pass.present.len() + pass.unmapped.len(), s.len());
            let claimed: HashSet<u32> = pass.present.iter().map(|p| p.target_uid).collect();
            prop_assert_eq!(claimed.len(), pass.present.len());
            prop_assert!(pass.unclaimed.iter().all(|u| !claimed.contains(u)));
        }
    }
}
