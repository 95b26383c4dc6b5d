//! The fake's HTTP contract, exercised through `router()` and, for faults that live on the
//! connection, through a real socket.

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
#[cfg(feature = "faults")]
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use super::*;

const KEY: &str = "42_secret";

fn users(n: u64) -> Vec<FakeUser> {
    (1..=n).map(FakeUser::new).collect()
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn ids(&self) -> Vec<u64> {
        let value = self.json();
        let list = value.get("results").unwrap_or(&value);
        list.as_array().expect("a list of users").iter().map(|u| u["id"].as_u64().unwrap()).collect()
    }
}

async fn send(api: &FakeApi, method: &str, uri: &str, auth: Option<&str>) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(auth) = auth {
        request = request.header(header::AUTHORIZATION, auth);
    }
    let response = api.router().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    Answer { status, headers, body: body.to_vec() }
}

async fn get(api: &FakeApi, uri: &str) -> Answer {
    send(api, "GET", uri, Some(&format!("APIKey {KEY}"))).await
}

#[tokio::test]
async fn paginated_envelope_slices_by_offset_and_limit() {
    let api = FakeApi::new(KEY, users(25));
    let page = get(&api, "/iam/users?limit=10&offset=10").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers[header::CONTENT_TYPE], "application/json");
    let body = page.json();
    assert_eq!(body["count"], 25);
    assert_eq!(body["next"], "/users?offset=20&limit=10");
    assert_eq!(body["previous"], "/users?offset=0&limit=10");
    assert_eq!(page.ids(), (11..=20).collect::<Vec<_>>());

    let first = get(&api, "/iam/users?limit=10").await.json();
    assert_eq!(first["previous"], Value::Null);
    let last = get(&api, "/iam/users?offset=20&limit=10").await;
    assert_eq!(last.json()["next"], Value::Null);
    assert_eq!(last.ids(), (21..=25).collect::<Vec<_>>());
}

#[tokio::test]
async fn count_includes_deleted_users() {
    let api = FakeApi::new(KEY, vec![FakeUser::new(1), FakeUser::new(2).deleted(true)]);
    let body = get(&api, "/iam/users?limit=1").await.json();
    assert_eq!(body["count"], 2);
}

#[tokio::test]
async fn without_limit_the_answer_is_a_bare_array_of_everyone() {
    let api = FakeApi::new(KEY, users(3));
    let answer = get(&api, "/iam/users?offset=1").await;
    assert!(answer.json().is_array());
    assert_eq!(answer.ids(), [1, 2, 3]);
    assert_eq!(answer.json()[0], serde_json::to_value(FakeUser::new(1)).unwrap());
}

#[tokio::test]
async fn limit_is_capped_and_big_lists_page_quickly() {
    let api = FakeApi::new(KEY, users(100_000));
    let page = get(&api, "/iam/users?limit=5000&offset=99500").await;
    assert_eq!(page.ids().len(), 500);
    let page = get(&api, "/iam/users?limit=5000&offset=0").await;
    assert_eq!(page.ids().len(), 1000);
    assert_eq!(page.json()["next"], "/users?offset=1000&limit=1000");
}

#[tokio::test]
async fn missing_or_wrong_key_is_401_and_scheme_is_case_insensitive() {
    let api = FakeApi::new(KEY, users(1));
    for auth in [None, Some("APIKey wrong"), Some("Bearer 42_secret"), Some("APIKey")] {
        let answer = send(&api, "GET", "/iam/users", auth).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(answer.json(), json!({"detail": "Authentication credentials were not provided."}));
    }
    let answer = send(&api, "GET", "/iam/users", Some("apikey 42_secret")).await;
    assert_eq!(answer.status, StatusCode::OK);

    #[cfg(feature = "faults")]
    {
        let recorded = api.requests();
        assert_eq!(recorded.len(), 5);
        assert!(!recorded[0].authorized && recorded[0].authorization.is_none());
        assert!(recorded[4].authorized);
        assert_eq!(recorded[4].authorization.as_deref(), Some("apikey 42_secret"));
    }
}

