//! Many accounts in one exporter: first polls staggered over the interval, a bound on polls
//! running at once, and an exposition that stays valid (each family once) across accounts.

#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::routing::get;
use common::{Harness, account, config, fake_api, sum, up_count};
use gcore_iam_fake::FakeApi;
use tokio_util::sync::CancellationToken;

/// An upstream that answers every users request with an empty account after `delay`,
/// recording when each key first asked and how many requests were in flight at most.
#[derive(Default)]
struct SlowApi {
    delay: Duration,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    first_request: Mutex<HashMap<String, Instant>>,
}

async fn users(
    State(api): State<Arc<SlowApi>>,
    headers: HeaderMap,
) -> ([(header::HeaderName, &'static str); 1], &'static str) {
    let key = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    api.first_request.lock().unwrap().entry(key).or_insert_with(Instant::now);
    let now = api.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    api.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(api.delay).await;
    api.in_flight.fetch_sub(1, Ordering::SeqCst);
    ([(header::CONTENT_TYPE, "application/json")], r#"{"count": 0, "next": null, "previous": null, "results": []}"#)
}

#[tokio::test]
async fn first_polls_are_staggered_and_polls_at_once_are_bounded() {
    const ACCOUNTS: usize = 12;
    let api = Arc::new(SlowApi { delay: Duration::from_millis(800), ..Default::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/iam/users", get(users)).with_state(api.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let keys: Vec<String> = (0..ACCOUNTS).map(|i| format!("{}_key", 100 + i)).collect();
    let mut cfg = config(keys.iter().enumerate().map(|(i, k)| account(&format!("a{i}"), addr, k)).collect());
    cfg.poll_interval = Duration::from_secs(2);
    cfg.max_concurrent_accounts = std::num::NonZeroUsize::new(3).unwrap();
    let started = Instant::now();
    let exporter = Harness::start(cfg).await;
    exporter.scrape_until(Duration::from_secs(30), |s| up_count(s) == ACCOUNTS).await;

    // Staggered: account i cannot have asked before i × 90 % × 2 s / 12 = i × 150 ms.
    let first = api.first_request.lock().unwrap().clone();
    assert_eq!(first.len(), ACCOUNTS);
    for (i, key) in keys.iter().enumerate() {
        let at = first[&format!("APIKey {key}")] - started;
        assert!(at >= Duration::from_millis(150 * i as u64), "account {i} first polled after {at:?}");
    }
    // Unbounded, 800 ms answers 150 ms apart would overlap five or six at a time.
    let max = api.max_in_flight.load(Ordering::SeqCst);
    assert!(max <= 3, "{max} polls at once with --poll.max-concurrent-accounts 3");
    assert!(max >= 2, "the polls never overlapped ({max}); the bound was not exercised");
}

#[tokio::test]
async fn many_accounts_expose_each_family_once_in_both_formats_and_pass_promtool() {
    const ACCOUNTS: usize = 20;
    const KEY: &str = "42_manyaccounts";
    let api = FakeApi::demo(KEY, 11);
    let api_shutdown = CancellationToken::new();
    let addr = fake_api(&api, &api_shutdown).await;
    let exporter =
        Harness::start(config((0..ACCOUNTS).map(|i| account(&format!("acct-{i:02}"), addr, KEY)).collect())).await;
    let s = exporter.scrape_until(Duration::from_secs(30), |s| up_count(s) == ACCOUNTS).await;
    // Every account counts the same population, exactly.
    let one = sum(&s, "gcore_iam_users", &[("account", "acct-00")]);
    assert!(one > 0.0);
    for i in 0..ACCOUNTS {
        assert_eq!(sum(&s, "gcore_iam_users", &[("account", &format!("acct-{i:02}"))]), one);
    }

    let text = exporter.metrics_text().await;
    let openmetrics = exporter
        .http
        .get(exporter.url("/metrics"))
        .header("Accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for body in [&text, &openmetrics] {
        let mut helps: Vec<&str> = body.lines().filter(|l| l.starts_with("# HELP ")).collect();
        let families = helps.len();
        helps.sort();
        helps.dedup();
        assert_eq!(helps.len(), families, "a family written twice");
    }
    assert_eq!(openmetrics.matches("# EOF").count(), 1);
    assert!(openmetrics.ends_with("# EOF\n"));
    // The same series in both formats (values move on: polls go on between the two scrapes).
    let key = |s: &common::Sample| format!("{}{:?}", s.name, s.labels);
    let mut from_text: Vec<String> = common::parse_exposition(&text).iter().map(key).collect();
    let mut from_openmetrics: Vec<String> = common::parse_exposition(&openmetrics).iter().map(key).collect();
    from_text.sort();
    from_openmetrics.sort();
    assert!(from_text == from_openmetrics, "the formats differ in their series");

    // promtool 2.42 (Debian's) lints the Prometheus text format only: given OpenMetrics, it
    // reads a counter's `# HELP x` as the help of `x`, not of `x_total`, and complains. The
    // OpenMetrics body is checked above against the text body, sample for sample.
    common::assert_promtool_clean(&text);
    api_shutdown.cancel();
}
