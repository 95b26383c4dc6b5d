//! Basic auth with bcrypt hashes, and the extra response headers of the web config.
//!
//! bcrypt is slow on purpose, so a flood of wrong passwords must not be able to buy it without
//! bound nor make a real login queue behind it. Results are remembered both ways (as
//! exporter-toolkit does): a scrape every few seconds, or a loop on one wrong password, costs
//! no bcrypt at all. A client address that failed a login recently, or already has one being
//! verified, is a suspect: it is verified only when the one verification slot is free and a
//! small budget per second shared by all suspects allows, and otherwise gets 429 at once. A
//! client with a clean record (Prometheus, normally) thus waits at most for the verification in
//! progress, whatever the flood; and the CPU that failed logins cost is bounded by the budget plus one verification
//! per new address per [`SUSPECT_FOR`]. Both come from the same address only if the attacker
//! shares Prometheus' address, which no server can tell apart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tokio::sync::Semaphore;

/// Paths that probes reach without credentials; they reveal nothing but liveness/readiness.
pub const UNAUTHENTICATED_PATHS: [&str; 2] = ["/-/healthy", "/-/ready"];

/// Successful logins remembered, so that a scrape every few seconds does not cost a bcrypt
/// verification (tens of milliseconds) each time.
const CACHE_SIZE: usize = 64;
/// Failed (user, password) pairs remembered, so that repeating one costs nothing.
const FAILED_CACHE_SIZE: usize = 4096;
/// How long an address stays a suspect after a failed login.
pub const SUSPECT_FOR: Duration = Duration::from_secs(60);
/// Addresses remembered as suspects; past it the oldest records are forgotten.
const SUSPECTS_SIZE: usize = 16_384;
/// Verifications per second shared by all suspects (and the burst allowed).
const SUSPECT_BUDGET_PER_SECOND: f64 = 2.0;
const SUSPECT_BURST: f64 = 2.0;

/// What a login attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    /// Not verified: the address is a suspect and the budget is spent.
    Throttled,
}

/// Verifies `Authorization: Basic` credentials against bcrypt hashes.
#[derive(Debug)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// Keyed by hashes of (user, password) under per-process random keys, so that the caches
    /// reveal nothing and cannot be precomputed against.
    hasher: RandomState,
    state: Mutex<AuthState>,
    /// One verification at a time: on a small machine the other core keeps serving scrapes.
    slot: Arc<Semaphore>,
}

