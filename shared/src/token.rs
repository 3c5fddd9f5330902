//! The stored token: google-auth's *authorized user* JSON.
//!
//! This is the format `google.oauth2.credentials.Credentials.to_json()` writes and
//! `from_authorized_user_info` reads, so `pythonic_gmail` and this crate share one parameter.
//! Rules kept here (see `docs/interface.md`): `expiry` is written as `YYYY-MM-DDTHH:MM:SSZ`
//! (Python's reader rejects `+00:00`), a missing expiry means "expired", unknown keys
//! survive a rewrite, and secrets are redacted in `Debug`.

use crate::grant_keeping::Lineage;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use oauth2::{AccessToken, ClientSecret, RefreshToken};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Refresh this long before the access token expires, so a run never starts with a token
/// that dies mid-way (yup-oauth2 and google-auth use a similar margin).
pub const EXPIRY_MARGIN: TimeDelta = TimeDelta::minutes(5);

/// One authorized user's credentials, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<AccessToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<RefreshToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecret>,
    /// google-auth writes a list; older writers used one space-separated string.
    #[serde(default, deserialize_with = "scopes_list_or_string")]
    pub scopes: Vec<String>,
    /// The mailbox address (google-auth writes `""` when it does not know it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Absolute expiry of `token`, in UTC.
    #[serde(
        default,
        with = "expiry_format",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiry: Option<DateTime<Utc>>,
    /// Where the grant comes from, for the grant-keeping protocol (`grant_keeping`): who
    /// wrote this value and from which version. google-auth ignores the key (and drops it
    /// when pythonic_gmail rewrites the token, which then counts as written by a person).
    #[serde(
        default,
        rename = "gmail_oauth",
        with = "lineage_format",
        skip_serializing_if = "Option::is_none"
    )]
    pub lineage: Option<Lineage>,
    /// Every other key (`universe_domain`, `rapt_token`, future ones), kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The largest stored token accepted. A google-auth token is about 0.5 KB and SSM's
/// Standard tier holds 4 KB; anything far larger is not a token and is not parsed.
pub const MAX_TOKEN_BYTES: usize = 6 * 1024;

/// Why a stored value is not a usable token. Never quotes the value.
#[derive(Debug, thiserror::Error)]
pub enum TokenFormatError {
    #[error("is {0} bytes, larger than any token ({MAX_TOKEN_BYTES} bytes at most)")]
    TooLarge(usize),
    #[error("is not a google-auth token JSON object ({0})")]
    Malformed(String),
    #[error("has no refresh_token")]
    NoRefreshToken,
}

impl StoredToken {
    /// Parses the stored JSON and checks it can be refreshed.
    pub fn from_json(json: &str) -> Result<Self, TokenFormatError> {
        if json.len() > MAX_TOKEN_BYTES {
            return Err(TokenFormatError::TooLarge(json.len()));
        }
        // serde's own messages quote the value: crate::json says what and where only.
        let token: StoredToken = crate::json::parse(json).map_err(TokenFormatError::Malformed)?;
        if token
            .refresh_token
            .as_ref()
            .is_none_or(|t| t.secret().is_empty())
        {
            return Err(TokenFormatError::NoRefreshToken);
        }
        Ok(token)
    }

    /// The JSON to store. Not for logs: it contains the secrets.
    pub fn to_json(&self) -> Result<String, TokenFormatError> {
        serde_json::to_string(self).map_err(|e| TokenFormatError::Malformed(e.to_string()))
    }

    /// True when there is no usable access token for at least `EXPIRY_MARGIN` from `now`.
    pub fn expires_within_margin(&self, now: DateTime<Utc>) -> bool {
        let has_token = self.token.as_ref().is_some_and(|t| !t.secret().is_empty());
        !has_token
            || self
                .expiry
                .is_none_or(|expiry| expiry - now <= EXPIRY_MARGIN)
    }

    /// The mailbox this token belongs to, if it was recorded.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref().filter(|a| !a.is_empty())
    }

    /// Same credentials: used to skip a write when nothing changed.
    pub fn same_as(&self, other: &StoredToken) -> bool {
        matches!((self.to_json(), other.to_json()), (Ok(a), Ok(b)) if a == b)
    }
}

