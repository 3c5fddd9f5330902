//! Keeping one mailbox: refresh the access token when it expires within five minutes, use
//! it, and write it back only if it changed, never over a newer grant.
//!
//! The one rule never broken: the stored grant is only ever replaced by a newer one. A
//! failed refresh, a revoked grant or a failed Gmail call leaves it as it was; a refreshed
//! token is kept even when Gmail then fails.

use crate::client_secrets::{ClientSecrets, endpoint_url};
use crate::deadline::{Deadline, within};
use crate::error::{Chain, Error};
use crate::events::EventBus;
use crate::gmail::{GmailError, Mailbox, MessageSummary};
use crate::oauth::{Grant, OAuthError, Refresher, TokenClient};
use crate::store::{Settled, Stored, TokenRepository, checkpoint_name};
use crate::sync::{Checkpoint, EventSettings, SyncError, Synced, sync};
use crate::token::StoredToken;
use chrono::{DateTime, TimeDelta, Utc};
use oauth2::ClientId;

/// What a run does with each mailbox besides keeping its token.
#[derive(Debug, Clone)]
pub struct MailboxSettings {
    /// Gmail search query of the summary.
    pub query: String,
    pub max_messages: usize,
    /// The deployed `/authorize` URL, quoted when someone has to consent again.
    pub authorize_url: Option<String>,
    /// New mail as events (`EVENT_BUS_NAME` set): replaces the summary's search.
    pub events: Option<EventSettings>,
}

/// The clients and settings keeping a mailbox needs, and the client secrets read with it.
pub struct Keeper<'a, R, O, G, B> {
    pub repo: &'a R,
    pub oauth: &'a O,
    pub gmail: &'a G,
    /// Where events go (used only with `settings.events`).
    pub bus: &'a B,
    pub secrets: &'a ClientSecrets,
    pub settings: &'a MailboxSettings,
}

/// A mailbox after its turn.
#[derive(Debug, Clone)]
pub struct Kept {
    /// The token now in use (refreshed or not).
    pub token: StoredToken,
    pub refreshed: bool,
    /// The summary's messages (without events).
    pub messages: Vec<MessageSummary>,
    /// What the events sync did (with events).
    pub synced: Option<Synced>,
    /// How the write-back ended, when there was one.
    pub saved: Option<Settled>,
}

/// What using the token produced.
#[derive(Debug, Clone)]
enum Work {
    Summaries(Vec<MessageSummary>),
    Synced(Synced),
}

/// Why reading the mail failed: Gmail (a 401 is worth one refresh), or anything else.
enum ReadError {
    Gmail(GmailError),
    Other(Error),
}

impl From<GmailError> for ReadError {
    fn from(error: GmailError) -> Self {
        ReadError::Gmail(error)
    }
}

/// The longest access-token lifetime believed. Google's access tokens live 3,599 s; a token
/// endpoint that answers more (a proxy's mistake, a hostile answer, `10000000000000`) is
/// taken at this word, so the token is refreshed early instead of trusted for years, and no
/// date arithmetic can overflow.
pub const MAX_ACCESS_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(86_400);

