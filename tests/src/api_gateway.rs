//! A local stand-in for API Gateway's HTTP API in front of a function process: each
//! browser request becomes a payload-2.0 event (raw path, raw query, cookies array,
//! lower-case headers, request context) sent through the Runtime API, and the function's
//! answer becomes the HTTP response (`cookies` → `Set-Cookie`), as API Gateway does.

use crate::runtime_api::{FunctionProcess, Outcome};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// A listener bound first (so the function can be told its URL), then served.
pub struct ApiGateway {
    pub base_url: String,
    listener: tokio::net::TcpListener,
}

impl ApiGateway {
    /// Binds `localhost` on a free port; the base URL uses the name `localhost`.
    pub async fn bind() -> ApiGateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind API gateway");
        let port = listener.local_addr().expect("local addr").port();
        ApiGateway {
            base_url: format!("http://localhost:{port}"),
            listener,
        }
    }

    /// Serves requests by invoking `function`.
    pub fn serve(self, function: FunctionProcess) {
        let domain = self.base_url.trim_start_matches("http://").to_owned();
        let app = Router::new()
            .fallback(invoke)
            .with_state(Arc::new((function, domain)));
        tokio::spawn(async move {
            let _ = axum::serve(self.listener, app).await;
        });
    }
}

async fn invoke(
    State(shared): State<Arc<(FunctionProcess, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    _body: Bytes,
) -> Response {
    let (function, default_domain) = shared.as_ref();
    // As API Gateway does: the domain name is the host the request came to (the execute-api
    // host, or a custom domain mapped to the API).
    let domain = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or(default_domain);
    let mut lower = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &headers {
        let value = value.to_str().unwrap_or_default().to_owned();
        if name == "cookie" {
            cookies.extend(value.split("; ").map(str::to_owned));
        } else {
            lower.insert(name.as_str().to_owned(), Value::from(value));
        }
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": uri.path(),
        "rawQueryString": uri.query().unwrap_or_default(),
        "headers": lower,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": domain,
            "domainPrefix": "localhost",
            "http": {"method": method.as_str(), "path": uri.path(), "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "chromium"},
            "requestId": "local",
            "routeKey": "$default",
            "stage": "$default",
            "time": "23/Nov/2026:10:15:42 +0000",
            "timeEpoch": 1_795_430_142_000u64
        },
        "isBase64Encoded": false
    });
    if !cookies.is_empty() {
        event["cookies"] = Value::from(cookies);
    }
    match function.invoke(event).await {
        Outcome::Response(answer) => {
            let status = answer["statusCode"]
                .as_u64()
                .and_then(|s| StatusCode::from_u16(s as u16).ok());
            let mut response = answer["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
                .into_response();
            *response.status_mut() = status.unwrap_or(StatusCode::BAD_GATEWAY);
            if let Some(map) = answer["headers"].as_object() {
                for (name, value) in map {
                    if let (Ok(name), Some(Ok(value))) = (
                        HeaderName::try_from(name.as_str()),
                        value.as_str().map(HeaderValue::from_str),
                    ) {
                        response.headers_mut().insert(name, value);
                    }
                }
            }
            for cookie in answer["cookies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if let Ok(value) = HeaderValue::from_str(cookie) {
                    response.headers_mut().append("set-cookie", value);
                }
            }
            response
        }
        // API Gateway answers an invocation error with a plain 500.
        Outcome::Error { .. } => {
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
    }
}
