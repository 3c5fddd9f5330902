//! Google's `client_secrets.json`, exactly as Google Cloud Console downloads it.
//!
//! Two shapes exist: `{"web": {...}}` for a Web application client and `{"installed": {...}}`
//! for a Desktop client. Both carry the same keys; see
//! <https://developers.google.com/identity/protocols/oauth2/web-server#creatingcred>.

use oauth2::{ClientId, ClientSecret};
use serde_json::Value;
use url::Url;

/// Which kind of OAuth client the secrets belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Web,
    Installed,
}

impl ClientKind {
    pub fn key(self) -> &'static str {
        match self {
            ClientKind::Web => "web",
            ClientKind::Installed => "installed",
        }
    }
}

/// The parsed client secrets. `client_secret` is redacted in `Debug`.
#[derive(Debug, Clone)]
pub struct ClientSecrets {
    pub kind: ClientKind,
    pub client_id: ClientId,
    pub client_secret: ClientSecret,
    pub auth_uri: Url,
    pub token_uri: Url,
    pub redirect_uris: Vec<String>,
}

/// Why client secrets could not be used. Messages name keys, never values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientSecretsError {
    #[error("client secrets are {0} bytes, far more than Google's JSON (16384 at most)")]
    TooLarge(usize),
    #[error("client secrets are not valid JSON ({0})")]
    NotJson(String),
    #[error("client secrets JSON has neither a \"web\" nor an \"installed\" object")]
    NoClientObject,
    #[error("client secrets \"{kind}\" object is missing the required key \"{key}\"")]
    MissingKey {
        kind: &'static str,
        key: &'static str,
    },
    #[error("client secrets key \"{key}\" is not a usable URL ({reason})")]
    BadUrl { key: &'static str, reason: String },
}

impl ClientSecrets {
    /// Parses Google's JSON, naming the first missing or malformed key.
    pub fn from_json(json: &str) -> Result<Self, ClientSecretsError> {
        if json.len() > 16 * 1024 {
            return Err(ClientSecretsError::TooLarge(json.len()));
        }
        // A line and a column, never the content (crate::json).
        let root: Value = serde_json::from_str(json)
            .map_err(|e| ClientSecretsError::NotJson(crate::json::syntax_problem(&e)))?;
        let (kind, body) = [ClientKind::Web, ClientKind::Installed]
            .into_iter()
            .find_map(|kind| {
                root.get(kind.key())
                    .filter(|v| v.is_object())
                    .map(|v| (kind, v))
            })
            .ok_or(ClientSecretsError::NoClientObject)?;

        let required = |key: &'static str| -> Result<String, ClientSecretsError> {
            body.get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
                .ok_or(ClientSecretsError::MissingKey {
                    kind: kind.key(),
                    key,
                })
        };
        let url = |key: &'static str| -> Result<Url, ClientSecretsError> {
            let raw = required(key)?;
            endpoint_url(&raw).map_err(|reason| ClientSecretsError::BadUrl { key, reason })
        };

        Ok(ClientSecrets {
            kind,
            client_id: ClientId::new(required("client_id")?),
            client_secret: ClientSecret::new(required("client_secret")?),
            auth_uri: url("auth_uri")?,
            token_uri: url("token_uri")?,
            redirect_uris: body
                .get("redirect_uris")
                .and_then(Value::as_array)
                .map(|uris| {
                    uris.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// Parses an endpoint URL and insists on TLS, except for loopback hosts (local tests and
/// the installed-app redirect). RFC 9700 §2.6: tokens only travel over TLS.
pub fn endpoint_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| e.to_string())?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        other => Err(format!("scheme {other:?} is not https")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = crate::fixtures::CLIENT_SECRETS_WEB;
    const INSTALLED: &str = crate::fixtures::CLIENT_SECRETS_INSTALLED;

    #[test]
    fn parses_the_web_fixture() {
        let secrets = ClientSecrets::from_json(WEB).unwrap();
        assert_eq!(secrets.kind, ClientKind::Web);
        assert_eq!(
            secrets.client_id.as_str(),
            "123456789012-abcdefghijklmnop.apps.googleusercontent.com"
        );
        assert_eq!(
            secrets.client_secret.secret(),
            "GOCSPX-example-client-secret"
        );
        assert_eq!(
            secrets.token_uri.as_str(),
            "https://oauth2.googleapis.com/token"
        );
        assert_eq!(
            secrets.redirect_uris,
            ["https://abc123.execute-api.us-east-1.amazonaws.com/callback"]
        );
    }

    #[test]
    fn parses_the_installed_fixture() {
        let secrets = ClientSecrets::from_json(INSTALLED).unwrap();
        assert_eq!(secrets.kind, ClientKind::Installed);
        assert_eq!(
            secrets.auth_uri.as_str(),
            "https://accounts.google.com/o/oauth2/auth"
        );
    }

    #[test]
    fn names_the_missing_key() {
        let json =
            r#"{"web": {"client_id": "id", "auth_uri": "https://a/", "token_uri": "https://t/"}}"#;
        assert_eq!(
            ClientSecrets::from_json(json).unwrap_err(),
            ClientSecretsError::MissingKey {
                kind: "web",
                key: "client_secret"
            }
        );
        let err = ClientSecrets::from_json(json).unwrap_err().to_string();
        assert!(
            err.contains("\"client_secret\"") && err.contains("\"web\""),
            "{err}"
        );
    }

    #[test]
    fn rejects_other_shapes_and_garbage() {
        assert_eq!(
            ClientSecrets::from_json(r#"{"other": {}}"#).unwrap_err(),
            ClientSecretsError::NoClientObject
        );
        assert_eq!(
            ClientSecrets::from_json(r#"{"web": "x"}"#).unwrap_err(),
            ClientSecretsError::NoClientObject
        );
        assert!(matches!(
            ClientSecrets::from_json("not json").unwrap_err(),
            ClientSecretsError::NotJson(_)
        ));
    }

    #[test]
    fn refuses_plain_http_endpoints_except_loopback() {
        assert!(endpoint_url("http://oauth2.googleapis.com/token").is_err());
        assert!(endpoint_url("ftp://x/").is_err());
        assert!(endpoint_url("http://127.0.0.1:8080/token").is_ok());
        assert!(endpoint_url("http://localhost/token").is_ok());
        assert!(endpoint_url("http://[::1]:9/token").is_ok());
    }

    #[test]
    fn debug_output_redacts_the_secret() {
        let secrets = ClientSecrets::from_json(WEB).unwrap();
        assert!(!format!("{secrets:?}").contains("GOCSPX"));
    }
}
