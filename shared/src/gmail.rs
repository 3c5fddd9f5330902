//! A small Gmail API client: the profile, a message search, message headers, and the
//! mailbox's history (what the events are made from).
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

impl GmailError {
    /// 404: for `users.history.list`, the start is older than the history Gmail keeps.
    pub fn is_not_found(&self) -> bool {
        matches!(self, GmailError::Rejected { status: 404, .. })
    }
}

/// `users.getProfile`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub email_address: String,
    /// The mailbox's current history id (a number, as a string).
    #[serde(default)]
    pub history_id: String,
}

impl Profile {
    /// The current history id as a number.
    pub fn history_id(&self) -> Result<u64, GmailError> {
        self.history_id.parse().map_err(|_| GmailError::Malformed {
            call: "users.getProfile",
            path: "historyId".into(),
        })
    }
}

/// `users.history.list` from a start, every page: the records that added messages, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub records: Vec<HistoryRecord>,
    /// The mailbox's history id when the first page was listed: every record up to it is
    /// in `records` (or was not an added message with the label).
    pub current: u64,
}

/// One history record: its id and the messages it added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRecord {
    pub id: u64,
    pub messages: Vec<String>,
}

/// What an event says about a message (`format=metadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub id: String,
    pub thread_id: String,
    pub history_id: String,
    pub label_ids: Vec<String>,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub date: String,
    pub internal_date: Option<chrono::DateTime<chrono::Utc>>,
    pub snippet: String,
    pub size_estimate: u64,
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

    /// Ids matching `query` (and carrying `label`, a label id, when given), newest first,
    /// following `nextPageToken` until `max` ids.
    fn list_messages(
        &self,
        token: &AccessToken,
        query: &str,
        label: Option<&str>,
        max: usize,
    ) -> impl Future<Output = Result<Vec<MessageRef>, GmailError>> + Send;

    /// From, Subject and Date of each message, in the order given.
    fn summaries(
        &self,
        token: &AccessToken,
        messages: &[MessageRef],
    ) -> impl Future<Output = Result<Vec<MessageSummary>, GmailError>> + Send;

    /// `users.history.list` after `start` (`historyTypes=messageAdded`, `labelId=label`),
    /// every page. A start Gmail no longer keeps is a 404 ([`GmailError::is_not_found`]).
    fn history(
        &self,
        token: &AccessToken,
        start: u64,
        label: &str,
    ) -> impl Future<Output = Result<History, GmailError>> + Send;

    /// The metadata of each message, in the order given; `None` for a message that no
    /// longer exists (404).
    fn metadata(
        &self,
        token: &AccessToken,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Metadata>>, GmailError>> + Send;
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
    #[serde(default)]
    history_id: String,
    #[serde(default)]
    label_ids: Vec<String>,
    #[serde(default)]
    snippet: String,
    #[serde(default)]
    size_estimate: u64,
    /// Milliseconds since the epoch, as a string.
    #[serde(default)]
    internal_date: String,
}

