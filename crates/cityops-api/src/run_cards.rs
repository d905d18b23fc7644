//! Run cards (责任卡) over HTTP: which inspectors answer first for a street, a community or a cell.
//!
//! The configured card (`[gis.run_cards]`) is read-only here; the shift lead sets entries through the
//! API (`PUT /api/v1/run-cards/{code}`), which are stored, override the configured entry of the same
//! code and survive a restart. Every change goes to the inspector tracker at once, so the next
//! nearest-inspector answer follows it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use cityops_auth::{Permission, Role};
use cityops_gis::RunCard;
use cityops_ingest::inspectors::InspectorTracker;
use cityops_store::Store;
use cityops_store::run_cards::RunCardRow;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Authenticated;
use crate::{ApiError, AppState};

/// The configured entries and the stored ones, merged into the tracker's live card on every change.
pub struct RunCardBook {
    config: BTreeMap<String, Vec<String>>,
    /// Entries set through the API, by code; the lock also orders store writes.
    api: tokio::sync::Mutex<BTreeMap<String, RunCardRow>>,
    inspectors: Arc<InspectorTracker>,
}

impl RunCardBook {
    /// The configured entries (checked: grid codes, non-empty teams) and the stored ones; the tracker
    /// gets the merged card.
    pub async fn load(
        store: &Store,
        config: BTreeMap<String, Vec<String>>,
        inspectors: Arc<InspectorTracker>,
    ) -> anyhow::Result<Arc<Self>> {
        RunCard::try_from(config.clone())?;
        let api = store
            .run_card_rows()
            .await?
            .into_iter()
            .map(|row| (row.code.clone(), row))
            .collect();
        let book = Arc::new(Self {
            config,
            api: tokio::sync::Mutex::new(api),
            inspectors,
        });
        let api = book.api.lock().await;
        book.publish(&api);
        drop(api);
        Ok(book)
    }

    /// Config entries overlaid by API entries.
    fn merged(&self, api: &BTreeMap<String, RunCardRow>) -> RunCard {
        let mut card = RunCard::new();
        let entries = self
            .config
            .iter()
            .filter(|(code, _)| !api.contains_key(*code));
        let api_entries = api.iter().map(|(code, row)| (code, &row.team));
        for (code, team) in entries.chain(api_entries) {
            if let Err(e) = card.insert(code, team.clone()) {
                // Both sources are checked before they get here.
                tracing::error!(error = %e, "run card entry skipped");
            }
        }
        card
    }

    fn publish(&self, api: &BTreeMap<String, RunCardRow>) {
        self.inspectors.set_run_card(self.merged(api));
    }

    /// Every effective entry, by code.
    async fn list(&self) -> Vec<Value> {
        let api = self.api.lock().await;
        let mut codes: Vec<&String> = self.config.keys().chain(api.keys()).collect();
        codes.sort();
        codes.dedup();
        codes
            .into_iter()
            .map(|code| match api.get(code) {
                Some(row) => entry_json(row, self.config.get(code)),
                None => json!({
                    "code": code,
                    "level": level(code),
                    "team": self.config[code],
                    "source": "config",
                }),
            })
            .collect()
    }
}

fn entry_json(row: &RunCardRow, config_team: Option<&Vec<String>>) -> Value {
    json!({
        "code": row.code,
        "level": level(&row.code),
        "team": row.team,
        "source": "api",
        "overrides_config": config_team,
        "updated_at": row.updated_at,
        "updated_by": row.updated_by,
    })
}

/// `district`, `street`, `community` or `cell` by the code's length.
fn level(code: &str) -> &'static str {
    match code.len() {
        6 => "district",
        9 => "street",
        12 => "community",
        _ => "cell",
    }
}

/// 422 unless `code` is a grid code (6, 9, 12 or 15 digits) and, with a grid configured, one of its
/// district, streets, communities or cells.
fn check_code(state: &AppState, code: &str) -> Result<(), ApiError> {
    if ![6, 9, 12, 15].contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::Invalid(format!(
            "run card code {code:?}: expected a grid code of 6 (district), 9 (street), 12 (community) \
             or 15 (cell) digits"
        )));
    }
    if let Some(layers) = &state.grid {
        let grid = &layers.grid;
        let known = match code.len() {
            6 => grid.district_code == code,
            9 => grid.streets.iter().any(|s| s.code.to_string() == code),
            12 => grid.communities.iter().any(|c| c.code.to_string() == code),
            _ => grid.cells.iter().any(|c| c.code.to_string() == code),
        };
        if !known {
            return Err(ApiError::Invalid(format!(
                "run card code {code}: no such {} in the grid of {} ({})",
                level(code),
                grid.district_name,
                grid.district_code
            )));
        }
    }
    Ok(())
}

/// `GET /api/v1/run-cards`: every effective entry with its source (`config` or `api`); an API entry
/// that overrides a configured one shows the configured team in `overrides_config`.
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Response, ApiError> {
    auth.require(Permission::RunCardsRead)?;
    Ok(Json(json!({ "items": state.run_cards.list().await })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutBody {
    team: Vec<String>,
}

/// `PUT /api/v1/run-cards/{code}` `{"team": ["inspector1", …]}`: sets the team of a grid code.
pub(crate) async fn put(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(code): Path<String>,
    body: Result<Json<PutBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::RunCardsManage)?;
    check_code(&state, &code)?;
    let Json(body) = body.map_err(|e| ApiError::Invalid(format!("run card: {}", e.body_text())))?;
    if body.team.is_empty() {
        return Err(ApiError::Invalid(format!(
            "run card {code}: the team names no inspector; DELETE the entry to remove it"
        )));
    }
    let mut problems = Vec::new();
    for (i, name) in body.team.iter().enumerate() {
        if body.team[..i].contains(name) {
            problems.push(format!("{name:?} is named twice"));
            continue;
        }
        match state.store.user_by_name(name).await? {
            None => problems.push(format!("{name:?} is not a user")),
            Some(user) if user.role != Role::Inspector => problems.push(format!(
                "{name:?} has the role {}, not inspector",
                user.role.as_str()
            )),
            Some(user) if user.disabled => problems.push(format!("{name:?} is disabled")),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid(format!(
            "run card {code}: {}",
            problems.join("; ")
        )));
    }
    let row = RunCardRow {
        code: code.clone(),
        team: body.team,
        updated_at: Utc::now().timestamp_millis(),
        updated_by: auth.0.username.clone(),
    };
    let book = &state.run_cards;
    let mut api = book.api.lock().await;
    state.store.put_run_card(&row).await?;
    api.insert(code.clone(), row.clone());
    book.publish(&api);
    Ok(Json(entry_json(&row, book.config.get(&code))).into_response())
}

/// `DELETE /api/v1/run-cards/{code}`: removes an entry set through the API (a configured entry of the
/// same code applies again). A configured entry cannot be removed here (409).
pub(crate) async fn delete(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(Permission::RunCardsManage)?;
    let book = &state.run_cards;
    let mut api = book.api.lock().await;
    if !api.contains_key(&code) {
        return Err(if book.config.contains_key(&code) {
            ApiError::Conflict(format!(
                "the run card entry of {code} comes from the configuration (gis.run_cards) and is \
                 read-only here; change the configuration, or PUT a team to override it"
            ))
        } else {
            ApiError::NotFound(format!("no run card entry for {code}"))
        });
    }
    state.store.delete_run_card(&code).await?;
    api.remove(&code);
    book.publish(&api);
    Ok(StatusCode::NO_CONTENT.into_response())
}
