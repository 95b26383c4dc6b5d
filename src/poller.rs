//! The background loop of one account: poll, publish, sleep, until shutdown. Polls of one
//! account never overlap (one task, one poll at a time); accounts are polled independently.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::board::{AccountState, Board, CollectorState, Credentials, PollFailure, PollRecord};
use crate::changes;
use crate::config::{Collectors, KeySource};
use crate::credentials::own_token_id;
use crate::error_chain::Chain;
use crate::gcore::{FetchError, GcoreClient, Reason};
use crate::logins::LoginTracker;
use crate::metrics::{AccountCounters, Metrics};
use crate::schedule::PollSlots;
use crate::secret::ApiKey;
use crate::snapshot::Snapshot;

/// After a 403, an optional collector is asked again only this much later: the key may have
/// been replaced by an administrator's meanwhile, but every poll need not hear "no" again.
const FORBIDDEN_RECHECK: Duration = Duration::from_secs(3600);

/// Polls one account and publishes what it finds.
#[derive(Debug)]
pub struct AccountPoller {
    pub index: usize,
    pub name: Arc<str>,
    pub client: GcoreClient,
    pub key: KeySource,
    pub interval: Duration,
    pub timeout: Duration,
    /// Past this age without a successful poll, the user series are withdrawn.
    pub max_staleness: Option<Duration>,
    pub collectors: Collectors,
    pub board: Arc<Board>,
    pub metrics: Arc<Metrics>,
    pub counters: AccountCounters,
    /// Until when the account, tokens and login log endpoints are not asked again after a 403
    /// (or, for the login log, a 404).
    pub forbidden_until: ForbiddenUntil,
    /// What the login log told so far; lives as long as the exporter (its counters start at 0
    /// with it).
    pub logins: LoginTracker,
    /// Whether the last successful poll's users differed from the API's `count`, so that the
    /// difference is logged once when it starts, not at every poll.
    pub count_differed: bool,
    /// Wait before the first poll, so that many accounts do not all poll at start-up.
    pub first_poll_delay: Duration,
    /// Shared by every poller: a poll runs only while it holds a slot.
    pub slots: PollSlots,
    /// The last complete poll, what the next complete one is compared with to count changes.
    /// Kept here, not taken from the board, which withdraws stale numbers.
    pub last_complete: Option<Arc<Snapshot>>,
}

/// Until when each optional collector is not asked again after a 403.
#[derive(Debug, Default, Clone, Copy)]
pub struct ForbiddenUntil {
    pub account: Option<Instant>,
    pub tokens: Option<Instant>,
    pub logins: Option<Instant>,
}

/// An optional collector, for its logs and its pause after a 403.
#[derive(Debug, Clone, Copy)]
enum Optional {
    Account,
    Tokens,
    Logins,
}

impl Optional {
    fn name(self) -> &'static str {
        match self {
            Optional::Account => "account",
            Optional::Tokens => "tokens",
            Optional::Logins => "logins",
        }
    }
}

