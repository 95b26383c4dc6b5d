//! Everything /metrics serves: the registry (built once), the poll counters, the collector
//! that turns the published account states into gauges, and the encoded exposition.
//!
//! The exposition is encoded when something changes (a poll ends), in both text formats and
//! gzip-compressed, so that a scrape is a reference to ready bytes: it does no I/O, takes no
//! lock and never waits for a poll. Each account's part is encoded on its own, so publishing a
//! poll costs what that account costs (see `assembly.rs`).

mod assembly;
mod body;
mod collector;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;

use crate::board::{AccountState, Board};
use crate::changes::{ChangeTotals, Changes};
use crate::gcore::{Reason, RequestResult};
use assembly::Assembler;
pub use body::{ChunkedBody, Chunks};
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

/// One encoding of the whole exposition, in each format a scraper may ask for. The plain
/// bodies are lists of shared chunks, served without being copied into one buffer.
#[derive(Debug, Clone)]
pub struct Exposition {
    pub text: Chunks,
    pub text_gzip: Bytes,
    pub openmetrics: Chunks,
    pub openmetrics_gzip: Bytes,
}

impl Exposition {
    /// The text body in one buffer (tests, benchmarks).
    pub fn text_bytes(&self) -> Bytes {
        self.text.to_bytes()
    }

    /// The OpenMetrics body in one buffer (tests, benchmarks).
    pub fn openmetrics_bytes(&self) -> Bytes {
        self.openmetrics.to_bytes()
    }
}

/// The counters a poller updates, for one account. Each account has its own, so that its part
/// of the exposition can be encoded without the others'.
#[derive(Debug, Clone)]
pub struct AccountCounters(Arc<CounterValues>);

#[derive(Debug)]
struct CounterValues {
    polls: AtomicU64,
    /// One per [`Reason::ALL`], so each failure series exists at 0 from the first scrape.
    failures: Vec<(Reason, AtomicU64)>,
    /// `ok` and each request failure exist from the start; a result not known in advance is
    /// added when it first happens.
    requests: Mutex<Vec<(RequestResult, u64)>>,
    /// What changed between consecutive complete polls since the exporter started.
    changes: Mutex<ChangeTotals>,
}

impl AccountCounters {
    fn new() -> Self {
        let requests = [RequestResult::Ok, RequestResult::Cancelled]
            .into_iter()
            .chain(Reason::REQUEST.iter().map(|&r| RequestResult::Failed(r)))
            .map(|r| (r, 0))
            .collect();
        AccountCounters(Arc::new(CounterValues {
            polls: AtomicU64::new(0),
            failures: Reason::ALL.iter().map(|&r| (r, AtomicU64::new(0))).collect(),
            requests: Mutex::new(requests),
            changes: Mutex::new(ChangeTotals::default()),
        }))
    }

