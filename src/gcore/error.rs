//! Why a request or a poll failed, each cause with its bounded metric label.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// The `reason` of a failed poll and the `result` of a failed request: a closed set, so the
/// label stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Unauthorized,
    Forbidden,
    RateLimited,
    ServerError,
    ClientError,
    Redirect,
    Timeout,
    Connect,
    Decode,
    TooLarge,
    Deadline,
    Incomplete,
    KeyError,
    TooManyUsers,
}

impl Reason {
    /// Every reason, so that each failure series exists at 0 from the first scrape.
    pub const ALL: [Reason; 14] = [
        Reason::Unauthorized,
        Reason::Forbidden,
        Reason::RateLimited,
        Reason::ServerError,
        Reason::ClientError,
        Reason::Redirect,
        Reason::Timeout,
        Reason::Connect,
        Reason::Decode,
        Reason::TooLarge,
        Reason::Deadline,
        Reason::Incomplete,
        Reason::KeyError,
        Reason::TooManyUsers,
    ];

    /// Reasons a single HTTP request can end with: the first ten of [`Reason::ALL`]; the
    /// others belong to a whole poll.
    pub const REQUEST: &'static [Reason] = Reason::ALL.split_at(10).0;

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unauthorized => "unauthorized",
            Reason::Forbidden => "forbidden",
            Reason::RateLimited => "rate_limited",
            Reason::ServerError => "server_error",
            Reason::ClientError => "client_error",
            Reason::Redirect => "redirect",
            Reason::Timeout => "timeout",
            Reason::Connect => "connect",
            Reason::Decode => "decode",
            Reason::TooLarge => "too_large",
            Reason::Deadline => "deadline",
            Reason::Incomplete => "incomplete",
            Reason::KeyError => "key_error",
            Reason::TooManyUsers => "too_many_users",
        }
    }
}

impl EncodeLabelValue for Reason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// The outcome of one HTTP request to the API (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestResult {
    Ok,
    Failed(Reason),
    /// Abandoned while in flight or before its answer was read, because the poll had already
    /// failed or passed its deadline. The API may have received and answered it.
    Cancelled,
}

impl RequestResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestResult::Ok => "ok",
            RequestResult::Cancelled => "cancelled",
            RequestResult::Failed(reason) => reason.as_str(),
        }
    }
}

impl EncodeLabelValue for RequestResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Why listing the users of an account failed. Messages never contain the API key: it only
/// ever travels in a header, which no error prints.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the API rejected the key (401 Unauthorized)")]
    Unauthorized,
    #[error("the key may not list users (403 Forbidden)")]
    Forbidden,
    #[error("rate limited by the API (429 Too Many Requests), retries exhausted")]
    RateLimited,
    #[error("the API answered {0}, retries exhausted")]
    Server(u16),
    #[error("the API answered {0}")]
    Client(u16),
    #[error(
        "the API answered a redirect ({0}); redirects are not followed, so the key never leaves the configured host"
    )]
    Redirect(u16),
    #[error("a request timed out, retries exhausted")]
    Timeout,
    #[error("connection to the API failed")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the page at offset {offset} is not a users page: {detail}")]
    Decode { offset: u64, detail: String },
    #[error("the {what} answer is not what the API documents: {detail}")]
    DecodeBody { what: &'static str, detail: String },
    #[error("a response was larger than the {0}-byte limit (--gcore.max-response-bytes)")]
    TooLarge(u64),
    #[error("the poll did not finish within its deadline of {0:?} (--poll.timeout)")]
    Deadline(Duration),
    #[error(
        "the API answered an empty page at offset {offset} while reporting {count} users; the poll is not published"
    )]
    EmptyPage { offset: u64, count: u64 },
    #[error(
        "pagination did not reach the end after {pages} pages and {users} distinct users (at most two pages per page of users received are requested)"
    )]
    Incomplete { pages: u64, users: u64 },
    #[error("{pages} pages in a row brought no new user (the last at offset {offset}); the API repeats itself")]
    NoNewUsers { pages: u32, offset: u64 },
    #[error("the account has more than {max} users (--gcore.max-users)")]
    TooManyUsers { max: u64 },
    #[error("the API key cannot be sent in a header")]
    KeyNotHeaderSafe,
}

impl FetchError {
    /// The bounded label this failure is counted under.
    pub fn reason(&self) -> Reason {
        match self {
            FetchError::Unauthorized => Reason::Unauthorized,
            FetchError::Forbidden => Reason::Forbidden,
            FetchError::RateLimited => Reason::RateLimited,
            FetchError::Server(_) => Reason::ServerError,
            FetchError::Client(_) => Reason::ClientError,
            FetchError::Redirect(_) => Reason::Redirect,
            FetchError::Timeout => Reason::Timeout,
            FetchError::Connect(_) => Reason::Connect,
            FetchError::Decode { .. } | FetchError::DecodeBody { .. } => Reason::Decode,
            FetchError::TooLarge(_) => Reason::TooLarge,
            FetchError::Deadline(_) => Reason::Deadline,
            FetchError::Incomplete { .. } | FetchError::EmptyPage { .. } | FetchError::NoNewUsers { .. } => {
                Reason::Incomplete
            }
            FetchError::TooManyUsers { .. } => Reason::TooManyUsers,
            FetchError::KeyNotHeaderSafe => Reason::KeyError,
        }
    }
}

/// Says what came instead of JSON (an HTML error page from a proxy is the usual case) without
/// copying the body, which may hold personal data, into the log.
pub(crate) fn describe_decode_error(error: &dyn std::fmt::Display, body: &[u8]) -> String {
    let looks_like_html = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
    if looks_like_html {
        format!("received HTML, not JSON ({} bytes)", body.len())
    } else {
        format!("{error} ({} bytes)", body.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_bodies_are_described_not_copied() {
        let body = b"<html>secret@example.com</html>";
        let e = serde_json::from_slice::<serde_json::Value>(body).unwrap_err();
        let text = describe_decode_error(&e, body);
        assert!(text.contains("HTML") && !text.contains("secret@example.com"), "{text}");
    }
}
