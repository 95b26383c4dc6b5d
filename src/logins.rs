//! The login log of an account, read a little at each poll; pure, no I/O.
//!
//! A [`LoginTracker`] lives as long as the exporter runs, one per account. It decides which
//! pages of `GET /iam/activity_log/logins` a poll reads (the client fetches them), keeps what
//! it learns from them, and freezes that into an immutable [`LoginSnapshot`] for /metrics.
//!
//! Reading. The log is paged by `limit`/`offset` and grows at its head (newest first is the
//! likely order, not a promise), so every poll:
//! 1. reads from offset 0 until a page brings only events already seen (or the log ends);
//! 2. then resumes the backlog: the parts of the log an earlier poll left unread because it
//!    ran out of pages ([`MAX_LOGIN_PAGES_PER_POLL`]) or failed half-way.
//!
//! A backlog's offset was valid when it was saved; since then events came in at the head and
//! moved it down. It is moved by how much the log's `count` grew since, which is never more than
//! the true shift (events dropped at the tail make the count grow less), so the resumed read
//! starts at or before where it stopped: it may read again what it read (the de-duplication by
//! event id absorbs that), never skip. Hence the first page of a resumed read may well bring
//! nothing new without ending it.
//!
//! Baseline. The events already in the log on the exporter's first read are the baseline: they
//! give each user's last successful login but are not counted in `gcore_iam_logins_total`,
//! whose counters start at 0 when the exporter starts, like every counter: otherwise each
//! restart, and each replica, would add the whole history of the log to `rate()` at once. A
//! baseline larger than one poll's pages is read over the next polls and still not counted;
//! events that arrive meanwhile at the head are.
//!
//! Memory, per account: the last successful login of each user (8 bytes a user, see
//! [`LastLogins`]), the bounded label vocabulary and counters, a few backlog offsets, and the ids
//! of recent events for the de-duplication (`SeenIds`, bounded).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::idset::IdSet;
use crate::snapshot::{GroupLabel, KNOWN_AUTH_TYPES, UserIndex, Vocabulary};

/// Pages of the login log one poll reads at most, the head and the backlog together. A log
/// that grew by more than this between two polls (or the first read of a long log) is caught
/// up over the next polls: 20 pages of `--gcore.page-size` (100 by default) is 2,000 events.
pub const MAX_LOGIN_PAGES_PER_POLL: u32 = 20;

/// Backlog parts kept at most; beyond, the deepest (oldest events) are given up.
const MAX_BACKLOG: usize = 8;

/// Users not in the users list whose last login is kept (a user may log in before a poll of
/// the users lists them).
const MAX_DEPARTED: usize = 10_000;

/// Ids of events kept for the de-duplication beyond those read in the last two polls.
const MIN_SEEN_IDS: usize = 10_000;

/// The `last_login` buckets, in the order of [`LoginSnapshot::users_by_last_login`]: the time
/// since the user's last successful login is at most 1, 7, 30, 90 days, more, or there is none
/// in what the log held.
pub const LAST_LOGIN_BUCKETS: [&str; 6] = ["1d", "7d", "30d", "90d", "older", "never"];

const DAY: i64 = 86_400;
/// The upper bounds of the first four buckets, in seconds.
const BUCKET_BOUNDS: [i64; 4] = [DAY, 7 * DAY, 30 * DAY, 90 * DAY];

/// One event of the log, borrowed from the page being read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoginEvent<'a> {
    pub id: u64,
    /// `login_at` in Unix seconds; `None` when missing or not a date.
    pub login_at: Option<i64>,
    pub successful: bool,
    pub auth_type: &'a str,
    /// `None` when the event names no user.
    pub user: Option<u64>,
}

/// What one page of the log said.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginPage<'a> {
    /// The API's total, when the page says.
    pub count: Option<u64>,
    pub events: Vec<LoginEvent<'a>>,
}

/// Whether a part of the log is the baseline (not counted) or new events (counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Baseline,
    Counted,
}

