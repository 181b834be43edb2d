//! The web dashboard (Kubeflow's Central Dashboard role): three static
//! files compiled into the binary and served at `/` and `/ui/…`. They are
//! public; every piece of data the page shows comes from the JSON APIs with
//! the user's own credentials, so the tenancy layer stays the only gate.
//! This module must not read any store or decide who sees what.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("dashboard/index.html");
const APP: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/style.css");
const ICON: &str = include_str!("dashboard/favicon.svg");

/// Scripts, styles, images and fetches from this origin only; no inline
/// script or style, no plugins, no framing, no foreign form targets.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The routes: `/` (and `/ui/`) the page, `/ui/app.js`, `/ui/style.css`, `/ui/favicon.svg`.
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { asset(INDEX, "text/html; charset=utf-8") }))
        .route("/ui", get(|| async { asset(INDEX, "text/html; charset=utf-8") }))
        .route("/ui/", get(|| async { asset(INDEX, "text/html; charset=utf-8") }))
        .route("/ui/app.js", get(|| async { asset(APP, "text/javascript; charset=utf-8") }))
        .route("/ui/style.css", get(|| async { asset(STYLE, "text/css; charset=utf-8") }))
        .route("/ui/favicon.svg", get(|| async { asset(ICON, "image/svg+xml") }))
        .fallback(|uri: axum::http::Uri| async move {
            super::error(StatusCode::NOT_FOUND, format!("no dashboard file at {}", uri.path()))
        })
}

/// A file with its type and the headers every dashboard response carries.
/// `no-cache`: a browser revalidates, so a new binary's page is never mixed
/// with an old script.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_have_their_types_and_a_strict_policy() {
        for (path, kind) in [
            ("/", "text/html"),
            ("/ui/app.js", "text/javascript"),
            ("/ui/style.css", "text/css"),
            ("/ui/favicon.svg", "image/svg+xml"),
        ] {
            let request = axum::http::Request::get(path).body(axum::body::Body::empty()).expect("request");
            let response = tower::ServiceExt::oneshot(router(), request).await.expect("infallible");
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            assert!(header(header::CONTENT_TYPE).starts_with(kind), "{path}");
            assert!(header(header::CONTENT_SECURITY_POLICY).contains("script-src 'self'"), "{path}");
            assert_eq!(header(header::CACHE_CONTROL), "no-cache");
        }
        let request = axum::http::Request::get("/ui/nope.js").body(axum::body::Body::empty()).expect("request");
        let response = tower::ServiceExt::oneshot(router(), request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        assert!(INDEX.contains(r#"<script src="/ui/app.js""#));
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style="));
        assert!(!APP.contains("innerHTML") && !APP.contains("eval("));
    }
}
