//! Google OAuth 2.0 through the `oauth2` crate: the authorization URL (with state and PKCE),
//! the code exchange and the refresh grant.
//!
//! Google's web-server flow: <https://developers.google.com/identity/protocols/oauth2/web-server>.
//! PKCE is RFC 7636 (S256 only); `access_type=offline` and `prompt=consent` make Google issue
//! a refresh token on every consent. HTTP goes through one shared `reqwest` client that
//! follows no redirects (a redirect-following OAuth client is an SSRF hole) and times out.

use crate::client_secrets::ClientSecrets;
use crate::retry::{Attempt, RetryPolicy, is_transient, retry};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;
use url::Url;

/// The one HTTP client for Google: rustls, no redirects, bounded connect and request time.
/// Fails only when the TLS backend cannot start, which `main` reports before serving.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    http_client_with(Duration::from_secs(3), Duration::from_secs(10))
}

/// The same client with other bounds (tests scale time down with it).
pub fn http_client_with(
    connect: Duration,
    request: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect)
        .timeout(request)
        .user_agent(concat!("gmail-oauth/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// What the token endpoint granted. Secrets are redacted in `Debug`.
#[derive(Debug, Clone)]
pub struct Grant {
    pub access_token: oauth2::AccessToken,
    pub refresh_token: Option<RefreshToken>,
    pub expires_in: Option<Duration>,
    /// `None` when Google did not say, which RFC 6749 §5.1 defines as "as requested".
    pub scopes: Option<Vec<String>>,
}

/// Why a token request failed. Messages carry Google's error codes, never tokens or bodies.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The code or refresh token is expired, revoked or already used (RFC 6749 §5.2).
    #[error("Google answered invalid_grant")]
    InvalidGrant,
    /// Google refused the request for another reason (`invalid_client`, …).
    #[error("Google refused the token request: {0}")]
    Rejected(String),
    /// Network failure, timeout, 429 or 5xx, after the retries allowed.
    #[error("Google's token endpoint is unavailable")]
    Unavailable(#[source] TransportError),
    /// The answer was not a token response.
    #[error("Google's token endpoint sent an unreadable answer ({0})")]
    Malformed(String),
}

/// The client identity used at the token endpoint.
#[derive(Debug, Clone)]
pub struct TokenClient {
    pub client_id: ClientId,
    pub client_secret: ClientSecret,
    pub token_uri: Url,
}

impl From<&ClientSecrets> for TokenClient {
    fn from(secrets: &ClientSecrets) -> Self {
        TokenClient {
            client_id: secrets.client_id.clone(),
            client_secret: secrets.client_secret.clone(),
            token_uri: secrets.token_uri.clone(),
        }
    }
}

/// The refresh grant, as keeping a mailbox needs it (a port: tests substitute it).
pub trait Refresher: Send + Sync {
    fn refresh(
        &self,
        client: &TokenClient,
        refresh_token: &RefreshToken,
    ) -> impl Future<Output = Result<Grant, OAuthError>> + Send;
}

/// The code exchange, as linking an account needs it (a port: tests substitute it).
pub trait CodeExchanger: Send + Sync {
    /// Redeems an authorization code with its PKCE verifier and the exact redirect URI.
    fn exchange_code(
        &self,
        secrets: &ClientSecrets,
        code: AuthorizationCode,
        pkce_verifier: PkceCodeVerifier,
        redirect_uri: &RedirectUrl,
    ) -> impl Future<Output = Result<Grant, OAuthError>> + Send;
}

/// A consent request about to be sent to the browser.
pub struct AuthorizationRequest {
    pub url: Url,
    pub state: CsrfToken,
    pub pkce_verifier: PkceCodeVerifier,
}

/// What to ask Google for in the authorization URL.
pub struct ConsentParams<'a> {
    pub redirect_uri: &'a RedirectUrl,
    pub scopes: &'a [String],
    pub login_hint: Option<&'a str>,
}

/// Google's OAuth endpoints over the shared HTTP client.
#[derive(Debug, Clone)]
pub struct GoogleOAuth {
    http: reqwest::Client,
    retry: RetryPolicy,
}

type Configured =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

impl GoogleOAuth {
    pub fn new(http: reqwest::Client) -> Self {
        Self::with_retry(
            http,
            RetryPolicy {
                max_attempts: 3,
                ..RetryPolicy::default()
            },
        )
    }

    /// With another retry policy for the refresh grant.
    pub fn with_retry(http: reqwest::Client, retry: RetryPolicy) -> Self {
        GoogleOAuth { http, retry }
    }

    fn client(client: &TokenClient, auth_uri: Option<&Url>) -> Configured {
        // The authorization URL is unused for token requests; the token URL stands in.
        let auth = auth_uri.unwrap_or(&client.token_uri);
        BasicClient::new(client.client_id.clone())
            .set_client_secret(client.client_secret.clone())
            .set_auth_uri(AuthUrl::from_url(auth.clone()))
            .set_token_uri(TokenUrl::from_url(client.token_uri.clone()))
    }

    /// oauth2's HTTP hook over the shared client (a clone shares its connection pool).
    fn transport(
        &self,
    ) -> impl Fn(
        HttpRequest,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send>,
    > + Send
    + Sync {
        let http = self.http.clone();
        move |request| {
            let http = http.clone();
            Box::pin(async move { send(&http, request).await })
        }
    }

    /// The consent URL with a fresh state and PKCE S256 verifier (RFC 7636 §4.1–4.2).
    pub fn authorization_request(
        &self,
        secrets: &ClientSecrets,
        params: ConsentParams<'_>,
    ) -> AuthorizationRequest {
        let (challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
        let client = Self::client(&TokenClient::from(secrets), Some(&secrets.auth_uri));
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .set_redirect_uri(Cow::Borrowed(params.redirect_uri))
            .add_scopes(params.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent")
            .add_extra_param("include_granted_scopes", "true");
        if let Some(hint) = params.login_hint {
            request = request.add_extra_param("login_hint", hint.to_owned());
        }
        let (url, state) = request.url();
        AuthorizationRequest {
            url,
            state,
            pkce_verifier,
        }
    }
}

impl CodeExchanger for GoogleOAuth {
    /// Redeems an authorization code. Never retried: a code is single-use, and a retry after
    /// a lost answer would only earn `invalid_grant`.
    async fn exchange_code(
        &self,
        secrets: &ClientSecrets,
        code: AuthorizationCode,
        pkce_verifier: PkceCodeVerifier,
        redirect_uri: &RedirectUrl,
    ) -> Result<Grant, OAuthError> {
        let http = self.transport();
        Self::client(&TokenClient::from(secrets), None)
            .exchange_code(code)
            .set_pkce_verifier(pkce_verifier)
            .set_redirect_uri(Cow::Borrowed(redirect_uri))
            .request_async(&http)
            .await
            .map(grant)
            .map_err(classify)
    }
}

/// Google's token revocation endpoint (not part of the client secrets JSON).
pub const GOOGLE_REVOKE_URI: &str = "https://oauth2.googleapis.com/revoke";

impl GoogleOAuth {
    /// Revokes a grant at Google (RFC 7009): the refresh token and every access token of it
    /// stop working. A token Google already considers invalid counts as revoked.
    ///
    /// A plain form POST rather than `oauth2`'s revocation request, which refuses any
    /// non-HTTPS endpoint, loopback included; `endpoint_url` enforces TLS here just the same.
    pub async fn revoke(&self, revoke_uri: &Url, token: &RefreshToken) -> Result<(), OAuthError> {
        let response = self
            .http
            .post(revoke_uri.clone())
            .form(&[("token", token.secret().as_str())])
            .send()
            .await
            .map_err(|e| OAuthError::Unavailable(TransportError::from(e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if is_transient(status) {
            return Err(OAuthError::Unavailable(TransportError::Status(
                status.as_u16(),
            )));
        }
        #[derive(serde::Deserialize)]
        struct RevokeError {
            error: String,
        }
        match response.json::<RevokeError>().await {
            Ok(body) if body.error == "invalid_token" => Ok(()),
            Ok(body) => Err(OAuthError::Rejected(body.error)),
            Err(_) => Err(OAuthError::Rejected(format!("HTTP {}", status.as_u16()))),
        }
    }
}

impl Refresher for GoogleOAuth {
    /// The refresh grant (RFC 6749 §6), retried with backoff while Google is unavailable.
    async fn refresh(
        &self,
        client: &TokenClient,
        refresh_token: &RefreshToken,
    ) -> Result<Grant, OAuthError> {
        let configured = Self::client(client, None);
        let http = self.transport();
        retry(&self.retry, "token refresh", || async {
            let result = configured
                .exchange_refresh_token(refresh_token)
                .request_async(&http)
                .await;
            match result.map(grant).map_err(classify) {
                Err(error @ OAuthError::Unavailable(_)) => Attempt::Again {
                    error,
                    retry_after: None,
                },
                other => Attempt::Done(other),
            }
        })
        .await
    }
}

fn grant(response: oauth2::basic::BasicTokenResponse) -> Grant {
    Grant {
        access_token: response.access_token().clone(),
        refresh_token: response.refresh_token().cloned(),
        expires_in: response.expires_in(),
        scopes: response
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect()),
    }
}

fn classify(
    error: RequestTokenError<TransportError, oauth2::basic::BasicErrorResponse>,
) -> OAuthError {
    match error {
        RequestTokenError::ServerResponse(response) => match response.error() {
            BasicErrorResponseType::InvalidGrant => OAuthError::InvalidGrant,
            other => OAuthError::Rejected(other.to_string()),
        },
        RequestTokenError::Request(transport) => OAuthError::Unavailable(transport),
        // Only the JSON path: serde's message can quote the offending value, maybe a token.
        RequestTokenError::Parse(error, _body) => {
            OAuthError::Malformed(format!("at {}", error.path()))
        }
        RequestTokenError::Other(reason) => OAuthError::Malformed(reason),
    }
}

/// Why an HTTP exchange with Google did not produce an answer to interpret.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("HTTP {0}")]
    Status(u16),
    #[error("request timed out")]
    Timeout,
    #[error("connection failed")]
    Connect,
    #[error("{0}")]
    Other(String),
}

impl From<reqwest::Error> for TransportError {
    fn from(error: reqwest::Error) -> Self {
        // reqwest's Display includes the URL; our URLs carry no secrets, but keep it short.
        if error.is_timeout() {
            TransportError::Timeout
        } else if error.is_connect() {
            TransportError::Connect
        } else {
            TransportError::Other(error.without_url().to_string())
        }
    }
}

/// oauth2's HTTP hook: one request through the shared client. 429 and 5xx become transport
/// errors, so they are retried like timeouts rather than parsed as OAuth errors.
async fn send(
    http: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, TransportError> {
    let request = reqwest::Request::try_from(request).map_err(TransportError::from)?;
    let response = http.execute(request).await?;
    let status = response.status();
    if is_transient(status) {
        return Err(TransportError::Status(status.as_u16()));
    }
    let mut builder = oauth2::http::Response::builder().status(status);
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await?;
    builder
        .body(body.to_vec())
        .map_err(|e| TransportError::Other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = crate::fixtures::CLIENT_SECRETS_WEB;

    #[test]
    fn authorization_url_carries_every_parameter_google_needs() {
        let secrets = ClientSecrets::from_json(WEB).unwrap();
        let redirect = RedirectUrl::new("https://abc.example/prod/callback".into()).unwrap();
        let scopes = vec![
            "https://www.googleapis.com/auth/gmail.readonly".to_owned(),
            "openid".to_owned(),
        ];
        let request = GoogleOAuth::new(http_client().unwrap()).authorization_request(
            &secrets,
            ConsentParams {
                redirect_uri: &redirect,
                scopes: &scopes,
                login_hint: Some("me@example.com"),
            },
        );
        assert!(
            request
                .url
                .as_str()
                .starts_with("https://accounts.google.com/o/oauth2/auth?")
        );
        let query: std::collections::HashMap<_, _> =
            request.url.query_pairs().into_owned().collect();
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&request.pkce_verifier);
        let expected = [
            ("response_type", "code"),
            ("client_id", secrets.client_id.as_str()),
            ("redirect_uri", "https://abc.example/prod/callback"),
            (
                "scope",
                "https://www.googleapis.com/auth/gmail.readonly openid",
            ),
            ("state", request.state.secret()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("access_type", "offline"),
            ("prompt", "consent"),
            ("include_granted_scopes", "true"),
            ("login_hint", "me@example.com"),
        ];
        for (key, value) in expected {
            assert_eq!(query.get(key).map(String::as_str), Some(value), "{key}");
        }
        assert_eq!(query.len(), expected.len());
        // RFC 7636 §4.1: 43 to 128 characters of high entropy.
        assert!((43..=128).contains(&request.pkce_verifier.secret().len()));
        assert!(request.state.secret().len() >= 16);
    }

    #[test]
    fn each_request_gets_a_fresh_state_and_verifier() {
        let secrets = ClientSecrets::from_json(WEB).unwrap();
        let redirect = RedirectUrl::new("https://abc.example/callback".into()).unwrap();
        let params = || ConsentParams {
            redirect_uri: &redirect,
            scopes: &[],
            login_hint: None,
        };
        let google = GoogleOAuth::new(http_client().unwrap());
        let a = google.authorization_request(&secrets, params());
        let b = google.authorization_request(&secrets, params());
        assert_ne!(a.state.secret(), b.state.secret());
        assert_ne!(a.pkce_verifier.secret(), b.pkce_verifier.secret());
        assert!(!a.url.query_pairs().any(|(k, _)| k == "login_hint"));
    }
}
