//! Running the fleet against a real MQTT broker: one rumqttc client per connection, each device publishing
//! on a staggered schedule, until shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use cityops_core::UnixMillis;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tracing::{debug, info, warn};

use crate::behaviour::DeviceBehaviour;
use crate::config::{AnomalyPolicy, SimConfig};
use crate::devices::SimDevice;
use crate::payload::encode_payload;

const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// Requests a client may queue for its event loop. When it is full (the broker is too slow) new readings are
/// dropped instead of waited for, so the schedule never falls behind.
const REQUEST_CHANNEL_CAPACITY: usize = 1024;
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// At most one warning per connection (or per client for dropped readings) in this time.
const WARN_EVERY: Duration = Duration::from_secs(5);
/// How long the queued readings and the DISCONNECT may take to go out at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// A catch-up burst yields to the runtime this often, so a large fleet does not hog a worker thread.
const PUBLISHES_PER_YIELD: usize = 256;

/// Counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// PUBLISH packets written to a broker connection.
    pub published: u64,
    /// Readings not sent because their connection was down or its request queue was full (broker too slow).
    pub dropped: u64,
    /// Failed connection attempts and lost connections.
    pub errors: u64,
}

/// Live counters of a run, readable while it goes on (for example by a benchmark reporting progress).
#[derive(Debug, Default)]
pub struct SimCounters {
    published: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
}

