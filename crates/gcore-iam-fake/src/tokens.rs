//! The filters of `GET /iam/v2/clients/{clientId}/tokens`: `deleted`, `issued_by`,
//! `not_issued_by` and `role`, parsed as strictly as the real API (a bad value is a 400).
//!
//! `deleted` is taken as the OpenAPI words it, odd as that is: "`True` - API token was not
//! deleted; `False` - API token was deleted". The OpenAPI names no default; without the
//! parameter the fake lists the tokens that are not deleted, as the console does. A client that
//! wants to be safe either way sends no `deleted` and drops tokens flagged `deleted` itself.

use axum::extract::Query;
use axum::http::Uri;
use serde_json::json;

use super::account::FakeToken;
use super::pagination::BadQuery;

/// What a request to the tokens endpoint asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TokenQuery {
    /// List deleted tokens instead of live ones (`deleted=false`, per the OpenAPI's wording).
    pub deleted_only: bool,
    pub issued_by: Option<u64>,
    pub not_issued_by: Option<u64>,
    /// A group id ("5") or name ("Engineers", any case).
    pub role: Option<String>,
}

impl TokenQuery {
    /// Parses the filters from the request URI; the first occurrence of each counts, unknown
    /// parameters are ignored.
    pub fn parse(uri: &Uri) -> Result<Self, BadQuery> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| BadQuery(json!({ "detail": e.body_text() })))?;
        let first = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let deleted_only = match first("deleted") {
            None => false,
            // As Django REST framework's BooleanField reads them.
            Some("true" | "True" | "TRUE" | "1" | "yes" | "on") => false,
            Some("false" | "False" | "FALSE" | "0" | "no" | "off") => true,
            Some(_) => return Err(BadQuery(json!({ "deleted": ["Must be a valid boolean."] }))),
        };
        let user = |key: &str| {
            first(key)
                .map(|v| v.parse::<u64>().map_err(|_| BadQuery(json!({ key: ["A valid integer is required."] }))))
                .transpose()
        };
        Ok(Self {
            deleted_only,
            issued_by: user("issued_by")?,
            not_issued_by: user("not_issued_by")?,
            role: first("role").filter(|r| !r.is_empty()).map(str::to_owned),
        })
    }

    /// Whether `token` is listed.
    pub fn matches(&self, token: &FakeToken) -> bool {
        let issuer = &token.issuer;
        token.deleted == self.deleted_only
            && self.issued_by.is_none_or(|id| issuer.user_id == id)
            && self.not_issued_by.is_none_or(|id| issuer.user_id != id)
            && self.role.as_deref().is_none_or(|role| {
                role.parse::<u64>()
                    .map_or_else(|_| issuer.role_name.eq_ignore_ascii_case(role), |id| issuer.role_id == id)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::FakeTokenIssuer;

    fn parse(q: &str) -> Result<TokenQuery, BadQuery> {
        TokenQuery::parse(&format!("/iam/v2/clients/1/tokens?{q}").parse().unwrap())
    }

    #[test]
    fn without_filters_only_live_tokens_match() {
        let q = parse("").unwrap();
        assert_eq!(q, TokenQuery::default());
        assert!(q.matches(&FakeToken::new(1, "a")));
        assert!(!q.matches(&FakeToken::new(2, "b").deleted(true)));
    }

    #[test]
    fn deleted_follows_the_openapi_wording() {
        let deleted = FakeToken::new(2, "b").deleted(true);
        assert!(parse("deleted=false").unwrap().matches(&deleted));
        assert!(!parse("deleted=True").unwrap().matches(&deleted));
        assert!(parse("deleted=True").unwrap().matches(&FakeToken::new(1, "a")));
        let BadQuery(body) = parse("deleted=maybe").unwrap_err();
        assert_eq!(body["deleted"][0], "Must be a valid boolean.");
    }

    #[test]
    fn issuer_and_role_filters() {
        let token = FakeToken::new(1, "a").issued_by(FakeTokenIssuer::new(7, 5));
        assert!(parse("issued_by=7").unwrap().matches(&token));
        assert!(!parse("issued_by=8").unwrap().matches(&token));
        assert!(!parse("not_issued_by=7").unwrap().matches(&token));
        assert!(parse("role=5").unwrap().matches(&token));
        assert!(parse("role=engineers").unwrap().matches(&token));
        assert!(!parse("role=Administrators").unwrap().matches(&token));
        assert!(parse("issued_by=x").is_err());
    }
}
