//! A fake of Google's OAuth endpoints and the Gmail API over real HTTP, that behaves like
//! Google where it matters: codes are single-use and bound to the redirect URI and the PKCE
//! challenge; the refresh grant answers without a `refresh_token`; a revoked grant answers
//! `invalid_grant`; Gmail checks the bearer token, pages its lists, and can be told to
//! answer 401, 429 or 503.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub const CLIENT_ID: &str = "123456789012-fake.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "GOCSPX-fake-client-secret-do-not-leak";
pub const GMAIL_READONLY: &str = "https://www.googleapis.com/auth/gmail.readonly";

/// An answer to give instead of the real one, once.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (Google's error body for 401, 429 and 5xx).
    Status(u16),
    /// 429 with a `Retry-After` of this many seconds.
    TooManyRequests { retry_after_secs: u64 },
    /// Wait this long, then answer normally.
    Delay(Duration),
}

#[derive(Debug, Clone)]
struct CodeGrant {
    redirect_uri: String,
    challenge: String,
    scopes: Vec<String>,
    account: String,
    used: bool,
}

#[derive(Debug, Clone)]
struct RefreshGrant {
    account: String,
    scopes: Vec<String>,
    revoked: bool,
}

#[derive(Debug, Clone)]
struct AccessGrant {
    account: String,
    valid: bool,
}

#[derive(Debug, Clone, Default)]
pub struct FakeMessage {
    pub id: String,
    pub thread_id: String,
    pub from: String,
    pub subject: String,
    pub date: String,
    pub to: String,
    pub snippet: String,
    /// Label ids (`INBOX` when delivered without any).
    pub labels: Vec<String>,
    /// When Gmail received it (ms since the epoch); set on delivery.
    pub internal_date_ms: i64,
    /// The history record that added it; set on delivery.
    pub history_id: u64,
}

impl FakeMessage {
    /// A message with plain headers, numbered `n`.
    pub fn numbered(n: usize) -> FakeMessage {
        FakeMessage {
            id: format!("msg{n:04}"),
            thread_id: format!("thr{n:04}"),
            from: format!("Sender {n} <sender{n}@example.org>"),
            subject: format!("Subject number {n}"),
            date: format!("Mon, 23 Nov 2026 10:{:02}:00 +0000", n % 60),
            to: "me@example.com".into(),
            snippet: format!("Snippet of message {n}"),
            labels: vec!["INBOX".into(), "UNREAD".into()],
            ..FakeMessage::default()
        }
    }
}

#[derive(Default)]
struct GoogleState {
    account: String,
    deny: bool,
    consent_page: bool,
    link_instead_of_redirect: bool,
    granted_scopes: Option<Vec<String>>,
    omit_refresh_token: bool,
    /// `expires_in` of every token answer (3,599 like Google's unless told otherwise).
    expires_in: u64,
    codes: HashMap<String, CodeGrant>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    access_tokens: HashMap<String, AccessGrant>,
    messages: Vec<FakeMessage>,
    page_size_cap: usize,
    token_faults: VecDeque<Fault>,
    latency: Duration,
    refresh_holds: VecDeque<crate::ssm_proxy::Hold>,
    gmail_faults: VecDeque<Fault>,
    /// Accounts whose every Gmail call answers this status (a storm on one mailbox).
    failing_accounts: HashMap<String, u16>,
    counter: u64,
    code_redemptions: usize,
    refresh_grants: usize,
    gmail_requests: usize,
    /// Gmail API quota units spent (getProfile 1, messages.list 5, messages.get 5,
    /// history.list 2, messages.modify 5, messages.send 100), as Google counts them.
    quota_units: usize,
    list_requests: usize,
    last_query: Option<String>,
    /// The mailbox's history id: grows with every change.
    history_id: u64,
    /// (history id, message id) of every `messageAdded` record, in order.
    history: Vec<(u64, String)>,
    /// History below this id is no longer kept: `history.list` from it answers 404.
    history_floor: u64,
    history_requests: usize,
    get_requests: usize,
    /// `messages.modify` calls answered: (message id, labels added, labels removed).
    modifications: Vec<(String, Vec<String>, Vec<String>)>,
    /// The RFC 2822 bytes of every message sent (`messages.send`, decoded).
    sent: Vec<Vec<u8>>,
    /// The time delivered messages are received at (ms since the epoch), when a test runs
    /// on a clock of its own; the real time otherwise.
    clock_ms: Option<i64>,
    /// Messages delivered once this many Gmail requests have been answered (mail
    /// arriving while a run is in progress).
    pending: Vec<(usize, FakeMessage)>,
    /// Every secret this fake handed out: tests assert none of them leaks.
    issued_secrets: Vec<String>,
}

