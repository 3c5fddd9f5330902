//! The callback function against moto (SSM) and the fake Google over HTTP: every route and
//! outcome of `docs/interface.md`.

use chrono::{TimeDelta, Utc};
use gmail_oauth::deadline::Deadline;
use gmail_oauth::flow_cookie::{self, COOKIE_NAME, FlowKey, FlowState};
use gmail_oauth::oauth2::{ClientSecret, CsrfToken, PkceCodeVerifier};
use integration_tests::Repo;
use integration_tests::events::HttpEvent;
use integration_tests::fake_google::{CLIENT_SECRET, Fault, GMAIL_READONLY};
use integration_tests::ssm_proxy::SsmProxy;
use integration_tests::{World, assert_no_secret, capture_logs, captured_logs, moto};
use lambda_http::Body;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use oauth_callback::App;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn body(response: &ApiGatewayV2httpResponse) -> String {
    match &response.body {
        Some(Body::Text(text)) => text.clone(),
        Some(Body::Binary(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    }
}

fn header(response: &ApiGatewayV2httpResponse, name: &str) -> String {
    response
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The `name=value` part of the flow cookie a response sets.
fn flow_cookie(response: &ApiGatewayV2httpResponse) -> String {
    let set = response
        .cookies
        .iter()
        .find(|c| c.starts_with(COOKIE_NAME))
        .expect("flow cookie set");
    set.split(';').next().unwrap_or_default().to_owned()
}

async fn send(app: &App<Repo>, event: HttpEvent) -> ApiGatewayV2httpResponse {
    capture_logs();
    let response = app.handle(event.event(), Utc::now()).await;
    // Every page, whatever the outcome, carries the protective headers.
    assert_eq!(header(&response, "cache-control"), "no-store");
    assert_eq!(header(&response, "referrer-policy"), "no-referrer");
    assert!(header(&response, "content-security-policy").contains("frame-ancestors 'none'"));
    response
}

/// `/authorize`, then Google's consent page: (callback URL Google sends the browser to, cookie).
async fn consent(world: &World, app: &App<Repo>) -> (String, String) {
    let authorize = send(app, HttpEvent::get("/authorize")).await;
    assert_eq!(authorize.status_code, 302, "{}", body(&authorize));
    let location = header(&authorize, "location");
    (
        world.google.consent(&location).await,
        flow_cookie(&authorize),
    )
}

async fn callback(app: &App<Repo>, callback_url: &str, cookie: &str) -> ApiGatewayV2httpResponse {
    send(app, HttpEvent::get_url(callback_url).cookie(cookie)).await
}

fn cleared_cookie(response: &ApiGatewayV2httpResponse) -> bool {
    response
        .cookies
        .iter()
        .any(|c| c.starts_with(&format!("{COOKIE_NAME}=;")) && c.contains("Max-Age=0"))
}

#[tokio::test]
async fn authorize_redirects_to_google_with_state_pkce_and_a_sealed_cookie() {
    let world = World::new("authorize").await;
    let app = world.callback_app(&[]).await;
    let response = send(
        &app,
        HttpEvent::get("/authorize?login_hint=me%40example.com"),
    )
    .await;
    assert_eq!(response.status_code, 302);
    let location = url::Url::parse(&header(&response, "location")).unwrap();
    assert_eq!(
        location.as_str().split('?').next().unwrap(),
        format!("{}/o/oauth2/auth", world.google.base_url)
    );
    let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(
        query["redirect_uri"],
        "https://abc123.execute-api.us-east-1.amazonaws.com/callback"
    );
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["access_type"], "offline");
    assert_eq!(query["prompt"], "consent");
    assert_eq!(query["include_granted_scopes"], "true");
    assert_eq!(query["login_hint"], "me@example.com");
    assert_eq!(query["scope"], GMAIL_READONLY);
    assert_eq!(query["code_challenge"].len(), 43);

    let set_cookie = response
        .cookies
        .iter()
        .find(|c| c.starts_with(COOKIE_NAME))
        .unwrap();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=600",
    ] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} missing in {set_cookie}"
        );
    }
    // The cookie is sealed: neither the state nor anything readable is in it.
    assert!(!set_cookie.contains(&query["state"]));
}

