//! The callback function behind API Gateway: `GET /authorize` starts Google's consent,
//! `GET /callback` completes it and stores the token (see `docs/interface.md`).
//!
//! `main` builds an [`App`] once; [`App::handle`] answers one API Gateway event and never
//! fails: every outcome is a page with a status.

pub mod pages;
pub mod request;
pub mod routes;
pub mod secrets;

use chrono::{DateTime, Utc};
use gmail_oauth::allow::AllowedAccounts;
use gmail_oauth::config::{self, CommonConfig, ConfigError};
use gmail_oauth::deadline::Deadline;
use gmail_oauth::gmail::GmailClient;
use gmail_oauth::oauth::GoogleOAuth;
use gmail_oauth::oauth2::RedirectUrl;
use gmail_oauth::retry::RetryPolicy;
use gmail_oauth::store::TokenRepository;
use http::{Method, Response};
use lambda_http::Body;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use request::CallbackRequest;

/// Settings read from the environment once, at start.
#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// `REDIRECT_URI`; when unset, built from the API Gateway request context.
    pub redirect_uri: Option<RedirectUrl>,
    pub scopes: Vec<String>,
    pub allowed_accounts: AllowedAccounts,
}

impl Config {
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let redirect_uri = config::var(lookup, "REDIRECT_URI")
            .map(|raw| {
                gmail_oauth::client_secrets::endpoint_url(&raw)
                    .and_then(|url| {
                        // This function answers only paths ending in /callback.
                        if url.path().ends_with("/callback") {
                            Ok(RedirectUrl::from_url(url))
                        } else {
                            Err("must end in /callback (https://mail.example.com/callback)".into())
                        }
                    })
                    .map_err(|problem| ConfigError {
                        name: "REDIRECT_URI",
                        problem,
                    })
            })
            .transpose()?;
        Ok(Config {
            common: CommonConfig::from_lookup(lookup)?,
            redirect_uri,
            scopes: config::scopes(lookup),
            allowed_accounts: AllowedAccounts::parse(
                &config::var(lookup, "ALLOWED_ACCOUNTS").unwrap_or_default(),
            ),
        })
    }
}

/// Time kept between the end of the work and the invocation's deadline, for the answer to
/// reach API Gateway.
pub const RESPONSE_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);
/// Time kept at the end for writing the token (one `PutParameter`, normally 50 ms).
pub const SAVE_RESERVE: std::time::Duration = std::time::Duration::from_secs(5);

/// The invocation's deadline (milliseconds since the epoch, from the Lambda context).
pub fn deadline(deadline_ms: u64, now: DateTime<Utc>) -> Deadline {
    Deadline::from_lambda(deadline_ms, now, RESPONSE_MARGIN, SAVE_RESERVE)
}

/// Everything built once per process and reused by warm invocations.
pub struct App<S> {
    pub config: Config,
    pub store: S,
    pub google: GoogleOAuth,
    pub gmail: GmailClient,
    /// The client secrets, read once per execution environment and reused for minutes.
    pub secrets: secrets::SecretsCache,
}

impl<S: TokenRepository> App<S> {
    pub fn new(config: Config, store: S, http: reqwest::Client) -> Self {
        let gmail = GmailClient::new(
            http.clone(),
            config.common.gmail_api_endpoint.clone(),
            RetryPolicy::default(),
        );
        App {
            google: GoogleOAuth::new(http),
            gmail,
            store,
            config,
            secrets: secrets::SecretsCache::default(),
        }
    }

    /// Answers one API Gateway HTTP API event (no deadline of its own: tests and tools).
    pub async fn handle(
        &self,
        event: ApiGatewayV2httpRequest,
        now: DateTime<Utc>,
    ) -> ApiGatewayV2httpResponse {
        self.handle_by(event, now, None).await
    }

