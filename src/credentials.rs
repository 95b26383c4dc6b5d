//! The account's state and its API tokens, as /metrics shows them; pure, no I/O.
//!
//! Labels stay bounded: the API documents at most 50 tokens per account (series are capped at
//! [`MAX_TOKEN_SERIES`] anyway), roles are the IAM groups (unknown ones capped as elsewhere),
//! and token names are cut and cleaned. No issuer name or e-mail is kept.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::snapshot::{KNOWN_GROUPS, Vocabulary, bounded_label_value};

/// Per-token series beyond this many are not exported (the API allows 50 tokens); every token
/// is still counted in `gcore_iam_tokens`.
pub const MAX_TOKEN_SERIES: usize = 100;

/// The account, from `GET /iam/clients/me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub client_id: u64,
    pub status: Arc<str>,
    pub has_active_admin: bool,
}

/// One token as the API described it, borrowed from the response.
#[derive(Debug, Clone, Copy)]
pub struct TokenRecord<'a> {
    pub id: u64,
    pub name: &'a str,
    pub role: &'a str,
    pub exp_date: Option<&'a str>,
    pub expired: bool,
    pub deleted: bool,
    pub last_usage: Option<&'a str>,
    pub issuer_deleted: bool,
}

/// The per-token series of one token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSeries {
    pub id: Arc<str>,
    pub name: Arc<str>,
    pub role: Arc<str>,
    /// Unix seconds; `None` for a token that never expires.
    pub expires_at: Option<f64>,
    /// Unix seconds; `None` for a token never used.
    pub last_used_at: Option<f64>,
    pub expired: bool,
    pub issuer_deleted: bool,
    pub used_by_exporter: bool,
}

/// One `gcore_iam_tokens` series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCount {
    pub role: Arc<str>,
    pub expired: bool,
    pub never_expires: bool,
    pub tokens: u64,
}

/// The tokens of one account at one poll.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSnapshot {
    pub tokens: Vec<TokenSeries>,
    pub counts: Vec<TokenCount>,
}

/// The token id a key belongs to, where the key says: current keys are `<id>_<secret>` and
/// legacy ones `<id>$<secret>`. `None` when the key has no numeric prefix.
pub fn own_token_id(key: &str) -> Option<u64> {
    let prefix = key.split(['_', '$']).next()?;
    if prefix.len() == key.len() || prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    prefix.parse().ok()
}

/// Reads the API's timestamps: RFC 3339, and tolerates a missing offset (taken as UTC, which
/// the API documents) and a space instead of `T`.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let text = text.trim();
    let normalized = text.replacen(' ', "T", 1);
    let parsed = OffsetDateTime::parse(&normalized, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{normalized}Z"), &Rfc3339))
        .ok()?;
    Some(parsed.unix_timestamp_nanos() as f64 / 1e9)
}

/// Builds the token series and counts; deleted tokens are left out. `now` decides whether a
/// token whose `exp_date` has passed counts as expired even if the API's flag lags.
pub fn summarize_tokens<'a>(
    records: impl IntoIterator<Item = TokenRecord<'a>>,
    own_token: Option<u64>,
    now: SystemTime,
) -> TokenSnapshot {
    let mut summary = TokenSummary::new(own_token, now);
    records.into_iter().for_each(|t| summary.add(&t));
    summary.finish()
}

/// Token series and counts built one token at a time, so that a reader never has to collect
/// a token list (an answer may hold far more tokens than the 50 the API documents): its cost
/// is bounded by [`MAX_TOKEN_SERIES`] and the bounded roles, whatever the answer's length.
pub struct TokenSummary {
    own_token: Option<u64>,
    /// Unix seconds.
    now: f64,
    roles: Vocabulary,
    /// Per role: [expired][never_expires].
    counts: Vec<[[u64; 2]; 2]>,
    tokens: Vec<TokenSeries>,
}

impl TokenSummary {
    pub fn new(own_token: Option<u64>, now: SystemTime) -> Self {
        let known_roles: Vec<&str> = KNOWN_GROUPS.iter().map(|(_, name)| *name).collect();
        TokenSummary {
            own_token,
            now: now.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
            counts: vec![[[0; 2]; 2]; known_roles.len()],
            roles: Vocabulary::new(&known_roles),
            tokens: Vec::new(),
        }
    }

