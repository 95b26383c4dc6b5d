//! The command line: every flag with its environment twin, parsed by clap into typed values.
//! A value that cannot be read (a duration, a number out of range, an address, a URL) is
//! refused here by clap with the flag's name and exit code 2; what needs more than one flag or
//! the environment is checked in [`super::Config::from_cli`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use url::Url;

/// The default listen port. 19471 is above the range the Prometheus wiki allocates to exporters
/// and is not used by any well-known exporter.
pub const DEFAULT_PORT: u16 = 19471;

/// The most exporters one accounts file can be split over (as many as accounts it may hold).
pub const MAX_SHARDS: u32 = super::accounts_file::MAX_ACCOUNTS as u32;

/// Name of the single account configured without a config file.
pub const DEFAULT_ACCOUNT: &str = "default";

const WEB: &str = "Web";
const POLLING: &str = "Polling";
const GCORE: &str = "Gcore API";
const COLLECTORS: &str = "Collectors";
const LOGGING: &str = "Logging";

const AFTER_HELP: &str = "\
The API key itself is never a flag (command lines are visible in process lists): set \
GCORE_API_KEY, or point --gcore.api-key-file at a file holding it (re-read before every poll, so \
a rotated key needs no restart). Several accounts: --config.file (see the README).

--demo needs no key: it polls a built-in fake Gcore IAM API every 15s (the default interval is \
otherwise 5m) under the account name `demo`.

Durations are written 30s, 5m, 1h30m (or plain seconds). Every flag has the environment twin \
shown in brackets.";

