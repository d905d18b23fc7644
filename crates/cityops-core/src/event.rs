//! Events on the central bus: a closed enum, sequence-numbered by the bus, serialised once per event.
//!
//! The wire form (websocket frames, the stored event log) is
//! `{"seq": n, "type": "...", "time": "<RFC 3339>", "data": {...}}`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    device::{Device, DeviceId, DeviceKind},
    incident::{Incident, IncidentCleared},
    reading::Reading,
};

/// Everything that can happen on the bus. New subsystems add variants here, never callbacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EventData {
    #[serde(rename = "incident.opened")]
    IncidentOpened(Box<Incident>),
    #[serde(rename = "incident.cleared")]
    IncidentCleared(IncidentCleared),
    #[serde(rename = "device.registered")]
    DeviceRegistered(Device),
    /// A sampled reading: at most one per device per sampling interval, so dashboards stay live
    /// without the bus carrying every message.
    #[serde(rename = "reading")]
    Reading(ReadingSample),
}

/// Payload of a sampled `reading` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadingSample {
    pub device_id: DeviceId,
    pub kind: DeviceKind,
    pub lon: f64,
    pub lat: f64,
    pub readings: Vec<Reading>,
}

/// The names of the event types, for filters and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    IncidentOpened,
    IncidentCleared,
    DeviceRegistered,
    Reading,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::IncidentOpened,
        EventType::IncidentCleared,
        EventType::DeviceRegistered,
        EventType::Reading,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::IncidentOpened => "incident.opened",
            EventType::IncidentCleared => "incident.cleared",
            EventType::DeviceRegistered => "device.registered",
            EventType::Reading => "reading",
        }
    }
}

impl EventData {
    pub fn event_type(&self) -> EventType {
        match self {
            EventData::IncidentOpened(_) => EventType::IncidentOpened,
            EventData::IncidentCleared(_) => EventType::IncidentCleared,
            EventData::DeviceRegistered(_) => EventType::DeviceRegistered,
            EventData::Reading(_) => EventType::Reading,
        }
    }
}

/// An event as the bus numbered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusEvent {
    pub seq: u64,
    #[serde(flatten)]
    pub data: EventData,
    pub time: DateTime<Utc>,
}

impl BusEvent {
    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }

    /// The JSON text frame sent to websocket clients and stored in the event log.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs to a string cannot fail (no maps with non-string keys).
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;

    #[test]
    fn wire_form_has_seq_type_time_data() {
        let event = BusEvent {
            seq: 7,
            data: EventData::DeviceRegistered(Device {
                id: DeviceId::new("mc-1").unwrap(),
                kind: DeviceKind::new("manhole_cover").unwrap(),
                lon: 116.4,
                lat: 39.9,
            }),
            time: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
        };
        let v: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(v["seq"], 7);
        assert_eq!(v["type"], "device.registered");
        assert_eq!(v["time"], "2023-11-14T22:13:20Z");
        assert_eq!(v["data"]["id"], "mc-1");
        let back: BusEvent = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(back, event);
    }
}
