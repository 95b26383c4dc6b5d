//! Black-box tests of the login log collector: the exporter started on port 0 against the
//! built-in fake API, its login log scripted, exact values asserted on /metrics.
#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Harness, Sample, account, assert_promtool_clean, config, fake_api, parse_exposition, series_count, sum};
use gcore_iam_exporter::config::Collectors;
use gcore_iam_exporter::logins::MAX_LOGIN_PAGES_PER_POLL;
use gcore_iam_fake::{FakeApi, FakeLogin, FakeUser, LOGINS_PATH};
use tokio_util::sync::CancellationToken;

const KEY: &str = "42_loginskey";
const DAY: u64 = 86_400;
/// The harness's page size (`tests/common`).
const PAGE: u64 = 3;
const WAIT: Duration = Duration::from_secs(20);

/// Whole seconds, so that the newest timestamp compares exactly.
fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn ago(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(now_secs() - secs)
}

/// Eight users: administrators 1, 5 and 6; users 2, 3, 4; user 7 deleted (an administrator
/// once); user 8 in Engineers.
fn population() -> Vec<FakeUser> {
    vec![
        FakeUser::new(1).groups(&[(1, "Administrators")]),
        FakeUser::new(2),
        FakeUser::new(3),
        FakeUser::new(4),
        FakeUser::new(5).groups(&[(1, "Administrators")]),
        FakeUser::new(6).groups(&[(1, "Administrators"), (2, "Users")]),
        FakeUser::new(7).groups(&[(1, "Administrators")]).deleted(true),
        FakeUser::new(8).groups(&[(5, "Engineers")]),
    ]
}

async fn start(api: &FakeApi) -> (Harness, CancellationToken) {
    start_paged(api, PAGE).await
}

async fn start_paged(api: &FakeApi, page_size: u64) -> (Harness, CancellationToken) {
    let shutdown = CancellationToken::new();
    let addr = fake_api(api, &shutdown).await;
    let mut cfg = config(vec![account("acme", addr, KEY)]);
    cfg.collectors = Collectors { account: false, tokens: false, logins: true };
    cfg.client.page_size = std::num::NonZeroU32::new(u32::try_from(page_size).unwrap()).unwrap();
    (Harness::start(cfg).await, shutdown)
}

fn acme(m: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    [&[("account", "acme")], m].concat()
}

fn logins(s: &[Sample], m: &[(&'static str, &'static str)]) -> f64 {
    sum(s, "gcore_iam_logins_total", &acme(m))
}

fn state(s: &[Sample], state: &str) -> f64 {
    sum(s, "gcore_iam_collector_state", &[("account", "acme"), ("collector", "logins"), ("state", state)])
}

fn polls(s: &[Sample]) -> f64 {
    sum(s, "gcore_iam_polls_total", &[("account", "acme")])
}

fn by_last_login(s: &[Sample], bucket: &'static str) -> f64 {
    sum(s, "gcore_iam_users_by_last_login", &acme(&[("last_login", bucket)]))
}

fn admins_by_last_login(s: &[Sample], bucket: &'static str) -> f64 {
    sum(s, "gcore_iam_group_members_by_last_login", &acme(&[("group_id", "1"), ("last_login", bucket)]))
}

/// Scrapes until the login log has been read once.
async fn read_once(exporter: &Harness) -> Vec<Sample> {
    exporter.scrape_until(WAIT, |s| state(s, "ok") == 1.0).await
}

/// Scrapes until two more polls have finished: whatever was to be read has been.
async fn two_more_polls(exporter: &Harness) -> Vec<Sample> {
    let before = polls(&exporter.scrape().await);
    exporter.scrape_until(WAIT, |s| polls(s) >= before + 2.0).await
}

