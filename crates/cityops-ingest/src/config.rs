//! Configuration of ingestion: limits, queue sizes, the MQTT subscription, devices and rules.

use cityops_core::Device;
use serde::{Deserialize, Serialize};

use crate::rules::RuleConfig;

/// Everything ingestion needs to know from the configuration file (`[ingest]` section) and the
/// `[[devices]]` and `[[rules]]` lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest accepted payload in bytes; larger ones are rejected as `too_large`.
    pub max_payload_bytes: usize,
    /// Worker shards (devices are split among them by id); 0 = one per CPU core.
    pub shards: usize,
    /// Messages queued per shard before the MQTT reader waits (backpressure onto the broker). The
    /// queue holds batches of up to 64 messages: `shard_queue / 64` of them, at least 4.
    pub shard_queue: usize,
    /// Overload shedding: a device message that has waited longer than this in its shard's queue is
    /// dropped unprocessed, counted in `cityops_ingest_shed_total{reason="queue_delay"}` and logged at
    /// most once per 10 s. Bursts shorter than this are absorbed by backpressure; under sustained
    /// overload the shards skip stale messages quickly, so the reader keeps draining the broker (which
    /// would otherwise drop past its own limits, uncounted) and latency stays bounded. 0 = never shed.
    pub shed_after_ms: u64,
    /// At most one `reading` event per device per this many seconds goes on the bus.
    pub reading_sample_secs: u64,
    /// How often dirty last values are written to the store, in milliseconds.
    pub flush_interval_ms: u64,
    /// Changes queued for the store writer before the shards wait.
    pub writer_queue: usize,
    /// Most changes committed in one transaction.
    pub writer_batch: usize,
    /// MQTT client id of the ingest connection.
    pub mqtt_client_id: String,
    /// QoS of the subscription (0 or 1).
    pub mqtt_qos: u8,
    /// When set, subscribe as `$share/{group}/city/v1/#` so several nodes split the load.
    pub mqtt_shared_group: Option<String>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 64 * 1024,
            shards: 0,
            shard_queue: 4096,
            shed_after_ms: 2000,
            reading_sample_secs: 10,
            flush_interval_ms: 1000,
            writer_queue: 8192,
            writer_batch: 1000,
            mqtt_client_id: "cityops-ingest".into(),
            mqtt_qos: 1,
            mqtt_shared_group: None,
        }
    }
}

/// Devices and rules, loaded from the `[[devices]]` and `[[rules]]` tables of the configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DevicesAndRules {
    #[serde(default)]
    pub devices: Vec<Device>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}
