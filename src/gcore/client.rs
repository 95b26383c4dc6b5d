//! Lists every user of one account: `GET /iam/users` page by page, with the only retry loop
//! of the program.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use tokio::time::Instant;
use tracing::debug;
use url::Url;

use super::error::{FetchError, RequestResult};
use super::retry::{RetryPolicy, is_retryable_status, retry_after};
use super::wire::{PageSummary, parse_page};
use crate::config::ClientSettings;
use crate::secret::ApiKey;
use crate::snapshot::{Snapshot, UserAggregator};

const USER_AGENT: &str = concat!("gcore-iam-exporter/", env!("CARGO_PKG_VERSION"));

/// Pages beyond what the first `count` announced that a poll may still fetch, in case users are
/// added while it runs. Past `2 × announced + slack` the poll gives up instead of looping.
const EXTRA_PAGES: u64 = 10;

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

/// A client of one account's API endpoint.
#[derive(Debug, Clone)]
pub struct GcoreClient {
    http: reqwest::Client,
    users_url: Url,
    page_size: u32,
    retry: RetryPolicy,
    max_response_bytes: u64,
}

/// A failed attempt, and whether another one may help.
struct AttemptError {
    error: FetchError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl AttemptError {
    fn fatal(error: FetchError) -> Self {
        AttemptError { error, retryable: false, retry_after: None }
    }
}

impl GcoreClient {
    pub fn new(http: reqwest::Client, base_url: &Url, settings: &ClientSettings) -> Self {
        // `join` replaces the last path segment unless the base ends with a slash.
        let mut base = base_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        GcoreClient {
            http,
            users_url: base.join("iam/users").expect("a relative path joins onto an http(s) URL"),
            page_size: settings.page_size.get(),
            retry: RetryPolicy::new(settings.max_retries),
            max_response_bytes: settings.max_response_bytes,
        }
    }

    /// Replaces the retry policy (tests shorten the backoff).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Lists every user and returns their counts. `on_request` is told the result of every HTTP
    /// request, retries included. Gives up at `deadline`.
    pub async fn fetch_users(
        &self,
        key: &ApiKey,
        deadline: Instant,
        on_request: &(dyn Fn(RequestResult) + Send + Sync),
    ) -> Result<Snapshot, FetchError> {
        let budget = deadline.saturating_duration_since(Instant::now());
        let mut auth = HeaderValue::from_str(&format!("APIKey {}", key.expose()))
            .expect("ApiKey::parse admits only header-safe characters");
        auth.set_sensitive(true);

        let mut aggregator = UserAggregator::new();
        let mut offset = 0u64;
        let mut pages = 0u64;
        let mut max_pages = None;
        let mut reported;
        loop {
            let page =
                match tokio::time::timeout_at(deadline, self.fetch_page(&auth, offset, &mut aggregator, on_request))
                    .await
                {
                    Ok(page) => page?,
                    Err(_) => return Err(FetchError::Deadline(budget)),
                };
            pages += 1;
            let Some(count) = page.count else {
                // A bare array holds every user: there is no next page.
                reported = aggregator.fetched();
                break;
            };
            reported = count;
            let max_pages = *max_pages.get_or_insert(2 * count.div_ceil(u64::from(self.page_size)) + EXTRA_PAGES);
            offset += page.results;
            if page.results == 0 || offset >= count {
                break;
            }
            if pages >= max_pages {
                return Err(FetchError::Incomplete { pages, count });
            }
        }
        if aggregator.duplicates() > 0 {
            debug!(duplicates = aggregator.duplicates(), "users seen on more than one page were counted once");
        }
        Ok(aggregator.finish(reported))
    }