impl<R, O, G, B> Keeper<'_, R, O, G, B>
where
    R: TokenRepository,
    O: Refresher,
    G: Mailbox,
    B: EventBus,
{
    /// One mailbox's turn: refresh if expiring, read mail (refreshing once more on a 401),
    /// write back if changed. Google and Gmail get the time up to the deadline's save
    /// reserve; the write is only started with its reserve still ahead.
    pub async fn keep(
        &self,
        stored: Stored,
        now: DateTime<Utc>,
        deadline: Option<Deadline>,
    ) -> Result<Kept, Error> {
        let mut session = Session::of(stored);
        let label = session.stored.label();
        let work_until = deadline.map(|d| d.work_until());
        let out_of_time =
            || Error::out_of_time(format!("Google or Gmail did not answer for {label}"));
        let refreshed = if session.token.expires_within_margin(now) {
            within(work_until, self.refresh(&mut session, now))
                .await
                .unwrap_or_else(|| Err(out_of_time()))
        } else {
            Ok(())
        };
        let mut saved = None;
        let mut save_error = None;
        // The token the parameter was last written with (or read with): what a write-back
        // after the mail compares with.
        let mut written = session.stored.token.clone();
        let outcome = match refreshed {
            Err(error) => Err(error),
            // A refreshed token of a known mailbox is written back while the mail is read:
            // its write and check are off the critical path. (Its save is bounded by the
            // deadline itself, not cut with the work.)
            Ok(()) if session.refreshed && session.token.account().is_some() => {
                let snapshot = session.snapshot();
                let reading = within(work_until, self.read_with_retry(&mut session, now));
                let (stored, read) = futures_util::join!(self.save(&snapshot, deadline), reading);
                match stored {
                    Ok(settled) => saved = Some(settled),
                    Err(error) => save_error = Some(error),
                }
                written = snapshot.token;
                read.unwrap_or_else(|| Err(out_of_time()))
            }
            Ok(()) => within(work_until, self.read_with_retry(&mut session, now))
                .await
                .unwrap_or_else(|| Err(out_of_time())),
        };
        // A refreshed token is kept even when Gmail then fails (a 401 after the refresh
        // included: a new refresh token that came with it replaces the old one); only a
        // grant Google refuses leaves the parameter exactly as it was.
        if save_error.is_none() && !session.grant_refused && !session.token.same_as(&written) {
            match self.save(&session, deadline).await {
                Ok(settled) => saved = Some(settled),
                Err(error) => save_error = Some(error),
            }
        }
        match save_error {
            Some(error) if outcome.is_ok() => return Err(error),
            Some(error) => {
                tracing::error!(error = %Chain(&error), "storing the refreshed token failed too")
            }
            None => {}
        }
        let (messages, synced) = match outcome? {
            Work::Summaries(messages) => (messages, None),
            Work::Synced(synced) => (Vec::new(), Some(synced)),
        };
        Ok(Kept {
            token: session.token,
            refreshed: session.refreshed,
            messages,
            synced,
            saved,
        })
    }

    /// Refreshes `stored`'s access token now and writes it back under the grant-keeping
    /// rule, reading no mail: for a client of the crate whose token is expiring, or was
    /// refused with a 401. Returns the token in use (a newer grant a stopped save left
    /// hidden is found and used, as in a run) and how the write ended.
    pub async fn refresh_now(
        &self,
        stored: Stored,
        now: DateTime<Utc>,
    ) -> Result<(StoredToken, Settled), Error> {
        let mut session = Session::of(stored);
        self.refresh(&mut session, now).await?;
        let settled = self.save(&session, None).await?;
        Ok((session.token, settled))
    }

    async fn save(&self, session: &Session, deadline: Option<Deadline>) -> Result<Settled, Error> {
        let label = session.stored.label();
        // A save must not stop between its write and its check (docs/interface.md): the
        // store starts the write only while its reserve is still ahead (once the write quota
        // has given it its turn), a repair only while half of it is, and the whole save ends
        // by the deadline.
        let saving = self.repo.save(&session.stored, &session.token, deadline);
        let settled = within(deadline.map(|d| d.at), saving)
            .await
            .unwrap_or(Ok(Settled::Unfinished))
            .map_err(|e| Error::upstream(format!("storing the refreshed token of {label}"), e))?;
        match settled {
            Settled::Stored => tracing::info!(mailbox = %label, "stored the refreshed token"),
            Settled::Superseded => {
                tracing::warn!(mailbox = %label, "a newer grant was stored during this run (a new consent?); it is kept")
            }
            Settled::Healed => {
                tracing::warn!(mailbox = %label, "this run's write hid a newer grant (a consent during the run); it was put back on top")
            }
            Settled::Unlinked => {
                tracing::warn!(mailbox = %label, "the mailbox was unlinked during this run")
            }
            Settled::Recreated => {
                tracing::error!(mailbox = %label, "the mailbox was unlinked while this run stored its token, which wrote the revoked grant again; unlink it again")
            }
            Settled::GaveUp => {
                tracing::error!(mailbox = %label, "consents kept landing while this run repaired the token; the next run finishes the repair")
            }
            Settled::NotWritten => {
                tracing::warn!(mailbox = %label, "the refreshed token could not be stored (no time was left to store it safely, or the write failed); the stored grant is unchanged and the next run refreshes again")
            }
            Settled::Unfinished => {
                tracing::error!(mailbox = %label, "the check of the stored token did not settle before the deadline or its bound of steps; the next run checks again")
            }
        }
        Ok(settled)
    }

    /// Reads the mail with the token in use, refreshing once more if Gmail answers 401.
    async fn read_with_retry(
        &self,
        session: &mut Session,
        now: DateTime<Utc>,
    ) -> Result<Work, Error> {
        let label = session.stored.label();
        let reading =
            |error: GmailError| Error::upstream(format!("reading the mail of {label}"), error);
        match self.read_mail(session, now).await {
            Ok(work) => Ok(work),
            Err(ReadError::Other(error)) => Err(error),
            Err(ReadError::Gmail(GmailError::Unauthorized)) => {
                tracing::warn!(mailbox = %session.stored.label(), "Gmail rejected the access token; refreshing once and trying again");
                self.refresh(session, now).await?;
                match self.read_mail(session, now).await {
                    Ok(work) => Ok(work),
                    Err(ReadError::Other(error)) => Err(error),
                    Err(ReadError::Gmail(GmailError::Unauthorized)) => {
                        Err(self
                            .reauthorize(session, "Gmail still answers 401 after a token refresh"))
                    }
                    Err(ReadError::Gmail(other)) => Err(reading(other)),
                }
            }
            Err(ReadError::Gmail(other)) => Err(reading(other)),
        }
    }

    /// Refreshes the access token in memory. On `invalid_grant`, a newer grant that a
    /// stopped save may have left hidden is looked for (and put back) before giving up.
    async fn refresh(&self, session: &mut Session, now: DateTime<Utc>) -> Result<(), Error> {
        match self.refresh_grant(&session.token).await {
            Err(OAuthError::InvalidGrant) => {}
            Ok(grant) => {
                apply_grant(&mut session.token, grant, now);
                session.refreshed = true;
                return Ok(());
            }
            Err(error) => {
                return Err(Error::upstream(
                    format!("refreshing the access token of {}", session.stored.label()),
                    error,
                ));
            }
        }
        let newer = self.repo.check(&session.stored).await.map_err(|e| {
            Error::upstream(
                format!("checking the grant of {}", session.stored.label()),
                e,
            )
        })?;
        let Some(newer) = newer else {
            tracing::error!(mailbox = %session.stored.label(), "refresh token expired or revoked; stored token left as it was");
            session.grant_refused = true;
            return Err(self.reauthorize(session, "Google answered invalid_grant to the refresh"));
        };
        tracing::warn!(mailbox = %session.stored.label(), "the stored grant was an older one left by a stopped run; the newer grant was put back");
        let mut newer = newer;
        newer.checkpoint = session.stored.checkpoint.take();
        session.token = newer.token.clone();
        session.stored = newer;
        match self.refresh_grant(&session.token).await {
            Ok(grant) => {
                apply_grant(&mut session.token, grant, now);
                session.refreshed = true;
                Ok(())
            }
            Err(OAuthError::InvalidGrant) => {
                session.grant_refused = true;
                Err(self.reauthorize(session, "Google answered invalid_grant to the refresh"))
            }
            Err(error) => Err(Error::upstream(
                format!("refreshing the access token of {}", session.stored.label()),
                error,
            )),
        }
    }

    async fn refresh_grant(&self, token: &StoredToken) -> Result<Grant, OAuthError> {
        let Some(refresh_token) = token.refresh_token.clone() else {
            return Err(OAuthError::InvalidGrant);
        };
        self.oauth
            .refresh(&refresh_client(self.secrets, token), &refresh_token)
            .await
    }

    /// Lists and summarises the messages, or (with events) publishes what arrived since the
    /// checkpoint and stores the new checkpoint; learns the account address if the token
    /// lacks it.
    async fn read_mail(
        &self,
        session: &mut Session,
        now: DateTime<Utc>,
    ) -> Result<Work, ReadError> {
        let access = session
            .token
            .token
            .clone()
            .unwrap_or_else(|| oauth2::AccessToken::new(String::new()));
        if session.token.account().is_none() {
            // Tokens written by google-auth carry `"account": ""`.
            session.token.account = Some(self.gmail.profile(&access).await?.email_address);
        }
        let settings = self.settings;
        let Some(events) = &settings.events else {
            let ids = self
                .gmail
                .list_messages(&access, &settings.query, None, settings.max_messages)
                .await?;
            return Ok(Work::Summaries(self.gmail.summaries(&access, &ids).await?));
        };
        let stored = &session.stored;
        let label = stored.label();
        let account = match &stored.address {
            Some(address) => address.to_string(),
            None => session.token.account().unwrap_or_default().to_owned(),
        };
        let checkpoint = match stored.checkpoint.as_deref() {
            None => None,
            Some(raw) => {
                let (checkpoint, owner) = Checkpoint::from_json(raw, now).map_err(|problem| {
                    ReadError::Other(Error::invalid(format!(
                        "checkpoint parameter {} {problem}; delete it to publish from now on",
                        checkpoint_name(&stored.name)
                    )))
                })?;
                match owner {
                    // The one token, linked again by another account: that mailbox's
                    // history is not this one's.
                    Some(owner) if !owner.eq_ignore_ascii_case(&account) => {
                        tracing::warn!(mailbox = %label, "the events checkpoint belongs to another mailbox (the token was linked by another account); events of this one start from now");
                        None
                    }
                    _ => Some(checkpoint),
                }
            }
        };
        let synced = sync(
            self.gmail, self.bus, &access, &account, checkpoint, events, now,
        )
        .await
        .map_err(|error| match error {
            SyncError::Gmail(error) => ReadError::Gmail(error),
            SyncError::Publish(error) => ReadError::Other(Error::upstream(
                format!("publishing the new mail of {label}"),
                error,
            )),
        })?;
        if let Some(moved) = &synced.moved {
            self.repo
                .save_checkpoint(stored, &moved.to_json(&account))
                .await
                .map_err(|error| {
                    ReadError::Other(Error::upstream(
                        format!(
                            "storing the checkpoint of {label} ({} events published; they will be published again)",
                            synced.published
                        ),
                        error,
                    ))
                })?;
        }
        Ok(Work::Synced(synced))
    }

    fn reauthorize(&self, session: &Session, reason: &str) -> Error {
        let reason = match &session.stored.address {
            Some(address) => format!("{reason}, for {address}"),
            None => reason.to_owned(),
        };
        Error::ReauthorizationRequired {
            reason,
            authorize_url: self.settings.authorize_url.clone(),
        }
    }
}

