//! The errors an operator acts on, and the `errorType` names they carry in Lambda.
//!
//! Lower layers have their own error enums (store, OAuth, Gmail, configuration) and keep
//! them as the `source()` of an [`Error`], whose variant is what an alarm filters on; print
//! an error with [`Chain`] to see the whole story. No message here ever contains a token,
//! a code, a verifier or a client secret: the lower layers only put names, statuses and
//! Google's public error codes into their messages.

use std::fmt;

/// A boxed lower-layer error, kept as a source.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure of a whole run (or of one mailbox), named as in `docs/interface.md`.
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
    #[error("{message}")]
    InvalidConfiguration {
        message: String,
        #[source]
        source: Option<Source>,
    },
    /// Google, Gmail or SSM kept failing after bounded retries, or the deadline came first.
    #[error("{context}")]
    Upstream {
        context: String,
        #[source]
        source: Option<Source>,
    },
}

impl Error {
    /// The Lambda `errorType` of this error (see `docs/interface.md`).
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::TokenNotFound { .. } => "TokenNotFound",
            Error::ReauthorizationRequired { .. } => "ReauthorizationRequired",
            Error::InvalidConfiguration { .. } => "InvalidConfiguration",
            Error::Upstream { .. } => "Upstream",
        }
    }

    /// A configuration problem described in words.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidConfiguration {
            message: message.into(),
            source: None,
        }
    }

    /// A configuration problem caused by `source`.
    pub fn invalid_because(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::InvalidConfiguration {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// An upstream failure while doing `context`, caused by `source`.
    pub fn upstream(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Upstream {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The invocation's deadline came before `what` was done.
    pub fn out_of_time(what: impl Into<String>) -> Error {
        Error::Upstream {
            context: format!("{} before the invocation's deadline", what.into()),
            source: None,
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

/// Writes an error and its whole `source()` chain on one line, for logs and messages.
///
/// `Display` of a wrapping error says what was being done; the causes say why. None of
/// our errors carry secrets in their text.
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

    #[test]
    fn the_chain_tells_what_was_done_and_why_it_failed() {
        #[derive(Debug, thiserror::Error)]
        #[error("HTTP 503")]
        struct Cause;
        #[derive(Debug, thiserror::Error)]
        #[error("Google's token endpoint is unavailable")]
        struct Middle(#[source] Cause);
        let error = Error::upstream(
            "refreshing the access token of me@example.com",
            Middle(Cause),
        );
        assert_eq!(error.error_type(), "Upstream");
        assert_eq!(
            Chain(&error).to_string(),
            "refreshing the access token of me@example.com: Google's token endpoint is unavailable: HTTP 503"
        );
    }
}