#[tokio::test]
async fn bad_limit_or_offset_is_400_with_a_json_body() {
    let api = FakeApi::new(KEY, users(1));
    for query in ["limit=ten", "limit=-1", "offset=-1", "limit=10&offset=x"] {
        let answer = get(&api, &format!("/iam/users?{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(answer.json().is_object(), "{query}");
    }
}

#[tokio::test]
async fn other_paths_are_404_and_other_methods_405() {
    let api = FakeApi::new(KEY, users(1));
    assert_eq!(get(&api, "/iam/users/1").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&api, "/users").await.status, StatusCode::NOT_FOUND);
    let post = send(&api, "POST", "/iam/users", Some("APIKey 42_secret")).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers[header::ALLOW], "GET");
    // Paths the fake does not serve are not recorded; its endpoints are, whatever the method.
    #[cfg(feature = "faults")]
    {
        assert_eq!(api.request_count(), 1);
        assert_eq!(api.requests()[0].method, "POST");
    }
}

#[cfg(feature = "faults")]
#[tokio::test]
async fn queued_faults_are_consumed_one_per_request_in_order() {
    let api = FakeApi::new(KEY, users(3));
    api.push_fault(Fault::rate_limited(3));
    api.push_fault(Fault::status(500));
    api.push_fault(Fault::HtmlOk);
    api.push_fault(Fault::MalformedJson);

    // A scripted 429 comes before the key is even looked at.
    let throttled = send(&api, "GET", "/iam/users?limit=2", None).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.headers[header::RETRY_AFTER], "3");
    assert_eq!(get(&api, "/iam/users?limit=2").await.status, StatusCode::INTERNAL_SERVER_ERROR);
    let html = get(&api, "/iam/users?limit=2").await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(html.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    let malformed = get(&api, "/iam/users?limit=2").await;
    assert_eq!(malformed.status, StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&malformed.body).is_err());

    let normal = get(&api, "/iam/users?limit=2").await;
    assert_eq!(normal.ids(), [1, 2]);
    assert_eq!(api.request_count(), 5);
}

#[cfg(feature = "faults")]
#[tokio::test]
async fn persistent_fault_applies_until_cleared_and_queued_ones_go_first() {
    let api = FakeApi::new(KEY, users(3));
    api.set_persistent_fault(Some(Fault::status(503)));
    api.push_fault(Fault::status(403));
    assert_eq!(get(&api, "/iam/users").await.status, StatusCode::FORBIDDEN);
    for _ in 0..3 {
        assert_eq!(get(&api, "/iam/users").await.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    api.set_persistent_fault(None);
    assert_eq!(get(&api, "/iam/users").await.status, StatusCode::OK);
}

#[cfg(feature = "faults")]
#[tokio::test]
async fn page_shaping_faults() {
    let api = FakeApi::new(KEY, users(30));

    api.push_fault(Fault::OversizedPage(15));
    let page = get(&api, "/iam/users?limit=10&offset=10").await;
    assert_eq!(page.ids(), (11..=25).collect::<Vec<_>>());
    assert_eq!(page.json()["next"], "/users?offset=20&limit=10");

    api.push_fault(Fault::DuplicateFirstUser);
    let page = get(&api, "/iam/users?limit=10&offset=10").await;
    let mut expected = vec![1];
    expected.extend(11..=20);
    assert_eq!(page.ids(), expected);

    api.push_fault(Fault::CountDelta(-4));
    assert_eq!(get(&api, "/iam/users?limit=10").await.json()["count"], 26);

    api.push_fault(Fault::EmptyPage);
    let page = get(&api, "/iam/users?limit=10&offset=10").await.json();
    assert_eq!(page["results"], json!([]));
    assert_eq!(page["count"], 30);
    assert_eq!(page["next"], "/users?offset=20&limit=10");
}

#[cfg(feature = "faults")]
#[tokio::test]
async fn redirect_fault_points_at_the_given_url() {
    let api = FakeApi::new(KEY, users(1));
    api.push_fault(Fault::RedirectTo("http://127.0.0.1:9/elsewhere".to_owned()));
    let answer = get(&api, "/iam/users").await;
    assert_eq!(answer.status, StatusCode::FOUND);
    assert_eq!(answer.headers[header::LOCATION], "http://127.0.0.1:9/elsewhere");
}

// Real time: tokio's paused clock needs the `test-util` feature, which the crate does not enable.
#[cfg(feature = "faults")]
#[tokio::test]
async fn delay_fault_waits_then_answers_normally() {
    let api = FakeApi::new(KEY, users(2));
    api.push_fault(Fault::Delay(Duration::from_millis(300)));
    let started = tokio::time::Instant::now();
    let answer = get(&api, "/iam/users?limit=5").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(answer.ids(), [1, 2]);
}

/// Sends one raw HTTP/1.1 request and reads until the server closes the connection.
#[cfg(feature = "faults")]
async fn raw_exchange(addr: std::net::SocketAddr) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /iam/users?limit=5 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: APIKey {KEY}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    // A reset may surface as an error rather than EOF; either way the exchange is over.
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received)).await;
    received
}

