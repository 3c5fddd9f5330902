//! `AuthorizedGmail`, the one call a user's own code makes, against moto (through the SSM
//! proxy, which counts the reads and writes) and the fake Google: the token read once and
//! kept in memory, refreshed only when expiring (and written back under the grant-keeping
//! rule), a 401 refreshed once, a revoked grant a typed error, never a browser.

use gmail_oauth::AuthorizedGmail;
use gmail_oauth::config::{CommonConfig, fixed_env};
use integration_tests::fake_google::{FakeMessage, Fault};
use integration_tests::ssm_proxy::SsmProxy;
use integration_tests::{Repo, World, minutes_from_now, moto};

async fn client(world: &World, proxy: &SsmProxy, extra: &[(&str, &str)]) -> AuthorizedGmail<Repo> {
    let common = CommonConfig::from_lookup(&fixed_env(&world.env(extra))).expect("config");
    let ssm = aws_sdk_ssm::Client::new(&moto::sdk_config(&proxy.endpoint).load().await);
    let account = extra
        .iter()
        .any(|(k, _)| *k == "MAILBOXES_PATH")
        .then_some("me@example.com");
    AuthorizedGmail::new(
        World::repository(&common, ssm),
        account,
        gmail_oauth::oauth::http_client().expect("HTTP client"),
        common.gmail_api_endpoint.clone(),
    )
    .expect("client")
    .with_authorize_url(Some("https://abc123.example/authorize".into()))
}