/// A token in use during one turn, and the stored value it came from.
struct Session {
    stored: Stored,
    token: StoredToken,
    refreshed: bool,
    /// Google answered `invalid_grant`: nothing of this turn is written back.
    grant_refused: bool,
}

impl Session {
    /// The stored value and the token in use, to write back while the session goes on.
    fn snapshot(&self) -> Session {
        Session {
            stored: self.stored.clone(),
            token: self.token.clone(),
            refreshed: self.refreshed,
            grant_refused: false,
        }
    }

    fn of(stored: Stored) -> Session {
        Session {
            token: stored.token.clone(),
            stored,
            refreshed: false,
            grant_refused: false,
        }
    }
}

/// Which client identity refreshes a token: the configured client secrets, unless the
/// token was issued to another client (for example a `pythonic_gmail` desktop client), in
/// which case only that client's own credentials, kept in the token, can refresh it.
pub fn refresh_client(secrets: &ClientSecrets, token: &StoredToken) -> TokenClient {
    let configured = TokenClient::from(secrets);
    let (Some(id), Some(secret), Some(uri)) =
        (&token.client_id, &token.client_secret, &token.token_uri)
    else {
        return configured;
    };
    if id == configured.client_id.as_str() {
        return configured;
    }
    match endpoint_url(uri) {
        Ok(token_uri) => TokenClient {
            client_id: ClientId::new(id.clone()),
            client_secret: secret.clone(),
            token_uri,
        },
        Err(_) => configured,
    }
}

