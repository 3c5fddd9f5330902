//! `gmail-oauth login`: Google's installed-app flow with a loopback redirect
//! (<https://developers.google.com/identity/protocols/oauth2/native-app#redirect-uri_loopback>,
//! RFC 8252 §7.3), state and PKCE S256, reusing the callback function's domain code.

use crate::error::CliError;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use gmail_oauth::allow::AllowedAccounts;
use gmail_oauth::client_secrets::{ClientKind, ClientSecrets};
use gmail_oauth::error::Chain;
use gmail_oauth::gmail::GmailClient;
use gmail_oauth::link::{self, Consent, LinkError, Linked};
use gmail_oauth::oauth::{ConsentParams, GoogleOAuth};
use gmail_oauth::oauth2::{AuthorizationCode, RedirectUrl};
use gmail_oauth::store::TokenRepository;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

pub struct LoginOptions {
    pub port: u16,
    pub redirect_host: String,
    pub open_browser: bool,
    pub timeout: Duration,
    pub scopes: Vec<String>,
    pub login_hint: Option<String>,
}

/// What the browser brought back, and where to send the page to show it.
struct Arrival {
    outcome: Result<String, String>,
    page: oneshot::Sender<Response>,
}

struct Loopback {
    state: String,
    arrivals: mpsc::Sender<Arrival>,
    done: Mutex<bool>,
}

/// A *Web application* client takes only the redirect URIs registered with it, so a
/// loopback login with one ends at Google's `redirect_uri_mismatch`: say so before the
/// browser opens, and which client to create. (A *Desktop app* client, `installed`, takes
/// any loopback port.)
fn client_fits(secrets: &ClientSecrets, redirect_uri: &RedirectUrl) -> Result<(), CliError> {
    let registered = secrets
        .redirect_uris
        .iter()
        .any(|uri| uri.as_str() == redirect_uri.as_str());
    if secrets.kind == ClientKind::Web && !registered {
        return Err(CliError::Usage(format!(
            "these client secrets are a Web application client (\"web\"), which Google lets \
             redirect only to its registered URIs, and {redirect} is not one of them. For \
             `login` and `make run`, create a Desktop app client (Google Cloud Console → APIs & \
             Services → Credentials → Create credentials → OAuth client ID → Desktop app) and \
             use its JSON; keep the Web client for the deployed callback. Or register \
             {redirect} with the Web client and pass the same --port.",
            redirect = redirect_uri.as_str()
        )));
    }
    Ok(())
}

