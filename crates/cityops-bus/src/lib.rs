//! The central bus (一中心): every event numbered once, kept in a bounded ring, read by any number of
//! subscribers at their own pace, with an explicit signal when one falls behind.
//!
//! Design: one ring of the latest `capacity` events shared by all subscribers. Publishing appends under a
//! short write lock and wakes readers through a `watch` channel; each subscriber keeps only its cursor (the
//! last sequence number it has seen), so an idle subscriber costs a few bytes and a slow one never slows
//! the publisher or the others. A subscriber whose cursor falls out of the ring receives
//! [`Recv::Lagged`] with the exact count it missed: never a silent drop. Replay (`subscribe_after`) is the
//! same mechanism started from an older cursor; older history lives in the store's event log.
//!
//! Events are serialised to their JSON wire form once, when published, and shared by every reader.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cityops_core::telemetry::{Counter, PromWriter};
use cityops_core::{BusEvent, EventData, EventType};
use parking_lot::RwLock;
use tokio::sync::{mpsc, watch};

/// An event as held by the bus: the event and its JSON text, serialised once.
#[derive(Debug)]
pub struct Published {
    pub event: BusEvent,
    pub json: Box<str>,
}

impl Published {
    pub fn new(event: BusEvent) -> Self {
        let json = event.to_json().into_boxed_str();
        Self { event, json }
    }

    pub fn seq(&self) -> u64 {
        self.event.seq
    }
}

/// Sizes of the bus.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// How many of the latest events stay in memory for subscribers and replay.
    pub capacity: usize,
    /// The sequence number of the first event published (the store's last sequence number + 1 after a restart).
    pub first_seq: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            capacity: 16_384,
            first_seq: 1,
        }
    }
}

/// The bus handle: cheap to clone, shared by publishers and subscribers.
#[derive(Clone)]
pub struct Bus {
    shared: Arc<Shared>,
}

struct Shared {
    ring: RwLock<Ring>,
    /// Carries the last published sequence number; readers wait on it.
    notify: watch::Sender<u64>,
    capacity: usize,
    stats: BusStats,
    closed: std::sync::atomic::AtomicBool,
}

struct Ring {
    events: VecDeque<Arc<Published>>,
    /// Sequence number the next published event gets.
    next_seq: u64,
    /// The durable event log's own queue: fed in sequence order under the same lock, so the log never
    /// depends on keeping up with the ring. `None` without a log, and after close.
    log: Option<mpsc::Sender<Arc<Published>>>,
}

impl Ring {
    /// Sequence number of the oldest event still held (equals `next_seq` when empty).
    fn first_seq(&self) -> u64 {
        self.next_seq - self.events.len() as u64
    }
}

/// Counters of the bus, exposed as metrics.
#[derive(Debug, Default)]
pub struct BusStats {
    pub published: [Counter; EventType::ALL.len()],
    pub lagged: Counter,
    pub lagged_events: Counter,
    /// Events the log queue had no room for (each one logged as an error).
    pub log_overflow: Counter,
}

/// Which events a subscriber wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `None` = every type. Names as on the wire (`case.dispatched`, not the metric label `case`).
    types: Option<HashSet<&'static str>>,
    /// Prefix forms (`case.*` kept as `case.`): a type passes when it starts with one of them.
    prefixes: Vec<&'static str>,
}

impl Filter {
    pub fn all() -> Self {
        Self::default()
    }

    /// Only these types: exact names (`case.dispatched`) or a prefix form ending in `.*` (`case.*`).
    /// Names are checked: an unknown name, or a prefix no known type has, is an error naming it and the
    /// known ones.
    pub fn types<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut types = HashSet::new();
        let mut prefixes = Vec::new();
        let unknown = |name: &str| {
            let known: Vec<_> = EventType::filter_names().collect();
            format!(
                "unknown event type {name:?}; known types: {} (or a prefix form such as case.*)",
                known.join(", ")
            )
        };
        for name in names {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            if let Some(stem) = name.strip_suffix('*') {
                // The prefix must end at a dot, so `case.*` works and `ca*` is not a silent catch-all.
                let prefix = EventType::filter_names()
                    .find(|known| stem.ends_with('.') && known.starts_with(stem))
                    .map(|known| &known[..stem.len()])
                    .ok_or_else(|| unknown(name))?;
                if !prefixes.contains(&prefix) {
                    prefixes.push(prefix);
                }
                continue;
            }
            match EventType::filter_names().find(|known| *known == name) {
                Some(known) => {
                    types.insert(known);
                }
                None => return Err(unknown(name)),
            }
        }
        let none = types.is_empty() && prefixes.is_empty();
        Ok(Self {
            types: if none { None } else { Some(types) },
            prefixes,
        })
    }

    pub fn matches(&self, event: &BusEvent) -> bool {
        self.matches_type(event.data.type_name())
    }

    /// Whether events of this type name pass (for events read back from the store's log).
    pub fn matches_type(&self, event_type: &str) -> bool {
        self.types.as_ref().is_none_or(|t| {
            t.contains(event_type) || self.prefixes.iter().any(|p| event_type.starts_with(p))
        })
    }
}

