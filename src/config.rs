//! Command-line flags (each with an environment twin) and the optional accounts file, validated
//! once, at the edge, into a typed [`Config`]. Anything wrong here is a [`ConfigError`]: one
//! clear line and exit code 2, before anything starts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use url::Url;

use crate::http::server::ServerLimits;
use crate::http::web_config::{WebConfig, WebConfigError};
use crate::secret::ApiKey;

/// The default listen port. 19471 is above the range the Prometheus wiki allocates to exporters
/// and is not used by any well-known exporter.
pub const DEFAULT_PORT: u16 = 19471;

/// Name of the single account configured without a config file.
pub const DEFAULT_ACCOUNT: &str = "default";

/// Name of the built-in account served in demo mode.
pub const DEMO_ACCOUNT: &str = "demo";

/// Gcore IAM exporter: polls the users of Gcore accounts and serves them as Prometheus metrics.
///
/// The API key is read from GCORE_API_KEY or from --gcore.api-key-file (re-read at each poll);
/// several accounts are configured with --config.file.
#[derive(Debug, Parser)]
#[command(name = "gcore-iam-exporter", version, about, long_about = None)]
pub struct Cli {
    /// Run against a built-in fake Gcore IAM API with a synthetic account (no key needed).
    #[arg(long, env = "GCORE_IAM_EXPORTER_DEMO")]
    pub demo: bool,

    /// Address to serve metrics on; ":PORT" listens on all interfaces.
    #[arg(long = "web.listen-address", env = "GCORE_IAM_EXPORTER_LISTEN_ADDRESS", default_value = ":19471")]
    pub listen_address: String,

    /// Path under which metrics are served.
    #[arg(long = "web.telemetry-path", env = "GCORE_IAM_EXPORTER_TELEMETRY_PATH", default_value = "/metrics")]
    pub telemetry_path: String,

    /// Time between two polls of an account (e.g. 30s, 5m, 1h); 15s by default in demo mode.
    #[arg(long = "poll.interval", env = "GCORE_IAM_EXPORTER_POLL_INTERVAL")]
    pub poll_interval: Option<String>,

    /// Deadline for one whole poll of an account (every page and retry included).
    #[arg(long = "poll.timeout", env = "GCORE_IAM_EXPORTER_POLL_TIMEOUT", default_value = "2m")]
    pub poll_timeout: String,

    /// Base URL of the Gcore API.
    #[arg(long = "gcore.api-url", env = "GCORE_BASE_URL", default_value = "https://api.gcore.com")]
    pub api_url: String,

    /// File holding the API key (re-read at each poll, so a rotated key needs no restart).
    #[arg(long = "gcore.api-key-file", env = "GCORE_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,

    /// Refused: a key on the command line is visible in process lists. Use GCORE_API_KEY or
    /// --gcore.api-key-file.
    #[arg(long = "gcore.api-key", hide = true)]
    pub api_key_flag: Option<String>,

    /// Name of the single account (the `account` label) when no config file is used.
    #[arg(long = "gcore.account-name", env = "GCORE_IAM_EXPORTER_ACCOUNT", default_value = DEFAULT_ACCOUNT)]
    pub account_name: String,

    /// Users asked for per page (the `limit` query parameter).
    #[arg(long = "gcore.page-size", env = "GCORE_IAM_EXPORTER_PAGE_SIZE", default_value = "100")]
    pub page_size: String,

    /// Timeout of one HTTP request to the API.
    #[arg(long = "gcore.request-timeout", env = "GCORE_IAM_EXPORTER_REQUEST_TIMEOUT", default_value = "30s")]
    pub request_timeout: String,

    /// Timeout for establishing a connection to the API.
    #[arg(long = "gcore.connect-timeout", env = "GCORE_IAM_EXPORTER_CONNECT_TIMEOUT", default_value = "5s")]
    pub connect_timeout: String,

    /// Retries of a request after a 408/409/429/5xx answer or a connection error (never after 401/403).
    #[arg(long = "gcore.max-retries", env = "GCORE_IAM_EXPORTER_MAX_RETRIES", default_value = "2")]
    pub max_retries: String,

