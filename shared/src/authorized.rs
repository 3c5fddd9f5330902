//! One call from a stored token to an authorized Gmail client: what `builder.auth()` is to
//! `pythonic_gmail`, without the browser.
//!
//! [`AuthorizedGmail::from_env`] reads the same environment as the deployed functions (the
//! one `TOKEN_PARAM`, or a mailbox under `MAILBOXES_PATH`); [`AuthorizedGmail::from_files`]
//! the local file store. Either way the client:
//!
//! - reads the token once and keeps it in memory: a warm Lambda invocation whose access
//!   token is still valid makes no Parameter Store call;
//! - refreshes only when the access token expires within five minutes (or Gmail answers
//!   401), and writes the refreshed token back under the grant-keeping rule of
//!   `docs/interface.md` (a consent that lands meanwhile stays on top);
//! - never opens a browser: a grant Google refused is [`Error::ReauthorizationRequired`],
//!   with the authorize URL when `AUTHORIZE_URL` is set.
//!
//! ```no_run
//! # async fn example() -> Result<(), gmail_oauth::Error> {
//! let gmail = gmail_oauth::AuthorizedGmail::from_env(None).await?;
//! for message in gmail.list("in:inbox is:unread", 10).await? {
//!     if let Some(metadata) = gmail.get(&message.id).await? {
//!         println!("{}: {}", metadata.from, metadata.subject);
//!     }
//! }
//! # Ok(()) }
//! ```

use crate::client_secrets::ClientSecrets;
use crate::config::{self, CommonConfig};
use crate::error::Error;
use crate::events::NoBus;
use crate::gmail::{GmailClient, GmailError, Mailbox, MessageLabels, MessageRef, Metadata};
use crate::keep::{Keeper, MailboxSettings};
use crate::mailbox::Address;
use crate::oauth::GoogleOAuth;
use crate::retry::RetryPolicy;
use crate::run::parse_client_secrets;
use crate::store::{Entry, Layout, ParameterRepository, SsmParameters, Stored, TokenRepository};
use crate::token::StoredToken;
use chrono::Utc;
use oauth2::AccessToken;
use tokio::sync::Mutex;
use url::Url;

/// A Gmail client authorized by a stored token, kept fresh in memory.
pub struct AuthorizedGmail<R> {
    repo: R,
    address: Option<Address>,
    oauth: GoogleOAuth,
    gmail: GmailClient,
    settings: MailboxSettings,
    state: Mutex<State>,
}

/// What is kept between calls (and between warm invocations).
#[derive(Default)]
struct State {
    secrets: Option<ClientSecrets>,
    /// The stored value the token in use came from (the base of the next write-back).
    stored: Option<Stored>,
    /// The token in use.
    token: Option<StoredToken>,
}

impl AuthorizedGmail<ParameterRepository<SsmParameters>> {
    /// The deployed functions' configuration from the environment: `CLIENT_SECRETS_PARAM`,
    /// `TOKEN_PARAM`, or `MAILBOXES_PATH` with `account` naming the mailbox, `KMS_KEY_ID`,
    /// `GMAIL_API_ENDPOINT`, `AUTHORIZE_URL`; AWS credentials and region as the SDK finds
    /// them. Reads nothing yet: the first call does.
    pub async fn from_env(account: Option<&str>) -> Result<Self, Error> {
        let lookup = |name: &str| std::env::var(name).ok();
        let common = CommonConfig::from_lookup(&lookup)
            .map_err(|e| Error::invalid_because(format!("environment variable {}", e.name), e))?;
        if matches!(common.layout(), Layout::Many { .. }) && account.is_none() {
            return Err(Error::invalid(
                "MAILBOXES_PATH is set: name the mailbox (its address) to use",
            ));
        }
        let parameters = SsmParameters::from_env(common.kms_key_id.clone(), common.ssm).await;
        let repo = ParameterRepository::new(
            parameters,
            common.client_secrets_param.clone(),
            common.layout(),
        );
        let http = crate::oauth::http_client()
            .map_err(|e| Error::invalid_because("building the HTTP client", e))?;
        let gmail = AuthorizedGmail::new(repo, account, http, common.gmail_api_endpoint)?;
        Ok(gmail.with_authorize_url(config::var(&lookup, "AUTHORIZE_URL")))
    }
}