impl AccountPoller {
    /// Polls after `first_poll_delay`, then every interval (±5 % so that many exporters and
    /// accounts drift apart rather than hitting the API together), until `shutdown`. Each poll
    /// first waits for one of the shared slots.
    pub async fn run(mut self, shutdown: CancellationToken) {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(self.first_poll_delay) => {}
        }
        let slots = self.slots.clone();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = async {
                    let _slot = slots.acquire().await;
                    self.poll_once().await
                } => {}
            }
            let wait = self.interval.mul_f64(0.95 + 0.1 * rand::random::<f64>());
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        debug!(account = %self.name, "poller stopped");
    }

    /// One poll: list the users, then (if that worked) the account and its tokens; publish
    /// either new numbers or the failure (keeping the last good numbers until they are older
    /// than the staleness limit), update the counters and re-encode the exposition.
    pub async fn poll_once(&mut self) {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let key = self.key.load();
        let outcome = match &key {
            Err(e) => Err(PollFailure { reason: Reason::KeyError, message: Chain(e).to_string() }),
            Ok(key) => self
                .client
                .fetch_users(key, deadline, &|result| self.counters.request_finished(result))
                .await
                .map_err(|e| PollFailure { reason: e.reason(), message: Chain(&e).to_string() }),
        };
        let previous = self.board.get(self.index);
        let credentials = match (&outcome, &key) {
            (Ok(snapshot), Ok(key)) => {
                let mut next = self.poll_credentials(key, deadline, &previous.credentials).await;
                self.poll_logins(key, deadline, snapshot, &mut next).await;
                next
            }
            _ => previous.credentials.clone(),
        };
        let duration = started.elapsed();
        let finished_at = SystemTime::now();
        let state = match outcome {
            Ok(snapshot) => {
                if !previous.up() {
                    info!(account = %self.name, users = snapshot.active_users, deleted = snapshot.deleted_users,
                        duration_ms = duration.as_millis() as u64, "poll succeeded");
                } else {
                    debug!(account = %self.name, users = snapshot.active_users, duration_ms = duration.as_millis() as u64, "poll succeeded");
                }
                let differs = snapshot.fetched_users != snapshot.reported_users;
                if differs && !self.count_differed {
                    warn!(account = %self.name, fetched = snapshot.fetched_users, reported = snapshot.reported_users,
                        "the API's count differs from the users received (users added or removed during the poll?); logged again only after a poll where they agree");
                } else if differs {
                    debug!(account = %self.name, fetched = snapshot.fetched_users, reported = snapshot.reported_users,
                        "the API's count still differs from the users received");
                }
                self.count_differed = differs;
                let snapshot = Arc::new(snapshot);
                self.count_changes(&snapshot);
                self.counters.poll_finished(None);
                AccountState {
                    name: self.name.clone(),
                    snapshot: Some(snapshot),
                    last_success: Some(finished_at),
                    last_poll: Some(PollRecord { finished_at, duration, failure: None }),
                    credentials,
                }
            }
            Err(failure) => {
                // Logged once per change of reason, so a long outage does not flood the log.
                let same_as_before = previous
                    .last_poll
                    .as_ref()
                    .and_then(|p| p.failure.as_ref())
                    .is_some_and(|f| f.reason == failure.reason);
                if same_as_before {
                    debug!(account = %self.name, reason = failure.reason.as_str(), error = %failure.message, "poll failed again");
                } else {
                    warn!(account = %self.name, reason = failure.reason.as_str(), error = %failure.message,
                        "poll failed; serving the last good numbers");
                }
                self.counters.poll_finished(Some(failure.reason));
                // Old numbers served as current would mislead a dashboard more than no numbers;
                // `gcore_iam_up` and the last-success timestamp stay to tell why they are gone.
                let stale = self.max_staleness.is_some_and(|max| {
                    previous.last_success.is_some_and(|t| finished_at.duration_since(t).unwrap_or_default() > max)
                });
                if stale && previous.snapshot.is_some() {
                    warn!(account = %self.name, max_staleness_s = self.max_staleness.unwrap_or_default().as_secs(),
                        "no successful poll within --poll.max-staleness; user series withdrawn until the next success");
                }
                AccountState {
                    name: self.name.clone(),
                    snapshot: if stale { None } else { previous.snapshot.clone() },
                    last_success: previous.last_success,
                    last_poll: Some(PollRecord { finished_at, duration, failure: Some(failure) }),
                    credentials: if stale { Credentials::default() } else { credentials },
                }
            }
        };
        self.board.publish(self.index, state);
        self.metrics.refresh();
    }

    /// Counts what changed since the last complete poll; the first one is the baseline. Only
    /// ids and flags are compared, so the log says how many, never who.
    fn count_changes(&mut self, current: &Arc<Snapshot>) {
        let Some(previous) = self.last_complete.replace(current.clone()) else {
            debug!(account = %self.name, "first complete poll: the baseline of the change counters");
            return;
        };
        let found = changes::compare(&previous.index, &current.index);
        if !found.is_empty() {
            let count = |c| found.get(c);
            use changes::UserChange::*;
            debug!(account = %self.name, added = count(Added), removed = count(Removed), deleted = count(Deleted),
                two_fa_enabled = count(TwoFaEnabled), two_fa_disabled = count(TwoFaDisabled),
                activated = count(Activated), groups_changed = found.groups.len(), "users changed since the last complete poll");
        }
        self.counters.changes_counted(&found);
    }

    /// The optional collectors: the account (which also gives the client id the tokens
    /// endpoint needs) and its tokens. A failure here never fails the poll of the users.
    async fn poll_credentials(&mut self, key: &ApiKey, deadline: Instant, previous: &Credentials) -> Credentials {
        let mut next = previous.clone();
        let counters = self.counters.clone();
        let on_request = move |result| counters.request_finished(result);
        if !self.collectors.account && !self.collectors.tokens {
            next.account_state = Some(CollectorState::Disabled);
            next.tokens_state = Some(CollectorState::Disabled);
            return next;
        }
        let now = Instant::now();
        if self.forbidden_until.account.is_none_or(|until| now >= until) {
            match self.client.fetch_account(key, deadline, &on_request).await {
                Ok(account) => {
                    self.forbidden_until.account = None;
                    next.account = Some(Arc::new(account));
                    next.account_state = Some(CollectorState::Ok);
                }
                Err(e) => {
                    next.account_state = Some(self.collector_failed(Optional::Account, &e, previous.account_state))
                }
            }
        }
        if !self.collectors.account {
            next.account_state = Some(CollectorState::Disabled);
        }
        if !self.collectors.tokens {
            next.tokens_state = Some(CollectorState::Disabled);
            next.tokens = None;
        } else if let Some(client_id) = next.account.as_ref().map(|a| a.client_id) {
            if self.forbidden_until.tokens.is_none_or(|until| now >= until) {
                let own = own_token_id(key.expose());
                match self.client.fetch_tokens(key, client_id, own, deadline, &on_request).await {
                    Ok(tokens) => {
                        self.forbidden_until.tokens = None;
                        next.tokens = Some(Arc::new(tokens));
                        next.tokens_state = Some(CollectorState::Ok);
                    }
                    Err(e) => {
                        let state = self.collector_failed(Optional::Tokens, &e, previous.tokens_state);
                        if state == CollectorState::Forbidden {
                            next.tokens = None;
                        }
                        next.tokens_state = Some(state);
                    }
                }
            }
        } else {
            // The tokens endpoint needs the account's id, which no read of the account has
            // given yet: the tokens collector cannot run, and says so with the account's state
            // (both collectors always export a state).
            next.tokens_state = Some(match next.account_state {
                Some(CollectorState::Forbidden) => CollectorState::Forbidden,
                _ => CollectorState::Failing,
            });
        }
        if !self.collectors.account {
            // Fetched only for its client id.
            next.account = None;
        }
        next
    }

    /// The login log, after a successful users poll (its buckets are the users of that poll).
    /// A failure here never fails the poll of the users; the pages read before it still count.
    async fn poll_logins(&mut self, key: &ApiKey, deadline: Instant, users: &Snapshot, next: &mut Credentials) {
        if !self.collectors.logins {
            next.logins_state = Some(CollectorState::Disabled);
            next.logins = None;
            return;
        }
        if self.forbidden_until.logins.is_some_and(|until| Instant::now() < until) {
            return;
        }
        let counters = self.counters.clone();
        let on_request = move |result| counters.request_finished(result);
        let read = self.client.fetch_logins(key, &mut self.logins, &users.index.deleted, deadline, &on_request).await;
        match read {
            Ok(read) => {
                self.forbidden_until.logins = None;
                next.logins_state = Some(CollectorState::Ok);
                debug!(account = %self.name, pages = read.pages, events = read.events, new = read.new,
                    behind = read.behind, "login log read");
            }
            Err(e) => {
                let state = self.collector_failed(Optional::Logins, &e, next.logins_state);
                next.logins_state = Some(state);
                if state == CollectorState::Forbidden {
                    next.logins = None;
                    return;
                }
            }
        }
        if self.logins.has_read() {
            let now = SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let now = i64::try_from(now).unwrap_or(i64::MAX);
            self.logins.forget_departed(&users.index, now);
            next.logins = Some(Arc::new(self.logins.snapshot(&users.index, now)));
        }
    }

    fn collector_failed(
        &mut self,
        which: Optional,
        error: &FetchError,
        previous: Option<CollectorState>,
    ) -> CollectorState {
        let collector = which.name();
        // An API without the login log (404) is no more worth asking at every poll than a key
        // that may not read it.
        let refused = matches!(error, FetchError::Forbidden)
            || (matches!(which, Optional::Logins) && matches!(error, FetchError::Client(404)));
        let state = if refused { CollectorState::Forbidden } else { CollectorState::Failing };
        if previous != Some(state) {
            if state == CollectorState::Forbidden && matches!(which, Optional::Logins) {
                warn!(account = %self.name, collector, recheck_s = FORBIDDEN_RECHECK.as_secs(), reason = error.reason().as_str(),
                    "the login log is refused (403) or not served (404); collector paused, users are still polled");
            } else if state == CollectorState::Forbidden {
                warn!(account = %self.name, collector, recheck_s = FORBIDDEN_RECHECK.as_secs(),
                    "the key may not read this (403 Forbidden; tokens need an administrator's key); collector paused, users are still polled");
            } else {
                warn!(account = %self.name, collector, reason = error.reason().as_str(), error = %Chain(error),
                    "collector failed; users are still polled");
            }
        }
        if state == CollectorState::Forbidden {
            let until = Some(Instant::now() + FORBIDDEN_RECHECK);
            match which {
                Optional::Account => self.forbidden_until.account = until,
                Optional::Tokens => self.forbidden_until.tokens = until,
                Optional::Logins => self.forbidden_until.logins = until,
            }
        }
        state
    }
}
