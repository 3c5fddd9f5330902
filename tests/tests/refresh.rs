//! The scheduled refresh against moto (SSM) and the fake Google over HTTP: valid, expiring,
//! revoked and missing tokens, a Gmail 401, transient 429/503, pagination and the summary.

use chrono::Utc;
use integration_tests::fake_google::{CLIENT_SECRET, Fault};
use integration_tests::{
    World, assert_no_secret, capture_logs, captured_logs, minutes_from_now, moto,
};

#[tokio::test]
async fn a_valid_token_is_used_without_refresh_or_write() {
    capture_logs();
    let world = World::new("valid").await;
    world
        .seed_token("me@example.com", minutes_from_now(30))
        .await;
    let before = moto::read(&world.ssm, &world.token_param).await.unwrap();
    let refresh = world.refresh_app(&[]).await;

    let summary = refresh.run(Utc::now()).await.expect("run").summary();
    assert!(!summary.token_refreshed);
    assert_eq!(summary.account, "me@example.com");
    assert_eq!(summary.query, "in:inbox is:unread");
    assert_eq!(
        world.google.last_query().as_deref(),
        Some("in:inbox is:unread")
    );
    assert_eq!(summary.message_count, 3);
    assert_eq!(summary.messages[0].id, "msg0001");
    assert_eq!(summary.messages[0].thread_id, "thr0001");
    assert_eq!(summary.messages[0].from, "Sender 1 <sender1@example.org>");
    assert_eq!(summary.messages[2].subject, "Subject number 3");
    assert!(summary.messages[1].date.starts_with("Mon, 23 Nov 2026"));
    assert_eq!(world.google.refresh_grants(), 0);
    assert_eq!(world.token_version().await, before.version);
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_and_written_back_keeping_the_refresh_token() {
    let world = World::new("expiring").await;
    let (refresh_token, old_access) = world
        .seed_token("me@example.com", minutes_from_now(4))
        .await;
    let before = moto::read(&world.ssm, &world.token_param).await.unwrap();
    let refresh = world.refresh_app(&[]).await;

    let summary = refresh.run(Utc::now()).await.expect("run").summary();
    assert!(summary.token_refreshed);
    assert_eq!(world.google.refresh_grants(), 1);
    let after = moto::read(&world.ssm, &world.token_param).await.unwrap();
    assert_eq!(after.version, before.version + 1);
    assert_eq!(after.kind, aws_sdk_ssm::types::ParameterType::SecureString);
    let token: serde_json::Value = serde_json::from_str(&after.value).unwrap();
    // Google's refresh answer has no refresh_token: the stored one is kept.
    assert_eq!(token["refresh_token"], refresh_token.as_str());
    assert_ne!(token["token"], old_access.as_str());
    assert_eq!(token["expiry"], summary.expires_at.as_str());
    assert_eq!(token["client_secret"], CLIENT_SECRET);
    assert_eq!(token["universe_domain"], "googleapis.com");
    let expires = gmail_oauth::token::expiry_format::parse(&summary.expires_at).unwrap();
    assert!((expires - Utc::now()).num_seconds() > 3500);
}

#[tokio::test]
async fn an_expired_token_without_expiry_is_refreshed() {
    let world = World::new("noexpiry").await;
    let refresh_token = world.google.issue_refresh_token("me@example.com");
    let token = serde_json::json!({
        "refresh_token": refresh_token,
        "token_uri": world.google.token_uri(),
        "client_id": integration_tests::fake_google::CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": [integration_tests::fake_google::GMAIL_READONLY],
        "account": "",
        "rapt_token": "kept-as-is",
    });
    moto::put(&world.ssm, &world.token_param, &token.to_string()).await;
    let summary = world.run_refresh(&[]).await.expect("run");
    assert!(summary.token_refreshed);
    // A google-auth token has `"account": ""`: the address comes from Gmail's profile.
    assert_eq!(summary.account, "me@example.com");
    let stored = world.stored_token().await.unwrap();
    assert_eq!(stored["account"], "me@example.com");
    assert_eq!(stored["rapt_token"], "kept-as-is");
}

#[tokio::test]
async fn a_revoked_grant_requires_reauthorization_and_leaves_the_token_untouched() {
    capture_logs();
    let world = World::new("revoked").await;
    let (refresh_token, _) = world
        .seed_token("me@example.com", minutes_from_now(-10))
        .await;
    world.google.revoke(&refresh_token);
    let before = moto::read(&world.ssm, &world.token_param).await.unwrap();
    let refresh = world
        .refresh_app(&[("AUTHORIZE_URL", "https://abc123.example/authorize")])
        .await;

    let error = refresh.run(Utc::now()).await.unwrap_err();
    let diagnostic = lambda_runtime::Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "ReauthorizationRequired");
    assert!(
        diagnostic
            .error_message
            .contains("https://abc123.example/authorize"),
        "{}",
        diagnostic.error_message
    );
    assert!(diagnostic.error_message.contains("invalid_grant"));
    let after = moto::read(&world.ssm, &world.token_param).await.unwrap();
    assert_eq!(after.version, before.version);
    assert_eq!(after.value, before.value);
    assert_no_secret(
        &diagnostic.error_message,
        &world.secrets(),
        "the error message",
    );
    assert_no_secret(&captured_logs(), &world.secrets(), "the log");
}

