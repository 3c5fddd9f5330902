//! Incremental sync of one mailbox into events: Gmail's history from the checkpoint, the
//! metadata of the messages added with the label, one event each, and only then a new
//! checkpoint (`docs/interface.md`, *New mail as events*).
//!
//! The rule: the checkpoint never passes a message that was not published. So a failure
//! anywhere (Gmail, the bus, the store, the deadline) leaves the checkpoint where it was,
//! and the next run publishes the same messages again: duplicates, with the same
//! `event_id`, but never a gap.

use crate::events::{self, Detail, Entry, EventBus, PublishError, event_id};
use crate::gmail::{GmailError, History, Mailbox, Metadata};
use crate::retry::RetryPolicy;
use chrono::{DateTime, TimeDelta, Utc};
use oauth2::AccessToken;
use serde::{Deserialize, Serialize};

/// `GMAIL_LABEL`'s default.
pub const DEFAULT_LABEL: &str = "INBOX";
/// `MAX_EVENTS_PER_RUN`'s default.
pub const DEFAULT_MAX_EVENTS: usize = 500;
/// How far before the checkpoint's time a resynchronisation looks (clock skew, mail
/// delivered late): messages in the overlap are published again, with the same ids.
pub const RESYNC_OVERLAP: TimeDelta = TimeDelta::hours(1);
/// When a run stops short of the history, how many of the messages left out it looks at to
/// bound the checkpoint's time (one `messages.get` each).
const MAX_PEEK: usize = 10;
/// A checkpoint with nothing new is still moved once it is this old, so that it never
/// falls below the history Gmail keeps (about a week) in a quiet mailbox. Otherwise a run
/// where nothing arrived writes nothing.
pub const QUIET_MOVE_AFTER: TimeDelta = TimeDelta::days(1);

/// What the events need (`EVENT_BUS_NAME` set).
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// `GMAIL_LABEL`: only messages added with this label id.
    pub label: String,
    /// `MAX_EVENTS_PER_RUN`, per mailbox.
    pub max_events: usize,
    /// `BACKFILL_QUERY`: what a mailbox's first run publishes (nothing when unset).
    pub backfill: Option<String>,
    /// How publishing retries entries the bus did not take.
    pub publish_retry: RetryPolicy,
}

/// Where a mailbox's events stand: every message added with the label up to `history_id`
/// is published. `as_of` is when that was so (a resynchronisation lists from it): never a
/// claim past a message not yet published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub history_id: u64,
    pub as_of: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct CheckpointJson {
    history_id: String,
    as_of: DateTime<Utc>,
    /// The mailbox whose history it is: a checkpoint of another mailbox (the one token
    /// re-linked by another account) is not used. Absent in checkpoints written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
}

/// The earliest `as_of` believed: Gmail's launch. Anything earlier (or later than a day
/// from now) is not a checkpoint this project wrote.
const EARLIEST: DateTime<Utc> = match DateTime::from_timestamp(1_080_777_600, 0) {
    Some(at) => at,
    None => DateTime::<Utc>::UNIX_EPOCH,
};

impl Checkpoint {
    /// The stored form: `{"history_id": "1234567", "as_of": "2026-11-24T10:00:00Z",
    /// "account": "me@example.com"}`.
    pub fn to_json(&self, account: &str) -> String {
        serde_json::to_string(&CheckpointJson {
            history_id: self.history_id.to_string(),
            as_of: self.as_of,
            account: Some(account.to_ascii_lowercase()),
        })
        .unwrap_or_default()
    }

