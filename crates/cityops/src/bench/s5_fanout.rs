//! S5 fan-out: bus events to many `/ws` clients of the real platform, against a bare axum websocket
//! server that forwards a `tokio::sync::broadcast` channel to each socket, same clients, same rates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as AxumMessage, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use cityops_core::event::ReadingSample;
use cityops_core::{DeviceId, DeviceKind, EventData, Reading, Value};
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

use super::Options;
use super::report::{Percentiles, Report, Row, histogram, rss_mb};
use crate::app::{App, Mode};
use crate::settings::Settings;

/// What one websocket client saw. Counters are cumulative; each phase takes differences.
#[derive(Default)]
pub(crate) struct ClientStats {
    pub delivered: AtomicU64,
    /// Events a `resync` frame said were skipped: accounted for, not silently dropped.
    pub missed: AtomicU64,
    pub resyncs: AtomicU64,
    /// Publish → receive, µs; drained by each phase.
    pub latencies: Mutex<Vec<u64>>,
}

/// Connected clients; dropping them closes every socket.
pub(crate) struct Clients {
    pub stats: Vec<Arc<ClientStats>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Clients {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// See [`Clients::tally`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub delivered: u64,
    pub missed: u64,
    pub resyncs: u64,
    pub silent: u64,
}

impl Clients {
    pub fn snapshot(&self) -> Vec<(u64, u64, u64)> {
        self.stats
            .iter()
            .map(|s| {
                (
                    s.delivered.load(Ordering::Relaxed),
                    s.missed.load(Ordering::Relaxed),
                    s.resyncs.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// What every client got since `before` (a [`Self::snapshot`]) when `produced` events were sent
    /// to each: frames received, events a resync announced, resyncs, and events neither received nor
    /// announced (a silent drop).
    pub fn tally(&self, before: &[(u64, u64, u64)], produced: u64) -> Tally {
        let mut tally = Tally::default();
        for (now, was) in self.snapshot().iter().zip(before) {
            let d = now.0 - was.0;
            let m = now.1 - was.1;
            tally.delivered += d;
            tally.missed += m;
            tally.resyncs += now.2 - was.2;
            tally.silent += produced.saturating_sub(d + m);
        }
        tally
    }

    pub fn drain_latencies(&self) -> Vec<u64> {
        let mut all = Vec::new();
        for s in &self.stats {
            all.append(&mut s.latencies.lock().unwrap_or_else(|e| e.into_inner()));
        }
        all
    }
}

/// Connects `n` clients to `url`, a few at a time so the listen backlog never overflows. `decode`
/// turns the first `"value":` number of a frame into its publish time (µs since `epoch`).
pub(crate) async fn connect_clients(
    url: &str,
    n: usize,
    epoch: Instant,
    decode: fn(f64) -> u64,
) -> anyhow::Result<Clients> {
    let mut clients = Clients {
        stats: Vec::with_capacity(n),
        tasks: Vec::with_capacity(n),
    };
    let mut start = 0;
    while start < n {
        let end = (start + 50).min(n);
        let connecting: Vec<_> = (start..end)
            .map(|_| tokio_tungstenite::connect_async(url.to_string()))
            .collect();
        for connected in futures_util::future::join_all(connecting).await {
            let (ws, _) = connected?;
            let stats = Arc::new(ClientStats::default());
            let mine = stats.clone();
            clients.tasks.push(tokio::spawn(async move {
                let (_sink, mut stream) = ws.split();
                while let Some(Ok(message)) = stream.next().await {
                    if let Message::Text(text) = message {
                        on_frame(&mine, &text, epoch, decode);
                    }
                }
            }));
            clients.stats.push(stats);
        }
        start = end;
    }
    // The server subscribes after the upgrade response: give it a moment before anything is published.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(clients)
}

fn on_frame(stats: &ClientStats, text: &str, epoch: Instant, decode: fn(f64) -> u64) {
    if text.contains(r#""type":"resync""#) {
        let missed = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v["data"]["missed"].as_u64())
            .unwrap_or(0);
        stats.resyncs.fetch_add(1, Ordering::Relaxed);
        stats.missed.fetch_add(missed, Ordering::Relaxed);
        return;
    }
    // A substring scan, not a JSON parse: the clients share the two cores with the server under test,
    // and a full parse per frame would cost more than the delivery being measured.
    let Some(value) = first_number_after(text, r#""value":"#) else {
        return;
    };
    let now = epoch.elapsed().as_micros() as u64;
    stats.delivered.fetch_add(1, Ordering::Relaxed);
    stats
        .latencies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(now.saturating_sub(decode(value)));
}

fn first_number_after(text: &str, key: &str) -> Option<f64> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Creates the bench user (once) and logs in over HTTP, as a dashboard would; returns the bearer token.
pub(crate) async fn bench_token(app: &App) -> anyhow::Result<String> {
    super::platform::ensure_bench_user(&app.store).await?;
    super::platform::login(app.http_addr).await
}

/// One rate step of one server, over all clients.
struct Phase {
    published: u64,
    delivered: u64,
    per_sec: f64,
    resyncs: u64,
    /// Client deliveries neither received nor announced by a resync.
    silent: u64,
    latencies: Vec<u64>,
}

/// Rounds of every rate step per side in a full run (odd, for a median).
const ROUNDS: usize = 3;

/// How many events a rate step publishes: `rate × secs`, but at least `min_events`.
#[derive(Debug, Clone, Copy)]
struct Pace {
    secs: u64,
    /// A p99 of a few dozen events is the slowest one or two fan-outs, whatever else happened: a
    /// slow step at 10 events/s runs longer instead.
    min_events: u64,
}

impl Pace {
    fn count(self, rate: u64) -> u64 {
        (rate * self.secs).max(self.min_events)
    }
}

/// Publishes [`Pace::count`] events paced at `rate`, then waits (at most 5 s) until every client has
/// received or been told about every one of them.
async fn phase(
    clients: &Clients,
    rate: u64,
    pace: Pace,
    epoch: Instant,
    publish: impl Fn(u64),
) -> Phase {
    let before = clients.snapshot();
    clients.drain_latencies();
    let count = pace.count(rate);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    // Burst: a late tick is caught up at once, so the count and the mean rate stay as asked.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    for _ in 0..count {
        tick.tick().await;
        publish(epoch.elapsed().as_micros() as u64);
    }
    let expected = count * clients.stats.len() as u64;
    let mut last_total = 0;
    let mut last_change = Instant::now();
    let mut finished = Instant::now();
    loop {
        let total: u64 = clients
            .snapshot()
            .iter()
            .zip(&before)
            .map(|(now, was)| (now.0 - was.0) + (now.1 - was.1))
            .sum();
        if total != last_total {
            last_total = total;
            last_change = Instant::now();
            finished = last_change;
        }
        if total >= expected || last_change.elapsed() > Duration::from_secs(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let Tally {
        delivered,
        resyncs,
        silent,
        ..
    } = clients.tally(&before, count);
    Phase {
        published: count,
        delivered,
        per_sec: delivered as f64 / finished.duration_since(started).as_secs_f64().max(1e-9),
        resyncs,
        silent,
        latencies: clients.drain_latencies(),
    }
}

fn sample(t_us: u64) -> Result<ReadingSample, cityops_core::device::IdError> {
    Ok(ReadingSample {
        device_id: DeviceId::new("bench-fanout")?,
        kind: DeviceKind::new("noise")?,
        lon: 116.41,
        lat: 39.91,
        readings: vec![Reading {
            name: "t".into(),
            unit: None,
            value: Value::Number(t_us as f64),
            time: None,
        }],
    })
}

/// The bare baseline: every socket forwards a broadcast channel, resync frame on lag like the platform.
async fn baseline_server(
    capacity: usize,
) -> anyhow::Result<(
    std::net::SocketAddr,
    broadcast::Sender<Arc<String>>,
    tokio::task::JoinHandle<()>,
)> {
    let (tx, _) = broadcast::channel::<Arc<String>>(capacity);
    let router =
        axum::Router::new()
            .route(
                "/ws",
                axum::routing::get(
                    |State(tx): State<broadcast::Sender<Arc<String>>>,
                     upgrade: WebSocketUpgrade| async move {
                        upgrade.on_upgrade(move |socket| forward(socket, tx.subscribe()))
                    },
                ),
            )
            .with_state(tx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).tcp_nodelay(true).await;
    });
    Ok((addr, tx, server))
}

async fn forward(mut socket: WebSocket, mut rx: broadcast::Receiver<Arc<String>>) {
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Ok(json) => {
                    if socket.send(AxumMessage::Text(json.as_str().to_owned())).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let frame = format!(r#"{{"type":"resync","data":{{"reason":"lagged","missed":{missed}}}}}"#);
                    if socket.send(AxumMessage::Text(frame)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(AxumMessage::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Identity: S5 carries the publish time (µs since the epoch) as the reading value itself.
fn decode_us(value: f64) -> u64 {
    value as u64
}

struct Measured {
    /// Every round's rate steps, in order.
    rounds: Vec<Vec<(u64, Phase)>>,
    kb_per_client: f64,
}

/// One rate step over every round: deliveries and losses summed, latencies pooled (for the
/// histograms), and the percentiles the goal is judged on taken as the median of the rounds' own,
/// so one round disturbed by the machine's other work does not decide the step.
struct Combined {
    phase: Phase,
    percentiles: Percentiles,
    /// Each round's p99 in µs, in order.
    round_p99s: Vec<u64>,
}

fn combine(rounds: Vec<Phase>) -> Combined {
    let mut phase = Phase {
        published: 0,
        delivered: 0,
        per_sec: 0.0,
        resyncs: 0,
        silent: 0,
        latencies: Vec::new(),
    };
    let mut secs = 0.0;
    let (mut p50s, mut p99s, mut max) = (Vec::new(), Vec::new(), 0);
    for mut round in rounds {
        let (_, pct) = histogram("", &mut round.latencies);
        p50s.push(pct.p50);
        p99s.push(pct.p99);
        max = max.max(pct.max);
        phase.published += round.published;
        phase.delivered += round.delivered;
        secs += round.delivered as f64 / round.per_sec.max(1e-9);
        phase.resyncs += round.resyncs;
        phase.silent += round.silent;
        phase.latencies.append(&mut round.latencies);
    }
    phase.per_sec = phase.delivered as f64 / secs.max(1e-9);
    let round_p99s = p99s.clone();
    Combined {
        phase,
        percentiles: Percentiles {
            p50: median(&mut p50s),
            p99: median(&mut p99s),
            max,
        },
        round_p99s,
    }
}

fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// The rounds' phases regrouped by rate step.
fn by_rate(rounds: Vec<Vec<(u64, Phase)>>) -> Vec<(u64, Vec<Phase>)> {
    let mut steps: Vec<(u64, Vec<Phase>)> = Vec::new();
    for round in rounds {
        for (i, (rate, phase)) in round.into_iter().enumerate() {
            match steps.get_mut(i) {
                Some((_, phases)) => phases.push(phase),
                None => steps.push((rate, vec![phase])),
            }
        }
    }
    steps
}

async fn platform_phases(
    clients: &Clients,
    bus: &cityops_bus::Bus,
    rates: &[u64],
    pace: Pace,
    epoch: Instant,
) -> Vec<(u64, Phase)> {
    let mut phases = Vec::new();
    for &rate in rates {
        let p = phase(clients, rate, pace, epoch, |t| {
            if let Ok(s) = sample(t) {
                bus.publish(EventData::Reading(s));
            }
        })
        .await;
        phases.push((rate, p));
    }
    phases
}

async fn baseline_phases(
    clients: &Clients,
    tx: &broadcast::Sender<Arc<String>>,
    rates: &[u64],
    pace: Pace,
    epoch: Instant,
) -> Vec<(u64, Phase)> {
    let mut phases = Vec::new();
    let seq = AtomicU64::new(0);
    for &rate in rates {
        let p = phase(clients, rate, pace, epoch, |t| {
            // Serialised once per event, as the bus does, in the same wire form.
            if let Ok(s) = sample(t) {
                let json = format!(
                    r#"{{"seq":{},"type":"reading","time":"{}","data":{}}}"#,
                    seq.fetch_add(1, Ordering::Relaxed) + 1,
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    serde_json::to_string(&s).unwrap_or_default()
                );
                let _ = tx.send(Arc::new(json));
            }
        })
        .await;
        phases.push((rate, p));
    }
    phases
}

/// Raises this process's open-file soft limit to its hard limit; returns the limit now in force.
pub(crate) fn raise_fd_limit() -> u64 {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if let Some(hard) = limit.maximum
            && limit.current != Some(hard)
        {
            limit.current = Some(hard);
            if let Err(e) = setrlimit(Resource::Nofile, limit) {
                eprintln!("could not raise the open-file limit to {hard}: {e}");
            }
        }
        getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
    }
    #[cfg(not(unix))]
    {
        u64::MAX
    }
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let (client_counts, rates, pace, rounds): (&[usize], &[u64], Pace, usize) = if options.quick {
        (
            &[20],
            &[10, 100],
            Pace {
                secs: 1,
                min_events: 0,
            },
            1,
        )
    } else {
        (
            &[100, 1_000, 5_000],
            &[10, 100, 300],
            Pace {
                secs: 2,
                min_events: 100,
            },
            ROUNDS,
        )
    };
    let fd_limit = raise_fd_limit();
    let mut report = Report::new(
        "s5-fanout",
        "websocket fan-out: bus → /ws clients vs a bare axum broadcast server",
    );
    let data_dir = std::env::temp_dir().join(format!("cityops-bench-s5-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir)?;
    let mut settings = Settings::defaults();
    settings.http = "127.0.0.1:0".parse()?;
    settings.mqtt_listen = "127.0.0.1:0".parse()?;
    settings.data_dir = data_dir.clone();
    settings.log = "warn".into();
    let capacity = settings.bus.capacity;
    let app = App::start(settings, Mode::Serve).await?;
    let token = bench_token(&app).await?;
    let platform_url = format!("ws://{}/ws?types=reading&token={token}", app.http_addr);
    let (baseline_addr, baseline_tx, baseline_server) = baseline_server(capacity).await?;
    let baseline_url = format!("ws://{baseline_addr}/ws");
    let epoch = Instant::now();
    let mut all_platform_latencies = Vec::new();
    let mut all_baseline_latencies = Vec::new();
    for &n in client_counts {
        let started = Instant::now();
        // Both sets stay connected while the other is measured: memory freed by one set would be reused
        // by the next and hide its cost. An idle set costs no CPU, as nothing is published to it.
        let rss_before = rss_mb();
        let baseline_clients = connect_clients(&baseline_url, n, epoch, decode_us).await?;
        let rss_baseline = rss_mb();
        let baseline_kb = (rss_baseline - rss_before) * 1024.0 / n as f64;
        // Both sets stay connected while the other is measured when the descriptors allow it (two
        // sockets per client in this process, per set): memory freed by one set would be reused by the
        // next and hide its cost. Otherwise one set at a time, and the memory figure may understate.
        let together = 4 * n as u64 + 1024 <= fd_limit;
        let (platform, baseline) = if together {
            let platform_clients = connect_clients(&platform_url, n, epoch, decode_us).await?;
            let rss_platform = rss_mb();
            // Rounds alternate which side goes first (P B, B P, P B, …): a drift in the machine's
            // other load falls on both sides alike.
            let (mut p_rounds, mut b_rounds) = (Vec::new(), Vec::new());
            for round in 0..rounds {
                if round % 2 == 0 {
                    p_rounds.push(
                        platform_phases(&platform_clients, &app.bus, rates, pace, epoch).await,
                    );
                }
                b_rounds.push(
                    baseline_phases(&baseline_clients, &baseline_tx, rates, pace, epoch).await,
                );
                if round % 2 == 1 {
                    p_rounds.push(
                        platform_phases(&platform_clients, &app.bus, rates, pace, epoch).await,
                    );
                }
            }
            let platform = Measured {
                rounds: p_rounds,
                kb_per_client: (rss_platform - rss_baseline) * 1024.0 / n as f64,
            };
            let baseline = Measured {
                rounds: b_rounds,
                kb_per_client: baseline_kb,
            };
            drop(platform_clients);
            drop(baseline_clients);
            (platform, baseline)
        } else {
            report.notes.push(format!(
                "{n} clients: the two client sets ran one after the other ({} descriptors needed for \
                 both at once, the limit is {fd_limit}); the platform's RSS per client may reuse memory \
                 the baseline set freed",
                4 * n + 1024
            ));
            let mut b_rounds = Vec::new();
            for _ in 0..rounds {
                b_rounds.push(
                    baseline_phases(&baseline_clients, &baseline_tx, rates, pace, epoch).await,
                );
            }
            let baseline = Measured {
                rounds: b_rounds,
                kb_per_client: baseline_kb,
            };
            drop(baseline_clients);
            tokio::time::sleep(Duration::from_secs(1)).await;
            let rss_platform_before = rss_mb();
            let platform_clients = connect_clients(&platform_url, n, epoch, decode_us).await?;
            let rss_platform = rss_mb();
            let mut p_rounds = Vec::new();
            for _ in 0..rounds {
                p_rounds
                    .push(platform_phases(&platform_clients, &app.bus, rates, pace, epoch).await);
            }
            let platform = Measured {
                rounds: p_rounds,
                kb_per_client: (rss_platform - rss_platform_before) * 1024.0 / n as f64,
            };
            drop(platform_clients);
            (platform, baseline)
        };
        // Let both servers notice their sockets closing before the next size connects.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let steps = by_rate(platform.rounds)
            .into_iter()
            .zip(by_rate(baseline.rounds));
        for ((rate, p), (_, b)) in steps {
            let label = format!("{n} clients, {rate}/s");
            let (mut p, b) = (combine(p), combine(b));
            let (ph, _) = histogram(&format!("cityops {label}"), &mut p.phase.latencies);
            all_platform_latencies.extend_from_slice(&p.phase.latencies);
            all_baseline_latencies.extend_from_slice(&b.phase.latencies);
            if rate == *rates.last().unwrap_or(&0) {
                report.histograms.push(ph);
            }
            push_rows(&mut report, &label, n, &p, &b);
        }
        // At the quick size the growth is within the allocator's slack and may be 0: a note, not a row
        // (the smoke test requires every row to measure something).
        if options.quick {
            report.notes.push(format!(
                "{n} idle clients: RSS growth {:.1} KB/client (baseline {:.1})",
                platform.kb_per_client, baseline.kb_per_client
            ));
        } else {
            report.rows.push(Row {
                case: format!("{n} idle clients: RSS per client"),
                platform: platform.kb_per_client.max(0.0),
                baseline: baseline.kb_per_client.max(0.0),
                ratio: platform.kb_per_client / baseline.kb_per_client.max(0.1),
                unit: "KB/client".into(),
                goal: "≤ 50 KB per idle client (client side included)".into(),
                met: Some(platform.kb_per_client <= 50.0),
                details: serde_json::Map::new(),
            });
        }
        println!(
            "S5 {n} clients measured in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let (h, _) = histogram("cityops, all steps", &mut all_platform_latencies);
    report.histograms.push(h);
    let (h, _) = histogram("baseline, all steps", &mut all_baseline_latencies);
    report.histograms.push(h);
    report.notes.push(format!(
        "Clients, platform and baseline share this process and its cores; each rate step publishes \
         rate × {} s events, at least {} (10/s runs {} s), then waits up to 5 s for every client; the steps run in {} rounds, \
         platform and baseline taking turns to go first, and p50/p99 are the medians of the rounds' own (all rounds' \
         latencies in the histograms). Deliveries/s = deliveries / (first \
         publish → last delivery), over all rounds. RSS per idle client is the process's growth on connecting them (baseline set \
         first, both held), so it includes the client side (tokio-tungstenite) as well as the server's; \
         memory freed by the previous, smaller size may be reused and lower it.",
        pace.secs,
        pace.min_events,
        pace.count(10) / 10,
        rounds
    ));
    report.notes.push(format!(
        "Open-file limit {fd_limit} (the soft limit raised to the hard one at start)."
    ));
    baseline_server.abort();
    app.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    let report = report.finish(&options.out_dir)?;
    super::s1_ingest::check_nothing_lost(options, &report)?;
    Ok(report)
}

fn push_rows(report: &mut Report, label: &str, n: usize, p: &Combined, b: &Combined) {
    let (pp, bp) = (p.percentiles, b.percentiles);
    let mut details = serde_json::Map::new();
    details.insert("rounds".into(), p.round_p99s.len().into());
    details.insert("platform_round_p99s_us".into(), p.round_p99s.clone().into());
    details.insert("baseline_round_p99s_us".into(), b.round_p99s.clone().into());
    let (p, b) = (&p.phase, &b.phase);
    details.insert("clients".into(), n.into());
    details.insert("published".into(), p.published.into());
    details.insert("platform_delivered".into(), p.delivered.into());
    details.insert("baseline_delivered".into(), b.delivered.into());
    details.insert("platform_resyncs".into(), p.resyncs.into());
    details.insert("baseline_resyncs".into(), b.resyncs.into());
    // Silent drops: neither delivered nor announced by a resync. Resynced events are lag, not loss.
    details.insert("platform_lost".into(), p.silent.into());
    details.insert("baseline_lost".into(), b.silent.into());
    details.insert("platform_p50_us".into(), pp.p50.into());
    details.insert("platform_p99_us".into(), pp.p99.into());
    details.insert("platform_max_us".into(), pp.max.into());
    details.insert("baseline_p50_us".into(), bp.p50.into());
    details.insert("baseline_p99_us".into(), bp.p99.into());
    details.insert("baseline_max_us".into(), bp.max.into());
    let ratio = p.per_sec / b.per_sec.max(1e-9);
    let p99_ratio = pp.p99 as f64 / bp.p99.max(1) as f64;
    details.insert("p99_ratio".into(), p99_ratio.into());
    report.rows.push(Row {
        case: format!("{label}: deliveries"),
        platform: p.per_sec,
        baseline: b.per_sec,
        ratio,
        unit: "deliv/s".into(),
        goal: "≥ 0.9× baseline at ≤ 1.2× its p99, no silent drop".into(),
        met: Some(ratio >= 0.9 && p99_ratio <= 1.2 && p.silent == 0),
        details,
    });
    report.rows.push(Row {
        case: format!("{label}: p99 latency"),
        platform: pp.p99.max(1) as f64 / 1000.0,
        baseline: bp.p99.max(1) as f64 / 1000.0,
        ratio: p99_ratio,
        unit: "ms".into(),
        goal: format!(
            "p50 {:.2} ms vs {:.2} ms (medians of the rounds'); ≤ 1.2× baseline p99",
            pp.p50 as f64 / 1000.0,
            bp.p50 as f64 / 1000.0
        ),
        met: Some(p99_ratio <= 1.2),
        details: serde_json::Map::new(),
    });
}
