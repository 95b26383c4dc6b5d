//! gcore-iam-exporter: polls the users of Gcore accounts through the IAM API and serves them
//! as Prometheus metrics.
//!
//! Wiring: [`gcore::GcoreClient`] → [`poller::AccountPoller`] (scheduled by [`schedule`]) →
//! [`board::Board`] (immutable snapshots) → [`metrics::Metrics`] (each account's part encoded
//! once per poll) → [`http::app`]; one [`CancellationToken`] stops them all.

pub mod board;
pub mod changes;
pub mod config;
pub mod credentials;
pub mod error_chain;
pub mod gcore;
pub mod http;
pub mod idset;
pub mod logging;
pub mod logins;
pub mod metrics;
pub mod poller;
pub mod schedule;
pub mod secret;
pub mod snapshot;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::board::Board;
use crate::config::Config;
use crate::gcore::{GcoreClient, build_http_client};
use crate::logins::LoginTracker;
use crate::metrics::Metrics;
use crate::poller::{AccountPoller, ForbiddenUntil};
use crate::schedule::{PollSlots, first_poll_delay};

/// The version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision of this build ("unknown" outside a checkout).
pub const REVISION: &str = env!("GCORE_IAM_EXPORTER_REVISION");

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot start the demo API: {0}")]
    Demo(std::io::Error),
    /// Built with `--no-default-features`: the fake API behind `--demo` is not linked.
    #[error("--demo is not available: this binary was built without the `demo` feature")]
    DemoNotBuilt,
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(reqwest::Error),
}

impl StartError {
    /// The process exit code: 2 for a flag this build cannot honour (a configuration mistake,
    /// like every other), 1 for a start-up failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::DemoNotBuilt => 2,
            Self::Listen { .. } | Self::Demo(_) | Self::HttpClient(_) => 1,
        }
    }
}

/// A started exporter.
pub struct Running {
    /// Where /metrics is served (the real port when 0 was asked for).
    pub local_addr: SocketAddr,
    /// The built-in fake API, in demo mode.
    #[cfg(feature = "demo")]
    pub demo_api: Option<(SocketAddr, gcore_iam_fake::FakeApi)>,
    task: JoinHandle<()>,
}

impl Running {
    /// Waits until the server and every poller have stopped (after the shutdown token fires).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Starts the pollers and the HTTP server; they run until `shutdown` is cancelled.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartError> {
    #[cfg(feature = "demo")]
    let (accounts, demo_api) = if config.demo {
        let (addr, api) = demo::start_api(&shutdown).await?;
        (vec![demo::account(addr)], Some((addr, api)))
    } else {
        (config.accounts.clone(), None)
    };
    #[cfg(not(feature = "demo"))]
    let accounts = if config.demo { return Err(StartError::DemoNotBuilt) } else { config.accounts.clone() };

    let board = Arc::new(Board::new(accounts.iter().map(|a| a.name.as_str())));
    let metrics = Arc::new(Metrics::new(board.clone(), config.poll_interval));
    let http = build_http_client(&config.client).map_err(StartError::HttpClient)?;

    let listener = TcpListener::bind(config.listen_address)
        .await
        .map_err(|source| StartError::Listen { addr: config.listen_address, source })?;
    let local_addr =
        listener.local_addr().map_err(|source| StartError::Listen { addr: config.listen_address, source })?;

    let mut pollers = Vec::with_capacity(accounts.len());
    let count = accounts.len();
    let slots = PollSlots::new(config.max_concurrent_accounts);
    for (index, account) in accounts.into_iter().enumerate() {
        let name: Arc<str> = Arc::from(account.name.as_str());
        let poller = AccountPoller {
            index,
            counters: metrics.account_counters(index),
            name,
            client: GcoreClient::new(http.clone(), &account.api_url, &config.client),
            key: account.key,
            interval: config.poll_interval,
            timeout: config.poll_timeout,
            max_staleness: config.max_staleness,
            collectors: config.collectors,
            forbidden_until: ForbiddenUntil::default(),
            logins: LoginTracker::new(u64::from(config.client.page_size.get())),
            count_differed: false,
            board: board.clone(),
            metrics: metrics.clone(),
            first_poll_delay: first_poll_delay(index, count, config.poll_interval),
            slots: slots.clone(),
            last_complete: None,
        };
        pollers.push(tokio::spawn(poller.run(shutdown.clone())));
    }

    let state =
        http::AppState { metrics, board: board.clone(), telemetry_path: Arc::from(config.telemetry_path.as_str()) };
    let app = http::app(state, config.web.as_deref());
    let tls = config.web.as_ref().and_then(|w| w.tls.clone());
    info!(address = %local_addr, path = %config.telemetry_path, accounts = board.len(),
        shard = format!("{}/{}", config.shard.index, config.shard.count),
        interval_s = config.poll_interval.as_secs(), max_concurrent_polls = config.max_concurrent_accounts.get(), tls = tls.is_some(), version = VERSION, revision = REVISION, "serving metrics");

    let limits = config.server_limits.clone();
    // The server waits `shutdown_grace` for requests in flight; the pollers stop at once (their
    // requests are dropped), so a little more than that bounds the whole shutdown.
    let grace = limits.shutdown_grace + Duration::from_secs(1);
    let task = tokio::spawn(async move {
        let server = tokio::spawn(http::server::serve(listener, app, tls, limits, shutdown.clone()));
        shutdown.cancelled().await;
        // Bounded: slow clients and a poll stuck in a request do not hold the process.
        let all = async {
            let _ = server.await;
            for p in pollers {
                let _ = p.await;
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            warn!("shutdown grace period elapsed; stopping anyway");
        }
        info!("stopped");
    });
    Ok(Running {
        local_addr,
        #[cfg(feature = "demo")]
        demo_api,
        task,
    })
}

/// `--demo`: the built-in fake API (the `gcore-iam-fake` crate, without its test-only faults and
/// request record) and the one account that polls it.
#[cfg(feature = "demo")]
mod demo {
    use std::net::SocketAddr;
    use std::time::Duration;

    use gcore_iam_fake::FakeApi;
    use tokio_util::sync::CancellationToken;
    use tracing::info;

    use crate::StartError;
    use crate::config::{self, AccountConfig, KeySource};
    use crate::secret::ApiKey;

    /// The key the demo account uses; it only opens the built-in fake API.
    const DEMO_KEY: &str = "42_demo0000000000000000000000000000";

    pub(crate) async fn start_api(shutdown: &CancellationToken) -> Result<(SocketAddr, FakeApi), StartError> {
        let seed = 2026;
        let api = FakeApi::demo(DEMO_KEY, seed);
        let (addr, _task) = api.spawn(0, shutdown.clone()).await.map_err(StartError::Demo)?;
        // Slow changes so that dashboards move: one every 20 seconds.
        api.spawn_evolution(Duration::from_secs(20), seed, shutdown.clone());
        info!(api = %addr, users = api.users().len(), "demo mode: built-in fake Gcore IAM API started");
        Ok((addr, api))
    }

    /// The demo account, polling the fake API at `addr`.
    pub(crate) fn account(addr: SocketAddr) -> AccountConfig {
        AccountConfig {
            name: config::DEMO_ACCOUNT.to_string(),
            api_url: url::Url::parse(&format!("http://{addr}/")).expect("a socket address makes a URL"),
            key: KeySource::Fixed(ApiKey::parse(DEMO_KEY).expect("the demo key is valid")),
        }
    }
}
