//! The API's own documentation: the hand-written OpenAPI 3.1 document at `GET /api/openapi.json` and a
//! self-contained page that renders it at `GET /api/docs`, both embedded in the binary and public.

use axum::http::header;
use axum::response::{Html, IntoResponse};

/// The OpenAPI document, kept beside the routes it describes.
const OPENAPI: &str = include_str!("openapi.json");

/// The docs page: plain HTML and inline script, no CDN, so it works offline.
const PAGE: &str = include_str!("../../../web/api-docs.html");

/// `GET /api/openapi.json`.
pub(crate) async fn openapi() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        OPENAPI,
    )
}

/// `GET /api/docs`.
pub(crate) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_json() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
