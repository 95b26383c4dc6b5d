//! Fault injection: every misbehaviour the fake API can script, met by a running exporter.
//!
//! Each scenario lets a good poll happen first, then injects the fault at a moment when no poll
//! is under way (so a queued fault hits the first page of the next poll), and checks that the
//! exporter (a) keeps serving the last good numbers, (b) counts the failure under the right
//! `reason` and every request under the right `result`, (c) recovers on the next good poll,
//! (d) stays inside its retry budget (1 request + 2 retries per page, counted both by the
//! exporter and by the fake), (e) never retries 401 or 403 and (f) never sends the key to another
//! host. Transient faults that succeed within the retries must not fail the poll; "benign"
//! faults (duplicates, a changing count, an empty or oversized page) give exact numbers.
//!
//! Retried faults cost the real backoff (0.5 s, then 1 s, less up to 25 % jitter), so a poll
//! that exhausts its retries takes about 1.5 s; every other scenario takes well under a second.
#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Harness, Sample, account, config, fake_api, sum};
use gcore_iam_exporter::config::{Config, KeySource};
use gcore_iam_fake::{FakeApi, FakeUser, Fault};
use tokio_util::sync::{CancellationToken, DropGuard};

const KEY: &str = "42_faultskey";

/// Long enough for a poll that exhausts its retries (about 1.5 s) to finish twice over.
const WAIT: Duration = Duration::from_secs(10);

/// Ten users over four pages of three (the common config's page size): eight live users,
/// two deleted, one administrator without 2FA, user 7 alone in group 3009.
fn population() -> Vec<FakeUser> {
    vec![
        FakeUser::new(1).groups(&[(1, "Administrators")]).two_fa(false),
        FakeUser::new(2).groups(&[(1, "Administrators")]).auth_types(&["password", "github"]),
        FakeUser::new(3).activated(false).sso(true).auth_types(&["sso"]),
        FakeUser::new(4).groups(&[(2, "Users"), (5, "Engineers")]).two_fa(false).user_type("reseller"),
        FakeUser::new(5).groups(&[(5, "Engineers")]).active(false),
        FakeUser::new(6).groups(&[(3022, "Purge and Prefetch only (API)")]).user_type("seller"),
        FakeUser::new(7).groups(&[(3009, "Purge and Prefetch only (API+Web)")]),
        FakeUser::new(8).groups(&[(1, "Administrators")]).two_fa(false).deleted(true),
        FakeUser::new(9).deleted(true),
        FakeUser::new(10).auth_types(&["google-oauth2"]),
    ]
}

/// Pages of three for ten users.
const PAGES: f64 = 4.0;

fn get(s: &[Sample], name: &str, matchers: &[(&str, &str)]) -> f64 {
    sum(s, name, &[&[("account", "acme")], matchers].concat())
}

fn up(s: &[Sample]) -> f64 {
    get(s, "gcore_iam_up", &[])
}

fn polls(s: &[Sample]) -> f64 {
    get(s, "gcore_iam_polls_total", &[])
}

fn failures(s: &[Sample], reason: &str) -> f64 {
    get(s, "gcore_iam_poll_failures_total", &[("reason", reason)])
}

fn all_failures(s: &[Sample]) -> f64 {
    get(s, "gcore_iam_poll_failures_total", &[])
}

fn requests(s: &[Sample], result: &str) -> f64 {
    get(s, "gcore_iam_api_requests_total", &[("result", result)])
}

fn all_requests(s: &[Sample]) -> f64 {
    get(s, "gcore_iam_api_requests_total", &[])
}

fn users(s: &[Sample]) -> f64 {
    get(s, "gcore_iam_users", &[])
}

fn fetched(s: &[Sample]) -> f64 {
    get(s, "gcore_iam_users_fetched", &[])
}

fn reported(s: &[Sample]) -> f64 {
    get(s, "gcore_iam_api_reported_users", &[])
}

