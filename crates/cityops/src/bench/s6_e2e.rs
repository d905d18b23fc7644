//! S6 end to end: a sensor publish over MQTT at QoS 1 through the embedded broker → adapter → rule →
//! incident stored durably → bus → every `/ws` dashboard client, against the same publishes to a bare
//! rumqttc subscriber through the same kind of broker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cityops_core::{Device, DeviceId, DeviceKind};
use cityops_ingest::rules::CaseFiling;
use cityops_store::DeviceSource;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use super::Options;
use super::load::{self, Phase};
use super::platform::{Placement, Platform};
use super::report::{Report, Row, histogram};
use super::s5_fanout::Tally;
use crate::app::{App, Mode};
use crate::settings::Settings;

struct Load {
    devices: usize,
    clients: usize,
    connections: usize,
    rates: &'static [u64],
    secs: u64,
    placement: Placement,
}

/// Above the manhole rule's threshold (15) and below its clear level (10): each reading opens or
/// clears one incident. The publish time (µs since the run's epoch, < 10⁹) rides in the fraction,
/// since `incident.cleared` carries the clearing value but no reading time.
const OPEN_BASE: f64 = 20.0;
const CLEAR_BASE: f64 = 1.0;

pub(crate) fn encode(abnormal: bool, t_us: u64) -> f64 {
    (if abnormal { OPEN_BASE } else { CLEAR_BASE }) + t_us as f64 * 1e-9
}

pub(crate) fn decode(value: f64) -> u64 {
    let base = if value >= OPEN_BASE {
        OPEN_BASE
    } else {
        CLEAR_BASE
    };
    ((value - base) * 1e9).round().max(0.0) as u64
}

