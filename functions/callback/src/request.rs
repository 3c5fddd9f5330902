//! The parts of an API Gateway HTTP API (payload 2.0) event the routes use, read fallibly.
//!
//! `lambda_http`'s own conversion builds an `http::Request` with `.expect(..)` and panics on
//! a query string that is not valid URI syntax (aws-lambda-rust-runtime issue #515) or on a
//! malformed `Host` header; a panic kills the process and API Gateway answers 5xx. Reading
//! the event here turns those into a clean 400 and never looks at `Host`.

use cookie::Cookie;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use std::collections::HashMap;

/// Longest query string accepted; Google's callback is far shorter.
const MAX_QUERY_LEN: usize = 8 * 1024;

/// A request reduced to what the routes need.
pub struct CallbackRequest {
    pub method: http::Method,
    pub path: String,
    pub query: HashMap<String, String>,
    cookies: Vec<String>,
    pub domain_name: Option<String>,
    pub stage: Option<String>,
}

/// Why a request could not be read (always the client's mistake: 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadRequest {
    #[error("the query string is not valid URI syntax")]
    InvalidQuery,
    #[error("the query string is too long")]
    QueryTooLong,
    #[error("the query parameter {0} appears more than once")]
    DuplicateParameter(String),
    #[error("a query parameter is not valid UTF-8")]
    NotUtf8,
}

impl CallbackRequest {
    pub fn from_event(event: ApiGatewayV2httpRequest) -> Result<Self, BadRequest> {
        let raw_query = event.raw_query_string.unwrap_or_default();
        let query = parse_query(&raw_query)?;
        let mut cookies = event.cookies.unwrap_or_default();
        // Other integrations send a Cookie header instead of the `cookies` array.
        if cookies.is_empty()
            && let Some(header) = event
                .headers
                .get(http::header::COOKIE)
                .and_then(|v| v.to_str().ok())
        {
            cookies.push(header.to_owned());
        }
        Ok(CallbackRequest {
            method: event.request_context.http.method,
            path: event.raw_path.unwrap_or_default(),
            query,
            cookies,
            domain_name: event.request_context.domain_name,
            stage: event.request_context.stage,
        })
    }

    /// The value of the cookie `name`, if sent (the first one, as browsers send the most specific first).
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .flat_map(|header| Cookie::split_parse(header.as_str()))
            .filter_map(Result::ok)
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs after checking the raw string against
/// RFC 3986 §3.4; a repeated name is refused, so a value can never be chosen ambiguously.
fn parse_query(raw: &str) -> Result<HashMap<String, String>, BadRequest> {
    if raw.len() > MAX_QUERY_LEN {
        return Err(BadRequest::QueryTooLong);
    }
    if !is_rfc3986_query(raw) {
        return Err(BadRequest::InvalidQuery);
    }
    let mut query = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        if name.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
            return Err(BadRequest::NotUtf8);
        }
        if query.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(BadRequest::DuplicateParameter(printable(&name)));
        }
    }
    Ok(query)
}

/// RFC 3986: `query = *( pchar / "/" / "?" )` with `pct-encoded = "%" HEXDIG HEXDIG`.
/// The `http` crate's parser is deliberately lenient (it lets `\`, `{`, `|` and a bare `%`
/// through), so the grammar is checked here.
fn is_rfc3986_query(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b) => i += 1,
            _ => return false,
        }
    }
    true
}

/// A parameter name for a message: short and plain, whatever was sent.
fn printable(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect();
    if cleaned.is_empty() {
        "(unnamed)".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_google_sends() {
        let query =
            parse_query("state=abc-_.~&code=4%2F0AeanS0b&scope=email%20https%3A%2F%2Fx+y").unwrap();
        assert_eq!(query["code"], "4/0AeanS0b");
        assert_eq!(query["scope"], "email https://x y");
        assert!(parse_query("").unwrap().is_empty());
    }

    #[test]
    fn refuses_what_is_not_uri_syntax() {
        for raw in [
            "a=\"b\"", "a=<b>", "a=\\b", "a=b c", "a={b}", "a=|", "a=%", "a=%zz", "a=%4", "a=é",
            "a=^", "a=`", "a=#",
        ] {
            assert_eq!(parse_query(raw), Err(BadRequest::InvalidQuery), "{raw}");
        }
    }

    #[test]
    fn refuses_duplicates_long_queries_and_invalid_utf8() {
        assert_eq!(
            parse_query("state=a&state=b"),
            Err(BadRequest::DuplicateParameter("state".into()))
        );
        assert_eq!(
            parse_query(&"a".repeat(MAX_QUERY_LEN + 1)),
            Err(BadRequest::QueryTooLong)
        );
        assert_eq!(parse_query("code=%ff%fe"), Err(BadRequest::NotUtf8));
    }
}