    pub fn poll_finished(&self, failure: Option<Reason>) {
        self.0.polls.fetch_add(1, Ordering::Relaxed);
        if let Some(reason) = failure
            && let Some((_, n)) = self.0.failures.iter().find(|(r, _)| *r == reason)
        {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn request_finished(&self, result: RequestResult) {
        let mut requests = self.0.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match requests.iter_mut().find(|(r, _)| *r == result) {
            Some((_, n)) => *n += 1,
            None => requests.push((result, 1)),
        }
    }

    /// Adds what changed between the last two complete polls.
    pub fn changes_counted(&self, changes: &Changes) {
        self.0.changes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).add(changes);
    }

    fn change_totals(&self) -> ChangeTotals {
        self.0.changes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn polls(&self) -> u64 {
        self.0.polls.load(Ordering::Relaxed)
    }

    fn failures(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        self.0.failures.iter().map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
    }

    fn requests(&self) -> Vec<(RequestResult, u64)> {
        self.0.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// What a scrape serves, and the parts it is assembled from.
#[derive(Debug)]
pub struct Metrics {
    board: Arc<Board>,
    poll_interval: Duration,
    counters: Vec<AccountCounters>,
    exposition: ArcSwap<Exposition>,
    parts: Mutex<Parts>,
}

/// Slot 0 holds what belongs to no account (build info); slot `i + 1` account `i`.
#[derive(Debug)]
struct Parts {
    text: Assembler,
    openmetrics: Assembler,
    /// The account states last encoded, to find which changed since.
    encoded: Vec<Option<Arc<AccountState>>>,
}

impl Metrics {
    /// Encodes every account's part; the counters of every account exist at 0 from the first
    /// scrape.
    pub fn new(board: Arc<Board>, poll_interval: Duration) -> Self {
        let slots = board.len() + 1;
        let mut parts = Parts {
            text: Assembler::new(slots, None),
            openmetrics: Assembler::new(slots, Some("# EOF\n")),
            encoded: vec![None; board.len()],
        };
        let (text, openmetrics) = encode(&registry_of(Vec::new(), true, poll_interval));
        parts.text.update(0, &text);
        parts.openmetrics.update(0, &openmetrics);
        let metrics = Metrics {
            counters: (0..board.len()).map(|_| AccountCounters::new()).collect(),
            board,
            poll_interval,
            exposition: ArcSwap::from_pointee(Exposition {
                text: Chunks::default(),
                text_gzip: Bytes::new(),
                openmetrics: Chunks::default(),
                openmetrics_gzip: Bytes::new(),
            }),
            parts: Mutex::new(parts),
        };
        metrics.refresh();
        metrics
    }

    /// The counters of account `index` (configuration order).
    pub fn account_counters(&self, index: usize) -> AccountCounters {
        self.counters[index].clone()
    }

    /// Publishes what changed on the board since the last call: each account whose state was
    /// replaced is encoded again, alone; the others' parts are reused. Finding them is a pointer
    /// comparison per account.
    pub fn refresh(&self) {
        let mut parts = self.parts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for index in 0..self.board.len() {
            let state = self.board.get(index);
            if parts.encoded[index].as_ref().is_some_and(|old| Arc::ptr_eq(old, &state)) {
                continue;
            }
            let (text, openmetrics) =
                encode(&registry_of(vec![(state.clone(), self.counters[index].clone())], false, self.poll_interval));
            parts.text.update(index + 1, &text);
            parts.openmetrics.update(index + 1, &openmetrics);
            parts.encoded[index] = Some(state);
        }
        parts.text.flush();
        parts.openmetrics.flush();
        let (text, openmetrics) = (parts.text.assemble(), parts.openmetrics.assemble());
        self.exposition.store(Arc::new(Exposition {
            text: text.plain,
            text_gzip: text.gzip,
            openmetrics: openmetrics.plain,
            openmetrics_gzip: openmetrics.gzip,
        }));
    }

    /// The current encoding; cheap (a reference count), never blocks.
    pub fn exposition(&self) -> Arc<Exposition> {
        self.exposition.load_full()
    }

    /// The whole exposition encoded from one registry holding every account, as the exporter
    /// did before it kept parts: the reference the parts must add up to (tests), and the cost
    /// the parts avoid (benchmarks). Text, then OpenMetrics.
    #[doc(hidden)]
    pub fn encode_whole(&self) -> (String, String) {
        let accounts = (0..self.board.len()).map(|i| (self.board.get(i), self.counters[i].clone())).collect();
        encode(&registry_of(accounts, true, self.poll_interval))
    }
}

fn registry_of(
    accounts: Vec<(Arc<AccountState>, AccountCounters)>,
    build_info: bool,
    poll_interval: Duration,
) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(AccountCollector::new(accounts, build_info, poll_interval)));
    registry
}

/// Text and OpenMetrics encodings of a registry.
fn encode(registry: &Registry) -> (String, String) {
    let mut text = String::new();
    let mut openmetrics = String::new();
    // Writing into a String cannot fail; an error here would be a bug in the collector.
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)
        .expect("encoding into a String does not fail");
    prometheus_client::encoding::text::encode(&mut openmetrics, registry)
        .expect("encoding into a String does not fail");
    (text, openmetrics)
}

#[cfg(test)]
mod tests;