#[cfg(feature = "faults")]
#[tokio::test]
async fn connection_faults_over_a_real_socket() {
    let api = FakeApi::new(KEY, users(5));
    let shutdown = CancellationToken::new();
    let (addr, server) = api.spawn(0, shutdown.clone()).await.unwrap();

    api.push_fault(Fault::TruncatedBody);
    let received = String::from_utf8(raw_exchange(addr).await).unwrap();
    let (head, body) = received.split_once("\r\n\r\n").expect("a response head");
    let announced: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length: ")).expect("a content-length").parse().unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!body.is_empty() && body.len() < announced, "{} of {announced}", body.len());

    api.push_fault(Fault::ConnectionReset);
    let received = raw_exchange(addr).await;
    assert!(!String::from_utf8_lossy(&received).contains("\r\n\r\n"), "no complete response head: {received:?}");

    // What an HTTP client makes of them: a body error, then a request error.
    let client = reqwest::Client::new();
    let request = || {
        client.get(format!("http://{addr}/iam/users?limit=5")).header("Authorization", format!("APIKey {KEY}")).send()
    };
    api.push_fault(Fault::TruncatedBody);
    let response = request().await.expect("the head arrives");
    assert!(response.bytes().await.is_err());
    api.push_fault(Fault::ConnectionReset);
    assert!(request().await.is_err());

    // The connection faults were one-shot: a client now gets a whole answer.
    let response = request().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["count"], 5);
    let recorded = api.requests();
    assert_eq!(recorded.len(), 5);
    assert_eq!(recorded[4].host.as_deref(), Some(addr.to_string().as_str()));
    assert_eq!(recorded[4].query.as_deref(), Some("limit=5"));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("the server stops on cancellation").unwrap();
}

// ---------------------------------------------------------------------------------------------
// The account and the API tokens

const TOKENS: &str = "/iam/v2/clients/300001/tokens";

fn sample_tokens() -> Vec<FakeToken> {
    vec![
        FakeToken::new(42, "exporter")
            .exp_date(Some("2030-01-01T00:00:00.000000Z"))
            .last_usage(Some("2026-05-01T10:00:00.000000Z")),
        FakeToken::new(7, "ci").issued_by(FakeTokenIssuer::new(5, ENGINEERS).deleted(true)),
        FakeToken::new(8, "gone").deleted(true),
    ]
}

#[tokio::test]
async fn account_is_served_as_client_base() {
    let api = FakeApi::new(KEY, users(2));
    let account = get(&api, ACCOUNT_PATH).await;
    assert_eq!(account.status, StatusCode::OK);
    assert_eq!(account.headers[header::CONTENT_TYPE], "application/json");
    let body = account.json();
    assert_eq!(body["id"], DEFAULT_CLIENT);
    assert_eq!(body["status"], "active");
    assert_eq!(body["has_active_admin"], true);
    assert_eq!(body["currentUser"], 1, "no token 42: the first user");

    api.set_account(FakeAccount::new(9).status("trialend").has_active_admin(false));
    api.set_tokens(sample_tokens());
    let body = get(&api, ACCOUNT_PATH).await.json();
    assert_eq!((body["id"].as_u64(), body["status"].as_str()), (Some(9), Some("trialend")));
    assert_eq!(body["has_active_admin"], false);
    assert_eq!(body["currentUser"], 1, "the issuer of token 42, whose key this is");
    assert_eq!(api.account().status, "trialend");
}

