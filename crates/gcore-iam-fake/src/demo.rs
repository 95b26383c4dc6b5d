//! The seeded synthetic account behind `--demo`: plausible proportions, every group, user type
//! and auth type, and guaranteed findings for the dashboards to show.

use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::account::{FakeAccount, FakeToken, FakeTokenIssuer};
use super::user::{ADMINISTRATORS, ENGINEERS, FakeGroup, FakeUser, IAM_GROUPS, PURGE_API, PURGE_API_WEB, USERS};

/// Several hundred: enough to page through, small enough to read on a dashboard.
const POPULATION: usize = 420;
const FIRST_ID: u64 = 100_001;
const CLIENT: u64 = 417_203;
const COMPANY: &str = "Demo Media Ltd";

const FIRST_NAMES: [&str; 16] = [
    "Alice", "Bruno", "Chen", "Dana", "Emil", "Farah", "Gustav", "Hana", "Ivan", "Julia", "Kenji", "Lena", "Mateo",
    "Nadia", "Omar", "Priya",
];
const LAST_NAMES: [&str; 12] = [
    "Novak", "Schmidt", "Wang", "Aliyev", "Garcia", "Ivanova", "Kowalski", "Smith", "Tanaka", "Rossi", "Dubois",
    "Jensen",
];
/// (value, weight): weights approximate a mid-size European account.
const LANGS: [(&str, u32); 5] = [("en", 60), ("de", 15), ("ru", 10), ("zh", 10), ("az", 5)];
const PRIMARY_GROUPS: [(u64, u32); 5] =
    [(USERS, 50), (ENGINEERS, 22), (ADMINISTRATORS, 8), (PURGE_API_WEB, 10), (PURGE_API, 10)];
const USER_TYPES: [(&str, u32); 3] = [("common", 90), ("reseller", 7), ("seller", 3)];
const AUTH_TYPES: [(&str, u32); 4] = [("password", 70), ("sso", 15), ("github", 8), ("google-oauth2", 7)];

/// Non-deleted administrators without two-step verification: a finding the demo promises.
pub(crate) fn admins_without_2fa(users: &[FakeUser]) -> usize {
    users.iter().filter(|u| is_admin_without_2fa(u)).count()
}

/// Non-deleted users who have not confirmed their email: a finding the demo promises.
pub(crate) fn not_activated(users: &[FakeUser]) -> usize {
    users.iter().filter(|u| is_not_activated(u)).count()
}

pub(crate) fn is_admin_without_2fa(user: &FakeUser) -> bool {
    !user.deleted && !user.two_fa && user.is_in_group(ADMINISTRATORS)
}

pub(crate) fn is_not_activated(user: &FakeUser) -> bool {
    !user.deleted && !user.activated
}

/// The demo population for `seed`. The same seed gives the same users for a given `rand`
/// version (StdRng's algorithm may change across major versions).
pub(crate) fn population(seed: u64) -> Vec<FakeUser> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut users = Vec::with_capacity(POPULATION);
    let mut id = FIRST_ID;
    for _ in 0..POPULATION {
        let mut user = person(&mut rng, id);
        user.activated = rng.random_bool(0.94);
        user.is_active = rng.random_bool(0.96);
        user.deleted = rng.random_bool(0.03);
        if user.deleted {
            user.is_active = false;
        }
        users.push(user);
        // Gaps, as ids of purged users and other accounts' users leave them.
        id += rng.random_range(1..=4);
    }
    guarantee_findings(&mut users, &mut rng);
    users
}

