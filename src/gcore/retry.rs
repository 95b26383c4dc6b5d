//! The retry policy of the Gcore SDKs: which answers are worth another try, and how long to
//! wait before it. The loop that applies it lives in [`super::client`], the only place that
//! retries.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// Exponential backoff with jitter, honouring the server's `Retry-After`.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt (the SDKs use 2).
    pub max_retries: u32,
    /// Delay before the first retry; doubles with each further one.
    pub initial_backoff: Duration,
    /// Longest computed backoff.
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this is ignored in favour of the computed backoff, so a
    /// misbehaving server cannot park a poll for hours.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// The SDKs' policy: 0.5 s · 2^n capped at 8 s, `Retry-After` up to 60 s honoured.
    pub fn new(max_retries: u32) -> Self {
        RetryPolicy {
            max_retries,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }

    /// How long to wait before retry number `retry` (0 for the first retry). A server's
    /// `Retry-After` wins when it is reasonable; otherwise the backoff is reduced by up to 25 %
    /// at random so that many exporters do not retry in lockstep.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after.filter(|d| *d <= self.max_retry_after) {
            return wait;
        }
        let backoff = self.initial_backoff.saturating_mul(2u32.saturating_pow(retry)).min(self.max_backoff);
        backoff.mul_f64(1.0 - 0.25 * rand::random::<f64>())
    }
}

/// 408, 409, 429 and 5xx are transient; 401 and 403 (and every other 4xx) are not.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error()
}

/// Reads `Retry-After-Ms` (milliseconds) or `Retry-After` (seconds, or an HTTP date). Any
/// value a server can send is read without a panic: a wait too long for a `Duration`
/// (`Retry-After: 1e20`) reads as [`Duration::MAX`], which [`RetryPolicy::delay`] then ignores
/// as unreasonable; a negative, non-finite or unreadable one reads as no header.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = header_str(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return seconds(ms / 1000.0);
    }
    let value = header_str(headers, "retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return seconds(secs);
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// A number of seconds from a header as a `Duration`, saturating instead of panicking.
fn seconds(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retryable_statuses() {
        for s in [408, 409, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert!(!is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RetryPolicy::new(10);
        for (retry, nominal) in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)] {
            for _ in 0..50 {
                let d = p.delay(retry, None).as_secs_f64();
                assert!(d <= nominal && d >= nominal * 0.75, "retry {retry}: {d}");
            }
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        h.insert("retry-after", HeaderValue::from_str(&date).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(27) && d <= Duration::from_secs(30), "{d:?}");
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn huge_tiny_and_odd_values_never_panic() {
        let p = RetryPolicy::new(2);
        for (name, value) in [
            ("retry-after", "1e20"),
            ("retry-after", "1e308"),
            ("retry-after", "18446744073709551616"),
            ("retry-after-ms", "1e30"),
            ("retry-after-ms", "1.7976931348623157e308"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(value));
            assert_eq!(retry_after(&h), Some(Duration::MAX), "{name}: {value}");
            assert!(p.delay(0, retry_after(&h)) <= Duration::from_millis(500), "{name}: {value} is ignored");
        }
        for (name, value) in [
            ("retry-after", "-1"),
            ("retry-after", "NaN"),
            ("retry-after", "inf"),
            ("retry-after-ms", "-5"),
            ("retry-after-ms", "-inf"),
            ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"),
            ("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(value));
            let _ = p.delay(0, retry_after(&h));
        }
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("1e-300"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    use proptest::prelude::*;

    proptest! {
        /// Any header value a server can send, numeric or not, reads without a panic, and the
        /// wait it leads to is never longer than the policy allows.
        #[test]
        fn any_header_value_reads_without_panic(
            name in prop::sample::select(vec!["retry-after", "retry-after-ms"]),
            value in prop_oneof![
                any::<f64>().prop_map(|f| f.to_string()),
                any::<u64>().prop_map(|n| n.to_string()),
                "[0-9eE.+-]{1,40}",
                "\\PC{0,60}",
            ],
        ) {
            let Ok(value) = HeaderValue::from_str(&value) else { return Ok(()) };
            let mut h = HeaderMap::new();
            h.insert(name, value);
            let p = RetryPolicy::new(2);
            for retry in [0, 1, 5, u32::MAX] {
                let wait = p.delay(retry, retry_after(&h));
                prop_assert!(wait <= p.max_retry_after.max(p.max_backoff));
            }
        }
    }

    #[test]
    fn reasonable_retry_after_wins_unreasonable_is_ignored() {
        let p = RetryPolicy::new(2);
        assert_eq!(p.delay(0, Some(Duration::from_secs(5))), Duration::from_secs(5));
        assert!(p.delay(0, Some(Duration::from_secs(3600))) <= Duration::from_millis(500));
    }
}
