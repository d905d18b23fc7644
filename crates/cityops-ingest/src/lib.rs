//! Device ingestion: MQTT in, readings through adapters and rules, incidents and samples out.
//!
//! - [`adapter`]: pure `(topic, body) -> readings` functions (SenML, ThingsBoard-style and flat JSON);
//! - [`rules`]: thresholds with hysteresis and minimum durations;
//! - [`registry`]: the devices the platform accepts readings from;
//! - [`pipeline`]: the running part: MQTT source, per-device shards, the batched store writer.

pub mod adapter;
pub mod config;
pub mod inspectors;
pub mod pipeline;
pub mod registry;
pub mod rules;
pub mod stats;

pub use config::{DevicesAndRules, IngestConfig};
pub use pipeline::{Ingest, MqttEndpoint, start};
pub use registry::{RegisterError, Registry};
pub use stats::IngestStats;
