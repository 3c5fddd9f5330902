//! The run's metrics in CloudWatch Embedded Metric Format: one JSON line on stdout per
//! invocation, which CloudWatch Logs turns into metrics in the `GmailOAuth` namespace with
//! no `PutMetricData` call and no extra permission.
//!
//! The only dimension is `FunctionName` (one deployment's metrics stay apart from
//! another's). Accounts are properties, not dimensions: each distinct dimension value is a
//! billed custom metric, while a property is only searchable text (Logs Insights:
//! `filter ispresent(_aws) and reauthorization_required like "me@"`). The template's alarms
//! watch these names; `tests/tests/metrics.rs` checks that the binary prints exactly them.

use crate::{Output, RunError};
use chrono::{DateTime, Utc};
use gmail_oauth::run::Status;
use serde_json::{Value, json};
use std::time::Duration;

pub const NAMESPACE: &str = "GmailOAuth";
pub const DIMENSION: &str = "FunctionName";

/// What one run counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunMetrics {
    pub ok: usize,
    /// The accounts (or parameters) that need someone to open `/authorize` again: Google
    /// refused the grant.
    pub reauthorization_required: Vec<String>,
    /// Mailboxes whose turn failed otherwise (Google, Gmail or AWS kept failing; a
    /// parameter that cannot be read; a misconfigured deployment).
    pub failing: Vec<String>,
    pub not_reached: usize,
    /// 1 when the one token's parameter does not exist (nothing linked yet): no alarm
    /// watches it, so a new stack is quiet until its first consent.
    pub not_linked: usize,
    pub token_refreshes: usize,
    pub events_published: usize,
}

impl RunMetrics {
    /// The run's counts; a failure of the whole run is counted against `location` (the
    /// token parameter, or the path of many mailboxes).
    pub fn of(result: &Result<Output, RunError>, location: &str) -> RunMetrics {
        let mut metrics = RunMetrics::default();
        match result {
            Ok(Output::One(summary)) => {
                metrics.ok = 1;
                metrics.token_refreshes = usize::from(summary.token_refreshed);
                metrics.events_published =
                    summary.events.as_ref().map_or(0, |e| e.events_published);
            }
            Ok(Output::NotLinked(_)) => metrics.not_linked = 1,
            Ok(Output::Many(report)) => {
                for mailbox in &report.mailboxes {
                    metrics.token_refreshes += usize::from(mailbox.token_refreshed);
                    metrics.events_published +=
                        mailbox.events.as_ref().map_or(0, |e| e.events_published);
                    let account = mailbox.account.clone();
                    match mailbox.status {
                        Status::Ok => metrics.ok += 1,
                        Status::ReauthorizationRequired => {
                            metrics.reauthorization_required.push(account)
                        }
                        Status::Upstream | Status::Invalid => metrics.failing.push(account),
                        Status::NotReached => metrics.not_reached += 1,
                    }
                }
            }
            // The one mailbox (or the whole run) failed: the error names which.
            Err(RunError(error)) => match error {
                gmail_oauth::Error::TokenNotFound { .. } => metrics.not_linked = 1,
                gmail_oauth::Error::ReauthorizationRequired { .. } => {
                    metrics.reauthorization_required.push(location.into())
                }
                _ => metrics.failing.push(location.into()),
            },
        }
        metrics
    }

    /// The EMF line (one JSON object) for a run of `duration` by `function_name` at `now`.
    pub fn emf(&self, function_name: &str, duration: Duration, now: DateTime<Utc>) -> Value {
        let metrics = [
            ("MailboxesOk", "Count", json!(self.ok)),
            (
                "MailboxesReauthorizationRequired",
                "Count",
                json!(self.reauthorization_required.len()),
            ),
            ("MailboxesFailing", "Count", json!(self.failing.len())),
            ("MailboxesNotReached", "Count", json!(self.not_reached)),
            ("MailboxesNotLinked", "Count", json!(self.not_linked)),
            ("TokenRefreshes", "Count", json!(self.token_refreshes)),
            ("EventsPublished", "Count", json!(self.events_published)),
            (
                "RunDuration",
                "Milliseconds",
                json!(duration.as_secs_f64() * 1000.0),
            ),
        ];
        let mut line = json!({
            "_aws": {
                "Timestamp": now.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": metrics
                        .iter()
                        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
                        .collect::<Vec<_>>(),
                }],
            },
            DIMENSION: function_name,
            "reauthorization_required": self.reauthorization_required,
            "failing": self.failing,
        });
        for (name, _, value) in metrics {
            line[name] = value;
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_metric_has_a_value_and_accounts_are_properties_only() {
        let metrics = RunMetrics {
            ok: 2,
            reauthorization_required: vec!["a@example.com".into()],
            failing: vec!["b@example.com".into()],
            not_reached: 1,
            not_linked: 0,
            token_refreshes: 1,
            events_published: 7,
        };
        let line = metrics.emf("fn", Duration::from_millis(1500), Utc::now());
        let declared = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], NAMESPACE);
        assert_eq!(declared["Dimensions"], json!([["FunctionName"]]));
        let declared_names = declared["Metrics"].as_array().unwrap();
        assert_eq!(declared_names.len(), 8);
        for metric in declared_names {
            let name = metric["Name"].as_str().unwrap();
            assert!(line[name].is_number(), "{name}: {line}");
        }
        assert_eq!(line["MailboxesReauthorizationRequired"], 1);
        assert_eq!(line["EventsPublished"], 7);
        assert_eq!(line["RunDuration"], 1500.0);
        assert_eq!(line["reauthorization_required"], json!(["a@example.com"]));
        // No account in the dimension sets: they stay one metric per deployment.
        assert!(!declared["Dimensions"].to_string().contains("example.com"));
    }

    #[test]
    fn a_failed_single_run_counts_as_its_error_says() {
        let revoked = Err(RunError(gmail_oauth::Error::ReauthorizationRequired {
            reason: "invalid_grant".into(),
            authorize_url: None,
        }));
        let metrics = RunMetrics::of(&revoked, "/gmail-oauth/token");
        assert_eq!(
            metrics.reauthorization_required,
            vec!["/gmail-oauth/token".to_owned()]
        );
        assert_eq!(metrics.ok, 0);
        let down = Err(RunError(gmail_oauth::Error::upstream(
            "reading",
            std::fmt::Error,
        )));
        assert_eq!(
            RunMetrics::of(&down, "/gmail-oauth/token").failing,
            vec!["/gmail-oauth/token".to_owned()]
        );
    }
}
