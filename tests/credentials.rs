//! Black-box tests of the account and token collectors: exact values on /metrics, the
//! exporter's own token, a 403 that pauses the tokens collector without harming the users.
#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

mod common;

use std::time::Duration;

use common::{Harness, Sample, account, config, fake_api, series_count, sum};
use gcore_iam_exporter::config::Collectors;
use gcore_iam_fake::{FakeAccount, FakeApi, FakeToken, FakeTokenIssuer, FakeUser};
use tokio_util::sync::CancellationToken;

const KEY: &str = "42_credentialskey";

fn api() -> FakeApi {
    let api = FakeApi::new(KEY, vec![FakeUser::new(1), FakeUser::new(2).two_fa(false)]);
    api.set_account(FakeAccount::new(777).status("paused").has_active_admin(false));
    api.set_tokens(vec![
        FakeToken::new(42, "exporter")
            .exp_date(Some("2030-01-01T00:00:00Z"))
            .last_usage(Some("2026-11-01T00:00:00.000000Z")),
        FakeToken::new(7, "ci").issued_by(FakeTokenIssuer::new(70, 5).role(5, "Engineers").deleted(true)),
        FakeToken::new(8, "old")
            .exp_date(Some("2020-01-01T00:00:00Z"))
            .expired(true)
            .issued_by(FakeTokenIssuer::new(80, 2).role(2, "Users")),
        FakeToken::new(9, "removed").deleted(true),
    ]);
    api
}

async fn start(api: &FakeApi, collectors: Collectors) -> (Harness, CancellationToken) {
    let shutdown = CancellationToken::new();
    let addr = fake_api(api, &shutdown).await;
    let mut cfg = config(vec![account("acme", addr, KEY)]);
    cfg.collectors = collectors;
    (Harness::start(cfg).await, shutdown)
}

fn state(s: &[Sample], collector: &str, state: &str) -> f64 {
    sum(s, "gcore_iam_collector_state", &[("account", "acme"), ("collector", collector), ("state", state)])
}

fn token(s: &[Sample], name: &str, id: &str) -> f64 {
    sum(s, name, &[("account", "acme"), ("token_id", id)])
}

#[tokio::test]
async fn account_and_tokens_exact_values() {
    let api = api();
    let (exporter, _api) = start(&api, Collectors { account: true, tokens: true, logins: false }).await;
    let s = exporter.scrape_until(Duration::from_secs(10), |s| state(s, "tokens", "ok") == 1.0).await;

    assert_eq!(
        sum(&s, "gcore_iam_account_info", &[("account", "acme"), ("client_id", "777"), ("status", "paused")]),
        1.0
    );
    assert_eq!(series_count(&s, "gcore_iam_account_info"), 1);
    assert_eq!(sum(&s, "gcore_iam_account_active_admin", &[("account", "acme")]), 0.0);

    let tokens = |role: &str, expired: &str, never: &str| {
        sum(&s, "gcore_iam_tokens", &[("role", role), ("expired", expired), ("never_expires", never)])
    };
    assert_eq!(tokens("Administrators", "false", "false"), 1.0);
    assert_eq!(tokens("Engineers", "false", "true"), 1.0);
    assert_eq!(tokens("Users", "true", "false"), 1.0);
    assert_eq!(sum(&s, "gcore_iam_tokens", &[]), 3.0, "the deleted token is left out");
    assert_eq!(series_count(&s, "gcore_iam_tokens"), 5 * 4, "every known role and flag crossing at 0");

    assert_eq!(series_count(&s, "gcore_iam_token_info"), 3);
    assert_eq!(sum(&s, "gcore_iam_token_info", &[("token_id", "42"), ("used_by_exporter", "true")]), 1.0);
    assert_eq!(sum(&s, "gcore_iam_token_info", &[("used_by_exporter", "true")]), 1.0);
    assert_eq!(sum(&s, "gcore_iam_token_info", &[("token_id", "7"), ("token_name", "ci"), ("role", "Engineers")]), 1.0);
    assert_eq!(token(&s, "gcore_iam_token_expiry_timestamp_seconds", "42"), 1_893_456_000.0);
    assert_eq!(token(&s, "gcore_iam_token_expiry_timestamp_seconds", "8"), 1_577_836_800.0);
    assert_eq!(series_count(&s, "gcore_iam_token_expiry_timestamp_seconds"), 2, "token 7 never expires");
    assert_eq!(token(&s, "gcore_iam_token_last_used_timestamp_seconds", "42"), 1_793_491_200.0);
    assert_eq!(series_count(&s, "gcore_iam_token_last_used_timestamp_seconds"), 1, "7 and 8 were never used");
    assert_eq!(token(&s, "gcore_iam_token_issuer_deleted", "7"), 1.0);
    assert_eq!(token(&s, "gcore_iam_token_issuer_deleted", "42"), 0.0);
    assert_eq!(state(&s, "account", "ok"), 1.0);
    assert_eq!(state(&s, "tokens", "forbidden"), 0.0);

    // No e-mail or user name of an issuer anywhere.
    let text = exporter.metrics_text().await;
    let issuers = api.tokens().into_iter().map(|t| t.issuer);
    for issuer in issuers {
        assert!(!text.contains(&issuer.user_email) && !text.contains(&issuer.user_name), "{}", issuer.user_email);
    }
}