#[tokio::test]
async fn the_baseline_is_not_counted_and_later_events_are_exactly() {
    let api = FakeApi::new(KEY, population());
    let newest = ago(3600);
    api.push_logins([
        FakeLogin::new(1, 1).at(ago(3 * DAY)),
        FakeLogin::new(2, 2).at(ago(2 * DAY)).failed(),
        FakeLogin::new(3, 2).at(ago(2 * DAY)).auth_type("saml"),
        FakeLogin::new(4, 3).at(newest).auth_type("sso"),
    ]);
    let (exporter, _api) = start(&api).await;
    let s = read_once(&exporter).await;

    assert_eq!(logins(&s, &[]), 0.0, "the events already in the log are the baseline");
    // The known auth types and the baseline's own exist at 0, both results.
    for auth_type in ["password", "sso", "github", "google-oauth2", "saml"] {
        for result in ["success", "failure"] {
            let m = [("auth_type", auth_type), ("result", result)];
            assert_eq!(series_count(&filter(&s, "gcore_iam_logins_total", &m), "gcore_iam_logins_total"), 1, "{m:?}");
        }
    }
    assert_eq!(series_count(&s, "gcore_iam_logins_total"), 5 * 2);
    assert_eq!(sum(&s, "gcore_iam_logins_by_deleted_users_total", &[("account", "acme")]), 0.0);
    let newest_secs = newest.duration_since(UNIX_EPOCH).unwrap().as_secs() as f64;
    assert_eq!(sum(&s, "gcore_iam_login_log_newest_timestamp_seconds", &[("account", "acme")]), newest_secs);

    // New events: counted, each once, whatever the polls that follow.
    api.push_logins([
        FakeLogin::new(10, 4).at(ago(5)),
        FakeLogin::new(11, 4).at(ago(4)).failed(),
        FakeLogin::new(12, 8).at(ago(3)).auth_type("sso").failed(),
        FakeLogin::new(13, 8).at(ago(2)).auth_type("sso").failed(),
        FakeLogin::new(14, 8).at(ago(1)).auth_type("sso"),
        FakeLogin::new(15, 2).at(ago(1)).auth_type("ldap"),
    ]);
    exporter.scrape_until(WAIT, |s| logins(s, &[]) == 6.0).await;
    let s = two_more_polls(&exporter).await;
    for (auth_type, result, expected) in [
        ("password", "success", 1.0),
        ("password", "failure", 1.0),
        ("sso", "success", 1.0),
        ("sso", "failure", 2.0),
        ("saml", "success", 0.0),
        ("ldap", "success", 1.0),
        ("ldap", "failure", 0.0),
    ] {
        assert_eq!(logins(&s, &[("auth_type", auth_type), ("result", result)]), expected, "{auth_type} {result}");
    }
    assert_eq!(logins(&s, &[]), 6.0);
    assert_eq!(series_count(&s, "gcore_iam_logins_total"), 6 * 2);
    assert_eq!(state(&s, "ok"), 1.0);
    assert_eq!(sum(&s, "gcore_iam_up", &[("account", "acme")]), 1.0);
    assert_promtool_clean(&exporter.metrics_text().await);
}

fn filter(s: &[Sample], name: &str, m: &[(&str, &str)]) -> Vec<Sample> {
    s.iter()
        .filter(|x| x.name == name && m.iter().all(|(k, v)| x.labels.get(*k).map(String::as_str) == Some(*v)))
        .cloned()
        .collect()
}

#[tokio::test]
async fn buckets_cover_the_non_deleted_users_exactly() {
    let api = FakeApi::new(KEY, population());
    api.push_logins([
        FakeLogin::new(1, 5).at(ago(200 * DAY)),
        FakeLogin::new(2, 4).at(ago(60 * DAY)),
        FakeLogin::new(3, 3).at(ago(20 * DAY)),
        FakeLogin::new(4, 2).at(ago(3 * DAY)),
        // A failure says nothing of the last successful login.
        FakeLogin::new(5, 6).at(ago(2 * DAY)).failed(),
        FakeLogin::new(6, 1).at(ago(3600)),
        // Deleted users are in no bucket.
        FakeLogin::new(7, 7).at(ago(60)),
        // Users not in the list neither.
        FakeLogin::new(8, 99).at(ago(60)),
    ]);
    let (exporter, _api) = start(&api).await;
    let s = read_once(&exporter).await;

    // 7 non-deleted users: 1 (1 h), 2 (3 d), 3 (20 d), 4 (60 d), 5 (200 d), 6 and 8 never.
    for (bucket, expected) in [("1d", 1.0), ("7d", 1.0), ("30d", 1.0), ("90d", 1.0), ("older", 1.0), ("never", 2.0)] {
        assert_eq!(by_last_login(&s, bucket), expected, "{bucket}");
    }
    assert_eq!(series_count(&s, "gcore_iam_users_by_last_login"), 6);
    assert_eq!(
        sum(&s, "gcore_iam_users_by_last_login", &[("account", "acme")]),
        sum(&s, "gcore_iam_users", &[("account", "acme")]),
        "the buckets sum to the users"
    );
    // Administrators 1 (1 h), 5 (200 d: dormant), 6 (never); 7 is deleted.
    for (bucket, expected) in [("1d", 1.0), ("7d", 0.0), ("30d", 0.0), ("90d", 0.0), ("older", 1.0), ("never", 1.0)] {
        assert_eq!(admins_by_last_login(&s, bucket), expected, "administrators {bucket}");
    }
    let group = |id: &'static str| sum(&s, "gcore_iam_group_members_by_last_login", &acme(&[("group_id", id)]));
    assert_eq!(group("2"), 4.0, "Users: 2, 3, 4, 6");
    assert_eq!(
        sum(&s, "gcore_iam_group_members_by_last_login", &acme(&[("group_id", "2"), ("last_login", "never")])),
        1.0
    );
    assert_eq!(group("5"), 1.0);
    assert_eq!(series_count(&s, "gcore_iam_group_members_by_last_login"), 5 * 6, "every known group, every bucket");

    // User 6 logs in: from never to 1d.
    api.push_logins([FakeLogin::new(9, 6).at(ago(1))]);
    let s = exporter.scrape_until(WAIT, |s| admins_by_last_login(s, "never") == 0.0).await;
    assert_eq!(admins_by_last_login(&s, "1d"), 2.0);
    assert_eq!(by_last_login(&s, "never"), 1.0);
    assert_eq!(by_last_login(&s, "1d"), 2.0);
}

