//! One scheduled run: read the client secrets and the mailboxes, keep each one (refresh,
//! read mail, write back), report.
//!
//! With one token (`TOKEN_PARAM`) the run is that mailbox's turn and fails with its typed
//! error, as it always has. With many (`MAILBOXES_PATH`) each mailbox's failure is that
//! mailbox's outcome; the run itself fails only when it cannot run at all (configuration,
//! client secrets, the store unreadable). Mailboxes are taken oldest token first, a bounded
//! number at a time, and only as many as the deadline and the store's write quota allow:
//! the rest are `not_reached`, and since their tokens stay the oldest, they go first next
//! time.

use crate::client_secrets::ClientSecrets;
use crate::deadline::Deadline;
use crate::error::{Chain, Error};
use crate::events::EventBus;
use crate::gmail::{Mailbox, MessageSummary};
use crate::keep::{Keeper, Kept, MailboxSettings};
use crate::oauth::Refresher;
use crate::store::{Entry, Stored, TokenRepository};
use crate::sync::Synced;
use crate::token::expiry_format;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use std::time::Duration;

/// What a run needs to know besides its clients.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub mailbox: MailboxSettings,
    /// Mailboxes kept at once (`MAILBOX_CONCURRENCY`).
    pub concurrency: usize,
    /// The time between two writes the store allows (1 / `SSM_WRITE_TPS`): a run admits
    /// only as many refreshing mailboxes as it can store before its deadline.
    pub write_interval: Duration,
}

/// The result of a run with one token (the Lambda's output with `TOKEN_PARAM`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RunSummary {
    pub account: String,
    pub token_refreshed: bool,
    pub expires_at: String,
    pub query: String,
    pub message_count: usize,
    pub messages: Vec<MessageSummary>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsReport>,
}

/// What a mailbox's events did in a run (with `EVENT_BUS_NAME`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EventsReport {
    pub events_published: usize,
    /// The checkpoint (a Gmail `historyId`) after the run.
    pub checkpoint: String,
    /// Gmail no longer had the checkpoint's history; the run listed by time instead.
    pub resynchronised: bool,
}

impl EventsReport {
    fn of(synced: &Synced) -> EventsReport {
        EventsReport {
            events_published: synced.published,
            checkpoint: synced.checkpoint.history_id.to_string(),
            resynchronised: synced.resynchronised,
        }
    }
}

/// How one mailbox's turn ended.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    ReauthorizationRequired,
    Upstream,
    Invalid,
    NotReached,
}

impl Status {
    /// The name the report, the logs and the docs use (`reauthorization_required`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::ReauthorizationRequired => "reauthorization_required",
            Status::Upstream => "upstream",
            Status::Invalid => "invalid",
            Status::NotReached => "not_reached",
        }
    }

    fn of(error: &Error) -> Status {
        match error {
            Error::ReauthorizationRequired { .. } => Status::ReauthorizationRequired,
            Error::Upstream { .. } => Status::Upstream,
            Error::TokenNotFound { .. } | Error::InvalidConfiguration { .. } => Status::Invalid,
        }
    }
}

/// One mailbox in a run's report. Never a secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MailboxReport {
    /// The mailbox's address (or, for a parameter that is not a mailbox, its name).
    pub account: String,
    pub status: Status,
    pub token_refreshed: bool,
    pub expires_at: String,
    pub message_count: usize,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How many mailboxes ended how.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub mailboxes: usize,
    pub ok: usize,
    pub reauthorization_required: usize,
    pub upstream: usize,
    pub invalid: usize,
    pub not_reached: usize,
    /// Events published, every mailbox together; absent without events (the output is
    /// then exactly what it was before events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_published: Option<usize>,
}

/// The result of a run over many mailboxes (the Lambda's output with `MAILBOXES_PATH`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    pub mailboxes: Vec<MailboxReport>,
    pub totals: Totals,
}

/// The one mailbox's turn: its summary, or its typed error.
pub async fn run_one<R: TokenRepository>(
    repo: &R,
    oauth: &impl Refresher,
    gmail: &impl Mailbox,
    bus: &impl EventBus,
    settings: &RunSettings,
    now: DateTime<Utc>,
    deadline: Option<Deadline>,
) -> Result<RunSummary, Error> {
    let (secrets, mailboxes) = load(repo).await?;
    // Without a token nothing else matters: say first that someone has to consent.
    let stored = match mailboxes.into_iter().next() {
        None => {
            return Err(Error::TokenNotFound {
                parameter: repo.location(),
                authorize_url: settings.mailbox.authorize_url.clone(),
            });
        }
        Some(Entry::Invalid { name, problem }) => {
            return Err(Error::invalid(format!("token parameter {name} {problem}")));
        }
        Some(Entry::Token(stored)) => *stored,
    };
    let secrets = secrets?;
    let keeper = Keeper {
        repo,
        oauth,
        gmail,
        bus,
        secrets: &secrets,
        settings: &settings.mailbox,
    };
    let kept = keeper.keep(stored, now, deadline).await?;
    Ok(RunSummary {
        account: kept.token.account().unwrap_or_default().to_owned(),
        token_refreshed: kept.refreshed,
        expires_at: expires_at(&kept.token),
        query: settings.mailbox.query.clone(),
        message_count: kept.messages.len(),
        events: kept.synced.as_ref().map(EventsReport::of),
        messages: kept.messages,
    })
}

