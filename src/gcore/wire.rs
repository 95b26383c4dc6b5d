//! The wire format of `GET /iam/users`, parsed straight into a [`UserAggregator`].
//!
//! A page is streamed through serde: each user is deserialized with borrowed strings, counted,
//! and dropped before the next one, so a poll never holds a list of users. Only the fields the
//! metrics use are read; everything else (e-mails, names, phones) is skipped unread.
//!
//! Tolerated, as the real API and its SDKs require: the `{count, next, previous, results}`
//! envelope, the bare array the API answers without `limit`, the old `result` key, `null` where a
//! boolean or list is expected, numbers where integers are expected, and unknown fields.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::snapshot::{GroupRef, UserAggregator, UserFacts};

/// What a page said about itself, once its users have been counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSummary {
    /// The API's total (`count`); `None` for a bare array, which holds every user.
    pub count: Option<u64>,
    /// User records on this page (duplicates included).
    pub results: u64,
}

/// Parses one page and feeds its users to `aggregator`.
pub fn parse_page(body: &[u8], aggregator: &mut UserAggregator) -> Result<PageSummary, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let summary = PageSeed { aggregator }.deserialize(&mut de)?;
    de.end()?;
    Ok(summary)
}

struct PageSeed<'s> {
    aggregator: &'s mut UserAggregator,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_> {
    type Value = PageSummary;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<PageSummary, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_> {
    type Value = PageSummary;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a users page: an object with `results` or a bare array of users")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<PageSummary, A::Error> {
        let results = UsersSeed { aggregator: self.aggregator }.visit_seq(seq)?;
        Ok(PageSummary { count: None, results })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PageSummary, A::Error> {
        let mut count = None;
        let mut results = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "count" => count = map.next_value::<Option<Number>>()?.map(|n| n.0),
                "results" | "result" => {
                    let n = map.next_value_seed(NullableUsersSeed { aggregator: &mut *self.aggregator })?;
                    results = Some(results.unwrap_or(0) + n);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let results = results.ok_or_else(|| de::Error::missing_field("results"))?;
        Ok(PageSummary { count: Some(count.unwrap_or(results)), results })
    }
}

/// `results: null` is read as an empty page rather than an error.
struct NullableUsersSeed<'s> {
    aggregator: &'s mut UserAggregator,
}

impl<'de> DeserializeSeed<'de> for NullableUsersSeed<'_> {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for NullableUsersSeed<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of users or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_seq(UsersSeed { aggregator: self.aggregator })
    }
}

struct UsersSeed<'s> {
    aggregator: &'s mut UserAggregator,
}

impl<'de> Visitor<'de> for UsersSeed<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of users")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut n = 0;
        while let Some(user) = seq.next_element::<WireUser<'de>>()? {
            user.count_into(self.aggregator);
            n += 1;
        }
        Ok(n)
    }
}

/// The fields of the OpenAPI `User` schema that the metrics use.
#[derive(Deserialize)]
struct WireUser<'a> {
    id: Number,
    #[serde(default)]
    deleted: Option<bool>,
    #[serde(default, borrow)]
    groups: Option<Vec<WireGroup<'a>>>,
    #[serde(default)]
    activated: Option<bool>,
    #[serde(default)]
    sso_auth: Option<bool>,
    #[serde(default)]
    two_fa: Option<bool>,
    #[serde(default, borrow)]
    auth_types: Option<Vec<Cow<'a, str>>>,
    #[serde(default, borrow)]
    user_type: Option<Cow<'a, str>>,
    #[serde(default)]
    is_active: Option<bool>,
}

#[derive(Deserialize)]
struct WireGroup<'a> {
    #[serde(default)]
    id: Option<Number>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
}

impl WireUser<'_> {
    /// A missing or null flag counts as `false`: for 2FA and activation that is the cautious
    /// reading, the one that shows up on a security dashboard rather than hiding.
    fn count_into(&self, aggregator: &mut UserAggregator) {
        let facts = UserFacts {
            id: self.id.0,
            deleted: self.deleted.unwrap_or(false),
            user_type: self.user_type.as_deref().unwrap_or("unknown"),
            two_fa: self.two_fa.unwrap_or(false),
            activated: self.activated.unwrap_or(false),
            sso_auth: self.sso_auth.unwrap_or(false),
            is_active: self.is_active.unwrap_or(false),
        };
        let groups = self.groups.iter().flatten().map(|g| GroupRef { id: g.id.map(|n| n.0), name: g.name.as_deref() });
        let auth_types = self.auth_types.iter().flatten().map(|a| &**a);
        aggregator.add(&facts, groups, auth_types);
    }
}

