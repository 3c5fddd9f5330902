//! New mail as EventBridge events (`docs/interface.md`, *New mail as events*): the event's
//! `Detail`, its deterministic `event_id`, the size rule, and publishing in batches where
//! only the entries that failed are sent again.
//!
//! The bus is a port ([`EventBus`]): the Lambda speaks to EventBridge
//! ([`crate::eventbridge::EventBridgeBus`]), unit tests to an in-memory bus.

use crate::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use std::future::Future;

/// `Source` of every event.
pub const SOURCE: &str = "gmail-oauth";
/// `DetailType` of every event.
pub const DETAIL_TYPE: &str = "Gmail Message Received";
/// EventBridge's limit for one entry, and for one `PutEvents` request.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
/// EventBridge takes at most 10 entries a `PutEvents` call.
pub const MAX_ENTRIES_PER_CALL: usize = 10;

/// UUID namespace of `event_id`s (a v4 UUID chosen once; changing it changes every id).
const EVENT_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x4c1f_63a0_8a2e_4b4e_9d5c_0e7d_1b52_a9f3);

/// The `Detail` of a "Gmail Message Received" event. Never a token or a secret: only what
/// Gmail says about the message. Its JSON Schema is `docs/event-detail.schema.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Detail {
    pub account: String,
    pub id: String,
    pub thread_id: String,
    pub history_id: String,
    pub label_ids: Vec<String>,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub date: String,
    /// Gmail's `internalDate` (when Gmail received the message), RFC 3339 in UTC.
    pub internal_date: String,
    pub snippet: String,
    pub size_estimate: u64,
    /// The same account and message id always give the same value: subscribers drop
    /// duplicates by it.
    pub event_id: String,
}

/// The `event_id` of a message in a mailbox: a UUID v5 of the account and the message id.
pub fn event_id(account: &str, message_id: &str) -> String {
    let name = format!("{}\n{message_id}", account.to_ascii_lowercase());
    uuid::Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes()).to_string()
}

/// One entry ready for `PutEvents`: its `Detail` JSON, within EventBridge's size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub event_id: String,
    pub detail: String,
}

impl Entry {
    /// The entry of `detail`, cut to fit: the snippet first, then the subject, the
    /// recipients, the sender, the date, the thread and history ids, each to what still
    /// fits (at a character boundary), then the label ids from the last; the message id only
    /// if nothing else is left (an answer no real Gmail gives). An entry always goes out:
    /// one that cannot fit never blocks the mailbox's later mail.
    pub fn of(detail: &Detail) -> Entry {
        let mut detail = detail.clone();
        let mut json = to_json(&detail);
        let over = |json: &str| entry_size(json).saturating_sub(MAX_ENTRY_BYTES);
        for field in Field::CUT_ORDER {
            let excess = over(&json);
            if excess == 0 {
                break;
            }
            let text = field.of(&mut detail);
            // Each byte cut takes at least one byte out of the JSON (escapes take more).
            let keep = text.len().saturating_sub(excess);
            truncate(text, keep);
            json = to_json(&detail);
        }
        while over(&json) > 0 && detail.label_ids.pop().is_some() {
            json = to_json(&detail);
        }
        if over(&json) > 0 {
            let keep = detail.id.len().saturating_sub(over(&json)).max(1);
            truncate(&mut detail.id, keep);
            json = to_json(&detail);
        }
        Entry {
            event_id: detail.event_id,
            detail: json,
        }
    }

    /// The size EventBridge counts for this entry (`Source`, `DetailType`, `Detail`).
    pub fn size(&self) -> usize {
        entry_size(&self.detail)
    }
}

#[derive(Clone, Copy)]
enum Field {
    Snippet,
    Subject,
    To,
    From,
    Date,
    ThreadId,
    HistoryId,
}

impl Field {
    const CUT_ORDER: [Field; 7] = [
        Field::Snippet,
        Field::Subject,
        Field::To,
        Field::From,
        Field::Date,
        Field::ThreadId,
        Field::HistoryId,
    ];

    fn of(self, detail: &mut Detail) -> &mut String {
        match self {
            Field::Snippet => &mut detail.snippet,
            Field::Subject => &mut detail.subject,
            Field::To => &mut detail.to,
            Field::From => &mut detail.from,
            Field::Date => &mut detail.date,
            Field::ThreadId => &mut detail.thread_id,
            Field::HistoryId => &mut detail.history_id,
        }
    }
}

