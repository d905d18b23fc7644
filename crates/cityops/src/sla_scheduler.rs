//! The SLA scheduler: turns stage clocks that fell due into `case.sla_warning` / `case.sla_overdue`
//! events, each exactly once, escalated to the shift lead, and nudges the outbox relay.
//!
//! The timers live in the store (`case_clocks` with their warning and deadline instants), not in memory,
//! so they survive restarts: the scheduler only asks which fell due. It runs a pass at start (a restart
//! resumes every pending timer, and fires the ones that fell due while it was down) and then every
//! `interval`. Marking a clock and committing its event is one transaction that refuses a clock already
//! marked, so nothing fires twice, not even with two schedulers. Time comes from an injected clock so
//! tests control it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cityops_core::telemetry::LogLimiter;
use cityops_store::Store;
use cityops_store::cases::{CaseStoreError, DueClock, NewOutboxEvent};
use tokio::sync::{Notify, watch};

/// Who an SLA notification is escalated to (the role's API name).
pub const ESCALATE_TO: &str = "shift_lead";

/// How often the application looks for clocks that fell due (warnings are minutes apart at least).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// Due clocks read per query.
const BATCH: u32 = 200;

/// Where the scheduler reads the time: `Utc::now` in the application, a controlled one in tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// The event of a due clock: the store's standard notification, escalated to the shift lead.
pub fn escalation_event(due: &DueClock) -> NewOutboxEvent {
    let mut event = due.event();
    if let Some(payload) = event.payload.as_object_mut() {
        payload.insert("escalate_to".into(), ESCALATE_TO.into());
    }
    event
}

/// One pass at `now`: marks every clock that fell due and commits its event; returns how many fired.
/// Nudges the relay when something fired.
pub async fn tick(
    store: &Store,
    now: DateTime<Utc>,
    nudge: &Notify,
) -> Result<usize, CaseStoreError> {
    let mut fired = 0;
    loop {
        let due = store.due_clock_events(now, BATCH).await?;
        let mut marked = 0;
        for clock in &due {
            // `false`: no longer due (another scheduler was first, the stage ended): nothing to send.
            if store
                .mark_clock_notified(clock, &escalation_event(clock), now)
                .await?
            {
                marked += 1;
            }
        }
        fired += marked;
        // A short page was the last; a page with nothing marked would be read again unchanged.
        if due.len() < BATCH as usize || marked == 0 {
            break;
        }
    }
    if fired > 0 {
        tracing::debug!(fired, "SLA notifications committed");
        nudge.notify_one();
    }
    Ok(fired)
}