/// Every mailbox's turn, each failure that mailbox's own.
pub async fn run_many<R: TokenRepository>(
    repo: &R,
    oauth: &impl Refresher,
    gmail: &impl Mailbox,
    bus: &impl EventBus,
    settings: &RunSettings,
    now: DateTime<Utc>,
    deadline: Option<Deadline>,
) -> Result<Report, Error> {
    let (secrets, entries) = load(repo).await?;
    let secrets = secrets?;
    if entries.is_empty() {
        tracing::warn!(location = %repo.location(), "no mailbox is linked yet");
    }
    let mut reports: Vec<Option<MailboxReport>> = vec![None; entries.len()];
    let mut turns: Vec<Turn> = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        match entry {
            Entry::Token(stored) => turns.push((index, *stored)),
            Entry::Invalid { name, problem } => {
                let error = Error::invalid(format!("parameter {name} {problem}"));
                reports[index] = Some(report_failure(name, None, &error));
            }
        }
    }
    // Oldest token first: a mailbox a run did not reach keeps its old token, so it goes
    // first next time.
    turns.sort_by_key(|(_, stored)| stored.token.expiry);
    let (admitted, left) = admit(turns, settings, now, deadline);
    for (index, stored) in left {
        reports[index] = Some(not_reached(&stored));
    }
    let keeper = Keeper {
        repo,
        oauth,
        gmail,
        bus,
        secrets: &secrets,
        settings: &settings.mailbox,
    };
    let keeper = &keeper;
    let mut turns =
        futures_util::stream::iter(admitted.into_iter().map(|(index, stored)| async move {
            let label = stored.label();
            let late = deadline.is_some_and(|d| tokio::time::Instant::now() >= d.work_until());
            let report = if late {
                not_reached(&stored)
            } else {
                let token = stored.token.clone();
                match keeper.keep(stored, now, deadline).await {
                    Ok(kept) => report_ok(label, &kept),
                    Err(error) => report_failure(label, Some(&token), &error),
                }
            };
            (index, report)
        }))
        .buffer_unordered(settings.concurrency.max(1));
    while let Some((index, report)) = turns.next().await {
        reports[index] = Some(report);
    }
    let mailboxes: Vec<MailboxReport> = reports.into_iter().flatten().collect();
    mailboxes.iter().for_each(log);
    let mut totals = Totals {
        mailboxes: mailboxes.len(),
        ..Totals::default()
    };
    if settings.mailbox.events.is_some() {
        totals.events_published = Some(
            mailboxes
                .iter()
                .filter_map(|m| m.events.as_ref())
                .map(|e| e.events_published)
                .sum(),
        );
    }
    for report in &mailboxes {
        *match report.status {
            Status::Ok => &mut totals.ok,
            Status::ReauthorizationRequired => &mut totals.reauthorization_required,
            Status::Upstream => &mut totals.upstream,
            Status::Invalid => &mut totals.invalid,
            Status::NotReached => &mut totals.not_reached,
        } += 1;
    }
    Ok(Report { mailboxes, totals })
}

/// A mailbox's turn: its place in the report, and its token.
type Turn = (usize, Stored);

/// Splits the turns into those that fit before the deadline and those that do not: each
/// refreshing mailbox needs a write, and so may each mailbox's events checkpoint; the store
/// takes one write per `write_interval`.
fn admit(
    turns: Vec<Turn>,
    settings: &RunSettings,
    now: DateTime<Utc>,
    deadline: Option<Deadline>,
) -> (Vec<Turn>, Vec<Turn>) {
    let Some(deadline) = deadline else {
        return (turns, Vec::new());
    };
    let start = tokio::time::Instant::now();
    let mut writes: u32 = 0;
    let mut admitted = Vec::new();
    let mut left = Vec::new();
    for (index, stored) in turns {
        let writes_after = writes
            + u32::from(stored.token.expires_within_margin(now))
            + u32::from(settings.mailbox.events.is_some());
        let done_by = start
            .checked_add(settings.write_interval.saturating_mul(writes_after))
            .and_then(|at| at.checked_add(deadline.save_reserve));
        if left.is_empty() && done_by.is_some_and(|done_by| done_by <= deadline.at) {
            writes = writes_after;
            admitted.push((index, stored));
        } else {
            left.push((index, stored));
        }
    }
    (admitted, left)
}