/// Folds a grant into a token, keeping the old refresh token when none came back.
pub fn apply_grant(token: &mut StoredToken, grant: Grant, now: DateTime<Utc>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Entry, MemoryParameters, ParameterRepository};
    use crate::testing::*;
    use serde_json::Value;

    fn settings() -> MailboxSettings {
        MailboxSettings {
            query: "in:inbox".into(),
            max_messages: 25,
            authorize_url: Some("https://x.example/authorize".into()),
            events: None,
        }
    }

    async fn stored(repo: &ParameterRepository<MemoryParameters>) -> Stored {
        match repo.load(None).await.unwrap() {
            Some(Entry::Token(stored)) => *stored,
            other => panic!("expected a token, got {other:?}"),
        }
    }

    /// One turn of the mailbox in `repo` at `now()`, against a mailbox accepting `access`.
    async fn turn(
        repo: &ParameterRepository<MemoryParameters>,
        oauth: &ScriptedRefresher,
        access: &str,
    ) -> Result<Kept, Error> {
        turn_from(repo, oauth, access, stored(repo).await).await
    }

    /// [`turn`] from a token read earlier (`stored`), not read again.
    async fn turn_from(
        repo: &ParameterRepository<MemoryParameters>,
        oauth: &ScriptedRefresher,
        access: &str,
        stored: Stored,
    ) -> Result<Kept, Error> {
        let secrets = secrets();
        let settings = settings();
        let keeper = Keeper {
            bus: &crate::events::NoBus,
            repo,
            oauth,
            gmail: &FakeMailbox::accepting(access),
            secrets: &secrets,
            settings: &settings,
        };
        keeper.keep(stored, now(), None).await
    }

    fn stored_json(repo: &ParameterRepository<MemoryParameters>) -> Value {
        serde_json::from_str(&repo.store().value(TOKEN_PARAM).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_valid_token_is_used_without_refresh_or_write() {
        let repo = single(&token(
            "me@example.com",
            "access",
            "1//r",
            "2026-11-23T12:30:00Z",
        ));
        let oauth = ScriptedRefresher::new(vec![]);
        let kept = turn(&repo, &oauth, "access").await.unwrap();
        assert!(!kept.refreshed);
        assert_eq!(kept.messages.len(), 2);
        assert_eq!(kept.saved, None);
        assert!(repo.store().writes().is_empty());
        assert_eq!(repo.store().reads(), 1, "the one read of the turn");
    }

    #[tokio::test]
    async fn an_expiring_token_is_refreshed_and_stored_with_one_write_and_one_check() {
        let repo = single(&token(
            "me@example.com",
            "old",
            "1//r",
            "2026-11-23T12:04:00Z",
        ));
        let reads_before = repo.store().reads();
        let oauth = ScriptedRefresher::new(vec![grant("new-access", None)]);
        let kept = turn(&repo, &oauth, "new-access").await.unwrap();
        assert!(kept.refreshed);
        assert_eq!(kept.saved, Some(Settled::Stored));
        // The budget without a race: the turn's read, one write, one verification call.
        assert_eq!(repo.store().reads() - reads_before, 2);
        assert_eq!(repo.store().writes().len(), 1);
        let written = stored_json(&repo);
        assert_eq!(written["token"], "new-access");
        assert_eq!(written["refresh_token"], "1//r");
        assert_eq!(written["expiry"], "2026-11-23T12:59:59Z");
        assert_eq!(written["universe_domain"], "googleapis.com");
        assert_eq!(written["gmail_oauth"]["written_by"], "refresh");
    }

    #[tokio::test]
    async fn a_new_refresh_token_from_google_replaces_the_old_one() {
        let repo = single(&token(
            "me@example.com",
            "old",
            "1//r",
            "2026-11-23T11:00:00Z",
        ));
        let oauth = ScriptedRefresher::new(vec![grant("new-access", Some("1//new-refresh"))]);
        turn(&repo, &oauth, "new-access").await.unwrap();
        assert_eq!(stored_json(&repo)["refresh_token"], "1//new-refresh");
    }

    #[tokio::test]
    async fn invalid_grant_requires_reauthorization_and_leaves_the_token_untouched() {
        let repo = single(&token(
            "me@example.com",
            "old",
            "1//r",
            "2026-11-23T11:00:00Z",
        ));
        let before = repo.store().value(TOKEN_PARAM);
        let oauth = ScriptedRefresher::new(vec![Err(OAuthError::InvalidGrant)]);
        let error = turn(&repo, &oauth, "x").await.unwrap_err();
        assert_eq!(error.error_type(), "ReauthorizationRequired");
        assert!(error.to_string().contains("https://x.example/authorize"));
        assert!(error.to_string().contains("me@example.com"), "{error}");
        assert_eq!(repo.store().value(TOKEN_PARAM), before);
    }

    #[tokio::test]
    async fn a_401_refreshes_once_and_retries_and_a_second_401_requires_reauthorization() {
        let repo = single(&token(
            "me@example.com",
            "old",
            "1//r",
            "2026-11-23T12:30:00Z",
        ));
        let oauth = ScriptedRefresher::new(vec![grant("second-access", None)]);
        let kept = turn(&repo, &oauth, "second-access").await.unwrap();
        assert!(kept.refreshed);
        assert_eq!(oauth.remaining(), 0);

        let repo = single(&token(
            "me@example.com",
            "old",
            "1//r",
            "2026-11-23T12:30:00Z",
        ));
        let oauth = ScriptedRefresher::new(vec![grant("still-refused", None)]);
        let error = turn(&repo, &oauth, "nothing").await.unwrap_err();
        assert_eq!(error.error_type(), "ReauthorizationRequired");
        assert!(error.to_string().contains("401"), "{error}");
        // The refreshed token is kept all the same (its grant is the stored one).
        assert_eq!(stored_json(&repo)["refresh_token"], "1//r");
    }

    #[tokio::test]
    async fn a_new_refresh_token_that_came_with_a_refresh_is_kept_when_gmail_still_answers_401() {
        let repo = single(&token(
            "me@example.com",
            "old",
            "1//r",
            "2026-11-23T12:30:00Z",
        ));
        let oauth = ScriptedRefresher::new(vec![grant("still-refused", Some("1//rotated"))]);
        let error = turn(&repo, &oauth, "nothing").await.unwrap_err();
        assert_eq!(error.error_type(), "ReauthorizationRequired");
        // Google issued a new refresh token: it replaces the old one, 401 or not.
        assert_eq!(stored_json(&repo)["refresh_token"], "1//rotated");
        assert_eq!(stored_json(&repo)["token"], "still-refused");
    }

    #[tokio::test]
    async fn a_consent_during_the_refresh_stays_on_top() {
        let repo = single(&token(
            "me@example.com",
            "old",
            "1//old",
            "2026-11-23T11:00:00Z",
        ));
        let stored = stored(&repo).await;
        // The consent lands while the refresh is at Google (simulated: before the turn's
        // write, after its read).
        let mut consent = token(
            "me@example.com",
            "consent-access",
            "1//consent",
            "2026-11-23T13:00:00Z",
        );
        consent.lineage = Some(crate::grant_keeping::Lineage::Consent);
        repo.store().put_directly(TOKEN_PARAM, &json(&consent));
        let oauth = ScriptedRefresher::new(vec![grant("stale-access", None)]);
        let kept = turn_from(&repo, &oauth, "stale-access", stored)
            .await
            .unwrap();
        assert_eq!(kept.saved, Some(Settled::Healed));
        assert_eq!(stored_json(&repo)["refresh_token"], "1//consent");
        assert_eq!(stored_json(&repo)["gmail_oauth"]["written_by"], "heal");
    }

    #[tokio::test]
    async fn a_lost_answer_to_the_write_is_checked_not_repeated() {
        let repo = single(&token(
            "me@example.com",
            "old",
            "1//r",
            "2026-11-23T11:00:00Z",
        ));
        repo.store().lose_next_answer("PutParameter");
        let oauth = ScriptedRefresher::new(vec![grant("new-access", None)]);
        let kept = turn(&repo, &oauth, "new-access").await.unwrap();
        assert_eq!(kept.saved, Some(Settled::Stored));
        assert_eq!(stored_json(&repo)["token"], "new-access");
        assert_eq!(repo.store().version(TOKEN_PARAM), Some(2));
    }

    #[tokio::test]
    async fn a_newer_grant_buried_by_a_stopped_run_is_used_when_google_refuses_the_older() {
        let repo = single(&token(
            "me@example.com",
            "old",
            "1//old",
            "2026-11-23T11:00:00Z",
        ));
        let mut consent = token("me@example.com", "c", "1//consent", "2026-11-23T11:00:00Z");
        consent.lineage = Some(crate::grant_keeping::Lineage::Consent);
        repo.store().put_directly(TOKEN_PARAM, &json(&consent));
        // A run that read version 1 wrote its refresh of the older grant on top and stopped.
        let mut stale = token("me@example.com", "stale", "1//old", "2026-11-23T11:00:00Z");
        stale.lineage = Some(crate::grant_keeping::Lineage::Refresh {
            origin: 1,
            since: 1,
        });
        repo.store().put_directly(TOKEN_PARAM, &json(&stale));
        let oauth = ScriptedRefresher::by_token(vec![
            (Some("1//old"), Err(OAuthError::InvalidGrant)),
            (Some("1//consent"), grant("fresh", None)),
        ]);
        let kept = turn(&repo, &oauth, "fresh").await.unwrap();
        assert!(kept.refreshed);
        assert_eq!(stored_json(&repo)["refresh_token"], "1//consent");
        assert_eq!(stored_json(&repo)["token"], "fresh");
    }

    /// The token of `single`, with the lineage of a value restored from elsewhere: a refresh
    /// from version 5, in a parameter at version 1.
    fn restored(refresh: &str) -> ParameterRepository<MemoryParameters> {
        let mut restored = token("me@example.com", "old", refresh, "2026-11-23T11:00:00Z");
        restored.lineage = Some(crate::grant_keeping::Lineage::Refresh {
            origin: 5,
            since: 5,
        });
        single(&restored)
    }

    #[tokio::test]
    async fn a_restored_token_naming_versions_the_parameter_never_had_is_stored_with_one_check() {
        let repo = restored("1//r");
        let reads_before = repo.store().reads();
        let oauth = ScriptedRefresher::new(vec![grant("new-access", None)]);
        let kept = turn(&repo, &oauth, "new-access").await.unwrap();
        assert_eq!(kept.saved, Some(Settled::Stored));
        // The turn's read, one write, one check: no lookup of versions that never existed.
        assert_eq!(repo.store().reads() - reads_before, 2);
        assert_eq!(repo.store().writes().len(), 1);
        let written = stored_json(&repo);
        assert_eq!(written["token"], "new-access");
        assert_eq!(written["gmail_oauth"]["origin"], 1);
        // The next turn starts from a plausible lineage: one check again.
        let oauth = ScriptedRefresher::new(vec![grant("newer-access", None)]);
        let mut expired = stored(&repo).await;
        expired.token.expiry = None;
        let reads_before = repo.store().reads();
        let kept = turn_from(&repo, &oauth, "newer-access", expired)
            .await
            .unwrap();
        assert_eq!(kept.saved, Some(Settled::Stored));
        assert_eq!(repo.store().reads() - reads_before, 1);
    }

    #[tokio::test]
    async fn a_revoked_grant_written_back_after_an_unlink_is_reported_for_reauthorization() {
        // A run's late write after an unlink re-created the parameter at version 1 with the
        // revoked grant of version 5: Google refuses it, the check ends, the mailbox needs
        // a consent (not an Upstream failure after a check that never ends).
        let repo = restored("1//revoked");
        let oauth = ScriptedRefresher::new(vec![Err(OAuthError::InvalidGrant)]);
        let error = turn(&repo, &oauth, "x").await.unwrap_err();
        assert_eq!(error.error_type(), "ReauthorizationRequired");
        assert!(repo.store().writes().is_empty());
        assert!(repo.store().reads() <= 3, "{} reads", repo.store().reads());
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_whose_turn_under_the_quota_comes_too_late_is_never_sent() {
        // Eight saves at once against one write a second: a 10 s deadline keeping 4 s for
        // the save lets a write start until 6.4 s; the eighth write's turn (7 s) is later.
        let mut parameters = Vec::new();
        for i in 0..8 {
            let account = format!("m{i}@example.com");
            let name = crate::mailbox::parameter_name(
                PATH,
                &crate::mailbox::Address::new(&account).unwrap(),
            )
            .unwrap();
            let value = json(&token(
                &account,
                "old",
                &format!("1//m{i}"),
                "2026-11-23T11:00:00Z",
            ));
            parameters.push((name, value));
        }
        let store = MemoryParameters::default().with_write_quota(1.0);
        for (name, value) in &parameters {
            store.put_directly(name, value);
        }
        let repo = ParameterRepository::new(
            store,
            SECRETS_PARAM,
            crate::store::Layout::Many { path: PATH.into() },
        );
        let deadline = Deadline::after(
            std::time::Duration::from_secs(10),
            std::time::Duration::from_secs(4),
        );
        let snapshot = repo.load_all().await.unwrap();
        let saves = snapshot.mailboxes.into_iter().map(|entry| {
            let repo = &repo;
            async move {
                let Entry::Token(stored) = entry else {
                    panic!("a token")
                };
                let mut fresh = stored.token.clone();
                fresh.token = Some(oauth2::AccessToken::new("fresh".into()));
                repo.save(&stored, &fresh, Some(deadline)).await.unwrap()
            }
        });
        let settled = futures_util::future::join_all(saves).await;
        let not_written = settled
            .iter()
            .filter(|s| **s == Settled::NotWritten)
            .count();
        assert_eq!(not_written, 1, "{settled:?}");
        assert_eq!(settled.iter().filter(|s| **s == Settled::Stored).count(), 7);
        for sent in repo.store().write_times() {
            assert!(
                sent <= deadline.write_by(),
                "a write started past its reserve"
            );
        }
    }

    #[test]
    fn a_token_from_another_client_is_refreshed_with_its_own_credentials() {
        let secrets = secrets();
        let mut token = token("me@example.com", "a", "1//r", "2026-11-23T12:00:00Z");
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

    #[test]
    fn an_absurd_lifetime_is_cut_to_a_day() {
        let mut token = token("me@example.com", "a", "1//r", "2026-11-23T12:00:00Z");
        let mut absurd = grant("b", None).unwrap();
        absurd.expires_in = Some(std::time::Duration::from_secs(10_000_000_000_000));
        apply_grant(&mut token, absurd, now());
        assert_eq!(
            token.expiry.map(|e| expiry_format_string(&e)),
            Some("2026-11-24T12:00:00Z".into())
        );
    }

    fn expiry_format_string(at: &DateTime<Utc>) -> String {
        crate::token::expiry_format::format(at)
    }
}