#[tokio::test]
async fn a_missing_token_is_not_linked_naming_the_parameter_and_not_a_failed_run() {
    let world = World::new("missing").await;
    let output = world
        .refresh_app(&[("AUTHORIZE_URL", "https://abc123.example/authorize")])
        .await
        .run(Utc::now())
        .await
        .expect("a stack with nothing linked yet is not a failed run");
    let answer = serde_json::to_value(&output).unwrap();
    assert_eq!(answer["status"], "not_linked", "{answer}");
    assert_eq!(answer["token_parameter"], world.token_param.as_str());
    assert_eq!(answer["authorize_url"], "https://abc123.example/authorize");
    let metrics = gmail_refresh::metrics::RunMetrics::of(&Ok(output), &world.token_param);
    assert_eq!(metrics.not_linked, 1);
    assert!(metrics.reauthorization_required.is_empty() && metrics.failing.is_empty());
    assert_eq!(
        world.google.refresh_grants() + world.google.gmail_requests(),
        0
    );
}

#[tokio::test]
async fn missing_or_malformed_client_secrets_are_invalid_configuration() {
    let world = World::new("badsecrets").await;
    world
        .seed_token("me@example.com", minutes_from_now(30))
        .await;
    let diagnostic = world
        .run_refresh(&[("CLIENT_SECRETS_PARAM", "/gmail-oauth-test/none")])
        .await
        .unwrap_err();
    assert_eq!(diagnostic.error_type, "InvalidConfiguration");

    moto::put(
        &world.ssm,
        &world.secrets_param,
        r#"{"web": {"client_id": "x"}}"#,
    )
    .await;
    let diagnostic = world.run_refresh(&[]).await.unwrap_err();
    assert_eq!(diagnostic.error_type, "InvalidConfiguration");
    assert!(diagnostic.error_message.contains(&world.secrets_param));
    assert!(diagnostic.error_message.contains("client_secret"));
}

#[tokio::test]
async fn a_malformed_stored_token_is_invalid_configuration_and_is_not_overwritten() {
    let world = World::new("badtoken").await;
    moto::put(&world.ssm, &world.token_param, "{\"token\": \"abc\"").await;
    let diagnostic = world.run_refresh(&[]).await.unwrap_err();
    assert_eq!(diagnostic.error_type, "InvalidConfiguration");
    assert!(diagnostic.error_message.contains(&world.token_param));
    assert!(!diagnostic.error_message.contains("abc"));
    assert_eq!(world.token_version().await, 1);
}

#[tokio::test]
async fn a_gmail_401_refreshes_once_and_retries() {
    let world = World::new("gmail401").await;
    world
        .seed_token("me@example.com", minutes_from_now(30))
        .await;
    world.google.inject_gmail_fault(Fault::Status(401));
    let summary = world.run_refresh(&[]).await.expect("run");
    assert!(summary.token_refreshed);
    assert_eq!(world.google.refresh_grants(), 1);
    assert_eq!(summary.message_count, 3);
}

#[tokio::test]
async fn gmail_401_after_a_refresh_requires_reauthorization() {
    let world = World::new("gmail401twice").await;
    let (refresh_token, _) = world
        .seed_token("me@example.com", minutes_from_now(30))
        .await;
    world.google.inject_gmail_fault(Fault::Status(401));
    world.google.inject_gmail_fault(Fault::Status(401));
    let diagnostic = world.run_refresh(&[]).await.unwrap_err();
    assert_eq!(diagnostic.error_type, "ReauthorizationRequired");
    assert!(diagnostic.error_message.contains("401"));
    assert_eq!(world.google.refresh_grants(), 1);
    assert_eq!(
        world.stored_token().await.unwrap()["refresh_token"],
        refresh_token.as_str()
    );
}

#[tokio::test]
async fn transient_429_and_503_are_retried_with_backoff() {
    let world = World::new("transient").await;
    world
        .seed_token("me@example.com", minutes_from_now(30))
        .await;
    world.google.inject_gmail_fault(Fault::TooManyRequests {
        retry_after_secs: 1,
    });
    world.google.inject_gmail_fault(Fault::Status(503));
    let started = std::time::Instant::now();
    let summary = world.run_refresh(&[]).await.expect("run");
    assert_eq!(summary.message_count, 3);
    // Retry-After: 1 was honoured (a functional check of the wait, not a speed measurement).
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(world.google.gmail_requests(), 2 + 1 + 3);
}

