//! The event log writer: takes every bus event from the bus's log queue and appends it to the store in
//! batches, so a client that comes back after the memory ring moved on can still replay what it missed.

use std::time::Duration;

use chrono::Utc;
use std::sync::Arc;

use cityops_bus::{Bus, Published};
use cityops_core::telemetry::LogLimiter;
use cityops_store::{EventRow, Store};
use tokio::sync::mpsc;

/// Sequence numbers are reserved in the store this far ahead of the last one published, so after a
/// crash the bus continues above anything a client may already have seen.
pub const SEQ_RESERVATION: u64 = 100_000;

/// Shortest time between two appends to the log (see `run`). Replays wait up to 2 s for the log.
const LINGER: Duration = Duration::from_millis(50);

/// Runs until the bus is closed and everything it queued is written.
pub async fn run(
    bus: Bus,
    mut queue: mpsc::Receiver<Arc<Published>>,
    store: Store,
    retention: Duration,
) {
    let mut reserved = 0u64;
    let mut batch = Vec::with_capacity(1024);
    let mut error_log = LogLimiter::new(Duration::from_secs(10));
    let mut last_prune = tokio::time::Instant::now();
    let mut last_append = tokio::time::Instant::now() - LINGER;
    loop {
        batch.clear();
        if queue.recv_many(&mut batch, 1024).await == 0 {
            break;
        }
        // Linger: at most one append per LINGER unless a full batch is waiting. Every append is a
        // durable commit (an fsync) under SQLite's single write lock, which the incident writer
        // needs on the latency-critical path; the log only serves replays, which wait for it.
        let due = last_append + LINGER;
        if batch.len() < 1024 && tokio::time::Instant::now() < due {
            tokio::time::sleep_until(due).await;
            while batch.len() < 1024 {
                match queue.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
        }
        last_append = tokio::time::Instant::now();
        tracing::trace!(events = batch.len(), "event log batch");
        let last = bus.last_seq();
        if last + SEQ_RESERVATION / 2 > reserved {
            reserved = last + SEQ_RESERVATION;
            let reserved_ok = store.reserve_bus_seq(reserved).await;
            if let Err(e) = reserved_ok {
                tracing::error!(
                    error = format!("{e:#}"),
                    "could not reserve bus sequence numbers"
                );
            }
        }
        // The wire name (`case.dispatched`, not the metric label), so replay filters match it.
        let rows: Vec<EventRow> = batch
            .iter()
            .map(|e| EventRow {
                seq: e.seq(),
                event_type: e.event.data.type_name(),
                time: e.event.time.timestamp_millis(),
                json: &e.json,
                outbox_id: e.event.data.outbox_id(),
            })
            .collect();
        // Retry until it is written: the ring keeps the events meanwhile, and losing the log silently is worse.
        let mut backoff = Duration::from_millis(100);
        loop {
            let appended = store.append_events(&rows).await;
            let Err(e) = appended else { break };
            if let Some(suppressed) = error_log.check(std::time::Instant::now()) {
                tracing::error!(
                    error = format!("{e:#}"),
                    suppressed,
                    "event log write failed; retrying"
                );
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        if last_prune.elapsed() > Duration::from_secs(3600) {
            last_prune = tokio::time::Instant::now();
            let before = Utc::now().timestamp_millis() - retention.as_millis() as i64;
            match store.prune_events(before).await {
                Ok(n) if n > 0 => {
                    tracing::info!(pruned = n, "old events pruned from the event log")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = format!("{e:#}"), "event log pruning failed"),
            }
        }
    }
    tracing::debug!("event log writer stopped");
}
