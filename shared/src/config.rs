//! Settings both functions read from their environment once, at start.
//!
//! Lookups go through a closure (`|name| std::env::var(name).ok()` in `main`), so tests
//! pass a map instead of mutating the process environment.

use crate::client_secrets::endpoint_url;
use url::Url;

pub const DEFAULT_CLIENT_SECRETS_PARAM: &str = "/gmail-oauth/client-secrets";
pub const DEFAULT_TOKEN_PARAM: &str = "/gmail-oauth/token";
pub const DEFAULT_GMAIL_API_ENDPOINT: &str = "https://gmail.googleapis.com";
pub const DEFAULT_SCOPES: &str = "https://www.googleapis.com/auth/gmail.readonly";

/// A setting that cannot be used, named with the variable and the rule it breaks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("environment variable {name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

/// Reads one environment variable; empty counts as unset.
pub fn var(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A lookup over fixed pairs instead of the process environment (for tests and tools).
pub fn fixed_env<K: AsRef<str>, V: AsRef<str>>(
    pairs: &[(K, V)],
) -> impl Fn(&str) -> Option<String> + use<K, V> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

/// The settings shared by the callback and the refresh function.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub client_secrets_param: String,
    pub token_param: String,
    pub gmail_api_endpoint: Url,
    pub kms_key_id: Option<String>,
}

impl CommonConfig {
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let gmail =
            var(lookup, "GMAIL_API_ENDPOINT").unwrap_or_else(|| DEFAULT_GMAIL_API_ENDPOINT.into());
        Ok(CommonConfig {
            client_secrets_param: parameter_name(
                lookup,
                "CLIENT_SECRETS_PARAM",
                DEFAULT_CLIENT_SECRETS_PARAM,
            )?,
            token_param: parameter_name(lookup, "TOKEN_PARAM", DEFAULT_TOKEN_PARAM)?,
            gmail_api_endpoint: endpoint_url(&gmail).map_err(|problem| ConfigError {
                name: "GMAIL_API_ENDPOINT",
                problem,
            })?,
            kms_key_id: var(lookup, "KMS_KEY_ID"),
        })
    }
}

/// `SCOPES`: space-separated, at least one.
pub fn scopes(lookup: &impl Fn(&str) -> Option<String>) -> Vec<String> {
    var(lookup, "SCOPES")
        .unwrap_or_else(|| DEFAULT_SCOPES.into())
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// An SSM parameter name: letters, digits and `_.-/` (the characters SSM allows).
fn parameter_name(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let value = var(lookup, name).unwrap_or_else(|| default.into());
    let valid = value.len() <= 1011
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
        && !value.ends_with('/');
    if valid {
        Ok(value)
    } else {
        Err(ConfigError {
            name,
            problem: "is not an SSM parameter name (letters, digits and _.-/ only)".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        fixed_env(pairs)
    }

    #[test]
    fn defaults_follow_the_spec() {
        let config = CommonConfig::from_lookup(&env(&[])).unwrap();
        assert_eq!(config.client_secrets_param, "/gmail-oauth/client-secrets");
        assert_eq!(config.token_param, "/gmail-oauth/token");
        assert_eq!(
            config.gmail_api_endpoint.as_str(),
            "https://gmail.googleapis.com/"
        );
        assert_eq!(config.kms_key_id, None);
        assert_eq!(
            scopes(&env(&[])),
            ["https://www.googleapis.com/auth/gmail.readonly"]
        );
        assert_eq!(scopes(&env(&[("SCOPES", " a  b ")])), ["a", "b"]);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = CommonConfig::from_lookup(&env(&[("TOKEN_PARAM", "/a b")])).unwrap_err();
        assert_eq!(err.name, "TOKEN_PARAM");
        let err =
            CommonConfig::from_lookup(&env(&[("GMAIL_API_ENDPOINT", "http://gmail.example")]))
                .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("environment variable GMAIL_API_ENDPOINT:"),
            "{err}"
        );
    }
}
