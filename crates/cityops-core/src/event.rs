//! Events on the central bus: a closed enum, sequence-numbered by the bus, serialised once per event.
//!
//! The wire form (websocket frames, the stored event log) is
//! `{"seq": n, "type": "...", "time": "<RFC 3339>", "data": {...}}`. Case events (from the case
//! repository's outbox) use their own name as `type` (`case.dispatched`), the outbox payload as `data`,
//! and add `"outbox_id"` so every consumer can skip one it already has.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

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
    /// An inspector's accepted position or new status (positions at a bounded rate per inspector).
    #[serde(rename = "inspector.position")]
    InspectorPosition(InspectorPosition),
    /// An inspector entered or left a geofence (confirmed by the minimum dwell).
    #[serde(rename = "inspector.fence")]
    InspectorFence(InspectorFence),
    /// A key project has had fewer patrol visits today than it requires (once per project and day).
    #[serde(rename = "patrol.behind")]
    PatrolBehind(PatrolBehind),
    /// A case event relayed from the store's outbox. Its wire `type` is its own name, which the derived
    /// adjacently tagged form cannot express, so [`BusEvent`] serialises it by hand.
    #[serde(skip)]
    Case(CaseEvent),
}

/// Payload of `inspector.position`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectorPosition {
    pub inspector: String,
    /// available, en_route, on_scene, returning, off_duty.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lon: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lat: Option<f64>,
    /// Time of the fix (Unix ms), when there is a position.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time: Option<crate::UnixMillis>,
}

/// Payload of `inspector.fence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectorFence {
    pub inspector: String,
    pub fence: String,
    /// `entered` or `exited`.
    pub kind: String,
    /// The first fix on the new side (Unix ms).
    pub at: crate::UnixMillis,
}

/// Payload of `patrol.behind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatrolBehind {
    pub fence: String,
    pub name: String,
    /// Local day, `YYYY-MM-DD`.
    pub day: String,
    pub visits: u32,
    pub required: u32,
    /// The visits due by now when the check runs through the day (`gis.patrol_check = "pro_rata"`);
    /// absent for the once-a-day check, where the whole `required` is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<u32>,
}

/// A case event as the outbox committed it (`case.created`, `case.dispatched`, `case.sla_warning`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseEvent {
    /// The event's name, one of [`CASE_EVENT_TYPES`] (an unknown `case.` name is still carried).
    pub event_type: String,
    /// The outbox id: never reused, the key consumers and the event log deduplicate on.
    pub outbox_id: i64,
    /// The outbox payload, unchanged.
    pub payload: Value,
}

/// Every case event name the case repository emits (kept equal to the store's list by a test in the
/// `cityops` crate, which sees both).
pub const CASE_EVENT_TYPES: &[&str] = &[
    "case.created",
    "case.accepted",
    "case.verification_requested",
    "case.verified",
    "case.registered",
    "case.declined",
    "case.void_requested",
    "case.voided",
    "case.void_rejected",
    "case.dispatched",
    "case.returned",
    "case.extension_requested",
    "case.extended",
    "case.extension_rejected",
    "case.suspension_requested",
    "case.suspended",
    "case.suspension_rejected",
    "case.resumed",
    "case.handled",
    "case.checked",
    "case.check_failed",
    "case.closed",
    "case.evaluated",
    "case.reopened",
    "case.sla_warning",
    "case.sla_overdue",
];