/// One randomly drawn user of the demo account, live and activated; callers set the lifecycle
/// flags (activation, deletion) that differ between the initial population and invitations.
pub(crate) fn person(rng: &mut impl Rng, id: u64) -> FakeUser {
    let first = *FIRST_NAMES.choose(rng).unwrap_or(&"Alex");
    let last = *LAST_NAMES.choose(rng).unwrap_or(&"Doe");
    let primary = weighted(rng, &PRIMARY_GROUPS);
    let mut groups = vec![standard_group(primary)];
    if rng.random_bool(0.07) {
        let second = weighted(rng, &PRIMARY_GROUPS);
        if second != primary {
            groups.push(standard_group(second));
        }
    }
    let mut auth_types = vec![weighted(rng, &AUTH_TYPES).to_owned()];
    if rng.random_bool(0.12) {
        let extra = weighted(rng, &AUTH_TYPES).to_owned();
        if !auth_types.contains(&extra) {
            auth_types.push(extra);
        }
    }
    // Administrators are nagged into 2FA more often than the rest.
    let two_fa_rate = if primary == ADMINISTRATORS { 0.8 } else { 0.62 };
    FakeUser {
        id,
        email: format!("{}.{}{id}@demo-media.example", first.to_lowercase(), last.to_lowercase()),
        name: rng.random_bool(0.9).then(|| format!("{first} {last}")),
        phone: rng.random_bool(0.55).then(|| format!("+4930{:07}", rng.random_range(0..10_000_000))),
        company: COMPANY.to_owned(),
        lang: weighted(rng, &LANGS).to_owned(),
        reseller: 1,
        client: CLIENT,
        deleted: false,
        sso_auth: auth_types.iter().any(|t| t == "sso"),
        groups,
        activated: true,
        two_fa: rng.random_bool(two_fa_rate),
        auth_types,
        user_type: weighted(rng, &USER_TYPES).to_owned(),
        is_active: true,
    }
}

/// Draws a standard group `user` is not in yet, `None` if in all five.
pub(crate) fn group_to_join(rng: &mut impl Rng, user: &FakeUser) -> Option<FakeGroup> {
    let missing: Vec<u64> = IAM_GROUPS.iter().map(|(id, _)| *id).filter(|id| !user.is_in_group(*id)).collect();
    missing.choose(rng).map(|id| standard_group(*id))
}

/// Makes sure the random draw left every finding the demo promises, whatever the seed.
fn guarantee_findings(users: &mut [FakeUser], rng: &mut impl Rng) {
    if !users.iter().any(|u| u.deleted) {
        let i = rng.random_range(0..users.len());
        users[i].deleted = true;
        users[i].is_active = false;
    }
    for (group, _) in IAM_GROUPS {
        if !users.iter().any(|u| !u.deleted && u.is_in_group(group)) {
            pick_live(users, rng).groups.push(standard_group(group));
        }
    }
    if admins_without_2fa(users) == 0 {
        let admin = pick_live(users, rng);
        if !admin.is_in_group(ADMINISTRATORS) {
            admin.groups.push(standard_group(ADMINISTRATORS));
        }
        admin.two_fa = false;
    }
    if not_activated(users) == 0 {
        pick_live(users, rng).activated = false;
    }
}

/// The demo account: active, with an active administrator.
pub(crate) fn account() -> FakeAccount {
    FakeAccount::new(CLIENT).company_name(COMPANY)
}

