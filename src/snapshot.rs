//! Pure aggregation of users into the counts that /metrics publishes; no I/O.
//!
//! A [`UserAggregator`] is fed one user at a time while pages are parsed (no `Vec<User>` is
//! ever built) and frozen into an immutable [`Snapshot`] once the poll is complete. Every label
//! value is bounded: known values are always present (at 0), and values the API adds later are
//! exported under their own name up to [`MAX_UNKNOWN_VALUES`] per label, then as `other`.

use std::sync::Arc;

use crate::idset::IdSet;

/// How many distinct unknown values one label may take before the rest become `other`.
pub const MAX_UNKNOWN_VALUES: usize = 20;

/// The value unknown values fall back to once a label has reached its cap.
pub const OTHER: &str = "other";

// Label indices must fit the 64-bit sets that de-duplicate a user's groups and auth types.
const _: () = assert!(KNOWN_GROUPS.len() + MAX_UNKNOWN_VALUES < 64);
const _: () = assert!(KNOWN_AUTH_TYPES.len() + MAX_UNKNOWN_VALUES < 64);

/// Unknown values are cut to this many bytes so a misbehaving API cannot bloat a label.
const MAX_LABEL_VALUE_BYTES: usize = 64;

/// The user types of the API contract.
pub const KNOWN_USER_TYPES: [&str; 3] = ["common", "reseller", "seller"];

/// The auth types of the API contract.
pub const KNOWN_AUTH_TYPES: [&str; 4] = ["password", "sso", "github", "google-oauth2"];

/// The groups of the API contract, by id. The fake API (`gcore-iam-fake`) keeps its own copy
/// (the product does not depend on its test kit); `tests/contract.rs` keeps the two equal.
pub const KNOWN_GROUPS: [(u64, &str); 5] = [
    (1, "Administrators"),
    (2, "Users"),
    (5, "Engineers"),
    (3009, "Purge and Prefetch only (API+Web)"),
    (3022, "Purge and Prefetch only (API)"),
];

/// One group reference of a user, as the API gave it (either part may be missing).
#[derive(Debug, Clone, Copy)]
pub struct GroupRef<'a> {
    pub id: Option<u64>,
    pub name: Option<&'a str>,
}

/// The facts about one user that the metrics use, borrowed from the page being parsed.
#[derive(Debug, Clone, Copy)]
pub struct UserFacts<'a> {
    pub id: u64,
    pub deleted: bool,
    pub user_type: &'a str,
    pub two_fa: bool,
    pub activated: bool,
    pub sso_auth: bool,
    pub is_active: bool,
}

/// A bounded set of label values: the known ones first, then up to [`MAX_UNKNOWN_VALUES`]
/// unknown ones, then `other`. Lookups scan a handful of entries, cheaper than hashing here.
#[derive(Debug, Clone)]
pub(crate) struct Vocabulary {
    pub(crate) values: Vec<Arc<str>>,
    known: usize,
    other: Option<usize>,
}

impl Vocabulary {
    pub(crate) fn new(known: &[&str]) -> Self {
        Vocabulary { values: known.iter().map(|v| Arc::from(*v)).collect(), known: known.len(), other: None }
    }

    pub(crate) fn index(&mut self, raw: &str) -> usize {
        if let Some(i) = self.values.iter().position(|v| &**v == raw) {
            return i;
        }
        let value = bounded_label_value(raw);
        if let Some(i) = self.values.iter().position(|v| **v == *value) {
            return i;
        }
        // A value spelled like the overflow bucket is put in it, or two series would share
        // the same labels.
        if value != OTHER && self.values.len() - self.known - usize::from(self.other.is_some()) < MAX_UNKNOWN_VALUES {
            self.values.push(Arc::from(value.as_str()));
            return self.values.len() - 1;
        }
        *self.other.get_or_insert_with(|| {
            self.values.push(Arc::from(OTHER));
            self.values.len() - 1
        })
    }
}

