//! Settings both functions read from their environment once, at start.
//!
//! Lookups go through a closure (`|name| std::env::var(name).ok()` in `main`), so tests
//! pass a map instead of mutating the process environment.

use crate::client_secrets::endpoint_url;
use crate::store::{Layout, SsmTuning};
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
    /// `MAILBOXES_PATH` (ending with `/`): many mailboxes, one parameter each. Unset: the
    /// one `TOKEN_PARAM`.
    pub mailboxes_path: Option<String>,
    pub gmail_api_endpoint: Url,
    pub kms_key_id: Option<String>,
    pub ssm: SsmTuning,
}

impl CommonConfig {
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let gmail =
            var(lookup, "GMAIL_API_ENDPOINT").unwrap_or_else(|| DEFAULT_GMAIL_API_ENDPOINT.into());
        let defaults = SsmTuning::default();
        Ok(CommonConfig {
            client_secrets_param: parameter_name(
                lookup,
                "CLIENT_SECRETS_PARAM",
                DEFAULT_CLIENT_SECRETS_PARAM,
            )?,
            token_param: parameter_name(lookup, "TOKEN_PARAM", DEFAULT_TOKEN_PARAM)?,
            mailboxes_path: var(lookup, "MAILBOXES_PATH")
                .map(|raw| mailboxes_path(&raw))
                .transpose()?,
            gmail_api_endpoint: endpoint_url(&gmail).map_err(|problem| ConfigError {
                name: "GMAIL_API_ENDPOINT",
                problem,
            })?,
            kms_key_id: var(lookup, "KMS_KEY_ID"),
            ssm: SsmTuning {
                read_tps: rate(lookup, "SSM_READ_TPS", defaults.read_tps)?,
                write_tps: rate(lookup, "SSM_WRITE_TPS", defaults.write_tps)?,
                ..defaults
            },
        })
    }

    /// Where the tokens are.
    pub fn layout(&self) -> Layout {
        match &self.mailboxes_path {
            Some(path) => Layout::Many { path: path.clone() },
            None => Layout::Single {
                token_param: self.token_param.clone(),
            },
        }
    }
}

/// `MAILBOX_CONCURRENCY`: mailboxes kept at once, 1 to 64 (default 8).
pub fn concurrency(lookup: &impl Fn(&str) -> Option<String>) -> Result<usize, ConfigError> {
    whole_number(
        lookup,
        "MAILBOX_CONCURRENCY",
        DEFAULT_MAILBOX_CONCURRENCY,
        1..=64,
    )
}

