//! A small Gmail API client: the profile, a message search, and message headers.
//!
//! Reference: <https://developers.google.com/gmail/api/reference/rest/v1/users.messages>.
//! The access token travels only in the `Authorization: Bearer` header, never in a URL.
//! 429 and 5xx are retried with bounded backoff honouring `Retry-After`; 401 is reported
//! as [`GmailError::Unauthorized`] so the caller can refresh once and try again.

use crate::retry::{Attempt, RetryPolicy, is_transient, parse_retry_after, retry};
use futures_util::{StreamExt, TryStreamExt};
use oauth2::AccessToken;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::future::Future;
use url::Url;

/// Gmail allows at most 500 ids per list page.
pub const MAX_PAGE_SIZE: usize = 500;
/// Message metadata requests in flight at once: a default run (25 messages) fetches all
/// in one round trip, and 25 × 5 quota units stays under Gmail's 250 units per user per second.
const CONCURRENT_GETS: usize = 25;

#[derive(Debug, thiserror::Error)]
pub enum GmailError {
    /// 401: the access token is not (or no longer) accepted.
    #[error("Gmail answered 401 Unauthorized")]
    Unauthorized,
    /// Another 4xx: retrying will not help.
    #[error("Gmail refused {call} with HTTP {status}{}", reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Rejected {
        call: &'static str,
        status: u16,
        reason: Option<String>,
    },
    /// Timeouts, 429 and 5xx after the retries allowed.
    #[error("Gmail is unavailable for {call}: {detail}")]
    Unavailable { call: &'static str, detail: String },
    /// An answer that is not the JSON Gmail documents.
    #[error("Gmail sent an unreadable answer to {call} (at {path})")]
    Malformed { call: &'static str, path: String },
}

/// `users.getProfile`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub email_address: String,
}

/// One hit of `users.messages.list`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MessageRef {
    pub id: String,
    #[serde(default)]
    pub thread_id: String,
}

/// The headers a summary shows for one message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageSummary {
    pub id: String,
    pub thread_id: String,
    pub from: String,
    pub subject: String,
    pub date: String,
}

/// What the token lifecycle needs from Gmail (a port: unit tests substitute it).
pub trait Mailbox: Send + Sync {
    fn profile(
        &self,
        token: &AccessToken,
    ) -> impl Future<Output = Result<Profile, GmailError>> + Send;

    /// Ids matching `query`, following `nextPageToken` until `max` ids.
    fn list_messages(
        &self,
        token: &AccessToken,
        query: &str,
        max: usize,
    ) -> impl Future<Output = Result<Vec<MessageRef>, GmailError>> + Send;

    /// From, Subject and Date of each message, in the order given.
    fn summaries(
        &self,
        token: &AccessToken,
        messages: &[MessageRef],
    ) -> impl Future<Output = Result<Vec<MessageSummary>, GmailError>> + Send;
}

