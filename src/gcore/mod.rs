//! The Gcore IAM API client: requests, authentication, pagination, retries and wire types.

mod account_wire;
mod client;
mod error;
pub mod retry;
pub mod wire;

pub use account_wire::{parse_account, parse_tokens};
pub use client::{GcoreClient, ResponseBody, build_http_client};
pub use error::{FetchError, Reason, RequestResult};