impl GoogleState {
    fn deliver(&mut self, mut message: FakeMessage) -> String {
        self.history_id += 1;
        message.history_id = self.history_id;
        if message.labels.is_empty() {
            message.labels = vec!["INBOX".into()];
        }
        if message.internal_date_ms == 0 {
            message.internal_date_ms = self
                .clock_ms
                .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        }
        self.history.push((self.history_id, message.id.clone()));
        let id = message.id.clone();
        self.messages.retain(|m| m.id != id);
        self.messages.push(message);
        id
    }

    /// Delivers the pending messages whose time has come.
    fn deliver_pending(&mut self) {
        let due = self.gmail_requests;
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(at, _)| *at <= due);
        self.pending = later;
        for (_, message) in now {
            self.deliver(message);
        }
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        let random: u64 = rand::random();
        let secret = format!("{prefix}{}-{random:016x}", self.counter);
        self.issued_secrets.push(secret.clone());
        secret
    }

    fn issue_access_token(&mut self, account: &str) -> String {
        let token = self.fresh("ya29.fake-access-");
        self.access_tokens.insert(
            token.clone(),
            AccessGrant {
                account: account.to_owned(),
                valid: true,
            },
        );
        token
    }
}

/// The running fake. Cloning shares the same server and state.
#[derive(Clone)]
pub struct FakeGoogle {
    pub base_url: String,
    state: Arc<Mutex<GoogleState>>,
}

impl FakeGoogle {
    /// Starts the fake on a free loopback port, with `me@example.com` consenting and 3 messages.
    pub async fn start() -> FakeGoogle {
        let state = Arc::new(Mutex::new(GoogleState {
            account: "me@example.com".into(),
            page_size_cap: 10,
            expires_in: 3599,
            history_id: 4242,
            ..GoogleState::default()
        }));
        let app = Router::new()
            .route("/o/oauth2/auth", get(authorize))
            .route("/o/oauth2/approve", post(approve))
            .route("/token", post(token))
            .route("/revoke", post(revoke_grant))
            .route("/gmail/v1/users/me/profile", get(profile))
            .route("/gmail/v1/users/me/messages", get(list_messages))
            .route("/gmail/v1/users/me/messages/{id}", get(get_message))
            .route(
                "/gmail/v1/users/me/messages/{id}/modify",
                post(modify_message),
            )
            .route("/gmail/v1/users/me/messages/send", post(send_message))
            .route("/gmail/v1/users/me/history", get(list_history))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Google");
        let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let fake = FakeGoogle { base_url, state };
        fake.set_messages(3);
        fake
    }

    fn lock(&self) -> MutexGuard<'_, GoogleState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Client secrets JSON (`web` or `installed`) pointing at this fake.
    pub fn client_secrets_json(&self, kind: &str) -> String {
        json!({ kind: {
            "client_id": CLIENT_ID,
            "project_id": "fake-project",
            "auth_uri": format!("{}/o/oauth2/auth", self.base_url),
            "token_uri": format!("{}/token", self.base_url),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_secret": CLIENT_SECRET,
            "redirect_uris": ["https://abc123.execute-api.us-east-1.amazonaws.com/callback"],
        }})
        .to_string()
    }

    pub fn revoke_uri(&self) -> String {
        format!("{}/revoke", self.base_url)
    }

    /// Whether Google still honours this refresh token.
    pub fn is_revoked(&self, refresh_token: &str) -> bool {
        self.lock()
            .refresh_tokens
            .get(refresh_token)
            .is_none_or(|grant| grant.revoked)
    }

    pub fn token_uri(&self) -> String {
        format!("{}/token", self.base_url)
    }

