//! The running ingestion pipeline: MQTT reader → per-device shards (adapters, rules) → batched store writer.
//!
//! - One reader (`source.rs`: the embedded broker's in-process link, or an MQTT connection) reads
//!   `city/v1/#`, keeps `city/v1/devices/{id}/up` and checks its size. It hands each message to
//!   the shard that owns the device (by a hash of the id) through a bounded queue: when shards fall behind,
//!   the reader waits, which pushes back on the broker instead of dropping anything. Under sustained
//!   overload a message that has waited longer than `ingest.shed_after_ms` in the queue is shed by
//!   its shard, unprocessed: counted in `cityops_ingest_shed_total{reason}` and logged rate-limited, so
//!   memory and latency stay bounded and the loss is never silent.
//! - Each shard owns its devices, their rule states and last values: no lock is shared by every message.
//!   It parses the body, applies the rules and sends incident changes and batched last values to the writer.
//! - The writer commits changes in batches (one transaction each) and only then publishes
//!   `incident.opened`/`incident.cleared` on the bus, so what a dashboard sees is already durable.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use cityops_bus::Bus;
use cityops_core::event::ReadingSample;
use cityops_core::incident::{EvidenceReading, IncidentCleared};
use cityops_core::telemetry::LogLimiter;
use cityops_core::{
    Device, DeviceId, EventData, GridPlace, Incident, IncidentState, Reading, UnixMillis,
};
use cityops_store::{LastValue, Store, WriteBatch};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::adapter::{self, Reject};
use crate::config::IngestConfig;
use crate::registry::Registry;
use crate::rules::{self, Outcome, Rule, RuleState};
use crate::source::{Feed, Intake};
use crate::stats::IngestStats;

/// A device message as the reader hands it to a shard.
#[derive(Debug)]
pub struct Publish {
    /// `city/v1/devices/{device_id}/up`, checked by the reader: the id is not copied out of it.
    topic: Bytes,
    pub body: Bytes,
    pub arrived_ms: UnixMillis,
    pub arrived: Instant,
}

impl Publish {
    /// A message on `topic`, or why the topic is not a device's uplink.
    pub fn new(
        topic: Bytes,
        body: Bytes,
        arrived_ms: UnixMillis,
        arrived: Instant,
    ) -> Result<Self, Reject> {
        let text = std::str::from_utf8(&topic)
            .map_err(|_| Reject::UnknownTopic(String::from_utf8_lossy(&topic).into_owned()))?;
        adapter::topic_device(text)?;
        Ok(Self::checked(topic, body, arrived_ms, arrived))
    }

    /// A message whose topic the caller has checked with [`adapter::topic_device`].
    pub(crate) fn checked(
        topic: Bytes,
        body: Bytes,
        arrived_ms: UnixMillis,
        arrived: Instant,
    ) -> Self {
        Self {
            topic,
            body,
            arrived_ms,
            arrived,
        }
    }

    /// The device's id (checked when the message was made).
    pub fn device(&self) -> &str {
        let id = &self.topic
            [adapter::UPLINK_PREFIX.len()..self.topic.len() - adapter::UPLINK_SUFFIX.len()];
        std::str::from_utf8(id).unwrap_or_default()
    }
}

/// Most device messages one [`ShardMsg::Publishes`] carries. The reader sends what it has for a
/// shard as one queue entry: one hand-over between cores for up to this many messages, not one each.
pub const PUBLISH_BATCH: usize = 64;

/// A message to a shard.
#[derive(Debug)]
pub enum ShardMsg {
    /// Device messages in the order they arrived, at most [`PUBLISH_BATCH`].
    Publishes(Vec<Publish>),
    /// One device message: what the TCP reader sends, with no batch to allocate.
    Publish(Publish),
    /// A device and its place in the unit grid.
    Device(Device, Option<GridPlace>),
    /// After a restart: this device already has an open incident for this rule.
    RestoreOpen {
        device: DeviceId,
        rule_id: String,
        incident_id: i64,
    },
    Shutdown,
}

/// A change for the store writer.
#[derive(Debug)]
pub enum WriterMsg {
    Opened(Box<Incident>),
    Cleared(IncidentCleared),
    LastValues(Vec<LastValue>),
}

/// The shard that owns a device. Stable for the life of the process.
pub fn shard_of(device: &str, shards: usize) -> usize {
    (FIXED_HASH.hash_one(device) % shards.max(1) as u64) as usize
}

