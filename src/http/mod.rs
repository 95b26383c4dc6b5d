//! The HTTP server: /metrics, the landing page, health and readiness.

mod auth;
mod landing;
mod negotiate;
pub mod server;
pub mod web_config;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::board::Board;
use crate::metrics::{ChunkedBody, Metrics, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};
use negotiate::Format;
use web_config::WebConfig;

/// What the handlers share; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub board: Arc<Board>,
    pub telemetry_path: Arc<str>,
}

/// The router. Only GET (and HEAD, which axum derives from it) are served; other methods get
/// 405 and unknown paths 404. With a web config, basic auth guards every path but the probes'
/// and its headers are added to every response.
pub fn app(state: AppState, web: Option<&WebConfig>) -> Router {
    let mut router = Router::new()
        .route(&state.telemetry_path.clone(), get(metrics))
        .route("/", get(landing_page))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .fallback(not_found)
        .with_state(state);
    if let Some(web) = web {
        if !web.basic_auth_users.is_empty() {
            let auth = Arc::new(auth::BasicAuth::new(web.basic_auth_users.clone()));
            router = router.layer(axum::middleware::from_fn_with_state(auth, auth::require_basic_auth));
        }
        if !web.headers.is_empty() {
            let headers = Arc::new(web.headers.clone());
            router = router.layer(axum::middleware::from_fn_with_state(headers, auth::add_headers));
        }
    }
    router
}

/// Bytes encoded when the last poll ended: no I/O, no lock, no waiting. The plain bodies are
/// served as the chunks they are kept in; the gzip bodies are one buffer each.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let exposition = state.metrics.exposition();
    let header_str = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let format = negotiate::format(header_str(header::ACCEPT));
    let gzip = negotiate::wants_gzip(header_str(header::ACCEPT_ENCODING));
    let (body, content_type) = match (format, gzip) {
        (Format::Text, false) => (Body::new(ChunkedBody::new(&exposition.text)), TEXT_CONTENT_TYPE),
        (Format::Text, true) => (Body::from(exposition.text_gzip.clone()), TEXT_CONTENT_TYPE),
        (Format::OpenMetrics, false) => {
            (Body::new(ChunkedBody::new(&exposition.openmetrics)), OPENMETRICS_CONTENT_TYPE)
        }
        (Format::OpenMetrics, true) => (Body::from(exposition.openmetrics_gzip.clone()), OPENMETRICS_CONTENT_TYPE),
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// `/?accounts=all` lists every account; by default the page shows the first rows only.
async fn landing_page(State(state): State<AppState>, RawQuery(query): RawQuery) -> Html<String> {
    let all = query.is_some_and(|q| q.split('&').any(|pair| pair == "accounts=all"));
    Html(landing::render(&state.telemetry_path, &state.board.all(), all))
}

async fn healthy() -> &'static str {
    "Healthy\n"
}

/// 503 until every account has finished its first poll (see [`Board::ready`]).
async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.board.ready() {
        (StatusCode::OK, "Ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Not ready: the first poll of an account is still running\n")
    }
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "Not found\n")
}
