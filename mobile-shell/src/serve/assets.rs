//! The page's files, embedded at build time (`mobile-shell/ui/`): the app runs with no network
//! and no build step, and a binary always serves the page it was built with. Every file of the
//! page is listed in FILES by its path under `ui/` (the test below says so when one is not).

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
        "/dom.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/dom.js"),
    ),
    (
        "/text.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/text.js"),
    ),
    (
        "/api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/api.js"),
    ),
    (
        "/format.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/format.js"),
    ),
    (
        "/sync-bar.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/sync-bar.js"),
    ),
    (
        "/route.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/route.js"),
    ),
    (
        "/router.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/router.js"),
    ),
    (
        "/signature-pad.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/signature-pad.js"),
    ),
    (
        "/screens/signin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/screens/signin.js"),
    ),
    (
        "/screens/jobs.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/screens/jobs.js"),
    ),
    (
        "/screens/job.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/screens/job.js"),
    ),
    (
        "/screens/job/time.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/screens/job/time.js"),
    ),
    (
        "/screens/job/notes.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/screens/job/notes.js"),
    ),
    (
        "/screens/job/checklist.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/screens/job/checklist.js"),
    ),
    (
        "/screens/job/parts.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/screens/job/parts.js"),
    ),
    (
        "/screens/job/photos.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/screens/job/photos.js"),
    ),
    (
        "/screens/signoff.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/screens/signoff.js"),
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

#[cfg(test)]
mod tests {
    use super::FILES;
    use std::path::{Path, PathBuf};

    /// The page's files under `dir`: `.js`, `.css` and `.html`, at any depth.
    fn page_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                page_files(&path, out);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("js" | "css" | "html")
            ) {
                out.push(path);
            }
        }
    }

    /// A module added to `ui/` but not to FILES would be a 404 at run time, and the page would not
    /// start: every page file is served, by its path under `ui/` (`index.html` as `/`).
    #[test]
    fn every_page_file_is_embedded() {
        let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut files = Vec::new();
        page_files(&ui, &mut files);
        assert!(
            files.len() > 3,
            "no page files found under {}",
            ui.display()
        );
        let mut missing = Vec::new();
        for file in &files {
            let rel = file.strip_prefix(&ui).unwrap();
            let parts: Vec<&str> = rel
                .components()
                .map(|c| c.as_os_str().to_str().unwrap())
                .collect();
            let url = match parts.join("/").as_str() {
                "index.html" => "/".to_string(),
                p => format!("/{p}"),
            };
            match FILES.iter().find(|(p, _, _)| *p == url) {
                Some((_, _, body)) => assert_eq!(
                    *body,
                    std::fs::read_to_string(file).unwrap(),
                    "{url} is embedded from another file than {}",
                    rel.display()
                ),
                None => missing.push(url),
            }
        }
        assert!(
            missing.is_empty(),
            "page files not in FILES (src/serve/assets.rs): {missing:?}"
        );
        for (path, mime, _) in FILES {
            let want = if path.ends_with(".js") {
                "text/javascript; charset=utf-8"
            } else if path.ends_with(".css") {
                "text/css; charset=utf-8"
            } else {
                "text/html; charset=utf-8"
            };
            assert_eq!(*mime, want, "MIME type of {path}");
        }
        // The page asks for every module up front (no import waterfall on a cold start).
        let index = FILES.iter().find(|(p, _, _)| *p == "/").unwrap().2;
        let unlisted: Vec<&str> = FILES
            .iter()
            .map(|(p, _, _)| *p)
            .filter(|p| p.ends_with(".js"))
            .filter(|p| !index.contains(&format!("<link rel=\"modulepreload\" href=\"{p}\">")))
            .collect();
        assert!(
            unlisted.is_empty(),
            "modules index.html does not preload: {unlisted:?}"
        );
    }
}
