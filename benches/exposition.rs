//! Publishing a poll of one account with a full snapshot of 10,000 users (`Metrics::refresh`
//! after a new state: its part encoded in text and OpenMetrics, each also gzip-compressed).
//!
//! `cargo bench --bench exposition`
#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

use std::sync::Arc;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use gcore_iam_exporter::board::{AccountState, Board, PollRecord};
use gcore_iam_exporter::gcore::wire::parse_page;
use gcore_iam_exporter::metrics::Metrics;
use gcore_iam_exporter::snapshot::UserAggregator;
use gcore_iam_testkit::population;

fn bench(c: &mut Criterion) {
    let mut aggregator = UserAggregator::new();
    for offset in (0..10_000).step_by(100) {
        parse_page(&population::page(10_000, offset, 100), &mut aggregator).expect("a valid page");
    }
    let board = Arc::new(Board::new(["production"]));
    let snapshot = Arc::new(aggregator.finish(10_000));
    let state = |millis: u64| {
        let now = SystemTime::now();
        AccountState {
            name: Arc::from("production"),
            snapshot: Some(snapshot.clone()),
            last_success: Some(now),
            last_poll: Some(PollRecord {
                finished_at: now,
                duration: std::time::Duration::from_millis(millis),
                failure: None,
            }),
            credentials: Default::default(),
        }
    };
    board.publish(0, state(80));
    let metrics = Metrics::new(board.clone(), std::time::Duration::from_secs(300));
    let sizes = metrics.exposition();
    eprintln!(
        "exposition: text {} B (gzip {} B), OpenMetrics {} B (gzip {} B)",
        sizes.text_bytes().len(),
        sizes.text_gzip.len(),
        sizes.openmetrics_bytes().len(),
        sizes.openmetrics_gzip.len()
    );
    let mut millis = 80;
    c.bench_function("metrics_refresh_one_account", |b| {
        b.iter(|| {
            // A new state, as after a poll: refresh encodes only accounts whose state changed.
            millis += 1;
            board.publish(0, state(millis));
            metrics.refresh()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
