//! `limit`/`offset` handling: parsing as strictly as the real API, slicing, and the relative
//! `next`/`previous` links it documents (`/users?offset=20&limit=10`, without `/iam`).

use std::ops::Range;

use axum::extract::Query;
use axum::http::Uri;
use serde_json::json;

/// A page size larger than this is served as this, as a real server caps it.
pub(crate) const MAX_LIMIT: usize = 1000;

/// What the query asked for. `limit: None` means "no pagination: the bare array of everyone".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub limit: Option<usize>,
    pub offset: usize,
}

/// A query the API refuses; the value is the JSON body of the 400.
#[derive(Debug, PartialEq)]
pub(crate) struct BadQuery(pub serde_json::Value);

impl PageRequest {
    /// Parses `limit` and `offset` from the request URI. Only the first occurrence of each is
    /// read; unknown parameters are ignored, as the API ignores them.
    pub fn parse(uri: &Uri) -> Result<Self, BadQuery> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| BadQuery(json!({ "detail": e.body_text() })))?;
        let first = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        // Zero is refused for limit: a page of nothing can never advance a paging client.
        let limit = first("limit").map(|v| parse_count("limit", v, 1)).transpose()?.map(|l| l.min(MAX_LIMIT));
        let offset = first("offset").map(|v| parse_count("offset", v, 0)).transpose()?.unwrap_or(0);
        Ok(Self { limit, offset })
    }
}

fn parse_count(field: &str, raw: &str, min: usize) -> Result<usize, BadQuery> {
    match raw.parse::<i64>() {
        Err(_) => Err(BadQuery(json!({ field: ["A valid integer is required."] }))),
        Ok(v) if v < min as i64 => {
            Err(BadQuery(json!({ field: [format!("Ensure this value is greater than or equal to {min}.")] })))
        }
        // An offset past usize on a 32-bit target is simply past the end.
        Ok(v) => Ok(usize::try_from(v).unwrap_or(usize::MAX)),
    }
}

/// The indices of the users on the page `offset`/`limit` of a list of `total`.
pub(crate) fn page_range(total: usize, offset: usize, limit: usize) -> Range<usize> {
    let start = offset.min(total);
    start..offset.saturating_add(limit).min(total)
}

/// The `next` link, `None` on the last page.
pub(crate) fn next_link(total: usize, offset: usize, limit: usize) -> Option<String> {
    let next = offset.saturating_add(limit);
    (next < total).then(|| link(next, limit))
}

/// The `previous` link, `None` on the first page.
pub(crate) fn previous_link(total: usize, offset: usize, limit: usize) -> Option<String> {
    // Past the end, "previous" points at the last real page, as a client going back expects.
    (offset > 0).then(|| link(offset.min(total).saturating_sub(limit), limit))
}

fn link(offset: usize, limit: usize) -> String {
    format!("/users?offset={offset}&limit={limit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<PageRequest, BadQuery> {
        PageRequest::parse(&format!("/iam/users?{q}").parse().unwrap())
    }

    #[test]
    fn parses_limit_and_offset_and_caps_the_limit() {
        assert_eq!(parse("limit=10&offset=20"), Ok(PageRequest { limit: Some(10), offset: 20 }));
        assert_eq!(parse(""), Ok(PageRequest { limit: None, offset: 0 }));
        assert_eq!(parse("limit=5000").unwrap().limit, Some(MAX_LIMIT));
        assert_eq!(parse("limit=3&limit=7").unwrap().limit, Some(3));
    }

    #[test]
    fn refuses_non_integers_negatives_and_zero_limit() {
        for q in ["limit=abc", "limit=-1", "limit=0", "offset=-5", "offset=1.5", "limit="] {
            assert!(parse(q).is_err(), "{q} should be refused");
        }
        let BadQuery(body) = parse("limit=x").unwrap_err();
        assert_eq!(body["limit"][0], "A valid integer is required.");
    }

    #[test]
    fn ranges_and_links_at_the_ends() {
        assert_eq!(page_range(25, 20, 10), 20..25);
        assert_eq!(page_range(25, 30, 10), 25..25);
        assert_eq!(next_link(25, 10, 10).as_deref(), Some("/users?offset=20&limit=10"));
        assert_eq!(next_link(25, 20, 10), None);
        assert_eq!(previous_link(25, 0, 10), None);
        assert_eq!(previous_link(25, 5, 10).as_deref(), Some("/users?offset=0&limit=10"));
        assert_eq!(previous_link(25, 20, 10).as_deref(), Some("/users?offset=10&limit=10"));
    }
}
