//! Device ingestion: MQTT in, readings through adapters and rules, incidents and samples out.
//!
//! - [`adapter`]: pure `(topic, body) -> readings` functions (SenML, ThingsBoard-style and flat JSON);
//! - [`rules`]: thresholds with hysteresis and minimum durations;
//! - [`registry`]: the devices the platform accepts readings from;
//! - [`source`]: where device messages come from: the embedded broker's in-process link or MQTT over TCP;
//! - [`pipeline`]: the running part: per-device shards and the batched store writer.

pub mod adapter;
pub mod config;
pub mod inspectors;
pub mod pipeline;
pub mod registry;
pub mod rules;
pub mod source;
pub mod stats;

pub use config::{DevicesAndRules, IngestConfig};
pub use pipeline::{Ingest, start};
pub use registry::{RegisterError, Registry};
pub use source::{EmbeddedLink, Feed, MqttEndpoint};
pub use stats::IngestStats;
