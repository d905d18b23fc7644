//! S7 overload: the platform as S6 runs it (embedded broker, QoS 1 ingest, rule, durable incident,
//! bus, `/ws` clients) under 1× load, then 10×, then 1× again. Measured every second: end-to-end
//! latency of what the clients receive, resident memory, messages shed by ingest and events the
//! clients were told they missed. The baseline is the platform's own first 1× phase.

use std::time::{Duration, Instant};

use rumqttc::QoS;
use serde::Serialize;

use super::load::{self, Phase};
use super::platform::{Placement, Platform};
use super::report::{Report, Row, Series, histogram, rss_mb};
use super::s5_fanout::Tally;
use super::s6_e2e::manhole_messages;
use super::{Options, progress};

struct Load {
    devices: usize,
    clients: usize,
    connections: usize,
    /// Readings/s at 1×.
    base_rate: u64,
    /// Seconds of 1×, 10× and 1× again.
    secs: [u64; 3],
}

/// One second of the run, as the clients and the process saw it.
#[derive(Debug, Clone, Serialize)]
struct Second {
    /// Seconds since the load started (the end of this second).
    t: u64,
    /// 0 = first 1×, 1 = 10×, 2 = 1× again (by the publishers' schedule).
    phase: usize,
    frames: u64,
    p50_us: u64,
    p99_us: u64,
    /// The platform's process.
    rss_mb: f64,
    /// The bench's process: load generator and clients.
    bench_rss_mb: f64,
    shed_total: u64,
    ws_missed_total: u64,
    /// Where a backlog sits: messages the ingest reader took from the broker, incident events
    /// committed and published, and frames the clients received, each cumulative since the start.
    ingest_received_total: u64,
    events_total: u64,
    ws_delivered_total: u64,
    /// Events held in the bus ring and waiting for the event log writer, at the end of the second.
    bus_depth: u64,
    log_queue: u64,
}

