//! The metrics the release `gmail-refresh` binary prints under the Runtime API (CloudWatch
//! Embedded Metric Format on stdout), and the template's alarms on them: every alarm on the
//! `GmailOAuth` namespace watches a metric the binary prints, with exactly the dimensions it
//! prints, so an alarm can never sit on a name no run emits.

use integration_tests::events::scheduled_event;
use integration_tests::runtime_api::{FunctionProcess, Outcome, release_binary};
use integration_tests::{World, minutes_from_now};
use serde_json::Value;
use std::path::PathBuf;

/// The EMF lines in a function's output.
fn emf_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["_aws"]["CloudWatchMetrics"].is_array())
        .collect()
}

/// (namespace, dimension sets, metric names) an EMF line declares; checks that it carries a
/// value for every metric and dimension it declares.
fn declared(line: &Value) -> (String, Vec<Vec<String>>, Vec<String>) {
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert!(line["_aws"]["Timestamp"].is_i64(), "{line}");
    let names: Vec<String> = directive["Metrics"]
        .as_array()
        .expect("Metrics")
        .iter()
        .map(|m| m["Name"].as_str().expect("Name").to_owned())
        .collect();
    for name in &names {
        assert!(line[name].is_number(), "no value for {name}: {line}");
    }
    let dimensions: Vec<Vec<String>> =
        serde_json::from_value(directive["Dimensions"].clone()).expect("Dimensions");
    for dimension in dimensions.iter().flatten() {
        assert!(
            line[dimension].is_string(),
            "no value for {dimension}: {line}"
        );
    }
    (
        directive["Namespace"]
            .as_str()
            .expect("Namespace")
            .to_owned(),
        dimensions,
        names,
    )
}

#[tokio::test]
async fn the_binary_prints_the_metrics_the_template_alarms_watch() {
    let world = World::new("metrics").await;
    world
        .seed_mailbox("me@example.com", minutes_from_now(-1))
        .await;
    let (revoked, _) = world
        .seed_mailbox("gone@example.com", minutes_from_now(-1))
        .await;
    world.google.revoke(&revoked);
    let env = world.env(&[world.many(), ("AWS_LAMBDA_LOG_FORMAT", "JSON")]);
    let function = FunctionProcess::start(release_binary("gmail-refresh"), env).await;
    let report = function.invoke(scheduled_event()).await.response();
    assert_eq!(report["totals"]["reauthorization_required"], 1, "{report}");

    let lines = emf_lines(&function.logs());
    assert_eq!(lines.len(), 1, "one EMF line per run: {}", function.logs());
    let line = &lines[0];
    assert_eq!(line["FunctionName"], "test-function");
    assert_eq!(line["MailboxesOk"], 1);
    assert_eq!(line["MailboxesReauthorizationRequired"], 1);
    assert_eq!(line["MailboxesFailing"], 0);
    assert_eq!(line["TokenRefreshes"], 1);
    assert!(line["RunDuration"].as_f64().is_some_and(|ms| ms > 0.0));
    // The account is a property, never a dimension (each dimension value is a billed metric).
    assert_eq!(line["reauthorization_required"][0], "gone@example.com");
    let (namespace, dimensions, names) = declared(line);
    assert_eq!(namespace, "GmailOAuth");
    assert_eq!(dimensions, vec![vec!["FunctionName".to_owned()]]);

    let template = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let alarms: Vec<Value> = serde_json::from_str(&integration_tests::python(
        "template_check.py",
        &["--alarms", template.to_str().expect("path")],
    ))
    .expect("alarms as JSON");
    assert!(
        alarms
            .iter()
            .any(|a| a["metric"] == "MailboxesReauthorizationRequired"),
        "{alarms:?}"
    );
    for alarm in &alarms {
        assert_eq!(alarm["namespace"], namespace.as_str(), "{alarm}");
        let metric = alarm["metric"].as_str().expect("metric");
        assert!(
            names.iter().any(|n| n == metric),
            "{alarm} watches a metric no run prints"
        );
        let watched: Vec<String> = serde_json::from_value(alarm["dimensions"].clone()).unwrap();
        assert!(
            dimensions.contains(&watched),
            "{alarm}: dimensions {watched:?}"
        );
    }

    // The one-token layout: a revoked grant fails the run, and still counts as a mailbox
    // needing re-authorization, named by its parameter.
    let single = World::new("metrics-one").await;
    let (refresh_token, _) = single
        .seed_token("me@example.com", minutes_from_now(-1))
        .await;
    single.google.revoke(&refresh_token);
    let function = FunctionProcess::start(release_binary("gmail-refresh"), single.env(&[])).await;
    assert!(matches!(
        function.invoke(scheduled_event()).await,
        Outcome::Error { error_type, .. } if error_type == "ReauthorizationRequired"
    ));
    let lines = emf_lines(&function.logs());
    assert_eq!(lines.len(), 1, "{}", function.logs());
    assert_eq!(lines[0]["MailboxesReauthorizationRequired"], 1);
    assert_eq!(
        lines[0]["reauthorization_required"][0],
        single.token_param.as_str()
    );
    assert_eq!(declared(&lines[0]).2, names);
}
