//! Where device messages come from: an MQTT connection to a broker over TCP, or the embedded broker's
//! in-process link, both handing each message to the shard that owns its device.
//!
//! With the embedded broker (the default) ingest reads through rumqttd's local link: the router puts
//! forwarded publishes straight into a buffer this task swaps out, so no message is encoded, written to
//! a socket and parsed again inside the same process. Through an external broker (Mosquitto, several
//! nodes) it is an ordinary MQTT client. What can lose a message differs by broker and is counted
//! either way: rumqttd skips a subscriber that falls behind its log (`cursor_jump` alerts,
//! `cityops_mqtt_broker_cursor_jumps_total`), an external broker drops past its own queue limits.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use cityops_core::telemetry::LogLimiter;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use rumqttd::Notification;
use rumqttd::local::{LinkError, LinkRx, LinkTx};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::adapter::{self, Reject};
use crate::config::IngestConfig;
use crate::pipeline::{PUBLISH_BATCH, Publish, RejectLog, ShardMsg, shard_of};
use crate::stats::IngestStats;

/// Where the MQTT broker is.
#[derive(Debug, Clone)]
pub struct MqttEndpoint {
    pub host: String,
    pub port: u16,
}

/// Where ingest reads device messages from.
pub enum Feed {
    /// A broker over TCP (an external one, or the embedded one when a test wants the wire).
    Tcp(MqttEndpoint),
    /// The embedded broker's in-process link, made with `rumqttd::Broker::link`.
    Embedded(EmbeddedLink),
}

/// Both halves of a local link to the embedded broker.
pub struct EmbeddedLink {
    pub tx: LinkTx,
    pub rx: LinkRx,
}

impl std::fmt::Debug for EmbeddedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLink")
            .field("connection", &self.rx.id())
            .finish()
    }
}

/// Checks a message's topic and size and hands it to its shard: the part both feeds share.
pub(crate) struct Intake {
    pub(crate) max_payload_bytes: usize,
    pub(crate) shards: Vec<mpsc::Sender<ShardMsg>>,
    pub(crate) stats: Arc<IngestStats>,
    pub(crate) inspectors: Arc<crate::inspectors::InspectorTracker>,
    pub(crate) ready: watch::Sender<bool>,
    pub(crate) reject_log: RejectLog,
    /// Each shard's next batch, sent when full or by [`Intake::flush`].
    pub(crate) pending: Vec<Vec<Publish>>,
    /// Messages received since the last flush, added to the shared counter then.
    pub(crate) received: u64,
}

impl Intake {
    /// Checks one message and adds it to its shard's next batch, which is sent once full; the caller
    /// calls [`Intake::flush`] before it waits for more. Returns false when the shards are gone.
    async fn dispatch(&mut self, topic: Bytes, body: Bytes) -> bool {
        self.received += 1;
        let Ok(text) = std::str::from_utf8(&topic) else {
            // rumqttd checks topics are UTF-8 when it reads them; count it all the same.
            let shown = String::from_utf8_lossy(&topic).into_owned();
            return self.reject(Reject::UnknownTopic(shown.clone()), &shown);
        };
        if let Some(inspector) = crate::inspectors::inspector_of_topic(text) {
            let now = Utc::now().timestamp_millis();
            match serde_json::from_slice::<crate::inspectors::LocationBody>(&body) {
                Ok(location) => {
                    // A rejected fix is counted by the tracker (by reason); it is not an ingest error.
                    let _ = self.inspectors.fix(inspector, &location, now);
                }
                Err(_) => self.inspectors.malformed(),
            }
            return true;
        }
        let device = match adapter::topic_device(text) {
            Ok(device) => device,
            Err(reject) => return self.reject(reject, text),
        };
        if body.len() > self.max_payload_bytes {
            let reject = Reject::TooLarge {
                size: body.len(),
                limit: self.max_payload_bytes,
            };
            return self.reject(reject, device);
        }
        let index = shard_of(device, self.shards.len());
        self.pending[index].push(Publish::checked(
            topic,
            body,
            Utc::now().timestamp_millis(),
            Instant::now(),
        ));
        self.pending[index].len() < PUBLISH_BATCH || self.send(index).await
    }