    /// A refresh grant as if `account` had consented earlier; returns the refresh token.
    pub fn issue_refresh_token(&self, account: &str) -> String {
        let mut state = self.lock();
        let token = state.fresh("1//fake-refresh-");
        state.refresh_tokens.insert(
            token.clone(),
            RefreshGrant {
                account: account.into(),
                scopes: vec![GMAIL_READONLY.into()],
                revoked: false,
            },
        );
        token
    }

    /// An access token valid for `account`, as if issued by an earlier refresh.
    pub fn issue_access_token(&self, account: &str) -> String {
        self.lock().issue_access_token(account)
    }

    /// The user revokes access (myaccount.google.com/permissions): every token of the grant dies.
    pub fn revoke(&self, refresh_token: &str) {
        revoke_in(&mut self.lock(), refresh_token);
    }

    /// Who signs in on the consent page.
    pub fn set_account(&self, account: &str) {
        self.lock().account = account.into();
    }

    /// The user clicks "Deny" (or "Allow", with `false`).
    pub fn set_deny(&self, deny: bool) {
        self.lock().deny = deny;
    }

    /// Serve a real consent page with "Allow" and "Deny" buttons (for a browser).
    pub fn set_consent_page(&self, page: bool) {
        self.lock().consent_page = page;
    }

    /// After a decision, show a "Continue" link to the callback instead of redirecting.
    pub fn set_link_instead_of_redirect(&self, link: bool) {
        self.lock().link_instead_of_redirect = link;
    }

    /// The user unticks permissions: grant only these scopes.
    pub fn set_granted_scopes(&self, scopes: Option<Vec<String>>) {
        self.lock().granted_scopes = scopes;
    }

    /// Answer the code exchange without a refresh token (as Google does without `prompt=consent`).
    pub fn set_omit_refresh_token(&self, omit: bool) {
        self.lock().omit_refresh_token = omit;
    }

    /// The access-token lifetime the token endpoint claims (any number, absurd ones included).
    pub fn set_expires_in(&self, seconds: u64) {
        self.lock().expires_in = seconds;
    }

    /// Adds one message, with whatever headers a sender chose (delivered: it gets a
    /// history record).
    pub fn add_message(&self, message: FakeMessage) {
        self.lock().deliver(message);
    }

    /// Replaces the mailbox with `count` messages (their history kept).
    pub fn set_messages(&self, count: usize) {
        let mut state = self.lock();
        state.messages.clear();
        for n in 1..=count {
            state.deliver(FakeMessage::numbered(n));
        }
    }

    /// Delivers `message` now: a new history record, the newest message. Returns its id.
    pub fn deliver(&self, message: FakeMessage) -> String {
        self.lock().deliver(message)
    }

    /// Delivers `message` once `after` more Gmail requests have been answered: mail that
    /// arrives while a run is in progress.
    pub fn deliver_during_run(&self, after: usize, message: FakeMessage) {
        let mut state = self.lock();
        let at = state.gmail_requests + after;
        state.pending.push((at, message));
    }

    /// Messages delivered from now on are received at `now` (a test's own clock).
    pub fn set_clock(&self, now: chrono::DateTime<chrono::Utc>) {
        self.lock().clock_ms = Some(now.timestamp_millis());
    }

    /// Another change to the mailbox (a label, a read mark): the history id grows, no
    /// message is added.
    pub fn touch(&self) {
        self.lock().history_id += 1;
    }

    /// Deletes a message: its history stays, `messages.get` answers 404.
    pub fn delete_message(&self, id: &str) {
        self.lock().messages.retain(|m| m.id != id);
    }

    /// Forgets the history up to now: `history.list` from an older id answers 404.
    pub fn expire_history(&self) {
        let mut state = self.lock();
        state.history_floor = state.history_id;
    }

    /// Every `messageAdded` record: (history id, message id), oldest first.
    pub fn history(&self) -> Vec<(u64, String)> {
        self.lock().history.clone()
    }

    pub fn history_id(&self) -> u64 {
        self.lock().history_id
    }

    pub fn history_requests(&self) -> usize {
        self.lock().history_requests
    }