    /// Largest response body accepted from the API, in bytes. A page of 1,000 users is about
    /// 1.2 MB; an answer costs at most about twice this while it is read.
    #[arg(long = "gcore.max-response-bytes", env = "GCORE_IAM_EXPORTER_MAX_RESPONSE_BYTES", default_value = "4194304")]
    pub max_response_bytes: String,

    /// Distinct users of one account past which a poll fails (reason `too_many_users`), so
    /// that an API sending fresh ids forever cannot grow the exporter's memory.
    #[arg(long = "gcore.max-users", env = "GCORE_IAM_EXPORTER_MAX_USERS", default_value = "1000000")]
    pub max_users: String,

    /// Page requests of one poll that may be in flight at once (after the first page, which
    /// tells how many there are).
    #[arg(long = "gcore.concurrency", env = "GCORE_IAM_EXPORTER_CONCURRENCY", default_value = "4")]
    pub concurrency: String,

    /// How long an account whose polls keep failing still exports its user series; past it only
    /// gcore_iam_up and the last-success timestamp remain, so no dashboard shows frozen numbers
    /// as current. 0 keeps them forever.
    #[arg(long = "poll.max-staleness", env = "GCORE_IAM_EXPORTER_MAX_STALENESS", default_value = "1h")]
    pub max_staleness: String,

    /// Export the account's state (GET /iam/clients/me): status, active administrator.
    #[arg(long = "collector.account", env = "GCORE_IAM_EXPORTER_COLLECTOR_ACCOUNT", default_value_t = true,
        action = clap::ArgAction::Set, value_name = "BOOL")]
    pub collector_account: bool,

    /// Export the account's API tokens (expiry, last use, issuer); needs an administrator's key,
    /// and switches itself off with a log line and gcore_iam_collector_state when refused.
    #[arg(long = "collector.tokens", env = "GCORE_IAM_EXPORTER_COLLECTOR_TOKENS", default_value_t = true,
        action = clap::ArgAction::Set, value_name = "BOOL")]
    pub collector_tokens: bool,

    /// Prometheus exporter-toolkit web configuration (TLS, basic auth, headers) for the HTTP server.
    #[arg(long = "web.config.file", env = "GCORE_IAM_EXPORTER_WEB_CONFIG_FILE")]
    pub web_config_file: Option<PathBuf>,

    /// YAML file listing several accounts (see README); replaces the single-account flags.
    #[arg(long = "config.file", env = "GCORE_IAM_EXPORTER_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,

    /// Log level: error, warn, info, debug or trace.
    #[arg(long = "log.level", env = "GCORE_IAM_EXPORTER_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log format: text or json.
    #[arg(long = "log.format", env = "GCORE_IAM_EXPORTER_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// A configuration problem, reported as one line before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "--gcore.api-key is refused: command lines are visible in process lists; set GCORE_API_KEY or use --gcore.api-key-file"
    )]
    KeyOnCommandLine,
    #[error("invalid value {value:?} for {flag}: {reason}")]
    Invalid { flag: &'static str, value: String, reason: String },
    #[error("no API key: set GCORE_API_KEY, use --gcore.api-key-file, or --config.file (or try --demo)")]
    NoKey,
    #[error("cannot read the API key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("environment variable {var} (API key of account {account:?}) is not set or empty")]
    KeyEnv { account: String, var: String },
    #[error("{0}")]
    WebConfig(WebConfigError),
    #[error("cannot read config file {path}: {reason}")]
    ConfigFileRead { path: PathBuf, reason: String },
    #[error("config file {path}: {reason}")]
    ConfigFile { path: PathBuf, reason: String },
}

/// Where an account's API key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Read once at start-up (environment variables do not change under a running process).
    Fixed(ApiKey),
    /// Re-read before each poll, so a rotated key is picked up without a restart.
    File(PathBuf),
}

impl KeySource {
    /// The current key. Only a file source can fail, and its error never contains the key.
    pub fn load(&self) -> Result<ApiKey, ConfigError> {
        match self {
            KeySource::Fixed(key) => Ok(key.clone()),
            KeySource::File(path) => read_key_file(path),
        }
    }
}

