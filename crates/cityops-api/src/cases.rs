//! The case workflow over HTTP: report a case, list and read cases with their timeline and clocks, act
//! on a case (`POST /api/v1/cases/{id}/actions` with an action of the GB/T 30428 workflow), and read
//! the hash-chained audit trail with its verdict.
//!
//! Each action is decided by the pure machine (`cityops_core::case::transition`) with the caller's role
//! and department from the token, then recorded by the store in one transaction with its audit record
//! and outbox event. 409 names the current state and the allowed actions, 403 a role that may not act,
//! 422 invalid input; none of them changes anything.

use std::num::NonZeroU32;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use cityops_auth::Permission;
use cityops_core::case::{Action, CaseState, Source, TransitionError, transition};
use cityops_core::sla::{ClockEffect, SlaStage, StageClock};
use cityops_core::{Category, GeoPoint};
use cityops_store::cases::{
    CaseChange, CaseCursor, CaseQuery, CaseSort, CaseStoreError, ClockChanges, NewCase, SlaPolicy,
};
use serde::Deserialize;

use crate::auth::Authenticated;
use crate::{ApiError, AppState};

impl From<CaseStoreError> for ApiError {
    fn from(e: CaseStoreError) -> Self {
        match e {
            CaseStoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            CaseStoreError::Conflict { .. } => ApiError::Conflict(e.to_string()),
            CaseStoreError::Invalid(message) => ApiError::Invalid(message),
            CaseStoreError::Unexpected(e) => ApiError::Unexpected(e),
        }
    }
}

fn transition_error(e: TransitionError) -> ApiError {
    match e.http_status() {
        409 => ApiError::Conflict(e.to_string()),
        403 => ApiError::Forbidden(e.to_string()),
        _ => ApiError::Invalid(e.to_string()),
    }
}

fn policy(state: &AppState) -> SlaPolicy<'_> {
    SlaPolicy {
        calendar: &state.calendar,
        warning_share: state.sla_warning_share,
    }
}

/// The clock of `stage` for a case of `category`, started now (its limit from the catalogue).
fn stage_clock(category: &Category, stage: SlaStage, at: DateTime<Utc>) -> Option<StageClock> {
    let limit = NonZeroU32::new(category.limits.for_stage(stage))?;
    Some(StageClock::start(stage, category.clock, at, limit))
}

/// `POST /api/v1/cases`: a report.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Report {
    category: String,
    #[serde(default)]
    title: String,
    description: String,
    #[serde(default)]
    address: String,
    lon: f64,
    lat: f64,
    /// Defaults from the reporter's role: an inspector's patrol report, else a hotline call.
    #[serde(default)]
    source: Option<Source>,
    /// Send an inspector to verify before acceptance (核实).
    #[serde(default)]
    verification_required: bool,
}

