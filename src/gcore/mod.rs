//! The Gcore IAM API client: one request and its retries ([`transport`]), the pages of a poll
//! ([`pagination`]), the three reads of a poll ([`client`]) and the wire formats.

mod account_wire;
mod client;
mod error;
mod pagination;
pub mod retry;
mod transport;
pub mod wire;

pub use account_wire::{parse_account, parse_tokens};
pub use client::GcoreClient;
pub use error::{FetchError, Reason, RequestResult};
pub use pagination::{MAX_PAGES_WITHOUT_NEW_USERS, PAGE_SLACK};
pub use transport::{build_http_client, read_body};