pub(crate) fn bounded_label_value(raw: &str) -> String {
    let raw = raw.trim();
    if raw.is_empty() {
        return "unknown".to_string();
    }
    let mut end = raw.len().min(MAX_LABEL_VALUE_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    raw[..end].chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The `group_id` and `group` labels of one group series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLabel {
    pub id: Arc<str>,
    pub name: Arc<str>,
}

/// Groups are identified by id (names are display text); a group without an id is matched by
/// name against the known ones.
#[derive(Debug, Clone)]
struct GroupVocabulary {
    /// (API id, label); the API id is None for the `other` bucket and id-less groups.
    groups: Vec<(Option<u64>, GroupLabel)>,
    unknown: usize,
    other: Option<usize>,
}

impl GroupVocabulary {
    fn new() -> Self {
        let groups = KNOWN_GROUPS
            .iter()
            .map(|(id, name)| (Some(*id), GroupLabel { id: Arc::from(id.to_string()), name: Arc::from(*name) }))
            .collect();
        GroupVocabulary { groups, unknown: 0, other: None }
    }

    fn index(&mut self, group: GroupRef<'_>) -> usize {
        let found = match group.id {
            Some(id) => self.groups.iter().position(|(gid, _)| *gid == Some(id)),
            None => {
                let name = group.name.map(bounded_label_value).unwrap_or_else(|| "unknown".into());
                self.groups.iter().position(|(_, label)| *label.name == *name && label.id.as_ref() != OTHER)
            }
        };
        if let Some(i) = found {
            return i;
        }
        if self.unknown < MAX_UNKNOWN_VALUES {
            self.unknown += 1;
            let id_label = group.id.map(|id| id.to_string()).unwrap_or_else(|| "unknown".into());
            let name = group.name.map(bounded_label_value).unwrap_or_else(|| "unknown".into());
            self.groups.push((group.id, GroupLabel { id: Arc::from(id_label), name: Arc::from(name) }));
            return self.groups.len() - 1;
        }
        *self.other.get_or_insert_with(|| {
            self.groups.push((None, GroupLabel { id: Arc::from(OTHER), name: Arc::from(OTHER) }));
            self.groups.len() - 1
        })
    }
}

/// One `gcore_iam_users` series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSeries {
    pub user_type: Arc<str>,
    pub two_fa: bool,
    pub activated: bool,
    pub sso_auth: bool,
    pub is_active: bool,
    pub users: u64,
}

/// One `gcore_iam_group_members` series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSeries {
    pub group: GroupLabel,
    pub two_fa: bool,
    pub activated: bool,
    pub users: u64,
}

/// One `gcore_iam_auth_type_users` series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthTypeSeries {
    pub auth_type: Arc<str>,
    pub two_fa: bool,
    pub users: u64,
}

/// The counts of one complete poll of one account. Immutable once built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub users: Vec<UserSeries>,
    pub groups: Vec<GroupSeries>,
    pub auth_types: Vec<AuthTypeSeries>,
    /// Non-deleted users.
    pub active_users: u64,
    pub deleted_users: u64,
    /// Distinct users received, deleted included; comparable with `reported_users`.
    pub fetched_users: u64,
    /// The `count` the API reported on the last page of the poll.
    pub reported_users: u64,
    /// Who is who, by id, for what compares two polls or joins another source by user id.
    pub index: UserIndex,
}

/// The users of one complete poll by id: what the change counters and the last-login buckets
/// need, and nothing more (no names, no e-mails). Deleted users are in `deleted` only, every
/// other set holds non-deleted users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserIndex {
    pub active: IdSet,
    pub deleted: IdSet,
    /// Users with two-step verification on.
    pub two_fa: IdSet,
    /// Users who confirmed their e-mail.
    pub activated: IdSet,
    /// The members of each group, in the order of the `gcore_iam_group_members` series. A user
    /// listed twice in one group is one member.
    pub groups: Vec<(GroupLabel, IdSet)>,
}

