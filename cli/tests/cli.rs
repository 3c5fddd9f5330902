//! The `gmail-oauth` binary, run as a user runs it, against the fake Google and moto.

use integration_tests::fake_google::{CLIENT_ID, CLIENT_SECRET, FakeGoogle, Fault};
use integration_tests::{assert_no_secret, minutes_from_now, moto};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A user's machine: an empty home directory and the fake Google.
struct Machine {
    home: PathBuf,
    google: FakeGoogle,
}

/// What a finished command left behind.
struct Finished {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Machine {
    async fn new(name: &str) -> Machine {
        let home = std::env::temp_dir().join(format!("gmail-oauth-cli-{name}-{:08x}", rand_u32()));
        std::fs::create_dir_all(&home).unwrap();
        Machine {
            home,
            google: FakeGoogle::start().await,
        }
    }

    fn token_file(&self) -> PathBuf {
        self.home.join(".config/gmail-oauth/token.json")
    }

    fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_gmail-oauth"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("GMAIL_API_ENDPOINT", &self.google.base_url)
            .env("GOOGLE_REVOKE_URI", self.google.revoke_uri())
            .envs(moto::moto().env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Finished {
        let output = self
            .command()
            .args(args)
            .output()
            .await
            .expect("run gmail-oauth");
        Finished {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn write_client_secrets(&self) -> PathBuf {
        let path = self.home.join("Downloads/client_secret_fake.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, self.google.client_secrets_json("installed")).unwrap();
        path
    }

    /// A token file as google-auth would leave it, its access token expiring at `expiry`.
    fn write_token(&self, path: &Path, account: &str, expiry_minutes: i64) -> String {
        let (token, refresh, _) = integration_tests::google_auth_token(
            &self.google,
            account,
            minutes_from_now(expiry_minutes),
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, token.to_string()).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        refresh
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) as u32
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Starts `login`, reads the consent URL it prints, and returns the process and the URL.
async fn start_login(machine: &Machine, extra: &[&str]) -> (tokio::process::Child, String) {
    let secrets = machine.write_client_secrets();
    let mut args = vec![
        "login",
        "--no-browser",
        "--timeout",
        "60",
        "--client-secrets",
    ];
    let secrets = secrets.to_str().unwrap().to_owned();
    args.push(&secrets);
    args.extend_from_slice(extra);
    let mut child = machine.command().args(&args).spawn().expect("start login");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("login printed no URL in 30 s")
            .unwrap()
            .expect("login ended before printing a URL");
        if line.starts_with("http") {
            break line;
        }
    };
    // Keep draining stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

#[tokio::test]
async fn login_run_status_push_pull_and_revoke_as_a_user_would() {
    let machine = Machine::new("flow").await;
    let (mut login, url) = start_login(&machine, &[]).await;
    let consent: url::Url = url.parse().unwrap();
    let redirect = consent
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    assert!(
        redirect.starts_with("http://127.0.0.1:") && redirect.ends_with('/'),
        "{redirect}"
    );
    for (key, value) in [
        ("code_challenge_method", "S256"),
        ("access_type", "offline"),
        ("prompt", "consent"),
    ] {
        assert!(
            consent.query_pairs().any(|(k, v)| k == key && v == value),
            "{key} missing in {url}"
        );
    }

    // Stray requests to the loopback server are refused and the wait goes on.
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{redirect}favicon.ico"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let forged = http
        .get(format!("{redirect}?state=forged&code=4/stolen"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);

    let callback = machine.google.consent(&url).await;
    let page = http.get(&callback).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("me@example.com"));
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), login.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut login.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert_eq!(machine.google.code_redemptions(), 1);

    // The token file: google-auth JSON, 0600 in a 0700 directory; the client secrets beside it.
    let token_file = machine.token_file();
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(token_file.parent().unwrap()), 0o700);
    let token: Value =
        serde_json::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap();
    assert_eq!(token["account"], "me@example.com");
    assert_eq!(token["client_id"], CLIENT_ID);
    assert!(token["expiry"].as_str().unwrap().ends_with('Z'));
    assert!(token_file.with_file_name("client_secrets.json").exists());

    let status = machine.run(&["status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status.stdout.contains("account:        me@example.com"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("valid for 5"), "{}", status.stdout);
    assert!(status.stdout.contains("refresh token:  present"));

    let run = machine.run(&["run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("me@example.com · 3 message(s)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Subject number 3"));

    let json = machine.run(&["run", "--json", "--max", "2"]).await;
    let summary: Value = serde_json::from_str(&json.stdout).expect("--json prints JSON");
    assert_eq!(summary["message_count"], 2);
    assert_eq!(summary["token_refreshed"], false);

    // push to SSM, then pull into another file.
    let param = format!("{}/token", moto::unique_prefix("cli-push"));
    let push = machine
        .run(&["push", "--to", &format!("ssm:{param}")])
        .await;
    assert_eq!(push.code, 0, "{}", push.stderr);
    let ssm = moto::moto().ssm().await;
    let stored = moto::read(&ssm, &param).await.expect("pushed to SSM");
    assert_eq!(stored.kind, aws_sdk_ssm::types::ParameterType::SecureString);
    assert_eq!(stored.value, std::fs::read_to_string(&token_file).unwrap());
    // The SSM copy serves `status` and `run` directly.
    let ssm_store = format!("ssm:{param}");
    let secrets_file = format!(
        "file:{}",
        token_file.with_file_name("client_secrets.json").display()
    );
    let ssm_status = machine.run(&["status", "--store", &ssm_store]).await;
    assert_eq!(ssm_status.code, 0, "{}", ssm_status.stderr);
    assert!(
        ssm_status
            .stdout
            .contains(&format!("stored in:      {ssm_store}")),
        "{}",
        ssm_status.stdout
    );
    let ssm_run = machine
        .run(&[
            "run",
            "--store",
            &ssm_store,
            "--client-secrets",
            &secrets_file,
        ])
        .await;
    assert_eq!(ssm_run.code, 0, "{}", ssm_run.stderr);
    assert!(ssm_run.stdout.contains("Subject number 1"));
    let copy = machine.home.join("copy/token.json");
    let pull = machine
        .run(&[
            "pull",
            "--from",
            &format!("ssm:{param}"),
            "--store",
            copy.to_str().unwrap(),
        ])
        .await;
    assert_eq!(pull.code, 0, "{}", pull.stderr);
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), stored.value);
    assert_eq!(mode(&copy), 0o600);

    // Nothing printed anywhere holds a secret.
    let printed = [
        &status.stdout,
        &status.stderr,
        &run.stdout,
        &run.stderr,
        &json.stderr,
        &push.stdout,
        &pull.stdout,
        &stderr,
    ];
    let mut secrets = machine.google.issued_secrets();
    secrets.push(CLIENT_SECRET.into());
    for text in printed {
        assert_no_secret(text, &secrets, "the CLI's output");
    }

    // revoke: Google forgets the grant, the file is gone, status says so with exit code 4.
    let refresh = token["refresh_token"].as_str().unwrap().to_owned();
    let revoke = machine.run(&["revoke"]).await;
    assert_eq!(revoke.code, 0, "{}", revoke.stderr);
    assert!(machine.google.is_revoked(&refresh));
    assert!(!token_file.exists());
    assert_eq!(machine.run(&["status"]).await.code, 4);
}

#[tokio::test]
async fn login_gives_up_after_its_timeout_with_exit_code_1() {
    let machine = Machine::new("timeout").await;
    let secrets = machine.write_client_secrets();
    let finished = machine
        .run(&[
            "login",
            "--no-browser",
            "--timeout",
            "1",
            "--client-secrets",
            secrets.to_str().unwrap(),
        ])
        .await;
    assert_eq!(finished.code, 1, "{}", finished.stderr);
    assert!(
        finished.stderr.contains("within 1 s"),
        "{}",
        finished.stderr
    );
    assert!(!machine.token_file().exists());
}

/// A Web application client's JSON given to `login`: refused before any browser or request
/// (Google would answer `redirect_uri_mismatch`), naming the client to create instead.
#[tokio::test]
async fn login_with_a_web_client_says_to_create_a_desktop_app_client() {
    let machine = Machine::new("webclient").await;
    let path = machine.home.join("web-client.json");
    std::fs::create_dir_all(&machine.home).unwrap();
    std::fs::write(&path, machine.google.client_secrets_json("web")).unwrap();
    let finished = machine
        .run(&[
            "login",
            "--no-browser",
            "--timeout",
            "5",
            "--client-secrets",
            path.to_str().unwrap(),
        ])
        .await;
    assert_eq!(finished.code, 2, "{}", finished.stderr);
    assert!(
        finished.stderr.contains("Desktop app"),
        "{}",
        finished.stderr
    );
    assert!(
        !finished
            .stderr
            .contains(integration_tests::fake_google::CLIENT_SECRET),
        "{}",
        finished.stderr
    );
    assert_eq!(machine.google.code_redemptions(), 0);
    assert!(!machine.token_file().exists());
}

#[tokio::test]
async fn login_with_localhost_and_a_fixed_port_uses_that_redirect() {
    let machine = Machine::new("localhost").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let (mut login, url) =
        start_login(&machine, &["--redirect-host", "localhost", "--port", &port]).await;
    let expected = format!("redirect_uri=http%3A%2F%2Flocalhost%3A{port}%2F");
    assert!(url.contains(&expected), "{url}");
    machine.google.set_deny(true);
    let callback = machine.google.consent(&url).await;
    let page = reqwest::get(callback.replace("localhost", "127.0.0.1"))
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), login.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(3));
    assert!(!machine.token_file().exists());
}

#[tokio::test]
async fn exit_codes_say_what_kind_of_failure_it_was() {
    let machine = Machine::new("codes").await;
    assert_eq!(machine.run(&["run"]).await.code, 4, "no token: not found");
    assert_eq!(
        machine.run(&["run", "--max", "0"]).await.code,
        2,
        "bad argument: usage"
    );
    assert_eq!(
        machine.run(&["frobnicate"]).await.code,
        2,
        "unknown command: usage"
    );

    let token_file = machine.token_file();
    let refresh = machine.write_token(&token_file, "me@example.com", -5);
    std::fs::write(
        token_file.with_file_name("client_secrets.json"),
        machine.google.client_secrets_json("web"),
    )
    .unwrap();
    for _ in 0..3 {
        machine.google.inject_token_fault(Fault::Status(503));
    }
    let before = std::fs::read_to_string(&token_file).unwrap();
    let upstream = machine.run(&["run"]).await;
    assert_eq!(upstream.code, 5, "{}", upstream.stderr);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), before);

    machine.google.revoke(&refresh);
    let revoked = machine.run(&["run"]).await;
    assert_eq!(revoked.code, 3, "{}", revoked.stderr);
    assert!(
        revoked.stderr.contains("gmail-oauth login"),
        "{}",
        revoked.stderr
    );
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), before);

