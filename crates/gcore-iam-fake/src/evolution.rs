//! The slow drift of the demo account, as a pure step so tests can run thousands of them
//! without a clock.
//!
//! The demo promises findings (an administrator without 2FA, a pending invitation; counted in
//! `demo.rs`, which this module builds on and which knows nothing of it); a change that would
//! erase the last one of them is never drawn, so the dashboards never go blank. Besides the
//! slow drift, it makes the change alerts fire now and then: an administrator swapped for
//! another user (often one without 2FA), 2FA turned off, and a burst of users removed from the
//! list, re-invited a few steps later so that the population stays about the same.

use rand::Rng;
use rand::seq::IndexedRandom;

use super::demo::{self, admins_without_2fa, is_admin_without_2fa, is_not_activated, not_activated};
use super::user::{ADMINISTRATORS, FakeGroup, FakeUser, IAM_GROUPS, USERS};

/// Users removed from the list in one burst.
pub(crate) const BURST: usize = 6;

/// What one step did, for the debug log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Invited {
        id: u64,
    },
    Activated {
        id: u64,
    },
    TwoFa {
        id: u64,
        on: bool,
    },
    Deleted {
        id: u64,
    },
    JoinedGroup {
        id: u64,
        group: u64,
    },
    /// One administrator left the Administrators group and another user joined it.
    AdministratorSwapped {
        left: u64,
        joined: u64,
        joined_has_2fa: bool,
    },
    /// Users removed from the list at once (not flagged deleted: gone).
    Removed {
        ids: Vec<u64>,
    },
    /// As many users as the last burst removed invited again (with fresh ids).
    Reinvited {
        ids: Vec<u64>,
    },
}

/// What the drift remembers between steps: the users of the last burst, still to re-invite,
/// and the next fresh id (a removed user's id is never given again, as the real API does not).
#[derive(Clone, Debug, Default)]
pub(crate) struct Drift {
    to_reinvite: usize,
    next_id: u64,
}

/// Applies one random change. An invitation is always possible, so it is the fallback when
/// the drawn kind of change has no allowed candidate.
pub(crate) fn step(users: &mut Vec<FakeUser>, rng: &mut impl Rng, drift: &mut Drift) -> Change {
    let drawn = match rng.random_range(0..8) {
        0 => None,
        1 => activate(users, rng),
        2 => toggle_two_fa(users, rng),
        3 => delete(users, rng),
        4 => join_group(users, rng),
        5 => swap_administrator(users, rng),
        6 => turn_two_fa_off(users, rng),
        // A burst one draw in ten (about every 80 steps, half an hour at the demo's 20 s), and
        // its users back at the next such draw (some 8 steps later).
        _ if drift.to_reinvite > 0 => Some(reinvite(users, rng, drift)),
        _ if rng.random_bool(0.1) => remove_burst(users, rng, drift),
        _ => None,
    };
    drawn.unwrap_or_else(|| invite(users, rng, drift))
}

fn invite(users: &mut Vec<FakeUser>, rng: &mut impl Rng, drift: &mut Drift) -> Change {
    Change::Invited { id: invite_one(users, rng, drift) }
}

/// Adds a new user; returns its id.
fn invite_one(users: &mut Vec<FakeUser>, rng: &mut impl Rng, drift: &mut Drift) -> u64 {
    let id = fresh_id(users, drift);
    let mut user = demo::person(rng, id);
    // An invitee has neither confirmed the email nor set up 2FA yet.
    user.activated = false;
    user.two_fa = false;
    users.push(user);
    id
}