/// Gcore IAM exporter: polls the users of Gcore accounts and serves them as Prometheus metrics.
#[derive(Debug, Parser)]
#[command(name = "gcore-iam-exporter", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// Run against a built-in fake Gcore IAM API with a synthetic account (no key needed).
    #[arg(long, env = "GCORE_IAM_EXPORTER_DEMO")]
    pub demo: bool,

    /// Address to serve metrics on; ":PORT" listens on all interfaces.
    #[arg(long = "web.listen-address", env = "GCORE_IAM_EXPORTER_LISTEN_ADDRESS", default_value = ":19471",
        value_name = "[HOST]:PORT", value_parser = listen_address, help_heading = WEB)]
    pub listen_address: SocketAddr,

    /// Path under which metrics are served.
    #[arg(long = "web.telemetry-path", env = "GCORE_IAM_EXPORTER_TELEMETRY_PATH", default_value = "/metrics",
        value_name = "PATH", value_parser = telemetry_path, help_heading = WEB)]
    pub telemetry_path: String,

    /// Prometheus exporter-toolkit web configuration (TLS, basic auth, headers) for the HTTP server.
    #[arg(long = "web.config.file", env = "GCORE_IAM_EXPORTER_WEB_CONFIG_FILE", value_name = "FILE",
        help_heading = WEB)]
    pub web_config_file: Option<PathBuf>,

    /// Time between two polls of an account [default: 5m; 15s with --demo].
    #[arg(long = "poll.interval", env = "GCORE_IAM_EXPORTER_POLL_INTERVAL", value_name = "DURATION",
        value_parser = poll_interval, help_heading = POLLING)]
    pub poll_interval: Option<Duration>,

    /// Deadline for one whole poll of an account (every page and retry included).
    #[arg(long = "poll.timeout", env = "GCORE_IAM_EXPORTER_POLL_TIMEOUT", default_value = "2m",
        value_name = "DURATION", value_parser = duration, help_heading = POLLING)]
    pub poll_timeout: Duration,

    /// Polls of accounts that may run at once, 1 to 1024; the others wait for a slot. Bounds the
    /// sockets and memory of an exporter with many accounts (each poll has up to
    /// --gcore.concurrency requests in flight).
    #[arg(long = "poll.max-concurrent-accounts", env = "GCORE_IAM_EXPORTER_MAX_CONCURRENT_ACCOUNTS",
        default_value = "16", value_name = "POLLS", value_parser = clap::value_parser!(u32).range(1..=1024),
        help_heading = POLLING)]
    pub max_concurrent_accounts: u32,

    /// How long an account whose polls keep failing still exports its user series; past it only
    /// gcore_iam_up and the last-success timestamp remain, so no dashboard shows frozen numbers
    /// as current. 0 keeps them forever.
    #[arg(long = "poll.max-staleness", env = "GCORE_IAM_EXPORTER_MAX_STALENESS", default_value = "1h",
        value_name = "DURATION", value_parser = max_staleness, help_heading = POLLING)]
    pub max_staleness: MaxStaleness,

    /// Base URL of the Gcore API.
    // Checked in `Config::from_cli`, not by a value parser: clap would echo a refused value,
    // and a URL may carry a password.
    #[arg(long = "gcore.api-url", env = "GCORE_BASE_URL", default_value = "https://api.gcore.com",
        value_name = "URL", help_heading = GCORE)]
    pub api_url: String,

    /// File holding the API key (re-read at each poll, so a rotated key needs no restart).
    #[arg(long = "gcore.api-key-file", env = "GCORE_API_KEY_FILE", value_name = "FILE", help_heading = GCORE)]
    pub api_key_file: Option<PathBuf>,

    /// Refused: a key on the command line is visible in process lists. Use GCORE_API_KEY or
    /// --gcore.api-key-file.
    #[arg(long = "gcore.api-key", hide = true)]
    pub api_key_flag: Option<String>,

    /// Name of the single account (the `account` label) when no config file is used.
    #[arg(long = "gcore.account-name", env = "GCORE_IAM_EXPORTER_ACCOUNT", default_value = DEFAULT_ACCOUNT,
        value_name = "NAME", value_parser = account_name, help_heading = GCORE)]
    pub account_name: String,

    /// YAML file listing several accounts (see README); replaces the single-account flags.
    #[arg(long = "config.file", env = "GCORE_IAM_EXPORTER_CONFIG_FILE", value_name = "FILE", help_heading = GCORE)]
    pub config_file: Option<PathBuf>,

    /// With --config.shard-count: which share of the accounts file this exporter polls, from 0
    /// (a StatefulSet can pass its pod index).
    #[arg(long = "config.shard-index", env = "GCORE_IAM_EXPORTER_SHARD_INDEX", default_value = "0", value_name = "INDEX",
        value_parser = clap::value_parser!(u32).range(0..MAX_SHARDS as i64), help_heading = GCORE)]
    pub shard_index: u32,

    /// Split the accounts file over this many exporters: each polls the accounts whose name
    /// hashes to its --config.shard-index, so one file serves every replica.
    #[arg(long = "config.shard-count", env = "GCORE_IAM_EXPORTER_SHARD_COUNT", default_value = "1", value_name = "COUNT",
        value_parser = clap::value_parser!(u32).range(1..=MAX_SHARDS as i64), help_heading = GCORE)]
    pub shard_count: u32,

    /// Users asked for per page (the `limit` query parameter), 1 to 1000.
    #[arg(long = "gcore.page-size", env = "GCORE_IAM_EXPORTER_PAGE_SIZE", default_value = "100",
        value_parser = clap::value_parser!(u32).range(1..=1000), help_heading = GCORE)]
    pub page_size: u32,

    /// Timeout of one HTTP request to the API.
    #[arg(long = "gcore.request-timeout", env = "GCORE_IAM_EXPORTER_REQUEST_TIMEOUT", default_value = "30s",
        value_name = "DURATION", value_parser = duration, help_heading = GCORE)]
    pub request_timeout: Duration,

    /// Timeout for establishing a connection to the API.
    #[arg(long = "gcore.connect-timeout", env = "GCORE_IAM_EXPORTER_CONNECT_TIMEOUT", default_value = "5s",
        value_name = "DURATION", value_parser = duration, help_heading = GCORE)]
    pub connect_timeout: Duration,

    /// Retries of a request after a 408/409/429/5xx answer or a connection error (never after 401/403).
    #[arg(long = "gcore.max-retries", env = "GCORE_IAM_EXPORTER_MAX_RETRIES", default_value = "2",
        value_parser = clap::value_parser!(u32).range(0..=10), help_heading = GCORE)]
    pub max_retries: u32,

    /// Page requests of one poll that may be in flight at once (after the first page, which
    /// tells how many there are), 1 to 32.
    #[arg(long = "gcore.concurrency", env = "GCORE_IAM_EXPORTER_CONCURRENCY", default_value = "4",
        value_parser = clap::value_parser!(u32).range(1..=32), help_heading = GCORE)]
    pub concurrency: u32,

    /// Largest response body accepted from the API, in bytes. A page of 1,000 users is about
    /// 1.2 MB; an answer costs at most about twice this while it is read.
    #[arg(long = "gcore.max-response-bytes", env = "GCORE_IAM_EXPORTER_MAX_RESPONSE_BYTES", default_value = "4194304",
        value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1024..=(1 << 30)), help_heading = GCORE)]
    pub max_response_bytes: u64,

    /// Distinct users of one account past which a poll fails (reason `too_many_users`), so
    /// that an API sending fresh ids forever cannot grow the exporter's memory.
    #[arg(long = "gcore.max-users", env = "GCORE_IAM_EXPORTER_MAX_USERS", default_value = "1000000",
        value_name = "USERS", value_parser = clap::value_parser!(u64).range(1..=100_000_000), help_heading = GCORE)]
    pub max_users: u64,

    /// Export the account's state (GET /iam/clients/me): status, active administrator.
    #[arg(long = "collector.account", env = "GCORE_IAM_EXPORTER_COLLECTOR_ACCOUNT", default_value_t = true,
        action = clap::ArgAction::Set, value_name = "BOOL", help_heading = COLLECTORS)]
    pub collector_account: bool,

    /// Export the account's API tokens (expiry, last use, issuer); needs an administrator's key,
    /// and switches itself off with a log line and gcore_iam_collector_state when refused.
    #[arg(long = "collector.tokens", env = "GCORE_IAM_EXPORTER_COLLECTOR_TOKENS", default_value_t = true,
        action = clap::ArgAction::Set, value_name = "BOOL", help_heading = COLLECTORS)]
    pub collector_tokens: bool,

    /// Read the login log (GET /iam/activity_log/logins): logins by result and auth type, users
    /// by last successful login; pauses itself with a log line and gcore_iam_collector_state when
    /// refused (403) or not served (404).
    #[arg(long = "collector.logins", env = "GCORE_IAM_EXPORTER_COLLECTOR_LOGINS", default_value_t = true,
        action = clap::ArgAction::Set, value_name = "BOOL", help_heading = COLLECTORS)]
    pub collector_logins: bool,

    /// Log level: error, warn, info, debug or trace.
    #[arg(long = "log.level", env = "GCORE_IAM_EXPORTER_LOG_LEVEL", default_value = "info",
        value_name = "LEVEL", value_parser = log_level, help_heading = LOGGING)]
    pub log_level: tracing::Level,

    /// Log format, on stderr.
    #[arg(long = "log.format", env = "GCORE_IAM_EXPORTER_LOG_FORMAT", default_value = "text", help_heading = LOGGING)]
    pub log_format: LogFormat,
}

