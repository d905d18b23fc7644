//! Sensor evidence on cases: a device's repeated incident or its return to normal is recorded on the
//! case it already has open, as an audit record and an outbox event, without changing the case's state.

use chrono::{DateTime, Utc};
use cityops_core::DeviceId;
use serde_json::{Value, json};

use super::{Case, CaseId, CaseStoreError, audit, load, load_for_change, outbox};
use crate::Store;

/// What the sensor said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorEvidence {
    /// The device crossed its rule again while the case is open.
    Repeated,
    /// The device is back to normal: evidence for the inspector's check.
    Cleared,
}

impl SensorEvidence {
    fn action(self) -> &'static str {
        match self {
            SensorEvidence::Repeated => "sensor_repeated",
            SensorEvidence::Cleared => "sensor_cleared",
        }
    }
}

impl Store {
    /// The most recent case of this device that is not finished (closed, evaluated, declined, voided).
    pub async fn open_case_for_device(
        &self,
        device: &DeviceId,
    ) -> Result<Option<Case>, CaseStoreError> {
        let id: Option<CaseId> = sqlx::query_scalar(
            "SELECT id FROM cases WHERE device_id = $1 AND state NOT IN ('closed', 'evaluated', 'declined', 'voided') \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(device.as_str())
        .fetch_optional(self.pool())
        .await?;
        match id {
            Some(id) => Ok(Some(self.case(id).await?)),
            None => Ok(None),
        }
    }

    /// Whether a case was already filed for this incident.
    pub async fn case_for_incident(
        &self,
        incident_id: i64,
    ) -> Result<Option<CaseId>, CaseStoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM cases WHERE incident_id = $1 LIMIT 1")
                .bind(incident_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Records sensor evidence on a case: one audit record (state unchanged) and one outbox event
    /// `case.sensor_evidence`, in one transaction.
    pub async fn record_sensor_evidence(
        &self,
        case_id: CaseId,
        device: &DeviceId,
        evidence: SensorEvidence,
        incident: &Value,
        at: DateTime<Utc>,
    ) -> Result<Case, CaseStoreError> {
        let at_ms = at.timestamp_millis();
        let mut tx = self.change_tx().await?;
        let result: Result<Case, CaseStoreError> = async {
        let (case, head, _) = load_for_change(&mut tx, self.dialect(), case_id, true, false).await?;
        let payload = json!({ "incident": incident, "evidence": evidence.action() });
        let head = audit::append(
            &mut tx,
            self.dialect(),
            &head,
            &audit::Entry {
                case_id,
                at: at_ms,
                actor: device.as_str(),
                role: None,
                action: evidence.action(),
                from: Some(case.state),
                to: case.state,
                note: None,
                evidence: &[],
                payload: &payload,
            },
        )
        .await?;
        let seq = head.seq;
        sqlx::query(
            "UPDATE cases SET version = version + 1, updated_at = $1, audit_seq = $2, audit_hash = $3 \
             WHERE id = $4",
        )
        .bind(at_ms)
        .bind(head.seq)
        .bind(&head.hash)
        .bind(case_id)
        .execute(&mut *tx)
        .await?;
        outbox::insert(
            &mut tx,
            self.dialect(),
            &outbox::NewOutboxEvent {
                event_type: "case.sensor_evidence".into(),
                case_id: Some(case_id),
                payload: json!({
                    "case_id": case_id,
                    "number": case.number,
                    "device_id": device.as_str(),
                    "evidence": evidence.action(),
                    "incident": incident,
                    "audit_seq": seq,
                    "at": at_ms,
                }),
            },
            at_ms,
        )
        .await?;
        load(&mut tx, case_id).await
        }
        .await;
        tx.finish(result, |e| {
            anyhow::anyhow!("Failed to commit sensor evidence on case {case_id}: {e}").into()
        })
        .await
    }
}
