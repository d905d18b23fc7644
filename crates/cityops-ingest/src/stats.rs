//! Counters of ingestion, rendered as Prometheus metrics.

use cityops_core::telemetry::{Counter, Gauge, PromWriter};

use crate::adapter::Reject;

/// Every count ingestion keeps. Shared by the MQTT reader, the shards and the writer; each is a relaxed atomic.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub messages_received: Counter,
    pub messages_accepted: Counter,
    pub readings_accepted: Counter,
    pub rejected: [Counter; Reject::REASONS.len()],
    /// Messages shed under overload, by reason (see [`SHED_REASONS`]).
    pub shed: [Counter; SHED_REASONS.len()],
    pub rule_type_mismatches: Counter,
    pub incidents_opened: Counter,
    pub incidents_cleared: Counter,
    pub samples_published: Counter,
    pub store_batches: Counter,
    pub store_batch_retries: Counter,
    /// Time spent committing batches (waiting for the write gate included), in µs.
    pub store_commit_micros: Counter,
    pub store_write_failures: Counter,
    pub last_values_written: Counter,
    pub mqtt_connected: Gauge,
    pub mqtt_connection_errors: Counter,
    /// Subscribers the embedded broker moved ahead in its log, losing messages for them.
    pub mqtt_broker_cursor_jumps: Counter,
    pub devices: Gauge,
    pub open_incidents: Gauge,
}

/// Why a message was shed: `queue_delay` = it waited longer than `ingest.shed_after_ms` in its
/// shard's queue.
pub const SHED_REASONS: [&str; 1] = ["queue_delay"];

impl IngestStats {
    /// Every message shed so far, all reasons.
    pub fn shed_total(&self) -> u64 {
        self.shed.iter().map(Counter::get).sum()
    }

    pub fn reject(&self, reject: &Reject) {
        self.rejected[reject.index()].inc();
    }

    pub fn render(&self, w: &mut PromWriter) {
        w.single(
            "cityops_ingest_messages_received_total",
            "counter",
            "MQTT messages received on device topics.",
            self.messages_received.get(),
        );
        w.single(
            "cityops_ingest_messages_accepted_total",
            "counter",
            "Messages that passed every check.",
            self.messages_accepted.get(),
        );
        w.single(
            "cityops_ingest_readings_total",
            "counter",
            "Readings accepted.",
            self.readings_accepted.get(),
        );
        w.family(
            "cityops_ingest_rejected_total",
            "counter",
            "Messages rejected, by reason.",
        );
        for (reason, counter) in Reject::REASONS.iter().zip(&self.rejected) {
            w.sample(
                "cityops_ingest_rejected_total",
                &[("reason", reason)],
                counter.get(),
            );
        }
        w.family(
            "cityops_ingest_shed_total",
            "counter",
            "Device messages dropped unprocessed under overload, by reason (each logged, rate-limited).",
        );
        for (reason, counter) in SHED_REASONS.iter().zip(&self.shed) {
            w.sample(
                "cityops_ingest_shed_total",
                &[("reason", reason)],
                counter.get(),
            );
        }
        w.single(
            "cityops_rules_type_mismatch_total",
            "counter",
            "Readings a rule could not compare (wrong value type).",
            self.rule_type_mismatches.get(),
        );
        w.single(
            "cityops_incidents_opened_total",
            "counter",
            "Incidents opened.",
            self.incidents_opened.get(),
        );
        w.single(
            "cityops_incidents_cleared_total",
            "counter",
            "Incidents cleared.",
            self.incidents_cleared.get(),
        );
        w.single(
            "cityops_incidents_open",
            "gauge",
            "Incidents open now.",
            self.open_incidents.get(),
        );
        w.single(
            "cityops_ingest_samples_published_total",
            "counter",
            "Sampled reading events put on the bus.",
            self.samples_published.get(),
        );
        w.single(
            "cityops_store_batches_total",
            "counter",
            "Write batches committed.",
            self.store_batches.get(),
        );
        w.single(
            "cityops_store_commit_microseconds_total",
            "counter",
            "Time the store writer spent committing batches, waiting for its turn included.",
            self.store_commit_micros.get(),
        );
        w.single(
            "cityops_store_batch_retries_total",
            "counter",
            "Write batches retried after an error.",
            self.store_batch_retries.get(),
        );
        w.single(
            "cityops_store_write_failures_total",
            "counter",
            "Changes that could not be stored after retries (each logged).",
            self.store_write_failures.get(),
        );
        w.single(
            "cityops_store_last_values_written_total",
            "counter",
            "Last-value rows written.",
            self.last_values_written.get(),
        );
        w.single(
            "cityops_mqtt_connected",
            "gauge",
            "1 while the ingest MQTT connection is up.",
            self.mqtt_connected.get(),
        );
        w.single(
            "cityops_mqtt_connection_errors_total",
            "counter",
            "MQTT connection errors (each followed by a reconnect).",
            self.mqtt_connection_errors.get(),
        );
        w.single(
            "cityops_mqtt_broker_cursor_jumps_total",
            "counter",
            "Times the embedded broker moved a subscriber that fell behind its log ahead to the oldest \
             message it kept: the messages in between were lost for that subscriber (0 with an external broker).",
            self.mqtt_broker_cursor_jumps.get(),
        );
        w.single(
            "cityops_devices",
            "gauge",
            "Registered devices.",
            self.devices.get(),
        );
    }
}
