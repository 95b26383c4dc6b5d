//! JSON shapes of `GET /iam/users`, `GET /iam/clients/me` and
//! `GET /iam/v2/clients/{clientId}/tokens`, written to match the OpenAPI contract field for field.
//!
//! Serialization borrows from the stored data so a page costs only its own size.

use serde::{Serialize, Serializer};

use super::account::{FakeAccount, FakeToken};
use super::user::{FakeGroup, FakeUser};

/// The OpenAPI `User` schema. `client_and_roles` is not stored: the real API derives it from
/// the account and the groups, so the fake does the same and the two can never disagree.
#[derive(Serialize)]
struct WireUser<'a> {
    id: u64,
    email: &'a str,
    name: Option<&'a str>,
    lang: &'a str,
    phone: Option<&'a str>,
    company: &'a str,
    reseller: u64,
    client: u64,
    deleted: bool,
    groups: &'a [FakeGroup],
    activated: bool,
    sso_auth: bool,
    two_fa: bool,
    auth_types: &'a [String],
    user_type: &'a str,
    is_active: bool,
    client_and_roles: [ClientAndRoles<'a>; 1],
}

#[derive(Serialize)]
struct ClientAndRoles<'a> {
    client_id: u64,
    client_company_name: &'a str,
    /// Role ids as strings, as the API sends them (`["2"]`).
    user_roles: Vec<String>,
    user_id: u64,
}

impl Serialize for FakeGroup {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct WireGroup<'a> {
            id: u64,
            name: &'a str,
        }
        WireGroup { id: self.id, name: &self.name }.serialize(serializer)
    }
}

impl Serialize for FakeUser {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireUser {
            id: self.id,
            email: &self.email,
            name: self.name.as_deref(),
            lang: &self.lang,
            phone: self.phone.as_deref(),
            company: &self.company,
            reseller: self.reseller,
            client: self.client,
            deleted: self.deleted,
            groups: &self.groups,
            activated: self.activated,
            sso_auth: self.sso_auth,
            two_fa: self.two_fa,
            auth_types: &self.auth_types,
            user_type: &self.user_type,
            is_active: self.is_active,
            client_and_roles: [ClientAndRoles {
                client_id: self.client,
                client_company_name: &self.company,
                user_roles: self.groups.iter().map(|g| g.id.to_string()).collect(),
                user_id: self.id,
            }],
        }
        .serialize(serializer)
    }
}

/// The OpenAPI `PaginatedUsersArray`. `count` is signed because a scripted fault may report a
/// count that does not match the list.
#[derive(Serialize)]
pub(crate) struct Envelope<'a> {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<&'a FakeUser>,
}

/// The services of `ClientBase.capabilities` and `serviceStatuses` (the `ServiceName` enum).
const SERVICES: [&str; 6] = ["CDN", "STORAGE", "STREAMING", "DNS", "DDOS", "CLOUD"];

/// The OpenAPI `ClientBase`: every required field, plus the optional ones a real answer
/// carries. Only `id`, `status`, `has_active_admin`, `deleted`, `is_test` and `companyName`
/// come from the [`FakeAccount`]; the rest are plausible constants. The optional `users` list is
/// left out: no client of the fake reads it, and it would grow with the population.
#[derive(Serialize)]
pub(crate) struct WireAccount<'a> {
    id: u64,
    email: String,
    phone: Option<&'a str>,
    name: Option<&'a str>,
    status: &'a str,
    #[serde(rename = "companyName")]
    company_name: &'a str,
    website: &'a str,
    #[serde(rename = "currentUser")]
    current_user: u64,
    capabilities: [&'static str; 6],
    #[serde(rename = "serviceStatuses")]
    service_statuses: serde_json::Map<String, serde_json::Value>,
    #[serde(rename = "paidFeatures")]
    paid_features: serde_json::Map<String, serde_json::Value>,
    #[serde(rename = "freeFeatures")]
    free_features: serde_json::Map<String, serde_json::Value>,
    #[serde(rename = "entryBaseDomain")]
    entry_base_domain: Option<&'a str>,
    signup_process: Option<&'a str>,
    deleted: bool,
    bill_type: &'a str,
    custom_id: Option<&'a str>,
    country_code: &'a str,
    is_test: bool,
    has_active_admin: bool,
}

impl<'a> WireAccount<'a> {
    /// The account as `GET /iam/clients/me` answers for the key of user `current_user`.
    pub fn new(account: &'a FakeAccount, current_user: u64) -> Self {
        // Services follow the account where ServiceStatus has the same word (it has no
        // `integration`, `preparation` or `ready`).
        let service_status = match account.status.as_str() {
            s @ ("new" | "trial" | "trialend" | "paused") => s,
            _ => "active",
        };
        let service_statuses = SERVICES
            .iter()
            .map(|s| ((*s).to_owned(), serde_json::json!({ "status": service_status, "enabled": true })))
            .collect();
        Self {
            id: account.id,
            email: format!("admin@client{}.example.com", account.id),
            phone: None,
            name: None,
            status: &account.status,
            company_name: &account.company_name,
            website: "",
            current_user,
            capabilities: SERVICES,
            service_statuses,
            paid_features: serde_json::Map::new(),
            free_features: serde_json::Map::new(),
            entry_base_domain: None,
            signup_process: Some("sign_up_full"),
            deleted: account.deleted,
            bill_type: "postpaid",
            custom_id: None,
            country_code: "LU",
            is_test: account.is_test,
            has_active_admin: account.has_active_admin,
        }
    }
}

/// The OpenAPI `TokenResponse`: `Token-2` (name, description, exp_date, client_user.role) and
/// the read-only fields. `client_user.client_id` is the account's id.
pub(crate) struct WireToken<'a> {
    pub token: &'a FakeToken,
    pub client_id: u64,
}

