//! The parts add up to the whole: after any sequence of polls (accounts gaining and losing
//! series, failing, recovering), the assembled body is byte for byte what one encode of a
//! registry holding every account writes, in both formats, and its gzip decompresses to it.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::board::{AccountState, Board, CollectorState, Credentials, PollFailure, PollRecord};
use crate::credentials::{AccountInfo, TokenCount, TokenSeries, TokenSnapshot};
use crate::gcore::wire::parse_page;
use crate::snapshot::UserAggregator;
use gcore_iam_fake::{FakeUser, IAM_GROUPS};

fn snapshot(seed: u64, users: u64) -> crate::snapshot::Snapshot {
    let results: Vec<FakeUser> = (0..users)
        .map(|i| {
            let r = seed.wrapping_mul(31).wrapping_add(i * 7);
            FakeUser::new(1000 + i)
                .groups(&[IAM_GROUPS[(r % 5) as usize]])
                .two_fa(r.is_multiple_of(3))
                .activated(!r.is_multiple_of(4))
                .deleted(r.is_multiple_of(17))
        })
        .collect();
    let page = serde_json::json!({ "count": users, "next": null, "previous": null, "results": results });
    let mut aggregator = UserAggregator::new();
    parse_page(&serde_json::to_vec(&page).unwrap(), &mut aggregator).expect("a valid page");
    aggregator.finish(users)
}

fn tokens(seed: u64) -> TokenSnapshot {
    let role: Arc<str> = Arc::from("Administrators");
    TokenSnapshot {
        tokens: (0..seed % 3)
            .map(|i| TokenSeries {
                id: Arc::from(format!("{}", 10 + i)),
                name: Arc::from(format!("token {i}")),
                role: role.clone(),
                expires_at: (i % 2 == 0).then_some(1.9e9),
                last_used_at: Some(1.8e9 + i as f64),
                expired: false,
                issuer_deleted: i == 1,
                used_by_exporter: i == 0,
            })
            .collect(),
        counts: vec![TokenCount { role, expired: false, never_expires: seed.is_multiple_of(2), tokens: seed % 3 }],
    }
}

/// The state of account `name` at step `step`: the kinds of states cycle so that series
/// appear and disappear (no data yet, data, a failure keeping or dropping the data, tokens).
fn state(name: &str, seed: u64, step: u64) -> AccountState {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + step);
    let ok = PollRecord { finished_at: at, duration: Duration::from_millis(10 + seed), failure: None };
    let failed =
        PollRecord { failure: Some(PollFailure { reason: Reason::ServerError, message: "503".into() }), ..ok.clone() };
    let name: Arc<str> = Arc::from(name);
    let blank = AccountState {
        name: name.clone(),
        snapshot: None,
        last_success: None,
        last_poll: None,
        credentials: Credentials::default(),
    };
    match (seed + step) % 5 {
        0 => blank,
        1 => AccountState {
            snapshot: Some(Arc::new(snapshot(seed + step, 3 + (seed + step) % 20))),
            last_success: Some(at),
            last_poll: Some(ok),
            ..blank
        },
        2 => AccountState { last_poll: Some(failed), ..blank },
        3 => AccountState {
            snapshot: Some(Arc::new(snapshot(seed, 5))),
            last_success: Some(at),
            last_poll: Some(failed),
            ..blank
        },
        _ => AccountState {
            snapshot: Some(Arc::new(snapshot(seed * 3 + step, 40))),
            last_success: Some(at),
            last_poll: Some(ok),
            credentials: Credentials {
                account: Some(Arc::new(AccountInfo {
                    client_id: seed,
                    status: Arc::from("active"),
                    has_active_admin: true,
                })),
                tokens: Some(Arc::new(tokens(seed + step))),
                account_state: Some(CollectorState::Ok),
                tokens_state: Some(if step.is_multiple_of(2) { CollectorState::Ok } else { CollectorState::Forbidden }),
                logins: Some(Arc::new(logins(seed + step))),
                logins_state: Some(CollectorState::Ok),
            },
            ..blank
        },
    }
}

fn logins(seed: u64) -> crate::logins::LoginSnapshot {
    crate::logins::LoginSnapshot {
        logins: vec![(Arc::from("password"), [seed, seed % 7]), (Arc::from("sso"), [0, 1])],
        by_deleted_users: seed % 3,
        newest: Some(1_800_000_000 + seed as i64),
        users_by_last_login: [seed, 1, 2, 3, 4, 5],
        groups_by_last_login: vec![(
            crate::snapshot::GroupLabel { id: Arc::from("1"), name: Arc::from("Administrators") },
            [1, 0, 0, 0, seed % 2, 0],
        )],
    }
}

