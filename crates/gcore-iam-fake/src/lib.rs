//! A built-in fake of the Gcore IAM API, for `--demo` mode and the tests: `GET /iam/users`,
//! `GET /iam/clients/me`, `GET /iam/v2/clients/{clientId}/tokens` and the login log
//! `GET /iam/activity_log/logins`.
//!
//! It keeps the contract of Gcore's OpenAPI for these endpoints: APIKey auth, the
//! `limit`/`offset` envelope or the bare array, every field of `User`, `ClientBase` and
//! `TokenResponse`. Demo mode lets a seeded population drift slowly.
//!
//! With the `faults` feature (tests, benches and examples only; never the product) tests also
//! script faults, down to a sabotaged socket, and read back every request the fake received.
//! Without it the fake keeps no record of requests, so a demo that runs for days stays flat.

mod account;
mod demo;
mod demo_logins;
mod evolution;
#[cfg(feature = "faults")]
mod fault;
mod handler;
mod logins;
mod pagination;
mod tokens;
#[cfg(feature = "faults")]
mod transport;
mod user;
mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use account::{FakeAccount, FakeToken, FakeTokenIssuer, rfc3339};
#[cfg(feature = "faults")]
pub use fault::Fault;
pub use logins::FakeLogin;
pub use user::{
    ADMINISTRATORS, DEFAULT_CLIENT, ENGINEERS, FakeGroup, FakeUser, IAM_GROUPS, PURGE_API, PURGE_API_WEB, USERS,
};

#[cfg(feature = "faults")]
use fault::FaultPlan;

/// How long a stopping server waits for requests in flight (a scripted `Delay` may be long).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The path of the users endpoint (the only one scripted faults apply to).
pub const USERS_PATH: &str = "/iam/users";
/// The path of the account endpoint.
pub const ACCOUNT_PATH: &str = "/iam/clients/me";
/// The path of the login log.
pub const LOGINS_PATH: &str = "/iam/activity_log/logins";

/// One request the fake received on one of its endpoints.
#[cfg(feature = "faults")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// The path: [`USERS_PATH`], [`ACCOUNT_PATH`] or `/iam/v2/clients/<id>/tokens` (as sent,
    /// whatever the id).
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// Whether the Authorization header carried the right key.
    pub authorized: bool,
    /// The Host header.
    pub host: Option<String>,
    /// The Authorization header as sent (tests check the client sends the key it was given).
    pub authorization: Option<String>,
}

/// The fake IAM API. Clones share one state, so a test keeps a clone to script faults and
/// change users, the account or the tokens while the server runs.
///
/// A request to `/iam/users` is handled in this order (faults and the record exist only with the
/// `faults` feature):
/// 1. it is recorded, whatever happens next;
/// 2. a method other than GET gets 405 (no fault is consumed);
/// 3. the next fault is taken: the first queued one, else the persistent one;
/// 4. `Delay` sleeps; `Status`, `MalformedJson`, `HtmlOk` and `RedirectTo` are answered
///    instead, without checking the key (a throttling proxy answers before auth does);
/// 5. a missing or wrong key gets 401, a bad `limit`/`offset` gets 400;
/// 6. the users are listed, shaped by `OversizedPage`, `DuplicateFirstUser`, `CountDelta` or
///    `EmptyPage`;
/// 7. `TruncatedBody` and `ConnectionReset` spoil the delivery of whatever answer step 5 or 6
///    produced.
///
/// Scripted faults apply to `/iam/users` only. `/iam/clients/me` and
/// `/iam/v2/clients/{clientId}/tokens` are recorded too, then: a method other than GET gets 405;
/// a missing or wrong key 401; on the tokens endpoint, 403 while
/// [`set_tokens_forbidden`](Self::set_tokens_forbidden) is on (a key that is not an
/// administrator's), 404 for a `clientId` other than the account's, 400 for a bad query; then
/// the account, or the bare array of tokens. `/iam/activity_log/logins` is recorded, then 405,
/// 401, the 403 or 404 a test switched on, 400 for a bad query, then a page of the log.
#[derive(Clone)]
pub struct FakeApi {
    shared: Arc<Shared>,
}