/// The wire `type` prefix reserved for case events.
pub const CASE_PREFIX: &str = "case.";

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
    InspectorPosition,
    InspectorFence,
    PatrolBehind,
    /// Every `case.*` event: one metric label, while filters use the events' own names.
    Case,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::IncidentOpened,
        EventType::IncidentCleared,
        EventType::DeviceRegistered,
        EventType::Reading,
        EventType::InspectorPosition,
        EventType::InspectorFence,
        EventType::PatrolBehind,
        EventType::Case,
    ];

    /// Every name a filter may give: the plain types and each case event (not the label `case`).
    pub fn filter_names() -> impl Iterator<Item = &'static str> {
        Self::ALL
            .iter()
            .filter(|t| **t != EventType::Case)
            .map(|t| t.as_str())
            .chain(CASE_EVENT_TYPES.iter().copied())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::IncidentOpened => "incident.opened",
            EventType::IncidentCleared => "incident.cleared",
            EventType::DeviceRegistered => "device.registered",
            EventType::Reading => "reading",
            EventType::InspectorPosition => "inspector.position",
            EventType::InspectorFence => "inspector.fence",
            EventType::PatrolBehind => "patrol.behind",
            EventType::Case => "case",
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
            EventData::InspectorPosition(_) => EventType::InspectorPosition,
            EventData::InspectorFence(_) => EventType::InspectorFence,
            EventData::PatrolBehind(_) => EventType::PatrolBehind,
            EventData::Case(_) => EventType::Case,
        }
    }

    /// The wire `type`: the event type's name, or a case event's own name.
    pub fn type_name(&self) -> &str {
        match self {
            EventData::Case(case) => &case.event_type,
            other => other.event_type().as_str(),
        }
    }

    /// The outbox id of a case event.
    pub fn outbox_id(&self) -> Option<i64> {
        match self {
            EventData::Case(case) => Some(case.outbox_id),
            _ => None,
        }
    }
}

/// An event as the bus numbered it.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEvent {
    pub seq: u64,
    pub data: EventData,
    pub time: DateTime<Utc>,
}

/// The wire form of the derived variants: exactly what `#[serde(flatten)]` on `data` always produced.
#[derive(Serialize)]
struct PlainWire<'a> {
    seq: u64,
    #[serde(flatten)]
    data: &'a EventData,
    time: &'a DateTime<Utc>,
}

/// The wire form of a case event.
#[derive(Serialize)]
struct CaseWire<'a> {
    seq: u64,
    #[serde(rename = "type")]
    event_type: &'a str,
    outbox_id: i64,
    data: &'a Value,
    time: &'a DateTime<Utc>,
}

/// Any wire event read back; `data` is decoded once the `type` says what it is.
#[derive(Deserialize)]
struct AnyWire {
    seq: u64,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    data: Value,
    time: DateTime<Utc>,
    #[serde(default)]
    outbox_id: Option<i64>,
}

impl Serialize for BusEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.data {
            EventData::Case(case) => CaseWire {
                seq: self.seq,
                event_type: &case.event_type,
                outbox_id: case.outbox_id,
                data: &case.payload,
                time: &self.time,
            }
            .serialize(serializer),
            data => PlainWire {
                seq: self.seq,
                data,
                time: &self.time,
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for BusEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let wire = AnyWire::deserialize(deserializer)?;
        let data = if wire.event_type.starts_with(CASE_PREFIX) {
            let outbox_id = wire.outbox_id.ok_or_else(|| {
                D::Error::custom(format!("{} event without outbox_id", wire.event_type))
            })?;
            EventData::Case(CaseEvent {
                event_type: wire.event_type,
                outbox_id,
                payload: wire.data,
            })
        } else {
            let tagged = serde_json::json!({"type": wire.event_type, "data": wire.data});
            EventData::deserialize(tagged).map_err(D::Error::custom)?
        };
        Ok(BusEvent {
            seq: wire.seq,
            data,
            time: wire.time,
        })
    }
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

    #[test]
    fn case_events_carry_their_own_name_and_outbox_id() {
        let event = BusEvent {
            seq: 9,
            data: EventData::Case(CaseEvent {
                event_type: "case.dispatched".into(),
                outbox_id: 42,
                payload: serde_json::json!({"case": {"id": 3}, "actor": "disp-1"}),
            }),
            time: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
        };
        let v: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(v["seq"], 9);
        assert_eq!(v["type"], "case.dispatched");
        assert_eq!(v["outbox_id"], 42);
        assert_eq!(v["data"]["actor"], "disp-1");
        assert_eq!(v["time"], "2023-11-14T22:13:20Z");
        assert_eq!(event.event_type(), EventType::Case);
        assert_eq!(event.data.type_name(), "case.dispatched");
        let back: BusEvent = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(back, event);
        // A case event without its outbox id is refused: consumers could not deduplicate it.
        assert!(
            serde_json::from_str::<BusEvent>(
                r#"{"seq":1,"type":"case.created","time":"2023-11-14T22:13:20Z","data":{}}"#
            )
            .is_err()
        );
    }
}
