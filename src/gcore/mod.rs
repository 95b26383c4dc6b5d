//! The Gcore IAM API client: one request and its retries ([`transport`]), the pages of a poll
//! ([`pagination`]), the reads of a poll ([`client`]) and the wire formats.

mod account_wire;
mod client;
mod error;
mod login_wire;
mod pagination;
pub mod retry;
mod transport;
pub mod wire;

pub use account_wire::{parse_account, parse_tokens};
pub use client::{GcoreClient, LoginReadSummary};
pub use error::{FetchError, Reason, RequestResult};
pub use login_wire::{WirePage, parse_login_page};
pub use pagination::{MAX_PAGES_WITHOUT_NEW_USERS, PAGE_SLACK};
pub use transport::{build_http_client, read_body};
