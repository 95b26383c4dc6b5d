//! The login log of the demo account: a plausible history, then new events as time passes,
//! so that every login alert fires now and then in `--demo`.
//!
//! The history: most users logged in within the last days, some weeks or months ago, some
//! never; at least two administrators' last successful login is more than 90 days old (dormant
//! administrators) and stays so (dormant users are never drawn to log in again). Then,
//! at each step of the evolution: a few successful logins by recently active users, now and then
//! a failed one, sometimes a burst of failures (30 within a minute for one user) and, rarely, a
//! successful login by a user the users list marks deleted.
//!
//! Kept apart from `demo.rs` and `evolution.rs` (the users' side): these functions only read
//! the users.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use rand::Rng;
use rand::seq::IndexedRandom;

use super::logins::{FakeLogin, LoginLog};
use super::user::{ADMINISTRATORS, FakeUser};

/// Events of the demo history get ids from here up, in the order they happened.
const FIRST_EVENT_ID: u64 = 7_000_001;
/// The demo log keeps this many events at most (it runs for days); the oldest go first, as a
/// real log's retention would drop them.
pub(crate) const MAX_DEMO_LOGINS: usize = 20_000;
/// Failures of one burst (all within a minute, one user).
pub(crate) const BURST: usize = 30;
/// Users whose last successful login is older than this are never drawn to log in again.
const ACTIVE_WITHIN: Duration = Duration::from_secs(30 * 86_400);
#[cfg(test)]
const DAY: Duration = Duration::from_secs(86_400);

const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "python-requests/2.31.0",
];

/// How long ago a user of the history last logged in successfully.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recency {
    Days,
    Weeks,
    Months,
    Dormant,
    Never,
}

/// The demo history for `users` up to `now`, oldest first.
pub(crate) fn history(users: &[FakeUser], now: SystemTime, rng: &mut impl Rng) -> Vec<FakeLogin> {
    let mut recency: Vec<Recency> = users.iter().map(|_| draw_recency(rng)).collect();
    // The promised findings, whatever the draw: dormant administrators (two where there are
    // two, so that one removed from the group or deleted by the users' evolution still leaves
    // the finding) and a user who never logged in.
    let live = |i: &usize| !users[*i].deleted;
    let admins: Vec<usize> = (0..users.len()).filter(live).filter(|&i| users[i].is_in_group(ADMINISTRATORS)).collect();
    let dormant = admins.iter().filter(|&&i| recency[i] == Recency::Dormant).count();
    let make_dormant: Vec<usize> =
        admins.into_iter().filter(|&i| recency[i] != Recency::Dormant).take(2usize.saturating_sub(dormant)).collect();
    for i in make_dormant {
        recency[i] = Recency::Dormant;
    }
    if let Some(i) = (0..users.len()).filter(live).rfind(|&i| recency[i] != Recency::Dormant)
        && !(0..users.len()).filter(live).any(|i| recency[i] == Recency::Never)
    {
        recency[i] = Recency::Never;
    }

    let mut events: Vec<(SystemTime, FakeLogin)> = Vec::new();
    for (user, recency) in users.iter().zip(recency) {
        let ago = match recency {
            Recency::Days => rng.random_range(60..6 * 86_400),
            Recency::Weeks => rng.random_range(8 * 86_400..28 * 86_400),
            Recency::Months => rng.random_range(31 * 86_400..85 * 86_400),
            Recency::Dormant => rng.random_range(95 * 86_400..400 * 86_400),
            Recency::Never => {
                // A few never got in: failed attempts only.
                if rng.random_bool(0.3) {
                    let at = now - Duration::from_secs(rng.random_range(86_400..60 * 86_400));
                    events.push((at, event(rng, user, at).failed()));
                }
                continue;
            }
        };
        let last = now - Duration::from_secs(ago);
        events.push((last, event(rng, user, last)));
        // Earlier logins, and now and then a mistyped password.
        for _ in 0..rng.random_range(0..4) {
            let at = last - Duration::from_secs(rng.random_range(3600..120 * 86_400));
            let login = event(rng, user, at);
            events.push((at, if rng.random_bool(0.15) { login.failed() } else { login }));
        }
    }
    events.sort_by_key(|(at, _)| *at);
    events.into_iter().zip(FIRST_EVENT_ID..).map(|((_, login), id)| FakeLogin { id, ..login }).collect()
}

