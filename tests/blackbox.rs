//! Black-box tests: the exporter started on port 0 against the built-in fake API with a known
//! population, scraped over HTTP, with exact numbers asserted for every family.
#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

mod common;

use std::io::Read;
use std::time::Duration;

use common::{Harness, account, config, fake_api, parse_exposition, series_count, sum};
use gcore_iam_fake::{FakeApi, FakeUser, Fault};
use tokio_util::sync::CancellationToken;

const KEY: &str = "42_blackboxkey";

/// Ten users over four pages of three: every group, user type and auth type, two deleted
/// users, and one value of each kind the API contract does not list.
fn population() -> Vec<FakeUser> {
    vec![
        FakeUser::new(1).groups(&[(1, "Administrators")]).two_fa(false).auth_types(&["password"]),
        FakeUser::new(2).groups(&[(1, "Administrators")]).auth_types(&["password", "github"]),
        FakeUser::new(3).groups(&[(2, "Users")]).activated(false).sso(true).auth_types(&["sso"]),
        FakeUser::new(4)
            .groups(&[(2, "Users"), (5, "Engineers")])
            .two_fa(false)
            .user_type("reseller")
            .auth_types(&["google-oauth2"]),
        FakeUser::new(5).groups(&[(5, "Engineers")]).active(false).auth_types(&["password"]),
        FakeUser::new(6)
            .groups(&[(3022, "Purge and Prefetch only (API)")])
            .two_fa(false)
            .activated(false)
            .user_type("seller")
            .auth_types(&["password"]),
        FakeUser::new(7).groups(&[(3009, "Purge and Prefetch only (API+Web)")]).auth_types(&["password"]),
        FakeUser::new(8).groups(&[(1, "Administrators")]).two_fa(false).deleted(true),
        FakeUser::new(9).deleted(true),
        FakeUser::new(10).groups(&[(4242, "Auditors")]).user_type("partner").auth_types(&["saml"]),
    ]
}

async fn start_with(api: &FakeApi, key: &str) -> (Harness, CancellationToken) {
    let api_shutdown = CancellationToken::new();
    let addr = fake_api(api, &api_shutdown).await;
    let harness = Harness::start(config(vec![account("acme", addr, key)])).await;
    (harness, api_shutdown)
}

fn users(s: &[common::Sample], m: &[(&str, &str)]) -> f64 {
    sum(s, "gcore_iam_users", &[&[("account", "acme")], m].concat())
}

fn members(s: &[common::Sample], m: &[(&str, &str)]) -> f64 {
    sum(s, "gcore_iam_group_members", &[&[("account", "acme")], m].concat())
}

fn auth(s: &[common::Sample], m: &[(&str, &str)]) -> f64 {
    sum(s, "gcore_iam_auth_type_users", &[&[("account", "acme")], m].concat())
}

fn up(s: &[common::Sample]) -> f64 {
    sum(s, "gcore_iam_up", &[("account", "acme")])
}

