//! The scheduled function: keep the tokens fresh and read the mailboxes (see
//! `docs/interface.md`).
//!
//! `main` builds a [`Refresh`] once; [`Refresh::run_until`] handles one invocation and
//! returns the JSON output, or an error whose Lambda `errorType` names what an operator
//! must do.

pub mod metrics;

use chrono::{DateTime, Utc};
use gmail_oauth::config::{self, CommonConfig, ConfigError};
use gmail_oauth::deadline::Deadline;
use gmail_oauth::error::Chain;
use gmail_oauth::events::EventBus;
use gmail_oauth::gmail::GmailClient;
use gmail_oauth::keep::MailboxSettings;
use gmail_oauth::oauth::GoogleOAuth;
use gmail_oauth::retry::RetryPolicy;
use gmail_oauth::run::{self, Report, RunSettings, RunSummary};
use gmail_oauth::store::{Layout, TokenRepository};
use gmail_oauth::sync::{DEFAULT_LABEL, DEFAULT_MAX_EVENTS, EventSettings};
use lambda_runtime::Diagnostic;
use serde::Serialize;

pub const DEFAULT_QUERY: &str = "in:inbox is:unread";
pub const DEFAULT_MAX_MESSAGES: usize = 25;

/// Settings read from the environment once, at start.
#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub run: RunSettings,
    /// `EVENT_BUS_NAME`: where new mail goes as events (unset: no events).
    pub event_bus: Option<String>,
}

impl Config {
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_lookup(lookup)?;
        let max_messages =
            config::whole_number(lookup, "MAX_MESSAGES", DEFAULT_MAX_MESSAGES, 1..=500)?;
        let event_bus = config::var(lookup, "EVENT_BUS_NAME");
        let events = match &event_bus {
            None => None,
            Some(_) => Some(EventSettings {
                label: config::var(lookup, "GMAIL_LABEL").unwrap_or_else(|| DEFAULT_LABEL.into()),
                max_events: config::whole_number(
                    lookup,
                    "MAX_EVENTS_PER_RUN",
                    DEFAULT_MAX_EVENTS,
                    1..=10_000,
                )?,
                backfill: config::var(lookup, "BACKFILL_QUERY"),
                publish_retry: RetryPolicy::default(),
            }),
        };
        let run = RunSettings {
            mailbox: MailboxSettings {
                query: config::var(lookup, "GMAIL_QUERY").unwrap_or_else(|| DEFAULT_QUERY.into()),
                max_messages,
                authorize_url: config::var(lookup, "AUTHORIZE_URL"),
                events,
            },
            concurrency: config::concurrency(lookup)?,
            // The write pacer's own interval, so admission and pacing agree.
            write_interval: gmail_oauth::pacing::Pacer::per_second(common.ssm.write_tps).interval(),
        };
        Ok(Config {
            common,
            run,
            event_bus,
        })
    }
}

/// Time kept at the end of an invocation for a mailbox's save: its write and check (two
/// SSM calls, each bounded by the SDK's 4 s operation timeout) and one repair.
pub const SAVE_RESERVE: std::time::Duration = std::time::Duration::from_secs(16);
/// Time kept between the end of the work and the invocation's deadline, for the result (or
/// the typed error) to reach Lambda before it stops the function.
pub const RESPONSE_MARGIN: std::time::Duration = std::time::Duration::from_millis(250);

/// The invocation's deadline (milliseconds since the epoch, from the Lambda context) as an
/// instant of this process's clock.
pub fn deadline_from_context(deadline_ms: u64, now: DateTime<Utc>) -> Deadline {
    Deadline::from_lambda(deadline_ms, now, RESPONSE_MARGIN, SAVE_RESERVE)
}

/// What one invocation returns: one mailbox's summary (`TOKEN_PARAM`), or the report of
/// every mailbox (`MAILBOXES_PATH`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Output {
    One(RunSummary),
    Many(Report),
    /// The one token's parameter does not exist: nothing is linked yet (a new stack), or the
    /// mailbox was unlinked. Not a failed run: nothing is broken that a run could mend.
    NotLinked(NotLinked),
}

/// The answer of a one-token run with no token stored.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NotLinked {
    /// Always `not_linked`.
    pub status: &'static str,
    pub token_parameter: String,
    /// Where to consent (`AUTHORIZE_URL`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
}

impl Output {
    /// The one mailbox's summary (panics on a report: for tests of the one-token layout).
    pub fn summary(self) -> RunSummary {
        match self {
            Output::One(summary) => summary,
            other => panic!("expected one mailbox's summary, got {other:?}"),
        }
    }

    /// The report of every mailbox (panics on a summary).
    pub fn report(self) -> Report {
        match self {
            Output::Many(report) => report,
            other => panic!("expected a report, got {other:?}"),
        }
    }
}

