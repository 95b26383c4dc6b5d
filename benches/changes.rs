//! The cost of the change counters (issue 13): the memory a poll's [`UserIndex`] keeps between
//! two polls, and the time one comparison of two polls takes, at 100,000 and 1,000,000 users,
//! with ids dense (consecutive, small gaps, as Gcore gives them), spread over the 32-bit range,
//! and spread over the 64-bit range (what a hostile API could send; `--gcore.max-users` bounds
//! how many).
//!
//! `cargo bench --bench changes` prints, before the timings, one line per case: the index's
//! `heap_bytes()` (estimated from its sets' forms and lengths), and the growth of the process's
//! resident memory while the two polls were aggregated and kept (both indexes, as while a
//! comparison runs). The resident figure is fair only for the first case a process builds:
//! `GCORE_IAM_BENCH_CASE=1000000/Spread32 cargo bench --bench changes` builds that case alone.
//! A comparison allocates nothing but the list of changed groups, so its peak is the two
//! indexes it reads: the previous poll's and the current one's.
#![allow(clippy::unwrap_used)] // a bench may unwrap: a panic is its failure report

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gcore_iam_exporter::changes::compare;
use gcore_iam_exporter::snapshot::{GroupRef, KNOWN_GROUPS, UserAggregator, UserFacts, UserIndex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, Debug)]
enum Ids {
    Dense,
    Spread32,
    Spread64,
}

/// One user of the synthetic account: (id, deleted, 2FA, activated, groups by index in
/// KNOWN_GROUPS), with the demo account's proportions.
type User = (u64, bool, bool, bool, Vec<usize>);

/// `n` users; dense ids start after `after`.
fn population(n: usize, ids: Ids, after: u64, rng: &mut StdRng) -> Vec<User> {
    let mut next = after;
    (0..n)
        .map(|_| {
            let id = match ids {
                Ids::Dense => {
                    next += rng.random_range(1..=4);
                    next
                }
                Ids::Spread32 => u64::from(rng.random::<u32>()),
                Ids::Spread64 => rng.random::<u64>() | 1 << 63,
            };
            let mut groups = vec![[0, 1, 1, 1, 1, 2, 2, 3, 4, 1][rng.random_range(0..10)]];
            if rng.random_bool(0.07) {
                groups.push(rng.random_range(0..KNOWN_GROUPS.len()));
            }
            (id, rng.random_bool(0.03), rng.random_bool(0.62), rng.random_bool(0.94), groups)
        })
        .collect()
}

/// The next poll: about 1 % of the users changed (2FA toggled, activated, deleted, removed, a
/// group swapped) and 0.5 % new ones.
fn evolve(users: &[User], ids: Ids, rng: &mut StdRng) -> Vec<User> {
    let mut next = Vec::with_capacity(users.len() + users.len() / 200);
    for user in users {
        if rng.random_bool(0.002) {
            continue;
        }
        let mut u = user.clone();
        match rng.random_range(0..1000) {
            0..=3 => u.2 = !u.2,
            4 => u.3 = true,
            5 => u.1 = true,
            6..=7 => u.4 = vec![rng.random_range(0..KNOWN_GROUPS.len())],
            _ => {}
        }
        next.push(u);
    }
    let highest = users.iter().map(|u| u.0).max().unwrap_or(0);
    next.extend(population(users.len() / 200, ids, highest, rng));
    next
}

fn index(users: &[User]) -> UserIndex {
    let mut aggregator = UserAggregator::new();
    for (id, deleted, two_fa, activated, groups) in users {
        let facts = UserFacts {
            id: *id,
            deleted: *deleted,
            user_type: "common",
            two_fa: *two_fa,
            activated: *activated,
            sso_auth: false,
            is_active: !deleted,
        };
        let groups = groups.iter().map(|&g| GroupRef { id: Some(KNOWN_GROUPS[g].0), name: Some(KNOWN_GROUPS[g].1) });
        aggregator.add(&facts, groups, ["password"]);
    }
    aggregator.finish(users.len() as u64).index
}

/// Resident memory of this process, from /proc (Linux); 0 elsewhere.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("compare");
    for n in [100_000usize, 1_000_000] {
        for ids in [Ids::Dense, Ids::Spread32, Ids::Spread64] {
            let case = format!("{n}/{ids:?}");
            if std::env::var("GCORE_IAM_BENCH_CASE").is_ok_and(|only| only != case) {
                continue;
            }
            let mut rng = StdRng::seed_from_u64(13);
            let before_users = population(n, ids, 100_000, &mut rng);
            let after_users = evolve(&before_users, ids, &mut rng);
            let rss = resident_bytes();
            let before = index(&before_users);
            let kept = resident_bytes().saturating_sub(rss);
            let after = index(&after_users);
            let grown = resident_bytes().saturating_sub(rss);
            drop((before_users, after_users));
            let changes = compare(&before, &after);
            let mib = |b: usize| b as f64 / (1 << 20) as f64;
            println!(
                "{case}: index {:.2} MiB ({:.1} bytes a user); RSS grew {:.1} MiB with one index, {:.1} MiB with two; changes {:?}, {} groups changed",
                mib(before.heap_bytes()),
                before.heap_bytes() as f64 / n as f64,
                mib(kept as usize),
                mib(grown as usize),
                changes.users,
                changes.groups.len(),
            );
            group.bench_with_input(BenchmarkId::new(format!("{ids:?}"), n), &(before, after), |b, (p, c)| {
                b.iter(|| black_box(compare(black_box(p), black_box(c))))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
