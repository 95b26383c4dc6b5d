//! Test support shared across trees: the exporter's integration tests, its criterion benches,
//! the load-benchmark API (`examples/bench_api.rs`) and the fuzz target (`fuzz/`) all use it as
//! a dependency instead of reaching into each other's folders.
//!
//! - [`population`]: a synthetic account of any size, as users and as rendered pages;
//! - [`oracle`]: the serde reading of a users page the exporter's scanner is compared with.
//!
//! It depends on the exporter, so it is only ever a dev-dependency of it (never linked by the
//! product). The fake API itself is its own crate, `gcore-iam-fake`, because the exporter links
//! it for `--demo`.

pub mod oracle;
pub mod population;