/// The id of the token whose secret is the demo key (`42_...`): the exporter's own.
pub(crate) const EXPORTER_TOKEN: u64 = 42;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// The demo account's API tokens, dated relative to `now`, each one a finding of the token
/// alerts (or, for the exporter's own, the reason it keeps working). Issuers are users of
/// `users`: live ones of the Administrators, Engineers and Users groups, and a deleted one.
pub(crate) fn tokens(users: &[FakeUser], now: SystemTime) -> Vec<FakeToken> {
    let issuer = |group: u64| {
        let user = users.iter().find(|u| !u.deleted && u.is_in_group(group));
        issuer_of(user, group, false)
    };
    let admin = issuer(ADMINISTRATORS);
    let engineer = issuer(ENGINEERS);
    let user = issuer(USERS);
    let gone = users.iter().find(|u| u.deleted);
    let gone = issuer_of(gone, gone.and_then(|u| u.groups.first()).map_or(ENGINEERS, |g| g.id), true);

    let ago = |d: Duration| now - d;
    let after = |d: Duration| now + d;
    let token = |id: u64, name: &str, created: Duration, issuer: &FakeTokenIssuer| {
        FakeToken::new(id, name).created_at(ago(created)).issued_by(issuer.clone())
    };
    vec![
        token(EXPORTER_TOKEN, "gcore-iam-exporter", 85 * DAY, &admin)
            .description("Prometheus exporter: read-only polling of IAM")
            .expires_at(after(5 * DAY))
            .last_used_at(ago(Duration::from_secs(120))),
        token(101, "ci-deploy", 350 * DAY, &engineer)
            .description("CI pipeline deployments")
            .expires_at(after(12 * HOUR))
            .last_used_at(ago(HOUR)),
        token(102, "cdn-purge", 170 * DAY, &user)
            .description("purges the CDN cache after releases")
            .expires_at(after(3 * DAY))
            .last_used_at(ago(6 * HOUR)),
        token(103, "terraform", 400 * DAY, &admin).description("infrastructure as code").last_used_at(ago(2 * DAY)),
        token(104, "legacy-backup", 300 * DAY, &gone)
            .description("nightly backup of DNS zones")
            .expires_at(after(60 * DAY))
            .last_used_at(ago(10 * HOUR)),
        token(105, "grafana-reader", 20 * DAY, &user).description("dashboards").expires_at(after(90 * DAY)),
        token(106, "old-migration", 380 * DAY, &user)
            .description("one-off data migration")
            .expires_at(after(200 * DAY))
            .last_used_at(ago(120 * DAY)),
        token(107, "staging-smoke-tests", 95 * DAY, &engineer)
            .expires_at(ago(2 * DAY))
            .expired(true)
            .last_used_at(ago(3 * DAY)),
        token(108, "revoked-laptop", 200 * DAY, &engineer)
            .expires_at(after(30 * DAY))
            .deleted(true)
            .last_used_at(ago(40 * DAY)),
    ]
}

fn issuer_of(user: Option<&FakeUser>, role: u64, deleted: bool) -> FakeTokenIssuer {
    let Some(user) = user else {
        return FakeTokenIssuer::new(FIRST_ID, role).deleted(deleted);
    };
    let mut issuer = FakeTokenIssuer::new(user.id, role).deleted(deleted);
    issuer.user_name = user.name.clone().unwrap_or_else(|| user.email.clone());
    issuer.user_email.clone_from(&user.email);
    issuer
}

fn pick_live<'a>(users: &'a mut [FakeUser], rng: &mut impl Rng) -> &'a mut FakeUser {
    let live: Vec<usize> = (0..users.len()).filter(|&i| !users[i].deleted).collect();
    let i = *live.choose(rng).expect("the demo population is never all deleted");
    &mut users[i]
}

fn standard_group(id: u64) -> FakeGroup {
    FakeGroup::standard(id).unwrap_or_else(|| FakeGroup::new(id, "Unknown"))
}