fn last_success(s: &[Sample]) -> f64 {
    get(s, "gcore_iam_last_success_timestamp_seconds", &[])
}

/// The numbers of [`population`], family by family.
#[track_caller]
fn assert_population_numbers(s: &[Sample]) {
    assert_eq!(users(s), 8.0, "live users");
    assert_eq!(get(s, "gcore_iam_deleted_users", &[]), 2.0, "deleted users");
    assert_eq!(fetched(s), 10.0, "users fetched");
    assert_eq!(reported(s), 10.0, "users reported");
    assert_eq!(get(s, "gcore_iam_users", &[("two_fa", "false")]), 2.0, "users without 2FA");
    assert_eq!(get(s, "gcore_iam_group_members", &[("group", "Administrators"), ("two_fa", "false")]), 1.0);
    assert_eq!(get(s, "gcore_iam_group_members", &[("group", "Administrators")]), 2.0);
    assert_eq!(get(s, "gcore_iam_group_members", &[("group_id", "3009")]), 1.0, "user 7");
    assert_eq!(get(s, "gcore_iam_group_members", &[]), 9.0, "memberships of live users");
    assert_eq!(get(s, "gcore_iam_auth_type_users", &[("auth_type", "password")]), 6.0);
    assert_eq!(get(s, "gcore_iam_auth_type_users", &[("auth_type", "google-oauth2")]), 1.0, "user 10");
}

/// An exporter polling one fake API every 300 ms, pages of three.
struct Rig {
    api: FakeApi,
    addr: SocketAddr,
    exporter: Harness,
    _api_shutdown: DropGuard,
}

impl Rig {
    async fn start() -> Rig {
        Rig::start_with(|_| {}).await
    }

    /// Polls a second apart, for scenarios whose effect lasts one poll: the scrapes (every
    /// 50 ms) cannot miss it, even on a loaded machine.
    async fn start_slow() -> Rig {
        Rig::start_with(|c| c.poll_interval = Duration::from_secs(1)).await
    }

    async fn start_with(tweak: impl FnOnce(&mut Config)) -> Rig {
        let api = FakeApi::new(KEY, population());
        let api_shutdown = CancellationToken::new();
        let addr = fake_api(&api, &api_shutdown).await;
        let mut config = config(vec![account("acme", addr, KEY)]);
        tweak(&mut config);
        let exporter = Harness::start(config).await;
        Rig { api, addr, exporter, _api_shutdown: api_shutdown.drop_guard() }
    }

    /// Waits for the first good poll and checks its numbers.
    async fn good_poll(&self) -> Vec<Sample> {
        let s = self.exporter.scrape_until(WAIT, |s| up(s) == 1.0).await;
        assert_population_numbers(&s);
        s
    }

