//! `GET /authorize` and `GET /callback`: what each outcome answers, and what is logged.

use crate::App;
use crate::pages::{self, page};
use crate::request::CallbackRequest;
use chrono::{DateTime, Utc};
use cookie::{Cookie, SameSite};
use gmail_oauth::Error;
use gmail_oauth::client_secrets::ClientSecrets;
use gmail_oauth::deadline::{Deadline, within};
use gmail_oauth::error::Chain;
use gmail_oauth::flow_cookie::{self, COOKIE_NAME, FlowError, FlowKey, FlowState};
use gmail_oauth::link::{self, Consent, LinkError};
use gmail_oauth::oauth::ConsentParams;
use gmail_oauth::oauth2::{AuthorizationCode, RedirectUrl};
use gmail_oauth::run::parse_client_secrets;
use gmail_oauth::store::TokenRepository;
use http::{HeaderValue, Response, StatusCode, header};

/// The longest `login_hint` passed on (an e-mail address is at most 254 characters).
const MAX_LOGIN_HINT: usize = 254;

pub async fn authorize<S: TokenRepository>(
    app: &App<S>,
    request: &CallbackRequest,
    now: DateTime<Utc>,
) -> Response<String> {
    let login_hint = request.param("login_hint").filter(|h| !h.is_empty());
    if login_hint.is_some_and(|h| h.len() > MAX_LOGIN_HINT) {
        return bad_request("The login_hint parameter is too long.");
    }
    if let Some(there) = elsewhere(app, request) {
        // The flow cookie must be set on the host Google sends the browser back to: a
        // consent started on the execute-api host of a custom-domain deployment moves there.
        return moved_to(there, login_hint);
    }
    let secrets = match load_client_secrets(app).await {
        Ok(secrets) => secrets,
        Err(response) => return response,
    };
    let Some(redirect_uri) = app.redirect_uri(request) else {
        return misconfigured(
            "REDIRECT_URI is not set and the request carries no API Gateway domain name",
        );
    };
    let consent = app.google.authorization_request(
        &secrets,
        ConsentParams {
            redirect_uri: &redirect_uri,
            scopes: &app.config.scopes,
            login_hint,
        },
    );
    let flow = FlowState {
        state: consent.state,
        pkce_verifier: consent.pkce_verifier,
        issued_at: now,
    };
    let sealed = flow_cookie::seal(&FlowKey::derive(&secrets.client_secret), &flow);

    let mut response = Response::new(String::new());
    *response.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(consent.url.as_str()) {
        Ok(location) => response.headers_mut().insert(header::LOCATION, location),
        Err(_) => return misconfigured("the client secrets auth_uri does not make a valid URL"),
    };
    set_cookie(
        &mut response,
        flow_cookie_header(sealed, flow_cookie::LIFETIME.num_seconds()),
    );
    tracing::info!(redirect_uri = %redirect_uri.as_str(), "consent started");
    response
}

/// With `REDIRECT_URI` set, `/authorize` on that host, when the request came to another
/// one (the API's execute-api host behind a custom domain, say).
fn elsewhere<S>(app: &App<S>, request: &CallbackRequest) -> Option<url::Url> {
    let configured = app.config.redirect_uri.as_ref()?.url();
    let here = request.domain_name.as_deref()?;
    let host = configured.host_str()?;
    let there = match configured.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    (!here.eq_ignore_ascii_case(&there)).then(|| gmail_oauth::config::authorize_url_for(configured))
}