/// The client secrets (or why they cannot be used) and the mailboxes, in one read.
async fn load<R: TokenRepository>(
    repo: &R,
) -> Result<(Result<ClientSecrets, Error>, Vec<Entry>), Error> {
    let snapshot = repo
        .load_all()
        .await
        .map_err(|e| Error::upstream(format!("reading {}", repo.location()), e))?;
    let secrets = parse_client_secrets(&repo.client_secrets_location(), snapshot.client_secrets);
    Ok((secrets, snapshot.mailboxes))
}

/// Client secrets from a read, or an `InvalidConfiguration` naming where they should be.
pub fn parse_client_secrets(location: &str, raw: Option<String>) -> Result<ClientSecrets, Error> {
    let raw = raw.ok_or_else(|| {
        Error::invalid(format!(
            "client secrets parameter {location} does not exist; store the JSON downloaded from Google Cloud Console there"
        ))
    })?;
    ClientSecrets::from_json(&raw)
        .map_err(|problem| Error::invalid_because(format!("parameter {location}"), problem))
}

fn report_ok(label: String, kept: &Kept) -> MailboxReport {
    MailboxReport {
        account: kept.token.account().map(str::to_owned).unwrap_or(label),
        status: Status::Ok,
        token_refreshed: kept.refreshed,
        expires_at: expires_at(&kept.token),
        message_count: kept.messages.len(),
        events: kept.synced.as_ref().map(EventsReport::of),
        error_type: None,
        error: None,
    }
}

fn not_reached(stored: &Stored) -> MailboxReport {
    MailboxReport {
        account: stored.label(),
        status: Status::NotReached,
        token_refreshed: false,
        expires_at: expires_at(&stored.token),
        message_count: 0,
        events: None,
        error_type: None,
        error: Some("the run's deadline came first; this mailbox goes first next run".into()),
    }
}

fn report_failure(
    account: String,
    token: Option<&crate::token::StoredToken>,
    error: &Error,
) -> MailboxReport {
    MailboxReport {
        account,
        status: Status::of(error),
        token_refreshed: false,
        expires_at: token.map(expires_at).unwrap_or_default(),
        message_count: 0,
        events: None,
        error_type: Some(error.error_type()),
        error: Some(Chain(error).to_string()),
    }
}

/// One log line per mailbox, with its `error_type` when it failed (alarms filter on it).
fn log(report: &MailboxReport) {
    match report.error_type {
        None if report.status == Status::NotReached => tracing::warn!(
            account = %report.account,
            status = report.status.as_str(),
            "mailbox not reached before the deadline"
        ),
        None => tracing::info!(
            account = %report.account,
            status = report.status.as_str(),
            token_refreshed = report.token_refreshed,
            message_count = report.message_count,
            events_published = report.events.as_ref().map(|e| e.events_published),
            checkpoint = report.events.as_ref().map(|e| e.checkpoint.as_str()),
            resynchronised = report.events.as_ref().map(|e| e.resynchronised),
            "mailbox done"
        ),
        Some(error_type) => tracing::error!(
            account = %report.account,
            status = report.status.as_str(),
            error_type,
            error = report.error.as_deref().unwrap_or_default(),
            "mailbox failed"
        ),
    }
}

