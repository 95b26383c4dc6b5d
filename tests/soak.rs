//! A bounded soak of the exporter binary: the fake API alternates between healthy and faulty
//! while concurrent clients scrape `/metrics` without pause. Every scrape must succeed, the
//! numbers served must stay the last good ones, and neither file descriptors nor memory may
//! creep. Minutes long, so ignored; run it with `scripts/soak`, or:
//!
//! ```sh
//! SOAK_SECONDS=120 SOAK_SCRAPERS=32 cargo test --release --test soak -- --ignored --nocapture
//! ```
//!
//! `EXPORTER_BIN` runs another binary than the one cargo just built.
#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::child::ChildExporter;
use common::{fake_api, parse_exposition, sum};
use gcore_iam_fake::{FakeApi, Fault};
use tokio_util::sync::CancellationToken;

const KEY: &str = "42_soakkey";

/// More descriptors than this at the end than after the warm-up is a leak.
const FD_MARGIN: usize = 8;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The exporter against the fake API at `api`, polling every second.
fn spawn_exporter(api: std::net::SocketAddr) -> ChildExporter {
    let bin = std::env::var("EXPORTER_BIN").ok();
    ChildExporter::spawn(
        bin.as_deref(),
        &["--poll.interval", "1s", "--gcore.api-url", &format!("http://{api}/"), "--gcore.request-timeout", "2s"],
        &[("GCORE_API_KEY", KEY)],
    )
}

#[derive(Default)]
struct Tally {
    scrapes: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    /// Scrapes whose user count was not the population's (every 30th scrape is parsed).
    wrong_numbers: AtomicU64,
    checked: AtomicU64,
}

/// One client scraping in a loop, in turn plain, gzip and OpenMetrics, until `stop`.
async fn scraper(url: String, users: f64, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let mut request = http.get(&url);
        request = match n % 3 {
            0 => request.header("Accept-Encoding", "gzip"),
            1 => request.header("Accept", "application/openmetrics-text;version=1.0.0"),
            _ => request,
        };
        let body = match request.send().await {
            Ok(response) if response.status() == 200 => response.bytes().await,
            Ok(response) => {
                eprintln!("scrape: status {}", response.status());
                tally.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e) => Err(e),
        };
        match body {
            Ok(body) => {
                tally.scrapes.fetch_add(1, Ordering::Relaxed);
                tally.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                // A plain-text one (n % 3 == 2).
                if n % 30 == 2 {
                    let samples = parse_exposition(&String::from_utf8_lossy(&body));
                    tally.checked.fetch_add(1, Ordering::Relaxed);
                    if sum(&samples, "gcore_iam_users", &[]) != users {
                        tally.wrong_numbers.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(e) => {
                eprintln!("scrape: {e}");
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of minutes: run scripts/soak"]
async fn soak() {
    let seconds: u64 = env_or("SOAK_SECONDS", 120);
    let scrapers: usize = env_or("SOAK_SCRAPERS", 32);
    let phase = Duration::from_secs(env_or("SOAK_PHASE_SECONDS", 4));

    let shutdown = CancellationToken::new();
    let api = FakeApi::demo(KEY, 7);
    let api_addr = fake_api(&api, &shutdown).await;
    let mut exporter = spawn_exporter(api_addr);
    let metrics = format!("http://{}/metrics", exporter.addr);

    // Warm-up: the first poll, then the figures of an idle exporter.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let s = parse_exposition(&http.get(&metrics).send().await.unwrap().text().await.unwrap());
        if sum(&s, "gcore_iam_up", &[]) == 1.0 {
            break s;
        }
        assert!(Instant::now() < deadline, "no successful poll");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(http);
    let users = sum(&first, "gcore_iam_users", &[]);
    assert!(users > 0.0);
    let (idle_rss, idle_fds) = (exporter.rss_kib(), exporter.open_fds());

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let tasks: Vec<_> =
        (0..scrapers).map(|_| tokio::spawn(scraper(metrics.clone(), users, stop.clone(), tally.clone()))).collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (start_rss, start_fds) = (exporter.rss_kib(), exporter.open_fds());

    // Healthy and faulty in turn; the numbers served must stay the same throughout.
    let faults = [
        None,
        Some(Fault::status(500)),
        None,
        Some(Fault::ConnectionReset),
        None,
        Some(Fault::Delay(Duration::from_millis(300))),
        None,
        Some(Fault::HtmlOk),
        None,
        Some(Fault::TruncatedBody),
        None,
        Some(Fault::rate_limited(0)),
    ];
    let started = Instant::now();
    let mut peak_rss = start_rss;
    let mut phases = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        api.set_persistent_fault(faults[phases % faults.len()].clone());
        phases += 1;
        let phase_end = Instant::now() + phase;
        while Instant::now() < phase_end {
            tokio::time::sleep(Duration::from_millis(250)).await;
            peak_rss = peak_rss.max(exporter.rss_kib());
        }
    }
    let elapsed = started.elapsed();
    api.set_persistent_fault(None);
    let (end_rss, end_fds) = (exporter.rss_kib(), exporter.open_fds());
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after_rss, after_fds) = (exporter.rss_kib(), exporter.open_fds());

    let last = parse_exposition(&reqwest::get(&metrics).await.unwrap().text().await.unwrap());
    let scrapes = tally.scrapes.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    let wrong = tally.wrong_numbers.load(Ordering::Relaxed);
    let (status, stop_time) = exporter.terminate();

    let mb = |kib: u64| kib as f64 / 1024.0;
    println!(
        "soak: {seconds} s requested, {:.1} s run, {scrapers} scrapers, {phases} phases of {phase:?}",
        elapsed.as_secs_f64()
    );
    println!(
        "soak: /metrics scrapes {scrapes} ({:.0}/s, {:.1} MiB), errors {errors}, numbers checked {} (wrong {wrong})",
        scrapes as f64 / elapsed.as_secs_f64(),
        tally.bytes.load(Ordering::Relaxed) as f64 / 1048576.0,
        tally.checked.load(Ordering::Relaxed),
    );
    println!(
        "soak: RSS MiB idle {:.1}, start {:.1}, peak {:.1}, end {:.1}, after {:.1}",
        mb(idle_rss),
        mb(start_rss),
        mb(peak_rss),
        mb(end_rss),
        mb(after_rss)
    );
    println!("soak: open fds idle {idle_fds}, start {start_fds}, end {end_fds}, after {after_fds}");
    let failures: Vec<String> = ["server_error", "connect", "timeout", "decode", "rate_limited", "deadline"]
        .iter()
        .map(|r| format!("{r}={}", sum(&last, "gcore_iam_poll_failures_total", &[("reason", r)])))
        .collect();
    println!(
        "soak: polls {}, failed polls {}, API requests {}, warnings logged {}, SIGTERM exit in {:?}",
        sum(&last, "gcore_iam_polls_total", &[]),
        failures.join(" "),
        sum(&last, "gcore_iam_api_requests_total", &[]),
        exporter.warnings(),
        stop_time
    );

    assert_eq!(errors, 0, "every scrape must succeed");
    assert_eq!(wrong, 0, "the last good numbers must be served throughout");
    assert!(scrapes > 0);
    assert!(sum(&last, "gcore_iam_poll_failures_total", &[]) > 0.0, "the faults did happen");
    assert!(end_fds <= start_fds + FD_MARGIN, "fds grew under load: {start_fds} -> {end_fds}");
    assert!(after_fds <= idle_fds + FD_MARGIN, "fds not released: {idle_fds} -> {after_fds}");
    assert!(status.success(), "exit status {status:?}");
    shutdown.cancel();
}
