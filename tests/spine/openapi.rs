//! The API documents itself: `/api/openapi.json` is an OpenAPI 3.1 document naming every route of the
//! router, and `/api/docs` is the page that renders it.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::*;

/// Routes that are not part of the HTTP API: the pages and the documentation itself.
const UNDOCUMENTED: &[&str] = &["/", "/static/*path", "/api/openapi.json", "/api/docs"];

/// Every path given to `.route(` in the router's source, in OpenAPI form (`:id` becomes `{id}`).
fn routed_paths() -> BTreeSet<String> {
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cityops-api/src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let mut paths = BTreeSet::new();
    for (at, _) in source.match_indices(".route(") {
        let rest = source[at + ".route(".len()..].trim_start();
        let Some(rest) = rest.strip_prefix('"') else {
            continue;
        };
        let path = &rest[..rest.find('"').expect("a closing quote")];
        if UNDOCUMENTED.contains(&path) {
            continue;
        }
        let openapi: Vec<String> = path
            .split('/')
            .map(|segment| match segment.strip_prefix(':') {
                Some(name) => format!("{{{name}}}"),
                None => segment.to_string(),
            })
            .collect();
        paths.insert(openapi.join("/"));
    }
    paths
}

#[tokio::test]
async fn the_document_names_every_route() {
    let app = spawn_app().await;
    let response = app
        .anonymous
        .get(format!("{}/api/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the document is public");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: Value = response.json().await.expect("the document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = doc["paths"].as_object().expect("paths");

    let routed = routed_paths();
    assert!(routed.len() > 15, "found only {routed:?} in lib.rs");
    let missing: Vec<_> = routed
        .iter()
        .filter(|path| !documented.contains_key(path.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.json: {missing:?}"
    );

    // Every operation says what it does and what it answers.
    for (path, item) in documented {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
        }
    }
}

#[tokio::test]
async fn the_docs_page_renders_the_document() {
    let app = spawn_app().await;
    let response = app
        .anonymous
        .get(format!("{}/api/docs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the page is public");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("/api/openapi.json"));
    assert!(
        !page.contains("https://"),
        "the page loads nothing from elsewhere"
    );
}