    /// `messages.modify` calls answered: (message id, labels added, labels removed).
    pub fn modifications(&self) -> Vec<(String, Vec<String>, Vec<String>)> {
        self.lock().modifications.clone()
    }

    /// The RFC 2822 bytes of every message sent.
    pub fn sent(&self) -> Vec<Vec<u8>> {
        self.lock().sent.clone()
    }

    pub fn get_requests(&self) -> usize {
        self.lock().get_requests
    }

    /// Ids of the messages delivered with `label`, oldest first.
    pub fn delivered_with(&self, label: &str) -> Vec<String> {
        let state = self.lock();
        state
            .history
            .iter()
            .filter(|(_, id)| {
                state
                    .messages
                    .iter()
                    .find(|m| &m.id == id)
                    .is_none_or(|m| m.labels.iter().any(|l| l == label))
            })
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// The most ids one list page holds (10 by default, to exercise paging; Gmail's is 500).
    pub fn set_page_size_cap(&self, cap: usize) {
        self.lock().page_size_cap = cap;
    }

    /// Adds this delay to every answer (a network round trip, for benchmarks).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Holds the next refresh grant until released (to force interleavings).
    pub fn hold_refresh(&self) -> crate::ssm_proxy::Hold {
        let hold = crate::ssm_proxy::Hold::default();
        self.lock().refresh_holds.push_back(hold.clone());
        hold
    }

    /// Drops every injected fault and hold not used yet.
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.token_faults.clear();
        state.gmail_faults.clear();
        state.refresh_holds.clear();
    }

    /// Whether Google would accept this refresh token.
    pub fn is_valid_refresh_token(&self, refresh_token: &str) -> bool {
        self.lock()
            .refresh_tokens
            .get(refresh_token)
            .is_some_and(|grant| !grant.revoked)
    }

    pub fn inject_token_fault(&self, fault: Fault) {
        self.lock().token_faults.push_back(fault);
    }

    pub fn inject_gmail_fault(&self, fault: Fault) {
        self.lock().gmail_faults.push_back(fault);
    }

    /// Every Gmail call for `account` answers `status` until told otherwise (`None`).
    pub fn fail_account(&self, account: &str, status: Option<u16>) {
        let mut state = self.lock();
        match status {
            Some(status) => state.failing_accounts.insert(account.to_owned(), status),
            None => state.failing_accounts.remove(account),
        };
    }

    /// Authorization-code redemptions attempted (valid or not).
    pub fn code_redemptions(&self) -> usize {
        self.lock().code_redemptions
    }

    /// Refresh grants attempted (valid or not).
    pub fn refresh_grants(&self) -> usize {
        self.lock().refresh_grants
    }

    pub fn gmail_requests(&self) -> usize {
        self.lock().gmail_requests
    }

    /// Gmail API quota units spent so far.
    pub fn quota_units(&self) -> usize {
        self.lock().quota_units
    }

    pub fn list_requests(&self) -> usize {
        self.lock().list_requests
    }

    pub fn last_query(&self) -> Option<String> {
        self.lock().last_query.clone()
    }

    /// Every token and code this fake has issued so far, and every state and PKCE verifier
    /// it has been sent.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.lock().issued_secrets.clone()
    }

    /// Follows a consent URL as a browser would and returns where Google sends it back
    /// (the callback URL with `code` and `state`, or `error`).
    pub async fn consent(&self, authorize_location: &str) -> String {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let response = client
            .get(authorize_location)
            .send()
            .await
            .expect("consent request");
        assert_eq!(
            response.status(),
            302,
            "consent page refused: {}",
            response.text().await.unwrap_or_default()
        );
        response.headers()[header::LOCATION]
            .to_str()
            .expect("location")
            .to_owned()
    }
}

async fn latency(state: &Arc<Mutex<GoogleState>>) {
    let delay = state.lock().unwrap_or_else(|e| e.into_inner()).latency;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

fn form(raw: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": error, "error_description": "fake" }).to_string(),
    )
        .into_response()
}