/// The format of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (`logfmt` is accepted as a name for it).
    #[value(alias = "logfmt")]
    Text,
    /// One JSON object per line.
    Json,
}

/// `--poll.max-staleness`: `None` keeps the user series of a failing account forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxStaleness(pub Option<Duration>);

/// Accepts Prometheus-style durations ("30s", "5m", "1h30m") and plain seconds ("90"), from
/// more than zero to one week.
pub fn duration(value: &str) -> Result<Duration, String> {
    let trimmed = value.trim();
    let parsed = match trimmed.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(trimmed).map_err(|e| e.to_string()),
    };
    match parsed {
        Ok(d) if d.is_zero() => Err("must be greater than zero".into()),
        Ok(d) if d > Duration::from_secs(7 * 24 * 3600) => Err("must be at most one week".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("not a duration ({e}); use e.g. 30s, 5m, 1h")),
    }
}

fn poll_interval(value: &str) -> Result<Duration, String> {
    let d = duration(value)?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(d)
}

fn max_staleness(value: &str) -> Result<MaxStaleness, String> {
    match value.trim() {
        "0" | "0s" => Ok(MaxStaleness(None)),
        other => duration(other).map(|d| MaxStaleness(Some(d))),
    }
}

/// An http(s) URL with a host, without credentials, query or fragment. The message never
/// echoes a URL that carries credentials.
pub fn api_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value.trim()).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("scheme must be http or https".into());
    }
    if url.host().is_none() {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; the key goes in GCORE_API_KEY".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(url)
}

fn listen_address(value: &str) -> Result<SocketAddr, String> {
    if let Some(port) = value.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| "not a port number".to_string())?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    value.parse().map_err(|_| "expected HOST:PORT with an IP address (e.g. 127.0.0.1:19471) or :PORT".into())
}

fn telemetry_path(value: &str) -> Result<String, String> {
    let ok = value.starts_with('/')
        && value.len() > 1
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(c))
        && !["/-/healthy", "/-/ready"].contains(&value);
    if !ok {
        return Err("must be an absolute path like /metrics, other than / and the health paths".into());
    }
    Ok(value.to_string())
}

fn log_level(value: &str) -> Result<tracing::Level, String> {
    value.parse().map_err(|_| "expected error, warn, info, debug or trace".into())
}

/// Account names become label values and appear on the landing page, so they are kept to a
/// short, safe alphabet.
pub fn account_name(name: &str) -> Result<String, String> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok { Ok(name.to_string()) } else { Err("use 1 to 64 characters among letters, digits, '_', '.' and '-'".into()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_groups_flags_and_tells_how_to_pass_the_key() {
        let help = Cli::command().render_help().to_string();
        let headings: Vec<usize> = [WEB, POLLING, GCORE, COLLECTORS, LOGGING]
            .iter()
            .map(|h| help.find(&format!("{h}:")).unwrap_or_else(|| panic!("no heading {h}:\n{help}")))
            .collect();
        assert!(headings.is_sorted(), "headings in the README's order:\n{help}");
        for needle in ["GCORE_API_KEY", "--gcore.api-key-file", "5m", "15s"] {
            assert!(help.contains(needle), "{needle} in --help:\n{help}");
        }
        assert!(!help.contains("--gcore.api-key "), "the refused flag stays hidden");
    }

    #[test]
    fn durations_and_staleness() {
        assert_eq!(duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(duration("0s").is_err() && duration("8d").is_err() && duration("soon").is_err());
        assert_eq!(max_staleness("0"), Ok(MaxStaleness(None)));
        assert_eq!(max_staleness("2h"), Ok(MaxStaleness(Some(Duration::from_secs(7200)))));
        assert!(poll_interval("500ms").is_err());
    }
}
