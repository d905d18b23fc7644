//! Tests of the relay: case events reach a bus subscriber exactly once, also across a crash between
//! "the log has it" and "marked published".

use std::collections::BTreeSet;

use cityops_bus::{BusConfig, Filter, Recv, Subscription};
use cityops_core::case::{Action, ActionKind, Role};
use cityops_store::cases::{CASE_CREATED, CASE_SLA_OVERDUE, CASE_SLA_WARNING, event_type_for};
use tokio::task::JoinHandle;

use super::*;
use crate::case_fixtures::{Cases, t};
use crate::event_log;

/// A bus continuing after the store's log, with the real event log writer behind it.
pub(crate) async fn bus_with_log(store: &Store) -> (Bus, JoinHandle<()>) {
    let floor = store.bus_seq_floor().await.unwrap();
    let (bus, queue) = Bus::with_log(
        BusConfig {
            capacity: 1_000,
            first_seq: floor + 1,
        },
        1_000,
    );
    let log = tokio::spawn(event_log::run(
        bus.clone(),
        queue,
        store.clone(),
        Duration::from_secs(3600),
    ));
    (bus, log)
}

/// Every case event the subscription receives until it has been quiet for `quiet`.
pub(crate) async fn received(sub: &mut Subscription, quiet: Duration) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    while let Ok(Recv::Event(e)) = tokio::time::timeout(quiet, sub.recv()).await {
        if let EventData::Case(case) = &e.event.data {
            out.push((case.event_type.clone(), case.outbox_id));
        }
    }
    out
}

fn quick() -> RelayConfig {
    RelayConfig {
        poll_interval: Duration::from_millis(20),
        ..RelayConfig::default()
    }
}

#[test]
fn the_bus_knows_every_case_event_the_store_emits() {
    let store_names: BTreeSet<&str> = ActionKind::ALL
        .iter()
        .map(|k| event_type_for(*k))
        .chain([CASE_CREATED, CASE_SLA_WARNING, CASE_SLA_OVERDUE])
        .collect();
    let bus_names: BTreeSet<&str> = cityops_core::event::CASE_EVENT_TYPES
        .iter()
        .copied()
        .collect();
    assert_eq!(store_names, bus_names);
}

#[tokio::test]
async fn events_of_created_and_changed_cases_reach_subscribers_exactly_once() {
    let cases = Cases::memory().await;
    let (bus, log) = bus_with_log(&cases.store).await;
    let mut sub = bus.subscribe(Filter::types(["case.*"]).unwrap());
    let case = cases.report(t("2026-04-10 09:00")).await;
    cases
        .act(&case, Action::Accept, Role::Operator, t("2026-04-10 09:05"))
        .await;

    let mut relay = Relay::new(cases.store.clone(), bus.clone(), quick());
    assert_eq!(relay.relay_once().await.unwrap(), 2);
    assert_eq!(relay.relay_once().await.unwrap(), 0);
    let got = received(&mut sub, Duration::from_millis(200)).await;
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["case.created", "case.accepted"]);
    assert!(cases.store.pending_outbox(10).await.unwrap().is_empty());
    let ids: Vec<i64> = got.iter().map(|(_, id)| *id).collect();
    assert_eq!(cases.store.logged_outbox_ids(&ids).await.unwrap(), ids);

    // The running relay: a nudge after a write delivers it without waiting for the poll.
    let nudge = Arc::new(Notify::new());
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(
        cases.store.clone(),
        bus.clone(),
        nudge.clone(),
        stop_rx,
        RelayConfig {
            poll_interval: Duration::from_secs(3600),
            ..RelayConfig::default()
        },
    ));
    cases.report(t("2026-04-10 09:10")).await;
    nudge.notify_one();
    let got = received(&mut sub, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "case.created");
    stop.send_replace(true);
    task.await.unwrap();
    bus.close();
    log.await.unwrap();
}

#[tokio::test]
async fn a_crash_between_logging_and_marking_does_not_deliver_twice() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cityops.db").display());
    let cases = Cases::open(&url).await;
    let case = cases.report(t("2026-04-10 09:00")).await;
    cases
        .act(&case, Action::Accept, Role::Operator, t("2026-04-10 09:05"))
        .await;

    // Before the crash: the relay published and the log wrote, but the process died before marking.
    let (bus, log) = bus_with_log(&cases.store).await;
    let pending = cases.store.pending_outbox(10).await.unwrap();
    assert_eq!(pending.len(), 2);
    for event in &pending {
        bus.publish_at(bus_event(event), event_time(event));
    }
    bus.close();
    log.await.unwrap();
    let ids: Vec<i64> = pending.iter().map(|e| e.id).collect();
    assert_eq!(cases.store.logged_outbox_ids(&ids).await.unwrap(), ids);
    cases.store.close().await;

    // After the restart: a new bus, a new relay on the reopened database.
    let cases = Cases::open(&url).await;
    let (bus, log) = bus_with_log(&cases.store).await;
    let mut sub = bus.subscribe(Filter::types(["case.*"]).unwrap());
    let mut relay = Relay::new(cases.store.clone(), bus.clone(), quick());
    assert_eq!(
        relay.relay_once().await.unwrap(),
        0,
        "nothing published again"
    );
    assert!(cases.store.pending_outbox(10).await.unwrap().is_empty());
    assert!(
        received(&mut sub, Duration::from_millis(100))
            .await
            .is_empty()
    );

    // New work still flows, once.
    cases.report(t("2026-04-10 09:20")).await;
    assert_eq!(relay.relay_once().await.unwrap(), 1);
    let got = received(&mut sub, Duration::from_millis(200)).await;
    assert_eq!(got.len(), 1);
    // And the log holds each outbox event once.
    let logged = cases.store.events_after(0, 100).await.unwrap();
    assert_eq!(logged.len(), 3);
    bus.close();
    log.await.unwrap();
}

#[tokio::test]
async fn an_event_published_but_never_logged_is_published_again_and_logged_once() {
    let cases = Cases::memory().await;
    cases.report(t("2026-04-10 09:00")).await;
    // A bus without a log stands for a crash before the log wrote the event: it is not in the log.
    let lost = Bus::new(BusConfig::default());
    let pending = cases.store.pending_outbox(10).await.unwrap();
    lost.publish(bus_event(&pending[0]));

    let (bus, log) = bus_with_log(&cases.store).await;
    let mut sub = bus.subscribe(Filter::all());
    let mut relay = Relay::new(cases.store.clone(), bus.clone(), quick());
    assert_eq!(relay.relay_once().await.unwrap(), 1);
    assert_eq!(
        received(&mut sub, Duration::from_millis(200)).await.len(),
        1
    );
    assert!(cases.store.pending_outbox(10).await.unwrap().is_empty());
    bus.close();
    log.await.unwrap();
}
