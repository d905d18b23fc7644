//! Components (部件) over HTTP: an admin imports the ledger as CSV or GeoJSON (good rows are stored,
//! bad rows come back with their line or feature, field and problem; nothing half-applied), anyone
//! lists them or sees them on the map; a case on a component is routed to the component's owner.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use cityops_auth::Permission;
use cityops_core::GeoPoint;
use cityops_gis::components::{
    ComponentImport, RowRef, import_components_csv, import_components_geojson,
};
use cityops_gis::{Component, ComponentRegistry};
use cityops_store::components::ComponentRow;
use parking_lot::RwLock;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Authenticated;
use crate::{ApiError, AppState};

/// The registry, shared: read by routing and the map, replaced piecewise by imports.
pub type SharedComponents = Arc<RwLock<ComponentRegistry>>;

/// How far from a case a component may be to count as the one the case is about.
pub const ROUTING_RADIUS_M: f64 = 30.0;

/// Loads the stored components into a registry.
pub async fn load(store: &cityops_store::Store) -> anyhow::Result<SharedComponents> {
    let mut components = Vec::new();
    for data in store.component_rows().await? {
        components.push(serde_json::from_str::<Component>(&data)?);
    }
    Ok(Arc::new(RwLock::new(ComponentRegistry::new(components))))
}

/// The component a case of `category` at `point` is about, if one is near enough, and its owner.
pub fn routing(
    components: &SharedComponents,
    category: &str,
    point: GeoPoint,
) -> Option<serde_json::Value> {
    let registry = components.read();
    let nearest = registry.nearest(category, point, ROUTING_RADIUS_M)?;
    Some(json!({
        "component": nearest.component,
        "distance_m": (nearest.distance_m * 10.0).round() / 10.0,
        "department": nearest.component.owning_department,
    }))
}

/// `POST /api/v1/components` with `text/csv` or `application/geo+json` (or `application/json`).
pub(crate) async fn import(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require(Permission::CatalogueManage)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::Invalid("the ledger is not UTF-8 text".into()))?;
    let grid = state.grid.as_ref().map(|layers| &layers.index);
    let imported: ComponentImport = if content_type.starts_with("text/csv") {
        import_components_csv(text, grid)
    } else if content_type.starts_with("application/geo+json")
        || content_type.starts_with("application/json")
    {
        import_components_geojson(text, grid)
    } else {
        return Err(ApiError::Invalid(format!(
            "Content-Type {content_type:?}: send text/csv or application/geo+json"
        )));
    }
    .map_err(|e| ApiError::Invalid(e.to_string()))?;
    // Components of categories the catalogue does not know would route cases nowhere: reject them too.
    let mut rejected: Vec<serde_json::Value> = imported.rejected.iter().map(row_error).collect();
    let mut accepted = Vec::new();
    for component in imported.components {
        match state.catalogue.get(&component.category_code) {
            Ok(_) => accepted.push(component),
            Err(e) => rejected.push(
                json!({"id": component.id, "field": "category_code", "problem": e.to_string()}),
            ),
        }
    }
    let rows = accepted
        .iter()
        .map(|c| {
            Ok(ComponentRow {
                id: c.id.clone(),
                category_code: c.category_code.clone(),
                cell: c.cell.as_ref().and_then(|g| g.cell()).map(str::to_string),
                data: serde_json::to_string(c)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    state.store.upsert_components(&rows, Utc::now()).await?;
    let mut registry = state.components.write();
    for component in &accepted {
        registry.insert(component.clone());
    }
    let status = if accepted.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "imported": accepted.len(), "rejected": rejected })),
    )
        .into_response())
}

fn row_error(e: &cityops_gis::components::RowError) -> serde_json::Value {
    let (kind, index) = match e.at {
        RowRef::Line(line) => ("line", line),
        RowRef::Feature(feature) => ("feature", feature),
    };
    json!({ kind: index, "field": e.field, "problem": e.problem })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    category: Option<String>,
    /// A cell, community or street code.
    grid: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/components?category=C0101&grid=110101001&limit=100`.
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    let Query(p) = params.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let limit = p.limit.unwrap_or(500).clamp(1, 5000);
    let registry = state.components.read();
    let items: Vec<&Component> = registry
        .iter()
        .filter(|c| {
            p.category
                .as_deref()
                .is_none_or(|cat| c.category_code == cat)
        })
        .filter(|c| {
            p.grid.as_deref().is_none_or(|g| {
                c.cell
                    .as_ref()
                    .and_then(|place| place.cell())
                    .is_some_and(|cell| cell.starts_with(g))
            })
        })
        .take(limit)
        .collect();
    Ok(Json(json!({ "items": items, "total": registry.len() })).into_response())
}
