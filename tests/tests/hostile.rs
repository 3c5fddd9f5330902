//! Hostile input, generated: arbitrary paths, methods, query strings (duplicated, missing,
//! huge, invalid percent-encoding, non-UTF-8) and cookies (garbage, truncated, bit-flipped,
//! swapped between flows, expired, sealed with another key) against the callback handler,
//! with moto and the fake Google behind it. Properties: no panic, no 5xx, no code ever
//! reaches Google (no case pairs a flow's cookie with its own state), nothing is stored,
//! no page echoes the code or state it was sent, and every `/callback` answer clears the
//! flow cookie.
//!
//! `PROPTEST_CASES` sets the number of cases (default 10,000; `make fuzz` runs more).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{TimeDelta, Utc};
use gmail_oauth::flow_cookie::{self, COOKIE_NAME, FlowKey, FlowState};
use gmail_oauth::oauth2::{ClientSecret, CsrfToken, PkceCodeVerifier};
use integration_tests::World;
use integration_tests::events::HttpEvent;
use integration_tests::fake_google::CLIENT_SECRET;
use lambda_http::Body;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Two real consent flows started at `/authorize`: (state, cookie value).
#[derive(Clone, Debug)]
struct Flows {
    a: (String, String),
    b: (String, String),
}

#[derive(Clone, Debug)]
enum CookieCase {
    None,
    Garbage(String),
    Truncated(usize),
    BitFlipped(usize, u8),
    OtherFlow,
    Expired,
    OtherKey,
    Several,
    AsHeader,
}

#[derive(Clone, Debug)]
struct Case {
    path: String,
    method: String,
    query: String,
    cookie: CookieCase,
    host: Option<String>,
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_./-]{0,40}",
        "[ -~]{0,30}",
        "(%[0-9A-Fa-f]{2}){1,12}",
        "%[G-Zg-z%]{0,3}",
        "[\"<>\\\\{}|^`#é ]{1,6}",
        Just("4/0Afake-code-forged-by-the-case".to_owned()),
    ]
}

fn query(flows: Flows) -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("code".to_owned()),
        Just("state".to_owned()),
        Just("error".to_owned()),
        Just("scope".to_owned()),
        Just("login_hint".to_owned()),
        "[a-z_%]{0,8}",
    ];
    // The other flow's state, so a real state meets the wrong cookie.
    let state_of_b = Just(format!("state={}", flows.b.0));
    prop_oneof![
        4 => prop::collection::vec((name, value()), 0..6)
            .prop_map(|pairs| pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")),
        2 => (state_of_b, value()).prop_map(|(state, code)| format!("code={code}&{state}")),
        1 => "[ -~]{0,200}",
        1 => (1usize..20_000).prop_map(|n| format!("code={}&state=x", "A".repeat(n))),
    ]
}

fn case(flows: Flows) -> impl Strategy<Value = Case> {
    let path = prop_oneof![
        4 => Just("/callback".to_owned()),
        2 => Just("/authorize".to_owned()),
        1 => Just("/prod/callback".to_owned()),
        1 => Just("/".to_owned()),
        1 => "/[a-zA-Z0-9/%._-]{0,30}",
    ];
    let method = prop_oneof![8 => Just("GET".to_owned()), 1 => Just("POST".to_owned()), 1 => Just("HEAD".to_owned())];
    let cookie = prop_oneof![
        2 => Just(CookieCase::None),
        1 => "[ -~]{0,80}".prop_map(CookieCase::Garbage),
        1 => (0usize..200).prop_map(CookieCase::Truncated),
        2 => (0usize..200, 1u8..=255).prop_map(|(i, bit)| CookieCase::BitFlipped(i, bit)),
        2 => Just(CookieCase::OtherFlow),
        1 => Just(CookieCase::Expired),
        1 => Just(CookieCase::OtherKey),
        1 => Just(CookieCase::Several),
        1 => Just(CookieCase::AsHeader),
    ];
    let host = prop::option::of("[ -~]{0,40}");
    (path, method, query(flows), cookie, host).prop_map(|(path, method, query, cookie, host)| {
        Case {
            path,
            method,
            query,
            cookie,
            host,
        }
    })
}