#[tokio::test]
async fn tokens_are_a_bare_array_with_nulls_and_without_deleted_ones() {
    let api = FakeApi::new(KEY, users(1));
    assert_eq!(get(&api, TOKENS).await.json(), json!([]), "no tokens by default");

    api.set_tokens(sample_tokens());
    assert_eq!(api.tokens(), sample_tokens());
    let answer = get(&api, TOKENS).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    let list = body.as_array().expect("a bare array");
    assert_eq!(list.iter().map(|t| t["id"].as_u64().unwrap()).collect::<Vec<_>>(), [42, 7]);
    assert_eq!(list[0]["exp_date"], "2030-01-01T00:00:00.000000Z");
    assert_eq!(list[0]["client_user"]["client_id"], DEFAULT_CLIENT);
    // Never expires and never used: null, not missing.
    assert!(list[1].as_object().unwrap().contains_key("exp_date"));
    assert_eq!((&list[1]["exp_date"], &list[1]["last_usage"]), (&Value::Null, &Value::Null));
    assert_eq!(list[1]["client_user"]["deleted"], true);
    assert_eq!(list[1]["client_user"]["role"], json!({"id": 5, "name": "Engineers"}));

    // `deleted=false` lists the deleted ones, as the OpenAPI words it.
    let deleted = get(&api, &format!("{TOKENS}?deleted=false")).await.json();
    assert_eq!(deleted.as_array().unwrap().len(), 1);
    assert_eq!(deleted[0]["id"], 8);
    assert_eq!(get(&api, &format!("{TOKENS}?deleted=maybe")).await.status, StatusCode::BAD_REQUEST);
    let by_role = get(&api, &format!("{TOKENS}?role=5")).await.json();
    assert_eq!(by_role.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn tokens_refuse_a_wrong_key_a_non_admin_key_and_another_account() {
    let api = FakeApi::new(KEY, users(1));
    api.set_tokens(sample_tokens());
    for path in [TOKENS, ACCOUNT_PATH] {
        for auth in [None, Some("APIKey wrong")] {
            let answer = send(&api, "GET", path, auth).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path} {auth:?}");
            assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "APIKey");
        }
        assert_eq!(send(&api, "DELETE", path, Some("APIKey 42_secret")).await.status, StatusCode::METHOD_NOT_ALLOWED);
    }
    for other in ["/iam/v2/clients/300002/tokens", "/iam/v2/clients/abc/tokens"] {
        let answer = get(&api, other).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{other}");
        assert_eq!(answer.json(), json!({"detail": "Account not found."}));
    }
    // The deprecated v1 path is not served.
    assert_eq!(get(&api, "/iam/clients/300001/tokens").await.status, StatusCode::NOT_FOUND);

    api.set_tokens_forbidden(true);
    let answer = get(&api, TOKENS).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json()["detail"], "You do not have permission to perform this action.");
    assert_eq!(get(&api, ACCOUNT_PATH).await.status, StatusCode::OK, "the account stays readable");
    assert_eq!(get(&api, "/iam/users").await.status, StatusCode::OK);
    api.set_tokens_forbidden(false);
    assert_eq!(get(&api, TOKENS).await.status, StatusCode::OK);
}

#[cfg(feature = "faults")]
#[tokio::test]
async fn faults_apply_to_users_only_and_every_endpoint_is_recorded() {
    let api = FakeApi::new(KEY, users(2));
    api.push_fault(Fault::status(503));
    api.set_persistent_fault(Some(Fault::status(500)));
    assert_eq!(get(&api, ACCOUNT_PATH).await.status, StatusCode::OK);
    assert_eq!(get(&api, TOKENS).await.status, StatusCode::OK);
    // The queued fault is still there for the users.
    assert_eq!(get(&api, "/iam/users?limit=1").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&api, "/iam/users?limit=1").await.status, StatusCode::INTERNAL_SERVER_ERROR);

    let paths: Vec<String> = api.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, [ACCOUNT_PATH, TOKENS, USERS_PATH, USERS_PATH]);
    assert_eq!(api.request_count(), 4);
    assert_eq!(api.users_request_count(), 2);
    assert!(api.users_requests().iter().all(|r| r.path == USERS_PATH && r.query.as_deref() == Some("limit=1")));
}