/// Runs the whole flow; returns the linked account and where its token went.
pub async fn login(
    store: &impl TokenRepository,
    google: &GoogleOAuth,
    gmail: &GmailClient,
    secrets: &ClientSecrets,
    options: LoginOptions,
) -> Result<Linked, CliError> {
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, options.port)))
            .await
            .map_err(|e| {
                CliError::Failed(format!("cannot listen on 127.0.0.1:{}: {e}", options.port))
            })?;
    let port = listener
        .local_addr()
        .map_err(|e| CliError::Failed(e.to_string()))?
        .port();
    // `localhost` may resolve to ::1 in the browser: listen there too when we can.
    let listener6 = tokio::net::TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
        .await
        .ok();
    let redirect_uri = RedirectUrl::new(format!("http://{}:{port}/", options.redirect_host))
        .map_err(|e| CliError::Usage(format!("--redirect-host gives no valid URL: {e}")))?;
    client_fits(secrets, &redirect_uri)?;

    let consent = google.authorization_request(
        secrets,
        ConsentParams {
            redirect_uri: &redirect_uri,
            scopes: &options.scopes,
            login_hint: options.login_hint.as_deref(),
        },
    );
    let (arrivals, mut arrived) = mpsc::channel(1);
    let loopback = Arc::new(Loopback {
        state: consent.state.secret().clone(),
        arrivals,
        done: Mutex::new(false),
    });
    let app = Router::new().fallback(receive).with_state(loopback);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for listener in std::iter::once(listener).chain(listener6) {
        let (app, mut stopped) = (app.clone(), stopped.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await;
        });
    }
    drop(stopped);

    println!(
        "Open this URL in your browser to authorize access to Gmail:\n\n{}\n",
        consent.url
    );
    println!(
        "Waiting up to {} s for Google to redirect to {redirect_uri} …",
        options.timeout.as_secs()
    );
    if options.open_browser {
        open_browser(consent.url.as_str());
    }

    let arrival = tokio::time::timeout(options.timeout, arrived.recv())
        .await
        .map_err(|_| {
            CliError::Failed(format!(
                "no answer from the browser within {} s; run `gmail-oauth login` again",
                options.timeout.as_secs()
            ))
        })?
        .ok_or_else(|| CliError::Failed("the loopback server stopped".into()))?;

    let result = match arrival.outcome {
        Err(error) => Err(CliError::Reauthorize(format!(
            "consent was not given (Google reported: {error})"
        ))),
        Ok(code) => {
            let consent = Consent {
                secrets,
                code: AuthorizationCode::new(code),
                pkce_verifier: consent.pkce_verifier,
                redirect_uri: &redirect_uri,
                required_scopes: &options.scopes,
                allowed: &AllowedAccounts::anyone(),
            };
            link::link_account(store, google, gmail, consent, chrono::Utc::now(), None)
                .await
                .map_err(link_error)
        }
    };
    let page = match &result {
        Ok(linked) => page(
            StatusCode::OK,
            "Gmail account linked",
            &format!(
                "The mailbox {} is linked. You can close this window and return to the terminal.",
                linked.account
            ),
        ),
        Err(error) => page(
            StatusCode::FORBIDDEN,
            "Gmail account not linked",
            &format!("{error}. See the terminal."),
        ),
    };
    let _ = arrival.page.send(page);
    // Let the page reach the browser, then stop listening.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop.send(true);
    result
}

fn link_error(error: LinkError) -> CliError {
    match error {
        LinkError::Upstream { .. } | LinkError::TimedOut | LinkError::WriteUnconfirmed => {
            CliError::Upstream(Chain(&error).to_string())
        }
        other => CliError::Reauthorize(other.to_string()),
    }
}

/// The loopback handler: exactly one request with the right state is taken; strays (a
/// favicon, an old tab, a forged state) get a 4xx and the wait goes on.
async fn receive(
    State(loopback): State<Arc<Loopback>>,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    if uri.path() != "/" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let state_matches = param("state")
        .is_some_and(|state| bool::from(state.as_bytes().ct_eq(loopback.state.as_bytes())));
    if !state_matches {
        return page(
            StatusCode::BAD_REQUEST,
            "Not this sign-in",
            "This request does not belong to the sign-in the terminal is waiting for.",
        );
    }
    let outcome = match (param("code"), param("error")) {
        (_, Some(error)) => Err(error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect()),
        (Some(code), None) => Ok(code),
        (None, None) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "Google's answer has no code.",
            );
        }
    };
    {
        let mut done = loopback.done.lock().unwrap_or_else(|e| e.into_inner());
        if *done {
            return page(
                StatusCode::BAD_REQUEST,
                "Already done",
                "This sign-in has already been completed.",
            );
        }
        *done = true;
    }
    let (reply, page_ready) = oneshot::channel();
    if loopback
        .arrivals
        .send(Arrival {
            outcome,
            page: reply,
        })
        .await
        .is_err()
    {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    page_ready
        .await
        .unwrap_or_else(|_| StatusCode::SERVICE_UNAVAILABLE.into_response())
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;line-height:1.5}}</style>\
         </head><body><h1>{title}</h1><p>{text}</p></body></html>",
        title = html_escape::encode_text(title),
        text = html_escape::encode_text(text),
    );
    (
        status,
        [
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
        ],
        Html(html),
    )
        .into_response()
}

/// Opens the consent page in the user's browser through `webbrowser`, which knows macOS,
/// Windows, WSL (the Windows browser), `$BROWSER` and the Linux desktops; the URL is
/// printed above either way.
fn open_browser(url: &str) {
    if let Err(error) = webbrowser::open(url) {
        eprintln!("(could not open a browser: {error}; open the URL above by hand)");
    }
}