fn scopes_list_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scopes {
        List(Vec<String>),
        Spaced(String),
    }
    Ok(match Option::<Scopes>::deserialize(d)? {
        None => Vec::new(),
        Some(Scopes::List(list)) => list,
        Some(Scopes::Spaced(s)) => s.split_whitespace().map(str::to_owned).collect(),
    })
}

/// The `gmail_oauth` key: `{"written_by": "consent"}`, or
/// `{"written_by": "refresh" | "heal", "origin": 12, "since": 40}`. A key that cannot be
/// read counts as absent (the value was written by someone else).
mod lineage_format {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(tag = "written_by", rename_all = "snake_case")]
    enum Written {
        Consent,
        Refresh { origin: i64, since: i64 },
        Heal { origin: i64, since: i64 },
    }

    pub fn serialize<S: Serializer>(lineage: &Option<Lineage>, s: S) -> Result<S::Ok, S::Error> {
        let written = match lineage {
            Some(Lineage::Consent) => Some(Written::Consent),
            Some(Lineage::Refresh { origin, since }) => Some(Written::Refresh {
                origin: *origin,
                since: *since,
            }),
            Some(Lineage::Heal { origin, since }) => Some(Written::Heal {
                origin: *origin,
                since: *since,
            }),
            Some(Lineage::Foreign) | None => None,
        };
        written.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Lineage>, D::Error> {
        let value = Option::<Value>::deserialize(d)?;
        Ok(value
            .and_then(|v| serde_json::from_value::<Written>(v).ok())
            .map(|written| match written {
                Written::Consent => Lineage::Consent,
                Written::Refresh { origin, since } => Lineage::Refresh { origin, since },
                Written::Heal { origin, since } => Lineage::Heal { origin, since },
            }))
    }
}

/// `expiry` as google-auth reads and writes it.
pub mod expiry_format {
    use super::*;

    /// Whole seconds and a `Z`: google-auth's reader drops fractions and rejects offsets.
    pub fn format(expiry: &DateTime<Utc>) -> String {
        expiry.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// Accepts `…Z`, `…+00:00`, and a naive `YYYY-MM-DDTHH:MM:SS[.ffffff]` (taken as UTC).
    pub fn parse(raw: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                NaiveDateTime::parse_from_str(raw.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
                    .ok()
                    .map(|t| t.and_utc())
            })
    }

