//! Parameter Store through the AWS SDK: the calls of [`ParameterStore`], paced to the
//! account's quotas, with timeouts, the SDK's retries, and errors that name the parameter
//! and the AWS error code but never quote a value.
//!
//! The endpoint follows the SDK's standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SSM`
//! variables, which is how tests point it at `moto_server`.

use super::{Found, ParameterKind, ParameterStore, StoreError, Version, Wanted};
use crate::pacing::Pacer;
use aws_sdk_ssm::config::http::HttpResponse;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::ParameterType;
use std::time::Duration;

/// How the functions talk to SSM: quotas, timeouts, retries.
#[derive(Debug, Clone, Copy)]
pub struct SsmTuning {
    /// Reads a second (`GetParameters`, each page of `GetParametersByPath`); 0: unpaced.
    pub read_tps: f64,
    /// Writes a second (`PutParameter`, `DeleteParameter`); 0: unpaced.
    pub write_tps: f64,
    /// One HTTP attempt.
    pub attempt_timeout: Duration,
    /// One call, its retries included: a save is two calls, so the time a run keeps for
    /// its saves follows from this.
    pub operation_timeout: Duration,
    /// Attempts of one call (the SDK's standard retry mode: throttling, 5xx, timeouts).
    pub max_attempts: u32,
}

impl Default for SsmTuning {
    fn default() -> Self {
        SsmTuning {
            read_tps: 20.0,
            write_tps: 2.0,
            attempt_timeout: Duration::from_millis(1500),
            operation_timeout: Duration::from_secs(4),
            max_attempts: 4,
        }
    }
}

/// Parameter Store through the AWS SDK.
#[derive(Debug)]
pub struct SsmParameters {
    client: aws_sdk_ssm::Client,
    kms_key_id: Option<String>,
    reads: Pacer,
    writes: Pacer,
}

impl SsmParameters {
    /// Wraps a client; `kms_key_id` is the KMS key for SecureString writes (default key if `None`).
    pub fn new(client: aws_sdk_ssm::Client, kms_key_id: Option<String>, tuning: SsmTuning) -> Self {
        SsmParameters {
            client,
            kms_key_id,
            reads: Pacer::per_second(tuning.read_tps),
            writes: Pacer::per_second(tuning.write_tps),
        }
    }

    /// Builds the client from the environment (region, credentials, endpoint) with the
    /// tuning's timeouts and retries, so an SSM outage ends a call with an error instead of
    /// hanging it.
    pub async fn from_env(kms_key_id: Option<String>, tuning: SsmTuning) -> Self {
        let config = sdk_config_from_env(
            tuning.attempt_timeout,
            tuning.operation_timeout,
            tuning.max_attempts,
            Duration::from_secs(2),
        )
        .await;
        SsmParameters::new(aws_sdk_ssm::Client::new(&config), kms_key_id, tuning)
    }

    fn found(parameter: aws_sdk_ssm::types::Parameter) -> Option<Found> {
        Some(Found {
            name: parameter.name?,
            version: parameter.version,
            written_at: parameter
                .last_modified_date
                .and_then(|d| d.to_millis().ok())
                .unwrap_or_default(),
            value: parameter.value?,
        })
    }
}

/// The AWS SDK configuration from the environment (region, credentials, endpoint) with
/// bounded calls: each attempt, each call with its retries, and the SDK's standard retry
/// mode (throttling, 5xx, timeouts), so an outage ends a call with an error instead of
/// hanging it.
pub async fn sdk_config_from_env(
    attempt_timeout: Duration,
    operation_timeout: Duration,
    max_attempts: u32,
    max_backoff: Duration,
) -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(attempt_timeout)
        .operation_timeout(operation_timeout)
        .build();
    let retries = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(max_attempts)
        .with_max_backoff(max_backoff);
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(sdk_http_client())
        .timeout_config(timeouts)
        .retry_config(retries)
        .load()
        .await
}

/// The SDK's HTTPS client (also used for credentials): rustls with ring, the TLS stack of
/// the Google client, so the binaries carry one crypto library.
pub fn sdk_http_client() -> aws_sdk_ssm::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

impl ParameterStore for SsmParameters {
    async fn get(&self, wanted: &[Wanted]) -> Result<Vec<Found>, StoreError> {
        self.reads.ready().await;
        let names: Vec<String> = wanted.iter().map(Wanted::selector).collect();
        let output = self
            .client
            .get_parameters()
            .set_names(Some(names.clone()))
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| classify("GetParameters", names.join(", "), e))?;
        Ok(output
            .parameters
            .unwrap_or_default()
            .into_iter()
            .filter_map(Self::found)
            .collect())
    }

    async fn get_by_path(&self, path: &str) -> Result<Vec<Found>, StoreError> {
        let mut found = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            self.reads.ready().await;
            let output = self
                .client
                .get_parameters_by_path()
                .path(path.trim_end_matches('/'))
                .recursive(true)
                .with_decryption(true)
                .max_results(10)
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| classify("GetParametersByPath", path.to_owned(), e))?;
            found.extend(
                output
                    .parameters
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(Self::found),
            );
            match output.next_token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => return Ok(found),
            }
        }
    }

    async fn put(
        &self,
        name: &str,
        value: &str,
        kind: ParameterKind,
        overwrite: bool,
        start_by: Option<tokio::time::Instant>,
    ) -> Result<Version, StoreError> {
        if !self.writes.ready_by(start_by).await {
            return Err(StoreError::NoTime {
                operation: "PutParameter",
                name: name.to_owned(),
            });
        }
        let (kind, key) = match kind {
            ParameterKind::Secret => (ParameterType::SecureString, self.kms_key_id.clone()),
            ParameterKind::Plain => (ParameterType::String, None),
        };
        let output = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(kind)
            .overwrite(overwrite)
            .set_key_id(key)
            .send()
            .await
            .map_err(|e| classify("PutParameter", name.to_owned(), e))?;
        Ok(output.version())
    }

    async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        self.writes.ready().await;
        match self.client.delete_parameter().name(name).send().await {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                Ok(false)
            }
            Err(error) => Err(classify("DeleteParameter", name.to_owned(), error)),
        }
    }
}

/// Sorts SDK failures into "try later" and "refused", keeping only the AWS error code:
/// a validation message can echo the parameter value, which is a secret.
fn classify<E>(
    operation: &'static str,
    name: String,
    error: SdkError<E, HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match describe(&error) {
        (true, detail) => StoreError::Unavailable { operation, detail },
        (false, detail) => StoreError::Refused {
            operation,
            name,
            detail,
        },
    }
}

/// An AWS SDK failure as (worth retrying later, what to say): the AWS error code or the
/// kind of transport failure, never the message (it can echo what was sent).
pub(crate) fn describe<E>(error: &SdkError<E, HttpResponse>) -> (bool, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown error").to_owned();
            let transient = code.contains("Throttl")
                || code.contains("InternalServerError")
                || code.contains("ServiceUnavailable")
                || code.contains("InternalException")
                || service.raw().status().is_server_error();
            (transient, code)
        }
        SdkError::TimeoutError(_) => (true, "timed out".into()),
        SdkError::DispatchFailure(failure) => {
            let kind = if failure.is_timeout() {
                "timed out"
            } else if failure.is_io() {
                "connection failed"
            } else {
                "request could not be sent"
            };
            (true, kind.into())
        }
        _ => (true, "unexpected response".into()),
    }
}
