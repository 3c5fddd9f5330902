//! Drop-in with `pythonic_gmail` 0.1.3: the real Python library (google-auth 2.62.2,
//! simple-aws-ssm-parameter-store) writes and reads the same SSM parameters as the functions.

use chrono::Utc;
use gmail_oauth::token::StoredToken;
use integration_tests::events::HttpEvent;
use integration_tests::fake_google::{CLIENT_ID, CLIENT_SECRET, Fault, GMAIL_READONLY};
use integration_tests::{World, minutes_from_now, moto, python_peer};
use serde_json::{Value, json};

/// Credentials as google-auth would hold them, for `peer.py write-token`.
fn credentials(world: &World, expiry_minutes: i64, extra: Value) -> (String, String) {
    let refresh = world.google.issue_refresh_token("me@example.com");
    let token = json!({
        "token": world.google.issue_access_token("me@example.com"),
        "refresh_token": refresh,
        "token_uri": world.google.token_uri(),
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": [GMAIL_READONLY],
        "expiry": gmail_oauth::token::expiry_format::format(&minutes_from_now(expiry_minutes)),
        "rapt_token": "rapt-kept",
        "extra": extra,
    });
    (refresh, token.to_string())
}

/// What Python sees, checked against what is stored: both of its readers agree with it.
fn assert_python_reads(world_param: &str, stored: &Value) -> Value {
    let read = python_peer(&["read-token", "--param", world_param]);
    for view in ["builder", "direct"] {
        let creds = &read[view];
        assert_eq!(creds["refresh_token"], stored["refresh_token"], "{view}");
        assert_eq!(creds["token"], stored["token"], "{view}");
        assert_eq!(creds["client_id"], stored["client_id"], "{view}");
        assert_eq!(creds["scopes"], stored["scopes"], "{view}");
        // Python parses our expiry to the same second.
        assert_eq!(creds["expiry"], stored["expiry"], "{view}");
        assert_eq!(creds["expired"], false, "{view}");
    }
    read
}

#[tokio::test]
async fn the_python_library_is_installed_at_the_pinned_versions() {
    let versions = python_peer(&["versions"]);
    assert_eq!(versions["pythonic_gmail"], "0.1.3");
    assert_eq!(versions["google-auth"], "2.62.2");
}

#[tokio::test]
async fn a_token_written_by_pythonic_gmail_is_refreshed_by_gmail_refresh_and_read_back_by_python() {
    let world = World::new("py-to-rust").await;
    let (refresh, token) = credentials(&world, -10, json!({"future_key": {"nested": [1, 2]}}));
    let written = python_peer(&[
        "write-token",
        "--param",
        &world.token_param,
        "--token-json",
        &token,
    ]);
    assert_eq!(written["written"]["universe_domain"], "googleapis.com");
    assert_eq!(
        moto::read(&world.ssm, &world.token_param)
            .await
            .unwrap()
            .kind,
        aws_sdk_ssm::types::ParameterType::SecureString
    );

    let summary = world
        .run_refresh(&[])
        .await
        .expect("gmail-refresh reads pythonic_gmail's token");
    assert!(summary.token_refreshed);
    assert_eq!(summary.account, "me@example.com");

    let stored = world.stored_token().await.unwrap();
    assert_eq!(stored["refresh_token"], refresh.as_str());
    assert_eq!(stored["rapt_token"], "rapt-kept");
    assert_eq!(stored["universe_domain"], "googleapis.com");
    assert_eq!(stored["future_key"], json!({"nested": [1, 2]}));
    assert_eq!(stored["expiry"], summary.expires_at.as_str());
    assert_python_reads(&world.token_param, &stored);
}

#[tokio::test]
async fn a_token_linked_by_the_callback_and_then_refreshed_loads_in_pythonic_gmail() {
    let world = World::new("rust-to-py").await;
    let app = world.callback_app(&[]).await;
    let linked = world.link_through(&app).await;
    assert_eq!(linked.status_code, 200);

    let after_consent = world.stored_token().await.unwrap();
    let read = assert_python_reads(&world.token_param, &after_consent);
    assert_eq!(read["raw"]["account"], "me@example.com");
    assert_eq!(read["builder"]["client_secret"], CLIENT_SECRET);

    // A 401 makes gmail-refresh refresh and rewrite the token; Python still reads it.
    world.google.inject_gmail_fault(Fault::Status(401));
    assert!(world.run_refresh(&[]).await.expect("run").token_refreshed);
    let after_refresh = world.stored_token().await.unwrap();
    assert_ne!(after_refresh["token"], after_consent["token"]);
    assert_eq!(
        after_refresh["refresh_token"],
        after_consent["refresh_token"]
    );
    assert_python_reads(&world.token_param, &after_refresh);
}

#[tokio::test]
async fn client_secrets_stored_by_pythonic_gmail_are_read_by_both_functions() {
    for kind in ["web", "installed"] {
        let world = World::new(&format!("py-secrets-{kind}")).await;
        let file = std::env::temp_dir().join(format!(
            "interop-secrets-{kind}-{}.json",
            std::process::id()
        ));
        std::fs::write(&file, world.google.client_secrets_json(kind)).unwrap();
        python_peer(&[
            "write-client-secrets",
            "--param",
            "/unused/token",
            "--secrets-param",
            &world.secrets_param,
            "--file",
            file.to_str().unwrap(),
        ]);
        let _ = std::fs::remove_file(&file);

        world
            .seed_token("me@example.com", minutes_from_now(-1))
            .await;
        assert!(
            world
                .run_refresh(&[])
                .await
                .expect("refresh reads the secrets")
                .token_refreshed,
            "{kind}"
        );
        let app = world.callback_app(&[]).await;
        let authorize = app
            .handle(HttpEvent::get("/authorize").event(), Utc::now())
            .await;
        assert_eq!(authorize.status_code, 302, "{kind}");
        assert!(
            authorize.headers["location"]
                .to_str()
                .unwrap()
                .contains(CLIENT_ID),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn the_google_auth_fixtures_survive_a_rust_rewrite_and_load_in_python() {
    let world = World::new("fixtures").await;
    for fixture in [
        integration_tests::fixtures::TOKEN_AFTER_CONSENT,
        integration_tests::fixtures::TOKEN_AFTER_REFRESH,
    ] {
        let original: Value = serde_json::from_str(fixture).unwrap();
        let rewritten = StoredToken::from_json(fixture).unwrap().to_json().unwrap();
        moto::put(&world.ssm, &world.token_param, &rewritten).await;
        let read = python_peer(&["read-token", "--param", &world.token_param]);
        for key in [
            "token",
            "refresh_token",
            "client_id",
            "client_secret",
            "token_uri",
            "scopes",
            "universe_domain",
            "account",
        ] {
            assert_eq!(read["raw"][key], original[key], "{key}");
        }
        assert_eq!(read["direct"]["expiry"], "2026-11-23T10:15:42Z");
        assert_eq!(read["builder"]["refresh_token"], original["refresh_token"]);
    }
}