fn google_error(status: u16, reason: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "error": { "code": status.as_u16(), "message": reason, "status": reason } });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Applies the next injected fault: `Some(response)` replaces the real answer.
async fn fault(next: Option<Fault>) -> Option<Response> {
    match next? {
        Fault::Status(401) => Some(google_error(401, "UNAUTHENTICATED")),
        Fault::Status(code) => Some(google_error(code, "UNAVAILABLE")),
        Fault::TooManyRequests { retry_after_secs } => {
            let mut response = google_error(429, "RESOURCE_EXHAUSTED");
            if let Ok(value) = retry_after_secs.to_string().parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Some(response)
        }
        Fault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            None
        }
    }
}

/// The consent page. By default it answers at once as if the user had clicked Allow (or
/// Deny, see `set_deny`); with `set_consent_page(true)` it serves a real HTML page with
/// "Allow" and "Deny" buttons that post to `/o/oauth2/approve`.
async fn authorize(
    State(state): State<Arc<Mutex<GoogleState>>>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = form(query.unwrap_or_default().as_bytes());
    let page = state.lock().unwrap_or_else(|e| e.into_inner()).consent_page;
    if page {
        return consent_page(&params);
    }
    let deny = state.lock().unwrap_or_else(|e| e.into_inner()).deny;
    decide(&state, &params, deny)
}

/// The form behind the consent page's buttons.
async fn approve(State(state): State<Arc<Mutex<GoogleState>>>, body: Bytes) -> Response {
    let params = form(&body);
    let deny = params.get("decision").map(String::as_str) != Some("allow");
    decide(&state, &params, deny)
}

fn consent_page(params: &HashMap<String, String>) -> Response {
    let hidden: String = params
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                html_escape::encode_double_quoted_attribute(k),
                html_escape::encode_double_quoted_attribute(v)
            )
        })
        .collect();
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in - Google Accounts</title></head>\
         <body><h1>fake-project wants to access your Google Account</h1>\
         <p>This will allow fake-project to read your email messages and settings.</p>\
         <form method=\"post\" action=\"/o/oauth2/approve\">{hidden}\
         <button id=\"deny\" name=\"decision\" value=\"deny\">Deny</button> \
         <button id=\"allow\" name=\"decision\" value=\"allow\">Allow</button></form></body></html>"
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

/// Checks the request as Google does and sends the browser back with a code (or an error).
fn decide(
    state: &Arc<Mutex<GoogleState>>,
    params: &HashMap<String, String>,
    deny: bool,
) -> Response {
    let param = |k: &str| params.get(k).cloned().unwrap_or_default();
    if param("client_id") != CLIENT_ID {
        return (StatusCode::BAD_REQUEST, "Error 401: invalid_client").into_response();
    }
    if param("response_type") != "code"
        || param("code_challenge_method") != "S256"
        || param("code_challenge").is_empty()
    {
        return (StatusCode::BAD_REQUEST, "Error 400: invalid_request").into_response();
    }
    let redirect_uri = param("redirect_uri");
    let Ok(mut back) = url::Url::parse(&redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "Error 400: redirect_uri_mismatch").into_response();
    };
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    // The state is a secret of the flow too: tests check it never leaks.
    state.issued_secrets.push(param("state"));
    if deny {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", &param("state"));
    } else {
        let requested: Vec<String> = param("scope")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let scopes = state.granted_scopes.clone().unwrap_or(requested);
        let code = state.fresh("4/0Afake-code-");
        let account = state.account.clone();
        state.codes.insert(
            code.clone(),
            CodeGrant {
                redirect_uri,
                challenge: param("code_challenge"),
                scopes: scopes.clone(),
                account,
                used: false,
            },
        );
        back.query_pairs_mut()
            .append_pair("state", &param("state"))
            .append_pair("code", &code)
            .append_pair("scope", &scopes.join(" "));
    }
    if state.link_instead_of_redirect {
        // A link to follow instead of a redirect, so a test can take the URL elsewhere.
        let href = html_escape::encode_double_quoted_attribute(back.as_str()).into_owned();
        let html = format!(
            "<!doctype html><html><body><a id=\"continue\" href=\"{href}\">Continue</a></body></html>"
        );
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response();
    }
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

