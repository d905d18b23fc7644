//! Geofences over HTTP: the configured fences (`gis.geofences`, read-only here) and the ones drawn
//! through the API (stored, surviving a restart), as GeoJSON Features in WGS-84.
//!
//! Every change is checked whole before anything is written (a bad ring, a coordinate off the earth or
//! an unknown kind is a 422 naming the field) and then reaches the running inspector tracker at once:
//! the next fixes raise `inspector.fence` for a new zone, and patrol coverage and the patrol watch
//! count visits to it.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use cityops_auth::Permission;
use cityops_core::UnixMillis;
use cityops_gis::Geofence;
use cityops_gis::geofence::{feature_id, geofence_feature, read_geofence_feature};
use cityops_ingest::inspectors::InspectorTracker;
use cityops_store::Store;
use cityops_store::geofences::{GENERATED_ID_PREFIX, GeofenceRow, GeofenceWrite};
use parking_lot::RwLock;
use serde_json::{Value, json};

use crate::auth::Authenticated;
use crate::{ApiError, AppState};

/// A fence drawn through the API, with who made and last changed it.
#[derive(Debug, Clone)]
struct ApiFence {
    fence: Geofence,
    created_at: UnixMillis,
    created_by: String,
    updated_at: UnixMillis,
    updated_by: String,
}

/// The fences watched: the configured ones, then the ones from the API in the order they were made.
pub struct GeofenceBook {
    config: Vec<Geofence>,
    api: RwLock<Vec<ApiFence>>,
    /// Orders changes: a store write and the matching in-memory change happen under it.
    write: tokio::sync::Mutex<()>,
    inspectors: Arc<InspectorTracker>,
}

impl GeofenceBook {
    /// The configured fences and the stored ones; the tracker watches them all. A stored fence whose
    /// id a configured one now uses is skipped with a warning (the configuration wins).
    pub async fn load(
        store: &Store,
        config: Vec<Geofence>,
        inspectors: Arc<InspectorTracker>,
    ) -> anyhow::Result<Arc<Self>> {
        let mut api = Vec::new();
        for row in store.geofence_rows().await? {
            if config.iter().any(|f| f.id == row.id) {
                tracing::warn!(
                    id = row.id,
                    "a geofence drawn through the API has the id of a configured one; the configured one applies"
                );
                continue;
            }
            api.push(api_fence(row)?);
        }
        let book = Arc::new(Self {
            config,
            api: RwLock::new(api),
            write: tokio::sync::Mutex::new(()),
            inspectors,
        });
        book.publish();
        Ok(book)
    }

    /// Every fence watched now: configured first, then those from the API.
    pub fn all(&self) -> Vec<Geofence> {
        let api = self.api.read();
        self.config
            .iter()
            .cloned()
            .chain(api.iter().map(|a| a.fence.clone()))
            .collect()
    }

    fn publish(&self) {
        self.inspectors.set_geofences(self.all());
    }

    /// Each fence as a Feature with its `source` (and, from the API, who made and changed it).
    pub fn features(&self) -> Vec<Value> {
        self.features_where(|_| true)
    }

    /// [`GeofenceBook::features`] of the fences `keep` accepts.
    pub fn features_where(&self, keep: impl Fn(&Geofence) -> bool) -> Vec<Value> {
        let api = self.api.read();
        self.config
            .iter()
            .filter(|f| keep(f))
            .map(config_feature)
            .chain(api.iter().filter(|a| keep(&a.fence)).map(api_feature))
            .collect()
    }

    fn is_config(&self, id: &str) -> bool {
        self.config.iter().any(|f| f.id == id)
    }
}

fn api_fence(row: GeofenceRow) -> anyhow::Result<ApiFence> {
    let feature: Value = serde_json::from_str(&row.feature)?;
    let fence = read_geofence_feature(&feature, &row.id)
        .map_err(|e| anyhow::anyhow!("stored geofence {}: {e}", row.id))?;
    Ok(ApiFence {
        fence,
        created_at: row.created_at,
        created_by: row.created_by,
        updated_at: row.updated_at,
        updated_by: row.updated_by,
    })
}

fn config_feature(fence: &Geofence) -> Value {
    let mut feature = geofence_feature(fence);
    feature["properties"]["source"] = json!("config");
    feature
}

fn api_feature(api: &ApiFence) -> Value {
    let mut feature = geofence_feature(&api.fence);
    let properties = &mut feature["properties"];
    properties["source"] = json!("api");
    properties["created_at"] = json!(api.created_at);
    properties["created_by"] = json!(api.created_by);
    properties["updated_at"] = json!(api.updated_at);
    properties["updated_by"] = json!(api.updated_by);
    feature
}

/// What the store keeps of a fence: its feature without the id (the row holds that).
fn write_of(fence: &Geofence, at: UnixMillis, by: &str) -> GeofenceWrite {
    let mut feature = geofence_feature(fence);
    if let Some(object) = feature.as_object_mut() {
        object.remove("id");
    }
    if let Some(properties) = feature["properties"].as_object_mut() {
        properties.remove("id");
    }
    GeofenceWrite {
        name: fence.name.clone(),
        kind: fence.kind.as_str().to_string(),
        required_visits_per_day: fence.kind.required_visits_per_day().map(i64::from),
        min_dwell_ms: fence.min_dwell_ms,
        feature: feature.to_string(),
        at,
        by: by.to_string(),
    }
}

fn read_body(body: Result<Json<Value>, JsonRejection>) -> Result<Value, ApiError> {
    body.map(|Json(v)| v)
        .map_err(|e| ApiError::Invalid(format!("geofence: {}", e.body_text())))
}

