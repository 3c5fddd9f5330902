//! The domain: link an account (the callback) and keep its token fresh and in use (the
//! scheduled refresh). Plain functions over the ports [`TokenStore`], [`Refresher`] and
//! [`Mailbox`]; no AWS or HTTP code is needed to follow what happens.
//!
//! The one rule that is never broken: the stored refresh token is only ever replaced by a
//! newer grant. A failed refresh, a revoked grant or a failed Gmail call leaves it as it was.

use crate::client_secrets::ClientSecrets;
pub use crate::deadline::Deadline;
use crate::deadline::within;
use crate::error::{Chain, Error};
use crate::gmail::{GmailError, Mailbox, MessageSummary};
use crate::oauth::{GoogleOAuth, Grant, OAuthError, Refresher, TokenClient};
use crate::store::{Parameter, StoreError, TokenStore};
use crate::token::{StoredToken, expiry_format};
use chrono::{DateTime, TimeDelta, Utc};
use oauth2::{AuthorizationCode, ClientId, ClientSecret, PkceCodeVerifier, RedirectUrl};
use serde::Serialize;
use serde_json::{Map, Value};

/// What one scheduled run needs to know.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub client_secrets_param: String,
    pub token_param: String,
    pub query: String,
    pub max_messages: usize,
    /// The deployed `/authorize` URL, quoted when someone has to consent again.
    pub authorize_url: Option<String>,
}

/// The result of a scheduled run (the Lambda's JSON output).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RunSummary {
    pub account: String,
    pub token_refreshed: bool,
    pub expires_at: String,
    pub query: String,
    pub message_count: usize,
    pub messages: Vec<MessageSummary>,
}

/// The scheduled run: load → refresh if expiring → read mail (on a 401, refresh once and
/// read again) → write the token back only if it changed. `invalid_grant` ends the run with
/// [`Error::ReauthorizationRequired`] and the stored token untouched.
pub async fn refresh_and_read_mail(
    store: &impl TokenStore,
    oauth: &impl Refresher,
    gmail: &impl Mailbox,
    settings: &RunSettings,
    now: DateTime<Utc>,
) -> Result<RunSummary, Error> {
    refresh_and_read_mail_by(store, oauth, gmail, settings, now, None).await
}

/// [`refresh_and_read_mail`] that ends before `deadline`: Google and Gmail get the time up
/// to the save reserve, storing a refreshed token gets the rest.
pub async fn refresh_and_read_mail_by(
    store: &impl TokenStore,
    oauth: &impl Refresher,
    gmail: &impl Mailbox,
    settings: &RunSettings,
    now: DateTime<Utc>,
    deadline: Option<Deadline>,
) -> Result<RunSummary, Error> {
    let (secrets, mut session) = load(store, settings).await?;
    let outcome = within(
        deadline.map(|d| d.work_until()),
        use_token(oauth, gmail, &secrets, &mut session, settings, now),
    )
    .await
    .unwrap_or_else(|| {
        Err(Error::Upstream(
            "Google or Gmail did not answer before the invocation's deadline".into(),
        ))
    });
    // A refreshed token is kept even when Gmail then fails; only a grant Google refuses
    // leaves the parameter exactly as it was.
    if !matches!(outcome, Err(Error::ReauthorizationRequired { .. })) {
        let saved = within(
            deadline.map(|d| d.at),
            session.save_if_changed(store, settings),
        )
        .await
        .unwrap_or_else(|| {
            Err(Error::Upstream(
                "SSM did not store the refreshed token before the deadline".into(),
            ))
        });
        if outcome.is_ok() {
            saved?;
        }
    }
    let mail = outcome?;
    Ok(RunSummary {
        account: session.token.account().unwrap_or_default().to_owned(),
        token_refreshed: session.refreshed,
        expires_at: session
            .token
            .expiry
            .as_ref()
            .map(expiry_format::format)
            .unwrap_or_default(),
        query: settings.query.clone(),
        message_count: mail.len(),
        messages: mail,
    })
}