fn gunzip(body: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(body).read_to_string(&mut out).expect("a valid gzip member");
    out
}

fn assert_adds_up(metrics: &Metrics, context: &str) {
    let (text, openmetrics) = metrics.encode_whole();
    let e = metrics.exposition();
    assert_eq!(std::str::from_utf8(&e.text_bytes()).unwrap(), text, "text, {context}");
    assert_eq!(std::str::from_utf8(&e.openmetrics_bytes()).unwrap(), openmetrics, "OpenMetrics, {context}");
    assert_eq!(gunzip(&e.text_gzip), text, "text gzip, {context}");
    assert_eq!(gunzip(&e.openmetrics_gzip), openmetrics, "OpenMetrics gzip, {context}");
    // Each family once, OpenMetrics ends with one # EOF.
    for body in [&text, &openmetrics] {
        let helps: Vec<&str> = body.lines().filter(|l| l.starts_with("# HELP ")).collect();
        let mut unique = helps.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), helps.len(), "a family written twice, {context}");
    }
    assert_eq!(openmetrics.matches("# EOF").count(), 1);
    assert!(openmetrics.ends_with("# EOF\n"));
}

#[test]
fn parts_add_up_to_the_whole_encoding_as_accounts_change() {
    // Several groups of accounts (units chain their dictionaries) and a partial last one.
    let count = assembly::GROUP * 2 + 5;
    let names: Vec<String> = (0..count).map(|i| format!("account-{i:03}")).collect();
    let board = Arc::new(Board::new(names.iter().map(String::as_str)));
    let metrics = Metrics::new(board.clone(), Duration::from_secs(300));
    assert_adds_up(&metrics, "nothing polled yet");
    // Six rounds: states cycle with period 5 and accounts publish in turns, so every kind of
    // state is published in every group, beside every other kind; more rounds only make this
    // test slower in a debug build.
    for step in 0..6u64 {
        // A different handful of accounts finishes a poll at each step, as in a running exporter.
        for (i, name) in names.iter().enumerate() {
            if (i as u64 * 7 + step).is_multiple_of(4) {
                board.publish(i, state(name, i as u64, step));
                metrics.account_counters(i).poll_finished((step % 3 == 0).then_some(Reason::Deadline));
                metrics.account_counters(i).request_finished(RequestResult::Ok);
            }
        }
        metrics.refresh();
        assert_adds_up(&metrics, &format!("step {step}"));
    }
    // Every account failing with no data left, then all back.
    for (i, name) in names.iter().enumerate() {
        board.publish(i, state(name, 2, 0));
    }
    metrics.refresh();
    assert_adds_up(&metrics, "all failing");
    for (i, name) in names.iter().enumerate() {
        board.publish(i, state(name, 4, 0));
    }
    metrics.refresh();
    assert_adds_up(&metrics, "all up with tokens");
}

#[test]
fn one_account_and_an_empty_board() {
    for names in [vec![], vec!["solo"]] {
        let board = Arc::new(Board::new(names.iter().copied()));
        let metrics = Metrics::new(board.clone(), Duration::from_secs(60));
        assert_adds_up(&metrics, "start");
        if !names.is_empty() {
            board.publish(0, state("solo", 1, 0));
            metrics.refresh();
            assert_adds_up(&metrics, "polled");
        }
    }
}

#[test]
fn a_request_result_not_known_in_advance_gets_its_series() {
    let board = Arc::new(Board::new(["a", "b"]));
    let metrics = Metrics::new(board.clone(), Duration::from_secs(60));
    metrics.account_counters(1).request_finished(RequestResult::Failed(Reason::KeyError));
    board.publish(1, state("b", 1, 0));
    metrics.refresh();
    assert_adds_up(&metrics, "new result");
    let text = String::from_utf8(metrics.exposition().text_bytes().to_vec()).unwrap();
    assert!(text.contains(r#"gcore_iam_api_requests_total{account="b",result="key_error"} 1"#), "{text}");
}

#[test]
fn every_family_is_known_to_the_assembly() {
    let board = Arc::new(Board::new(["a"]));
    board.publish(0, state("a", 4, 0));
    let metrics = Metrics::new(board, Duration::from_secs(60));
    let (text, _) = metrics.encode_whole();
    let written: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# HELP ")).map(|l| l.split(' ').next().unwrap()).collect();
    assert!(written.len() >= 20, "{written:?}");
    let indexes: Vec<usize> = written.iter().map(|n| collector::family_index(n).expect(n)).collect();
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "FAMILIES is not in encoding order: {written:?}");
}
