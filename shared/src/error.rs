//! The errors an operator acts on, and the `errorType` names they carry in Lambda.
//!
//! Lower layers have their own error enums (store, OAuth, Gmail, configuration); each
//! converts into [`Error`], whose variant is what an alarm filters on. No message here
//! ever contains a token, a code, a verifier or a client secret: the lower layers only
//! put names, statuses and Google's public error codes into their messages.

use std::fmt;

/// A failure of a whole run, named as in `docs/interface.md` (`errorType`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No token parameter exists yet: someone has to consent once.
    #[error("no token is stored in parameter {parameter}; {}", AuthorizeHint(.authorize_url))]
    TokenNotFound {
        parameter: String,
        authorize_url: Option<String>,
    },
    /// Google no longer accepts the stored grant. The stored token was left as it was.
    #[error("Google no longer accepts the stored token ({reason}); {}", AuthorizeHint(.authorize_url))]
    ReauthorizationRequired {
        reason: String,
        authorize_url: Option<String>,
    },
    /// The deployment is misconfigured: missing or malformed client secrets, bad settings,
    /// a stored token that cannot be read.
    #[error("{0}")]
    InvalidConfiguration(String),
    /// Google, Gmail or SSM kept failing after bounded retries.
    #[error("{0}")]
    Upstream(String),
}

impl Error {
    /// The Lambda `errorType` of this error (see `docs/interface.md`).
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::TokenNotFound { .. } => "TokenNotFound",
            Error::ReauthorizationRequired { .. } => "ReauthorizationRequired",
            Error::InvalidConfiguration(_) => "InvalidConfiguration",
            Error::Upstream(_) => "Upstream",
        }
    }
}

/// "authorize at <url>" when the deployed `/authorize` URL is known, generic advice otherwise.
struct AuthorizeHint<'a>(&'a Option<String>);

impl fmt::Display for AuthorizeHint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(url) => write!(f, "authorize again by opening {url} in a browser"),
            None => f.write_str(
                "authorize again by opening the stack's AuthorizeUrl output in a browser",
            ),
        }
    }
}

/// Writes an error and its whole `source()` chain on one line, for logs.
///
/// `Display` of wrapped errors often hides the cause (a reqwest timeout inside an OAuth
/// error); operators need the cause. None of our errors carry secrets in their text.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reauthorization_message_quotes_the_authorize_url_when_known() {
        let error = Error::ReauthorizationRequired {
            reason: "invalid_grant".into(),
            authorize_url: Some("https://x.example/authorize".into()),
        };
        assert_eq!(error.error_type(), "ReauthorizationRequired");
        assert!(
            error.to_string().contains("https://x.example/authorize"),
            "{error}"
        );
    }

    #[test]
    fn token_not_found_names_the_parameter() {
        let error = Error::TokenNotFound {
            parameter: "/p/token".into(),
            authorize_url: None,
        };
        assert_eq!(error.error_type(), "TokenNotFound");
        assert!(error.to_string().contains("/p/token"));
        assert!(error.to_string().contains("AuthorizeUrl"));
    }
}