fn sealed(state: &str, secret: &str, age: TimeDelta) -> String {
    let flow = FlowState {
        state: CsrfToken::new(state.to_owned()),
        pkce_verifier: PkceCodeVerifier::new("v".repeat(64)),
        issued_at: Utc::now() - age,
    };
    flow_cookie::seal(
        &FlowKey::derive(&ClientSecret::new(secret.to_owned())),
        &flow,
    )
}

fn event(case: &Case, flows: &Flows) -> HttpEvent {
    let path_and_query = if case.query.is_empty() {
        case.path.clone()
    } else {
        format!("{}?{}", case.path, case.query)
    };
    let mut event = HttpEvent::get(&path_and_query).method(&case.method);
    if let Some(host) = &case.host {
        event = event.header("host", host).header("x-forwarded-host", host);
    }
    let real = &flows.a.1;
    let cookie = |value: &str| format!("{COOKIE_NAME}={value}");
    match &case.cookie {
        CookieCase::None => event,
        CookieCase::Garbage(text) => event.cookie(text),
        CookieCase::Truncated(at) => event.cookie(&cookie(&real[..(*at).min(real.len())])),
        CookieCase::BitFlipped(at, bit) => {
            let mut bytes = URL_SAFE_NO_PAD.decode(real).unwrap_or_default();
            if !bytes.is_empty() {
                let index = at % bytes.len();
                bytes[index] ^= bit;
            }
            event.cookie(&cookie(&URL_SAFE_NO_PAD.encode(bytes)))
        }
        // Flow a's cookie; the query may carry flow b's state.
        CookieCase::OtherFlow => event.cookie(&cookie(real)),
        CookieCase::Expired => event.cookie(&cookie(&sealed(
            &flows.b.0,
            CLIENT_SECRET,
            TimeDelta::minutes(11),
        ))),
        CookieCase::OtherKey => event.cookie(&cookie(&sealed(
            &flows.b.0,
            "another-secret",
            TimeDelta::zero(),
        ))),
        CookieCase::Several => event
            .cookie(&cookie("x"))
            .cookie(&cookie(real))
            .cookie("other=1"),
        CookieCase::AsHeader => event.header("cookie", &cookie(real)),
    }
}

fn body(response: &lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse) -> String {
    match &response.body {
        Some(Body::Text(text)) => text.clone(),
        _ => String::new(),
    }
}

#[test]
fn the_callback_holds_against_hostile_requests() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (world, app, flows) = runtime.block_on(async {
        let world = World::new("hostile").await;
        let app = world.callback_app(&[]).await;
        let mut started = Vec::new();
        for _ in 0..2 {
            let response = app
                .handle(HttpEvent::get("/authorize").event(), Utc::now())
                .await;
            let location = url::Url::parse(response.headers["location"].to_str().unwrap()).unwrap();
            let state = location
                .query_pairs()
                .find(|(k, _)| k == "state")
                .unwrap()
                .1
                .into_owned();
            let cookie = response.cookies[0]
                .split(';')
                .next()
                .unwrap()
                .split_once('=')
                .unwrap()
                .1
                .to_owned();
            started.push((state, cookie));
        }
        let flows = Flows {
            a: started[0].clone(),
            b: started[1].clone(),
        };
        (world, app, flows)
    });

    let google_auth = format!("{}/o/oauth2/auth?", world.google.base_url);
    let cases = cases();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::<i64, usize>::new());
    let result = runner.run(&case(flows.clone()), |case| {
        let event = event(&case, &flows);
        let response = runtime.block_on(app.handle(event.event(), Utc::now()));
        *statuses
            .borrow_mut()
            .entry(response.status_code)
            .or_default() += 1;
        prop_assert!(
            response.status_code < 500,
            "{} for {case:?}",
            response.status_code
        );
        // No open redirector: the only redirect ever sent goes to Google's consent page.
        if let Some(location) = response.headers.get("location") {
            let location = location.to_str().unwrap_or_default();
            prop_assert!(
                location.starts_with(&google_auth),
                "redirect to {location} for {case:?}"
            );
        }
        // Every /callback answer ends the flow, even for a request that cannot be read.
        if case.path.trim_end_matches('/').ends_with("/callback") {
            let cleared = format!("{COOKIE_NAME}=;");
            prop_assert!(
                response
                    .cookies
                    .iter()
                    .any(|c| c.starts_with(&cleared) && c.contains("Max-Age=0")),
                "the flow cookie stays set for {:?}",
                case
            );
        }
        let page = body(&response);
        for (name, value) in url::form_urlencoded::parse(case.query.as_bytes()) {
            if (name == "code" || name == "state") && value.len() >= 8 {
                prop_assert!(!page.contains(value.as_ref()), "the page echoes {name}");
            }
        }
        prop_assert_eq!(
            world.google.code_redemptions(),
            0,
            "a code reached Google for {:?}",
            case
        );
        Ok(())
    });
    let statuses = statuses.into_inner();
    println!("hostile cases: {cases}, statuses: {statuses:?}");
    result.unwrap();
    assert!(
        runtime.block_on(world.stored_token()).is_none(),
        "nothing is ever stored"
    );
    assert!(statuses.keys().all(|s| *s < 500));
    assert!(
        statuses.len() >= 4,
        "the cases reach many outcomes: {statuses:?}"
    );
}

