//! Keep a Gmail mailbox connected from AWS Lambda.
//!
//! Google lets a server read a user's Gmail only with OAuth 2.0. This crate holds the whole
//! auth core shared by the two Lambda functions:
//!
//! - **Link an account** (the callback): `/authorize` builds Google's consent URL with a
//!   fresh state and PKCE verifier ([`oauth::GoogleOAuth::authorization_request`]) sealed
//!   into a cookie ([`flow_cookie`]); `/callback` opens the cookie, checks the state, and
//!   [`lifecycle::link_account`] redeems the code, checks scopes and the allow-list, and
//!   stores the token.
//! - **Keep it fresh and use it** (the schedule): [`lifecycle::refresh_and_read_mail`]
//!   reads the token, refreshes it when it expires within five minutes, writes it back only
//!   if it changed, and lists messages; a revoked grant becomes
//!   [`Error::ReauthorizationRequired`] and the stored token stays as it was.
//!
//! Tokens are stored in google-auth's JSON ([`token::StoredToken`]), so the Python library
//! `pythonic_gmail` reads what this crate writes and the other way round.
//!
//! ```no_run
//! # async fn run() -> Result<(), gmail_oauth::Error> {
//! use gmail_oauth::{gmail::GmailClient, lifecycle, oauth, retry::RetryPolicy, store::SsmStore};
//! let http = oauth::http_client().map_err(|e| gmail_oauth::Error::InvalidConfiguration(e.to_string()))?;
//! let store = SsmStore::from_env(None).await;
//! let google = oauth::GoogleOAuth::new(http.clone());
//! let gmail = GmailClient::new(http, "https://gmail.googleapis.com".parse().unwrap(), RetryPolicy::default());
//! let settings = lifecycle::RunSettings {
//!     client_secrets_param: "/gmail-oauth/client-secrets".into(),
//!     token_param: "/gmail-oauth/token".into(),
//!     query: "in:inbox is:unread".into(),
//!     max_messages: 25,
//!     authorize_url: None,
//! };
//! let summary = lifecycle::refresh_and_read_mail(&store, &google, &gmail, &settings, chrono::Utc::now()).await?;
//! println!("{} unread", summary.message_count);
//! # Ok(()) }
//! ```

pub mod client_secrets;
pub mod config;
pub mod deadline;
pub mod error;
#[cfg(test)]
mod fixtures;
pub mod flow_cookie;
pub mod gmail;
pub mod grant_keeping;
pub mod lifecycle;
pub mod logging;
pub mod oauth;
pub mod retry;
pub mod store;
pub mod token;

pub use error::Error;
pub use oauth2;