#[tokio::test]
async fn a_token_endpoint_outage_is_upstream_after_bounded_retries() {
    let world = World::new("outage").await;
    let (refresh_token, _) = world
        .seed_token("me@example.com", minutes_from_now(-1))
        .await;
    for _ in 0..3 {
        world.google.inject_token_fault(Fault::Status(500));
    }
    let diagnostic = world.run_refresh(&[]).await.unwrap_err();
    assert_eq!(diagnostic.error_type, "Upstream");
    assert_eq!(world.google.refresh_grants(), 3);
    assert_eq!(
        world.stored_token().await.unwrap()["refresh_token"],
        refresh_token.as_str()
    );

    // One outage answer, then Google recovers: the retry succeeds.
    world.google.inject_token_fault(Fault::Status(503));
    assert!(world.run_refresh(&[]).await.expect("run").token_refreshed);
}

#[tokio::test]
async fn a_persistent_gmail_outage_is_upstream() {
    let world = World::new("gmailoutage").await;
    world
        .seed_token("me@example.com", minutes_from_now(30))
        .await;
    for _ in 0..4 {
        world.google.inject_gmail_fault(Fault::Status(503));
    }
    let diagnostic = world.run_refresh(&[]).await.unwrap_err();
    assert_eq!(diagnostic.error_type, "Upstream");
    assert!(diagnostic.error_message.contains("503"));
    assert_eq!(world.google.gmail_requests(), 4);
}

#[tokio::test]
async fn messages_are_paged_up_to_max_messages() {
    let world = World::new("paging").await;
    world
        .seed_token("me@example.com", minutes_from_now(30))
        .await;
    world.google.set_messages(40);
    let summary = world
        .run_refresh(&[("GMAIL_QUERY", "from:boss newer_than:1d")])
        .await
        .expect("run");
    assert_eq!(summary.message_count, 25);
    assert_eq!(summary.messages.len(), 25);
    assert_eq!(summary.messages[24].id, "msg0025");
    // The fake pages by 10: 10 + 10 + 5.
    assert_eq!(world.google.list_requests(), 3);
    assert_eq!(
        world.google.last_query().as_deref(),
        Some("from:boss newer_than:1d")
    );

    let summary = world
        .run_refresh(&[("MAX_MESSAGES", "7")])
        .await
        .expect("run");
    assert_eq!(summary.message_count, 7);
}

#[tokio::test]
async fn the_summary_serializes_as_the_spec_shows() {
    let world = World::new("summary").await;
    world
        .seed_token("me@example.com", minutes_from_now(30))
        .await;
    let summary = world
        .run_refresh(&[("MAX_MESSAGES", "1")])
        .await
        .expect("run");
    let json = serde_json::to_value(&summary).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "account",
        "token_refreshed",
        "expires_at",
        "query",
        "message_count",
        "messages",
    ] {
        assert!(keys.contains(&key), "{key} missing from {json}");
    }
    let message = json["messages"][0].as_object().unwrap();
    for key in ["id", "thread_id", "from", "subject", "date"] {
        assert!(message.contains_key(key), "{key} missing");
    }
}

#[tokio::test]
async fn a_refreshed_token_is_kept_even_when_gmail_then_fails() {
    let world = World::new("keepafterfail").await;
    let (refresh_token, old_access) = world
        .seed_token("me@example.com", minutes_from_now(-5))
        .await;
    for _ in 0..4 {
        world.google.inject_gmail_fault(Fault::Status(503));
    }
    let diagnostic = world.run_refresh(&[]).await.unwrap_err();
    assert_eq!(diagnostic.error_type, "Upstream");
    let token = world.stored_token().await.unwrap();
    assert_ne!(token["token"], old_access.as_str());
    assert_eq!(token["refresh_token"], refresh_token.as_str());
}

#[tokio::test]
async fn an_absurd_token_lifetime_from_a_refresh_is_cut_to_a_day() {
    let world = World::new("refresh-absurd").await;
    world
        .seed_token("me@example.com", minutes_from_now(-5))
        .await;
    world.google.set_expires_in(10_000_000_000_000);
    let summary = world.run_refresh(&[]).await.expect("run");
    assert!(summary.token_refreshed);
    let expires = gmail_oauth::token::expiry_format::parse(&summary.expires_at).unwrap();
    let lifetime = expires - Utc::now();
    assert!(
        lifetime <= chrono::TimeDelta::days(1) && lifetime > chrono::TimeDelta::hours(23),
        "{lifetime}"
    );
    assert_eq!(
        world.stored_token().await.unwrap()["expiry"],
        summary.expires_at.as_str()
    );
}
