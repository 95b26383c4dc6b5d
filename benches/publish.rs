//! Publishing one account's poll (`Board::publish` + `Metrics::refresh`) in an exporter of 10,
//! 100 and 1,000 accounts of 100 users: it should cost about the same whatever the number of
//! accounts. Beside it, what publishing cost before the exposition was kept in parts: the whole
//! registry encoded in both formats and both gzipped, which grows with the number of accounts.
//!
//! `cargo bench --bench publish`

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flate2::Compression;
use flate2::write::GzEncoder;
use gcore_iam_exporter::board::{AccountState, Board, PollRecord};
use gcore_iam_exporter::gcore::RequestResult;
use gcore_iam_exporter::gcore::wire::parse_page;
use gcore_iam_exporter::metrics::Metrics;
use gcore_iam_exporter::snapshot::{Snapshot, UserAggregator};
use gcore_iam_testkit::population;

const USERS: u64 = 100;

/// Account `i`'s users: a different slice of the synthetic population for each account.
fn snapshot(i: u64) -> Snapshot {
    let mut aggregator = UserAggregator::new();
    let offset = i * USERS;
    parse_page(&population::page(offset + USERS, offset, USERS), &mut aggregator).expect("a valid page");
    aggregator.finish(USERS)
}

/// What a successful poll publishes: the same counts (users rarely change from one poll to the
/// next), a new finish time and duration.
fn polled(name: &Arc<str>, snapshot: &Arc<Snapshot>, round: u64) -> AccountState {
    let finished_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + round);
    AccountState {
        name: name.clone(),
        snapshot: Some(snapshot.clone()),
        last_success: Some(finished_at),
        last_poll: Some(PollRecord { finished_at, duration: Duration::from_millis(5 + round % 50), failure: None }),
        credentials: Default::default(),
    }
}

struct Exporter {
    board: Arc<Board>,
    metrics: Metrics,
    names: Vec<Arc<str>>,
    snapshots: Vec<Arc<Snapshot>>,
}

fn exporter(accounts: usize) -> Exporter {
    let names: Vec<Arc<str>> = (0..accounts).map(|i| Arc::from(format!("account-{i:04}"))).collect();
    let board = Arc::new(Board::new(names.iter().map(|n| &**n)));
    let snapshots: Vec<Arc<Snapshot>> = (0..accounts as u64).map(|i| Arc::new(snapshot(i))).collect();
    for (i, name) in names.iter().enumerate() {
        board.publish(i, polled(name, &snapshots[i], 0));
    }
    let metrics = Metrics::new(board.clone(), Duration::from_secs(300));
    Exporter { board, metrics, names, snapshots }
}

fn gzip(data: &[u8]) -> usize {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).expect("writing into a Vec does not fail");
    encoder.finish().expect("writing into a Vec does not fail").len()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_one_poll");
    group.sample_size(30);
    for accounts in [10, 100, 1000] {
        let e = exporter(accounts);
        let sizes = e.metrics.exposition();
        eprintln!(
            "{accounts} accounts: text {} B (gzip {} B), OpenMetrics gzip {} B",
            sizes.text_bytes().len(),
            sizes.text_gzip.len(),
            sizes.openmetrics_gzip.len()
        );
        let mut round = 1;
        group.bench_function(BenchmarkId::new("parts", accounts), |b| {
            b.iter(|| {
                // Accounts take turns, as their polls do.
                let i = (round as usize * 7) % accounts;
                let counters = e.metrics.account_counters(i);
                counters.request_finished(RequestResult::Ok);
                counters.poll_finished(None);
                e.board.publish(i, polled(&e.names[i], &e.snapshots[i], round));
                e.metrics.refresh();
                round += 1;
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("publish_one_poll_whole_registry");
    group.sample_size(10);
    for accounts in [10, 100, 1000] {
        let e = exporter(accounts);
        group.bench_function(BenchmarkId::new("before", accounts), |b| {
            b.iter(|| {
                let (text, openmetrics) = e.metrics.encode_whole();
                gzip(text.as_bytes()) + gzip(openmetrics.as_bytes())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