    /// Answers one event before `deadline` (the invocation's): a consent that cannot finish
    /// in time ends with a 502 page that says whether anything was stored.
    pub async fn handle_by(
        &self,
        event: ApiGatewayV2httpRequest,
        now: DateTime<Utc>,
        deadline: Option<Deadline>,
    ) -> ApiGatewayV2httpResponse {
        let route = Route::of(event.raw_path.as_deref().unwrap_or_default());
        let mut response = match route {
            None => pages::not_found(),
            Some(_) if event.request_context.http.method != Method::GET => {
                pages::method_not_allowed()
            }
            Some(route) => match CallbackRequest::from_event(event) {
                Ok(request) => match route {
                    Route::Authorize => routes::authorize(self, &request, now).await,
                    Route::Callback => routes::callback(self, &request, now, deadline).await,
                },
                Err(problem) => {
                    tracing::warn!(%problem, "malformed request");
                    routes::bad_request(&format!("The request could not be read: {problem}."))
                }
            },
        };
        if route == Some(Route::Callback) {
            // Whatever happened, even to a request that could not be read, this flow is over.
            routes::clear_flow_cookie(&mut response);
        }
        pages::secure_headers(&mut response);
        into_api_gateway_response(response)
    }

    /// `REDIRECT_URI`, or `https://{domainName}[/{stage}]/callback` from API Gateway's
    /// request context. Never from `Host` or `X-Forwarded-*`, which a client controls.
    pub fn redirect_uri(&self, request: &CallbackRequest) -> Option<RedirectUrl> {
        self.config.redirect_uri.clone().or_else(|| {
            routes::redirect_uri_from_context(
                request.domain_name.as_deref(),
                request.stage.as_deref(),
            )
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Authorize,
    Callback,
}

impl Route {
    /// Matched on the path's end, so a stage prefix (`/prod/callback`) does not matter.
    fn of(path: &str) -> Option<Route> {
        let path = path.trim_end_matches('/');
        if path.ends_with("/authorize") {
            Some(Route::Authorize)
        } else if path.ends_with("/callback") {
            Some(Route::Callback)
        } else {
            None
        }
    }
}

/// The answer to every request of a process whose settings were refused at start: the
/// "not configured" page (500), with the problem (never a value) in the log line.
pub fn unconfigured(problem: &ConfigError) -> ApiGatewayV2httpResponse {
    into_api_gateway_response(routes::misconfigured(&problem.to_string()))
}

/// API Gateway HTTP API wants `Set-Cookie` in `cookies`, everything else in `headers`.
fn into_api_gateway_response(response: Response<String>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut headers = parts.headers;
    let cookies = headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    headers.remove(http::header::SET_COOKIE);
    let mut event = ApiGatewayV2httpResponse::default();
    event.status_code = i64::from(parts.status.as_u16());
    event.headers = headers;
    event.cookies = cookies;
    event.body = (!body.is_empty()).then_some(Body::Text(body));
    event.is_base64_encoded = false;
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn redirect_uri_from_context_follows_the_stage() {
        let uri = |d, s| routes::redirect_uri_from_context(d, s).map(|u| u.as_str().to_owned());
        assert_eq!(
            uri(
                Some("abc.execute-api.eu-west-1.amazonaws.com"),
                Some("$default")
            )
            .unwrap(),
            "https://abc.execute-api.eu-west-1.amazonaws.com/callback"
        );
        assert_eq!(
            uri(Some("abc.example"), Some("prod")).unwrap(),
            "https://abc.example/prod/callback"
        );
        assert_eq!(uri(None, Some("prod")), None);
        assert_eq!(uri(Some("bad host"), None), None);
    }

    #[test]
    fn a_redirect_uri_must_end_in_callback() {
        let config = |uri: &str| {
            Config::from_lookup(&gmail_oauth::config::fixed_env(&[("REDIRECT_URI", uri)]))
        };
        assert!(config("https://mail.example.com/callback").is_ok());
        assert!(config("https://mail.example.com/prod/callback").is_ok());
        for bad in [
            "https://mail.example.com/",
            "https://mail.example.com/callback/x",
        ] {
            assert_eq!(config(bad).unwrap_err().name, "REDIRECT_URI", "{bad}");
        }
    }

    #[test]
    fn status_codes_are_preserved() {
        let response = into_api_gateway_response(pages::page(StatusCode::IM_A_TEAPOT, "t", &[]));
        assert_eq!(response.status_code, 418);
    }
}