fn weighted<T: Copy>(rng: &mut impl Rng, choices: &[(T, u32)]) -> T {
    let total: u32 = choices.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total);
    for (value, weight) in choices {
        if roll < *weight {
            return *value;
        }
        roll -= weight;
    }
    choices[choices.len() - 1].0
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn population_has_every_promised_feature_for_many_seeds() {
        for seed in 0..50 {
            let users = population(seed);
            assert!(users.len() >= 300, "seed {seed}: several hundred users");
            assert!(admins_without_2fa(&users) >= 1, "seed {seed}");
            assert!(not_activated(&users) >= 1, "seed {seed}");
            assert!(users.iter().any(|u| u.deleted), "seed {seed}");
            for (group, _) in IAM_GROUPS {
                assert!(users.iter().any(|u| !u.deleted && u.is_in_group(group)), "seed {seed}: group {group}");
            }
            let ids: HashSet<u64> = users.iter().map(|u| u.id).collect();
            assert_eq!(ids.len(), users.len(), "seed {seed}: ids are unique");
        }
    }

    #[test]
    fn population_mixes_types_and_optional_fields() {
        let users = population(7);
        for kind in ["common", "reseller", "seller"] {
            assert!(users.iter().any(|u| u.user_type == kind), "{kind}");
        }
        for kind in ["password", "sso", "github", "google-oauth2"] {
            assert!(users.iter().any(|u| u.auth_types.iter().any(|t| t == kind)), "{kind}");
        }
        assert!(users.iter().any(|u| u.auth_types.len() > 1));
        assert!(users.iter().any(|u| u.groups.len() > 1));
        assert!(users.iter().any(|u| u.name.is_none()));
        assert!(users.iter().any(|u| u.phone.is_none()));
        assert!(users.iter().any(|u| u.phone.is_some()));
        assert!(users.iter().any(|u| u.sso_auth) && users.iter().any(|u| !u.sso_auth));
        assert!(users.iter().any(|u| !u.is_active && !u.deleted));
        assert!(users.iter().any(|u| u.two_fa) && users.iter().any(|u| !u.two_fa));
    }

    #[test]
    fn demo_tokens_carry_every_finding() {
        use std::time::UNIX_EPOCH;

        let users = population(5);
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let tokens = tokens(&users, now);
        let at = |s: &Option<String>| s.as_deref().map(|s| humantime::parse_rfc3339(s).unwrap());
        let live: Vec<&FakeToken> = tokens.iter().filter(|t| !t.deleted).collect();
        assert_eq!(live.len(), 8);
        assert!(tokens.iter().any(|t| t.deleted), "a deleted token, hidden by default");
        let expires_within = |d: Duration| -> Vec<&str> {
            let soon = |t: &&&FakeToken| at(&t.exp_date).is_some_and(|e| e > now && e <= now + d);
            live.iter().filter(soon).map(|t| t.name.as_str()).collect()
        };
        assert_eq!(expires_within(DAY), ["ci-deploy"]);
        assert_eq!(expires_within(7 * DAY), ["gcore-iam-exporter", "ci-deploy", "cdn-purge"]);
        let own = live.iter().find(|t| t.id == EXPORTER_TOKEN).expect("the exporter's own token");
        assert_eq!(at(&own.exp_date), Some(now + 5 * DAY));
        assert_eq!(live.iter().filter(|t| t.exp_date.is_none()).count(), 1, "one never expires");
        assert_eq!(live.iter().filter(|t| t.last_usage.is_none()).count(), 1, "one never used");
        assert_eq!(live.iter().filter(|t| at(&t.last_usage).is_some_and(|u| u < now - 90 * DAY)).count(), 1);
        assert_eq!(live.iter().filter(|t| t.issuer.deleted).count(), 1);
        let expired: Vec<_> = live.iter().filter(|t| t.expired).collect();
        assert_eq!(expired.len(), 1);
        assert!(at(&expired[0].exp_date).unwrap() < now);
        for token in &live {
            let user = users.iter().find(|u| u.id == token.issuer.user_id).expect("issued by a user of the account");
            assert_eq!(user.deleted, token.issuer.deleted, "{}", token.name);
        }
        let roles: HashSet<&str> = live.iter().map(|t| t.issuer.role_name.as_str()).collect();
        for role in ["Administrators", "Users", "Engineers"] {
            assert!(roles.contains(role), "{role}: {roles:?}");
        }
        let ids: HashSet<u64> = tokens.iter().map(|t| t.id).collect();
        assert_eq!(ids.len(), tokens.len(), "ids are unique");
    }

    #[test]
    fn population_is_deterministic_per_seed() {
        assert_eq!(population(3), population(3));
        assert_ne!(population(3), population(4));
    }
}
