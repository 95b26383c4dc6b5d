//! Feeds arbitrary bytes to the users-page parser: it must never panic, it must accept and
//! refuse exactly what the serde reading it replaced accepts and refuses, with the same counts,
//! and whatever it accepts must aggregate into a consistent snapshot.

#![no_main]

use gcore_iam_exporter::gcore::wire::parse_page;
use gcore_iam_exporter::snapshot::UserAggregator;
use gcore_iam_testkit::oracle as serde_page_oracle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut aggregator = UserAggregator::new();
    let parsed = parse_page(data, &mut aggregator);
    let mut oracle = UserAggregator::new();
    let expected = serde_page_oracle::parse_page_with_serde(data, &mut oracle);
    assert_eq!(parsed.is_ok(), expected.is_ok(), "scanner {parsed:?}, serde {expected:?}");
    let Ok(page) = parsed else { return };
    assert_eq!(Ok(page), expected.map_err(drop));
    let duplicates = aggregator.duplicates();
    let snapshot = aggregator.finish(page.count.unwrap_or(0));
    assert_eq!(snapshot, oracle.finish(page.count.unwrap_or(0)));
    // Every record is either a new user or a duplicate; live and deleted users partition them.
    assert_eq!(snapshot.fetched_users + duplicates, page.results);
    assert_eq!(snapshot.active_users + snapshot.deleted_users, snapshot.fetched_users);
    assert_eq!(snapshot.users.iter().map(|u| u.users).sum::<u64>(), snapshot.active_users);
    // Labels stay bounded: 3 known user types + 20 unknown + "other", 16 flag crossings each.
    assert!(snapshot.users.len() <= 24 * 16);
    assert!(snapshot.groups.len() <= 26 * 4);
    assert!(snapshot.auth_types.len() <= 25 * 2);
});
