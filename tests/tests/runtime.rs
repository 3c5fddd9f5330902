//! The two release binaries, run as Lambda runs them: a process polling the Runtime API,
//! fed a real API Gateway HTTP API event and a real EventBridge scheduled event, talking to
//! moto and the fake Google. Their logs, at TRACE, must hold no secret.

use integration_tests::events::{HttpEvent, scheduled_event};
use integration_tests::fake_google::Fault;
use integration_tests::runtime_api::{FunctionProcess, Outcome, release_binary};
use integration_tests::{World, assert_no_secret, minutes_from_now, moto};
use serde_json::Value;
use std::time::{Duration, Instant};

fn trace_logging() -> [(&'static str, &'static str); 2] {
    [
        ("AWS_LAMBDA_LOG_LEVEL", "trace"),
        ("AWS_LAMBDA_LOG_FORMAT", "json"),
    ]
}

fn header(response: &Value, name: &str) -> String {
    response["headers"][name]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_callback_binary_links_an_account_from_api_gateway_events() {
    let world = World::new("runtime-callback").await;
    let mut env = world.env(&trace_logging());
    env.push(("AWS_LAMBDA_FUNCTION_TIMEOUT".into(), "29".into()));
    let function = FunctionProcess::start(release_binary("oauth-callback"), env).await;

    let authorize = function
        .invoke(HttpEvent::get("/authorize").json())
        .await
        .response();
    assert_eq!(authorize["statusCode"], 302, "{authorize}");
    let location = header(&authorize, "location");
    let cookie = authorize["cookies"][0]
        .as_str()
        .expect("Set-Cookie in cookies")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-gmail-oauth-flow="));

    let callback_url = world.google.consent(&location).await;
    let done = function
        .invoke(HttpEvent::get_url(&callback_url).cookie(&cookie).json())
        .await
        .response();
    assert_eq!(done["statusCode"], 200, "{done}");
    assert!(done["body"].as_str().unwrap().contains("me@example.com"));
    assert_eq!(header(&done, "cache-control"), "no-store");
    assert_eq!(
        moto::read(&world.ssm, &world.token_param)
            .await
            .unwrap()
            .kind,
        aws_sdk_ssm::types::ParameterType::SecureString
    );

    // A query string that is not URI syntax: a 400 page, and the process lives on.
    let bad = function
        .invoke(HttpEvent::get("/callback?code=\"<script>\"&state=\\x").json())
        .await
        .response();
    assert_eq!(bad["statusCode"], 400, "{bad}");
    let bad_host = function
        .invoke(
            HttpEvent::get("/authorize")
                .header("host", "bad host\\")
                .json(),
        )
        .await
        .response();
    assert_eq!(bad_host["statusCode"], 302, "{bad_host}");
    let missing = function
        .invoke(HttpEvent::get("/other").json())
        .await
        .response();
    assert_eq!(missing["statusCode"], 404);

    let logs = function.logs();
    assert!(logs.contains("account linked"), "{logs}");
    assert_no_secret(&logs, &world.secrets(), "the callback function's log");
    assert_no_secret(&done.to_string(), &world.secrets(), "the callback response");
}

#[tokio::test]
async fn the_refresh_binary_answers_a_scheduled_event_with_a_summary_or_a_typed_error() {
    let world = World::new("runtime-refresh").await;
    let (refresh_token, _) = world
        .seed_token("me@example.com", minutes_from_now(-1))
        .await;
    let env = world.env(&[
        ("AWS_LAMBDA_LOG_LEVEL", "trace"),
        ("AUTHORIZE_URL", "https://abc123.example/authorize"),
    ]);
    let function = FunctionProcess::start(release_binary("gmail-refresh"), env).await;

    let summary = function.invoke(scheduled_event()).await.response();
    assert_eq!(summary["account"], "me@example.com");
    assert_eq!(summary["token_refreshed"], true);
    assert_eq!(summary["message_count"], 3);
    assert_eq!(summary["messages"][0]["subject"], "Subject number 1");

    // Warm: the same process, the token now fresh, answers `{}` without refreshing.
    let again = function.invoke(serde_json::json!({})).await.response();
    assert_eq!(again["token_refreshed"], false);
    assert_eq!(world.google.refresh_grants(), 1);

    // Revoked while deployed: a typed error, the token untouched.
    world.google.revoke(&refresh_token);
    let before = moto::read(&world.ssm, &world.token_param).await.unwrap();
    match function.invoke(scheduled_event()).await {
        Outcome::Error {
            error_type,
            error_message,
        } => {
            assert_eq!(error_type, "ReauthorizationRequired");
            assert!(error_message.contains("https://abc123.example/authorize"));
        }
        Outcome::Response(value) => panic!("expected an error, got {value}"),
    }
    assert_eq!(world.token_version().await, before.version);

    let logs = function.logs();
    assert!(logs.contains("ReauthorizationRequired"), "{logs}");
    assert_no_secret(&logs, &world.secrets(), "the refresh function's log");
}

#[tokio::test]
async fn the_refresh_binary_answers_not_linked_for_a_missing_token() {
    let world = World::new("runtime-notoken").await;
    let function = FunctionProcess::start(release_binary("gmail-refresh"), world.env(&[])).await;
    let answer = function.invoke(scheduled_event()).await.response();
    assert_eq!(answer["status"], "not_linked", "{answer}");
    assert_eq!(answer["token_parameter"], world.token_param.as_str());
    let logs = function.logs();
    assert!(logs.contains("no mailbox is linked yet"), "{logs}");
    assert!(logs.contains("\"MailboxesNotLinked\":1"), "{logs}");
}

/// A refused setting: the runtime starts anyway and every invocation answers
/// InvalidConfiguration naming the variable (with the metrics line), the callback its page.
#[tokio::test]
async fn a_refused_setting_is_invalid_configuration_on_every_invocation() {
    let world = World::new("runtime-badconfig").await;
    let bad = [("SSM_WRITE_TPS", "1e-20")];
    let refresh = FunctionProcess::start(release_binary("gmail-refresh"), world.env(&bad)).await;
    for _ in 0..2 {
        match refresh.invoke(scheduled_event()).await {
            Outcome::Error {
                error_type,
                error_message,
            } => {
                assert_eq!(error_type, "InvalidConfiguration");
                assert!(error_message.contains("SSM_WRITE_TPS"), "{error_message}");
            }
            Outcome::Response(value) => panic!("expected an error, got {value}"),
        }
    }
    assert!(
        refresh.logs().contains("MailboxesFailing"),
        "{}",
        refresh.logs()
    );

    let callback = FunctionProcess::start(release_binary("oauth-callback"), world.env(&bad)).await;
    for path in ["/authorize", "/callback?code=c&state=s"] {
        let page = callback
            .invoke(HttpEvent::get(path).json())
            .await
            .response();
        assert_eq!(page["statusCode"], 500, "{page}");
        let body = page["body"].as_str().unwrap_or_default();
        assert!(body.contains("This service is not configured"), "{body}");
    }
    let logs = callback.logs();
    assert!(logs.contains("SSM_WRITE_TPS"), "{logs}");
}

/// `/authorize` through `function`, then Google's consent: (callback URL, cookie).
async fn consent_through(world: &World, function: &FunctionProcess) -> (String, String) {
    let authorize = function
        .invoke(HttpEvent::get("/authorize").json())
        .await
        .response();
    assert_eq!(authorize["statusCode"], 302, "{authorize}");
    let cookie = authorize["cookies"][0]
        .as_str()
        .expect("Set-Cookie in cookies")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let callback_url = world.google.consent(&header(&authorize, "location")).await;
    (callback_url, cookie)
}

#[tokio::test]
async fn the_callback_binary_survives_an_absurd_token_lifetime() {
    let world = World::new("runtime-absurd").await;
    world.google.set_expires_in(10_000_000_000_000);
    let function = FunctionProcess::start(release_binary("oauth-callback"), world.env(&[])).await;
    let (callback_url, cookie) = consent_through(&world, &function).await;
    let done = function
        .invoke(HttpEvent::get_url(&callback_url).cookie(&cookie).json())
        .await
        .response();
    assert_eq!(done["statusCode"], 200, "{done}");
    // The process lives on: the next request is answered by the same execution environment.
    let again = function
        .invoke(HttpEvent::get("/authorize").json())
        .await
        .response();
    assert_eq!(again["statusCode"], 302);
}

#[tokio::test]
async fn the_callback_binary_answers_before_its_deadline_when_google_is_slow() {
    let world = World::new("runtime-deadline").await;
    let function = FunctionProcess::start(release_binary("oauth-callback"), world.env(&[])).await;
    let (callback_url, cookie) = consent_through(&world, &function).await;
    world
        .google
        .inject_token_fault(Fault::Delay(Duration::from_secs(6)));
    function.api.set_timeout(Duration::from_secs(3));
    let started = Instant::now();
    let late = function
        .invoke(HttpEvent::get_url(&callback_url).cookie(&cookie).json())
        .await
        .response();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );
    assert_eq!(late["statusCode"], 502, "{late}");
    assert!(world.stored_token().await.is_none());
}

