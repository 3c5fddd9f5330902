//! Test support: a fake Google over HTTP, `moto_server` for SSM, a Lambda Runtime API for
//! the release binaries, real event payloads, and a harness that wires them to the functions.

pub mod api_gateway;
pub mod benchmarks;
pub mod browser;
pub mod events;
pub mod fake_google;
pub mod fixtures;
pub mod moto;
pub mod runtime_api;
pub mod ssm_proxy;
pub mod subscriber;

use chrono::{DateTime, TimeDelta, Utc};
use fake_google::{CLIENT_ID, CLIENT_SECRET, FakeGoogle, GMAIL_READONLY};
use gmail_oauth::config::CommonConfig;
use gmail_oauth::eventbridge::EventBridgeBus;
use gmail_oauth::run::RunSummary;
use gmail_oauth::store::{ParameterRepository, SsmParameters};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, OnceLock};

/// The repository the functions use, over SSM (moto in the tests).
pub type Repo = ParameterRepository<SsmParameters>;

/// The refresh function as the tests build it: SSM and EventBridge (moto, or a proxy).
pub type RefreshApp = gmail_refresh::Refresh<Repo, EventBridgeBus>;

/// `FAULT_SCHEDULES`: how many randomized fault schedules a fault test runs (1,000 in
/// `make test`; `make fuzz` sets 10,000).
pub fn fault_schedules() -> u64 {
    std::env::var("FAULT_SCHEDULES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000)
}

/// Runs `schedules` split over `workers` tasks (`worker(index, count)`), each with its own
/// world; their results, in order. A worker's panic fails the test.
pub async fn across_workers<T, F>(
    workers: u64,
    schedules: u64,
    worker: impl Fn(u64, u64) -> F,
) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let per_worker = schedules.div_ceil(workers);
    let tasks: Vec<_> = (0..workers)
        .map(|i| tokio::spawn(worker(i, per_worker)))
        .collect();
    let mut parts = Vec::new();
    for task in tasks {
        parts.push(task.await.expect("a worker panicked"));
    }
    parts
}

/// SDK timeouts for calls moto may answer slowly (a `PutEvents` delivers to SQS before it
/// answers; a loaded machine): attempts 1 s, operations 2.5 s.
fn patient_timeouts() -> aws_config::timeout::TimeoutConfig {
    use std::time::Duration;
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(200))
        .operation_attempt_timeout(Duration::from_millis(1000))
        .operation_timeout(Duration::from_millis(2500))
        .build()
}

/// One test's world: a fresh fake Google, its own parameter names in the shared moto, and
/// client secrets stored there.
pub struct World {
    pub google: FakeGoogle,
    pub ssm: aws_sdk_ssm::Client,
    pub secrets_param: String,
    pub token_param: String,
    /// Where many mailboxes live, for tests that set `MAILBOXES_PATH` (see [`World::many`]).
    pub mailboxes_path: String,
}

impl World {
    pub async fn new(test: &str) -> World {
        let google = FakeGoogle::start().await;
        let ssm = moto::moto().ssm().await;
        let prefix = moto::unique_prefix(test);
        let world = World {
            secrets_param: format!("{prefix}/client-secrets"),
            token_param: format!("{prefix}/token"),
            mailboxes_path: format!("{prefix}/mailboxes/"),
            google,
            ssm,
        };
        moto::put(
            &world.ssm,
            &world.secrets_param,
            &world.google.client_secrets_json("web"),
        )
        .await;
        world
    }

