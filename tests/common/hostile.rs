//! A hostile Gcore IAM API: an HTTP server that answers as a broken or malicious API (or a
//! proxy in front of it) would, one [`Attack`] at a time, switchable while the exporter runs.
//! It serves a small, well-behaved account ([`Attack::None`]) until told otherwise, so that a
//! test can check that the last good numbers survive the attack.
//!
//! It counts the requests of every poll (a poll starts with a request at offset 0) and records
//! every `Authorization` header that reaches a second listener, the "other host" that redirects
//! point to, so that a test can prove the key never left the configured host.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// The key the hostile API accepts; any other gets 401.
pub const KEY: &str = "42_hostilesecretkeyvalue";

/// Users of the well-behaved account, and the numbers a test expects from it.
pub const GOOD_USERS: u64 = 25;

/// What the API does to the exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attack {
    /// A well-behaved account of [`GOOD_USERS`] users.
    None,
    /// Every answer is `status` with a `Retry-After` (or `Retry-After-Ms`) too large for a
    /// `Duration`.
    HugeRetryAfter { status: u16, header: &'static str, value: &'static str },
    /// The same page of users at every offset, with a `count` of 10^12.
    SameUsersEveryOffset,
    /// Fresh users with ids spread over the 64-bit range at every offset, with a `count` of
    /// 10^12: an endless account.
    FreshSparseIds,
    /// `users` users, paged correctly, but no `count` in the envelope.
    NoCount { users: u64 },
    /// One user whose `groups` and `auth_types` lists fill about `bytes` bytes.
    HugeLists { bytes: usize },
    /// The well-behaved users, and a token list of about `bytes` bytes.
    HugeTokenList { bytes: usize },
    /// A redirect to the second listener, which records what reaches it.
    RedirectElsewhere,
    /// An HTML error page with status 200, as a misconfigured proxy sends.
    HtmlPage,
    /// The users are fine, but the account endpoint answers 500.
    AccountFailing,
    /// The page at offset 10 repeats the first page's users: a poll succeeds with fewer
    /// distinct users than `count` (as when the list shifts while it is paged).
    RepeatedSecondPage,
}

#[derive(Debug, Default)]
struct Tally {
    /// Requests of each poll of the users list, in order.
    polls: Vec<u64>,
    /// Requests that reached this API, any path.
    requests: u64,
    /// `Authorization` headers received by the other host.
    leaked: Vec<String>,
}

/// The running hostile API.
#[derive(Clone)]
pub struct HostileApi {
    attack: Arc<Mutex<Attack>>,
    tally: Arc<Mutex<Tally>>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The other host redirects point to.
    pub elsewhere: SocketAddr,
}

#[derive(Deserialize)]
struct Page {
    limit: Option<u64>,
    offset: Option<u64>,
}

impl HostileApi {
    /// Starts both listeners on loopback port 0; they stop with `shutdown`.
    pub async fn start(shutdown: &CancellationToken) -> HostileApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = HostileApi {
            attack: Arc::new(Mutex::new(Attack::None)),
            tally: Arc::default(),
            addr: listener.local_addr().unwrap(),
            elsewhere: other.local_addr().unwrap(),
        };
        let app = Router::new()
            .route("/iam/users", get(users))
            .route("/iam/clients/me", get(account))
            .route("/iam/v2/clients/{id}/tokens", get(tokens))
            .with_state(api.clone());
        let elsewhere = Router::new().fallback(record_leak).with_state(api.clone());
        for (listener, app) in [(listener, app), (other, elsewhere)] {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await.unwrap();
            });
        }
        api
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, attack: Attack) {
        *self.attack.lock().unwrap() = attack;
    }

    /// Requests of each poll of the users list so far (the last one may be under way).
    pub fn polls(&self) -> Vec<u64> {
        self.tally.lock().unwrap().polls.clone()
    }

    /// Every request received so far.
    pub fn requests(&self) -> u64 {
        self.tally.lock().unwrap().requests
    }

    /// `Authorization` headers that reached the other host.
    pub fn leaked(&self) -> Vec<String> {
        self.tally.lock().unwrap().leaked.clone()
    }

    fn attack(&self) -> Attack {
        self.attack.lock().unwrap().clone()
    }

    /// Counts a request; `None` when its key is the right one.
    fn admit(&self, headers: &HeaderMap, offset: Option<u64>) -> Option<Response> {
        let mut tally = self.tally.lock().unwrap();
        tally.requests += 1;
        match (offset, tally.polls.last_mut()) {
            (Some(0), _) | (Some(_), None) => tally.polls.push(1),
            (Some(_), Some(last)) => *last += 1,
            (None, _) => {}
        }
        let expected = format!("APIKey {KEY}");
        let authorized = headers.get(header::AUTHORIZATION).is_some_and(|v| v.as_bytes() == expected.as_bytes());
        (!authorized).then(|| StatusCode::UNAUTHORIZED.into_response())
    }
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A user of the well-behaved account: every third without 2FA, every fifth an administrator.
fn user_json(id: u64) -> String {
    let group =
        if id.is_multiple_of(5) { r#"{"id": 1, "name": "Administrators"}"# } else { r#"{"id": 2, "name": "Users"}"# };
    format!(
        r#"{{"id": {id}, "name": "User {id}", "email": "user{id}@example.com", "deleted": false, "activated": true,
        "two_fa": {}, "sso_auth": false, "user_type": "common", "is_active": true, "auth_types": ["password"],
        "groups": [{group}], "lang": "en", "phone": null, "company": "Acme", "reseller": 1, "client": 7}}"#,
        !id.is_multiple_of(3)
    )
}

