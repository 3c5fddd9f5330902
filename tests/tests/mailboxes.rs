//! Many mailboxes in one deployment (`MAILBOXES_PATH`), against moto and the fake Google:
//! each consenting account gets its own parameter, the scheduled run keeps them all, and
//! each mailbox's failure (a revoked grant, a Gmail storm, a parameter that is not a token,
//! a name the mapping does not make) is that mailbox's outcome, reported by name, with
//! nothing overwritten.

use chrono::Utc;
use gmail_refresh::Output;
use integration_tests::{World, minutes_from_now, moto};
use serde_json::Value;

#[tokio::test]
async fn each_consenting_account_is_linked_into_its_own_parameter() {
    let world = World::new("many-link").await;
    let app = world
        .callback_app(&[
            world.many(),
            ("ALLOWED_ACCOUNTS", "@example.com,first.last+news@gmail.com"),
        ])
        .await;
    for account in [
        "me@example.com",
        "Other@Example.COM",
        "first.last+news@gmail.com",
    ] {
        world.google.set_account(account);
        let response = world.link_through(&app).await;
        assert_eq!(response.status_code, 200, "{account}");
    }
    let me = world.mailbox_token("me@example.com").await.expect("me");
    let other = world
        .mailbox_token("other@example.com")
        .await
        .expect("other");
    let plus = world
        .mailbox_token("first.last+news@gmail.com")
        .await
        .expect("plus");
    assert_eq!(me["account"], "me@example.com");
    assert_eq!(other["account"], "other@example.com");
    assert_eq!(plus["account"], "first.last+news@gmail.com");
    assert_ne!(me["refresh_token"], other["refresh_token"]);
    assert_eq!(
        world.mailbox_param("first.last+news@gmail.com"),
        format!("{}gmail.com/first.lastX2Bnews", world.mailboxes_path)
    );
    // The one-token parameter is not used at all.
    assert!(world.stored_token().await.is_none());
    // Every parameter under the path is one mailbox's SecureString.
    let listed = world
        .ssm
        .get_parameters_by_path()
        .path(world.mailboxes_path.trim_end_matches('/'))
        .recursive(true)
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let parameters = listed.parameters();
    assert_eq!(parameters.len(), 3);
    assert!(
        parameters
            .iter()
            .all(|p| p.r#type() == Some(&aws_sdk_ssm::types::ParameterType::SecureString))
    );

    // Not allowed: refused, nothing stored anywhere.
    world.google.set_account("intruder@elsewhere.example");
    assert_eq!(world.link_through(&app).await.status_code, 403);
    assert!(
        world
            .mailbox_token("intruder@elsewhere.example")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_consent_without_a_refresh_token_reuses_only_its_own_mailboxs() {
    let world = World::new("many-reuse").await;
    let (mine, _) = world
        .seed_mailbox("me@example.com", minutes_from_now(-60))
        .await;
    world.google.set_omit_refresh_token(true);
    let app = world
        .callback_app(&[world.many(), ("ALLOWED_ACCOUNTS", "@example.com")])
        .await;
    assert_eq!(world.link_through(&app).await.status_code, 200);
    assert_eq!(
        world.mailbox_token("me@example.com").await.unwrap()["refresh_token"],
        mine.as_str()
    );
    // Another account has no token of its own: it may not borrow anyone's.
    world.google.set_account("you@example.com");
    assert_eq!(world.link_through(&app).await.status_code, 403);
    assert!(world.mailbox_token("you@example.com").await.is_none());
}

#[tokio::test]
async fn a_run_keeps_every_mailbox_and_each_failure_is_that_mailboxs_alone() {
    let world = World::new("many-run").await;
    let (ok_refresh, _) = world
        .seed_mailbox("ok@example.com", minutes_from_now(-5))
        .await;
    let (revoked, _) = world
        .seed_mailbox("revoked@example.com", minutes_from_now(-5))
        .await;
    world.google.revoke(&revoked);
    world
        .seed_mailbox("storm@example.com", minutes_from_now(30))
        .await;
    world.google.fail_account("storm@example.com", Some(503));
    let junk = world.mailbox_param("junk@example.com");
    moto::put(&world.ssm, &junk, "{not json").await;
    let stranger = format!("{}Stranger", world.mailboxes_path);
    moto::put(&world.ssm, &stranger, "hello").await;

    let report = world
        .refresh_app(&[world.many()])
        .await
        .run(Utc::now())
        .await
        .expect("the run itself succeeds")
        .report();
    let status = |account: &str| {
        report
            .mailboxes
            .iter()
            .find(|m| m.account == account)
            .unwrap_or_else(|| panic!("{account} not reported: {report:?}"))
            .clone()
    };
    let ok = status("ok@example.com");
    assert_eq!(serde_json::to_value(ok.status).unwrap(), "ok");
    assert!(ok.token_refreshed);
    assert_eq!(ok.message_count, 3);
    assert_eq!(
        serde_json::to_value(status("revoked@example.com").status).unwrap(),
        "reauthorization_required"
    );
    let storm = status("storm@example.com");
    assert_eq!(serde_json::to_value(storm.status).unwrap(), "upstream");
    assert_eq!(storm.error_type, Some("Upstream"));
    assert_eq!(
        serde_json::to_value(status(&junk).status).unwrap(),
        "invalid"
    );
    assert_eq!(
        serde_json::to_value(status(&stranger).status).unwrap(),
        "invalid"
    );
    let totals = serde_json::to_value(&report.totals).unwrap();
    assert_eq!(
        totals,
        serde_json::json!({"mailboxes": 5, "ok": 1, "reauthorization_required": 1,
                            "upstream": 1, "invalid": 2, "not_reached": 0})
    );
    // The refreshed mailbox was written back; nothing else was touched.
    let stored = world.mailbox_token("ok@example.com").await.unwrap();
    assert_eq!(stored["refresh_token"], ok_refresh.as_str());
    assert_eq!(stored["gmail_oauth"]["written_by"], "refresh");
    assert_eq!(
        moto::read(&world.ssm, &junk).await.unwrap().value,
        "{not json"
    );
    assert_eq!(
        moto::read(&world.ssm, &stranger).await.unwrap().value,
        "hello"
    );
    assert_eq!(
        moto::read(&world.ssm, &world.mailbox_param("revoked@example.com"))
            .await
            .unwrap()
            .version,
        1
    );
}

#[tokio::test]
async fn the_output_is_the_contracts_report() {
    let world = World::new("many-output").await;
    world
        .seed_mailbox("me@example.com", minutes_from_now(30))
        .await;
    let output = world
        .refresh_app(&[world.many()])
        .await
        .run(Utc::now())
        .await
        .expect("run");
    let json: Value = serde_json::to_value(&output).unwrap();
    let mailbox = &json["mailboxes"][0];
    for key in [
        "account",
        "status",
        "token_refreshed",
        "expires_at",
        "message_count",
    ] {
        assert!(mailbox.get(key).is_some(), "{key} missing: {json}");
    }
    for key in [
        "mailboxes",
        "ok",
        "reauthorization_required",
        "upstream",
        "invalid",
        "not_reached",
    ] {
        assert!(json["totals"].get(key).is_some(), "{key} missing: {json}");
    }
    assert!(matches!(output, Output::Many(_)));
}

#[tokio::test]
async fn a_run_without_client_secrets_fails_as_a_whole() {
    let world = World::new("many-nosecrets").await;
    world
        .seed_mailbox("me@example.com", minutes_from_now(30))
        .await;
    let error = world
        .refresh_app(&[
            world.many(),
            ("CLIENT_SECRETS_PARAM", "/gmail-oauth-test/none"),
        ])
        .await
        .run(Utc::now())
        .await
        .map_err(lambda_runtime::Diagnostic::from)
        .unwrap_err();
    assert_eq!(error.error_type, "InvalidConfiguration");
    assert!(error.error_message.contains("/gmail-oauth-test/none"));
}

#[tokio::test]
async fn unusual_addresses_get_their_documented_names_and_too_long_ones_store_nothing() {
    let world = World::new("many-names").await;
    let app = world
        .callback_app(&[
            world.many(),
            ("ALLOWED_ACCOUNTS", "@exämple.de,@long.example"),
        ])
        .await;
    world.google.set_account("Ünïcödé+Tag@Exämple.de");
    assert_eq!(world.link_through(&app).await.status_code, 200);
    let name = world.mailbox_param("ünïcödé+tag@exämple.de");
    assert!(
        name.ends_with("/exXC3XA4mple.de/XC3XBCnXC3XAFcXC3XB6dXC3XA9X2Btag"),
        "{name}"
    );
    assert_eq!(
        world.mailbox_token("ünïcödé+tag@exämple.de").await.unwrap()["account"],
        "ünïcödé+tag@exämple.de"
    );

    // An address whose parameter name would pass Parameter Store's limit: a clear 502
    // page, nothing stored under the path.
    world
        .google
        .set_account(&format!("{}@long.example", "é".repeat(200)));
    let response = world.link_through(&app).await;
    assert_eq!(response.status_code, 502);
    let listed = world
        .ssm
        .get_parameters_by_path()
        .path(world.mailboxes_path.trim_end_matches('/'))
        .recursive(true)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.parameters().len(), 1);
}