/// A failed run, as Lambda reports it: `errorType` is one of the names in
/// `docs/interface.md`, the message says what was being done and why it failed.
#[derive(Debug)]
pub struct RunError(pub gmail_oauth::Error);

impl From<RunError> for Diagnostic {
    fn from(error: RunError) -> Self {
        Diagnostic {
            error_type: error.0.error_type().into(),
            error_message: Chain(&error.0).to_string(),
        }
    }
}

/// Everything built once per process and reused by warm invocations.
pub struct Refresh<S, B> {
    pub config: Config,
    pub store: S,
    pub google: GoogleOAuth,
    pub gmail: GmailClient,
    /// The event bus (used only with `EVENT_BUS_NAME`).
    pub bus: B,
}

impl<S: TokenRepository, B: EventBus> Refresh<S, B> {
    pub fn new(config: Config, store: S, bus: B, http: reqwest::Client) -> Self {
        let gmail = GmailClient::new(
            http.clone(),
            config.common.gmail_api_endpoint.clone(),
            RetryPolicy::default(),
        );
        Refresh {
            google: GoogleOAuth::new(http),
            gmail,
            store,
            bus,
            config,
        }
    }

    /// One scheduled run without a deadline of its own (tests and tools).
    pub async fn run(&self, now: DateTime<Utc>) -> Result<Output, RunError> {
        self.run_until(now, None).await
    }

    /// One run that ends before `deadline` (the invocation's, from the Lambda context). The
    /// event's content is not used: any JSON starts a run.
    pub async fn run_until(
        &self,
        now: DateTime<Utc>,
        deadline: Option<Deadline>,
    ) -> Result<Output, RunError> {
        let settings = &self.config.run;
        let result = match self.config.common.layout() {
            Layout::Single { .. } => run::run_one(
                &self.store,
                &self.google,
                &self.gmail,
                &self.bus,
                settings,
                now,
                deadline,
            )
            .await
            .map(Output::One),
            Layout::Many { .. } => run::run_many(
                &self.store,
                &self.google,
                &self.gmail,
                &self.bus,
                settings,
                now,
                deadline,
            )
            .await
            .map(Output::Many),
        };
        match result {
            Ok(Output::One(summary)) => {
                tracing::info!(
                    account = %summary.account,
                    token_refreshed = summary.token_refreshed,
                    expires_at = %summary.expires_at,
                    message_count = summary.message_count,
                    "run complete"
                );
                Ok(Output::One(summary))
            }
            Ok(Output::Many(report)) => {
                let t = &report.totals;
                tracing::info!(
                    mailboxes = t.mailboxes,
                    ok = t.ok,
                    reauthorization_required = t.reauthorization_required,
                    upstream = t.upstream,
                    invalid = t.invalid,
                    not_reached = t.not_reached,
                    events_published = t.events_published,
                    "run complete"
                );
                Ok(Output::Many(report))
            }
            Ok(not_linked @ Output::NotLinked(_)) => Ok(not_linked),
            Err(gmail_oauth::Error::TokenNotFound {
                parameter,
                authorize_url,
            }) => {
                tracing::warn!(
                    status = "not_linked",
                    token_parameter = %parameter,
                    authorize_url = authorize_url.as_deref().unwrap_or("the stack's AuthorizeUrl output"),
                    "no mailbox is linked yet: open the authorize URL and consent"
                );
                Ok(Output::NotLinked(NotLinked {
                    status: "not_linked",
                    token_parameter: parameter,
                    authorize_url,
                }))
            }
            Err(error) => {
                tracing::error!(error_type = error.error_type(), error = %Chain(&error), "run failed");
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
        assert_eq!(config.run.mailbox.query, "in:inbox is:unread");
        assert_eq!(config.run.mailbox.max_messages, 25);
        assert_eq!(config.run.mailbox.authorize_url, None);
        assert_eq!(config.run.concurrency, 8);
        assert_eq!(
            config.run.write_interval,
            std::time::Duration::from_millis(500)
        );
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
                .mailbox
                .max_messages,
            500
        );
    }

    #[test]
    fn errors_become_typed_lambda_diagnostics() {
        #[derive(Debug, thiserror::Error)]
        #[error("GetParameters failed: ThrottlingException")]
        struct Cause;
        let diagnostic = Diagnostic::from(RunError(gmail_oauth::Error::upstream(
            "reading /gmail-oauth/token",
            Cause,
        )));
        assert_eq!(diagnostic.error_type, "Upstream");
        assert_eq!(
            diagnostic.error_message,
            "reading /gmail-oauth/token: GetParameters failed: ThrottlingException"
        );
    }
}
