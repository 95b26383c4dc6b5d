//! The Gcore client against a mock server (wiremock): pagination, the answer forms the real API
//! has, retries, and what is never retried.
#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use gcore_iam_exporter::config::ClientSettings;
use gcore_iam_exporter::gcore::retry::RetryPolicy;
use gcore_iam_exporter::gcore::{FetchError, GcoreClient, Reason, RequestResult, build_http_client};
use gcore_iam_exporter::secret::ApiKey;
use gcore_iam_exporter::snapshot::Snapshot;
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "42_mockkey";

fn user(id: u64) -> Value {
    json!({"id": id, "email": format!("u{id}@example.com"), "name": null, "lang": "en", "phone": null,
           "company": "Acme", "reseller": 1, "client": 7, "deleted": false,
           "groups": [{"id": 2, "name": "Users"}], "activated": true, "sso_auth": false, "two_fa": id.is_multiple_of(2),
           "auth_types": ["password"], "user_type": "common", "is_active": true, "client_and_roles": []})
}

fn page(count: u64, ids: impl IntoIterator<Item = u64>) -> Value {
    json!({"count": count, "next": null, "previous": null, "results": ids.into_iter().map(user).collect::<Vec<_>>()})
}

fn settings(page_size: u32) -> ClientSettings {
    ClientSettings {
        page_size: NonZeroU32::new(page_size).unwrap(),
        request_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        max_retries: 2,
        max_response_bytes: 1 << 20,
        concurrency: NonZeroU32::new(1).unwrap(),
        max_users: 1_000_000,
    }
}

fn client(server: &MockServer, page_size: u32) -> GcoreClient {
    concurrent_client(server, page_size, 1)
}

fn concurrent_client(server: &MockServer, page_size: u32, concurrency: u32) -> GcoreClient {
    let s = ClientSettings { concurrency: NonZeroU32::new(concurrency).unwrap(), ..settings(page_size) };
    let fast = RetryPolicy { initial_backoff: Duration::from_millis(10), ..RetryPolicy::new(s.max_retries) };
    GcoreClient::new(build_http_client(&s).unwrap(), &server.uri().parse().unwrap(), &s).with_retry_policy(fast)
}

/// Runs a poll and returns its result with the results of every request made.
async fn poll(client: &GcoreClient) -> (Result<Snapshot, FetchError>, Vec<RequestResult>) {
    let results = Mutex::new(Vec::new());
    let key = ApiKey::parse(KEY).unwrap();
    let r =
        client.fetch_users(&key, Instant::now() + Duration::from_secs(10), &|r| results.lock().unwrap().push(r)).await;
    (r, results.into_inner().unwrap())
}