#[tokio::test]
async fn demo_api_serves_its_account_and_tokens() {
    let api = FakeApi::demo("42_demo", 3);
    let account = get_with(&api, ACCOUNT_PATH, "42_demo").await.json();
    assert_eq!(account["id"], 417_203);
    assert_eq!(account["status"], "active");
    assert_eq!(account["has_active_admin"], true);
    let own = api.tokens().into_iter().find(|t| t.id == 42).expect("token 42");
    assert_eq!(account["currentUser"], own.issuer.user_id, "the demo key is token 42's");

    let tokens = get_with(&api, "/iam/v2/clients/417203/tokens", "42_demo").await.json();
    let tokens = tokens.as_array().unwrap();
    assert_eq!(tokens.len(), 8, "the deleted token is hidden");
    assert!(tokens.iter().all(|t| t["deleted"] == false && t["client_user"]["client_id"] == 417_203));
    let now = std::time::SystemTime::now();
    let own = tokens.iter().find(|t| t["id"] == 42).unwrap();
    let expiry = humantime::parse_rfc3339(own["exp_date"].as_str().unwrap()).unwrap();
    let left = expiry.duration_since(now).unwrap().as_secs();
    assert!((5 * 86_400 - 60..=5 * 86_400).contains(&left), "the exporter's token expires in 5 days: {left}s");
    assert!(tokens.iter().any(|t| t["exp_date"].is_null()));
    assert!(tokens.iter().any(|t| t["last_usage"].is_null()));
    assert!(tokens.iter().any(|t| t["expired"] == true));
    assert!(tokens.iter().any(|t| t["client_user"]["deleted"] == true));
}

async fn get_with(api: &FakeApi, uri: &str, key: &str) -> Answer {
    send(api, "GET", uri, Some(&format!("APIKey {key}"))).await
}

#[tokio::test]
async fn demo_api_serves_its_population() {
    let api = FakeApi::demo(KEY, 11);
    let users = api.users();
    assert!(users.len() >= 300);
    let page = get(&api, "/iam/users?limit=1000").await;
    assert_eq!(page.json()["count"], users.len());
    assert_eq!(page.ids(), users.iter().map(|u| u.id).collect::<Vec<_>>());
}

#[tokio::test]
async fn evolution_changes_users_periodically_and_stops_on_shutdown() {
    let api = FakeApi::demo(KEY, 1);
    let before = api.users();
    let shutdown = CancellationToken::new();
    let task = api.spawn_evolution(Duration::from_millis(10), 1, shutdown.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_ne!(api.users(), before);
    assert!(demo::admins_without_2fa(&api.users()) >= 1);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn login_log_is_paged_newest_first_and_refuses_as_asked() {
    let api = FakeApi::new(KEY, users(2));
    api.push_logins((1..=4).map(|id| FakeLogin::new(id, 1)));
    let page = get(&api, "/iam/activity_log/logins?limit=3&offset=0").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = page.json();
    assert_eq!(body["count"], 4);
    let ids: Vec<u64> = body["result"].as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [4, 3, 2]);
    assert_eq!(send(&api, "GET", LOGINS_PATH, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&api, "POST", LOGINS_PATH, Some(&format!("APIKey {KEY}"))).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    api.set_logins_forbidden(true);
    assert_eq!(get(&api, LOGINS_PATH).await.status, StatusCode::FORBIDDEN);
    api.set_logins_not_found(true);
    assert_eq!(get(&api, LOGINS_PATH).await.status, StatusCode::NOT_FOUND);
    api.set_logins_forbidden(false);
    assert_eq!(get(&api, LOGINS_PATH).await.status, StatusCode::OK);
    assert_eq!(api.logins().len(), 4);
}

#[tokio::test]
async fn demo_api_serves_a_login_history() {
    let api = FakeApi::demo(KEY, 11);
    let page = get(&api, "/iam/activity_log/logins?limit=5").await.json();
    assert_eq!(page["count"], api.logins().len());
    assert!(api.logins().len() > 300);
    let newest = api.logins().last().unwrap().id;
    assert_eq!(page["result"][0]["id"], newest);
}