/// Client authentication: HTTP Basic (RFC 6749 §2.3.1) or the request body.
fn client_authenticated(headers: &HeaderMap, params: &HashMap<String, String>) -> bool {
    let from_basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .ok()
                    .map(|c| c.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    let (id, secret) = from_basic.unwrap_or_else(|| {
        (
            params.get("client_id").cloned().unwrap_or_default(),
            params.get("client_secret").cloned().unwrap_or_default(),
        )
    });
    id == CLIENT_ID && secret == CLIENT_SECRET
}

async fn token(
    State(state): State<Arc<Mutex<GoogleState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    latency(&state).await;
    let params = form(&body);
    let (injected, hold) = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let mut hold = None;
        match params.get("grant_type").map(String::as_str) {
            Some("authorization_code") => state.code_redemptions += 1,
            Some("refresh_token") => {
                state.refresh_grants += 1;
                hold = state.refresh_holds.pop_front();
            }
            _ => {}
        }
        (state.token_faults.pop_front(), hold)
    };
    if let Some(hold) = hold {
        hold.arrive_and_wait().await;
    }
    if let Some(response) = fault(injected).await {
        return response;
    }
    if !client_authenticated(&headers, &params) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let param = |k: &str| params.get(k).cloned().unwrap_or_default();
    if let Some(verifier) = params.get("code_verifier") {
        state.issued_secrets.push(verifier.clone());
    }
    match param("grant_type").as_str() {
        "authorization_code" => {
            // Google: "Missing required parameter: code".
            if param("code").is_empty() {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
            }
            let Some(grant) = state.codes.get_mut(&param("code")) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            // Single use: a second redemption fails even if the first one did.
            let first_use = !grant.used;
            grant.used = true;
            let grant = grant.clone();
            let challenge =
                URL_SAFE_NO_PAD.encode(Sha256::digest(param("code_verifier").as_bytes()));
            if !first_use
                || grant.redirect_uri != param("redirect_uri")
                || grant.challenge != challenge
            {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let access = state.issue_access_token(&grant.account);
            let mut answer = json!({
                "access_token": access,
                "expires_in": state.expires_in,
                "scope": grant.scopes.join(" "),
                "token_type": "Bearer",
            });
            if !state.omit_refresh_token {
                let refresh = state.fresh("1//fake-refresh-");
                state.refresh_tokens.insert(
                    refresh.clone(),
                    RefreshGrant {
                        account: grant.account.clone(),
                        scopes: grant.scopes.clone(),
                        revoked: false,
                    },
                );
                answer["refresh_token"] = Value::from(refresh);
            }
            json_ok(answer)
        }
        "refresh_token" => {
            let grant = match state.refresh_tokens.get(&param("refresh_token")) {
                Some(grant) if !grant.revoked => grant.clone(),
                _ => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant"),
            };
            let access = state.issue_access_token(&grant.account);
            // Like Google: no refresh_token in a refresh answer.
            json_ok(json!({
                "access_token": access,
                "expires_in": state.expires_in,
                "scope": grant.scopes.join(" "),
                "token_type": "Bearer",
            }))
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

fn json_ok(value: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// Spends the call's quota `units` (Google counts refused calls too), counts
/// the request, applies an injected fault, checks the bearer token: the account, or the
/// answer to send.
async fn gmail_auth(
    state: &Arc<Mutex<GoogleState>>,
    headers: &HeaderMap,
    units: usize,
) -> Result<String, Response> {
    state.lock().unwrap_or_else(|e| e.into_inner()).quota_units += units;
    latency(state).await;
    let injected = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.gmail_requests += 1;
        state.deliver_pending();
        state.gmail_faults.pop_front()
    };
    if let Some(response) = fault(injected).await {
        return Err(response);
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let state = state.lock().unwrap_or_else(|e| e.into_inner());
    match state.access_tokens.get(bearer) {
        Some(grant) if grant.valid => match state.failing_accounts.get(&grant.account) {
            Some(status) => Err(google_error(*status, "UNAVAILABLE")),
            None => Ok(grant.account.clone()),
        },
        _ => Err(google_error(401, "UNAUTHENTICATED")),
    }
}

async fn profile(State(state): State<Arc<Mutex<GoogleState>>>, headers: HeaderMap) -> Response {
    match gmail_auth(&state, &headers, 1).await {
        Ok(account) => {
            let (total, history_id) = {
                let state = state.lock().unwrap_or_else(|e| e.into_inner());
                (state.messages.len(), state.history_id)
            };
            json_ok(
                json!({ "emailAddress": account, "messagesTotal": total, "threadsTotal": total, "historyId": history_id.to_string() }),
            )
        }
        Err(response) => response,
    }
}

async fn list_messages(
    State(state): State<Arc<Mutex<GoogleState>>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(response) = gmail_auth(&state, &headers, 5).await {
        return response;
    }
    let params = form(query.unwrap_or_default().as_bytes());
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.list_requests += 1;
    state.last_query = params.get("q").cloned();
    let asked: usize = params
        .get("maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(100);
    if asked == 0 || asked > 500 {
        return google_error(400, "INVALID_ARGUMENT");
    }
    let start: usize = params
        .get("pageToken")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // With `labelIds` or `after:<epoch seconds>`, as Gmail does: only those, newest first.
    let label = params.get("labelIds").cloned();
    let after_ms = params
        .get("q")
        .and_then(|q| q.split_whitespace().find_map(|w| w.strip_prefix("after:")))
        .and_then(|s| s.parse::<i64>().ok())
        .map(|s| s * 1000);
    let listed: Vec<&FakeMessage> = if label.is_none() && after_ms.is_none() {
        state.messages.iter().collect()
    } else {
        state
            .messages
            .iter()
            .rev()
            .filter(|m| label.as_ref().is_none_or(|l| m.labels.contains(l)))
            .filter(|m| after_ms.is_none_or(|a| m.internal_date_ms > a))
            .collect()
    };
    let end = (start + asked.min(state.page_size_cap)).min(listed.len());
    let page: Vec<Value> = listed[start.min(end)..end]
        .iter()
        .map(|m| json!({ "id": m.id, "threadId": m.thread_id }))
        .collect();
    let mut answer = json!({ "resultSizeEstimate": listed.len() });
    if !page.is_empty() {
        answer["messages"] = Value::from(page);
    }
    if end < listed.len() {
        answer["nextPageToken"] = Value::from(end.to_string());
    }
    json_ok(answer)
}

/// `users.history.list` as Gmail answers it: records after `startHistoryId` (404 below
/// the retention floor), `messageAdded` only, filtered by `labelId`, in pages, with the
/// mailbox's current `historyId`.
async fn list_history(
    State(state): State<Arc<Mutex<GoogleState>>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(response) = gmail_auth(&state, &headers, 2).await {
        return response;
    }
    let params = form(query.unwrap_or_default().as_bytes());
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.history_requests += 1;
    let Some(start) = params
        .get("startHistoryId")
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return google_error(400, "INVALID_ARGUMENT");
    };
    if start < state.history_floor {
        return google_error(404, "NOT_FOUND");
    }
    let asked: usize = params
        .get("maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(100);
    if asked == 0 || asked > 500 {
        return google_error(400, "INVALID_ARGUMENT");
    }
    // The page token is the last record id of the previous page.
    let after = params
        .get("pageToken")
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(start);
    let label = params.get("labelId").cloned();
    let matching: Vec<Value> = state
        .history
        .iter()
        .filter(|(id, _)| *id > after)
        .filter_map(|(id, message)| {
            let labels = state
                .messages
                .iter()
                .find(|m| &m.id == message)
                .map(|m| m.labels.clone())
                .unwrap_or_else(|| vec!["INBOX".into()]);
            if label.as_ref().is_some_and(|l| !labels.contains(l)) {
                return None;
            }
            let added = json!({ "id": message, "threadId": message, "labelIds": labels });
            Some(json!({
                "id": id.to_string(),
                "messages": [{ "id": message, "threadId": message }],
                "messagesAdded": [{ "message": added }],
            }))
        })
        .collect();
    let size = asked.min(state.page_size_cap);
    let page: Vec<Value> = matching.iter().take(size).cloned().collect();
    let mut answer = json!({ "historyId": state.history_id.to_string() });
    if matching.len() > size
        && let Some(last) = page.last().and_then(|r| r["id"].as_str())
    {
        answer["nextPageToken"] = Value::from(last.to_owned());
    }
    if !page.is_empty() {
        answer["history"] = Value::from(page);
    }
    json_ok(answer)
}

async fn get_message(
    State(state): State<Arc<Mutex<GoogleState>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(response) = gmail_auth(&state, &headers, 5).await {
        return response;
    }
    let query = query.unwrap_or_default();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if !pairs.contains(&("format".into(), "metadata".into())) {
        return google_error(400, "INVALID_ARGUMENT");
    }
    let wanted: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "metadataHeaders")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.get_requests += 1;
    let Some(message) = state.messages.iter().find(|m| m.id == id) else {
        return google_error(404, "NOT_FOUND");
    };
    let headers: Vec<Value> = [
        ("From", &message.from),
        ("To", &message.to),
        ("Subject", &message.subject),
        ("Date", &message.date),
    ]
    .into_iter()
    .filter(|(name, _)| wanted.contains(name))
    .map(|(name, value)| json!({ "name": name, "value": value }))
    .collect();
    json_ok(json!({
        "id": message.id,
        "threadId": message.thread_id,
        "labelIds": message.labels,
        "snippet": message.snippet,
        "historyId": message.history_id.to_string(),
        "internalDate": message.internal_date_ms.to_string(),
        "sizeEstimate": 2048,
        "payload": { "mimeType": "multipart/alternative", "headers": headers },
    }))
}

/// `users.messages.modify` (5 units): `{"addLabelIds": [...], "removeLabelIds": [...]}`,
/// applied to the message's labels; 404 for an unknown message, 400 for another body.
async fn modify_message(
    State(state): State<Arc<Mutex<GoogleState>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = gmail_auth(&state, &headers, 5).await {
        return response;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return google_error(400, "INVALID_ARGUMENT");
    };
    let labels = |key: &str| -> Option<Vec<String>> {
        match request.get(key) {
            None => Some(Vec::new()),
            Some(value) => serde_json::from_value(value.clone()).ok(),
        }
    };
    let (Some(add), Some(remove)) = (labels("addLabelIds"), labels("removeLabelIds")) else {
        return google_error(400, "INVALID_ARGUMENT");
    };
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let Some(message) = state.messages.iter_mut().find(|m| m.id == id) else {
        return google_error(404, "NOT_FOUND");
    };
    message.labels.retain(|l| !remove.contains(l));
    for label in &add {
        if !message.labels.contains(label) {
            message.labels.push(label.clone());
        }
    }
    let answer =
        json!({ "id": message.id, "threadId": message.thread_id, "labelIds": message.labels });
    state.modifications.push((id, add, remove));
    json_ok(answer)
}

/// `users.messages.send` (100 units): `{"raw": <URL-safe base64 of RFC 2822>}`.
async fn send_message(
    State(state): State<Arc<Mutex<GoogleState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = gmail_auth(&state, &headers, 100).await {
        return response;
    }
    let raw = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["raw"].as_str().map(str::to_owned))
        .and_then(|raw| URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')).ok());
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return google_error(400, "INVALID_ARGUMENT");
    };
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.sent.push(raw);
    let id = state.fresh("sent-");
    json_ok(json!({ "id": id, "threadId": id, "labelIds": ["SENT"] }))
}

fn revoke_in(state: &mut GoogleState, refresh_token: &str) -> bool {
    let account = state.refresh_tokens.get_mut(refresh_token).map(|grant| {
        grant.revoked = true;
        grant.account.clone()
    });
    if let Some(account) = &account {
        for access in state
            .access_tokens
            .values_mut()
            .filter(|a| &a.account == account)
        {
            access.valid = false;
        }
    }
    account.is_some()
}

/// RFC 7009 revocation as Google answers it: 200, or 400 `invalid_token` for an unknown token.
async fn revoke_grant(State(state): State<Arc<Mutex<GoogleState>>>, body: Bytes) -> Response {
    let params = form(&body);
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let token = params.get("token").cloned().unwrap_or_default();
    if revoke_in(&mut state, &token) {
        StatusCode::OK.into_response()
    } else {
        oauth_error(StatusCode::BAD_REQUEST, "invalid_token")
    }
}
