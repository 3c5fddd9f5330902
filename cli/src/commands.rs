//! The subcommands: thin glue between arguments, the shared crate and the terminal.

use crate::error::CliError;
use crate::location::{Location, Repository, read_raw, write_raw};
use crate::login::{self, LoginOptions};
use crate::terminal::{json_safe, safe};
use crate::{Cli, Command};
use chrono::Utc;
use gmail_oauth::client_secrets::{ClientSecrets, endpoint_url};
use gmail_oauth::config::{DEFAULT_GMAIL_API_ENDPOINT, DEFAULT_MAILBOX_CONCURRENCY};
use gmail_oauth::gmail::{GmailClient, MessageSummary};
use gmail_oauth::grant_keeping::Lineage;
use gmail_oauth::keep::{MailboxSettings, refresh_client};
use gmail_oauth::mailbox::Address;
use gmail_oauth::oauth::{GOOGLE_REVOKE_URI, GoogleOAuth, OAuthError, Refresher};
use gmail_oauth::retry::RetryPolicy;
use gmail_oauth::run::{self, Report, RunSettings, RunSummary, parse_client_secrets};
use gmail_oauth::store::{Entry, Stored, TokenRepository};
use gmail_oauth::token::{StoredToken, expiry_format};
use serde::Serialize;
use std::time::Duration;
use url::Url;

/// Clients built once per invocation of the binary.
struct Clients {
    google: GoogleOAuth,
    gmail: GmailClient,
    kms_key_id: Option<String>,
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
        google: GoogleOAuth::new(http.clone()),
        gmail: GmailClient::new(http, gmail_endpoint, RetryPolicy::default()),
        kms_key_id: cli.kms_key_id.clone(),
    };
    let store = cli.token_location();
    let secrets = cli.client_secrets_location();
    let account = cli
        .account
        .as_deref()
        .map(|raw| Address::new(raw).ok_or_else(|| CliError::Usage("--account is empty".into())))
        .transpose()?;
    let account = account.as_ref();
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
                login_hint: login_hint.or_else(|| account.map(Address::to_string)),
            };
            run_login(
                &clients,
                &store,
                &secrets,
                cli.client_secrets.is_some(),
                options,
            )
            .await
        }
        Command::Run { query, max, json } => {
            let settings = MailboxSettings {
                query,
                max_messages: usize::from(max),
                authorize_url: None,
                events: None,
            };
            run(&clients, &store, &secrets, account, settings, json).await
        }
        Command::Status => status(&clients, &store.mailbox(account)?).await,
        Command::Mailboxes { offline, json } => {
            mailboxes(&clients, &store, &secrets, offline, json).await
        }
        Command::Push { to, force } => copy(&clients, &store.mailbox(account)?, &to, force).await,
        Command::Pull { from, force } => {
            copy(
                &clients,
                &from.mailbox(account)?,
                &store.mailbox(account)?,
                force,
            )
            .await
        }
        Command::PutClientSecrets { file, param } => {
            put_client_secrets(&clients, &file, &param).await
        }
        Command::Revoke => {
            let mailbox = store.mailbox(account)?;
            unlink(&clients, &mailbox, &secrets, None).await
        }
        Command::Unlink { account } => {
            let address = Address::new(&account)
                .ok_or_else(|| CliError::Usage("the account is empty".into()))?;
            unlink(&clients, &store, &secrets, Some(&address)).await
        }
    }
}

async fn open(
    clients: &Clients,
    store: &Location,
    secrets: &Location,
) -> Result<Repository, CliError> {
    Repository::open(store, secrets, clients.kms_key_id.clone()).await
}

/// The one mailbox at `location` (a file or one parameter), or `NotFound`.
async fn read_token(
    clients: &Clients,
    location: &Location,
) -> Result<(String, StoredToken), CliError> {
    let raw = read_raw(location, clients.kms_key_id.clone())
        .await?
        .ok_or_else(|| {
            CliError::NotFound(format!(
                "no token in {location}; run `gmail-oauth login --client-secrets FILE` first"
            ))
        })?;
    let token = StoredToken::from_json(&raw)
        .map_err(|problem| CliError::Usage(format!("{location} {problem}")))?;
    Ok((raw, token))
}

async fn run_login(
    clients: &Clients,
    store: &Location,
    secrets_location: &Location,
    secrets_given: bool,
    options: LoginOptions,
) -> Result<(), CliError> {
    let raw_secrets = read_raw(secrets_location, clients.kms_key_id.clone())
        .await?
        .ok_or_else(|| {
            CliError::NotFound(format!(
                "no client secrets in {secrets_location}; give --client-secrets FILE (the JSON downloaded from Google Cloud Console)"
            ))
        })?;
    let secrets = ClientSecrets::from_json(&raw_secrets)
        .map_err(|problem| CliError::Usage(format!("{secrets_location}: {problem}")))?;
    let repo = open(clients, store, secrets_location).await?;
    let linked = login::login(&repo, &clients.google, &clients.gmail, &secrets, options).await?;
    println!(
        "Linked {}; the token is stored in {}.",
        safe(linked.account.as_str()),
        safe(&linked.stored_in)
    );
    // Keep the client secrets beside a token file, where `run` looks for them.
    let beside = Location::client_secrets_beside(store);
    if secrets_given && matches!(store, Location::File(_)) && beside != *secrets_location {
        write_raw(&beside, &raw_secrets, clients.kms_key_id.clone()).await?;
        println!("Copied the client secrets to {beside}.");
    }
    Ok(())
}

