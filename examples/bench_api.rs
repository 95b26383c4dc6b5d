//! The other half of `scripts/bench-load`, so that the exporter is measured and not its
//! surroundings:
//!
//! - `serve`: a Gcore IAM API serving N synthetic users (`gcore_iam_testkit::population`) from
//!   pages rendered once at start-up and held in memory, so a request costs a copy of bytes;
//! - `download`: the reference for the poll: fetches the same pages with the exporter's own
//!   HTTP client settings and page concurrency, reading every body and parsing none;
//! - `startup`: starts a command (the exporter) and measures the time to its first `/metrics`
//!   answer, checking it is the honest "not polled yet" answer.
//!
//! ```sh
//! cargo run --release --example bench_api -- serve --users 100000 --port 18080
//! cargo run --release --example bench_api -- download --url http://127.0.0.1:18080 --concurrency 4
//! cargo run --release --example bench_api -- startup --url http://127.0.0.1:19471 -- target/release/gcore-iam-exporter ...
//! ```
#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use gcore_iam_exporter::config::ClientSettings;
use gcore_iam_exporter::gcore::{build_http_client, read_body};
use gcore_iam_testkit::population;

/// The exporter's default limit on one answer.
const MAX_RESPONSE_BYTES: u64 = 16 << 20;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = args.split_first().context("usage: bench_api serve|download|startup [options]")?;
    match command.as_str() {
        "serve" => serve(&options(rest)?),
        "download" => download(&options(rest)?),
        "startup" => {
            let split = rest.iter().position(|a| a == "--").context("startup needs `-- <command>`")?;
            startup(&options(&rest[..split])?, &rest[split + 1..])
        }
        other => bail!("unknown command {other:?}"),
    }
}

/// `--name value` pairs.
fn options(args: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for pair in args.chunks(2) {
        let [name, value] = pair else { bail!("option {:?} has no value", pair[0]) };
        let name = name.strip_prefix("--").with_context(|| format!("expected --option, got {name:?}"))?;
        map.insert(name.to_string(), value.clone());
    }
    Ok(map)
}

fn get_or<T: std::str::FromStr>(options: &HashMap<String, String>, name: &str, default: T) -> anyhow::Result<T> {
    match options.get(name) {
        None => Ok(default),
        Some(v) => v.parse().ok().with_context(|| format!("--{name}: bad value {v:?}")),
    }
}

struct Pages {
    users: u64,
    limit: u64,
    /// The page at offset `i × limit`, for `limit` = the page size given at start-up.
    pages: Vec<Bytes>,
}

