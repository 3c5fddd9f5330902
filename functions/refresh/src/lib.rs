//! The scheduled function: keep the token fresh and read the mailbox (see `docs/interface.md`).
//!
//! `main` builds a [`Refresh`] once; [`Refresh::run`] handles one invocation and returns
//! the JSON summary, or an error whose Lambda `errorType` names what an operator must do.

use chrono::{DateTime, Utc};
use gmail_oauth::config::{self, CommonConfig, ConfigError};
use gmail_oauth::gmail::GmailClient;
use gmail_oauth::lifecycle::{self, Deadline, RunSettings, RunSummary};
use gmail_oauth::oauth::GoogleOAuth;
use gmail_oauth::retry::RetryPolicy;
use gmail_oauth::store::TokenStore;
use lambda_runtime::Diagnostic;

pub const DEFAULT_QUERY: &str = "in:inbox is:unread";
pub const DEFAULT_MAX_MESSAGES: usize = 25;

/// Settings read from the environment once, at start.
#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub run: RunSettings,
}

impl Config {
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_lookup(lookup)?;
        let max_messages = match config::var(lookup, "MAX_MESSAGES") {
            None => DEFAULT_MAX_MESSAGES,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=500).contains(n))
                .ok_or_else(|| ConfigError {
                    name: "MAX_MESSAGES",
                    problem: "must be a whole number from 1 to 500".into(),
                })?,
        };
        let run = RunSettings {
            client_secrets_param: common.client_secrets_param.clone(),
            token_param: common.token_param.clone(),
            query: config::var(lookup, "GMAIL_QUERY").unwrap_or_else(|| DEFAULT_QUERY.into()),
            max_messages,
            authorize_url: config::var(lookup, "AUTHORIZE_URL"),
        };
        Ok(Config { common, run })
    }
}

/// Time kept at the end of an invocation for storing a refreshed token (SSM write, re-check).
pub const SAVE_RESERVE: std::time::Duration = std::time::Duration::from_secs(5);
/// Time kept between the end of the work and the invocation's deadline, for the result (or
/// the typed error) to reach Lambda before it stops the function.
pub const RESPONSE_MARGIN: std::time::Duration = std::time::Duration::from_millis(250);

/// The invocation's deadline (milliseconds since the epoch, from the Lambda context) as an
/// instant of this process's clock.
pub fn deadline_from_context(deadline_ms: u64, now: DateTime<Utc>) -> Deadline {
    Deadline::from_lambda(deadline_ms, now, RESPONSE_MARGIN, SAVE_RESERVE)
}

/// A failed run, as Lambda reports it: `errorType` is one of the names in `docs/interface.md`.
#[derive(Debug)]
pub struct RunError(pub gmail_oauth::Error);

impl From<RunError> for Diagnostic {
    fn from(error: RunError) -> Self {
        Diagnostic {
            error_type: error.0.error_type().into(),
            error_message: error.0.to_string(),
        }
    }
}

/// Everything built once per process and reused by warm invocations.
pub struct Refresh<S> {
    pub config: Config,
    pub store: S,
    pub google: GoogleOAuth,
    pub gmail: GmailClient,
}

impl<S: TokenStore> Refresh<S> {
    pub fn new(config: Config, store: S, http: reqwest::Client) -> Self {
        let gmail = GmailClient::new(
            http.clone(),
            config.common.gmail_api_endpoint.clone(),
            RetryPolicy::default(),
        );
        Refresh {
            google: GoogleOAuth::new(http),
            gmail,
            store,
            config,
        }
    }

    /// One scheduled run. The event's content is not used: any JSON starts a run.
    pub async fn run(&self, now: DateTime<Utc>) -> Result<RunSummary, RunError> {
        self.run_until(now, None).await
    }

    /// One run that ends before `deadline` (the invocation's, from the Lambda context).
    pub async fn run_until(
        &self,
        now: DateTime<Utc>,
        deadline: Option<Deadline>,
    ) -> Result<RunSummary, RunError> {
        let result = lifecycle::refresh_and_read_mail_by(
            &self.store,
            &self.google,
            &self.gmail,
            &self.config.run,
            now,
            deadline,
        )
        .await;
        match result {
            Ok(summary) => {
                tracing::info!(
                    account = %summary.account,
                    token_refreshed = summary.token_refreshed,
                    expires_at = %summary.expires_at,
                    message_count = summary.message_count,
                    "run complete"
                );
                Ok(summary)
            }
            Err(error) => {
                tracing::error!(error_type = error.error_type(), %error, "run failed");
                Err(RunError(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        gmail_oauth::config::fixed_env(pairs)
    }

    #[test]
    fn defaults_follow_the_spec() {
        let config = Config::from_lookup(&lookup(&[])).unwrap();
        assert_eq!(config.run.query, "in:inbox is:unread");
        assert_eq!(config.run.max_messages, 25);
        assert_eq!(config.run.authorize_url, None);
    }

    #[test]
    fn max_messages_must_be_1_to_500() {
        for bad in ["0", "501", "-1", "ten", "2.5"] {
            let error = Config::from_lookup(&lookup(&[("MAX_MESSAGES", bad)])).unwrap_err();
            assert_eq!(error.name, "MAX_MESSAGES", "{bad}");
        }
        assert_eq!(
            Config::from_lookup(&lookup(&[("MAX_MESSAGES", "500")]))
                .unwrap()
                .run
                .max_messages,
            500
        );
    }

    #[test]
    fn errors_become_typed_lambda_diagnostics() {
        let diagnostic =
            Diagnostic::from(RunError(gmail_oauth::Error::Upstream("SSM down".into())));
        assert_eq!(diagnostic.error_type, "Upstream");
        assert_eq!(diagnostic.error_message, "SSM down");
    }
}