async fn run(
    clients: &Clients,
    store: &Location,
    secrets: &Location,
    account: Option<&Address>,
    mailbox: MailboxSettings,
    json: bool,
) -> Result<(), CliError> {
    let settings = RunSettings {
        mailbox,
        concurrency: DEFAULT_MAILBOX_CONCURRENCY,
        write_interval: Duration::ZERO,
    };
    // Every mailbox under a path, as the scheduled function does; else the one mailbox.
    if let (Location::SsmPath(_), None) = (store, account) {
        let repo = open(clients, store, secrets).await?;
        let report = run::run_many(
            &repo,
            &clients.google,
            &clients.gmail,
            &gmail_oauth::events::NoBus,
            &settings,
            Utc::now(),
            None,
        )
        .await?;
        return print(json, &report, report_table);
    }
    let repo = open(clients, &store.mailbox(account)?, secrets).await?;
    let summary = run::run_one(
        &repo,
        &clients.google,
        &clients.gmail,
        &gmail_oauth::events::NoBus,
        &settings,
        Utc::now(),
        None,
    )
    .await?;
    print(json, &summary, table)
}

/// Prints `value` as JSON (exact, safe for a terminal) or as the table `show` makes.
fn print<T: Serialize>(json: bool, value: &T, show: fn(&T) -> String) -> Result<(), CliError> {
    if json {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::Failed(format!("JSON output: {e}")))?;
        println!("{}", json_safe(&text));
    } else {
        print!("{}", show(value));
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

fn report_table(report: &Report) -> String {
    let t = &report.totals;
    let mut out = format!(
        "{} mailbox(es): {} ok, {} need re-authorization, {} upstream failures, {} invalid, {} not reached\n",
        t.mailboxes, t.ok, t.reauthorization_required, t.upstream, t.invalid, t.not_reached
    );
    if !report.mailboxes.is_empty() {
        out.push_str(&format!(
            "\n{:<40}  {:<24}  {:>8}  {}\n",
            "ACCOUNT", "STATUS", "MESSAGES", "ERROR"
        ));
        for mailbox in &report.mailboxes {
            let status = serde_json::to_value(mailbox.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<40}  {:<24}  {:>8}  {}\n",
                clip(&mailbox.account, 40),
                status,
                mailbox.message_count,
                clip(mailbox.error.as_deref().unwrap_or_default(), 80)
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
    let (_, token) = read_token(clients, location).await?;
    println!("{}", describe(&token, location, Utc::now()));
    Ok(())
}

/// How long the access token lives, in words.
fn validity(token: &StoredToken, now: chrono::DateTime<Utc>) -> String {
    match (&token.token, token.expiry) {
        (None, _) => "none (the next run refreshes it)".to_owned(),
        (Some(_), None) => "present, expiry unknown (the next run refreshes it)".to_owned(),
        (Some(_), Some(expiry)) if expiry <= now => {
            format!("expired at {}", expiry_format::format(&expiry))
        }
        (Some(_), Some(expiry)) => format!(
            "valid for {} min (until {})",
            (expiry - now).num_minutes(),
            expiry_format::format(&expiry)
        ),
    }
}

fn describe(token: &StoredToken, location: &Location, now: chrono::DateTime<Utc>) -> String {
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
        format!("access token:   {}", validity(token, now)),
        format!("refresh token:  {refresh}"),
    ]
    .join("\n")
}

/// One line of `gmail-oauth mailboxes`. Never a secret.
#[derive(Serialize)]
struct MailboxLine {
    account: String,
    stored_in: String,
    valid_for: String,
    has_refresh_token: bool,
    /// `null` when not asked (`--offline`) or when Google could not be asked.
    needs_reauthorization: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

async fn mailboxes(
    clients: &Clients,
    store: &Location,
    secrets: &Location,
    offline: bool,
    json: bool,
) -> Result<(), CliError> {
    let repo = open(clients, store, secrets).await?;
    let snapshot = repo.load_all().await?;
    let secrets = if offline {
        None
    } else {
        Some(parse_client_secrets(
            &repo.client_secrets_location(),
            snapshot.client_secrets.clone(),
        )?)
    };
    let now = Utc::now();
    let mut lines = Vec::new();
    for entry in snapshot.mailboxes {
        let line = match entry {
            Entry::Invalid { name, problem } => MailboxLine {
                account: name.clone(),
                stored_in: name,
                valid_for: String::new(),
                has_refresh_token: false,
                needs_reauthorization: None,
                problem: Some(problem),
            },
            Entry::Token(stored) => {
                let needs = match &secrets {
                    Some(secrets) => needs_reauthorization(clients, secrets, &stored).await,
                    None => None,
                };
                MailboxLine {
                    account: stored.label(),
                    stored_in: stored.name.clone(),
                    valid_for: validity(&stored.token, now),
                    has_refresh_token: stored.token.refresh_token.is_some(),
                    needs_reauthorization: needs,
                    problem: None,
                }
            }
        };
        lines.push(line);
    }
    print(json, &lines, mailboxes_table)
}

/// Asks Google whether the grant still works: a refresh whose token is thrown away (the
/// stored one stays as it is). `None` when Google could not say.
async fn needs_reauthorization(
    clients: &Clients,
    secrets: &ClientSecrets,
    stored: &Stored,
) -> Option<bool> {
    let refresh_token = stored.token.refresh_token.as_ref()?;
    match clients
        .google
        .refresh(&refresh_client(secrets, &stored.token), refresh_token)
        .await
    {
        Ok(_) => Some(false),
        Err(OAuthError::InvalidGrant) => Some(true),
        Err(_) => None,
    }
}

fn mailboxes_table(lines: &Vec<MailboxLine>) -> String {
    let mut out = format!(
        "{:<40}  {:<44}  {:<13}  {}\n",
        "ACCOUNT", "ACCESS TOKEN", "REFRESH TOKEN", "RE-AUTHORIZE"
    );
    for line in lines {
        let reauthorize = match (line.needs_reauthorization, &line.problem) {
            (_, Some(problem)) => format!("not a token: {problem}"),
            (Some(true), _) => "yes: open /authorize (or run `gmail-oauth login`)".into(),
            (Some(false), _) => "no".into(),
            (None, _) => "not checked".into(),
        };
        out.push_str(&format!(
            "{:<40}  {:<44}  {:<13}  {}\n",
            clip(&line.account, 40),
            clip(&line.valid_for, 44),
            if line.has_refresh_token {
                "present"
            } else {
                "missing"
            },
            clip(&reauthorize, 80)
        ));
    }
    if lines.is_empty() {
        out.push_str("(no mailbox linked yet)\n");
    }
    out
}

async fn copy(
    clients: &Clients,
    from: &Location,
    to: &Location,
    force: bool,
) -> Result<(), CliError> {
    let (raw, token) = read_token(clients, from).await?;
    let account = token.account().and_then(Address::new);
    let to = match (to, &account) {
        (Location::SsmPath(_), Some(account)) => to.mailbox(Some(account))?,
        (Location::SsmPath(path), None) => {
            return Err(CliError::Usage(format!(
                "the token in {from} does not say its account, so it has no place under ssm-path:{path}; run `gmail-oauth run` on it once first"
            )));
        }
        (single, _) => single.clone(),
    };
    if from == &to {
        return Err(CliError::Usage(format!(
            "source and destination are both {from}"
        )));
    }
    if let Some(existing) = read_raw(&to, clients.kms_key_id.clone()).await?
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
    // The bytes are copied as they are, unless the token says it is a refresh of a grant
    // written at some version of the parameter it came from: that says nothing where it
    // lands, so the copy is marked as what it is there, the newest grant, as a consent is.
    let json = match token.lineage {
        Some(Lineage::Refresh { .. } | Lineage::Heal { .. }) => {
            let mut copied = token.clone();
            copied.lineage = Some(Lineage::Consent);
            copied
                .to_json()
                .map_err(|problem| CliError::Failed(format!("the token {problem}")))?
        }
        _ => raw,
    };
    write_raw(&to, &json, clients.kms_key_id.clone()).await?;
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
    write_raw(&target, &raw, clients.kms_key_id.clone()).await?;
    println!(
        "Stored the client secrets of {} client {} in {target} (SecureString).",
        secrets.kind.key(),
        safe(secrets.client_id.as_str())
    );
    Ok(())
}

/// Revokes a mailbox's grant at Google, then removes its token: `address`'s under a path,
/// or the one at `store`.
async fn unlink(
    clients: &Clients,
    store: &Location,
    secrets: &Location,
    address: Option<&Address>,
) -> Result<(), CliError> {
    let repo = open(clients, store, secrets).await?;
    let stored = match repo.load(address).await? {
        Some(Entry::Token(stored)) => *stored,
        Some(Entry::Invalid { name, problem }) => {
            return Err(CliError::Usage(format!(
                "{name} {problem}; nothing was changed"
            )));
        }
        None => {
            return Err(CliError::NotFound(format!(
                "no token {} in {store}",
                address
                    .map(|a| format!("of {}", safe(a.as_str())))
                    .unwrap_or_default()
            )));
        }
    };
    let revoke_uri = endpoint("GOOGLE_REVOKE_URI", GOOGLE_REVOKE_URI)?;
    if let Some(refresh_token) = &stored.token.refresh_token {
        clients
            .google
            .revoke(&revoke_uri, refresh_token)
            .await
            .map_err(|error| match error {
                OAuthError::Unavailable(_) => CliError::Upstream(error.to_string()),
                other => CliError::Failed(other.to_string()),
            })?;
    }
    repo.unlink(address).await?;
    println!(
        "Revoked the grant of {} at Google and removed its token from {}.",
        safe(&stored.label()),
        safe(&stored.name)
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
