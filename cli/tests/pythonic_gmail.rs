//! The local file store both ways with `pythonic_gmail`'s `LocalPathClientBuilder`: a token
//! file it writes is refreshed by `gmail-oauth run`, and the file we rewrite loads in Python.

use integration_tests::fake_google::{CLIENT_ID, CLIENT_SECRET, FakeGoogle, GMAIL_READONLY};
use integration_tests::{minutes_from_now, moto, python_peer};
use serde_json::{Value, json};

#[tokio::test]
async fn a_local_path_client_builder_token_is_refreshed_by_the_cli_and_read_back_by_python() {
    let google = FakeGoogle::start().await;
    let config = std::env::temp_dir().join(format!("gmail-oauth-py-file-{}", std::process::id()));
    let token_file = config.join("gmail-oauth/token.json");
    let secrets_file = config.join("gmail-oauth/client_secrets.json");
    let downloaded = config.join("client_secret_download.json");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(&downloaded, google.client_secrets_json("installed")).unwrap();

    let refresh = google.issue_refresh_token("me@example.com");
    let token = json!({
        "token": google.issue_access_token("me@example.com"),
        "refresh_token": refresh,
        "token_uri": google.token_uri(),
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": [GMAIL_READONLY],
        "expiry": gmail_oauth::token::expiry_format::format(&minutes_from_now(-30)),
        "extra": {"future_key": "kept"},
    });
    let paths = [
        "--path",
        token_file.to_str().unwrap(),
        "--secrets-path",
        secrets_file.to_str().unwrap(),
    ];
    let mut args = vec!["write-token", "--token-json"];
    let token = token.to_string();
    args.push(&token);
    args.extend_from_slice(&paths);
    python_peer(&args);
    let mut args = vec![
        "write-client-secrets",
        "--file",
        downloaded.to_str().unwrap(),
    ];
    args.extend_from_slice(&paths);
    python_peer(&args);

    // `gmail-oauth run` on the default store finds both files where pythonic_gmail put them.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_gmail-oauth"))
        .args(["run", "--json"])
        .env_clear()
        .env("XDG_CONFIG_HOME", &config)
        .env("GMAIL_API_ENDPOINT", &google.base_url)
        .envs(moto::moto().env())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["token_refreshed"], true);
    assert_eq!(summary["account"], "me@example.com");

    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap();
    assert_eq!(stored["refresh_token"], refresh.as_str());
    assert_eq!(stored["future_key"], "kept");
    let mut args = vec!["read-token"];
    args.extend_from_slice(&paths);
    let read = python_peer(&args);
    for view in ["builder", "direct"] {
        assert_eq!(read[view]["refresh_token"], refresh.as_str(), "{view}");
        assert_eq!(read[view]["token"], stored["token"], "{view}");
        assert_eq!(read[view]["client_id"], CLIENT_ID, "{view}");
        assert_eq!(read[view]["scopes"], json!([GMAIL_READONLY]), "{view}");
        assert_eq!(read[view]["expiry"], stored["expiry"], "{view}");
        assert_eq!(read[view]["expired"], false, "{view}");
    }
    let _ = std::fs::remove_dir_all(&config);
}
