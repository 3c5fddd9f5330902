//! A small HTTP proxy in front of moto that can answer AWS JSON-protocol requests (SSM, and
//! EventBridge through the same proxy) with the failures AWS produces —
//! `ThrottlingException`, a 5xx, a delay, a request that takes effect but whose answer is
//! lost, a `PutEvents` that takes only some of its entries — or hold one request until the
//! test lets it go, then passes everything else through unchanged.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// What to do to the next matching request.
#[derive(Debug, Clone)]
pub enum SsmFault {
    /// 400 `ThrottlingException`, as SSM answers when its rate limit is hit.
    Throttle,
    /// A 5xx `InternalServerError`.
    Status(u16),
    /// Wait, then pass through.
    Delay(Duration),
    /// Pass the request through (it takes effect), then lose the answer: a 500 as when the
    /// connection breaks after SSM committed. The SDK retries it.
    CommitThenLose,
    /// `PutEvents` only: the entries at these positions fail (`InternalFailure`, as
    /// EventBridge reports a partial failure); the others go through.
    FailEntries(Vec<usize>),
}

/// A request held until [`Hold::release`]; [`Hold::reached`] resolves once it arrived.
#[derive(Clone, Default)]
pub struct Hold {
    arrived: Arc<Notify>,
    released: Arc<Notify>,
}

impl Hold {
    pub async fn reached(&self) {
        self.arrived.notified().await;
    }

    pub fn release(&self) {
        self.released.notify_one();
    }

    /// The held side: say it arrived, wait to be released.
    pub async fn arrive_and_wait(&self) {
        self.arrived.notify_one();
        self.released.notified().await;
    }
}

#[derive(Default)]
struct ProxyState {
    /// (operation, fault): operation is e.g. `PutParameter`, or `*` for any.
    faults: VecDeque<(String, SsmFault)>,
    holds: VecDeque<(String, Hold)>,
    latency: Duration,
    requests: Vec<String>,
    /// Parameter Store's quotas, when enforced: reads and writes a second.
    reads: Option<Bucket>,
    writes: Option<Bucket>,
    throttled: usize,
}

/// A token bucket as AWS enforces a quota: `rate` calls a second, bursts up to one
/// second's worth.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: std::time::Instant,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        Bucket {
            rate,
            tokens: rate,
            at: std::time::Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        self.tokens = (self.tokens + (now - self.at).as_secs_f64() * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the proxy saw: calls by kind, and how many it throttled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub reads: usize,
    pub writes: usize,
    pub throttled: usize,
}

fn is_write(operation: &str) -> bool {
    matches!(
        operation,
        "PutParameter" | "DeleteParameter" | "LabelParameterVersion"
    )
}

#[derive(Clone)]
pub struct SsmProxy {
    pub endpoint: String,
    state: Arc<Mutex<ProxyState>>,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    state: Arc<Mutex<ProxyState>>,
}

impl SsmProxy {
    pub async fn start(upstream: &str) -> SsmProxy {
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            http: reqwest::Client::new(),
            state: state.clone(),
        });
        let app = Router::new().fallback(forward).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind SSM proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("local addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SsmProxy { endpoint, state }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProxyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `fault` to the next request for `operation` (`*`: any operation).
    pub fn inject(&self, operation: &str, fault: SsmFault) {
        self.lock().faults.push_back((operation.to_owned(), fault));
    }

    /// Holds the next request for `operation` until released.
    pub fn hold(&self, operation: &str) -> Hold {
        let hold = Hold::default();
        self.lock()
            .holds
            .push_back((operation.to_owned(), hold.clone()));
        hold
    }

    /// Adds this delay to every request (a network round trip, for benchmarks).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Enforces Parameter Store's quotas: `reads` and `writes` calls a second (token
    /// buckets); a call over quota gets `ThrottlingException`, as from AWS.
    pub fn set_quotas(&self, reads: f64, writes: f64) {
        let mut state = self.lock();
        state.reads = Some(Bucket::new(reads));
        state.writes = Some(Bucket::new(writes));
    }

    /// Calls seen so far (throttled ones included) and how many were throttled.
    pub fn counts(&self) -> Counts {
        let state = self.lock();
        let writes = state.requests.iter().filter(|o| is_write(o)).count();
        Counts {
            reads: state.requests.len() - writes,
            writes,
            throttled: state.throttled,
        }
    }

    pub fn clear(&self) {
        let mut state = self.lock();
        state.faults.clear();
        state.holds.clear();
    }

    /// Operations seen so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// An SSM client through this proxy with scaled-down timeouts and backoff (the SDK's
    /// standard retry mode, 3 attempts), for fault tests that run by the thousand.
    pub async fn fast_client(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.fast_config().await)
    }

    /// The SDK configuration of [`SsmProxy::fast_client`], for any service's client
    /// (EventBridge goes through the same proxy).
    pub async fn fast_config(&self) -> aws_config::SdkConfig {
        crate::moto::sdk_config(&self.endpoint)
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(5))
                    .with_max_backoff(Duration::from_millis(20)),
            )
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(200))
                    .operation_attempt_timeout(Duration::from_millis(150))
                    .operation_timeout(Duration::from_millis(600))
                    .build(),
            )
            .load()
            .await
    }
}

