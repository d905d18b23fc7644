//! S1 ingest: simulated devices publishing ~200-byte readings over many MQTT connections into the
//! platform, against the same load published to a bare subscriber through the same broker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cityops_core::{Device, DeviceId, DeviceKind};
use cityops_store::DeviceSource;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use super::report::{Report, Row, cpu_seconds};
use super::{Options, progress, s2_rules};
use crate::app::{App, Mode};
use crate::settings::Settings;

struct Load {
    devices: usize,
    connections: usize,
    messages: u64,
}

/// Where the load goes.
#[derive(Clone)]
enum Target {
    Embedded,
    External(String, u16),
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Embedded => "embedded rumqttd",
            Target::External(..) => "Mosquitto",
        }
    }
}

/// What one run measured.
struct Measured {
    received: u64,
    secs: f64,
    cpu_secs: f64,
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let load = if options.quick {
        Load {
            devices: 500,
            connections: 10,
            messages: 5_000,
        }
    } else {
        Load {
            devices: 5_000,
            connections: 50,
            messages: 300_000,
        }
    };
    let mut targets = vec![Target::Embedded];
    let mut _spawned = None;
    match &options.mosquitto {
        super::MosquittoTarget::None => {}
        super::MosquittoTarget::Spawn => {
            let mosquitto = super::mosquitto::Mosquitto::spawn()?;
            targets.push(Target::External("127.0.0.1".into(), mosquitto.port));
            _spawned = Some(mosquitto);
        }
        super::MosquittoTarget::At(host, port) => {
            targets.push(Target::External(host.clone(), *port))
        }
    }
    let mut report = Report::new(
        "s1-ingest",
        "MQTT ingest: platform vs bare publish → subscribe, same broker",
    );
    let data_dir = tempdir()?;
    for target in &targets {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let platform = run_platform(target, qos, &load, &data_dir).await?;
            let baseline = run_baseline(target, qos, &load).await?;
            let platform_rate = platform.received as f64 / platform.secs;
            let baseline_rate = baseline.received as f64 / baseline.secs;
            let ratio = platform_rate / baseline_rate;
            let (goal, met) = match qos {
                QoS::AtMostOnce => (
                    "≥ 0.8× baseline and ≥ 50,000/s, nothing lost",
                    ratio >= 0.8 && platform_rate >= 50_000.0 && platform.received == load.messages,
                ),
                _ => (
                    "≥ 0.9× baseline, nothing lost",
                    ratio >= 0.9 && platform.received == load.messages,
                ),
            };
            let mut details = serde_json::Map::new();
            details.insert("messages".into(), load.messages.into());
            details.insert("platform_received".into(), platform.received.into());
            details.insert("baseline_received".into(), baseline.received.into());
            details.insert(
                "platform_lost".into(),
                (load.messages - platform.received).into(),
            );
            details.insert(
                "baseline_lost".into(),
                (load.messages - baseline.received).into(),
            );
            details.insert(
                "platform_cpu_us_per_reading".into(),
                (platform.cpu_secs * 1e6 / platform.received.max(1) as f64).into(),
            );
            details.insert(
                "baseline_cpu_us_per_reading".into(),
                (baseline.cpu_secs * 1e6 / baseline.received.max(1) as f64).into(),
            );
            report.rows.push(Row {
                case: format!(
                    "{} QoS {} ({} devices, {} conns)",
                    target.name(),
                    qos as u8,
                    load.devices,
                    load.connections
                ),
                platform: platform_rate,
                baseline: baseline_rate,
                ratio,
                unit: "readings/s".into(),
                goal: goal.into(),
                met: Some(met),
                details,
            });
        }
    }
    report.notes.push(
        "Load generator, broker and platform share this process and its 2 cores; CPU time per reading \
         is the whole process's (load generator and broker included) divided by readings received."
            .into(),
    );
    let report = report.finish(&options.out_dir)?;
    check_nothing_lost(options, &report)?;
    Ok(report)
}

fn tempdir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("cityops-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn device_id(i: usize) -> String {
    format!("bench-{i:05}")
}

async fn run_platform(
    target: &Target,
    qos: QoS,
    load: &Load,
    data_dir: &std::path::Path,
) -> anyhow::Result<Measured> {
    let mut settings = Settings::defaults();
    settings.http = "127.0.0.1:0".parse()?;
    settings.mqtt_listen = "127.0.0.1:0".parse()?;
    settings.data_dir = data_dir.to_path_buf();
    settings.ingest.mqtt_qos = qos as u8;
    settings.ingest.mqtt_client_id = format!("cityops-bench-ingest-{}", std::process::id());
    settings.log = "warn".into();
    if let Target::External(host, port) = target {
        settings.mqtt_url = Some(format!("mqtt://{host}:{port}"));
    }
    let app = App::start(settings, Mode::Serve).await?;
    // Devices persist in the data directory: registered once, loaded at every later start.
    if app.registry.len() < load.devices {
        for i in 0..load.devices {
            let device = Device {
                id: DeviceId::new(&device_id(i))?,
                kind: DeviceKind::new("noise")?,
                lon: 116.41,
                lat: 39.91,
            };
            app.registry.register(device, DeviceSource::Api).await?;
        }
    }
    let stats = app.ingest_stats.clone();
    // Accepted, not received: on a shared broker other clients' messages may arrive too.
    let before = stats.messages_accepted.get();
    let (host, port) = app.mqtt_addr.clone();
    let measured = drive(&host, port, qos, load, move || {
        stats.messages_accepted.get() - before
    })
    .await?;
    app.shutdown().await?;
    Ok(measured)
}

