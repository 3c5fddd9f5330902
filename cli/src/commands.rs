//! The subcommands: thin glue between arguments, the shared crate and the terminal.

use crate::error::CliError;
use crate::location::{Location, LocationStore};
use crate::login::{self, LoginOptions};
use crate::terminal::{json_safe, safe};
use crate::{Cli, Command};
use chrono::Utc;
use gmail_oauth::client_secrets::{ClientSecrets, endpoint_url};
use gmail_oauth::config::DEFAULT_GMAIL_API_ENDPOINT;
use gmail_oauth::gmail::{GmailClient, MessageSummary};
use gmail_oauth::lifecycle::{self, RunSettings, RunSummary};
use gmail_oauth::oauth::{GOOGLE_REVOKE_URI, GoogleOAuth};
use gmail_oauth::retry::RetryPolicy;
use gmail_oauth::store::{FileStore, TokenStore};
use gmail_oauth::token::{StoredToken, expiry_format};
use std::time::Duration;
use url::Url;

/// Clients built once per invocation of the binary.
struct Clients {
    store: LocationStore,
    google: GoogleOAuth,
    gmail: GmailClient,
}

fn endpoint(variable: &str, default: &str) -> Result<Url, CliError> {
    let raw = std::env::var(variable)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned());
    endpoint_url(&raw).map_err(|problem| CliError::Usage(format!("{variable}: {problem}")))
}

pub async fn dispatch(cli: Cli) -> Result<(), CliError> {
    let http = gmail_oauth::oauth::http_client()
        .map_err(|e| CliError::Failed(format!("HTTP client: {e}")))?;
    let gmail_endpoint = endpoint("GMAIL_API_ENDPOINT", DEFAULT_GMAIL_API_ENDPOINT)?;
    let clients = Clients {
        store: LocationStore::new(cli.kms_key_id.clone()),
        google: GoogleOAuth::new(http.clone()),
        gmail: GmailClient::new(http, gmail_endpoint, RetryPolicy::default()),
    };
    let token = cli.token_location();
    let secrets = cli.client_secrets_location();
    match cli.command {
        Command::Login {
            port,
            redirect_host,
            no_browser,
            timeout,
            scopes,
            login_hint,
        } => {
            let options = LoginOptions {
                port,
                redirect_host: redirect_host.as_str().to_owned(),
                open_browser: !no_browser,
                timeout: Duration::from_secs(timeout),
                scopes: scopes.split_whitespace().map(str::to_owned).collect(),
                login_hint,
            };
            run_login(
                &clients,
                &token,
                &secrets,
                cli.client_secrets.is_some(),
                options,
            )
            .await
        }
        Command::Run { query, max, json } => {
            run(&clients, &token, &secrets, query, usize::from(max), json).await
        }
        Command::Status => status(&clients, &token).await,
        Command::Push { to, force } => copy(&clients, &token, &to, force).await,
        Command::Pull { from, force } => copy(&clients, &from, &token, force).await,
        Command::PutClientSecrets { file, param } => {
            put_client_secrets(&clients, &file, &param).await
        }
        Command::Revoke => revoke(&clients, &token).await,
    }
}