impl UserIndex {
    /// Heap bytes held by the sets, for the memory figures of the README.
    pub fn heap_bytes(&self) -> usize {
        [&self.active, &self.deleted, &self.two_fa, &self.activated]
            .into_iter()
            .chain(self.groups.iter().map(|(_, ids)| ids))
            .map(IdSet::heap_bytes)
            .sum()
    }
}

/// Accumulates users while a poll runs; de-duplicates them by id (the same user can appear on
/// two pages when the list shifts during a poll).
///
/// The ids seen are an [`IdSet`], whose cost per id is bounded whatever the ids are; with the
/// cap on users per poll (`--gcore.max-users`), the set of one poll is bounded too.
#[derive(Debug)]
pub struct UserAggregator {
    seen: IdSet,
    user_types: Vocabulary,
    /// Per user type, indexed by the [`flags`] of the user.
    user_counts: Vec<[u64; 16]>,
    groups: GroupVocabulary,
    /// Per group, indexed by `two_fa << 1 | activated`.
    group_counts: Vec<[u64; 4]>,
    auth_types: Vocabulary,
    /// Per auth type, indexed by `two_fa`.
    auth_counts: Vec<[u64; 2]>,
    deleted: IdSet,
    two_fa: IdSet,
    activated: IdSet,
    /// Per group (same index as `group_counts`), its members.
    group_members: Vec<IdSet>,
    duplicates: u64,
}

impl Default for UserAggregator {
    fn default() -> Self {
        Self::new()
    }
}

fn flags(user: &UserFacts<'_>) -> usize {
    usize::from(user.two_fa) << 3
        | usize::from(user.activated) << 2
        | usize::from(user.sso_auth) << 1
        | usize::from(user.is_active)
}

impl UserAggregator {
    pub fn new() -> Self {
        UserAggregator {
            seen: IdSet::default(),
            user_types: Vocabulary::new(&KNOWN_USER_TYPES),
            user_counts: vec![[0; 16]; KNOWN_USER_TYPES.len()],
            groups: GroupVocabulary::new(),
            group_counts: vec![[0; 4]; KNOWN_GROUPS.len()],
            auth_types: Vocabulary::new(&KNOWN_AUTH_TYPES),
            auth_counts: vec![[0; 2]; KNOWN_AUTH_TYPES.len()],
            deleted: IdSet::default(),
            two_fa: IdSet::default(),
            activated: IdSet::default(),
            group_members: vec![IdSet::default(); KNOWN_GROUPS.len()],
            duplicates: 0,
        }
    }

