//! The wire format of `GET /iam/activity_log/logins` (OpenAPI `LastLoginTimeSchema`): the
//! envelope `{count, next, previous, result}`. Tolerated, as for the users: `results` for
//! `result`, a bare array, `null` where a value is expected, a `count` written `12.0`. Only the
//! fields the metrics use are read; the IP address and the user agent are skipped unread.
//!
//! Pages hold at most a thousand events (the API caps `limit`), so a page is collected rather
//! than scanned like the users' pages.

use std::borrow::Cow;

use serde::Deserialize;

use crate::credentials::parse_timestamp;
use crate::logins::{LoginEvent, LoginPage};

#[derive(Deserialize)]
struct WireEvent<'a> {
    id: u64,
    #[serde(default, borrow)]
    login_at: Option<Cow<'a, str>>,
    #[serde(default)]
    is_successful: Option<bool>,
    #[serde(default, borrow)]
    auth_type: Option<Cow<'a, str>>,
    #[serde(default)]
    user: Option<u64>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    count: Option<serde_json::Number>,
    /// `None`: no such key; `Some(None)`: `null`.
    #[serde(default, borrow, alias = "results", deserialize_with = "present")]
    result: Option<Option<Vec<WireEvent<'a>>>>,
}

/// A key that is there, even with `null`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// One page as read, its strings borrowed from the body unless they had escapes.
pub struct WirePage<'a> {
    count: Option<u64>,
    events: Vec<WireEvent<'a>>,
}

/// Parses one page of the login log.
pub fn parse_login_page(body: &[u8]) -> Result<WirePage<'_>, serde_json::Error> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let events: Vec<WireEvent<'_>> = serde_json::from_slice(body)?;
        return Ok(WirePage { count: None, events });
    }
    let envelope: Envelope<'_> = serde_json::from_slice(body)?;
    let count = envelope.count.and_then(|n| {
        n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19).map(|f| f as u64))
    });
    // `result: null` reads as an empty page; a missing key is not a page of the log.
    let events = match envelope.result {
        Some(events) => events.unwrap_or_default(),
        None => return Err(serde::de::Error::missing_field("result")),
    };
    Ok(WirePage { count, events })
}

impl WirePage<'_> {
    /// The page as the tracker reads it. A missing or null `is_successful` reads as a failure,
    /// a missing `auth_type` as `unknown`; a `login_at` that is not a date leaves the event out
    /// of the last-login times (it is still counted).
    pub fn page(&self) -> LoginPage<'_> {
        let events = self
            .events
            .iter()
            .map(|e| LoginEvent {
                id: e.id,
                login_at: e.login_at.as_deref().and_then(parse_timestamp).map(|t| t.floor() as i64),
                successful: e.is_successful.unwrap_or(false),
                auth_type: e.auth_type.as_deref().unwrap_or("unknown"),
                user: e.user,
            })
            .collect();
        LoginPage { count: self.count, events }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_with_result_as_the_openapi_spells_it() {
        let body = br#"{"count": 2, "next": null, "previous": null, "result": [
            {"id": 9, "login_at": "2024-11-13T15:23:30Z", "ip_address": "192.168.1.1",
             "user_agent": "Mozilla/5.0", "is_successful": true, "auth_type": "OAUTH", "user": 123456},
            {"id": 8, "login_at": "not a date", "is_successful": null, "auth_type": null, "user": null}
        ]}"#;
        let wire = parse_login_page(body).unwrap();
        let page = wire.page();
        assert_eq!(page.count, Some(2));
        assert_eq!(
            page.events[0],
            LoginEvent {
                id: 9,
                login_at: Some(1_731_511_410),
                successful: true,
                auth_type: "OAUTH",
                user: Some(123_456)
            }
        );
        assert_eq!(
            page.events[1],
            LoginEvent { id: 8, login_at: None, successful: false, auth_type: "unknown", user: None }
        );
    }

    #[test]
    fn results_a_bare_array_and_a_float_count_are_tolerated() {
        let page = parse_login_page(br#"{"count": 3.0, "results": [{"id": 1}]}"#).unwrap();
        assert_eq!((page.page().count, page.page().events.len()), (Some(3), 1));
        let page = parse_login_page(br#" [{"id": 1, "auth_type": "pass\u0077ord"}]"#).unwrap();
        assert_eq!(page.page().count, None);
        assert_eq!(page.page().events[0].auth_type, "password");
        assert!(parse_login_page(br#"{"count": 1, "result": null}"#).unwrap().page().events.is_empty());
    }

    #[test]
    fn what_is_not_a_page_of_the_log_is_refused() {
        for body in
            [&br#"{"count": 1}"#[..], br#"{"result": [{"user": 1}]}"#, br#"{"result": [{"id": -1}]}"#, b"<html>", b""]
        {
            assert!(parse_login_page(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
