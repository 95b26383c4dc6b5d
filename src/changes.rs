//! What changed in one account between two complete polls: set arithmetic over the ids of two
//! [`UserIndex`]es, and the running totals /metrics exports. Pure; no I/O.
//!
//! Definitions (P the previous complete poll, C the current one; "live" means listed and not
//! flagged deleted):
//!
//! | change | users |
//! |---|---|
//! | `added` | live in C, not live in P: new in the list, or listed as deleted in P and live again |
//! | `removed` | live in P, not listed at all in C |
//! | `deleted` | live in P, listed with `deleted` true in C |
//! | `two_fa_enabled`, `two_fa_disabled` | live in both, 2FA off in P and on in C, or the reverse |
//! | `activated` | live in both, e-mail not confirmed in P and confirmed in C |
//! | `joined`, `left` (per group) | live member in C and not in P, or the reverse |
//!
//! So that the counters reconcile with the gauges: live(C) = live(P) + added − removed − deleted,
//! and, per group, members(C) = members(P) + joined − left. A user who appears already deleted,
//! or a deleted user who disappears, was never live between the two polls and counts nothing;
//! nor does a user created and deleted between two polls, which no poll saw. A user who leaves
//! the list counts `left` in each of its groups, and a user created in a group counts `joined`
//! there. A group is matched by its label (id and name): a group renamed by the API is left by
//! every member under its old name and joined under the new one.
//!
//! Every count is a cardinality of set intersections and differences, computed without building
//! any set: a comparison allocates nothing but the list of changed groups.

use std::sync::Arc;

use crate::idset::IdSet;
use crate::snapshot::{GroupLabel, KNOWN_GROUPS, MAX_UNKNOWN_VALUES, OTHER, UserIndex};

/// The `change` label of `gcore_iam_user_changes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserChange {
    Added,
    Removed,
    Deleted,
    TwoFaEnabled,
    TwoFaDisabled,
    Activated,
}

impl UserChange {
    /// Every kind, in the order of [`Changes::users`], so that each series exists at 0 from
    /// the exporter's start.
    pub const ALL: [UserChange; 6] = [
        UserChange::Added,
        UserChange::Removed,
        UserChange::Deleted,
        UserChange::TwoFaEnabled,
        UserChange::TwoFaDisabled,
        UserChange::Activated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserChange::Added => "added",
            UserChange::Removed => "removed",
            UserChange::Deleted => "deleted",
            UserChange::TwoFaEnabled => "two_fa_enabled",
            UserChange::TwoFaDisabled => "two_fa_disabled",
            UserChange::Activated => "activated",
        }
    }
}

/// The `change` label of `gcore_iam_group_membership_changes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    Joined,
    Left,
}

impl MembershipChange {
    /// Both kinds, in the order of [`GroupChanges::counts`].
    pub const ALL: [MembershipChange; 2] = [MembershipChange::Joined, MembershipChange::Left];

    pub fn as_str(self) -> &'static str {
        match self {
            MembershipChange::Joined => "joined",
            MembershipChange::Left => "left",
        }
    }
}

/// The joined and left members of one group, in the order of [`MembershipChange::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChanges {
    pub group: GroupLabel,
    pub counts: [u64; 2],
}

/// What changed between two complete polls of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Indexed like [`UserChange::ALL`].
    pub users: [u64; 6],
    /// Only the groups where someone joined or left, in the order of the current poll's groups,
    /// then the groups the previous poll had and the current one lacks.
    pub groups: Vec<GroupChanges>,
}

