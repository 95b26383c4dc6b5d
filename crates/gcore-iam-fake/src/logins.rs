//! The login log the fake serves on `GET /iam/activity_log/logins` (OpenAPI operation
//! `iamGetLastLoginTime`): newest first, paged by `limit`/`offset`, in the envelope
//! `{count, next, previous, result}` (`result`, not `results`, as the contract spells it).
//!
//! Tests append events ([`super::FakeApi::push_logins`]), make the log grow while a client
//! pages it ([`super::FakeApi::push_logins_after`]: the events land at the head once a number of
//! pages have been served, so every later offset shifts), and make the endpoint answer 403 or
//! 404 ([`super::FakeApi::set_logins_forbidden`], [`super::FakeApi::set_logins_not_found`]).

use std::time::SystemTime;

use axum::http::{StatusCode, Uri};
use serde::{Serialize, Serializer};
use serde_json::json;

use super::account::rfc3339;
use super::pagination::{self, BadQuery, PageRequest};

/// One event of the login log; serialized as the OpenAPI `LastLoginTimeItem`. `login_at` is
/// served as stored, so a test can also send a malformed one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeLogin {
    /// The event's id.
    pub id: u64,
    /// `user`: the id of the user who logged in (or tried to).
    pub user: u64,
    /// `login_at`, RFC 3339.
    pub login_at: String,
    /// `ip_address`.
    pub ip_address: String,
    /// `user_agent`.
    pub user_agent: String,
    /// `is_successful`.
    pub is_successful: bool,
    /// `auth_type` (the OpenAPI's example is `OAUTH`).
    pub auth_type: String,
}

impl FakeLogin {
    /// Event `id`: a successful password login of `user`, now, from a documentation address.
    pub fn new(id: u64, user: u64) -> Self {
        Self {
            id,
            user,
            login_at: rfc3339(SystemTime::now()),
            ip_address: "192.0.2.10".to_owned(),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0".to_owned(),
            is_successful: true,
            auth_type: "password".to_owned(),
        }
    }

    /// Sets `login_at` to `at`.
    pub fn at(mut self, at: SystemTime) -> Self {
        self.login_at = rfc3339(at);
        self
    }

    /// Sets `login_at` as written (a test may send a malformed date).
    pub fn login_at(mut self, login_at: &str) -> Self {
        login_at.clone_into(&mut self.login_at);
        self
    }

    /// Marks the attempt as failed.
    pub fn failed(mut self) -> Self {
        self.is_successful = false;
        self
    }

    /// Sets `auth_type`.
    pub fn auth_type(mut self, auth_type: &str) -> Self {
        auth_type.clone_into(&mut self.auth_type);
        self
    }

    /// Sets `ip_address`.
    pub fn ip(mut self, ip: &str) -> Self {
        ip.clone_into(&mut self.ip_address);
        self
    }

    /// Sets `user_agent`.
    pub fn user_agent(mut self, user_agent: &str) -> Self {
        user_agent.clone_into(&mut self.user_agent);
        self
    }
}

impl Serialize for FakeLogin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Item<'a> {
            id: u64,
            login_at: &'a str,
            ip_address: &'a str,
            user_agent: &'a str,
            is_successful: bool,
            auth_type: &'a str,
            user: u64,
        }
        Item {
            id: self.id,
            login_at: &self.login_at,
            ip_address: &self.ip_address,
            user_agent: &self.user_agent,
            is_successful: self.is_successful,
            auth_type: &self.auth_type,
            user: self.user,
        }
        .serialize(serializer)
    }
}

/// Events to push at the head once the log has answered `after` pages in all.
#[derive(Debug)]
struct Shift {
    after: u64,
    events: Vec<FakeLogin>,
}

/// The log and how its endpoint answers.
#[derive(Debug, Default)]
pub(crate) struct LoginLog {
    /// Oldest first (pushing is cheap); served newest first.
    events: Vec<FakeLogin>,
    /// 403 or 404 instead of the log, while set.
    status: Option<StatusCode>,
    /// Pages served so far (200 answers).
    served: u64,
    shifts: Vec<Shift>,
}

impl LoginLog {
    /// Appends events in the order they happened: the last one becomes the newest.
    pub fn push(&mut self, events: impl IntoIterator<Item = FakeLogin>) {
        self.events.extend(events);
    }

    /// Pushes `events` once `pages` more pages have been served.
    pub fn push_after(&mut self, pages: u64, events: Vec<FakeLogin>) {
        self.shifts.push(Shift { after: self.served + pages, events });
    }

    pub fn set_status(&mut self, status: Option<StatusCode>) {
        self.status = status;
    }

    /// The events, oldest first.
    pub fn events(&self) -> &[FakeLogin] {
        &self.events
    }

