//! Consents (the callback writing a new grant) and scheduled runs (holding an older one)
//! interleave on one parameter in moto, with the orderings the issue found broken forced
//! through the SSM proxy: a write whose answer is lost and retried, two runs at once, a
//! consent after the run's write, an unlink and a new consent. Every interleaving of a
//! smaller model is checked in `shared/tests/grant_model.rs`; these run the real adapter
//! (selectors, `LastModifiedDate`, the SDK's retries) against a real Parameter Store API.

use chrono::Utc;
use gmail_oauth::grant_keeping::Lineage;
use integration_tests::ssm_proxy::{SsmFault, SsmProxy};
use integration_tests::{World, minutes_from_now, moto};
use serde_json::Value;

/// A complete consent through the callback (its store talks to moto directly).
async fn consent(world: &World) -> String {
    let app = world.callback_app(&[]).await;
    assert_eq!(world.link_through(&app).await.status_code, 200);
    world.stored_token().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn refresh_token(stored: &Value) -> &str {
    stored["refresh_token"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_consent_while_the_refresh_is_at_google_is_what_stays_stored() {
    let world = World::new("race-at-google").await;
    let (old_refresh, _) = world
        .seed_token("me@example.com", minutes_from_now(-5))
        .await;
    let refresh = world.refresh_app(&[]).await;
    let held = world.google.hold_refresh();

    let run = tokio::spawn(async move { refresh.run(Utc::now()).await.map(|o| o.summary()) });
    held.reached().await;
    let new_refresh = consent(&world).await;
    held.release();
    let summary = run.await.unwrap().expect("the refresh run itself succeeds");
    assert!(summary.token_refreshed);

    let stored = world.stored_token().await.unwrap();
    assert_eq!(refresh_token(&stored), new_refresh);
    assert_ne!(new_refresh, old_refresh);
    // The run's write hid the consent for a moment and put it back: a heal of it is on top.
    assert_eq!(stored["gmail_oauth"]["written_by"], "heal");
}

#[tokio::test]
async fn a_write_whose_answer_is_lost_and_retried_does_not_bury_a_consent() {
    // The ordering of the issue: the consent lands just before the run's write; the write
    // commits, its answer is lost, the SDK writes it again.
    let world = World::new("race-lost-answer").await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    world
        .seed_token("me@example.com", minutes_from_now(-5))
        .await;
    let refresh = world.refresh_app_via(&proxy, &[]).await;
    let held = proxy.hold("PutParameter");
    proxy.inject("PutParameter", SsmFault::CommitThenLose);

    let run = tokio::spawn(async move { refresh.run(Utc::now()).await.map(|o| o.summary()) });
    held.reached().await;
    let new_refresh = consent(&world).await;
    held.release();
    run.await.unwrap().expect("the refresh run itself succeeds");

    let stored = world.stored_token().await.unwrap();
    assert_eq!(
        refresh_token(&stored),
        new_refresh,
        "the consent's grant is on top"
    );
    let operations = proxy.requests();
    let puts = operations.iter().filter(|o| *o == "PutParameter").count();
    // The write, the SDK's retry of it, and the heal.
    assert_eq!(puts, 3, "{operations:?}");
}

#[tokio::test]
async fn two_runs_at_once_and_a_consent_keep_the_consent() {
    let world = World::new("race-two-runs").await;
    world
        .seed_token("me@example.com", minutes_from_now(-5))
        .await;
    let first = world.refresh_app(&[]).await;
    let second = world.refresh_app(&[]).await;
    let held_first = world.google.hold_refresh();
    let held_second = world.google.hold_refresh();

    let one = tokio::spawn(async move { first.run(Utc::now()).await.map(|o| o.summary()) });
    held_first.reached().await;
    let two = tokio::spawn(async move { second.run(Utc::now()).await.map(|o| o.summary()) });
    held_second.reached().await;
    let new_refresh = consent(&world).await;
    held_second.release();
    held_first.release();
    one.await.unwrap().expect("the first run succeeds");
    two.await.unwrap().expect("the second run succeeds");

    assert_eq!(
        refresh_token(&world.stored_token().await.unwrap()),
        new_refresh
    );
}

#[tokio::test]
async fn an_unlink_and_a_new_consent_during_a_run_keep_the_new_consent() {
    let world = World::new("race-unlink").await;
    let (old_refresh, _) = world
        .seed_token("me@example.com", minutes_from_now(-5))
        .await;
    let refresh = world.refresh_app(&[]).await;
    let held = world.google.hold_refresh();

    let run = tokio::spawn(async move { refresh.run(Utc::now()).await.map(|o| o.summary()) });
    held.reached().await;
    // `gmail-oauth unlink`: revoke, delete; then the user links the mailbox again. The
    // parameter starts again at version 1.
    world.google.revoke(&old_refresh);
    world
        .ssm
        .delete_parameter()
        .name(&world.token_param)
        .send()
        .await
        .unwrap();
    let new_refresh = consent(&world).await;
    assert_eq!(world.token_version().await, 1);
    held.release();
    // The run's refresh was answered before the revocation took effect at the fake? It was
    // held before: Google now refuses it, and the run reports so without writing.
    let outcome = run.await.unwrap();
    let stored = world.stored_token().await.unwrap();
    assert_eq!(refresh_token(&stored), new_refresh, "{outcome:?}");
}

#[tokio::test]
async fn a_grant_left_buried_by_a_stopped_run_is_found_when_google_refuses_the_older_one() {
    // A run stopped between its write and its check (the deployment reserves time so this
    // does not happen; a crash can still do it) left an older grant over a consent. The
    // older grant is then revoked: the next run finds the consent below it and uses it.
    let world = World::new("race-buried").await;
    let (old_refresh, _) = world
        .seed_token("me@example.com", minutes_from_now(-5))
        .await;
    let seeded = moto::read(&world.ssm, &world.token_param).await.unwrap();
    let new_refresh = consent(&world).await;
    let mut stale: Value = serde_json::from_str(&seeded.value).unwrap();
    stale["token"] = Value::from(world.google.issue_access_token("me@example.com"));
    stale["gmail_oauth"] = serde_json::json!({"written_by": "refresh", "origin": 1, "since": 1});
    moto::put(&world.ssm, &world.token_param, &stale.to_string()).await;
    world.google.revoke(&old_refresh);

    let summary = world
        .run_refresh(&[])
        .await
        .expect("the run repairs and succeeds");
    assert!(summary.token_refreshed);
    let stored = world.stored_token().await.unwrap();
    assert_eq!(refresh_token(&stored), new_refresh);
    assert!(matches!(
        serde_json::from_value::<Value>(stored["gmail_oauth"].clone()).unwrap()["written_by"]
            .as_str(),
        Some("refresh")
    ));
    let _ = Lineage::Consent;
}