/// A non-negative whole number sent as a JSON integer or float (`client` is documented as a
/// `number`, and some serializers write ids as `12.0`).
#[derive(Debug, Clone, Copy)]
struct Number(u64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Number, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative whole number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                u64::try_from(v).map(Number).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                if v >= 0.0 && v.fract() == 0.0 && v < u64::MAX as f64 {
                    Ok(Number(v as u64))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = r#"{"id": 11, "email": "a@example.com", "name": null, "lang": "en", "phone": null,
        "company": "Acme", "reseller": 1, "client": 42.0, "deleted": false,
        "groups": [{"id": 1, "name": "Administrators"}], "activated": true, "sso_auth": false,
        "two_fa": false, "auth_types": ["password"], "user_type": "common", "is_active": true,
        "client_and_roles": [{"client_id": 42, "client_company_name": "Acme", "user_roles": ["2"], "user_id": 11}],
        "some_future_field": {"nested": [1, 2, 3]}}"#;

    fn parse(body: &str) -> (Result<PageSummary, serde_json::Error>, crate::snapshot::Snapshot) {
        let mut agg = UserAggregator::new();
        let r = parse_page(body.as_bytes(), &mut agg);
        (r, agg.finish(0))
    }

    #[test]
    fn envelope() {
        let body =
            format!(r#"{{"count": 5, "next": "/users?offset=1&limit=1", "previous": null, "results": [{USER}]}}"#);
        let (r, s) = parse(&body);
        assert_eq!(r.unwrap(), PageSummary { count: Some(5), results: 1 });
        assert_eq!(s.active_users, 1);
        let admins_without_2fa: u64 =
            s.groups.iter().filter(|g| &*g.group.name == "Administrators" && !g.two_fa).map(|g| g.users).sum();
        assert_eq!(admins_without_2fa, 1);
    }

    #[test]
    fn count_after_results_bare_array_and_old_result_key() {
        let (r, _) = parse(&format!(r#"{{"results": [{USER}], "count": 9}}"#));
        assert_eq!(r.unwrap(), PageSummary { count: Some(9), results: 1 });
        let (r, s) = parse(&format!("[{USER}]"));
        assert_eq!(r.unwrap(), PageSummary { count: None, results: 1 });
        assert_eq!(s.active_users, 1);
        let (r, _) = parse(&format!(r#"{{"count": 1, "result": [{USER}]}}"#));
        assert_eq!(r.unwrap(), PageSummary { count: Some(1), results: 1 });
    }

    #[test]
    fn nulls_and_missing_fields_are_tolerated() {
        let (r, s) =
            parse(r#"{"count": 1, "results": [{"id": 3, "groups": null, "two_fa": null, "auth_types": null}]}"#);
        assert_eq!(r.unwrap().results, 1);
        assert_eq!(s.active_users, 1);
        assert!(s.users.iter().any(|u| &*u.user_type == "unknown" && !u.two_fa && u.users == 1));
        let (r, _) = parse(r#"{"count": 0, "results": null}"#);
        assert_eq!(r.unwrap().results, 0);
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let (r, s) =
            parse(r#"[{"id": 1, "user_type": "com\u006don", "groups": [{"id": 99, "name": "Caf\u00e9 \"team\""}]}]"#);
        r.unwrap();
        assert!(s.users.iter().any(|u| &*u.user_type == "common" && u.users == 1));
        assert!(s.groups.iter().any(|g| &*g.group.name == "Café \"team\"" && g.users == 1));
    }

    #[test]
    fn malformed_pages_are_errors() {
        for body in [
            "",
            "{",
            r#"{"count": 3, "results": ["#,
            "<html><body>Bad gateway</body></html>",
            r#"{"count": 3}"#,
            r#"{"count": 1, "results": [{"email": "no-id@example.com"}]}"#,
            r#"{"count": 1, "results": [{"id": -4}]}"#,
            r#"{"count": 1, "results": [{"id": 1}]} trailing"#,
            "42",
        ] {
            assert!(parse(body).0.is_err(), "{body:?} should not parse");
        }
    }
}
