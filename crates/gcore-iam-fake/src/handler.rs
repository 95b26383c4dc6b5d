//! The HTTP face of the fake: `GET /iam/users`, `GET /iam/clients/me`,
//! `GET /iam/v2/clients/{clientId}/tokens` and `GET /iam/activity_log/logins`, answering as the real API does and applying the
//! scripted faults (to the users only, with the `faults` feature) in the order documented on
//! [`super::FakeApi`].

use axum::Router;
#[cfg(feature = "faults")]
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use super::pagination::{self, BadQuery, PageRequest};
use super::tokens::TokenQuery;
use super::wire::{ACCOUNT_NOT_FOUND, Envelope, FORBIDDEN, NOT_AUTHENTICATED, WireAccount, WireToken};
use super::{ACCOUNT_PATH, FakeApi, FakeUser, LOGINS_PATH, USERS_PATH};
#[cfg(feature = "faults")]
use super::{Fault, RecordedRequest, transport::Connection};

/// The route of the tokens endpoint (v2; the deprecated v1 path is not served).
const TOKENS_ROUTE: &str = "/iam/v2/clients/{client_id}/tokens";

pub(crate) fn router(api: FakeApi) -> Router {
    Router::new()
        // `any` rather than `get`, so that other methods are still recorded before the 405.
        .route(USERS_PATH, any(users))
        .route(ACCOUNT_PATH, any(account))
        .route(TOKENS_ROUTE, any(tokens))
        .route(LOGINS_PATH, any(logins))
        .fallback(|| async { json(StatusCode::NOT_FOUND, r#"{"detail": "Not found."}"#) })
        .with_state(api)
}

/// Records the request (with the `faults` feature; otherwise nothing is kept); returns whether
/// it carried the right key.
fn record(api: &FakeApi, parts: &Parts) -> bool {
    let authorization = header_text(&parts.headers, header::AUTHORIZATION);
    let authorized = authorization.as_deref().is_some_and(|value| api.accepts(value));
    #[cfg(feature = "faults")]
    api.record(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        authorized,
        host: header_text(&parts.headers, header::HOST),
        authorization,
    });
    authorized
}

fn method_not_allowed(method: &Method) -> Response {
    let mut response =
        json(StatusCode::METHOD_NOT_ALLOWED, &format!(r#"{{"detail": "Method \"{method}\" not allowed."}}"#));
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
    response
}

fn unauthorized() -> Response {
    let mut response = json(StatusCode::UNAUTHORIZED, NOT_AUTHENTICATED);
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("APIKey"));
    response
}

/// The account and tokens endpoints: recorded, then 405 for other methods and 401 for a
/// wrong key (no faults apply to them). `Err` is the answer to send instead.
fn admit(api: &FakeApi, request: Request) -> Result<Parts, Box<Response>> {
    let (parts, _body) = request.into_parts();
    let authorized = record(api, &parts);
    if parts.method != Method::GET {
        return Err(Box::new(method_not_allowed(&parts.method)));
    }
    if !authorized {
        return Err(Box::new(unauthorized()));
    }
    Ok(parts)
}

async fn account(State(api): State<FakeApi>, request: Request) -> Response {
    if let Err(response) = admit(&api, request) {
        return *response;
    }
    let account = api.account();
    serialized(&WireAccount::new(&account, api.current_user()))
}

async fn tokens(State(api): State<FakeApi>, Path(client_id): Path<String>, request: Request) -> Response {
    let parts = match admit(&api, request) {
        Ok(parts) => parts,
        Err(response) => return *response,
    };
    // A key that is not an administrator's may not list tokens, whichever account it names.
    if api.tokens_forbidden() {
        return json(StatusCode::FORBIDDEN, FORBIDDEN);
    }
    let account_id = api.account().id;
    if client_id.parse::<u64>().ok() != Some(account_id) {
        return json(StatusCode::NOT_FOUND, ACCOUNT_NOT_FOUND);
    }
    let query = match TokenQuery::parse(&parts.uri) {
        Ok(query) => query,
        Err(BadQuery(body)) => return json(StatusCode::BAD_REQUEST, &body.to_string()),
    };
    let tokens = api.token_snapshot();
    let listed: Vec<WireToken<'_>> = tokens
        .iter()
        .filter(|token| query.matches(token))
        .map(|token| WireToken { token, client_id: account_id })
        .collect();
    serialized(&listed)
}

/// The login log: recorded, 405, 401, then the page (or the 403/404 a test asked for).
async fn logins(State(api): State<FakeApi>, request: Request) -> Response {
    let parts = match admit(&api, request) {
        Ok(parts) => parts,
        Err(response) => return *response,
    };
    let (status, body) = api.answer_logins(&parts.uri);
    json(status, &body)
}

/// The users endpoint of the demo: no faults to apply.
#[cfg(not(feature = "faults"))]
async fn users(State(api): State<FakeApi>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let authorized = record(&api, &parts);
    if parts.method != Method::GET {
        return method_not_allowed(&parts.method);
    }
    if !authorized {
        return unauthorized();
    }
    match PageRequest::parse(&parts.uri) {
        Ok(page) => list(&api.snapshot(), page, Shape::default()),
        Err(BadQuery(body)) => json(StatusCode::BAD_REQUEST, &body.to_string()),
    }
}

#[cfg(feature = "faults")]
async fn users(State(api): State<FakeApi>, request: Request) -> Response {
    use axum::extract::ConnectInfo;

    let (parts, _body) = request.into_parts();
    let authorized = record(&api, &parts);

    if parts.method != Method::GET {
        return method_not_allowed(&parts.method);
    }

    let fault = api.next_fault();
    if let Some(Fault::Delay(delay)) = &fault {
        tokio::time::sleep(*delay).await;
    }
    if let Some(replacement) = fault.as_ref().and_then(Fault::replacement) {
        return replacement;
    }

    let answer = if !authorized {
        unauthorized()
    } else {
        match PageRequest::parse(&parts.uri) {
            Ok(page) => list(&api.snapshot(), page, fault.as_ref().map(Fault::shape).unwrap_or_default()),
            Err(BadQuery(body)) => json(StatusCode::BAD_REQUEST, &body.to_string()),
        }
    };

    // Served by `FakeApi::spawn`, the socket itself is sabotaged; through a bare `router()`
    // (oneshot, or someone else's server) the nearest in-band imitation is sent instead.
    let connection = parts.extensions.get::<ConnectInfo<Connection>>().map(|info| info.0.clone());
    match (fault, connection) {
        (Some(Fault::TruncatedBody), Some(connection)) => {
            let (parts, body) = answer.into_parts();
            let full = to_bytes(body, usize::MAX).await.unwrap_or_default();
            connection.cut_next_body_after(full.len() / 2);
            Response::from_parts(parts, Body::from(full))
        }
        (Some(Fault::TruncatedBody), None) => truncate(answer).await,
        (Some(Fault::ConnectionReset), Some(connection)) => {
            connection.reset();
            answer
        }
        (Some(Fault::ConnectionReset), None) => reset(),
        _ => answer,
    }
}

/// How a page-shaping fault bends the 200 answer; the default is the honest answer, the only
/// one served without the `faults` feature.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Shape {
    /// Users on the page, whatever `limit` asked for.
    pub page_size: Option<usize>,
    /// No users on the page (nor in the bare array).
    pub empty: bool,
    /// The list's first user sent again, first on the page.
    pub duplicate_first: bool,
    /// Added to the true `count`.
    pub count_delta: i64,
}

/// The 200 answer: the envelope when `limit` is given, else the bare array of everyone.
fn list(users: &[FakeUser], page: PageRequest, shape: Shape) -> Response {
    let total = users.len();
    let body = match page.limit {
        Some(limit) => {
            let size = shape.page_size.unwrap_or(limit);
            let mut results: Vec<&FakeUser> = if shape.empty {
                Vec::new()
            } else {
                users[pagination::page_range(total, page.offset, size)].iter().collect()
            };
            if let (true, Some(first)) = (shape.duplicate_first, users.first()) {
                results.insert(0, first);
            }
            serde_json::to_vec(&Envelope {
                count: i64::try_from(total).unwrap_or(i64::MAX).saturating_add(shape.count_delta),
                next: pagination::next_link(total, page.offset, limit),
                previous: pagination::previous_link(total, page.offset, limit),
                results,
            })
        }
        // Unpaginated, only the shapes that make sense for a bare array apply.
        None if shape.empty => Ok(b"[]".to_vec()),
        None if shape.duplicate_first => {
            serde_json::to_vec(&users.first().into_iter().chain(users).collect::<Vec<_>>())
        }
        None => serde_json::to_vec(users),
    };
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        // Unreachable in practice: the wire types hold only strings, numbers and booleans.
        Err(e) => {
            tracing::error!(error = %e, "fake API: cannot serialize users");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A 200 with `body` as JSON.
fn serialized(body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "fake API: cannot serialize an answer");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Half of `answer`'s body under a Content-Length announcing all of it. The stream hides the
/// real length from hyper, which then trusts the header (and, ending short of it, drops the
/// connection); an in-process caller simply reads fewer bytes than announced.
#[cfg(feature = "faults")]
async fn truncate(answer: Response) -> Response {
    let (mut parts, body) = answer.into_parts();
    let full = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let sent = full.slice(..full.len() / 2);
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(full.len().max(1)));
    Response::from_parts(parts, Body::from_stream(Body::from(sent).into_data_stream()))
}

/// An answer whose promised body never comes: hyper drops the connection without sending it.
#[cfg(feature = "faults")]
fn reset() -> Response {
    let mut response = Response::new(Body::from_stream(Body::empty().into_data_stream()));
    response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(1_u32));
    response
}

fn json(status: StatusCode, body: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_owned()).into_response()
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}
