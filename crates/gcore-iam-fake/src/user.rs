//! The users the fake API stores, and builders that let a test say only what matters to it.

/// The five groups Gcore IAM knows, as `(id, name)`; ids and names are fixed by the API. The
/// exporter keeps its own copy (`snapshot::KNOWN_GROUPS`: it cannot depend on this crate
/// beyond `--demo`); the exporter's `tests/contract.rs` keeps the two equal.
pub const IAM_GROUPS: [(u64, &str); 5] = [
    (ADMINISTRATORS, "Administrators"),
    (USERS, "Users"),
    (ENGINEERS, "Engineers"),
    (PURGE_API_WEB, "Purge and Prefetch only (API+Web)"),
    (PURGE_API, "Purge and Prefetch only (API)"),
];

/// Group id of "Administrators".
pub const ADMINISTRATORS: u64 = 1;
/// Group id of "Users".
pub const USERS: u64 = 2;
/// Group id of "Engineers".
pub const ENGINEERS: u64 = 5;
/// Group id of "Purge and Prefetch only (API+Web)".
pub const PURGE_API_WEB: u64 = 3009;
/// Group id of "Purge and Prefetch only (API)".
pub const PURGE_API: u64 = 3022;

/// The account (`client`) every user built by [`FakeUser::new`] belongs to.
pub const DEFAULT_CLIENT: u64 = 300_001;

/// A group membership as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeGroup {
    /// Group id (1, 2, 5, 3009 or 3022 in the real API).
    pub id: u64,
    /// Group name, as listed in [`IAM_GROUPS`].
    pub name: String,
}

impl FakeGroup {
    /// A group with this id and name.
    pub fn new(id: u64, name: impl Into<String>) -> Self {
        Self { id, name: name.into() }
    }

    /// The standard group with this id, `None` if the id is not one of [`IAM_GROUPS`].
    pub fn standard(id: u64) -> Option<Self> {
        IAM_GROUPS.iter().find(|(gid, _)| *gid == id).map(|(gid, name)| Self::new(*gid, *name))
    }
}

/// One user as the fake API stores it; serialized exactly as the OpenAPI `User` schema
/// (see `wire.rs`, which also derives `client_and_roles` from these fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeUser {
    /// User id, unique within the fake.
    pub id: u64,
    /// Email address.
    pub email: String,
    /// Display name; the API sends `null` for users who never set one.
    pub name: Option<String>,
    /// Phone; `null` when unset.
    pub phone: Option<String>,
    /// Company name of the account.
    pub company: String,
    /// Control-panel language: de, en, ru, zh or az.
    pub lang: String,
    /// Services provider (reseller) id.
    pub reseller: u64,
    /// Account id.
    pub client: u64,
    /// Deleted users are still listed, with this flag set.
    pub deleted: bool,
    /// Group memberships; a user may be in more than one group.
    pub groups: Vec<FakeGroup>,
    /// Whether the user confirmed the email (an invitation not yet accepted is `false`).
    pub activated: bool,
    /// Whether the user may log in via SAML SSO.
    pub sso_auth: bool,
    /// Whether two-step verification is on.
    pub two_fa: bool,
    /// Any of password, sso, github, google-oauth2.
    pub auth_types: Vec<String>,
    /// common, reseller or seller.
    pub user_type: String,
    /// User activity flag.
    pub is_active: bool,
}

impl FakeUser {
    /// A plain user: active, activated, common, in group Users (2), password auth, 2FA on.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            email: format!("user{id}@example.com"),
            name: Some(format!("User {id}")),
            phone: None,
            company: "Example Company".to_owned(),
            lang: "en".to_owned(),
            reseller: 1,
            client: DEFAULT_CLIENT,
            deleted: false,
            groups: vec![FakeGroup::new(USERS, "Users")],
            activated: true,
            sso_auth: false,
            two_fa: true,
            auth_types: vec!["password".to_owned()],
            user_type: "common".to_owned(),
            is_active: true,
        }
    }

    /// Adds a group membership (kept once if already there); `new` starts in Users.
    pub fn in_group(mut self, id: u64, name: &str) -> Self {
        if !self.is_in_group(id) {
            self.groups.push(FakeGroup::new(id, name));
        }
        self
    }

    /// Replaces all memberships; `&[]` leaves the user in no group.
    pub fn groups(mut self, groups: &[(u64, &str)]) -> Self {
        self.groups = groups.iter().map(|(id, name)| FakeGroup::new(*id, *name)).collect();
        self
    }

    /// Sets two-step verification.
    pub fn two_fa(mut self, on: bool) -> Self {
        self.two_fa = on;
        self
    }

    /// Sets whether the email was confirmed.
    pub fn activated(mut self, activated: bool) -> Self {
        self.activated = activated;
        self
    }

    /// Sets the deletion flag.
    pub fn deleted(mut self, deleted: bool) -> Self {
        self.deleted = deleted;
        self
    }

    /// Replaces the auth types. Does not touch `sso_auth`, which the API reports separately.
    pub fn auth_types(mut self, types: &[&str]) -> Self {
        self.auth_types = types.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// Sets the user type (common, reseller, seller).
    pub fn user_type(mut self, user_type: &str) -> Self {
        user_type.clone_into(&mut self.user_type);
        self
    }

    /// Sets the SAML SSO flag.
    pub fn sso(mut self, sso_auth: bool) -> Self {
        self.sso_auth = sso_auth;
        self
    }

    /// Sets the activity flag.
    pub fn active(mut self, is_active: bool) -> Self {
        self.is_active = is_active;
        self
    }

    /// Sets the email.
    pub fn email(mut self, email: &str) -> Self {
        email.clone_into(&mut self.email);
        self
    }

    /// Sets or clears (`None` serializes as `null`) the name.
    pub fn name(mut self, name: Option<&str>) -> Self {
        self.name = name.map(str::to_owned);
        self
    }

    /// Sets or clears the phone.
    pub fn phone(mut self, phone: Option<&str>) -> Self {
        self.phone = phone.map(str::to_owned);
        self
    }

    /// Sets the language.
    pub fn lang(mut self, lang: &str) -> Self {
        lang.clone_into(&mut self.lang);
        self
    }

    /// Sets the account id.
    pub fn client(mut self, client: u64) -> Self {
        self.client = client;
        self
    }

    /// Whether the user is a member of group `id`.
    pub fn is_in_group(&self, id: u64) -> bool {
        self.groups.iter().any(|g| g.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_user_is_a_plain_secured_member_of_users() {
        let u = FakeUser::new(7);
        assert_eq!(u.groups, vec![FakeGroup::new(USERS, "Users")]);
        assert!(u.two_fa && u.activated && u.is_active && !u.deleted && !u.sso_auth);
        assert_eq!(u.auth_types, ["password"]);
        assert_eq!(u.user_type, "common");
    }

    #[test]
    fn in_group_adds_once_and_groups_replaces() {
        let u = FakeUser::new(1).in_group(ADMINISTRATORS, "Administrators").in_group(ADMINISTRATORS, "Administrators");
        assert_eq!(u.groups.len(), 2);
        let u = u.groups(&[(ENGINEERS, "Engineers")]);
        assert_eq!(u.groups, vec![FakeGroup::new(ENGINEERS, "Engineers")]);
    }

    #[test]
    fn standard_groups_resolve_by_id() {
        assert_eq!(FakeGroup::standard(3022).unwrap().name, "Purge and Prefetch only (API)");
        assert_eq!(FakeGroup::standard(4), None);
    }
}