struct Shared {
    api_key: String,
    /// Swapped whole on change, so a request serializes its snapshot without holding the lock.
    users: RwLock<Arc<Vec<FakeUser>>>,
    account: RwLock<FakeAccount>,
    tokens: RwLock<Arc<Vec<FakeToken>>>,
    tokens_forbidden: AtomicBool,
    logins: Mutex<logins::LoginLog>,
    #[cfg(feature = "faults")]
    faults: Mutex<FaultPlan>,
    /// Unbounded, hence test-only.
    #[cfg(feature = "faults")]
    requests: Mutex<Vec<RecordedRequest>>,
}

impl FakeApi {
    /// A fake that accepts `api_key` and lists `users` in this order, for the account
    /// `FakeAccount::new(DEFAULT_CLIENT)` (active, with an active administrator) and no tokens.
    pub fn new(api_key: impl Into<String>, users: Vec<FakeUser>) -> Self {
        Self {
            shared: Arc::new(Shared {
                api_key: api_key.into(),
                users: RwLock::new(Arc::new(users)),
                account: RwLock::new(FakeAccount::new(DEFAULT_CLIENT)),
                tokens: RwLock::default(),
                tokens_forbidden: AtomicBool::new(false),
                logins: Mutex::default(),
                #[cfg(feature = "faults")]
                faults: Mutex::default(),
                #[cfg(feature = "faults")]
                requests: Mutex::default(),
            }),
        }
    }

    /// A realistic synthetic account of 420 users, the same for the same seed: all five
    /// groups, all user and auth types, some deleted users, some in two groups, some without
    /// name or phone, and always at least one administrator without 2FA and one user who has
    /// not confirmed the email (so the demo dashboards have something to alert on).
    ///
    /// The account (id 417203) is active with an active administrator. Its API tokens, dated
    /// relative to the moment of this call, show every finding the token alerts look for: one
    /// expiring within a day, one within 3 days, one never expiring, one issued by a deleted
    /// user, one never used, one unused for 120 days, one expired, and token 42 (the demo key
    /// `42_...` is its secret, so it is the exporter's own) expiring in 5 days. One more token,
    /// deleted, is listed only with `?deleted=false`.
    ///
    /// Its login log holds a plausible history (most users logged in within days, some never,
    /// at least two administrators not for more than 90 days); the evolution adds events to it.
    pub fn demo(api_key: impl Into<String>, seed: u64) -> Self {
        let users = demo::population(seed);
        let tokens = demo::tokens(&users, std::time::SystemTime::now());
        let api = Self::new(api_key, users);
        api.set_account(demo::account());
        api.set_tokens(tokens);
        api.push_logins(demo_logins::history(&api.users(), std::time::SystemTime::now(), &mut login_rng(seed)));
        api
    }

    /// Replaces the listed users.
    pub fn set_users(&self, users: Vec<FakeUser>) {
        *self.shared.users.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(users);
    }

    /// The listed users, in order.
    pub fn users(&self) -> Vec<FakeUser> {
        self.snapshot().as_ref().clone()
    }

    /// Replaces the account served on `/iam/clients/me`; its id is the `clientId` the tokens
    /// endpoint accepts.
    pub fn set_account(&self, account: FakeAccount) {
        *self.shared.account.write().unwrap_or_else(PoisonError::into_inner) = account;
    }