/// Reads one location; `None` if nothing is there.
async fn read(store: &LocationStore, location: &Location) -> Result<Option<String>, CliError> {
    if let Location::File(path) = location
        && FileStore::readable_by_others(path)
    {
        eprintln!(
            "gmail-oauth: warning: {} is readable by other users; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    let mut found = store.get_many(&[&location.to_string()]).await?;
    Ok(found.pop().flatten().map(|p| p.value))
}

async fn read_token(
    store: &LocationStore,
    location: &Location,
) -> Result<(String, StoredToken), CliError> {
    let raw = read(store, location).await?.ok_or_else(|| {
        CliError::NotFound(format!(
            "no token in {location}; run `gmail-oauth login --client-secrets FILE` first"
        ))
    })?;
    let token = StoredToken::from_json(&raw)
        .map_err(|problem| CliError::Usage(format!("{location} {problem}")))?;
    Ok((raw, token))
}

async fn read_client_secrets(
    store: &LocationStore,
    location: &Location,
) -> Result<(String, ClientSecrets), CliError> {
    let raw = read(store, location).await?.ok_or_else(|| {
        CliError::NotFound(format!(
            "no client secrets in {location}; give --client-secrets FILE (the JSON downloaded from Google Cloud Console)"
        ))
    })?;
    let secrets = ClientSecrets::from_json(&raw)
        .map_err(|problem| CliError::Usage(format!("{location}: {problem}")))?;
    Ok((raw, secrets))
}

async fn run_login(
    clients: &Clients,
    token: &Location,
    secrets_location: &Location,
    secrets_given: bool,
    options: LoginOptions,
) -> Result<(), CliError> {
    let (raw_secrets, secrets) = read_client_secrets(&clients.store, secrets_location).await?;
    let account = login::login(
        &clients.store,
        &clients.google,
        &clients.gmail,
        &secrets,
        &token.to_string(),
        options,
    )
    .await?;
    println!("Linked {}; the token is stored in {token}.", safe(&account));
    // Keep the client secrets beside a token file, where `run` looks for them.
    let beside = Location::client_secrets_beside(token);
    if secrets_given && matches!(token, Location::File(_)) && beside != *secrets_location {
        clients
            .store
            .put_secret(&beside.to_string(), &raw_secrets)
            .await?;
        println!("Copied the client secrets to {beside}.");
    }
    Ok(())
}

async fn run(
    clients: &Clients,
    token: &Location,
    secrets: &Location,
    query: String,
    max_messages: usize,
    json: bool,
) -> Result<(), CliError> {
    let settings = RunSettings {
        client_secrets_param: secrets.to_string(),
        token_param: token.to_string(),
        query,
        max_messages,
        authorize_url: None,
    };
    let summary = lifecycle::refresh_and_read_mail(
        &clients.store,
        &clients.google,
        &clients.gmail,
        &settings,
        Utc::now(),
    )
    .await?;
    if json {
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        println!("{}", json_safe(&text));
    } else {
        print!("{}", table(&summary));
    }
    Ok(())
}

fn table(summary: &RunSummary) -> String {
    let refreshed = if summary.token_refreshed {
        "token refreshed"
    } else {
        "token still valid"
    };
    let mut out = format!(
        "{} · {} message(s) matching \"{}\" · {refreshed}, valid until {}\n",
        safe(&summary.account),
        summary.message_count,
        safe(&summary.query),
        summary.expires_at
    );
    if !summary.messages.is_empty() {
        out.push_str(&format!(
            "\n{:<31}  {:<30}  {}\n",
            "DATE", "FROM", "SUBJECT"
        ));
        for MessageSummary {
            date,
            from,
            subject,
            ..
        } in &summary.messages
        {
            out.push_str(&format!(
                "{:<31}  {:<30}  {}\n",
                clip(date, 31),
                clip(from, 30),
                clip(subject, 60)
            ));
        }
    }
    out
}

/// At most `width` characters of `text` made safe for the terminal, with an ellipsis when cut.
fn clip(text: &str, width: usize) -> String {
    let text = safe(text);
    if text.chars().count() <= width {
        return text.into_owned();
    }
    text.chars()
        .take(width.saturating_sub(1))
        .chain(std::iter::once('…'))
        .collect()
}

async fn status(clients: &Clients, location: &Location) -> Result<(), CliError> {
    let (_, token) = read_token(&clients.store, location).await?;
    println!("{}", describe(&token, location, Utc::now()));
    Ok(())
}

fn describe(token: &StoredToken, location: &Location, now: chrono::DateTime<Utc>) -> String {
    let access = match (&token.token, token.expiry) {
        (None, _) => "none (the next run refreshes it)".to_owned(),
        (Some(_), None) => "present, expiry unknown (the next run refreshes it)".to_owned(),
        (Some(_), Some(expiry)) if expiry <= now => {
            format!("expired at {}", expiry_format::format(&expiry))
        }
        (Some(_), Some(expiry)) => {
            format!(
                "valid for {} min (until {})",
                (expiry - now).num_minutes(),
                expiry_format::format(&expiry)
            )
        }
    };
    let refresh = if token.refresh_token.is_some() {
        "present"
    } else {
        "missing"
    };
    [
        format!(
            "account:        {}",
            safe(
                token
                    .account()
                    .unwrap_or("(not recorded; the next run records it)")
            )
        ),
        format!("stored in:      {location}"),
        format!("scopes:         {}", safe(&token.scopes.join(" "))),
        format!("access token:   {access}"),
        format!("refresh token:  {refresh}"),
    ]
    .join("\n")
}

async fn copy(
    clients: &Clients,
    from: &Location,
    to: &Location,
    force: bool,
) -> Result<(), CliError> {
    if from == to {
        return Err(CliError::Usage(format!(
            "source and destination are both {from}"
        )));
    }
    let (raw, token) = read_token(&clients.store, from).await?;
    if let Some(existing) = read(&clients.store, to).await?
        && let Ok(existing) = StoredToken::from_json(&existing)
        && let (Some(theirs), Some(ours)) = (existing.account(), token.account())
        && !theirs.eq_ignore_ascii_case(ours)
        && !force
    {
        return Err(CliError::Usage(format!(
            "{to} holds the token of {}, not {}; add --force to replace it",
            safe(theirs),
            safe(ours)
        )));
    }
    // The stored bytes are copied as they are: nothing is lost or reformatted.
    clients.store.put_secret(&to.to_string(), &raw).await?;
    println!(
        "Copied the token of {} from {from} to {to}.",
        safe(token.account().unwrap_or("(unknown account)"))
    );
    Ok(())
}

async fn put_client_secrets(
    clients: &Clients,
    file: &std::path::Path,
    param: &str,
) -> Result<(), CliError> {
    let name = param.strip_prefix("ssm:").unwrap_or(param);
    let target: Location = format!("ssm:{name}").parse().map_err(CliError::Usage)?;
    let raw = std::fs::read_to_string(file)
        .map_err(|e| CliError::NotFound(format!("cannot read {}: {}", file.display(), e.kind())))?;
    let secrets = ClientSecrets::from_json(&raw)
        .map_err(|problem| CliError::Usage(format!("{}: {problem}", file.display())))?;
    clients.store.put_secret(&target.to_string(), &raw).await?;
    println!(
        "Stored the client secrets of {} client {} in {target} (SecureString).",
        secrets.kind.key(),
        safe(secrets.client_id.as_str())
    );
    Ok(())
}

async fn revoke(clients: &Clients, location: &Location) -> Result<(), CliError> {
    let (_, token) = read_token(&clients.store, location).await?;
    let revoke_uri = endpoint("GOOGLE_REVOKE_URI", GOOGLE_REVOKE_URI)?;
    if let Some(refresh_token) = &token.refresh_token {
        clients
            .google
            .revoke(&revoke_uri, refresh_token)
            .await
            .map_err(|error| match error {
                gmail_oauth::oauth::OAuthError::Unavailable(_) => {
                    CliError::Upstream(error.to_string())
                }
                other => CliError::Failed(other.to_string()),
            })?;
    }
    clients.store.delete(&location.to_string()).await?;
    println!(
        "Revoked the grant of {} at Google and removed the token from {location}.",
        safe(token.account().unwrap_or("(unknown account)"))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_never_prints_a_secret_and_says_how_long_the_token_lives() {
        let json = integration_tests::fixtures::TOKEN_AFTER_CONSENT;
        let token = StoredToken::from_json(json).unwrap();
        let now = expiry_format::parse("2026-11-23T09:33:42Z").unwrap();
        let text = describe(&token, &"file:/t/token.json".parse().unwrap(), now);
        assert!(text.contains("valid for 42 min"), "{text}");
        assert!(text.contains("refresh token:  present"));
        for secret in ["ya29", "1//0g", "GOCSPX"] {
            assert!(!text.contains(secret), "{text}");
        }
        let later = expiry_format::parse("2026-11-23T11:00:00Z").unwrap();
        assert!(
            describe(&token, &"file:/t".parse().unwrap(), later)
                .contains("expired at 2026-11-23T10:15:42Z")
        );
    }

    #[test]
    fn long_cells_are_clipped() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
        assert_eq!(clip("ééééé", 3), "éé…");
    }
}