pub(crate) fn device_id(i: usize) -> String {
    format!("bench-mh-{i:05}")
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let loads = if options.quick {
        vec![
            Load {
                devices: 100,
                clients: 10,
                connections: 2,
                rates: &[100],
                secs: 2,
                placement: Placement::InProcess,
            },
            // The platform in a process of its own, as the memory step runs it.
            Load {
                devices: 100,
                clients: 10,
                connections: 2,
                rates: &[100],
                secs: 2,
                placement: Placement::Child,
            },
        ]
    } else {
        vec![
            Load {
                devices: 1_000,
                clients: 100,
                connections: 4,
                rates: &[1_000, 5_000],
                secs: 3,
                placement: Placement::InProcess,
            },
            // The memory goal's size: 5,000 devices and 1,000 dashboard clients, with the platform in
            // a process of its own so that its memory is measured apart from the load generator and
            // the clients; 20 s, so the bus ring (16,384 events) is full by the end.
            Load {
                devices: 5_000,
                clients: 1_000,
                connections: 10,
                rates: &[1_000],
                secs: 20,
                placement: Placement::Child,
            },
        ]
    };
    let mut report = Report::new(
        "s6-e2e",
        "end to end: MQTT QoS 1 → rule → stored incident → /ws vs bare MQTT publish → subscribe",
    );
    let epoch = Instant::now();
    let data_dir = std::env::temp_dir().join(format!("cityops-bench-s6-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir)?;
    let mut platform_all = Vec::new();
    let mut baseline_all = Vec::new();
    for (load, &rate) in loads
        .iter()
        .flat_map(|load| load.rates.iter().map(move |rate| (load, rate)))
    {
        let platform = run_platform(load, rate, epoch, &data_dir).await?;
        let baseline = run_baseline(load, rate, epoch).await?;
        let mut p_lat = platform.latencies;
        let mut b_lat = baseline.latencies;
        let label = format!(
            "{rate} readings/s, {} clients, {} devices{}",
            load.clients,
            load.devices,
            match load.placement {
                Placement::InProcess => "",
                Placement::Child => ", platform in its own process",
            }
        );
        let (ph, pp) = histogram(&format!("cityops publish → ws, {label}"), &mut p_lat);
        let (bh, bp) = histogram(
            &format!("baseline publish → subscriber, {label}"),
            &mut b_lat,
        );
        report.histograms.push(ph);
        report.histograms.push(bh);
        platform_all.extend_from_slice(&p_lat);
        baseline_all.extend_from_slice(&b_lat);
        let mut details = serde_json::Map::new();
        details.insert("readings".into(), platform.readings.into());
        details.insert("clients".into(), load.clients.into());
        details.insert("devices".into(), load.devices.into());
        details.insert(
            "platform_process".into(),
            (load.placement == Placement::Child).into(),
        );
        // The platform's process with everything up; when the platform runs in the bench's process
        // this includes the load generator and the clients' side of every websocket.
        details.insert("rss_mb_with_everything_up".into(), platform.rss_mb.into());
        details.insert(
            "platform_peak_rss_mb".into(),
            platform.platform_peak_rss_mb.into(),
        );
        details.insert("bench_rss_mb".into(), platform.bench_rss_mb.into());
        details.insert("platform_incident_events".into(), platform.events.into());
        details.insert("platform_ws_delivered".into(), platform.delivered.into());
        details.insert("platform_ws_resyncs".into(), platform.resyncs.into());
        details.insert("platform_ws_missed".into(), platform.missed.into());
        details.insert("platform_secs".into(), platform.secs.into());
        details.insert("store_batches".into(), platform.batches.into());
        details.insert(
            "store_changes_per_batch".into(),
            (platform.events as f64 / platform.batches.max(1) as f64).into(),
        );
        details.insert(
            "store_commit_ms_mean".into(),
            (platform.commit_us as f64 / 1000.0 / platform.batches.max(1) as f64).into(),
        );
        details.insert(
            "store_commit_busy_share".into(),
            (platform.commit_us as f64 / 1e6 / platform.secs.max(1e-9)).into(),
        );
        // A reading that produced no incident event (dropped by the broker or the pipeline).
        details.insert(
            "readings_lost".into(),
            platform.readings.saturating_sub(platform.events).into(),
        );
        // An incident event a client neither received nor was told about by a resync.
        details.insert("ws_lost".into(), platform.silent.into());
        details.insert("baseline_received".into(), baseline.received.into());
        details.insert(
            "baseline_lost".into(),
            baseline.readings.saturating_sub(baseline.received).into(),
        );
        for (key, v) in [
            ("platform_p50_us", pp.p50),
            ("platform_p99_us", pp.p99),
            ("platform_max_us", pp.max),
            ("baseline_p50_us", bp.p50),
            ("baseline_p99_us", bp.p99),
            ("baseline_max_us", bp.max),
        ] {
            details.insert(key.into(), v.into());
        }
        let nothing_lost = platform.readings == platform.events && platform.silent == 0;
        let heavy = rate >= 5_000;
        report.rows.push(Row {
            case: format!("{label}: p50"),
            platform: pp.p50.max(1) as f64 / 1000.0,
            baseline: bp.p50.max(1) as f64 / 1000.0,
            ratio: pp.p50.max(1) as f64 / bp.p50.max(1) as f64,
            unit: "ms".into(),
            goal: "p50 ≤ 5 ms at 5,000/s, 100 clients, nothing lost".into(),
            met: heavy.then_some(pp.p50 <= 5_000 && nothing_lost),
            details,
        });
        report.rows.push(Row {
            case: format!("{label}: p99"),
            platform: pp.p99.max(1) as f64 / 1000.0,
            baseline: bp.p99.max(1) as f64 / 1000.0,
            ratio: pp.p99.max(1) as f64 / bp.p99.max(1) as f64,
            unit: "ms".into(),
            goal: "p99 ≤ 20 ms at 5,000/s, 100 clients, nothing lost".into(),
            met: heavy.then_some(pp.p99 <= 20_000 && nothing_lost),
            details: serde_json::Map::new(),
        });
        report.rows.push(Row {
            case: format!("{label}: ws deliveries"),
            platform: platform.delivered as f64 / platform.secs.max(1e-9),
            baseline: baseline.received as f64 / baseline.secs.max(1e-9),
            ratio: (platform.delivered as f64 / platform.secs.max(1e-9))
                / (baseline.received as f64 / baseline.secs.max(1e-9)).max(1e-9),
            unit: "msg/s".into(),
            goal: "cityops: incident frames to all clients; baseline: readings to one subscriber"
                .into(),
            met: None,
            details: serde_json::Map::new(),
        });
        if load.placement == Placement::Child {
            // The memory goal: the platform's own process (embedded broker included), its peak over
            // the step with every device publishing and every client connected.
            let memory_goal = load.devices >= 5_000 && load.clients >= 1_000;
            report.rows.push(Row {
                case: format!("{label}: platform peak RSS"),
                platform: platform.platform_peak_rss_mb,
                baseline: platform.bench_rss_mb,
                ratio: platform.platform_peak_rss_mb / platform.bench_rss_mb.max(1e-9),
                unit: "MB".into(),
                goal: "≤ 200 MB for 5,000 devices and 1,000 clients (baseline column: the bench \
                       process, load generator and clients)"
                    .into(),
                met: (memory_goal && !options.quick)
                    .then_some(platform.platform_peak_rss_mb <= 200.0 && nothing_lost),
                details: serde_json::Map::new(),
            });
        }
    }
    let (h, _) = histogram("cityops publish → ws, all rates", &mut platform_all);
    report.histograms.push(h);
    let (h, _) = histogram(
        "baseline publish → subscriber, all rates",
        &mut baseline_all,
    );
    report.histograms.push(h);
    report.notes.push(
        "Load generator, platform (with its embedded broker) and websocket clients share this process, \
         except in the steps marked \"platform in its own process\" (`cityops bench-platform`, read \
         through /metrics), whose memory is the platform's alone. The \
         manhole rule files no case here (case = none) so the path measured is reading → rule → \
         stored incident → bus → /ws, not the case workflow. Each device alternates tilt 20.x / 1.x, \
         so every reading opens or clears an incident; the publish time rides in the value's fraction."
            .into(),
    );
    let _ = std::fs::remove_dir_all(&data_dir);
    let report = report.finish(&options.out_dir)?;
    super::s1_ingest::check_nothing_lost(options, &report)?;
    Ok(report)
}

struct PlatformRun {
    readings: u64,
    events: u64,
    delivered: u64,
    missed: u64,
    resyncs: u64,
    silent: u64,
    secs: f64,
    latencies: Vec<u64>,
    /// Store writer transactions and the time spent in them (waiting for the write turn included).
    batches: u64,
    commit_us: u64,
    /// Resident memory of the platform's process with every client still up, at the end of the run
    /// (MB): the whole bench process when the platform runs in it.
    rss_mb: f64,
    /// Peak resident memory of the platform's process (MB; in-process: the bench's peak so far).
    platform_peak_rss_mb: f64,
    /// Resident memory of the bench's process at the end of the run (MB).
    bench_rss_mb: f64,
}

async fn run_platform(
    load: &Load,
    rate: u64,
    epoch: Instant,
    data_dir: &std::path::Path,
) -> anyhow::Result<PlatformRun> {
    let platform =
        Platform::start(load.placement, data_dir, load.devices, "cityops-bench-s6").await?;
    let clients = platform
        .connect_incident_dashboards(load.clients, epoch)
        .await?;
    let counters_before = platform.counters().await?;
    let before = clients.snapshot();
    let (host, port) = platform.mqtt_addr();
    let started = Instant::now();
    let readings = publish(&host, port, load, rate, epoch).await?;
    // Wait until every reading has become an event and every client has it (or 5 s without progress).
    // A platform in its own process is asked over `/metrics`, so less often.
    let poll = match load.placement {
        Placement::InProcess => Duration::from_millis(5),
        Placement::Child => Duration::from_millis(25),
    };
    let mut last = (0, 0);
    let mut last_change = Instant::now();
    let mut finished = Instant::now();
    loop {
        let produced = platform.counters().await?.since(&counters_before).events;
        let reached: u64 = clients
            .snapshot()
            .iter()
            .zip(&before)
            .map(|(now, was)| (now.0 - was.0) + (now.1 - was.1))
            .sum();
        if (produced, reached) != last {
            last = (produced, reached);
            last_change = Instant::now();
            finished = last_change;
        }
        if (produced >= readings && reached >= produced * load.clients as u64)
            || last_change.elapsed() > Duration::from_secs(5)
        {
            break;
        }
        tokio::time::sleep(poll).await;
    }
    let counters = platform.counters().await?.since(&counters_before);
    let produced = counters.events;
    let Tally {
        delivered,
        missed,
        resyncs,
        silent,
    } = clients.tally(&before, produced);
    let latencies = clients.drain_latencies();
    let rss_mb = platform.rss_mb();
    let platform_peak_rss_mb = platform.peak_rss_mb();
    let bench_rss_mb = super::report::rss_mb();
    drop(clients);
    platform.shutdown().await?;
    Ok(PlatformRun {
        readings,
        events: produced,
        delivered,
        missed,
        resyncs,
        silent,
        secs: finished.duration_since(started).as_secs_f64(),
        latencies,
        batches: counters.store_batches,
        commit_us: counters.store_commit_us,
        rss_mb,
        platform_peak_rss_mb,
        bench_rss_mb,
    })
}

/// The platform as S6 and S7 run it: embedded broker, QoS 1 ingest, the manhole rule filing no case,
/// and `devices` manhole covers registered (once per data directory).
pub(crate) async fn start_platform(
    data_dir: &std::path::Path,
    devices: usize,
    client_id: &str,
) -> anyhow::Result<App> {
    let mut settings = Settings::defaults();
    settings.http = "127.0.0.1:0".parse()?;
    settings.mqtt_listen = "127.0.0.1:0".parse()?;
    settings.data_dir = data_dir.to_path_buf();
    settings.ingest.mqtt_qos = 1;
    settings.ingest.mqtt_client_id = format!("{client_id}-{}", std::process::id());
    settings.log = "warn".into();
    for rule in &mut settings.rules {
        if rule.kind == "manhole_cover" {
            rule.case = CaseFiling::None;
        }
    }
    let app = App::start(settings, Mode::Serve).await?;
    // Devices persist in the data directory: registered at the first start, loaded at later ones.
    if app.registry.len() < devices {
        for i in 0..devices {
            let device = Device {
                id: DeviceId::new(&device_id(i))?,
                kind: DeviceKind::new("manhole_cover")?,
                lon: 116.41 + (i % 100) as f64 * 1e-4,
                lat: 39.91 + (i / 100) as f64 * 1e-4,
            };
            app.registry.register(device, DeviceSource::Api).await?;
        }
    }
    Ok(app)
}

struct BaselineRun {
    readings: u64,
    received: u64,
    secs: f64,
    latencies: Vec<u64>,
}

async fn run_baseline(load: &Load, rate: u64, epoch: Instant) -> anyhow::Result<BaselineRun> {
    let addr =
        crate::broker::start("127.0.0.1:0".parse()?, &Settings::defaults().broker, None)?.addr;
    let (host, port) = (addr.ip().to_string(), addr.port());
    let received = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut options = MqttOptions::new(
        format!("cityops-bench-s6-baseline-{}", std::process::id()),
        &host,
        port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    let (counter, lat) = (received.clone(), latencies.clone());
    let subscriber = tokio::spawn(async move {
        let mut subscribed = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe("city/v1/devices/+/up", QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let now = epoch.elapsed().as_micros() as u64;
                    // The same substring scan as the websocket clients, for the same reason.
                    let text = String::from_utf8_lossy(&publish.payload);
                    if let Some(v) = number_after(&text, r#""tilt":"#) {
                        lat.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(now.saturating_sub(decode(v)));
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed_rx).await??;
    let started = Instant::now();
    let readings = publish(&host, port, load, rate, epoch).await?;
    let mut last = 0;
    let mut last_change = Instant::now();
    let mut finished = Instant::now();
    loop {
        let now = received.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_change = Instant::now();
            finished = last_change;
        }
        if now >= readings || last_change.elapsed() > Duration::from_secs(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    subscriber.abort();
    let latencies = std::mem::take(&mut *latencies.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(BaselineRun {
        readings,
        received: received.load(Ordering::Relaxed),
        secs: finished.duration_since(started).as_secs_f64(),
        latencies,
    })
}

fn number_after(text: &str, key: &str) -> Option<f64> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Publishes about `rate × secs` readings at `rate` over `load.connections` QoS 1 connections and
/// waits for every acknowledgement; returns how many. Each connection's share is rounded up to an
/// even number of readings per device, so every device ends with its incident cleared.
async fn publish(
    host: &str,
    port: u16,
    load: &Load,
    rate: u64,
    epoch: Instant,
) -> anyhow::Result<u64> {
    let connections = load.connections;
    // Every connection gets the same number of devices when `devices` is a multiple of `connections`.
    let per_connection = load.devices.div_ceil(connections) as u64;
    let round = 2 * per_connection;
    let share = (rate * load.secs / connections as u64).div_ceil(round) * round;
    let phases = [Phase {
        per_sec: rate as f64 / connections as f64,
        count: share,
    }];
    let sent = load::publish(
        host,
        port,
        "cityops-bench-s6-load",
        connections,
        QoS::AtLeastOnce,
        &phases,
        manhole_messages(load.devices, connections, epoch),
    )
    .await?;
    Ok(sent.published)
}

/// Connection `c` publishes for the devices `i` with `i % connections == c`, in turn; the k-th
/// reading of a device crosses the manhole rule when k is even and clears it when odd, and carries
/// its publish time (see [`encode`]).
pub(crate) fn manhole_messages(
    devices: usize,
    connections: usize,
    epoch: Instant,
) -> Arc<load::MakeMessage> {
    let topics: Vec<Vec<String>> = (0..connections)
        .map(|c| {
            (0..devices)
                .filter(|i| i % connections == c)
                .map(|i| format!("city/v1/devices/{}/up", device_id(i)))
                .collect()
        })
        .collect();
    Arc::new(move |c: usize, j: u64| {
        let mine = &topics[c];
        let n = mine.len().max(1) as u64;
        let topic = mine[(j % n) as usize].clone();
        let abnormal = (j / n).is_multiple_of(2);
        let value = encode(abnormal, epoch.elapsed().as_micros() as u64);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let body = format!(r#"{{"ts":{now_ms},"values":{{"tilt":{value}}}}}"#);
        (topic, bytes::Bytes::from(body))
    })
}
