//! The embedded MQTT broker (rumqttd), started in its own threads inside the process.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use anyhow::Context as _;
use cityops_core::telemetry::LogLimiter;
use cityops_ingest::{EmbeddedLink, IngestStats};
use rumqttd::alerts::AlertsLink;
use rumqttd::{
    Broker, Config, ConnectionSettings, MetricSettings, MetricType, RouterConfig, ServerSettings,
};

use crate::settings::BrokerSettings;

/// The embedded broker once started.
pub struct Embedded {
    pub addr: SocketAddr,
    /// The broker's alerts, pushed once a second: hand them to [`watch_alerts`].
    pub alerts: AlertsLink,
    /// The in-process link asked for with `ingest_link`, connected and not yet subscribed.
    pub ingest: Option<EmbeddedLink>,
}

/// Largest payload the embedded broker accepts. Above ingest's own limit on purpose: an oversized
/// device message reaches ingest and is counted as `too_large` instead of vanishing inside the broker.
const BROKER_MAX_PAYLOAD: usize = 1 << 20;

/// Starts the broker on `listen` in its own threads. Returns the bound address
/// (port 0 picks a free port), its alerts and, when `ingest_link` names a client id, an in-process
/// link for ingest under that id (see `cityops_ingest::source`). The broker runs until the process
/// exits.
pub fn start(
    listen: SocketAddr,
    limits: &BrokerSettings,
    ingest_link: Option<&str>,
) -> anyhow::Result<Embedded> {
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
        // Alerts pushed once a second (rumqttd keeps the last 100 between pushes): a subscriber
        // skipped ahead in the log is otherwise only a log line inside rumqttd. rumqttd's timer
        // needs both kinds configured (with one missing its thread panics); meters go unread.
        metrics: Some(HashMap::from([
            (MetricType::Alerts, push_every(1)?),
            (MetricType::Meters, push_every(3600)?),
        ])),
        ..Default::default()
    };
    let mut broker = Broker::new(config);
    let alerts = broker
        .alerts()
        .map_err(|e| anyhow::anyhow!("Failed to subscribe to the embedded broker's alerts: {e}"))?;
    // The router runs from `Broker::new`: a local link connects now (and waits for its ConnAck).
    let ingest = match ingest_link {
        Some(client_id) => {
            let (tx, rx) = broker.link(client_id).map_err(|e| {
                anyhow::anyhow!("Failed to link ingest to the embedded broker: {e}")
            })?;
            Some(EmbeddedLink { tx, rx })
        }
        None => None,
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .context("Failed to start the embedded MQTT broker thread")?;

    // Clients (ingestion first) connect with retries, so there is nothing to wait for here.
    Ok(Embedded {
        addr,
        alerts,
        ingest,
    })
}

/// rumqttd's push interval setting, whose field is private.
fn push_every(secs: u64) -> anyhow::Result<MetricSettings> {
    serde_json::from_value(serde_json::json!({ "push_interval": secs }))
        .context("rumqttd metric settings")
}

