//! Logging for the Lambda functions: the Lambda runtime's own subscriber, minus its
//! payload dumps.
//!
//! `lambda_runtime::tracing::init_default_subscriber` honours `AWS_LAMBDA_LOG_LEVEL` (or
//! `RUST_LOG`) and `AWS_LAMBDA_LOG_FORMAT=json`, and so does this. But at TRACE the runtime
//! logs every raw event ("raw JSON event received from Lambda"), which for the callback
//! holds the authorization code and the flow cookie. So the level applies in full to this
//! project's crates, while every other crate is capped at DEBUG, and `RUST_LOG` directives
//! cannot lift that cap.

use std::str::FromStr;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// Our crates, which never log secrets at any level (the tests check at TRACE).
/// (The CLI binary is a crate named `gmail_oauth` too.)
const OWN_CRATES: [&str; 3] = ["gmail_oauth", "oauth_callback", "gmail_refresh"];

/// The filter for a level name (`AWS_LAMBDA_LOG_LEVEL`), INFO when absent or unknown.
pub fn filter(level: Option<&str>) -> EnvFilter {
    let level = level
        .and_then(|l| LevelFilter::from_str(l).ok())
        .unwrap_or(LevelFilter::INFO);
    let others = level.min(LevelFilter::DEBUG);
    let directives: Vec<String> = std::iter::once(others.to_string())
        .chain(OWN_CRATES.iter().map(|name| format!("{name}={level}")))
        .collect();
    EnvFilter::builder().parse_lossy(directives.join(","))
}

/// Installs the subscriber for a Lambda function (call once, first thing in `main`).
pub fn init_lambda() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_env_filter(filter(level.as_deref()));
    // `try_init` only fails if a subscriber is already installed, which is then kept.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Installs a plain subscriber on stderr for command-line tools: `RUST_LOG`'s level if set,
/// else `default_level`, with the same cap on other crates.
pub fn init_stderr(default_level: &str) {
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| default_level.to_owned());
    let _ = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .with_env_filter(filter(Some(&level)))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_reaches_our_crates_but_not_the_runtime() {
        let filter = filter(Some("trace")).to_string();
        assert!(filter.contains("gmail_oauth=trace"), "{filter}");
        assert!(filter.contains("oauth_callback=trace"));
        assert!(filter.split(',').any(|d| d == "debug"), "{filter}");
        assert!(!filter.split(',').any(|d| d == "trace"), "{filter}");
    }

    #[test]
    fn unknown_or_missing_levels_mean_info() {
        assert!(filter(None).to_string().contains("gmail_refresh=info"));
        assert!(
            filter(Some("loud"))
                .to_string()
                .contains("gmail_refresh=info")
        );
        assert!(
            filter(Some("error"))
                .to_string()
                .contains("gmail_oauth=error")
        );
    }
}
