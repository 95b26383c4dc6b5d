//! The background loop of one account: poll, publish, sleep, until shutdown. Polls of one
//! account never overlap (one task, one poll at a time); accounts are polled independently.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::board::{AccountState, Board, PollFailure, PollRecord};
use crate::config::KeySource;
use crate::gcore::{GcoreClient, Reason};
use crate::metrics::{AccountCounters, Metrics};

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
    pub board: Arc<Board>,
    pub metrics: Arc<Metrics>,
    pub counters: AccountCounters,
}

impl AccountPoller {
    /// Polls at once, then every interval (±5 % so that many exporters and accounts drift
    /// apart rather than hitting the API together), until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.poll_once() => {}
            }
            let wait = self.interval.mul_f64(0.95 + 0.1 * rand::random::<f64>());
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        debug!(account = %self.name, "poller stopped");
    }

    /// One poll: list the users, then publish either new counts or the failure (keeping the
    /// last good counts), update the counters and re-encode the exposition.
    pub async fn poll_once(&self) {
        let started = Instant::now();
        let outcome = match self.key.load() {
            Err(e) => Err(PollFailure { reason: Reason::KeyError, message: e.to_string() }),
            Ok(key) => self
                .client
                .fetch_users(&key, started + self.timeout, &|result| self.counters.request_finished(result))
                .await
                .map_err(|e| PollFailure { reason: e.reason(), message: e.to_string() }),
        };
        let duration = started.elapsed();
        let finished_at = SystemTime::now();
        let previous = self.board.get(self.index);
        let state = match outcome {
            Ok(snapshot) => {
                if !previous.up() {
                    info!(account = %self.name, users = snapshot.active_users, deleted = snapshot.deleted_users,
                        duration_ms = duration.as_millis() as u64, "poll succeeded");
                } else {
                    debug!(account = %self.name, users = snapshot.active_users, duration_ms = duration.as_millis() as u64, "poll succeeded");
                }
                if snapshot.fetched_users != snapshot.reported_users {
                    warn!(account = %self.name, fetched = snapshot.fetched_users, reported = snapshot.reported_users,
                        "the API's count differs from the users received (users added or removed during the poll?)");
                }
                self.counters.poll_finished(None);
                AccountState {
                    name: self.name.clone(),
                    snapshot: Some(Arc::new(snapshot)),
                    last_success: Some(finished_at),
                    last_poll: Some(PollRecord { finished_at, duration, failure: None }),
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
                }
            }
        };
        self.board.publish(self.index, state);
        self.metrics.refresh();
    }
}