#[derive(Debug)]
struct AuthState {
    verified: HashSet<u64>,
    failed: HashSet<u64>,
    /// Address -> last failed login.
    suspects: HashMap<Option<IpAddr>, Instant>,
    /// Verifications started and not finished, per address.
    pending: HashMap<Option<IpAddr>, usize>,
    /// Token bucket of the suspects' verifications.
    budget: f64,
    budget_at: Instant,
    budget_per_second: f64,
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> Self {
        let state = AuthState {
            verified: HashSet::new(),
            failed: HashSet::new(),
            suspects: HashMap::new(),
            pending: HashMap::new(),
            budget: SUSPECT_BURST,
            budget_at: Instant::now(),
            budget_per_second: SUSPECT_BUDGET_PER_SECOND,
        };
        BasicAuth { users, hasher: RandomState::new(), state: Mutex::new(state), slot: Arc::new(Semaphore::new(1)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthState> {
        // No critical section can panic half-way; a poisoned lock holds consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the header carries the credentials of a configured user; `client` is the
    /// peer's address (`None` when unknown, which is then one address of its own).
    pub async fn check(&self, authorization: Option<&HeaderValue>, client: Option<IpAddr>) -> Verdict {
        let Some((user, password)) = authorization.and_then(parse_basic) else { return Verdict::Denied };
        let key = self.hasher.hash_one((&user, &password));
        let now = Instant::now();
        let suspect;
        {
            let mut state = self.lock();
            if state.verified.contains(&key) {
                return Verdict::Allowed;
            }
            if state.failed.contains(&key) {
                state.suspect(client, now);
                return Verdict::Denied;
            }
            suspect = state.is_suspect(client, now);
            if suspect && !state.take_budget(now) {
                return Verdict::Throttled;
            }
            *state.pending.entry(client).or_insert(0) += 1;
        }
        let pending = Pending { auth: self, client };
        // A suspect never queues: it is verified only if the slot is free and nobody waits for
        // it, so that a clean client waits at most for the verification in progress, even when
        // bcrypt runs slower than the budget (a machine short of CPU).
        let slot = if suspect {
            match self.slot.clone().try_acquire_owned() {
                Ok(slot) => Ok(slot),
                Err(_) => return Verdict::Throttled,
            }
        } else {
            self.slot.clone().acquire_owned().await
        };
        // An unknown user is checked against a real hash too, so that timing does not tell
        // which user names exist.
        let known = self.users.contains_key(&user);
        let hash = self.users.get(&user).or_else(|| self.users.values().next()).cloned();
        let matches = match (hash, slot) {
            // The permit goes with the work: if the client hangs up, its request is dropped but
            // the verification runs to its end, and the next one waits for it.
            (Some(hash), Ok(slot)) => tokio::task::spawn_blocking(move || {
                let _slot = slot;
                bcrypt::verify(password, &hash).unwrap_or(false)
            })
            .await
            .unwrap_or(false),
            _ => false,
        };
        drop(pending);
        let ok = known && matches;
        let mut state = self.lock();
        let (cache, size) = if ok { (&mut state.verified, CACHE_SIZE) } else { (&mut state.failed, FAILED_CACHE_SIZE) };
        if cache.len() >= size {
            cache.clear();
        }
        cache.insert(key);
        if ok {
            Verdict::Allowed
        } else {
            state.suspect(client, Instant::now());
            Verdict::Denied
        }
    }
}

impl AuthState {
    /// A recent failure, or a verification already under way: one address gets at most one
    /// verification outside the budget at a time, however many connections it opens.
    fn is_suspect(&self, client: Option<IpAddr>, now: Instant) -> bool {
        self.pending.get(&client).is_some_and(|n| *n > 0)
            || self.suspects.get(&client).is_some_and(|at| now.duration_since(*at) < SUSPECT_FOR)
    }

    fn suspect(&mut self, client: Option<IpAddr>, now: Instant) {
        if self.suspects.len() >= SUSPECTS_SIZE && !self.suspects.contains_key(&client) {
            self.suspects.retain(|_, at| now.duration_since(*at) < SUSPECT_FOR);
            if self.suspects.len() >= SUSPECTS_SIZE {
                // Only a flood from that many addresses gets here; forgetting them all costs
                // one verification each at most.
                self.suspects.clear();
            }
        }
        self.suspects.insert(client, now);
    }

    fn take_budget(&mut self, now: Instant) -> bool {
        let elapsed = now.duration_since(self.budget_at).as_secs_f64();
        self.budget = (self.budget + elapsed * self.budget_per_second).min(SUSPECT_BURST);
        self.budget_at = now;
        if self.budget >= 1.0 {
            self.budget -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A verification under way for an address; counted until dropped (also if the request is
/// dropped while it waits).
struct Pending<'a> {
    auth: &'a BasicAuth,
    client: Option<IpAddr>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let mut state = self.auth.lock();
        if let Some(n) = state.pending.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                state.pending.remove(&self.client);
            }
        }
    }
}

fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 4096 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Middleware: 401 without valid credentials (429 when the login throttle declined to check
/// them), except on the probe paths.
pub async fn require_basic_auth(State(auth): State<Arc<BasicAuth>>, request: Request, next: Next) -> Response {
    if UNAUTHENTICATED_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    match auth.check(request.headers().get(header::AUTHORIZATION), client).await {
        Verdict::Allowed => next.run(request).await,
        Verdict::Denied => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"gcore-iam-exporter\""))],
            "Unauthorized\n",
        )
            .into_response(),
        Verdict::Throttled => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
            "Too many failed logins from this address; try again later\n",
        )
            .into_response(),
    }
}

