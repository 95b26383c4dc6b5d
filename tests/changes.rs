//! Black-box tests of the change counters (issue 13): the exporter started on port 0 against
//! the built-in fake API, whose users the test changes between polls; exact counts asserted.
//!
//! Pages hold 100 users, so a poll is one request and sees the users of one `set_users`
//! whole: a change never lands in the middle of a poll.
#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

mod common;

use std::num::NonZeroU32;
use std::time::Duration;

use common::{Harness, Sample, account, config, fake_api, series_count, sum};
use gcore_iam_fake::{FakeApi, FakeUser, Fault};
use tokio_util::sync::CancellationToken;

const KEY: &str = "42_changeskey";
const WAIT: Duration = Duration::from_secs(20);

const ADMINS: (u64, &str) = (1, "Administrators");
const USERS: (u64, &str) = (2, "Users");
const ENGINEERS: (u64, &str) = (5, "Engineers");

const KINDS: [&str; 6] = ["added", "removed", "deleted", "two_fa_enabled", "two_fa_disabled", "activated"];

/// Eight users: two administrators with 2FA, one user without 2FA, one not activated, two
/// engineers, a deleted user and one in a group the API contract does not list.
fn population() -> Vec<FakeUser> {
    vec![
        FakeUser::new(1).groups(&[ADMINS]),
        FakeUser::new(2).groups(&[ADMINS]),
        FakeUser::new(3).groups(&[USERS]).two_fa(false),
        FakeUser::new(4).groups(&[USERS]).activated(false).two_fa(false),
        FakeUser::new(5).groups(&[ENGINEERS]),
        FakeUser::new(6).groups(&[ENGINEERS, USERS]),
        FakeUser::new(7).groups(&[USERS]).deleted(true),
        FakeUser::new(8).groups(&[(4242, "Auditors")]),
    ]
}

/// `users` with `change` applied to user `id`.
fn with(users: Vec<FakeUser>, id: u64, change: impl Fn(FakeUser) -> FakeUser) -> Vec<FakeUser> {
    users.into_iter().map(|u| if u.id == id { change(u) } else { u }).collect()
}

struct Rig {
    api: FakeApi,
    exporter: Harness,
    _api_shutdown: CancellationToken,
}

impl Rig {
    async fn start(users: Vec<FakeUser>) -> Rig {
        Self::start_with(FakeApi::new(KEY, users)).await
    }

    async fn start_with(api: FakeApi) -> Rig {
        let api_shutdown = CancellationToken::new();
        let addr = fake_api(&api, &api_shutdown).await;
        let mut cfg = config(vec![account("acme", addr, KEY)]);
        cfg.client.page_size = NonZeroU32::new(100).unwrap();
        let exporter = Harness::start(cfg).await;
        Rig { api, exporter, _api_shutdown: api_shutdown }
    }

    /// Waits for two more polls to finish, the last one successful: the first may have read
    /// the users before the test changed them, the second read them after.
    async fn two_more_polls(&self) -> Vec<Sample> {
        let before = polls(&self.exporter.scrape().await);
        self.exporter.scrape_until(WAIT, |s| polls(s) >= before + 2.0 && up(s) == 1.0).await
    }

    /// The users become `users`; returns a scrape of a complete poll that saw them.
    async fn change_to(&self, users: Vec<FakeUser>) -> Vec<Sample> {
        self.api.set_users(users);
        self.two_more_polls().await
    }
}

fn polls(s: &[Sample]) -> f64 {
    sum(s, "gcore_iam_polls_total", &[("account", "acme")])
}

fn up(s: &[Sample]) -> f64 {
    sum(s, "gcore_iam_up", &[("account", "acme")])
}

