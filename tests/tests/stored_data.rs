//! Malformed stored data: each case is a typed error that names the parameter and the
//! problem, never quotes the value, and never overwrites it.

use integration_tests::{World, moto};

async fn put_advanced(world: &World, name: &str, value: &str) {
    world
        .ssm
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .tier(aws_sdk_ssm::types::ParameterTier::Advanced)
        .overwrite(true)
        .send()
        .await
        .expect("put_parameter on moto");
}

/// The run failed with `InvalidConfiguration` naming `parameter` and `problem`, without
/// quoting the stored value (every case's secret part is `SECRETVALUE`).
fn assert_names_the_problem(
    what: &str,
    diagnostic: &lambda_runtime::Diagnostic,
    parameter: &str,
    problem: &str,
) {
    let message = &diagnostic.error_message;
    assert_eq!(diagnostic.error_type, "InvalidConfiguration", "{what}");
    assert!(message.contains(parameter), "{what}: {message}");
    assert!(message.contains(problem), "{what}: {message}");
    assert!(!message.contains("SECRETVALUE"), "{what} quoted the value");
}

#[tokio::test]
async fn each_malformed_token_is_a_typed_error_naming_the_parameter_and_nothing_is_overwritten() {
    let world = World::new("malformed-token").await;
    let huge = format!(
        "{{\"refresh_token\": \"r\", \"pad\": \"{}\"}}",
        "x".repeat(7_000)
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "not JSON",
            "ya29.this-is-not-json-SECRETVALUE".into(),
            "not a google-auth token",
        ),
        (
            "an array",
            "[\"SECRETVALUE\"]".into(),
            "not a google-auth token",
        ),
        (
            "no refresh_token",
            r#"{"token": "SECRETVALUE", "client_id": "x"}"#.into(),
            "has no refresh_token",
        ),
        (
            "a bad expiry",
            r#"{"refresh_token": "SECRETVALUE", "expiry": "next tuesday"}"#.into(),
            "expiry",
        ),
        (
            "a wrong type",
            r#"{"refresh_token": 12345678, "token": "SECRETVALUE"}"#.into(),
            "not a google-auth token",
        ),
        ("oversized", huge, "larger than any token"),
        (
            "encoded twice (json.dumps of creds.to_json())",
            serde_json::to_string(
                r#"{"token": "SECRETVALUE", "refresh_token": "SECRETVALUE", "client_secret": "SECRETVALUE"}"#,
            )
            .unwrap(),
            "encoded twice",
        ),
        (
            "scopes of the wrong type",
            r#"{"refresh_token": "r", "scopes": {"SECRETVALUE": 1}}"#.into(),
            "scopes",
        ),
        (
            "cut short",
            r#"{"refresh_token": "SECRETVALUE", "tok"#.into(),
            "cut short",
        ),
        (
            "trailing bytes",
            r#"{"refresh_token": "r"} SECRETVALUE"#.into(),
            "malformed JSON",
        ),
    ];
    for (what, value, problem) in cases {
        put_advanced(&world, &world.token_param, &value).await;
        let before = moto::read(&world.ssm, &world.token_param).await.unwrap();
        let diagnostic = world.run_refresh(&[]).await.unwrap_err();
        assert_names_the_problem(what, &diagnostic, &world.token_param, problem);
        let after = moto::read(&world.ssm, &world.token_param).await.unwrap();
        assert_eq!(
            (after.version, after.value),
            (before.version, before.value),
            "{what} was overwritten"
        );
    }
}

#[tokio::test]
async fn each_malformed_client_secrets_value_is_a_typed_error_naming_the_key() {
    let world = World::new("malformed-secrets").await;
    world
        .seed_token("me@example.com", integration_tests::minutes_from_now(-5))
        .await;
    let token_before = moto::read(&world.ssm, &world.token_param).await.unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "GOCSPX-SECRETVALUE".into(), "not valid JSON"),
        ("another shape", r#"{"service_account": {"client_secret": "SECRETVALUE"}}"#.into(), "neither a \"web\" nor an \"installed\""),
        ("no client_secret", r#"{"web": {"client_id": "id", "auth_uri": "https://a/", "token_uri": "https://t/"}}"#.into(), "\"client_secret\""),
        ("no token_uri", r#"{"installed": {"client_id": "id", "client_secret": "SECRETVALUE", "auth_uri": "https://a/"}}"#.into(), "\"token_uri\""),
        ("a plain-http token_uri", r#"{"web": {"client_id": "id", "client_secret": "SECRETVALUE", "auth_uri": "https://a/", "token_uri": "http://oauth2.example/token"}}"#.into(), "not https"),
        ("oversized", format!("{{\"web\": {{\"pad\": \"{}\"}}}}", "x".repeat(17_000)), "bytes"),
    ];
    for (what, value, problem) in cases {
        if value.len() > 8_000 {
            // Larger than SSM can hold: only the file store can carry it; check the parser.
            let error = gmail_oauth::client_secrets::ClientSecrets::from_json(&value)
                .unwrap_err()
                .to_string();
            assert!(error.contains(problem), "{what}: {error}");
            continue;
        }
        moto::put(&world.ssm, &world.secrets_param, &value).await;
        let diagnostic = world.run_refresh(&[]).await.unwrap_err();
        assert_names_the_problem(what, &diagnostic, &world.secrets_param, problem);
    }
    let token_after = moto::read(&world.ssm, &world.token_param).await.unwrap();
    assert_eq!(
        token_after.version, token_before.version,
        "the token was never touched"
    );
    assert_eq!(world.google.refresh_grants(), 0);
}
