//! S2 rules: readings through the payload adapters, the rules and the one-incident-per-device dedupe, in
//! memory on one core, against the same messages through a bare channel loop on the same core.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Instant;

use cityops_bus::{Bus, BusConfig};
use cityops_core::{Catalogue, Device, DeviceId, DeviceKind};
use cityops_ingest::IngestConfig;
use cityops_ingest::pipeline::Shard;
use cityops_ingest::rules::Rule;

use super::report::{Report, Row};
use super::{Options, progress};
use crate::settings::Settings;

const KINDS: [(&str, &str); 6] = [
    ("manhole_cover", "tilt"),
    ("water_level", "level"),
    ("dust", "pm10"),
    ("waste_bin", "fill"),
    ("noise", "laeq"),
    ("streetlight", "power"),
];

/// A body of about 200 bytes in one of the three accepted forms (by `variant`); `abnormal` crosses the
/// kind's rule.
pub fn body(
    device: &str,
    kind_index: usize,
    variant: usize,
    abnormal: bool,
    now_ms: i64,
) -> Vec<u8> {
    let (_, measurement) = KINDS[kind_index];
    let value = match (kind_index, abnormal) {
        (0, false) => 1.5,
        (0, true) => 32.5,
        (1, false) => 0.02,
        (1, true) => 0.35,
        (2, false) => 80.0,
        (2, true) => 320.0,
        (3, false) => 40.0,
        (3, true) => 96.0,
        (4, false) => 55.0,
        (4, true) => 82.0,
        _ => 100.0,
    };
    let secs = now_ms as f64 / 1000.0;
    // Padded to ~200 bytes with a status text, as real devices carry firmware and status strings.
    let unpadded =
        format!(r#"{{"{measurement}":{value},"battery":87,"rssi":-71,"temp":21.5,"note":""}}"#)
            .len()
            + 40;
    let note = "x".repeat(200usize.saturating_sub(unpadded));
    let text = match variant % 3 {
        0 => format!(
            r#"[{{"bn":"urn:dev:sim:{device}:","bt":{secs:.3},"n":"{measurement}","v":{value}}},{{"n":"battery","u":"%","v":87}},{{"n":"rssi","u":"dBm","v":-71}},{{"n":"note","vs":"{note}"}}]"#
        ),
        1 => format!(
            r#"{{"ts":{now_ms},"values":{{"{measurement}":{value},"battery":87,"rssi":-71,"temp":21.5,"note":"{note}"}}}}"#
        ),
        _ => format!(
            r#"{{"{measurement}":{value},"battery":87,"rssi":-71,"temp":21.5,"note":"{note}"}}"#
        ),
    };
    text.into_bytes()
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let devices_count = 5_000usize;
    let messages = if options.quick { 50_000 } else { 2_000_000 };
    let settings = Settings::defaults();
    let catalogue = Catalogue::builtin();
    let mut rules_by_kind: HashMap<String, Vec<Arc<Rule>>> = HashMap::new();
    for config in &settings.rules {
        rules_by_kind
            .entry(config.kind.clone())
            .or_default()
            .push(Arc::new(Rule::new(config.clone(), &catalogue)?));
    }
    let bus = Bus::new(BusConfig::default());
    let stats = Arc::new(cityops_ingest::IngestStats::default());
    let mut shard = Shard::new(
        0,
        Arc::new(rules_by_kind),
        bus.clone(),
        stats.clone(),
        Arc::new(AtomicI64::new(1)),
        &IngestConfig::default(),
    );

    let now_ms = chrono::Utc::now().timestamp_millis();
    // Devices get their unit cell once, when registered (devices do not move), as in the platform.
    let grid = settings
        .gis
        .load_grid()?
        .ok_or_else(|| anyhow::anyhow!("S2 needs the built-in grid"))?;
    let index = cityops_gis::GridIndex::new(&grid);
    let mut ids = Vec::with_capacity(devices_count);
    for i in 0..devices_count {
        let kind_index = i % KINDS.len();
        let id = DeviceId::new(&format!("dev-{i:05}"))?;
        // Spread over the district: a 70 × 72 lattice across its bounding box (WGS-84).
        let lon = 116.372 + 0.075 * ((i % 70) as f64 / 70.0);
        let lat = 39.858 + 0.115 * ((i / 70) as f64 / 72.0);
        let place = index
            .locate_wgs84(cityops_core::GeoPoint { lon, lat })
            .into();
        shard.upsert_device(
            Device {
                id: id.clone(),
                kind: DeviceKind::new(KINDS[kind_index].0)?,
                lon,
                lat,
            },
            Some(place),
        );
        ids.push((id, kind_index));
    }
    // 20,000 distinct messages cycled: every device in every form, one in fifty abnormal (then normal
    // again on its next message) so rules open and clear incidents throughout.
    let distinct = 20_000usize;
    let bodies: Vec<(DeviceId, bytes::Bytes)> = (0..distinct)
        .map(|i| {
            let (id, kind_index) = &ids[i % devices_count];
            let abnormal = (i / devices_count) % 2 == 1 && i % 50 < 5;
            (
                id.clone(),
                bytes::Bytes::from(body(
                    id.as_str(),
                    *kind_index,
                    i / devices_count,
                    abnormal,
                    now_ms,
                )),
            )
        })
        .collect();
    let mean_body = bodies.iter().map(|(_, b)| b.len()).sum::<usize>() / bodies.len();

    let bar = progress(messages as u64 * 2, "S2 rules");
    // The platform path.
    let mut out = Vec::new();
    let mut changes = 0usize;
    let started = Instant::now();
    for i in 0..messages {
        let (id, body) = &bodies[i % distinct];
        shard.process(
            id.as_str(),
            body,
            now_ms,
            tokio::time::Instant::now(),
            &mut out,
        );
        changes += out.len();
        out.clear();
        if i % 10_000 == 0 {
            bar.set_position(i as u64);
        }
    }
    let platform_secs = started.elapsed().as_secs_f64();
    shard.publish_counts();
    let readings = stats.readings_accepted.get();
    anyhow::ensure!(
        stats.messages_accepted.get() == messages as u64,
        "every message must be accepted"
    );

    // The baseline: the same messages through a bare channel loop on the same core.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(DeviceId, bytes::Bytes)>(1024);
    let mut touched = 0usize;
    let started = Instant::now();
    for i in 0..messages {
        let (id, body) = &bodies[i % distinct];
        tx.try_send((id.clone(), body.clone()))?;
        if let Ok((id, body)) = rx.try_recv() {
            touched += body.len() + id.as_str().len();
        }
        if i % 10_000 == 0 {
            bar.set_position((messages + i) as u64);
        }
    }
    let baseline_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    std::hint::black_box(touched);

    let readings_per_message = readings as f64 / messages as f64;
    let platform_rate = readings as f64 / platform_secs;
    let baseline_rate = messages as f64 * readings_per_message / baseline_secs;
    let mut report = Report::new(
        "s2-rules",
        "readings through adapters, rules and dedupe in memory (one core)",
    );
    let mut details = serde_json::Map::new();
    details.insert("messages".into(), messages.into());
    details.insert("readings".into(), readings.into());
    details.insert("mean_body_bytes".into(), mean_body.into());
    details.insert("incident_changes".into(), changes.into());
    details.insert(
        "ns_per_message".into(),
        (platform_secs * 1e9 / messages as f64).round().into(),
    );
    report.rows.push(Row {
        case: format!("{devices_count} devices, {mean_body}-byte messages"),
        platform: platform_rate,
        baseline: baseline_rate,
        ratio: platform_rate / baseline_rate,
        unit: "readings/s".into(),
        goal: "≥ 250,000 readings/s per core".into(),
        met: Some(platform_rate >= 250_000.0),
        details,
    });
    report.notes.push(format!(
        "{messages} messages ({readings} readings, {changes} incident changes) in {platform_secs:.2} s; baseline {baseline_secs:.3} s. \
         Cell lookup joins this path when the GIS lands."
    ));
    report.finish(&options.out_dir)
}