/// What a subscriber receives.
#[derive(Debug)]
pub enum Recv {
    Event(Arc<Published>),
    /// The subscriber fell out of the ring: `missed` events were skipped and reading resumes at `resume_seq`.
    Lagged {
        missed: u64,
        resume_seq: u64,
    },
    /// The bus is gone (shutdown).
    Closed,
}

impl Bus {
    pub fn new(config: BusConfig) -> Self {
        Self::build(config, None)
    }

    /// A bus that also hands every event, in order, to a durable log through a queue of
    /// `log_capacity` events (the store's event log writer reads the returned receiver).
    pub fn with_log(
        config: BusConfig,
        log_capacity: usize,
    ) -> (Self, mpsc::Receiver<Arc<Published>>) {
        let (tx, rx) = mpsc::channel(log_capacity.max(1));
        (Self::build(config, Some(tx)), rx)
    }

    fn build(config: BusConfig, log: Option<mpsc::Sender<Arc<Published>>>) -> Self {
        let capacity = config.capacity.max(1);
        let first_seq = config.first_seq.max(1);
        let (notify, _) = watch::channel(first_seq - 1);
        Self {
            shared: Arc::new(Shared {
                ring: RwLock::new(Ring {
                    events: VecDeque::with_capacity(capacity),
                    next_seq: first_seq,
                    log,
                }),
                notify,
                capacity,
                stats: BusStats::default(),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Numbers and publishes one event; returns its sequence number.
    pub fn publish(&self, data: EventData) -> u64 {
        self.publish_at(data, Utc::now())
    }

    /// Publishes with an explicit event time.
    pub fn publish_at(&self, data: EventData, time: DateTime<Utc>) -> u64 {
        self.publish_batch_at(std::iter::once(data), time)
    }

    /// Publishes several events with consecutive sequence numbers; returns the last one (or the current
    /// last sequence number when `datas` is empty).
    pub fn publish_batch_at(
        &self,
        datas: impl IntoIterator<Item = EventData>,
        time: DateTime<Utc>,
    ) -> u64 {
        let last = {
            let mut ring = self.shared.ring.write();
            for data in datas {
                let event_type = data.event_type();
                let event = BusEvent {
                    seq: ring.next_seq,
                    data,
                    time,
                };
                // Serialising inside the lock keeps sequence order and ring order the same; events are small.
                let published = Arc::new(Published::new(event));
                ring.next_seq += 1;
                if ring.events.len() == self.shared.capacity {
                    ring.events.pop_front();
                }
                if let Some(log) = &ring.log
                    && log.try_send(published.clone()).is_err()
                {
                    self.shared.stats.log_overflow.inc();
                }
                ring.events.push_back(published);
                self.shared.stats.published[event_type as usize].inc();
            }
            ring.next_seq - 1
        };
        self.shared.notify.send_replace(last);
        last
    }

    /// Closes the bus: subscribers drain what is held, then receive [`Recv::Closed`].
    pub fn close(&self) {
        // Dropping the log sender lets the log writer drain its queue and finish.
        self.shared.ring.write().log = None;
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.notify.send_modify(|_| {});
    }

    fn is_closed(&self) -> bool {
        self.shared.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The sequence number of the last published event (0 before the first one).
    pub fn last_seq(&self) -> u64 {
        self.shared.ring.read().next_seq - 1
    }

    /// The oldest sequence number still in memory.
    pub fn first_seq_in_memory(&self) -> u64 {
        self.shared.ring.read().first_seq()
    }

    /// Number of events held in memory.
    pub fn depth(&self) -> usize {
        self.shared.ring.read().events.len()
    }

    pub fn stats(&self) -> &BusStats {
        &self.shared.stats
    }

    /// A subscription to events published from now on.
    pub fn subscribe(&self, filter: Filter) -> Subscription {
        let cursor = self.last_seq();
        self.subscribe_after(cursor, filter)
    }

    /// A subscription that first replays every held event after `seq`. If the ring no longer holds
    /// `seq + 1`, the first receive is [`Recv::Lagged`]: the caller fetches the gap from the store
    /// (see [`Bus::first_seq_in_memory`]) or resynchronises.
    pub fn subscribe_after(&self, seq: u64, filter: Filter) -> Subscription {
        let mut notify = self.shared.notify.subscribe();
        notify.borrow_and_update();
        Subscription {
            bus: self.clone(),
            cursor: seq,
            filter,
            notify,
        }
    }

    /// Copies held events with sequence numbers in `(after, after + max]`, and whether the ring had
    /// already dropped `after + 1`.
    fn read_after(&self, after: u64, max: usize, out: &mut Vec<Arc<Published>>) -> Option<u64> {
        let ring = self.shared.ring.read();
        let first = ring.first_seq();
        if after + 1 < first {
            return Some(first);
        }
        let start = (after + 1 - first) as usize;
        out.extend(ring.events.iter().skip(start).take(max).cloned());
        None
    }

    /// Events queued for the durable log and not yet taken by its writer (0 without a log).
    pub fn log_queue_len(&self) -> u64 {
        let ring = self.shared.ring.read();
        ring.log
            .as_ref()
            .map_or(0, |log| (log.max_capacity() - log.capacity()) as u64)
    }

    /// Renders the bus metrics.
    pub fn render_metrics(&self, w: &mut PromWriter) {
        w.family(
            "cityops_bus_events_published_total",
            "counter",
            "Events published on the bus, by type.",
        );
        for t in EventType::ALL {
            w.sample(
                "cityops_bus_events_published_total",
                &[("type", t.as_str())],
                self.shared.stats.published[t as usize].get(),
            );
        }
        w.single(
            "cityops_bus_depth_events",
            "gauge",
            "Events held in the bus ring.",
            self.depth(),
        );
        w.single(
            "cityops_bus_last_seq",
            "gauge",
            "Sequence number of the last event.",
            self.last_seq(),
        );
        w.single(
            "cityops_bus_lag_events_total",
            "counter",
            "Times a subscriber fell behind the ring and was told so.",
            self.shared.stats.lagged.get(),
        );
        w.single(
            "cityops_bus_lagged_skipped_events_total",
            "counter",
            "Events skipped by lagging subscribers (each one reported to it).",
            self.shared.stats.lagged_events.get(),
        );
        w.single(
            "cityops_bus_log_queue_events",
            "gauge",
            "Events waiting in the event log queue to be written to the store.",
            self.log_queue_len(),
        );
        w.single(
            "cityops_bus_log_overflow_total",
            "counter",
            "Events the event log queue had no room for (not replayable from the store).",
            self.shared.stats.log_overflow.get(),
        );
    }
}

/// One reader of the bus: a cursor and a filter.
pub struct Subscription {
    bus: Bus,
    cursor: u64,
    filter: Filter,
    notify: watch::Receiver<u64>,
}

impl Subscription {
    /// The last sequence number this subscription has passed.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Moves the cursor (after a gap was filled from the store, or to skip ahead on resync).
    pub fn seek(&mut self, seq: u64) {
        self.cursor = seq;
    }

    /// Waits for the next matching event.
    pub async fn recv(&mut self) -> Recv {
        let mut batch = Vec::with_capacity(1);
        match self.recv_many(&mut batch, 1).await {
            Some(lag) => lag,
            None => match batch.pop() {
                Some(event) => Recv::Event(event),
                None => Recv::Closed,
            },
        }
    }

    /// Waits until at least one matching event is available and appends up to `max` of them to `out`.
    /// Returns `Some(Recv::Lagged{..})` or `Some(Recv::Closed)` instead when that happened; `None` when
    /// events were appended.
    pub async fn recv_many(&mut self, out: &mut Vec<Arc<Published>>, max: usize) -> Option<Recv> {
        let mut scratch = Vec::new();
        loop {
            self.notify.borrow_and_update();
            scratch.clear();
            if let Some(first) = self.bus.read_after(self.cursor, max.max(1), &mut scratch) {
                let missed = first - (self.cursor + 1);
                self.bus.shared.stats.lagged.inc();
                self.bus.shared.stats.lagged_events.add(missed);
                self.cursor = first - 1;
                return Some(Recv::Lagged {
                    missed,
                    resume_seq: first,
                });
            }
            let before = out.len();
            for event in scratch.drain(..) {
                self.cursor = event.seq();
                if self.filter.matches(&event.event) {
                    out.push(event);
                }
            }
            if out.len() > before {
                return None;
            }
            // Nothing new that matches: if events arrived but were filtered out, read on; otherwise wait.
            if self.cursor < self.bus.last_seq() {
                continue;
            }
            if self.bus.is_closed() || self.notify.changed().await.is_err() {
                return Some(Recv::Closed);
            }
        }
    }
}

#[cfg(test)]
mod tests;
