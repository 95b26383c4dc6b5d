//! A [`Collector`] that turns published account states and their counters into metric
//! families. It holds no data of its own and does no I/O: it encodes what the pollers last
//! published, for any set of accounts — one account (its part of the exposition, see
//! `assembly.rs`) or all of them (the whole-registry encoding the parts must add up to).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use super::{AccountCounters, AccountLabels, FailureLabels, RequestLabels};
use crate::board::{AccountState, CollectorState};
use crate::logins::LAST_LOGIN_BUCKETS;
use crate::{REVISION, VERSION};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    revision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UserLabels {
    account: Arc<str>,
    user_type: Arc<str>,
    two_fa: bool,
    activated: bool,
    sso_auth: bool,
    is_active: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    account: Arc<str>,
    group_id: Arc<str>,
    group: Arc<str>,
    two_fa: bool,
    activated: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UserChangeLabels {
    account: Arc<str>,
    change: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MembershipChangeLabels {
    account: Arc<str>,
    group_id: Arc<str>,
    group: Arc<str>,
    change: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountInfoLabels {
    account: Arc<str>,
    client_id: String,
    status: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenCountLabels {
    account: Arc<str>,
    role: Arc<str>,
    expired: bool,
    never_expires: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    account: Arc<str>,
    token_id: Arc<str>,
    token_name: Arc<str>,
    role: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenInfoLabels {
    account: Arc<str>,
    token_id: Arc<str>,
    token_name: Arc<str>,
    role: Arc<str>,
    used_by_exporter: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CollectorStateLabels {
    account: Arc<str>,
    collector: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    account: Arc<str>,
    auth_type: Arc<str>,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LastLoginLabels {
    account: Arc<str>,
    last_login: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLastLoginLabels {
    account: Arc<str>,
    group_id: Arc<str>,
    group: Arc<str>,
    last_login: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthTypeLabels {
    account: Arc<str>,
    auth_type: Arc<str>,
    two_fa: bool,
}

/// The families in the order they are encoded. `assembly.rs` places each account's samples
/// under the family they belong to by this order; a family's name as written may carry a
/// `_total` (counters, text format) or `_seconds` (unit) suffix.
pub(super) const FAMILIES: [&str; 29] = [
    "gcore_iam_polls",
    "gcore_iam_poll_failures",
    "gcore_iam_api_requests",
    "gcore_iam_exporter_build_info",
    "gcore_iam_up",
    "gcore_iam_last_success_timestamp",
    "gcore_iam_poll_duration",
    "gcore_iam_poll_interval",
    "gcore_iam_users",
    "gcore_iam_group_members",
    "gcore_iam_auth_type_users",
    "gcore_iam_deleted_users",
    "gcore_iam_api_reported_users",
    "gcore_iam_users_fetched",
    "gcore_iam_user_changes",
    "gcore_iam_group_membership_changes",
    "gcore_iam_account_info",
    "gcore_iam_account_active_admin",
    "gcore_iam_tokens",
    "gcore_iam_token_info",
    "gcore_iam_token_expiry_timestamp",
    "gcore_iam_token_last_used_timestamp",
    "gcore_iam_token_issuer_deleted",
    "gcore_iam_collector_state",
    "gcore_iam_logins",
    "gcore_iam_logins_by_deleted_users",
    "gcore_iam_login_log_newest_timestamp",
    "gcore_iam_users_by_last_login",
    "gcore_iam_group_members_by_last_login",
];

/// The index in [`FAMILIES`] of a family name as an encoder wrote it.
pub(super) fn family_index(written: &str) -> Option<usize> {
    FAMILIES
        .iter()
        .position(|base| written.strip_prefix(base).is_some_and(|rest| matches!(rest, "" | "_total" | "_seconds")))
}

/// Encodes the families of `accounts` (in their order) and, with `build_info`, the exporter's
/// own build info, which belongs to no account.
#[derive(Debug)]
pub struct AccountCollector {
    accounts: Vec<(Arc<AccountState>, AccountCounters)>,
    build_info: bool,
    poll_interval: Duration,
}

impl AccountCollector {
    pub fn new(accounts: Vec<(Arc<AccountState>, AccountCounters)>, build_info: bool, poll_interval: Duration) -> Self {
        AccountCollector { accounts, build_info, poll_interval }
    }
}

const FROM_POLL: &str = "from the last complete background poll of the Gcore IAM API (GET /iam/users)";

impl Collector for AccountCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let states: Vec<Arc<AccountState>> = self.accounts.iter().map(|(s, _)| s.clone()).collect();
        let account = |s: &AccountState| AccountLabels { account: s.name.clone() };
        let counters = || self.accounts.iter().map(|(s, c)| (s.name.clone(), c));

        counter_family(
            &mut encoder,
            "gcore_iam_polls",
            "Polls of the Gcore IAM users API finished by the background poller, successful or not",
            counters().map(|(account, c)| (AccountLabels { account }, c.polls())),
        )?;
        counter_family(
            &mut encoder,
            "gcore_iam_poll_failures",
            "Background polls of the Gcore IAM users API that failed, by reason",
            counters().flat_map(|(account, c)| {
                c.failures().map(move |(reason, n)| (FailureLabels { account: account.clone(), reason }, n))
            }),
        )?;
        counter_family(
            &mut encoder,
            "gcore_iam_api_requests",
            "HTTP requests sent to the Gcore IAM API by the background poller (retries included), by result",
            counters().flat_map(|(account, c)| {
                c.requests().into_iter().map(move |(result, n)| (RequestLabels { account: account.clone(), result }, n))
            }),
        )?;
        if self.build_info {
            gauges(
                &mut encoder,
                "gcore_iam_exporter_build_info",
                "Always 1; labelled with the version and git revision of the running exporter.",
                None,
                [(BuildLabels { version: VERSION, revision: REVISION }, 1i64)],
            )?;
        }
        gauges(
            &mut encoder,
            "gcore_iam_up",
            "1 if the last background poll of the account's users succeeded, 0 if it failed or has not finished yet.",
            None,
            states.iter().map(|s| (account(s), i64::from(s.up()))),
        )?;
        gauges(
            &mut encoder,
            "gcore_iam_last_success_timestamp",
            "Unix time at which the last successful background poll of the account finished.",
            Some(&Unit::Seconds),
            states.iter().filter_map(|s| {
                let at = s.last_success?.duration_since(UNIX_EPOCH).ok()?;
                Some((account(s), at.as_secs_f64()))
            }),
        )?;
        gauges(
            &mut encoder,
            "gcore_iam_poll_duration",
            "Wall-clock duration of the last background poll of the account, successful or not.",
            Some(&Unit::Seconds),
            states.iter().filter_map(|s| Some((account(s), s.last_poll.as_ref()?.duration.as_secs_f64()))),
        )?;
        gauges(
            &mut encoder,
            "gcore_iam_poll_interval",
            "The configured time between two background polls of the account (--poll.interval).",
            Some(&Unit::Seconds),
            states.iter().map(|s| (account(s), self.poll_interval.as_secs_f64())),
        )?;

        let with_data: Vec<_> = states.iter().filter_map(|s| Some((s, s.snapshot.as_ref()?))).collect();
        gauges(
            &mut encoder,
            "gcore_iam_users",
            &format!(
                "Users by user type, 2FA, e-mail confirmation (activated), SSO and activity flags; deleted users excluded; {FROM_POLL}."
            ),
            None,
            with_data.iter().flat_map(|(s, snap)| {
                snap.users.iter().map(|u| {
                    let labels = UserLabels {
                        account: s.name.clone(),
                        user_type: u.user_type.clone(),
                        two_fa: u.two_fa,
                        activated: u.activated,
                        sso_auth: u.sso_auth,
                        is_active: u.is_active,
                    };
                    (labels, u.users)
                })
            }),
        )?;
        gauges(
            &mut encoder,
            "gcore_iam_group_members",
            &format!(
                "Users per group by 2FA and e-mail confirmation; a user in several groups is counted in each; deleted users excluded; {FROM_POLL}."
            ),
            None,
            with_data.iter().flat_map(|(s, snap)| {
                snap.groups.iter().map(|g| {
                    let labels = GroupLabels {
                        account: s.name.clone(),
                        group_id: g.group.id.clone(),
                        group: g.group.name.clone(),
                        two_fa: g.two_fa,
                        activated: g.activated,
                    };
                    (labels, g.users)
                })
            }),
        )?;
        gauges(
            &mut encoder,
            "gcore_iam_auth_type_users",
            &format!(
                "Users per auth type by 2FA; a user with several auth types is counted in each; deleted users excluded; {FROM_POLL}."
            ),
            None,
            with_data.iter().flat_map(|(s, snap)| {
                snap.auth_types.iter().map(|a| {
                    let labels =
                        AuthTypeLabels { account: s.name.clone(), auth_type: a.auth_type.clone(), two_fa: a.two_fa };
                    (labels, a.users)
                })
            }),
        )?;
        gauges(
            &mut encoder,
            "gcore_iam_deleted_users",
            &format!("Users flagged as deleted; {FROM_POLL}."),
            None,
            with_data.iter().map(|(s, snap)| (account(s), snap.deleted_users)),
        )?;
        gauges(
            &mut encoder,
            "gcore_iam_api_reported_users",
            &format!("The total (count) the API reported, deleted users included; {FROM_POLL}."),
            None,
            with_data.iter().map(|(s, snap)| (account(s), snap.reported_users)),
        )?;
        gauges(
            &mut encoder,
            "gcore_iam_users_fetched",
            &format!(
                "Distinct users actually received, deleted users included (compare with gcore_iam_api_reported_users); {FROM_POLL}."
            ),
            None,
            with_data.iter().map(|(s, snap)| (account(s), snap.fetched_users)),
        )?;
        encode_changes(&mut encoder, &self.accounts)?;
        encode_credentials(&mut encoder, &states)?;
        encode_logins(&mut encoder, &states)
    }
}

const BASELINE: &str = "the first complete poll after the exporter starts is the baseline and counts nothing; a failed poll counts nothing, and the next complete one is compared with the last complete one";

/// The change counters: every account's exist from the exporter's start (at 0 before its
/// first comparison), so that `increase()` sees the first change.
fn encode_changes(
    encoder: &mut DescriptorEncoder,
    accounts: &[(Arc<AccountState>, AccountCounters)],
) -> Result<(), std::fmt::Error> {
    let totals: Vec<_> = accounts.iter().map(|(s, c)| (s.name.clone(), c.change_totals())).collect();
    counter_family(
        encoder,
        "gcore_iam_user_changes",
        &format!(
            "Users changed between two consecutive complete polls of the account: added (live, and not live at the previous poll), removed (live at the previous poll, no longer listed), deleted (live at the previous poll, flagged deleted now); two_fa_enabled, two_fa_disabled and activated count users live at both polls; {BASELINE}."
        ),
        totals.iter().flat_map(|(account, t)| {
            t.users().map(|(change, n)| (UserChangeLabels { account: account.clone(), change: change.as_str() }, n))
        }),
    )?;
    counter_family(
        encoder,
        "gcore_iam_group_membership_changes",
        &format!(
            "Live users who joined or left each group between two consecutive complete polls of the account (a member deleted or removed has left, a user created in a group has joined); known groups exist from the start, others from their first change; {BASELINE}."
        ),
        totals.iter().flat_map(|(account, t)| {
            t.groups().map(|(group, change, n)| {
                let labels = MembershipChangeLabels {
                    account: account.clone(),
                    group_id: group.id.clone(),
                    group: group.name.clone(),
                    change: change.as_str(),
                };
                (labels, n)
            })
        }),
    )
}

const FROM_CREDENTIALS: &str = "from the last successful background poll of the Gcore IAM API";

/// The families of the account and tokens collectors.
fn encode_credentials(encoder: &mut DescriptorEncoder, states: &[Arc<AccountState>]) -> Result<(), std::fmt::Error> {
    let accounts: Vec<_> = states.iter().filter_map(|s| Some((s, s.credentials.account.as_ref()?))).collect();
    gauges(
        encoder,
        "gcore_iam_account_info",
        &format!("Always 1; the account's client id and status (GET /iam/clients/me), {FROM_CREDENTIALS}."),
        None,
        accounts.iter().map(|(s, a)| {
            (
                AccountInfoLabels {
                    account: s.name.clone(),
                    client_id: a.client_id.to_string(),
                    status: a.status.clone(),
                },
                1i64,
            )
        }),
    )?;
    gauges(
        encoder,
        "gcore_iam_account_active_admin",
        &format!("1 if the account has an active administrator, {FROM_CREDENTIALS}."),
        None,
        accounts.iter().map(|(s, a)| (AccountLabels { account: s.name.clone() }, i64::from(a.has_active_admin))),
    )?;

    let tokens: Vec<_> = states.iter().filter_map(|s| Some((s, s.credentials.tokens.as_ref()?))).collect();
    gauges(
        encoder,
        "gcore_iam_tokens",
        &format!(
            "Non-deleted API tokens by the role of their issuer, expired or not, expiring or not; {FROM_CREDENTIALS}."
        ),
        None,
        tokens.iter().flat_map(|(s, t)| {
            t.counts.iter().map(|c| {
                let labels = TokenCountLabels {
                    account: s.name.clone(),
                    role: c.role.clone(),
                    expired: c.expired,
                    never_expires: c.never_expires,
                };
                (labels, c.tokens)
            })
        }),
    )?;
    let per_token = || {
        tokens.iter().flat_map(|(s, t)| {
            t.tokens.iter().map(|token| {
                let labels = TokenLabels {
                    account: s.name.clone(),
                    token_id: token.id.clone(),
                    token_name: token.name.clone(),
                    role: token.role.clone(),
                };
                (labels, token)
            })
        })
    };
    gauges(
        encoder,
        "gcore_iam_token_info",
        &format!(
            "Always 1 per non-deleted API token; used_by_exporter marks the token of the exporter's own key; {FROM_CREDENTIALS}."
        ),
        None,
        per_token().map(|(l, t)| {
            let labels = TokenInfoLabels {
                account: l.account,
                token_id: l.token_id,
                token_name: l.token_name,
                role: l.role,
                used_by_exporter: t.used_by_exporter,
            };
            (labels, 1i64)
        }),
    )?;
    gauges(
        encoder,
        "gcore_iam_token_expiry_timestamp",
        &format!("When the API token expires (absent for a token that never expires); {FROM_CREDENTIALS}."),
        Some(&Unit::Seconds),
        per_token().filter_map(|(l, t)| Some((l, t.expires_at?))),
    )?;
    gauges(
        encoder,
        "gcore_iam_token_last_used_timestamp",
        &format!("When the API token was last used (absent for a token never used); {FROM_CREDENTIALS}."),
        Some(&Unit::Seconds),
        per_token().filter_map(|(l, t)| Some((l, t.last_used_at?))),
    )?;
    gauges(
        encoder,
        "gcore_iam_token_issuer_deleted",
        &format!("1 if the user who issued the API token is deleted (the token still works); {FROM_CREDENTIALS}."),
        None,
        per_token().map(|(l, t)| (l, i64::from(t.issuer_deleted))),
    )?;

    gauges(
        encoder,
        "gcore_iam_collector_state",
        "1 for the current state of each optional collector of the account (account, tokens, logins; ok, forbidden: the key may not read it, failing, disabled), 0 for the others.",
        None,
        states.iter().flat_map(|s| {
            [
                ("account", s.credentials.account_state),
                ("tokens", s.credentials.tokens_state),
                ("logins", s.credentials.logins_state),
            ]
            .into_iter()
            .filter_map(|(collector, state)| Some((collector, state?)))
            .flat_map(move |(collector, current)| {
                CollectorState::ALL.into_iter().map(move |state| {
                    let labels = CollectorStateLabels { account: s.name.clone(), collector, state: state.as_str() };
                    (labels, i64::from(state == current))
                })
            })
        }),
    )
}

const FROM_LOGINS: &str = "from the login log (GET /iam/activity_log/logins), read at each background poll";

/// The families of the login log collector.
fn encode_logins(encoder: &mut DescriptorEncoder, states: &[Arc<AccountState>]) -> Result<(), std::fmt::Error> {
    let logins: Vec<_> = states.iter().filter_map(|s| Some((s, s.credentials.logins.as_ref()?))).collect();
    counter_family(
        encoder,
        "gcore_iam_logins",
        &format!(
            "Login attempts by auth type and result (success, failure) that appeared in the log since the exporter started (the events already there on its first read are not counted); {FROM_LOGINS}."
        ),
        logins.iter().flat_map(|(s, l)| {
            l.logins.iter().flat_map(move |(auth_type, counts)| {
                [("success", counts[0]), ("failure", counts[1])].into_iter().map(move |(result, n)| {
                    (LoginLabels { account: s.name.clone(), auth_type: auth_type.clone(), result }, n)
                })
            })
        }),
    )?;
    counter_family(
        encoder,
        "gcore_iam_logins_by_deleted_users",
        &format!(
            "Successful logins, since the exporter started, by users that the users list marks deleted; {FROM_LOGINS}."
        ),
        logins.iter().map(|(s, l)| (AccountLabels { account: s.name.clone() }, l.by_deleted_users)),
    )?;
    gauges(
        encoder,
        "gcore_iam_login_log_newest_timestamp",
        &format!("login_at of the newest event seen in the login log (absent while the log is empty); {FROM_LOGINS}."),
        Some(&Unit::Seconds),
        logins.iter().filter_map(|(s, l)| Some((AccountLabels { account: s.name.clone() }, l.newest?))),
    )?;
    gauges(
        encoder,
        "gcore_iam_users_by_last_login",
        &format!(
            "Non-deleted users by the time since their last successful login: at most 1d, 7d, 30d, 90d, older, or never (none in what the log held); the buckets are disjoint and sum to the users of the last complete users poll; {FROM_LOGINS}."
        ),
        None,
        logins.iter().flat_map(|(s, l)| {
            LAST_LOGIN_BUCKETS
                .into_iter()
                .zip(l.users_by_last_login)
                .map(|(last_login, n)| (LastLoginLabels { account: s.name.clone(), last_login }, n))
        }),
    )?;
    gauges(
        encoder,
        "gcore_iam_group_members_by_last_login",
        &format!(
            "Non-deleted members of each group by the time since their last successful login (buckets as gcore_iam_users_by_last_login); {FROM_LOGINS}."
        ),
        None,
        logins.iter().flat_map(|(s, l)| {
            l.groups_by_last_login.iter().flat_map(move |(group, counts)| {
                LAST_LOGIN_BUCKETS.into_iter().zip(*counts).map(move |(last_login, n)| {
                    let labels = GroupLastLoginLabels {
                        account: s.name.clone(),
                        group_id: group.id.clone(),
                        group: group.name.clone(),
                        last_login,
                    };
                    (labels, n)
                })
            })
        }),
    )
}

/// Encodes one counter family; a family without series is left out entirely.
fn counter_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &'static str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Encodes one gauge family; a family without series is left out entirely.
fn gauges<L, V>(
    encoder: &mut DescriptorEncoder,
    name: &'static str,
    help: &str,
    unit: Option<&'static Unit>,
    series: impl IntoIterator<Item = (L, V)>,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet,
    V: EncodeGaugeValue + std::fmt::Debug,
{
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}
