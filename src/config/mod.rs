//! The validated configuration of one exporter process: the flags ([`flags`]) and the
//! optional accounts file ([`accounts_file`]) checked once, at the edge, into a typed
//! [`Config`]. Anything wrong is reported in one clear line with exit code 2, before anything
//! starts.

mod accounts_file;
mod flags;

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use url::Url;

pub use accounts_file::{MAX_ACCOUNTS, Shard};
pub use flags::{Cli, DEFAULT_ACCOUNT, DEFAULT_PORT, LogFormat, MaxStaleness};

use crate::http::server::ServerLimits;
use crate::http::web_config::{WebConfig, WebConfigError};
use crate::secret::{ApiKey, KeyError};

/// Name of the built-in account served in demo mode.
pub const DEMO_ACCOUNT: &str = "demo";

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
    #[error("cannot read the API key file {path}")]
    KeyFileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the API key file {path} does not hold a usable key")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: KeyError,
    },
    #[error("environment variable {var} (API key of account {account:?}) is not set or empty")]
    KeyEnv { account: String, var: String },
    #[error(transparent)]
    WebConfig(#[from] WebConfigError),
    #[error("cannot read config file {path}")]
    ConfigFileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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

/// Which optional collectors run at each poll, after the users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collectors {
    pub account: bool,
    pub tokens: bool,
    pub logins: bool,
}

/// The validated configuration of one exporter process.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_address: SocketAddr,
    pub telemetry_path: String,
    pub poll_interval: Duration,
    pub poll_timeout: Duration,
    /// Polls of different accounts running at once (`--poll.max-concurrent-accounts`).
    pub max_concurrent_accounts: NonZeroUsize,
    /// `None`: user series of a failing account are kept forever.
    pub max_staleness: Option<Duration>,
    /// TLS, basic auth and headers of the HTTP server (`--web.config.file`).
    pub web: Option<Arc<WebConfig>>,
    pub server_limits: ServerLimits,
    pub collectors: Collectors,
    pub client: ClientSettings,
    /// Empty in demo mode: the demo account is made once the fake API is listening.
    pub accounts: Vec<AccountConfig>,
    /// The share of the accounts file that `accounts` holds.
    pub shard: Shard,
    pub demo: bool,
    pub log_level: tracing::Level,
    pub log_format: LogFormat,
}

impl Config {
    /// Checks what the flags alone could not (the key's source, the accounts file, the web
    /// configuration) and builds the configuration; `env` looks up environment variables
    /// (injectable for tests). Call it once logging runs: reading the web configuration may
    /// log warnings (an ignored setting).
    pub fn from_cli(cli: Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        if cli.api_key_flag.is_some() {
            return Err(ConfigError::KeyOnCommandLine);
        }
        let demo = cli.demo;
        let poll_interval = cli.poll_interval.unwrap_or(Duration::from_secs(if demo { 15 } else { 300 }));
        let client = ClientSettings {
            page_size: nonzero("--gcore.page-size", cli.page_size)?,
            request_timeout: cli.request_timeout,
            connect_timeout: cli.connect_timeout,
            max_retries: cli.max_retries,
            max_response_bytes: cli.max_response_bytes,
            concurrency: nonzero("--gcore.concurrency", cli.concurrency)?,
            max_users: cli.max_users,
        };
        let shard = Shard { index: cli.shard_index, count: cli.shard_count };
        if shard.index >= shard.count {
            return Err(ConfigError::Invalid {
                flag: "--config.shard-index",
                value: shard.index.to_string(),
                reason: format!("must be below --config.shard-count ({})", shard.count),
            });
        }
        if shard != Shard::ALL && cli.config_file.is_none() {
            return Err(ConfigError::Invalid {
                flag: "--config.shard-count",
                value: shard.count.to_string(),
                reason: "sharding splits an accounts file: it needs --config.file".into(),
            });
        }
        let accounts = if demo {
            Vec::new()
        } else if let Some(path) = &cli.config_file {
            let default_url = parse_api_url(&cli.api_url)?;
            accounts_file::read_accounts_file(path, &default_url, env, shard)?
        } else {
            let api_url = parse_api_url(&cli.api_url)?;
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
            listen_address: cli.listen_address,
            telemetry_path: cli.telemetry_path,
            poll_interval,
            poll_timeout: cli.poll_timeout,
            max_concurrent_accounts: NonZeroUsize::try_from(nonzero(
                "--poll.max-concurrent-accounts",
                cli.max_concurrent_accounts,
            )?)
            .map_err(|_| ConfigError::Invalid {
                flag: "--poll.max-concurrent-accounts",
                value: cli.max_concurrent_accounts.to_string(),
                reason: "too large for this machine".into(),
            })?,
            max_staleness: cli.max_staleness.0,
            web: match &cli.web_config_file {
                Some(path) => Some(Arc::new(WebConfig::load(path)?)),
                None => None,
            },
            server_limits: ServerLimits::default(),
            collectors: Collectors {
                account: cli.collector_account,
                tokens: cli.collector_tokens,
                logins: cli.collector_logins,
            },
            client,
            accounts,
            shard,
            demo,
            log_level: cli.log_level,
            log_format: cli.log_format,
        })
    }
}