fn moved_to(mut there: url::Url, login_hint: Option<&str>) -> Response<String> {
    if let Some(hint) = login_hint {
        there.query_pairs_mut().append_pair("login_hint", hint);
    }
    let mut response = Response::new(String::new());
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(location) = HeaderValue::from_str(there.as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    tracing::info!(authorize_url = %there.as_str(), "consent moved to the redirect URI's host");
    response
}

/// `/callback`, answered before `deadline`. (The caller clears the flow cookie.)
pub async fn callback<S: TokenRepository>(
    app: &App<S>,
    request: &CallbackRequest,
    now: DateTime<Utc>,
    deadline: Option<Deadline>,
) -> Response<String> {
    // The consent splits the time itself (Google, then the write); this bound only catches
    // the reads before it.
    within(
        deadline.map(|d| d.at),
        complete_consent(app, request, now, deadline),
    )
    .await
    .unwrap_or_else(|| link_failed(&LinkError::TimedOut))
}

/// Ends the flow in the browser: the cookie is replaced by an expired empty one.
pub fn clear_flow_cookie(response: &mut Response<String>) {
    set_cookie(response, flow_cookie_header(String::new(), 0));
}

async fn complete_consent<S: TokenRepository>(
    app: &App<S>,
    request: &CallbackRequest,
    now: DateTime<Utc>,
    deadline: Option<Deadline>,
) -> Response<String> {
    if let Some(error) = request.param("error") {
        // Google's codes are short ASCII words; anything else is not echoed.
        let code = if error.len() <= 64
            && error
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            error
        } else {
            "unknown"
        };
        tracing::warn!(error = code, "consent was not given");
        return page(
            StatusCode::FORBIDDEN,
            "Consent was not given",
            &[
                &format!("Google reported: {code}. Nothing was stored."),
                "To link the mailbox, open /authorize again and choose Allow.",
            ],
        );
    }
    // An empty code is as missing as an absent one: it is never sent to Google.
    let present = |name| request.param(name).filter(|value| !value.is_empty());
    let (Some(code), Some(state)) = (present("code"), present("state")) else {
        tracing::warn!("callback without code or state");
        return bad_request(
            "This address is the end of Google's sign-in; it needs the code and state Google adds.",
        );
    };

    // The state is checked before anything else happens: a forged callback never reaches
    // Google, and one without a cookie that could open costs no AWS call either.
    let cookie = request.cookie(COOKIE_NAME);
    if let Err(problem) = flow_cookie::check_form(cookie.as_deref()) {
        return state_refused(&problem);
    }
    let mut secrets = match load_client_secrets(app).await {
        Ok(secrets) => secrets,
        Err(response) => return response,
    };
    let open = |secrets: &ClientSecrets| {
        flow_cookie::open(
            &FlowKey::derive(&secrets.client_secret),
            cookie.as_deref(),
            state,
            now,
        )
    };
    let mut opened = open(&secrets);
    if opened.as_ref().err() == Some(&FlowError::InvalidCookie) {
        // Sealed with another secret: perhaps a rotated one that this environment has not
        // read yet (reread at most once every `secrets::RECHECK`).
        if let Some(reread) = app.secrets.reread(read_client_secrets(app)).await {
            secrets = match reread {
                Ok(secrets) => secrets,
                Err(response) => return response,
            };
            opened = open(&secrets);
        }
    }
    let flow = match opened {
        Ok(flow) => flow,
        Err(problem) => return state_refused(&problem),
    };
    let Some(redirect_uri) = app.redirect_uri(request) else {
        return misconfigured(
            "REDIRECT_URI is not set and the request carries no API Gateway domain name",
        );
    };

    let consent = Consent {
        secrets: &secrets,
        code: AuthorizationCode::new(code.to_owned()),
        pkce_verifier: flow.pkce_verifier,
        redirect_uri: &redirect_uri,
        required_scopes: &app.config.scopes,
        allowed: &app.config.allowed_accounts,
    };
    match link::link_account(&app.store, &app.google, &app.gmail, consent, now, deadline).await {
        Ok(linked) => {
            tracing::info!(account = %linked.account, stored_in = %linked.stored_in, "account linked");
            pages::linked(linked.account.as_str())
        }
        Err(error) => link_failed(&error),
    }
}