    std::fs::write(&token_file, "{broken").unwrap();
    let broken = machine.run(&["status"]).await;
    assert_eq!(broken.code, 2, "{}", broken.stderr);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), "{broken");
}

#[tokio::test]
async fn push_refuses_to_replace_another_accounts_token_without_force() {
    let machine = Machine::new("force").await;
    machine.write_token(&machine.token_file(), "me@example.com", 30);
    let other = machine.home.join("other/token.json");
    machine.write_token(&other, "someone@example.com", 30);
    let before = std::fs::read_to_string(&other).unwrap();

    let refused = machine
        .run(&["push", "--to", other.to_str().unwrap()])
        .await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--force"));
    assert_eq!(std::fs::read_to_string(&other).unwrap(), before);

    let forced = machine
        .run(&["push", "--to", other.to_str().unwrap(), "--force"])
        .await;
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(
        std::fs::read_to_string(&other).unwrap(),
        std::fs::read_to_string(machine.token_file()).unwrap()
    );
}

#[tokio::test]
async fn put_client_secrets_validates_then_stores_a_secure_string() {
    let machine = Machine::new("secrets").await;
    let param = format!("{}/client-secrets", moto::unique_prefix("cli-secrets"));
    let broken = machine.home.join("broken.json");
    std::fs::write(&broken, r#"{"web": {"client_id": "x"}}"#).unwrap();
    let refused = machine
        .run(&[
            "put-client-secrets",
            broken.to_str().unwrap(),
            "--param",
            &param,
        ])
        .await;
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("client_secret"),
        "{}",
        refused.stderr
    );
    let ssm = moto::moto().ssm().await;
    assert!(moto::read(&ssm, &param).await.is_none());

    let file = machine.write_client_secrets();
    let stored = machine
        .run(&[
            "put-client-secrets",
            file.to_str().unwrap(),
            "--param",
            &param,
        ])
        .await;
    assert_eq!(stored.code, 0, "{}", stored.stderr);
    assert!(!stored.stdout.contains(CLIENT_SECRET));
    let parameter = moto::read(&ssm, &param).await.unwrap();
    assert_eq!(
        parameter.kind,
        aws_sdk_ssm::types::ParameterType::SecureString
    );
    assert_eq!(parameter.value, std::fs::read_to_string(&file).unwrap());
}