/// A count whose flag's range starts at 1 (so `None` cannot come from clap).
fn nonzero(flag: &'static str, value: u32) -> Result<NonZeroU32, ConfigError> {
    NonZeroU32::new(value).ok_or_else(|| ConfigError::Invalid {
        flag,
        value: value.to_string(),
        reason: "must be at least 1".into(),
    })
}

/// `--gcore.api-url`, never echoed when it carries credentials.
fn parse_api_url(value: &str) -> Result<Url, ConfigError> {
    flags::api_url(value).map_err(|reason| {
        let shown = if value.contains('@') { "<redacted>".to_string() } else { value.to_string() };
        ConfigError::Invalid { flag: "--gcore.api-url", value: shown, reason }
    })
}

/// Like [`ConfigError::Invalid`] but never echoes the value, which is a secret.
fn invalid_secret(flag: &'static str, reason: KeyError) -> ConfigError {
    ConfigError::Invalid { flag, value: "<redacted>".into(), reason: reason.to_string() }
}

fn read_key_file(path: &Path) -> Result<ApiKey, ConfigError> {
    let raw = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::KeyFileRead { path: path.to_path_buf(), source })?;
    ApiKey::parse(&raw).map_err(|source| ConfigError::KeyFile { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::HashMap;
    use std::io::Write;

    /// A mistake in the flags, refused either by clap (a value it cannot read) or by
    /// [`Config::from_cli`]; both name the flag.
    #[derive(Debug)]
    enum Refused {
        Flags(clap::Error),
        Config(ConfigError),
    }

    impl std::fmt::Display for Refused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Refused::Flags(e) => write!(f, "{e}"),
                Refused::Config(e) => write!(f, "{}", crate::error_chain::Chain(e)),
            }
        }
    }

    fn config(args: &[&str], vars: &[(&str, &str)]) -> Result<Config, Refused> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut argv = vec!["gcore-iam-exporter"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(Refused::Flags)?;
        Config::from_cli(cli, &|k| vars.get(k).cloned()).map_err(Refused::Config)
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
        assert!(matches!(err, Refused::Config(ConfigError::KeyOnCommandLine)));
        assert!(!err.to_string().contains("supersecret"));
        assert!(err.to_string().contains("GCORE_API_KEY"));
    }

    #[test]
    fn missing_key_is_an_error_but_demo_needs_none() {
        assert!(matches!(config(&[], &[]), Err(Refused::Config(ConfigError::NoKey))));
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
    fn concurrent_polls_flag() {
        let key = ("GCORE_API_KEY", "k");
        assert_eq!(config(&[], &[key]).unwrap().max_concurrent_accounts.get(), 16);
        let c = config(&["--poll.max-concurrent-accounts", "4"], &[key]).unwrap();
        assert_eq!(c.max_concurrent_accounts.get(), 4);
        for bad in ["0", "many", "5000"] {
            let err = config(&["--poll.max-concurrent-accounts", bad], &[key]).unwrap_err().to_string();
            assert!(err.contains("--poll.max-concurrent-accounts"), "{err}");
        }
    }

    #[test]
    fn up_to_max_accounts_in_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = |n: usize| {
            let path = dir.path().join(format!("{n}.yaml"));
            let entries: String = (0..n).map(|i| format!("  - name: a{i}\n    api_key_env: K\n")).collect();
            std::fs::write(&path, format!("accounts:\n{entries}")).unwrap();
            path
        };
        let path = file(MAX_ACCOUNTS);
        let c = config(&["--config.file", path.to_str().unwrap()], &[("K", "42_k")]).unwrap();
        assert_eq!(c.accounts.len(), MAX_ACCOUNTS);
        let path = file(MAX_ACCOUNTS + 1);
        let err = config(&["--config.file", path.to_str().unwrap()], &[("K", "42_k")]).unwrap_err().to_string();
        assert!(err.contains("several exporters"), "{err}");
    }

    #[test]
    fn shards_split_one_accounts_file_without_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.yaml");
        let entries: String = (0..200).map(|i| format!("  - name: customer-{i}\n    api_key_env: K{i}\n")).collect();
        std::fs::write(&path, format!("accounts:\n{entries}")).unwrap();
        let keys: Vec<(String, String)> = (0..200).map(|i| (format!("K{i}"), format!("42_key{i}"))).collect();
        let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let file = path.to_str().unwrap();
        let shard = |index: &str, count: &str, keys: &[(&str, &str)]| {
            config(&["--config.file", file, "--config.shard-index", index, "--config.shard-count", count], keys)
        };
        let mut seen: Vec<String> = Vec::new();
        for index in ["0", "1", "2"] {
            let c = shard(index, "3", &keys).unwrap();
            assert_eq!(c.shard, Shard { index: index.parse().unwrap(), count: 3 });
            // Roughly a third each: the hash spreads the names.
            assert!((40..=93).contains(&c.accounts.len()), "shard {index}: {}", c.accounts.len());
            seen.extend(c.accounts.iter().map(|a| a.name.clone()));
        }
        seen.sort();
        let mut all: Vec<String> = (0..200).map(|i| format!("customer-{i}")).collect();
        all.sort();
        assert_eq!(seen, all, "every account in exactly one shard");

        // A replica needs only its own accounts' keys.
        let ours = shard("1", "3", &keys).unwrap();
        let only_ours: Vec<(&str, &str)> = keys
            .iter()
            .copied()
            .filter(|(k, _)| ours.accounts.iter().any(|a| format!("K{}", &a.name[9..]) == *k))
            .collect();
        assert_eq!(shard("1", "3", &only_ours).unwrap().accounts.len(), ours.accounts.len());
        assert!(shard("0", "3", &only_ours).is_err());
    }

    #[test]
    fn shard_hash_is_the_documented_fnv_1a() {
        // Shards computed apart (FNV-1a 64 of "acme" is 0x0724_d383_f4f6_de0f, 3 modulo 7), pinned
        // so that a change of hash, which would move accounts between replicas of different
        // versions, fails here.
        let placed: Vec<u32> = ["acme", "beta", "customer-1", ""]
            .iter()
            .map(|n| (0..7).find(|&i| Shard { index: i, count: 7 }.holds(n)).unwrap())
            .collect();
        assert_eq!(placed, [3, 5, 6, 2]);
        assert!(["acme", "beta", ""].iter().all(|n| Shard::ALL.holds(n)));
    }

    #[test]
    fn bad_shards_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.yaml");
        std::fs::write(&path, "accounts:\n  - name: acme\n    api_key_env: K\n").unwrap();
        let file = path.to_str().unwrap();
        let key = [("K", "42_k"), ("GCORE_API_KEY", "42_k")];
        for (args, needle) in [
            (
                vec!["--config.file", file, "--config.shard-index", "3", "--config.shard-count", "3"],
                "--config.shard-index",
            ),
            (vec!["--config.file", file, "--config.shard-count", "0"], "--config.shard-count"),
            (
                vec!["--config.file", file, "--config.shard-index=-1", "--config.shard-count", "2"],
                "--config.shard-index",
            ),
            (vec!["--config.shard-index", "1", "--config.shard-count", "2"], "needs --config.file"),
        ] {
            let err = config(&args, &key).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        // One account and two shards: one of them holds nothing, which is refused.
        let empty = (0..2).map(|i| i.to_string()).find(|i| {
            config(&["--config.file", file, "--config.shard-index", i, "--config.shard-count", "2"], &key).is_err()
        });
        let i = empty.expect("one shard of two is empty");
        let err = config(&["--config.file", file, "--config.shard-index", &i, "--config.shard-count", "2"], &key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds none of the 1 accounts"), "{err}");
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
