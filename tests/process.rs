//! The binary as users run it: exit codes for bad configuration, graceful shutdown on
//! SIGTERM, and the API key never appearing anywhere it could leak.
#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::child::ChildExporter;
use common::{fake_api, parse_exposition, sum};
use gcore_iam_fake::{FakeApi, FakeUser, Fault};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_gcore-iam-exporter");

/// Runs the binary to completion with a clean environment plus `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn configuration_errors_exit_2_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad_yaml = dir.path().join("bad.yaml");
    std::fs::write(&bad_yaml, "accounts: [ {name: x").unwrap();
    let bad_yaml = bad_yaml.to_str().unwrap();
    for (args, env, needle) in [
        (vec!["--poll.interval", "soon"], vec![("GCORE_API_KEY", "42_k")], "--poll.interval"),
        (vec!["--web.listen-address", "nowhere"], vec![("GCORE_API_KEY", "42_k")], "--web.listen-address"),
        (vec!["--gcore.api-url", "ftp://x"], vec![("GCORE_API_KEY", "42_k")], "--gcore.api-url"),
        (vec!["--gcore.api-key-file", "/nonexistent/key"], vec![], "/nonexistent/key"),
        (vec!["--config.file", bad_yaml], vec![], "bad.yaml"),
        (vec![], vec![], "GCORE_API_KEY"),
        (vec!["--no-such-flag"], vec![], "--no-such-flag"),
        (vec!["--log.format", "xml"], vec![("GCORE_API_KEY", "42_k")], "--log.format"),
    ] {
        let (code, output) = run(&args, &env);
        assert_eq!(code, 2, "{args:?}: {output}");
        assert!(output.contains(needle), "{args:?}: {output}");
        if !args.contains(&"--no-such-flag") {
            assert_eq!(output.trim().lines().count(), 1, "{args:?}: one line expected: {output}");
        }
    }
}

#[test]
fn key_on_the_command_line_is_refused() {
    let (code, output) = run(&["--gcore.api-key", "42_cmdlinecanary"], &[]);
    assert_eq!(code, 2);
    assert!(output.contains("GCORE_API_KEY") && output.contains("--gcore.api-key-file"), "{output}");
    assert!(!output.contains("cmdlinecanary"), "{output}");
}

#[test]
fn a_port_in_use_is_a_start_failure() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, output) = run(&["--web.listen-address", &addr], &[("GCORE_API_KEY", "42_k")]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("cannot listen"), "{output}");
}

async fn get(url: &str, accept: Option<&str>) -> String {
    let mut request = reqwest::Client::new().get(url);
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    request.send().await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_never_leaks_and_sigterm_stops_gracefully() {
    const GOOD: &str = "42_CanaryGoodKeyQ7x9";
    const BAD: &str = "1234$CanaryLegacyKeyZ3";
    let shutdown = CancellationToken::new();
    let good_api = FakeApi::new(GOOD, vec![FakeUser::new(1), FakeUser::new(2).two_fa(false)]);
    // Throttled once and failing once, so that retry paths log too.
    good_api.push_fault(Fault::rate_limited(0));
    good_api.push_fault(Fault::status(502));
    let good = fake_api(&good_api, &shutdown).await;
    let bad_api = FakeApi::new("42_somethingelse", vec![FakeUser::new(1)]);
    let bad = fake_api(&bad_api, &shutdown).await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.key"), format!("{BAD}\n")).unwrap();
    let config = dir.path().join("accounts.yaml");
    std::fs::write(
        &config,
        format!(
            "accounts:\n  - name: good\n    api_key_env: GOOD_KEY\n    api_url: http://{good}/\n  - name: rejected\n    api_key_file: bad.key\n    api_url: http://{bad}/\n"
        ),
    )
    .unwrap();

    let mut exporter = ChildExporter::spawn(
        None,
        &["--config.file", config.to_str().unwrap(), "--log.level", "trace", "--poll.interval", "1s"],
        &[("GOOD_KEY", GOOD)],
    );
    let base = format!("http://{}", exporter.addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let text = get(&format!("{base}/metrics"), None).await;
        let s = parse_exposition(&text);
        if sum(&s, "gcore_iam_up", &[("account", "good")]) == 1.0
            && sum(&s, "gcore_iam_poll_failures_total", &[("account", "rejected"), ("reason", "unauthorized")]) >= 1.0
        {
            break text;
        }
        assert!(Instant::now() < deadline, "accounts not polled: {}", exporter.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let openmetrics = get(&format!("{base}/metrics"), Some("application/openmetrics-text")).await;
    let landing = get(&format!("{base}/"), None).await;

    // The keys did reach the APIs, in the header and nowhere else.
    assert!(good_api.requests().iter().any(|r| r.authorization.as_deref() == Some(&format!("APIKey {GOOD}"))));
    assert!(bad_api.requests().iter().all(|r| r.authorization.as_deref() == Some(&format!("APIKey {BAD}"))));
    assert!(good_api.requests().iter().all(|r| !r.query.clone().unwrap_or_default().contains("Canary")));

    let (status, took) = exporter.terminate();
    assert!(status.success(), "exit status {status:?}: {}", exporter.log());
    assert!(took < Duration::from_secs(7), "shutdown took {took:?}");
    std::thread::sleep(Duration::from_millis(100)); // let the reader threads drain the pipes
    let log = exporter.log();
    assert!(log.contains("\"level\":\"TRACE\"") || log.contains("\"level\":\"DEBUG\""), "verbose logging was on");
    assert!(log.contains("retrying"), "the retry path was exercised: {log}");
    for (place, text) in
        [("log", &log), ("metrics", &metrics), ("openmetrics", &openmetrics), ("landing page", &landing)]
    {
        for secret in [GOOD, BAD, "CanaryGoodKey", "CanaryLegacyKey"] {
            assert!(!text.contains(secret), "{secret} leaked into the {place}:\n{text}");
        }
    }
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_file_is_used_at_the_next_poll() {
    let shutdown = CancellationToken::new();
    let api = FakeApi::new("42_newkey", vec![FakeUser::new(1)]);
    let addr = fake_api(&api, &shutdown).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "42_oldkey\n").unwrap();
    let exporter = ChildExporter::spawn(
        None,
        &[
            "--gcore.api-key-file",
            key_file.to_str().unwrap(),
            "--gcore.api-url",
            &format!("http://{addr}"),
            "--poll.interval",
            "1s",
        ],
        &[],
    );
    let base = format!("http://{}/metrics", exporter.addr);
    let wait_for = |want_up: f64| {
        let base = base.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let s = parse_exposition(&get(&base, None).await);
                if sum(&s, "gcore_iam_polls_total", &[]) >= 1.0 && sum(&s, "gcore_iam_up", &[]) == want_up {
                    return s;
                }
                assert!(Instant::now() < deadline, "gcore_iam_up never became {want_up}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_for(0.0).await;
    std::fs::write(&key_file, "42_newkey\n").unwrap();
    let s = wait_for(1.0).await;
    assert_eq!(sum(&s, "gcore_iam_users", &[]), 1.0);
    shutdown.cancel();
}