#[tokio::test]
async fn a_log_that_shifts_while_paged_and_repeats_events_counts_each_event_once() {
    let api = FakeApi::new(KEY, population());
    api.push_logins((1..=10).map(|id| FakeLogin::new(id, 1).at(ago(DAY / 2))));
    let (exporter, _api) = start(&api).await;
    read_once(&exporter).await;

    // Twelve new events, one of them listed twice; and while the next read pages them, three
    // more land at the head after its first page and two more after its second.
    let mut new: Vec<FakeLogin> = (100..112).map(|id| FakeLogin::new(id, 2).at(ago(10)).failed()).collect();
    new.insert(6, FakeLogin::new(103, 2).at(ago(10)).failed());
    api.push_logins_after(1, (200..203).map(|id| FakeLogin::new(id, 3).at(ago(5))).collect());
    api.push_logins_after(2, (300..302).map(|id| FakeLogin::new(id, 4).at(ago(4)).auth_type("sso")).collect());
    api.push_logins(new);

    exporter.scrape_until(WAIT, |s| logins(s, &[]) >= 17.0).await;
    let s = two_more_polls(&exporter).await;
    assert_eq!(logins(&s, &[("auth_type", "password"), ("result", "failure")]), 12.0);
    assert_eq!(logins(&s, &[("auth_type", "password"), ("result", "success")]), 3.0);
    assert_eq!(logins(&s, &[("auth_type", "sso"), ("result", "success")]), 2.0);
    assert_eq!(logins(&s, &[]), 17.0);
    assert_eq!(by_last_login(&s, "1d"), 3.0, "users 1, 3 and 4 logged in; 2 only failed");
}

#[tokio::test]
async fn a_log_larger_than_a_polls_pages_is_caught_up_over_the_next_polls() {
    let budget = u64::from(MAX_LOGIN_PAGES_PER_POLL) * PAGE;
    let api = FakeApi::new(KEY, population());
    // A baseline of more than three polls' pages: user 5's only login is the oldest.
    let baseline = budget * 3 + 2;
    api.push_logins([FakeLogin::new(1, 5).at(ago(100 * DAY))]);
    api.push_logins((2..=baseline).map(|id| FakeLogin::new(id, 1).at(ago(DAY / 2))));
    let (exporter, _api) = start(&api).await;
    let s = exporter.scrape_until(WAIT, |s| admins_by_last_login(s, "older") == 1.0).await;
    assert!(polls(&s) >= 4.0, "a poll reads {budget} events at most: {}", polls(&s));
    assert_eq!(logins(&s, &[]), 0.0, "a baseline read over several polls is still the baseline");
    assert_eq!(by_last_login(&s, "1d"), 1.0);

    // A burst of new events larger than two polls' pages: counted exactly, over three polls.
    let before = polls(&exporter.scrape().await);
    let burst = budget * 2 + 5;
    api.push_logins((10_000..10_000 + burst).map(|id| FakeLogin::new(id, 2).at(ago(1)).failed()));
    let s = exporter.scrape_until(WAIT, |s| logins(s, &[]) >= burst as f64).await;
    assert!(polls(&s) >= before + 3.0, "{} polls for {burst} events", polls(&s) - before);
    let s = two_more_polls(&exporter).await;
    assert_eq!(logins(&s, &[("result", "failure")]), burst as f64);
    assert_eq!(logins(&s, &[]), burst as f64);
    let requests = api.requests();
    let pages: Vec<&str> =
        requests.iter().filter(|r| r.path == LOGINS_PATH).filter_map(|r| r.query.as_deref()).collect();
    assert!(pages.iter().all(|q| q.starts_with("limit=3&offset=")), "{pages:?}");
}