    /// One page, retried as the SDKs do.
    async fn fetch_page(
        &self,
        auth: &HeaderValue,
        offset: u64,
        aggregator: &mut UserAggregator,
        on_request: &(dyn Fn(RequestResult) + Send + Sync),
    ) -> Result<PageSummary, FetchError> {
        let mut retry = 0;
        loop {
            match self.attempt(auth, offset, aggregator).await {
                Ok(page) => {
                    on_request(RequestResult::Ok);
                    return Ok(page);
                }
                Err(failure) => {
                    on_request(RequestResult::Failed(failure.error.reason()));
                    if !failure.retryable || retry >= self.retry.max_retries {
                        return Err(failure.error);
                    }
                    let wait = self.retry.delay(retry, failure.retry_after);
                    debug!(offset, retry = retry + 1, wait_ms = wait.as_millis() as u64, error = %failure.error, "retrying");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
            }
        }
    }

    /// One HTTP request for one page. Users are counted only once the whole body is in, so an
    /// attempt that breaks off leaves the aggregator untouched and can be retried.
    async fn attempt(
        &self,
        auth: &HeaderValue,
        offset: u64,
        aggregator: &mut UserAggregator,
    ) -> Result<PageSummary, AttemptError> {
        let mut url = self.users_url.clone();
        url.query_pairs_mut()
            .append_pair("limit", &self.page_size.to_string())
            .append_pair("offset", &offset.to_string());
        let response = self
            .http
            .get(url)
            .header(AUTHORIZATION, auth.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport_error)?;

        let status = response.status();
        if !status.is_success() {
            return Err(status_error(status, response.headers()));
        }
        let body = self.read_body(response).await?;
        parse_page(&body, aggregator)
            .map_err(|e| AttemptError::fatal(FetchError::Decode { offset, detail: describe_decode_error(&e, &body) }))
    }

    /// Reads a body, refusing it as soon as it passes the size limit.
    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, AttemptError> {
        let limit = self.max_response_bytes;
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(AttemptError::fatal(FetchError::TooLarge(limit)));
        }
        let mut body = Vec::with_capacity(response.content_length().unwrap_or(0).min(limit) as usize);
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(AttemptError::fatal(FetchError::TooLarge(limit)));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
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
    let fetch_error = if error.is_timeout() { FetchError::Timeout } else { FetchError::Connect(error_chain(&error)) };
    AttemptError { error: fetch_error, retryable: true, retry_after: None }
}

/// reqwest keeps the useful part ("connection refused", "unexpected EOF") in its sources.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Says what came instead of JSON (an HTML error page from a proxy is the usual case) without
/// copying the body, which may hold personal data, into the log.
fn describe_decode_error(error: &serde_json::Error, body: &[u8]) -> String {
    let looks_like_html = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
    if looks_like_html {
        format!("received HTML, not JSON ({} bytes)", body.len())
    } else {
        format!("{error} ({} bytes)", body.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcore::Reason;

    #[test]
    fn users_url_keeps_a_base_path() {
        let settings = ClientSettings {
            page_size: std::num::NonZeroU32::new(10).unwrap(),
            request_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            max_retries: 0,
            max_response_bytes: 1 << 20,
            concurrency: std::num::NonZeroU32::new(1).unwrap(),
        };
        let http = reqwest::Client::new();
        for (base, expected) in [
            ("https://api.gcore.com", "https://api.gcore.com/iam/users"),
            ("https://api.gcore.com/", "https://api.gcore.com/iam/users"),
            ("http://127.0.0.1:8080/proxy", "http://127.0.0.1:8080/proxy/iam/users"),
        ] {
            let client = GcoreClient::new(http.clone(), &Url::parse(base).unwrap(), &settings);
            assert_eq!(client.users_url.as_str(), expected);
        }
    }

    #[test]
    fn html_bodies_are_described_not_copied() {
        let body = b"<html>secret@example.com</html>";
        let e = serde_json::from_slice::<serde_json::Value>(body).unwrap_err();
        let text = describe_decode_error(&e, body);
        assert!(text.contains("HTML") && !text.contains("secret@example.com"), "{text}");
    }

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
}