    /// Drops the oldest events beyond `max` (the demo's log must not grow for days).
    pub fn truncate_oldest(&mut self, max: usize) {
        let excess = self.events.len().saturating_sub(max);
        self.events.drain(..excess);
    }

    /// The answer to one GET (key and method already checked): the status, or the page as JSON.
    pub fn answer(&mut self, uri: &Uri) -> (StatusCode, String) {
        if let Some(status) = self.status {
            let body =
                if status == StatusCode::NOT_FOUND { r#"{"detail": "Not found."}"# } else { super::wire::FORBIDDEN };
            return (status, body.to_owned());
        }
        let page = match PageRequest::parse(uri) {
            Ok(page) => page,
            Err(BadQuery(body)) => return (StatusCode::BAD_REQUEST, body.to_string()),
        };
        let total = self.events.len();
        // Without `limit` the whole log, in the same envelope.
        let limit = page.limit.unwrap_or(total.max(1));
        let range = pagination::page_range(total, page.offset, limit);
        let result: Vec<&FakeLogin> = range.map(|position| &self.events[total - 1 - position]).collect();
        let body = json!({
            "count": total,
            "next": (page.offset.saturating_add(limit) < total).then(|| link(page.offset + limit, limit)),
            "previous": (page.offset > 0).then(|| link(page.offset.min(total).saturating_sub(limit), limit)),
            "result": result,
        });
        self.served += 1;
        let served = self.served;
        let (due, later): (Vec<Shift>, Vec<Shift>) = self.shifts.drain(..).partition(|s| s.after <= served);
        self.shifts = later;
        for shift in due {
            self.events.extend(shift.events);
        }
        (StatusCode::OK, body.to_string())
    }
}

/// The relative links of the OpenAPI's example (`/activity_log/logins?offset=20&limit=10`).
fn link(offset: usize, limit: usize) -> String {
    format!("/activity_log/logins?offset={offset}&limit={limit}")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn ids(body: &str) -> Vec<u64> {
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        value["result"].as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect()
    }

    fn get(log: &mut LoginLog, query: &str) -> (StatusCode, String) {
        log.answer(&format!("/iam/activity_log/logins?{query}").parse().unwrap())
    }

    #[test]
    fn an_event_has_every_field_of_the_schema() {
        let at = UNIX_EPOCH + Duration::from_secs(1_731_511_410);
        let event = FakeLogin::new(7, 123_456).at(at).failed().auth_type("OAUTH");
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({
                "id": 7,
                "login_at": "2024-11-13T15:23:30.000000Z",
                "ip_address": "192.0.2.10",
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
                "is_successful": false,
                "auth_type": "OAUTH",
                "user": 123_456
            })
        );
    }

    #[test]
    fn pages_newest_first_with_result_key_and_links() {
        let mut log = LoginLog::default();
        log.push((1..=5).map(|id| FakeLogin::new(id, 1)));
        let (status, body) = get(&mut log, "limit=2&offset=0");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ids(&body), [5, 4]);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["count"], 5);
        assert_eq!(value["next"], "/activity_log/logins?offset=2&limit=2");
        assert!(value["previous"].is_null() && value.get("results").is_none());
        assert_eq!(ids(&get(&mut log, "limit=2&offset=4").1), [1]);
        assert_eq!(ids(&get(&mut log, "limit=2&offset=9").1), Vec::<u64>::new());
        assert_eq!(ids(&get(&mut log, "").1), [5, 4, 3, 2, 1]);
        assert_eq!(get(&mut log, "limit=0").0, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn events_pushed_after_some_pages_shift_the_later_offsets() {
        let mut log = LoginLog::default();
        log.push((1..=6).map(|id| FakeLogin::new(id, 1)));
        log.push_after(1, vec![FakeLogin::new(7, 1), FakeLogin::new(8, 1)]);
        assert_eq!(ids(&get(&mut log, "limit=3&offset=0").1), [6, 5, 4]);
        // Two events landed at the head: the second page repeats two of the first.
        assert_eq!(ids(&get(&mut log, "limit=3&offset=3").1), [5, 4, 3]);
    }

    #[test]
    fn status_replaces_the_log_and_truncation_drops_the_oldest() {
        let mut log = LoginLog::default();
        log.push((1..=4).map(|id| FakeLogin::new(id, 1)));
        log.set_status(Some(StatusCode::FORBIDDEN));
        assert_eq!(get(&mut log, "limit=2").0, StatusCode::FORBIDDEN);
        log.set_status(Some(StatusCode::NOT_FOUND));
        assert_eq!(get(&mut log, "limit=2").0, StatusCode::NOT_FOUND);
        log.set_status(None);
        log.truncate_oldest(3);
        assert_eq!(ids(&get(&mut log, "limit=10").1), [4, 3, 2]);
    }
}