/// Gmail over HTTP, sharing the process-wide `reqwest` client.
#[derive(Debug, Clone)]
pub struct GmailClient {
    http: reqwest::Client,
    base: Url,
    retry: RetryPolicy,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListPage {
    #[serde(default)]
    messages: Vec<MessageRef>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    id: String,
    #[serde(default)]
    thread_id: String,
    #[serde(default)]
    payload: Payload,
}

#[derive(Deserialize, Default)]
struct Payload {
    #[serde(default)]
    headers: Vec<Header>,
}

#[derive(Deserialize)]
struct Header {
    name: String,
    value: String,
}

impl GmailClient {
    /// `base` is `GMAIL_API_ENDPOINT`, normally `https://gmail.googleapis.com`.
    pub fn new(http: reqwest::Client, base: Url, retry: RetryPolicy) -> Self {
        GmailClient { http, base, retry }
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            // Segments are percent-encoded here, so an odd message id cannot change the path.
            path.pop_if_empty()
                .extend(["gmail", "v1", "users", "me"])
                .extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// GET with the bearer token; retries what Gmail says is temporary.
    async fn get<T: DeserializeOwned>(
        &self,
        call: &'static str,
        url: Url,
        token: &AccessToken,
    ) -> Result<T, GmailError> {
        retry(&self.retry, call, || {
            self.get_once(call, url.clone(), token)
        })
        .await
    }

    /// One GET, its answer sorted for the retry loop.
    async fn get_once<T: DeserializeOwned>(
        &self,
        call: &'static str,
        url: Url,
        token: &AccessToken,
    ) -> Attempt<T, GmailError> {
        let again = |detail: String, retry_after| Attempt::Again {
            error: GmailError::Unavailable { call, detail },
            retry_after,
        };
        let response = match self.http.get(url).bearer_auth(token.secret()).send().await {
            Ok(response) => response,
            Err(error) => return again(transport_detail(&error), None),
        };
        let status = response.status();
        if status.is_success() {
            let body = match response.bytes().await {
                Ok(body) => body,
                Err(error) => return again(transport_detail(&error), None),
            };
            let mut deserializer = serde_json::Deserializer::from_slice(&body);
            return Attempt::Done(serde_path_to_error::deserialize(&mut deserializer).map_err(
                |e| GmailError::Malformed {
                    call,
                    path: e.path().to_string(),
                },
            ));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Attempt::Done(Err(GmailError::Unauthorized));
        }
        if is_transient(status) {
            let retry_after =
                parse_retry_after(response.headers().get(reqwest::header::RETRY_AFTER));
            return again(format!("HTTP {}", status.as_u16()), retry_after);
        }
        let reason = response
            .json::<GoogleError>()
            .await
            .ok()
            .and_then(GoogleError::reason);
        Attempt::Done(Err(GmailError::Rejected {
            call,
            status: status.as_u16(),
            reason,
        }))
    }

    async fn summary(
        &self,
        token: &AccessToken,
        message: &MessageRef,
    ) -> Result<MessageSummary, GmailError> {
        let query = [
            ("format", "metadata"),
            ("metadataHeaders", "From"),
            ("metadataHeaders", "Subject"),
            ("metadataHeaders", "Date"),
        ];
        let url = self.url(&["messages", &message.id], &query);
        let full: Message = self.get("users.messages.get", url, token).await?;
        let header = |name: &str| {
            full.payload
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value.clone())
                .unwrap_or_default()
        };
        Ok(MessageSummary {
            from: header("From"),
            subject: header("Subject"),
            date: header("Date"),
            thread_id: if full.thread_id.is_empty() {
                message.thread_id.clone()
            } else {
                full.thread_id.clone()
            },
            id: full.id,
        })
    }
}

impl Mailbox for GmailClient {
    async fn profile(&self, token: &AccessToken) -> Result<Profile, GmailError> {
        self.get("users.getProfile", self.url(&["profile"], &[]), token)
            .await
    }

    async fn list_messages(
        &self,
        token: &AccessToken,
        query: &str,
        max: usize,
    ) -> Result<Vec<MessageRef>, GmailError> {
        let mut found: Vec<MessageRef> = Vec::new();
        let mut page_token: Option<String> = None;
        while found.len() < max {
            let page_size = (max - found.len()).min(MAX_PAGE_SIZE).to_string();
            let mut params = vec![("q", query), ("maxResults", page_size.as_str())];
            if let Some(page) = page_token.as_deref() {
                params.push(("pageToken", page));
            }
            let page: ListPage = self
                .get(
                    "users.messages.list",
                    self.url(&["messages"], &params),
                    token,
                )
                .await?;
            found.extend(page.messages);
            match page.next_page_token {
                Some(next) if !next.is_empty() => page_token = Some(next),
                _ => break,
            }
        }
        found.truncate(max);
        Ok(found)
    }

    async fn summaries(
        &self,
        token: &AccessToken,
        messages: &[MessageRef],
    ) -> Result<Vec<MessageSummary>, GmailError> {
        // Owned futures: borrowing closures inside the stream defeat the `Send` proof.
        let gets = messages.iter().cloned().map(|message| {
            let (gmail, token) = (self.clone(), token.clone());
            async move { gmail.summary(&token, &message).await }
        });
        futures_util::stream::iter(gets)
            .buffered(CONCURRENT_GETS)
            .try_collect()
            .await
    }
}

/// Google's error body: `{"error": {"code": 403, "message": "…", "status": "PERMISSION_DENIED"}}`.
#[derive(Deserialize)]
struct GoogleError {
    error: Option<GoogleErrorBody>,
}

#[derive(Deserialize)]
struct GoogleErrorBody {
    status: Option<String>,
    message: Option<String>,
}

impl GoogleError {
    fn reason(self) -> Option<String> {
        let body = self.error?;
        body.status.or(body.message)
    }
}

fn transport_detail(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}