impl SimCounters {
    pub fn snapshot(&self) -> SimStats {
        SimStats {
            published: self.published.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Publishes the readings of `devices` to the MQTT broker at `host:port` until `*shutdown.borrow()` is
/// true (or its sender is dropped), then disconnects and returns the counts.
///
/// An unreachable broker is not an error: each connection keeps retrying every second and logs at most
/// every few seconds. Fails only on an invalid `config` or a device with an unknown kind or an id that is
/// not a valid platform id.
pub async fn run(
    host: &str,
    port: u16,
    devices: Vec<SimDevice>,
    config: SimConfig,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<SimStats> {
    run_with_counters(
        host,
        port,
        devices,
        config,
        shutdown,
        Arc::new(SimCounters::default()),
    )
    .await
}

/// [`run`], counting into `counters` so the caller can watch progress while it runs.
pub async fn run_with_counters(
    host: &str,
    port: u16,
    devices: Vec<SimDevice>,
    config: SimConfig,
    shutdown: watch::Receiver<bool>,
    counters: Arc<SimCounters>,
) -> anyhow::Result<SimStats> {
    config.validate()?;
    ensure!(!devices.is_empty(), "no devices to simulate");
    let device_count = devices.len();
    let connections = config.connections.min(device_count);
    let policy = AnomalyPolicy::for_fleet(&config, device_count);
    let groups = schedule(devices, &config, connections)?;

    info!(
        devices = device_count,
        connections,
        interval = ?config.interval,
        messages_per_second = config.messages_per_second(device_count),
        anomalies_per_minute = config.anomalies_per_minute,
        qos = ?config.qos,
        "simulator publishing to MQTT broker at {host}:{port}"
    );

    // Tells the event loops that publishing is over, so a connection error then ends them instead of
    // starting another reconnect loop.
    let (stopping_tx, stopping_rx) = watch::channel(false);
    // JoinSets abort what is still running when dropped, so no task outlives `run`, even on an early return.
    let mut event_loops = JoinSet::new();
    let mut publishers = JoinSet::new();
    let mut clients = Vec::with_capacity(connections);
    for (index, group) in groups.into_iter().enumerate() {
        let client_id = format!("{}-{index}", config.client_id_prefix);
        let mut options = MqttOptions::new(client_id.clone(), host, port);
        options.set_keep_alive(KEEP_ALIVE).set_clean_session(true);
        let (client, event_loop) = AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
        let online = Arc::new(AtomicBool::new(false));

        event_loops.spawn(drive_connection(
            event_loop,
            client_id.clone(),
            format!("{host}:{port}"),
            Arc::clone(&online),
            Arc::clone(&counters),
            stopping_rx.clone(),
        ));
        let sink = client_sink(
            client.clone(),
            config.qos,
            client_id,
            online,
            Arc::clone(&counters),
        );
        publishers.spawn(publish_on_schedule(
            group,
            config.interval,
            policy,
            shutdown.clone(),
            wall_clock_ms,
            sink,
        ));
        clients.push(client);
    }

    while let Some(finished) = publishers.join_next().await {
        finished.context("a publisher task failed")?;
    }

    // Queue the DISCONNECT behind the readings already queued, so they go out first. If a queue is full,
    // its broker is unreachable or far behind and the event loop is left to the drain timeout.
    let _ = stopping_tx.send(true);
    for client in &clients {
        if client.try_disconnect().is_err() {
            debug!("request queue full at shutdown; not waiting for a clean disconnect");
        }
    }
    let drained = timeout(DRAIN_TIMEOUT, async {
        while let Some(finished) = event_loops.join_next().await {
            if let Err(error) = finished {
                warn!(%error, "an MQTT event loop task failed");
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!("MQTT connections did not close within {DRAIN_TIMEOUT:?}; dropping them");
        event_loops.abort_all();
    }

    let stats = counters.snapshot();
    info!(
        published = stats.published,
        dropped = stats.dropped,
        errors = stats.errors,
        "simulator stopped"
    );
    Ok(stats)
}

/// One device on a connection's schedule.
struct ScheduledDevice {
    device: SimDevice,
    topic: String,
    behaviour: DeviceBehaviour,
    /// When in each interval this device publishes, measured from the start of the interval.
    offset: Duration,
}

/// Splits the fleet over `connections` and gives every device its own moment in the interval.
///
/// Offsets are spread evenly over the whole fleet and devices are dealt round-robin, so both the total
/// traffic and each connection's traffic are smooth instead of arriving in one burst per interval.
fn schedule(
    devices: Vec<SimDevice>,
    config: &SimConfig,
    connections: usize,
) -> anyhow::Result<Vec<Vec<ScheduledDevice>>> {
    let device_count = devices.len();
    let mut groups: Vec<Vec<ScheduledDevice>> = (0..connections).map(|_| Vec::new()).collect();
    for (index, device) in devices.into_iter().enumerate() {
        let kind = device.sensor_kind()?;
        // The id goes into the topic, so it must not hold MQTT wildcards or separators.
        device.to_core_device()?;
        let behaviour = DeviceBehaviour::new(kind, device_seed(config.seed, &device.id));
        groups[index % connections].push(ScheduledDevice {
            topic: device.topic(),
            behaviour,
            offset: config.interval.mul_f64(index as f64 / device_count as f64),
            device,
        });
    }
    Ok(groups)
}

/// A device's behaviour seed: from the run's seed and the device id (not its position in the list), so a
/// device behaves the same whichever fleet it is part of.
fn device_seed(seed: u64, device_id: &str) -> u64 {
    // FNV-1a over the id, then the SplitMix64 finaliser to spread nearby seeds apart.
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for byte in device_id.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = hash ^ seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d4_9bb1_33b1_11eb);
    z ^ (z >> 31)
}

/// Milliseconds since the Unix epoch by the system clock, the time stamped on readings.
fn wall_clock_ms() -> UnixMillis {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UnixMillis::try_from(since_epoch.as_millis()).unwrap_or(UnixMillis::MAX)
}

/// Hands readings to a client without waiting. While the connection is down a reading is dropped, as a
/// real sensor would lose it: queueing would only deliver a burst of stale readings on reconnect. A full
/// queue (the broker is too slow) drops it too. Both are counted.
fn client_sink(
    client: AsyncClient,
    qos: QoS,
    client_id: String,
    online: Arc<AtomicBool>,
    counters: Arc<SimCounters>,
) -> impl FnMut(&str, Vec<u8>) {
    let mut last_warning: Option<Instant> = None;
    let mut dropped_since_warning = 0_u64;
    move |topic, payload| {
        if !online.load(Ordering::Relaxed) {
            // The event loop already reports the broker being unreachable.
            SimCounters::count(&counters.dropped);
            return;
        }
        if client.try_publish(topic, qos, false, payload).is_ok() {
            return;
        }
        SimCounters::count(&counters.dropped);
        dropped_since_warning += 1;
        if last_warning.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            warn!(
                client_id,
                dropped = dropped_since_warning,
                "MQTT request queue full; dropping readings"
            );
            last_warning = Some(Instant::now());
            dropped_since_warning = 0;
        }
    }
}

/// Publishes each device of `fleet` once per `interval`, at its offset, until shutdown.
///
/// `clock` stamps the readings and `send` delivers them, so tests can run this on paused tokio time
/// without a broker. Every device that is due is published in one batch.
async fn publish_on_schedule<C, S>(
    mut fleet: Vec<ScheduledDevice>,
    interval: Duration,
    policy: AnomalyPolicy,
    mut shutdown: watch::Receiver<bool>,
    clock: C,
    mut send: S,
) where
    C: Fn() -> UnixMillis,
    S: FnMut(&str, Vec<u8>),
{
    if fleet.is_empty() {
        return;
    }
    fleet.sort_by_key(|scheduled| scheduled.offset);
    let mut round_start = Instant::now();
    let mut next = 0;
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        tokio::select! {
            () = sleep_until(round_start + fleet[next].offset) => {}
            changed = shutdown.changed() => {
                // A dropped sender can never say "stop" any more; stopping now beats running unstoppably.
                if changed.is_err() {
                    return;
                }
                continue;
            }
        }

        let now = Instant::now();
        // Held up for a whole interval or more (a suspended process, an overloaded machine): the missed
        // readings would be stale, so skip those rounds and carry on from the current one.
        let behind = now.saturating_duration_since(round_start);
        if behind >= interval {
            let into_current_round =
                Duration::from_nanos((behind.as_nanos() % interval.as_nanos()) as u64);
            debug!(
                ?behind,
                "publisher fell more than an interval behind; skipping the missed rounds"
            );
            round_start = now - into_current_round;
            next = 0;
        }
        let now_ms = clock();
        let mut published_in_batch = 0;
        while round_start + fleet[next].offset <= now {
            let scheduled = &mut fleet[next];
            let measurements = scheduled.behaviour.tick(now_ms, &policy);
            send(
                &scheduled.topic,
                encode_payload(&scheduled.device, &measurements, now_ms),
            );

            next += 1;
            if next == fleet.len() {
                next = 0;
                round_start += interval;
            }
            published_in_batch += 1;
            if published_in_batch % PUBLISHES_PER_YIELD == 0 {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Polls one connection's event loop: counts what goes out, keeps `online` up to date, reconnects after
/// errors (once a second, warning at most every few seconds) and ends after the DISCONNECT, or on an error
/// once stopping.
async fn drive_connection(
    mut event_loop: EventLoop,
    client_id: String,
    broker: String,
    online: Arc<AtomicBool>,
    counters: Arc<SimCounters>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut last_warning: Option<Instant> = None;
    let mut failures_since_warning = 0_u64;
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!(client_id, "connected to MQTT broker at {broker}");
                online.store(true, Ordering::Relaxed);
                failures_since_warning = 0;
            }
            Ok(Event::Outgoing(Outgoing::Publish(_))) => SimCounters::count(&counters.published),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                debug!(client_id, "disconnected from MQTT broker");
                return;
            }
            Ok(_) => {}
            Err(error) => {
                let was_online = online.swap(false, Ordering::Relaxed);
                SimCounters::count(&counters.errors);
                if *stopping.borrow() {
                    return;
                }
                failures_since_warning += 1;
                // Losing an established connection is news at once; repeated failures are summarised.
                if was_online || last_warning.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    warn!(
                        client_id,
                        %error,
                        failures = failures_since_warning,
                        "MQTT broker at {broker} unreachable; retrying every {RECONNECT_DELAY:?}"
                    );
                    last_warning = Some(Instant::now());
                    failures_since_warning = 0;
                }
                tokio::select! {
                    () = sleep(RECONNECT_DELAY) => {}
                    _ = stopping.changed() => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boundary::Boundary;
    use crate::devices::plan_devices;
    use std::collections::HashMap;
    use std::sync::Mutex;

    const EPOCH_MS: UnixMillis = 1_732_800_000_000;

    /// A clock that follows tokio's (paused) time from a fixed wall-clock start.
    fn test_clock() -> impl Fn() -> UnixMillis {
        let start = Instant::now();
        move || EPOCH_MS + start.elapsed().as_millis() as UnixMillis
    }

    type Sent = Arc<Mutex<Vec<(Duration, String, Vec<u8>)>>>;

    /// Runs the schedule for `how_long` of paused tokio time and returns what was sent, with the offset
    /// from the start at which each reading was sent.
    async fn run_schedule(
        config: &SimConfig,
        how_long: Duration,
    ) -> Vec<(Duration, String, Vec<u8>)> {
        let devices = plan_devices(&Boundary::dongcheng(), config);
        let policy = AnomalyPolicy::for_fleet(config, devices.len());
        let mut groups = schedule(devices, config, 1).unwrap();
        let sent: Sent = Arc::default();
        let (stop_tx, stop_rx) = watch::channel(false);

        let start = Instant::now();
        let sink = {
            let sent = Arc::clone(&sent);
            move |topic: &str, payload: Vec<u8>| {
                sent.lock()
                    .unwrap()
                    .push((start.elapsed(), topic.to_owned(), payload))
            }
        };
        let task = tokio::spawn(publish_on_schedule(
            groups.remove(0),
            config.interval,
            policy,
            stop_rx,
            test_clock(),
            sink,
        ));
        sleep(how_long).await;
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        Arc::try_unwrap(sent).unwrap().into_inner().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn each_device_publishes_once_per_interval_with_staggered_starts() {
        let config = SimConfig {
            devices_per_kind: 5,
            interval: Duration::from_secs(5),
            ..SimConfig::default()
        };
        // Stop just before the fourth round begins: rounds start at 0 s, 5 s and 10 s.
        let sent = run_schedule(&config, Duration::from_millis(14_999)).await;

        let mut per_topic: HashMap<&str, Vec<Duration>> = HashMap::new();
        for (at, topic, payload) in &sent {
            serde_json::from_slice::<serde_json::Value>(payload).unwrap();
            per_topic.entry(topic.as_str()).or_default().push(*at);
        }
        assert_eq!(per_topic.len(), 30);
        for (topic, times) in &per_topic {
            assert_eq!(times.len(), 3, "{topic}: {times:?}");
            assert!(
                times.windows(2).all(|w| w[1] - w[0] == config.interval),
                "{topic}: {times:?}"
            );
        }
        // The first round is spread over the interval rather than sent at once: 30 devices, one per 1/6 s.
        let first_round: Vec<Duration> = sent.iter().take(30).map(|(at, ..)| *at).collect();
        assert_eq!(first_round[0], Duration::ZERO);
        assert!(
            first_round.windows(2).all(|w| w[1] > w[0]),
            "{first_round:?}"
        );
        assert!(
            first_round[29] > Duration::from_millis(4_800) && first_round[29] < config.interval
        );
    }

    #[tokio::test(start_paused = true)]
    async fn anomalies_appear_and_clear_in_a_scheduled_run() {
        // Ten anomalies a minute in a fleet of 30, with short anomalies, over 20 simulated minutes.
        let config = SimConfig {
            devices_per_kind: 5,
            anomalies_per_minute: 10.0,
            anomaly_duration: (Duration::from_secs(30), Duration::from_secs(60)),
            ..SimConfig::default()
        };
        let sent = run_schedule(&config, Duration::from_secs(20 * 60)).await;

        // Follow the manhole covers' tilt: some go past 15 degrees and are later back under 10.
        let mut last_tilt: HashMap<&str, f64> = HashMap::new();
        let (mut opened, mut cleared) = (0, 0);
        for (_, topic, payload) in &sent {
            if !topic.contains("/mc-") {
                continue;
            }
            let body: serde_json::Value = serde_json::from_slice(payload).unwrap();
            let tilt = body
                .get("values")
                .map(|values| values["tilt"].clone())
                .or_else(|| body.get("tilt").cloned())
                .or_else(|| body.get(0).map(|record| record["v"].clone()))
                .and_then(|v| v.as_f64())
                .unwrap();
            let previous = last_tilt.insert(topic, tilt).unwrap_or(0.0);
            if tilt > 15.0 && previous <= 15.0 {
                opened += 1;
            }
            if tilt < 10.0 && previous > 15.0 {
                cleared += 1;
            }
        }
        assert!(opened >= 2, "opened {opened}");
        assert!(cleared >= 1, "cleared {cleared}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_up_publisher_skips_missed_rounds() {
        let config = SimConfig {
            devices_per_kind: 1,
            interval: Duration::from_secs(1),
            ..SimConfig::default()
        };
        let devices = plan_devices(&Boundary::dongcheng(), &config);
        let policy = AnomalyPolicy::for_fleet(&config, devices.len());
        let mut groups = schedule(devices, &config, 1).unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let sent = Arc::new(AtomicU64::new(0));
        let sink = {
            let sent = Arc::clone(&sent);
            move |_: &str, _: Vec<u8>| {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        };
        let task = tokio::spawn(publish_on_schedule(
            groups.remove(0),
            config.interval,
            policy,
            stop_rx,
            test_clock(),
            sink,
        ));

        // Let the first round go out, then jump the clock a minute ahead as if the process had been stopped.
        // Six devices at offsets of 0, 1/6, …, 5/6 s: by 0.9 s all have sent once.
        sleep(Duration::from_millis(900)).await;
        assert_eq!(sent.load(Ordering::Relaxed), 6);
        tokio::time::advance(Duration::from_secs(60)).await;
        sleep(Duration::from_millis(50)).await;
        stop_tx.send(true).unwrap();
        task.await.unwrap();

        // One fresh round for the current interval, not sixty rounds of stale readings.
        assert_eq!(sent.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn devices_are_dealt_over_connections_with_spread_offsets() {
        let config = SimConfig {
            devices_per_kind: 2,
            ..SimConfig::default()
        };
        let devices = plan_devices(&Boundary::dongcheng(), &config);
        let groups = schedule(devices, &config, 4).unwrap();
        assert_eq!(
            groups.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 3, 3, 3]
        );
        let mut offsets: Vec<Duration> = groups.iter().flatten().map(|s| s.offset).collect();
        offsets.sort();
        offsets.dedup();
        assert_eq!(offsets.len(), 12);
        assert!(offsets.iter().all(|offset| *offset < config.interval));
    }

    #[test]
    fn invalid_devices_are_refused() {
        let config = SimConfig::default();
        let device = |id: &str, kind: &str| SimDevice {
            id: id.to_owned(),
            kind: kind.to_owned(),
            lon: 116.41,
            lat: 39.91,
            format: crate::devices::PayloadFormat::FlatJson,
        };
        assert!(schedule(vec![device("mc-1", "manhole_cover")], &config, 1).is_ok());
        assert!(schedule(vec![device("mc/1", "manhole_cover")], &config, 1).is_err());
        assert!(schedule(vec![device("mc+", "manhole_cover")], &config, 1).is_err());
        assert!(schedule(vec![device("cam-1", "camera")], &config, 1).is_err());
    }

    #[test]
    fn device_seeds_differ_by_id_and_run_seed() {
        assert_eq!(device_seed(1, "mc-0001"), device_seed(1, "mc-0001"));
        assert_ne!(device_seed(1, "mc-0001"), device_seed(1, "mc-0002"));
        assert_ne!(device_seed(1, "mc-0001"), device_seed(2, "mc-0001"));
    }
}
