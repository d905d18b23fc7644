//! REST handlers: devices and incidents.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use cityops_core::{Device, DeviceId, IncidentId, IncidentState};
use cityops_ingest::RegisterError;
use cityops_store::{DeviceSource, IncidentQuery, Registered};
use serde::Deserialize;

use crate::auth::Authenticated;
use crate::{ApiError, AppState};
use cityops_auth::Permission;

pub(crate) async fn list_devices(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Response, ApiError> {
    auth.require(Permission::DevicesRead)?;
    let records = state.store.device_records().await?;
    Ok(Json(serde_json::json!({ "items": records })).into_response())
}

/// `POST /api/v1/devices` with `{"id","kind","lon","lat"}`: 201 when created, 200 when the same device
/// is already registered, 409 when the id exists with a different kind or place, 422 on invalid input.
pub(crate) async fn register_device(
    State(state): State<AppState>,
    auth: Authenticated,
    body: Result<Json<Device>, JsonRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::DevicesRegister)?;
    let Json(device) = body.map_err(|e| ApiError::Invalid(format!("device: {}", e.body_text())))?;
    let outcome = state
        .registry
        .register(device.clone(), DeviceSource::Api)
        .await
        .map_err(|e| match e {
            RegisterError::Invalid(message) => ApiError::Invalid(message),
            RegisterError::Store(e) => e.into(),
            RegisterError::ShuttingDown => ApiError::Unavailable("shutting down".into()),
        })?;
    let status = match outcome {
        Registered::Created | Registered::Updated => StatusCode::CREATED,
        Registered::Unchanged => StatusCode::OK,
    };
    Ok((status, Json(device)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IncidentParams {
    device: Option<String>,
    state: Option<String>,
    /// Opened at or after: RFC 3339 or Unix milliseconds.
    from: Option<String>,
    /// Opened before: RFC 3339 or Unix milliseconds.
    to: Option<String>,
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<IncidentId>,
    /// A cell, community or street code (15, 12 or 9 digits): incidents inside it.
    grid: Option<String>,
}

pub(crate) async fn list_incidents(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<IncidentParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::IncidentsRead)?;
    let Query(params) = params.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let query = IncidentQuery {
        device: params
            .device
            .map(|d| DeviceId::new(&d).map_err(|e| ApiError::Invalid(format!("device {d:?}: {e}"))))
            .transpose()?,
        state: params
            .state
            .map(|s| {
                IncidentState::parse(&s).ok_or_else(|| {
                    ApiError::Invalid(format!("state {s:?}: expected open or cleared"))
                })
            })
            .transpose()?,
        from: params
            .from
            .as_deref()
            .map(|t| parse_time("from", t))
            .transpose()?,
        to: params
            .to
            .as_deref()
            .map(|t| parse_time("to", t))
            .transpose()?,
        before_id: params.cursor,
        grid: params
            .grid
            .map(|g| {
                if matches!(g.len(), 9 | 12 | 15) && g.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(g)
                } else {
                    Err(ApiError::Invalid(format!("grid {g:?}: expected a 9-digit street, 12-digit community or 15-digit cell code")))
                }
            })
            .transpose()?,
        limit: match params.limit {
            None => 50,
            Some(n @ 1..=1000) => n,
            Some(n) => return Err(ApiError::Invalid(format!("limit {n}: expected 1 to 1000"))),
        },
    };
    // Read the bus position first: a client that subscribes with `since=last_seq` then misses nothing
    // (an event in both the page and the replay is told apart by its incident id).
    let last_seq = state.bus.last_seq();
    let page = state.store.incidents(&query).await?;
    Ok(Json(serde_json::json!({ "items": page.items, "next_cursor": page.next_cursor, "last_seq": last_seq })).into_response())
}

/// `GET /api/v1/categories`: the catalogue (code, zh/en names, department, clock, stage limits).
pub(crate) async fn list_categories(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    let items: Vec<_> = state.catalogue.iter().collect();
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

pub(crate) async fn get_incident(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(Permission::IncidentsRead)?;
    let id: IncidentId = id
        .parse()
        .map_err(|_| ApiError::Invalid(format!("incident id {id:?} is not a number")))?;
    match state.store.incident(id).await? {
        Some(incident) => Ok(Json(incident).into_response()),
        None => Err(ApiError::NotFound(format!("no incident {id}"))),
    }
}

fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| ApiError::Invalid(format!("{name} {value:?}: expected RFC 3339 (2026-11-28T08:00:00+08:00) or Unix milliseconds")))
}
