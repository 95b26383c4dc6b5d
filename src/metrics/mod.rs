//! Everything /metrics serves: the registry (built once), the poll counters, the collector
//! that turns the published account states into gauges, and the encoded exposition.
//!
//! The exposition is encoded when something changes (a poll ends), in both text formats and
//! gzip-compressed, so that a scrape is a copy of ready bytes: it does no I/O, takes no lock and
//! never waits for a poll.

mod collector;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::board::Board;
use crate::gcore::{Reason, RequestResult};
pub use collector::AccountCollector;

/// `Content-Type` of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabels {
    pub account: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub account: Arc<str>,
    pub reason: Reason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub account: Arc<str>,
    pub result: RequestResult,
}

/// One encoding of the whole exposition, in each format a scraper may ask for.
#[derive(Debug, Clone)]
pub struct Exposition {
    pub text: Bytes,
    pub text_gzip: Bytes,
    pub openmetrics: Bytes,
    pub openmetrics_gzip: Bytes,
}

/// The counters a poller updates, for one account.
#[derive(Debug, Clone)]
pub struct AccountCounters {
    account: Arc<str>,
    polls: Family<AccountLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
}

impl AccountCounters {
    pub fn poll_finished(&self, failure: Option<Reason>) {
        self.polls.get_or_create(&AccountLabels { account: self.account.clone() }).inc();
        if let Some(reason) = failure {
            self.failures.get_or_create(&FailureLabels { account: self.account.clone(), reason }).inc();
        }
    }

    pub fn request_finished(&self, result: RequestResult) {
        self.requests.get_or_create(&RequestLabels { account: self.account.clone(), result }).inc();
    }
}

/// The registry and its cached encoding.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    polls: Family<AccountLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    exposition: ArcSwap<Exposition>,
    /// Serializes encodings so that the last one stored is the newest.
    encoding: Mutex<()>,
}

impl Metrics {
    /// Registers every family; the counters of every account exist at 0 from the first scrape.
    pub fn new(board: Arc<Board>, poll_interval: Duration) -> Self {
        let mut registry = Registry::default();
        let polls = Family::<AccountLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "gcore_iam_polls",
            "Polls of the Gcore IAM users API finished by the background poller, successful or not",
            polls.clone(),
        );
        registry.register(
            "gcore_iam_poll_failures",
            "Background polls of the Gcore IAM users API that failed, by reason",
            failures.clone(),
        );
        registry.register(
            "gcore_iam_api_requests",
            "HTTP requests sent to the Gcore IAM API by the background poller (retries included), by result",
            requests.clone(),
        );
        for state in board.all() {
            let account = state.name.clone();
            let _ = polls.get_or_create(&AccountLabels { account: account.clone() });
            for reason in Reason::ALL {
                let _ = failures.get_or_create(&FailureLabels { account: account.clone(), reason });
            }
            let _ = requests.get_or_create(&RequestLabels { account: account.clone(), result: RequestResult::Ok });
            let _ =
                requests.get_or_create(&RequestLabels { account: account.clone(), result: RequestResult::Cancelled });
            for &reason in Reason::REQUEST {
                let _ = requests
                    .get_or_create(&RequestLabels { account: account.clone(), result: RequestResult::Failed(reason) });
            }
        }
        registry.register_collector(Box::new(AccountCollector::new(board, poll_interval)));
        let metrics = Metrics {
            registry,
            polls,
            failures,
            requests,
            exposition: ArcSwap::from_pointee(Exposition {
                text: Bytes::new(),
                text_gzip: Bytes::new(),
                openmetrics: Bytes::new(),
                openmetrics_gzip: Bytes::new(),
            }),
            encoding: Mutex::new(()),
        };
        metrics.refresh();
        metrics
    }

    /// The counters of one account.
    pub fn account_counters(&self, account: &Arc<str>) -> AccountCounters {
        AccountCounters {
            account: account.clone(),
            polls: self.polls.clone(),
            failures: self.failures.clone(),
            requests: self.requests.clone(),
        }
    }

    /// Re-encodes the exposition from the current account states and counters.
    pub fn refresh(&self) {
        let _guard = self.encoding.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut text = String::with_capacity(self.exposition.load().text.len() + 1024);
        let mut openmetrics = String::with_capacity(text.capacity() + 1024);
        // Writing into a String cannot fail; an error here would be a bug in a collector.
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("encoding into a String does not fail");
        prometheus_client::encoding::text::encode(&mut openmetrics, &self.registry)
            .expect("encoding into a String does not fail");
        let exposition = Exposition {
            text_gzip: gzip(text.as_bytes()),
            openmetrics_gzip: gzip(openmetrics.as_bytes()),
            text: Bytes::from(text),
            openmetrics: Bytes::from(openmetrics),
        };
        self.exposition.store(Arc::new(exposition));
    }

    /// The current encoding; cheap (a reference count), never blocks.
    pub fn exposition(&self) -> Arc<Exposition> {
        self.exposition.load_full()
    }
}

fn gzip(data: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), Compression::default());
    encoder.write_all(data).expect("writing into a Vec does not fail");
    Bytes::from(encoder.finish().expect("writing into a Vec does not fail"))
}
