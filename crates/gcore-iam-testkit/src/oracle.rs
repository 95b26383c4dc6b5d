//! The serde reading of a users page that the exporter used before its hand-written scanner
//! (`src/gcore/wire.rs`), kept as the oracle the scanner is compared with: on any input, both
//! must accept or both refuse, and count the same users. Not used by the exporter itself.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use gcore_iam_exporter::gcore::wire::PageSummary;
use gcore_iam_exporter::snapshot::{GroupRef, UserAggregator, UserFacts};

/// Parses one page and feeds its users to `aggregator`.
pub fn parse_page_with_serde(body: &[u8], aggregator: &mut UserAggregator) -> Result<PageSummary, serde_json::Error> {
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
        Ok(PageSummary { count: None, results, whole_list: true })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PageSummary, A::Error> {
        let mut count = None;
        let mut results = None;
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key.0 {
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
        Ok(PageSummary { count, results, whole_list: false })
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
        // One pair of lists per page, cleared for each user: a user costs no allocation unless
        // a string needs unescaping.
        let mut lists = UserLists::default();
        let mut n = 0;
        while let Some(user) = seq.next_element_seed(UserSeed { lists: &mut lists })? {
            user.count_into(&lists, self.aggregator);
            n += 1;
        }
        Ok(n)
    }
}

/// The groups and auth types of the user being parsed, borrowed from the page.
#[derive(Default)]
struct UserLists<'de> {
    groups: Vec<WireGroup<'de>>,
    auth_types: Vec<Str<'de>>,
}

/// The scalar fields of the OpenAPI `User` schema that the metrics use; its lists go to
/// [`UserLists`].
struct WireUser<'de> {
    id: u64,
    deleted: Option<bool>,
    activated: Option<bool>,
    sso_auth: Option<bool>,
    two_fa: Option<bool>,
    user_type: Option<Str<'de>>,
    is_active: Option<bool>,
}

struct WireGroup<'de> {
    id: Option<u64>,
    name: Option<Str<'de>>,
}

impl WireUser<'_> {
    /// A missing or null flag counts as `false`: for 2FA and activation that is the cautious
    /// reading, the one that shows up on a security dashboard rather than hiding.
    fn count_into(&self, lists: &UserLists<'_>, aggregator: &mut UserAggregator) {
        let facts = UserFacts {
            id: self.id,
            deleted: self.deleted.unwrap_or(false),
            user_type: self.user_type.as_ref().map_or("unknown", |t| &t.0),
            two_fa: self.two_fa.unwrap_or(false),
            activated: self.activated.unwrap_or(false),
            sso_auth: self.sso_auth.unwrap_or(false),
            is_active: self.is_active.unwrap_or(false),
        };
        let groups = lists.groups.iter().map(|g| GroupRef { id: g.id, name: g.name.as_ref().map(|n| &*n.0) });
        let auth_types = lists.auth_types.iter().map(|a| &*a.0);
        aggregator.add(&facts, groups, auth_types);
    }
}

/// The user fields read; every other one (e-mail, name, phone, `client_and_roles`...) is
/// skipped by the parser without being decoded.
enum UserField {
    Id,
    Deleted,
    Groups,
    Activated,
    SsoAuth,
    TwoFa,
    AuthTypes,
    UserType,
    IsActive,
    Other,
}

impl<'de> Deserialize<'de> for UserField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<UserField, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = UserField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<UserField, E> {
                Ok(match name {
                    "id" => UserField::Id,
                    "deleted" => UserField::Deleted,
                    "groups" => UserField::Groups,
                    "activated" => UserField::Activated,
                    "sso_auth" => UserField::SsoAuth,
                    "two_fa" => UserField::TwoFa,
                    "auth_types" => UserField::AuthTypes,
                    "user_type" => UserField::UserType,
                    "is_active" => UserField::IsActive,
                    _ => UserField::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// Parses one user: its scalars into the returned [`WireUser`], its lists into `lists`.
struct UserSeed<'l, 'de> {
    lists: &'l mut UserLists<'de>,
}

impl<'de> DeserializeSeed<'de> for UserSeed<'_, 'de> {
    type Value = WireUser<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<WireUser<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for UserSeed<'_, 'de> {
    type Value = WireUser<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a user object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireUser<'de>, A::Error> {
        let lists = self.lists;
        lists.groups.clear();
        lists.auth_types.clear();
        let mut id = None;
        let mut user = WireUser {
            id: 0,
            deleted: None,
            activated: None,
            sso_auth: None,
            two_fa: None,
            user_type: None,
            is_active: None,
        };
        while let Some(field) = map.next_key::<UserField>()? {
            match field {
                UserField::Id => id = Some(map.next_value::<Number>()?.0),
                UserField::Deleted => user.deleted = map.next_value()?,
                UserField::Activated => user.activated = map.next_value()?,
                UserField::SsoAuth => user.sso_auth = map.next_value()?,
                UserField::TwoFa => user.two_fa = map.next_value()?,
                UserField::IsActive => user.is_active = map.next_value()?,
                UserField::UserType => user.user_type = map.next_value()?,
                UserField::Groups => {
                    lists.groups.clear();
                    map.next_value_seed(ListSeed { items: &mut lists.groups })?;
                }
                UserField::AuthTypes => {
                    lists.auth_types.clear();
                    map.next_value_seed(ListSeed { items: &mut lists.auth_types })?;
                }
                UserField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        user.id = id.ok_or_else(|| de::Error::missing_field("id"))?;
        Ok(user)
    }
}

/// A list (`null` reads as empty) appended to a reused vector.
struct ListSeed<'v, T> {
    items: &'v mut Vec<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for ListSeed<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListSeed<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element()? {
            self.items.push(item);
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for WireGroup<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<WireGroup<'de>, D::Error> {
        struct GroupVisitor;
        impl<'de> Visitor<'de> for GroupVisitor {
            type Value = WireGroup<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a group object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireGroup<'de>, A::Error> {
                let mut group = WireGroup { id: None, name: None };
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match &*key.0 {
                        "id" => group.id = map.next_value::<Option<Number>>()?.map(|n| n.0),
                        "name" => group.name = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(group)
            }
        }
        deserializer.deserialize_map(GroupVisitor)
    }
}

/// A string borrowed from the page, or owned when it had escapes to decode. (serde's own
/// `Cow<str>` always copies unless it is a direct field of a derived struct.)
struct Str<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Str<'de>, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
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
