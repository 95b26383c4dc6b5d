//! The account and the API tokens the fake serves on `GET /iam/clients/me` and
//! `GET /iam/v2/clients/{clientId}/tokens`, with builders that let a test say only what
//! matters to it.

use std::time::SystemTime;

use super::user::{ADMINISTRATORS, FakeGroup};

/// The account behind the key; serialized as the OpenAPI `ClientBase` (see `wire.rs`, which
/// fills the fields no metric reads with plausible constants).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeAccount {
    /// The account (client) id; the only `clientId` the tokens endpoint accepts.
    pub id: u64,
    /// `companyName`.
    pub company_name: String,
    /// new, trial, trialend, active, integration, paused, preparation or ready (any string is
    /// served as is, so a test can send a value the enum does not know yet).
    pub status: String,
    /// `has_active_admin`.
    pub has_active_admin: bool,
    /// `deleted`.
    pub deleted: bool,
    /// `is_test`.
    pub is_test: bool,
}

impl FakeAccount {
    /// An active production account with an active administrator.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            company_name: "Example Company".to_owned(),
            status: "active".to_owned(),
            has_active_admin: true,
            deleted: false,
            is_test: false,
        }
    }

    /// Sets the status.
    pub fn status(mut self, status: &str) -> Self {
        status.clone_into(&mut self.status);
        self
    }

    /// Sets `has_active_admin`.
    pub fn has_active_admin(mut self, has: bool) -> Self {
        self.has_active_admin = has;
        self
    }

    /// Sets the company name.
    pub fn company_name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.company_name);
        self
    }
}

/// The user who issued a token, with the role the token carries (`client_user` on the wire;
/// its `client_id` is the account's id, filled in when serving).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeTokenIssuer {
    /// `user_id`.
    pub user_id: u64,
    /// `user_name`.
    pub user_name: String,
    /// `user_email`.
    pub user_email: String,
    /// Whether the issuing user is deleted (`client_user.deleted`).
    pub deleted: bool,
    /// `role.id`: 1, 2, 5, 3009 or 3022 in the real API.
    pub role_id: u64,
    /// `role.name`, e.g. "Administrators".
    pub role_name: String,
}

impl FakeTokenIssuer {
    /// A live user `user_id` issuing tokens with the role of group `role_id` (its standard name,
    /// or "Unknown" for an id outside [`IAM_GROUPS`](super::IAM_GROUPS)).
    pub fn new(user_id: u64, role_id: u64) -> Self {
        let role_name = FakeGroup::standard(role_id).map_or_else(|| "Unknown".to_owned(), |g| g.name);
        Self {
            user_id,
            user_name: format!("User {user_id}"),
            user_email: format!("user{user_id}@example.com"),
            deleted: false,
            role_id,
            role_name,
        }
    }

    /// Sets the role by id and name (for a role the fake's table does not know).
    pub fn role(mut self, id: u64, name: &str) -> Self {
        self.role_id = id;
        name.clone_into(&mut self.role_name);
        self
    }

    /// Sets whether the issuing user is deleted.
    pub fn deleted(mut self, deleted: bool) -> Self {
        self.deleted = deleted;
        self
    }
}

/// One permanent API token as the fake stores it; serialized as the OpenAPI `TokenResponse`.
/// Dates are RFC 3339 strings in UTC, as the API sends them (`2021-01-01T12:00:00.000000Z`);
/// they are served as stored, so a test can also send a malformed one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeToken {
    /// Token id: the digits before `_` (or `$`, for v1 tokens) in the key itself.
    pub id: u64,
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: String,
    /// `exp_date`; `None` is sent as `null`: the token never expires.
    pub exp_date: Option<String>,
    /// `expired`. The API deletes an expired token soon after, so both flags may be seen.
    pub expired: bool,
    /// `deleted`. Deleted tokens are listed only on request (see the handler).
    pub deleted: bool,
    /// `created`.
    pub created: String,
    /// `last_usage`; `None` is sent as `null`: the token was never used.
    pub last_usage: Option<String>,
    /// Who issued it, and with which role.
    pub issuer: FakeTokenIssuer,
}

impl FakeToken {
    /// Token `id` named `name`, issued by administrator 1, created 2024-01-01, never
    /// expiring and never used.
    pub fn new(id: u64, name: &str) -> Self {
        Self {
            id,
            name: name.to_owned(),
            description: String::new(),
            exp_date: None,
            expired: false,
            deleted: false,
            created: "2024-01-01T00:00:00.000000Z".to_owned(),
            last_usage: None,
            issuer: FakeTokenIssuer::new(1, ADMINISTRATORS),
        }
    }

    /// Sets the description.
    pub fn description(mut self, description: &str) -> Self {
        description.clone_into(&mut self.description);
        self
    }

    /// Sets (RFC 3339) or clears (never expires) `exp_date`.
    pub fn exp_date(mut self, exp_date: Option<&str>) -> Self {
        self.exp_date = exp_date.map(str::to_owned);
        self
    }

    /// Sets `exp_date` to `at`.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.exp_date = Some(rfc3339(at));
        self
    }

    /// Sets (RFC 3339) or clears (never used) `last_usage`.
    pub fn last_usage(mut self, last_usage: Option<&str>) -> Self {
        self.last_usage = last_usage.map(str::to_owned);
        self
    }

    /// Sets `last_usage` to `at`.
    pub fn last_used_at(mut self, at: SystemTime) -> Self {
        self.last_usage = Some(rfc3339(at));
        self
    }

    /// Sets `created` (RFC 3339).
    pub fn created(mut self, created: &str) -> Self {
        created.clone_into(&mut self.created);
        self
    }

    /// Sets `created` to `at`.
    pub fn created_at(mut self, at: SystemTime) -> Self {
        self.created = rfc3339(at);
        self
    }

    /// Sets the `expired` flag.
    pub fn expired(mut self, expired: bool) -> Self {
        self.expired = expired;
        self
    }

    /// Sets the `deleted` flag.
    pub fn deleted(mut self, deleted: bool) -> Self {
        self.deleted = deleted;
        self
    }

    /// Sets the issuer.
    pub fn issued_by(mut self, issuer: FakeTokenIssuer) -> Self {
        self.issuer = issuer;
        self
    }
}

/// `at` as the API writes dates: RFC 3339, UTC, microseconds.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_micros(at).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn dates_are_written_as_the_api_writes_them() {
        let at = UNIX_EPOCH + Duration::from_secs(1_609_502_400);
        assert_eq!(rfc3339(at), "2021-01-01T12:00:00.000000Z");
        let token = FakeToken::new(7, "t").expires_at(at).last_used_at(at).created_at(at);
        assert_eq!(token.exp_date.as_deref(), Some("2021-01-01T12:00:00.000000Z"));
        assert_eq!(token.last_usage, token.exp_date);
        assert_eq!(token.created, "2021-01-01T12:00:00.000000Z");
    }

    #[test]
    fn new_token_never_expires_was_never_used_and_belongs_to_an_administrator() {
        let token = FakeToken::new(3, "ci");
        assert_eq!((token.exp_date, token.last_usage), (None, None));
        assert!(!token.expired && !token.deleted && !token.issuer.deleted);
        assert_eq!((token.issuer.role_id, token.issuer.role_name.as_str()), (1, "Administrators"));
        assert_eq!(FakeTokenIssuer::new(9, 3022).role_name, "Purge and Prefetch only (API)");
        assert_eq!(FakeTokenIssuer::new(9, 4).role_name, "Unknown");
    }
}
