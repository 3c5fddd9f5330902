//! `gmail-oauth`: consent on your own machine, keep the token in a file (default) or in SSM,
//! and run exactly what the scheduled Lambda runs. Every OAuth, store and Gmail step is the
//! shared crate's; this binary only parses arguments and prints.

mod commands;
mod error;
mod location;
mod login;
mod terminal;

use clap::{Parser, Subcommand, ValueEnum};
use location::Location;
use std::process::ExitCode;

const QUICK_START: &str = "\
Quick start:
  gmail-oauth login --client-secrets ~/Downloads/client_secret_XXXX.json
  gmail-oauth run
  gmail-oauth push --to ssm:/gmail-oauth/token
  gmail-oauth mailboxes --store ssm-path:/gmail-oauth/mailboxes/";

const LONG_HELP: &str = "\
Quick start:
  gmail-oauth login --client-secrets ~/Downloads/client_secret_XXXX.json
  gmail-oauth run
  gmail-oauth push --to ssm:/gmail-oauth/token
  gmail-oauth mailboxes --store ssm-path:/gmail-oauth/mailboxes/

Stores: file:PATH (one mailbox, the default), ssm:/parameter (one mailbox), or
ssm-path:/path/ (many mailboxes, one parameter each; pick one with --account).

Exit codes:
  0  success
  1  other failure (no answer from the browser in time, a file that cannot be written)
  2  usage or configuration error (bad arguments, malformed client secrets or token)
  3  re-authorization required (Google answered invalid_grant, consent not given)
  4  not found (no token or client secrets where expected)
  5  upstream failure (Google, Gmail or SSM still failing after retries)

Environment: AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL for ssm: locations;
GMAIL_API_ENDPOINT and GOOGLE_REVOKE_URI to point at other endpoints;
RUST_LOG (or -v) for more log lines on stderr.";

#[derive(Parser)]
#[command(
    name = "gmail-oauth",
    version,
    about = "Keep a Gmail mailbox connected: consent locally, keep the token in a file or in SSM.",
    long_about = "Keep a Gmail mailbox connected: consent once in your browser, keep the OAuth token in a \
                  local file (default) or in SSM Parameter Store, and run what the scheduled Lambda runs. \
                  The token file is google-auth JSON, readable by pythonic_gmail.",
    after_help = QUICK_START,
    after_long_help = LONG_HELP
)]
struct Cli {
    /// Where the token is kept: file:PATH, ssm:/parameter, or ssm-path:/path/ for many mailboxes.
    /// [default: file:$XDG_CONFIG_HOME/gmail-oauth/token.json, else ~/.config/gmail-oauth/token.json]
    #[arg(long, global = true, value_name = "LOCATION")]
    store: Option<Location>,

    /// The mailbox to use under an ssm-path: store (`login` suggests it to Google).
    #[arg(long, global = true, value_name = "ADDRESS")]
    account: Option<String>,

    /// Client secrets JSON from Google Cloud Console: file:PATH or ssm:/parameter.
    /// [default: client_secrets.json beside a token file; ssm:/gmail-oauth/client-secrets beside an SSM token]
    #[arg(long, global = true, value_name = "LOCATION")]
    client_secrets: Option<Location>,

    /// KMS key for SecureString writes to SSM (default: alias/aws/ssm).
    #[arg(long, global = true, env = "KMS_KEY_ID", value_name = "KEY")]
    kms_key_id: Option<String>,

    /// More log lines on stderr (-v: info, -vv: debug). Never secrets.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum RedirectHost {
    #[value(name = "127.0.0.1")]
    Loopback,
    #[value(name = "localhost")]
    Localhost,
}