fn to_json(detail: &Detail) -> String {
    // A struct of strings and numbers always serialises.
    serde_json::to_string(detail).unwrap_or_default()
}

fn entry_size(detail_json: &str) -> usize {
    SOURCE.len() + DETAIL_TYPE.len() + detail_json.len()
}

fn truncate(text: &mut String, max_bytes: usize) {
    if text.len() <= max_bytes {
        return;
    }
    let mut cut = max_bytes;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
}

/// Why one entry was not accepted (EventBridge's `ErrorCode`, never its content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    pub code: String,
}

/// Why a `PutEvents` call failed as a whole.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    /// Throttled, a 5xx, a timeout after the SDK's retries: try again later.
    #[error("PutEvents failed: {detail}")]
    Unavailable { detail: String },
    /// Access denied, no such bus, a request EventBridge will never take.
    #[error("PutEvents was refused: {detail}")]
    Refused { detail: String },
}

/// An event bus (the port): one `PutEvents` call.
pub trait EventBus: Send + Sync {
    /// Puts at most [`MAX_ENTRIES_PER_CALL`] entries; one result per entry, in order.
    fn put(
        &self,
        entries: &[Entry],
    ) -> impl Future<Output = Result<Vec<Result<(), EntryFailure>>, BusError>> + Send;
}

/// No bus: for runs without events (`EVENT_BUS_NAME` unset), where nothing is published.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBus;

impl EventBus for NoBus {
    async fn put(&self, _: &[Entry]) -> Result<Vec<Result<(), EntryFailure>>, BusError> {
        Err(BusError::Refused {
            detail: "no event bus is configured (EVENT_BUS_NAME)".into(),
        })
    }
}

/// A bus that may not be configured: `None` behaves as [`NoBus`].
impl<B: EventBus> EventBus for Option<B> {
    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<(), EntryFailure>>, BusError> {
        match self {
            Some(bus) => bus.put(entries).await,
            None => NoBus.put(entries).await,
        }
    }
}

/// Events could not all be published: nothing after the first unpublished one may be
/// considered done.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{unpublished} of {total} events could not be published after {attempts} attempts{}", last.as_deref().map(|l| format!(" (last: {l})")).unwrap_or_default())]
pub struct PublishError {
    pub unpublished: usize,
    pub total: usize,
    pub attempts: u32,
    /// The last error code or call failure.
    pub last: Option<String>,
    /// How many entries, from the start, are known to be published.
    pub published_prefix: usize,
}

/// Publishes `entries` in order, in calls of at most 10 entries and 256 KB, sending again
/// only the entries that failed (with backoff), at most `policy.max_attempts` rounds.
/// Returns how many were published (all of them), or which prefix is known published.
pub async fn publish(
    bus: &impl EventBus,
    entries: &[Entry],
    policy: &RetryPolicy,
) -> Result<usize, PublishError> {
    let mut done = vec![false; entries.len()];
    let mut last: Option<String> = None;
    let mut round = 0;
    loop {
        round += 1;
        let pending: Vec<usize> = (0..entries.len()).filter(|&i| !done[i]).collect();
        if pending.is_empty() {
            return Ok(entries.len());
        }
        for batch in batches(&pending, entries) {
            let chunk: Vec<Entry> = batch.iter().map(|&i| entries[i].clone()).collect();
            match bus.put(&chunk).await {
                Ok(results) => {
                    for (&i, result) in batch.iter().zip(results) {
                        match result {
                            Ok(()) => done[i] = true,
                            Err(failure) => last = Some(failure.code),
                        }
                    }
                }
                Err(BusError::Refused { detail }) => {
                    return Err(failed(&done, round, Some(detail)));
                }
                Err(BusError::Unavailable { detail }) => last = Some(detail),
            }
        }
        if done.iter().all(|d| *d) {
            return Ok(entries.len());
        }
        let Some(delay) = policy.delay_after(round, None) else {
            return Err(failed(&done, round, last));
        };
        tracing::warn!(
            unpublished = done.iter().filter(|d| !**d).count(),
            last = last.as_deref().unwrap_or_default(),
            "some events were not accepted; sending those again"
        );
        tokio::time::sleep(delay).await;
    }
}

