//! The Gcore IAM API client: requests, authentication, pagination, retries and wire types.

mod client;
mod error;
pub mod retry;
pub mod wire;

pub use client::{GcoreClient, build_http_client};
pub use error::{FetchError, Reason, RequestResult};
