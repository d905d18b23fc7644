//! The outbox: events committed in the same transaction as the change that caused them, waiting for
//! the relay to put them on the bus (the protocol is in the [module docs](super)).

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use cityops_core::UnixMillis;
use cityops_core::case::ActionKind;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};

use crate::Dialect;
use crate::db::SqlBuilder;

use super::{CaseId, CaseStoreError};
use crate::Store;

/// A new case was filed.
pub const CASE_CREATED: &str = "case.created";
/// A stage clock reached its early-warning share.
pub const CASE_SLA_WARNING: &str = "case.sla_warning";
/// A stage clock ran past its deadline.
pub const CASE_SLA_OVERDUE: &str = "case.sla_overdue";

/// The event a workflow action emits: `case.` and what happened to the case.
pub fn event_type_for(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Accept => "case.accepted",
        ActionKind::RequestVerification => "case.verification_requested",
        ActionKind::ReportVerification => "case.verified",
        ActionKind::Register => "case.registered",
        ActionKind::Decline => "case.declined",
        ActionKind::RequestVoid => "case.void_requested",
        ActionKind::ApproveVoid => "case.voided",
        ActionKind::RejectVoid => "case.void_rejected",
        ActionKind::Dispatch => "case.dispatched",
        ActionKind::Return => "case.returned",
        ActionKind::RequestExtension => "case.extension_requested",
        ActionKind::ApproveExtension => "case.extended",
        ActionKind::RejectExtension => "case.extension_rejected",
        ActionKind::RequestSuspension => "case.suspension_requested",
        ActionKind::ApproveSuspension => "case.suspended",
        ActionKind::RejectSuspension => "case.suspension_rejected",
        ActionKind::Resume => "case.resumed",
        ActionKind::Handle => "case.handled",
        ActionKind::CheckPass => "case.checked",
        ActionKind::CheckFail => "case.check_failed",
        ActionKind::Close => "case.closed",
        ActionKind::Callback => "case.evaluated",
        ActionKind::Reopen => "case.reopened",
    }
}

/// An event to commit with a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOutboxEvent {
    pub event_type: String,
    pub case_id: Option<CaseId>,
    pub payload: Value,
}

/// An event in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// Never reused: the key a consumer deduplicates on.
    pub id: i64,
    pub created_at: UnixMillis,
    pub event_type: String,
    pub case_id: Option<CaseId>,
    pub payload: Value,
    pub published_at: Option<UnixMillis>,
}

impl OutboxEvent {
    /// What the relay publishes: `{"outbox_id", "type", "time", "data"}`, the outbox id travelling with
    /// the event so every consumer can skip one it already has.
    pub fn envelope(&self) -> Value {
        json!({
            "outbox_id": self.id,
            "type": self.event_type,
            "time": self.created_at,
            "data": self.payload,
        })
    }
}

/// `INSERT INTO outbox …` for `event`: its values, or once per row of `from` (see
/// [`SqlBuilder::push_row`]).
pub(super) fn push_insert(
    b: &mut SqlBuilder<'_>,
    event: &NewOutboxEvent,
    at: UnixMillis,
    from: Option<&str>,
) -> anyhow::Result<()> {
    let payload = serde_json::to_string(&event.payload).context("event payload")?;
    b.push("INSERT INTO outbox (created_at, event_type, case_id, payload) ");
    b.push_row(from, |row| {
        row.push_bind(at)
            .push_bind(event.event_type.clone())
            .push_bind(event.case_id)
            .push_bind(payload.clone());
    });
    Ok(())
}

/// Adds an event inside the caller's transaction; returns its id.
pub(super) async fn insert(
    conn: &mut AnyConnection,
    dialect: Dialect,
    event: &NewOutboxEvent,
    at: UnixMillis,
) -> Result<i64, CaseStoreError> {
    let mut b = SqlBuilder::new(dialect, "");
    push_insert(&mut b, event, at, None)?;
    b.push(" RETURNING id");
    let id = b
        .build_scalar()?
        .fetch_one(&mut *conn)
        .await
        .with_context(|| format!("Failed to add a {} event to the outbox", event.event_type))?;
    Ok(id)
}

impl Store {
    /// Up to `limit` events not yet published, oldest first.
    pub async fn pending_outbox(&self, limit: u32) -> Result<Vec<OutboxEvent>, CaseStoreError> {
        let rows = sqlx::query(
            "SELECT id, created_at, event_type, case_id, payload, published_at FROM outbox \
             WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                let payload: String = row.try_get("payload")?;
                Ok(OutboxEvent {
                    id,
                    created_at: row.try_get("created_at")?,
                    event_type: row.try_get("event_type")?,
                    case_id: row.try_get("case_id")?,
                    payload: serde_json::from_str(&payload)
                        .with_context(|| format!("outbox event {id}: payload"))?,
                    published_at: row.try_get("published_at")?,
                })
            })
            .collect::<anyhow::Result<_>>()
            .map_err(CaseStoreError::from)
    }

    /// Marks events as published (once the bus holds them durably); returns how many were still
    /// pending. Marking again is harmless.
    pub async fn mark_published(
        &self,
        ids: &[i64],
        at: DateTime<Utc>,
    ) -> Result<u64, CaseStoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut marked = 0;
        let mut tx = self.write_tx().await?;
        // Chunks keep each statement far below the database's parameter limit.
        for chunk in crate::db::statement_chunks(ids, 500) {
            let mut qb = SqlBuilder::new(self.dialect, "UPDATE outbox SET published_at = ");
            qb.push_bind(at.timestamp_millis())
                .push(" WHERE published_at IS NULL AND id IN (")
                .push_list(chunk.iter().copied())
                .push(")");
            marked += qb.build()?.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit()
            .await
            .context("Failed to mark outbox events as published")?;
        Ok(marked)
    }
}