fn failed(done: &[bool], attempts: u32, last: Option<String>) -> PublishError {
    PublishError {
        unpublished: done.iter().filter(|d| !**d).count(),
        total: done.len(),
        attempts,
        last,
        published_prefix: done.iter().take_while(|d| **d).count(),
    }
}

/// Groups `pending` (indices into `entries`) into calls of at most 10 entries and 256 KB.
fn batches(pending: &[usize], entries: &[Entry]) -> Vec<Vec<usize>> {
    let mut calls: Vec<Vec<usize>> = Vec::new();
    let mut size = 0;
    for &i in pending {
        let entry_size = entries[i].size();
        match calls.last_mut() {
            Some(call)
                if call.len() < MAX_ENTRIES_PER_CALL && size + entry_size <= MAX_ENTRY_BYTES =>
            {
                call.push(i);
                size += entry_size;
            }
            _ => {
                calls.push(vec![i]);
                size = entry_size;
            }
        }
    }
    calls
}

/// An in-memory bus for unit tests: accepts everything, or fails scripted entries.
#[derive(Debug, Default)]
pub struct MemoryBus {
    state: std::sync::Mutex<MemoryBusState>,
}

#[derive(Debug, Default)]
struct MemoryBusState {
    published: Vec<Entry>,
    calls: usize,
    /// Per call, in order: which positions fail (`None`: the whole call fails).
    script: std::collections::VecDeque<Option<Vec<usize>>>,
}

impl MemoryBus {
    /// The next call fails the entries at `positions` (or as a whole, with `None`).
    pub fn fail_next(&self, positions: Option<Vec<usize>>) {
        self.lock().script.push_back(positions);
    }

    pub fn published(&self) -> Vec<Entry> {
        self.lock().published.clone()
    }