/// One Gcore account to poll.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// The bounded `account` label value.
    pub name: String,
    pub api_url: Url,
    pub key: KeySource,
}

/// Settings of the HTTP client that talks to the Gcore API.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub page_size: NonZeroU32,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_retries: u32,
    pub max_response_bytes: u64,
    /// Page requests in flight at once during one poll.
    pub concurrency: NonZeroU32,
    /// Distinct users of one account past which a poll fails.
    pub max_users: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which optional collectors run at each poll, after the users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collectors {
    pub account: bool,
    pub tokens: bool,
}

/// The validated configuration of one exporter process.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_address: SocketAddr,
    pub telemetry_path: String,
    pub poll_interval: Duration,
    pub poll_timeout: Duration,
    /// `None`: user series of a failing account are kept forever.
    pub max_staleness: Option<Duration>,
    /// TLS, basic auth and headers of the HTTP server (`--web.config.file`).
    pub web: Option<Arc<WebConfig>>,
    pub server_limits: ServerLimits,
    pub collectors: Collectors,
    pub client: ClientSettings,
    /// Empty in demo mode: the demo account is made once the fake API is listening.
    pub accounts: Vec<AccountConfig>,
    pub demo: bool,
    pub log_level: tracing::Level,
    pub log_format: LogFormat,
}

/// The accounts file (`--config.file`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    accounts: Vec<AccountEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    name: String,
    api_url: Option<String>,
    api_key_file: Option<PathBuf>,
    api_key_env: Option<String>,
}

impl Config {
    /// Validates the parsed flags; `env` looks up environment variables (injectable for tests).
    pub fn from_cli(cli: Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        if cli.api_key_flag.is_some() {
            return Err(ConfigError::KeyOnCommandLine);
        }
        let demo = cli.demo;
        let poll_interval = match &cli.poll_interval {
            Some(v) => parse_duration("--poll.interval", v)?,
            None if demo => Duration::from_secs(15),
            None => Duration::from_secs(300),
        };
        if poll_interval < Duration::from_secs(1) {
            return Err(invalid("--poll.interval", cli.poll_interval.unwrap_or_default(), "must be at least 1s"));
        }
        let poll_timeout = parse_duration("--poll.timeout", &cli.poll_timeout)?;
        let client = ClientSettings {
            page_size: parse_page_size(&cli.page_size)?,
            request_timeout: parse_duration("--gcore.request-timeout", &cli.request_timeout)?,
            connect_timeout: parse_duration("--gcore.connect-timeout", &cli.connect_timeout)?,
            max_retries: parse_number("--gcore.max-retries", &cli.max_retries, 0..=10)?,
            max_response_bytes: parse_number("--gcore.max-response-bytes", &cli.max_response_bytes, 1024..=(1 << 30))?,
            concurrency: NonZeroU32::new(parse_number("--gcore.concurrency", &cli.concurrency, 1..=32)?)
                .expect("range starts at 1"),
            max_users: parse_number("--gcore.max-users", &cli.max_users, 1..=100_000_000)?,
        };
        let max_staleness = match cli.max_staleness.trim() {
            "0" | "0s" => None,
            value => Some(parse_duration("--poll.max-staleness", value)?),
        };
        let accounts = if demo {
            Vec::new()
        } else if let Some(path) = &cli.config_file {
            let default_url = parse_api_url("--gcore.api-url", &cli.api_url)?;
            read_accounts_file(path, &default_url, env)?
        } else {
            let api_url = parse_api_url("--gcore.api-url", &cli.api_url)?;
            validate_account_name("--gcore.account-name", &cli.account_name)?;
            let key = match (&cli.api_key_file, env("GCORE_API_KEY")) {
                (Some(path), _) => {
                    // Fail at start-up on an unreadable file; later polls re-read it.
                    read_key_file(path)?;
                    KeySource::File(path.clone())
                }
                (None, Some(value)) if !value.trim().is_empty() => {
                    KeySource::Fixed(ApiKey::parse(&value).map_err(|reason| invalid_secret("GCORE_API_KEY", reason))?)
                }
                _ => return Err(ConfigError::NoKey),
            };
            vec![AccountConfig { name: cli.account_name.clone(), api_url, key }]
        };
        Ok(Config {
            listen_address: parse_listen_address(&cli.listen_address)?,
            telemetry_path: parse_telemetry_path(&cli.telemetry_path)?,
            poll_interval,
            poll_timeout,
            max_staleness,
            web: match &cli.web_config_file {
                Some(path) => Some(Arc::new(WebConfig::load(path).map_err(ConfigError::WebConfig)?)),
                None => None,
            },
            server_limits: ServerLimits::default(),
            collectors: Collectors { account: cli.collector_account, tokens: cli.collector_tokens },
            client,
            accounts,
            demo,
            log_level: parse_log_level(&cli.log_level)?,
            log_format: match cli.log_format.as_str() {
                "text" | "logfmt" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => return Err(invalid("--log.format", other, "expected text or json")),
            },
        })
    }
}

