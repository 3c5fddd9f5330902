//! New mail as EventBridge events, end to end: the refresh function against moto's SSM and
//! EventBridge (which delivers through a rule to an SQS queue) and the fake Google's
//! history. The queue is read as a subscriber reads it; every event is checked against
//! `docs/event-detail.schema.json`.

use aws_sdk_ssm::types::ParameterType;
use chrono::Utc;
use gmail_refresh::Output;
use integration_tests::fake_google::FakeMessage;
use integration_tests::ssm_proxy::{SsmFault, SsmProxy};
use integration_tests::subscriber::Subscriber;
use integration_tests::{RefreshApp, World, minutes_from_now, moto};
use std::collections::HashSet;

fn ids(events: &[integration_tests::subscriber::Received]) -> Vec<String> {
    events.iter().map(|e| e.id().to_owned()).collect()
}

async fn checkpoint(world: &World, token_param: &str) -> Option<moto::Stored> {
    moto::read(&world.ssm, &format!("{token_param}/checkpoint")).await
}

/// A world with one linked mailbox (the one token), a subscriber's bus and queue, and the
/// refresh function publishing to it, after the first run started the checkpoint.
async fn started(test: &str) -> (World, Subscriber, RefreshApp) {
    let world = World::new(&format!("events-{test}")).await;
    let subscriber = Subscriber::start(test).await;
    world
        .seed_token("me@example.com", minutes_from_now(30))
        .await;
    let env = [("EVENT_BUS_NAME", subscriber.bus.as_str())];
    let app = world.refresh_app(&env).await;
    app.run(Utc::now()).await.expect("first run");
    (world, subscriber, app)
}

#[tokio::test]
async fn new_mail_reaches_a_subscribers_queue_once_in_order_and_quiet_runs_cost_one_history_call() {
    let world = World::new("events-basic").await;
    let subscriber = Subscriber::start("basic").await;
    world
        .seed_token("me@example.com", minutes_from_now(30))
        .await;
    let env = [("EVENT_BUS_NAME", subscriber.bus.as_str())];
    let app = world.refresh_app(&env).await;

    // First run: the checkpoint starts now; the three old messages are not published.
    let first = app.run(Utc::now()).await.expect("first run").summary();
    assert_eq!(first.events.as_ref().map(|e| e.events_published), Some(0));
    assert_eq!(
        first.message_count, 0,
        "with events the search is not listed"
    );
    assert_eq!(world.google.list_requests(), 0);
    let stored = checkpoint(&world, &world.token_param)
        .await
        .expect("a checkpoint");
    assert_eq!(
        stored.kind,
        ParameterType::String,
        "a checkpoint is not a secret"
    );
    let start: serde_json::Value = serde_json::from_str(&stored.value).unwrap();
    assert_eq!(start["history_id"], world.google.history_id().to_string());
    assert!(subscriber.receive().await.is_empty());

    let mut delivered = Vec::new();
    for n in 10..13 {
        delivered.push(world.google.deliver(FakeMessage::numbered(n)));
    }
    // A message with another label is not published.
    world.google.deliver(FakeMessage {
        labels: vec!["SPAM".into()],
        ..FakeMessage::numbered(99)
    });
    let second = app.run(Utc::now()).await.expect("second run").summary();
    let events = second.events.expect("events in the output");
    assert_eq!(events.events_published, 3);
    assert_eq!(events.checkpoint, world.google.history_id().to_string());
    assert!(!events.resynchronised);
    let received = subscriber.receive().await;
    assert_eq!(ids(&received), delivered, "in the order they arrived");
    let detail = &received[0].detail;
    assert_eq!(detail["account"], "me@example.com");
    assert_eq!(detail["subject"], "Subject number 10");
    assert_eq!(detail["from"], "Sender 10 <sender10@example.org>");
    assert_eq!(detail["to"], "me@example.com");
    assert_eq!(detail["snippet"], "Snippet of message 10");
    assert_eq!(detail["label_ids"], serde_json::json!(["INBOX", "UNREAD"]));
    assert_eq!(
        detail["event_id"],
        gmail_oauth::events::event_id("me@example.com", &delivered[0])
    );
    assert_eq!(
        received[0].envelope["detail-type"],
        "Gmail Message Received"
    );
    let version = checkpoint(&world, &world.token_param)
        .await
        .unwrap()
        .version;

    // Nothing new: one history call (2 quota units), no get, no event, no SSM write.
    let (history, gets, units) = (
        world.google.history_requests(),
        world.google.get_requests(),
        world.google.quota_units(),
    );
    let quiet = app.run(Utc::now()).await.expect("quiet run").summary();
    assert_eq!(quiet.events.map(|e| e.events_published), Some(0));
    assert_eq!(world.google.history_requests(), history + 1);
    assert_eq!(world.google.get_requests(), gets);
    assert_eq!(world.google.quota_units(), units + 2);
    assert_eq!(
        checkpoint(&world, &world.token_param)
            .await
            .unwrap()
            .version,
        version,
        "no SSM write when nothing arrived"
    );
    assert!(subscriber.receive().await.is_empty());

    // No secret in any event.
    let all =
        serde_json::to_string(&received.iter().map(|r| &r.envelope).collect::<Vec<_>>()).unwrap();
    for secret in world.google.issued_secrets() {
        assert!(!all.contains(&secret), "an event carries a secret");
    }
    assert!(!all.contains(integration_tests::fake_google::CLIENT_SECRET));
}

