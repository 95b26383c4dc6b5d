//! Helpers shared by the black-box tests: start the exporter in-process on port 0 against the
//! built-in fake API, scrape it, and read the exposition back as numbers.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod child;
pub mod hostile;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use gcore_iam_exporter::config::{AccountConfig, ClientSettings, Collectors, Config, KeySource, LogFormat};
use gcore_iam_exporter::secret::ApiKey;
use gcore_iam_fake::FakeApi;
use tokio_util::sync::CancellationToken;

/// One sample of the text exposition.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format (enough of it for our own output: no escaped quotes or
/// commas inside label values are produced by the tests' populations).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value on line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value on line {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels on {line:?}"));
                let mut labels = BTreeMap::new();
                let mut remaining = body;
                while !remaining.is_empty() {
                    let (key, after) = remaining.split_once("=\"").expect("label=\"value\"");
                    let end = after.find('"').expect("closing quote");
                    labels.insert(key.trim_start_matches(',').to_string(), after[..end].to_string());
                    remaining = after[end + 1..].trim_start_matches(',');
                }
                (name.to_string(), labels)
            }
        };
        samples.push(Sample { name, labels, value });
    }
    samples
}

/// The sum of the samples of `name` whose labels include every pair of `matchers`.
pub fn sum(samples: &[Sample], name: &str, matchers: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && matchers.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// How many accounts have `gcore_iam_up` 1.
pub fn up_count(samples: &[Sample]) -> usize {
    samples.iter().filter(|s| s.name == "gcore_iam_up" && s.value == 1.0).count()
}

/// How many series of `name` exist.
pub fn series_count(samples: &[Sample], name: &str) -> usize {
    samples.iter().filter(|s| s.name == name).count()
}

/// A test configuration: port 0, short intervals, small pages.
pub fn config(accounts: Vec<AccountConfig>) -> Config {
    Config {
        listen_address: "127.0.0.1:0".parse().unwrap(),
        telemetry_path: "/metrics".into(),
        poll_interval: Duration::from_millis(300),
        poll_timeout: Duration::from_secs(20),
        max_concurrent_accounts: std::num::NonZeroUsize::new(16).unwrap(),
        max_staleness: None,
        web: None,
        server_limits: Default::default(),
        // Off by default here, so that request counts are those of the user pages alone.
        collectors: Collectors { account: false, tokens: false, logins: false },
        client: ClientSettings {
            page_size: NonZeroU32::new(3).unwrap(),
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            max_retries: 2,
            max_response_bytes: 1 << 20,
            max_users: 1_000_000,
            concurrency: NonZeroU32::new(1).unwrap(),
        },
        accounts,
        shard: gcore_iam_exporter::config::Shard::ALL,
        demo: false,
        log_level: tracing::Level::DEBUG,
        log_format: LogFormat::Text,
    }
}

pub fn account(name: &str, api: SocketAddr, key: &str) -> AccountConfig {
    AccountConfig {
        name: name.into(),
        api_url: url::Url::parse(&format!("http://{api}/")).unwrap(),
        key: KeySource::Fixed(ApiKey::parse(key).unwrap()),
    }
}

/// A running exporter and the client that scrapes it.
pub struct Harness {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start(config: Config) -> Harness {
        let shutdown = CancellationToken::new();
        let running = gcore_iam_exporter::start(config, shutdown.clone()).await.expect("exporter starts");
        let addr = running.local_addr;
        tokio::spawn(running.wait());
        Harness { addr, shutdown, http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn metrics_text(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await.expect("scrape");
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    pub async fn scrape(&self) -> Vec<Sample> {
        parse_exposition(&self.metrics_text().await)
    }

    /// Scrapes until `done` holds, or panics after `timeout`.
    pub async fn scrape_until(&self, timeout: Duration, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let samples = self.scrape().await;
            if done(&samples) {
                return samples;
            }
            assert!(tokio::time::Instant::now() < deadline, "condition not reached within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a fake API on a free loopback port; it stops with `shutdown`.
pub async fn fake_api(api: &FakeApi, shutdown: &CancellationToken) -> SocketAddr {
    api.spawn(0, shutdown.clone()).await.expect("fake API starts").0
}

/// Where promtool is: `$PROMTOOL`, the repo's `.tools`, or the PATH. `None` is only accepted
/// when GCORE_IAM_REQUIRE_TOOLS is not set (the README's test command sets it).
pub fn promtool() -> Option<std::path::PathBuf> {
    let candidates = [
        std::env::var_os("PROMTOOL").map(Into::into),
        Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/usr/bin/promtool")),
        Some("/usr/bin/promtool".into()),
    ];
    let found = candidates.into_iter().flatten().find(|p: &std::path::PathBuf| p.exists());
    if found.is_none() && std::env::var_os("GCORE_IAM_REQUIRE_TOOLS").is_some() {
        panic!("promtool not found and GCORE_IAM_REQUIRE_TOOLS is set: run scripts/install-tools");
    }
    found
}

/// Asserts that `promtool check metrics` finds nothing to say about a text exposition. Does
/// nothing when promtool is not installed (and GCORE_IAM_REQUIRE_TOOLS is not set).
pub fn assert_promtool_clean(text: &str) {
    use std::io::Write;
    let Some(promtool) = promtool() else {
        eprintln!("promtool not installed; skipped (scripts/install-tools installs it)");
        return;
    };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics: {report}");
}