fn serve_page(offset: u64, limit: u64, body: Value) -> Mock {
    Mock::given(method("GET"))
        .and(path("/iam/users"))
        .and(query_param("limit", limit.to_string()))
        .and(query_param("offset", offset.to_string()))
        .and(header("authorization", format!("APIKey {KEY}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
}

#[tokio::test]
async fn one_page() {
    let server = MockServer::start().await;
    serve_page(0, 10, page(3, 1..=3)).expect(1).mount(&server).await;
    let (r, requests) = poll(&client(&server, 10)).await;
    let s = r.unwrap();
    assert_eq!((s.active_users, s.fetched_users, s.reported_users), (3, 3, 3));
    assert_eq!(requests, [RequestResult::Ok]);
    let user_agent = &server.received_requests().await.unwrap()[0].headers["user-agent"];
    assert!(user_agent.to_str().unwrap().starts_with("gcore-iam-exporter/"));
}

#[tokio::test]
async fn two_pages_the_last_ending_exactly_at_count() {
    let server = MockServer::start().await;
    serve_page(0, 2, page(4, 1..=2)).expect(1).mount(&server).await;
    serve_page(2, 2, page(4, 3..=4)).expect(1).mount(&server).await;
    // No request for offset 4: the count was reached.
    let (r, requests) = poll(&client(&server, 2)).await;
    assert_eq!(r.unwrap().active_users, 4);
    assert_eq!(requests.len(), 2);
}

#[tokio::test]
async fn many_pages() {
    let server = MockServer::start().await;
    for offset in (0..95).step_by(10) {
        let end = (offset + 10).min(95);
        serve_page(offset, 10, page(95, offset + 1..=end)).expect(1).mount(&server).await;
    }
    let (r, requests) = poll(&client(&server, 10)).await;
    let s = r.unwrap();
    assert_eq!(s.active_users, 95);
    assert_eq!(s.users.iter().filter(|u| u.two_fa).map(|u| u.users).sum::<u64>(), 47);
    assert_eq!(requests.len(), 10);
}

#[tokio::test]
async fn count_changing_between_pages() {
    let server = MockServer::start().await;
    // A user is invited during the poll: the list shifts by one, user 3 appears twice.
    serve_page(0, 3, page(6, 1..=3)).mount(&server).await;
    serve_page(3, 3, page(7, [3, 4, 5])).mount(&server).await;
    serve_page(6, 3, page(7, [6, 7])).mount(&server).await;
    let (r, _) = poll(&client(&server, 3)).await;
    let s = r.unwrap();
    assert_eq!(s.active_users, 7, "user 3 counted once");
    assert_eq!(s.reported_users, 7);
    assert_eq!(s.fetched_users, 7);
}

#[tokio::test]
async fn empty_page_before_count_ends_the_poll_as_incomplete() {
    let server = MockServer::start().await;
    serve_page(0, 2, page(5, 1..=2)).expect(1).mount(&server).await;
    serve_page(2, 2, page(5, [])).expect(1).mount(&server).await;
    // No request past the empty page, and no half poll published.
    let (r, requests) = poll(&client(&server, 2)).await;
    assert!(matches!(r, Err(FetchError::EmptyPage { offset: 2, count: 5 })), "{r:?}");
    assert_eq!(r.unwrap_err().reason(), Reason::Incomplete);
    assert_eq!(requests, [RequestResult::Ok, RequestResult::Ok]);
}

#[tokio::test]
async fn bare_array_and_old_result_key() {
    let server = MockServer::start().await;
    Mock::given(path("/iam/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([user(1), user(2), user(3)])))
        .expect(1)
        .mount(&server)
        .await;
    let (r, _) = poll(&client(&server, 2)).await;
    let s = r.unwrap();
    assert_eq!((s.active_users, s.reported_users), (3, 3));

    let server = MockServer::start().await;
    serve_page(0, 5, json!({"count": 1, "result": [user(9)]})).expect(1).mount(&server).await;
    assert_eq!(poll(&client(&server, 5)).await.0.unwrap().active_users, 1);
}

#[tokio::test]
async fn unauthorized_is_one_request_and_never_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/iam/users"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"detail": "Invalid token"})))
        .expect(1)
        .mount(&server)
        .await;
    let (r, requests) = poll(&client(&server, 5)).await;
    assert!(matches!(r, Err(FetchError::Unauthorized)));
    assert_eq!(requests, [RequestResult::Failed(Reason::Unauthorized)]);
}

#[tokio::test]
async fn forbidden_is_never_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/iam/users")).respond_with(ResponseTemplate::new(403)).expect(1).mount(&server).await;
    let (r, _) = poll(&client(&server, 5)).await;
    assert_eq!(r.unwrap_err().reason(), Reason::Forbidden);
}

#[tokio::test]
async fn rate_limited_with_retry_after_then_success() {
    let server = MockServer::start().await;
    Mock::given(path("/iam/users"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    serve_page(0, 5, page(2, 1..=2)).mount(&server).await;
    let started = std::time::Instant::now();
    let (r, requests) = poll(&client(&server, 5)).await;
    assert_eq!(r.unwrap().active_users, 2);
    assert!(started.elapsed() >= Duration::from_millis(950), "Retry-After honoured: {:?}", started.elapsed());
    assert_eq!(requests, [RequestResult::Failed(Reason::RateLimited), RequestResult::Ok]);
}

#[tokio::test]
async fn retry_after_ms_is_honoured() {
    let server = MockServer::start().await;
    Mock::given(path("/iam/users"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After-Ms", "300"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    serve_page(0, 5, page(1, [1])).mount(&server).await;
    let started = std::time::Instant::now();
    assert!(poll(&client(&server, 5)).await.0.is_ok());
    assert!(started.elapsed() >= Duration::from_millis(290));
}

#[tokio::test]
async fn server_error_then_success() {
    let server = MockServer::start().await;
    Mock::given(path("/iam/users"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    serve_page(0, 5, page(1, [1])).mount(&server).await;
    let (r, requests) = poll(&client(&server, 5)).await;
    assert_eq!(r.unwrap().active_users, 1);
    assert_eq!(requests, [RequestResult::Failed(Reason::ServerError), RequestResult::Ok]);
}

#[tokio::test]
async fn persistent_server_errors_exhaust_the_retry_budget() {
    let server = MockServer::start().await;
    Mock::given(path("/iam/users")).respond_with(ResponseTemplate::new(503)).expect(3).mount(&server).await;
    let (r, requests) = poll(&client(&server, 5)).await;
    assert!(matches!(r, Err(FetchError::Server(503))));
    assert_eq!(requests.len(), 3);
}

#[tokio::test]
async fn malformed_json_is_a_decode_failure_without_retry() {
    let server = MockServer::start().await;
    Mock::given(path("/iam/users"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(r#"{"count": 3, "results": ["#, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let (r, requests) = poll(&client(&server, 5)).await;
    assert_eq!(r.unwrap_err().reason(), Reason::Decode);
    assert_eq!(requests, [RequestResult::Failed(Reason::Decode)]);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/iam/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(1, [1])).set_delay(Duration::from_secs(3)))
        .expect(3)
        .mount(&server)
        .await;
    let (r, requests) = poll(&client(&server, 5)).await;
    assert!(matches!(r, Err(FetchError::Timeout)), "{r:?}");
    assert_eq!(requests, [RequestResult::Failed(Reason::Timeout); 3]);
}

#[tokio::test]
async fn the_poll_deadline_bounds_everything() {
    let server = MockServer::start().await;
    Mock::given(path("/iam/users"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "30"))
        .mount(&server)
        .await;
    let key = ApiKey::parse(KEY).unwrap();
    let started = std::time::Instant::now();
    let r = client(&server, 5).fetch_users(&key, Instant::now() + Duration::from_millis(400), &|_| {}).await;
    assert!(matches!(r, Err(FetchError::Deadline(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_response_over_the_size_limit_is_refused() {
    let server = MockServer::start().await;
    serve_page(0, 5, page(1, [1])).mount(&server).await;
    let s = ClientSettings { max_response_bytes: 100, ..settings(5) };
    let client = GcoreClient::new(build_http_client(&s).unwrap(), &server.uri().parse().unwrap(), &s);
    let (r, _) = poll(&client).await;
    assert_eq!(r.unwrap_err().reason(), Reason::TooLarge);
}

#[tokio::test]
async fn many_pages_concurrently_give_exact_counts() {
    let server = MockServer::start().await;
    for offset in (0..1003).step_by(10) {
        let end = (offset + 10).min(1003);
        serve_page(offset, 10, page(1003, offset + 1..=end)).expect(1).mount(&server).await;
    }
    let (r, requests) = poll(&concurrent_client(&server, 10, 4)).await;
    let s = r.unwrap();
    assert_eq!((s.active_users, s.fetched_users, s.reported_users), (1003, 1003, 1003));
    assert_eq!(s.users.iter().filter(|u| u.two_fa).map(|u| u.users).sum::<u64>(), 501);
    assert_eq!(requests, [RequestResult::Ok; 101]);
}

/// Answers pages after a delay, and records when each request arrived.
struct SlowPages {
    count: u64,
    arrivals: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
}

/// How long every page is held back.
const SLOW_PAGE_DELAY: Duration = Duration::from_millis(50);

impl Respond for SlowPages {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let offset: u64 = query(request, "offset");
        let limit: u64 = query(request, "limit");
        self.arrivals.lock().unwrap().push(std::time::Instant::now());
        let ids = offset + 1..=(offset + limit).min(self.count);
        ResponseTemplate::new(200).set_body_json(page(self.count, ids)).set_delay(SLOW_PAGE_DELAY)
    }
}

/// The most requests that were certainly in flight at once: wiremock answers a request no
/// sooner than `SLOW_PAGE_DELAY` after it arrived, so requests that arrived within that window
/// of each other overlapped, however slow the machine. (A gauge lowered by a timer instead
/// overcounted on a loaded machine, where the timer fired late.)
fn most_certainly_in_flight(arrivals: &[std::time::Instant]) -> usize {
    arrivals.iter().map(|&t| arrivals.iter().filter(|&&u| u <= t && t < u + SLOW_PAGE_DELAY).count()).max().unwrap_or(0)
}

fn query(request: &Request, name: &str) -> u64 {
    request.url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.parse().unwrap()).unwrap()
}

#[tokio::test]
async fn at_most_concurrency_pages_are_in_flight() {
    let server = MockServer::start().await;
    let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    Mock::given(path("/iam/users"))
        .respond_with(SlowPages { count: 200, arrivals: std::sync::Arc::clone(&arrivals) })
        .expect(20)
        .mount(&server)
        .await;
    let (r, _) = poll(&concurrent_client(&server, 10, 4)).await;
    assert_eq!(r.unwrap().active_users, 200);
    // A lower bound of the requests in flight: it shows that requests overlapped, and that
    // never more than 4 did.
    let most = most_certainly_in_flight(&arrivals.lock().unwrap());
    assert!((2..=4).contains(&most), "at most 4 requests in flight, saw {most}");
}

#[tokio::test]
async fn a_429_during_concurrent_fetch_is_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/iam/users"))
        .and(query_param("offset", "30"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After-Ms", "50"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    for offset in (0..60).step_by(10) {
        serve_page(offset, 10, page(60, offset + 1..=offset + 10)).mount(&server).await;
    }
    let (r, requests) = poll(&concurrent_client(&server, 10, 4)).await;
    let s = r.unwrap();
    assert_eq!((s.active_users, s.fetched_users), (60, 60));
    assert_eq!(requests.iter().filter(|r| **r == RequestResult::Failed(Reason::RateLimited)).count(), 1);
    assert_eq!(requests.iter().filter(|r| **r == RequestResult::Ok).count(), 6);
}

#[tokio::test]
async fn a_page_failing_for_good_fails_the_concurrent_poll() {
    let server = MockServer::start().await;
    Mock::given(path("/iam/users"))
        .and(query_param("offset", "20"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(1)
        .expect(3)
        .mount(&server)
        .await;
    for offset in (0..60).step_by(10) {
        serve_page(offset, 10, page(60, offset + 1..=offset + 10)).mount(&server).await;
    }
    let (r, _) = poll(&concurrent_client(&server, 10, 4)).await;
    assert!(matches!(r, Err(FetchError::Server(503))), "{r:?}");
}

#[tokio::test]
async fn count_growing_mid_poll_is_followed_to_the_end() {
    let server = MockServer::start().await;
    // Five users are added while the poll runs: the last planned page says 35.
    serve_page(0, 10, page(30, 1..=10)).expect(1).mount(&server).await;
    serve_page(10, 10, page(30, 11..=20)).expect(1).mount(&server).await;
    serve_page(20, 10, page(35, 21..=30)).expect(1).mount(&server).await;
    serve_page(30, 10, page(35, 31..=35)).expect(1).mount(&server).await;
    let (r, _) = poll(&concurrent_client(&server, 10, 4)).await;
    let s = r.unwrap();
    assert_eq!((s.active_users, s.fetched_users, s.reported_users), (35, 35, 35));
}

#[tokio::test]
async fn a_short_page_leaves_a_gap_that_is_filled_page_by_page() {
    let server = MockServer::start().await;
    serve_page(0, 10, page(30, 1..=10)).expect(1).mount(&server).await;
    serve_page(10, 10, page(30, 11..=15)).expect(1).mount(&server).await;
    serve_page(20, 10, page(30, 21..=30)).expect(1).mount(&server).await;
    // The gap after the short page: one request, at its offset.
    serve_page(15, 10, page(30, 16..=25)).expect(1).mount(&server).await;
    let (r, requests) = poll(&concurrent_client(&server, 10, 4)).await;
    let s = r.unwrap();
    assert_eq!((s.active_users, s.fetched_users, s.reported_users), (30, 30, 30));
    assert_eq!(requests.len(), 4);
}

/// A list that grows by more than a page with every page served.
struct EverGrowing;

impl Respond for EverGrowing {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let offset = query(request, "offset");
        let limit = query(request, "limit");
        ResponseTemplate::new(200).set_body_json(page(offset + 3 * limit, offset + 1..=offset + limit))
    }
}

#[tokio::test]
async fn a_count_that_never_stops_growing_still_ends() {
    let server = MockServer::start().await;
    Mock::given(path("/iam/users")).respond_with(EverGrowing).mount(&server).await;
    let (r, requests) = poll(&concurrent_client(&server, 10, 4)).await;
    // The first count (30) allows 2 × 3 + 10 pages.
    assert!(matches!(r, Err(FetchError::Incomplete { pages: 16, .. })), "{r:?}");
    assert_eq!(requests.len(), 16);
}

#[tokio::test]
async fn account_and_tokens_through_the_client() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/iam/clients/me"))
        .and(header("authorization", format!("APIKey {KEY}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": 99, "status": "integration", "has_active_admin": true, "companyName": "Acme", "users": []}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/iam/v2/clients/99/tokens"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/iam/v2/clients/99/tokens"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 42, "name": "mine", "exp_date": null, "expired": false, "deleted": false,
             "created": "2026-01-01T00:00:00Z", "last_usage": null,
             "client_user": {"user_id": 1, "user_name": "A", "user_email": "a@example.com", "client_id": 99,
                             "deleted": false, "role": {"id": 1, "name": "Administrators"}}}
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server, 10);
    let key = ApiKey::parse(KEY).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let results = Mutex::new(Vec::new());
    let on_request = |r| results.lock().unwrap().push(r);
    let account = client.fetch_account(&key, deadline, &on_request).await.unwrap();
    assert_eq!((account.client_id, &*account.status, account.has_active_admin), (99, "integration", true));
    let tokens = client.fetch_tokens(&key, 99, Some(42), deadline, &on_request).await.unwrap();
    assert_eq!(tokens.tokens.len(), 1);
    assert!(tokens.tokens[0].used_by_exporter && tokens.tokens[0].expires_at.is_none());
    assert_eq!(
        results.into_inner().unwrap(),
        [RequestResult::Ok, RequestResult::Failed(Reason::ServerError), RequestResult::Ok]
    );
}

#[tokio::test]
async fn forbidden_tokens_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/iam/v2/clients/7/tokens"))
        .respond_with(ResponseTemplate::new(403))
        .expect(1)
        .mount(&server)
        .await;
    let key = ApiKey::parse(KEY).unwrap();
    let r = client(&server, 10).fetch_tokens(&key, 7, None, Instant::now() + Duration::from_secs(5), &|_| {}).await;
    assert!(matches!(r, Err(FetchError::Forbidden)), "{r:?}");
}