pub(crate) async fn report(
    State(state): State<AppState>,
    auth: Authenticated,
    body: Result<Json<Report>, JsonRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesReport)?;
    let Json(report) = body.map_err(|e| ApiError::Invalid(format!("case: {}", e.body_text())))?;
    let category = state
        .catalogue
        .get(&report.category)
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    let point =
        GeoPoint::new(report.lon, report.lat).map_err(|e| ApiError::Invalid(e.to_string()))?;
    if report.description.trim().is_empty() {
        return Err(ApiError::Invalid("description must not be empty".into()));
    }
    let role = auth.0.role;
    let source = report
        .source
        .unwrap_or(if role == cityops_auth::Role::Inspector {
            Source::Inspector
        } else {
            Source::Hotline
        });
    let now = Utc::now();
    let new_case = NewCase {
        category: category.code.clone(),
        source,
        title: report.title,
        description: report.description,
        address: report.address,
        lon: point.lon,
        lat: point.lat,
        grid: state
            .grid
            .as_ref()
            .map(|layers| layers.index.locate_wgs84(point).into()),
        reporter: auth.0.username.clone(),
        reporter_role: Some(role),
        verification_required: report.verification_required,
        incident_id: None,
        device_id: None,
        initial: CaseState::Reported,
        clock: stage_clock(category, SlaStage::Acceptance, now),
    };
    let case = state
        .store
        .create_case(&new_case, &policy(&state), now)
        .await?;
    state.outbox_nudge.notify_one();
    Ok((StatusCode::CREATED, Json(case)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    state: Option<String>,
    category: Option<String>,
    source: Option<String>,
    grid: Option<String>,
    department: Option<String>,
    inspector: Option<String>,
    reporter: Option<String>,
    overdue: Option<bool>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    sort: Option<CaseSort>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/v1/cases` with filters, sorted and paged.
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    let Query(p) = params.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let parse_state = |s: &str| {
        CaseState::parse(s)
            .ok_or_else(|| ApiError::Invalid(format!("state {s:?} is not a case state")))
    };
    let parse_source = |s: &str| {
        Source::parse(s).ok_or_else(|| ApiError::Invalid(format!("source {s:?} is not a source")))
    };
    let query = CaseQuery {
        state: p.state.as_deref().map(parse_state).transpose()?,
        category: p.category,
        source: p.source.as_deref().map(parse_source).transpose()?,
        grid: p.grid,
        department: p.department,
        inspector: p.inspector,
        reporter: p.reporter,
        overdue: p.overdue,
        now: Some(Utc::now()),
        created_from: p.from,
        created_to: p.to,
        sort: p.sort.unwrap_or_default(),
        limit: match p.limit {
            None => 50,
            Some(n @ 1..=500) => n,
            Some(n) => return Err(ApiError::Invalid(format!("limit {n}: expected 1 to 500"))),
        },
        cursor: p
            .cursor
            .map(|c| {
                c.parse::<CaseCursor>().map_err(|_| {
                    ApiError::Invalid(format!("cursor {c:?} is not a cursor of this list"))
                })
            })
            .transpose()?,
    };
    let page = state.store.cases(&query).await?;
    Ok(Json(serde_json::json!({
        "items": page.items,
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
    }))
    .into_response())
}

fn case_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::Invalid(format!("case id {id:?} is not a number")))
}

/// `GET /api/v1/cases/{id}`: the case, its timeline, its clocks and what the caller may do next.
pub(crate) async fn detail(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    let id = case_id(&id)?;
    let case = state.store.case(id).await?;
    let timeline = state.store.timeline(id).await?;
    let clocks = state.store.case_clocks(id).await?;
    let context = case
        .context()
        .acting(Some(&auth.0.username), auth.0.department.as_deref());
    let allowed = cityops_core::case::allowed_actions(case.state, auth.0.role, &context);
    let category = state.catalogue.get(&case.category_code).ok();
    // A case on a component goes to the component's owner (权属单位); otherwise the category's department.
    let routing = crate::components::routing(
        &state.components,
        &case.category_code,
        GeoPoint {
            lon: case.lon,
            lat: case.lat,
        },
    )
    .or_else(|| category.map(|c| serde_json::json!({ "department": c.department })));
    Ok(Json(serde_json::json!({
        "case": case,
        "category": category,
        "routing": routing,
        "timeline": timeline,
        "clocks": clocks,
        "allowed_actions": allowed,
    }))
    .into_response())
}

/// `GET /api/v1/cases/{id}/audit`: the chain and whether it verifies.
pub(crate) async fn audit(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(Permission::AuditRead)?;
    let id = case_id(&id)?;
    state.store.case(id).await?;
    let records = state.store.timeline(id).await?;
    let verdict = state.store.verify_audit(id).await?;
    Ok(Json(serde_json::json!({ "verdict": verdict, "records": records })).into_response())
}

/// The body of `POST /api/v1/cases/{id}/actions`: the action (tagged by `"action"`) and, optionally,
/// the version read (optimistic concurrency) and a note for the timeline.
#[derive(Debug, Deserialize)]
pub(crate) struct ActionRequest {
    #[serde(flatten)]
    action: Action,
    #[serde(default)]
    expected_version: Option<i64>,
    #[serde(default)]
    note: Option<String>,
}

pub(crate) async fn act(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    body: Result<Json<ActionRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = case_id(&id)?;
    let Json(request) =
        body.map_err(|e| ApiError::Invalid(format!("action: {}", e.body_text())))?;
    if let Action::Handle { evidence, .. } = &request.action
        && let Some(missing) = evidence
            .iter()
            .find(|sha256| !crate::photos::exists(&state.photos_dir, sha256))
    {
        return Err(ApiError::Invalid(format!(
            "evidence {missing} is not an uploaded photo; POST it to /api/v1/photos first"
        )));
    }
    let case = state.store.case(id).await?;
    let claims = &auth.0;
    let context = case
        .context()
        .acting(Some(&claims.username), claims.department.as_deref());
    let decided =
        transition(case.state, &request.action, claims.role, &context).map_err(transition_error)?;
    let now = Utc::now();
    let category = state
        .catalogue
        .get(&case.category_code)
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("case {id}: {e}")))?;
    let next = match decided.clock {
        ClockEffect::Start(stage) => stage_clock(category, stage, now),
        _ => None,
    };
    let change = CaseChange {
        case_id: id,
        expected_version: request.expected_version,
        action: &request.action,
        transition: &decided,
        actor: &claims.username,
        role: claims.role,
        note: request.note.as_deref(),
        evidence: &[],
        clocks: ClockChanges {
            policy: policy(&state),
            next,
        },
        at: now,
    };
    let updated = state.store.apply_transition(&change).await?;
    state.outbox_nudge.notify_one();
    Ok(Json(updated).into_response())
}
