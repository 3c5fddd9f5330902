//! The promises at their edges, tested from outside: the release binaries under the Lambda
//! Runtime API (or the functions' handlers) against moto and the fake Google, each edge one
//! that was found broken — a save that never ended, a mailbox never kept, lost and stalled
//! events, a stored date that aborted every run.

use chrono::{TimeDelta, Utc};
use integration_tests::events::{HttpEvent, scheduled_event};
use integration_tests::fake_google::FakeMessage;
use integration_tests::runtime_api::{FunctionProcess, Outcome, release_binary};
use integration_tests::ssm_proxy::SsmProxy;
use integration_tests::subscriber::Subscriber;
use integration_tests::{World, assert_no_secret, google_auth_token, minutes_from_now, moto};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// A token as google-auth writes it, with the lineage of a value restored into a fresh
/// parameter: it names version 5 of a parameter at version 1.
fn restored_token(world: &World) -> (Value, String) {
    let (mut token, refresh, _) =
        google_auth_token(&world.google, "me@example.com", minutes_from_now(-5));
    token["gmail_oauth"] = json!({"written_by": "refresh", "origin": 5, "since": 5});
    (token, refresh)
}

#[tokio::test]
async fn a_token_whose_lineage_names_versions_the_parameter_never_had_is_refreshed_with_one_check()
{
    let world = World::new("edges-lineage").await;
    let (token, _) = restored_token(&world);
    moto::put(&world.ssm, &world.token_param, &token.to_string()).await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    let env = world.env(&[("AWS_ENDPOINT_URL", proxy.endpoint.as_str())]);
    let function = FunctionProcess::start(release_binary("gmail-refresh"), env).await;
    function.api.set_timeout(Duration::from_secs(10));
    let started = Instant::now();
    let summary = function.invoke(scheduled_event()).await.response();
    assert_eq!(summary["token_refreshed"], true, "{summary}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The run's read, one write, one check: not GetParameters until the deadline.
    let counts = proxy.counts();
    assert_eq!(
        (counts.reads, counts.writes),
        (2, 1),
        "{:?}",
        proxy.requests()
    );
    let stored = world.stored_token().await.unwrap();
    assert_eq!(stored["gmail_oauth"]["origin"], 1, "{stored}");
    assert!(
        function
            .logs()
            .contains("a version this parameter never had"),
        "{}",
        function.logs()
    );
}

#[tokio::test]
async fn a_revoked_grant_written_back_after_an_unlink_is_reauthorization_required_not_a_timeout() {
    // What an unlink after a re-link leaves when a run's late write re-creates the
    // parameter: version 1, a grant Google refuses, a lineage naming version 5.
    let world = World::new("edges-recreated").await;
    let (token, refresh) = restored_token(&world);
    world.google.revoke(&refresh);
    moto::put(&world.ssm, &world.token_param, &token.to_string()).await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    let env = world.env(&[("AWS_ENDPOINT_URL", proxy.endpoint.as_str())]);
    let function = FunctionProcess::start(release_binary("gmail-refresh"), env).await;
    function.api.set_timeout(Duration::from_secs(10));
    match function.invoke(scheduled_event()).await {
        Outcome::Error { error_type, .. } => assert_eq!(error_type, "ReauthorizationRequired"),
        Outcome::Response(value) => panic!("expected an error, got {value}"),
    }
    let counts = proxy.counts();
    assert!(counts.reads <= 3, "{:?}", proxy.requests());
    assert_eq!(counts.writes, 0, "the stored token is left as it was");
}

#[tokio::test]
async fn a_mailbox_whose_local_part_is_checkpoint_is_linked_kept_and_listed() {
    let world = World::new("edges-checkpoint").await;
    world.google.set_account("checkpoint@example.com");
    let env = world.env(&[world.many(), ("ALLOWED_ACCOUNTS", "@example.com")]);
    let callback = FunctionProcess::start(release_binary("oauth-callback"), env.clone()).await;
    let authorize = callback
        .invoke(HttpEvent::get("/authorize").json())
        .await
        .response();
    let cookie = authorize["cookies"][0]
        .as_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let location = authorize["headers"]["location"]
        .as_str()
        .unwrap()
        .to_owned();
    let callback_url = world.google.consent(&location).await;
    let linked = callback
        .invoke(HttpEvent::get_url(&callback_url).cookie(&cookie).json())
        .await
        .response();
    assert_eq!(linked["statusCode"], 200, "{linked}");
    let name = world.mailbox_param("checkpoint@example.com");
    assert!(name.ends_with("/example.com/X63heckpoint"), "{name}");
    // Another mailbox of the domain's pseudo-address would have had this as its checkpoint.
    assert!(
        moto::read(
            &world.ssm,
            &format!("{}example.com/checkpoint", world.mailboxes_path)
        )
        .await
        .is_none()
    );

    let subscriber = Subscriber::start("checkpoint").await;
    let mut env = env;
    env.push(("EVENT_BUS_NAME".into(), subscriber.bus.clone()));
    let refresh = FunctionProcess::start(release_binary("gmail-refresh"), env).await;
    let report = refresh.invoke(scheduled_event()).await.response();
    assert_eq!(report["totals"]["mailboxes"], 1, "{report}");
    assert_eq!(report["mailboxes"][0]["account"], "checkpoint@example.com");
    assert_eq!(report["mailboxes"][0]["status"], "ok");
    // Its own checkpoint is beside its token, and the next run publishes its new mail.
    assert!(
        moto::read(&world.ssm, &format!("{name}/checkpoint"))
            .await
            .is_some()
    );
    let delivered = world.google.deliver(FakeMessage::numbered(1));
    let report = refresh.invoke(scheduled_event()).await.response();
    assert_eq!(report["totals"]["events_published"], 1, "{report}");
    let received = subscriber.receive().await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].id(), delivered);
    assert_eq!(received[0].detail["account"], "checkpoint@example.com");
}