impl Serialize for WireToken<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Token<'a> {
            id: u64,
            name: &'a str,
            description: &'a str,
            exp_date: Option<&'a str>,
            expired: bool,
            deleted: bool,
            created: &'a str,
            last_usage: Option<&'a str>,
            client_user: ClientUser<'a>,
        }
        #[derive(Serialize)]
        struct ClientUser<'a> {
            user_id: u64,
            user_name: &'a str,
            user_email: &'a str,
            client_id: u64,
            deleted: bool,
            role: WireRole<'a>,
        }
        #[derive(Serialize)]
        struct WireRole<'a> {
            id: u64,
            name: &'a str,
        }
        let t = self.token;
        let issuer = &t.issuer;
        Token {
            id: t.id,
            name: &t.name,
            description: &t.description,
            exp_date: t.exp_date.as_deref(),
            expired: t.expired,
            deleted: t.deleted,
            created: &t.created,
            last_usage: t.last_usage.as_deref(),
            client_user: ClientUser {
                user_id: issuer.user_id,
                user_name: &issuer.user_name,
                user_email: &issuer.user_email,
                client_id: self.client_id,
                deleted: issuer.deleted,
                role: WireRole { id: issuer.role_id, name: &issuer.role_name },
            },
        }
        .serialize(serializer)
    }
}

/// The body of a 401, worded as the API words it.
pub(crate) const NOT_AUTHENTICATED: &str = r#"{"detail": "Authentication credentials were not provided."}"#;

/// The body of a 403 (the `403` response of the OpenAPI), as for a key that is not an
/// administrator's on the tokens endpoint.
pub(crate) const FORBIDDEN: &str = r#"{"detail": "You do not have permission to perform this action."}"#;

/// The body of the tokens endpoint's 404 ("Account not found.").
pub(crate) const ACCOUNT_NOT_FOUND: &str = r#"{"detail": "Account not found."}"#;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::user::ADMINISTRATORS;

    #[test]
    fn user_has_every_field_of_the_openapi_schema() {
        let user = FakeUser::new(42).in_group(ADMINISTRATORS, "Administrators").name(None);
        let value = serde_json::to_value(&user).unwrap();
        assert_eq!(
            value,
            json!({
                "id": 42,
                "email": "user42@example.com",
                "name": null,
                "lang": "en",
                "phone": null,
                "company": "Example Company",
                "reseller": 1,
                "client": 300_001,
                "deleted": false,
                "groups": [{"id": 2, "name": "Users"}, {"id": 1, "name": "Administrators"}],
                "activated": true,
                "sso_auth": false,
                "two_fa": true,
                "auth_types": ["password"],
                "user_type": "common",
                "is_active": true,
                "client_and_roles": [{
                    "client_id": 300_001,
                    "client_company_name": "Example Company",
                    "user_roles": ["2", "1"],
                    "user_id": 42
                }]
            })
        );
    }

    #[test]
    fn account_has_every_required_field_of_client_base() {
        let account = FakeAccount::new(7).status("paused").has_active_admin(false);
        let value = serde_json::to_value(WireAccount::new(&account, 42)).unwrap();
        for field in [
            "id",
            "email",
            "name",
            "status",
            "companyName",
            "deleted",
            "is_test",
            "has_active_admin",
            "currentUser",
            "capabilities",
            "serviceStatuses",
            "paidFeatures",
            "freeFeatures",
            "entryBaseDomain",
            "bill_type",
        ] {
            assert!(value.get(field).is_some(), "ClientBase requires {field}: {value}");
        }
        assert_eq!(value["id"], 7);
        assert_eq!(value["status"], "paused");
        assert_eq!(value["companyName"], "Example Company");
        assert_eq!(value["has_active_admin"], false);
        assert_eq!(value["deleted"], false);
        assert_eq!(value["is_test"], false);
        assert_eq!(value["currentUser"], 42);
        assert_eq!(value["serviceStatuses"]["CDN"], json!({"status": "paused", "enabled": true}));
        assert_eq!(value["name"], serde_json::Value::Null);
    }

    #[test]
    fn token_has_every_field_of_token_response() {
        use crate::account::FakeTokenIssuer;
        let token = FakeToken::new(42, "ci")
            .description("deploys")
            .exp_date(Some("2030-01-01T00:00:00.000000Z"))
            .issued_by(FakeTokenIssuer::new(5, 5).deleted(true));
        let value = serde_json::to_value(WireToken { token: &token, client_id: 300_001 }).unwrap();
        assert_eq!(
            value,
            json!({
                "id": 42,
                "name": "ci",
                "description": "deploys",
                "exp_date": "2030-01-01T00:00:00.000000Z",
                "expired": false,
                "deleted": false,
                "created": "2024-01-01T00:00:00.000000Z",
                "last_usage": null,
                "client_user": {
                    "user_id": 5,
                    "user_name": "User 5",
                    "user_email": "user5@example.com",
                    "client_id": 300_001,
                    "deleted": true,
                    "role": {"id": 5, "name": "Engineers"}
                }
            })
        );
        let never = FakeToken::new(1, "forever");
        let value = serde_json::to_value(WireToken { token: &never, client_id: 1 }).unwrap();
        assert_eq!(value["exp_date"], serde_json::Value::Null, "null, not absent: {value}");
    }

    #[test]
    fn not_authenticated_body_is_json() {
        let v: serde_json::Value = serde_json::from_str(NOT_AUTHENTICATED).unwrap();
        assert_eq!(v["detail"], "Authentication credentials were not provided.");
        for body in [FORBIDDEN, ACCOUNT_NOT_FOUND] {
            assert!(serde_json::from_str::<serde_json::Value>(body).unwrap()["detail"].is_string());
        }
    }
}