/// Middleware: adds the web config's headers to every response.
pub async fn add_headers(
    State(headers): State<Arc<Vec<(HeaderName, HeaderValue)>>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    for (name, value) in headers.iter() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    /// An authenticator whose suspects' budget never refills, so that the tests do not depend
    /// on how fast bcrypt runs.
    fn auth() -> BasicAuth {
        let auth = BasicAuth::new([("prometheus".to_string(), bcrypt::hash("s3cret", 4).unwrap())].into());
        auth.lock().budget_per_second = 0.0;
        auth
    }

    #[tokio::test]
    async fn verifies_and_caches() {
        let auth = auth();
        let right = basic("prometheus", "s3cret");
        assert_eq!(auth.check(Some(&right), ip(1)).await, Verdict::Allowed);
        assert_eq!(auth.check(Some(&right), ip(1)).await, Verdict::Allowed);
        assert_eq!(auth.check(Some(&basic("prometheus", "wrong")), ip(2)).await, Verdict::Denied);
        assert_eq!(auth.check(Some(&basic("someone", "s3cret")), ip(3)).await, Verdict::Denied);
        for malformed in [None, Some(HeaderValue::from_static("Bearer x")), Some(HeaderValue::from_static("Basic !!!"))]
        {
            assert_eq!(auth.check(malformed.as_ref(), ip(4)).await, Verdict::Denied);
        }
    }

    #[tokio::test]
    async fn a_failing_address_spends_a_bounded_budget_and_others_are_not_held_up() {
        let auth = auth();
        let attacker = ip(1);
        assert_eq!(auth.check(Some(&basic("prometheus", "guess-0")), attacker).await, Verdict::Denied);
        // Repeating a failed pair costs nothing, budget included.
        for _ in 0..10 {
            assert_eq!(auth.check(Some(&basic("prometheus", "guess-0")), attacker).await, Verdict::Denied);
        }
        // New guesses from a suspect draw on the budget (a burst of two), then are refused unchecked.
        assert_eq!(auth.check(Some(&basic("prometheus", "guess-1")), attacker).await, Verdict::Denied);
        assert_eq!(auth.check(Some(&basic("prometheus", "guess-2")), attacker).await, Verdict::Denied);
        assert_eq!(auth.check(Some(&basic("prometheus", "guess-3")), attacker).await, Verdict::Throttled);
        assert_eq!(auth.check(Some(&basic("prometheus", "s3cret")), attacker).await, Verdict::Throttled);
        // An address with a clean record is verified.
        assert_eq!(auth.check(Some(&basic("prometheus", "s3cret")), ip(2)).await, Verdict::Allowed);
        // And once verified, the pair passes from anywhere without bcrypt.
        assert_eq!(auth.check(Some(&basic("prometheus", "s3cret")), attacker).await, Verdict::Allowed);
    }

    #[tokio::test]
    async fn one_address_gets_one_verification_outside_the_budget_at_a_time() {
        let auth = Arc::new(auth());
        {
            let mut state = auth.lock();
            state.budget = 0.0;
        }
        // Hold the verification slot so that the first attempt stays pending.
        let held = auth.slot.acquire().await.unwrap();
        let first = tokio::spawn({
            let auth = auth.clone();
            async move { auth.check(Some(&basic("prometheus", "guess-a")), ip(1)).await }
        });
        while !auth.lock().pending.contains_key(&ip(1)) {
            tokio::task::yield_now().await;
        }
        assert_eq!(auth.check(Some(&basic("prometheus", "guess-b")), ip(1)).await, Verdict::Throttled);
        // Budget or not, a suspect does not queue behind the slot.
        auth.lock().budget = 2.0;
        assert_eq!(auth.check(Some(&basic("prometheus", "guess-c")), ip(1)).await, Verdict::Throttled);
        drop(held);
        assert_eq!(first.await.unwrap(), Verdict::Denied);
        assert!(auth.lock().pending.is_empty());
    }
}