/// A part of the log still to read, from `offset` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    offset: u64,
    kind: Kind,
    /// The head read of this poll (ends where the known events start).
    head: bool,
    /// Resumed from a backlog: its first page may repeat events already seen.
    resumed: bool,
    /// The log's `count` when `offset` was valid.
    count_at: Option<u64>,
}

impl Segment {
    /// Where the read ends: the baseline at the end of the log; new events (the head, or a gap
    /// an earlier poll left at the head) where the events already known start.
    fn ends_at_known_events(&self) -> bool {
        self.kind == Kind::Counted
    }
}

/// The reading of one poll: the parts of the log to read, in order, and the pages left.
#[derive(Debug)]
pub struct LoginRead {
    queue: VecDeque<Segment>,
    current: Option<Segment>,
    pages_left: u32,
    /// The latest `count` a page of this poll gave.
    count: Option<u64>,
    /// Events new to the tracker found by the head read: the shift of the log since the last
    /// poll when no page gives a `count`.
    fresh_at_head: u64,
    page_size: u64,
    /// Pages received, events received and events new to the tracker (for the debug log).
    pub pages: u32,
    pub received: u64,
    pub fresh: u64,
}

impl LoginRead {
    /// Pages still to read, none when the poll's budget is spent.
    pub fn pages_left(&self) -> u32 {
        self.pages_left
    }
}

/// The ids of the events seen, for the de-duplication, bounded.
///
/// What a read may see again: events of this poll (the log shifted while paged), events of the
/// previous poll (a backlog resumed from an offset that the log's growth under-estimates), and
/// the top of the known events, which the head read reaches at every poll (so they are events
/// of this poll too). Those two polls' ids are always kept; beyond them, the ids of the newest
/// events (by `login_at`) are kept up to a bound of several polls' worth of pages, and older
/// ones are forgotten. A forgotten id read again would count its event twice; it can only be
/// read again by a backlog older than that many events, which the page budget makes rare.
#[derive(Debug)]
struct SeenIds {
    /// id → (login_at, the poll that last read it).
    ids: HashMap<u64, (i64, u32)>,
    keep: usize,
}

impl SeenIds {
    /// Records an id read at `poll`; false if it was already known.
    fn insert(&mut self, id: u64, login_at: Option<i64>, poll: u32) -> bool {
        match self.ids.get_mut(&id) {
            Some(entry) => {
                entry.1 = poll;
                false
            }
            None => {
                self.ids.insert(id, (login_at.unwrap_or(i64::MIN), poll));
                true
            }
        }
    }

    /// Forgets the oldest ids beyond `keep`, except those read at `poll` or the poll before.
    fn evict(&mut self, poll: u32) {
        if self.ids.len() <= self.keep {
            return;
        }
        let mut old: Vec<(i64, u64)> =
            self.ids.iter().filter(|(_, (_, p))| poll.wrapping_sub(*p) > 1).map(|(id, (at, _))| (*at, *id)).collect();
        old.sort_unstable();
        let excess = self.ids.len() - self.keep;
        for (_, id) in old.into_iter().take(excess) {
            self.ids.remove(&id);
        }
        self.ids.shrink_to(self.keep * 2);
    }
}

/// The last successful login of each user: only the id and the time, as compact as a sorted
/// array of `(u32 id, u32 Unix seconds)` pairs, 8 bytes a user (Gcore's ids fit 32 bits; larger
/// ones, and times past 2106, go to a small map). A poll's logins are gathered apart and merged
/// in once, at the end of the poll, so the array is never shifted one insertion at a time.
#[derive(Debug, Default, Clone)]
pub struct LastLogins {
    sorted: Vec<(u32, u32)>,
    pending: Vec<(u32, u32)>,
    large: HashMap<u64, i64>,
}

impl LastLogins {
    /// Notes a successful login; the latest time per user wins.
    pub fn record(&mut self, user: u64, at: i64) {
        match (u32::try_from(user), u32::try_from(at)) {
            (Ok(user), Ok(at)) => self.pending.push((user, at)),
            _ => {
                let last = self.large.entry(user).or_insert(at);
                *last = (*last).max(at);
            }
        }
    }