#[cfg(unix)]
impl AuthorizedGmail<crate::store::FileRepository> {
    /// The local file store: the token file (google-auth JSON, as `gmail-oauth login` and
    /// `pythonic_gmail` write it) and the client secrets JSON from Google Cloud Console.
    pub fn from_files(
        token: impl Into<std::path::PathBuf>,
        client_secrets: impl Into<std::path::PathBuf>,
    ) -> Result<Self, Error> {
        let repo = crate::store::FileRepository::new(token, Some(client_secrets.into()));
        let http = crate::oauth::http_client()
            .map_err(|e| Error::invalid_because("building the HTTP client", e))?;
        let endpoint = Url::parse(config::DEFAULT_GMAIL_API_ENDPOINT)
            .map_err(|e| Error::invalid_because("the Gmail API endpoint", e))?;
        AuthorizedGmail::new(repo, None, http, endpoint)
    }
}

impl<R: TokenRepository> AuthorizedGmail<R> {
    /// A client over any token repository: `account` names the mailbox when the repository
    /// holds many. Reads nothing yet.
    pub fn new(
        repo: R,
        account: Option<&str>,
        http: reqwest::Client,
        gmail_api_endpoint: Url,
    ) -> Result<Self, Error> {
        let address = account
            .map(|raw| {
                Address::new(raw)
                    .ok_or_else(|| Error::invalid(format!("{raw:?} is not a mailbox address")))
            })
            .transpose()?;
        Ok(AuthorizedGmail {
            repo,
            address,
            oauth: GoogleOAuth::new(http.clone()),
            gmail: GmailClient::new(http, gmail_api_endpoint, RetryPolicy::default()),
            settings: MailboxSettings {
                query: String::new(),
                max_messages: 0,
                authorize_url: None,
                events: None,
            },
            state: Mutex::new(State::default()),
        })
    }

    /// The URL quoted in [`Error::ReauthorizationRequired`] (the deployment's `/authorize`).
    pub fn with_authorize_url(mut self, url: Option<String>) -> Self {
        self.settings.authorize_url = url;
        self
    }

    /// A valid access token: the one in memory, or a refreshed one (written back).
    pub async fn access_token(&self) -> Result<AccessToken, Error> {
        self.token(false).await
    }

    /// The mailbox's address, once a call has read the token.
    pub async fn account(&self) -> Option<String> {
        let state = self.state.lock().await;
        state
            .token
            .as_ref()
            .and_then(|t| t.account().map(str::to_owned))
            .or_else(|| self.address.as_ref().map(Address::to_string))
    }

    /// Ids of the messages matching a Gmail search `query`, newest first, at most `max`.
    pub async fn list(&self, query: &str, max: usize) -> Result<Vec<MessageRef>, Error> {
        self.call(async |token| self.gmail.list_messages(&token, query, None, max).await)
            .await
    }

    /// A message's metadata (From, To, Subject, Date, labels, snippet); `None` if it no
    /// longer exists.
    pub async fn get(&self, id: &str) -> Result<Option<Metadata>, Error> {
        let ids = [id.to_owned()];
        let found = self
            .call(async |token| self.gmail.metadata(&token, &ids).await)
            .await?;
        Ok(found.into_iter().next().flatten())
    }

    /// Adds and removes label ids of a message (needs the `gmail.modify` scope).
    pub async fn modify_labels(
        &self,
        id: &str,
        add: &[&str],
        remove: &[&str],
    ) -> Result<MessageLabels, Error> {
        self.call(async |token| self.gmail.modify_labels(&token, id, add, remove).await)
            .await
    }

