//! S1 ingest: simulated devices publishing ~200-byte readings over many MQTT connections into the
//! platform, against the same load published to a bare subscriber through the same broker. For each
//! broker and QoS, a rate-stepped search finds the highest offered rate that is sustained with nothing
//! lost, for the platform and for the baseline: doubling from a start rate until a step loses
//! something (or the load generator cannot offer the rate), then bisecting between the last good
//! and the first bad rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cityops_core::{Device, DeviceId, DeviceKind};
use cityops_store::DeviceSource;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::Serialize;

use super::load::{self, Phase};
use super::report::{Report, Row, process_cpu_seconds, thread_cpu_seconds};
use super::{Options, s2_rules};
use crate::app::{App, Mode};
use crate::settings::Settings;

struct Load {
    devices: usize,
    connections: usize,
    /// Seconds each step offers its rate.
    step_secs: f64,
    start_rate: u64,
    max_rate: u64,
    bisections: u32,
}

/// Where the load goes.
#[derive(Clone)]
enum Target {
    Embedded,
    /// A broker at host and port; with the pid of its process when the bench started it.
    External(String, u16, Option<u32>),
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Embedded => "embedded rumqttd",
            Target::External(..) => "Mosquitto",
        }
    }
}

/// One step of the search: a rate offered for `step_secs`.
#[derive(Debug, Clone, Serialize)]
struct Step {
    rate: u64,
    published: u64,
    received: u64,
    /// QoS 1 acknowledgements the load generator got (= published at QoS 0).
    acked: u64,
    /// Published / time to hand them over: below the rate when the broker pushed back.
    offered_per_sec: f64,
    /// Received / time from the step's start to the last arrival: below the rate when the receiver
    /// fell behind and a broker queued for it.
    delivered_per_sec: f64,
    /// CPU time of this whole process (load generator, receiving side and an embedded broker).
    cpu_us_per_reading: f64,
    cpu_split_us_per_reading: CpuSplit,
    /// Times the embedded broker moved the subscriber ahead in its log during the step (messages
    /// lost for it); always 0 through Mosquitto, which drops past its own queue limits instead.
    broker_cursor_jumps: u64,
    ok: bool,
}

impl Step {
    /// Messages that never arrived, or QoS 1 publishes never acknowledged. A step that failed on
    /// speed alone (offered or taken under [`SHARE`] of the rate) lost nothing.
    fn lost(&self) -> u64 {
        self.published
            .saturating_sub(self.received)
            .max(self.published.saturating_sub(self.acked))
    }
}

/// A step's CPU time per reading received, by part. The load generator runs on threads of its own;
/// the embedded broker's are its server and router threads; the receiver is the rest of this process
/// (the platform, or the bare subscriber, and the bench's own bookkeeping).
#[derive(Debug, Clone, Serialize)]
struct CpuSplit {
    load_generator: f64,
    /// An embedded broker's threads, or a broker process the bench started; unknown otherwise.
    broker: Option<f64>,
    receiver: f64,
}

/// CPU seconds used so far: the whole process, its load generator threads and the broker.
struct Cpu {
    process: f64,
    load_generator: f64,
    broker: Option<f64>,
}

/// Names of the embedded broker's threads (`broker::start` names its server `cityops-v4`).
const BROKER_THREADS: [&str; 2] = ["cityops-v4", "router-"];

/// Name of the load generator's threads.
const LOAD_THREADS: &str = "bench-s1-load";

impl Cpu {
    fn read(target: &Target) -> Self {
        let broker = match target {
            Target::Embedded => Some(thread_cpu_seconds(&BROKER_THREADS)),
            Target::External(_, _, Some(pid)) => Some(process_cpu_seconds(&pid.to_string())),
            Target::External(_, _, None) => None,
        };
        Self {
            process: process_cpu_seconds("self"),
            load_generator: thread_cpu_seconds(&[LOAD_THREADS]),
            broker,
        }
    }

    fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            process: self.process - earlier.process,
            load_generator: self.load_generator - earlier.load_generator,
            broker: self
                .broker
                .zip(earlier.broker)
                .map(|(now, then)| now - then),
        }
    }

    /// The process less its load generator and, for the embedded broker, its broker threads.
    fn receiver(&self, target: &Target) -> f64 {
        let broker = match target {
            Target::Embedded => self.broker.unwrap_or(0.0),
            Target::External(..) => 0.0,
        };
        (self.process - self.load_generator - broker).max(0.0)
    }
}

/// The load generator's runtime: two workers, as this machine has two cores, kept for the process.
fn load_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(LOAD_THREADS)
            .enable_all()
            .build()
            .expect("the load generator's runtime starts")
    })
}

/// What a side has received so far, and how often the embedded broker skipped its subscriber.
type Counts = dyn Fn() -> (u64, u64) + Sync;

/// The outcome of one search.
struct Search {
    steps: Vec<Step>,
    /// The highest rate sustained with nothing lost.
    best: Option<Step>,
    /// Reached `max_rate` without failing: the true figure is higher.
    capped: bool,
}

/// A step holds when everything published arrived, the load generator offered at least this share
/// of the rate, and the receiver took it at least at this share of the rate: from the start of the
/// step to the last arrival, so that a broker queueing what the receiver cannot keep up with (and
/// delivering it seconds after the step) does not pass for a sustained rate.
const SHARE: f64 = 0.9;

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let load = if options.quick {
        Load {
            devices: 500,
            connections: 10,
            step_secs: 1.0,
            start_rate: 2_000,
            max_rate: 4_000,
            bisections: 0,
        }
    } else {
        Load {
            devices: 5_000,
            connections: 50,
            step_secs: 3.0,
            start_rate: 20_000,
            max_rate: 640_000,
            bisections: 3,
        }
    };
    let mut targets = vec![Target::Embedded];
    let mut _spawned = None;
    match &options.mosquitto {
        super::MosquittoTarget::None => {}
        super::MosquittoTarget::Spawn => {
            let mosquitto = super::mosquitto::Mosquitto::spawn()?;
            targets.push(Target::External(
                "127.0.0.1".into(),
                mosquitto.port,
                Some(mosquitto.pid()),
            ));
            _spawned = Some(mosquitto);
        }
        super::MosquittoTarget::At(host, port) => {
            targets.push(Target::External(host.clone(), *port, None))
        }
    }
    let mut report = Report::new(
        "s1-ingest",
        "MQTT ingest: highest lossless sustained rate, platform vs bare publish → subscribe, same broker",
    );
    let data_dir = tempdir()?;
    for target in &targets {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let platform = run_platform(target, qos, &load, &data_dir).await?;
            let baseline = run_baseline(target, qos, &load).await?;
            report
                .rows
                .push(row(target, qos, &load, &platform, &baseline));
        }
    }
    report.notes.push(format!(
        "Each step publishes its rate for {} s over {} connections to {} devices, then waits until \
         nothing more arrives; it holds when every message arrived, at least {share:.0}% of the \
         rate was offered (the broker did not push back) and the receiver took them at {share:.0}% \
         of the rate or more, from the step's start to the last arrival (a broker's queue does not \
         pass for a sustained rate). Search: ×2 from {}/s up to {}/s, then {} \
         bisections. Load generator, broker and platform share this process and its cores; CPU time \
         per reading is the whole process's (load generator and broker included) during the best \
         step, divided by readings received; the split gives the load generator's threads (a \
         runtime of their own), the broker's (its threads, or the Mosquitto process the bench \
         started) and the receiver's: the rest of this process, the platform or the bare \
         subscriber.",
        load.step_secs,
        load.connections,
        load.devices,
        load.start_rate,
        load.max_rate,
        load.bisections,
        share = SHARE * 100.0,
    ));
    let report = report.finish(&options.out_dir)?;
    check_nothing_lost(options, &report)?;
    Ok(report)
}