impl Changes {
    pub fn get(&self, change: UserChange) -> u64 {
        self.users[change as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.users.iter().all(|&n| n == 0) && self.groups.is_empty()
    }
}

/// Compares two consecutive complete polls of one account.
pub fn compare(previous: &UserIndex, current: &UserIndex) -> Changes {
    let (p, c) = (previous, current);
    let deleted = p.active.intersection_len(&c.deleted);
    // Live before and still live: the users whose bits may have flipped.
    let both = |set_now: &IdSet, set_before: &IdSet| {
        // |set_now ∩ live(P)| − |set_now ∩ set_before|, as set_before ⊆ live(P) and
        // set_now ⊆ live(C): the users of set_now, live in both, not in set_before.
        // Saturating: the sets come from our own aggregation, but a mistake there must not
        // become a panic in the poller.
        set_now.intersection_len(&p.active).saturating_sub(set_now.intersection_len(set_before))
    };
    let mut users = [0; 6];
    users[UserChange::Added as usize] = c.active.difference_len(&p.active);
    users[UserChange::Removed as usize] = p.active.len().saturating_sub(p.active.intersection_len(&c.active) + deleted);
    users[UserChange::Deleted as usize] = deleted;
    users[UserChange::TwoFaEnabled as usize] = both(&c.two_fa, &p.two_fa);
    users[UserChange::TwoFaDisabled as usize] =
        p.two_fa.intersection_len(&c.active).saturating_sub(p.two_fa.intersection_len(&c.two_fa));
    users[UserChange::Activated as usize] = both(&c.activated, &p.activated);

    let empty = IdSet::default();
    let members_before = |label: &GroupLabel| p.groups.iter().find(|(g, _)| g == label).map_or(&empty, |(_, m)| m);
    let mut groups = Vec::new();
    for (label, now) in &c.groups {
        let before = members_before(label);
        let counts = [now.difference_len(before), before.difference_len(now)];
        if counts != [0, 0] {
            groups.push(GroupChanges { group: label.clone(), counts });
        }
    }
    for (label, before) in &p.groups {
        if !before.is_empty() && !c.groups.iter().any(|(g, _)| g == label) {
            groups.push(GroupChanges { group: label.clone(), counts: [0, before.len()] });
        }
    }
    Changes { users, groups }
}

/// The running totals of one account's changes since the exporter started: every kind of user
/// change and each known group exist at 0 from the start; another group gets its series when
/// it first changes, up to [`MAX_UNKNOWN_VALUES`] of them over the exporter's life, and the
/// rest are counted under the `other` group, so the series stay bounded however many groups
/// the API invents over time.
#[derive(Debug, Clone)]
pub struct ChangeTotals {
    users: [u64; 6],
    groups: Vec<GroupChanges>,
    unknown: usize,
}

impl Default for ChangeTotals {
    fn default() -> Self {
        let groups = KNOWN_GROUPS
            .iter()
            .map(|(id, name)| GroupChanges {
                group: GroupLabel { id: Arc::from(id.to_string()), name: Arc::from(*name) },
                counts: [0; 2],
            })
            .collect();
        ChangeTotals { users: [0; 6], groups, unknown: 0 }
    }
}

impl ChangeTotals {
    /// Adds the changes of one comparison.
    pub fn add(&mut self, changes: &Changes) {
        for (total, n) in self.users.iter_mut().zip(changes.users) {
            *total += n;
        }
        for change in &changes.groups {
            let i = self.slot(&change.group);
            for (total, n) in self.groups[i].counts.iter_mut().zip(change.counts) {
                *total += n;
            }
        }
    }

    /// The totals per kind of user change, in the order of [`UserChange::ALL`].
    pub fn users(&self) -> impl Iterator<Item = (UserChange, u64)> + '_ {
        UserChange::ALL.into_iter().zip(self.users)
    }

