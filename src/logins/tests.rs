use super::*;

const PAGE: u64 = 3;
const NOW: i64 = 1_800_000_000;

/// One event of a simulated log.
#[derive(Debug, Clone)]
struct Ev {
    id: u64,
    user: u64,
    at: i64,
    ok: bool,
    auth: &'static str,
}

fn ok(id: u64, user: u64, at: i64) -> Ev {
    Ev { id, user, at, ok: true, auth: "password" }
}

fn failed(id: u64, user: u64, at: i64) -> Ev {
    Ev { id, user, at, ok: false, auth: "password" }
}

/// A log paged newest first; `events` oldest first, as they happened.
#[derive(Default)]
struct Log {
    events: Vec<Ev>,
    /// Events pushed at the head after each page served, by page number (1-based) of the poll.
    shift_after_page: Vec<(u32, Vec<Ev>)>,
    /// Repeat the first event of each page at its end (a server that repeats itself).
    repeat: bool,
    requests: u32,
}

impl Log {
    fn page(&self, offset: u64) -> LoginPage<'static> {
        let total = self.events.len() as u64;
        let mut events: Vec<LoginEvent<'static>> = (offset..(offset + PAGE).min(total))
            .map(|p| {
                let e = &self.events[(total - 1 - p) as usize];
                LoginEvent { id: e.id, login_at: Some(e.at), successful: e.ok, auth_type: e.auth, user: Some(e.user) }
            })
            .collect();
        if self.repeat
            && let Some(first) = events.first().copied()
        {
            events.push(first);
        }
        LoginPage { count: Some(total), events }
    }
}

/// One poll against `log`; returns the offsets read.
fn poll(t: &mut LoginTracker, log: &mut Log, deleted: &IdSet) -> Vec<u64> {
    let mut read = t.start();
    let mut offsets = Vec::new();
    let mut served = 0;
    while let Some(offset) = t.next_offset(&mut read) {
        offsets.push(offset);
        let page = log.page(offset);
        log.requests += 1;
        served += 1;
        for (after, events) in std::mem::take(&mut log.shift_after_page) {
            if after == served {
                log.events.extend(events);
            } else {
                log.shift_after_page.push((after, events));
            }
        }
        t.page(&mut read, &page, deleted);
    }
    t.finish(read);
    offsets
}

fn index(active: &[u64], deleted: &[u64]) -> UserIndex {
    UserIndex {
        active: active.iter().copied().collect(),
        deleted: deleted.iter().copied().collect(),
        two_fa: IdSet::default(),
        activated: IdSet::default(),
        groups: vec![(
            GroupLabel { id: Arc::from("1"), name: Arc::from("Administrators") },
            active.iter().copied().filter(|u| u % 2 == 1).collect(),
        )],
    }
}

fn counts(s: &LoginSnapshot, auth: &str) -> [u64; 2] {
    s.logins.iter().find(|(a, _)| &**a == auth).map(|(_, c)| *c).unwrap_or_else(|| panic!("no {auth} series"))
}

fn total(s: &LoginSnapshot) -> [u64; 2] {
    s.logins.iter().fold([0, 0], |acc, (_, c)| [acc[0] + c[0], acc[1] + c[1]])
}

#[test]
fn buckets_are_disjoint_and_inclusive_at_their_bounds() {
    assert_eq!(bucket(None, NOW), 5);
    assert_eq!(bucket(Some(NOW + 100), NOW), 0, "a login in the future is recent");
    for (age, expected) in [
        (0, 0),
        (DAY, 0),
        (DAY + 1, 1),
        (7 * DAY, 1),
        (7 * DAY + 1, 2),
        (30 * DAY, 2),
        (90 * DAY, 3),
        (90 * DAY + 1, 4),
    ] {
        assert_eq!(bucket(Some(NOW - age), NOW), expected, "age {age}");
    }
}