    /// Reads a stored checkpoint (and the account it names, if any) at `now`: its `as_of`
    /// must lie between Gmail's launch and a day from now.
    pub fn from_json(
        raw: &str,
        now: DateTime<Utc>,
    ) -> Result<(Checkpoint, Option<String>), String> {
        let json: CheckpointJson = crate::json::parse(raw)
            .map_err(|problem| format!("is not a checkpoint ({problem})"))?;
        let history_id = json
            .history_id
            .parse()
            .map_err(|_| "has a history_id that is not a number".to_owned())?;
        let latest = now.checked_add_signed(TimeDelta::days(1)).unwrap_or(now);
        if !(EARLIEST..=latest).contains(&json.as_of) {
            return Err(format!(
                "has an as_of ({}) before Gmail existed or in the future",
                json.as_of
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        Ok((
            Checkpoint {
                history_id,
                as_of: json.as_of,
            },
            json.account,
        ))
    }
}

/// One mailbox's sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub published: usize,
    /// The checkpoint after this run (the one stored, or the new one to store).
    pub checkpoint: Checkpoint,
    /// The checkpoint to write: `None` when it did not move (nothing arrived).
    pub moved: Option<Checkpoint>,
    /// Gmail no longer had the checkpoint's history: the run listed the label's messages
    /// since the checkpoint's time instead.
    pub resynchronised: bool,
    /// Messages deleted between the history and their metadata: skipped.
    pub skipped: usize,
    /// More than `max_events` were waiting: the rest goes next run.
    pub more: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Gmail(#[from] GmailError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// One sync: from `checkpoint` (or the first one), publish what arrived, say where the
/// checkpoint goes. Writes nothing: the caller stores `moved` after this returns.
pub async fn sync(
    gmail: &impl Mailbox,
    bus: &impl EventBus,
    token: &AccessToken,
    account: &str,
    checkpoint: Option<Checkpoint>,
    settings: &EventSettings,
    now: DateTime<Utc>,
) -> Result<Synced, SyncError> {
    let Some(checkpoint) = checkpoint else {
        return first(gmail, bus, token, account, settings, now).await;
    };
    let history = match gmail
        .history(token, checkpoint.history_id, &settings.label)
        .await
    {
        Ok(history) => history,
        Err(error) if error.is_not_found() => {
            tracing::warn!(
                mailbox = %account,
                checkpoint = checkpoint.history_id,
                "Gmail no longer has the history from the checkpoint; resynchronising from its time"
            );
            return resync(gmail, bus, token, account, checkpoint, settings, now).await;
        }
        Err(error) => return Err(error.into()),
    };
    from_history(
        gmail, bus, token, account, checkpoint, history, settings, now,
    )
    .await
}

/// The first run of a mailbox: the checkpoint starts at the profile's `historyId`, taken
/// before the backfill (if any) is listed, so nothing between the two is missed.
async fn first(
    gmail: &impl Mailbox,
    bus: &impl EventBus,
    token: &AccessToken,
    account: &str,
    settings: &EventSettings,
    now: DateTime<Utc>,
) -> Result<Synced, SyncError> {
    let start = gmail.profile(token).await?.history_id()?;
    let checkpoint = Checkpoint {
        history_id: start,
        as_of: now,
    };
    let mut synced = Synced {
        published: 0,
        checkpoint,
        moved: Some(checkpoint),
        resynchronised: false,
        skipped: 0,
        more: false,
    };
    if let Some(query) = &settings.backfill {
        let ids = gmail
            .list_messages(token, query, Some(&settings.label), settings.max_events)
            .await?;
        // The list is newest first; events go out oldest first.
        let ids: Vec<String> = ids.into_iter().rev().map(|m| m.id).collect();
        let (published, skipped, _) = publish(gmail, bus, token, account, &ids, settings).await?;
        synced.published = published;
        synced.skipped = skipped;
    }
    tracing::info!(mailbox = %account, checkpoint = start, backfilled = synced.published, "events start from now");
    Ok(synced)
}

/// From Gmail's history: publish the added messages in order, at most `max_events` (whole
/// history records), and move the checkpoint to the last record published, or to the
/// mailbox's current `historyId` when every record was.
#[allow(clippy::too_many_arguments)]
async fn from_history(
    gmail: &impl Mailbox,
    bus: &impl EventBus,
    token: &AccessToken,
    account: &str,
    checkpoint: Checkpoint,
    history: History,
    settings: &EventSettings,
    now: DateTime<Utc>,
) -> Result<Synced, SyncError> {
    let mut ids: Vec<String> = Vec::new();
    let mut last_record = checkpoint.history_id;
    let mut more = false;
    for record in &history.records {
        let fresh: Vec<&String> = record
            .messages
            .iter()
            .filter(|id| !ids.contains(id))
            .collect();
        // Whole records only, so the checkpoint can stop between two; a record larger than
        // the limit on its own still goes (progress first).
        if !ids.is_empty() && ids.len() + fresh.len() > settings.max_events {
            more = true;
            break;
        }
        ids.extend(fresh.into_iter().cloned());
        last_record = last_record.max(record.id);
    }
    let (published, skipped, _) = publish(gmail, bus, token, account, &ids, settings).await?;
    let (target, as_of) = if more {
        // The rest waits for the next run; should Gmail's history expire meanwhile, the
        // resynchronisation lists from `as_of` (less an overlap), so it must not claim more
        // than was published: it is bounded by when the first message left out arrived.
        let waiting: Vec<String> = history
            .records
            .iter()
            .flat_map(|record| record.messages.iter())
            .filter(|id| !ids.contains(id))
            .take(MAX_PEEK)
            .cloned()
            .collect();
        let arrived = gmail
            .metadata(token, &waiting)
            .await?
            .into_iter()
            .flatten()
            .filter_map(|m| m.internal_date)
            .min();
        (
            last_record,
            arrived.map_or(checkpoint.as_of, |a| a.min(now)),
        )
    } else {
        (history.current.max(last_record), now)
    };
    let quiet = history.records.is_empty();
    let moved = if target <= checkpoint.history_id {
        None
    } else if quiet && now.signed_duration_since(checkpoint.as_of) < QUIET_MOVE_AFTER {
        // Nothing arrived: no write (the history is still there next run).
        None
    } else {
        Some(Checkpoint {
            history_id: target,
            as_of,
        })
    };
    Ok(Synced {
        published,
        checkpoint: moved.unwrap_or(checkpoint),
        moved,
        resynchronised: false,
        skipped,
        more,
    })
}

/// Gmail answered 404 for the checkpoint's history: take the current `historyId` first,
/// then publish the label's messages received since the checkpoint's time (less an
/// overlap), and store the captured `historyId`. When more than `max_events` are waiting,
/// the oldest go and the checkpoint's time moves to the newest published, so the next run
/// resynchronises from there; if that would not move the listing's start (more than
/// `max_events` messages within a second or two), more are published until it does
/// (progress first).
async fn resync(
    gmail: &impl Mailbox,
    bus: &impl EventBus,
    token: &AccessToken,
    account: &str,
    checkpoint: Checkpoint,
    settings: &EventSettings,
    now: DateTime<Utc>,
) -> Result<Synced, SyncError> {
    let current = gmail.profile(token).await?.history_id()?;
    let since = checkpoint
        .as_of
        .checked_sub_signed(RESYNC_OVERLAP)
        .unwrap_or(checkpoint.as_of);
    let query = format!("after:{}", since.timestamp().max(0));
    // Everything since, newest first: up to Gmail's page limit per call, all pages.
    let listed = gmail
        .list_messages(token, &query, Some(&settings.label), usize::MAX)
        .await?;
    let oldest_first: Vec<String> = listed.into_iter().rev().map(|m| m.id).collect();
    // The next listing would start a second before the newest message published (not an
    // overlap before it, so that a burst larger than `max_events` still moves on).
    let next_since = |newest: Option<DateTime<Utc>>| {
        newest.and_then(|n| n.checked_sub_signed(TimeDelta::seconds(1)))
    };
    let (mut published, mut skipped, mut newest, mut taken) = (0, 0, None, 0);
    loop {
        let chunk = &oldest_first[taken..oldest_first.len().min(taken + settings.max_events)];
        let (p, s, n) = publish(gmail, bus, token, account, chunk, settings).await?;
        (published, skipped, newest, taken) = (
            published + p,
            skipped + s,
            newest.max(n),
            taken + chunk.len(),
        );
        let progress = next_since(newest).is_none_or(|next| next.timestamp() > since.timestamp());
        if taken >= oldest_first.len() || progress {
            break;
        }
    }
    let more = taken < oldest_first.len();
    let moved = if more {
        // Still resynchronising: the history id stays (Gmail will answer 404 again).
        Checkpoint {
            history_id: checkpoint.history_id,
            as_of: next_since(newest)
                .and_then(|s| s.checked_add_signed(RESYNC_OVERLAP))
                .unwrap_or(checkpoint.as_of)
                .max(checkpoint.as_of),
        }
    } else {
        Checkpoint {
            history_id: current,
            as_of: now,
        }
    };
    tracing::warn!(
        mailbox = %account,
        published,
        more,
        checkpoint = moved.history_id,
        "resynchronised"
    );
    Ok(Synced {
        published,
        checkpoint: moved,
        moved: Some(moved),
        resynchronised: true,
        skipped,
        more,
    })
}

/// Fetches the metadata of `ids` (those deleted meanwhile are skipped and logged),
/// publishes one event each in order, and returns (published, skipped, newest
/// `internalDate`).
async fn publish(
    gmail: &impl Mailbox,
    bus: &impl EventBus,
    token: &AccessToken,
    account: &str,
    ids: &[String],
    settings: &EventSettings,
) -> Result<(usize, usize, Option<DateTime<Utc>>), SyncError> {
    if ids.is_empty() {
        return Ok((0, 0, None));
    }
    let found = gmail.metadata(token, ids).await?;
    let mut skipped = 0;
    let mut newest: Option<DateTime<Utc>> = None;
    let mut entries = Vec::new();
    for (id, metadata) in ids.iter().zip(found) {
        let Some(metadata) = metadata else {
            skipped += 1;
            tracing::info!(mailbox = %account, message = %id, "message deleted before its metadata was read; skipped");
            continue;
        };
        newest = newest.max(metadata.internal_date);
        entries.push(Entry::of(&detail(account, metadata)));
    }
    let published = events::publish(bus, &entries, &settings.publish_retry).await?;
    Ok((published, skipped, newest))
}

/// The event of one message.
pub fn detail(account: &str, message: Metadata) -> Detail {
    Detail {
        account: account.to_owned(),
        event_id: event_id(account, &message.id),
        id: message.id,
        thread_id: message.thread_id,
        history_id: message.history_id,
        label_ids: message.label_ids,
        from: message.from,
        to: message.to,
        subject: message.subject,
        date: message.date,
        internal_date: message
            .internal_date
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
        snippet: message.snippet,
        size_estimate: message.size_estimate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::MemoryBus;
    use crate::testing::{FakeMailbox, now};
    use std::time::Duration;

    fn settings(max_events: usize) -> EventSettings {
        EventSettings {
            label: "INBOX".into(),
            max_events,
            backfill: None,
            publish_retry: RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(1),
            },
        }
    }

    fn token() -> AccessToken {
        AccessToken::new("valid".into())
    }

    fn ids(bus: &MemoryBus) -> Vec<String> {
        bus.published()
            .iter()
            .map(|e| serde_json::from_str::<Detail>(&e.detail).unwrap().id)
            .collect()
    }

    async fn run(
        gmail: &FakeMailbox,
        bus: &MemoryBus,
        checkpoint: Option<Checkpoint>,
        max: usize,
    ) -> Result<Synced, SyncError> {
        sync(
            gmail,
            bus,
            &token(),
            "me@example.com",
            checkpoint,
            &settings(max),
            now(),
        )
        .await
    }

    #[tokio::test]
    async fn the_first_run_starts_at_the_current_history_and_publishes_nothing_old() {
        let gmail = FakeMailbox::accepting("valid");
        gmail.mail().deliver("old");
        let bus = MemoryBus::default();
        let synced = run(&gmail, &bus, None, 500).await.unwrap();
        assert_eq!(synced.published, 0);
        assert_eq!(synced.checkpoint.history_id, 101);
        assert_eq!(synced.moved, Some(synced.checkpoint));
        assert!(bus.published().is_empty());
    }

    #[tokio::test]
    async fn a_backfill_publishes_what_the_query_finds_oldest_first() {
        let gmail = FakeMailbox::accepting("valid");
        for id in ["a", "b", "c"] {
            gmail.mail().deliver(id);
        }
        let bus = MemoryBus::default();
        let settings = EventSettings {
            backfill: Some("newer_than:1d".into()),
            ..settings(2)
        };
        let synced = sync(
            &gmail,
            &bus,
            &token(),
            "me@example.com",
            None,
            &settings,
            now(),
        )
        .await
        .unwrap();
        assert_eq!(ids(&bus), ["b", "c"], "the newest max_events, oldest first");
        assert_eq!(synced.checkpoint.history_id, 103);
    }

    #[tokio::test]
    async fn new_mail_is_published_in_order_and_the_checkpoint_moves_past_it() {
        let gmail = FakeMailbox::accepting("valid");
        let bus = MemoryBus::default();
        let start = run(&gmail, &bus, None, 500).await.unwrap().checkpoint;
        for id in ["m1", "m2", "m3"] {
            gmail.mail().deliver(id);
        }
        let synced = run(&gmail, &bus, Some(start), 500).await.unwrap();
        assert_eq!(ids(&bus), ["m1", "m2", "m3"]);
        assert_eq!(synced.published, 3);
        assert_eq!(synced.checkpoint.history_id, 103);
        assert!(synced.moved.is_some());
        let detail: Detail = serde_json::from_str(&bus.published()[0].detail).unwrap();
        assert_eq!(detail.event_id, event_id("me@example.com", "m1"));
        assert_eq!(detail.internal_date, "2026-11-18T11:08:21Z");
    }

    #[tokio::test]
    async fn a_run_where_nothing_arrived_costs_one_history_call_and_no_write() {
        let gmail = FakeMailbox::accepting("valid");
        let bus = MemoryBus::default();
        let start = Checkpoint {
            history_id: 100,
            as_of: now() - TimeDelta::hours(2),
        };
        let synced = run(&gmail, &bus, Some(start), 500).await.unwrap();
        assert_eq!(synced.moved, None);
        assert_eq!(synced.checkpoint, start);
        assert_eq!(gmail.mail().history_calls, 1);
        assert_eq!(gmail.mail().get_calls, 0);
        assert_eq!(bus.calls(), 0);

        // A day later with other changes in between, it moves once.
        gmail.mail().current = 150;
        let old = Checkpoint {
            as_of: now() - QUIET_MOVE_AFTER,
            ..start
        };
        let synced = run(&gmail, &bus, Some(old), 500).await.unwrap();
        assert_eq!(synced.moved.map(|c| c.history_id), Some(150));
    }

    #[tokio::test]
    async fn more_than_max_events_waits_for_the_next_run_without_a_gap() {
        let gmail = FakeMailbox::accepting("valid");
        let bus = MemoryBus::default();
        let mut checkpoint = run(&gmail, &bus, None, 2).await.unwrap().checkpoint;
        for i in 0..5 {
            gmail.mail().deliver(&format!("m{i}"));
        }
        let mut runs = 0;
        loop {
            let synced = run(&gmail, &bus, Some(checkpoint), 2).await.unwrap();
            runs += 1;
            checkpoint = synced.checkpoint;
            if !synced.more {
                break;
            }
            assert_eq!(synced.published, 2);
        }
        assert_eq!(runs, 3);
        assert_eq!(ids(&bus), ["m0", "m1", "m2", "m3", "m4"]);
        assert_eq!(checkpoint.history_id, 105);
    }

    #[tokio::test]
    async fn a_checkpoint_gmail_no_longer_keeps_resynchronises_by_time() {
        let gmail = FakeMailbox::accepting("valid");
        let bus = MemoryBus::default();
        let start = run(&gmail, &bus, None, 500).await.unwrap().checkpoint;
        gmail.mail().deliver("m1");
        gmail.mail().deliver("m2");
        gmail.mail().floor = 102;
        let synced = run(&gmail, &bus, Some(start), 500).await.unwrap();
        assert!(synced.resynchronised);
        assert_eq!(ids(&bus), ["m1", "m2"]);
        assert_eq!(synced.checkpoint.history_id, 102);
        assert_eq!(synced.moved, Some(synced.checkpoint));
    }

    #[tokio::test]
    async fn a_message_deleted_before_its_metadata_is_skipped() {
        let gmail = FakeMailbox::accepting("valid");
        let bus = MemoryBus::default();
        let start = run(&gmail, &bus, None, 500).await.unwrap().checkpoint;
        gmail.mail().deliver("kept");
        gmail.mail().deliver("gone");
        gmail.mail().deleted.push("gone".into());
        let synced = run(&gmail, &bus, Some(start), 500).await.unwrap();
        assert_eq!(ids(&bus), ["kept"]);
        assert_eq!(synced.skipped, 1);
        assert_eq!(synced.checkpoint.history_id, 102);
    }

    #[tokio::test]
    async fn events_the_bus_will_not_take_fail_the_sync_and_leave_the_checkpoint() {
        let gmail = FakeMailbox::accepting("valid");
        let bus = MemoryBus::default();
        let start = run(&gmail, &bus, None, 500).await.unwrap().checkpoint;
        gmail.mail().deliver("m1");
        bus.fail_next(Some(vec![0]));
        bus.fail_next(Some(vec![0]));
        let error = run(&gmail, &bus, Some(start), 500).await.unwrap_err();
        assert!(matches!(error, SyncError::Publish(_)), "{error}");
        // The same checkpoint next run: the message goes then.
        let synced = run(&gmail, &bus, Some(start), 500).await.unwrap();
        assert_eq!(ids(&bus), ["m1"]);
        assert_eq!(synced.checkpoint.history_id, 101);
    }

    #[test]
    fn checkpoints_round_trip_and_malformed_or_absurd_ones_are_named() {
        let checkpoint = Checkpoint {
            history_id: 1234567,
            as_of: now(),
        };
        let json = checkpoint.to_json("Me@Example.com");
        assert_eq!(
            json,
            r#"{"history_id":"1234567","as_of":"2026-11-23T12:00:00Z","account":"me@example.com"}"#
        );
        assert_eq!(
            Checkpoint::from_json(&json, now()),
            Ok((checkpoint, Some("me@example.com".into())))
        );
        // Written before checkpoints named their mailbox.
        assert_eq!(
            Checkpoint::from_json(
                r#"{"history_id":"1234567","as_of":"2026-11-23T12:00:00Z"}"#,
                now()
            ),
            Ok((checkpoint, None))
        );
        for (raw, problem) in [
            ("{x", "malformed"),
            (
                r#"{"history_id":"x","as_of":"2026-11-23T12:00:00Z"}"#,
                "not a number",
            ),
            (
                r#"{"history_id":"1","as_of":"-262143-01-01T00:00:00Z"}"#,
                "before Gmail existed or in the future",
            ),
            (
                r#"{"history_id":"1","as_of":"+262142-12-31T23:59:59Z"}"#,
                "before Gmail existed or in the future",
            ),
            (
                r#"{"history_id":"1","as_of":"2026-11-30T00:00:00Z"}"#,
                "in the future",
            ),
        ] {
            let error = Checkpoint::from_json(raw, now()).unwrap_err();
            assert!(error.contains(problem), "{raw}: {error}");
        }
    }
}
