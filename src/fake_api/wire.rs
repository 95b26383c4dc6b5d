//! JSON shapes of `GET /iam/users`, written to match the OpenAPI contract field for field.
//!
//! Serialization borrows from the stored users so a page costs only its own size.

use serde::{Serialize, Serializer};

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

/// The body of a 401, worded as the API words it.
pub(crate) const NOT_AUTHENTICATED: &str = r#"{"detail": "Authentication credentials were not provided."}"#;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fake_api::user::ADMINISTRATORS;

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
    fn not_authenticated_body_is_json() {
        let v: serde_json::Value = serde_json::from_str(NOT_AUTHENTICATED).unwrap();
        assert_eq!(v["detail"], "Authentication credentials were not provided.");
    }
}
