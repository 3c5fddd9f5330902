//! A subscriber of the events, as a user sets one up: an event bus in moto, a rule matching
//! `{"source": ["gmail-oauth"]}`, and an SQS queue as its target. The tests read the queue
//! exactly as a subscriber would, and check every event against the JSON Schema that ships
//! in `docs/`.

use crate::moto;
use serde_json::Value;

/// The JSON Schema of the event's `Detail`, as it ships.
pub const DETAIL_SCHEMA: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/event-detail.schema.json"
));

/// An event read from the queue: its envelope and `Detail`.
#[derive(Debug, Clone)]
pub struct Received {
    pub envelope: Value,
    pub detail: Value,
}

impl Received {
    pub fn id(&self) -> &str {
        self.detail["id"].as_str().unwrap_or_default()
    }

    pub fn event_id(&self) -> &str {
        self.detail["event_id"].as_str().unwrap_or_default()
    }
}

/// A bus with a rule routing the project's events to a queue.
pub struct Subscriber {
    pub bus: String,
    pub queue_url: String,
    sqs: aws_sdk_sqs::Client,
    schema: jsonschema::Validator,
}

impl Subscriber {
    /// Creates the bus, the queue and the rule in moto (names unique to `test`).
    pub async fn start(test: &str) -> Subscriber {
        let sdk = moto::sdk_config(&moto::moto().endpoint).load().await;
        let events = aws_sdk_eventbridge::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let suffix = moto::unique_prefix(test)
            .rsplit('-')
            .next()
            .unwrap_or("x")
            .to_owned();
        let bus = format!("gmail-{test}-{suffix}");
        events
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("create_event_bus on moto");
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("mail-{test}-{suffix}"))
            .send()
            .await
            .expect("create_queue on moto")
            .queue_url
            .expect("a queue URL");
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("get_queue_attributes on moto")
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("the queue's ARN");
        events
            .put_rule()
            .name("gmail-to-queue")
            .event_bus_name(&bus)
            .event_pattern(
                r#"{"source": ["gmail-oauth"], "detail-type": ["Gmail Message Received"]}"#,
            )
            .send()
            .await
            .expect("put_rule on moto");
        events
            .put_targets()
            .rule("gmail-to-queue")
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(queue_arn)
                    .build()
                    .expect("a target"),
            )
            .send()
            .await
            .expect("put_targets on moto");
        let schema_json: Value = serde_json::from_str(DETAIL_SCHEMA).expect("the schema is JSON");
        let schema = jsonschema::validator_for(&schema_json).expect("a valid JSON Schema");
        Subscriber {
            bus,
            queue_url,
            sqs,
            schema,
        }
    }

    /// Every event waiting in the queue (read, checked against the schema, deleted).
    /// Panics if an event is not the project's or its `Detail` breaks the schema.
    pub async fn receive(&self) -> Vec<Received> {
        let mut received = Vec::new();
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive_message on moto");
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                return received;
            }
            for message in messages {
                let body = message.body.clone().unwrap_or_default();
                let envelope: Value = serde_json::from_str(&body).expect("an event envelope");
                assert_eq!(envelope["source"], "gmail-oauth", "{envelope}");
                assert_eq!(envelope["detail-type"], "Gmail Message Received");
                let detail = envelope["detail"].clone();
                if let Err(error) = self.schema.validate(&detail) {
                    panic!("an event breaks docs/event-detail.schema.json: {error}: {detail}");
                }
                received.push(Received { envelope, detail });
                if let Some(handle) = message.receipt_handle {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("delete_message on moto");
                }
            }
        }
    }
}