#[tokio::test]
async fn exact_numbers_for_every_family() {
    let api = FakeApi::new(KEY, population());
    let (exporter, _api) = start_with(&api, KEY).await;
    let s = exporter.scrape_until(Duration::from_secs(10), |s| up(s) == 1.0).await;

    // Totals: deleted users excluded from every count and counted apart.
    assert_eq!(users(&s, &[]), 8.0);
    assert_eq!(sum(&s, "gcore_iam_deleted_users", &[("account", "acme")]), 2.0);
    assert_eq!(sum(&s, "gcore_iam_users_fetched", &[("account", "acme")]), 10.0);
    assert_eq!(sum(&s, "gcore_iam_api_reported_users", &[("account", "acme")]), 10.0);

    // gcore_iam_users: every crossing, exactly.
    let t = |v: bool| if v { "true" } else { "false" };
    for (user_type, two_fa, activated, sso, active, expected) in [
        ("common", false, true, false, true, 1.0),
        ("common", true, true, false, true, 2.0),
        ("common", true, false, true, true, 1.0),
        ("common", true, true, false, false, 1.0),
        ("reseller", false, true, false, true, 1.0),
        ("seller", false, false, false, true, 1.0),
        ("partner", true, true, false, true, 1.0),
    ] {
        let m = [
            ("user_type", user_type),
            ("two_fa", t(two_fa)),
            ("activated", t(activated)),
            ("sso_auth", t(sso)),
            ("is_active", t(active)),
        ];
        assert_eq!(users(&s, &m), expected, "{m:?}");
    }
    assert_eq!(users(&s, &[("two_fa", "false")]), 3.0);
    assert_eq!(users(&s, &[("activated", "false"), ("two_fa", "false")]), 1.0);
    // Every known combination exists (3 known types + 1 unknown, 16 flag crossings each).
    assert_eq!(series_count(&s, "gcore_iam_users"), 4 * 16);

    // gcore_iam_group_members: a user in two groups counts in both.
    for (group_id, group, two_fa, activated, expected) in [
        ("1", "Administrators", "false", "true", 1.0),
        ("1", "Administrators", "true", "true", 1.0),
        ("1", "Administrators", "false", "false", 0.0),
        ("2", "Users", "true", "false", 1.0),
        ("2", "Users", "false", "true", 1.0),
        ("5", "Engineers", "false", "true", 1.0),
        ("5", "Engineers", "true", "true", 1.0),
        ("3022", "Purge and Prefetch only (API)", "false", "false", 1.0),
        ("3009", "Purge and Prefetch only (API+Web)", "true", "true", 1.0),
        ("4242", "Auditors", "true", "true", 1.0),
    ] {
        let m = [("group_id", group_id), ("group", group), ("two_fa", two_fa), ("activated", activated)];
        assert_eq!(members(&s, &m), expected, "{m:?}");
    }
    assert_eq!(members(&s, &[]), 9.0);
    assert_eq!(series_count(&s, "gcore_iam_group_members"), 6 * 4);

    // gcore_iam_auth_type_users: a user with two auth types counts in both.
    for (auth_type, two_fa, expected) in [
        ("password", "false", 2.0),
        ("password", "true", 3.0),
        ("github", "true", 1.0),
        ("github", "false", 0.0),
        ("sso", "true", 1.0),
        ("google-oauth2", "false", 1.0),
        ("saml", "true", 1.0),
    ] {
        assert_eq!(auth(&s, &[("auth_type", auth_type), ("two_fa", two_fa)]), expected, "{auth_type} {two_fa}");
    }
    assert_eq!(series_count(&s, "gcore_iam_auth_type_users"), 5 * 2);

    // Health of the poll: 4 pages of 3, all fine.
    assert!(sum(&s, "gcore_iam_polls_total", &[("account", "acme")]) >= 1.0);
    assert_eq!(sum(&s, "gcore_iam_poll_failures_total", &[("account", "acme")]), 0.0);
    assert_eq!(series_count(&s, "gcore_iam_poll_failures_total"), 14);
    let polls = sum(&s, "gcore_iam_polls_total", &[("account", "acme")]);
    assert_eq!(sum(&s, "gcore_iam_api_requests_total", &[("account", "acme"), ("result", "ok")]), 4.0 * polls);
    assert!(sum(&s, "gcore_iam_last_success_timestamp_seconds", &[("account", "acme")]) > 1.7e9);
    assert!(sum(&s, "gcore_iam_poll_duration_seconds", &[("account", "acme")]) > 0.0);
    assert_eq!(sum(&s, "gcore_iam_poll_interval_seconds", &[("account", "acme")]), 0.3);
    assert_eq!(sum(&s, "gcore_iam_exporter_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);

    // Every request sent limit and offset, and the key.
    let requests = api.requests();
    assert!(requests.iter().all(|r| r.authorized), "{requests:?}");
    let first: Vec<_> = requests.iter().take(4).map(|r| r.query.clone().unwrap_or_default()).collect();
    assert_eq!(first, ["limit=3&offset=0", "limit=3&offset=3", "limit=3&offset=6", "limit=3&offset=9"]);
}

#[tokio::test]
async fn failures_keep_the_last_numbers_and_recover() {
    let api = FakeApi::new(KEY, population());
    let (exporter, _api) = start_with(&api, KEY).await;
    exporter.scrape_until(Duration::from_secs(10), |s| up(s) == 1.0).await;

    api.set_persistent_fault(Some(Fault::status(500)));
    let s = exporter
        .scrape_until(Duration::from_secs(15), |s| {
            sum(s, "gcore_iam_poll_failures_total", &[("account", "acme"), ("reason", "server_error")]) >= 1.0
        })
        .await;
    assert_eq!(up(&s), 0.0);
    // The last good numbers are still served.
    assert_eq!(users(&s, &[]), 8.0);
    assert_eq!(members(&s, &[("group", "Administrators"), ("two_fa", "false")]), 1.0);
    // Each failed poll made 1 request + 2 retries, all counted as server errors.
    let failed_polls = sum(&s, "gcore_iam_poll_failures_total", &[("account", "acme"), ("reason", "server_error")]);
    let failed_requests = sum(&s, "gcore_iam_api_requests_total", &[("account", "acme"), ("result", "server_error")]);
    assert_eq!(failed_requests, 3.0 * failed_polls);

    // The population changes and the API recovers: the new numbers arrive.
    api.set_users(population().into_iter().take(3).collect());
    api.set_persistent_fault(None);
    let s = exporter.scrape_until(Duration::from_secs(15), |s| up(s) == 1.0).await;
    assert_eq!(users(&s, &[]), 3.0);
    assert_eq!(sum(&s, "gcore_iam_users_fetched", &[("account", "acme")]), 3.0);
}

#[tokio::test]
async fn wrong_key_is_unauthorized_and_never_retried() {
    let api = FakeApi::new(KEY, population());
    let (exporter, _api) = start_with(&api, "42_wrongkey").await;
    let s = exporter
        .scrape_until(Duration::from_secs(10), |s| {
            sum(s, "gcore_iam_poll_failures_total", &[("reason", "unauthorized")]) >= 1.0
        })
        .await;
    let failed_polls = sum(&s, "gcore_iam_poll_failures_total", &[("reason", "unauthorized")]);
    assert_eq!(up(&s), 0.0);
    assert_eq!(sum(&s, "gcore_iam_api_requests_total", &[("result", "unauthorized")]), failed_polls);
    assert_eq!(sum(&s, "gcore_iam_api_requests_total", &[]), failed_polls);
    // No user series at all: there never was a successful poll.
    assert_eq!(series_count(&s, "gcore_iam_users"), 0);
    assert_eq!(series_count(&s, "gcore_iam_last_success_timestamp_seconds"), 0);
}

#[tokio::test]
async fn ready_only_after_the_first_poll_and_metrics_answer_before() {
    let api = FakeApi::new(KEY, population());
    api.push_fault(Fault::Delay(Duration::from_millis(1500)));
    let (exporter, _api) = start_with(&api, KEY).await;

    let ready = exporter.http.get(exporter.url("/-/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let s = exporter.scrape().await;
    assert_eq!(up(&s), 0.0);
    assert_eq!(exporter.http.get(exporter.url("/-/healthy")).send().await.unwrap().status(), 200);

    exporter.scrape_until(Duration::from_secs(10), |s| up(s) == 1.0).await;
    let ready = exporter.http.get(exporter.url("/-/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn several_accounts_in_one_process() {
    let shutdown = CancellationToken::new();
    let prod = FakeApi::new("42_prod", population());
    let staging = FakeApi::new("42_staging", population().into_iter().take(2).collect());
    let prod_addr = fake_api(&prod, &shutdown).await;
    let staging_addr = fake_api(&staging, &shutdown).await;
    let exporter = Harness::start(config(vec![
        account("prod", prod_addr, "42_prod"),
        account("staging", staging_addr, "42_staging"),
    ]))
    .await;
    let s = exporter.scrape_until(Duration::from_secs(10), |s| sum(s, "gcore_iam_up", &[]) == 2.0).await;
    assert_eq!(sum(&s, "gcore_iam_users", &[("account", "prod")]), 8.0);
    assert_eq!(sum(&s, "gcore_iam_users", &[("account", "staging")]), 2.0);
    assert_eq!(sum(&s, "gcore_iam_group_members", &[("account", "staging"), ("group", "Administrators")]), 2.0);
    shutdown.cancel();
}

#[tokio::test]
async fn formats_landing_page_and_unknown_paths() {
    let api = FakeApi::new(KEY, population());
    let (exporter, _api) = start_with(&api, KEY).await;
    exporter.scrape_until(Duration::from_secs(10), |s| up(s) == 1.0).await;
    let http = &exporter.http;

    // OpenMetrics when Prometheus asks for it.
    let om = http
        .get(exporter.url("/metrics"))
        .header("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
        .send()
        .await
        .unwrap();
    assert!(om.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let om = om.text().await.unwrap();
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE gcore_iam_polls counter"));

    // gzip when asked, and the same bytes once decompressed.
    let plain = exporter.metrics_text().await;
    let gz = http.get(exporter.url("/metrics")).header("Accept-Encoding", "gzip").send().await.unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert!(gz.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&gz.bytes().await.unwrap()[..]).read_to_string(&mut unzipped).unwrap();
    assert_eq!(parse_exposition(&unzipped).len(), parse_exposition(&plain).len());

    let landing = http.get(exporter.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(landing.contains("acme") && landing.contains("/metrics") && landing.contains(env!("CARGO_PKG_VERSION")));
    assert_eq!(http.get(exporter.url("/nope")).send().await.unwrap().status(), 404);
    assert_eq!(http.post(exporter.url("/metrics")).send().await.unwrap().status(), 405);
    assert_eq!(http.head(exporter.url("/metrics")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let api = FakeApi::demo(KEY, 7);
    let (exporter, _api) = start_with(&api, KEY).await;
    exporter.scrape_until(Duration::from_secs(10), |s| up(s) == 1.0).await;
    common::assert_promtool_clean(&exporter.metrics_text().await);
}

#[tokio::test]
async fn stale_user_series_are_withdrawn_but_up_and_last_success_stay() {
    let api = FakeApi::new(KEY, population());
    let api_shutdown = CancellationToken::new();
    let addr = fake_api(&api, &api_shutdown).await;
    let mut cfg = config(vec![account("acme", addr, KEY)]);
    cfg.max_staleness = Some(Duration::from_secs(2));
    let exporter = Harness::start(cfg).await;
    exporter.scrape_until(Duration::from_secs(10), |s| up(s) == 1.0).await;

    // 403 is never retried, so failed polls are quick.
    api.set_persistent_fault(Some(Fault::status(403)));
    let s = exporter
        .scrape_until(Duration::from_secs(10), |s| {
            sum(s, "gcore_iam_poll_failures_total", &[("reason", "forbidden")]) >= 1.0
        })
        .await;
    // Within the staleness window the last numbers are still served.
    assert_eq!(users(&s, &[]), 8.0);
    let s = exporter.scrape_until(Duration::from_secs(10), |s| series_count(s, "gcore_iam_users") == 0).await;
    assert_eq!(up(&s), 0.0);
    assert_eq!(series_count(&s, "gcore_iam_group_members"), 0);
    assert_eq!(series_count(&s, "gcore_iam_auth_type_users"), 0);
    assert_eq!(series_count(&s, "gcore_iam_last_success_timestamp_seconds"), 1);

    api.set_persistent_fault(None);
    let s = exporter.scrape_until(Duration::from_secs(10), |s| up(s) == 1.0).await;
    assert_eq!(users(&s, &[]), 8.0);
}