#[tokio::test]
async fn a_stage_prefix_and_a_configured_redirect_uri_are_honoured() {
    let world = World::new("stage").await;
    let app = world.callback_app(&[]).await;
    let response = send(&app, HttpEvent::get("/prod/authorize").stage("prod")).await;
    assert_eq!(response.status_code, 302);
    assert!(header(&response, "location").contains(
        "redirect_uri=https%3A%2F%2Fabc123.execute-api.us-east-1.amazonaws.com%2Fprod%2Fcallback"
    ));

    let app = world
        .callback_app(&[("REDIRECT_URI", "https://mail.example.org/callback")])
        .await;
    // A forged Host or X-Forwarded-Host never changes the redirect URI.
    let event = HttpEvent::get("/authorize")
        .domain("mail.example.org")
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example");
    let response = send(&app, event).await;
    let location = header(&response, "location");
    assert!(
        location.contains("redirect_uri=https%3A%2F%2Fmail.example.org%2Fcallback"),
        "{location}"
    );
    assert!(!location.contains("evil"));
}

/// A custom domain: the consent must start on the redirect URI's host, where the flow
/// cookie is set and comes back. `/authorize` on the execute-api host moves there (with
/// the login hint), setting no cookie and reading nothing.
#[tokio::test]
async fn authorize_on_another_host_than_the_redirect_uri_moves_to_its_host() {
    let world = World::new("custom-domain").await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    let mut app = world.callback_app_via(&proxy).await;
    app.config.redirect_uri = Some(
        gmail_oauth::oauth2::RedirectUrl::new("https://mail.example.org/prod/callback".into())
            .unwrap(),
    );
    let moved = send(
        &app,
        HttpEvent::get("/authorize?login_hint=me%40example.com"),
    )
    .await;
    assert_eq!(moved.status_code, 302);
    assert_eq!(
        header(&moved, "location"),
        "https://mail.example.org/prod/authorize?login_hint=me%40example.com"
    );
    assert!(!moved.cookies.iter().any(|c| c.starts_with(COOKIE_NAME)));
    assert_eq!(proxy.counts().reads, 0);

    let there = send(
        &app,
        HttpEvent::get("/prod/authorize").domain("MAIL.example.org"),
    )
    .await;
    assert_eq!(there.status_code, 302);
    assert!(header(&there, "location").starts_with(&world.google.base_url));
    flow_cookie(&there);
}