    pub fn serialize<S: Serializer>(
        expiry: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match expiry {
            Some(expiry) => s.serialize_str(&format(expiry)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(raw) => parse(&raw).map(Some).ok_or_else(|| {
                serde::de::Error::custom("expiry is not a UTC timestamp like 2026-11-23T10:15:42Z")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER_CONSENT: &str = crate::fixtures::TOKEN_AFTER_CONSENT;
    const AFTER_REFRESH: &str = crate::fixtures::TOKEN_AFTER_REFRESH;

    fn at(raw: &str) -> DateTime<Utc> {
        expiry_format::parse(raw).unwrap()
    }

    #[test]
    fn reads_the_google_auth_fixtures() {
        let consent = StoredToken::from_json(AFTER_CONSENT).unwrap();
        assert_eq!(
            consent.refresh_token.as_ref().unwrap().secret(),
            "1//0g-example-refresh-token"
        );
        assert_eq!(
            consent.scopes,
            ["https://www.googleapis.com/auth/gmail.readonly"]
        );
        assert_eq!(consent.expiry, Some(at("2026-11-23T10:15:42Z")));
        assert_eq!(consent.account(), None);
        assert_eq!(
            consent.extra.get("universe_domain"),
            Some(&Value::from("googleapis.com"))
        );

        let refreshed = StoredToken::from_json(AFTER_REFRESH).unwrap();
        assert_eq!(
            refreshed.expiry.unwrap().timestamp_micros(),
            at("2026-11-23T10:15:42Z").timestamp_micros() + 123_456
        );
    }

    #[test]
    fn rewrites_the_fixtures_without_losing_a_key_or_a_value() {
        for fixture in [AFTER_CONSENT, AFTER_REFRESH] {
            let original: Map<String, Value> = serde_json::from_str(fixture).unwrap();
            let rewritten: Map<String, Value> =
                serde_json::from_str(&StoredToken::from_json(fixture).unwrap().to_json().unwrap())
                    .unwrap();
            assert_eq!(original.len(), rewritten.len());
            for (key, value) in &original {
                if key == "expiry" {
                    // Python's reader keeps whole seconds; so do we.
                    assert_eq!(&rewritten[key], "2026-11-23T10:15:42Z");
                } else {
                    assert_eq!(&rewritten[key], value, "key {key}");
                }
            }
        }
    }

    #[test]
    fn keeps_unknown_keys() {
        let json =
            r#"{"refresh_token":"r","rapt_token":"rapt","future_key":{"a":[1,2]},"expiry":null}"#;
        let token = StoredToken::from_json(json).unwrap();
        let again: Value = serde_json::from_str(&token.to_json().unwrap()).unwrap();
        assert_eq!(again["rapt_token"], "rapt");
        assert_eq!(again["future_key"]["a"][1], 2);
        assert!(again.get("expiry").is_none());
    }

    #[test]
    fn expiry_is_written_with_z_and_read_in_every_google_auth_shape() {
        assert_eq!(
            expiry_format::format(&at("2026-11-23T10:15:42.999999Z")),
            "2026-11-23T10:15:42Z"
        );
        for raw in [
            "2026-11-23T10:15:42",
            "2026-11-23T10:15:42Z",
            "2026-11-23T10:15:42.5",
            "2026-11-23T10:15:42+00:00",
        ] {
            assert_eq!(
                at(raw).timestamp(),
                at("2026-11-23T10:15:42Z").timestamp(),
                "{raw}"
            );
        }
        assert!(expiry_format::parse("yesterday").is_none());
        assert!(StoredToken::from_json(r#"{"refresh_token":"r","expiry":"soon"}"#).is_err());
    }

    #[test]
    fn scopes_may_be_one_spaced_string() {
        let token = StoredToken::from_json(r#"{"refresh_token":"r","scopes":"a b"}"#).unwrap();
        assert_eq!(token.scopes, ["a", "b"]);
    }

    #[test]
    fn a_token_without_refresh_token_is_refused() {
        assert!(matches!(
            StoredToken::from_json(r#"{"token":"t"}"#),
            Err(TokenFormatError::NoRefreshToken)
        ));
        assert!(matches!(
            StoredToken::from_json(r#"{"refresh_token":""}"#),
            Err(TokenFormatError::NoRefreshToken)
        ));
        assert!(matches!(
            StoredToken::from_json("[1]"),
            Err(TokenFormatError::Malformed(_))
        ));
        let err = StoredToken::from_json(r#"{"refresh_token": 5123}"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("5123"), "{err}");
        assert!(err.contains("refresh_token"), "{err}");
    }

    #[test]
    fn expiring_within_five_minutes_or_unknown_means_refresh() {
        let now = at("2026-11-23T10:00:00Z");
        let mut token = StoredToken::from_json(AFTER_CONSENT).unwrap();
        token.expiry = Some(now + TimeDelta::minutes(6));
        assert!(!token.expires_within_margin(now));
        token.expiry = Some(now + TimeDelta::minutes(5));
        assert!(token.expires_within_margin(now));
        token.expiry = Some(now - TimeDelta::hours(1));
        assert!(token.expires_within_margin(now));
        token.expiry = None;
        assert!(token.expires_within_margin(now));
        token.expiry = Some(now + TimeDelta::hours(1));
        token.token = None;
        assert!(token.expires_within_margin(now));
    }

    #[test]
    fn debug_output_hides_every_secret() {
        let token = StoredToken::from_json(AFTER_CONSENT).unwrap();
        let debug = format!("{token:?}");
        for secret in ["ya29", "1//0g", "GOCSPX"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
    }
}
