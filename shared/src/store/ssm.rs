//! SecureString parameters in AWS Systems Manager Parameter Store.
//!
//! The endpoint follows the SDK's standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SSM`
//! variables, which is how tests point it at `moto_server`.

use super::{Parameter, StoreError, TokenStore};
use aws_sdk_ssm::config::http::HttpResponse;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::ParameterType;
use std::time::Duration;

/// Parameter Store through the AWS SDK, whose standard retry mode already retries
/// throttling and 5xx answers with backoff (3 attempts).
#[derive(Debug, Clone)]
pub struct SsmStore {
    client: aws_sdk_ssm::Client,
    kms_key_id: Option<String>,
}

impl SsmStore {
    /// Wraps a client; `kms_key_id` is the KMS key for SecureString writes (default key if `None`).
    pub fn new(client: aws_sdk_ssm::Client, kms_key_id: Option<String>) -> Self {
        SsmStore { client, kms_key_id }
    }

    /// Builds the client from the environment (region, credentials, endpoint) with timeouts,
    /// so an SSM outage ends a run with an error instead of hanging it.
    pub async fn from_env(kms_key_id: Option<String>) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(5))
            .operation_timeout(Duration::from_secs(12))
            .build();
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(sdk_http_client())
            .timeout_config(timeouts)
            .load()
            .await;
        SsmStore::new(aws_sdk_ssm::Client::new(&config), kms_key_id)
    }
}

/// The SDK's HTTPS client (also used for credentials): rustls with ring, the TLS stack of
/// the Google client, so the binaries carry one crypto library.
pub fn sdk_http_client() -> aws_sdk_ssm::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

impl TokenStore for SsmStore {
    async fn get_many(&self, names: &[&str]) -> Result<Vec<Option<Parameter>>, StoreError> {
        let output = self
            .client
            .get_parameters()
            .set_names(Some(names.iter().map(|n| (*n).to_owned()).collect()))
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| classify("GetParameters", names.join(", "), e))?;
        let found = output.parameters.unwrap_or_default();
        Ok(names
            .iter()
            .map(|name| {
                found
                    .iter()
                    .find(|p| p.name() == Some(*name))
                    .map(|p| Parameter {
                        name: (*name).to_owned(),
                        value: p.value().unwrap_or_default().to_owned(),
                        version: p.version(),
                    })
            })
            .collect())
    }

    async fn put_secret(&self, name: &str, value: &str) -> Result<i64, StoreError> {
        let output = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::SecureString)
            .overwrite(true)
            .set_key_id(self.kms_key_id.clone())
            .send()
            .await
            .map_err(|e| classify("PutParameter", name.to_owned(), e))?;
        Ok(output.version())
    }

    async fn get_version(&self, name: &str, version: i64) -> Result<Option<Parameter>, StoreError> {
        // `name:version` selects one version (kept for the last 100 writes).
        match self
            .client
            .get_parameter()
            .name(format!("{name}:{version}"))
            .with_decryption(true)
            .send()
            .await
        {
            Ok(output) => Ok(output.parameter.map(|p| Parameter {
                name: name.to_owned(),
                value: p.value.unwrap_or_default(),
                version: p.version,
            })),
            Err(error)
                if error.as_service_error().is_some_and(|e| {
                    e.is_parameter_not_found() || e.is_parameter_version_not_found()
                }) =>
            {
                Ok(None)
            }
            Err(error) => Err(classify("GetParameter", name.to_owned(), error)),
        }
    }

    async fn delete(&self, name: &str) -> Result<bool, StoreError> {
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
    match &error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown error").to_owned();
            let transient = code.contains("Throttl")
                || code.contains("InternalServerError")
                || code.contains("ServiceUnavailable")
                || service.raw().status().is_server_error();
            if transient {
                StoreError::Unavailable {
                    operation,
                    detail: code,
                }
            } else {
                StoreError::Refused {
                    operation,
                    name,
                    detail: code,
                }
            }
        }
        SdkError::TimeoutError(_) => StoreError::Unavailable {
            operation,
            detail: "timed out".into(),
        },
        SdkError::DispatchFailure(failure) => {
            let kind = if failure.is_timeout() {
                "timed out"
            } else if failure.is_io() {
                "connection failed"
            } else {
                "request could not be sent"
            };
            StoreError::Unavailable {
                operation,
                detail: kind.into(),
            }
        }
        _ => StoreError::Unavailable {
            operation,
            detail: "unexpected response".into(),
        },
    }
}
