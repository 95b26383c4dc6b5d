//! Basic auth with bcrypt hashes, and the extra response headers of the web config.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
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

/// Verifies `Authorization: Basic` credentials against bcrypt hashes.
#[derive(Debug)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// Hashes of (user, password) pairs that verified; the keys are random per process, so the
    /// set reveals nothing and cannot be precomputed against.
    verified: Mutex<HashSet<u64>>,
    hasher: RandomState,
    /// bcrypt is deliberately slow: at most two verifications at once, so a flood of wrong
    /// passwords costs bounded CPU.
    slots: Semaphore,
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> Self {
        BasicAuth { users, verified: Mutex::new(HashSet::new()), hasher: RandomState::new(), slots: Semaphore::new(2) }
    }

    /// Whether the header carries the credentials of a configured user.
    pub async fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else { return false };
        let key = self.hasher.hash_one((&user, &password));
        if self.verified.lock().unwrap_or_else(|p| p.into_inner()).contains(&key) {
            return true;
        }
        // An unknown user is checked against a real hash too, so that timing does not tell
        // which user names exist.
        let known = self.users.contains_key(&user);
        let Some(hash) = self.users.get(&user).or_else(|| self.users.values().next()).cloned() else { return false };
        let Ok(_slot) = self.slots.acquire().await else { return false };
        let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        let ok = known && matches;
        if ok {
            let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if verified.len() >= CACHE_SIZE {
                verified.clear();
            }
            verified.insert(key);
        }
        ok
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

/// Middleware: 401 without valid credentials, except on the probe paths.
pub async fn require_basic_auth(State(auth): State<Arc<BasicAuth>>, request: Request, next: Next) -> Response {
    if UNAUTHENTICATED_PATHS.contains(&request.uri().path())
        || auth.check(request.headers().get(header::AUTHORIZATION)).await
    {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"gcore-iam-exporter\""))],
        "Unauthorized\n",
    )
        .into_response()
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

    #[tokio::test]
    async fn verifies_and_caches() {
        let auth = BasicAuth::new([("prometheus".to_string(), bcrypt::hash("s3cret", 4).unwrap())].into());
        assert!(auth.check(Some(&basic("prometheus", "s3cret"))).await);
        assert!(auth.check(Some(&basic("prometheus", "s3cret"))).await);
        assert!(!auth.check(Some(&basic("prometheus", "wrong"))).await);
        assert!(!auth.check(Some(&basic("someone", "s3cret"))).await);
        assert!(!auth.check(None).await);
        assert!(!auth.check(Some(&HeaderValue::from_static("Bearer x"))).await);
        assert!(!auth.check(Some(&HeaderValue::from_static("Basic !!!"))).await);
    }
}
