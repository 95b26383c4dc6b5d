//! The exporter binary against a hostile API ([`common::hostile`]): no answer can end the
//! process, bloat it, or make it page forever, and none makes it publish a part of an account
//! as the whole. Each test starts a real exporter process, lets it poll a well-behaved account,
//! turns the attack on, and checks: the process is alive, its peak memory is bounded, the
//! requests of each poll are bounded, the last good numbers are kept with `gcore_iam_up 0` and
//! the right reason, `/metrics` answers and is promtool-clean, and the key never leaves the
//! configured host nor appears in a log or a metric.
//!
//! The release binary's figures for the same cases are in the README (Hardening), measured by
//! `scripts/hostile-api`.
#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

mod common;

use std::time::{Duration, Instant};

use common::child::ChildExporter;
use common::hostile::{Attack, GOOD_USERS, HostileApi, KEY};
use common::{Sample, parse_exposition, sum};
use gcore_iam_exporter::gcore::{MAX_PAGES_WITHOUT_NEW_USERS, PAGE_SLACK};
use tokio_util::sync::CancellationToken;

/// Long enough for a few 1 s polls on a loaded CI machine.
const WAIT: Duration = Duration::from_secs(60);

/// Peak resident memory allowed under any attack. The release binary peaks far lower (README,
/// Hardening); this bound is what tells the fixed exporter from the one that grew past 1 GiB
/// on sparse ids or to 150–270 MiB on a 15 MiB answer with huge lists.
const PEAK_RSS_LIMIT_KIB: u64 = 96 * 1024;

struct Attacked {
    api: HostileApi,
    exporter: ChildExporter,
    _shutdown: tokio_util::sync::DropGuard,
    http: reqwest::Client,
}

impl Attacked {
    /// A hostile API serving its good account, and an exporter polling it every second (pages
    /// of 10 unless `extra_args` say otherwise) that has published the good numbers once.
    async fn start(extra_args: &[&str]) -> Attacked {
        Self::start_under(Attack::None, extra_args).await
    }

