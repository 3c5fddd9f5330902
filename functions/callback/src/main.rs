//! `oauth-callback`: the API Gateway Lambda that links a Gmail account.
// The callback's future nests the AWS SDK's and Google's calls deeper than the default limit of 128.
#![recursion_limit = "256"]

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use oauth_callback::{App, Config};
use std::convert::Infallible;

// One thread: an execution environment answers one request at a time, every wait is
// network I/O, and a second worker thread only adds memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    // The runtime's subscriber settings (AWS_LAMBDA_LOG_LEVEL, AWS_LAMBDA_LOG_FORMAT=json),
    // without the runtime's TRACE dump of raw events (see gmail_oauth::logging).
    gmail_oauth::logging::init_lambda();

    let config = match Config::from_lookup(&|name| std::env::var(name).ok()) {
        Ok(config) => config,
        // A refused setting: the runtime still starts, and every request gets the "not
        // configured" page (a crash before the runtime would give API Gateway's bare 500
        // and a log line without the reason).
        Err(error) => {
            tracing::error!(error_type = "InvalidConfiguration", %error, "cannot start");
            return lambda_runtime::run(service_fn(|_: LambdaEvent<ApiGatewayV2httpRequest>| {
                let answer = oauth_callback::unconfigured(&error);
                async move { Ok::<_, Infallible>(answer) }
            }))
            .await;
        }
    };
    if config.allowed_accounts.is_empty() {
        tracing::warn!("ALLOWED_ACCOUNTS is empty: no account can be linked until it is set");
    }
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
    let app = App::new(config, store, gmail_oauth::oauth::http_client()?);

    lambda_runtime::run(service_fn(|event: LambdaEvent<ApiGatewayV2httpRequest>| {
        let app = &app;
        async move {
            let now = chrono::Utc::now();
            let deadline = oauth_callback::deadline(event.context.deadline, now);
            Ok::<_, Infallible>(app.handle_by(event.payload, now, Some(deadline)).await)
        }
    }))
    .await
}