    /// Sends every shard its batch. Returns false when the shards are gone.
    async fn flush(&mut self) -> bool {
        self.count_received();
        for index in 0..self.pending.len() {
            if !self.pending[index].is_empty() && !self.send(index).await {
                return false;
            }
        }
        true
    }

    /// Adds the messages received since the last call to the shared counter: before a batch goes
    /// out, so that it never shows fewer received than the shards have accepted.
    fn count_received(&mut self) {
        let received = std::mem::take(&mut self.received);
        if received > 0 {
            self.stats.messages_received.add(received);
        }
    }

    async fn send(&mut self, index: usize) -> bool {
        self.count_received();
        let pending = &mut self.pending[index];
        // A lone message goes on its own and the batch keeps its allocation.
        let msg = match pending.len() {
            1 => ShardMsg::Publish(pending.pop().expect("one pending message")),
            _ => ShardMsg::Publishes(std::mem::take(pending)),
        };
        self.shards[index].send(msg).await.is_ok()
    }

    fn reject(&mut self, reject: Reject, source: &str) -> bool {
        self.stats.reject(&reject);
        self.reject_log.log(&reject, source);
        true
    }

    fn connected(&self, up: bool) {
        self.stats.mqtt_connected.set(i64::from(up));
        if !up {
            self.ready.send_replace(false);
        }
    }

    /// After the feed stopped: marks ingest disconnected and lets the shards drain what they hold.
    async fn close(&mut self) {
        self.flush().await;
        self.connected(false);
        for shard in &self.shards {
            let _ = shard.send(ShardMsg::Shutdown).await;
        }
        tracing::info!("ingest MQTT reader stopped");
    }
}

/// The subscription filter: `city/v1/#`, or its shared form when several nodes split the load.
fn filter(config: &IngestConfig) -> String {
    match &config.mqtt_shared_group {
        Some(group) => format!("$share/{group}/{}", adapter::CITY_TOPIC_FILTER),
        None => adapter::CITY_TOPIC_FILTER.to_string(),
    }
}

/// Reads `feed` until shutdown, then closes the shards.
pub(crate) async fn run(
    feed: Feed,
    config: IngestConfig,
    intake: Intake,
    shutdown: watch::Receiver<bool>,
) {
    match feed {
        Feed::Tcp(endpoint) => run_tcp(endpoint, config, intake, shutdown).await,
        Feed::Embedded(link) => run_link(link, config, intake, shutdown).await,
    }
}

fn tcp_options(config: &IngestConfig, mqtt: &MqttEndpoint) -> MqttOptions {
    let mut options = MqttOptions::new(&config.mqtt_client_id, &mqtt.host, mqtt.port);
    options.set_keep_alive(Duration::from_secs(30));
    // Accept packets well over our own payload limit, so an oversized payload is counted and
    // rejected by us rather than tearing down the connection.
    let incoming = (config.max_payload_bytes * 4).max(1 << 20);
    options.set_max_packet_size(incoming, 64 * 1024);
    options.set_clean_session(true);
    options.set_inflight(1000);
    options
}