#[test]
fn the_baseline_gives_last_logins_and_only_later_events_are_counted() {
    let mut t = LoginTracker::new(PAGE);
    let mut log = Log {
        events: vec![
            ok(1, 10, NOW - 100 * DAY),
            failed(2, 11, NOW - 40 * DAY),
            ok(3, 11, NOW - 20 * DAY),
            Ev { auth: "saml", ..ok(4, 12, NOW - 3 * DAY) },
            ok(5, 13, NOW - 3600),
        ],
        ..Log::default()
    };
    let idx = index(&[10, 11, 12, 13, 14], &[]);
    poll(&mut t, &mut log, &idx.deleted);
    let s = t.snapshot(&idx, NOW);
    assert_eq!(total(&s), [0, 0], "the baseline is not counted");
    assert_eq!(counts(&s, "saml"), [0, 0], "but its auth types exist");
    assert_eq!(counts(&s, "sso"), [0, 0], "and so do the known ones");
    assert_eq!(s.users_by_last_login, [1, 1, 1, 0, 1, 1]);
    assert_eq!(s.newest, Some(NOW - 3600));
    assert_eq!(s.groups_by_last_login[0].1, [1, 0, 1, 0, 0, 0], "members 11 and 13");

    log.events.extend([ok(6, 10, NOW - 60), failed(7, 14, NOW - 30), Ev { auth: "sso", ..failed(8, 14, NOW - 20) }]);
    poll(&mut t, &mut log, &idx.deleted);
    let s = t.snapshot(&idx, NOW);
    assert_eq!(counts(&s, "password"), [1, 1]);
    assert_eq!(counts(&s, "sso"), [0, 1]);
    assert_eq!(s.users_by_last_login, [2, 1, 1, 0, 0, 1], "user 10 came back; 14 only failed");
    assert_eq!(s.users_by_last_login.iter().sum::<u64>(), 5);

    // Nothing new: nothing counted again.
    poll(&mut t, &mut log, &idx.deleted);
    assert_eq!(total(&t.snapshot(&idx, NOW)), [1, 2]);
}

#[test]
fn a_quiet_poll_reads_the_first_page_and_one_of_known_events() {
    let mut t = LoginTracker::new(PAGE);
    let mut log = Log { events: (1..=30).map(|i| ok(i, 1, NOW - 1000 + i as i64)).collect(), ..Log::default() };
    let offsets = poll(&mut t, &mut log, &IdSet::default());
    assert_eq!(offsets.len(), 10, "the whole baseline");
    assert_eq!(poll(&mut t, &mut log, &IdSet::default()), [0], "a page of known events ends the read");
    log.events.push(ok(31, 1, NOW));
    assert_eq!(poll(&mut t, &mut log, &IdSet::default()), [0, 3], "a new event: read on to a page of known ones");
    assert_eq!(total(&t.snapshot(&index(&[1], &[]), NOW)), [1, 0]);
}

#[test]
fn a_log_that_shifts_while_paged_loses_nothing_and_counts_nothing_twice() {
    let mut t = LoginTracker::new(PAGE);
    let mut log = Log { events: (1..=9).map(|i| ok(i, i, NOW - 5000 + i as i64)).collect(), ..Log::default() };
    poll(&mut t, &mut log, &IdSet::default());
    // Ten new events; two more land at the head after each of the first two pages.
    log.events.extend((10..=19).map(|i| failed(i, 1, NOW - 100 + i as i64)));
    log.shift_after_page = vec![
        (1, vec![failed(20, 1, NOW - 50), failed(21, 1, NOW - 49)]),
        (2, vec![failed(22, 1, NOW - 40), failed(23, 1, NOW - 39)]),
    ];
    poll(&mut t, &mut log, &IdSet::default());
    poll(&mut t, &mut log, &IdSet::default());
    assert_eq!(total(&t.snapshot(&index(&[], &[]), NOW)), [0, 14]);
}

#[test]
fn a_page_longer_than_asked_is_read_up_to_the_limit_and_nothing_is_skipped() {
    let mut t = LoginTracker::new(PAGE);
    let mut log = Log::default();
    poll(&mut t, &mut log, &IdSet::default());
    log.events.extend((1..=7).map(|i| failed(i, 1, NOW)));
    let mut read = t.start();
    assert_eq!(t.next_offset(&mut read), Some(0));
    // Seven events where three were asked for: three are taken, the next page starts at 3.
    let mut long = log.page(0);
    long.events = (1..=7).rev().map(|i| log.page(7 - i).events[0]).collect();
    t.page(&mut read, &long, &IdSet::default());
    assert_eq!(read.received, PAGE);
    assert_eq!(t.next_offset(&mut read), Some(3));
    t.finish(read);
    poll(&mut t, &mut log, &IdSet::default());
    assert_eq!(total(&t.snapshot(&index(&[], &[]), NOW)), [0, 7]);
}

#[test]
fn events_repeated_across_pages_count_once() {
    let mut t = LoginTracker::new(PAGE);
    let mut log = Log { events: vec![ok(1, 1, NOW - 10)], repeat: true, ..Log::default() };
    poll(&mut t, &mut log, &IdSet::default());
    log.events.extend((2..=8).map(|i| ok(i, i, NOW - 10 + i as i64)));
    poll(&mut t, &mut log, &IdSet::default());
    let s = t.snapshot(&index(&[], &[]), NOW);
    assert_eq!(total(&s), [7, 0]);
}

