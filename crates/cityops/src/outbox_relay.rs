//! The outbox relay: moves case events committed in the store's outbox onto the bus, and marks them
//! published once the event log holds them, so each reaches the bus exactly once in effect.
//!
//! The protocol (see `cityops_store::cases`): read the pending events oldest first, publish each with
//! its outbox id, and mark it published only once the event log has it durably — the log's unique
//! `outbox_id` is both the proof and the deduplication. Before publishing, every pass asks the log which
//! pending ids it already holds and marks those without publishing them again: after a crash between
//! "logged" and "marked", live clients of the new bus do not see the event twice. An event published
//! but lost before the log wrote it (a crash, or a full log queue) is published again; consumers that
//! saw the first copy skip it by its `outbox_id`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cityops_bus::Bus;
use cityops_core::telemetry::LogLimiter;
use cityops_core::{CaseEvent, EventData};
use cityops_store::Store;
use cityops_store::cases::OutboxEvent;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// How the relay paces itself.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The pass that runs without a nudge (a write by another process, a nudge that was missed).
    pub poll_interval: Duration,
    /// Outbox events read per query.
    pub batch: u32,
    /// How long one pass waits for the event log to hold what it published before moving on; the
    /// rest is marked in a later pass.
    pub durable_wait: Duration,
    /// An event published this long ago and still not in the log was lost on its way (the log queue
    /// overflowed, which the bus counts): publish it again.
    pub republish_after: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(200),
            batch: 500,
            durable_wait: Duration::from_secs(5),
            republish_after: Duration::from_secs(30),
        }
    }
}

/// The bus event of an outbox event: its own name as `type`, the payload as `data`.
pub fn bus_event(event: &OutboxEvent) -> EventData {
    EventData::Case(CaseEvent {
        event_type: event.event_type.clone(),
        outbox_id: event.id,
        payload: event.payload.clone(),
    })
}

/// The event time on the bus is when the change was committed, not when it was relayed.
fn event_time(event: &OutboxEvent) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(event.created_at).unwrap_or_else(Utc::now)
}

/// One relay: the only one per database (the protocol assumes a single relay).
pub struct Relay {
    store: Store,
    bus: Bus,
    config: RelayConfig,
    /// Published by this relay and not yet seen in the log, with when: not published again meanwhile.
    in_flight: HashMap<i64, Instant>,
}

impl Relay {
    pub fn new(store: Store, bus: Bus, config: RelayConfig) -> Self {
        Self {
            store,
            bus,
            config,
            in_flight: HashMap::new(),
        }
    }

    /// One pass over the outbox; returns how many events it published.
    pub async fn relay_once(&mut self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let pending = self.store.pending_outbox(self.config.batch).await?;
            if pending.is_empty() {
                break;
            }
            let full = pending.len() >= self.config.batch as usize;
            let ids: Vec<i64> = pending.iter().map(|e| e.id).collect();
            // Already in the log (a crash after the log wrote them, or a pass that timed out): mark
            // them, never publish them again.
            let logged = self.store.logged_outbox_ids(&ids).await?;
            self.mark(&logged).await?;
            let now = Instant::now();
            let mut published = Vec::new();
            for event in pending.iter().filter(|e| !logged.contains(&e.id)) {
                if let Some(at) = self.in_flight.get(&event.id) {
                    if now.duration_since(*at) < self.config.republish_after {
                        continue;
                    }
                    tracing::warn!(
                        outbox_id = event.id,
                        "a relayed case event never reached the event log; publishing it again"
                    );
                }
                self.bus.publish_at(bus_event(event), event_time(event));
                self.in_flight.insert(event.id, now);
                published.push(event.id);
            }
            total += published.len();
            let published_any = !published.is_empty();
            if published_any {
                self.await_durable(published).await?;
            }
            // A short page was the last one; a page that neither published nor marked anything is
            // all in flight, and reading it again would spin.
            if !full || (!published_any && logged.is_empty()) {
                break;
            }
        }
        Ok(total)
    }

    /// Waits (briefly) until the event log holds these, marking them published as they arrive.
    async fn await_durable(&mut self, mut remaining: Vec<i64>) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.config.durable_wait;
        loop {
            let logged = self.store.logged_outbox_ids(&remaining).await?;
            self.mark(&logged).await?;
            remaining.retain(|id| !logged.contains(id));
            if remaining.is_empty() || Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn mark(&mut self, ids: &[i64]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.store.mark_published(ids, Utc::now()).await?;
        for id in ids {
            self.in_flight.remove(id);
        }
        Ok(())
    }
}

/// Runs until `stop` turns true (or its sender is gone): a pass at start (which also recovers after a
/// crash), then one per nudge or `poll_interval`, and a last pass after the stop so a write that came
/// just before it is still relayed while the bus is open.
pub async fn run(
    store: Store,
    bus: Bus,
    nudge: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    config: RelayConfig,
) {
    let interval = config.poll_interval;
    let mut relay = Relay::new(store, bus, config);
    let mut error_log = LogLimiter::new(Duration::from_secs(10));
    let mut stopping = false;
    loop {
        if let Err(e) = relay.relay_once().await
            && let Some(suppressed) = error_log.check(std::time::Instant::now())
        {
            tracing::error!(
                error = format!("{e:#}"),
                suppressed,
                "outbox relay pass failed; retrying"
            );
        }
        if stopping || *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = nudge.notified() => {}
            _ = tokio::time::sleep(interval) => {}
            changed = stop.changed() => {
                // Either way one more pass, then out.
                stopping = changed.is_err() || *stop.borrow();
            }
        }
    }
    tracing::debug!("outbox relay stopped");
}

#[cfg(test)]
pub(crate) mod tests;