#[tokio::test]
async fn mail_arriving_during_a_run_is_published_by_that_run_or_the_next() {
    let (world, subscriber, app) = started("midrun").await;

    let mut delivered = Vec::new();
    for n in 20..45 {
        delivered.push(world.google.deliver(FakeMessage::numbered(n)));
    }
    // Three more arrive after 1, 2 and 3 Gmail requests of the next run.
    for (after, n) in [(1, 50), (2, 51), (3, 52)] {
        world
            .google
            .deliver_during_run(after, FakeMessage::numbered(n));
        delivered.push(format!("msg{n:04}"));
    }
    app.run(Utc::now()).await.expect("run with mail arriving");
    app.run(Utc::now()).await.expect("the next run");
    let received = subscriber.receive().await;
    let got: HashSet<String> = ids(&received).into_iter().collect();
    for id in &delivered {
        assert!(got.contains(id), "{id} was never published");
    }
    // Duplicates only with the same event_id.
    let mut seen = std::collections::HashMap::new();
    for event in &received {
        let previous = seen.insert(event.id().to_owned(), event.event_id().to_owned());
        assert!(previous.is_none_or(|p| p == event.event_id()));
    }
}

#[tokio::test]
async fn a_history_gmail_no_longer_keeps_is_resynchronised_without_a_gap() {
    let (world, subscriber, app) = started("resync").await;
    let a = world.google.deliver(FakeMessage::numbered(60));
    let b = world.google.deliver(FakeMessage::numbered(61));
    world.google.expire_history();

    let summary = app.run(Utc::now()).await.expect("resync run").summary();
    let events = summary.events.expect("events");
    assert!(events.resynchronised);
    assert_eq!(events.checkpoint, world.google.history_id().to_string());
    let got = ids(&subscriber.receive().await);
    assert!(got.contains(&a) && got.contains(&b), "{got:?}");

    // And from the new checkpoint, history works again.
    let c = world.google.deliver(FakeMessage::numbered(62));
    let next = app.run(Utc::now()).await.expect("next run").summary();
    assert_eq!(next.events.map(|e| e.resynchronised), Some(false));
    assert_eq!(ids(&subscriber.receive().await), [c]);
}

#[tokio::test]
async fn a_message_deleted_before_its_metadata_is_skipped_not_a_failure() {
    let (world, subscriber, app) = started("deleted").await;
    let kept = world.google.deliver(FakeMessage::numbered(70));
    let gone = world.google.deliver(FakeMessage::numbered(71));
    world.google.delete_message(&gone);
    let summary = app.run(Utc::now()).await.expect("run").summary();
    assert_eq!(summary.events.map(|e| e.events_published), Some(1));
    assert_eq!(ids(&subscriber.receive().await), [kept]);
}