/// Runs a pass at start and then every `interval` until `stop` turns true (or its sender is gone).
pub async fn run(
    store: Store,
    nudge: Arc<Notify>,
    clock: Clock,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut error_log = LogLimiter::new(Duration::from_secs(10));
    loop {
        if let Err(e) = tick(&store, clock(), &nudge).await
            && let Some(suppressed) = error_log.check(std::time::Instant::now())
        {
            tracing::error!(
                error = format!("{e:#}"),
                suppressed,
                "SLA scheduler pass failed; retrying"
            );
        }
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
    }
    tracing::debug!("SLA scheduler stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case_fixtures::{Cases, t};
    use crate::outbox_relay::RelayConfig;
    use crate::outbox_relay::tests::{bus_with_log, received};
    use cityops_bus::Filter;
    use std::sync::Mutex;

    /// The SLA events committed to the outbox so far: (type, case id, escalate_to).
    async fn sla_events(store: &Store) -> Vec<(String, i64, String)> {
        store
            .pending_outbox(1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type.starts_with("case.sla_"))
            .map(|e| {
                (
                    e.event_type,
                    e.case_id.unwrap(),
                    e.payload["escalate_to"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn a_passing_deadline_warns_once_then_is_overdue_once() {
        let cases = Cases::memory().await;
        let nudge = Notify::new();
        // 30 working minutes to accept from 09:00: warning at the configured share, overdue after 09:30.
        let case = cases.report(t("2026-04-10 09:00")).await;
        assert_eq!(
            tick(&cases.store, t("2026-04-10 09:01"), &nudge)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            tick(&cases.store, t("2026-04-10 09:29"), &nudge)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            tick(&cases.store, t("2026-04-10 09:29"), &nudge)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            tick(&cases.store, t("2026-04-10 09:31"), &nudge)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            tick(&cases.store, t("2026-04-10 11:00"), &nudge)
                .await
                .unwrap(),
            0
        );
        let id = case.id;
        assert_eq!(
            sla_events(&cases.store).await,
            vec![
                ("case.sla_warning".to_string(), id, "shift_lead".to_string()),
                ("case.sla_overdue".to_string(), id, "shift_lead".to_string()),
            ]
        );
        // The relay was told.
        tokio::time::timeout(Duration::from_millis(100), nudge.notified())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn after_a_restart_nothing_fires_twice_and_pending_timers_still_fire() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("cityops.db").display());
        let cases = Cases::open(&url).await;
        let nudge = Notify::new();
        let first = cases.report(t("2026-04-10 09:00")).await;
        let second = cases.report(t("2026-04-10 10:00")).await;
        // Before the restart: the first case is overdue (fires as overdue once, its warning
        // folded in); the second is not due yet.
        assert_eq!(
            tick(&cases.store, t("2026-04-10 09:45"), &nudge)
                .await
                .unwrap(),
            1
        );
        cases.store.close().await;

        let cases = Cases::open(&url).await;
        let now = Arc::new(Mutex::new(t("2026-04-10 09:50")));
        let clock: Clock = {
            let now = now.clone();
            Arc::new(move || *now.lock().unwrap())
        };
        let nudge = Arc::new(Notify::new());
        let (stop, stop_rx) = watch::channel(false);
        let (bus, log) = bus_with_log(&cases.store).await;
        let mut sub =
            bus.subscribe(Filter::types(["case.sla_warning", "case.sla_overdue"]).unwrap());
        let scheduler = tokio::spawn(run(
            cases.store.clone(),
            nudge.clone(),
            clock,
            Duration::from_millis(10),
            stop_rx.clone(),
        ));
        let relay = tokio::spawn(crate::outbox_relay::run(
            cases.store.clone(),
            bus.clone(),
            nudge.clone(),
            stop_rx,
            RelayConfig {
                poll_interval: Duration::from_millis(20),
                ..RelayConfig::default()
            },
        ));
        // The first case's overdue, committed before the restart, is relayed; nothing new fires.
        let got = received(&mut sub, Duration::from_millis(300)).await;
        assert_eq!(
            got.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["case.sla_overdue"]
        );
        // The second case's timers fire when their time comes, once each.
        *now.lock().unwrap() = t("2026-04-10 10:28");
        let got = received(&mut sub, Duration::from_millis(300)).await;
        assert_eq!(
            got.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["case.sla_warning"]
        );
        *now.lock().unwrap() = t("2026-04-10 10:31");
        let got = received(&mut sub, Duration::from_millis(300)).await;
        assert_eq!(
            got.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["case.sla_overdue"]
        );
        stop.send_replace(true);
        scheduler.await.unwrap();
        relay.await.unwrap();
        bus.close();
        log.await.unwrap();

        let clocks = |id| cases.store.case_clocks(id);
        for id in [first.id, second.id] {
            let clock = &clocks(id).await.unwrap()[0];
            assert!(clock.warned && clock.overdue_notified, "{clock:?}");
        }
        // Every SLA event in the outbox, relayed once each.
        let sla: Vec<(String, i64)> = cases
            .store
            .events_after(0, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type.starts_with("case.sla_"))
            .map(|e| (e.event_type, e.seq as i64))
            .collect();
        assert_eq!(sla.len(), 3, "{sla:?}");
    }
}