fn invalid(flag: &'static str, value: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { flag, value: value.into(), reason: reason.into() }
}

/// Like [`invalid`] but never echoes the value, which is a secret.
fn invalid_secret(flag: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid { flag, value: "<redacted>".into(), reason: reason.into() }
}

/// Accepts Prometheus-style durations ("30s", "5m", "1h30m") and plain seconds ("90").
pub fn parse_duration(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let trimmed = value.trim();
    let parsed = match trimmed.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(trimmed).map_err(|e| e.to_string()),
    };
    match parsed {
        Ok(d) if d.is_zero() => Err(invalid(flag, value, "must be greater than zero")),
        Ok(d) if d > Duration::from_secs(7 * 24 * 3600) => Err(invalid(flag, value, "must be at most one week")),
        Ok(d) => Ok(d),
        Err(e) => Err(invalid(flag, value, format!("not a duration ({e}); use e.g. 30s, 5m, 1h"))),
    }
}

fn parse_number<T>(flag: &'static str, value: &str, range: std::ops::RangeInclusive<T>) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let n: T = value.trim().parse().map_err(|_| invalid(flag, value, "not a whole number"))?;
    if !range.contains(&n) {
        return Err(invalid(flag, value, format!("must be between {} and {}", range.start(), range.end())));
    }
    Ok(n)
}

fn parse_page_size(value: &str) -> Result<NonZeroU32, ConfigError> {
    let n: u32 = parse_number("--gcore.page-size", value, 1..=1000)?;
    Ok(NonZeroU32::new(n).expect("range starts at 1"))
}

fn parse_api_url(flag: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim()).map_err(|e| invalid(flag, value, e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(flag, value, "scheme must be http or https"));
    }
    if url.host().is_none() {
        return Err(invalid(flag, value, "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(flag, "<redacted>", "must not carry credentials; the key goes in GCORE_API_KEY"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(flag, value, "must not have a query or fragment"));
    }
    Ok(url)
}

fn parse_listen_address(value: &str) -> Result<SocketAddr, ConfigError> {
    let flag = "--web.listen-address";
    if let Some(port) = value.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| invalid(flag, value, "not a port number"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    value
        .parse()
        .map_err(|_| invalid(flag, value, "expected HOST:PORT with an IP address (e.g. 127.0.0.1:19471) or :PORT"))
}

fn parse_telemetry_path(value: &str) -> Result<String, ConfigError> {
    let flag = "--web.telemetry-path";
    let ok = value.starts_with('/')
        && value.len() > 1
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(c))
        && !["/-/healthy", "/-/ready"].contains(&value);
    if !ok {
        return Err(invalid(flag, value, "must be an absolute path like /metrics, other than / and the health paths"));
    }
    Ok(value.to_string())
}

fn parse_log_level(value: &str) -> Result<tracing::Level, ConfigError> {
    value.parse().map_err(|_| invalid("--log.level", value, "expected error, warn, info, debug or trace"))
}

/// Account names become label values and appear on the landing page, so they are kept to a
/// short, safe alphabet.
fn validate_account_name(flag: &'static str, name: &str) -> Result<(), ConfigError> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok { Ok(()) } else { Err(invalid(flag, name, "use 1 to 64 characters among letters, digits, '_', '.' and '-'")) }
}

fn read_key_file(path: &Path) -> Result<ApiKey, ConfigError> {
    let raw = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::KeyFile { path: path.to_path_buf(), reason: e.to_string() })?;
    ApiKey::parse(&raw).map_err(|reason| ConfigError::KeyFile { path: path.to_path_buf(), reason: reason.to_string() })
}

