//! A Lambda Runtime API (the `2018-06-01` HTTP interface Lambda offers a custom runtime) in
//! the test process, and a runner that starts a function binary against it, as Lambda's
//! `provided.al2023` runtime starts `bootstrap`.
//! Reference: <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

/// What one invocation returned.
#[derive(Debug, Clone)]
pub enum Outcome {
    Response(Value),
    Error {
        error_type: String,
        error_message: String,
    },
}

impl Outcome {
    pub fn response(self) -> Value {
        match self {
            Outcome::Response(value) => value,
            Outcome::Error {
                error_type,
                error_message,
            } => panic!("invocation failed: {error_type}: {error_message}"),
        }
    }
}

struct Pending {
    id: String,
    payload: Value,
}

struct Shared {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<String>>,
    first_poll: Mutex<Option<std::time::Instant>>,
    /// How long each invocation may take (Lambda's timeout; 30 s unless set).
    timeout: Mutex<Duration>,
}

/// The Runtime API endpoint a function process polls.
pub struct RuntimeApi {
    pub address: String,
    sender: mpsc::UnboundedSender<Pending>,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(receiver),
            waiting: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            first_poll: Mutex::new(None),
            timeout: Mutex::new(Duration::from_secs(30)),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind runtime API");
        let address = listener.local_addr().expect("local addr").to_string();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RuntimeApi {
            address,
            sender,
            shared,
        }
    }

    /// When the function first asked for an event: the end of its initialisation.
    pub fn first_poll(&self) -> Option<std::time::Instant> {
        *self
            .shared
            .first_poll
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The timeout of the invocations sent from now on: their deadline is this far away.
    pub fn set_timeout(&self, timeout: Duration) {
        *self
            .shared
            .timeout
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = timeout;
    }

    /// Sends one event and waits for the function's answer (a minute at most).
    pub async fn invoke(&self, payload: Value) -> Outcome {
        self.invoke_within(payload, Duration::from_secs(60)).await
    }

    /// Sends one event and waits for the function's answer, `patience` at most.
    pub async fn invoke_within(&self, payload: Value, patience: Duration) -> Outcome {
        let id = format!("{:032x}", rand::random::<u128>());
        let (done, answer) = oneshot::channel();
        self.shared
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), done);
        self.sender
            .send(Pending { id, payload })
            .expect("runtime API queue closed");
        match tokio::time::timeout(patience, answer).await {
            Ok(Ok(outcome)) => outcome,
            _ => {
                let init = self
                    .shared
                    .init_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                panic!("the function did not answer within {patience:?} (init error: {init:?})")
            }
        }
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    shared
        .first_poll
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(std::time::Instant::now);
    let Some(pending) = shared.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let timeout = *shared.timeout.lock().unwrap_or_else(|e| e.into_inner());
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + timeout;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", pending.id);
    set(
        "lambda-runtime-deadline-ms",
        deadline.as_millis().to_string(),
    );
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:test".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
    );
    (StatusCode::OK, headers, pending.payload.to_string()).into_response()
}

fn finish(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared
        .waiting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id)
    {
        Some(done) => {
            let _ = done.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn respond(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    finish(&shared, &id, Outcome::Response(value))
}

async fn fail(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    finish(
        &shared,
        &id,
        Outcome::Error {
            error_type: field("errorType"),
            error_message: field("errorMessage"),
        },
    )
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}

/// A release binary, as `cargo build --release` (run by `make test`) leaves it.
pub fn release_binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("RELEASE_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "release binary {} is missing: run `make release` \
         (`make test` does), or set RELEASE_BIN_DIR",
        path.display()
    );
    path
}

/// A function process polling a [`RuntimeApi`]; killed when dropped. Its stdout and stderr
/// (the function's log) are captured.
pub struct FunctionProcess {
    pub api: RuntimeApi,
    _child: tokio::process::Child,
    output: Arc<Mutex<String>>,
}

impl FunctionProcess {
    /// Starts `binary` with exactly `env` (plus what Lambda itself sets), nothing inherited.
    pub async fn start(binary: PathBuf, env: Vec<(String, String)>) -> FunctionProcess {
        let api = RuntimeApi::start().await;
        let mut command = tokio::process::Command::new(&binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", &api.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "test-function")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/test-function")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/23/[$LATEST]test")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let output = Arc::new(Mutex::new(String::new()));
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(capture(stdout, output.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(capture(stderr, output.clone()));
        }
        FunctionProcess {
            api,
            _child: child,
            output,
        }
    }

    pub async fn invoke(&self, payload: Value) -> Outcome {
        self.api.invoke(payload).await
    }

    /// The process id, for reading `/proc` (peak memory, CPU time).
    pub fn pid(&self) -> Option<u32> {
        self._child.id()
    }

    /// Everything the process has written so far.
    pub fn logs(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn capture(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    output: Arc<Mutex<String>>,
) {
    let mut buffer = vec![0u8; 8192];
    while let Ok(n) = pipe.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
}
