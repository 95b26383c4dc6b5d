//! The slow drift of the demo account, as a pure step so tests can run thousands of them
//! without a clock.
//!
//! The demo promises findings (an administrator without 2FA, a pending invitation; counted in
//! `demo.rs`, which this module builds on and which knows nothing of it); a change that would
//! erase the last one of them is never drawn, so the dashboards never go blank.

use rand::Rng;
use rand::seq::IndexedRandom;

use super::demo::{self, admins_without_2fa, is_admin_without_2fa, is_not_activated, not_activated};
use super::user::{FakeGroup, FakeUser, IAM_GROUPS};

/// What one step did, for the debug log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Invited { id: u64 },
    Activated { id: u64 },
    TwoFa { id: u64, on: bool },
    Deleted { id: u64 },
    JoinedGroup { id: u64, group: u64 },
}

/// Applies one random change. An invitation is always possible, so it is the fallback when
/// the drawn kind of change has no allowed candidate.
pub(crate) fn step(users: &mut Vec<FakeUser>, rng: &mut impl Rng) -> Change {
    let drawn = match rng.random_range(0..5) {
        0 => None,
        1 => activate(users, rng),
        2 => toggle_two_fa(users, rng),
        3 => delete(users, rng),
        _ => join_group(users, rng),
    };
    drawn.unwrap_or_else(|| invite(users, rng))
}

fn invite(users: &mut Vec<FakeUser>, rng: &mut impl Rng) -> Change {
    let id = users.iter().map(|u| u.id).max().map_or(1, |max| max + 1);
    let mut user = demo::person(rng, id);
    // An invitee has neither confirmed the email nor set up 2FA yet.
    user.activated = false;
    user.two_fa = false;
    users.push(user);
    Change::Invited { id }
}

fn activate(users: &mut [FakeUser], rng: &mut impl Rng) -> Option<Change> {
    if not_activated(users) < 2 {
        return None;
    }
    let user = choose_mut(users, rng, is_not_activated)?;
    user.activated = true;
    Some(Change::Activated { id: user.id })
}

fn toggle_two_fa(users: &mut [FakeUser], rng: &mut impl Rng) -> Option<Change> {
    let last_admin_without = admins_without_2fa(users) == 1;
    // Turning 2FA on for the last administrator without it would erase that finding.
    let spared = |u: &FakeUser| last_admin_without && is_admin_without_2fa(u);
    let user = choose_mut(users, rng, |u| !u.deleted && !spared(u))?;
    user.two_fa = !user.two_fa;
    Some(Change::TwoFa { id: user.id, on: user.two_fa })
}

fn delete(users: &mut [FakeUser], rng: &mut impl Rng) -> Option<Change> {
    let last_admin_without = admins_without_2fa(users) == 1;
    let last_not_activated = not_activated(users) == 1;
    // Groups with a single live member: deleting that member would empty a dashboard row.
    let lone_groups: Vec<u64> = IAM_GROUPS
        .iter()
        .map(|(g, _)| *g)
        .filter(|g| users.iter().filter(|u| !u.deleted && u.is_in_group(*g)).count() == 1)
        .collect();
    let spared = |u: &FakeUser| {
        (last_admin_without && is_admin_without_2fa(u))
            || (last_not_activated && is_not_activated(u))
            || lone_groups.iter().any(|g| u.is_in_group(*g))
    };
    let user = choose_mut(users, rng, |u| !u.deleted && !spared(u))?;
    user.deleted = true;
    user.is_active = false;
    Some(Change::Deleted { id: user.id })
}

fn join_group(users: &mut [FakeUser], rng: &mut impl Rng) -> Option<Change> {
    let user = choose_mut(users, rng, |u| !u.deleted && u.groups.len() < IAM_GROUPS.len())?;
    let group: FakeGroup = demo::group_to_join(rng, user)?;
    let change = Change::JoinedGroup { id: user.id, group: group.id };
    user.groups.push(group);
    Some(change)
}

fn choose_mut<'a>(
    users: &'a mut [FakeUser],
    rng: &mut impl Rng,
    allowed: impl Fn(&FakeUser) -> bool,
) -> Option<&'a mut FakeUser> {
    let candidates: Vec<usize> = (0..users.len()).filter(|&i| allowed(&users[i])).collect();
    let i = *candidates.choose(rng)?;
    Some(&mut users[i])
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::user::ADMINISTRATORS;

    #[test]
    fn five_hundred_steps_keep_the_findings_and_do_every_kind_of_change() {
        for seed in 0..5 {
            let mut users = demo::population(seed);
            let mut rng = StdRng::seed_from_u64(seed);
            let mut kinds = HashSet::new();
            for n in 0..500 {
                let change = step(&mut users, &mut rng);
                kinds.insert(std::mem::discriminant(&change));
                assert!(admins_without_2fa(&users) >= 1, "seed {seed} step {n}: {change:?}");
                assert!(not_activated(&users) >= 1, "seed {seed} step {n}: {change:?}");
                for (g, _) in IAM_GROUPS {
                    assert!(users.iter().any(|u| !u.deleted && u.is_in_group(g)));
                }
            }
            assert_eq!(kinds.len(), 5, "seed {seed}: every kind of change happens");
            let ids: HashSet<u64> = users.iter().map(|u| u.id).collect();
            assert_eq!(ids.len(), users.len(), "seed {seed}: invited ids are fresh");
        }
    }

    #[test]
    fn minimal_account_keeps_its_only_findings() {
        // One admin without 2FA who is also the only pending user: nothing may touch them
        // except changes that keep both findings.
        let mut users =
            vec![FakeUser::new(1).in_group(ADMINISTRATORS, "Administrators").two_fa(false).activated(false)];
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            step(&mut users, &mut rng);
            assert!(admins_without_2fa(&users) >= 1);
            assert!(not_activated(&users) >= 1);
        }
    }

    #[test]
    fn step_starts_an_empty_account() {
        let mut users = Vec::new();
        let change = step(&mut users, &mut StdRng::seed_from_u64(0));
        assert_eq!(change, Change::Invited { id: 1 });
        assert!(!users[0].activated);
    }
}