#[tokio::test]
async fn a_forbidden_token_list_pauses_the_collector_and_users_go_on() {
    let api = api();
    api.set_tokens_forbidden(true);
    let (exporter, _api) = start(&api, Collectors { account: true, tokens: true, logins: false }).await;
    let s = exporter
        .scrape_until(Duration::from_secs(10), |s| sum(s, "gcore_iam_polls_total", &[("account", "acme")]) >= 3.0)
        .await;
    assert_eq!(sum(&s, "gcore_iam_up", &[("account", "acme")]), 1.0);
    assert_eq!(sum(&s, "gcore_iam_users", &[("account", "acme")]), 2.0);
    assert_eq!(state(&s, "tokens", "forbidden"), 1.0);
    assert_eq!(state(&s, "tokens", "ok"), 0.0);
    assert_eq!(state(&s, "account", "ok"), 1.0);
    assert_eq!(series_count(&s, "gcore_iam_token_info"), 0);
    assert_eq!(sum(&s, "gcore_iam_poll_failures_total", &[("account", "acme")]), 0.0);
    // Asked once, not at every poll.
    let token_requests = api.requests().iter().filter(|r| r.path.ends_with("/tokens")).count();
    assert_eq!(token_requests, 1);
    assert_eq!(sum(&s, "gcore_iam_api_requests_total", &[("result", "forbidden")]), 1.0);
}

#[tokio::test]
async fn disabled_collectors_ask_nothing() {
    let api = api();
    let (exporter, _api) = start(&api, Collectors { account: false, tokens: false, logins: false }).await;
    let s = exporter
        .scrape_until(Duration::from_secs(10), |s| sum(s, "gcore_iam_polls_total", &[("account", "acme")]) >= 2.0)
        .await;
    assert_eq!(state(&s, "account", "disabled"), 1.0);
    assert_eq!(state(&s, "tokens", "disabled"), 1.0);
    assert_eq!(series_count(&s, "gcore_iam_account_info"), 0);
    assert!(api.requests().iter().all(|r| r.path == "/iam/users"));
}

#[tokio::test]
async fn tokens_without_the_account_collector() {
    let api = api();
    let (exporter, _api) = start(&api, Collectors { account: false, tokens: true, logins: false }).await;
    let s = exporter.scrape_until(Duration::from_secs(10), |s| state(s, "tokens", "ok") == 1.0).await;
    assert_eq!(state(&s, "account", "disabled"), 1.0);
    assert_eq!(series_count(&s, "gcore_iam_account_info"), 0);
    assert_eq!(series_count(&s, "gcore_iam_token_info"), 3);
}