/// Per-second p99 must stay within this factor of the first 1× level to count as recovered.
const RECOVERED: f64 = 1.2;
/// …for this many seconds in a row.
const RECOVERED_FOR: usize = 3;
/// Phase latency levels keep one in this many of each second's sorted latencies.
const SAMPLE: usize = 50;
/// The first seconds of the first 1× phase are warm-up, not the level.
const WARM_UP: u64 = 3;

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let load = if options.quick {
        Load {
            devices: 100,
            clients: 10,
            connections: 2,
            base_rate: 100,
            secs: [4, 3, 5],
        }
    } else {
        Load {
            devices: 1_000,
            clients: 100,
            connections: 4,
            base_rate: 1_000,
            secs: [15, 15, 40],
        }
    };
    let mut report = Report::new(
        "s7-overload",
        "overload: 1× → 10× → 1× through MQTT → rule → stored incident → /ws",
    );
    let epoch = Instant::now();
    let data_dir = std::env::temp_dir().join(format!("cityops-bench-s7-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir)?;
    // The platform runs in a process of its own, so the memory measured is the platform's alone
    // (embedded broker included), not the load generator's and the clients'.
    let platform = Platform::start(
        Placement::Child,
        &data_dir,
        load.devices,
        "cityops-bench-s7",
    )
    .await?;
    let clients = platform
        .connect_incident_dashboards(load.clients, epoch)
        .await?;
    let counters_before = platform.counters().await?;
    let before = clients.snapshot();
    let rss_start = platform.rss_mb();

    let c = load.connections as f64;
    let phases: Vec<Phase> = [1u64, 10, 1]
        .iter()
        .zip(load.secs)
        .map(|(factor, secs)| {
            let per_sec = (load.base_rate * factor) as f64 / c;
            Phase {
                per_sec,
                count: (per_sec * secs as f64).round() as u64,
            }
        })
        .collect();
    let (host, port) = platform.mqtt_addr();
    let make = manhole_messages(load.devices, load.connections, epoch);
    let connections = load.connections;
    let mut publisher = tokio::spawn(async move {
        load::publish(
            &host,
            port,
            "cityops-bench-s7-load",
            connections,
            QoS::AtLeastOnce,
            &phases,
            make,
        )
        .await
    });

    // Sample every second until the publishers are done, then a few quiet seconds for the tail.
    let total_secs: u64 = load.secs.iter().sum();
    let bar = progress(total_secs, "S7");
    let started = Instant::now();
    let mut seconds = Vec::new();
    let mut next = started + Duration::from_secs(1);
    let mut sent = None;
    let mut tail = 0;
    let mut phase_latencies: [Vec<u64>; 3] = Default::default();
    loop {
        tokio::time::sleep_until(next.into()).await;
        next += Duration::from_secs(1);
        let t = seconds.len() as u64 + 1;
        let mut lat = clients.drain_latencies();
        let frames = lat.len() as u64;
        let phase = match t {
            t if t <= load.secs[0] => 0,
            t if t <= load.secs[0] + load.secs[1] => 1,
            _ => 2,
        };
        let (_, pct) = histogram("", &mut lat);
        if phase != 0 || t > WARM_UP {
            // Every SAMPLE-th of the sorted latencies: the same quantiles, a fraction of the memory
            // (all of them would be ~160 MB over a full run and would show in the RSS measured).
            phase_latencies[phase].extend(lat.iter().step_by(SAMPLE));
        }
        let counters = platform.counters().await?.since(&counters_before);
        let snapshot = clients.snapshot();
        let missed: u64 = snapshot
            .iter()
            .zip(&before)
            .map(|(now, was)| now.1 - was.1)
            .sum();
        let ws_delivered_total: u64 = snapshot
            .iter()
            .zip(&before)
            .map(|(now, was)| now.0 - was.0)
            .sum();
        seconds.push(Second {
            t,
            phase,
            frames,
            p50_us: pct.p50,
            p99_us: pct.p99,
            rss_mb: platform.rss_mb(),
            bench_rss_mb: rss_mb(),
            shed_total: counters.shed,
            ws_missed_total: missed,
            ingest_received_total: counters.received,
            events_total: counters.events,
            ws_delivered_total,
            bus_depth: counters.bus_depth,
            log_queue: counters.log_queue,
        });
        bar.set_position(t.min(total_secs));
        if sent.is_none() && publisher.is_finished() {
            sent = Some((&mut publisher).await??);
        }
        if sent.is_some() {
            tail += 1;
            // Done once every reading became an event and reached every client, or after 10 s.
            let produced = counters.events;
            let reached: u64 = clients
                .snapshot()
                .iter()
                .zip(&before)
                .map(|(now, was)| (now.0 - was.0) + (now.1 - was.1))
                .sum();
            let all_in = counters.received >= sent.map_or(0, |s| s.acked);
            if (all_in && reached >= produced * load.clients as u64) || tail >= 10 {
                break;
            }
        }
        anyhow::ensure!(
            t < total_secs + 120,
            "S7: the publishers did not finish within 120 s of their schedule"
        );
    }
    bar.finish_and_clear();
    let sent = sent.unwrap_or_default();

    // Accounting: every acknowledged publish reached ingest; every message ingest received was
    // accepted, rejected or shed (counted); every incident event reached every client or was
    // announced to it by a resync.
    let counters = platform.counters().await?.since(&counters_before);
    let (received, accepted, shed, rejected, produced) = (
        counters.received,
        counters.accepted,
        counters.shed,
        counters.rejected,
        counters.events,
    );
    let Tally {
        delivered,
        missed,
        resyncs,
        silent,
    } = clients.tally(&before, produced);
    let in_flight = received.saturating_sub(accepted + shed + rejected);
    let platform_peak_rss = platform.peak_rss_mb();
    drop(clients);
    platform.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data_dir);

    // Latency: the first 1× level, the 10× level, the level at the end, and when p99 came back.
    let mut levels = Vec::new();
    for (i, lat) in phase_latencies.iter_mut().enumerate() {
        let label = ["first 1×", "10×", "1× again"][i];
        let (h, p) = histogram(&format!("publish → ws, {label}"), lat);
        report.histograms.push(h);
        levels.push(p);
    }
    let level_p99 = levels[0].p99.max(1) as f64;
    let drop_at = load.secs[0] + load.secs[1];
    let after_drop: Vec<&Second> = seconds.iter().filter(|s| s.t > drop_at).collect();
    let ok = |s: &Second| s.frames > 0 && (s.p99_us as f64) <= RECOVERED * level_p99;
    let recovered_at = (0..after_drop.len())
        .find(|&i| {
            i + RECOVERED_FOR <= after_drop.len()
                && after_drop[i..i + RECOVERED_FOR].iter().all(|s| ok(s))
        })
        .map(|i| after_drop[i].t - 1 - drop_at);
    let rss_peak = |phase: usize| {
        seconds
            .iter()
            .filter(|s| s.phase == phase)
            .map(|s| s.rss_mb)
            .fold(0.0, f64::max)
    };
    let (rss_1x, rss_10x, rss_1x_again) = (rss_peak(0), rss_peak(1), rss_peak(2));
    // Bounded: during 10× the resident size levels off (its second half grows < 10% over its first)
    // and stays within the 200 MB budget.
    let overload: Vec<f64> = seconds
        .iter()
        .filter(|s| s.phase == 1)
        .map(|s| s.rss_mb)
        .collect();
    let half = overload.len() / 2;
    let first_half = overload[..half].iter().copied().fold(0.0, f64::max);
    let second_half = overload[half..].iter().copied().fold(0.0, f64::max);
    let levelled = first_half <= 0.0 || second_half <= first_half * 1.10;

    let broker_lost = sent.acked.saturating_sub(received);
    let mut details = serde_json::Map::new();
    for (key, v) in [
        ("published", sent.published),
        ("acked", sent.acked),
        ("ingest_received", received),
        ("ingest_accepted", accepted),
        ("ingest_shed", shed),
        ("ingest_rejected", rejected),
        ("incident_events", produced),
        ("ws_delivered", delivered),
        ("ws_missed_announced", missed),
        ("ws_resyncs", resyncs),
        // Acknowledged by the broker but never seen by ingest: a loss nobody counted.
        ("broker_lost", broker_lost),
        // Received by ingest but neither accepted, rejected nor shed by the end.
        ("ingest_lost", in_flight),
        // An event a client neither received nor was told about.
        ("ws_lost", silent),
    ] {
        details.insert(key.into(), v.into());
    }
    details.insert("base_rate".into(), load.base_rate.into());
    details.insert("phase_secs".into(), serde_json::json!(load.secs));
    details.insert("clients".into(), load.clients.into());
    details.insert("devices".into(), load.devices.into());
    details.insert("platform_peak_rss_mb".into(), platform_peak_rss.into());
    details.insert(
        "seconds".into(),
        serde_json::to_value(&seconds).unwrap_or_default(),
    );
    let nothing_silent = broker_lost == 0 && in_flight == 0 && silent == 0;
    report.rows.push(Row {
        case: format!(
            "shed: {} readings/s → {} → {}, {} clients",
            load.base_rate,
            load.base_rate * 10,
            load.base_rate,
            load.clients
        ),
        platform: (shed + missed) as f64,
        baseline: sent.published as f64,
        ratio: (shed + missed) as f64 / sent.published.max(1) as f64,
        unit: "counted".into(),
        goal: format!(
            "shedding counted, nothing lost silently (ingest shed {shed}, ws missed {missed} \
             in {resyncs} resyncs, of {} readings)",
            sent.published
        ),
        met: Some(nothing_silent),
        details,
    });
    report.rows.push(Row {
        case: "peak RSS: 10× vs first 1×".into(),
        platform: rss_10x,
        baseline: rss_1x,
        ratio: rss_10x / rss_1x.max(1e-9),
        unit: "MB".into(),
        goal: format!(
            "the platform's process: levels off during 10× ({first_half:.0} → {second_half:.0} MB) \
             and its peak ≤ 200 MB (peak over the run {platform_peak_rss:.0} MB); \
             {rss_1x_again:.0} MB in the last 1×, {rss_start:.0} MB before the load"
        ),
        met: (!options.quick).then_some(levelled && platform_peak_rss <= 200.0),
        details: serde_json::Map::new(),
    });
    report.rows.push(Row {
        case: "p99 latency: 10× vs first 1×".into(),
        platform: levels[1].p99.max(1) as f64 / 1000.0,
        baseline: level_p99 / 1000.0,
        ratio: levels[1].p99.max(1) as f64 / level_p99,
        unit: "ms".into(),
        goal: format!(
            "p50 {:.1} ms at 10× vs {:.1} ms at 1×",
            levels[1].p50 as f64 / 1000.0,
            levels[0].p50 as f64 / 1000.0
        ),
        met: None,
        details: serde_json::Map::new(),
    });
    let recovery = recovered_at.map_or(f64::INFINITY, |s| s as f64);
    report.rows.push(Row {
        case: "p99 back within 1.2× of first 1× after the drop".into(),
        platform: recovered_at
            .map_or(load.secs[2] as f64, |s| s as f64)
            .max(0.5),
        baseline: 30.0,
        ratio: recovered_at.map_or(f64::INFINITY, |s| s as f64 / 30.0),
        unit: "s".into(),
        goal: format!(
            "≤ 30 s ({RECOVERED_FOR} s in a row); {}",
            match recovered_at {
                Some(s) => format!("recovered after {s} s"),
                None => format!("not recovered within {} s", load.secs[2]),
            }
        ),
        met: (!options.quick).then_some(recovery <= 30.0),
        details: serde_json::Map::new(),
    });
    report.rows.push(Row {
        case: "p99 latency: 1× again vs first 1×".into(),
        platform: levels[2].p99.max(1) as f64 / 1000.0,
        baseline: level_p99 / 1000.0,
        ratio: levels[2].p99.max(1) as f64 / level_p99,
        unit: "ms".into(),
        goal: "the whole last 1× phase, recovery included".into(),
        met: None,
        details: serde_json::Map::new(),
    });
    let line = |label: &str, unit: &str, value: &dyn Fn(&Second) -> f64| Series {
        label: label.into(),
        unit: unit.into(),
        points: seconds.iter().map(|s| (s.t as f64, value(s))).collect(),
    };
    report.series.push(line(
        "p99 latency publish → ws (1× until the first mark, 10×, then 1×)",
        "ms",
        &|s| s.p99_us as f64 / 1000.0,
    ));
    report.series.push(line(
        "resident memory of the platform's process",
        "MB",
        &|s| s.rss_mb,
    ));
    report.series.push(line(
        "shed by ingest + missed on ws, cumulative",
        "messages",
        &|s| (s.shed_total + s.ws_missed_total) as f64,
    ));
    report
        .series
        .push(line("frames received", "frames/s", &|s| s.frames as f64));
    report.notes.push(format!(
        "Per second (t: frames, p50/p99 ms, RSS MB, shed, ws missed): {}",
        seconds
            .iter()
            .map(|s| format!(
                "{}: {} {:.1}/{:.1} {:.0} {} {}",
                s.t,
                s.frames,
                s.p50_us as f64 / 1000.0,
                s.p99_us as f64 / 1000.0,
                s.rss_mb,
                s.shed_total,
                s.ws_missed_total
            ))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    report.notes.push(
        "The platform (with its embedded broker) runs in a process of its own (`cityops \
         bench-platform`, read through /metrics), so RSS is the platform's alone; the load generator \
         and the websocket clients are in the bench's process (its RSS is in each second's \
         bench_rss_mb). Latency is publish → websocket receive of incident events, bucketed by \
         the second they were received; the first 1× level leaves out the first 3 s (warm-up)."
            .into(),
    );
    let report = report.finish(&options.out_dir)?;
    super::s1_ingest::check_nothing_lost(options, &report)?;
    Ok(report)
}