/// Counts and logs the broker's alerts until the broker goes away. A `cursor_jump` is a subscriber
/// that fell further behind than the broker's log holds (`[broker] log_segment_kib` ×
/// `log_segments`): rumqttd moved it ahead to the oldest message it still has, and the messages in
/// between are lost for that subscriber (rumqttd does not say how many). Each one is counted in
/// `cityops_mqtt_broker_cursor_jumps_total` and logged (at most one line per 10 s, with the number
/// suppressed); other alerts are logged at debug level.
pub async fn watch_alerts(alerts: AlertsLink, stats: std::sync::Arc<IngestStats>) {
    let mut log = LogLimiter::new(std::time::Duration::from_secs(10));
    while let Ok(batch) = alerts.next().await {
        for alert in batch {
            let kind = alert.kind.name();
            if kind != "cursor_jump" {
                tracing::debug!(client = %alert.client_id, kind, detail = %alert.kind.description(), "embedded MQTT broker alert");
                continue;
            }
            stats.mqtt_broker_cursor_jumps.inc();
            if let Some(suppressed) = log.check(std::time::Instant::now()) {
                // rumqttd's own description says "Lost: 0" whatever was lost: only the filter is
                // worth showing (its alert kinds are not exported, so it is read from their JSON).
                let filter = serde_json::to_value(&alert.kind)
                    .ok()
                    .and_then(|kind| kind["CursorJump"]["filter"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                tracing::warn!(
                    client = %alert.client_id,
                    filter,
                    suppressed,
                    "embedded MQTT broker: a subscriber fell behind the broker's log and was moved \
                     ahead, losing the messages in between (raise [broker] log_segment_kib to allow \
                     longer bursts)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    use std::sync::Arc;
    use std::time::Duration;

    /// A subscriber that stops reading while a publisher fills the broker's (tiny) log is moved
    /// ahead by rumqttd: that loss is counted, not silent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscriber_skipped_ahead_in_the_log_is_counted() {
        let limits = BrokerSettings {
            log_segment_kib: 16,
            log_segments: 2,
            ingest_in_process: true,
        };
        let broker = start("127.0.0.1:0".parse().unwrap(), &limits, None).unwrap();
        let port = broker.addr.port();
        let stats = Arc::new(IngestStats::default());
        tokio::spawn(watch_alerts(broker.alerts, stats.clone()));

        let mut options = MqttOptions::new("slow-subscriber", "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(60));
        let (subscriber, mut sub_loop) = AsyncClient::new(options, 10);
        subscriber.subscribe("t/#", QoS::AtMostOnce).await.unwrap();
        // The broker binds in its own thread: refused connections are retried.
        let subscribed = async {
            loop {
                match sub_loop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => return,
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .expect("subscribed");

        // The subscriber's event loop is not polled now: its socket fills up, then the broker's
        // queue for it, and the publisher runs through the log many times over.
        let driver = flood(port).await;
        // (The broker's side of the connection goes on writing into the socket until it is full, so
        // the router may already skip the subscriber before the client reads again: on a loaded
        // machine a jump is sometimes counted here.)

        // Reading again: the broker finds the subscriber's place in the log gone.
        let reader = tokio::spawn(async move { while sub_loop.poll().await.is_ok() {} });
        wait_for_a_jump(&stats).await;
        reader.abort();
        driver.abort();
    }

    /// The same through ingest's in-process link: a link that stops taking what the router gives it
    /// is skipped ahead too, under its own client id, and counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_in_process_link_skipped_ahead_in_the_log_is_counted() {
        let limits = BrokerSettings {
            log_segment_kib: 16,
            log_segments: 2,
            ingest_in_process: true,
        };
        let broker = start("127.0.0.1:0".parse().unwrap(), &limits, Some("slow-link")).unwrap();
        let EmbeddedLink { mut tx, mut rx } = broker.ingest.expect("a link was asked for");
        let stats = Arc::new(IngestStats::default());
        tokio::spawn(watch_alerts(broker.alerts, stats.clone()));
        tx.subscribe("t/#").unwrap();
        let subscribed = async {
            loop {
                if let Some(rumqttd::Notification::DeviceAck(_)) = rx.next().await.unwrap() {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .expect("subscribed");

        let driver = flood(broker.addr.port()).await;
        // (Unlike a socket, the link takes no more than its buffer: the router may already have
        // skipped it while filling that buffer, so a jump may be counted before it is read.)

        // Taking what is there and asking for more, as ingest does: the place is gone.
        let reader = tokio::spawn(async move {
            while let Ok(next) = rx.next().await {
                if let Some(rumqttd::Notification::Unschedule) = next {
                    rx.wake().await.unwrap();
                }
            }
        });
        wait_for_a_jump(&stats).await;
        reader.abort();
        driver.abort();
    }

    /// Publishes 20,000 messages of 1 kB on `t/1` at QoS 0, many times the tests' 48 KiB log;
    /// returns the task driving the publisher's connection.
    async fn flood(port: u16) -> tokio::task::JoinHandle<()> {
        let mut options = MqttOptions::new("fast-publisher", "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(60));
        let (publisher, mut pub_loop) = AsyncClient::new(options, 1000);
        // The broker binds in its own thread: a refused connection is tried again.
        let driver = tokio::spawn(async move {
            loop {
                if pub_loop.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        let body = vec![b'x'; 1000];
        for _ in 0..20_000 {
            publisher
                .publish("t/1", QoS::AtMostOnce, false, body.clone())
                .await
                .unwrap();
        }
        driver
    }

    async fn wait_for_a_jump(stats: &IngestStats) {
        let counted = async {
            while stats.mqtt_broker_cursor_jumps.get() == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), counted)
            .await
            .expect("the skip is counted");
    }

    #[test]
    fn an_empty_commit_log_is_refused_with_the_setting_named() {
        for (kib, segments) in [(0, 4), (2048, 0)] {
            let limits = BrokerSettings {
                log_segment_kib: kib,
                log_segments: segments,
                ingest_in_process: true,
            };
            let Err(e) = start("127.0.0.1:0".parse().unwrap(), &limits, None) else {
                panic!("an empty log was accepted: {kib} KiB × {segments}");
            };
            assert!(e.to_string().contains("broker.log_segments"), "{e}");
        }
    }
}