    /// The account.
    pub fn account(&self) -> FakeAccount {
        self.shared.account.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the API tokens, deleted ones included (the real API holds at most 50 per
    /// account; the fake serves any number).
    pub fn set_tokens(&self, tokens: Vec<FakeToken>) {
        *self.shared.tokens.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(tokens);
    }

    /// The API tokens, deleted ones included, in order.
    pub fn tokens(&self) -> Vec<FakeToken> {
        self.token_snapshot().as_ref().clone()
    }

    /// While on, the tokens endpoint answers 403, as for a key that is not an
    /// administrator's. `/iam/users` and `/iam/clients/me` are not affected.
    pub fn set_tokens_forbidden(&self, forbidden: bool) {
        self.shared.tokens_forbidden.store(forbidden, Ordering::Relaxed);
    }

    /// Appends events to the login log in the order they happened: the last one becomes the
    /// newest, served first.
    pub fn push_logins(&self, events: impl IntoIterator<Item = FakeLogin>) {
        lock(&self.shared.logins).push(events);
    }

    /// Appends `events` (as [`push_logins`](Self::push_logins) does) once the login log has
    /// answered `pages` more pages: a log that grows at its head while a client pages it, so
    /// that every later offset shifts.
    pub fn push_logins_after(&self, pages: u64, events: Vec<FakeLogin>) {
        lock(&self.shared.logins).push_after(pages, events);
    }

    /// The login log, oldest event first.
    pub fn logins(&self) -> Vec<FakeLogin> {
        lock(&self.shared.logins).events().to_vec()
    }

    /// While on, the login log answers 403, as for a key that may not read it.
    pub fn set_logins_forbidden(&self, forbidden: bool) {
        lock(&self.shared.logins).set_status(forbidden.then_some(axum::http::StatusCode::FORBIDDEN));
    }

    /// While on, the login log answers 404, as an API without the endpoint would.
    pub fn set_logins_not_found(&self, not_found: bool) {
        lock(&self.shared.logins).set_status(not_found.then_some(axum::http::StatusCode::NOT_FOUND));
    }

    #[cfg(feature = "faults")]
    /// Queues a fault: each queued fault is consumed by exactly one GET of `/iam/users`, FIFO.
    pub fn push_fault(&self, fault: Fault) {
        lock(&self.shared.faults).queue.push_back(fault);
    }

    #[cfg(feature = "faults")]
    /// A fault applied to every GET of `/iam/users` while the queue is empty, until cleared
    /// with `None`.
    pub fn set_persistent_fault(&self, fault: Option<Fault>) {
        lock(&self.shared.faults).persistent = fault;
    }

    #[cfg(feature = "faults")]
    /// Every request the fake received on any of its three endpoints, in order (the
    /// exporter's `gcore_iam_api_requests_total` counts the same). Paths the fake does not
    /// serve (404) are not recorded.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    #[cfg(feature = "faults")]
    /// How many requests the fake received on any of its three endpoints.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    #[cfg(feature = "faults")]
    /// The requests received on `/iam/users` only, in order.
    pub fn users_requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).iter().filter(|r| r.path == USERS_PATH).cloned().collect()
    }

    #[cfg(feature = "faults")]
    /// How many requests the fake received on `/iam/users` (the only endpoint faults apply to).
    pub fn users_request_count(&self) -> usize {
        lock(&self.shared.requests).iter().filter(|r| r.path == USERS_PATH).count()
    }

    /// The fake as a router, for `tower::ServiceExt::oneshot` or to nest elsewhere.
    pub fn router(&self) -> axum::Router {
        handler::router(self.clone())
    }

