//! Domain types of cityops with no I/O: what every other crate speaks.
//!
//! Nothing in this crate touches the network, the disk or the clock of the machine, so it cannot fail on
//! I/O and its tests need no runtime. The rest of the platform builds on these types:
//! devices and their readings ([`device`], [`reading`]), the category catalogue ([`category`]),
//! incidents raised by rules ([`incident`]), the events on the central bus ([`event`]), the
//! counters every subsystem exposes as metrics ([`telemetry`]), the case workflow of GB/T 30428 as a
//! pure state machine with roles ([`case`]) and working-time SLA clocks ([`sla`]).

pub mod case;
pub mod category;
pub mod device;
pub mod event;
pub mod geo;
pub mod incident;
pub mod reading;
pub mod sla;
pub mod telemetry;

pub use category::{Catalogue, Category, CategoryClass};
pub use device::{Device, DeviceId, DeviceKind};
pub use event::{BusEvent, CaseEvent, EventData, EventType};
pub use geo::{GeoPoint, GridPlace};
pub use incident::{Incident, IncidentId, IncidentState};
pub use reading::{Reading, Value};

/// Milliseconds since the Unix epoch, the one time representation stored and sent on the wire.
pub type UnixMillis = i64;

/// Converts milliseconds since the Unix epoch into a UTC timestamp (clamped to the representable range).
pub fn millis_to_datetime(ms: UnixMillis) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
