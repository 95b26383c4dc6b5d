//! A synthetic account of any size, shared by the criterion benchmarks and the load-benchmark
//! API (`examples/bench_api.rs`): users shaped like the real API's (every field of the OpenAPI
//! `User`, ~560 bytes of JSON each), with the proportions of the demo account, drawn from a
//! fixed seed so that every run serves the same bytes.

use gcore_iam_fake::{FakeUser, IAM_GROUPS};
use serde::Serialize;

const FIRST_NAMES: [&str; 8] = ["Alice", "Bruno", "Chen", "Dana", "Emil", "Farah", "Ivan", "Priya"];
const LAST_NAMES: [&str; 8] = ["Novak", "Schmidt", "Wang", "Aliyev", "Garcia", "Tanaka", "Rossi", "Jensen"];
const USER_TYPES: [&str; 3] = ["common", "reseller", "seller"];
const AUTH_TYPES: [&str; 4] = ["password", "sso", "github", "google-oauth2"];
const LANGS: [&str; 5] = ["en", "de", "ru", "zh", "az"];

/// splitmix64: a tiny deterministic generator, enough to vary users.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// User number `i` (0-based) of the synthetic account.
pub fn user(i: u64) -> FakeUser {
    let r = mix(i);
    let pick = |shift: u32, n: u64| ((r >> shift) % n) as usize;
    let (first, last) = (FIRST_NAMES[pick(0, 8)], LAST_NAMES[pick(3, 8)]);
    let id = 100_000 + i;
    let (gid, gname) = IAM_GROUPS[pick(6, 5)];
    let mut u = FakeUser::new(id)
        .groups(&[(gid, gname)])
        .email(&format!("{}.{}{id}@example-company.com", first.to_lowercase(), last.to_lowercase()))
        .name(Some(&format!("{first} {last}")))
        .phone((r >> 9).is_multiple_of(2).then(|| format!("+4930{:07}", (r >> 10) % 10_000_000)).as_deref())
        .lang(LANGS[pick(34, 5)])
        .user_type(USER_TYPES[if pick(17, 100) < 90 { 0 } else { 1 + pick(24, 2) }])
        .auth_types(&[AUTH_TYPES[pick(27, 4)]])
        .two_fa(pick(30, 100) < 62)
        .activated(pick(37, 100) < 94)
        .active(pick(44, 100) < 96)
        .deleted(is_deleted(i));
    if pick(51, 100) < 7 {
        let (gid, gname) = IAM_GROUPS[(pick(6, 5) + 1) % 5];
        u = u.in_group(gid, gname);
    }
    u.sso_auth = u.auth_types.iter().any(|t| t == "sso");
    u
}

/// Whether user `i` is flagged deleted (about 3 %).
pub fn is_deleted(i: u64) -> bool {
    mix(i) >> 56 < 8
}

/// How many of the first `n` users are deleted.
pub fn deleted_among(n: u64) -> u64 {
    (0..n).filter(|&i| is_deleted(i)).count() as u64
}

#[derive(Serialize)]
struct Envelope<'a> {
    count: u64,
    next: Option<String>,
    previous: Option<String>,
    results: &'a [FakeUser],
}

/// The page at `offset` of an account of `total` users, as the API writes it.
pub fn page(total: u64, offset: u64, limit: u64) -> Vec<u8> {
    let end = (offset + limit).min(total);
    let users: Vec<FakeUser> = (offset.min(end)..end).map(user).collect();
    let link = |o: u64| format!("/users?offset={o}&limit={limit}");
    let envelope = Envelope {
        count: total,
        next: (end < total).then(|| link(end)),
        previous: (offset > 0).then(|| link(offset.saturating_sub(limit))),
        results: &users,
    };
    serde_json::to_vec(&envelope).expect("serializing into a Vec does not fail")
}