fn fresh_id(users: &[FakeUser], drift: &mut Drift) -> u64 {
    let id = users.iter().map(|u| u.id + 1).max().unwrap_or(1).max(drift.next_id);
    drift.next_id = id + 1;
    id
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
    let lone_groups = lone_groups(users);
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

/// One administrator leaves the Administrators group (for Users, if it was its only group) and
/// a live non-administrator joins it: the count of administrators does not move. Half the time
/// the newcomer is someone without 2FA, what the most urgent alert looks for.
fn swap_administrator(users: &mut [FakeUser], rng: &mut impl Rng) -> Option<Change> {
    let last_admin_without = admins_without_2fa(users) == 1;
    let leaving =
        |u: &FakeUser| !u.deleted && u.is_in_group(ADMINISTRATORS) && !(last_admin_without && is_admin_without_2fa(u));
    let without_2fa = rng.random_bool(0.5);
    let joining = |u: &FakeUser| !u.deleted && !u.is_in_group(ADMINISTRATORS) && (!without_2fa || !u.two_fa);
    let leaving: Vec<usize> = (0..users.len()).filter(|&i| leaving(&users[i])).collect();
    let joining: Vec<usize> = (0..users.len()).filter(|&i| joining(&users[i])).collect();
    let (&left, &joined) = (leaving.choose(rng)?, joining.choose(rng)?);
    let (plain, admin) = (FakeGroup::standard(USERS)?, FakeGroup::standard(ADMINISTRATORS)?);
    let user = &mut users[left];
    user.groups.retain(|g| g.id != ADMINISTRATORS);
    if user.groups.is_empty() {
        user.groups.push(plain);
    }
    users[joined].groups.push(admin);
    Some(Change::AdministratorSwapped {
        left: users[left].id,
        joined: users[joined].id,
        joined_has_2fa: users[joined].two_fa,
    })
}

/// Someone with 2FA turns it off.
fn turn_two_fa_off(users: &mut [FakeUser], rng: &mut impl Rng) -> Option<Change> {
    let user = choose_mut(users, rng, |u| !u.deleted && u.two_fa)?;
    user.two_fa = false;
    Some(Change::TwoFa { id: user.id, on: false })
}

/// [`BURST`] live users, none of them an administrator nor the last holder of a finding or the
/// last member of a group, disappear from the list.
fn remove_burst(users: &mut Vec<FakeUser>, rng: &mut impl Rng, drift: &mut Drift) -> Option<Change> {
    let mut ids = Vec::with_capacity(BURST);
    for _ in 0..BURST {
        let last_not_activated = not_activated(users) == 1;
        let lone_groups = lone_groups(users);
        let spared = |u: &FakeUser| {
            u.is_in_group(ADMINISTRATORS)
                || (last_not_activated && is_not_activated(u))
                || lone_groups.iter().any(|g| u.is_in_group(*g))
        };
        let allowed = |u: &FakeUser| !u.deleted && !spared(u);
        let candidates: Vec<usize> = (0..users.len()).filter(|&i| allowed(&users[i])).collect();
        let Some(&i) = candidates.choose(rng) else { break };
        ids.push(users.remove(i).id);
    }
    if ids.is_empty() {
        return None;
    }
    // The ids are gone from the list; they must not be given to the next invitee.
    drift.next_id = drift.next_id.max(ids.iter().map(|id| id + 1).max().unwrap_or(0));
    drift.to_reinvite = ids.len();
    Some(Change::Removed { ids })
}

/// The users of the last burst come back, as new invitations (fresh ids).
fn reinvite(users: &mut Vec<FakeUser>, rng: &mut impl Rng, drift: &mut Drift) -> Change {
    let ids = (0..std::mem::take(&mut drift.to_reinvite)).map(|_| invite_one(users, rng, drift)).collect();
    Change::Reinvited { ids }
}

/// Standard groups with a single live member: removing that member would empty a dashboard row.
fn lone_groups(users: &[FakeUser]) -> Vec<u64> {
    IAM_GROUPS
        .iter()
        .map(|(g, _)| *g)
        .filter(|g| users.iter().filter(|u| !u.deleted && u.is_in_group(*g)).count() == 1)
        .collect()
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

    fn live_admins(users: &[FakeUser]) -> usize {
        users.iter().filter(|u| !u.deleted && u.is_in_group(ADMINISTRATORS)).count()
    }

    #[test]
    fn many_steps_keep_the_findings_and_do_every_kind_of_change() {
        for seed in 0..5 {
            let mut users = demo::population(seed);
            let mut rng = StdRng::seed_from_u64(seed);
            let mut drift = Drift::default();
            let mut kinds = HashSet::new();
            let mut ever: HashSet<u64> = users.iter().map(|u| u.id).collect();
            for n in 0..1000 {
                let admins = live_admins(&users);
                let change = step(&mut users, &mut rng, &mut drift);
                kinds.insert(std::mem::discriminant(&change));
                assert!(admins_without_2fa(&users) >= 1, "seed {seed} step {n}: {change:?}");
                assert!(not_activated(&users) >= 1, "seed {seed} step {n}: {change:?}");
                for (g, _) in IAM_GROUPS {
                    assert!(users.iter().any(|u| !u.deleted && u.is_in_group(g)), "seed {seed} step {n}: {change:?}");
                }
                match &change {
                    Change::Invited { id } => assert!(ever.insert(*id), "seed {seed}: id {id} given twice"),
                    Change::Reinvited { ids } => {
                        assert!(ids.iter().all(|id| ever.insert(*id)), "seed {seed}: an id given twice: {ids:?}")
                    }
                    Change::AdministratorSwapped { left, joined, .. } => {
                        assert_eq!(live_admins(&users), admins, "seed {seed} step {n}: a swap keeps the count");
                        let user = |id: &u64| users.iter().find(|u| u.id == *id).unwrap();
                        assert!(!user(left).is_in_group(ADMINISTRATORS) && !user(left).groups.is_empty());
                        assert!(user(joined).is_in_group(ADMINISTRATORS));
                    }
                    Change::Removed { ids } => {
                        assert_eq!(ids.len(), BURST, "seed {seed} step {n}");
                        assert!(ids.iter().all(|id| users.iter().all(|u| u.id != *id)), "gone from the list");
                    }
                    _ => {}
                }
            }
            assert_eq!(kinds.len(), 8, "seed {seed}: every kind of change happens");
            let ids: HashSet<u64> = users.iter().map(|u| u.id).collect();
            assert_eq!(ids.len(), users.len(), "seed {seed}: ids are unique");
        }
    }

    /// At the demo's 20 s a step, 180 steps are an hour: every hour an administrator is
    /// swapped (one of them for someone without 2FA every few hours) and 2FA is turned off, and
    /// a burst of removed users happens several times a day, its users back soon after.
    #[test]
    fn the_change_alerts_have_something_to_fire_on_every_so_often() {
        for seed in 0..5 {
            let mut users = demo::population(seed);
            let mut rng = StdRng::seed_from_u64(seed);
            let mut drift = Drift::default();
            let changes: Vec<Change> = (0..2000).map(|_| step(&mut users, &mut rng, &mut drift)).collect();
            for (hour, window) in changes.chunks_exact(180).enumerate() {
                let swaps = window.iter().filter(|c| matches!(c, Change::AdministratorSwapped { .. })).count();
                let off = window.iter().filter(|c| matches!(c, Change::TwoFa { on: false, .. })).count();
                assert!(swaps >= 1 && off >= 1, "seed {seed} hour {hour}: {swaps} swaps, {off} 2FA off");
            }
            let insecure_swaps = changes
                .iter()
                .filter(|c| matches!(c, Change::AdministratorSwapped { joined_has_2fa: false, .. }))
                .count();
            assert!(insecure_swaps >= 50, "seed {seed}: {insecure_swaps} administrators without 2FA joined");
            let bursts = changes.iter().filter(|c| matches!(c, Change::Removed { .. })).count();
            let back: usize =
                changes.iter().map(|c| if let Change::Reinvited { ids } = c { ids.len() } else { 0 }).sum();
            assert!(bursts >= 10, "seed {seed}: {bursts} bursts in 2,000 steps");
            // Every burst is re-invited, but perhaps the last one.
            assert!(
                back == bursts * BURST || back == (bursts - 1) * BURST,
                "seed {seed}: {bursts} bursts, {back} back"
            );
        }
    }

    #[test]
    fn minimal_account_keeps_its_only_findings() {
        // One admin without 2FA who is also the only pending user: nothing may touch them
        // except changes that keep both findings.
        let mut users =
            vec![FakeUser::new(1).in_group(ADMINISTRATORS, "Administrators").two_fa(false).activated(false)];
        let mut rng = StdRng::seed_from_u64(1);
        let mut drift = Drift::default();
        for _ in 0..200 {
            step(&mut users, &mut rng, &mut drift);
            assert!(admins_without_2fa(&users) >= 1);
            assert!(not_activated(&users) >= 1);
        }
    }

    #[test]
    fn step_starts_an_empty_account() {
        let mut users = Vec::new();
        let change = step(&mut users, &mut StdRng::seed_from_u64(0), &mut Drift::default());
        assert_eq!(change, Change::Invited { id: 1 });
        assert!(!users[0].activated);
    }
}
