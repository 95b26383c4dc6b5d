//! The pages of one poll of `GET /iam/users`: which offsets to ask for, how many at once, when
//! the list is complete, and when to give up.
//!
//! A poll's cost follows the users it really receives, never what the API claims: the pages
//! requested are bounded by `2 × users received / page size + PAGE_SLACK`, a run of pages that
//! bring no new user ends the poll, and so does a cap on the users of one account. A hostile or
//! broken API (the same users at every offset with a `count` of 10^12, fresh ids forever) costs
//! a few requests and a bounded amount of memory, then a failed poll with its reason.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use reqwest::header::HeaderValue;
use tracing::debug;
use url::Url;

use super::error::{FetchError, RequestResult, describe_decode_error};
use super::transport::{OnRequest, Received, Transport};
use super::wire::{PageSummary, parse_page};
use crate::snapshot::{Snapshot, UserAggregator};

/// Pages a poll may request beyond two per page of distinct users received: room for the
/// first page, the requests in flight, an empty page at the end, and a list that moves while
/// it is paged.
pub const PAGE_SLACK: u64 = 8;

/// Pages beyond twice what the first `count` announced that a poll may still request, in case
/// users are added while it runs: a list that grows faster than it is paged still ends.
pub const EXTRA_PAGES: u64 = 10;

/// Consecutive pages that bring no new user where new users were due (past the places the users
/// received can fill) after which the poll ends as incomplete: an API that answers the same
/// users at every offset would otherwise be paged until the deadline.
pub const MAX_PAGES_WITHOUT_NEW_USERS: u32 = 3;

/// How one account's users are paged.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    /// `limit` of every request.
    pub page_size: u64,
    /// Page requests in flight at once after the first page.
    pub concurrency: usize,
    /// Distinct users past which a poll fails (`too_many_users`).
    pub max_users: u64,
}

/// Lists every user of an account through `users_url` and returns their counts.
///
/// The first page gives `count`; the other pages are then requested up to `concurrency` at a
/// time and counted as they arrive (in any order: users are de-duplicated by id). If the list
/// moved meanwhile and the pages received leave a gap before the latest `count`, the poll goes
/// on page by page from the gap, as a sequential client would. Without a `count` (an envelope
/// that lacks it), pages are read until an empty one: the numbers are exact or the poll fails.
pub async fn list_users(
    transport: &Transport,
    users_url: &Url,
    paging: Paging,
    auth: &HeaderValue,
    on_request: OnRequest<'_>,
) -> Result<Snapshot, FetchError> {
    let mut poll = PollProgress::new(paging);
    let fetch = |offset: u64| {
        let mut url = users_url.clone();
        url.query_pairs_mut()
            .append_pair("limit", &paging.page_size.to_string())
            .append_pair("offset", &offset.to_string());
        async move { (offset, transport.get(auth, url, on_request).await) }
    };

    poll.requested += 1;
    let (_, first) = fetch(0).await;
    let first = poll.count_page(0, first?)?;
    poll.announced_pages =
        first.count.map(|count| count.div_ceil(paging.page_size).saturating_mul(2).saturating_add(EXTRA_PAGES));
    if first.whole_list {
        // A bare array holds every user: there is no next page.
        return Ok(poll.finish());
    }

    // Planned pages, `concurrency` at a time. The stride is what the first page held, so a
    // server that caps `limit` below the page size is still paged without gaps.
    let stride = first.results.clamp(1, paging.page_size);
    let mut next = stride;
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < paging.concurrency && next < poll.coverage.planned_end() && poll.may_request() {
            in_flight.push(fetch(next));
            poll.requested += 1;
            next = next.saturating_add(stride);
        }
        // A failed page fails the poll; dropping `in_flight` cancels the others (each counted
        // as `cancelled`).
        let Some((offset, received)) = in_flight.next().await else { break };
        poll.count_page(offset, received?)?;
    }

    // Whatever the list's changes left uncovered, page by page from the first gap.
    while !poll.coverage.done() {
        if !poll.may_request() {
            return Err(FetchError::Incomplete { pages: poll.requested, users: poll.aggregator.fetched() });
        }
        let offset = poll.coverage.reached;
        poll.requested += 1;
        let (_, received) = fetch(offset).await;
        poll.count_page(offset, received?)?;
    }

    // An empty page where the API's own count says users remain: the poll stops (no endless
    // loop) but is not published, since a third of the users would read as two thirds
    // removed, and an administrator without 2FA could vanish from the alerts.
    if let Some(count) = poll.coverage.count
        && poll.coverage.reached < count
    {
        return Err(FetchError::EmptyPage { offset: poll.coverage.end, count });
    }
    if poll.aggregator.duplicates() > 0 {
        debug!(duplicates = poll.aggregator.duplicates(), "users seen on more than one page were counted once");
    }
    Ok(poll.finish())
}

