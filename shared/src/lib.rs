//! Keep Gmail mailboxes connected from AWS Lambda.
//!
//! Google lets a server read a user's Gmail only with OAuth 2.0. This crate holds the whole
//! auth core shared by the Lambda functions and the `gmail-oauth` CLI:
//!
//! - **Link an account** (the callback): `/authorize` builds Google's consent URL with a
//!   fresh state and PKCE verifier ([`oauth::GoogleOAuth::authorization_request`]) sealed
//!   into a cookie ([`flow_cookie`]); `/callback` opens the cookie, checks the state, and
//!   [`link::link_account`] redeems the code, checks scopes and the allow-list, and stores
//!   the token where the consenting account's mailbox lives.
//! - **Keep them fresh and use them** (the schedule): [`run::run_one`] (one token) and
//!   [`run::run_many`] (one per mailbox under a path) read the tokens, refresh those that
//!   expire within five minutes ([`keep::Keeper`]), read mail, and write back only what
//!   changed, with the [`grant_keeping`] protocol so that a consent during the run is never
//!   buried under an older grant; a revoked grant becomes
//!   [`Error::ReauthorizationRequired`] and the stored token stays as it was.
//!
//! Tokens are stored in google-auth's JSON ([`token::StoredToken`]), so the Python library
//! `pythonic_gmail` reads what this crate writes and the other way round. Where they are
//! stored is the [`store::TokenRepository`] port: SSM Parameter Store
//! ([`store::ParameterRepository`] over [`store::SsmParameters`]) or a local file
//! ([`store::FileRepository`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), gmail_oauth::Error> {
//! use gmail_oauth::{gmail::GmailClient, keep::MailboxSettings, oauth, retry::RetryPolicy};
//! use gmail_oauth::run::{self, RunSettings};
//! use gmail_oauth::store::{Layout, ParameterRepository, SsmParameters, SsmTuning};
//! let http = oauth::http_client().map_err(|e| gmail_oauth::Error::invalid_because("HTTP client", e))?;
//! let repo = ParameterRepository::new(
//!     SsmParameters::from_env(None, SsmTuning::default()).await,
//!     "/gmail-oauth/client-secrets",
//!     Layout::Single { token_param: "/gmail-oauth/token".into() },
//! );
//! let google = oauth::GoogleOAuth::new(http.clone());
//! let endpoint = "https://gmail.googleapis.com".parse().expect("a URL");
//! let gmail = GmailClient::new(http, endpoint, RetryPolicy::default());
//! let settings = RunSettings {
//!     mailbox: MailboxSettings { query: "in:inbox is:unread".into(), max_messages: 25, authorize_url: None, events: None },
//!     concurrency: 8,
//!     write_interval: std::time::Duration::from_millis(500),
//! };
//! let bus = gmail_oauth::events::NoBus;
//! let summary = run::run_one(&repo, &google, &gmail, &bus, &settings, chrono::Utc::now(), None).await?;
//! println!("{} unread", summary.message_count);
//! # Ok(()) }
//! ```

pub mod allow;
pub mod client_secrets;
pub mod config;
pub mod deadline;
pub mod error;
pub mod eventbridge;
pub mod events;
#[cfg(test)]
mod fixtures;
pub mod flow_cookie;
pub mod gmail;
pub mod grant_keeping;
pub mod keep;
pub mod link;
pub mod logging;
pub mod mailbox;
pub mod oauth;
pub mod pacing;
pub mod retry;
pub mod run;
pub mod store;
pub mod sync;
#[cfg(test)]
mod testing;
pub mod token;

pub use error::Error;
pub use oauth2;