#[test]
fn a_baseline_longer_than_a_poll_is_caught_up_without_being_counted() {
    let budget = MAX_LOGIN_PAGES_PER_POLL as u64 * PAGE;
    let mut t = LoginTracker::new(PAGE);
    let n = budget * 2 + 7;
    let mut log = Log { events: (1..=n).map(|i| ok(i, i, NOW - 10 * DAY + i as i64)).collect(), ..Log::default() };
    let users: Vec<u64> = (1..=n).collect();
    let idx = index(&users, &[]);
    poll(&mut t, &mut log, &idx.deleted);
    assert!(t.behind());
    assert_eq!(t.users_with_logins() as u64, budget, "the newest pages first");
    // Meanwhile, new events at the head: counted; the rest of the baseline: not.
    log.events.extend((n + 1..=n + 5).map(|i| failed(i, 1, NOW)));
    poll(&mut t, &mut log, &idx.deleted);
    poll(&mut t, &mut log, &idx.deleted);
    assert!(!t.behind());
    let s = t.snapshot(&idx, NOW);
    assert_eq!(t.users_with_logins() as u64, n);
    assert_eq!(total(&s), [0, 5]);
    assert_eq!(s.users_by_last_login[2], n, "every user of the baseline, 10 days ago");
}

#[test]
fn a_burst_longer_than_a_poll_is_caught_up_and_counted_exactly() {
    let budget = MAX_LOGIN_PAGES_PER_POLL as u64 * PAGE;
    let mut t = LoginTracker::new(PAGE);
    let mut log = Log { events: (1..=10).map(|i| ok(i, 1, NOW - 1000)).collect(), ..Log::default() };
    poll(&mut t, &mut log, &IdSet::default());
    let burst = budget * 2 + 4;
    log.events.extend((11..11 + burst).map(|i| failed(i, 2, NOW - 500)));
    poll(&mut t, &mut log, &IdSet::default());
    assert!(t.behind());
    assert_eq!(total(&t.snapshot(&index(&[], &[]), NOW)), [0, budget]);
    // More arrive while the gap is read.
    log.events.extend((1000..1003).map(|i| ok(i, 3, NOW - 100)));
    for _ in 0..3 {
        poll(&mut t, &mut log, &IdSet::default());
    }
    assert!(!t.behind());
    assert_eq!(total(&t.snapshot(&index(&[], &[]), NOW)), [3, burst]);
}

#[test]
fn a_failed_page_is_read_again_by_the_next_poll() {
    let mut t = LoginTracker::new(PAGE);
    let mut log = Log { events: (1..=3).map(|i| ok(i, 1, NOW)).collect(), ..Log::default() };
    poll(&mut t, &mut log, &IdSet::default());
    log.events.extend((4..=9).map(|i| failed(i, 1, NOW)));
    // The second page fails: the poll ends there.
    let mut read = t.start();
    assert_eq!(t.next_offset(&mut read), Some(0));
    t.page(&mut read, &log.page(0), &IdSet::default());
    assert_eq!(t.next_offset(&mut read), Some(3));
    t.finish(read);
    assert!(t.behind());
    // Nothing new at the head: the first page is all known, yet the rest is read.
    poll(&mut t, &mut log, &IdSet::default());
    assert!(!t.behind());
    assert_eq!(total(&t.snapshot(&index(&[], &[]), NOW)), [0, 6]);
}

#[test]
fn successful_logins_of_deleted_users_are_counted_apart() {
    let mut t = LoginTracker::new(PAGE);
    let idx = index(&[1], &[2]);
    let mut log = Log { events: vec![ok(1, 2, NOW - 100)], ..Log::default() };
    poll(&mut t, &mut log, &idx.deleted);
    log.events.extend([ok(2, 2, NOW - 50), failed(3, 2, NOW - 40), ok(4, 1, NOW - 30), ok(5, 2, NOW - 20)]);
    poll(&mut t, &mut log, &idx.deleted);
    let s = t.snapshot(&idx, NOW);
    assert_eq!(s.by_deleted_users, 2, "after the baseline, successful only");
    assert_eq!(s.users_by_last_login, [1, 0, 0, 0, 0, 0], "deleted users are in no bucket");
}