async fn run_baseline(target: &Target, qos: QoS, load: &Load) -> anyhow::Result<Measured> {
    let (host, port) = match target {
        Target::Embedded => {
            let addr = crate::broker::start("127.0.0.1:0".parse()?)?;
            (addr.ip().to_string(), addr.port())
        }
        Target::External(host, port) => (host.clone(), *port),
    };
    let received = Arc::new(AtomicU64::new(0));
    let mut options = MqttOptions::new(
        format!("cityops-bench-baseline-{}", std::process::id()),
        &host,
        port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 16);
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    let counter = received.clone();
    let subscriber = tokio::spawn(async move {
        let mut subscribed = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe("city/v1/#", qos);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed.take() {
                        let _ = tx.send(());
                    }
                }
                // Only this benchmark's devices: a shared broker may carry other traffic.
                Ok(Event::Incoming(Packet::Publish(publish)))
                    if publish.topic.starts_with("city/v1/devices/bench-") =>
                {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed_rx).await??;
    let measured = drive(&host, port, qos, load, move || {
        received.load(Ordering::Relaxed)
    })
    .await;
    subscriber.abort();
    measured
}

/// In quick mode (CI) a lost message is an error, not a figure.
pub(crate) fn check_nothing_lost(options: &Options, report: &Report) -> anyhow::Result<()> {
    if !options.quick {
        return Ok(());
    }
    for row in &report.rows {
        for (key, value) in &row.details {
            if key.ends_with("_lost") && value.as_u64() != Some(0) {
                anyhow::bail!("{}: {} = {value}", row.case, key);
            }
        }
    }
    Ok(())
}

/// Publishes `load.messages` readings over `load.connections` connections as fast as the broker takes
/// them, and waits until `received()` stops growing. The rate is measured from the first publish to the
/// last message received.
async fn drive(
    host: &str,
    port: u16,
    qos: QoS,
    load: &Load,
    received: impl Fn() -> u64,
) -> anyhow::Result<Measured> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let per_connection = load.messages / load.connections as u64;
    let messages = per_connection * load.connections as u64;
    let bar = progress(messages, &format!("S1 QoS {}", qos as u8));
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut publishers = Vec::new();
    for c in 0..load.connections {
        let host = host.to_string();
        let devices: Vec<(String, bytes::Bytes)> = (0..load.devices)
            .filter(|i| i % load.connections == c)
            .map(|i| {
                let id = device_id(i);
                let body = s2_rules::body(&id, 4, i, false, now_ms);
                (format!("city/v1/devices/{id}/up"), bytes::Bytes::from(body))
            })
            .collect();
        publishers.push(tokio::spawn(async move {
            publish_all(&host, port, c, qos, devices, per_connection).await
        }));
    }
    let mut last = 0;
    let mut last_change = Instant::now();
    let mut last_received_at = started;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = received();
        bar.set_position(now);
        if now != last {
            last = now;
            last_change = Instant::now();
            last_received_at = last_change;
        }
        if now >= messages || last_change.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    bar.finish_and_clear();
    for p in publishers {
        p.await??;
    }
    Ok(Measured {
        received: last.min(messages),
        secs: last_received_at
            .duration_since(started)
            .as_secs_f64()
            .max(1e-9),
        cpu_secs: cpu_seconds() - cpu_before,
    })
}

async fn publish_all(
    host: &str,
    port: u16,
    connection: usize,
    qos: QoS,
    devices: Vec<(String, bytes::Bytes)>,
    count: u64,
) -> anyhow::Result<()> {
    let mut options = MqttOptions::new(
        format!("cityops-bench-load-{}-{connection}", std::process::id()),
        host,
        port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    options.set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let acked = Arc::new(AtomicU64::new(0));
    let acks = acked.clone();
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    for i in 0..count as usize {
        let (topic, body) = &devices[i % devices.len()];
        client
            .publish_bytes(topic.as_str(), qos, false, body.clone())
            .await?;
    }
    // At QoS 1, wait for every acknowledgement before leaving, so nothing is still in flight.
    if qos != QoS::AtMostOnce {
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.load(Ordering::Relaxed) < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Give QoS 0 writes time to leave the client before disconnecting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), poller).await;
    Ok(())
}