#[tokio::test]
async fn a_token_file_readable_by_others_is_reported() {
    let machine = Machine::new("perms").await;
    let token_file = machine.token_file();
    machine.write_token(&token_file, "me@example.com", 30);
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let status = machine.run(&["status"]).await;
    assert_eq!(status.code, 0);
    assert!(
        status.stderr.contains("readable by other users"),
        "{}",
        status.stderr
    );
}

#[tokio::test]
async fn every_subcommand_documents_itself() {
    let machine = Machine::new("help").await;
    let help = machine.run(&["--help"]).await;
    assert!(
        help.stdout.contains("Exit codes:") && help.stdout.contains("4  not found"),
        "{}",
        help.stdout
    );
    for sub in [
        "login",
        "run",
        "status",
        "push",
        "pull",
        "put-client-secrets",
        "revoke",
    ] {
        let help = machine.run(&[sub, "--help"]).await;
        assert_eq!(help.code, 0);
        assert!(help.stdout.contains("Examples:"), "{sub}: {}", help.stdout);
    }
}

/// Whether a terminal could act on `c` (C0/C1 controls, DEL, bidirectional overrides).
fn drives_a_terminal(c: char) -> bool {
    c.is_control() && c != '\n'
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

#[tokio::test]
async fn run_shows_what_senders_wrote_without_letting_it_drive_the_terminal() {
    let machine = Machine::new("hostile-mail").await;
    let token_file = machine.token_file();
    machine.write_token(&token_file, "me@example.com", -5);
    std::fs::write(
        token_file.with_file_name("client_secrets.json"),
        machine.google.client_secrets_json("web"),
    )
    .unwrap();
    // A token endpoint claiming an absurd lifetime is survived too.
    machine.google.set_expires_in(10_000_000_000_000);
    let subject =
        "Invoice\u{1b}[2J\u{1b}]0;owned\u{7}\u{1b}]52;c;cm0gLXJm\u{7}\u{9b}1m\u{202e}fdp.exe\r\nX";
    let from = "Eve\u{1b}[31m <eve@example.org>\u{7}";
    machine
        .google
        .add_message(integration_tests::fake_google::FakeMessage {
            id: "evil0001".into(),
            thread_id: "evil0001".into(),
            from: from.into(),
            subject: subject.into(),
            date: "Mon, 23 Nov 2026 10:00:00 +0000\u{1b}[1A".into(),
            ..Default::default()
        });

    let table = machine.run(&["run"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        !table.stdout.chars().any(drives_a_terminal),
        "{:?}",
        table.stdout
    );
    assert!(
        table.stdout.contains("Invoice\\u{1b}[2J"),
        "{}",
        table.stdout
    );

    let json = machine.run(&["run", "--json"]).await;
    assert_eq!(json.code, 0, "{}", json.stderr);
    assert!(
        !json.stdout.chars().any(drives_a_terminal),
        "{:?}",
        json.stdout
    );
    let summary: Value = serde_json::from_str(&json.stdout).unwrap();
    let evil = summary["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "evil0001")
        .expect("the message is listed");
    assert_eq!(evil["subject"], subject, "--json gives the exact text");
    assert_eq!(evil["from"], from);
}

#[tokio::test]
async fn mailboxes_run_status_and_unlink_on_many_mailboxes_in_ssm() {
    let machine = Machine::new("many").await;
    let ssm = moto::moto().ssm().await;
    let prefix = moto::unique_prefix("cli-many");
    let path = format!("{prefix}/mailboxes/");
    let secrets = format!("{prefix}/client-secrets");
    moto::put(&ssm, &secrets, &machine.google.client_secrets_json("web")).await;
    let name = |account: &str| {
        gmail_oauth::mailbox::parameter_name(
            &path,
            &gmail_oauth::mailbox::Address::new(account).unwrap(),
        )
        .unwrap()
    };
    let mut refresh_tokens = std::collections::HashMap::new();
    for account in ["me@example.com", "gone@example.com"] {
        let (token, refresh, _) =
            integration_tests::google_auth_token(&machine.google, account, minutes_from_now(-5));
        moto::put(&ssm, &name(account), &token.to_string()).await;
        refresh_tokens.insert(account, refresh);
    }
    machine.google.revoke(&refresh_tokens["gone@example.com"]);
    let store = format!("ssm-path:{path}");
    let secrets = format!("ssm:{secrets}");
    let run = async |extra: &[&str]| {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["--store", &store, "--client-secrets", &secrets]);
        machine.run(&args).await
    };

    let listed = run(&["mailboxes", "--json"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let lines: Value = serde_json::from_str(&listed.stdout).unwrap();
    let line = |account: &str| {
        lines
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["account"] == account)
            .unwrap_or_else(|| panic!("{account}: {lines}"))
            .clone()
    };
    assert_eq!(line("me@example.com")["needs_reauthorization"], false);
    assert_eq!(line("gone@example.com")["needs_reauthorization"], true);
    assert_eq!(line("me@example.com")["has_refresh_token"], true);
    assert_no_secret(
        &listed.stdout,
        &machine.google.issued_secrets(),
        "mailboxes --json",
    );
    let table = run(&["mailboxes"]).await;
    assert!(
        table.stdout.contains("gone@example.com"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("yes: open /authorize"),
        "{}",
        table.stdout
    );

    // `run` on the path runs every mailbox, as the scheduled function does.
    let report = run(&["run", "--json"]).await;
    assert_eq!(report.code, 0, "{}", report.stderr);
    let report: Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(report["totals"]["ok"], 1);
    assert_eq!(report["totals"]["reauthorization_required"], 1);

    let status = run(&["status", "--account", "ME@example.com"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status.stdout.contains("account:        me@example.com"),
        "{}",
        status.stdout
    );
    let without_account = run(&["status"]).await;
    assert_eq!(without_account.code, 2);
    assert!(
        without_account.stderr.contains("--account"),
        "{}",
        without_account.stderr
    );

    // Unlink: revoked at Google, then the parameter is gone; the other mailbox stays.
    let unlinked = run(&["unlink", "me@example.com"]).await;
    assert_eq!(unlinked.code, 0, "{}", unlinked.stderr);
    assert!(machine.google.is_revoked(&refresh_tokens["me@example.com"]));
    assert!(moto::read(&ssm, &name("me@example.com")).await.is_none());
    assert!(moto::read(&ssm, &name("gone@example.com")).await.is_some());
    let again = run(&["unlink", "me@example.com"]).await;
    assert_eq!(again.code, 4, "{}", again.stderr);
}