    /// The environment both functions read, pointing at this world.
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = moto::moto().env();
        for (k, v) in [
            ("CLIENT_SECRETS_PARAM", self.secrets_param.as_str()),
            ("TOKEN_PARAM", self.token_param.as_str()),
            ("GMAIL_API_ENDPOINT", self.google.base_url.as_str()),
            ("ALLOWED_ACCOUNTS", "me@example.com"),
            // Unpaced: moto has no quota (the benchmark sets the real ones).
            ("SSM_READ_TPS", "10000"),
            ("SSM_WRITE_TPS", "10000"),
        ] {
            env.push((k.into(), v.into()));
        }
        for (k, v) in extra {
            env.retain(|(name, _)| name != k);
            env.push(((*k).into(), (*v).into()));
        }
        env
    }

    /// The repository the functions build for `config`, on `client` (moto, or a proxy in
    /// front of it), unpaced unless the configuration says otherwise.
    pub fn repository(config: &CommonConfig, client: aws_sdk_ssm::Client) -> Repo {
        ParameterRepository::new(
            SsmParameters::new(client, config.kms_key_id.clone(), config.ssm),
            config.client_secrets_param.clone(),
            config.layout(),
        )
    }

    /// The callback function's app, configured from `env(extra)`.
    pub async fn callback_app(&self, extra: &[(&str, &str)]) -> oauth_callback::App<Repo> {
        let lookup = gmail_oauth::config::fixed_env(&self.env(extra));
        let config = oauth_callback::Config::from_lookup(&lookup).expect("callback config");
        let store = Self::repository(&config.common, moto::moto().ssm().await);
        oauth_callback::App::new(
            config,
            store,
            gmail_oauth::oauth::http_client().expect("HTTP client"),
        )
    }

    /// The callback function's app with its store talking to SSM through `proxy` (the SDK's
    /// own timeouts, so the proxy's holds last as long as the test wants).
    pub async fn callback_app_via(&self, proxy: &ssm_proxy::SsmProxy) -> oauth_callback::App<Repo> {
        let lookup = gmail_oauth::config::fixed_env(&self.env(&[]));
        let config = oauth_callback::Config::from_lookup(&lookup).expect("callback config");
        let client = aws_sdk_ssm::Client::new(&moto::sdk_config(&proxy.endpoint).load().await);
        let store = Self::repository(&config.common, client);
        oauth_callback::App::new(
            config,
            store,
            gmail_oauth::oauth::http_client().expect("HTTP client"),
        )
    }

    /// The refresh function, configured from `env(extra)`.
    pub async fn refresh_app(&self, extra: &[(&str, &str)]) -> RefreshApp {
        let lookup = gmail_oauth::config::fixed_env(&self.env(extra));
        let config = gmail_refresh::Config::from_lookup(&lookup).expect("refresh config");
        let store = Self::repository(&config.common, moto::moto().ssm().await);
        let sdk = moto::sdk_config(&moto::moto().endpoint).load().await;
        let bus = EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            config.event_bus.clone().unwrap_or_default(),
        );
        gmail_refresh::Refresh::new(
            config,
            store,
            bus,
            gmail_oauth::oauth::http_client().expect("HTTP client"),
        )
    }

    /// The refresh function talking to SSM through `proxy`, configured from `env(extra)`,
    /// with every timeout and backoff scaled down (HTTP requests 150 ms, Gmail retries from
    /// 2 ms, SDK retries from 5 ms), so fault schedules run by the thousand. The bounds are
    /// the same code, only smaller.
    pub async fn refresh_app_via(
        &self,
        proxy: &ssm_proxy::SsmProxy,
        extra: &[(&str, &str)],
    ) -> RefreshApp {
        self.refresh_app_over(proxy.fast_config().await, extra)
    }

    /// As [`World::refresh_app_via`], but SSM attempts may take a second (operations
    /// 2.5 s) instead of 150 ms, backoff still scaled down: for tests that inject no SSM
    /// delay, so that moto slowed by a loaded machine is not taken for a fault.
    pub async fn refresh_app_via_patient(
        &self,
        proxy: &ssm_proxy::SsmProxy,
        extra: &[(&str, &str)],
    ) -> RefreshApp {
        let sdk = proxy
            .fast_config()
            .await
            .to_builder()
            .timeout_config(patient_timeouts())
            .build();
        self.refresh_app_over(sdk, extra)
    }

    fn refresh_app_over(&self, sdk: aws_config::SdkConfig, extra: &[(&str, &str)]) -> RefreshApp {
        use std::time::Duration;
        let lookup = gmail_oauth::config::fixed_env(&self.env(extra));
        let mut config = gmail_refresh::Config::from_lookup(&lookup).expect("refresh config");
        let http = gmail_oauth::oauth::http_client_with(
            Duration::from_millis(200),
            Duration::from_millis(150),
        )
        .expect("HTTP client");
        let fast = gmail_oauth::retry::RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
        };
        let gmail = gmail_oauth::gmail::GmailClient::new(
            http.clone(),
            config.common.gmail_api_endpoint.clone(),
            fast,
        );
        if let Some(events) = &mut config.run.mailbox.events {
            events.publish_retry = fast;
        }
        // moto's PutEvents delivers to the rule's queue before it answers: slower than SSM.
        let events_sdk = sdk.to_builder().timeout_config(patient_timeouts()).build();
        gmail_refresh::Refresh {
            store: Self::repository(&config.common, aws_sdk_ssm::Client::new(&sdk)),
            bus: EventBridgeBus::new(
                aws_sdk_eventbridge::Client::new(&events_sdk),
                config.event_bus.clone().unwrap_or_default(),
            ),
            google: gmail_oauth::oauth::GoogleOAuth::with_retry(
                http,
                gmail_oauth::retry::RetryPolicy {
                    max_attempts: 3,
                    ..fast
                },
            ),
            gmail,
            config,
        }
    }

    /// One scheduled run of the refresh function (one token) configured with `extra`: the
    /// summary, or the Lambda diagnostic (`errorType`, `errorMessage`) it would report.
    pub async fn run_refresh(
        &self,
        extra: &[(&str, &str)],
    ) -> Result<RunSummary, lambda_runtime::Diagnostic> {
        self.refresh_app(extra)
            .await
            .run(Utc::now())
            .await
            .map(gmail_refresh::Output::summary)
            .map_err(lambda_runtime::Diagnostic::from)
    }

    /// The environment setting for many mailboxes under this world's path.
    pub fn many(&self) -> (&'static str, &str) {
        ("MAILBOXES_PATH", self.mailboxes_path.as_str())
    }

    /// The parameter of `account`'s mailbox under this world's path.
    pub fn mailbox_param(&self, account: &str) -> String {
        let address = gmail_oauth::mailbox::Address::new(account).expect("an address");
        gmail_oauth::mailbox::parameter_name(&self.mailboxes_path, &address).expect("a name")
    }

    /// Stores a token for `account` under the mailboxes path, as `seed_token` does for the
    /// one token. Returns (refresh token, access token).
    pub async fn seed_mailbox(&self, account: &str, expiry: DateTime<Utc>) -> (String, String) {
        let (token, refresh, access) = google_auth_token(&self.google, account, expiry);
        moto::put(&self.ssm, &self.mailbox_param(account), &token.to_string()).await;
        (refresh, access)
    }

    /// Stores tokens for `user0000@example.com` … under the path, `n` of them, expiring at
    /// `expiry`, directly in moto (50 at a time): benchmarks' setup, not what they measure.
    pub async fn seed_mailboxes(&self, n: usize, expiry: DateTime<Utc>) {
        let mut seeds = Vec::new();
        for i in 0..n {
            let account = format!("user{i:04}@example.com");
            let (token, _, _) = google_auth_token(&self.google, &account, expiry);
            seeds.push((self.mailbox_param(&account), token.to_string()));
        }
        for chunk in seeds.chunks(50) {
            let puts = chunk
                .iter()
                .map(|(name, value)| moto::put(&self.ssm, name, value));
            futures_util::future::join_all(puts).await;
        }
    }

    /// `account`'s stored token as JSON, or `None`.
    pub async fn mailbox_token(&self, account: &str) -> Option<Value> {
        moto::read(&self.ssm, &self.mailbox_param(account))
            .await
            .map(|s| serde_json::from_str(&s.value).expect("stored token is JSON"))
    }

    /// Stores a token as google-auth would after a consent by `account`, its access token
    /// expiring at `expiry`. Returns (refresh token, access token).
    pub async fn seed_token(&self, account: &str, expiry: DateTime<Utc>) -> (String, String) {
        let (token, refresh, access) = google_auth_token(&self.google, account, expiry);
        moto::put(&self.ssm, &self.token_param, &token.to_string()).await;
        (refresh, access)
    }

    /// A whole consent through the callback `app`: `/authorize`, Google's consent page, and
    /// `/callback` with the cookie the browser kept. Returns the callback's response.
    pub async fn link_through(&self, app: &oauth_callback::App<Repo>) -> ApiGatewayV2httpResponse {
        let authorize = app
            .handle(events::HttpEvent::get("/authorize").event(), Utc::now())
            .await;
        let location = authorize.headers["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let cookie = authorize.cookies[0]
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        let callback_url = self.google.consent(&location).await;
        app.handle(
            events::HttpEvent::get_url(&callback_url)
                .cookie(&cookie)
                .event(),
            Utc::now(),
        )
        .await
    }

    /// The stored token as JSON, or `None`.
    pub async fn stored_token(&self) -> Option<Value> {
        moto::read(&self.ssm, &self.token_param)
            .await
            .map(|s| serde_json::from_str(&s.value).expect("stored token is JSON"))
    }

    /// The version of the stored token parameter (panics if there is none).
    pub async fn token_version(&self) -> i64 {
        moto::read(&self.ssm, &self.token_param)
            .await
            .expect("a stored token")
            .version
    }

    /// Every secret in play: the fake's tokens and codes, and the client secret.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = self.google.issued_secrets();
        secrets.push(CLIENT_SECRET.into());
        secrets
    }
}