/// What a poll has received so far, and what that allows it to request next.
struct PollProgress {
    paging: Paging,
    aggregator: UserAggregator,
    coverage: Coverage,
    /// Pages requested so far, the first included (retries of a page not counted).
    requested: u64,
    /// Pages in a row, in the order they arrived, that brought no new user.
    pages_without_new_users: u32,
    /// `2 × pages announced by the first count + EXTRA_PAGES`, once the first page said.
    announced_pages: Option<u64>,
}

impl PollProgress {
    fn new(paging: Paging) -> Self {
        PollProgress {
            paging,
            aggregator: UserAggregator::new(),
            coverage: Coverage::new(paging.page_size),
            requested: 0,
            pages_without_new_users: 0,
            announced_pages: None,
        }
    }

    /// Whether one more page may be requested: at most two per page of distinct users
    /// received, plus [`PAGE_SLACK`] (two because a server may cap `limit` at half the page
    /// size, and a list that moves while paged is read partly twice), and never more than
    /// twice the pages the first `count` announced plus [`EXTRA_PAGES`].
    fn may_request(&self) -> bool {
        let earned = self.aggregator.fetched().div_ceil(self.paging.page_size).saturating_mul(2);
        self.requested < earned.saturating_add(PAGE_SLACK)
            && self.announced_pages.is_none_or(|max| self.requested < max)
    }

    /// Reads a page's body into the counts and tells the request's result (`ok`, or `decode`
    /// when the body is not a users page: not retried, the same server would send it again).
    fn count_page(&mut self, offset: u64, received: Received<'_>) -> Result<PageSummary, FetchError> {
        let Received { body, outcome } = received;
        let before = self.aggregator.fetched();
        let page = match parse_page(&body, &mut self.aggregator) {
            Ok(page) => {
                outcome.tell(RequestResult::Ok);
                page
            }
            Err(e) => {
                let error = FetchError::Decode { offset, detail: describe_decode_error(&e, &body) };
                outcome.tell(RequestResult::Failed(error.reason()));
                return Err(error);
            }
        };
        let fetched = self.aggregator.fetched();
        if fetched > self.paging.max_users {
            return Err(FetchError::TooManyUsers { max: self.paging.max_users });
        }
        // A page with no new user is suspicious only where it covers places past the users
        // known: a page that a longer page already covered (or a list that shifted while paged)
        // may legitimately repeat users.
        let beyond_known = offset.saturating_add(page.results) > before;
        if page.results > 0 && fetched == before && beyond_known {
            self.pages_without_new_users += 1;
            if self.pages_without_new_users >= MAX_PAGES_WITHOUT_NEW_USERS {
                return Err(FetchError::NoNewUsers { pages: self.pages_without_new_users, offset });
            }
        } else {
            self.pages_without_new_users = 0;
        }
        self.coverage.record(offset, page);
        Ok(page)
    }

    /// The counts; `reported_users` is the API's last `count`, or the users received when it
    /// gave none.
    fn finish(self) -> Snapshot {
        let fetched = self.aggregator.fetched();
        let reported = if self.coverage.whole { fetched } else { self.coverage.count.unwrap_or(fetched) };
        self.aggregator.finish(reported)
    }
}

/// Which part of the list the pages received so far cover, and where it ends.
#[derive(Debug)]
struct Coverage {
    /// The end of the pages received without a gap from offset 0.
    reached: u64,
    /// Pages received past a gap: offset → end.
    ahead: BTreeMap<u64, u64>,
    /// The `count` of the page received last that had one; `None` while no page said.
    count: Option<u64>,
    /// The offset of the first empty page: the list ends there.
    end: u64,
    /// A page came as a bare array, which holds every user.
    whole: bool,
    /// The page size asked for.
    limit: u64,
}

impl Coverage {
    fn new(limit: u64) -> Self {
        Coverage { reached: 0, ahead: BTreeMap::new(), count: None, end: u64::MAX, whole: false, limit }
    }