#[tokio::test]
async fn callback_happy_path_stores_a_secure_string_token_and_names_the_account() {
    let world = World::new("happy").await;
    let app = world.callback_app(&[]).await;
    let (callback_url, cookie) = consent(&world, &app).await;
    let response = callback(&app, &callback_url, &cookie).await;

    assert_eq!(response.status_code, 200, "{}", body(&response));
    assert!(body(&response).contains("me@example.com"));
    assert!(cleared_cookie(&response));
    assert_eq!(world.google.code_redemptions(), 1);

    let stored = moto::read(&world.ssm, &world.token_param)
        .await
        .expect("token stored");
    assert_eq!(stored.kind, aws_sdk_ssm::types::ParameterType::SecureString);
    let token: serde_json::Value = serde_json::from_str(&stored.value).unwrap();
    assert!(
        token["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("1//fake-refresh-")
    );
    assert!(
        token["token"]
            .as_str()
            .unwrap()
            .starts_with("ya29.fake-access-")
    );
    assert_eq!(token["account"], "me@example.com");
    assert_eq!(token["client_secret"], CLIENT_SECRET);
    assert_eq!(token["scopes"], serde_json::json!([GMAIL_READONLY]));
    assert_eq!(token["universe_domain"], "googleapis.com");
    let expiry = token["expiry"].as_str().unwrap();
    assert!(expiry.ends_with('Z') && !expiry.contains('+'), "{expiry}");
    let expires = gmail_oauth::token::expiry_format::parse(expiry).unwrap();
    assert!(
        (expires - Utc::now() - TimeDelta::seconds(3599))
            .num_seconds()
            .abs()
            < 10
    );

    // Nothing secret on the page, in headers or in the log.
    let secrets = world.secrets();
    assert_no_secret(&body(&response), &secrets, "the success page");
    assert_no_secret(&format!("{:?}", response.headers), &secrets, "the headers");
    assert_no_secret(&captured_logs(), &secrets, "the log");
}

#[tokio::test]
async fn a_replayed_callback_stores_nothing_the_second_time() {
    let world = World::new("replay").await;
    let app = world.callback_app(&[]).await;
    let (callback_url, cookie) = consent(&world, &app).await;
    assert_eq!(
        callback(&app, &callback_url, &cookie).await.status_code,
        200
    );
    let first = moto::read(&world.ssm, &world.token_param).await.unwrap();

    let again = callback(&app, &callback_url, &cookie).await;
    assert_eq!(again.status_code, 400, "{}", body(&again));
    let after = moto::read(&world.ssm, &world.token_param).await.unwrap();
    assert_eq!(after.version, first.version);
    assert_eq!(after.value, first.value);
}

#[tokio::test]
async fn callback_with_forged_state_stores_nothing_and_never_reaches_google() {
    let world = World::new("forged").await;
    let app = world.callback_app(&[]).await;
    let (callback_url, cookie) = consent(&world, &app).await;
    let mut url = url::Url::parse(&callback_url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            if k == "state" {
                (k.into_owned(), "forged-state".into())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);

    let response = callback(&app, url.as_str(), &cookie).await;
    assert_eq!(response.status_code, 400);
    assert!(body(&response).contains("state"));
    assert!(cleared_cookie(&response));
    assert_eq!(world.google.code_redemptions(), 0);
    assert!(world.stored_token().await.is_none());
}

#[tokio::test]
async fn callback_without_the_cookie_is_refused_before_google() {
    let world = World::new("nocookie").await;
    let app = world.callback_app(&[]).await;
    let (callback_url, _cookie) = consent(&world, &app).await;
    let response = send(&app, HttpEvent::get_url(&callback_url)).await;
    assert_eq!(response.status_code, 400);
    assert!(body(&response).contains("cookie"));
    assert_eq!(world.google.code_redemptions(), 0);
    assert!(world.stored_token().await.is_none());
}

#[tokio::test]
async fn callback_with_a_tampered_or_foreign_cookie_is_refused() {
    let world = World::new("tampered").await;
    let app = world.callback_app(&[]).await;
    let (callback_url, cookie) = consent(&world, &app).await;
    let (name, value) = cookie.split_once('=').unwrap();
    let mut bytes = value.as_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{name}={}", String::from_utf8(bytes).unwrap());
    assert_eq!(
        callback(&app, &callback_url, &tampered).await.status_code,
        400
    );

    // A cookie from another browser's flow (valid, but for another state).
    let (_, other_cookie) = consent(&world, &app).await;
    assert_eq!(
        callback(&app, &callback_url, &other_cookie)
            .await
            .status_code,
        400
    );

    // A cookie sealed with another client secret.
    let flow = FlowState {
        state: CsrfToken::new(
            url::Url::parse(&callback_url)
                .unwrap()
                .query_pairs()
                .find(|(k, _)| k == "state")
                .unwrap()
                .1
                .into_owned(),
        ),
        pkce_verifier: PkceCodeVerifier::new("x".repeat(50)),
        issued_at: Utc::now(),
    };
    let foreign = flow_cookie::seal(
        &FlowKey::derive(&ClientSecret::new("another secret".into())),
        &flow,
    );
    assert_eq!(
        callback(&app, &callback_url, &format!("{COOKIE_NAME}={foreign}"))
            .await
            .status_code,
        400
    );

    assert_eq!(world.google.code_redemptions(), 0);
    assert!(world.stored_token().await.is_none());
}

#[tokio::test]
async fn callback_with_an_expired_state_is_refused() {
    let world = World::new("expired").await;
    let app = world.callback_app(&[]).await;
    let authorize = send(&app, HttpEvent::get("/authorize")).await;
    let location = header(&authorize, "location");
    let state = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let callback_url = world.google.consent(&location).await;
    // The same flow, sealed with the right key but eleven minutes ago.
    let stale = FlowState {
        state: CsrfToken::new(state),
        pkce_verifier: PkceCodeVerifier::new("y".repeat(50)),
        issued_at: Utc::now() - TimeDelta::minutes(11),
    };
    let cookie = flow_cookie::seal(
        &FlowKey::derive(&ClientSecret::new(CLIENT_SECRET.into())),
        &stale,
    );
    let response = callback(&app, &callback_url, &format!("{COOKIE_NAME}={cookie}")).await;
    assert_eq!(response.status_code, 400);
    assert!(body(&response).contains("expired"));
    assert_eq!(world.google.code_redemptions(), 0);
}

#[tokio::test]
async fn denied_consent_is_403_and_stores_nothing() {
    let world = World::new("denied").await;
    world.google.set_deny(true);
    let app = world.callback_app(&[]).await;
    let (callback_url, cookie) = consent(&world, &app).await;
    assert!(callback_url.contains("error=access_denied"));
    let response = callback(&app, &callback_url, &cookie).await;
    assert_eq!(response.status_code, 403);
    assert!(body(&response).contains("access_denied"));
    assert!(cleared_cookie(&response));
    assert_eq!(world.google.code_redemptions(), 0);
    assert!(world.stored_token().await.is_none());
}

#[tokio::test]
async fn an_account_not_allowed_is_403_and_stores_nothing() {
    let world = World::new("notallowed").await;
    world.google.set_account("intruder@elsewhere.example");
    let app = world
        .callback_app(&[("ALLOWED_ACCOUNTS", "me@example.com, @corp.example")])
        .await;
    let (callback_url, cookie) = consent(&world, &app).await;
    let response = callback(&app, &callback_url, &cookie).await;
    assert_eq!(response.status_code, 403, "{}", body(&response));
    assert!(body(&response).contains("ALLOWED_ACCOUNTS"));
    assert!(world.stored_token().await.is_none());

    // An empty allow-list lets nobody in.
    world.google.set_account("me@example.com");
    let app = world.callback_app(&[("ALLOWED_ACCOUNTS", "")]).await;
    let (callback_url, cookie) = consent(&world, &app).await;
    assert_eq!(
        callback(&app, &callback_url, &cookie).await.status_code,
        403
    );
    assert!(world.stored_token().await.is_none());

    // A domain entry admits its accounts, case-insensitively.
    world.google.set_account("Boss@Corp.Example");
    let app = world
        .callback_app(&[("ALLOWED_ACCOUNTS", "@corp.example")])
        .await;
    let (callback_url, cookie) = consent(&world, &app).await;
    assert_eq!(
        callback(&app, &callback_url, &cookie).await.status_code,
        200
    );
}

#[tokio::test]
async fn a_scope_not_granted_is_403_and_stores_nothing() {
    let world = World::new("scope").await;
    world.google.set_granted_scopes(Some(vec!["openid".into()]));
    let app = world.callback_app(&[]).await;
    let (callback_url, cookie) = consent(&world, &app).await;
    let response = callback(&app, &callback_url, &cookie).await;
    assert_eq!(response.status_code, 403);
    assert!(body(&response).contains("gmail.readonly"));
    assert!(world.stored_token().await.is_none());
}

#[tokio::test]
async fn without_a_refresh_token_the_stored_one_is_kept_only_for_the_same_account() {
    let world = World::new("norefresh").await;
    world.google.set_omit_refresh_token(true);
    let app = world
        .callback_app(&[("ALLOWED_ACCOUNTS", "me@example.com,other@example.com")])
        .await;

    // Nothing stored yet: refused with instructions.
    let (callback_url, cookie) = consent(&world, &app).await;
    let response = callback(&app, &callback_url, &cookie).await;
    assert_eq!(response.status_code, 403);
    assert!(body(&response).contains("myaccount.google.com/permissions"));
    assert!(world.stored_token().await.is_none());

    // A token of the same mailbox is stored: its refresh token is kept.
    let (refresh, _) = world
        .seed_token("me@example.com", integration_tests::minutes_from_now(-60))
        .await;
    let (callback_url, cookie) = consent(&world, &app).await;
    assert_eq!(
        callback(&app, &callback_url, &cookie).await.status_code,
        200
    );
    let token = world.stored_token().await.unwrap();
    assert_eq!(token["refresh_token"], refresh.as_str());
    assert!(
        token["token"]
            .as_str()
            .unwrap()
            .starts_with("ya29.fake-access-")
    );

    // Another mailbox may not inherit it.
    world.google.set_account("other@example.com");
    let before = moto::read(&world.ssm, &world.token_param).await.unwrap();
    let (callback_url, cookie) = consent(&world, &app).await;
    assert_eq!(
        callback(&app, &callback_url, &cookie).await.status_code,
        403
    );
    assert_eq!(world.token_version().await, before.version);
}

#[tokio::test]
async fn google_failing_is_502_and_changes_nothing() {
    let world = World::new("upstream").await;
    let (refresh, _) = world
        .seed_token("me@example.com", integration_tests::minutes_from_now(30))
        .await;
    let app = world.callback_app(&[]).await;
    let (callback_url, cookie) = consent(&world, &app).await;
    world.google.inject_token_fault(Fault::Status(503));
    let response = callback(&app, &callback_url, &cookie).await;
    assert_eq!(response.status_code, 502, "{}", body(&response));
    assert_eq!(
        world.stored_token().await.unwrap()["refresh_token"],
        refresh.as_str()
    );
}

#[tokio::test]
async fn missing_client_secrets_are_a_clear_server_error() {
    let world = World::new("nosecrets").await;
    let app = world
        .callback_app(&[("CLIENT_SECRETS_PARAM", "/gmail-oauth-test/does-not-exist")])
        .await;
    let response = send(&app, HttpEvent::get("/authorize")).await;
    assert_eq!(response.status_code, 500);
    assert!(body(&response).contains("not configured"));
    assert!(captured_logs().contains("/gmail-oauth-test/does-not-exist"));
}

#[tokio::test]
async fn malformed_requests_are_4xx_never_5xx() {
    let world = World::new("malformed").await;
    let app = world.callback_app(&[]).await;
    let cases: &[(&str, u16)] = &[
        ("/callback", 400),
        ("/callback?code=abc", 400),
        ("/callback?state=abc", 400),
        ("/callback?code=a\"b&state=<x>", 400),
        ("/callback?code=a\\b&state=c", 400),
        ("/callback?code=%zz&state=c", 400),
        ("/callback?code=a&code=b&state=c", 400),
        ("/callback?code=%ff&state=c", 400),
        ("/authorize?login_hint=a b", 400),
        ("/nowhere", 404),
        ("/", 404),
    ];
    for (path, status) in cases {
        let response = send(&app, HttpEvent::get(path)).await;
        assert_eq!(
            response.status_code,
            i64::from(*status),
            "{path}: {}",
            body(&response)
        );
    }
    let post = send(&app, HttpEvent::get("/callback").method("POST")).await;
    assert_eq!(post.status_code, 405);
    assert_eq!(header(&post, "allow"), "GET");
    assert_eq!(world.google.code_redemptions(), 0);
    assert!(world.stored_token().await.is_none());
}

#[tokio::test]
async fn a_kms_key_is_used_for_the_write_when_configured() {
    let world = World::new("kms").await;
    let app = world
        .callback_app(&[("KMS_KEY_ID", "alias/gmail-oauth-test")])
        .await;
    let (callback_url, cookie) = consent(&world, &app).await;
    let response = callback(&app, &callback_url, &cookie).await;
    assert_eq!(response.status_code, 200, "{}", body(&response));
    let described = world
        .ssm
        .describe_parameters()
        .parameter_filters(
            aws_sdk_ssm::types::ParameterStringFilter::builder()
                .key("Name")
                .values(world.token_param.clone())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let parameter = &described.parameters()[0];
    assert_eq!(parameter.key_id(), Some("alias/gmail-oauth-test"));
}

/// The deadline the function derives from an invocation that times out after `timeout`.
fn invocation_deadline(timeout: Duration) -> Deadline {
    Deadline::after(
        timeout - oauth_callback::RESPONSE_MARGIN,
        oauth_callback::SAVE_RESERVE,
    )
}

/// `callback_url` with the query parameter `name` set to `value`.
fn with_param(callback_url: &str, name: &str, value: &str) -> String {
    let mut url = url::Url::parse(callback_url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.into()
}

#[tokio::test]
async fn an_empty_code_is_a_bad_request_and_never_reaches_google() {
    let world = World::new("emptycode").await;
    let app = world.callback_app(&[]).await;
    let (callback_url, cookie) = consent(&world, &app).await;
    let response = callback(&app, &with_param(&callback_url, "code", ""), &cookie).await;
    assert_eq!(response.status_code, 400, "{}", body(&response));
    assert!(body(&response).contains("needs the code and state"));
    assert!(cleared_cookie(&response));
    assert_eq!(world.google.code_redemptions(), 0);
    assert!(world.stored_token().await.is_none());
}

#[tokio::test]
async fn a_callback_query_that_cannot_be_read_still_clears_the_flow_cookie() {
    let world = World::new("badquery-cookie").await;
    let app = world.callback_app(&[]).await;
    let (_, cookie) = consent(&world, &app).await;
    let long = format!("code={}&state=x", "A".repeat(9000));
    for query in [
        "code=4%2F0A%ZZ&state=x",
        "code=a&code=b&state=c",
        "code=%ff&state=c",
        "code=a\"b&state=<x>",
        long.as_str(),
    ] {
        let response = send(
            &app,
            HttpEvent::get(&format!("/prod/callback?{query}")).cookie(&cookie),
        )
        .await;
        assert_eq!(response.status_code, 400, "{query}");
        assert!(cleared_cookie(&response), "{query}: {:?}", response.cookies);
    }
    // Only /callback ends a flow: a bad /authorize request leaves a flow in progress alone.
    let response = send(
        &app,
        HttpEvent::get("/authorize?login_hint=%zz").cookie(&cookie),
    )
    .await;
    assert_eq!(response.status_code, 400);
    assert!(response.cookies.is_empty());
    assert_eq!(world.google.code_redemptions(), 0);
}

#[tokio::test]
async fn an_absurd_token_lifetime_from_google_is_cut_to_a_day() {
    let world = World::new("absurd-lifetime").await;
    world.google.set_expires_in(10_000_000_000_000);
    let app = world.callback_app(&[]).await;
    let (callback_url, cookie) = consent(&world, &app).await;
    let response = callback(&app, &callback_url, &cookie).await;
    assert_eq!(response.status_code, 200, "{}", body(&response));
    let stored = world.stored_token().await.unwrap();
    let expiry =
        gmail_oauth::token::expiry_format::parse(stored["expiry"].as_str().unwrap()).unwrap();
    let lifetime = expiry - Utc::now();
    assert!(
        lifetime <= TimeDelta::days(1) && lifetime > TimeDelta::hours(23),
        "{lifetime}"
    );
}

#[tokio::test]
async fn a_consent_google_cannot_finish_in_time_answers_502_before_the_deadline() {
    let world = World::new("deadline-google").await;
    let app = world.callback_app(&[]).await;
    let (callback_url, cookie) = consent(&world, &app).await;
    world
        .google
        .inject_token_fault(Fault::Delay(Duration::from_secs(3)));
    let deadline = invocation_deadline(Duration::from_secs(1));
    let started = Instant::now();
    let response = app
        .handle_by(
            HttpEvent::get_url(&callback_url).cookie(&cookie).event(),
            Utc::now(),
            Some(deadline),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status_code, 502);
    assert!(
        body(&response).contains("nothing was stored"),
        "{}",
        body(&response)
    );
    assert!(cleared_cookie(&response));
    assert!(world.stored_token().await.is_none());
}

#[tokio::test]
async fn a_write_the_deadline_cuts_answers_502_saying_the_link_is_uncertain() {
    let world = World::new("deadline-ssm").await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    let app = world.callback_app_via(&proxy).await;
    let (callback_url, cookie) = consent(&world, &app).await;
    let held = proxy.hold("PutParameter");
    let deadline = invocation_deadline(Duration::from_secs(2));
    let started = Instant::now();
    let response = app
        .handle_by(
            HttpEvent::get_url(&callback_url).cookie(&cookie).event(),
            Utc::now(),
            Some(deadline),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status_code, 502);
    assert!(
        body(&response).contains("may or may not"),
        "{}",
        body(&response)
    );
    held.release();
    // Either stored or not, never half: whatever is there is this consent's whole token.
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(stored) = world.stored_token().await {
        assert_eq!(stored["account"], "me@example.com");
    }
}

/// Anyone on the internet can call the two routes. 20 callbacks without a cookie (or with
/// one that is not a sealed cookie) and 20 `/authorize` requests, measured at the SSM proxy:
/// at most one read, instead of one decrypting `GetParameters` each.
#[tokio::test]
async fn anonymous_requests_spend_at_most_one_parameter_store_read() {
    let world = World::new("anonymous").await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    let app = world.callback_app_via(&proxy).await;
    for i in 0..20 {
        let no_cookie = send(
            &app,
            HttpEvent::get(&format!("/callback?code=4%2F0A{i}&state=s{i}")),
        )
        .await;
        assert_eq!(no_cookie.status_code, 400);
        assert!(body(&no_cookie).contains("cookie is missing"));
        let garbage = send(
            &app,
            HttpEvent::get(&format!("/callback?code=c{i}&state=s{i}"))
                .cookie(&format!("{COOKIE_NAME}=not-a-sealed-cookie-{i}")),
        )
        .await;
        assert_eq!(garbage.status_code, 400);
    }
    assert_eq!(proxy.counts().reads, 0, "{:?}", proxy.requests());
    for _ in 0..20 {
        let authorize = send(&app, HttpEvent::get("/authorize")).await;
        assert_eq!(authorize.status_code, 302);
    }
    assert_eq!(proxy.counts().reads, 1, "{:?}", proxy.requests());
    assert_eq!(world.google.code_redemptions(), 0);

    // Well-formed cookies sealed with some other key: secrets read less than
    // `secrets::RECHECK` ago are not read again for them (older ones would be, once, in case
    // they were rotated: see the next test).
    let (callback_url, _) = consent(&world, &app).await;
    let state = url::Url::parse(&callback_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    for i in 0..20 {
        let forged = flow_cookie::seal(
            &FlowKey::derive(&ClientSecret::new(format!("guess {i}"))),
            &FlowState {
                state: CsrfToken::new(state.clone()),
                pkce_verifier: PkceCodeVerifier::new("x".repeat(50)),
                issued_at: Utc::now(),
            },
        );
        let response = callback(&app, &callback_url, &format!("{COOKIE_NAME}={forged}")).await;
        assert_eq!(response.status_code, 400);
    }
    assert_eq!(proxy.counts().reads, 1, "{:?}", proxy.requests());
    assert_eq!(world.google.code_redemptions(), 0);
}

/// The operator rotates the client secret. An execution environment that cached the old one
/// receives the callback of a consent another environment started with the new one: it
/// reads the secrets again and completes the consent.
#[tokio::test]
async fn an_environment_with_a_cached_old_secret_completes_a_consent_sealed_with_the_new() {
    let world = World::new("rotated").await;
    let rotated = world.google.client_secrets_json("web");
    let old = rotated.replace(CLIENT_SECRET, "the-secret-before-rotation");
    moto::put(&world.ssm, &world.secrets_param, &old).await;
    let mut warm = world.callback_app(&[]).await;
    // Rechecked at once (the default waits `secrets::RECHECK` between rereads).
    warm.secrets =
        oauth_callback::secrets::SecretsCache::new(oauth_callback::secrets::TTL, Duration::ZERO);
    assert_eq!(
        send(&warm, HttpEvent::get("/authorize")).await.status_code,
        302
    );

    moto::put(&world.ssm, &world.secrets_param, &rotated).await;
    let fresh = world.callback_app(&[]).await;
    let (callback_url, cookie) = consent(&world, &fresh).await;
    let done = callback(&warm, &callback_url, &cookie).await;
    assert_eq!(done.status_code, 200, "{}", body(&done));
    assert_eq!(world.google.code_redemptions(), 1);
    assert!(world.stored_token().await.is_some());
}