#[tokio::test]
async fn successful_logins_of_deleted_users_are_counted() {
    let api = FakeApi::new(KEY, population());
    api.push_logins([FakeLogin::new(1, 7).at(ago(DAY))]);
    let (exporter, _api) = start(&api).await;
    read_once(&exporter).await;
    api.push_logins([
        FakeLogin::new(2, 7).at(ago(3)),
        FakeLogin::new(3, 7).at(ago(2)).failed(),
        FakeLogin::new(4, 1).at(ago(2)),
        FakeLogin::new(5, 7).at(ago(1)).auth_type("sso"),
    ]);
    exporter.scrape_until(WAIT, |s| logins(s, &[]) == 4.0).await;
    let s = two_more_polls(&exporter).await;
    assert_eq!(sum(&s, "gcore_iam_logins_by_deleted_users_total", &[("account", "acme")]), 2.0);
    assert_eq!(series_count(&s, "gcore_iam_logins_by_deleted_users_total"), 1);
}

#[tokio::test]
async fn a_403_or_a_404_pauses_the_collector_and_the_users_are_still_polled() {
    for not_found in [false, true] {
        let api = FakeApi::new(KEY, population());
        api.push_logins([FakeLogin::new(1, 1)]);
        if not_found {
            api.set_logins_not_found(true);
        } else {
            api.set_logins_forbidden(true);
        }
        let (exporter, _api) = start(&api).await;
        let s = exporter.scrape_until(WAIT, |s| state(s, "forbidden") == 1.0).await;
        let s2 = exporter.scrape_until(WAIT, |x| polls(x) >= polls(&s) + 2.0).await;
        assert_eq!(sum(&s2, "gcore_iam_up", &[("account", "acme")]), 1.0, "not_found={not_found}");
        assert_eq!(sum(&s2, "gcore_iam_users", &[("account", "acme")]), 7.0);
        assert_eq!(sum(&s2, "gcore_iam_collector_state", &[("collector", "logins")]), 1.0, "one state at a time");
        assert_eq!(state(&s2, "forbidden"), 1.0);
        for family in
            ["gcore_iam_logins_total", "gcore_iam_users_by_last_login", "gcore_iam_login_log_newest_timestamp_seconds"]
        {
            assert_eq!(series_count(&s2, family), 0, "{family}");
        }
        // Paused: asked once, not at every poll.
        let asked = api.requests().iter().filter(|r| r.path == LOGINS_PATH).count();
        assert_eq!(asked, 1, "not_found={not_found}");
        assert_eq!(
            sum(&s2, "gcore_iam_poll_failures_total", &[("account", "acme")]),
            0.0,
            "the users poll does not fail"
        );
    }
}

#[tokio::test]
async fn the_collector_switched_off_asks_nothing() {
    let api = FakeApi::new(KEY, population());
    api.push_logins([FakeLogin::new(1, 1)]);
    let shutdown = CancellationToken::new();
    let addr = fake_api(&api, &shutdown).await;
    let exporter = Harness::start(config(vec![account("acme", addr, KEY)])).await;
    let s = exporter.scrape_until(WAIT, |s| polls(s) >= 2.0).await;
    assert_eq!(state(&s, "disabled"), 1.0);
    assert_eq!(series_count(&s, "gcore_iam_logins_total"), 0);
    assert!(api.requests().iter().all(|r| r.path != LOGINS_PATH));
}

#[tokio::test]
async fn the_demo_log_reads_cleanly() {
    let api = FakeApi::demo(KEY, 7);
    // Pages of 100: the whole history in one poll.
    let (exporter, _api) = start_paged(&api, 100).await;
    let s = read_once(&exporter).await;
    let text = exporter.metrics_text().await;
    assert_promtool_clean(&text);
    assert_eq!(parse_exposition(&text).len(), s.len());
    assert!(admins_by_last_login(&s, "older") >= 1.0, "the demo has a dormant administrator");
    assert_eq!(
        sum(&s, "gcore_iam_users_by_last_login", &[("account", "acme")]),
        sum(&s, "gcore_iam_users", &[("account", "acme")])
    );
    // Nothing in a label but bounded values: no address, agent or e-mail.
    assert!(!text.contains("198.51.100.") && !text.contains("Mozilla") && !text.contains('@'));
}
