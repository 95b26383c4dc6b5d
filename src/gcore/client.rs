//! Lists every user of one account: `GET /iam/users` page by page, with the only retry loop
//! of the program.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use tokio::time::Instant;
use tracing::debug;
use url::Url;

use super::account_wire::{parse_account, parse_tokens};
use super::error::{FetchError, Reason, RequestResult};
use super::retry::{RetryPolicy, is_retryable_status, retry_after};
use super::wire::{PageSummary, parse_page};
use crate::config::ClientSettings;
use crate::credentials::{AccountInfo, TokenSnapshot};
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
    /// The base URL, ending with a slash so that paths join onto it.
    base_url: Url,
    users_url: Url,
    page_size: u32,
    /// Page requests in flight at once after the first page.
    concurrency: usize,
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

/// The callback told the result of every HTTP request.
type OnRequest<'a> = &'a (dyn Fn(RequestResult) + Send + Sync);

/// A page request in flight: its offset and the body it will bring.
type PageFuture<'a> = Pin<Box<dyn Future<Output = Result<Bytes, FetchError>> + Send + 'a>>;

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
            base_url: base.clone(),
            page_size: settings.page_size.get(),
            concurrency: settings.concurrency.get() as usize,
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
    ///
    /// The first page gives `count`; the other pages are then requested up to `concurrency` at
    /// a time and counted as they arrive (in any order: users are de-duplicated by id). If the
    /// list moved meanwhile and the pages received leave a gap before the latest `count`, the
    /// poll goes on page by page from the gap, as a sequential client would.
    pub async fn fetch_users(
        &self,
        key: &ApiKey,
        deadline: Instant,
        on_request: &(dyn Fn(RequestResult) + Send + Sync),
    ) -> Result<Snapshot, FetchError> {
        within(deadline, self.list_users(&auth_header(key), on_request)).await
    }

    /// The account (`GET /iam/clients/me`).
    pub async fn fetch_account(
        &self,
        key: &ApiKey,
        deadline: Instant,
        on_request: OnRequest<'_>,
    ) -> Result<AccountInfo, FetchError> {
        let url = self.base_url.join("iam/clients/me").expect("a relative path joins onto an http(s) URL");
        let body = within(deadline, self.get_with_retries(&auth_header(key), url, on_request)).await?;
        report_decode(parse_account(&body), "account", &body, on_request)
    }

    /// The account's API tokens (`GET /iam/v2/clients/{clientId}/tokens`; the v1 path is
    /// deprecated). `own_token` marks the token of the exporter's key.
    pub async fn fetch_tokens(
        &self,
        key: &ApiKey,
        client_id: u64,
        own_token: Option<u64>,
        deadline: Instant,
        on_request: OnRequest<'_>,
    ) -> Result<TokenSnapshot, FetchError> {
        let url = self
            .base_url
            .join(&format!("iam/v2/clients/{client_id}/tokens"))
            .expect("a relative path joins onto an http(s) URL");
        let body = within(deadline, self.get_with_retries(&auth_header(key), url, on_request)).await?;
        report_decode(parse_tokens(&body, own_token, SystemTime::now()), "token list", &body, on_request)
    }

    async fn list_users(&self, auth: &HeaderValue, on_request: OnRequest<'_>) -> Result<Snapshot, FetchError> {
        let mut aggregator = UserAggregator::new();
        let body = self.fetch_page(auth, 0, on_request).await?;
        let first = count_page(&body, 0, &mut aggregator, on_request)?;
        drop(body);
        let Some(count) = first.count else {
            // A bare array holds every user: there is no next page.
            let fetched = aggregator.fetched();
            return Ok(aggregator.finish(fetched));
        };
        let max_pages = 2 * count.div_ceil(u64::from(self.page_size)) + EXTRA_PAGES;
        let mut pages = 1u64;
        let mut coverage = Coverage::new(count, u64::from(self.page_size));
        coverage.record(0, first);

        // Planned pages, `concurrency` at a time. The stride is what the first page held, so a
        // server that caps `limit` below the page size is still paged without gaps.
        let stride = first.results.min(u64::from(self.page_size)).max(1);
        let mut next = stride;
        let mut in_flight = InFlight::default();
        loop {
            while in_flight.len() < self.concurrency
                && next < coverage.count
                && next < coverage.end
                && !coverage.whole
                && pages < max_pages
            {
                in_flight.push(next, Box::pin(self.fetch_page(auth, next, on_request)));
                pages += 1;
                next += stride;
            }
            // A failed page fails the poll; dropping `in_flight` cancels the others.
            let Some((offset, body)) = in_flight.next().await else { break };
            let page = count_page(&body?, offset, &mut aggregator, on_request)?;
            coverage.record(offset, page);
        }

        // Whatever the list's changes left uncovered, page by page from the first gap.
        while !coverage.done() {
            if pages >= max_pages {
                return Err(FetchError::Incomplete { pages, count: coverage.count });
            }
            let offset = coverage.reached;
            let body = self.fetch_page(auth, offset, on_request).await?;
            pages += 1;
            let page = count_page(&body, offset, &mut aggregator, on_request)?;
            coverage.record(offset, page);
        }

        // An empty page where the API's own count says users remain: the poll stops (no
        // endless loop) but is not published, since a third of the users would read as two
        // thirds removed, and an administrator without 2FA could vanish from the alerts.
        if !coverage.whole && coverage.reached < coverage.count {
            return Err(FetchError::EmptyPage { offset: coverage.end, count: coverage.count });
        }
        if aggregator.duplicates() > 0 {
            debug!(duplicates = aggregator.duplicates(), "users seen on more than one page were counted once");
        }
        let reported = if coverage.whole { aggregator.fetched() } else { coverage.count };
        Ok(aggregator.finish(reported))
    }

    /// One page's body, retried as the SDKs do. Failed attempts are reported here; the final
    /// result is reported once the body is parsed ([`count_page`]).
    async fn fetch_page(
        &self,
        auth: &HeaderValue,
        offset: u64,
        on_request: OnRequest<'_>,
    ) -> Result<Bytes, FetchError> {
        let mut url = self.users_url.clone();
        url.query_pairs_mut()
            .append_pair("limit", &self.page_size.to_string())
            .append_pair("offset", &offset.to_string());
        self.get_with_retries(auth, url, on_request).await
    }

    /// A GET whose body is read whole, retried as the SDKs do: the only retry loop of the
    /// program. Failed attempts are reported here; the caller reports the final result once
    /// it has parsed the body.
    async fn get_with_retries(
        &self,
        auth: &HeaderValue,
        url: Url,
        on_request: OnRequest<'_>,
    ) -> Result<Bytes, FetchError> {
        let mut retry = 0;
        loop {
            match self.attempt(auth, url.clone()).await {
                Ok(body) => return Ok(body),
                Err(failure) => {
                    on_request(RequestResult::Failed(failure.error.reason()));
                    if !failure.retryable || retry >= self.retry.max_retries {
                        return Err(failure.error);
                    }
                    let wait = self.retry.delay(retry, failure.retry_after);
                    debug!(path = url.path(), retry = retry + 1, wait_ms = wait.as_millis() as u64, error = %failure.error, "retrying");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
            }
        }
    }

    /// One HTTP request for one page, read whole (users are counted only once the whole body
    /// is in, so an attempt that breaks off counts nothing and can be retried).
    async fn attempt(&self, auth: &HeaderValue, url: Url) -> Result<Bytes, AttemptError> {
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
        self.read_body(response).await
    }

    /// Reads a body, refusing it as soon as it passes the size limit.
    async fn read_body(&self, mut response: reqwest::Response) -> Result<Bytes, AttemptError> {
        let limit = self.max_response_bytes;
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(AttemptError::fatal(FetchError::TooLarge(limit)));
        }
        let mut body = ResponseBody::default();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.received() as u64 + chunk.len() as u64 > limit {
                return Err(AttemptError::fatal(FetchError::TooLarge(limit)));
            }
            body.push(chunk);
        }
        Ok(body.into_bytes())
    }
}

