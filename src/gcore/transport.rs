//! One request to the API: the HTTP client, the only retry loop of the program, the size limit
//! of an answer, and the accounting of every request sent (so that `gcore_iam_api_requests_total`
//! counts what the API received, including requests abandoned in flight).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use tokio::time::Instant;
use tracing::debug;
use url::Url;

use super::error::{FetchError, RequestResult};
use super::retry::{RetryPolicy, is_retryable_status, retry_after};
use crate::config::ClientSettings;
use crate::secret::ApiKey;

const USER_AGENT: &str = concat!("gcore-iam-exporter/", env!("CARGO_PKG_VERSION"));

/// The callback told the result of every HTTP request.
pub type OnRequest<'a> = &'a (dyn Fn(RequestResult) + Send + Sync);

/// The one `reqwest::Client` of the process, shared by every account (connection pools and
/// TLS sessions are reused). Redirects are not followed: a redirect to another host would
/// otherwise be a way to make the exporter send its key elsewhere.
pub fn build_http_client(settings: &ClientSettings) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
}

/// GETs of one account's endpoint: retried as the SDKs do, bodies bounded in size.
#[derive(Debug, Clone)]
pub struct Transport {
    http: reqwest::Client,
    retry: RetryPolicy,
    max_response_bytes: u64,
}

/// A body received whole, and the result of its request, still to be told once the body has
/// been read (`ok`, or `decode` when it is not what the API documents).
pub struct Received<'a> {
    pub body: Bytes,
    pub outcome: Outcome<'a>,
}

/// The result of one request, to be told exactly once. Dropped untold (the poll was abandoned
/// while the request was in flight, or before its body was read), it counts as `cancelled`:
/// the API may have received and answered it all the same.
#[must_use = "an untold outcome counts as cancelled"]
pub struct Outcome<'a> {
    on_request: OnRequest<'a>,
    told: bool,
}

impl<'a> Outcome<'a> {
    fn new(on_request: OnRequest<'a>) -> Self {
        Outcome { on_request, told: false }
    }

    /// Tells the request's result.
    pub fn tell(mut self, result: RequestResult) {
        self.told = true;
        (self.on_request)(result);
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if !self.told {
            (self.on_request)(RequestResult::Cancelled);
        }
    }
}

/// A failed attempt, and whether another one may help.
struct AttemptError {
    error: FetchError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Transport {
    pub fn new(http: reqwest::Client, settings: &ClientSettings) -> Self {
        Transport {
            http,
            retry: RetryPolicy::new(settings.max_retries),
            max_response_bytes: settings.max_response_bytes,
        }
    }

    /// Replaces the retry policy (tests shorten the backoff).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// A GET whose body is read whole, retried as the SDKs do: the only retry loop of the
    /// program. Failed attempts are told here; the caller tells the final result once it has
    /// read the body.
    pub async fn get<'a>(
        &self,
        auth: &HeaderValue,
        url: Url,
        on_request: OnRequest<'a>,
    ) -> Result<Received<'a>, FetchError> {
        let mut retry = 0;
        loop {
            let outcome = Outcome::new(on_request);
            match self.attempt(auth, url.clone()).await {
                Ok(body) => return Ok(Received { body, outcome }),
                Err(failure) => {
                    outcome.tell(RequestResult::Failed(failure.error.reason()));
                    if !failure.retryable || retry >= self.retry.max_retries {
                        return Err(failure.error);
                    }
                    let wait = self.retry.delay(retry, failure.retry_after);
                    debug!(path = url.path(), retry = retry + 1, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        error = %crate::error_chain::Chain(&failure.error), "retrying");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
            }
        }
    }

    /// One HTTP request, its body read whole (users are counted only once the whole body is
    /// in, so an attempt that breaks off counts nothing and can be retried).
    async fn attempt(&self, auth: &HeaderValue, url: Url) -> Result<Bytes, AttemptError> {
        let response = self
            .http
            .get(url)
            .header(AUTHORIZATION, auth.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(status, response.headers()));
        }
        read_body(response, self.max_response_bytes).await.map_err(|error| {
            let retryable = !matches!(error, FetchError::TooLarge(_));
            AttemptError { error, retryable, retry_after: None }
        })
    }
}