/// A fixed-key hasher: the shard of a device does not change between runs, which keeps logs comparable.
const FIXED_HASH: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

/// The running pipeline.
pub struct Ingest {
    pub registry: Arc<Registry>,
    pub stats: Arc<IngestStats>,
    /// Inspectors' positions and statuses, fed by `city/v1/inspectors/{id}/location` and the API.
    pub inspectors: Arc<crate::inspectors::InspectorTracker>,
    ready: watch::Receiver<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Ingest {
    /// Becomes true once the MQTT subscription is acknowledged (and false while disconnected).
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.clone()
    }

    /// Waits until every task has finished (after shutdown was signalled): messages in flight are
    /// processed and everything is written.
    pub async fn join(self) {
        for (name, task) in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(task = name, error = %e, "ingest task failed");
            }
        }
    }
}

/// Starts ingestion: loads devices and open incidents from the store, then connects to the broker.
pub async fn start(
    config: IngestConfig,
    rules: Vec<Rule>,
    feed: Feed,
    store: Store,
    bus: Bus,
    grid: Option<Arc<cityops_gis::GridIndex>>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Ingest> {
    let stats = Arc::new(IngestStats::default());
    let shard_count = if config.shards == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        config.shards
    };
    let next_incident_id = Arc::new(AtomicI64::new(store.max_incident_id().await? + 1));

    let mut rules_by_kind: HashMap<String, Vec<Arc<Rule>>> = HashMap::new();
    for rule in rules {
        rules_by_kind
            .entry(rule.config.kind.clone())
            .or_default()
            .push(Arc::new(rule));
    }
    let known_kinds = rules_by_kind.keys().cloned().collect();
    let rules_by_kind = Arc::new(rules_by_kind);

    let (writer_tx, writer_rx) = mpsc::channel(config.writer_queue.max(1));
    let mut tasks = Vec::new();
    let mut shard_senders = Vec::with_capacity(shard_count);
    for index in 0..shard_count {
        // `shard_queue` counts messages; the queue holds batches of up to PUBLISH_BATCH of them.
        let (tx, rx) = mpsc::channel((config.shard_queue / PUBLISH_BATCH).max(4));
        shard_senders.push(tx);
        let shard = Shard::new(
            index,
            rules_by_kind.clone(),
            bus.clone(),
            stats.clone(),
            next_incident_id.clone(),
            &config,
        );
        tasks.push((
            "shard",
            tokio::spawn(shard.run(
                rx,
                writer_tx.clone(),
                Duration::from_millis(config.flush_interval_ms.max(10)),
                (config.shed_after_ms > 0).then(|| Duration::from_millis(config.shed_after_ms)),
            )),
        ));
    }
    drop(writer_tx);
    tasks.push((
        "writer",
        tokio::spawn(writer(
            writer_rx,
            store.clone(),
            bus.clone(),
            stats.clone(),
            config.writer_batch.max(1),
        )),
    ));

    let registry = Arc::new(Registry::new(
        store.clone(),
        bus.clone(),
        stats.clone(),
        shard_senders.clone(),
        known_kinds,
        grid,
    ));
    for device in store.devices().await? {
        registry.adopt(device).await?;
    }
    let open = store.open_incidents().await?;
    stats.open_incidents.set(open.len() as i64);
    for incident in open {
        let shard = &shard_senders[shard_of(incident.device_id.as_str(), shard_count)];
        shard
            .send(ShardMsg::RestoreOpen {
                device: incident.device_id,
                rule_id: incident.rule_id,
                incident_id: incident.id,
            })
            .await
            .map_err(|_| anyhow::anyhow!("a shard stopped during start-up"))?;
    }

    let (ready_tx, ready) = watch::channel(false);
    // A position older than 10 minutes no longer counts for dispatch.
    let inspectors = Arc::new(crate::inspectors::InspectorTracker::new(
        10 * 60 * 1000,
        bus.clone(),
    ));
    let intake = Intake {
        max_payload_bytes: config.max_payload_bytes,
        pending: shard_senders.iter().map(|_| Vec::new()).collect(),
        received: 0,
        shards: shard_senders,
        stats: stats.clone(),
        inspectors: inspectors.clone(),
        ready: ready_tx,
        reject_log: RejectLog::new(),
    };
    tasks.push((
        "mqtt",
        tokio::spawn(crate::source::run(feed, config, intake, shutdown)),
    ));
    Ok(Ingest {
        registry,
        stats,
        inspectors,
        ready,
        tasks,
    })
}

