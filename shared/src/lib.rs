//! Keep Gmail mailboxes connected from AWS Lambda.
//!
//! # Your code, one call
//!
//! A mailbox someone linked (through the deployed `/authorize`, `gmail-oauth login`, or
//! `pythonic_gmail`) is one call away from an authorized Gmail client:
//!
//! ```no_run
//! # async fn example() -> Result<(), gmail_oauth::Error> {
//! // TOKEN_PARAM / CLIENT_SECRETS_PARAM (or MAILBOXES_PATH and an address), as deployed.
//! let gmail = gmail_oauth::AuthorizedGmail::from_env(None).await?;
//! for message in gmail.list("in:inbox is:unread", 10).await? {
//!     gmail.modify_labels(&message.id, &["Label_7"], &["UNREAD"]).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! [`AuthorizedGmail`] reads the token once and keeps it in memory (a warm Lambda
//! invocation makes no Parameter Store call), refreshes it only when it expires within five
//! minutes and writes it back without ever burying a newer consent, and never opens a
//! browser: a grant Google refused is [`Error::ReauthorizationRequired`]. Locally,
//! `AuthorizedGmail::from_files(token, client_secrets)` does the same over files (Unix).
//! `examples/label-new-mail` in the repository is a whole Lambda built on it.
//!
//! # The parts
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
//!   expire within five minutes ([`keep::Keeper`]), read mail or publish new mail as events
//!   ([`sync`]), and write back only what changed, with the [`grant_keeping`] protocol so
//!   that a consent during the run is never buried under an older grant; a revoked grant
//!   becomes [`Error::ReauthorizationRequired`] and the stored token stays as it was.
//!
//! Tokens are stored in google-auth's JSON ([`token::StoredToken`]), so the Python library
//! `pythonic_gmail` reads what this crate writes and the other way round. Where they are
//! stored is the [`store::TokenRepository`] port: SSM Parameter Store
//! ([`store::ParameterRepository`] over [`store::SsmParameters`]) or, on Unix, a local file
//! (`store::FileRepository`, mode 0600).

pub mod allow;
pub mod authorized;
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
pub mod json;
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

pub use authorized::AuthorizedGmail;
pub use error::Error;
pub use oauth2;