impl Message {
    fn header(&self, name: &str) -> String {
        self.payload
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.clone())
            .unwrap_or_default()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryPage {
    #[serde(default)]
    history: Vec<HistoryJson>,
    next_page_token: Option<String>,
    #[serde(default)]
    history_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryJson {
    id: String,
    #[serde(default)]
    messages_added: Vec<MessageAdded>,
}

#[derive(Deserialize)]
struct MessageAdded {
    message: MessageRef,
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
            self.send_once(call, url.clone(), token, Request::Get)
        })
        .await
    }

    /// POST of a JSON body. `repeatable`: the call may be repeated after a temporary
    /// failure (a label change); otherwise (a send) only a 429, which Google answers before
    /// doing anything, is retried, and any other failure is returned as it is.
    async fn post<T: DeserializeOwned>(
        &self,
        call: &'static str,
        url: Url,
        token: &AccessToken,
        body: &serde_json::Value,
        repeatable: bool,
    ) -> Result<T, GmailError> {
        retry(&self.retry, call, || {
            self.send_once(call, url.clone(), token, Request::Post { body, repeatable })
        })
        .await
    }

    /// One request, its answer sorted for the retry loop.
    async fn send_once<T: DeserializeOwned>(
        &self,
        call: &'static str,
        url: Url,
        token: &AccessToken,
        request: Request<'_>,
    ) -> Attempt<T, GmailError> {
        let repeatable = !matches!(
            request,
            Request::Post {
                repeatable: false,
                ..
            }
        );
        // A failure that may have come after Gmail did the work is tried again only when
        // the request may be repeated; `before_work` failures (a 429) always are.
        let again = |detail: String, retry_after, before_work: bool| {
            let error = GmailError::Unavailable { call, detail };
            if repeatable || before_work {
                Attempt::Again { error, retry_after }
            } else {
                Attempt::Done(Err(error))
            }
        };
        let request = match request {
            Request::Post { body, .. } => self.http.post(url).json(body),
            Request::Get => self.http.get(url),
        };
        let response = match request.bearer_auth(token.secret()).send().await {
            Ok(response) => response,
            Err(error) => return again(transport_detail(&error), None, false),
        };
        let status = response.status();
        if status.is_success() {
            let body = match response.bytes().await {
                Ok(body) => body,
                Err(error) => return again(transport_detail(&error), None, false),
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
            let before_work = status == reqwest::StatusCode::TOO_MANY_REQUESTS;
            return again(
                format!("HTTP {}", status.as_u16()),
                retry_after,
                before_work,
            );
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
        let header = |name: &str| full.header(name);
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

/// One Gmail request: a read, or a POST that may (a label change) or may not (a send) be
/// repeated after a failure that can follow the work.
#[derive(Clone, Copy)]
enum Request<'a> {
    Get,
    Post {
        body: &'a serde_json::Value,
        repeatable: bool,
    },
}

/// What a label change or a send answers: the message's id, thread and labels after it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MessageLabels {
    pub id: String,
    #[serde(default)]
    pub thread_id: String,
    #[serde(default)]
    pub label_ids: Vec<String>,
}

impl GmailClient {
    /// `users.messages.modify`: adds and removes label ids (`gmail.modify` scope).
    pub async fn modify_labels(
        &self,
        token: &AccessToken,
        id: &str,
        add: &[&str],
        remove: &[&str],
    ) -> Result<MessageLabels, GmailError> {
        let body = serde_json::json!({ "addLabelIds": add, "removeLabelIds": remove });
        let url = self.url(&["messages", id, "modify"], &[]);
        self.post("users.messages.modify", url, token, &body, true)
            .await
    }

    /// `users.messages.send` of an RFC 2822 message as bytes (`gmail.send` scope). Not
    /// repeated after a failure that may have come after the send (a timeout, a 5xx): such
    /// a failure means the message may or may not have gone.
    pub async fn send_message(
        &self,
        token: &AccessToken,
        rfc2822: &[u8],
    ) -> Result<MessageLabels, GmailError> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rfc2822);
        let body = serde_json::json!({ "raw": raw });
        let url = self.url(&["messages", "send"], &[]);
        self.post("users.messages.send", url, token, &body, false)
            .await
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
        label: Option<&str>,
        max: usize,
    ) -> Result<Vec<MessageRef>, GmailError> {
        let mut found: Vec<MessageRef> = Vec::new();
        let mut page_token: Option<String> = None;
        while found.len() < max {
            let page_size = (max - found.len()).min(MAX_PAGE_SIZE).to_string();
            let mut params = vec![("q", query), ("maxResults", page_size.as_str())];
            if let Some(label) = label {
                params.push(("labelIds", label));
            }
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

    async fn history(
        &self,
        token: &AccessToken,
        start: u64,
        label: &str,
    ) -> Result<History, GmailError> {
        const CALL: &str = "users.history.list";
        let number = |raw: &str, path: &str| {
            raw.parse::<u64>().map_err(|_| GmailError::Malformed {
                call: CALL,
                path: path.into(),
            })
        };
        let start = start.to_string();
        let page_size = MAX_PAGE_SIZE.to_string();
        let mut history = History::default();
        let mut page_token: Option<String> = None;
        let mut first = true;
        loop {
            let mut params = vec![
                ("startHistoryId", start.as_str()),
                ("historyTypes", "messageAdded"),
                ("labelId", label),
                ("maxResults", page_size.as_str()),
            ];
            if let Some(page) = page_token.as_deref() {
                params.push(("pageToken", page));
            }
            let page: HistoryPage = self
                .get(CALL, self.url(&["history"], &params), token)
                .await?;
            if first {
                history.current = number(&page.history_id, "historyId")?;
                first = false;
            }
            for record in page.history {
                let id = number(&record.id, "history[].id")?;
                let messages = record
                    .messages_added
                    .into_iter()
                    .map(|added| added.message.id)
                    .collect();
                history.records.push(HistoryRecord { id, messages });
            }
            match page.next_page_token {
                Some(next) if !next.is_empty() => page_token = Some(next),
                _ => break,
            }
        }
        // Pages come in order; a record seen twice (a page boundary moving) counts once.
        history.records.sort_by_key(|r| r.id);
        history.records.dedup_by_key(|r| r.id);
        Ok(history)
    }

    async fn metadata(
        &self,
        token: &AccessToken,
        ids: &[String],
    ) -> Result<Vec<Option<Metadata>>, GmailError> {
        let gets = ids.iter().cloned().map(|id| {
            let (gmail, token) = (self.clone(), token.clone());
            async move { gmail.message_metadata(&token, &id).await }
        });
        futures_util::stream::iter(gets)
            .buffered(CONCURRENT_GETS)
            .try_collect()
            .await
    }
}

impl GmailClient {
    async fn message_metadata(
        &self,
        token: &AccessToken,
        id: &str,
    ) -> Result<Option<Metadata>, GmailError> {
        let query = [
            ("format", "metadata"),
            ("metadataHeaders", "From"),
            ("metadataHeaders", "To"),
            ("metadataHeaders", "Subject"),
            ("metadataHeaders", "Date"),
        ];
        let url = self.url(&["messages", id], &query);
        let message: Message = match self.get("users.messages.get", url, token).await {
            Ok(message) => message,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(error) => return Err(error),
        };
        let internal_date = message
            .internal_date
            .parse::<i64>()
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis);
        Ok(Some(Metadata {
            from: message.header("From"),
            to: message.header("To"),
            subject: message.header("Subject"),
            date: message.header("Date"),
            internal_date,
            id: message.id,
            thread_id: message.thread_id,
            history_id: message.history_id,
            label_ids: message.label_ids,
            snippet: message.snippet,
            size_estimate: message.size_estimate,
        }))
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