pub fn minutes_from_now(minutes: i64) -> DateTime<Utc> {
    Utc::now() + TimeDelta::minutes(minutes)
}

/// A token as google-auth writes it after `account` consented, with fresh tokens from the
/// fake: (the JSON, its refresh token, its access token).
pub fn google_auth_token(
    google: &FakeGoogle,
    account: &str,
    expiry: DateTime<Utc>,
) -> (Value, String, String) {
    let refresh = google.issue_refresh_token(account);
    let access = google.issue_access_token(account);
    let token = json!({
        "token": access,
        "refresh_token": refresh,
        "token_uri": google.token_uri(),
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": [GMAIL_READONLY],
        "universe_domain": "googleapis.com",
        "account": account,
        "expiry": gmail_oauth::token::expiry_format::format(&expiry),
    });
    (token, refresh, access)
}

/// Runs `tests/python/peer.py` (pythonic_gmail as a peer) with the venv's Python, against
/// moto, and returns the JSON it prints. A missing venv or package fails with instructions.
pub fn python_peer(args: &[&str]) -> Value {
    serde_json::from_str(&python("peer.py", args)).expect("the peer prints JSON")
}

/// Runs `tests/python/SCRIPT` with the venv's Python and returns its stdout; fails the test
/// with the script's stderr if it fails.
pub fn python(script: &str, args: &[&str]) -> String {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("PEER_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("../.venv/bin/python"));
    assert!(
        python.exists(),
        "{} not found: run `make venv` (it installs pythonic-gmail and its peers)",
        python.display()
    );
    let output = std::process::Command::new(&python)
        .arg(root.join("python").join(script))
        .args(args)
        .env_clear()
        .envs(moto::moto().env())
        .output()
        .expect("run the Python peer");
    assert!(
        output.status.success(),
        "python {script} {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts none of `secrets` appears in `text`, naming where it was found.
pub fn assert_no_secret(text: &str, secrets: &[String], place: &str) {
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        assert!(
            !text.contains(secret.as_str()),
            "a secret ({}…) leaked into {place}",
            &secret[..6]
        );
    }
}

/// Everything logged through `tracing` in this test process, at TRACE level.
pub fn captured_logs() -> String {
    log_buffer()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

fn log_buffer() -> &'static Arc<Mutex<String>> {
    static BUFFER: OnceLock<Arc<Mutex<String>>> = OnceLock::new();
    BUFFER.get_or_init(|| Arc::new(Mutex::new(String::new())))
}

/// Installs a TRACE subscriber that writes into the capture buffer (once per process).
pub fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let writer = CaptureWriter(log_buffer().clone());
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
    });
}

#[derive(Clone)]
struct CaptureWriter(Arc<Mutex<String>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(&String::from_utf8_lossy(bytes));
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
