//! The latest published state of every account: written by the pollers, read by the metrics
//! encoder and the landing page. Each account's state is an immutable value swapped in whole,
//! so a reader never sees a half-finished poll and never waits for one.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::credentials::{AccountInfo, TokenSnapshot};
use crate::gcore::Reason;
use crate::logins::LoginSnapshot;
use crate::snapshot::Snapshot;

/// How the last poll of an account ended.
#[derive(Debug, Clone)]
pub struct PollRecord {
    pub finished_at: SystemTime,
    pub duration: Duration,
    /// `None` for a successful poll.
    pub failure: Option<PollFailure>,
}

#[derive(Debug, Clone)]
pub struct PollFailure {
    pub reason: Reason,
    /// A message for people (logs, landing page); never contains the key.
    pub message: String,
}

/// The state of an optional collector (account info, tokens, login log) at the last poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectorState {
    Ok,
    /// The key may not read this (e.g. tokens with a non-administrator's key), or (login log)
    /// the API does not serve it.
    Forbidden,
    Failing,
    Disabled,
}

impl CollectorState {
    pub const ALL: [CollectorState; 4] =
        [CollectorState::Ok, CollectorState::Forbidden, CollectorState::Failing, CollectorState::Disabled];

    pub fn as_str(self) -> &'static str {
        match self {
            CollectorState::Ok => "ok",
            CollectorState::Forbidden => "forbidden",
            CollectorState::Failing => "failing",
            CollectorState::Disabled => "disabled",
        }
    }
}

/// What the optional collectors found, kept like the user counts while later polls fail.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub account: Option<Arc<AccountInfo>>,
    pub tokens: Option<Arc<TokenSnapshot>>,
    /// `None` until the collector has run once (or is known to be disabled).
    pub account_state: Option<CollectorState>,
    pub tokens_state: Option<CollectorState>,
    /// The login log as read so far; `None` until a page of it was read, and while forbidden.
    pub logins: Option<Arc<LoginSnapshot>>,
    pub logins_state: Option<CollectorState>,
}

/// What is known of one account right now.
#[derive(Debug, Clone)]
pub struct AccountState {
    pub name: Arc<str>,
    /// The counts of the last successful poll, kept while later polls fail.
    pub snapshot: Option<Arc<Snapshot>>,
    pub last_success: Option<SystemTime>,
    pub last_poll: Option<PollRecord>,
    pub credentials: Credentials,
}

impl AccountState {
    /// 1 on /metrics: the last poll succeeded.
    pub fn up(&self) -> bool {
        self.last_poll.as_ref().is_some_and(|p| p.failure.is_none())
    }
}

/// Every account's current state, in configuration order.
#[derive(Debug)]
pub struct Board {
    accounts: Vec<ArcSwap<AccountState>>,
}

impl Board {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let accounts = names
            .into_iter()
            .map(|name| {
                ArcSwap::from_pointee(AccountState {
                    name: Arc::from(name),
                    snapshot: None,
                    last_success: None,
                    last_poll: None,
                    credentials: Credentials::default(),
                })
            })
            .collect();
        Board { accounts }
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    pub fn get(&self, index: usize) -> Arc<AccountState> {
        self.accounts[index].load_full()
    }

    pub fn publish(&self, index: usize, state: AccountState) {
        self.accounts[index].store(Arc::new(state));
    }

    pub fn all(&self) -> Vec<Arc<AccountState>> {
        self.accounts.iter().map(|a| a.load_full()).collect()
    }

    /// Ready once every account has finished its first poll, whatever its outcome: from then
    /// on /metrics tells the truth about every account, even if that truth is `up 0`.
    pub fn ready(&self) -> bool {
        self.accounts.iter().all(|a| a.load().last_poll.is_some())
    }
}