fn read_accounts_file(
    path: &Path,
    default_url: &Url,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<AccountConfig>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::ConfigFileRead { path: path.to_path_buf(), reason: e.to_string() })?;
    let file_error = |reason: String| ConfigError::ConfigFile { path: path.to_path_buf(), reason };
    let parsed: AccountsFile = serde_yaml::from_str(&text).map_err(|e| file_error(e.to_string()))?;
    if parsed.accounts.is_empty() {
        return Err(file_error("`accounts` is empty".into()));
    }
    if parsed.accounts.len() > 100 {
        return Err(file_error("more than 100 accounts; run several exporters".into()));
    }
    let mut accounts = Vec::with_capacity(parsed.accounts.len());
    for entry in parsed.accounts {
        validate_account_name("account name", &entry.name).map_err(|e| file_error(e.to_string()))?;
        if accounts.iter().any(|a: &AccountConfig| a.name == entry.name) {
            return Err(file_error(format!("account {:?} is listed twice", entry.name)));
        }
        let api_url = match &entry.api_url {
            Some(u) => parse_api_url("api_url", u).map_err(|e| file_error(format!("account {:?}: {e}", entry.name)))?,
            None => default_url.clone(),
        };
        let key = match (entry.api_key_file, entry.api_key_env) {
            (Some(file), None) => {
                // Relative key paths are relative to the config file, not to the working directory.
                let file = match path.parent() {
                    Some(dir) if file.is_relative() => dir.join(file),
                    _ => file,
                };
                read_key_file(&file)?;
                KeySource::File(file)
            }
            (None, Some(var)) => match env(&var) {
                Some(value) if !value.trim().is_empty() => KeySource::Fixed(
                    ApiKey::parse(&value)
                        .map_err(|reason| file_error(format!("account {:?}: ${var}: {reason}", entry.name)))?,
                ),
                _ => return Err(ConfigError::KeyEnv { account: entry.name, var }),
            },
            _ => {
                return Err(file_error(format!(
                    "account {:?}: set exactly one of api_key_file and api_key_env",
                    entry.name
                )));
            }
        };
        accounts.push(AccountConfig { name: entry.name, api_url, key });
    }
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;

    fn config(args: &[&str], vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut argv = vec!["gcore-iam-exporter"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("flags parse");
        Config::from_cli(cli, &|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_with_env_key() {
        let c = config(&[], &[("GCORE_API_KEY", "42_abcdef")]).unwrap();
        assert_eq!(c.listen_address, "0.0.0.0:19471".parse().unwrap());
        assert_eq!(c.telemetry_path, "/metrics");
        assert_eq!(c.poll_interval, Duration::from_secs(300));
        assert_eq!(c.client.page_size.get(), 100);
        assert_eq!(c.client.max_retries, 2);
        assert_eq!(c.accounts.len(), 1);
        assert_eq!(c.accounts[0].name, "default");
        assert_eq!(c.accounts[0].api_url.as_str(), "https://api.gcore.com/");
    }

    #[test]
    fn key_flag_is_refused_and_not_echoed() {
        let err = config(&["--gcore.api-key", "42_supersecret"], &[]).unwrap_err();
        assert!(matches!(err, ConfigError::KeyOnCommandLine));
        assert!(!err.to_string().contains("supersecret"));
        assert!(err.to_string().contains("GCORE_API_KEY"));
    }

    #[test]
    fn missing_key_is_an_error_but_demo_needs_none() {
        assert!(matches!(config(&[], &[]), Err(ConfigError::NoKey)));
        let demo = config(&["--demo"], &[]).unwrap();
        assert!(demo.demo);
        assert_eq!(demo.poll_interval, Duration::from_secs(15));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let key = [("GCORE_API_KEY", "k")];
        for (args, flag) in [
            (vec!["--poll.interval", "soon"], "--poll.interval"),
            (vec!["--poll.interval", "500ms"], "--poll.interval"),
            (vec!["--gcore.page-size", "0"], "--gcore.page-size"),
            (vec!["--gcore.page-size", "5000"], "--gcore.page-size"),
            (vec!["--gcore.api-url", "ftp://x"], "--gcore.api-url"),
            (vec!["--gcore.api-url", "not a url"], "--gcore.api-url"),
            (vec!["--web.listen-address", "localhost"], "--web.listen-address"),
            (vec!["--web.telemetry-path", "metrics"], "--web.telemetry-path"),
            (vec!["--log.level", "loud"], "--log.level"),
            (vec!["--log.format", "xml"], "--log.format"),
            (vec!["--gcore.account-name", "prod acct"], "--gcore.account-name"),
        ] {
            let err = config(&args, &key).unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }

    #[test]
    fn url_with_credentials_is_refused_without_echo() {
        let err = config(&["--gcore.api-url", "https://user:hunter2@api.gcore.com"], &[("GCORE_API_KEY", "k")])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn listen_address_forms() {
        let c = config(&["--web.listen-address", "127.0.0.1:0"], &[("GCORE_API_KEY", "k")]).unwrap();
        assert_eq!(c.listen_address, "127.0.0.1:0".parse().unwrap());
        let c = config(&["--web.listen-address", "[::1]:9"], &[("GCORE_API_KEY", "k")]).unwrap();
        assert_eq!(c.listen_address, "[::1]:9".parse().unwrap());
    }

    #[test]
    fn key_file_is_read_and_unreadable_one_fails() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "1234$legacykey").unwrap();
        let path = file.path().to_str().unwrap();
        let c = config(&["--gcore.api-key-file", path], &[]).unwrap();
        assert_eq!(c.accounts[0].key.load().unwrap().expose(), "1234$legacykey");
        let err = config(&["--gcore.api-key-file", "/nonexistent/key"], &[]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/key"), "{err}");
    }

    #[test]
    fn accounts_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("prod.key"), "42_prodkey\n").unwrap();
        let path = dir.path().join("accounts.yaml");
        std::fs::write(
            &path,
            "accounts:\n  - name: prod\n    api_key_file: prod.key\n  - name: staging\n    api_key_env: STAGING_KEY\n    api_url: http://127.0.0.1:1/\n",
        )
        .unwrap();
        let c = config(&["--config.file", path.to_str().unwrap()], &[("STAGING_KEY", "42_stagingkey")]).unwrap();
        assert_eq!(c.accounts.len(), 2);
        assert_eq!(c.accounts[0].name, "prod");
        assert_eq!(c.accounts[0].key.load().unwrap().expose(), "42_prodkey");
        assert_eq!(c.accounts[1].api_url.as_str(), "http://127.0.0.1:1/");
        assert_eq!(c.accounts[1].key.load().unwrap().expose(), "42_stagingkey");

        let err = config(&["--config.file", path.to_str().unwrap()], &[]).unwrap_err();
        assert!(err.to_string().contains("STAGING_KEY"), "{err}");
    }

    #[test]
    fn malformed_accounts_files() {
        let dir = tempfile::tempdir().unwrap();
        for (text, needle) in [
            ("accounts: [", "config file"),
            ("accounts: []", "empty"),
            ("accounts:\n  - name: a\n    api_key_env: X\n  - name: a\n    api_key_env: X\n", "twice"),
            ("accounts:\n  - name: a\n", "exactly one"),
            ("accounts:\n  - name: a\n    api_key_env: X\n    colour: blue\n", "colour"),
            ("accounts:\n  - name: 'a b'\n    api_key_env: X\n", "account name"),
        ] {
            let path = dir.path().join("c.yaml");
            std::fs::write(&path, text).unwrap();
            let err = config(&["--config.file", path.to_str().unwrap()], &[("X", "k")]).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