    /// A scrape taken between two polls. The exposition is encoded when a poll ends, and the
    /// fake records a request when it arrives: when the fake has received exactly the requests
    /// the exporter counted, no poll is under way, so a fault queued right now hits the first
    /// page of the next poll. This is also where the fake's tally checks the exporter's.
    async fn between_polls(&self) -> Vec<Sample> {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.exporter.scrape().await;
            if self.api.request_count() as f64 == all_requests(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "the fake's and the exporter's request counts never met");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Scrapes until `done`, checking on every scrape that no poll failed meanwhile.
    async fn stays_up_until(&self, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
        self.exporter
            .scrape_until(WAIT, |s| {
                assert_eq!(up(s), 1.0, "a transient or benign fault must not fail the poll");
                assert_eq!(all_failures(s), 0.0, "a transient or benign fault must not fail the poll");
                done(s)
            })
            .await
    }
}

/// What an outage must look like in the metrics.
struct Outage {
    /// The `reason` of each failed poll.
    reason: &'static str,
    /// The `result` of each request made during the outage.
    result: &'static str,
    /// Requests the fake receives per failed poll: 3 when the fault is retried (1 + 2 retries),
    /// 1 when it is not, 0 when the poll fails before calling the API.
    requests_per_poll: f64,
}

/// (a)–(d) for a fault that outlasts every retry: set it after a good poll, wait for a failed
/// poll, check the numbers kept and the budget, clear it and wait for the recovery.
async fn outage(rig: &Rig, fault: Fault, expected: Outage) -> Vec<Sample> {
    rig.good_poll().await;
    let before = rig.between_polls().await;
    assert_population_numbers(&before);
    rig.api.set_persistent_fault(Some(fault));
    outage_after(rig, &before, expected, || rig.api.set_persistent_fault(None)).await
}

/// The part of [`outage`] after the fault was set; `heal` ends the outage.
async fn outage_after(rig: &Rig, before: &[Sample], expected: Outage, heal: impl FnOnce()) -> Vec<Sample> {
    let Outage { reason, result, requests_per_poll } = expected;
    let s = rig.exporter.scrape_until(WAIT, |s| failures(s, reason) >= 1.0).await;

    // (a) The last good numbers stay, flagged as stale.
    assert_eq!(up(&s), 0.0);
    assert_population_numbers(&s);
    assert_eq!(last_success(&s), last_success(before), "no poll succeeded since");

    // (b) and (d): only this reason, and exactly the budgeted requests, by the exporter's count
    // and by the fake's (between_polls waits until they agree).
    let s = rig.between_polls().await;
    let failed = failures(&s, reason);
    assert_eq!(all_failures(&s), failed, "no other reason");
    assert_eq!(polls(&s), polls(before) + failed, "every poll since the fault failed");
    let made = all_requests(&s) - all_requests(before);
    assert_eq!(made, requests_per_poll * failed, "requests per failed poll");
    assert_eq!(requests(&s, result) - requests(before, result), made, "every request's result is {result}");
    if result != "ok" {
        assert_eq!(requests(&s, "ok"), requests(before, "ok"), "no request succeeded");
    }

    // (c) Back to good numbers on the next good poll.
    heal();
    let after = rig.exporter.scrape_until(WAIT, |s| up(s) == 1.0).await;
    assert_population_numbers(&after);
    assert!(last_success(&after) > last_success(before));
    assert_eq!(failures(&after, reason), all_failures(&after));
    after
}

/// A fault that lasts one request (or a few) while the retries get past it: `faults` are met
/// by page `page` of the next poll, one per attempt.
async fn blip(rig: &Rig, page: usize, faults: Vec<Fault>, result: &str) -> Vec<Sample> {
    rig.good_poll().await;
    let before = rig.between_polls().await;
    let retried = faults.len() as f64;
    for _ in 1..page {
        rig.api.push_fault(Fault::Delay(Duration::ZERO));
    }
    for fault in faults {
        rig.api.push_fault(fault);
    }
    let s = rig.stays_up_until(|s| polls(s) > polls(&before)).await;
    assert_population_numbers(&s);
    assert!(last_success(&s) > last_success(&before));
    // The faulted requests are counted under their result, then the poll went on as usual: one
    // successful request per page (nothing counted twice after a broken attempt).
    assert_eq!(requests(&s, result) - requests(&before, result), retried, "faulted requests");
    let new_polls = polls(&s) - polls(&before);
    assert_eq!(requests(&s, "ok") - requests(&before, "ok"), PAGES * new_polls, "one success per page");
    assert_eq!(all_requests(&s) - all_requests(&before), PAGES * new_polls + retried);
    rig.between_polls().await
}

/// Times when the fake's request count first reached `n` and `n + 1`: a request and its retry.
async fn arrival_gap(api: &FakeApi, n: usize) -> Duration {
    let deadline = Instant::now() + WAIT;
    let mut first = None;
    loop {
        let count = api.request_count();
        if count > n {
            return first.map(|t: Instant| t.elapsed()).expect("saw the first request before its retry");
        }
        if count == n && first.is_none() {
            first = Some(Instant::now());
        }
        assert!(Instant::now() < deadline, "no retry within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn status(status: u16, headers: &[(&str, &str)]) -> Fault {
    Fault::Status {
        status,
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body: r#"{"detail": "scripted"}"#.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Outages: the poll fails, the last numbers stay, the exporter recovers.

#[tokio::test]
async fn server_errors_are_retried_twice_then_fail_the_poll() {
    let rig = Rig::start().await;
    let expected = Outage { reason: "server_error", result: "server_error", requests_per_poll: 3.0 };
    outage(&rig, Fault::status(503), expected).await;
}

#[tokio::test]
async fn persistent_rate_limit_honours_retry_after_ms_then_fails_the_poll() {
    let rig = Rig::start().await;
    let fault = status(429, &[("Retry-After-Ms", "200")]);
    let expected = Outage { reason: "rate_limited", result: "rate_limited", requests_per_poll: 3.0 };
    rig.good_poll().await;
    let before = rig.between_polls().await;
    rig.api.set_persistent_fault(Some(fault));
    let s = rig.exporter.scrape_until(WAIT, |s| failures(s, "rate_limited") >= 1.0).await;
    // Two waits of 200 ms, not the 0.5 s + 1 s backoff (at least 1.125 s with full jitter).
    let duration = get(&s, "gcore_iam_poll_duration_seconds", &[]);
    assert!((0.4..1.0).contains(&duration), "poll of 3 rate-limited requests took {duration}s");
    outage_after(&rig, &before, expected, || rig.api.set_persistent_fault(None)).await;
}

#[tokio::test]
async fn connection_resets_are_retried_twice_then_fail_the_poll() {
    let rig = Rig::start().await;
    outage(&rig, Fault::ConnectionReset, Outage { reason: "connect", result: "connect", requests_per_poll: 3.0 }).await;
}

#[tokio::test]
async fn truncated_bodies_are_retried_twice_then_fail_the_poll() {
    let rig = Rig::start().await;
    outage(&rig, Fault::TruncatedBody, Outage { reason: "connect", result: "connect", requests_per_poll: 3.0 }).await;
}

#[tokio::test]
async fn slow_answers_time_out_are_retried_twice_then_fail_the_poll() {
    let rig = Rig::start_with(|c| c.client.request_timeout = Duration::from_millis(250)).await;
    let fault = Fault::Delay(Duration::from_millis(1500));
    outage(&rig, fault, Outage { reason: "timeout", result: "timeout", requests_per_poll: 3.0 }).await;
}

#[tokio::test]
async fn revoked_key_401_is_never_retried() {
    let rig = Rig::start().await;
    let expected = Outage { reason: "unauthorized", result: "unauthorized", requests_per_poll: 1.0 };
    outage(&rig, Fault::status(401), expected).await;
}

#[tokio::test]
async fn forbidden_403_is_never_retried() {
    let rig = Rig::start().await;
    let expected = Outage { reason: "forbidden", result: "forbidden", requests_per_poll: 1.0 };
    outage(&rig, Fault::status(403), expected).await;
}

#[tokio::test]
async fn other_4xx_are_client_errors_and_not_retried() {
    let rig = Rig::start().await;
    let expected = Outage { reason: "client_error", result: "client_error", requests_per_poll: 1.0 };
    outage(&rig, Fault::status(404), expected).await;
}

#[tokio::test]
async fn html_with_status_200_is_a_decode_error_and_not_retried() {
    let rig = Rig::start().await;
    outage(&rig, Fault::HtmlOk, Outage { reason: "decode", result: "decode", requests_per_poll: 1.0 }).await;
}

#[tokio::test]
async fn malformed_json_is_a_decode_error_and_not_retried() {
    let rig = Rig::start().await;
    outage(&rig, Fault::MalformedJson, Outage { reason: "decode", result: "decode", requests_per_poll: 1.0 }).await;
}

#[tokio::test]
async fn redirect_to_another_host_is_not_followed_and_the_key_stays_home() {
    let elsewhere = FakeApi::new(KEY, population());
    let elsewhere_shutdown = CancellationToken::new();
    let elsewhere_addr = fake_api(&elsewhere, &elsewhere_shutdown).await;
    let rig = Rig::start().await;
    assert_ne!(elsewhere_addr, rig.addr);

    let target = format!("http://{elsewhere_addr}/iam/users?limit=3&offset=0");
    let expected = Outage { reason: "redirect", result: "redirect", requests_per_poll: 1.0 };
    outage(&rig, Fault::RedirectTo(target), expected).await;

    // (f) The other host never heard from the exporter, so it never saw the key; the
    // configured host saw it on every request.
    assert_eq!(elsewhere.request_count(), 0, "{:?}", elsewhere.requests());
    let home = rig.api.requests();
    assert!(!home.is_empty());
    let expected_auth = format!("APIKey {KEY}");
    assert!(home.iter().all(|r| r.authorization.as_deref() == Some(expected_auth.as_str())));
    assert!(home.iter().all(|r| r.host.as_deref() == Some(rig.addr.to_string().as_str())));
    elsewhere_shutdown.cancel();
}

#[tokio::test]
async fn page_over_the_size_limit_is_too_large_and_not_retried() {
    // A page of three fits under the limit, a page of all ten does not.
    let probe = FakeApi::new(KEY, population());
    let probe_shutdown = CancellationToken::new();
    let probe_addr = fake_api(&probe, &probe_shutdown).await;
    let page_bytes = |limit: u32| {
        let url = format!("http://{probe_addr}/iam/users?limit={limit}&offset=0");
        async move {
            let response = reqwest::Client::new().get(url).header("Authorization", format!("APIKey {KEY}"));
            response.send().await.unwrap().bytes().await.unwrap().len() as u64
        }
    };
    let (small, big) = (page_bytes(3).await, page_bytes(10).await);
    probe_shutdown.cancel();
    assert!(big > 2 * small, "{small} {big}");
    let limit = (small + big) / 2;

    let rig = Rig::start_with(|c| c.client.max_response_bytes = limit).await;
    let expected = Outage { reason: "too_large", result: "too_large", requests_per_poll: 1.0 };
    outage(&rig, Fault::OversizedPage(10), expected).await;
}

#[tokio::test]
async fn pagination_that_never_ends_is_incomplete_after_the_page_cap() {
    let rig = Rig::start().await;
    // Every page holds the same user and claims a hundred: the poll gives up after the first
    // page and MAX_PAGES_WITHOUT_NEW_USERS (3) pages that bring no new user, instead of paging
    // until the deadline (it used to stop after 2 × ceil(100 / 3) + 10 = 78 pages).
    let endless = Fault::Status {
        status: 200,
        headers: Vec::new(),
        body: r#"{"count": 100, "next": "/users?offset=1&limit=3", "previous": null, "results": [{"id": 1}]}"#.into(),
    };
    let requests_per_poll = 1.0 + f64::from(gcore_iam_exporter::gcore::MAX_PAGES_WITHOUT_NEW_USERS);
    outage(&rig, endless, Outage { reason: "incomplete", result: "ok", requests_per_poll }).await;
}

#[tokio::test]
async fn unreadable_key_file_fails_the_poll_without_calling_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let key_file: PathBuf = dir.path().join("key");
    std::fs::write(&key_file, KEY).unwrap();
    let path = key_file.clone();
    let rig = Rig::start_with(move |c| c.accounts[0].key = KeySource::File(path)).await;
    rig.good_poll().await;
    let before = rig.between_polls().await;
    std::fs::remove_file(&key_file).unwrap();
    let expected = Outage { reason: "key_error", result: "ok", requests_per_poll: 0.0 };
    outage_after(&rig, &before, expected, || std::fs::write(&key_file, KEY).unwrap()).await;
}

#[tokio::test]
async fn poll_deadline_cuts_a_slow_poll() {
    // A request may take 2 s, the whole poll only 0.5 s.
    let rig = Rig::start_with(|c| c.poll_timeout = Duration::from_millis(500)).await;
    rig.good_poll().await;
    let before = rig.between_polls().await;
    rig.api.set_persistent_fault(Some(Fault::Delay(Duration::from_millis(1200))));
    let s = rig.exporter.scrape_until(WAIT, |s| failures(s, "deadline") >= 2.0).await;
    assert_eq!(up(&s), 0.0);
    assert_population_numbers(&s);
    assert_eq!(all_failures(&s), failures(&s, "deadline"));
    let duration = get(&s, "gcore_iam_poll_duration_seconds", &[]);
    assert!((0.5..1.2).contains(&duration), "the deadline stopped the poll after {duration}s");
    // The deadline cut one request per poll, never retried.
    let failed = failures(&s, "deadline");
    let sent = rig.api.request_count() as f64 - all_requests(&before);
    assert!(sent >= failed && sent <= failed + 1.0, "{sent} requests for {failed} failed polls");
    rig.api.set_persistent_fault(None);
    let after = rig.exporter.scrape_until(WAIT, |s| up(s) == 1.0).await;
    assert_population_numbers(&after);
}

// ---------------------------------------------------------------------------------------------
// Transient faults: retried within budget, the poll succeeds, the retry is counted.

#[tokio::test]
async fn a_burst_of_two_5xx_on_one_page_is_ridden_out() {
    let rig = Rig::start().await;
    blip(&rig, 3, vec![Fault::status(500), Fault::status(502)], "server_error").await;
}

#[tokio::test]
async fn a_429_with_retry_after_seconds_is_waited_out() {
    let rig = Rig::start().await;
    rig.good_poll().await;
    let before = rig.between_polls().await;
    let n = rig.api.request_count();
    rig.api.push_fault(status(429, &[("Retry-After", "1")]));
    // The retry waits the server's second, not the 0.5 s backoff.
    let gap = arrival_gap(&rig.api, n + 1).await;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    let s = rig.stays_up_until(|s| polls(s) > polls(&before)).await;
    assert_eq!(requests(&s, "rate_limited"), 1.0);
    assert_population_numbers(&s);
}

#[tokio::test]
async fn a_429_with_retry_after_ms_is_waited_out() {
    let rig = Rig::start().await;
    rig.good_poll().await;
    let before = rig.between_polls().await;
    let n = rig.api.request_count();
    // Longer than the first backoff (at most 0.5 s), so honouring it is observable.
    rig.api.push_fault(status(429, &[("Retry-After-Ms", "1200")]));
    let gap = arrival_gap(&rig.api, n + 1).await;
    assert!(gap >= Duration::from_millis(1150), "retried after {gap:?}");
    let s = rig.stays_up_until(|s| polls(s) > polls(&before)).await;
    assert_eq!(requests(&s, "rate_limited"), 1.0);
    assert_eq!(all_failures(&s), 0.0);
    assert_population_numbers(&s);
}

#[tokio::test]
async fn a_409_conflict_is_retried() {
    let rig = Rig::start().await;
    blip(&rig, 1, vec![Fault::status(409)], "client_error").await;
}

#[tokio::test]
async fn a_single_connection_reset_is_retried() {
    let rig = Rig::start().await;
    blip(&rig, 1, vec![Fault::ConnectionReset], "connect").await;
}

#[tokio::test]
async fn a_truncated_page_is_retried_and_not_counted_twice() {
    let rig = Rig::start().await;
    // The second page breaks off half-way; its retry counts users 4–6 once.
    blip(&rig, 2, vec![Fault::TruncatedBody], "connect").await;
}

#[tokio::test]
async fn latency_under_the_request_timeout_only_slows_the_poll() {
    let rig = Rig::start().await;
    rig.good_poll().await;
    let before = rig.between_polls().await;
    rig.api.push_fault(Fault::Delay(Duration::from_millis(800)));
    let s = rig.stays_up_until(|s| get(s, "gcore_iam_poll_duration_seconds", &[]) >= 0.8).await;
    assert_population_numbers(&s);
    assert_eq!(all_requests(&s) - all_requests(&before), PAGES * (polls(&s) - polls(&before)));
    assert_eq!(requests(&s, "ok"), all_requests(&s));
}

// ---------------------------------------------------------------------------------------------
// Benign faults: a list that shifts while it is read. Exact numbers, nothing counted twice.

/// Queues `Delay(0)` (no fault) for the first `pages` pages of the next poll, then `fault`.
fn on_page(rig: &Rig, page: usize, fault: Fault) {
    for _ in 1..page {
        rig.api.push_fault(Fault::Delay(Duration::ZERO));
    }
    rig.api.push_fault(fault);
}

#[tokio::test]
async fn duplicate_on_the_last_page_is_counted_once() {
    let rig = Rig::start_slow().await;
    rig.good_poll().await;
    let before = rig.between_polls().await;
    // Page 4 is [user 1 again, user 10].
    on_page(&rig, 4, Fault::DuplicateFirstUser);
    let s = rig.stays_up_until(|s| polls(s) > polls(&before)).await;
    assert_eq!(polls(&s), polls(&before) + 1.0, "scrape the very poll that met the duplicate");
    assert_population_numbers(&s);
    assert_eq!(requests(&s, "ok") - requests(&before, "ok"), PAGES * (polls(&s) - polls(&before)));
}

#[tokio::test]
async fn duplicate_on_the_first_page_neither_double_counts_nor_skips() {
    let rig = Rig::start_slow().await;
    rig.good_poll().await;
    let before = rig.between_polls().await;
    // Page 1 is [user 1, user 1, users 2, 3]: four records for limit=3, three distinct users
    // from positions 0–2. User 4 (position 3) must still be fetched.
    on_page(&rig, 1, Fault::DuplicateFirstUser);
    let s = rig.stays_up_until(|s| polls(s) > polls(&before)).await;
    assert_eq!(polls(&s), polls(&before) + 1.0, "scrape the very poll that met the duplicate");
    let queries: Vec<_> =
        rig.api.requests().into_iter().skip(all_requests(&before) as usize).filter_map(|r| r.query).collect();
    assert_eq!(get(&s, "gcore_iam_users", &[("user_type", "reseller")]), 1.0, "user 4 fetched? {queries:?}");
    assert_population_numbers(&s);
}

#[tokio::test]
async fn duplicate_on_a_middle_page_neither_double_counts_nor_skips() {
    let rig = Rig::start_slow().await;
    rig.good_poll().await;
    let before = rig.between_polls().await;
    // Page 2 is [user 1 again, users 4, 5, 6]: four records for limit=3.
    on_page(&rig, 2, Fault::DuplicateFirstUser);
    let s = rig.stays_up_until(|s| polls(s) > polls(&before)).await;
    assert_eq!(polls(&s), polls(&before) + 1.0, "scrape the very poll that met the duplicate");
    // Every user counted exactly once; in particular user 7 (offset 6) is not skipped.
    assert_population_numbers(&s);
}

#[tokio::test]
async fn count_growing_on_the_last_page_costs_one_empty_page() {
    let rig = Rig::start().await;
    rig.good_poll().await;
    let before = rig.between_polls().await;
    // Page 4 claims 12 users: the client asks for offset 10, gets an empty page (count 10), stops.
    on_page(&rig, 4, Fault::CountDelta(2));
    let s = rig.stays_up_until(|s| polls(s) > polls(&before)).await;
    assert_population_numbers(&s);
    let new_polls = polls(&s) - polls(&before);
    assert_eq!(all_requests(&s) - all_requests(&before), PAGES * new_polls + 1.0);
    let queries: Vec<_> = rig.api.requests().into_iter().skip(all_requests(&before) as usize).take(5).collect();
    assert_eq!(queries[4].query.as_deref(), Some("limit=3&offset=10"));
}

#[tokio::test]
async fn count_shrinking_on_the_last_page_shows_as_a_discrepancy() {
    let rig = Rig::start_slow().await;
    rig.good_poll().await;
    let before = rig.between_polls().await;
    // Page 4 says 9 users while it brings the tenth: published as fetched 10, reported 9.
    on_page(&rig, 4, Fault::CountDelta(-1));
    let s = rig.stays_up_until(|s| polls(s) > polls(&before)).await;
    assert_eq!(polls(&s), polls(&before) + 1.0, "scrape the very poll that met the smaller count");
    assert_eq!(users(&s), 8.0);
    assert_eq!(fetched(&s), 10.0);
    assert_eq!(reported(&s), 9.0);
    // The next poll sees a consistent list again.
    let s = rig.stays_up_until(|s| polls(s) > polls(&before) + 1.0).await;
    assert_population_numbers(&s);
}

#[tokio::test]
async fn count_changing_on_the_first_page_changes_nothing() {
    let rig = Rig::start().await;
    rig.good_poll().await;
    let before = rig.between_polls().await;
    // Page 1 claims 30 users; the later pages say 10 again and the poll ends after page 4.
    on_page(&rig, 1, Fault::CountDelta(20));
    let s = rig.stays_up_until(|s| polls(s) > polls(&before)).await;
    assert_population_numbers(&s);
    assert_eq!(all_requests(&s) - all_requests(&before), PAGES * (polls(&s) - polls(&before)));
}

#[tokio::test]
async fn empty_page_before_count_fails_the_poll_and_keeps_the_last_numbers() {
    let rig = Rig::start_slow().await;
    rig.good_poll().await;
    let before = rig.between_polls().await;
    // Page 2 is empty while its count says 10: the poll stops there ("the poll stops at count
    // or on an empty page") but is not published: 3 users of 10 would read as 7 removed.
    on_page(&rig, 2, Fault::EmptyPage);
    let s = rig.exporter.scrape_until(WAIT, |s| polls(s) > polls(&before)).await;
    assert_eq!(polls(&s), polls(&before) + 1.0, "scrape the very poll that met the empty page");
    assert_eq!(up(&s), 0.0);
    assert_eq!(failures(&s, "incomplete"), 1.0);
    assert_eq!(all_failures(&s), 1.0);
    assert_population_numbers(&s);
    assert_eq!(all_requests(&s) - all_requests(&before), 2.0);
    // The next poll is whole again.
    let s = rig.exporter.scrape_until(WAIT, |s| up(s) == 1.0).await;
    assert_population_numbers(&s);
}

#[tokio::test]
async fn oversized_first_page_is_counted_once_within_the_usual_requests() {
    let rig = Rig::start().await;
    rig.good_poll().await;
    let before = rig.between_polls().await;
    // Page 1 brings all ten users for limit=3. A page is taken to cover at most `limit` places
    // (so a page that repeats a user cannot make the next offset skip one), so the later pages
    // are still asked for: same numbers, no more requests than a normal poll.
    on_page(&rig, 1, Fault::OversizedPage(10));
    let s = rig.stays_up_until(|s| polls(s) > polls(&before)).await;
    assert_population_numbers(&s);
    assert_eq!(all_requests(&s) - all_requests(&before), PAGES * (polls(&s) - polls(&before)));
}

#[tokio::test]
async fn oversized_middle_page_continues_from_where_it_ended() {
    let rig = Rig::start_slow().await;
    rig.good_poll().await;
    let before = rig.between_polls().await;
    // Page 2 brings users 4–10 for limit=3: same numbers, and no more requests than usual
    // (the pages after it may still be asked for; their users are counted once).
    on_page(&rig, 2, Fault::OversizedPage(7));
    let s = rig.stays_up_until(|s| polls(s) > polls(&before)).await;
    assert_eq!(polls(&s), polls(&before) + 1.0, "scrape the very poll that met the big page");
    assert_population_numbers(&s);
    assert!(all_requests(&s) - all_requests(&before) <= PAGES);
}