#[test]
fn auth_types_are_bounded_labels() {
    let mut t = LoginTracker::new(1000);
    let mut log = Log::default();
    poll(&mut t, &mut log, &IdSet::default());
    let names: Vec<String> = (0..40).map(|i| format!("weird-{i}")).collect();
    let mut state = LoginState::new();
    for (i, name) in names.iter().enumerate() {
        let event = LoginEvent { id: i as u64, login_at: None, successful: false, auth_type: name, user: None };
        state.apply(&event, Kind::Counted, &IdSet::default());
    }
    assert_eq!(state.counts.len(), KNOWN_AUTH_TYPES.len() + crate::snapshot::MAX_UNKNOWN_VALUES + 1);
    assert_eq!(state.counts.iter().map(|c| c[1]).sum::<u64>(), 40);
    assert_eq!(*state.auth_types.values.last().unwrap(), Arc::from("other"));
}

#[test]
fn last_logins_keep_the_latest_time_per_user_whatever_the_id() {
    let mut last = LastLogins::default();
    last.record(5, 100);
    last.record(3, 50);
    last.record(5, 90);
    last.record(u64::MAX, 7);
    last.record(6, -5);
    last.merge();
    last.record(3, 40);
    last.record(4, 10);
    last.merge();
    assert_eq!(
        (last.get(5), last.get(3), last.get(4), last.get(u64::MAX), last.get(6)),
        (Some(100), Some(50), Some(10), Some(7), Some(-5))
    );
    assert_eq!(last.get(7), None);
    assert_eq!(last.len(), 5);
    last.retain(|user, _| user != 3);
    assert_eq!(last.get(3), None);
}

#[test]
fn departed_users_are_forgotten_unless_recent() {
    let mut t = LoginTracker::new(PAGE);
    let mut log =
        Log { events: vec![ok(1, 1, NOW - 2 * DAY), ok(2, 2, NOW - 2 * DAY), ok(3, 3, NOW - 60)], ..Log::default() };
    poll(&mut t, &mut log, &IdSet::default());
    t.forget_departed(&index(&[1], &[]), NOW);
    assert_eq!(t.users_with_logins(), 2, "user 2 is gone, user 3 logged in a minute ago");
}

#[test]
fn seen_ids_are_bounded_but_keep_the_last_two_polls() {
    let mut seen = SeenIds { ids: HashMap::new(), keep: 4 };
    for id in 0..6 {
        seen.insert(id, Some(id as i64), 1);
    }
    seen.evict(2);
    assert_eq!(seen.ids.len(), 6, "read by the previous poll: kept");
    seen.insert(100, Some(0), 3);
    seen.evict(3);
    assert_eq!(seen.ids.len(), 4);
    assert!(seen.ids.contains_key(&100), "read by this poll, however old");
    assert!(seen.ids.contains_key(&5) && seen.ids.contains_key(&4) && seen.ids.contains_key(&3));
}

/// The memory figures of the README: `cargo test --release --lib logins::tests::memory -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a test: prints the bytes of the login state at 100k and 1M users"]
fn memory_of_the_login_state() {
    for users in [100_000u64, 1_000_000] {
        for page_size in [100u64, 1000] {
            let mut t = LoginTracker::new(page_size);
            // A log of one successful login per user, ids spread as Gcore's are (gaps of 1 to 5).
            let user_id = |i: u64| 100_000 + i * 3 + i % 3;
            let deleted = IdSet::default();
            let mut polls = 0;
            loop {
                polls += 1;
                let mut read = t.start();
                while let Some(offset) = t.next_offset(&mut read) {
                    let events: Vec<LoginEvent<'static>> = (offset..(offset + page_size).min(users))
                        .map(|p| {
                            let i = users - 1 - p;
                            LoginEvent {
                                id: 50_000_000 + i,
                                login_at: Some(NOW - (i % 200) as i64 * DAY),
                                successful: true,
                                auth_type: "password",
                                user: Some(user_id(i)),
                            }
                        })
                        .collect();
                    t.page(&mut read, &LoginPage { count: Some(users), events }, &deleted);
                }
                t.finish(read);
                if !t.behind() {
                    break;
                }
            }
            let index = UserIndex {
                active: (0..users).map(user_id).collect(),
                deleted: IdSet::default(),
                two_fa: IdSet::default(),
                activated: IdSet::default(),
                groups: Vec::new(),
            };
            let started = std::time::Instant::now();
            let snapshot = t.snapshot(&index, NOW);
            let buckets = started.elapsed();
            assert_eq!(snapshot.users_by_last_login.iter().sum::<u64>(), users);
            assert_eq!(t.users_with_logins() as u64, users);
            let last = t.last_logins_heap_bytes();
            let seen = t.seen_ids_heap_bytes();
            println!(
                "{users} users, page size {page_size}: last logins {last} bytes ({:.2} bytes a user), \
                 seen event ids {seen} bytes, read in {polls} polls; buckets of every user in {buckets:?}",
                last as f64 / users as f64
            );
        }
    }
}