    pub fn calls(&self) -> usize {
        self.lock().calls
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryBusState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl EventBus for MemoryBus {
    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<(), EntryFailure>>, BusError> {
        let mut state = self.lock();
        state.calls += 1;
        if entries.len() > MAX_ENTRIES_PER_CALL
            || entries.iter().map(Entry::size).sum::<usize>() > MAX_ENTRY_BYTES
        {
            return Err(BusError::Refused {
                detail: "ValidationException: too many entries or too large".into(),
            });
        }
        let failing = match state.script.pop_front() {
            Some(None) => {
                return Err(BusError::Unavailable {
                    detail: "ThrottlingException".into(),
                });
            }
            Some(Some(positions)) => positions,
            None => Vec::new(),
        };
        let mut results = Vec::new();
        for (position, entry) in entries.iter().enumerate() {
            if failing.contains(&position) {
                results.push(Err(EntryFailure {
                    code: "InternalFailure".into(),
                }));
            } else {
                state.published.push(entry.clone());
                results.push(Ok(()));
            }
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn detail(id: &str) -> Detail {
        Detail {
            account: "me@example.com".into(),
            id: id.into(),
            thread_id: id.into(),
            history_id: "100".into(),
            label_ids: vec!["INBOX".into()],
            from: "Ann <ann@example.org>".into(),
            to: "me@example.com".into(),
            subject: "Lunch?".into(),
            date: "Mon, 23 Nov 2026 10:02:11 +0000".into(),
            internal_date: "2026-11-23T10:02:11Z".into(),
            snippet: "Are you free".into(),
            size_estimate: 2345,
            event_id: event_id("me@example.com", id),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        }
    }

    #[test]
    fn event_ids_are_the_same_for_the_same_message_and_differ_otherwise() {
        assert_eq!(
            event_id("me@example.com", "18c2"),
            event_id("Me@Example.com", "18c2")
        );
        assert_ne!(
            event_id("me@example.com", "18c2"),
            event_id("me@example.com", "18c3")
        );
        assert_ne!(
            event_id("a@example.com", "18c2"),
            event_id("b@example.com", "18c2")
        );
        assert_eq!(event_id("me@example.com", "x").len(), 36);
    }

    #[test]
    fn an_oversized_entry_is_cut_snippet_first_and_always_fits() {
        let mut big = detail("1");
        big.snippet = "s".repeat(300_000);
        let entry = Entry::of(&big);
        assert!(entry.size() <= MAX_ENTRY_BYTES);
        let back: Detail = serde_json::from_str(&entry.detail).unwrap();
        assert_eq!(
            back.subject, "Lunch?",
            "the subject is kept while the snippet suffices"
        );
        assert!(back.snippet.len() > 200_000);

        let mut worse = detail("2");
        worse.snippet = "\u{1}".repeat(100_000); // 6 bytes each in JSON
        worse.subject = "é".repeat(200_000);
        worse.from = "\"".repeat(100_000);
        let entry = Entry::of(&worse);
        assert!(entry.size() <= MAX_ENTRY_BYTES, "{}", entry.size());
        let back: Detail = serde_json::from_str(&entry.detail).unwrap();
        assert_eq!(back.event_id, worse.event_id);
        assert_eq!(back.id, "2");
    }

    #[tokio::test]
    async fn only_failed_entries_are_sent_again_in_calls_of_at_most_ten() {
        let bus = MemoryBus::default();
        let entries: Vec<Entry> = (0..23)
            .map(|i| Entry::of(&detail(&i.to_string())))
            .collect();
        bus.fail_next(Some(vec![1, 7])); // first call: entries 1 and 7 fail
        bus.fail_next(None); // second call: throttled as a whole
        let published = publish(&bus, &entries, &policy()).await.unwrap();
        assert_eq!(published, 23);
        // Round one: 10 + 10 + 3; round two: the 12 that failed, in two calls.
        assert_eq!(bus.calls(), 5);
        let mut ids: Vec<String> = bus.published().into_iter().map(|e| e.event_id).collect();
        assert_eq!(ids.len(), 23, "each entry published once");
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 23);
    }

    #[tokio::test]
    async fn entries_that_keep_failing_end_in_an_error_naming_the_published_prefix() {
        let bus = MemoryBus::default();
        let entries: Vec<Entry> = (0..5).map(|i| Entry::of(&detail(&i.to_string()))).collect();
        // Entry 2 fails in the first call, then alone in each call that sends it again.
        bus.fail_next(Some(vec![2]));
        bus.fail_next(Some(vec![0]));
        bus.fail_next(Some(vec![0]));
        let error = publish(&bus, &entries, &policy()).await.unwrap_err();
        assert_eq!(error.unpublished, 1);
        assert_eq!(error.published_prefix, 2);
        assert_eq!(error.attempts, 3);
        assert_eq!(error.last.as_deref(), Some("InternalFailure"));
    }

    #[test]
    fn any_field_can_be_cut_and_an_entry_that_still_cannot_fit_goes_out_without_them() {
        let mut date = detail("3");
        date.date = "D".repeat(300_000);
        let entry = Entry::of(&date);
        assert!(entry.size() <= MAX_ENTRY_BYTES);
        let back: Detail = serde_json::from_str(&entry.detail).unwrap();
        // The fields before it in the order went first, then the date to what fits.
        assert_eq!((back.snippet.as_str(), back.subject.as_str()), ("", ""));
        assert!(back.date.len() > 200_000);
        assert_eq!(back.id, "3");

        let mut hostile = detail("4");
        hostile.thread_id = "\u{1}".repeat(50_000);
        hostile.history_id = "9".repeat(100_000);
        hostile.label_ids = vec!["L".repeat(1_000); 300];
        hostile.snippet = "s".repeat(100_000);
        let entry = Entry::of(&hostile);
        assert!(entry.size() <= MAX_ENTRY_BYTES, "{}", entry.size());
        let back: Detail = serde_json::from_str(&entry.detail).unwrap();
        assert_eq!(
            (back.id.as_str(), back.event_id),
            ("4", hostile.event_id.clone())
        );
        assert_eq!(back.snippet, "");
        assert!(back.label_ids.len() < 300);

        let mut absurd = detail("5");
        absurd.id = "i".repeat(400_000);
        let entry = Entry::of(&absurd);
        assert!(entry.size() <= MAX_ENTRY_BYTES, "{}", entry.size());
        assert_eq!(entry.event_id, absurd.event_id);
    }

    #[test]
    fn calls_respect_the_request_size_as_well_as_the_count() {
        let mut big = detail("1");
        big.snippet = "s".repeat(100_000);
        let entries: Vec<Entry> = (0..5).map(|_| Entry::of(&big)).collect();
        let calls = batches(&[0, 1, 2, 3, 4], &entries);
        assert_eq!(calls, vec![vec![0, 1], vec![2, 3], vec![4]]);
    }
}
