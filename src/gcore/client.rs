//! The client of one account's API endpoint: the reads a poll makes (users, account, tokens,
//! login log). One request and its retries live in [`super::transport`], the pages of the users
//! list in [`super::pagination`].

use std::time::SystemTime;

use tokio::time::Instant;
use url::Url;

use super::account_wire::{parse_account, parse_tokens};
use super::error::{FetchError, RequestResult, describe_decode_error};
use super::login_wire::parse_login_page;
use super::pagination::{Paging, list_users};
use super::retry::RetryPolicy;
use super::transport::{OnRequest, Received, Transport, auth_header, within};
use crate::config::ClientSettings;
use crate::credentials::{AccountInfo, TokenSnapshot};
use crate::idset::IdSet;
use crate::logins::LoginTracker;
use crate::secret::ApiKey;
use crate::snapshot::Snapshot;

/// A client of one account's API endpoint.
#[derive(Debug, Clone)]
pub struct GcoreClient {
    transport: Transport,
    /// The base URL, ending with a slash so that paths join onto it.
    base_url: Url,
    paging: Paging,
}

impl GcoreClient {
    pub fn new(http: reqwest::Client, base_url: &Url, settings: &ClientSettings) -> Self {
        // `join` replaces the last path segment unless the base ends with a slash.
        let mut base = base_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        GcoreClient {
            transport: Transport::new(http, settings),
            base_url: base,
            paging: Paging {
                page_size: u64::from(settings.page_size.get()),
                concurrency: usize::try_from(settings.concurrency.get()).unwrap_or(1),
                max_users: settings.max_users,
            },
        }
    }

    /// Replaces the retry policy (tests shorten the backoff).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.transport = self.transport.with_retry_policy(retry);
        self
    }

    /// An endpoint's URL. The paths are fixed relative paths, which join onto any http(s)
    /// base; a base that cannot take them (not possible for a validated URL) fails the
    /// request rather than the process.
    fn endpoint(&self, path: &str) -> Result<Url, FetchError> {
        self.base_url.join(path).map_err(|e| FetchError::Connect(Box::new(e)))
    }

    /// Lists every user and returns their counts. `on_request` is told the result of every HTTP
    /// request, retries and abandoned requests included. Gives up at `deadline`.
    pub async fn fetch_users(
        &self,
        key: &ApiKey,
        deadline: Instant,
        on_request: OnRequest<'_>,
    ) -> Result<Snapshot, FetchError> {
        let auth = auth_header(key).ok_or(FetchError::KeyNotHeaderSafe)?;
        let users_url = self.endpoint("iam/users")?;
        within(deadline, list_users(&self.transport, &users_url, self.paging, &auth, on_request)).await
    }

    /// The account (`GET /iam/clients/me`).
    pub async fn fetch_account(
        &self,
        key: &ApiKey,
        deadline: Instant,
        on_request: OnRequest<'_>,
    ) -> Result<AccountInfo, FetchError> {
        let auth = auth_header(key).ok_or(FetchError::KeyNotHeaderSafe)?;
        let url = self.endpoint("iam/clients/me")?;
        let received = within(deadline, self.transport.get(&auth, url, on_request)).await?;
        read_answer(received, "account", parse_account)
    }

    /// The account's API tokens (`GET /iam/v2/clients/{clientId}/tokens`; the v1 path is
    /// deprecated). `own_token` marks the token of the exporter's key.
    pub async fn fetch_tokens(
        &self,
        key: &ApiKey,
        client_id: u64,
        own_token: Option<u64>,
        deadline: Instant,
        on_request: OnRequest<'_>,
    ) -> Result<TokenSnapshot, FetchError> {
        let auth = auth_header(key).ok_or(FetchError::KeyNotHeaderSafe)?;
        let url = self.endpoint(&format!("iam/v2/clients/{client_id}/tokens"))?;
        let received = within(deadline, self.transport.get(&auth, url, on_request)).await?;
        read_answer(received, "token list", |body| parse_tokens(body, own_token, SystemTime::now()))
    }
}

