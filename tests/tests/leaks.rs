//! Secrets never leak: every flow of both functions runs with logging at TRACE, and every
//! log line, page, header (but the state cookie itself) and error message is searched for
//! every access token, refresh token, authorization code, PKCE verifier, state, sealed
//! cookie value and client secret in play.

use chrono::Utc;
use integration_tests::events::HttpEvent;
use integration_tests::fake_google::Fault;
use integration_tests::{World, assert_no_secret, capture_logs, captured_logs, minutes_from_now};
use lambda_http::Body;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;

#[derive(Default)]
struct Seen {
    texts: Vec<String>,
    cookies: Vec<String>,
}

impl Seen {
    fn response(&mut self, response: &ApiGatewayV2httpResponse) {
        if let Some(Body::Text(text)) = &response.body {
            self.texts.push(text.clone());
        }
        // `/authorize` must send the state to Google in its Location; every other header counts.
        let mut headers = response.headers.clone();
        if response.status_code == 302 {
            headers.remove("location");
        }
        self.texts.push(format!("{headers:?}"));
        for cookie in &response.cookies {
            let value = cookie
                .split(';')
                .next()
                .unwrap_or_default()
                .split_once('=')
                .map(|(_, v)| v)
                .unwrap_or_default();
            if !value.is_empty() {
                self.cookies.push(value.to_owned());
            }
        }
    }
}

/// One test walks every path in one future: unoptimized (a debug build), its state machine
/// outgrows a test thread's 2 MB stack, so it runs on a thread of its own with room.
#[test]
fn no_secret_reaches_a_log_line_a_page_a_header_or_an_error_message() {
    let walk = std::thread::Builder::new()
        .stack_size(32 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(every_path_keeps_its_secrets())
        })
        .expect("a thread");
    if let Err(panic) = walk.join() {
        std::panic::resume_unwind(panic);
    }
}

async fn every_path_keeps_its_secrets() {
    capture_logs();
    let world = World::new("leaks").await;
    let app = world.callback_app(&[]).await;
    let mut seen = Seen::default();

    // Callback flows: success, replay, forged state, no cookie, denied, not allowed, Google down.
    let mut flows = Vec::new();
    for _ in 0..6 {
        let authorize = app
            .handle(HttpEvent::get("/authorize").event(), Utc::now())
            .await;
        seen.response(&authorize);
        let location = authorize.headers["location"].to_str().unwrap().to_owned();
        let cookie = authorize.cookies[0].split(';').next().unwrap().to_owned();
        flows.push((world.google.consent(&location).await, cookie));
    }
    let send = |url: &str, cookie: Option<&str>| {
        let mut event = HttpEvent::get_url(url);
        if let Some(cookie) = cookie {
            event = event.cookie(cookie);
        }
        event.event()
    };
    for (i, (url, cookie)) in flows.iter().enumerate() {
        let response = match i {
            0 | 1 => app.handle(send(url, Some(cookie)), Utc::now()).await,
            2 => {
                app.handle(
                    send(&url.replace("state=", "state=x"), Some(cookie)),
                    Utc::now(),
                )
                .await
            }
            3 => app.handle(send(url, None), Utc::now()).await,
            4 => {
                world.google.inject_token_fault(Fault::Status(503));
                app.handle(send(url, Some(cookie)), Utc::now()).await
            }
            _ => app.handle(send(url, Some(&flows[0].1)), Utc::now()).await,
        };
        seen.response(&response);
    }
    let replay = app
        .handle(send(&flows[0].0, Some(&flows[0].1)), Utc::now())
        .await;
    assert_eq!(replay.status_code, 400);
    seen.response(&replay);
    world.google.set_deny(true);
    let authorize = app
        .handle(HttpEvent::get("/authorize").event(), Utc::now())
        .await;
    let denied_url = world
        .google
        .consent(authorize.headers["location"].to_str().unwrap())
        .await;
    let cookie = authorize.cookies[0].split(';').next().unwrap().to_owned();
    seen.response(
        &app.handle(send(&denied_url, Some(&cookie)), Utc::now())
            .await,
    );
    world.google.set_deny(false);

    // Refresh flows: valid, expiring, Gmail 401, Google down, revoked.
    let mut errors = Vec::new();
    for (expiry, fault) in [(30, None), (-5, None), (30, Some(Fault::Status(401)))] {
        world
            .seed_token("me@example.com", minutes_from_now(expiry))
            .await;
        if let Some(fault) = fault {
            world.google.inject_gmail_fault(fault);
        }
        let summary = world.run_refresh(&[]).await.expect("run");
        seen.texts.push(serde_json::to_string(&summary).unwrap());
    }
    world
        .seed_token("me@example.com", minutes_from_now(-5))
        .await;
    for _ in 0..3 {
        world.google.inject_token_fault(Fault::Status(500));
    }
    errors.push(world.run_refresh(&[]).await.unwrap_err());
    let (revoked, _) = world
        .seed_token("me@example.com", minutes_from_now(-5))
        .await;
    world.google.revoke(&revoked);
    errors.push(world.run_refresh(&[]).await.unwrap_err());
    // Stored values that are not tokens, in every shape serde's errors take: a token
    // encoded twice (json.dumps of to_json()), wrong types, a missing field, a bad date,
    // cut short, trailing bytes. Each carries the real secrets; none may be quoted.
    let (token, _, _) =
        integration_tests::google_auth_token(&world.google, "me@example.com", minutes_from_now(-5));
    let text = token.to_string();
    let mut wrong_type = token.clone();
    wrong_type["scopes"] = serde_json::json!({"a": token["refresh_token"].clone()});
    let mut bad_expiry = token.clone();
    bad_expiry["expiry"] = token["refresh_token"].clone();
    let mut not_a_string = token.clone();
    not_a_string["refresh_token"] = serde_json::json!([token["refresh_token"].clone()]);
    let shapes = [
        serde_json::to_string(&text).unwrap(),
        wrong_type.to_string(),
        bad_expiry.to_string(),
        not_a_string.to_string(),
        text[..text.len() - 3].to_owned(),
        format!("{text} {}", token["client_secret"]),
        format!("[{text}]"),
        text.replace(':', "="),
    ];
    for shape in &shapes {
        integration_tests::moto::put(&world.ssm, &world.token_param, shape).await;
        let error = world.run_refresh(&[]).await.unwrap_err();
        assert_eq!(
            error.error_type, "InvalidConfiguration",
            "{}",
            error.error_message
        );
        errors.push(error);
    }
    for error in &errors {
        seen.texts
            .push(format!("{} {}", error.error_type, error.error_message));
    }

    let mut secrets = world.secrets();
    secrets.extend(seen.cookies.iter().cloned());
    let issued = world.google.issued_secrets();
    assert!(
        issued.iter().any(|s| s.starts_with("4/0Afake-code-")),
        "codes are among the secrets checked"
    );
    assert!(
        issued
            .iter()
            .any(|s| s.len() >= 43 && !s.contains('.') && !s.contains('/')),
        "verifiers and states too"
    );
    let logs = captured_logs();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "logging ran at full verbosity"
    );
    assert_no_secret(&logs, &secrets, "the log");
    for text in &seen.texts {
        assert_no_secret(text, &secrets, "a page, header, summary or error message");
    }
    println!(
        "leak check: {} secrets searched in {} log bytes and {} pages/headers/messages; found 0",
        secrets.len(),
        logs.len(),
        seen.texts.len()
    );
}