#[derive(Subcommand)]
enum Command {
    /// Consent in the browser (loopback redirect, state + PKCE) and store the token.
    #[command(
        after_help = "Examples:\n  gmail-oauth login --client-secrets ~/Downloads/client_secret_XXXX.json\n  \
                            gmail-oauth login --no-browser --port 8765 --redirect-host localhost\n  \
                            gmail-oauth login --store ssm:/gmail-oauth/token --client-secrets client.json\n\n\
                            The client secrets file is copied beside a token file, so later commands find it."
    )]
    Login {
        /// Port of the loopback server on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Host name in the redirect URI http://HOST:PORT/.
        #[arg(long, value_enum, default_value = "127.0.0.1")]
        redirect_host: RedirectHost,
        /// Only print the URL; do not open a browser.
        #[arg(long)]
        no_browser: bool,
        /// Seconds to wait for the browser to come back.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: u64,
        /// Space-separated OAuth scopes; every one must be granted.
        #[arg(long, env = "SCOPES", default_value = gmail_oauth::config::DEFAULT_SCOPES)]
        scopes: String,
        /// Suggest this account on Google's sign-in page.
        #[arg(long, value_name = "ADDRESS")]
        login_hint: Option<String>,
    },
    /// Do what the scheduled function does: refresh if needed, list and summarise messages.
    #[command(
        after_help = "Examples:\n  gmail-oauth run\n  gmail-oauth run --query 'from:boss newer_than:1d' --max 10\n  \
                            gmail-oauth run --json --store ssm:/gmail-oauth/token"
    )]
    Run {
        /// Gmail search query (the flag only: the function's GMAIL_QUERY is not read).
        #[arg(long, default_value = "in:inbox is:unread")]
        query: String,
        /// Most messages to list (1-500; the flag only: the function's MAX_MESSAGES is not read).
        #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u16).range(1..=500))]
        max: u16,
        /// Print the JSON summary the Lambda returns instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the stored token: account, scopes, expiry, location. Never prints a secret.
    #[command(
        after_help = "Examples:\n  gmail-oauth status\n  gmail-oauth status --store ssm:/gmail-oauth/token\n  \
                            gmail-oauth status --store ssm-path:/gmail-oauth/mailboxes/ --account me@example.com"
    )]
    Status,
    /// List the linked mailboxes: account, access token, refresh token, whether Google still
    /// accepts the grant (asked with a refresh that is not stored). Never prints a secret.
    #[command(
        after_help = "Examples:\n  gmail-oauth mailboxes --store ssm-path:/gmail-oauth/mailboxes/\n  \
                            gmail-oauth mailboxes --store ssm-path:/gmail-oauth/mailboxes/ --offline --json"
    )]
    Mailboxes {
        /// Do not ask Google whether the grants still work.
        #[arg(long)]
        offline: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Copy the token from --store to another location (SecureString in SSM).
    #[command(
        after_help = "Examples:\n  gmail-oauth push --to ssm:/gmail-oauth/token\n  \
                            gmail-oauth push --to ssm:/gmail-oauth/token --kms-key-id arn:aws:kms:…:key/…"
    )]
    Push {
        /// Destination: ssm:/parameter or file:PATH.
        #[arg(long, value_name = "LOCATION")]
        to: Location,
        /// Overwrite a token of a different account.
        #[arg(long)]
        force: bool,
    },
    /// Copy a token from another location into --store.
    #[command(after_help = "Examples:\n  gmail-oauth pull --from ssm:/gmail-oauth/token")]
    Pull {
        /// Source: ssm:/parameter or file:PATH.
        #[arg(long, value_name = "LOCATION")]
        from: Location,
        /// Overwrite a token of a different account.
        #[arg(long)]
        force: bool,
    },
    /// Validate a client secrets file and store it in SSM as a SecureString.
    #[command(
        after_help = "Examples:\n  gmail-oauth put-client-secrets ~/Downloads/client_secret_XXXX.json\n  \
                            gmail-oauth put-client-secrets client.json --param /my-app/client-secrets"
    )]
    PutClientSecrets {
        /// The JSON downloaded from Google Cloud Console.
        file: std::path::PathBuf,
        /// SSM parameter name.
        #[arg(long, default_value = gmail_oauth::config::DEFAULT_CLIENT_SECRETS_PARAM)]
        param: String,
    },
    /// Revoke the grant at Google, then remove the token from --store.
    #[command(
        after_help = "Examples:\n  gmail-oauth revoke\n  gmail-oauth revoke --store ssm:/gmail-oauth/token"
    )]
    Revoke,
    /// Revoke one mailbox's grant at Google, then delete its parameter (or file).
    #[command(
        after_help = "Examples:\n  gmail-oauth unlink me@example.com --store ssm-path:/gmail-oauth/mailboxes/"
    )]
    Unlink {
        /// The mailbox's address.
        account: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    gmail_oauth::logging::init_stderr(level);
    match commands::dispatch(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Error texts can quote Google's answers: printed safe for the terminal.
            eprintln!("gmail-oauth: {}", terminal::safe(&error.to_string()));
            ExitCode::from(error.exit_code())
        }
    }
}

impl Cli {
    fn token_location(&self) -> Location {
        self.store.clone().unwrap_or_else(Location::default_token)
    }

    fn client_secrets_location(&self) -> Location {
        self.client_secrets
            .clone()
            .unwrap_or_else(|| Location::client_secrets_beside(&self.token_location()))
    }
}

impl RedirectHost {
    fn as_str(self) -> &'static str {
        match self {
            RedirectHost::Loopback => "127.0.0.1",
            RedirectHost::Localhost => "localhost",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_has_examples() {
        for sub in Cli::command().get_subcommands() {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.contains("Examples:") && help.contains("gmail-oauth"),
                "{} lacks examples",
                sub.get_name()
            );
        }
    }
}
