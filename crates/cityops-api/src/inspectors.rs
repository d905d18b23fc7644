//! Field inspectors over HTTP: the phone page posts its position and status; command-centre users see
//! the board and ask for the nearest free inspectors of a case (available, fresh position, by
//! great-circle distance).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use cityops_auth::{Permission, Role};
use cityops_core::{GeoPoint, GridPlace};
use cityops_gis::InspectorStatus;
use cityops_ingest::inspectors::LocationBody;
use serde::Deserialize;

use crate::auth::Authenticated;
use crate::{ApiError, AppState};

fn inspector_only(auth: &Authenticated) -> Result<&str, ApiError> {
    if auth.0.role != Role::Inspector {
        return Err(ApiError::Forbidden(format!(
            "only inspectors report a position or status, not {}",
            auth.0.role.as_str()
        )));
    }
    Ok(&auth.0.username)
}

/// `POST /api/v1/inspectors/me/location` `{"lon","lat","time"?,"accuracy"?}`: 200 with whether the
/// fix was applied, and why not (an impossible jump or an out-of-order fix is counted, not applied).
pub(crate) async fn location(
    State(state): State<AppState>,
    auth: Authenticated,
    body: Result<Json<LocationBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let inspector = inspector_only(&auth)?;
    let Json(body) = body.map_err(|e| ApiError::Invalid(format!("location: {}", e.body_text())))?;
    let result = state
        .inspectors
        .fix(inspector, &body, Utc::now().timestamp_millis());
    Ok(Json(match result {
        Ok(()) => serde_json::json!({ "accepted": true }),
        Err(rejection) => serde_json::json!({ "accepted": false, "rejection": rejection }),
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusBody {
    status: InspectorStatus,
}

/// `PUT /api/v1/inspectors/me/status` `{"status":"available"}` (available, en_route, on_scene, returning, off_duty).
pub(crate) async fn status(
    State(state): State<AppState>,
    auth: Authenticated,
    body: Result<Json<StatusBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let inspector = inspector_only(&auth)?;
    let Json(body) = body.map_err(|e| ApiError::Invalid(format!("status: {}", e.body_text())))?;
    state.inspectors.set_status(inspector, body.status);
    Ok(Json(serde_json::json!({ "inspector": inspector, "status": body.status })).into_response())
}

/// `GET /api/v1/inspectors`: every inspector seen, with status and last accepted position.
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    Ok(Json(serde_json::json!({ "items": state.inspectors.list() })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NearestParams {
    n: Option<usize>,
}

/// `GET /api/v1/cases/{id}/nearest-inspectors?n=5`: candidates for dispatch, nearest first, with distances.
pub(crate) async fn nearest(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    params: Result<Query<NearestParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    let Query(params) = params.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let n = match params.n {
        None => 5,
        Some(n @ 1..=50) => n,
        Some(n) => return Err(ApiError::Invalid(format!("n {n}: expected 1 to 50"))),
    };
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::Invalid(format!("case id {id:?} is not a number")))?;
    let case = state.store.case(id).await?;
    let place = case.grid.clone().unwrap_or(GridPlace::Outside);
    let candidates = state.inspectors.nearest(
        GeoPoint {
            lon: case.lon,
            lat: case.lat,
        },
        &place,
        n,
        Utc::now().timestamp_millis(),
    );
    Ok(Json(serde_json::json!({ "case_id": id, "items": candidates })).into_response())
}
