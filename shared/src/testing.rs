//! In-memory stand-ins for the ports, for the use cases' unit tests: a scripted token
//! endpoint, a mailbox that accepts one access token, and a repository over the in-memory
//! Parameter Store (the real protocol). Integration tests use moto and the fake Google.

use crate::client_secrets::ClientSecrets;
use crate::gmail::{
    GmailError, History, HistoryRecord, Mailbox, MessageRef, MessageSummary, Metadata, Profile,
};
use crate::oauth::{CodeExchanger, Grant, OAuthError, Refresher, TokenClient};
use crate::store::{Layout, MemoryParameters, ParameterRepository};
use crate::token::{StoredToken, expiry_format};
use chrono::{DateTime, Utc};
use oauth2::{AccessToken, AuthorizationCode, PkceCodeVerifier, RedirectUrl, RefreshToken};
use std::sync::Mutex;
use std::time::Duration;

pub const SECRETS_PARAM: &str = "/t/secrets";
pub const TOKEN_PARAM: &str = "/t/token";
pub const PATH: &str = "/t/mailboxes/";

pub fn now() -> DateTime<Utc> {
    expiry_format::parse("2026-11-23T12:00:00Z").unwrap_or_default()
}

pub fn secrets() -> ClientSecrets {
    ClientSecrets::from_json(crate::fixtures::CLIENT_SECRETS_WEB).expect("fixture")
}

/// The google-auth fixture for `account`, its access token `access` expiring at `expiry`.
pub fn token(account: &str, access: &str, refresh: &str, expiry: &str) -> StoredToken {
    let mut token = StoredToken::from_json(crate::fixtures::TOKEN_AFTER_CONSENT).expect("fixture");
    token.account = Some(account.into());
    token.token = Some(AccessToken::new(access.into()));
    token.refresh_token = Some(RefreshToken::new(refresh.into()));
    token.expiry = expiry_format::parse(expiry);
    token
}

pub fn json(token: &StoredToken) -> String {
    token.to_json().expect("token JSON")
}

/// One token in `TOKEN_PARAM`, with the client secrets.
pub fn single(token: &StoredToken) -> ParameterRepository<MemoryParameters> {
    ParameterRepository::new(
        MemoryParameters::with(&[
            (SECRETS_PARAM, crate::fixtures::CLIENT_SECRETS_WEB),
            (TOKEN_PARAM, &json(token)),
        ]),
        SECRETS_PARAM,
        Layout::Single {
            token_param: TOKEN_PARAM.into(),
        },
    )
}

/// Many mailboxes under `PATH`: `(parameter name, value)`.
pub fn many(parameters: &[(&str, &str)]) -> ParameterRepository<MemoryParameters> {
    let store = MemoryParameters::with(&[(SECRETS_PARAM, crate::fixtures::CLIENT_SECRETS_WEB)]);
    for (name, value) in parameters {
        store.put_directly(name, value);
    }
    ParameterRepository::new(store, SECRETS_PARAM, Layout::Many { path: PATH.into() })
}

pub fn grant(access: &str, refresh: Option<&str>) -> Result<Grant, OAuthError> {
    Ok(Grant {
        access_token: AccessToken::new(access.into()),
        refresh_token: refresh.map(|r| RefreshToken::new(r.into())),
        expires_in: Some(Duration::from_secs(3599)),
        scopes: None,
    })
}

/// A scripted answer: for which refresh token (`None`: any), and what.
type Answer = (Option<String>, Result<Grant, OAuthError>);

/// Answers refreshes from a script (by refresh token, or in order) and counts them.
pub struct ScriptedRefresher {
    answers: Mutex<Vec<Answer>>,
    pub calls: Mutex<Vec<String>>,
}

impl ScriptedRefresher {
    pub fn new(answers: Vec<Result<Grant, OAuthError>>) -> Self {
        Self::by_token(answers.into_iter().map(|a| (None, a)).collect())
    }

    /// Each answer is for one refresh token (`None`: any).
    pub fn by_token(answers: Vec<(Option<&str>, Result<Grant, OAuthError>)>) -> Self {
        ScriptedRefresher {
            answers: Mutex::new(
                answers
                    .into_iter()
                    .map(|(t, a)| (t.map(str::to_owned), a))
                    .collect(),
            ),
            calls: Mutex::new(Vec::new()),
        }
    }

    pub fn remaining(&self) -> usize {
        self.answers.lock().map(|a| a.len()).unwrap_or_default()
    }
}

impl Refresher for ScriptedRefresher {
    async fn refresh(&self, _: &TokenClient, token: &RefreshToken) -> Result<Grant, OAuthError> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(token.secret().clone());
        }
        let mut answers = self
            .answers
            .lock()
            .map_err(|_| OAuthError::Rejected("poisoned".into()))?;
        let index = answers
            .iter()
            .position(|(t, _)| t.as_deref().is_none_or(|t| t == token.secret()))
            .ok_or(OAuthError::InvalidGrant)?;
        answers.remove(index).1
    }
}