    /// Binds 127.0.0.1:`port` (0 = any free port) and serves until `shutdown` is cancelled;
    /// after that, requests in flight get a short grace period. Returns the bound address and
    /// the server task.
    pub async fn spawn(&self, port: u16, shutdown: CancellationToken) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        // With faults, each socket is wrapped so that a handler can cut or reset it.
        #[cfg(feature = "faults")]
        let server = axum::serve(
            transport::FaultListener(listener),
            self.router().into_make_service_with_connect_info::<transport::Connection>(),
        );
        #[cfg(not(feature = "faults"))]
        let server = axum::serve(listener, self.router());
        let server = server.with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let task = tokio::spawn(async move {
            let deadline = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            tokio::select! {
                result = server => {
                    if let Err(error) = result {
                        tracing::error!(%error, "fake API server failed");
                    }
                }
                () = deadline => tracing::debug!("fake API: gave up waiting for requests in flight"),
            }
        });
        tracing::debug!(%addr, "fake API listening");
        Ok((addr, task))
    }

    /// Demo mode: every `period`, one small random change (invite a user, who starts
    /// non-activated; activate one; toggle someone's 2FA; turn someone's off; delete one; add a
    /// group membership; swap an administrator for another user; now and then remove six users
    /// from the list and re-invite as many a few steps later), never leaving zero non-deleted
    /// administrators without 2FA nor zero non-activated users.
    /// The sequence is the same for the same seed and starting users. Each period also adds to
    /// the login log: logins by recently active users, now and then a failed one, sometimes a
    /// burst of 30 failures for one user, rarely a login by a deleted user. Stops on `shutdown`.
    pub fn spawn_evolution(&self, period: Duration, seed: u64, shutdown: CancellationToken) -> JoinHandle<()> {
        let api = self.clone();
        // A zero period would make `interval` panic; a millisecond is already a blur.
        let period = period.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut logins = login_rng(seed);
            let mut drift = evolution::Drift::default();
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = ticks.tick() => {
                        let change = api.evolve(&mut rng, &mut drift);
                        tracing::debug!(?change, "fake API: users changed");
                        api.evolve_logins(&mut logins);
                    }
                }
            }
        })
    }

    fn evolve(&self, rng: &mut StdRng, drift: &mut evolution::Drift) -> evolution::Change {
        let mut guard = self.shared.users.write().unwrap_or_else(PoisonError::into_inner);
        // Copies the list only if a request is still serializing the old snapshot.
        evolution::step(Arc::make_mut(&mut guard), rng, drift)
    }

    /// The demo's login events of one step (kept apart from [`Self::evolve`], the users' side).
    fn evolve_logins(&self, rng: &mut StdRng) {
        let users = self.snapshot();
        let change = demo_logins::step(&users, &mut lock(&self.shared.logins), std::time::SystemTime::now(), rng);
        tracing::debug!(?change, "fake API: login log grew");
    }

    pub(crate) fn answer_logins(&self, uri: &axum::http::Uri) -> (axum::http::StatusCode, String) {
        lock(&self.shared.logins).answer(uri)
    }

    fn snapshot(&self) -> Arc<Vec<FakeUser>> {
        Arc::clone(&self.shared.users.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn token_snapshot(&self) -> Arc<Vec<FakeToken>> {
        Arc::clone(&self.shared.tokens.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn tokens_forbidden(&self) -> bool {
        self.shared.tokens_forbidden.load(Ordering::Relaxed)
    }

    /// The user the key belongs to, as `currentUser`: the issuer of the token whose id is the
    /// key's prefix (`42_...` or `42$...`), else the first user listed, else 0.
    fn current_user(&self) -> u64 {
        let key_id = self.shared.api_key.split(['_', '$']).next().and_then(|id| id.parse::<u64>().ok());
        let issuer = key_id.and_then(|id| self.token_snapshot().iter().find(|t| t.id == id).map(|t| t.issuer.user_id));
        issuer.or_else(|| self.snapshot().first().map(|u| u.id)).unwrap_or(0)
    }

    #[cfg(feature = "faults")]
    fn next_fault(&self) -> Option<Fault> {
        lock(&self.shared.faults).next()
    }

    #[cfg(feature = "faults")]
    fn record(&self, request: RecordedRequest) {
        lock(&self.shared.requests).push(request);
    }

    /// Whether an Authorization header value carries our key: `APIKey <key>`, the scheme word
    /// in any case, as the API documents (`apikey 1234$abcdef`).
    fn accepts(&self, authorization: &str) -> bool {
        authorization
            .split_once(' ')
            .is_some_and(|(scheme, key)| scheme.eq_ignore_ascii_case("apikey") && key == self.shared.api_key)
    }
}

/// Hand-written so that the key never reaches a log line.
impl std::fmt::Debug for FakeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("FakeApi");
        debug.field("users", &self.snapshot().len()).field("tokens", &self.token_snapshot().len());
        #[cfg(feature = "faults")]
        debug.field("requests", &self.request_count());
        debug.finish_non_exhaustive()
    }
}

/// The login log's random draws, apart from the users' so that their sequence for a seed
/// does not depend on the login log.
fn login_rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ 0x6c6f_6769_6e73)
}

/// A panicking test must not turn every later request into a second panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