fn serve(options: &HashMap<String, String>) -> anyhow::Result<()> {
    let users: u64 = get_or(options, "users", 100_000)?;
    let limit: u64 = get_or(options, "page-size", 100)?;
    let port: u16 = get_or(options, "port", 18080)?;
    let threads: usize = get_or(options, "threads", 1)?;
    let started = Instant::now();
    let pages: Vec<Bytes> =
        (0..users.div_ceil(limit).max(1)).map(|p| Bytes::from(population::page(users, p * limit, limit))).collect();
    let bytes: usize = pages.iter().map(Bytes::len).sum();
    let deleted = population::deleted_among(users);
    let state = Arc::new(Pages { users, limit, pages });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    runtime.block_on(async move {
        let app = Router::new().route("/iam/users", get(page)).with_state(state);
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        // One line the load script reads: the population and what the exporter must count.
        println!(
            "ready users={users} deleted={deleted} pages={} bytes={bytes} render_s={:.2}",
            users.div_ceil(limit),
            started.elapsed().as_secs_f64()
        );
        std::io::stdout().flush()?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

async fn page(
    State(pages): State<Arc<Pages>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !headers.get(header::AUTHORIZATION).is_some_and(|v| v.as_bytes().starts_with(b"APIKey ")) {
        return (StatusCode::UNAUTHORIZED, r#"{"detail": "Authentication credentials were not provided."}"#)
            .into_response();
    }
    let number = |name: &str| q.get(name).and_then(|v| v.parse::<u64>().ok());
    let (limit, offset) = (number("limit").unwrap_or(pages.limit), number("offset").unwrap_or(0));
    let body = if limit == pages.limit && offset.is_multiple_of(limit) && offset < pages.users {
        pages.pages[(offset / limit) as usize].clone()
    } else {
        // Not the pre-rendered paging (a page past the end, or another size): rendered now.
        Bytes::from(population::page(pages.users, offset, limit))
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Downloads every page like a poll does (first page, then the rest `concurrency` at a time),
/// `runs` times, and prints the median and the best time.
fn download(options: &HashMap<String, String>) -> anyhow::Result<()> {
    let url: String = get_or(options, "url", "http://127.0.0.1:18080".to_string())?;
    let limit: u32 = get_or(options, "page-size", 100)?;
    let concurrency: u32 = get_or(options, "concurrency", 4)?;
    let runs: usize = get_or(options, "runs", 5)?;
    let settings = ClientSettings {
        page_size: NonZeroU32::new(limit).context("page size 0")?,
        request_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
        max_retries: 0,
        max_response_bytes: MAX_RESPONSE_BYTES,
        concurrency: NonZeroU32::new(concurrency).context("concurrency 0")?,
        max_users: 10_000_000,
    };
    let http = build_http_client(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut times = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        let started = Instant::now();
        bytes = runtime.block_on(download_once(&http, &url, limit.into(), concurrency.into()))?;
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!("download_s median={:.4} best={:.4} bytes={bytes}", times[times.len() / 2], times[0]);
    Ok(())
}

async fn download_once(http: &reqwest::Client, base: &str, limit: u64, concurrency: u64) -> anyhow::Result<u64> {
    let base = base.to_string();
    let http = http.clone();
    let fetch = move |offset: u64| {
        let http = http.clone();
        let url = format!("{base}/iam/users?limit={limit}&offset={offset}");
        async move {
            let response = http
                .get(url)
                .header(header::AUTHORIZATION, "APIKey 42_bench")
                .header(header::ACCEPT, "application/json")
                .send()
                .await?
                .error_for_status()?;
            // Read as the client reads: a body in one chunk is kept, others are joined.
            anyhow::Ok(read_body(response, MAX_RESPONSE_BYTES).await?)
        }
    };
    let first = fetch(0).await?;
    // The count is the first field; this is the one thing a download needs to read.
    let count: u64 = std::str::from_utf8(&first[..first.len().min(64)])?
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .context("no count on the first page")?
        .parse()?;
    let total = Arc::new(AtomicU64::new(first.len() as u64));
    let next = Arc::new(AtomicU64::new(limit));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (next, total, fetch) = (next.clone(), total.clone(), fetch.clone());
        workers.spawn(async move {
            loop {
                let offset = next.fetch_add(limit, Ordering::Relaxed);
                if offset >= count {
                    return anyhow::Ok(());
                }
                let body = fetch(offset).await?;
                total.fetch_add(body.len() as u64, Ordering::Relaxed);
            }
        });
    }
    while let Some(worker) = workers.join_next().await {
        worker??;
    }
    Ok(total.load(Ordering::Relaxed))
}

/// Starts `command` (its stderr to `--log`), then asks `url`/metrics every millisecond until it answers; prints the
/// time from spawn to the first answer, the child's pid (left running) and whether the answer
/// was the "not polled yet" one (`gcore_iam_up` 0 and `/-/ready` 503).
fn startup(options: &HashMap<String, String>, command: &[String]) -> anyhow::Result<()> {
    let addr: String = get_or(options, "addr", "127.0.0.1:19471".to_string())?;
    let (program, args) = command.split_first().context("no command")?;
    let started = Instant::now();
    let log = match options.get("log") {
        Some(path) => std::process::Stdio::from(std::fs::File::create(path)?),
        None => std::process::Stdio::null(),
    };
    // The child outlives this process: it must not hold our stdout (a `$(...)` would wait).
    let child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("spawn {program}"))?;
    let deadline = started + Duration::from_secs(10);
    let metrics = loop {
        if let Ok((200, body)) = http_get(&addr, "/metrics") {
            break body;
        }
        if Instant::now() > deadline {
            bail!("no answer on {addr} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let elapsed = started.elapsed();
    let ready = http_get(&addr, "/-/ready").map(|(status, _)| status).unwrap_or(0);
    let up0 = metrics.lines().any(|l| l.starts_with("gcore_iam_up{") && l.ends_with(" 0"));
    println!("startup_ms={:.1} pid={} up0={up0} ready_status={ready}", elapsed.as_secs_f64() * 1e3, child.id());
    Ok(())
}

/// A minimal blocking HTTP/1.1 GET: the status and the body.
fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}