/// Refreshes the access token if it is expiring and reads the mail with it, refreshing
/// once more if Gmail answers 401.
async fn use_token(
    oauth: &impl Refresher,
    gmail: &impl Mailbox,
    secrets: &ClientSecrets,
    session: &mut Session,
    settings: &RunSettings,
    now: DateTime<Utc>,
) -> Result<Vec<MessageSummary>, Error> {
    if session.token.expires_within_margin(now) {
        session.refresh(oauth, secrets, settings, now).await?;
    }
    match read_mail(gmail, session, settings).await {
        Err(GmailError::Unauthorized) => {
            tracing::warn!("Gmail rejected the access token; refreshing once and trying again");
            session.refresh(oauth, secrets, settings, now).await?;
            read_mail(gmail, session, settings)
                .await
                .map_err(|error| match error {
                    GmailError::Unauthorized => Error::ReauthorizationRequired {
                        reason: "Gmail still answers 401 after a token refresh".into(),
                        authorize_url: settings.authorize_url.clone(),
                    },
                    other => Error::Upstream(other.to_string()),
                })
        }
        other => other.map_err(|e| Error::Upstream(e.to_string())),
    }
}

/// A token in use during one run, what it was when read, and the version read.
struct Session {
    token: StoredToken,
    loaded: StoredToken,
    version: i64,
    refreshed: bool,
}

impl Session {
    /// Refreshes the access token in memory. The refresh token is replaced only when
    /// Google sent a new one (Google usually does not).
    async fn refresh(
        &mut self,
        oauth: &impl Refresher,
        secrets: &ClientSecrets,
        settings: &RunSettings,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let Some(refresh_token) = self.token.refresh_token.clone() else {
            return Err(reauthorize(
                "the stored token has no refresh_token",
                settings,
            ));
        };
        let grant = match oauth
            .refresh(&refresh_client(secrets, &self.token), &refresh_token)
            .await
        {
            Ok(grant) => grant,
            Err(OAuthError::InvalidGrant) => {
                tracing::error!(parameter = %settings.token_param, "refresh token expired or revoked; stored token left as it was");
                return Err(reauthorize(
                    "Google answered invalid_grant to the refresh",
                    settings,
                ));
            }
            Err(error) => return Err(Error::Upstream(error.to_string())),
        };
        apply_grant(&mut self.token, grant, now);
        self.refreshed = true;
        Ok(())
    }

    /// Writes the token back if anything in it changed since it was read, without ever
    /// hiding a newer write (a consent that happened during this run).
    ///
    /// SSM has no compare-and-swap, so: (1) re-read the version and skip the write if it
    /// moved, because a newer token is there; (2) write; (3) if our write is not the one
    /// right after the version read in (1), another write landed in between and ours now
    /// hides it: put that one back on top. Between (2) and (3) the stored token is ours,
    /// whose refresh token Google still honours (a new consent does not revoke older
    /// grants), so even a reader in that window of milliseconds gets a working token.
    async fn save_if_changed(
        &self,
        store: &impl TokenStore,
        settings: &RunSettings,
    ) -> Result<(), Error> {
        if self.token.same_as(&self.loaded) {
            return Ok(());
        }
        let name = settings.token_param.as_str();
        let current = store
            .get_many(&[name])
            .await
            .map_err(|e| store_failed(&e))?
            .pop()
            .flatten();
        match current {
            Some(current) if current.version == self.version => {}
            Some(current) => {
                tracing::warn!(
                    parameter = name,
                    read = self.version,
                    now = current.version,
                    "token was rewritten during this run (a new consent?); keeping the newer one"
                );
                return Ok(());
            }
            None => {
                tracing::warn!(
                    parameter = name,
                    "token was removed during this run; not writing it back"
                );
                return Ok(());
            }
        }
        let json = self.token.to_json().map_err(|problem| {
            Error::InvalidConfiguration(format!("token for {name} {problem}"))
        })?;
        let written = store
            .put_secret(name, &json)
            .await
            .map_err(|e| store_failed(&e))?;
        tracing::info!(parameter = name, version = written, "stored updated token");
        if written > self.version + 1
            && let Some(newer) = store
                .get_version(name, written - 1)
                .await
                .map_err(|e| store_failed(&e))?
        {
            let restored = store
                .put_secret(name, &newer.value)
                .await
                .map_err(|e| store_failed(&e))?;
            tracing::warn!(
                parameter = name,
                hidden = newer.version,
                restored,
                "a newer token was written while this run wrote; restored it on top"
            );
        }
        Ok(())
    }
}