/// Every variable the functions read, each given any value (numbers at the edges of `f64`
/// and `usize` among them): each function's configuration is a value or an error naming a
/// variable, never a panic, and what is built from it at start (the pacers, the admission's
/// arithmetic) never panics either.
#[test]
fn any_environment_gives_a_configuration_or_an_error_naming_the_variable() {
    const VARIABLES: [&str; 18] = [
        "ALLOWED_ACCOUNTS",
        "AUTHORIZE_URL",
        "BACKFILL_QUERY",
        "CLIENT_SECRETS_PARAM",
        "EVENT_BUS_NAME",
        "GMAIL_API_ENDPOINT",
        "GMAIL_LABEL",
        "GMAIL_QUERY",
        "KMS_KEY_ID",
        "MAILBOXES_PATH",
        "MAILBOX_CONCURRENCY",
        "MAX_EVENTS_PER_RUN",
        "MAX_MESSAGES",
        "REDIRECT_URI",
        "SCOPES",
        "SSM_READ_TPS",
        "SSM_WRITE_TPS",
        "TOKEN_PARAM",
    ];
    let value = prop_oneof![
        Just("1e-20".to_owned()),
        Just("1e-9".to_owned()),
        Just("1e308".to_owned()),
        Just("-0".to_owned()),
        Just("NaN".to_owned()),
        Just("inf".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("0.1".to_owned()),
        Just("/gmail-oauth/".to_owned()),
        Just("https://x.example/callback".to_owned()),
        "[0-9.eE+-]{1,12}",
        "[ -~]{0,40}",
        "(/[a-z]{1,3}){1,16}/?",
    ];
    let env = proptest::collection::vec((proptest::sample::select(&VARIABLES[..]), value), 0..8);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&env, |pairs| {
            let lookup = gmail_oauth::config::fixed_env(&pairs);
            match gmail_refresh::Config::from_lookup(&lookup) {
                Ok(config) => {
                    let _ = gmail_oauth::pacing::Pacer::per_second(config.common.ssm.read_tps);
                    let _ = gmail_oauth::pacing::Pacer::per_second(config.common.ssm.write_tps);
                    let far = config.run.write_interval.saturating_mul(100_000);
                    let _ = tokio::time::Instant::now().checked_add(far);
                }
                Err(error) => prop_assert!(VARIABLES.contains(&error.name), "{error}"),
            }
            if let Err(error) = oauth_callback::Config::from_lookup(&lookup) {
                prop_assert!(VARIABLES.contains(&error.name), "{error}");
            }
            Ok(())
        })
        .unwrap();
}

/// `PROPTEST_CASES`, 10,000 unless set.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}
