//! The API key as a type that cannot be printed: `Debug` redacts it and there is no `Display`,
//! so neither a log line, an error nor a panic message can carry it by accident.

use std::fmt;

/// Why a text is not a usable API key. The wording never quotes the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(&'static str);

/// A Gcore API key (legacy `1234$...` or current `42_...` form).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Trims surrounding white space (key files usually end with a newline) and refuses what
    /// cannot travel in an HTTP header. The error never quotes the key.
    pub fn parse(raw: &str) -> Result<ApiKey, KeyError> {
        let key = raw.trim();
        if key.is_empty() {
            return Err(KeyError("the API key is empty"));
        }
        if key.len() > 4096 {
            return Err(KeyError("the API key is longer than 4096 bytes"));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KeyError("the API key contains spaces or characters that cannot be sent in an HTTP header"));
        }
        Ok(ApiKey(key.to_string()))
    }

    /// The key itself, for the one place that builds the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_trims_and_validates() {
        assert_eq!(ApiKey::parse("  42_abc\n").unwrap().expose(), "42_abc");
        assert_eq!(ApiKey::parse("1234$legacy").unwrap().expose(), "1234$legacy");
        assert!(ApiKey::parse("\n").is_err());
        assert!(ApiKey::parse("42_a b").is_err());
        assert!(ApiKey::parse("42_a\r\nX-Evil: 1").is_err());
    }

    #[test]
    fn debug_redacts() {
        let key = ApiKey::parse("42_topsecret").unwrap();
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert!(!format!("{:?}", Some(key)).contains("topsecret"));
    }
}