/// A body being received. A body that arrives as one chunk (a page often does: the client reads
/// it in one `recvfrom`) is kept as it came; copying every page into a buffer of its own cost a
/// poll of 100,000 users about 45 MiB of copying.
/// Public so that the load benchmark's download-only reference reads bodies the same way.
#[derive(Default)]
pub enum ResponseBody {
    #[default]
    Empty,
    One(Bytes),
    Joined(Vec<u8>),
}

impl ResponseBody {
    /// Bytes received so far.
    pub fn received(&self) -> usize {
        match self {
            ResponseBody::Empty => 0,
            ResponseBody::One(chunk) => chunk.len(),
            ResponseBody::Joined(bytes) => bytes.len(),
        }
    }

    /// Appends a chunk; only a second chunk starts a copy.
    pub fn push(&mut self, chunk: Bytes) {
        *self = match std::mem::take(self) {
            ResponseBody::Empty => ResponseBody::One(chunk),
            ResponseBody::One(first) => ResponseBody::Joined([&first[..], &chunk[..]].concat()),
            ResponseBody::Joined(mut bytes) => {
                bytes.extend_from_slice(&chunk);
                ResponseBody::Joined(bytes)
            }
        };
    }

    /// The whole body.
    pub fn into_bytes(self) -> Bytes {
        match self {
            ResponseBody::Empty => Bytes::new(),
            ResponseBody::One(chunk) => chunk,
            ResponseBody::Joined(bytes) => Bytes::from(bytes),
        }
    }
}