    /// The totals per group and kind of membership change.
    pub fn groups(&self) -> impl Iterator<Item = (&GroupLabel, MembershipChange, u64)> + '_ {
        self.groups
            .iter()
            .flat_map(|g| MembershipChange::ALL.into_iter().zip(g.counts).map(move |(change, n)| (&g.group, change, n)))
    }

    fn slot(&mut self, label: &GroupLabel) -> usize {
        if let Some(i) = self.groups.iter().position(|g| g.group == *label) {
            return i;
        }
        let label = if self.unknown < MAX_UNKNOWN_VALUES {
            self.unknown += 1;
            label.clone()
        } else {
            let other = GroupLabel { id: Arc::from(OTHER), name: Arc::from(OTHER) };
            if let Some(i) = self.groups.iter().position(|g| g.group == other) {
                return i;
            }
            other
        };
        self.groups.push(GroupChanges { group: label, counts: [0; 2] });
        self.groups.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::snapshot::{GroupRef, UserAggregator, UserFacts};

    /// One listed user: (deleted, 2FA, activated, group ids).
    #[derive(Debug, Clone)]
    struct U {
        deleted: bool,
        two_fa: bool,
        activated: bool,
        groups: Vec<u64>,
    }

    fn live(groups: &[u64]) -> U {
        U { deleted: false, two_fa: true, activated: true, groups: groups.to_vec() }
    }

    fn name_of(group: u64) -> String {
        KNOWN_GROUPS
            .iter()
            .find(|(id, _)| *id == group)
            .map_or_else(|| format!("Group {group}"), |(_, n)| n.to_string())
    }

    fn index(users: &BTreeMap<u64, U>) -> UserIndex {
        let mut agg = UserAggregator::new();
        for (&id, u) in users {
            let facts = UserFacts {
                id,
                deleted: u.deleted,
                user_type: "common",
                two_fa: u.two_fa,
                activated: u.activated,
                sso_auth: false,
                is_active: true,
            };
            let names: Vec<String> = u.groups.iter().map(|g| name_of(*g)).collect();
            let groups = u.groups.iter().zip(&names).map(|(g, n)| GroupRef { id: Some(*g), name: Some(n) });
            agg.add(&facts, groups.collect::<Vec<_>>(), []);
        }
        agg.finish(users.len() as u64).index
    }

    fn compare_lists(before: &[(u64, U)], after: &[(u64, U)]) -> Changes {
        compare(&index(&before.iter().cloned().collect()), &index(&after.iter().cloned().collect()))
    }

    fn users(changes: &Changes) -> BTreeMap<&'static str, u64> {
        UserChange::ALL.iter().map(|c| (c.as_str(), changes.get(*c))).filter(|(_, n)| *n > 0).collect()
    }

    fn groups(changes: &Changes) -> Vec<(&str, [u64; 2])> {
        changes.groups.iter().map(|g| (&*g.group.id, g.counts)).collect()
    }

    #[test]
    fn identical_polls_change_nothing() {
        let list = [(1, live(&[1])), (2, U { deleted: true, ..live(&[2]) }), (3, U { two_fa: false, ..live(&[]) })];
        let changes = compare_lists(&list, &list);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(changes, Changes::default());
    }

    #[test]
    fn added_removed_and_deleted() {
        let before = [(1, live(&[2])), (2, live(&[2])), (3, live(&[5])), (4, U { deleted: true, ..live(&[2]) })];
        // 1 stays, 2 is removed from the list, 3 is flagged deleted, 4 (deleted) is restored,
        // 5 is new, 6 appears already deleted.
        let after = [
            (1, live(&[2])),
            (3, U { deleted: true, ..live(&[5]) }),
            (4, live(&[2])),
            (5, live(&[2])),
            (6, U { deleted: true, ..live(&[1]) }),
        ];
        let changes = compare_lists(&before, &after);
        assert_eq!(users(&changes), BTreeMap::from([("added", 2), ("removed", 1), ("deleted", 1)]));
        // Users: 2 left (removed), 4 and 5 joined; Engineers: 3 left (deleted).
        assert_eq!(groups(&changes), [("2", [2, 1]), ("5", [0, 1])]);
    }

    #[test]
    fn a_deleted_user_that_disappears_counts_nothing() {
        let before = [(1, live(&[])), (2, U { deleted: true, ..live(&[1]) })];
        let after = [(1, live(&[]))];
        assert!(compare_lists(&before, &after).is_empty());
    }

    #[test]
    fn flags_flip_only_for_users_live_in_both_polls() {
        let off = |g: &[u64]| U { two_fa: false, activated: false, ..live(g) };
        let before = [(1, off(&[])), (2, live(&[])), (3, off(&[])), (4, live(&[]))];
        // 1: 2FA on and activated; 2: 2FA off; 3: deleted (its flags do not count); 4: removed;
        // 5: new with 2FA on and activated (neither counts: it was not live before).
        let after = [
            (1, live(&[])),
            (2, U { two_fa: false, ..live(&[]) }),
            (3, U { deleted: true, ..live(&[]) }),
            (5, live(&[])),
        ];
        let changes = compare_lists(&before, &after);
        assert_eq!(
            users(&changes),
            BTreeMap::from([
                ("added", 1),
                ("removed", 1),
                ("deleted", 1),
                ("two_fa_enabled", 1),
                ("two_fa_disabled", 1),
                ("activated", 1)
            ])
        );
        // An activation taken back (the API does not do that) is no change we count.
        let changes = compare_lists(&[(1, live(&[]))], &[(1, U { activated: false, ..live(&[]) })]);
        assert!(changes.is_empty());
    }

    #[test]
    fn an_administrator_swap_is_one_joined_and_one_left() {
        let before = [(1, live(&[1])), (2, live(&[2]))];
        let after = [(1, live(&[2])), (2, U { two_fa: false, ..live(&[1]) })];
        let changes = compare_lists(&before, &after);
        assert_eq!(users(&changes), BTreeMap::from([("two_fa_disabled", 1)]));
        assert_eq!(groups(&changes), [("1", [1, 1]), ("2", [1, 1])]);
    }

    #[test]
    fn a_group_gone_from_the_list_is_left_by_all_its_members() {
        let before = [(1, live(&[77])), (2, live(&[77, 1]))];
        let after = [(1, live(&[])), (2, live(&[1]))];
        let changes = compare_lists(&before, &after);
        assert_eq!(groups(&changes), [("77", [0, 2])]);
        // And a new group is joined by its members.
        let changes = compare_lists(&after, &before);
        assert_eq!(groups(&changes), [("77", [2, 0])]);
        assert_eq!(&*changes.groups[0].group.name, "Group 77");
    }

    #[test]
    fn ids_beyond_32_bits_are_compared_too() {
        let big = u64::MAX - 3;
        let before = [(big, live(&[1])), (big + 1, U { two_fa: false, ..live(&[]) })];
        let after = [(big, U { deleted: true, ..live(&[1]) }), (big + 1, live(&[])), (big + 2, live(&[1]))];
        let changes = compare_lists(&before, &after);
        assert_eq!(users(&changes), BTreeMap::from([("added", 1), ("deleted", 1), ("two_fa_enabled", 1)]));
        assert_eq!(groups(&changes), [("1", [1, 1])]);
    }

    /// Counts by change, and (group id, [joined, left]) by group.
    type Counts = (BTreeMap<&'static str, u64>, Vec<(String, [u64; 2])>);

    /// A model of the definitions in the module's documentation, user by user.
    fn model(before: &BTreeMap<u64, U>, after: &BTreeMap<u64, U>) -> Counts {
        let live = |m: &BTreeMap<u64, U>, id: u64| m.get(&id).filter(|u| !u.deleted).cloned();
        let mut counts = BTreeMap::new();
        let mut count = |k: &'static str| *counts.entry(k).or_insert(0) += 1;
        let ids: BTreeSet<u64> = before.keys().chain(after.keys()).copied().collect();
        let mut group_counts: BTreeMap<u64, [u64; 2]> = BTreeMap::new();
        for &id in &ids {
            let (p, c) = (live(before, id), live(after, id));
            match (&p, &c) {
                (None, Some(_)) => count("added"),
                (Some(_), None) if after.contains_key(&id) => count("deleted"),
                (Some(_), None) => count("removed"),
                (Some(p), Some(c)) => {
                    if !p.two_fa && c.two_fa {
                        count("two_fa_enabled");
                    }
                    if p.two_fa && !c.two_fa {
                        count("two_fa_disabled");
                    }
                    if !p.activated && c.activated {
                        count("activated");
                    }
                }
                (None, None) => {}
            }
            let groups = |u: &Option<U>| -> BTreeSet<u64> { u.iter().flat_map(|u| u.groups.clone()).collect() };
            let (gp, gc) = (groups(&p), groups(&c));
            for g in gc.difference(&gp) {
                group_counts.entry(*g).or_default()[0] += 1;
            }
            for g in gp.difference(&gc) {
                group_counts.entry(*g).or_default()[1] += 1;
            }
        }
        (counts, group_counts.into_iter().map(|(g, n)| (g.to_string(), n)).collect())
    }

    fn random_list(rng: &mut StdRng, base: u64) -> BTreeMap<u64, U> {
        (0..rng.random_range(0..60))
            .map(|_| {
                // Ids from a small range, so that the two lists share most of them; a few
                // beyond 32 bits.
                let id = if rng.random_bool(0.1) { base + rng.random_range(0..8) } else { rng.random_range(0..80) };
                let groups = [1, 2, 5, 77].into_iter().filter(|_| rng.random_bool(0.3)).collect();
                let u = U {
                    deleted: rng.random_bool(0.15),
                    two_fa: rng.random_bool(0.5),
                    activated: rng.random_bool(0.7),
                    groups,
                };
                (id, u)
            })
            .collect()
    }

    #[test]
    fn counts_match_a_user_by_user_model_and_reconcile_with_the_gauges() {
        let mut rng = StdRng::seed_from_u64(13);
        for round in 0..300 {
            let before = random_list(&mut rng, u64::from(u32::MAX) + 1);
            let after = random_list(&mut rng, u64::from(u32::MAX) + 1);
            let (p, c) = (index(&before), index(&after));
            let changes = compare(&p, &c);
            let (expected_users, expected_groups) = model(&before, &after);
            assert_eq!(users(&changes), expected_users, "round {round}");
            let mut got: Vec<(String, [u64; 2])> =
                changes.groups.iter().map(|g| (g.group.id.to_string(), g.counts)).collect();
            got.sort();
            assert_eq!(got, expected_groups, "round {round}");
            // live(C) = live(P) + added − removed − deleted; members likewise.
            let get = |k: UserChange| changes.get(k);
            assert_eq!(
                c.active.len() + get(UserChange::Removed) + get(UserChange::Deleted),
                p.active.len() + get(UserChange::Added),
                "round {round}"
            );
            for (label, now) in &c.groups {
                let before = p.groups.iter().find(|(g, _)| g == label).map_or(0, |(_, m)| m.len());
                let [joined, left] = changes.groups.iter().find(|g| g.group == *label).map_or([0, 0], |g| g.counts);
                assert_eq!(now.len() + left, before + joined, "round {round}, group {label:?}");
            }
        }
    }

    fn label(id: &str) -> GroupLabel {
        GroupLabel { id: Arc::from(id), name: Arc::from(format!("Group {id}")) }
    }

    #[test]
    fn totals_start_at_zero_for_every_kind_and_known_group_and_add_up() {
        let mut totals = ChangeTotals::default();
        assert_eq!(totals.users().map(|(c, n)| (c.as_str(), n)).collect::<Vec<_>>().len(), 6);
        assert!(totals.users().all(|(_, n)| n == 0));
        let known: Vec<(&str, &str)> = totals.groups().map(|(g, c, _)| (&*g.id, c.as_str())).collect();
        assert_eq!(known.len(), KNOWN_GROUPS.len() * 2);
        assert_eq!(known[..2], [("1", "joined"), ("1", "left")]);

        let mut changes = Changes::default();
        changes.users[UserChange::TwoFaDisabled as usize] = 2;
        changes.groups.push(GroupChanges {
            group: GroupLabel { id: Arc::from("1"), name: Arc::from("Administrators") },
            counts: [1, 1],
        });
        changes.groups.push(GroupChanges { group: label("77"), counts: [3, 0] });
        totals.add(&changes);
        totals.add(&changes);
        let of =
            |id: &str| -> Vec<u64> { totals.groups().filter(|(g, _, _)| &*g.id == id).map(|(_, _, n)| n).collect() };
        assert_eq!(of("1"), [2, 2]);
        assert_eq!(of("77"), [6, 0]);
        assert_eq!(totals.users().find(|(c, _)| *c == UserChange::TwoFaDisabled).map(|(_, n)| n), Some(4));
        assert_eq!(totals.users().map(|(_, n)| n).sum::<u64>(), 4);
    }

    #[test]
    fn totals_keep_a_bounded_number_of_unknown_groups() {
        let mut totals = ChangeTotals::default();
        for i in 0..50u64 {
            let changes = Changes {
                users: [0; 6],
                groups: vec![GroupChanges { group: label(&(1000 + i).to_string()), counts: [1, 0] }],
            };
            totals.add(&changes);
        }
        let labels: BTreeSet<&str> = totals.groups().map(|(g, _, _)| &*g.id).collect();
        assert_eq!(labels.len(), KNOWN_GROUPS.len() + MAX_UNKNOWN_VALUES + 1);
        let other: u64 = totals.groups().filter(|(g, _, _)| &*g.id == OTHER).map(|(_, _, n)| n).sum();
        assert_eq!(other, 50 - MAX_UNKNOWN_VALUES as u64);
        assert_eq!(totals.groups().map(|(_, _, n)| n).sum::<u64>(), 50);
        // A group already counted keeps its own series.
        totals.add(&Changes { users: [0; 6], groups: vec![GroupChanges { group: label("1000"), counts: [0, 1] }] });
        assert_eq!(totals.groups().filter(|(g, _, _)| &*g.id == "1000").map(|(_, _, n)| n).sum::<u64>(), 2);
    }
}