/// Every `gcore_iam_user_changes_total` series of the account, by change.
fn user_changes(s: &[Sample]) -> Vec<(String, f64)> {
    let mut found: Vec<(String, f64)> = s
        .iter()
        .filter(|x| x.name == "gcore_iam_user_changes_total" && x.labels["account"] == "acme")
        .map(|x| (x.labels["change"].clone(), x.value))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// The six series, with these non-zero values and every other at 0.
fn expect_user_changes(nonzero: &[(&str, f64)]) -> Vec<(String, f64)> {
    let mut all: Vec<(String, f64)> =
        KINDS.iter().map(|k| (k.to_string(), nonzero.iter().find(|(n, _)| n == k).map_or(0.0, |(_, v)| *v))).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Every non-zero `gcore_iam_group_membership_changes_total` series of the account, as
/// (group_id, group, change, value).
fn membership_changes(s: &[Sample]) -> Vec<(String, String, String, f64)> {
    let mut found: Vec<_> = s
        .iter()
        .filter(|x| x.name == "gcore_iam_group_membership_changes_total" && x.labels["account"] == "acme")
        .filter(|x| x.value != 0.0)
        .map(|x| (x.labels["group_id"].clone(), x.labels["group"].clone(), x.labels["change"].clone(), x.value))
        .collect();
    found.sort_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
    found
}

fn membership(group_id: &str, group: &str, change: &str, value: f64) -> (String, String, String, f64) {
    (group_id.into(), group.into(), change.into(), value)
}

fn members(s: &[Sample], m: &[(&str, &str)]) -> f64 {
    sum(s, "gcore_iam_group_members", &[&[("account", "acme")], m].concat())
}

fn live_users(s: &[Sample]) -> f64 {
    sum(s, "gcore_iam_users", &[("account", "acme")])
}

#[tokio::test]
async fn every_series_exists_at_zero_from_the_start_and_the_baseline_counts_nothing() {
    let api = FakeApi::new(KEY, population());
    // The first poll waits, so that the exposition before any poll can be read.
    api.push_fault(Fault::Delay(Duration::from_millis(1500)));
    let rig = Rig::start_with(api).await;

    let s = rig.exporter.scrape().await;
    assert_eq!(polls(&s), 0.0, "scraped before the first poll ended");
    assert_eq!(user_changes(&s), expect_user_changes(&[]));
    // The five known groups, joined and left, at 0.
    assert_eq!(series_count(&s, "gcore_iam_group_membership_changes_total"), 5 * 2);
    for (id, name) in
        [ADMINS, USERS, ENGINEERS, (3009, "Purge and Prefetch only (API+Web)"), (3022, "Purge and Prefetch only (API)")]
    {
        for change in ["joined", "left"] {
            let m = [("account", "acme"), ("group_id", &id.to_string()), ("group", name), ("change", change)];
            assert_eq!(series_count(&filtered(&s, &m), "gcore_iam_group_membership_changes_total"), 1, "{m:?}");
        }
    }

    // The first complete poll is the baseline: eight users "appeared", none is counted; and
    // polls of unchanged users count nothing either.
    let s = rig.two_more_polls().await;
    assert_eq!(live_users(&s), 7.0);
    assert_eq!(user_changes(&s), expect_user_changes(&[]));
    assert_eq!(membership_changes(&s), []);
    // Group 4242 has not changed yet, so it has no series.
    assert_eq!(series_count(&s, "gcore_iam_group_membership_changes_total"), 5 * 2);
    common::assert_promtool_clean(&rig.exporter.metrics_text().await);
}

fn filtered(s: &[Sample], m: &[(&str, &str)]) -> Vec<Sample> {
    s.iter().filter(|x| m.iter().all(|(k, v)| x.labels.get(*k).map(String::as_str) == Some(*v))).cloned().collect()
}

#[tokio::test]
async fn users_added_removed_deleted_and_restored() {
    let rig = Rig::start(population()).await;
    rig.two_more_polls().await;

    // User 5 leaves the list, 6 is flagged deleted, 7 (deleted) is restored, 9 and 10 are
    // invited (10 straight into Administrators), 11 appears already deleted.
    let mut users: Vec<FakeUser> = population().into_iter().filter(|u| u.id != 5).collect();
    users = with(users, 6, |u| u.deleted(true));
    users = with(users, 7, |u| u.deleted(false));
    users.push(FakeUser::new(9).groups(&[USERS]).activated(false).two_fa(false));
    users.push(FakeUser::new(10).groups(&[ADMINS]).activated(false).two_fa(false));
    users.push(FakeUser::new(11).groups(&[ENGINEERS]).deleted(true));
    let s = rig.change_to(users).await;

    assert_eq!(user_changes(&s), expect_user_changes(&[("added", 3.0), ("removed", 1.0), ("deleted", 1.0)]));
    // 7 → 7 − 1 − 1 + 3: the counters reconcile with the gauge.
    assert_eq!(live_users(&s), 8.0);
    assert_eq!(
        membership_changes(&s),
        [
            membership("1", "Administrators", "joined", 1.0),
            // 7 (restored) and 9 joined; 6 (deleted) left.
            membership("2", "Users", "joined", 2.0),
            membership("2", "Users", "left", 1.0),
            // 5 (removed) and 6 (deleted) left; 11 was never live.
            membership("5", "Engineers", "left", 2.0),
        ]
    );

    // Nothing more changes: later polls add nothing.
    let s = rig.two_more_polls().await;
    assert_eq!(user_changes(&s), expect_user_changes(&[("added", 3.0), ("removed", 1.0), ("deleted", 1.0)]));
    // A deleted user who disappears from the list counts nothing.
    let users: Vec<FakeUser> = rig.api.users().into_iter().filter(|u| u.id != 11).collect();
    let s = rig.change_to(users).await;
    assert_eq!(user_changes(&s), expect_user_changes(&[("added", 3.0), ("removed", 1.0), ("deleted", 1.0)]));
    common::assert_promtool_clean(&rig.exporter.metrics_text().await);
}

#[tokio::test]
async fn two_fa_on_and_off_and_activation() {
    let rig = Rig::start(population()).await;
    rig.two_more_polls().await;

    // 2FA: off for 1 and 2 (administrators), on for 3; 4 confirms its e-mail.
    let mut users = with(population(), 1, |u| u.two_fa(false));
    users = with(users, 2, |u| u.two_fa(false));
    users = with(users, 3, |u| u.two_fa(true));
    users = with(users, 4, |u| u.activated(true));
    let s = rig.change_to(users.clone()).await;
    assert_eq!(
        user_changes(&s),
        expect_user_changes(&[("two_fa_disabled", 2.0), ("two_fa_enabled", 1.0), ("activated", 1.0)])
    );
    assert_eq!(members(&s, &[("group_id", "1"), ("two_fa", "false")]), 2.0);
    assert_eq!(membership_changes(&s), []);

    // Administrator 1 turns it back on: one more enabled, and the disabled stay counted.
    let s = rig.change_to(with(users, 1, |u| u.two_fa(true))).await;
    assert_eq!(
        user_changes(&s),
        expect_user_changes(&[("two_fa_disabled", 2.0), ("two_fa_enabled", 2.0), ("activated", 1.0)])
    );
}

#[tokio::test]
async fn an_administrator_swap_moves_no_gauge_but_counts_one_joined_and_one_left() {
    let rig = Rig::start(population()).await;
    let s = rig.two_more_polls().await;
    assert_eq!(members(&s, &[("group_id", "1")]), 2.0);
    assert_eq!(members(&s, &[("group_id", "1"), ("two_fa", "false")]), 0.0);

    // Administrator 1 becomes a plain user; user 3 (no 2FA) takes its place.
    let users = with(population(), 1, |u| u.groups(&[USERS]));
    let users = with(users, 3, |u| u.groups(&[ADMINS]));
    let s = rig.change_to(users).await;

    assert_eq!(members(&s, &[("group_id", "1")]), 2.0, "the count of administrators did not move");
    assert_eq!(members(&s, &[("group_id", "2")]), 3.0);
    assert_eq!(members(&s, &[("group_id", "1"), ("two_fa", "false")]), 1.0);
    assert_eq!(
        membership_changes(&s),
        [
            membership("1", "Administrators", "joined", 1.0),
            membership("1", "Administrators", "left", 1.0),
            membership("2", "Users", "joined", 1.0),
            membership("2", "Users", "left", 1.0),
        ]
    );
    // Nobody was added, removed or changed a flag.
    assert_eq!(user_changes(&s), expect_user_changes(&[]));
}

#[tokio::test]
async fn failed_and_partial_polls_count_nothing_and_the_next_complete_one_compares_with_the_last() {
    let rig = Rig::start(population()).await;
    rig.two_more_polls().await;
    let failures = |s: &[Sample], reason: &str| {
        sum(s, "gcore_iam_poll_failures_total", &[("account", "acme"), ("reason", reason)])
    };

    // The API fails (403: never retried, so failed polls are quick); meanwhile administrator 2
    // is deleted, then user 8 leaves the list.
    rig.api.set_persistent_fault(Some(Fault::status(403)));
    let s = rig.exporter.scrape_until(WAIT, |s| failures(s, "forbidden") >= 1.0).await;
    let seen = failures(&s, "forbidden");
    rig.api.set_users(with(population(), 2, |u| u.deleted(true)));
    rig.exporter.scrape_until(WAIT, |s| failures(s, "forbidden") >= seen + 2.0).await;
    let changed: Vec<FakeUser> = with(population(), 2, |u| u.deleted(true)).into_iter().filter(|u| u.id != 8).collect();
    rig.api.set_users(changed);
    let s = rig.exporter.scrape_until(WAIT, |s| failures(s, "forbidden") >= seen + 3.0).await;
    assert_eq!(up(&s), 0.0);
    assert_eq!(user_changes(&s), expect_user_changes(&[]));
    assert_eq!(membership_changes(&s), []);

    // Then one poll gets an empty page while `count` says there are users: incomplete. Had
    // it been compared, every user would have been counted removed.
    rig.api.push_fault(Fault::EmptyPage);
    rig.api.set_persistent_fault(None);
    let s = rig.exporter.scrape_until(WAIT, |s| failures(s, "incomplete") >= 1.0).await;
    assert_eq!(user_changes(&s), expect_user_changes(&[]));

    // The next complete poll is compared with the last complete one (before the failures):
    // both changes are counted, once.
    let s = rig.two_more_polls().await;
    assert_eq!(failures(&s, "incomplete"), 1.0);
    assert_eq!(user_changes(&s), expect_user_changes(&[("removed", 1.0), ("deleted", 1.0)]));
    assert_eq!(
        membership_changes(&s),
        [membership("1", "Administrators", "left", 1.0), membership("4242", "Auditors", "left", 1.0)]
    );
    assert_eq!(live_users(&s), 5.0);
}

#[tokio::test]
async fn a_group_the_contract_does_not_list_gets_its_series_when_it_first_changes() {
    let rig = Rig::start(population()).await;
    let s = rig.two_more_polls().await;
    let auditors =
        |s: &[Sample]| series_count(&filtered(s, &[("group_id", "4242")]), "gcore_iam_group_membership_changes_total");
    assert_eq!(auditors(&s), 0);

    // User 8 leaves Auditors for Engineers, users 1 and 5 join it, and a group never seen
    // before (4343) gets a member.
    let users = with(population(), 8, |u| u.groups(&[ENGINEERS]));
    let users = with(users, 1, |u| u.groups(&[ADMINS, (4242, "Auditors")]));
    let users = with(users, 5, |u| u.groups(&[ENGINEERS, (4242, "Auditors"), (4343, "Night shift")]));
    let s = rig.change_to(users).await;
    assert_eq!(auditors(&s), 2);
    assert_eq!(
        membership_changes(&s),
        [
            membership("4242", "Auditors", "joined", 2.0),
            membership("4242", "Auditors", "left", 1.0),
            membership("4343", "Night shift", "joined", 1.0),
            membership("5", "Engineers", "joined", 1.0),
        ]
    );
    assert_eq!(series_count(&s, "gcore_iam_group_membership_changes_total"), (5 + 2) * 2);
    assert_eq!(user_changes(&s), expect_user_changes(&[]));
    common::assert_promtool_clean(&rig.exporter.metrics_text().await);
}
