//! A real browser through the consent redirect: headless Chromium drives the release
//! `oauth-callback` binary (behind a local API Gateway stand-in, under the Runtime API)
//! through `/authorize` → the fake Google's consent page → "Allow" → `/callback`. This
//! proves the state cookie survives the cross-site redirect (SameSite=Lax) and binds the
//! flow to the browser that started it, and that a consent started on another host than
//! the redirect URI's (a custom domain) still completes. Screenshots land in
//! `target/browser/`.

use integration_tests::World;
use integration_tests::api_gateway::ApiGateway;
use integration_tests::browser::ChromeDriver;
use integration_tests::runtime_api::{FunctionProcess, release_binary};
use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_links_the_account_and_only_the_browser_that_started() {
    let world = World::new("browser").await;
    world.google.set_consent_page(true);
    let gateway = ApiGateway::bind().await;
    let base = gateway.base_url.clone();
    let env = world.env(&[("REDIRECT_URI", &format!("{base}/callback"))]);
    gateway.serve(FunctionProcess::start(release_binary("oauth-callback"), env).await);
    let driver = ChromeDriver::start().await;
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser");
    let authorize = format!("{base}/authorize");

    // Allow: the account is linked, the token is a SecureString in SSM.
    let first = driver.browser(&out.join("profile-first")).await;
    first.goto(&authorize).await;
    first
        .wait_for_text("wants to access your Google Account")
        .await;
    assert!(
        first.url().await.starts_with(&world.google.base_url),
        "{}",
        first.url().await
    );
    first.screenshot(&out.join("consent.png")).await;
    first.click("#allow").await;
    let linked = first.wait_for_text("is now linked").await;
    assert!(linked.contains("me@example.com"), "{linked}");
    assert!(first.url().await.starts_with(&format!("{base}/callback?")));
    first.screenshot(&out.join("linked.png")).await;
    let stored = integration_tests::moto::read(&world.ssm, &world.token_param)
        .await
        .expect("token stored");
    assert_eq!(stored.kind, aws_sdk_ssm::types::ParameterType::SecureString);
    assert_eq!(
        world.stored_token().await.unwrap()["account"],
        "me@example.com"
    );

    // Deny: a clear page with the next step, nothing stored.
    first.goto(&authorize).await;
    first
        .wait_for_text("wants to access your Google Account")
        .await;
    first.click("#deny").await;
    let denied = first.wait_for_text("Consent was not given").await;
    assert!(denied.contains("open /authorize again"), "{denied}");
    first.screenshot(&out.join("denied.png")).await;
    assert_eq!(world.token_version().await, stored.version);

    // A second browser opens the first one's callback URL: refused, the code never redeemed.
    world.google.set_link_instead_of_redirect(true);
    first.goto(&authorize).await;
    first
        .wait_for_text("wants to access your Google Account")
        .await;
    first.click("#allow").await;
    first.wait_for_text("Continue").await;
    let callback_url = first.attribute("#continue", "href").await;
    assert!(
        callback_url.starts_with(&format!("{base}/callback?")),
        "{callback_url}"
    );
    let redemptions = world.google.code_redemptions();
    let second = driver.browser(&out.join("profile-second")).await;
    second.goto(&callback_url).await;
    let refused = second.wait_for_text("could not be verified").await;
    assert!(refused.contains("same browser"), "{refused}");
    second.screenshot(&out.join("other-browser.png")).await;
    assert_eq!(world.google.code_redemptions(), redemptions);
    assert_eq!(world.token_version().await, stored.version);

    // The browser that started the flow can still finish it: its code was never spent.
    first.click("#continue").await;
    first.wait_for_text("is now linked").await;
    assert_eq!(world.token_version().await, stored.version + 1);

    // Two hosts: the redirect URI's (`localhost`, standing for a custom domain) and the
    // API's own (`127.0.0.1`, standing for execute-api). A consent started on the API's
    // host moves to the redirect URI's host first, so its cookie is set where Google sends
    // the browser back; otherwise every such consent ended "the sign-in cookie is missing".
    world.google.set_link_instead_of_redirect(false);
    let api_host = authorize.replacen("localhost", "127.0.0.1", 1);
    let third = driver.browser(&out.join("profile-third")).await;
    third.goto(&api_host).await;
    third
        .wait_for_text("wants to access your Google Account")
        .await;
    third.click("#allow").await;
    let linked = third.wait_for_text("is now linked").await;
    assert!(linked.contains("me@example.com"), "{linked}");
    assert!(third.url().await.starts_with(&format!("{base}/callback?")));
    third.screenshot(&out.join("custom-domain.png")).await;
    assert_eq!(world.token_version().await, stored.version + 2);
    first.quit().await;
    second.quit().await;
    third.quit().await;
}
