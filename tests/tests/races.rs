//! A consent (the callback writing a new token) and a scheduled refresh (holding the old
//! one) interleave; SSM has no compare-and-swap. Both interleavings are forced here, and in
//! both the newer consent is what stays stored.

use chrono::Utc;
use integration_tests::ssm_proxy::SsmProxy;
use integration_tests::{World, minutes_from_now, moto};

/// A complete consent through the callback (its store talks to moto directly).
async fn consent(world: &World) -> String {
    let app = world.callback_app(&[]).await;
    assert_eq!(world.link_through(&app).await.status_code, 200);
    world.stored_token().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_consent_while_the_refresh_is_at_google_wins() {
    let world = World::new("race-at-google").await;
    let (old_refresh, _) = world
        .seed_token("me@example.com", minutes_from_now(-5))
        .await;
    let refresh = world.refresh_app(&[]).await;
    let held = world.google.hold_refresh();

    let run = tokio::spawn(async move { refresh.run(Utc::now()).await.map(|s| s.token_refreshed) });
    held.reached().await;
    let new_refresh = consent(&world).await;
    let consent_version = world.token_version().await;
    held.release();
    assert!(run.await.unwrap().expect("the refresh run itself succeeds"));

    let stored = world.stored_token().await.unwrap();
    assert_eq!(stored["refresh_token"], new_refresh.as_str());
    assert_ne!(new_refresh, old_refresh);
    assert_eq!(
        world.token_version().await,
        consent_version,
        "the refresh did not write"
    );
}

#[tokio::test]
async fn a_consent_between_the_refresh_check_and_its_write_is_put_back_on_top() {
    let world = World::new("race-at-ssm").await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    world
        .seed_token("me@example.com", minutes_from_now(-5))
        .await;
    let seeded = world.token_version().await;
    let refresh = world.refresh_app_via(&proxy).await;
    // The refresh's write is held after its re-check read; the consent writes meanwhile.
    let held = proxy.hold("PutParameter");

    let run = tokio::spawn(async move { refresh.run(Utc::now()).await.map(|s| s.token_refreshed) });
    held.reached().await;
    let new_refresh = consent(&world).await;
    held.release();
    assert!(run.await.unwrap().expect("the refresh run itself succeeds"));

    let stored = world.stored_token().await.unwrap();
    assert_eq!(
        stored["refresh_token"],
        new_refresh.as_str(),
        "the consent's token is on top"
    );
    assert_eq!(stored["account"], "me@example.com");
    // seeded, the consent, the refresh's late write, the consent put back.
    assert_eq!(world.token_version().await, seeded + 3);
    let operations = proxy.requests();
    assert_eq!(
        operations.iter().filter(|o| *o == "PutParameter").count(),
        2,
        "{operations:?}"
    );
}