/// Counts the users of a page body and reports the request's result: `ok`, or `decode` when
/// the body is not a users page (not retried: the same server would send the same body).
fn count_page(
    body: &[u8],
    offset: u64,
    aggregator: &mut UserAggregator,
    on_request: OnRequest<'_>,
) -> Result<PageSummary, FetchError> {
    match parse_page(body, aggregator) {
        Ok(page) => {
            on_request(RequestResult::Ok);
            Ok(page)
        }
        Err(e) => {
            let error = FetchError::Decode { offset, detail: describe_decode_error(&e, body) };
            on_request(RequestResult::Failed(error.reason()));
            Err(error)
        }
    }
}

/// Which part of the list the pages received so far cover, and where it ends.
#[derive(Debug)]
struct Coverage {
    /// The end of the pages received without a gap from offset 0.
    reached: u64,
    /// Pages received past a gap: offset → end.
    ahead: BTreeMap<u64, u64>,
    /// The `count` of the page received last.
    count: u64,
    /// The offset of the first empty page: the list ends there.
    end: u64,
    /// A page came as a bare array, which holds every user.
    whole: bool,
    /// The page size asked for.
    limit: u64,
}

impl Coverage {
    fn new(count: u64, limit: u64) -> Self {
        Coverage { reached: 0, ahead: BTreeMap::new(), count, end: u64::MAX, whole: false, limit }
    }

    /// A page is taken to cover at most `limit` places of the list: a server that sends more
    /// than asked (a repeated user, say) must not make the next offset skip anyone. Reading a
    /// few places twice costs a request; users are de-duplicated by id anyway.
    fn record(&mut self, offset: u64, page: PageSummary) {
        match page.count {
            Some(count) => self.count = count,
            None => self.whole = true,
        }
        if page.results == 0 {
            self.end = self.end.min(offset);
            return;
        }
        let end = offset + page.results.min(self.limit);
        if offset > self.reached {
            let known = self.ahead.entry(offset).or_insert(end);
            *known = (*known).max(end);
            return;
        }
        self.reached = self.reached.max(end);
        while let Some(entry) = self.ahead.first_entry() {
            if *entry.key() > self.reached {
                break;
            }
            self.reached = self.reached.max(entry.remove());
        }
    }

    fn done(&self) -> bool {
        self.whole || self.reached >= self.count || self.reached >= self.end
    }
}

/// Page requests in flight, polled together on the poll's own task: they borrow the client and
/// the callback, and their bodies are parsed one at a time into the one aggregator anyway.
/// At most `--gcore.concurrency` (≤ 32) entries, so a linear scan per wake-up is cheap.
#[derive(Default)]
struct InFlight<'a> {
    pages: Vec<(u64, PageFuture<'a>)>,
}

impl<'a> InFlight<'a> {
    fn len(&self) -> usize {
        self.pages.len()
    }

    fn push(&mut self, offset: u64, page: PageFuture<'a>) {
        self.pages.push((offset, page));
    }