impl GcoreClient {
    /// The page size of every paged read (`--gcore.page-size`).
    pub fn page_size(&self) -> u64 {
        self.paging.page_size
    }

    /// Reads what is new in the login log (`GET /iam/activity_log/logins`) into `tracker`,
    /// which chooses the pages (at most [`crate::logins::MAX_LOGIN_PAGES_PER_POLL`]).
    /// `deleted` are the users the last users poll marks deleted. On a failure the pages
    /// already read are kept, and the rest is left to the next polls.
    pub async fn fetch_logins(
        &self,
        key: &ApiKey,
        tracker: &mut LoginTracker,
        deleted: &IdSet,
        deadline: Instant,
        on_request: OnRequest<'_>,
    ) -> Result<LoginReadSummary, FetchError> {
        let auth = auth_header(key).ok_or(FetchError::KeyNotHeaderSafe)?;
        let url = self.endpoint("iam/activity_log/logins")?;
        let mut read = tracker.start();
        let pages = async {
            while let Some(offset) = tracker.next_offset(&mut read) {
                let mut page_url = url.clone();
                page_url
                    .query_pairs_mut()
                    .append_pair("limit", &self.paging.page_size.to_string())
                    .append_pair("offset", &offset.to_string());
                let Received { body, outcome } = self.transport.get(&auth, page_url, on_request).await?;
                match parse_login_page(&body) {
                    Ok(wire) => {
                        outcome.tell(RequestResult::Ok);
                        tracker.page(&mut read, &wire.page(), deleted);
                    }
                    Err(e) => {
                        let error =
                            FetchError::DecodeBody { what: "login log", detail: describe_decode_error(&e, &body) };
                        outcome.tell(RequestResult::Failed(error.reason()));
                        return Err(error);
                    }
                }
            }
            Ok(())
        };
        let result = within(deadline, pages).await;
        let summary = LoginReadSummary { pages: read.pages, events: read.received, new: read.fresh, behind: false };
        tracker.finish(read);
        result.map(|()| LoginReadSummary { behind: tracker.behind(), ..summary })
    }
}

/// What one read of the login log did, for the debug log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginReadSummary {
    pub pages: u32,
    /// Events received, repeats included.
    pub events: u64,
    /// Events the exporter had not seen before.
    pub new: u64,
    /// Parts of the log are left for the next polls.
    pub behind: bool,
}

/// Reads an answer and tells its request's result: `ok`, or `decode`.
fn read_answer<T>(
    received: Received<'_>,
    what: &'static str,
    parse: impl FnOnce(&[u8]) -> Result<T, serde_json::Error>,
) -> Result<T, FetchError> {
    let Received { body, outcome } = received;
    match parse(&body) {
        Ok(value) => {
            outcome.tell(RequestResult::Ok);
            Ok(value)
        }
        Err(e) => {
            let error = FetchError::DecodeBody { what, detail: describe_decode_error(&e, &body) };
            outcome.tell(RequestResult::Failed(error.reason()));
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn endpoints_keep_a_base_path() {
        let settings = ClientSettings {
            page_size: std::num::NonZeroU32::new(10).unwrap(),
            request_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            max_retries: 0,
            max_response_bytes: 1 << 20,
            concurrency: std::num::NonZeroU32::new(1).unwrap(),
            max_users: 100,
        };
        let http = reqwest::Client::new();
        for (base, expected) in [
            ("https://api.gcore.com", "https://api.gcore.com/iam/users"),
            ("https://api.gcore.com/", "https://api.gcore.com/iam/users"),
            ("http://127.0.0.1:8080/proxy", "http://127.0.0.1:8080/proxy/iam/users"),
        ] {
            let client = GcoreClient::new(http.clone(), &Url::parse(base).unwrap(), &settings);
            assert_eq!(client.endpoint("iam/users").unwrap().as_str(), expected);
        }
    }
}