    /// Counts one user, unless a user with the same id was already counted in this poll.
    /// Returns whether the user was new.
    pub fn add<'g>(
        &mut self,
        user: &UserFacts<'_>,
        groups: impl IntoIterator<Item = GroupRef<'g>>,
        auth_types: impl IntoIterator<Item = &'g str>,
    ) -> bool {
        let new = !self.seen.contains(user.id);
        if let Some(mut counter) = self.begin(user) {
            groups.into_iter().for_each(|group| counter.group(group));
            auth_types.into_iter().for_each(|auth_type| counter.auth_type(auth_type));
        }
        new
    }

    /// Counts one user's own series and returns the counter of its groups and auth types, or
    /// `None` when there is nothing more to count: a user already counted in this poll, or a
    /// deleted one. The lists are given one entry at a time so that a reader never has to
    /// collect them: an answer may list a million groups for one user.
    pub fn begin(&mut self, user: &UserFacts<'_>) -> Option<UserCounter<'_>> {
        if !self.seen.insert(user.id) {
            self.duplicates += 1;
            return None;
        }
        if user.deleted {
            self.deleted.insert(user.id);
            return None;
        }
        if user.two_fa {
            self.two_fa.insert(user.id);
        }
        if user.activated {
            self.activated.insert(user.id);
        }
        let t = self.user_types.index(user.user_type);
        grow(&mut self.user_counts, t);
        self.user_counts[t][flags(user)] += 1;
        Some(UserCounter {
            aggregator: self,
            id: user.id,
            two_fa: user.two_fa,
            activated: user.activated,
            groups: 0,
            auth_types: 0,
        })
    }

    /// Distinct users seen so far, deleted included.
    pub fn fetched(&self) -> u64 {
        self.seen.len()
    }

    /// Users that arrived more than once in this poll (and were counted once).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Freezes the counts; `reported_users` is the API's `count`.
    pub fn finish(self, reported_users: u64) -> Snapshot {
        let mut users = Vec::with_capacity(self.user_counts.len() * 16);
        for (t, counts) in self.user_counts.iter().enumerate() {
            for (bits, &n) in counts.iter().enumerate() {
                users.push(UserSeries {
                    user_type: self.user_types.values[t].clone(),
                    two_fa: bits & 8 != 0,
                    activated: bits & 4 != 0,
                    sso_auth: bits & 2 != 0,
                    is_active: bits & 1 != 0,
                    users: n,
                });
            }
        }
        let mut groups = Vec::with_capacity(self.group_counts.len() * 4);
        for (g, counts) in self.group_counts.iter().enumerate() {
            for (bits, &n) in counts.iter().enumerate() {
                groups.push(GroupSeries {
                    group: self.groups.groups[g].1.clone(),
                    two_fa: bits & 2 != 0,
                    activated: bits & 1 != 0,
                    users: n,
                });
            }
        }
        let mut auth_types = Vec::with_capacity(self.auth_counts.len() * 2);
        for (a, counts) in self.auth_counts.iter().enumerate() {
            for (two_fa, &n) in counts.iter().enumerate() {
                auth_types.push(AuthTypeSeries {
                    auth_type: self.auth_types.values[a].clone(),
                    two_fa: two_fa == 1,
                    users: n,
                });
            }
        }
        let fetched_users = self.seen.len();
        let mut members = self.group_members;
        members.resize_with(self.groups.groups.len(), IdSet::default);
        let mut index = UserIndex {
            active: self.seen.difference(&self.deleted),
            deleted: self.deleted,
            two_fa: self.two_fa,
            activated: self.activated,
            groups: self.groups.groups.into_iter().map(|(_, label)| label).zip(members).collect(),
        };
        // Kept until the next complete poll: each set in its cheapest form.
        [&mut index.active, &mut index.deleted, &mut index.two_fa, &mut index.activated]
            .into_iter()
            .chain(index.groups.iter_mut().map(|(_, ids)| ids))
            .for_each(IdSet::freeze);
        Snapshot {
            active_users: index.active.len(),
            users,
            groups,
            auth_types,
            deleted_users: index.deleted.len(),
            fetched_users,
            reported_users,
            index,
        }
    }
}

/// Counts the groups and auth types of one new, non-deleted user ([`UserAggregator::begin`]).
pub struct UserCounter<'a> {
    aggregator: &'a mut UserAggregator,
    id: u64,
    two_fa: bool,
    activated: bool,
    /// The group and auth type indices already counted for this user: a group or auth type
    /// listed twice still counts the user once. Indices are bounded (known values +
    /// MAX_UNKNOWN_VALUES + the overflow bucket), so 64 bits remember them.
    groups: u64,
    auth_types: u64,
}

impl UserCounter<'_> {
    pub fn group(&mut self, group: GroupRef<'_>) {
        let g = self.aggregator.groups.index(group);
        if self.groups & 1 << g != 0 {
            return;
        }
        self.groups |= 1 << g;
        let counts = &mut self.aggregator.group_counts;
        grow(counts, g);
        counts[g][usize::from(self.two_fa) << 1 | usize::from(self.activated)] += 1;
        let members = &mut self.aggregator.group_members;
        if members.len() <= g {
            members.resize_with(g + 1, IdSet::default);
        }
        members[g].insert(self.id);
    }

    pub fn auth_type(&mut self, auth_type: &str) {
        let a = self.aggregator.auth_types.index(auth_type);
        if self.auth_types & 1 << a != 0 {
            return;
        }
        self.auth_types |= 1 << a;
        let counts = &mut self.aggregator.auth_counts;
        grow(counts, a);
        counts[a][usize::from(self.two_fa)] += 1;
    }
}