#[tokio::test]
async fn entries_eventbridge_refuses_are_sent_again_alone_and_the_checkpoint_waits_for_them() {
    let world = World::new("events-partial").await;
    let subscriber = Subscriber::start("partial").await;
    world
        .seed_token("me@example.com", minutes_from_now(30))
        .await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    let env = [("EVENT_BUS_NAME", subscriber.bus.as_str())];
    let app = world.refresh_app_via_patient(&proxy, &env).await;
    app.run(Utc::now()).await.expect("first run");
    let before = checkpoint(&world, &world.token_param).await.unwrap();

    let mut delivered = Vec::new();
    for n in 80..92 {
        delivered.push(world.google.deliver(FakeMessage::numbered(n)));
    }
    // The first call (10 entries) loses entries 3 and 7; the second is throttled whole.
    proxy.inject("PutEvents", SsmFault::FailEntries(vec![3, 7]));
    proxy.inject("PutEvents", SsmFault::Throttle);
    let summary = app.run(Utc::now()).await.expect("run").summary();
    assert_eq!(summary.events.map(|e| e.events_published), Some(12));
    let received = subscriber.receive().await;
    let mut got = ids(&received);
    got.sort();
    assert_eq!(got, delivered, "each exactly once");

    // When the bus keeps refusing, the run fails as Upstream and the checkpoint stays.
    let late = world.google.deliver(FakeMessage::numbered(93));
    for _ in 0..12 {
        proxy.inject("PutEvents", SsmFault::FailEntries(vec![0]));
    }
    let moved = checkpoint(&world, &world.token_param).await.unwrap();
    assert!(moved.version > before.version);
    let error = app.run(Utc::now()).await.expect_err("the bus refuses");
    let diagnostic = lambda_runtime::Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "Upstream");
    assert!(
        diagnostic.error_message.contains("publishing"),
        "{}",
        diagnostic.error_message
    );
    assert_eq!(
        checkpoint(&world, &world.token_param)
            .await
            .unwrap()
            .version,
        moved.version
    );
    proxy.clear();
    app.run(Utc::now()).await.expect("the bus is back");
    assert_eq!(ids(&subscriber.receive().await), [late]);
}

#[tokio::test]
async fn many_mailboxes_each_publish_their_own_mail_with_their_own_checkpoint() {
    let world = World::new("events-many").await;
    let subscriber = Subscriber::start("many").await;
    for account in ["ann@example.com", "bob@example.org"] {
        world.seed_mailbox(account, minutes_from_now(30)).await;
    }
    let env = [world.many(), ("EVENT_BUS_NAME", subscriber.bus.as_str())];
    let app = world.refresh_app(&env).await;
    let first = app.run(Utc::now()).await.expect("first run").report();
    assert_eq!(first.totals.ok, 2, "{first:?}");
    for account in ["ann@example.com", "bob@example.org"] {
        let stored = checkpoint(&world, &world.mailbox_param(account)).await;
        assert!(stored.is_some(), "{account} has a checkpoint");
    }
    let id = world.google.deliver(FakeMessage::numbered(100));
    let report = app.run(Utc::now()).await.expect("run").report();
    assert_eq!(report.totals.events_published, Some(2), "{report:?}");
    assert_eq!(
        report.totals.invalid, 0,
        "checkpoints are not taken for mailboxes"
    );
    let received = subscriber.receive().await;
    let mut accounts: Vec<String> = received
        .iter()
        .map(|r| r.detail["account"].as_str().unwrap_or_default().to_owned())
        .collect();
    accounts.sort();
    assert_eq!(accounts, ["ann@example.com", "bob@example.org"]);
    assert!(received.iter().all(|r| r.id() == id));
    assert_ne!(received[0].event_id(), received[1].event_id());
    let json = serde_json::to_value(Output::Many(report)).unwrap();
    assert_eq!(json["mailboxes"][0]["events_published"], 1);
    assert!(json["mailboxes"][0]["checkpoint"].is_string());
    assert_eq!(json["mailboxes"][0]["resynchronised"], false);
}