    /// Sends an RFC 2822 message (needs the `gmail.send` scope). An `Upstream` error after a
    /// timeout or a 5xx means it may or may not have gone: it is not sent twice.
    pub async fn send(&self, rfc2822: &[u8]) -> Result<MessageLabels, Error> {
        self.call(async |token| self.gmail.send_message(&token, rfc2822).await)
            .await
    }

    /// Runs a Gmail call with a valid token; on a 401, refreshes once and runs it again.
    async fn call<T>(
        &self,
        gmail: impl AsyncFn(AccessToken) -> Result<T, GmailError>,
    ) -> Result<T, Error> {
        let calling = |error: GmailError| Error::upstream("calling Gmail", error);
        match gmail(self.token(false).await?).await {
            Err(GmailError::Unauthorized) => {
                tracing::warn!("Gmail rejected the access token; refreshing once and trying again");
                match gmail(self.token(true).await?).await {
                    Err(GmailError::Unauthorized) => Err(Error::ReauthorizationRequired {
                        reason: "Gmail still answers 401 after a token refresh".into(),
                        authorize_url: self.settings.authorize_url.clone(),
                    }),
                    other => other.map_err(calling),
                }
            }
            other => other.map_err(calling),
        }
    }

    /// The access token in use, refreshed (and written back) when it expires within the
    /// margin or when `force` says Gmail refused it.
    async fn token(&self, force: bool) -> Result<AccessToken, Error> {
        let mut state = self.state.lock().await;
        let now = Utc::now();
        let usable = |token: &StoredToken| {
            token
                .token
                .clone()
                .filter(|_| !force && !token.expires_within_margin(now))
        };
        if let Some(access) = state.token.as_ref().and_then(usable) {
            return Ok(access);
        }
        let stored = match state.stored.take() {
            Some(stored) => stored,
            None => self.load().await?,
        };
        if let Some(access) = usable(&stored.token) {
            state.token = Some(stored.token.clone());
            state.stored = Some(stored);
            return Ok(access);
        }
        // On any failure below the next call reads the store again (a consent may land
        // meanwhile).
        state.token = None;
        if state.secrets.is_none() {
            let raw = self
                .repo
                .client_secrets()
                .await
                .map_err(|e| Error::upstream("reading the client secrets", e))?;
            state.secrets = Some(parse_client_secrets(
                &self.repo.client_secrets_location(),
                raw,
            )?);
        }
        let Some(secrets) = state.secrets.as_ref() else {
            return Err(Error::invalid("the client secrets could not be read"));
        };
        let keeper = Keeper {
            repo: &self.repo,
            oauth: &self.oauth,
            gmail: &self.gmail,
            bus: &NoBus,
            secrets,
            settings: &self.settings,
        };
        let (fresh, _) = keeper.refresh_now(stored, now).await?;
        // The next write-back starts from what is stored now: this write, or a newer consent
        // that landed during it (then its token is used, if still valid).
        let reloaded = self.load().await?;
        let token = if usable(&reloaded.token).is_some() && !reloaded.token.same_as(&fresh) {
            reloaded.token.clone()
        } else {
            fresh
        };
        let access = token
            .token
            .clone()
            .ok_or_else(|| Error::invalid("Google's refresh answer had no access token"))?;
        state.stored = Some(reloaded);
        state.token = Some(token);
        Ok(access)
    }

    async fn load(&self) -> Result<Stored, Error> {
        let entry = self
            .repo
            .load(self.address.as_ref())
            .await
            .map_err(|e| Error::upstream(format!("reading {}", self.repo.location()), e))?;
        match entry {
            Some(Entry::Token(stored)) => Ok(*stored),
            Some(Entry::Invalid { name, problem }) => {
                Err(Error::invalid(format!("token parameter {name} {problem}")))
            }
            None => Err(Error::TokenNotFound {
                parameter: match &self.address {
                    Some(address) => format!("{} ({address})", self.repo.location()),
                    None => self.repo.location(),
                },
                authorize_url: self.settings.authorize_url.clone(),
            }),
        }
    }
}