fn expires_at(token: &crate::token::StoredToken) -> String {
    token
        .expiry
        .as_ref()
        .map(expiry_format::format)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::NoBus;
    use crate::mailbox::{Address, parameter_name};
    use crate::oauth::OAuthError;
    use crate::testing::*;

    #[test]
    fn a_status_is_logged_as_the_report_names_it() {
        for status in [
            Status::Ok,
            Status::ReauthorizationRequired,
            Status::Upstream,
            Status::Invalid,
            Status::NotReached,
        ] {
            let serialized = serde_json::to_value(status).unwrap_or_default();
            assert_eq!(serialized, status.as_str(), "{status:?}");
        }
    }

    fn settings(concurrency: usize) -> RunSettings {
        RunSettings {
            mailbox: MailboxSettings {
                query: "in:inbox".into(),
                max_messages: 25,
                authorize_url: None,
                events: None,
            },
            concurrency,
            write_interval: Duration::from_millis(500),
        }
    }

    fn name(address: &str) -> String {
        parameter_name(PATH, &Address::new(address).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn each_mailboxs_failure_is_its_own_and_every_one_is_reported() {
        let ok = token("ok@example.com", "valid", "1//ok", "2026-11-23T13:00:00Z");
        let revoked = token(
            "revoked@example.com",
            "x",
            "1//revoked",
            "2026-11-23T11:00:00Z",
        );
        let repo = many(&[
            (&name("ok@example.com"), &json(&ok)),
            (&name("revoked@example.com"), &json(&revoked)),
            (&name("junk@example.com"), "{not json"),
            ("/t/mailboxes/NotAName", &json(&ok)),
        ]);
        let oauth =
            ScriptedRefresher::by_token(vec![(Some("1//revoked"), Err(OAuthError::InvalidGrant))]);
        let gmail = FakeMailbox::accepting("valid");
        let report = run_many(&repo, &oauth, &gmail, &NoBus, &settings(2), now(), None)
            .await
            .unwrap();
        let status = |account: &str| {
            report
                .mailboxes
                .iter()
                .find(|m| m.account == account)
                .map(|m| m.status)
        };
        assert_eq!(status("ok@example.com"), Some(Status::Ok));
        assert_eq!(
            status("revoked@example.com"),
            Some(Status::ReauthorizationRequired)
        );
        assert_eq!(
            status("/t/mailboxes/example.com/junk"),
            Some(Status::Invalid)
        );
        assert_eq!(status("/t/mailboxes/NotAName"), Some(Status::Invalid));
        assert_eq!(
            report.totals,
            Totals {
                mailboxes: 4,
                ok: 1,
                reauthorization_required: 1,
                upstream: 0,
                invalid: 2,
                not_reached: 0,
                events_published: None,
            }
        );
        let failed = report
            .mailboxes
            .iter()
            .find(|m| m.account == "revoked@example.com")
            .unwrap();
        assert_eq!(failed.error_type, Some("ReauthorizationRequired"));
        // Nothing was written over what could not be read.
        assert_eq!(
            repo.store().value(&name("junk@example.com")).as_deref(),
            Some("{not json")
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["totals"]["reauthorization_required"], 1);
        assert!(json["mailboxes"][0]["status"].is_string());
    }

    #[tokio::test(start_paused = true)]
    async fn mailboxes_the_write_quota_cannot_serve_before_the_deadline_are_not_reached_oldest_first()
     {
        // Five expiring tokens, a write every 2 s, 4 s kept for the saves: a 10 s deadline
        // leaves room for three writes.
        let mut parameters = Vec::new();
        for (i, expiry) in ["11:40", "11:10", "11:30", "11:00", "11:20"]
            .iter()
            .enumerate()
        {
            let account = format!("m{i}@example.com");
            let token = token(
                &account,
                "old",
                &format!("1//m{i}"),
                &format!("2026-11-23T{expiry}:00Z"),
            );
            parameters.push((name(&account), json(&token)));
        }
        let borrowed: Vec<(&str, &str)> = parameters
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let repo = many(&borrowed);
        let oauth =
            ScriptedRefresher::new((0..5).map(|i| grant(&format!("new{i}"), None)).collect());
        let gmail = FakeMailbox::accepting("*");
        let deadline = Deadline::after(Duration::from_secs(10), Duration::from_secs(4));
        let settings = RunSettings {
            write_interval: Duration::from_secs(2),
            ..settings(8)
        };
        let report = run_many(
            &repo,
            &oauth,
            &gmail,
            &NoBus,
            &settings,
            now(),
            Some(deadline),
        )
        .await
        .unwrap();
        let reached: Vec<&str> = report
            .mailboxes
            .iter()
            .filter(|m| m.status == Status::Ok)
            .map(|m| m.account.as_str())
            .collect();
        // The three oldest tokens (11:00, 11:10, 11:20) went first.
        assert_eq!(
            reached,
            ["m1@example.com", "m3@example.com", "m4@example.com"]
        );
        assert_eq!(report.totals.not_reached, 2);
    }

    #[tokio::test]
    async fn one_token_fails_the_run_with_its_typed_error() {
        let repo = single(&token(
            "me@example.com",
            "x",
            "1//r",
            "2026-11-23T11:00:00Z",
        ));
        let oauth = ScriptedRefresher::new(vec![Err(OAuthError::InvalidGrant)]);
        let gmail = FakeMailbox::accepting("*");
        let error = run_one(&repo, &oauth, &gmail, &NoBus, &settings(1), now(), None)
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "ReauthorizationRequired");

        let empty = many(&[]);
        let report = run_many(&empty, &oauth, &gmail, &NoBus, &settings(1), now(), None)
            .await
            .unwrap();
        assert_eq!(report.totals, Totals::default());
    }
}