fn parse(feature: &Value, id: &str) -> Result<Geofence, ApiError> {
    read_geofence_feature(feature, id).map_err(|e| ApiError::Invalid(format!("geofence {id}: {e}")))
}

fn read_only(id: &str) -> ApiError {
    ApiError::Conflict(format!(
        "geofence {id} comes from the configuration (gis.geofences) and is read-only here; change \
         the configured file instead"
    ))
}

/// `GET /api/v1/geofences`: every fence watched, as a FeatureCollection.
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    Ok(geojson(json!({
        "type": "FeatureCollection",
        "features": state.geofences.features(),
    })))
}

/// `GET /api/v1/geofences/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    state
        .geofences
        .features()
        .into_iter()
        .find(|f| f["id"] == id.as_str())
        .map(geojson)
        .ok_or_else(|| ApiError::NotFound(format!("no geofence {id}")))
}

fn geojson(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/geo+json")],
        Json(value),
    )
        .into_response()
}

/// 422 unless a caller-chosen id is 1-64 characters of letters, digits, `_`, `.`, `-` and not in the
/// store's own `gf-` range.
fn check_id(id: &str) -> Result<(), ApiError> {
    let shape = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !shape {
        return Err(ApiError::Invalid(format!(
            "geofence id {id:?}: expected 1 to 64 letters, digits, '_', '.' or '-'"
        )));
    }
    if id.starts_with(GENERATED_ID_PREFIX) {
        return Err(ApiError::Invalid(format!(
            "geofence id {id:?}: ids starting with {GENERATED_ID_PREFIX:?} are given by the server; \
             leave the id out to get one"
        )));
    }
    Ok(())
}

/// `POST /api/v1/geofences` with a GeoJSON Feature (Polygon or MultiPolygon, WGS-84): 201 with the id
/// (the feature's own `id`/`properties.id` if given, otherwise `gf-<n>`) and the stored feature.
pub(crate) async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::GeofencesManage)?;
    let feature = read_body(body)?;
    let wanted = feature_id(&feature);
    if let Some(id) = &wanted {
        check_id(id)?;
    }
    let fence = parse(&feature, wanted.as_deref().unwrap_or("(new)"))?;
    let book = &state.geofences;
    let _write = book.write.lock().await;
    if let Some(id) = &wanted
        && (book.is_config(id) || book.api.read().iter().any(|a| a.fence.id == *id))
    {
        return Err(ApiError::Conflict(format!(
            "geofence id {id} is already used; choose another or PUT /api/v1/geofences/{id}"
        )));
    }
    let now = Utc::now().timestamp_millis();
    let by = auth.0.username.as_str();
    let Some(id) = state
        .store
        .insert_geofence(wanted.as_deref(), &write_of(&fence, now, by))
        .await?
    else {
        return Err(ApiError::Conflict(format!(
            "geofence id {} is already used",
            wanted.unwrap_or_default()
        )));
    };
    let api = ApiFence {
        fence: Geofence {
            id: id.clone(),
            ..fence
        },
        created_at: now,
        created_by: by.to_string(),
        updated_at: now,
        updated_by: by.to_string(),
    };
    let feature = api_feature(&api);
    book.api.write().push(api);
    book.publish();
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/api/v1/geofences/{id}")),
            (header::CONTENT_TYPE, "application/geo+json".to_string()),
        ],
        Json(json!({ "id": id, "feature": feature })),
    )
        .into_response())
}

/// `PUT /api/v1/geofences/{id}` with the whole new Feature: replaces a fence drawn through the API.
pub(crate) async fn update(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::GeofencesManage)?;
    let book = &state.geofences;
    if book.is_config(&id) {
        return Err(read_only(&id));
    }
    let feature = read_body(body)?;
    if let Some(given) = feature_id(&feature)
        && given != id
    {
        return Err(ApiError::Invalid(format!(
            "geofence {id}: the feature's id {given:?} differs from the path; ids do not change"
        )));
    }
    let fence = parse(&feature, &id)?;
    let _write = book.write.lock().await;
    if !book.api.read().iter().any(|a| a.fence.id == id) {
        return Err(ApiError::NotFound(format!("no geofence {id}")));
    }
    let now = Utc::now().timestamp_millis();
    let by = auth.0.username.as_str();
    if !state
        .store
        .update_geofence(&id, &write_of(&fence, now, by))
        .await?
    {
        return Err(ApiError::NotFound(format!("no geofence {id}")));
    }
    let feature = {
        let mut api = book.api.write();
        let entry = api
            .iter_mut()
            .find(|a| a.fence.id == id)
            .ok_or_else(|| ApiError::NotFound(format!("no geofence {id}")))?;
        entry.fence = fence;
        entry.updated_at = now;
        entry.updated_by = by.to_string();
        api_feature(entry)
    };
    book.publish();
    Ok(geojson(feature))
}

/// `DELETE /api/v1/geofences/{id}`: removes a fence drawn through the API (204).
pub(crate) async fn delete(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(Permission::GeofencesManage)?;
    let book = &state.geofences;
    if book.is_config(&id) {
        return Err(read_only(&id));
    }
    let _write = book.write.lock().await;
    if !state.store.delete_geofence(&id).await? {
        return Err(ApiError::NotFound(format!("no geofence {id}")));
    }
    book.api.write().retain(|a| a.fence.id != id);
    book.publish();
    Ok(StatusCode::NO_CONTENT.into_response())
}
