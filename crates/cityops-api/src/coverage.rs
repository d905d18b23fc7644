//! Patrol supervision: `GET /api/v1/coverage?day=YYYY-MM-DD` answers how much of each street and
//! community the inspectors covered that day (visited unit cells / all cells, from the stored accepted
//! fixes, with short gaps between fixes interpolated) and how often each key project was visited against
//! its required frequency.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use cityops_auth::Permission;
use cityops_gis::coverage::{
    CoverageOptions, TimeWindow, behind_schedule, coverage_on_day, fence_visits,
};
use cityops_gis::geofence::FenceTrackerConfig;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Authenticated;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CoverageParams {
    /// Local day (the calendar's UTC offset); today when absent.
    day: Option<NaiveDate>,
}

pub(crate) async fn coverage(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<CoverageParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::EvaluationRead)?;
    let Query(params) = params.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let layers = state
        .grid
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("no unit grid is configured (gis.grid)".into()))?;
    let offset = state.calendar.utc_offset();
    let day = params
        .day
        .unwrap_or_else(|| Utc::now().with_timezone(&offset).date_naive());
    let window = TimeWindow::local_day(day, offset);
    // A little before the day too, so a walk that started before midnight interpolates into it.
    let fixes =
        cityops_ingest::inspectors::stored_fixes(&state.store, window.start - 60_000, window.end)
            .await?;
    let options = CoverageOptions {
        utc_offset: offset,
        ..Default::default()
    };
    let covered = coverage_on_day(&fixes, &layers.index, day, &options);
    let share = |s: &cityops_gis::Share| json!({ "visited": s.visited, "total": s.total, "share": (s.ratio() * 1000.0).round() / 1000.0 });
    let streets: Vec<_> = covered
        .streets
        .iter()
        .map(|(code, s)| json!({ "code": code.to_string(), "cells": share(s) }))
        .collect();
    let communities: Vec<_> = covered
        .communities
        .iter()
        .map(|(code, s)| json!({ "code": code.to_string(), "cells": share(s) }))
        .collect();
    let visits = fence_visits(
        &fixes,
        &state.geofences.all(),
        &FenceTrackerConfig::default(),
        day,
        offset,
    );
    let behind = behind_schedule(&visits);
    Ok(Json(json!({
        "day": day,
        "fixes": fixes.len(),
        "streets": streets,
        "communities": communities,
        "key_projects": visits,
        "behind_schedule": behind,
    }))
    .into_response())
}
