//! Incidents: a device that crossed one of its rules, open until the value returns to normal.

use serde::{Deserialize, Serialize};

use crate::{
    UnixMillis,
    device::{DeviceId, DeviceKind},
    reading::Value,
};

/// Incident ids are positive integers, unique in one store.
pub type IncidentId = i64;

/// An incident is open while its device stays abnormal and cleared once it returns to normal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Open,
    Cleared,
}

impl IncidentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Cleared => "cleared",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(IncidentState::Open),
            "cleared" => Some(IncidentState::Cleared),
            _ => None,
        }
    }
}

/// A reading kept as evidence on an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceReading {
    pub name: String,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unit: Option<String>,
    /// Measurement time (the device's, or arrival time when it sent none), Unix ms.
    pub time: UnixMillis,
}

/// One incident, as stored, listed by the API and carried by `incident.opened`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    pub device_id: DeviceId,
    pub kind: DeviceKind,
    pub rule_id: String,
    pub category_code: String,
    pub category_name_zh: String,
    pub category_name_en: String,
    /// Name of the measurement the rule watches (`tilt`, `level`, …).
    pub measurement: String,
    /// The value that crossed the rule.
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unit: Option<String>,
    /// Human-readable condition, e.g. `tilt > 15`.
    pub condition: String,
    pub lon: f64,
    pub lat: f64,
    /// The unit cell of the device (absent when no grid is configured).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub grid: Option<crate::geo::GridPlace>,
    pub state: IncidentState,
    pub opened_at: UnixMillis,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cleared_at: Option<UnixMillis>,
    /// The normal value that cleared it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub clear_value: Option<Value>,
    /// The readings that triggered it (for a rule with a minimum duration, the first and the last abnormal one).
    pub evidence: Vec<EvidenceReading>,
}

/// Payload of `incident.cleared`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentCleared {
    pub id: IncidentId,
    pub device_id: DeviceId,
    pub kind: DeviceKind,
    pub rule_id: String,
    pub category_code: String,
    pub value: Value,
    pub cleared_at: UnixMillis,
    pub lon: f64,
    pub lat: f64,
}
