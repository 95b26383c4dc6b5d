//! The wire format of `GET /iam/clients/me` and `GET /iam/v2/clients/{clientId}/tokens`.
//! Only the fields the metrics use are read; issuer names and e-mails are skipped unread.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::credentials::{AccountInfo, TokenRecord, TokenSnapshot, TokenSummary};
use crate::snapshot::bounded_label_value;

#[derive(Deserialize)]
struct WireClient<'a> {
    id: u64,
    #[serde(default, borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(default)]
    has_active_admin: Option<bool>,
}

/// Parses the account. A missing `has_active_admin` reads as `false`: the cautious reading,
/// the one that shows on a dashboard.
pub fn parse_account(body: &[u8]) -> Result<AccountInfo, serde_json::Error> {
    let client: WireClient<'_> = serde_json::from_slice(body)?;
    Ok(AccountInfo {
        client_id: client.id,
        status: Arc::from(bounded_label_value(client.status.as_deref().unwrap_or("unknown"))),
        has_active_admin: client.has_active_admin.unwrap_or(false),
    })
}

#[derive(Deserialize)]
struct WireToken<'a> {
    id: u64,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    exp_date: Option<Cow<'a, str>>,
    #[serde(default)]
    expired: Option<bool>,
    #[serde(default)]
    deleted: Option<bool>,
    #[serde(default, borrow)]
    last_usage: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    client_user: Option<WireClientUser<'a>>,
}

#[derive(Deserialize)]
struct WireClientUser<'a> {
    #[serde(default)]
    deleted: Option<bool>,
    #[serde(default, borrow)]
    role: Option<WireRole<'a>>,
}

#[derive(Deserialize)]
struct WireRole<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
}

/// Parses the token list (a bare array) into series; `own_token` marks the exporter's own.
/// The array is read one token at a time into a [`TokenSummary`], never collected.
pub fn parse_tokens(body: &[u8], own_token: Option<u64>, now: SystemTime) -> Result<TokenSnapshot, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let summary = deserializer.deserialize_seq(TokenListVisitor { summary: TokenSummary::new(own_token, now) })?;
    deserializer.end()?;
    Ok(summary.finish())
}

struct TokenListVisitor {
    summary: TokenSummary,
}

impl<'de> Visitor<'de> for TokenListVisitor {
    type Value = TokenSummary;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of tokens")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<TokenSummary, A::Error> {
        while let Some(t) = seq.next_element::<WireToken<'de>>()? {
            let user = t.client_user.as_ref();
            self.summary.add(&TokenRecord {
                id: t.id,
                name: t.name.as_deref().unwrap_or(""),
                role: user.and_then(|u| u.role.as_ref()).and_then(|r| r.name.as_deref()).unwrap_or("unknown"),
                exp_date: t.exp_date.as_deref(),
                expired: t.expired.unwrap_or(false),
                deleted: t.deleted.unwrap_or(false),
                last_usage: t.last_usage.as_deref(),
                issuer_deleted: user.and_then(|u| u.deleted).unwrap_or(false),
            });
        }
        Ok(self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_with_extra_fields_and_unknown_status() {
        let a = parse_account(
            br#"{"id": 417203, "companyName": "Acme", "status": "suspended-ish", "has_active_admin": true,
            "users": [], "capabilities": ["CDN"], "email": "x@example.com"}"#,
        )
        .unwrap();
        assert_eq!(a, AccountInfo { client_id: 417203, status: Arc::from("suspended-ish"), has_active_admin: true });
        assert!(!parse_account(br#"{"id": 1}"#).unwrap().has_active_admin);
        assert!(parse_account(b"<html>").is_err());
    }

    #[test]
    fn tokens_bare_array_with_nulls() {
        let body = br#"[
          {"id": 42, "name": "exporter", "description": "", "exp_date": null, "expired": false, "deleted": false,
           "created": "2026-01-01T00:00:00Z", "last_usage": null,
           "client_user": {"user_id": 7, "user_name": "Jane Doe", "user_email": "jane@example.com", "client_id": 1,
                           "deleted": true, "role": {"id": 1, "name": "Administrators"}}},
          {"id": 43, "name": "old", "exp_date": "2020-01-01T00:00:00Z", "expired": true, "deleted": false,
           "created": "2019-01-01T00:00:00Z", "last_usage": "2019-06-01T00:00:00Z",
           "client_user": {"deleted": false, "role": {"id": 5, "name": "Engineers"}}},
          {"id": 44, "name": "gone", "deleted": true, "client_user": null}
        ]"#;
        let s = parse_tokens(body, Some(42), SystemTime::now()).unwrap();
        assert_eq!(s.tokens.len(), 2);
        let own = &s.tokens[0];
        assert!(own.used_by_exporter && own.issuer_deleted && own.expires_at.is_none() && own.last_used_at.is_none());
        assert_eq!(&*own.role, "Administrators");
        assert!(s.tokens[1].expired && s.tokens[1].last_used_at.is_some());
        let text = format!("{s:?}");
        assert!(!text.contains("Jane") && !text.contains("jane@example.com"));
        assert!(parse_tokens(br#"{"results": []}"#, None, SystemTime::now()).is_err());
    }
}
