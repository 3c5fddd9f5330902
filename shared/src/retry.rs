//! Bounded exponential backoff for calls to Google: the one retry loop and the one
//! "is this worth retrying" rule, shared by the OAuth and Gmail clients.
//!
//! Retrying is only for answers that say "try again" (429, 5xx, timeouts). The policy is
//! bounded twice: by a number of attempts and by the longest single wait, so a run always
//! ends well inside the Lambda timeout. A `Retry-After` longer than the longest wait ends
//! the retries at once instead of sleeping past the deadline.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub base_delay: Duration,
    /// Longest single wait, and the longest `Retry-After` that is honoured.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
        }
    }
}

impl RetryPolicy {
    /// How long to wait after failed attempt number `attempt` (1-based), or `None` to stop.
    pub fn delay_after(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let backoff = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_delay);
        match retry_after {
            Some(asked) if asked > self.max_delay => None,
            Some(asked) => Some(asked.max(backoff)),
            None => Some(backoff),
        }
    }
}

/// One attempt's result, as the retry loop needs it.
pub enum Attempt<T, E> {
    /// Success, or a failure that retrying will not change.
    Done(Result<T, E>),
    /// A failure worth another attempt (429, 5xx, a timeout), maybe with the server's
    /// `Retry-After`.
    Again {
        error: E,
        retry_after: Option<Duration>,
    },
}

/// Runs `attempt` until it is done or `policy` says stop; the last error is returned. Each
/// retry is logged with what is being done (`what`) and why.
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    what: &'static str,
    mut attempt: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Attempt<T, E>>,
{
    let mut number = 1;
    loop {
        match attempt().await {
            Attempt::Done(result) => return result,
            Attempt::Again { error, retry_after } => {
                match policy.delay_after(number, retry_after) {
                    Some(delay) => {
                        tracing::warn!(
                            call = what,
                            attempt = number,
                            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                            %error,
                            "call failed, retrying"
                        );
                        tokio::time::sleep(delay).await;
                        number += 1;
                    }
                    None => return Err(error),
                }
            }
        }
    }
}

/// Whether an HTTP status says "try again later": 429 and every 5xx.
pub fn is_transient(status: reqwest::StatusCode) -> bool {
    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

/// Parses a `Retry-After` header given in seconds (Google sends seconds, not dates).
pub fn parse_retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    value?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps_then_stops() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        let delays: Vec<_> = (1..=5).map(|a| policy.delay_after(a, None)).collect();
        assert_eq!(
            delays,
            [Some(100), Some(200), Some(300), Some(300), None]
                .map(|d| d.map(Duration::from_millis))
        );
    }

    #[test]
    fn honours_retry_after_within_the_cap_and_gives_up_beyond_it() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay_after(1, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(policy.delay_after(1, Some(Duration::from_secs(60))), None);
        assert_eq!(
            policy.delay_after(1, Some(Duration::ZERO)),
            Some(policy.base_delay)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_what_says_again_and_returns_the_last_error() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
        };
        let mut calls = 0;
        let result: Result<(), String> = retry(&policy, "test", || {
            calls += 1;
            let call = calls;
            async move {
                Attempt::Again {
                    error: format!("failure {call}"),
                    retry_after: None,
                }
            }
        })
        .await;
        assert_eq!(result, Err("failure 3".into()));
        assert_eq!(calls, 3);

        let mut calls = 0;
        let result: Result<u8, String> = retry(&policy, "test", || {
            calls += 1;
            let call = calls;
            async move {
                if call == 2 {
                    Attempt::Done(Ok(7))
                } else {
                    Attempt::Again {
                        error: "busy".into(),
                        retry_after: None,
                    }
                }
            }
        })
        .await;
        assert_eq!(result, Ok(7));
        assert!(is_transient(reqwest::StatusCode::SERVICE_UNAVAILABLE));
        assert!(is_transient(reqwest::StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_transient(reqwest::StatusCode::FORBIDDEN));
    }

    #[test]
    fn reads_retry_after_seconds_only() {
        let header = |s: &'static str| reqwest::header::HeaderValue::from_static(s);
        assert_eq!(
            parse_retry_after(Some(&header("3"))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after(Some(&header("Wed, 21 Oct 2015 07:28:00 GMT"))),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }
}