/// Reads a body whole, refusing it as soon as it passes `limit` bytes (before reading it when
/// its `Content-Length` already says so). A body that arrives in one chunk is kept as it came
/// (a page usually does). Otherwise each chunk is copied into one buffer as it arrives and then
/// dropped, the buffer sized from `Content-Length` when the server sent one: collecting the
/// chunks first and joining them at the end kept the transport's read buffers alive beside the
/// copy, some 3.7 times the answer's size at the peak. Public so that the load benchmark's
/// download-only reference reads bodies the same way.
pub async fn read_body(response: reqwest::Response, limit: u64) -> Result<Bytes, FetchError> {
    let announced = response.content_length();
    if announced.is_some_and(|len| len > limit) {
        return Err(FetchError::TooLarge(limit));
    }
    let limit_bytes = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut body = Limited::new(reqwest::Body::from(response), limit_bytes);
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame.map_err(|error| body_error(error, limit))?.into_data() else { continue };
        if chunk.is_empty() {
            continue;
        }
        match first.take() {
            None if joined.is_empty() => first = Some(chunk),
            None => joined.extend_from_slice(&chunk),
            Some(earlier) => {
                let expected = announced.and_then(|len| usize::try_from(len).ok()).unwrap_or(0);
                joined.reserve(expected.max(earlier.len() + chunk.len()));
                joined.extend_from_slice(&earlier);
                joined.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

/// What went wrong while a body was read: past the limit, or the transport.
fn body_error(error: Box<dyn std::error::Error + Send + Sync>, limit: u64) -> FetchError {
    if error.is::<LengthLimitError>() {
        return FetchError::TooLarge(limit);
    }
    match error.downcast::<reqwest::Error>() {
        Ok(error) if error.is_timeout() => FetchError::Timeout,
        Ok(error) => FetchError::Connect(error),
        Err(other) => FetchError::Connect(other),
    }
}

/// The `Authorization` header, marked sensitive so that no debug output of a request shows it.
/// `None` cannot happen for a key that [`ApiKey::parse`] admitted (it admits only header-safe
/// characters); it is an error rather than a panic all the same.
pub fn auth_header(key: &ApiKey) -> Option<HeaderValue> {
    let mut auth = HeaderValue::from_str(&format!("APIKey {}", key.expose())).ok()?;
    auth.set_sensitive(true);
    Some(auth)
}

/// Runs `work` until `deadline`, the end of the poll's time budget.
pub async fn within<T>(deadline: Instant, work: impl Future<Output = Result<T, FetchError>>) -> Result<T, FetchError> {
    let budget = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout_at(deadline, work).await.unwrap_or(Err(FetchError::Deadline(budget)))
}

fn status_error(status: StatusCode, headers: &reqwest::header::HeaderMap) -> AttemptError {
    let error = match status.as_u16() {
        401 => FetchError::Unauthorized,
        403 => FetchError::Forbidden,
        429 => FetchError::RateLimited,
        s @ 300..=399 => FetchError::Redirect(s),
        s if status.is_server_error() => FetchError::Server(s),
        s => FetchError::Client(s),
    };
    AttemptError { error, retryable: is_retryable_status(status), retry_after: retry_after(headers) }
}

/// Connection failures and timeouts are worth another try, as in the SDKs.
fn transport_error(error: reqwest::Error) -> AttemptError {
    let fetch_error = if error.is_timeout() { FetchError::Timeout } else { FetchError::Connect(Box::new(error)) };
    AttemptError { error: fetch_error, retryable: true, retry_after: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcore::Reason;

    #[test]
    fn reasons_of_statuses() {
        let h = reqwest::header::HeaderMap::new();
        let reason = |s: u16| status_error(StatusCode::from_u16(s).unwrap(), &h);
        assert_eq!(reason(401).error.reason(), Reason::Unauthorized);
        assert!(!reason(401).retryable);
        assert_eq!(reason(403).error.reason(), Reason::Forbidden);
        assert!(!reason(403).retryable);
        assert_eq!(reason(429).error.reason(), Reason::RateLimited);
        assert!(reason(429).retryable);
        assert_eq!(reason(503).error.reason(), Reason::ServerError);
        assert!(reason(503).retryable);
        assert_eq!(reason(302).error.reason(), Reason::Redirect);
        assert_eq!(reason(404).error.reason(), Reason::ClientError);
        assert!(!reason(404).retryable);
    }

    #[test]
    fn an_outcome_dropped_untold_counts_as_cancelled() {
        let told = std::sync::Mutex::new(Vec::new());
        let on_request = |r: RequestResult| told.lock().unwrap().push(r);
        Outcome::new(&on_request).tell(RequestResult::Ok);
        drop(Outcome::new(&on_request));
        assert_eq!(*told.lock().unwrap(), [RequestResult::Ok, RequestResult::Cancelled]);
    }
}