/// Logs rejections without flooding: at most one line per reason per 10 s, with the count suppressed.
pub(crate) struct RejectLog {
    limiters: Vec<LogLimiter>,
}

impl RejectLog {
    pub(crate) fn new() -> Self {
        Self {
            limiters: Reject::REASONS
                .iter()
                .map(|_| LogLimiter::new(Duration::from_secs(10)))
                .collect(),
        }
    }

    pub(crate) fn log(&mut self, reject: &Reject, source: &str) {
        if let Some(suppressed) = self.limiters[reject.index()].check(std::time::Instant::now()) {
            tracing::warn!(
                reason = reject.reason(),
                source,
                suppressed,
                "rejected device message: {reject}"
            );
        }
    }
}

// ---------------------------------------------------------------- shards

/// What a shard knows about one device.
struct DeviceState {
    device: Device,
    place: Option<GridPlace>,
    rules: Vec<(Arc<Rule>, RuleState)>,
    /// The last value of each measurement, sorted by name number: one short contiguous list per
    /// device, so a reading touches a cache line or two of it (a map per device cost a table, a
    /// bucket and the name's own allocation, each rarely in the cache with thousands of devices).
    latest: Vec<Latest>,
    dirty: bool,
    last_sample: Option<Instant>,
}

/// The last value of one measurement of a device; its name and unit are numbers in the shard's
/// [`Names`]. Made into a [`LastValue`] only when written.
#[derive(Debug)]
struct Latest {
    name: u32,
    unit: Option<u32>,
    time: UnixMillis,
    value: cityops_core::Value,
}

/// Measurement names and units a shard has seen, each kept once and referred to by number. It grows
/// only with names its devices keep last values of, as the per-device maps it replaced did.
#[derive(Default)]
struct Names {
    numbers: HashMap<Box<str>, u32, foldhash::fast::FixedState>,
    names: Vec<Box<str>>,
}

impl Names {
    fn number(&mut self, name: &str) -> u32 {
        if let Some(&number) = self.numbers.get(name) {
            return number;
        }
        let number = self.names.len() as u32;
        self.names.push(name.into());
        self.numbers.insert(name.into(), number);
        number
    }

    fn name(&self, number: u32) -> &str {
        &self.names[number as usize]
    }
}

/// One shard: its devices, their rules and last values. `process` is synchronous and free of I/O
/// except the bus, so it can be driven directly by tests and benchmarks.
pub struct Shard {
    index: usize,
    devices: HashMap<DeviceId, DeviceState>,
    names: Names,
    rules_by_kind: Arc<HashMap<String, Vec<Arc<Rule>>>>,
    bus: Bus,
    stats: Arc<IngestStats>,
    next_incident_id: Arc<AtomicI64>,
    sample_interval: Duration,
    reject_log: RejectLog,
    /// Messages and readings accepted since the last [`Shard::publish_counts`]: the shared counters
    /// sit on one cache line with the reader's, so they are added to once a turn, not per message.
    accepted: (u64, u64),
}

impl Shard {
    pub fn new(
        index: usize,
        rules_by_kind: Arc<HashMap<String, Vec<Arc<Rule>>>>,
        bus: Bus,
        stats: Arc<IngestStats>,
        next_incident_id: Arc<AtomicI64>,
        config: &IngestConfig,
    ) -> Self {
        Self {
            index,
            devices: HashMap::new(),
            names: Names::default(),
            rules_by_kind,
            bus,
            stats,
            next_incident_id,
            sample_interval: Duration::from_secs(config.reading_sample_secs),
            reject_log: RejectLog::new(),
            accepted: (0, 0),
        }
    }