/// A mailbox of `account` with two messages that accepts only `valid_token`, and can
/// refuse once.
pub struct FakeMailbox {
    pub account: String,
    pub valid_token: Mutex<String>,
    pub unauthorized_once: Mutex<bool>,
    /// The mailbox's history, for the events.
    pub history: Mutex<FakeHistory>,
}

/// Messages added, one history record each; ids below `floor` are no longer kept.
#[derive(Debug, Default)]
pub struct FakeHistory {
    pub current: u64,
    pub floor: u64,
    /// (history id, message id), in order.
    pub added: Vec<(u64, String)>,
    pub deleted: Vec<String>,
    pub history_calls: usize,
    pub get_calls: usize,
}

impl FakeHistory {
    /// A message arrives: a new history record.
    pub fn deliver(&mut self, id: &str) {
        self.current += 1;
        self.added.push((self.current, id.to_owned()));
    }
}

impl FakeMailbox {
    pub fn accepting(token: &str) -> Self {
        FakeMailbox {
            account: "me@example.com".into(),
            valid_token: Mutex::new(token.into()),
            unauthorized_once: Mutex::new(false),
            history: Mutex::new(FakeHistory {
                current: 100,
                ..FakeHistory::default()
            }),
        }
    }

    fn check(&self, token: &AccessToken) -> Result<(), GmailError> {
        let mut once = self
            .unauthorized_once
            .lock()
            .map_err(|_| GmailError::Unauthorized)?;
        if *once {
            *once = false;
            return Err(GmailError::Unauthorized);
        }
        let valid = self
            .valid_token
            .lock()
            .map_err(|_| GmailError::Unauthorized)?;
        if *valid == "*" || token.secret() == &*valid {
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
            email_address: self.account.clone(),
            history_id: self.mail().current.to_string(),
        })
    }

    async fn list_messages(
        &self,
        token: &AccessToken,
        _: &str,
        label: Option<&str>,
        max: usize,
    ) -> Result<Vec<MessageRef>, GmailError> {
        self.check(token)?;
        if label.is_some() {
            // Every message delivered, newest first.
            return Ok(self
                .mail()
                .added
                .iter()
                .rev()
                .take(max)
                .map(|(_, id)| MessageRef {
                    id: id.clone(),
                    thread_id: id.clone(),
                })
                .collect());
        }
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

    async fn history(
        &self,
        token: &AccessToken,
        start: u64,
        _label: &str,
    ) -> Result<History, GmailError> {
        self.check(token)?;
        let mut mail = self.mail();
        mail.history_calls += 1;
        if start < mail.floor {
            return Err(GmailError::Rejected {
                call: "users.history.list",
                status: 404,
                reason: Some("NOT_FOUND".into()),
            });
        }
        Ok(History {
            records: mail
                .added
                .iter()
                .filter(|(h, _)| *h > start)
                .map(|(h, id)| HistoryRecord {
                    id: *h,
                    messages: vec![id.clone()],
                })
                .collect(),
            current: mail.current,
        })
    }

    async fn metadata(
        &self,
        token: &AccessToken,
        ids: &[String],
    ) -> Result<Vec<Option<Metadata>>, GmailError> {
        self.check(token)?;
        let mut mail = self.mail();
        mail.get_calls += ids.len();
        Ok(ids
            .iter()
            .map(|id| {
                let history = mail.added.iter().find(|(_, m)| m == id)?.0;
                (!mail.deleted.contains(id)).then(|| Metadata {
                    id: id.clone(),
                    thread_id: id.clone(),
                    history_id: history.to_string(),
                    label_ids: vec!["INBOX".into()],
                    from: "a@example.org".into(),
                    to: self.account.clone(),
                    subject: format!("message {id}"),
                    date: String::new(),
                    internal_date: chrono::DateTime::from_timestamp(
                        1_795_000_000 + history as i64,
                        0,
                    ),
                    snippet: String::new(),
                    size_estimate: 1,
                })
            })
            .collect())
    }
}

impl FakeMailbox {
    pub fn mail(&self) -> std::sync::MutexGuard<'_, FakeHistory> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A token endpoint answering code exchanges from a script.
pub struct ScriptedExchanger(pub Mutex<Vec<Result<Grant, OAuthError>>>);

impl CodeExchanger for ScriptedExchanger {
    async fn exchange_code(
        &self,
        _: &ClientSecrets,
        _: AuthorizationCode,
        _: PkceCodeVerifier,
        _: &RedirectUrl,
    ) -> Result<Grant, OAuthError> {
        let mut answers = self
            .0
            .lock()
            .map_err(|_| OAuthError::Rejected("poisoned".into()))?;
        if answers.is_empty() {
            return Err(OAuthError::InvalidGrant);
        }
        answers.remove(0)
    }
}
