//! The [`EventBus`] port over EventBridge's `PutEvents`, with the SDK's timeouts and
//! retries (throttling, 5xx). Entries that EventBridge refuses one by one come back as
//! their `ErrorCode`, for [`crate::events::publish`] to send again.
//!
//! The endpoint follows the SDK's `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_EVENTBRIDGE`, which
//! is how the tests point it at `moto_server` (or at a fault proxy in front of it).

use crate::events::{BusError, DETAIL_TYPE, Entry, EntryFailure, EventBus, SOURCE};
use crate::store::describe;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use std::time::Duration;

/// One bus, by name or ARN (`EVENT_BUS_NAME`).
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        EventBridgeBus {
            client,
            bus: bus.into(),
        }
    }

    /// The client from the environment, each call bounded (2 s an attempt, 6 s in all,
    /// 3 attempts), so an EventBridge outage ends a run's publishing with an error instead
    /// of hanging it.
    pub async fn from_env(bus: impl Into<String>) -> Self {
        let config = crate::store::sdk_config_from_env(
            Duration::from_secs(2),
            Duration::from_secs(6),
            3,
            Duration::from_secs(1),
        )
        .await;
        EventBridgeBus::new(aws_sdk_eventbridge::Client::new(&config), bus)
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }
}

impl EventBus for EventBridgeBus {
    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<(), EntryFailure>>, BusError> {
        let request: Vec<PutEventsRequestEntry> = entries
            .iter()
            .map(|entry| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(DETAIL_TYPE)
                    .detail(&entry.detail)
                    .build()
            })
            .collect();
        let output = self
            .client
            .put_events()
            .set_entries(Some(request))
            .send()
            .await
            .map_err(|error| match describe(&error) {
                (true, detail) => BusError::Unavailable { detail },
                (false, detail) => BusError::Refused {
                    detail: format!("{detail} (bus {})", self.bus),
                },
            })?;
        if output.failed_entry_count == 0 {
            return Ok(entries.iter().map(|_| Ok(())).collect());
        }
        let mut answers: Vec<Result<(), EntryFailure>> = output
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|result| match (result.event_id, result.error_code) {
                (_, Some(code)) => Err(EntryFailure { code }),
                (Some(_), None) => Ok(()),
                (None, None) => Err(EntryFailure {
                    code: "NoEventId".into(),
                }),
            })
            .collect();
        // An answer shorter than the request: the missing entries are unknown, so they are
        // sent again (a duplicate at worst).
        answers.resize_with(entries.len(), || {
            Err(EntryFailure {
                code: "NoAnswer".into(),
            })
        });
        Ok(answers)
    }
}
