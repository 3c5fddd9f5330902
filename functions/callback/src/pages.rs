//! Small, self-contained HTML pages (no external resources) and the headers every
//! response carries.

use http::{HeaderValue, Response, StatusCode, header};

/// Headers on every response: nothing cached, no referrer leaked (the callback URL holds a
/// code), never framed (RFC 9700 §4.16), no content sniffing.
pub fn secure_headers(response: &mut Response<String>) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// An HTML page with a title and plain sentences. Every argument is escaped.
pub fn page(status: StatusCode, title: &str, paragraphs: &[&str]) -> Response<String> {
    let body: String = paragraphs
        .iter()
        .map(|p| format!("<p>{}</p>\n", html_escape::encode_text(p)))
        .collect();
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5;color:#222}}\
         h1{{font-size:1.4rem}}</style></head>\n<body><h1>{title}</h1>\n{body}</body></html>\n",
        title = html_escape::encode_text(title),
    );
    let mut response = Response::new(html);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

pub fn linked(account: &str) -> Response<String> {
    page(
        StatusCode::OK,
        "Gmail account linked",
        &[
            &format!("The mailbox {account} is now linked."),
            "The scheduled function will use it from its next run. You can close this window.",
        ],
    )
}

pub fn not_found() -> Response<String> {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        &["This address serves only /authorize and /callback."],
    )
}

pub fn method_not_allowed() -> Response<String> {
    let mut response = page(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        &["Only GET is supported."],
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_it_shows() {
        let response = linked("<script>alert(1)</script>@example.com");
        assert!(!response.body().contains("<script>"));
        assert!(response.body().contains("&lt;script&gt;"));
    }
}
