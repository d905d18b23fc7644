//! Sensor incidents become cases: each `incident.opened` files a case (queued for an operator, or
//! registered at once for emergencies, per rule); a device that crosses its rule again while its case is
//! open adds evidence to that case instead of a new one; a device back to normal is recorded on its case
//! as evidence for the inspector's check.
//!
//! The filer follows the bus and, at start, catches up from the store (open incidents without a case),
//! so an incident published while the filer was down or lagging still gets its case.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use chrono::Utc;
use cityops_bus::{Bus, Filter, Recv};
use cityops_core::case::{CaseState, Source};
use cityops_core::sla::{SlaStage, StageClock, WorkCalendar};
use cityops_core::{Catalogue, EventData, Incident, IncidentState};
use cityops_ingest::rules::CaseFiling;
use cityops_store::cases::{NewCase, SensorEvidence, SlaPolicy};
use cityops_store::{IncidentQuery, Store};
use tokio::sync::Notify;

/// Everything the filer needs.
pub struct CaseFiler {
    pub store: Store,
    pub bus: Bus,
    pub catalogue: Arc<Catalogue>,
    pub calendar: Arc<WorkCalendar>,
    pub warning_share: f64,
    /// Filing mode per rule id.
    pub filing: HashMap<String, CaseFiling>,
    pub outbox_nudge: Arc<Notify>,
}

impl CaseFiler {
    /// Runs until the bus closes.
    pub async fn run(self) {
        let mut sub = self
            .bus
            .subscribe(Filter::types(["incident.opened", "incident.cleared"]).unwrap_or_default());
        if let Err(e) = self.catch_up().await {
            tracing::error!(
                error = format!("{e:#}"),
                "case filer could not catch up from the store"
            );
        }
        loop {
            match sub.recv().await {
                Recv::Event(event) => {
                    let result = match &event.event.data {
                        EventData::IncidentOpened(incident) => self.opened(incident).await,
                        EventData::IncidentCleared(cleared) => {
                            self.cleared(
                                &cleared.device_id,
                                serde_json::to_value(cleared).unwrap_or_default(),
                            )
                            .await
                        }
                        _ => Ok(()),
                    };
                    if let Err(e) = result {
                        tracing::error!(
                            error = format!("{e:#}"),
                            seq = event.seq(),
                            "case filer failed on an incident"
                        );
                    }
                }
                Recv::Lagged { missed, .. } => {
                    tracing::warn!(
                        missed,
                        "case filer fell behind the bus; catching up from the store"
                    );
                    if let Err(e) = self.catch_up().await {
                        tracing::error!(
                            error = format!("{e:#}"),
                            "case filer could not catch up from the store"
                        );
                    }
                }
                Recv::Closed => break,
            }
        }
    }

    /// Files cases for open incidents that have none (after a restart or a lag).
    async fn catch_up(&self) -> anyhow::Result<()> {
        let mut cursor = None;
        loop {
            let page = self
                .store
                .incidents(&IncidentQuery {
                    state: Some(IncidentState::Open),
                    before_id: cursor,
                    limit: 500,
                    ..Default::default()
                })
                .await?;
            for incident in &page.items {
                if self.store.case_for_incident(incident.id).await?.is_none() {
                    self.opened(incident).await?;
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }

    async fn opened(&self, incident: &Incident) -> anyhow::Result<()> {
        let filing = self
            .filing
            .get(&incident.rule_id)
            .copied()
            .unwrap_or_default();
        if filing == CaseFiling::None || self.store.case_for_incident(incident.id).await?.is_some()
        {
            return Ok(());
        }
        let now = Utc::now();
        let incident_json = serde_json::to_value(incident)?;
        if let Some(case) = self.store.open_case_for_device(&incident.device_id).await? {
            self.store
                .record_sensor_evidence(
                    case.id,
                    &incident.device_id,
                    SensorEvidence::Repeated,
                    &incident_json,
                    now,
                )
                .await?;
            self.outbox_nudge.notify_one();
            return Ok(());
        }
        let category = self.catalogue.get(&incident.category_code)?;
        let (initial, stage) = match filing {
            CaseFiling::Register => (CaseState::Registered, SlaStage::Dispatch),
            _ => (CaseState::Reported, SlaStage::Acceptance),
        };
        let clock = NonZeroU32::new(category.limits.for_stage(stage))
            .map(|limit| StageClock::start(stage, category.clock, now, limit));
        let description = format!(
            "{} {}：{} {}{}（{}）",
            incident.kind,
            incident.device_id,
            incident.measurement,
            serde_json::to_string(&incident.value).unwrap_or_default(),
            incident.unit.as_deref().unwrap_or(""),
            incident.condition
        );
        let new_case = NewCase {
            category: category.code.clone(),
            source: Source::Sensor,
            title: format!("{}（{}）", category.name_zh, incident.device_id),
            description,
            address: String::new(),
            lon: incident.lon,
            lat: incident.lat,
            grid: incident.grid.clone(),
            reporter: incident.device_id.to_string(),
            reporter_role: None,
            verification_required: false,
            incident_id: Some(incident.id),
            device_id: Some(incident.device_id.clone()),
            initial,
            clock,
        };
        let policy = SlaPolicy {
            calendar: &self.calendar,
            warning_share: self.warning_share,
        };
        let case = self.store.create_case(&new_case, &policy, now).await?;
        tracing::info!(case = %case.number, incident = incident.id, device = %incident.device_id, state = %case.state, "case filed from a sensor incident");
        self.outbox_nudge.notify_one();
        Ok(())
    }

    async fn cleared(
        &self,
        device: &cityops_core::DeviceId,
        cleared: serde_json::Value,
    ) -> anyhow::Result<()> {
        if let Some(case) = self.store.open_case_for_device(device).await? {
            self.store
                .record_sensor_evidence(
                    case.id,
                    device,
                    SensorEvidence::Cleared,
                    &cleared,
                    Utc::now(),
                )
                .await?;
            self.outbox_nudge.notify_one();
        }
        Ok(())
    }
}