fn grow<const N: usize>(counts: &mut Vec<[u64; N]>, index: usize) {
    if counts.len() <= index {
        counts.resize(index + 1, [0; N]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: u64) -> UserFacts<'static> {
        UserFacts {
            id,
            deleted: false,
            user_type: "common",
            two_fa: true,
            activated: true,
            sso_auth: false,
            is_active: true,
        }
    }

    fn admin() -> GroupRef<'static> {
        GroupRef { id: Some(1), name: Some("Administrators") }
    }

    fn users_where(s: &Snapshot, f: impl Fn(&UserSeries) -> bool) -> u64 {
        s.users.iter().filter(|u| f(u)).map(|u| u.users).sum()
    }

    fn members(s: &Snapshot, group: &str, two_fa: Option<bool>) -> u64 {
        s.groups
            .iter()
            .filter(|g| &*g.group.name == group && two_fa.is_none_or(|t| g.two_fa == t))
            .map(|g| g.users)
            .sum()
    }

    #[test]
    fn empty_poll_exports_every_known_combination_at_zero() {
        let s = UserAggregator::new().finish(0);
        assert_eq!(s.users.len(), 3 * 16);
        assert_eq!(s.groups.len(), 5 * 4);
        assert_eq!(s.auth_types.len(), 4 * 2);
        assert!(s.users.iter().chain([]).all(|u| u.users == 0));
        assert_eq!(s.active_users, 0);
    }

    #[test]
    fn counts_groups_auth_types_and_deleted_users() {
        let mut agg = UserAggregator::new();
        // An administrator without 2FA who is also in Engineers, with two auth types.
        agg.add(
            &UserFacts { two_fa: false, ..user(1) },
            [admin(), GroupRef { id: Some(5), name: Some("Engineers") }],
            ["password", "github"],
        );
        // A non-activated SSO user.
        agg.add(
            &UserFacts { activated: false, sso_auth: true, ..user(2) },
            [GroupRef { id: Some(2), name: Some("Users") }],
            ["sso"],
        );
        // A reseller user with 2FA.
        agg.add(&UserFacts { user_type: "reseller", ..user(3) }, [admin()], ["password"]);
        // Deleted users count apart and nowhere else.
        agg.add(&UserFacts { deleted: true, ..user(4) }, [admin()], ["password"]);
        let s = agg.finish(4);

        assert_eq!(s.active_users, 3);
        assert_eq!(s.deleted_users, 1);
        assert_eq!(s.fetched_users, 4);
        assert_eq!(s.reported_users, 4);
        assert_eq!(users_where(&s, |_| true), 3);
        assert_eq!(users_where(&s, |u| !u.two_fa), 1);
        assert_eq!(users_where(&s, |u| !u.activated && u.sso_auth), 1);
        assert_eq!(users_where(&s, |u| &*u.user_type == "reseller"), 1);
        assert_eq!(members(&s, "Administrators", None), 2);
        assert_eq!(members(&s, "Administrators", Some(false)), 1);
        assert_eq!(members(&s, "Engineers", None), 1);
        assert_eq!(members(&s, "Users", None), 1);
        let auth = |name: &str| s.auth_types.iter().filter(|a| &*a.auth_type == name).map(|a| a.users).sum::<u64>();
        assert_eq!(auth("password"), 2);
        assert_eq!(auth("github"), 1);
        assert_eq!(auth("sso"), 1);
        assert_eq!(auth("google-oauth2"), 0);
    }

    #[test]
    fn index_holds_each_users_id_in_the_sets_it_belongs_to() {
        let mut agg = UserAggregator::new();
        agg.add(&UserFacts { two_fa: false, ..user(1) }, [admin(), admin()], ["password"]);
        agg.add(&UserFacts { activated: false, ..user(2) }, [GroupRef { id: Some(77), name: Some("Auditors") }], []);
        agg.add(&UserFacts { deleted: true, ..user(3) }, [admin()], ["password"]);
        agg.add(&user(u64::MAX), [admin()], []);
        let index = agg.finish(4).index;

        let ids = |set: &IdSet| {
            let mut v: Vec<u64> = set.iter().collect();
            v.sort_unstable();
            v
        };
        assert_eq!(ids(&index.active), [1, 2, u64::MAX]);
        assert_eq!(ids(&index.deleted), [3]);
        assert_eq!(ids(&index.two_fa), [2, u64::MAX]);
        assert_eq!(ids(&index.activated), [1, u64::MAX]);
        let group = |id: &str| index.groups.iter().find(|(g, _)| &*g.id == id).map(|(_, m)| ids(m));
        // Deleted users are members of nothing; every known group is there, empty or not.
        assert_eq!(group("1"), Some(vec![1, u64::MAX]));
        assert_eq!(group("77"), Some(vec![2]));
        assert_eq!(group("2"), Some(vec![]));
        assert_eq!(index.groups.len(), KNOWN_GROUPS.len() + 1);
    }

    #[test]
    fn duplicate_ids_and_repeated_groups_count_once() {
        let mut agg = UserAggregator::new();
        assert!(agg.add(&user(7), [admin(), admin()], ["password", "password"]));
        assert!(!agg.add(&user(7), [admin()], ["password"]));
        assert_eq!(agg.duplicates(), 1);
        let s = agg.finish(1);
        assert_eq!(s.active_users, 1);
        assert_eq!(members(&s, "Administrators", None), 1);
        assert_eq!(s.auth_types.iter().map(|a| a.users).sum::<u64>(), 1);
    }

    #[test]
    fn unknown_values_are_exported_then_capped() {
        let mut agg = UserAggregator::new();
        agg.add(
            &UserFacts { user_type: "partner", ..user(1) },
            [GroupRef { id: Some(77), name: Some("Auditors") }],
            ["saml-v2"],
        );
        for i in 0..30u64 {
            let t = format!("type-{i}");
            let a = format!("auth-{i}");
            let g = format!("Group {i}");
            agg.add(
                &UserFacts { user_type: &t, ..user(100 + i) },
                [GroupRef { id: Some(1000 + i), name: Some(&g) }],
                [a.as_str()],
            );
        }
        let s = agg.finish(31);
        assert_eq!(users_where(&s, |u| &*u.user_type == "partner"), 1);
        assert_eq!(members(&s, "Auditors", None), 1);
        assert!(s.groups.iter().any(|g| &*g.group.id == "77"));
        // 20 unknown values at most per label, the rest as "other": nothing dropped.
        let distinct_types: std::collections::BTreeSet<_> = s.users.iter().map(|u| u.user_type.clone()).collect();
        assert_eq!(distinct_types.len(), 3 + MAX_UNKNOWN_VALUES + 1);
        assert_eq!(users_where(&s, |u| &*u.user_type == OTHER), 31 - MAX_UNKNOWN_VALUES as u64);
        assert_eq!(members(&s, OTHER, None), 31 - MAX_UNKNOWN_VALUES as u64);
        assert_eq!(users_where(&s, |_| true), 31);
        assert_eq!(s.groups.iter().map(|g| g.users).sum::<u64>(), 31);
        assert_eq!(s.auth_types.iter().map(|a| a.users).sum::<u64>(), 31);
    }

    #[test]
    fn group_without_id_matches_known_name_and_odd_values_are_bounded() {
        let mut agg = UserAggregator::new();
        let long = "x".repeat(500);
        agg.add(
            &UserFacts { user_type: &long, ..user(1) },
            [GroupRef { id: None, name: Some("Users") }],
            ["line\nbreak"],
        );
        let s = agg.finish(1);
        assert_eq!(members(&s, "Users", None), 1);
        assert!(s.users.iter().all(|u| u.user_type.len() <= MAX_LABEL_VALUE_BYTES));
        assert!(s.auth_types.iter().all(|a| !a.auth_type.contains('\n')));
    }
}
