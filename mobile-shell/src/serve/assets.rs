//! The page's files, embedded at build time (`mobile-shell/ui/`): the app runs with no network
//! and no build step, and a binary always serves the page it was built with.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../ui/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/app.js"),
    ),
    (
        "/app.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/app.css"),
    ),
];

pub async fn file(uri: axum::http::Uri) -> Response {
    let path = match uri.path() {
        "/index.html" => "/",
        p => p,
    };
    match FILES.iter().find(|(p, _, _)| *p == path) {
        Some((_, mime, body)) => {
            let mut resp = (*body).into_response();
            let headers = resp.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            // Always the binary's own copy: a new build must never run an old page.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            // The page may talk to this shell only.
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; connect-src 'self'",
                ),
            );
            resp
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