fn draw_recency(rng: &mut impl Rng) -> Recency {
    match rng.random_range(0..100) {
        0..70 => Recency::Days,
        70..82 => Recency::Weeks,
        82..88 => Recency::Months,
        88..93 => Recency::Dormant,
        _ => Recency::Never,
    }
}

/// A successful login of `user` at `at` with one of the user's auth types (id set later).
fn event(rng: &mut impl Rng, user: &FakeUser, at: SystemTime) -> FakeLogin {
    let auth_type = user.auth_types.choose(rng).map_or("password", String::as_str);
    let agent = USER_AGENTS.choose(rng).copied().unwrap_or(USER_AGENTS[0]);
    FakeLogin::new(0, user.id)
        .at(at)
        .auth_type(auth_type)
        .ip(&format!("198.51.100.{}", rng.random_range(1..255)))
        .user_agent(agent)
}

/// What one step added, for the debug log and the tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LoginChange {
    Logins { events: usize },
    Failed { user: u64 },
    Burst { user: u64 },
    DeletedUserLogin { user: u64 },
    Nothing,
}

/// Adds the events of one step of the demo (the evolution runs one every 20 s) to `log`, at
/// `now`, then trims the log to [`MAX_DEMO_LOGINS`].
pub(crate) fn step(users: &[FakeUser], log: &mut LoginLog, now: SystemTime, rng: &mut impl Rng) -> LoginChange {
    let mut next_id = log.events().iter().map(|e| e.id).max().map_or(FIRST_EVENT_ID, |id| id + 1);
    let mut new = Vec::new();
    let mut add = |login: FakeLogin| {
        new.push(FakeLogin { id: next_id, ..login });
        next_id += 1;
    };
    let recent = recently_active(users, log, now);
    let change = match rng.random_range(0..150) {
        // About every 17 minutes: a password-guessing burst against one user.
        0..3 => match users.iter().filter(|u| !u.deleted).collect::<Vec<_>>().choose(rng) {
            Some(user) => {
                for i in 0..BURST {
                    let at = now - Duration::from_millis(500 * (BURST - i) as u64);
                    add(event(rng, user, at).auth_type("password").failed());
                }
                LoginChange::Burst { user: user.id }
            }
            None => LoginChange::Nothing,
        },
        // About every 50 minutes: a user marked deleted logs in all the same.
        3 => match users.iter().filter(|u| u.deleted).collect::<Vec<_>>().choose(rng) {
            Some(user) => {
                add(event(rng, user, now));
                LoginChange::DeletedUserLogin { user: user.id }
            }
            None => LoginChange::Nothing,
        },
        4..20 => match recent.choose(rng) {
            Some(user) => {
                add(event(rng, user, now).failed());
                LoginChange::Failed { user: user.id }
            }
            None => LoginChange::Nothing,
        },
        _ => {
            let n = rng.random_range(1..=2).min(recent.len());
            for (i, user) in recent.choose_multiple(rng, n).enumerate() {
                add(event(rng, user, now - Duration::from_secs((n - i) as u64)));
            }
            LoginChange::Logins { events: n }
        }
    };
    log.push(new);
    log.truncate_oldest(MAX_DEMO_LOGINS);
    change
}

