//! `gmail-refresh`: the scheduled Lambda that keeps the token fresh and reads the mailbox.

use gmail_oauth::store::TokenRepository;
use gmail_refresh::metrics::RunMetrics;
use gmail_refresh::{Config, Refresh};
use lambda_runtime::{LambdaEvent, service_fn};

// One thread: a Lambda execution environment of 128 MB has a fraction of a vCPU, and every
// wait here is network I/O; a second worker thread only adds memory (its stack, its
// allocator arena).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    // The runtime's subscriber settings (AWS_LAMBDA_LOG_LEVEL, AWS_LAMBDA_LOG_FORMAT=json),
    // without the runtime's TRACE dump of raw events (see gmail_oauth::logging).
    gmail_oauth::logging::init_lambda();

    let config = match Config::from_lookup(&|name| std::env::var(name).ok()) {
        Ok(config) => config,
        // A refused setting: the runtime still starts, and every invocation fails with
        // InvalidConfiguration naming the variable (and prints its metrics line), instead
        // of an exit before the runtime (Runtime.ExitError, no reason, no metric).
        Err(error) => {
            tracing::error!(error_type = "InvalidConfiguration", %error, "cannot start");
            let function_name = function_name();
            return lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| {
                let result: Result<gmail_refresh::Output, _> = Err(gmail_refresh::RunError(
                    gmail_oauth::Error::invalid(error.to_string()),
                ));
                let line = RunMetrics::of(&result, "configuration").emf(
                    &function_name,
                    std::time::Duration::ZERO,
                    chrono::Utc::now(),
                );
                println!("{line}");
                async move { result }
            }))
            .await;
        }
    };
    let parameters = gmail_oauth::store::SsmParameters::from_env(
        config.common.kms_key_id.clone(),
        config.common.ssm,
    )
    .await;
    let store = gmail_oauth::store::ParameterRepository::new(
        parameters,
        config.common.client_secrets_param.clone(),
        config.common.layout(),
    );
    // The EventBridge client is built only when events are on (no start-up work otherwise).
    let bus = match &config.event_bus {
        Some(name) => Some(gmail_oauth::eventbridge::EventBridgeBus::from_env(name.clone()).await),
        None => None,
    };
    let refresh = Refresh::new(config, store, bus, gmail_oauth::oauth::http_client()?);
    let location = refresh.store.location();
    let function_name = function_name();

    // Any JSON starts a run: the EventBridge envelope, or `{}` from a manual invoke.
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let (refresh, location, function_name) = (&refresh, &location, &function_name);
        async move {
            let now = chrono::Utc::now();
            let started = std::time::Instant::now();
            let deadline = gmail_refresh::deadline_from_context(event.context.deadline, now);
            let result = refresh.run_until(now, Some(deadline)).await;
            // One line of CloudWatch Embedded Metric Format per run, straight to stdout (not
            // through the log subscriber, whose JSON would nest it): see `metrics`.
            let line = RunMetrics::of(&result, location).emf(
                function_name,
                started.elapsed(),
                chrono::Utc::now(),
            );
            println!("{line}");
            result
        }
    }))
    .await
}

fn function_name() -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "gmail-refresh".into())
}
