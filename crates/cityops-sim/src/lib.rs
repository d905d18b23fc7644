//! A simulated 东城区 (Dongcheng, Beijing): a fleet of sensors of every kind publishing readings over real MQTT.
//!
//! `cityops demo` runs it to bring the live pages to life, and the benchmarks reuse it as a load generator.
//! Devices are planned at random points inside the city [`Boundary`] ([`plan_devices`], deterministic for a
//! seed). [`run`] then spreads them over a few MQTT connections, and each device publishes one reading per
//! interval to `city/v1/devices/{id}/up` in SenML, ThingsBoard-style or flat JSON. Now and then a device
//! starts an anomaly that crosses the platform's rule for its kind, and later it returns to normal, so
//! incidents open and clear. The behaviour ([`DeviceBehaviour`]) and the encoding ([`encode_payload`]) take
//! the time as an argument, so tests can drive simulated time without a broker.

pub mod behaviour;
pub mod boundary;
pub mod config;
pub mod devices;
pub mod payload;
pub mod publisher;

pub use behaviour::{DeviceBehaviour, MeasuredValue, Measurement};
pub use boundary::Boundary;
pub use config::{AnomalyPolicy, SimConfig};
pub use devices::{PayloadFormat, SensorKind, SimDevice, plan_devices, uplink_topic};
pub use payload::encode_payload;
pub use publisher::{SimCounters, SimStats, run, run_with_counters};