/// Which client identity refreshes a token: the configured client secrets, unless the
/// token was issued to another client (for example a `pythonic_gmail` desktop client), in
/// which case only that client's own credentials, kept in the token, can refresh it.
fn refresh_client(secrets: &ClientSecrets, token: &StoredToken) -> TokenClient {
    let configured = TokenClient::from(secrets);
    let (Some(id), Some(secret), Some(uri)) =
        (&token.client_id, &token.client_secret, &token.token_uri)
    else {
        return configured;
    };
    if id == configured.client_id.as_str() {
        return configured;
    }
    match crate::client_secrets::endpoint_url(uri) {
        Ok(token_uri) => TokenClient {
            client_id: ClientId::new(id.clone()),
            client_secret: secret.clone(),
            token_uri,
        },
        Err(_) => configured,
    }
}

/// The longest access-token lifetime believed. Google's access tokens live 3,599 s; a token
/// endpoint that answers more (a proxy's mistake, a hostile answer, `10000000000000`) is
/// taken at this word, so the token is refreshed early instead of trusted for years, and no
/// date arithmetic can overflow.
pub const MAX_ACCESS_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Folds a grant into the stored token, keeping the old refresh token when none came back.
fn apply_grant(token: &mut StoredToken, grant: Grant, now: DateTime<Utc>) {
    token.token = Some(grant.access_token);
    if let Some(refresh_token) = grant.refresh_token {
        token.refresh_token = Some(refresh_token);
    }
    token.expiry = grant
        .expires_in
        .map(|lifetime| lifetime.min(MAX_ACCESS_TOKEN_LIFETIME))
        .and_then(|lifetime| TimeDelta::from_std(lifetime).ok())
        .and_then(|lifetime| now.checked_add_signed(lifetime));
}

/// Lists and summarises the messages; learns the account address if the token lacks it.
async fn read_mail(
    gmail: &impl Mailbox,
    session: &mut Session,
    settings: &RunSettings,
) -> Result<Vec<MessageSummary>, GmailError> {
    let access = session
        .token
        .token
        .clone()
        .unwrap_or_else(|| oauth2::AccessToken::new(String::new()));
    if session.token.account().is_none() {
        // Tokens written by google-auth carry `"account": ""`.
        session.token.account = Some(gmail.profile(&access).await?.email_address);
    }
    let ids = gmail
        .list_messages(&access, &settings.query, settings.max_messages)
        .await?;
    gmail.summaries(&access, &ids).await
}

/// Reads the client secrets and the token in one store call.
async fn load(
    store: &impl TokenStore,
    settings: &RunSettings,
) -> Result<(ClientSecrets, Session), Error> {
    let params = [
        settings.client_secrets_param.as_str(),
        settings.token_param.as_str(),
    ];
    let mut found = store
        .get_many(&params)
        .await
        .map_err(|e| store_failed(&e))?
        .into_iter();
    let (secrets, token) = (found.next().flatten(), found.next().flatten());
    // Without a token nothing else matters: say first that someone has to consent.
    let Some(Parameter { value, version, .. }) = token else {
        return Err(Error::TokenNotFound {
            parameter: settings.token_param.clone(),
            authorize_url: settings.authorize_url.clone(),
        });
    };
    let secrets = parse_client_secrets(settings.client_secrets_param.as_str(), secrets)?;
    let token = StoredToken::from_json(&value).map_err(|problem| {
        Error::InvalidConfiguration(format!(
            "token parameter {} {problem}",
            settings.token_param
        ))
    })?;
    Ok((
        secrets,
        Session {
            loaded: token.clone(),
            token,
            version,
            refreshed: false,
        },
    ))
}