    /// Merges the logins noted since the last merge into the sorted array.
    pub fn merge(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.sorted.len() + pending.len());
        let (mut a, mut b) = (self.sorted.iter().peekable(), pending.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
                (Some(_), Some(_)) | (None, Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, None) => break,
            };
            let Some(&(user, at)) = next else { break };
            match merged.last_mut() {
                Some((last_user, last_at)) if *last_user == user => *last_at = (*last_at).max(at),
                _ => merged.push((user, at)),
            }
        }
        merged.shrink_to_fit();
        self.sorted = merged;
        self.pending = pending;
        self.pending.clear();
        self.pending.shrink_to(1024);
    }

    /// The user's last successful login (merged ones only), in Unix seconds.
    pub fn get(&self, user: u64) -> Option<i64> {
        let small = u32::try_from(user).ok().and_then(|u| {
            let i = self.sorted.binary_search_by_key(&u, |(id, _)| *id).ok()?;
            Some(i64::from(self.sorted[i].1))
        });
        let large = self.large.get(&user).copied();
        small.max(large)
    }

    /// Users known.
    pub fn len(&self) -> usize {
        self.sorted.len() + self.large.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the users `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, i64) -> bool) {
        self.sorted.retain(|(user, at)| keep(u64::from(*user), i64::from(*at)));
        self.large.retain(|user, at| keep(*user, *at));
    }

    /// Heap bytes held, for the memory figures of the README.
    pub fn heap_bytes(&self) -> usize {
        let pair = std::mem::size_of::<(u32, u32)>();
        (self.sorted.capacity() + self.pending.capacity()) * pair
            + self.large.capacity() * (std::mem::size_of::<(u64, i64)>() + 1)
    }
}

/// What the log told so far, for the metrics: last logins, counters, newest event.
#[derive(Debug)]
struct LoginState {
    last: LastLogins,
    auth_types: Vocabulary,
    /// Per auth type: [success, failure], events after the baseline.
    counts: Vec<[u64; 2]>,
    by_deleted_users: u64,
    newest: Option<i64>,
}

impl LoginState {
    fn new() -> Self {
        LoginState {
            last: LastLogins::default(),
            auth_types: Vocabulary::new(&KNOWN_AUTH_TYPES),
            counts: vec![[0; 2]; KNOWN_AUTH_TYPES.len()],
            by_deleted_users: 0,
            newest: None,
        }
    }

    fn apply(&mut self, event: &LoginEvent<'_>, kind: Kind, deleted: &IdSet) {
        if let Some(at) = event.login_at {
            self.newest = Some(self.newest.map_or(at, |n| n.max(at)));
            if let (true, Some(user)) = (event.successful, event.user) {
                self.last.record(user, at);
            }
        }
        // A baseline event creates its auth type's series (at 0), so `increase()` sees the
        // first new event of that type.
        let a = self.auth_types.index(event.auth_type);
        if self.counts.len() <= a {
            self.counts.resize(a + 1, [0; 2]);
        }
        if kind == Kind::Counted {
            self.counts[a][usize::from(!event.successful)] += 1;
            if event.successful && event.user.is_some_and(|u| deleted.contains(u)) {
                self.by_deleted_users += 1;
            }
        }
    }
}

/// The login log of one account at one poll, as /metrics shows it. Immutable once built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSnapshot {
    /// Per auth type: (auth type, [success, failure]) events after the baseline.
    pub logins: Vec<(Arc<str>, [u64; 2])>,
    /// Successful logins after the baseline by users the users list marked deleted.
    pub by_deleted_users: u64,
    /// The newest `login_at` seen, Unix seconds.
    pub newest: Option<i64>,
    /// Non-deleted users per bucket of [`LAST_LOGIN_BUCKETS`].
    pub users_by_last_login: [u64; 6],
    /// The same per group (non-deleted members), in the order of the users list's groups.
    pub groups_by_last_login: Vec<(GroupLabel, [u64; 6])>,
}

/// The bucket of [`LAST_LOGIN_BUCKETS`] of a last successful login at `at` (Unix seconds),
/// seen at `now`. A login in the future (clocks differ) is recent.
pub fn bucket(last: Option<i64>, now: i64) -> usize {
    let Some(at) = last else { return 5 };
    let age = now.saturating_sub(at);
    BUCKET_BOUNDS.iter().position(|bound| age <= *bound).unwrap_or(4)
}

/// The login log of one account, as far as the exporter has read it.
#[derive(Debug)]
pub struct LoginTracker {
    state: LoginState,
    seen: SeenIds,
    backlog: Vec<Segment>,
    /// The first page of the log has been read: later heads are new events.
    baseline_taken: bool,
    polls: u32,
    page_size: u64,
}

impl LoginTracker {
    /// A tracker for a log read `page_size` events a page.
    pub fn new(page_size: u64) -> Self {
        let page_size = page_size.max(1);
        let per_poll =
            usize::try_from(page_size.saturating_mul(u64::from(MAX_LOGIN_PAGES_PER_POLL))).unwrap_or(usize::MAX);
        LoginTracker {
            state: LoginState::new(),
            seen: SeenIds { ids: HashMap::new(), keep: per_poll.saturating_mul(4).max(MIN_SEEN_IDS) },
            backlog: Vec::new(),
            baseline_taken: false,
            polls: 0,
            page_size,
        }
    }

    /// Starts the reading of one poll: the head, then the backlog, within the page budget.
    pub fn start(&mut self) -> LoginRead {
        self.polls = self.polls.wrapping_add(1);
        let head = Segment {
            offset: 0,
            kind: if self.baseline_taken { Kind::Counted } else { Kind::Baseline },
            head: true,
            resumed: false,
            count_at: None,
        };
        LoginRead {
            queue: std::iter::once(head).chain(self.backlog.drain(..)).collect(),
            current: None,
            pages_left: MAX_LOGIN_PAGES_PER_POLL,
            count: None,
            fresh_at_head: 0,
            page_size: self.page_size,
            pages: 0,
            received: 0,
            fresh: 0,
        }
    }

    /// The offset of the next page to read, `None` when this poll is done.
    pub fn next_offset(&self, read: &mut LoginRead) -> Option<u64> {
        if read.pages_left == 0 {
            return None;
        }
        if read.current.is_none() {
            let mut next = read.queue.pop_front()?;
            if !next.head {
                next.offset = shifted(next, read.count, read.fresh_at_head);
                next.count_at = read.count;
            }
            read.current = Some(next);
        }
        read.current.map(|s| s.offset)
    }

    /// Takes in the page read at the offset [`Self::next_offset`] gave. `deleted` are the users
    /// the users list marks deleted.
    pub fn page(&mut self, read: &mut LoginRead, page: &LoginPage<'_>, deleted: &IdSet) {
        let Some(mut segment) = read.current.take() else { return };
        read.pages_left = read.pages_left.saturating_sub(1);
        read.pages += 1;
        if segment.head && segment.offset == 0 {
            self.baseline_taken = true;
        }
        if page.count.is_some() {
            read.count = page.count;
        }
        let mut fresh = 0;
        // At most `limit` events a page: a server that sends more (a hostile one, millions)
        // cannot grow what is kept; the offset moves by `limit` at most, so an honest server
        // shows the rest on the next page.
        let limit = usize::try_from(read.page_size).unwrap_or(usize::MAX);
        for event in page.events.iter().take(limit) {
            if self.seen.insert(event.id, event.login_at, self.polls) {
                fresh += 1;
                self.state.apply(event, segment.kind, deleted);
            }
        }
        let received = page.events.len().min(limit) as u64;
        read.received += received;
        read.fresh += fresh;
        if segment.head {
            read.fresh_at_head += fresh;
        }
        let next = segment.offset.saturating_add(received);
        let at_end = received == 0 || page.count.is_some_and(|count| next >= count);
        let at_known = segment.ends_at_known_events() && fresh == 0 && !segment.resumed;
        if at_end || at_known {
            return;
        }
        segment.offset = next;
        segment.count_at = read.count;
        segment.resumed = false;
        read.current = Some(segment);
    }

    /// Ends the reading of a poll, whether it went to its end, ran out of pages or failed (a
    /// failed page is left where it was, to be read again): what is left unread becomes the
    /// backlog of the next polls.
    pub fn finish(&mut self, read: LoginRead) {
        let count = read.count;
        // The part being read is where this poll left it; the parts not reached are moved as
        // they would have been had they been reached.
        let current = read.current.map(|s| Segment { count_at: count, ..s });
        let not_reached = read.queue.into_iter().map(|s| match count {
            Some(_) if !s.head => Segment { offset: shifted(s, count, read.fresh_at_head), count_at: count, ..s },
            None if !s.head && read.fresh_at_head > 0 => Segment { offset: shifted(s, None, read.fresh_at_head), ..s },
            _ => s,
        });
        self.backlog = current
            .into_iter()
            .chain(not_reached)
            // A head not even started is read from 0 by the next poll anyway.
            .filter(|s| !(s.head && s.offset == 0))
            .map(|s| Segment { head: false, resumed: true, ..s })
            .take(MAX_BACKLOG)
            .collect();
        self.state.last.merge();
        self.seen.evict(self.polls);
    }

    /// Whether a page of the log was read: from then on the series exist.
    pub fn has_read(&self) -> bool {
        self.baseline_taken
    }

    /// Whether parts of the log are still to read (the first read of a long log, or a burst
    /// larger than one poll's pages).
    pub fn behind(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Forgets the last logins of users who are no longer in the users list, unless recent
    /// (a user may log in before a poll of the users lists them).
    /// At most `MAX_DEPARTED` (10,000) of those are kept, so that a log naming fresh users at every
    /// poll cannot grow the state.
    pub fn forget_departed(&mut self, index: &UserIndex, now: i64) {
        let mut departed = 0;
        self.state.last.retain(|user, at| {
            if index.active.contains(user) || index.deleted.contains(user) {
                return true;
            }
            departed += 1;
            now - at <= DAY && departed <= MAX_DEPARTED
        });
    }

    /// The metrics: counters, and the buckets of the non-deleted users of `index` (the last
    /// complete users poll) at `now` (Unix seconds).
    pub fn snapshot(&self, index: &UserIndex, now: i64) -> LoginSnapshot {
        let state = &self.state;
        let buckets = |ids: &IdSet| {
            let mut counts = [0u64; 6];
            for user in ids.iter() {
                counts[bucket(state.last.get(user), now)] += 1;
            }
            counts
        };
        LoginSnapshot {
            logins: state.auth_types.values.iter().cloned().zip(state.counts.iter().copied()).collect(),
            by_deleted_users: state.by_deleted_users,
            newest: state.newest,
            users_by_last_login: buckets(&index.active),
            groups_by_last_login: index.groups.iter().map(|(label, ids)| (label.clone(), buckets(ids))).collect(),
        }
    }

    /// Heap bytes of the last logins (the part that grows with the users), for the README.
    pub fn last_logins_heap_bytes(&self) -> usize {
        self.state.last.heap_bytes()
    }

    /// Heap bytes of the ids kept for the de-duplication (bounded whatever the users).
    pub fn seen_ids_heap_bytes(&self) -> usize {
        self.seen.ids.capacity() * (std::mem::size_of::<(u64, (i64, u32))>() + 1)
    }

    /// Users whose last successful login is known.
    pub fn users_with_logins(&self) -> usize {
        self.state.last.len()
    }
}

/// Where a backlog part starts now: moved down by the growth of the log's `count` since it was
/// saved (or, without counts, by the new events the head read found), never below 0.
fn shifted(segment: Segment, count: Option<u64>, fresh_at_head: u64) -> u64 {
    match (segment.count_at, count) {
        (Some(then), Some(now)) => {
            let moved = i128::from(now) - i128::from(then);
            u64::try_from((i128::from(segment.offset) + moved).max(0)).unwrap_or(u64::MAX)
        }
        _ => segment.offset.saturating_add(fresh_at_head),
    }
}

#[cfg(test)]
mod tests;