/// Non-deleted users whose last successful login is within [`ACTIVE_WITHIN`] of `now`: the
/// ones drawn to log in, so that dormant users stay dormant and those who never logged in stay
/// so.
fn recently_active<'a>(users: &'a [FakeUser], log: &LoginLog, now: SystemTime) -> Vec<&'a FakeUser> {
    let mut last: HashMap<u64, &str> = HashMap::new();
    for event in log.events().iter().filter(|e| e.is_successful) {
        // Oldest first: the last write is the newest.
        last.insert(event.user, &event.login_at);
    }
    let since = now - ACTIVE_WITHIN;
    users
        .iter()
        .filter(|u| !u.deleted)
        .filter(|u| last.get(&u.id).and_then(|at| humantime::parse_rfc3339(at).ok()).is_some_and(|at| at >= since))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::demo;

    fn last_success(log: &[FakeLogin], user: u64) -> Option<SystemTime> {
        log.iter()
            .filter(|e| e.user == user && e.is_successful)
            .map(|e| humantime::parse_rfc3339(&e.login_at).unwrap())
            .max()
    }

    #[test]
    fn history_has_the_promised_recencies_for_many_seeds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for seed in 0..30 {
            let users = demo::population(seed);
            let log = history(&users, now, &mut StdRng::seed_from_u64(seed));
            let live: Vec<&FakeUser> = users.iter().filter(|u| !u.deleted).collect();
            let age = |u: &FakeUser| last_success(&log, u.id).map(|t| now.duration_since(t).unwrap());
            let dormant = live.iter().filter(|u| u.is_in_group(ADMINISTRATORS) && age(u).is_some_and(|a| a > 90 * DAY));
            assert!(dormant.count() >= 2, "seed {seed}: two dormant administrators");
            assert!(live.iter().any(|u| age(u).is_none()), "seed {seed}: someone never logged in");
            let within_a_day = live.iter().filter(|u| age(u).is_some_and(|a| a <= DAY)).count();
            let within_a_week = live.iter().filter(|u| age(u).is_some_and(|a| a <= 7 * DAY)).count();
            assert!(within_a_day > 0 && within_a_week * 2 > live.len(), "seed {seed}: most log in within days");
            assert!(log.windows(2).all(|w| w[0].login_at <= w[1].login_at && w[0].id < w[1].id), "oldest first");
            assert!(log.iter().any(|e| !e.is_successful));
        }
    }

    #[test]
    fn steps_bring_bursts_deleted_user_logins_and_keep_the_dormant_dormant() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let users = demo::population(4);
        let mut rng = StdRng::seed_from_u64(4);
        let mut log = LoginLog::default();
        log.push(history(&users, start, &mut rng));
        let dormant: Vec<u64> = users
            .iter()
            .filter(|u| last_success(log.events(), u.id).is_some_and(|t| start.duration_since(t).unwrap() > 90 * DAY))
            .map(|u| u.id)
            .collect();
        let mut kinds = HashSet::new();
        // Six hours of demo: one step every 20 s.
        for n in 0..1080u64 {
            let now = start + Duration::from_secs(20 * n);
            let change = step(&users, &mut log, now, &mut rng);
            if let LoginChange::Burst { user } = change {
                let tail = &log.events()[log.events().len() - BURST..];
                assert!(tail.iter().all(|e| e.user == user && !e.is_successful));
                let first = humantime::parse_rfc3339(&tail[0].login_at).unwrap();
                assert!(now.duration_since(first).unwrap() <= Duration::from_secs(60));
            }
            if let LoginChange::DeletedUserLogin { user } = change {
                assert!(users.iter().any(|u| u.id == user && u.deleted));
            }
            kinds.insert(std::mem::discriminant(&change));
        }
        assert!(!kinds.contains(&std::mem::discriminant(&LoginChange::Nothing)));
        assert_eq!(kinds.len(), 4, "every kind of step happens within hours: {kinds:?}");
        for id in dormant {
            let age = start.duration_since(last_success(log.events(), id).unwrap()).unwrap();
            assert!(age > 90 * DAY, "user {id} stays dormant");
        }
        assert!(log.events().len() <= MAX_DEMO_LOGINS);
        let ids: HashSet<u64> = log.events().iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), log.events().len(), "event ids are unique");
    }
}
