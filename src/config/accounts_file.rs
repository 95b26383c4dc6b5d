//! The accounts file (`--config.file`): several Gcore accounts, each with its key source and
//! optionally its own API URL.

use std::path::Path;

use serde::Deserialize;
use url::Url;

use super::flags::{account_name, api_url};
use super::{AccountConfig, ConfigError, KeySource, read_key_file};
use crate::secret::ApiKey;

/// The most accounts one exporter takes. Each account costs its poller task, its state and its
/// part of the exposition (about 40 KB with 100 users); measured up to 1,000 (README,
/// Performance), the cap keeps a generated file gone wrong from taking the machine's memory.
/// Past it, split the accounts over several exporters (README, "Several accounts").
pub const MAX_ACCOUNTS: usize = 2000;

/// Which share of the accounts file this exporter polls (`--config.shard-index`/`-count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The whole file.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the account named `name` is this shard's: its name's 64-bit FNV-1a hash modulo
    /// the count. The hash is part of the contract (README): replicas of different versions
    /// must agree on who polls what, so it is spelled out here rather than taken from the
    /// standard library, whose hasher may change between releases.
    pub fn holds(self, name: &str) -> bool {
        let hash =
            name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        hash % u64::from(self.count) == u64::from(self.index)
    }
}

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
    api_key_file: Option<std::path::PathBuf>,
    api_key_env: Option<String>,
}

/// Reads and checks the accounts file and returns the accounts of `shard`. `default_url` is
/// `--gcore.api-url`; `env` looks up the `api_key_env` variables.
///
/// Every entry is checked (names, URLs, key sources), so that all replicas agree the file is
/// valid; only the shard's own keys are read, so a replica needs only its accounts' secrets.
pub fn read_accounts_file(
    path: &Path,
    default_url: &Url,
    env: &dyn Fn(&str) -> Option<String>,
    shard: Shard,
) -> Result<Vec<AccountConfig>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::ConfigFileRead { path: path.to_path_buf(), source })?;
    let file_error = |reason: String| ConfigError::ConfigFile { path: path.to_path_buf(), reason };
    let parsed: AccountsFile = serde_norway::from_str(&text).map_err(|e| file_error(e.to_string()))?;
    if parsed.accounts.is_empty() {
        return Err(file_error("`accounts` is empty".into()));
    }
    if parsed.accounts.len() > MAX_ACCOUNTS {
        return Err(file_error(format!(
            "more than {MAX_ACCOUNTS} accounts; split them over several exporters (README: Several accounts)"
        )));
    }
    let listed = parsed.accounts.len();
    let mut names = std::collections::HashSet::with_capacity(listed);
    let mut accounts = Vec::with_capacity(listed);
    for entry in parsed.accounts {
        account_name(&entry.name).map_err(|reason| file_error(format!("account name {:?}: {reason}", entry.name)))?;
        if !names.insert(entry.name.clone()) {
            return Err(file_error(format!("account {:?} is listed twice", entry.name)));
        }
        let api_url = match &entry.api_url {
            // The URL is not echoed: it may carry credentials.
            Some(u) => {
                api_url(u).map_err(|reason| file_error(format!("account {:?}: api_url {reason}", entry.name)))?
            }
            None => default_url.clone(),
        };
        let key = match (entry.api_key_file, entry.api_key_env) {
            (Some(_), None) | (None, Some(_)) if !shard.holds(&entry.name) => continue,
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
    if accounts.is_empty() {
        // An exporter polling nothing would look healthy while covering no account.
        return Err(file_error(format!(
            "shard {} of {} holds none of the {listed} accounts; use fewer shards",
            shard.index, shard.count
        )));
    }
    Ok(accounts)
}
