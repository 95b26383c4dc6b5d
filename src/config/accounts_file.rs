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

/// Reads and checks the accounts file. `default_url` is `--gcore.api-url`; `env` looks up the
/// `api_key_env` variables.
pub fn read_accounts_file(
    path: &Path,
    default_url: &Url,
    env: &dyn Fn(&str) -> Option<String>,
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
    let mut accounts = Vec::with_capacity(parsed.accounts.len());
    for entry in parsed.accounts {
        account_name(&entry.name).map_err(|reason| file_error(format!("account name {:?}: {reason}", entry.name)))?;
        if accounts.iter().any(|a: &AccountConfig| a.name == entry.name) {
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