/// Client secrets from a parameter read, or an `InvalidConfiguration` naming the parameter.
pub fn parse_client_secrets(
    name: &str,
    parameter: Option<Parameter>,
) -> Result<ClientSecrets, Error> {
    let parameter = parameter.ok_or_else(|| {
        Error::InvalidConfiguration(format!(
            "client secrets parameter {name} does not exist; store the JSON downloaded from Google Cloud Console there"
        ))
    })?;
    ClientSecrets::from_json(&parameter.value)
        .map_err(|problem| Error::InvalidConfiguration(format!("parameter {name}: {problem}")))
}

fn reauthorize(reason: &str, settings: &RunSettings) -> Error {
    Error::ReauthorizationRequired {
        reason: reason.into(),
        authorize_url: settings.authorize_url.clone(),
    }
}

fn store_failed(error: &StoreError) -> Error {
    tracing::error!(error = %Chain(error), "parameter store failed");
    Error::Upstream(format!("SSM {error}"))
}

/// `ALLOWED_ACCOUNTS`: mailbox addresses and `@domain` entries, case-insensitive.
#[derive(Debug, Clone, Default)]
pub struct AllowedAccounts {
    entries: Vec<String>,
    anyone: bool,
}

impl AllowedAccounts {
    pub fn parse(list: &str) -> Self {
        let entries = list
            .split(',')
            .map(|e| e.trim().to_ascii_lowercase())
            .filter(|e| !e.is_empty())
            .collect();
        AllowedAccounts {
            entries,
            anyone: false,
        }
    }

    /// Every account: for a local consent, where the person at the keyboard is the user.
    pub fn anyone() -> Self {
        AllowedAccounts {
            entries: Vec::new(),
            anyone: true,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && !self.anyone
    }

    /// Whether `account` may be linked. An empty list allows nobody.
    pub fn allows(&self, account: &str) -> bool {
        if self.anyone {
            return true;
        }
        let account = account.trim().to_ascii_lowercase();
        let domain = account.rsplit_once('@').map(|(_, d)| d);
        self.entries
            .iter()
            .any(|entry| match entry.strip_prefix('@') {
                Some(allowed_domain) => domain == Some(allowed_domain),
                None => *entry == account,
            })
    }
}

/// Why linking an account failed. Each maps to one HTTP status in the callback.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("Google did not accept the authorization code (it was already used or has expired)")]
    CodeRejected,
    #[error("the consent did not grant every required permission (missing: {})", .missing.join(" "))]
    ScopeNotGranted { missing: Vec<String> },
    #[error("the account {account} is not allowed to be linked")]
    AccountNotAllowed { account: String },
    #[error("Google did not issue a refresh token for {account}")]
    NoRefreshToken { account: String },
    #[error("{0}")]
    Upstream(String),
    /// The invocation's deadline came before Google or Gmail answered: nothing was stored.
    #[error("Google did not answer before the invocation's deadline; nothing was stored")]
    TimedOut,
    /// The deadline came while the token was being written: it may or may not be stored.
    #[error(
        "the parameter store did not confirm the write before the invocation's deadline; the mailbox may or may not be linked"
    )]
    WriteUnconfirmed,
}

/// What the callback has verified before it may redeem a code.
pub struct VerifiedCallback<'a> {
    pub secrets: &'a ClientSecrets,
    pub code: AuthorizationCode,
    pub pkce_verifier: PkceCodeVerifier,
    pub redirect_uri: &'a RedirectUrl,
    pub required_scopes: &'a [String],
    pub allowed: &'a AllowedAccounts,
    pub token_param: &'a str,
    /// The token stored before this consent, if any and readable.
    pub existing: Option<StoredToken>,
}

/// The callback after its state check: redeem the code, check the scopes, identify the
/// mailbox, check the allow-list, store the token. Returns the linked address.
///
/// With a `deadline`, Google and Gmail get the time up to its save reserve, the write the
/// rest: the answer always comes before the deadline, saying whether anything was stored.
pub async fn link_account(
    store: &impl TokenStore,
    google: &GoogleOAuth,
    gmail: &impl Mailbox,
    callback: VerifiedCallback<'_>,
    now: DateTime<Utc>,
    deadline: Option<Deadline>,
) -> Result<String, LinkError> {
    let token_param = callback.token_param;
    let (account, json) = within(
        deadline.map(|d| d.work_until()),
        redeem_and_verify(google, gmail, callback, now),
    )
    .await
    .ok_or(LinkError::TimedOut)??;
    let version = within(deadline.map(|d| d.at), store.put_secret(token_param, &json))
        .await
        .ok_or(LinkError::WriteUnconfirmed)?
        .map_err(|e| LinkError::Upstream(format!("SSM {e}")))?;
    tracing::info!(
        parameter = token_param,
        version,
        "stored token of newly linked account"
    );
    Ok(account)
}