fn link_failed(error: &LinkError) -> Response<String> {
    let (status, title, next) = match error {
        LinkError::CodeRejected => (
            StatusCode::BAD_REQUEST,
            "This sign-in link was already used",
            "Each sign-in works once and for a few minutes. Open /authorize again.".to_owned(),
        ),
        LinkError::ScopeNotGranted { .. } => (
            StatusCode::FORBIDDEN,
            "A required permission was not granted",
            "Open /authorize again and leave every permission ticked on Google's consent screen.".to_owned(),
        ),
        LinkError::AccountNotAllowed { .. } => (
            StatusCode::FORBIDDEN,
            "This account may not be linked",
            "Sign in with an allowed account, or ask the operator to add it to ALLOWED_ACCOUNTS.".to_owned(),
        ),
        LinkError::NoRefreshToken { .. } => (
            StatusCode::FORBIDDEN,
            "Google did not grant offline access",
            "Remove this app at https://myaccount.google.com/permissions, then open /authorize again.".to_owned(),
        ),
        LinkError::Upstream { .. } | LinkError::TimedOut => (
            StatusCode::BAD_GATEWAY,
            "Google or AWS did not answer",
            "Nothing was changed. Wait a minute, then open /authorize again.".to_owned(),
        ),
        LinkError::WriteUnconfirmed => (
            StatusCode::BAD_GATEWAY,
            "AWS did not confirm in time",
            "Open /authorize again in a minute to be sure the mailbox is linked; linking twice does no harm.".to_owned(),
        ),
    };
    if status.is_server_error() {
        tracing::error!(error = %Chain(error), "linking failed");
    } else {
        tracing::warn!(error = %Chain(error), "linking refused");
    }
    page(status, title, &[&capitalized(&error.to_string()), &next])
}

fn state_refused(problem: &FlowError) -> Response<String> {
    tracing::warn!(%problem, "callback refused: state check failed");
    page(
        StatusCode::BAD_REQUEST,
        "Sign-in could not be verified",
        &[&capitalized(&problem.to_string())],
    )
}

/// The client secrets (this environment's copy, see [`crate::secrets`]), or the page to
/// answer when they cannot be used.
async fn load_client_secrets<S: TokenRepository>(
    app: &App<S>,
) -> Result<ClientSecrets, Response<String>> {
    app.secrets.get(read_client_secrets(app)).await
}

/// Reads the client secrets from the store.
async fn read_client_secrets<S: TokenRepository>(
    app: &App<S>,
) -> Result<ClientSecrets, Response<String>> {
    let raw = match app.store.client_secrets().await {
        Ok(raw) => raw,
        Err(error) => {
            tracing::error!(error = %Chain(&error), "reading the client secrets failed");
            return Err(page(
                StatusCode::BAD_GATEWAY,
                "AWS did not answer",
                &[
                    "The parameter store could not be read. Nothing was changed. Try again in a minute.",
                ],
            ));
        }
    };
    parse_client_secrets(&app.store.client_secrets_location(), raw).map_err(|error| match &error {
        Error::InvalidConfiguration { .. } => misconfigured(&Chain(&error).to_string()),
        other => misconfigured(&other.to_string()),
    })
}

pub fn misconfigured(problem: &str) -> Response<String> {
    tracing::error!(error_type = "InvalidConfiguration", %problem, "callback function is misconfigured");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "This service is not configured",
        &[
            "The operator needs to fix the deployment; the function's log says what is missing. Nothing was changed.",
        ],
    )
}

pub fn bad_request(message: &str) -> Response<String> {
    page(
        StatusCode::BAD_REQUEST,
        "Bad request",
        &[message, "To link a mailbox, open /authorize."],
    )
}

/// The flow cookie: `__Host-` prefixed, `HttpOnly`, `Secure`, `SameSite=Lax` (it must come
/// back on Google's top-level redirect), `Max-Age` = the flow's lifetime (0 clears it).
fn flow_cookie_header(value: String, max_age_seconds: i64) -> String {
    Cookie::build((COOKIE_NAME, value))
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age_seconds))
        .build()
        .to_string()
}

fn set_cookie(response: &mut Response<String>, cookie: String) {
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn capitalized(sentence: &str) -> String {
    let mut chars = sentence.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

/// The redirect URI: configured, or from API Gateway's own request context.
pub fn redirect_uri_from_context(
    domain_name: Option<&str>,
    stage: Option<&str>,
) -> Option<RedirectUrl> {
    let domain = domain_name.filter(|d| !d.is_empty())?;
    let url = match stage.filter(|s| !s.is_empty() && *s != "$default") {
        Some(stage) => format!("https://{domain}/{stage}/callback"),
        None => format!("https://{domain}/callback"),
    };
    RedirectUrl::new(url).ok()
}