    /// Like [`Attacked::start`], with `attack` on from the exporter's first poll (one that
    /// still lets the users be read).
    async fn start_under(attack: Attack, extra_args: &[&str]) -> Attacked {
        let shutdown = CancellationToken::new();
        let api = HostileApi::start(&shutdown).await;
        let good = attack == Attack::None;
        api.set(attack);
        let url = api.url();
        let mut args = vec!["--gcore.api-url", &url, "--poll.interval", "1s"];
        if !extra_args.contains(&"--gcore.page-size") {
            args.extend(["--gcore.page-size", "10"]);
        }
        args.extend_from_slice(extra_args);
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let exporter = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ChildExporter::spawn(None, &args, &[("GCORE_API_KEY", KEY)])
        })
        .await
        .unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let attacked = Attacked { api, exporter, _shutdown: shutdown.drop_guard(), http };
        let s = attacked.scrape_until(|s| up(s) == 1.0).await;
        if good {
            assert_eq!(users(&s), GOOD_USERS as f64);
        }
        attacked
    }

    async fn metrics_text(&self) -> String {
        let response = self
            .http
            .get(format!("http://{}/metrics", self.exporter.addr))
            .send()
            .await
            .expect("/metrics answers during the attack");
        assert!(response.status().is_success());
        response.text().await.unwrap()
    }

    async fn scrape_until(&self, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = parse_exposition(&self.metrics_text().await);
            if done(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "condition not met within {WAIT:?}; log:\n{}", self.exporter.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Turns the attack on and waits for two polls that failed with `reason`. Returns the
    /// scrape and the request counts of the polls made entirely under attack.
    async fn attack_until_failed(&mut self, attack: Attack, reason: &str) -> (Vec<Sample>, Vec<u64>) {
        let before = self.api.polls().len();
        self.api.set(attack);
        let s = self.scrape_until(|s| failures(s, reason) >= 2.0).await;
        let polls = self.api.polls();
        // The first poll under attack may have begun before the switch; the last may still run.
        let under_attack = polls[(before + 1).min(polls.len())..polls.len().saturating_sub(1)].to_vec();
        assert_eq!(up(&s), 0.0);
        self.check_survived(&s).await;
        (s, under_attack)
    }

    /// Alive, bounded memory, the last good numbers kept, promtool-clean, no key anywhere.
    async fn check_survived(&mut self, s: &[Sample]) {
        assert!(self.exporter.is_running(), "the exporter died:\n{}", self.exporter.log());
        let peak = self.exporter.peak_rss_kib();
        assert!(peak <= PEAK_RSS_LIMIT_KIB, "peak RSS {peak} KiB");
        assert_eq!(users(s), GOOD_USERS as f64, "the last good numbers are kept");
        let text = self.metrics_text().await;
        assert!(!text.contains(KEY) && !self.exporter.log().contains(KEY), "the key leaked");
        assert!(self.api.leaked().is_empty(), "a request reached another host: {:?}", self.api.leaked());
        common::assert_promtool_clean(&text);
    }
}

fn up(s: &[Sample]) -> f64 {
    sum(s, "gcore_iam_up", &[])
}

fn users(s: &[Sample]) -> f64 {
    sum(s, "gcore_iam_users", &[])
}

fn failures(s: &[Sample], reason: &str) -> f64 {
    sum(s, "gcore_iam_poll_failures_total", &[("reason", reason)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_too_large_for_a_duration_does_not_end_the_process() {
    let mut t = Attacked::start(&[]).await;
    for (status, header, value, reason) in [
        (503, "retry-after", "1e20", "server_error"),
        (429, "retry-after-ms", "1e30", "rate_limited"),
        (401, "retry-after", "1e20", "unauthorized"),
        (503, "retry-after", "18446744073709551616", "server_error"),
    ] {
        let before = failures(&t.scrape_until(|_| true).await, reason);
        t.api.set(Attack::HugeRetryAfter { status, header, value });
        let s = t.scrape_until(|s| failures(s, reason) > before).await;
        assert_eq!(up(&s), 0.0);
        t.check_survived(&s).await;
        t.api.set(Attack::None);
        t.scrape_until(|s| up(s) == 1.0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_users_at_every_offset_end_the_poll_after_a_few_pages() {
    let mut t = Attacked::start(&[]).await;
    let (_, polls) = t.attack_until_failed(Attack::SameUsersEveryOffset, "incomplete").await;
    // 10 users received: the budget is 2 × 1 + PAGE_SLACK pages, and the poll ends sooner,
    // after MAX_PAGES_WITHOUT_NEW_USERS pages without a new user (plus those in flight).
    let budget = 2 + PAGE_SLACK;
    assert!(u64::from(MAX_PAGES_WITHOUT_NEW_USERS) < budget);
    for requests in polls {
        assert!(requests <= budget, "{requests} requests in one poll");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_ids_forever_stop_at_the_users_cap_with_bounded_memory() {
    let max_users = 20_000;
    let mut t = Attacked::start(&["--gcore.max-users", "20000", "--gcore.page-size", "100"]).await;
    let (_, polls) = t.attack_until_failed(Attack::FreshSparseIds, "too_many_users").await;
    for requests in polls {
        assert!(requests <= 2 * max_users / 100 + PAGE_SLACK, "{requests} requests in one poll");
        assert!(requests > max_users / 100, "the poll read up to the cap: {requests} requests");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_without_count_is_read_to_the_end_and_published_exactly() {
    let t = Attacked::start(&[]).await;
    // 18 users, pages of 10, no `count`: reading the first page's length as the count used to
    // publish 9 users (one page) as the whole account.
    t.api.set(Attack::NoCount { users: 18 });
    let s = t.scrape_until(|s| up(s) == 1.0 && sum(s, "gcore_iam_users_fetched", &[]) != GOOD_USERS as f64).await;
    assert_eq!(users(&s), 18.0);
    assert_eq!(sum(&s, "gcore_iam_users_fetched", &[]), 18.0);
    assert_eq!(sum(&s, "gcore_iam_api_reported_users", &[]), 18.0, "without a count, the users received");
    // Every 5th user is an administrator: 5, 10, 15.
    assert_eq!(sum(&s, "gcore_iam_group_members", &[("group", "Administrators")]), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_lists_in_one_answer_cost_a_bounded_memory() {
    let mut t = Attacked::start(&[]).await;
    // Close to the default 4 MiB limit: one user with some 150,000 groups and 180,000 auth types.
    t.api.set(Attack::HugeLists { bytes: 3_800_000 });
    let s = t.scrape_until(|s| up(s) == 1.0 && sum(s, "gcore_iam_group_members", &[("group_id", "7")]) == 1.0).await;
    assert!(t.exporter.is_running());
    let peak = t.exporter.peak_rss_kib();
    assert!(peak <= PEAK_RSS_LIMIT_KIB, "peak RSS {peak} KiB");
    assert_eq!(sum(&s, "gcore_iam_auth_type_users", &[("auth_type", "password")]), 1.0, "listed often, counted once");
    common::assert_promtool_clean(&t.metrics_text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_token_list_costs_a_bounded_memory() {
    let mut t = Attacked::start(&[]).await;
    t.api.set(Attack::HugeTokenList { bytes: 3_800_000 });
    let s = t.scrape_until(|s| sum(s, "gcore_iam_tokens", &[]) > 1000.0).await;
    assert!(t.exporter.is_running());
    let peak = t.exporter.peak_rss_kib();
    assert!(peak <= PEAK_RSS_LIMIT_KIB, "peak RSS {peak} KiB");
    // Every token counted, per-token series capped.
    assert!(common::series_count(&s, "gcore_iam_token_info") <= 100);
    common::assert_promtool_clean(&t.metrics_text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_never_takes_the_key_there() {
    let mut t = Attacked::start(&[]).await;
    t.attack_until_failed(Attack::RedirectElsewhere, "redirect").await;
    assert!(t.api.leaked().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_page_with_status_200_fails_as_decode() {
    let mut t = Attacked::start(&[]).await;
    t.attack_until_failed(Attack::HtmlPage, "decode").await;
    assert!(!t.exporter.log().contains("Bad Gateway"), "the body is described, not copied into the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tokens_collector_has_a_state_while_the_account_was_never_read() {
    let t = Attacked::start_under(Attack::AccountFailing, &[]).await;
    let s = t.scrape_until(|s| sum(s, "gcore_iam_polls_total", &[]) >= 2.0).await;
    let state = |collector: &str, state: &str| {
        sum(&s, "gcore_iam_collector_state", &[("collector", collector), ("state", state)])
    };
    assert_eq!(state("account", "failing"), 1.0);
    assert_eq!(state("tokens", "failing"), 1.0, "the tokens collector cannot run without the account's id");
    assert_eq!(sum(&s, "gcore_iam_collector_state", &[("collector", "tokens")]), 1.0, "one state at a time");
    assert_eq!(up(&s), 1.0, "the users are still polled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_that_differs_is_logged_once_not_at_every_poll() {
    let t = Attacked::start_under(Attack::RepeatedSecondPage, &[]).await;
    let s = t.scrape_until(|s| sum(s, "gcore_iam_polls_total", &[]) >= 4.0).await;
    assert_eq!(up(&s), 1.0);
    assert_eq!(sum(&s, "gcore_iam_users_fetched", &[]), 15.0, "users 11 to 20 never came");
    assert_eq!(sum(&s, "gcore_iam_api_reported_users", &[]), GOOD_USERS as f64);
    let log = t.exporter.log();
    let warned = log.lines().filter(|l| l.contains("\"level\":\"WARN\"") && l.contains("count differs")).count();
    assert_eq!(warned, 1, "{log}");
}

/// The figures of the README's Hardening section: each attack with the default flags against
/// the binary in `EXPORTER_BIN` (the release build, from `scripts/hostile-api`), for about
/// `HOSTILE_SECONDS` seconds each. Prints peak RSS, requests per poll and the slowest scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long; run by scripts/hostile-api"]
async fn figures_with_default_flags() {
    let seconds: u64 = std::env::var("HOSTILE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let bin = std::env::var("EXPORTER_BIN").ok();
    for (name, attack) in [
        ("Retry-After: 1e20 on 503", Attack::HugeRetryAfter { status: 503, header: "retry-after", value: "1e20" }),
        ("same users at every offset, count 10^12", Attack::SameUsersEveryOffset),
        ("fresh sparse ids forever, count 10^12", Attack::FreshSparseIds),
        ("one user with 3.8 MB of groups and auth types", Attack::HugeLists { bytes: 3_800_000 }),
        ("a 3.8 MB token list", Attack::HugeTokenList { bytes: 3_800_000 }),
        ("redirect to another host", Attack::RedirectElsewhere),
    ] {
        let shutdown = CancellationToken::new();
        let api = HostileApi::start(&shutdown).await;
        let url = api.url();
        let bin = bin.clone();
        let mut exporter = tokio::task::spawn_blocking(move || {
            ChildExporter::spawn(
                bin.as_deref(),
                &["--gcore.api-url", &url, "--poll.interval", "1s"],
                &[("GCORE_API_KEY", KEY)],
            )
        })
        .await
        .unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let metrics = format!("http://{}/metrics", exporter.addr);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let polls_before = api.polls().len();
        api.set(attack);
        let end = Instant::now() + Duration::from_secs(seconds);
        let mut slowest = Duration::ZERO;
        let mut text = String::new();
        while Instant::now() < end {
            let started = Instant::now();
            text = http.get(&metrics).send().await.unwrap().text().await.unwrap();
            slowest = slowest.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let polls = api.polls();
        let per_poll: Vec<u64> = polls[(polls_before + 1).min(polls.len())..polls.len().saturating_sub(1)].to_vec();
        let s = parse_exposition(&text);
        let reasons: Vec<String> = s
            .iter()
            .filter(|x| x.name == "gcore_iam_poll_failures_total" && x.value > 0.0)
            .map(|x| format!("{}={}", x.labels["reason"], x.value))
            .collect();
        println!(
            "{name}: alive={} peak_rss_mib={:.1} polls={} max_requests_per_poll={} slowest_scrape_ms={} up={} users={} failures=[{}]",
            exporter.is_running(),
            exporter.peak_rss_kib() as f64 / 1024.0,
            per_poll.len(),
            per_poll.iter().max().unwrap_or(&0),
            slowest.as_millis(),
            up(&s),
            users(&s),
            reasons.join(" ")
        );
        drop(exporter);
        shutdown.cancel();
    }
}