    /// A page is taken to cover at most `limit` places of the list: a server that sends more
    /// than asked (a repeated user, say) must not make the next offset skip anyone. Reading a
    /// few places twice costs a request; users are de-duplicated by id anyway.
    fn record(&mut self, offset: u64, page: PageSummary) {
        if page.whole_list {
            self.whole = true;
        }
        if let Some(count) = page.count {
            self.count = Some(count);
        }
        if page.results == 0 {
            self.end = self.end.min(offset);
            return;
        }
        let end = offset.saturating_add(page.results.min(self.limit));
        if offset > self.reached {
            let known = self.ahead.entry(offset).or_insert(end);
            *known = (*known).max(end);
            return;
        }
        self.reached = self.reached.max(end);
        while let Some(entry) = self.ahead.first_entry() {
            if *entry.key() > self.reached {
                break;
            }
            self.reached = self.reached.max(entry.remove());
        }
    }

    /// Where planned pages stop: the reported `count`, or an empty page. Without a `count`,
    /// pages are planned until an empty one comes.
    fn planned_end(&self) -> u64 {
        if self.whole {
            return 0;
        }
        self.count.unwrap_or(u64::MAX).min(self.end)
    }

    fn done(&self) -> bool {
        self.whole || self.count.is_some_and(|count| self.reached >= count) || self.reached >= self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(count: u64, results: u64) -> PageSummary {
        PageSummary { count: Some(count), results, whole_list: false }
    }

    fn covering(count: u64, limit: u64) -> Coverage {
        let mut c = Coverage::new(limit);
        c.count = Some(count);
        c
    }

    #[test]
    fn coverage_joins_pages_arriving_out_of_order() {
        let mut c = covering(40, 10);
        c.record(0, page(40, 10));
        c.record(20, page(40, 10));
        assert_eq!(c.reached, 10);
        assert!(!c.done());
        c.record(30, page(40, 10));
        c.record(10, page(40, 10));
        assert_eq!(c.reached, 40);
        assert!(c.done());
    }

    #[test]
    fn coverage_after_a_short_page_has_a_gap_and_a_newer_count() {
        let mut c = covering(30, 10);
        c.record(0, page(30, 10));
        c.record(10, page(30, 5));
        c.record(20, page(32, 10));
        assert_eq!((c.reached, c.count), (15, Some(32)));
        c.record(15, page(32, 10));
        assert_eq!(c.reached, 30);
        assert!(!c.done(), "two users past the last planned page");
        c.record(30, page(32, 2));
        assert!(c.done());
    }

    #[test]
    fn coverage_ends_at_an_empty_page_or_a_bare_array() {
        let mut c = covering(50, 10);
        c.record(0, page(50, 10));
        c.record(20, page(50, 0));
        assert!(!c.done(), "users 10..20 are still missing");
        c.record(10, page(50, 10));
        assert!(c.done());
        let mut c = covering(50, 10);
        c.record(10, PageSummary { count: None, results: 7, whole_list: true });
        assert!(c.done());
    }

    #[test]
    fn without_a_count_pages_are_planned_until_an_empty_one() {
        let mut c = Coverage::new(10);
        let no_count = |results| PageSummary { count: None, results, whole_list: false };
        c.record(0, no_count(10));
        assert_eq!(c.planned_end(), u64::MAX);
        assert!(!c.done(), "a full page without count may have a next page");
        c.record(10, no_count(8));
        assert!(!c.done(), "a short page may be a server that caps the limit");
        c.record(18, no_count(0));
        assert!(c.done());
        assert_eq!(c.planned_end(), 18);
    }

    #[test]
    fn a_page_longer_than_asked_covers_only_the_limit() {
        let mut c = covering(12, 3);
        c.record(0, page(12, 4));
        assert_eq!(c.reached, 3, "the next page starts at 3, so nobody is skipped");
    }

    #[test]
    fn offsets_near_the_top_of_the_range_do_not_overflow() {
        let mut c = covering(u64::MAX, 1000);
        c.record(u64::MAX - 5, page(u64::MAX, 1000));
        assert_eq!(c.ahead.get(&(u64::MAX - 5)), Some(&u64::MAX));
    }

    #[test]
    fn the_page_budget_follows_the_users_received() {
        let paging = Paging { page_size: 10, concurrency: 4, max_users: 1_000_000 };
        let mut poll = PollProgress::new(paging);
        poll.requested = PAGE_SLACK;
        assert!(!poll.may_request(), "no users yet: only the slack");
        for id in 0..25 {
            poll.aggregator.add(
                &crate::snapshot::UserFacts {
                    id,
                    deleted: false,
                    user_type: "common",
                    two_fa: true,
                    activated: true,
                    sso_auth: false,
                    is_active: true,
                },
                [],
                [],
            );
        }
        // 25 users = 3 pages' worth: 6 more requests earned.
        poll.requested = PAGE_SLACK + 5;
        assert!(poll.may_request());
        poll.requested = PAGE_SLACK + 6;
        assert!(!poll.may_request());
    }
}
