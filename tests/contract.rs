//! The exporter and the fake Gcore IAM API each hold their own copy of the API contract's
//! group list, on purpose: the exporter must not depend on its test kit (`gcore-iam-fake` is
//! linked only for `--demo`, and not at all with `--no-default-features`), and a fake that
//! borrowed the exporter's constants could not catch a typo in them. This test is what keeps
//! the two copies equal.

use gcore_iam_exporter::snapshot::KNOWN_GROUPS;
use gcore_iam_fake::{ADMINISTRATORS, ENGINEERS, IAM_GROUPS, PURGE_API, PURGE_API_WEB, USERS};

#[test]
fn the_fake_serves_exactly_the_groups_the_exporter_knows() {
    assert_eq!(IAM_GROUPS, KNOWN_GROUPS);
    let ids: Vec<u64> = KNOWN_GROUPS.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [ADMINISTRATORS, USERS, ENGINEERS, PURGE_API_WEB, PURGE_API]);
}