async fn run_tcp(
    mqtt: MqttEndpoint,
    config: IngestConfig,
    mut intake: Intake,
    mut shutdown: watch::Receiver<bool>,
) {
    let (client, mut eventloop) = AsyncClient::new(tcp_options(&config, &mqtt), 64);
    // Acknowledgements are tiny and latency matters more than packet count on this path.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let qos = if config.mqtt_qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let filter = filter(&config);
    let mut error_log = LogLimiter::new(Duration::from_secs(10));
    tracing::info!(host = %mqtt.host, port = mqtt.port, %filter, "ingest connecting to MQTT");
    while !*shutdown.borrow() {
        let event = tokio::select! {
            _ = shutdown.changed() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                intake.connected(true);
                if let Err(e) = client.try_subscribe(filter.as_str(), qos) {
                    tracing::error!(error = %e, "could not queue the MQTT subscription");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                tracing::info!(%filter, "ingest subscribed");
                intake.ready.send_replace(true);
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                // One at a time: the event loop is not polled ahead to gather a batch, as a poll
                // dropped midway could hold back the acknowledgements it was writing.
                let topic = Bytes::from(publish.topic);
                if !(intake.dispatch(topic, publish.payload).await && intake.flush().await) {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                intake.connected(false);
                intake.stats.mqtt_connection_errors.inc();
                if let Some(suppressed) = error_log.check(std::time::Instant::now()) {
                    tracing::warn!(error = %e, suppressed, "MQTT connection error; reconnecting");
                }
                tokio::select! {
                    _ = shutdown.changed() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
    // Leave cleanly: tell the broker, then let the shards drain what they hold.
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Ok(event) = eventloop.poll().await {
                if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
    intake.close().await;
}

/// Reads the embedded broker's local link. The subscription is at QoS 0 whatever `mqtt_qos` says:
/// the link is a buffer in this process, so there is no wire to lose a message on and nothing to
/// acknowledge; devices' QoS 1 publishes are still acknowledged by the broker once in its log. When
/// the router has filled the link's buffer it unschedules the link until told to go on, which this
/// reader does once it has taken what was there.
async fn run_link(
    link: EmbeddedLink,
    config: IngestConfig,
    mut intake: Intake,
    mut shutdown: watch::Receiver<bool>,
) {
    let EmbeddedLink { mut tx, mut rx } = link;
    let filter = filter(&config);
    if let Err(e) = tx.subscribe(filter.as_str()) {
        tracing::error!(error = %e, "the embedded broker refused ingest's subscription");
        intake.close().await;
        return;
    }
    intake.connected(true);
    tracing::info!(%filter, connection = rx.id(), "ingest reading the embedded broker in process");
    'read: while !*shutdown.borrow() {
        let mut next = tokio::select! {
            _ = shutdown.changed() => break,
            next = rx.next() => next,
        };
        // What the router has already handed over is taken without waiting, then sent to the shards
        // in batches; the link is awaited again only once every batch is on its way.
        for taken in 1.. {
            if let Link::Stop = on_link(next, &mut rx, &mut intake, &filter).await {
                break 'read;
            }
            if taken == LINK_DRAIN {
                break;
            }
            match std::pin::pin!(rx.next())
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
            {
                Poll::Ready(ready) => next = ready,
                Poll::Pending => break,
            }
        }
        if !intake.flush().await {
            break;
        }
    }
    // The router forgets the link once its half of the channel is gone.
    drop(tx);
    drop(rx);
    intake.close().await;
}

/// Most notifications the link reader takes before it sends the shards what it has.
const LINK_DRAIN: usize = 256;

/// Whether the link reader goes on.
enum Link {
    Next,
    Stop,
}

/// Handles one notification of the embedded broker's link.
async fn on_link(
    next: Result<Option<Notification>, LinkError>,
    rx: &mut LinkRx,
    intake: &mut Intake,
    filter: &str,
) -> Link {
    match next {
        Ok(Some(Notification::Forward(forward))) => {
            let publish = forward.publish;
            if !intake.dispatch(publish.topic, publish.payload).await {
                return Link::Stop;
            }
        }
        Ok(Some(Notification::DeviceAck(_))) => {
            // The only acknowledgement this link asks for is its subscription's.
            if !*intake.ready.borrow() {
                tracing::info!(%filter, "ingest subscribed");
                intake.ready.send_replace(true);
            }
        }
        Ok(Some(Notification::Unschedule)) => {
            // The router stops filling the link until told to go on: what it filled goes to the
            // shards first.
            if !intake.flush().await {
                return Link::Stop;
            }
            if let Err(e) = rx.wake().await {
                tracing::error!(error = %e, "the embedded broker went away");
                return Link::Stop;
            }
        }
        Ok(Some(Notification::Disconnect(..))) => {
            tracing::error!("the embedded broker disconnected ingest");
            intake.stats.mqtt_connection_errors.inc();
            return Link::Stop;
        }
        Ok(Some(other)) => tracing::debug!(?other, "ingest ignored a broker notification"),
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "the embedded broker went away");
            intake.stats.mqtt_connection_errors.inc();
            return Link::Stop;
        }
    }
    Link::Next
}