/// Redeems the code and checks everything about the grant; returns the account and the
/// token JSON to store.
async fn redeem_and_verify(
    google: &GoogleOAuth,
    gmail: &impl Mailbox,
    callback: VerifiedCallback<'_>,
    now: DateTime<Utc>,
) -> Result<(String, String), LinkError> {
    let grant = google
        .exchange_code(
            callback.secrets,
            callback.code,
            callback.pkce_verifier,
            callback.redirect_uri,
        )
        .await
        .map_err(|error| match error {
            OAuthError::InvalidGrant => LinkError::CodeRejected,
            other => LinkError::Upstream(other.to_string()),
        })?;

    let granted = grant
        .scopes
        .clone()
        .unwrap_or_else(|| callback.required_scopes.to_vec());
    let missing: Vec<String> = callback
        .required_scopes
        .iter()
        .filter(|s| !granted.contains(s))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(LinkError::ScopeNotGranted { missing });
    }

    let account = gmail
        .profile(&grant.access_token)
        .await
        .map_err(|e| LinkError::Upstream(e.to_string()))?
        .email_address;
    if !callback.allowed.allows(&account) {
        return Err(LinkError::AccountNotAllowed { account });
    }

    // Without a new refresh token, the stored one may be kept only for the same mailbox.
    let refresh_token = match (&grant.refresh_token, &callback.existing) {
        (Some(new), _) => new.clone(),
        (None, Some(old))
            if old
                .account()
                .is_some_and(|a| a.eq_ignore_ascii_case(&account)) =>
        {
            match &old.refresh_token {
                Some(kept) => kept.clone(),
                None => return Err(LinkError::NoRefreshToken { account }),
            }
        }
        (None, _) => return Err(LinkError::NoRefreshToken { account }),
    };

    let mut extra = Map::new();
    extra.insert("universe_domain".into(), Value::from("googleapis.com"));
    let mut token = StoredToken {
        token: None,
        refresh_token: Some(refresh_token),
        token_uri: Some(callback.secrets.token_uri.to_string()),
        client_id: Some(callback.secrets.client_id.to_string()),
        client_secret: Some(ClientSecret::new(
            callback.secrets.client_secret.secret().clone(),
        )),
        scopes: granted,
        account: Some(account.clone()),
        expiry: None,
        extra,
    };
    apply_grant(
        &mut token,
        Grant {
            refresh_token: None,
            ..grant
        },
        now,
    );
    let json = token
        .to_json()
        .map_err(|e| LinkError::Upstream(format!("token {e}")))?;
    Ok((account, json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gmail::{MessageRef, Profile};
    use crate::store::MemoryStore;
    use oauth2::{AccessToken, RefreshToken};
    use std::sync::Mutex;
    use std::time::Duration;

    const SECRETS: &str = crate::fixtures::CLIENT_SECRETS_WEB;
    const TOKEN: &str = crate::fixtures::TOKEN_AFTER_CONSENT;

    fn now() -> DateTime<Utc> {
        expiry_format::parse("2026-11-23T12:00:00Z").unwrap()
    }

    fn settings() -> RunSettings {
        RunSettings {
            client_secrets_param: "/t/secrets".into(),
            token_param: "/t/token".into(),
            query: "in:inbox".into(),
            max_messages: 25,
            authorize_url: Some("https://x.example/authorize".into()),
        }
    }

    /// A token whose access token expires at `expiry`, for account `me@example.com`.
    fn stored(expiry: &str) -> String {
        let mut token = StoredToken::from_json(TOKEN).unwrap();
        token.expiry = expiry_format::parse(expiry);
        token.account = Some("me@example.com".into());
        token.to_json().unwrap()
    }

    fn store_with(token: &str) -> MemoryStore {
        MemoryStore::with(&[("/t/secrets", SECRETS), ("/t/token", token)])
    }

    /// One scheduled run at `now()` with `settings()`, against a mailbox that accepts only
    /// the access token `access`.
    async fn run_accepting(
        store: &impl TokenStore,
        oauth: &impl Refresher,
        access: &str,
    ) -> Result<RunSummary, Error> {
        refresh_and_read_mail(
            store,
            oauth,
            &FakeMailbox::accepting(access),
            &settings(),
            now(),
        )
        .await
    }

    /// Answers refreshes from a script and counts them.
    struct ScriptedRefresher(Mutex<Vec<Result<Grant, OAuthError>>>);

    impl ScriptedRefresher {
        fn new(answers: Vec<Result<Grant, OAuthError>>) -> Self {
            ScriptedRefresher(Mutex::new(answers))
        }
        fn remaining(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    impl Refresher for ScriptedRefresher {
        async fn refresh(&self, _: &TokenClient, _: &RefreshToken) -> Result<Grant, OAuthError> {
            self.0.lock().unwrap().remove(0)
        }
    }

    fn grant(access: &str, refresh: Option<&str>) -> Result<Grant, OAuthError> {
        Ok(Grant {
            access_token: AccessToken::new(access.into()),
            refresh_token: refresh.map(|r| RefreshToken::new(r.into())),
            expires_in: Some(Duration::from_secs(3599)),
            scopes: None,
        })
    }

    /// A mailbox with two messages that accepts only `valid_token`, and can fail once.
    struct FakeMailbox {
        valid_token: String,
        unauthorized_once: Mutex<bool>,
    }

    impl FakeMailbox {
        fn accepting(token: &str) -> Self {
            FakeMailbox {
                valid_token: token.into(),
                unauthorized_once: Mutex::new(false),
            }
        }
        fn check(&self, token: &AccessToken) -> Result<(), GmailError> {
            let mut once = self.unauthorized_once.lock().unwrap();
            if *once {
                *once = false;
                return Err(GmailError::Unauthorized);
            }
            if token.secret() == &self.valid_token {
                Ok(())
            } else {
                Err(GmailError::Unauthorized)
            }
        }
    }

    impl Mailbox for FakeMailbox {
        async fn profile(&self, token: &AccessToken) -> Result<Profile, GmailError> {
            self.check(token)?;
            Ok(Profile {
                email_address: "me@example.com".into(),
            })
        }
        async fn list_messages(
            &self,
            token: &AccessToken,
            _: &str,
            max: usize,
        ) -> Result<Vec<MessageRef>, GmailError> {
            self.check(token)?;
            Ok(["m1", "m2"]
                .iter()
                .take(max)
                .map(|id| MessageRef {
                    id: (*id).into(),
                    thread_id: "t".into(),
                })
                .collect())
        }
        async fn summaries(
            &self,
            token: &AccessToken,
            refs: &[MessageRef],
        ) -> Result<Vec<MessageSummary>, GmailError> {
            self.check(token)?;
            Ok(refs
                .iter()
                .map(|r| MessageSummary {
                    id: r.id.clone(),
                    thread_id: r.thread_id.clone(),
                    from: "a@b".into(),
                    subject: "s".into(),
                    date: "d".into(),
                })
                .collect())
        }
    }

    #[tokio::test]
    async fn a_valid_token_is_used_without_refresh_or_write() {
        let store = store_with(&stored("2026-11-23T12:30:00Z"));
        let oauth = ScriptedRefresher::new(vec![]);
        let summary = run_accepting(&store, &oauth, "ya29.a0-example-access-token")
            .await
            .unwrap();
        assert!(!summary.token_refreshed);
        assert_eq!(summary.message_count, 2);
        assert_eq!(summary.account, "me@example.com");
        assert_eq!(summary.expires_at, "2026-11-23T12:30:00Z");
        assert!(store.writes().is_empty());
    }

    #[tokio::test]
    async fn an_expiring_token_is_refreshed_and_stored_keeping_the_refresh_token() {
        let store = store_with(&stored("2026-11-23T12:04:00Z"));
        let oauth = ScriptedRefresher::new(vec![grant("new-access", None)]);
        let summary = run_accepting(&store, &oauth, "new-access").await.unwrap();
        assert!(summary.token_refreshed);
        assert_eq!(summary.expires_at, "2026-11-23T12:59:59Z");
        assert_eq!(store.writes(), ["/t/token"]);
        let written = StoredToken::from_json(&store.value("/t/token").unwrap()).unwrap();
        assert_eq!(written.token.unwrap().secret(), "new-access");
        assert_eq!(
            written.refresh_token.unwrap().secret(),
            "1//0g-example-refresh-token"
        );
        assert_eq!(
            written.extra.get("universe_domain"),
            Some(&Value::from("googleapis.com"))
        );
    }

    #[tokio::test]
    async fn a_new_refresh_token_from_google_replaces_the_old_one() {
        let store = store_with(&stored("2026-11-23T11:00:00Z"));
        let oauth = ScriptedRefresher::new(vec![grant("new-access", Some("1//new-refresh"))]);
        run_accepting(&store, &oauth, "new-access").await.unwrap();
        let written = StoredToken::from_json(&store.value("/t/token").unwrap()).unwrap();
        assert_eq!(written.refresh_token.unwrap().secret(), "1//new-refresh");
    }

    #[tokio::test]
    async fn invalid_grant_requires_reauthorization_and_leaves_the_token_untouched() {
        let original = stored("2026-11-23T11:00:00Z");
        let store = store_with(&original);
        let oauth = ScriptedRefresher::new(vec![Err(OAuthError::InvalidGrant)]);
        let error = run_accepting(&store, &oauth, "x").await.unwrap_err();
        assert_eq!(error.error_type(), "ReauthorizationRequired");
        assert!(error.to_string().contains("https://x.example/authorize"));
        assert!(store.writes().is_empty());
        assert_eq!(store.value("/t/token").unwrap(), original);
    }

    #[tokio::test]
    async fn a_401_refreshes_once_and_retries() {
        let store = store_with(&stored("2026-11-23T12:30:00Z"));
        let oauth = ScriptedRefresher::new(vec![grant("second-access", None)]);
        let summary = run_accepting(&store, &oauth, "second-access")
            .await
            .unwrap();
        assert!(summary.token_refreshed);
        assert_eq!(oauth.remaining(), 0);
        assert_eq!(store.writes().len(), 1);
    }

    #[tokio::test]
    async fn a_401_after_the_refresh_requires_reauthorization() {
        let store = store_with(&stored("2026-11-23T12:30:00Z"));
        let oauth = ScriptedRefresher::new(vec![grant("still-refused", None)]);
        let error = run_accepting(&store, &oauth, "nothing").await.unwrap_err();
        assert_eq!(error.error_type(), "ReauthorizationRequired");
        assert!(error.to_string().contains("401"), "{error}");
        let written = StoredToken::from_json(&store.value("/t/token").unwrap()).unwrap();
        assert_eq!(
            written.refresh_token.unwrap().secret(),
            "1//0g-example-refresh-token"
        );
    }

    #[tokio::test]
    async fn missing_or_broken_parameters_are_typed_errors() {
        let store = MemoryStore::with(&[("/t/secrets", SECRETS)]);
        let oauth = ScriptedRefresher::new(vec![]);
        let error = run_accepting(&store, &oauth, "x").await.unwrap_err();
        assert_eq!(error.error_type(), "TokenNotFound");
        assert!(error.to_string().contains("/t/token"));

        let store = MemoryStore::with(&[("/t/token", TOKEN)]);
        let error = run_accepting(&store, &oauth, "x").await.unwrap_err();
        assert_eq!(error.error_type(), "InvalidConfiguration");
        assert!(error.to_string().contains("/t/secrets"));

        let store = store_with("{not json");
        let error = run_accepting(&store, &oauth, "x").await.unwrap_err();
        assert_eq!(error.error_type(), "InvalidConfiguration");
        assert!(error.to_string().contains("/t/token"));
        assert_eq!(store.value("/t/token").unwrap(), "{not json");
    }

    /// A consent that stores its token while the refresh is in flight at Google.
    struct ConsentDuringRefresh<'a> {
        store: &'a MemoryStore,
        consent: String,
    }

    impl Refresher for ConsentDuringRefresh<'_> {
        async fn refresh(&self, _: &TokenClient, _: &RefreshToken) -> Result<Grant, OAuthError> {
            self.store
                .put_secret("/t/token", &self.consent)
                .await
                .unwrap();
            grant("stale-access", None)
        }
    }

    fn consent_token() -> String {
        let mut token = StoredToken::from_json(&stored("2026-11-23T13:00:00Z")).unwrap();
        token.refresh_token = Some(RefreshToken::new("1//from-the-new-consent".into()));
        token.to_json().unwrap()
    }

    #[tokio::test]
    async fn a_consent_during_the_refresh_is_not_overwritten() {
        let store = store_with(&stored("2026-11-23T11:00:00Z"));
        let consent = consent_token();
        let oauth = ConsentDuringRefresh {
            store: &store,
            consent: consent.clone(),
        };
        run_accepting(&store, &oauth, "stale-access").await.unwrap();
        assert_eq!(store.value("/t/token").unwrap(), consent);
        assert_eq!(store.writes(), ["/t/token"], "only the consent wrote");
    }

    /// A store where a consent's write lands between the refresh's re-check and its write.
    struct ConsentBeforeNextWrite {
        inner: MemoryStore,
        consent: Mutex<Option<String>>,
    }

    impl TokenStore for ConsentBeforeNextWrite {
        async fn get_many(&self, names: &[&str]) -> Result<Vec<Option<Parameter>>, StoreError> {
            self.inner.get_many(names).await
        }
        async fn put_secret(&self, name: &str, value: &str) -> Result<i64, StoreError> {
            let consent = self.consent.lock().unwrap().take();
            if let Some(consent) = consent {
                self.inner.put_secret(name, &consent).await?;
            }
            self.inner.put_secret(name, value).await
        }
        async fn get_version(
            &self,
            name: &str,
            version: i64,
        ) -> Result<Option<Parameter>, StoreError> {
            self.inner.get_version(name, version).await
        }
        async fn delete(&self, name: &str) -> Result<bool, StoreError> {
            self.inner.delete(name).await
        }
    }

    #[tokio::test]
    async fn a_consent_between_check_and_write_is_put_back_on_top() {
        let consent = consent_token();
        let store = ConsentBeforeNextWrite {
            inner: store_with(&stored("2026-11-23T11:00:00Z")),
            consent: Mutex::new(Some(consent.clone())),
        };
        let oauth = ScriptedRefresher::new(vec![grant("new-access", None)]);
        run_accepting(&store, &oauth, "new-access").await.unwrap();
        assert_eq!(store.inner.value("/t/token").unwrap(), consent);
        // consent (v2), the refresh (v3), the consent restored (v4).
        assert_eq!(store.inner.writes().len(), 3);
    }

    #[test]
    fn allowed_accounts_match_addresses_and_domains_case_insensitively() {
        let allowed = AllowedAccounts::parse(" Me@Example.com , @corp.example ,");
        assert!(allowed.allows("me@example.com"));
        assert!(allowed.allows("ME@EXAMPLE.COM"));
        assert!(allowed.allows("anyone@Corp.Example"));
        assert!(!allowed.allows("you@example.com"));
        assert!(!allowed.allows("x@evilcorp.example"));
        assert!(!allowed.allows("x@sub.corp.example"));
        assert!(!AllowedAccounts::parse("").allows("me@example.com"));
        assert!(AllowedAccounts::parse(" , ").is_empty());
    }

    #[test]
    fn a_token_from_another_client_is_refreshed_with_its_own_credentials() {
        let secrets = ClientSecrets::from_json(SECRETS).unwrap();
        let mut token = StoredToken::from_json(TOKEN).unwrap();
        assert_eq!(
            refresh_client(&secrets, &token).client_id.as_str(),
            secrets.client_id.as_str()
        );
        token.client_id = Some("other-client".into());
        token.token_uri = Some("https://oauth2.googleapis.com/token".into());
        assert_eq!(
            refresh_client(&secrets, &token).client_id.as_str(),
            "other-client"
        );
    }
}
