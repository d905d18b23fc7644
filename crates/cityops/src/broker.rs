//! The embedded MQTT broker (rumqttd), started in its own threads inside the process.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use anyhow::Context as _;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::settings::BrokerSettings;

/// Largest payload the embedded broker accepts. Above ingest's own limit on purpose: an oversized
/// device message reaches ingest and is counted as `too_large` instead of vanishing inside the broker.
const BROKER_MAX_PAYLOAD: usize = 1 << 20;

/// Starts the broker on `listen` in its own threads. Returns the bound address
/// (port 0 picks a free port). The broker runs until the process exits.
pub fn start(listen: SocketAddr, limits: &BrokerSettings) -> anyhow::Result<SocketAddr> {
    // rumqttd binds inside its own thread and only logs a failure; bind here first so a taken port is
    // a clear error (and so port 0 resolves to a real port).
    anyhow::ensure!(
        limits.log_segment_kib >= 1 && limits.log_segments >= 1,
        "broker.log_segment_kib and broker.log_segments must be at least 1 (got {} and {})",
        limits.log_segment_kib,
        limits.log_segments
    );
    let probe = TcpListener::bind(listen).map_err(|e| {
        anyhow::anyhow!(
            "MQTT listen address {listen} is not available ({e}); choose another with --mqtt-listen ADDR \
             (or CITYOPS_MQTT_LISTEN), or use an external broker with --mqtt-url"
        )
    })?;
    let addr = probe.local_addr()?;
    drop(probe);

    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: BROKER_MAX_PAYLOAD,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "cityops-v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 20_000,
            max_outgoing_packet_count: 1_000,
            // The commit log per subscription filter is bounded: segment size × count, counting
            // topic and payload bytes only; each message also costs rumqttd ~240 bytes of entry and
            // pins its read buffer (see `[broker]` in config/default.toml and docs/benchmarks.md).
            max_segment_size: limits.log_segment_kib << 10,
            max_segment_count: limits.log_segments,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Default::default()
    };
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .context("Failed to start the embedded MQTT broker thread")?;

    // Clients (ingestion first) connect with retries, so there is nothing to wait for here.
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_commit_log_is_refused_with_the_setting_named() {
        for (kib, segments) in [(0, 4), (2048, 0)] {
            let limits = BrokerSettings {
                log_segment_kib: kib,
                log_segments: segments,
            };
            let e = start("127.0.0.1:0".parse().unwrap(), &limits).unwrap_err();
            assert!(e.to_string().contains("broker.log_segments"), "{e}");
        }
    }
}
