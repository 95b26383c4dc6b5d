//! Parsing users pages into counts (`gcore::wire::parse_page` + `snapshot::UserAggregator`),
//! per megabyte of JSON and per user, next to the floor: serde_json skipping the same pages.
//!
//! `cargo bench --bench poll`
#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gcore_iam_exporter::gcore::wire::parse_page;
use gcore_iam_exporter::snapshot::UserAggregator;
use gcore_iam_testkit::population;
use serde::de::IgnoredAny;
use std::hint::black_box;

/// 10,000 users in pages of 100, as a poll receives them.
const USERS: u64 = 10_000;
const PAGE: u64 = 100;

fn pages() -> Vec<Vec<u8>> {
    (0..USERS).step_by(PAGE as usize).map(|offset| population::page(USERS, offset, PAGE)).collect()
}

fn parse_all(pages: &[Vec<u8>]) -> u64 {
    let mut aggregator = UserAggregator::new();
    for page in pages {
        parse_page(page, &mut aggregator).expect("a valid page");
    }
    aggregator.finish(USERS).active_users
}

fn bench(c: &mut Criterion) {
    let pages = pages();
    let bytes: usize = pages.iter().map(Vec::len).sum();
    assert_eq!(parse_all(&pages), USERS - population::deleted_among(USERS));

    let mut group = c.benchmark_group("parse_per_byte");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("parse_page_and_aggregate", |b| b.iter(|| parse_all(black_box(&pages))));
    group.bench_function("serde_json_skip_only", |b| {
        b.iter(|| {
            for page in black_box(&pages) {
                serde_json::from_slice::<IgnoredAny>(page).expect("valid JSON");
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("parse_per_user");
    group.throughput(Throughput::Elements(USERS));
    group.bench_function("parse_page_and_aggregate", |b| b.iter(|| parse_all(black_box(&pages))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