fn envelope(count: Option<u64>, users: impl Iterator<Item = u64>) -> String {
    let results: Vec<String> = users.map(user_json).collect();
    let count = count.map(|c| format!(r#""count": {c}, "#)).unwrap_or_default();
    format!(r#"{{{count}"next": null, "previous": null, "results": [{}]}}"#, results.join(","))
}

/// The well-behaved account's page at `offset`.
fn good_page(limit: u64, offset: u64, users: u64, with_count: bool) -> String {
    let end = offset.saturating_add(limit).min(users);
    let start = offset.min(end);
    envelope(with_count.then_some(users), (start..end).map(|i| i + 1))
}

/// An id spread over the 64-bit range (a 64-bit mix of the place in the list).
fn sparse_id(place: u64) -> u64 {
    let mut x = place.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

async fn users(State(api): State<HostileApi>, Query(page): Query<Page>, headers: HeaderMap) -> Response {
    let offset = page.offset.unwrap_or(0);
    if let Some(refused) = api.admit(&headers, Some(offset)) {
        return refused;
    }
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    match api.attack() {
        Attack::None | Attack::HugeTokenList { .. } | Attack::AccountFailing => {
            json(good_page(limit, offset, GOOD_USERS, true))
        }
        Attack::RepeatedSecondPage if offset == 10 => json(good_page(limit, 0, GOOD_USERS, true)),
        Attack::RepeatedSecondPage => json(good_page(limit, offset, GOOD_USERS, true)),
        Attack::HugeRetryAfter { status, header, value } => {
            let status = StatusCode::from_u16(status).unwrap();
            (status, [(header, value)], "slow down").into_response()
        }
        Attack::SameUsersEveryOffset => json(envelope(Some(1_000_000_000_000), 1..=limit)),
        Attack::FreshSparseIds => {
            let results: Vec<String> = (offset..offset + limit)
                .map(|place| format!(r#"{{"id": {}, "two_fa": true}}"#, sparse_id(place)))
                .collect();
            json(format!(r#"{{"count": 1000000000000, "results": [{}]}}"#, results.join(",")))
        }
        Attack::NoCount { users } => json(good_page(limit, offset, users, false)),
        Attack::HugeLists { bytes } => {
            if offset > 0 {
                return json(envelope(Some(1), std::iter::empty()));
            }
            let group = r#"{"id": 7, "name": "g"},"#;
            let groups = group.repeat(bytes / 2 / group.len());
            let auth = r#""password","#;
            let auths = auth.repeat(bytes / 2 / auth.len());
            json(format!(
                r#"{{"count": 1, "results": [{{"id": 1, "two_fa": false, "groups": [{}], "auth_types": [{}]}}]}}"#,
                groups.trim_end_matches(','),
                auths.trim_end_matches(',')
            ))
        }
        Attack::RedirectElsewhere => {
            let location = format!("http://{}/iam/users?limit={limit}&offset={offset}", api.elsewhere);
            (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response()
        }
        Attack::HtmlPage => {
            ([(header::CONTENT_TYPE, "text/html")], "<html><body>502 Bad Gateway</body></html>").into_response()
        }
    }
}

async fn account(State(api): State<HostileApi>, headers: HeaderMap) -> Response {
    if let Some(refused) = api.admit(&headers, None) {
        return refused;
    }
    if api.attack() == Attack::AccountFailing {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no account today").into_response();
    }
    json(r#"{"id": 7, "status": "active", "has_active_admin": true}"#.to_string())
}

async fn tokens(State(api): State<HostileApi>, headers: HeaderMap) -> Response {
    if let Some(refused) = api.admit(&headers, None) {
        return refused;
    }
    let token = |id: u64| {
        format!(
            r#"{{"id": {id}, "name": "token {id}", "exp_date": null, "expired": false, "deleted": false, "last_usage": null,
            "client_user": {{"deleted": false, "role": {{"id": 1, "name": "Administrators"}}}}}}"#
        )
    };
    let count = match api.attack() {
        Attack::HugeTokenList { bytes } => bytes / token(100_000).len(),
        _ => 3,
    };
    let tokens: Vec<String> = (1..=count as u64).map(token).collect();
    json(format!("[{}]", tokens.join(",")))
}

async fn record_leak(State(api): State<HostileApi>, headers: HeaderMap) -> Response {
    let auth = headers.get(header::AUTHORIZATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    api.tally.lock().unwrap().leaked.push(auth.unwrap_or_default());
    json(envelope(Some(0), std::iter::empty()))
}