    /// Adds what was accepted since the last call to the shared counters. `run` calls it after each
    /// turn; a caller driving [`Shard::process`] itself calls it before reading them.
    pub fn publish_counts(&mut self) {
        let (messages, readings) = std::mem::take(&mut self.accepted);
        if messages > 0 {
            self.stats.messages_accepted.add(messages);
            self.stats.readings_accepted.add(readings);
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<ShardMsg>,
        writer: mpsc::Sender<WriterMsg>,
        flush_interval: Duration,
        shed_after: Option<Duration>,
    ) {
        let mut flush = tokio::time::interval(flush_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut out = Vec::new();
        let mut shed_log = LogLimiter::new(Duration::from_secs(10));
        // What queued since the last turn is taken at once: one wake-up and one turn of this loop
        // for up to INBOX queue entries under load, not one each.
        const INBOX: usize = 16;
        let mut inbox = Vec::with_capacity(INBOX);
        let mut stopping = false;
        while !stopping {
            tokio::select! {
                biased;
                _ = flush.tick() => out.extend(self.take_last_values()),
                n = rx.recv_many(&mut inbox, INBOX) => {
                    // 0: every sender is gone.
                    stopping = n == 0;
                    for msg in inbox.drain(..) {
                        match msg {
                            ShardMsg::Publishes(publishes) => {
                                // One clock reading per batch: its messages arrived together.
                                let now = Instant::now();
                                for p in publishes {
                                    self.take(p, now, shed_after, &mut shed_log, &mut out);
                                }
                            }
                            ShardMsg::Publish(p) => {
                                self.take(p, Instant::now(), shed_after, &mut shed_log, &mut out)
                            }
                            ShardMsg::Device(device, place) => self.upsert_device(device, place),
                            ShardMsg::RestoreOpen { device, rule_id, incident_id } => {
                                self.restore_open(&device, &rule_id, incident_id)
                            }
                            ShardMsg::Shutdown => {
                                stopping = true;
                                break;
                            }
                        }
                    }
                }
            }
            self.publish_counts();
            for msg in out.drain(..) {
                if writer.send(msg).await.is_err() {
                    tracing::error!(shard = self.index, "store writer stopped; shard stops");
                    return;
                }
            }
        }
        if let Some(last) = self.take_last_values() {
            let _ = writer.send(last).await;
        }
        tracing::debug!(shard = self.index, "shard stopped");
    }

    /// Processes a message, or sheds it if it waited in the queue past `shed_after` at `now`.
    fn take(
        &mut self,
        p: Publish,
        now: Instant,
        shed_after: Option<Duration>,
        shed_log: &mut LogLimiter,
        out: &mut Vec<WriterMsg>,
    ) {
        if shed_after.is_some_and(|limit| now.saturating_duration_since(p.arrived) > limit) {
            self.shed(p.device(), p.arrived, shed_log);
        } else {
            self.process(p.device(), &p.body, p.arrived_ms, p.arrived, out);
        }
    }

    /// Drops a message that waited too long in the queue: counted, and logged at most once per 10 s.
    fn shed(&mut self, device: &str, arrived: Instant, log: &mut LogLimiter) {
        self.stats.shed[0].inc();
        if let Some(suppressed) = log.check(std::time::Instant::now()) {
            tracing::warn!(
                shard = self.index,
                %device,
                waited_ms = arrived.elapsed().as_millis() as u64,
                suppressed,
                "overload: shed a device message that waited too long in its shard's queue"
            );
        }
    }

    /// Adds or updates a device; rule states survive an update that keeps the kind.
    pub fn upsert_device(&mut self, device: Device, place: Option<GridPlace>) {
        let rules = || -> Vec<(Arc<Rule>, RuleState)> {
            self.rules_by_kind
                .get(device.kind.as_str())
                .map(|rules| {
                    rules
                        .iter()
                        .map(|r| (r.clone(), RuleState::Normal))
                        .collect()
                })
                .unwrap_or_default()
        };
        match self.devices.get_mut(&device.id) {
            Some(state) if state.device.kind == device.kind => {
                state.device = device;
                state.place = place;
            }
            _ => {
                let rules = rules();
                self.devices.insert(
                    device.id.clone(),
                    DeviceState {
                        device,
                        place,
                        rules,
                        latest: Vec::new(),
                        dirty: false,
                        last_sample: None,
                    },
                );
            }
        }
    }

    fn restore_open(&mut self, device: &DeviceId, rule_id: &str, incident_id: i64) {
        if let Some(state) = self.devices.get_mut(device)
            && let Some((_, rule_state)) = state
                .rules
                .iter_mut()
                .find(|(rule, _)| rule.config.id == rule_id)
        {
            *rule_state = RuleState::Open { incident_id };
            return;
        }
        tracing::warn!(%device, rule_id, incident_id, "open incident refers to a device or rule that no longer exists; it stays open until cleared by hand");
    }

    /// Handles one message of a device: parse, apply rules, remember last values, sample to the bus.
    pub fn process(
        &mut self,
        device_id: &str,
        body: &[u8],
        arrived_ms: UnixMillis,
        arrived: Instant,
        out: &mut Vec<WriterMsg>,
    ) {
        let Some(state) = self.devices.get_mut(device_id) else {
            let reject = Reject::UnknownDevice(device_id.to_string());
            self.stats.reject(&reject);
            self.reject_log.log(&reject, device_id);
            return;
        };
        let readings = match adapter::parse_payload(body, arrived_ms) {
            Ok(readings) => readings,
            Err(reject) => {
                self.stats.reject(&reject);
                self.reject_log.log(&reject, device_id);
                return;
            }
        };
        self.accepted.0 += 1;
        self.accepted.1 += readings.len() as u64;
        for reading in &readings {
            let time = reading.time.unwrap_or(arrived_ms);
            for (rule, rule_state) in state
                .rules
                .iter_mut()
                .filter(|(rule, _)| rule.config.measurement == reading.name)
            {
                match rules::evaluate(rule, rule_state, &reading.value, time, arrived) {
                    Outcome::None => {}
                    Outcome::TypeMismatch => self.stats.rule_type_mismatches.inc(),
                    Outcome::Open { first } => {
                        let id = self.next_incident_id.fetch_add(1, Ordering::Relaxed);
                        *rule_state = RuleState::Open { incident_id: id };
                        out.push(WriterMsg::Opened(Box::new(open_incident(
                            id,
                            &state.device,
                            state.place.clone(),
                            rule,
                            reading,
                            time,
                            arrived_ms,
                            first,
                        ))));
                    }
                    Outcome::Clear { incident_id } => {
                        out.push(WriterMsg::Cleared(IncidentCleared {
                            id: incident_id,
                            device_id: state.device.id.clone(),
                            kind: state.device.kind.clone(),
                            rule_id: rule.config.id.clone(),
                            category_code: rule.config.category.clone(),
                            value: reading.value.clone(),
                            cleared_at: arrived_ms,
                            lon: state.device.lon,
                            lat: state.device.lat,
                        }))
                    }
                }
            }
            // Updated in place: a device's text values keep their allocation.
            let name = self.names.number(&reading.name);
            let unit = reading.unit.as_deref().map(|unit| self.names.number(unit));
            match state
                .latest
                .binary_search_by_key(&name, |latest| latest.name)
            {
                Ok(at) => {
                    let last = &mut state.latest[at];
                    if last.time <= time {
                        last.value.clone_from(&reading.value);
                        last.unit = unit;
                        last.time = time;
                        state.dirty = true;
                    }
                }
                Err(at) => {
                    state.latest.insert(
                        at,
                        Latest {
                            name,
                            unit,
                            time,
                            value: reading.value.clone(),
                        },
                    );
                    state.dirty = true;
                }
            }
        }
        if state
            .last_sample
            .is_none_or(|t| arrived.duration_since(t) >= self.sample_interval)
        {
            state.last_sample = Some(arrived);
            self.stats.samples_published.inc();
            self.bus.publish(EventData::Reading(ReadingSample {
                device_id: state.device.id.clone(),
                kind: state.device.kind.clone(),
                lon: state.device.lon,
                lat: state.device.lat,
                readings,
            }));
        }
    }

    /// The last values changed since the previous call, as one writer message.
    pub fn take_last_values(&mut self) -> Option<WriterMsg> {
        let mut values = Vec::new();
        let names = &self.names;
        for state in self.devices.values_mut().filter(|s| s.dirty) {
            state.dirty = false;
            values.extend(state.latest.iter().map(|latest| LastValue {
                device_id: state.device.id.clone(),
                name: names.name(latest.name).to_string(),
                value: latest.value.clone(),
                unit: latest.unit.map(|unit| names.name(unit).to_string()),
                time: latest.time,
            }));
        }
        (!values.is_empty()).then_some(WriterMsg::LastValues(values))
    }
}

#[allow(clippy::too_many_arguments)]
fn open_incident(
    id: i64,
    device: &Device,
    place: Option<GridPlace>,
    rule: &Rule,
    reading: &Reading,
    time: UnixMillis,
    arrived_ms: UnixMillis,
    first: Option<(cityops_core::Value, i64)>,
) -> Incident {
    let mut evidence = Vec::with_capacity(2);
    if let Some((value, first_time)) = first {
        evidence.push(EvidenceReading {
            name: reading.name.clone(),
            value,
            unit: reading.unit.clone(),
            time: first_time,
        });
    }
    evidence.push(EvidenceReading {
        name: reading.name.clone(),
        value: reading.value.clone(),
        unit: reading.unit.clone(),
        time,
    });
    Incident {
        id,
        device_id: device.id.clone(),
        kind: device.kind.clone(),
        rule_id: rule.config.id.clone(),
        category_code: rule.config.category.clone(),
        category_name_zh: rule.category_name_zh.clone(),
        category_name_en: rule.category_name_en.clone(),
        measurement: rule.config.measurement.clone(),
        value: reading.value.clone(),
        unit: reading.unit.clone(),
        condition: rule.condition(),
        lon: device.lon,
        lat: device.lat,
        grid: place,
        state: IncidentState::Open,
        opened_at: arrived_ms,
        cleared_at: None,
        clear_value: None,
        evidence,
    }
}

// ---------------------------------------------------------------- the store writer

/// Commits changes in batches, then publishes the incident events. Ends when every shard has stopped
/// and the queue is empty, so a clean shutdown loses nothing.
async fn writer(
    mut rx: mpsc::Receiver<WriterMsg>,
    store: Store,
    bus: Bus,
    stats: Arc<IngestStats>,
    batch_max: usize,
) {
    let mut failure_log = LogLimiter::new(Duration::from_secs(10));
    // A message that could not join the previous batch starts the next one.
    let mut held: Option<WriterMsg> = None;
    loop {
        let first = match held.take() {
            Some(msg) => msg,
            None => match rx.recv().await {
                Some(msg) => msg,
                None => break,
            },
        };
        let mut batch = WriteBatch::default();
        let mut cleared_here = std::collections::HashSet::new();
        add(&mut batch, &mut cleared_here, first);
        while batch.len() < batch_max {
            match rx.try_recv() {
                // The store inserts a batch's openings before it applies its clearings, so an
                // incident opened after one of the same device and rule was cleared must wait for
                // the next batch (one open incident per device and rule, in the database too).
                Ok(WriterMsg::Opened(incident))
                    if cleared_here
                        .contains(&(incident.device_id.clone(), incident.rule_id.clone())) =>
                {
                    held = Some(WriterMsg::Opened(incident));
                    break;
                }
                Ok(msg) => add(&mut batch, &mut cleared_here, msg),
                Err(_) => break,
            }
        }
        let committed = commit(&store, batch, &stats, &mut failure_log).await;
        publish_committed(&bus, &stats, committed);
    }
    tracing::debug!("store writer stopped");
}

fn add(
    batch: &mut WriteBatch,
    cleared_here: &mut std::collections::HashSet<(DeviceId, String)>,
    msg: WriterMsg,
) {
    match msg {
        WriterMsg::Opened(incident) => batch.opened.push(*incident),
        WriterMsg::Cleared(cleared) => {
            cleared_here.insert((cleared.device_id.clone(), cleared.rule_id.clone()));
            batch.cleared.push(cleared)
        }
        WriterMsg::LastValues(values) => batch.last_values.extend(values),
    }
}

/// Commits a batch, retrying with backoff; a batch that keeps failing is split so one bad change cannot
/// hold back the others. Returns what was committed; every change that could not be is counted and logged.
async fn commit(
    store: &Store,
    batch: WriteBatch,
    stats: &IngestStats,
    failure_log: &mut LogLimiter,
) -> WriteBatch {
    for (attempt, backoff_ms) in [0u64, 100, 500, 2000].into_iter().enumerate() {
        if attempt > 0 {
            stats.store_batch_retries.inc();
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
        }
        let started = std::time::Instant::now();
        // The store's writers of this process take turns at SQLite's write lock (cityops-store's
        // group.rs), never meeting its sleeping busy handler.
        let applied = store.apply(&batch).await;
        stats
            .store_commit_micros
            .add(started.elapsed().as_micros() as u64);
        match applied {
            Ok(()) => {
                stats.store_batches.inc();
                stats
                    .last_values_written
                    .add(batch.last_values.len() as u64);
                return batch;
            }
            Err(e) => {
                if let Some(suppressed) = failure_log.check(std::time::Instant::now()) {
                    tracing::error!(
                        error = format!("{e:#}"),
                        attempt,
                        changes = batch.len(),
                        suppressed,
                        "store write failed"
                    );
                }
            }
        }
    }
    if batch.len() == 1 {
        stats.store_write_failures.inc();
        tracing::error!(?batch, "change could not be stored and is dropped");
        return WriteBatch::default();
    }
    // Split: each change on its own (last values as one group).
    let mut committed = WriteBatch::default();
    let WriteBatch {
        opened,
        cleared,
        last_values,
    } = batch;
    let singles = opened
        .into_iter()
        .map(|o| WriteBatch {
            opened: vec![o],
            ..Default::default()
        })
        .chain(cleared.into_iter().map(|c| WriteBatch {
            cleared: vec![c],
            ..Default::default()
        }))
        .chain((!last_values.is_empty()).then(|| WriteBatch {
            last_values,
            ..Default::default()
        }));
    for single in singles {
        let applied = store.apply(&single).await;
        match applied {
            Ok(()) => {
                stats.store_batches.inc();
                committed.opened.extend(single.opened);
                committed.cleared.extend(single.cleared);
                committed.last_values.extend(single.last_values);
            }
            Err(e) => {
                stats.store_write_failures.add(single.len() as u64);
                tracing::error!(error = format!("{e:#}"), change = ?single, "change could not be stored and is dropped");
            }
        }
    }
    committed
}

fn publish_committed(bus: &Bus, stats: &IngestStats, committed: WriteBatch) {
    let opened = committed.opened.len() as i64;
    let cleared = committed.cleared.len() as i64;
    if opened == 0 && cleared == 0 {
        return;
    }
    stats.incidents_opened.add(opened as u64);
    stats.incidents_cleared.add(cleared as u64);
    stats
        .open_incidents
        .set(stats.open_incidents.get() + opened - cleared);
    let events = committed
        .opened
        .into_iter()
        .map(|incident| EventData::IncidentOpened(Box::new(incident)))
        .chain(
            committed
                .cleared
                .into_iter()
                .map(EventData::IncidentCleared),
        );
    bus.publish_batch_at(events, Utc::now());
}

#[cfg(test)]
mod tests {
    use super::*;
    use cityops_core::{DeviceKind, Value};

    fn opened(id: i64, device: &Device) -> WriterMsg {
        WriterMsg::Opened(Box::new(Incident {
            id,
            device_id: device.id.clone(),
            kind: device.kind.clone(),
            rule_id: "tilted".into(),
            category_code: "E0503".into(),
            category_name_zh: "井盖移位".into(),
            category_name_en: "Manhole cover displaced".into(),
            measurement: "tilt".into(),
            value: Value::Number(20.0),
            unit: None,
            condition: "tilt > 15".into(),
            lon: device.lon,
            lat: device.lat,
            grid: None,
            state: IncidentState::Open,
            opened_at: 1_000 + id,
            cleared_at: None,
            clear_value: None,
            evidence: Vec::new(),
        }))
    }

    fn cleared(id: i64, device: &Device) -> WriterMsg {
        WriterMsg::Cleared(IncidentCleared {
            id,
            device_id: device.id.clone(),
            kind: device.kind.clone(),
            rule_id: "tilted".into(),
            category_code: "E0503".into(),
            value: Value::Number(1.0),
            cleared_at: 1_000 + id,
            lon: device.lon,
            lat: device.lat,
        })
    }

    /// Under load a batch can hold an incident's clearing and the next opening of the same device and
    /// rule; the store inserts openings first, so they must not share a transaction.
    #[tokio::test]
    async fn a_reopening_after_a_clearing_waits_for_the_next_batch() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let device = Device {
            id: DeviceId::new("mh-1").unwrap(),
            kind: DeviceKind::new("manhole_cover").unwrap(),
            lon: 116.41,
            lat: 39.91,
        };
        store
            .register_device(&device, None, cityops_store::DeviceSource::Api, 0)
            .await
            .unwrap();
        let bus = Bus::new(cityops_bus::BusConfig::default());
        let stats = Arc::new(IngestStats::default());
        let (tx, rx) = mpsc::channel(16);
        tx.send(opened(1, &device)).await.unwrap();
        tx.send(cleared(1, &device)).await.unwrap();
        tx.send(opened(2, &device)).await.unwrap();
        tx.send(cleared(2, &device)).await.unwrap();
        tx.send(opened(3, &device)).await.unwrap();
        drop(tx);
        writer(rx, store.clone(), bus, stats.clone(), 1000).await;
        assert_eq!(stats.store_write_failures.get(), 0);
        assert_eq!(stats.store_batch_retries.get(), 0);
        assert_eq!(stats.incidents_opened.get(), 3);
        assert_eq!(stats.incidents_cleared.get(), 2);
        let open = store.open_incidents().await.unwrap();
        assert_eq!(open.iter().map(|i| i.id).collect::<Vec<_>>(), vec![3]);
    }

    /// A shard without rules that knows one device.
    fn shard_with_device(id: &str, kind: &str, stats: Arc<IngestStats>) -> (Shard, Device) {
        let mut shard = Shard::new(
            0,
            Arc::new(HashMap::new()),
            Bus::new(cityops_bus::BusConfig::default()),
            stats,
            Arc::new(AtomicI64::new(1)),
            &IngestConfig::default(),
        );
        let device = Device {
            id: DeviceId::new(id).unwrap(),
            kind: DeviceKind::new(kind).unwrap(),
            lon: 116.41,
            lat: 39.91,
        };
        shard.upsert_device(device.clone(), None);
        (shard, device)
    }

    /// Last values: one per measurement, the newest by reading time (a late older reading does not
    /// overwrite it), with the unit it came with; written once per flush, and only when changed.
    #[test]
    fn last_values_keep_the_newest_reading_of_each_measurement() {
        let (mut shard, device) =
            shard_with_device("aq-1", "air_quality", Arc::new(IngestStats::default()));
        let mut out = Vec::new();
        let mut send = |shard: &mut Shard, body: &str| {
            shard.process(
                device.id.as_str(),
                body.as_bytes(),
                9_000,
                Instant::now(),
                &mut out,
            )
        };
        send(&mut shard, r#"{"ts": 2000, "pm10": 80, "note": "ok"}"#);
        send(
            &mut shard,
            r#"[{"n": "temp", "u": "Cel", "v": 21.5, "t": 1.5}]"#,
        );
        // Older than what is kept: ignored. Newer: replaces value and unit (SenML times under 2^28 s
        // are relative to arrival: 9 s + 3 s).
        send(&mut shard, r#"{"ts": 1000, "pm10": 10, "note": "stale"}"#);
        send(
            &mut shard,
            r#"[{"n": "temp", "u": "K", "v": 294.8, "t": 3}]"#,
        );
        let Some(WriterMsg::LastValues(mut values)) = shard.take_last_values() else {
            panic!("last values expected");
        };
        values.sort_by(|a, b| a.name.cmp(&b.name));
        let seen: Vec<_> = values
            .iter()
            .map(|v| {
                (
                    v.device_id.as_str(),
                    v.name.as_str(),
                    v.value.clone(),
                    v.unit.as_deref(),
                    v.time,
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("aq-1", "note", Value::Text("ok".into()), None, 2000),
                ("aq-1", "pm10", Value::Number(80.0), None, 2000),
                ("aq-1", "temp", Value::Number(294.8), Some("K"), 12_000),
            ]
        );
        assert!(shard.take_last_values().is_none(), "nothing changed since");
        send(&mut shard, r#"{"ts": 4000, "pm10": 81}"#);
        let Some(WriterMsg::LastValues(values)) = shard.take_last_values() else {
            panic!("last values expected");
        };
        assert_eq!(
            values.len(),
            3,
            "a changed device writes all its last values"
        );
    }

    /// A message that waited longer than `shed_after_ms` in its shard's queue is shed unprocessed and
    /// counted; a fresh one behind it is processed.
    #[tokio::test]
    async fn a_message_that_waited_too_long_is_shed_and_counted() {
        let stats = Arc::new(IngestStats::default());
        let (shard, _) = shard_with_device("noise-1", "noise", stats.clone());
        let (tx, rx) = mpsc::channel(16);
        let (writer_tx, _writer_rx) = mpsc::channel(16);
        let body = Bytes::from_static(br#"{"level": 60.5}"#);
        let now = Instant::now();
        let publishes = [now - Duration::from_secs(3), now]
            .map(|arrived| {
                let topic = Bytes::from_static(b"city/v1/devices/noise-1/up");
                Publish::new(topic, body.clone(), 1_000, arrived).unwrap()
            })
            .into();
        tx.send(ShardMsg::Publishes(publishes)).await.unwrap();
        tx.send(ShardMsg::Shutdown).await.unwrap();
        shard
            .run(
                rx,
                writer_tx,
                Duration::from_secs(60),
                Some(Duration::from_secs(2)),
            )
            .await;
        assert_eq!(stats.shed_total(), 1);
        assert_eq!(stats.messages_accepted.get(), 1);
        let mut text = cityops_core::telemetry::PromWriter::new();
        stats.render(&mut text);
        assert!(
            text.finish()
                .contains(r#"cityops_ingest_shed_total{reason="queue_delay"} 1"#)
        );
    }
}