#[tokio::test]
async fn a_valid_token_is_read_once_and_every_later_call_costs_no_parameter_store_read() {
    let world = World::new("authorized-warm").await;
    world
        .seed_token("me@example.com", minutes_from_now(50))
        .await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    let gmail = client(&world, &proxy, &[]).await;

    let listed = gmail.list("in:inbox is:unread", 10).await.expect("list");
    assert_eq!(listed.len(), 3);
    let first = gmail
        .get(&listed[0].id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(first.subject, "Subject number 1");
    assert_eq!(gmail.get("no-such-message").await.expect("get"), None);
    let labelled = gmail
        .modify_labels(&listed[0].id, &["Label_7"], &["UNREAD"])
        .await
        .expect("modify");
    assert!(labelled.label_ids.contains(&"Label_7".to_owned()));
    assert!(!labelled.label_ids.contains(&"UNREAD".to_owned()));
    let sent = gmail
        .send(b"To: you@example.com\r\nSubject: hello\r\n\r\nHi.\r\n")
        .await
        .expect("send");
    assert_eq!(sent.label_ids, vec!["SENT".to_owned()]);
    assert_eq!(
        world.google.sent(),
        vec![b"To: you@example.com\r\nSubject: hello\r\n\r\nHi.\r\n".to_vec()]
    );
    assert_eq!(gmail.account().await.as_deref(), Some("me@example.com"));

    // Five calls: one read (the token, in memory since), no write, no refresh.
    let counts = proxy.counts();
    assert_eq!(
        (counts.reads, counts.writes),
        (1, 0),
        "{:?}",
        proxy.requests()
    );
    assert_eq!(world.google.refresh_grants(), 0);
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_once_and_written_back_under_the_grant_keeping_rule() {
    let world = World::new("authorized-refresh").await;
    let (refresh_token, _) = world
        .seed_token("me@example.com", minutes_from_now(2))
        .await;
    let before = world.token_version().await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    let gmail = client(&world, &proxy, &[]).await;
    for _ in 0..5 {
        gmail.list("in:inbox", 10).await.expect("list");
    }
    assert_eq!(world.google.refresh_grants(), 1);
    assert_eq!(world.token_version().await, before + 1);
    let stored = world.stored_token().await.expect("stored");
    assert_eq!(stored["refresh_token"], refresh_token.as_str());
    assert_eq!(stored["gmail_oauth"]["written_by"], "refresh");
    // The token, the client secrets, the write, its check, the read after it: then nothing.
    let counts = proxy.counts();
    assert_eq!(counts.writes, 1, "{:?}", proxy.requests());
    assert!(counts.reads <= 4, "{:?}", proxy.requests());
    let reads = counts.reads;
    gmail.list("in:inbox", 10).await.expect("list");
    assert_eq!(proxy.counts().reads, reads);

    // Gmail refuses the access token once: refreshed, and the call goes through.
    world.google.inject_gmail_fault(Fault::Status(401));
    gmail.list("in:inbox", 10).await.expect("list after a 401");
    assert_eq!(world.google.refresh_grants(), 2);
}

#[tokio::test]
async fn a_revoked_grant_is_reauthorization_required_and_the_token_is_left_as_it_was() {
    let world = World::new("authorized-revoked").await;
    let (refresh_token, _) = world
        .seed_token("me@example.com", minutes_from_now(-1))
        .await;
    world.google.revoke(&refresh_token);
    let before = world.token_version().await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    let gmail = client(&world, &proxy, &[]).await;
    let error = gmail.list("in:inbox", 10).await.expect_err("revoked");
    assert_eq!(error.error_type(), "ReauthorizationRequired");
    assert!(
        error
            .to_string()
            .contains("https://abc123.example/authorize"),
        "{error}"
    );
    assert_eq!(world.token_version().await, before);
    assert_eq!(proxy.counts().writes, 0);

    // Nothing stored at all: TokenNotFound, naming the parameter.
    let empty = World::new("authorized-none").await;
    let gmail = client(&empty, &proxy, &[]).await;
    let error = gmail.access_token().await.expect_err("no token");
    assert_eq!(error.error_type(), "TokenNotFound");
    assert!(error.to_string().contains(&empty.token_param), "{error}");
}

#[tokio::test]
async fn a_mailbox_under_the_path_is_named_by_its_address() {
    let world = World::new("authorized-many").await;
    world
        .seed_mailbox("me@example.com", minutes_from_now(50))
        .await;
    world
        .seed_mailbox("other@example.com", minutes_from_now(50))
        .await;
    world.google.add_message(FakeMessage::numbered(9));
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    let gmail = client(&world, &proxy, &[world.many()]).await;
    let listed = gmail.list("in:inbox", 10).await.expect("list");
    assert_eq!(listed.len(), 4);
    assert_eq!(proxy.counts().reads, 1);
}

/// `examples/label-new-mail`, a user's own Lambda, built in release and run under the
/// Runtime API: it receives the very events the scheduled run published (read from the
/// queue a rule routes them to) and labels each message, reading the token once for all of
/// them; a grant revoked meanwhile is its typed `ReauthorizationRequired`.
#[tokio::test]
async fn the_example_lambda_labels_each_new_message_from_the_events_reading_the_token_once() {
    use integration_tests::runtime_api::{FunctionProcess, Outcome, release_binary};
    use integration_tests::subscriber::Subscriber;

    let world = World::new("example-label").await;
    let (refresh_token, _) = world
        .seed_token("me@example.com", minutes_from_now(50))
        .await;
    let subscriber = Subscriber::start("example").await;
    let app = world
        .refresh_app(&[("EVENT_BUS_NAME", subscriber.bus.as_str())])
        .await;
    app.run(chrono::Utc::now())
        .await
        .expect("the first run sets the checkpoint");
    let delivered: Vec<String> = (0..3)
        .map(|n| world.google.deliver(FakeMessage::numbered(100 + n)))
        .collect();
    app.run(chrono::Utc::now())
        .await
        .expect("the run publishing them");
    let events = subscriber.receive().await;
    assert_eq!(events.len(), 3);

    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    let env = world.env(&[
        ("AWS_ENDPOINT_URL", proxy.endpoint.as_str()),
        ("LABEL_ID", "Label_7"),
    ]);
    let function = FunctionProcess::start(release_binary("label-new-mail"), env).await;
    for event in &events {
        let labelled = function.invoke(event.envelope.clone()).await.response();
        assert_eq!(labelled["account"], "me@example.com", "{labelled}");
        assert!(
            labelled["label_ids"]
                .as_array()
                .is_some_and(|l| l.iter().any(|l| l == "Label_7")),
            "{labelled}"
        );
    }
    let mut labelled: Vec<String> = world
        .google
        .modifications()
        .into_iter()
        .map(|(id, add, _)| {
            assert_eq!(add, vec!["Label_7".to_owned()]);
            id
        })
        .collect();
    labelled.sort();
    let mut expected = delivered.clone();
    expected.sort();
    assert_eq!(labelled, expected);
    // Three invocations, one execution environment: the token was read once.
    assert_eq!(proxy.counts().reads, 1, "{:?}", proxy.requests());

    world.google.revoke(&refresh_token);
    match function.invoke(events[0].envelope.clone()).await {
        Outcome::Error { error_type, .. } => assert_eq!(error_type, "ReauthorizationRequired"),
        Outcome::Response(value) => panic!("expected an error, got {value}"),
    }
    integration_tests::assert_no_secret(&function.logs(), &world.secrets(), "the example's log");
}

/// A send is repeated after a 429 (Google answers it before doing anything), never after a
/// 5xx, which may come after the message went.
#[tokio::test]
async fn a_send_is_repeated_after_a_429_and_never_after_a_5xx() {
    let world = World::new("authorized-send").await;
    world
        .seed_token("me@example.com", minutes_from_now(50))
        .await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    let gmail = client(&world, &proxy, &[]).await;
    gmail.access_token().await.expect("token");

    world.google.inject_gmail_fault(Fault::Status(503));
    let before = world.google.gmail_requests();
    let error = gmail
        .send(b"Subject: once\r\n\r\n.\r\n")
        .await
        .expect_err("503");
    assert_eq!(error.error_type(), "Upstream");
    assert_eq!(world.google.gmail_requests() - before, 1, "not repeated");

    world.google.inject_gmail_fault(Fault::TooManyRequests {
        retry_after_secs: 0,
    });
    let before = world.google.gmail_requests();
    gmail
        .send(b"Subject: twice\r\n\r\n.\r\n")
        .await
        .expect("sent on the second try");
    assert_eq!(world.google.gmail_requests() - before, 2);
    assert_eq!(
        world.google.sent(),
        vec![b"Subject: twice\r\n\r\n.\r\n".to_vec()]
    );
}