    /// Counts one token; a deleted one is left out.
    pub fn add(&mut self, t: &TokenRecord<'_>) {
        if t.deleted {
            return;
        }
        let role = self.roles.index(t.role);
        if self.counts.len() <= role {
            self.counts.resize(role + 1, [[0; 2]; 2]);
        }
        let expires_at = t.exp_date.and_then(parse_timestamp);
        let never_expires = t.exp_date.is_none();
        let expired = t.expired || expires_at.is_some_and(|at| at <= self.now);
        self.counts[role][usize::from(expired)][usize::from(never_expires)] += 1;
        if self.tokens.len() < MAX_TOKEN_SERIES {
            self.tokens.push(TokenSeries {
                id: Arc::from(t.id.to_string()),
                name: Arc::from(bounded_label_value(t.name)),
                role: self.roles.values[role].clone(),
                expires_at,
                last_used_at: t.last_usage.and_then(parse_timestamp),
                expired,
                issuer_deleted: t.issuer_deleted,
                used_by_exporter: self.own_token == Some(t.id),
            });
        }
    }

    pub fn finish(self) -> TokenSnapshot {
        let mut series = Vec::with_capacity(self.counts.len() * 4);
        for (role, by_expired) in self.counts.iter().enumerate() {
            for (expired, by_never) in by_expired.iter().enumerate() {
                for (never_expires, &n) in by_never.iter().enumerate() {
                    series.push(TokenCount {
                        role: self.roles.values[role].clone(),
                        expired: expired == 1,
                        never_expires: never_expires == 1,
                        tokens: n,
                    });
                }
            }
        }
        TokenSnapshot { tokens: self.tokens, counts: series }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn token(id: u64) -> TokenRecord<'static> {
        TokenRecord {
            id,
            name: "ci",
            role: "Administrators",
            exp_date: Some("2030-01-01T00:00:00Z"),
            expired: false,
            deleted: false,
            last_usage: Some("2026-11-01T12:00:00.123456Z"),
            issuer_deleted: false,
        }
    }

    #[test]
    fn own_token_from_key_prefix() {
        assert_eq!(own_token_id("42_abcdef"), Some(42));
        assert_eq!(own_token_id("1234$legacy"), Some(1234));
        assert_eq!(own_token_id("abcdef"), None);
        assert_eq!(own_token_id("x1_abc"), None);
        assert_eq!(own_token_id("_abc"), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:01:00Z"), Some(60.0));
        assert_eq!(parse_timestamp("1970-01-01T00:01:00"), Some(60.0));
        assert_eq!(parse_timestamp("1970-01-01 00:01:00+00:00"), Some(60.0));
        assert_eq!(parse_timestamp("1970-01-01T01:01:00+01:00"), Some(60.0));
        assert_eq!(parse_timestamp("1970-01-01T00:01:00.5Z"), Some(60.5));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    #[test]
    fn summarizes_tokens() {
        let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000); // 2030-03-17
        let snapshot = summarize_tokens(
            [
                token(1),                                   // expired by date, flag lagging
                TokenRecord { exp_date: None, ..token(2) }, // never expires
                TokenRecord { deleted: true, ..token(3) },  // left out
                TokenRecord { role: "Engineers", last_usage: None, issuer_deleted: true, ..token(42) },
                TokenRecord { role: "Auditors", exp_date: Some("2031-01-01T00:00:00Z"), ..token(5) },
            ],
            Some(42),
            now,
        );
        assert_eq!(snapshot.tokens.len(), 4);
        let t1 = &snapshot.tokens[0];
        assert!(t1.expired && t1.expires_at == Some(1_893_456_000.0));
        assert_eq!(snapshot.tokens[1].expires_at, None);
        let own = snapshot.tokens.iter().find(|t| &*t.id == "42").unwrap();
        assert!(own.used_by_exporter && own.issuer_deleted && own.last_used_at.is_none());
        assert!(snapshot.tokens.iter().filter(|t| &*t.id != "42").all(|t| !t.used_by_exporter));
        let count = |role: &str, expired: bool, never: bool| {
            snapshot
                .counts
                .iter()
                .find(|c| &*c.role == role && c.expired == expired && c.never_expires == never)
                .map(|c| c.tokens)
        };
        assert_eq!(count("Administrators", true, false), Some(1));
        assert_eq!(count("Administrators", false, true), Some(1));
        assert_eq!(count("Engineers", true, false), Some(1));
        assert_eq!(count("Auditors", false, false), Some(1));
        assert_eq!(count("Users", false, false), Some(0), "known roles exist at 0");
        assert_eq!(snapshot.counts.iter().map(|c| c.tokens).sum::<u64>(), 4);
    }
}