/// Sends `PutEvents` on with the entries at `failing` left out, and answers as EventBridge
/// does for a partial failure: one result per entry, in order, `FailedEntryCount`.
async fn partial_put_events(
    shared: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    failing: &[usize],
) -> Response {
    let Ok(mut request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return aws_error(StatusCode::BAD_REQUEST, "ValidationException");
    };
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    let kept: Vec<serde_json::Value> = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| !failing.contains(i))
        .map(|(_, e)| e.clone())
        .collect();
    let mut ids: std::collections::VecDeque<serde_json::Value> = Default::default();
    if !kept.is_empty() {
        request["Entries"] = serde_json::Value::from(kept);
        let body = Bytes::from(request.to_string());
        let answer = send_upstream(shared, Method::POST, uri, headers, body).await;
        let Ok(answer) = answer else {
            return aws_error(StatusCode::BAD_GATEWAY, "InternalFailure");
        };
        let json: serde_json::Value = answer.json().await.unwrap_or_default();
        ids = json["Entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into();
    }
    let mut failed = 0;
    let results: Vec<serde_json::Value> = (0..entries.len())
        .map(|i| {
            if failing.contains(&i) {
                failed += 1;
                serde_json::json!({ "ErrorCode": "InternalFailure", "ErrorMessage": "injected by the test proxy" })
            } else {
                ids.pop_front().unwrap_or_default()
            }
        })
        .collect();
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        serde_json::json!({ "FailedEntryCount": failed, "Entries": results }).to_string(),
    )
        .into_response()
}

async fn send_upstream(
    shared: &Shared,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<reqwest::Response, reqwest::Error> {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = shared
        .http
        .request(method, format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    request.send().await
}

fn take<T: Clone>(queue: &mut VecDeque<(String, T)>, operation: &str) -> Option<T> {
    let index = queue
        .iter()
        .position(|(op, _)| op == "*" || op == operation)?;
    queue.remove(index).map(|(_, item)| item)
}

fn aws_error(status: StatusCode, kind: &str) -> Response {
    let body =
        serde_json::json!({ "__type": kind, "message": "injected by the test proxy" }).to_string();
    (
        status,
        [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amzn-errortype", kind),
        ],
        body,
    )
        .into_response()
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("unknown")
        .to_owned();
    let (fault, hold, latency, over_quota) = {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.requests.push(operation.clone());
        let bucket = if is_write(&operation) {
            state.writes.as_mut()
        } else {
            state.reads.as_mut()
        };
        let over_quota = bucket.is_some_and(|b| !b.take());
        if over_quota {
            state.throttled += 1;
        }
        (
            take(&mut state.faults, &operation),
            take(&mut state.holds, &operation),
            state.latency,
            over_quota,
        )
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if over_quota {
        return aws_error(StatusCode::BAD_REQUEST, "ThrottlingException");
    }
    if let Some(hold) = hold {
        hold.arrive_and_wait().await;
    }
    let lose_answer = matches!(fault, Some(SsmFault::CommitThenLose));
    match fault {
        Some(SsmFault::Throttle) => {
            return aws_error(StatusCode::BAD_REQUEST, "ThrottlingException");
        }
        Some(SsmFault::Status(code)) => {
            return aws_error(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "InternalServerError",
            );
        }
        Some(SsmFault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(SsmFault::FailEntries(positions)) if operation == "PutEvents" => {
            return partial_put_events(&shared, &uri, &headers, &body, &positions).await;
        }
        Some(SsmFault::CommitThenLose) | Some(SsmFault::FailEntries(_)) | None => {}
    }
    match send_upstream(&shared, method, &uri, &headers, body).await {
        Ok(_) if lose_answer => aws_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        Ok(upstream) => {
            let status = upstream.status();
            let headers = upstream.headers().clone();
            let body = upstream.bytes().await.unwrap_or_default();
            let mut response = (status, body).into_response();
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
        Err(_) => aws_error(StatusCode::BAD_GATEWAY, "InternalServerError"),
    }
}