fn row(target: &Target, qos: QoS, load: &Load, platform: &Search, baseline: &Search) -> Row {
    let rate = |s: &Search| s.best.as_ref().map_or(0, |b| b.rate) as f64;
    let (p, b) = (rate(platform), rate(baseline));
    let ratio = p / b.max(1.0);
    let (goal, met) = match qos {
        QoS::AtMostOnce => (
            "≥ 0.8× baseline and ≥ 50,000/s, nothing lost",
            ratio >= 0.8 && p >= 50_000.0,
        ),
        _ => ("≥ 0.9× baseline, nothing lost", ratio >= 0.9),
    };
    let mut details = serde_json::Map::new();
    let cpu = |s: &Search| s.best.as_ref().map_or(0.0, |b| b.cpu_us_per_reading);
    details.insert("platform_cpu_us_per_reading".into(), cpu(platform).into());
    details.insert("baseline_cpu_us_per_reading".into(), cpu(baseline).into());
    let split = |s: &Search| {
        s.best.as_ref().map_or(serde_json::Value::Null, |b| {
            serde_json::to_value(&b.cpu_split_us_per_reading).unwrap_or_default()
        })
    };
    details.insert("platform_cpu_split_us_per_reading".into(), split(platform));
    details.insert("baseline_cpu_split_us_per_reading".into(), split(baseline));
    details.insert("platform_capped".into(), platform.capped.into());
    details.insert("baseline_capped".into(), baseline.capped.into());
    // Lost at the reported rate: 0 by construction when a rate held; when none did, what the lowest
    // step lost (the quick run fails on it).
    let lost = |s: &Search| match &s.best {
        Some(_) => 0,
        None => s
            .steps
            .iter()
            .min_by_key(|st| st.rate)
            .map_or(1, Step::lost),
    };
    details.insert("platform_lost".into(), lost(platform).into());
    details.insert("baseline_lost".into(), lost(baseline).into());
    details.insert(
        "platform_steps".into(),
        serde_json::to_value(&platform.steps).unwrap_or_default(),
    );
    details.insert(
        "baseline_steps".into(),
        serde_json::to_value(&baseline.steps).unwrap_or_default(),
    );
    Row {
        case: format!(
            "{} QoS {} ({} devices, {} conns)",
            target.name(),
            qos as u8,
            load.devices,
            load.connections
        ),
        platform: p,
        baseline: b,
        ratio,
        unit: "readings/s".into(),
        goal: goal.into(),
        met: Some(met),
        details,
    }
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
) -> anyhow::Result<Search> {
    let mut settings = Settings::defaults();
    settings.http = "127.0.0.1:0".parse()?;
    settings.mqtt_listen = "127.0.0.1:0".parse()?;
    settings.data_dir = data_dir.to_path_buf();
    settings.ingest.mqtt_qos = qos as u8;
    settings.ingest.mqtt_client_id = format!("cityops-bench-ingest-{}", std::process::id());
    settings.log = "warn".into();
    if let Target::External(host, port, _) = target {
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
    // Accepted, not received: on a shared broker other clients' messages may arrive too. A message
    // the platform sheds under overload is counted there and is not accepted: the step fails.
    let (host, port) = app.mqtt_addr.clone();
    let searched = search(&host, port, target, qos, load, "platform", &move || {
        (
            stats.messages_accepted.get(),
            stats.mqtt_broker_cursor_jumps.get(),
        )
    })
    .await;
    app.shutdown().await?;
    searched
}

async fn run_baseline(target: &Target, qos: QoS, load: &Load) -> anyhow::Result<Search> {
    // The baseline's broker alerts are counted as the platform's are.
    let broker_stats = Arc::new(cityops_ingest::IngestStats::default());
    let (host, port) = match target {
        Target::Embedded => {
            let broker = crate::broker::start(
                "127.0.0.1:0".parse()?,
                &crate::settings::Settings::defaults().broker,
                None,
            )?;
            tokio::spawn(crate::broker::watch_alerts(
                broker.alerts,
                broker_stats.clone(),
            ));
            (broker.addr.ip().to_string(), broker.addr.port())
        }
        Target::External(host, port, _) => (host.clone(), *port),
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
    let searched = search(&host, port, target, qos, load, "baseline", &move || {
        (
            received.load(Ordering::Relaxed),
            broker_stats.mqtt_broker_cursor_jumps.get(),
        )
    })
    .await;
    subscriber.abort();
    searched
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

/// Doubles the rate from `start_rate` while steps hold, then bisects; when even the start rate fails,
/// halves it (down to an eighth) to find one that holds.
async fn search(
    host: &str,
    port: u16,
    target: &Target,
    qos: QoS,
    load: &Load,
    side: &str,
    counts: &Counts,
) -> anyhow::Result<Search> {
    let mut steps: Vec<Step> = Vec::new();
    let mut best: Option<Step> = None;
    let mut failed: Option<u64> = None;
    let mut rate = load.start_rate;
    let mut capped = false;
    let run =
        |index: usize, rate: u64| step(host, port, target, qos, load, side, index, rate, counts);
    loop {
        let s = run(steps.len(), rate).await?;
        steps.push(s.clone());
        if s.ok {
            best = Some(s);
            if rate >= load.max_rate {
                capped = true;
                break;
            }
            rate = (rate * 2).min(load.max_rate);
        } else {
            failed = Some(rate);
            break;
        }
    }
    while best.is_none() && rate > load.start_rate / 8 {
        rate /= 2;
        let s = run(steps.len(), rate).await?;
        steps.push(s.clone());
        if s.ok {
            best = Some(s);
        } else {
            failed = Some(rate);
        }
    }
    for _ in 0..load.bisections {
        let (Some(good), Some(bad)) = (&best, failed) else {
            break;
        };
        let mid = (good.rate + bad) / 2;
        if bad - good.rate < good.rate / 20 {
            break;
        }
        let s = run(steps.len(), mid).await?;
        steps.push(s.clone());
        if s.ok {
            best = Some(s);
        } else {
            failed = Some(mid);
        }
    }
    Ok(Search {
        steps,
        best,
        capped,
    })
}

/// Offers `rate` for `step_secs` and waits until nothing more arrives (2 s quiet).
#[allow(clippy::too_many_arguments)]
async fn step(
    host: &str,
    port: u16,
    target: &Target,
    qos: QoS,
    load: &Load,
    side: &str,
    index: usize,
    rate: u64,
    counts: &Counts,
) -> anyhow::Result<Step> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let connections = load.connections;
    let bodies: Vec<Vec<(String, bytes::Bytes)>> = (0..connections)
        .map(|c| {
            (0..load.devices)
                .filter(|i| i % connections == c)
                .map(|i| {
                    let id = device_id(i);
                    let body = s2_rules::body(&id, 4, i, false, now_ms);
                    (format!("city/v1/devices/{id}/up"), bytes::Bytes::from(body))
                })
                .collect()
        })
        .collect();
    let make: Arc<load::MakeMessage> = Arc::new(move |c: usize, j: u64| {
        let mine = &bodies[c];
        let (topic, body) = &mine[(j % mine.len() as u64) as usize];
        (topic.clone(), body.clone())
    });
    let per_sec = rate as f64 / connections as f64;
    let phases = [Phase {
        per_sec,
        count: (per_sec * load.step_secs).round().max(1.0) as u64,
    }];
    let (before, jumps_before) = counts();
    let cpu_before = Cpu::read(target);
    let started = std::time::Instant::now();
    // On a runtime of its own, so that its CPU time is told apart from the receiving side's.
    let mut publish = load_runtime().spawn(load::publish_owned(
        host.to_string(),
        port,
        format!("cityops-bench-s1-{side}-{}-{index}", qos as u8),
        connections,
        qos,
        phases.to_vec(),
        make,
    ));
    // Arrivals are watched while the load runs as well: the last one ends the step, not the load
    // generator's own wait before it disconnects.
    let mut seen = (before, started);
    let sent = loop {
        tokio::select! {
            done = &mut publish => break done??,
            _ = tokio::time::sleep(Duration::from_millis(5)) => load::observe(&mut seen, counts().0),
        }
    };
    let (now, last_arrival) = load::settle(
        before + sent.published,
        Duration::from_secs(2),
        seen,
        || counts().0,
    )
    .await;
    let received = now - before;
    let delivered_per_sec =
        received as f64 / last_arrival.duration_since(started).as_secs_f64().max(1e-9);
    let cpu = Cpu::read(target).since(&cpu_before);
    let per_reading = |secs: f64| secs * 1e6 / received.max(1) as f64;
    // rumqttd pushes its alerts once a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let broker_cursor_jumps = counts().1 - jumps_before;
    let offered_per_sec = sent.published as f64 / sent.secs.max(1e-9);
    let ok = received >= sent.published
        && sent.acked >= sent.published
        && offered_per_sec >= SHARE * rate as f64
        && delivered_per_sec >= SHARE * rate as f64;
    let split = CpuSplit {
        load_generator: per_reading(cpu.load_generator),
        broker: cpu.broker.map(per_reading),
        receiver: per_reading(cpu.receiver(target)),
    };
    println!(
        "S1 {side} QoS {} step {index}: {rate}/s offered {offered_per_sec:.0}/s, {received} of {} \
         arrived at {delivered_per_sec:.0}/s{}{}; CPU µs per reading: load {:.1}, broker {}, receiver {:.1}",
        qos as u8,
        sent.published,
        if broker_cursor_jumps > 0 {
            format!(" ({broker_cursor_jumps} broker cursor jumps)")
        } else {
            String::new()
        },
        if ok { "" } else { " — does not hold" },
        split.load_generator,
        split
            .broker
            .map_or_else(|| "?".to_string(), |b| format!("{b:.1}")),
        split.receiver,
    );
    Ok(Step {
        rate,
        published: sent.published,
        received,
        acked: sent.acked,
        offered_per_sec,
        delivered_per_sec,
        cpu_us_per_reading: per_reading(cpu.process),
        cpu_split_us_per_reading: split,
        broker_cursor_jumps,
        ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(published: u64, received: u64, acked: u64, ok: bool) -> Step {
        Step {
            rate: 1_000,
            published,
            received,
            acked,
            offered_per_sec: 1_000.0,
            delivered_per_sec: 500.0,
            cpu_us_per_reading: 0.0,
            cpu_split_us_per_reading: CpuSplit {
                load_generator: 0.0,
                broker: None,
                receiver: 0.0,
            },
            broker_cursor_jumps: 0,
            ok,
        }
    }

    #[test]
    fn a_step_too_slow_loses_nothing_a_missing_message_or_acknowledgement_is_lost() {
        // Everything arrived and was acknowledged, only too slowly: a speed figure, not a loss.
        assert_eq!(step(3_000, 3_000, 3_000, false).lost(), 0);
        assert_eq!(step(3_000, 2_990, 3_000, false).lost(), 10);
        assert_eq!(step(3_000, 3_000, 2_900, false).lost(), 100);
        // When no step held, the row reports the lowest rate's loss (the quick run fails on it).
        let slow = |rate: u64, lost: u64| Step {
            rate,
            ..step(rate, rate - lost, rate, false)
        };
        let search = |steps: Vec<Step>| Search {
            steps,
            best: None,
            capped: false,
        };
        let load = Load {
            devices: 10,
            connections: 1,
            step_secs: 1.0,
            start_rate: 2_000,
            max_rate: 4_000,
            bisections: 0,
        };
        let row = row(
            &Target::Embedded,
            QoS::AtMostOnce,
            &load,
            &search(vec![slow(2_000, 0), slow(1_000, 0)]),
            &search(vec![slow(2_000, 5), slow(1_000, 1)]),
        );
        assert_eq!(row.details["platform_lost"], 0);
        assert_eq!(row.details["baseline_lost"], 1);
    }
}