#[tokio::test]
async fn the_refresh_binary_reports_every_mailbox_and_logs_one_line_each() {
    let world = World::new("runtime-many").await;
    world
        .seed_mailbox("me@example.com", minutes_from_now(-1))
        .await;
    let (revoked, _) = world
        .seed_mailbox("gone@example.com", minutes_from_now(-1))
        .await;
    world.google.revoke(&revoked);
    let env = world.env(&[
        world.many(),
        ("AWS_LAMBDA_LOG_FORMAT", "json"),
        ("AUTHORIZE_URL", "https://abc123.example/authorize"),
    ]);
    let function = FunctionProcess::start(release_binary("gmail-refresh"), env).await;
    let report = function.invoke(scheduled_event()).await.response();
    assert_eq!(report["totals"]["mailboxes"], 2, "{report}");
    assert_eq!(report["totals"]["ok"], 1);
    assert_eq!(report["totals"]["reauthorization_required"], 1);
    let gone = report["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["account"] == "gone@example.com")
        .expect("reported");
    assert_eq!(gone["error_type"], "ReauthorizationRequired");
    assert!(
        gone["error"]
            .as_str()
            .unwrap()
            .contains("https://abc123.example/authorize")
    );
    let logs = function.logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &Value| l["fields"]["account"].is_string())
        .filter(|l: &Value| {
            matches!(
                l["fields"]["message"].as_str(),
                Some("mailbox done" | "mailbox failed")
            )
        })
        .collect();
    assert_eq!(lines.len(), 2, "{logs}");
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["error_type"] == "ReauthorizationRequired"),
        "{logs}"
    );
    assert_no_secret(&logs, &world.secrets(), "the refresh function's log");
    assert_no_secret(&report.to_string(), &world.secrets(), "the report");
}

/// Measured from outside: the release binary, its SSM calls counted at the proxy. 20
/// `/authorize` requests and 20 callbacks without a flow cookie cost one Parameter Store
/// read in all, not one each.
#[tokio::test]
async fn forty_anonymous_requests_cost_the_callback_binary_one_parameter_store_read() {
    let world = World::new("runtime-anonymous").await;
    let proxy = integration_tests::ssm_proxy::SsmProxy::start(&moto::moto().endpoint).await;
    let env = world.env(&[("AWS_ENDPOINT_URL", proxy.endpoint.as_str())]);
    let function = FunctionProcess::start(release_binary("oauth-callback"), env).await;
    for i in 0..20 {
        let callback = function
            .invoke(HttpEvent::get(&format!("/callback?code=4%2F0A{i}&state=s{i}")).json())
            .await
            .response();
        assert_eq!(callback["statusCode"], 400, "{callback}");
        let authorize = function
            .invoke(HttpEvent::get("/authorize").json())
            .await
            .response();
        assert_eq!(authorize["statusCode"], 302, "{authorize}");
    }
    assert_eq!(proxy.counts().reads, 1, "{:?}", proxy.requests());
    assert_eq!(world.google.code_redemptions(), 0);
}