    /// The next page to finish, `None` when none is in flight.
    async fn next(&mut self) -> Option<(u64, Result<Bytes, FetchError>)> {
        if self.pages.is_empty() {
            return None;
        }
        std::future::poll_fn(|cx| {
            for i in 0..self.pages.len() {
                if let Poll::Ready(body) = self.pages[i].1.as_mut().poll(cx) {
                    let (offset, _) = self.pages.swap_remove(i);
                    return Poll::Ready(Some((offset, body)));
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// The `Authorization` header, marked sensitive so that no debug output of a request shows it.
fn auth_header(key: &ApiKey) -> HeaderValue {
    let mut auth = HeaderValue::from_str(&format!("APIKey {}", key.expose()))
        .expect("ApiKey::parse admits only header-safe characters");
    auth.set_sensitive(true);
    auth
}

/// Runs `work` until `deadline`, the end of the poll's time budget.
async fn within<T>(deadline: Instant, work: impl Future<Output = Result<T, FetchError>>) -> Result<T, FetchError> {
    let budget = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout_at(deadline, work).await.unwrap_or(Err(FetchError::Deadline(budget)))
}

/// Reports the final result of a request whose body was parsed: `ok`, or `decode`.
fn report_decode<T>(
    parsed: Result<T, serde_json::Error>,
    what: &'static str,
    body: &[u8],
    on_request: OnRequest<'_>,
) -> Result<T, FetchError> {
    match parsed {
        Ok(value) => {
            on_request(RequestResult::Ok);
            Ok(value)
        }
        Err(e) => {
            on_request(RequestResult::Failed(Reason::Decode));
            Err(FetchError::DecodeBody { what, detail: describe_decode_error(&e, body) })
        }
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
fn describe_decode_error(error: &dyn std::fmt::Display, body: &[u8]) -> String {
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

    fn page(count: u64, results: u64) -> PageSummary {
        PageSummary { count: Some(count), results }
    }

    #[test]
    fn coverage_joins_pages_arriving_out_of_order() {
        let mut c = Coverage::new(40, 10);
        c.record(0, page(40, 10));
        c.record(20, page(40, 10));
        assert_eq!(c.reached, 10);
        assert!(!c.done());
        c.record(30, page(40, 10));
        c.record(10, page(40, 10));
        assert_eq!(c.reached, 40);
        assert!(c.done());
    }

    #[test]
    fn coverage_after_a_short_page_has_a_gap_and_a_newer_count() {
        let mut c = Coverage::new(30, 10);
        c.record(0, page(30, 10));
        c.record(10, page(30, 5));
        c.record(20, page(32, 10));
        assert_eq!((c.reached, c.count), (15, 32));
        c.record(15, page(32, 10));
        assert_eq!(c.reached, 30);
        assert!(!c.done(), "two users past the last planned page");
        c.record(30, page(32, 2));
        assert!(c.done());
    }

    #[test]
    fn coverage_ends_at_an_empty_page_or_a_bare_array() {
        let mut c = Coverage::new(50, 10);
        c.record(0, page(50, 10));
        c.record(20, page(50, 0));
        assert!(!c.done(), "users 10..20 are still missing");
        c.record(10, page(50, 10));
        assert!(c.done());
        let mut c = Coverage::new(50, 10);
        c.record(10, PageSummary { count: None, results: 7 });
        assert!(c.done());
    }

    #[test]
    fn a_page_longer_than_asked_covers_only_the_limit() {
        let mut c = Coverage::new(12, 3);
        c.record(0, page(12, 4));
        assert_eq!(c.reached, 3, "the next page starts at 3, so nobody is skipped");
    }

    #[test]
    fn a_body_in_one_chunk_is_not_copied() {
        let chunk = Bytes::from(vec![7u8; 1000]);
        let mut body = ResponseBody::default();
        body.push(chunk.clone());
        let kept = body.into_bytes();
        assert_eq!(kept.as_ptr(), chunk.as_ptr());
        let mut body = ResponseBody::default();
        for part in [&b"ab"[..], b"", b"cde", b"f"] {
            body.push(Bytes::copy_from_slice(part));
        }
        assert_eq!(body.received(), 6);
        assert_eq!(&body.into_bytes()[..], b"abcdef");
        assert!(ResponseBody::default().into_bytes().is_empty());
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