#[tokio::test]
async fn a_checkpoint_with_an_absurd_date_is_that_mailboxs_invalid_configuration_and_the_run_goes_on()
 {
    let world = World::new("edges-date").await;
    for account in ["me@example.com", "you@example.com"] {
        world.seed_mailbox(account, minutes_from_now(30)).await;
    }
    let bad = format!("{}/checkpoint", world.mailbox_param("me@example.com"));
    moto::put(
        &world.ssm,
        &bad,
        r#"{"history_id": "1", "as_of": "-262143-01-01T00:00:00Z"}"#,
    )
    .await;
    let subscriber = Subscriber::start("date").await;
    let env = world.env(&[world.many(), ("EVENT_BUS_NAME", subscriber.bus.as_str())]);
    let function = FunctionProcess::start(release_binary("gmail-refresh"), env).await;
    // Twice: the process lives on (a panic aborts it and every mailbox of every run).
    for _ in 0..2 {
        let report = function.invoke(scheduled_event()).await.response();
        let by_account = |a: &str| {
            report["mailboxes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["account"] == a)
                .cloned()
                .unwrap_or_default()
        };
        let me = by_account("me@example.com");
        assert_eq!(me["status"], "invalid", "{report}");
        assert_eq!(me["error_type"], "InvalidConfiguration");
        assert!(me["error"].as_str().unwrap().contains(&bad), "{me}");
        assert_eq!(by_account("you@example.com")["status"], "ok", "{report}");
    }
    // Never overwritten silently.
    assert!(
        moto::read(&world.ssm, &bad)
            .await
            .unwrap()
            .value
            .contains("-262143")
    );
}

/// Runs `app` until a run neither resynchronises nor leaves mail for the next (at most
/// `runs` times): how many runs that took, or `None` if it never settled.
async fn until_settled(app: &integration_tests::RefreshApp, runs: usize) -> Option<usize> {
    for run in 1..=runs {
        let summary = app.run(Utc::now()).await.expect("run").summary();
        let events = summary.events.expect("events");
        if !events.resynchronised && events.events_published == 0 {
            return Some(run);
        }
    }
    None
}

#[tokio::test]
async fn a_backlog_cut_by_max_events_is_published_whole_even_when_the_history_then_expires() {
    let world = World::new("edges-backlog").await;
    let subscriber = Subscriber::start("backlog").await;
    world
        .seed_token("me@example.com", minutes_from_now(30))
        .await;
    let env = [
        ("EVENT_BUS_NAME", subscriber.bus.as_str()),
        ("MAX_EVENTS_PER_RUN", "5"),
    ];
    let app = world.refresh_app(&env).await;
    app.run(Utc::now())
        .await
        .expect("first run: the checkpoint starts");
    // Twelve messages that arrived three hours ago, a minute apart.
    let arrived = Utc::now() - TimeDelta::hours(3);
    let mut delivered = Vec::new();
    for n in 0..12 {
        world.google.set_clock(arrived + TimeDelta::minutes(n));
        delivered.push(world.google.deliver(FakeMessage::numbered(n as usize)));
    }
    let cut = app.run(Utc::now()).await.expect("run").summary();
    assert_eq!(cut.events.unwrap().events_published, 5);
    let stored: Value = serde_json::from_str(
        &moto::read(&world.ssm, &format!("{}/checkpoint", world.token_param))
            .await
            .unwrap()
            .value,
    )
    .unwrap();
    let as_of = chrono::DateTime::parse_from_rfc3339(stored["as_of"].as_str().unwrap()).unwrap();
    assert!(
        as_of <= arrived + TimeDelta::minutes(5),
        "the checkpoint claims {as_of}, past the first message left out"
    );
    // Gmail forgets the history before the next run: the resynchronisation lists by time.
    world.google.expire_history();
    assert!(
        until_settled(&app, 10).await.is_some(),
        "the resynchronisation never settled"
    );
    assert_none_lost(&subscriber, &delivered).await;
}

#[tokio::test]
async fn a_resynchronisation_moves_on_when_more_than_max_events_messages_share_a_second() {
    let world = World::new("edges-second").await;
    let subscriber = Subscriber::start("second").await;
    world
        .seed_token("me@example.com", minutes_from_now(30))
        .await;
    let env = [
        ("EVENT_BUS_NAME", subscriber.bus.as_str()),
        ("MAX_EVENTS_PER_RUN", "5"),
    ];
    let app = world.refresh_app(&env).await;
    app.run(Utc::now())
        .await
        .expect("first run: the checkpoint starts");
    // Twelve messages within one second, then another a minute later; the history goes.
    let second = Utc::now() - TimeDelta::minutes(10);
    let mut delivered = Vec::new();
    for n in 0..12 {
        world
            .google
            .set_clock(second + TimeDelta::milliseconds(n * 50));
        delivered.push(world.google.deliver(FakeMessage::numbered(n as usize)));
    }
    world.google.set_clock(second + TimeDelta::minutes(1));
    delivered.push(world.google.deliver(FakeMessage::numbered(99)));
    world.google.expire_history();
    assert!(
        until_settled(&app, 10).await.is_some(),
        "the resynchronisation stalled"
    );
    assert_none_lost(&subscriber, &delivered).await;
}

#[tokio::test]
async fn the_one_tokens_checkpoint_belongs_to_its_account_and_a_new_account_starts_afresh() {
    let world = World::new("edges-account").await;
    let subscriber = Subscriber::start("account").await;
    world
        .seed_token("me@example.com", minutes_from_now(30))
        .await;
    let env = [
        ("EVENT_BUS_NAME", subscriber.bus.as_str()),
        ("ALLOWED_ACCOUNTS", "me@example.com,you@example.com"),
    ];
    let app = world.refresh_app(&env).await;
    app.run(Utc::now()).await.expect("first run");
    let checkpoint = || async {
        let raw = moto::read(&world.ssm, &format!("{}/checkpoint", world.token_param))
            .await
            .unwrap()
            .value;
        serde_json::from_str::<Value>(&raw).unwrap()
    };
    assert_eq!(checkpoint().await["account"], "me@example.com");
    // Another allowed account consents into the one token.
    world.google.set_account("you@example.com");
    let callback = world.callback_app(&env).await;
    assert_eq!(world.link_through(&callback).await.status_code, 200);
    world.google.deliver(FakeMessage::numbered(1));
    let summary = app.run(Utc::now()).await.expect("run").summary();
    assert_eq!(summary.account, "you@example.com");
    // Its events start from now: nothing of the other mailbox's history is published.
    assert_eq!(summary.events.unwrap().events_published, 0);
    assert_eq!(checkpoint().await["account"], "you@example.com");
    assert!(subscriber.receive().await.is_empty());
    assert_no_secret(
        &integration_tests::captured_logs(),
        &world.secrets(),
        "the log",
    );
}

/// Every message in `delivered` reached `subscriber` (duplicates allowed, none lost).
async fn assert_none_lost(subscriber: &Subscriber, delivered: &[String]) {
    let received: HashSet<String> = subscriber
        .receive()
        .await
        .iter()
        .map(|e| e.id().to_owned())
        .collect();
    let missing: Vec<&String> = delivered
        .iter()
        .filter(|id| !received.contains(*id))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
}
