//! Scripted misbehaviour, so tests can show the client survives what a real upstream does on a
//! bad day. Each fault belongs to one of four kinds, which decide where the handler applies it
//! (see the order documented on [`super::FakeApi`]).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::handler::Shape;

/// A fault the next request(s) to `/iam/users` will suffer, scripted by tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Wait, then answer normally.
    Delay(Duration),
    /// Answer this instead, without looking at the key (e.g. 429 + Retry-After, 500, 403).
    /// Without a content-type header, `application/json` is sent when the body looks like JSON.
    Status {
        /// HTTP status; an invalid code is sent as 500.
        status: u16,
        /// Extra headers; invalid names or values are skipped.
        headers: Vec<(String, String)>,
        /// The body, as is.
        body: String,
    },
    /// 200 with a JSON body cut off inside the results.
    MalformedJson,
    /// 200 with an HTML error page, as a misconfigured proxy sends.
    HtmlOk,
    /// The normal answer's head and half its body, then the connection closes. Faithful when
    /// served by [`FakeApi::spawn`](super::FakeApi::spawn); through a bare `router()` the body
    /// is half of what its Content-Length announces.
    TruncatedBody,
    /// The connection is closed with a TCP reset and no answer. Faithful when served by
    /// [`FakeApi::spawn`](super::FakeApi::spawn); through a bare `router()` the answer is a
    /// 200 whose announced body never comes.
    ConnectionReset,
    /// A page of this many users (from `offset`), whatever `limit` asked for.
    OversizedPage(usize),
    /// The answer also carries the list's first user again (first on the page): on any page
    /// but the first, a user the client already saw on an earlier page.
    DuplicateFirstUser,
    /// `count` is off by this much from the real number of users.
    CountDelta(i64),
    /// `results` is empty while `count` and `next` say there is more.
    EmptyPage,
    /// 302 to this absolute URL.
    RedirectTo(String),
}

impl Fault {
    /// A bare status with a small JSON body, e.g. `Fault::status(503)`.
    pub fn status(status: u16) -> Self {
        let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
        Self::Status { status, headers: Vec::new(), body: serde_json::json!({ "detail": reason }).to_string() }
    }

    /// 429 with `Retry-After: <seconds>`, as the API throttles.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::Status {
            status: 429,
            headers: vec![("Retry-After".to_owned(), retry_after_secs.to_string())],
            body: r#"{"detail": "Request was throttled."}"#.to_owned(),
        }
    }

    /// How the fault bends a 200 list of users (the default shape for the other faults).
    pub(crate) fn shape(&self) -> Shape {
        match self {
            Self::OversizedPage(size) => Shape { page_size: Some(*size), ..Shape::default() },
            Self::EmptyPage => Shape { empty: true, ..Shape::default() },
            Self::DuplicateFirstUser => Shape { duplicate_first: true, ..Shape::default() },
            Self::CountDelta(delta) => Shape { count_delta: *delta, ..Shape::default() },
            Self::Delay(_)
            | Self::Status { .. }
            | Self::MalformedJson
            | Self::HtmlOk
            | Self::TruncatedBody
            | Self::ConnectionReset
            | Self::RedirectTo(_) => Shape::default(),
        }
    }

    /// The answer sent in place of the real one, for faults that replace it outright.
    pub(crate) fn replacement(&self) -> Option<Response> {
        let response = match self {
            Self::Status { status, headers, body } => status_response(*status, headers, body),
            Self::MalformedJson => {
                ([(header::CONTENT_TYPE, "application/json")], r#"{"count": 3, "results": ["#).into_response()
            }
            Self::HtmlOk => (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<!DOCTYPE html>\n<html><head><title>Error</title></head>\
                 <body><h1>Something went wrong</h1><p>Please try again later.</p></body></html>\n",
            )
                .into_response(),
            Self::RedirectTo(location) => match HeaderValue::try_from(location.as_str()) {
                Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
                Err(_) => {
                    tracing::warn!(%location, "fake API: redirect target is not a header value");
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            },
            Self::Delay(_)
            | Self::TruncatedBody
            | Self::ConnectionReset
            | Self::OversizedPage(_)
            | Self::DuplicateFirstUser
            | Self::CountDelta(_)
            | Self::EmptyPage => return None,
        };
        Some(response)
    }
}

fn status_response(status: u16, headers: &[(String, String)], body: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Body::from(body.to_owned()));
    *response.status_mut() = status;
    let map = response.headers_mut();
    for (name, value) in headers {
        match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            (Ok(name), Ok(value)) => {
                map.append(name, value);
            }
            _ => tracing::warn!(%name, %value, "fake API: skipping an invalid scripted header"),
        }
    }
    if !map.contains_key(header::CONTENT_TYPE) {
        let looks_json = body.trim_start().starts_with(['{', '[']);
        let content_type = if looks_json { "application/json" } else { "text/plain; charset=utf-8" };
        map.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

/// Faults are consumed one per request; a queued fault wins over the persistent one.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    pub queue: std::collections::VecDeque<Fault>,
    pub persistent: Option<Fault>,
}

impl FaultPlan {
    /// The fault the current request suffers, if any.
    pub fn next(&mut self) -> Option<Fault> {
        self.queue.pop_front().or_else(|| self.persistent.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_faults_come_first_in_order_then_the_persistent_one() {
        let mut plan = FaultPlan { persistent: Some(Fault::EmptyPage), ..FaultPlan::default() };
        plan.queue.push_back(Fault::status(500));
        plan.queue.push_back(Fault::HtmlOk);
        assert_eq!(plan.next(), Some(Fault::status(500)));
        assert_eq!(plan.next(), Some(Fault::HtmlOk));
        assert_eq!(plan.next(), Some(Fault::EmptyPage));
        assert_eq!(plan.next(), Some(Fault::EmptyPage));
        plan.persistent = None;
        assert_eq!(plan.next(), None);
    }

    #[test]
    fn status_fault_sends_its_headers_and_a_json_content_type() {
        let response = Fault::rate_limited(7).replacement().unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn only_replacing_faults_replace() {
        assert!(Fault::RedirectTo("http://127.0.0.1:1/x".into()).replacement().is_some());
        assert!(Fault::CountDelta(3).replacement().is_none());
        assert!(Fault::TruncatedBody.replacement().is_none());
    }
}