/// A whole-number setting within `range`, `default` when unset.
pub fn whole_number(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ConfigError> {
    match var(lookup, name) {
        None => Ok(default),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| ConfigError {
                name,
                problem: format!(
                    "must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            }),
    }
}

pub const DEFAULT_MAILBOX_CONCURRENCY: usize = 8;

/// The range of a calls-per-second setting: at most ten seconds between two calls, at
/// most 10,000 calls a second.
pub const RATE_RANGE: std::ops::RangeInclusive<f64> = 0.1..=10_000.0;

/// A calls-per-second setting within [`RATE_RANGE`].
fn rate(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: f64,
) -> Result<f64, ConfigError> {
    match var(lookup, name) {
        None => Ok(default),
        Some(raw) => raw
            .parse::<f64>()
            .ok()
            .filter(|n| RATE_RANGE.contains(n))
            .ok_or_else(|| ConfigError {
                name,
                problem: "must be a number of calls a second from 0.1 to 10000".into(),
            }),
    }
}

/// Most levels of `MAILBOXES_PATH`: a mailbox adds two (`<domain>/<local part>`), its
/// checkpoint one more, and Parameter Store allows fifteen.
pub const MAX_PATH_LEVELS: usize = 12;

/// `MAILBOXES_PATH`: a parameter path such as `/gmail-oauth/mailboxes/`, kept with its
/// final `/`.
fn mailboxes_path(raw: &str) -> Result<String, ConfigError> {
    let path = format!("{}/", raw.trim_end_matches('/'));
    let levels = path.matches('/').count() - 1;
    let valid = path.starts_with('/')
        && path.len() > 1
        && path.len() <= 400
        && levels <= MAX_PATH_LEVELS
        && !path.contains("//")
        && !reserved(&path)
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    if valid {
        Ok(path)
    } else {
        Err(ConfigError {
            name: "MAILBOXES_PATH",
            problem: "is not a parameter path like /gmail-oauth/mailboxes/ (letters, digits and _.-/, at most 12 levels, not under /aws or /ssm)".into(),
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

/// Where a consent starts for a callback URL (`…/callback` → `…/authorize`, query and
/// fragment dropped): the same host, so the flow cookie `/authorize` sets comes back to
/// the callback. The template derives its `AuthorizeUrl` output the same way.
pub fn authorize_url_for(redirect_uri: &url::Url) -> url::Url {
    let mut url = redirect_uri.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop().push("authorize");
    }
    url
}

/// Most levels of `TOKEN_PARAM` and `CLIENT_SECRETS_PARAM`: the token's checkpoint adds
/// one, and Parameter Store allows fifteen.
pub const MAX_NAME_LEVELS: usize = 14;

/// Parameter Store reserves names that begin with `aws` or `ssm`, in any case.
fn reserved(path: &str) -> bool {
    let lowered = path.trim_start_matches('/').to_ascii_lowercase();
    lowered.starts_with("aws") || lowered.starts_with("ssm")
}

/// A parameter name as the template's `TokenParam` and `ClientSecretsParam` allow it:
/// `/`-separated levels of letters, digits and `_.-`, at most [`MAX_NAME_LEVELS`], 1,000
/// characters (the token's `/checkpoint` still fits SSM's 1,011), not reserved.
fn parameter_name(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let value = var(lookup, name).unwrap_or_else(|| default.into());
    let levels = value.matches('/').count();
    let valid = value.len() <= 1000
        && value.starts_with('/')
        && levels <= MAX_NAME_LEVELS
        && value.split('/').skip(1).all(|level| !level.is_empty())
        && !reserved(&value)
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    if valid {
        Ok(value)
    } else {
        Err(ConfigError {
            name,
            problem: "is not a parameter name like /gmail-oauth/token (levels of letters, digits and _.- after each /, at most 14 levels and 1,000 characters, not under /aws or /ssm)".into(),
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
    fn a_consent_starts_beside_its_callback() {
        for (callback, authorize) in [
            (
                "https://mail.example.com/callback",
                "https://mail.example.com/authorize",
            ),
            (
                "https://h.example:8443/prod/callback?x=1",
                "https://h.example:8443/prod/authorize",
            ),
            (
                "http://localhost:3000/callback",
                "http://localhost:3000/authorize",
            ),
        ] {
            let url = url::Url::parse(callback).unwrap();
            assert_eq!(authorize_url_for(&url).as_str(), authorize, "{callback}");
        }
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
    fn many_mailboxes_need_a_path_and_take_their_settings() {
        let config = CommonConfig::from_lookup(&env(&[])).unwrap();
        assert_eq!(
            config.layout(),
            Layout::Single {
                token_param: "/gmail-oauth/token".into()
            }
        );
        assert_eq!(config.ssm.write_tps, 2.0);
        let config = CommonConfig::from_lookup(&env(&[
            ("MAILBOXES_PATH", "/gmail-oauth/mailboxes"),
            ("SSM_WRITE_TPS", "3"),
        ]))
        .unwrap();
        assert_eq!(
            config.layout(),
            Layout::Many {
                path: "/gmail-oauth/mailboxes/".into()
            }
        );
        assert_eq!(config.ssm.write_tps, 3.0);
        for bad in [
            "gmail",
            "/a b/",
            "/aws/x/",
            "//",
            "/a//b/",
            &"/a".repeat(13),
        ] {
            let err = CommonConfig::from_lookup(&env(&[("MAILBOXES_PATH", bad)])).unwrap_err();
            assert_eq!(err.name, "MAILBOXES_PATH", "{bad}");
        }
        for bad in ["0", "-1", "fast", "inf", "NaN", "1e-20", "0.09", "1e300"] {
            let err = CommonConfig::from_lookup(&env(&[("SSM_WRITE_TPS", bad)])).unwrap_err();
            assert_eq!(err.name, "SSM_WRITE_TPS", "{bad}");
        }
        assert_eq!(concurrency(&env(&[])).unwrap(), 8);
        assert_eq!(
            concurrency(&env(&[("MAILBOX_CONCURRENCY", "0")]))
                .unwrap_err()
                .name,
            "MAILBOX_CONCURRENCY"
        );
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
