//! Real event payloads: API Gateway HTTP API (payload format 2.0) requests and EventBridge
//! scheduled events, shaped as AWS sends them (see the AWS Lambda developer guide,
//! "Working with HTTP APIs" and "Using Lambda with EventBridge Scheduler").

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use serde_json::{Map, Value, json};

pub const DOMAIN: &str = "abc123.execute-api.us-east-1.amazonaws.com";

/// An API Gateway HTTP API event for one browser request.
#[derive(Clone)]
pub struct HttpEvent {
    method: String,
    raw_path: String,
    raw_query: String,
    cookies: Vec<String>,
    headers: Map<String, Value>,
    stage: String,
    domain: Option<String>,
}

impl HttpEvent {
    /// `GET` of a path with an optional raw query (`/callback?code=…`), sent as-is.
    pub fn get(path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut headers = Map::new();
        for (name, value) in [
            ("accept", "text/html,application/xhtml+xml"),
            ("accept-encoding", "gzip, deflate, br"),
            ("host", DOMAIN),
            ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"),
            (
                "x-amzn-trace-id",
                "Root=1-6741a7de-0c7d5f1e3b2a4c5d6e7f8091",
            ),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-proto", "https"),
        ] {
            headers.insert(name.into(), Value::from(value));
        }
        HttpEvent {
            method: "GET".into(),
            raw_path: path.into(),
            raw_query: query.into(),
            cookies: Vec::new(),
            headers,
            stage: "$default".into(),
            domain: Some(DOMAIN.into()),
        }
    }

    /// The same request for a full URL the browser was sent to (path and query kept).
    pub fn get_url(url: &str) -> Self {
        let url = url::Url::parse(url).expect("url");
        let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
        HttpEvent::get(&format!("{}{query}", url.path()))
    }

    pub fn method(mut self, method: &str) -> Self {
        self.method = method.into();
        self
    }

    pub fn stage(mut self, stage: &str) -> Self {
        self.stage = stage.into();
        self
    }

    /// The host the request came to (API Gateway's `requestContext.domainName`, and `Host`).
    pub fn domain(mut self, domain: &str) -> Self {
        self.domain = Some(domain.into());
        self.headers.insert("host".into(), Value::from(domain));
        self
    }

    pub fn without_domain(mut self) -> Self {
        self.domain = None;
        self
    }

    /// Adds a cookie as the browser sends it (`name=value`).
    pub fn cookie(mut self, cookie: &str) -> Self {
        self.cookies.push(cookie.into());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .insert(name.to_ascii_lowercase(), Value::from(value));
        self
    }

    pub fn json(&self) -> Value {
        // API Gateway also sends the decoded parameters, repeated names joined by commas.
        let mut params: Map<String, Value> = Map::new();
        for (name, value) in url::form_urlencoded::parse(self.raw_query.as_bytes()) {
            let joined = match params.get(name.as_ref()).and_then(Value::as_str) {
                Some(previous) => format!("{previous},{value}"),
                None => value.into_owned(),
            };
            params.insert(name.into_owned(), Value::from(joined));
        }
        let route_key = format!("{} {}", self.method, self.raw_path);
        let mut event = json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": self.raw_path,
            "rawQueryString": self.raw_query,
            "headers": self.headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc123",
                "domainPrefix": "abc123",
                "http": {
                    "method": self.method,
                    "path": self.raw_path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.7",
                    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"
                },
                "requestId": "JKJaXmPLvHcESHA=",
                "routeKey": route_key,
                "stage": self.stage,
                "time": "23/Nov/2026:10:15:42 +0000",
                "timeEpoch": 1_795_430_142_000u64
            },
            "isBase64Encoded": false
        });
        if let Some(domain) = &self.domain {
            event["requestContext"]["domainName"] = Value::from(domain.as_str());
        }
        if !params.is_empty() {
            event["queryStringParameters"] = Value::from(params);
        }
        if !self.cookies.is_empty() {
            event["cookies"] = Value::from(self.cookies.clone());
        }
        event
    }

    pub fn event(&self) -> ApiGatewayV2httpRequest {
        serde_json::from_value(self.json()).expect("a valid API Gateway v2 event")
    }
}

/// The event EventBridge sends on a schedule.
pub fn scheduled_event() -> Value {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-23T10:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/gmail-refresh-schedule"],
        "detail": {}
    })
}
