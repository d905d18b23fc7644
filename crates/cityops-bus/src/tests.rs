//! Tests of the bus: ordering, filters, replay, explicit lag, closing.

use super::*;
use cityops_core::{Device, DeviceId, DeviceKind};
use std::time::Duration;

fn device_event(i: usize) -> EventData {
    EventData::DeviceRegistered(Device {
        id: DeviceId::new(&format!("d-{i}")).unwrap(),
        kind: DeviceKind::new("noise").unwrap(),
        lon: 116.4,
        lat: 39.9,
    })
}

fn reading_event(i: usize) -> EventData {
    EventData::Reading(cityops_core::event::ReadingSample {
        device_id: DeviceId::new(&format!("d-{i}")).unwrap(),
        kind: DeviceKind::new("noise").unwrap(),
        lon: 116.4,
        lat: 39.9,
        readings: vec![],
    })
}

async fn next_seq(sub: &mut Subscription) -> u64 {
    match sub.recv().await {
        Recv::Event(e) => e.seq(),
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test]
async fn events_are_numbered_in_order_from_first_seq() {
    let bus = Bus::new(BusConfig {
        capacity: 16,
        first_seq: 100,
    });
    let mut sub = bus.subscribe(Filter::all());
    assert_eq!(bus.publish(device_event(0)), 100);
    assert_eq!(bus.publish(device_event(1)), 101);
    assert_eq!(next_seq(&mut sub).await, 100);
    assert_eq!(next_seq(&mut sub).await, 101);
    assert_eq!(bus.last_seq(), 101);
}

#[tokio::test]
async fn wire_json_is_serialised_once_with_its_seq() {
    let bus = Bus::new(BusConfig::default());
    let mut sub = bus.subscribe(Filter::all());
    bus.publish(device_event(3));
    let Recv::Event(e) = sub.recv().await else {
        panic!()
    };
    let v: serde_json::Value = serde_json::from_str(&e.json).unwrap();
    assert_eq!(v["seq"], 1);
    assert_eq!(v["type"], "device.registered");
}

#[tokio::test]
async fn filter_by_type_skips_other_events() {
    let bus = Bus::new(BusConfig::default());
    let mut sub = bus.subscribe(Filter::types(["device.registered"]).unwrap());
    bus.publish(reading_event(0));
    bus.publish(reading_event(1));
    bus.publish(device_event(2));
    assert_eq!(next_seq(&mut sub).await, 3);
    assert!(
        Filter::types(["incident.bogus"])
            .unwrap_err()
            .contains("incident.opened")
    );
}

#[tokio::test]
async fn replay_after_a_sequence_number_returns_every_later_event() {
    let bus = Bus::new(BusConfig {
        capacity: 100,
        first_seq: 1,
    });
    for i in 0..10 {
        bus.publish(device_event(i));
    }
    let mut sub = bus.subscribe_after(4, Filter::all());
    for expected in 5..=10 {
        assert_eq!(next_seq(&mut sub).await, expected);
    }
    bus.publish(device_event(11));
    assert_eq!(next_seq(&mut sub).await, 11);
}

#[tokio::test]
async fn a_subscriber_that_falls_out_of_the_ring_is_told_exactly_how_much_it_missed() {
    let bus = Bus::new(BusConfig {
        capacity: 4,
        first_seq: 1,
    });
    let mut slow = bus.subscribe(Filter::all());
    let mut fast = bus.subscribe(Filter::all());
    for i in 0..10 {
        bus.publish(device_event(i));
        // The fast reader keeps up; the slow one reads nothing.
        let _ = next_seq(&mut fast).await;
    }
    match slow.recv().await {
        Recv::Lagged { missed, resume_seq } => {
            assert_eq!(missed, 6);
            assert_eq!(resume_seq, 7);
        }
        other => panic!("expected lag, got {other:?}"),
    }
    for expected in 7..=10 {
        assert_eq!(next_seq(&mut slow).await, expected);
    }
    assert_eq!(bus.stats().lagged.get(), 1);
    assert_eq!(bus.stats().lagged_events.get(), 6);
}

#[tokio::test]
async fn replay_from_before_the_ring_reports_the_gap() {
    let bus = Bus::new(BusConfig {
        capacity: 3,
        first_seq: 1,
    });
    for i in 0..5 {
        bus.publish(device_event(i));
    }
    assert_eq!(bus.first_seq_in_memory(), 3);
    let mut sub = bus.subscribe_after(0, Filter::all());
    assert!(matches!(
        sub.recv().await,
        Recv::Lagged {
            missed: 2,
            resume_seq: 3
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn recv_waits_for_a_publish_and_close_ends_it() {
    let bus = Bus::new(BusConfig::default());
    let mut sub = bus.subscribe(Filter::all());
    let publisher = bus.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        publisher.publish(device_event(0));
        tokio::time::sleep(Duration::from_secs(5)).await;
        publisher.close();
    });
    assert_eq!(next_seq(&mut sub).await, 1);
    assert!(matches!(sub.recv().await, Recv::Closed));
}

#[tokio::test]
async fn many_events_read_in_batches() {
    let bus = Bus::new(BusConfig {
        capacity: 1000,
        first_seq: 1,
    });
    let mut sub = bus.subscribe(Filter::all());
    for i in 0..250 {
        bus.publish(device_event(i));
    }
    let mut got = Vec::new();
    while got.len() < 250 {
        assert!(sub.recv_many(&mut got, 100).await.is_none());
    }
    let seqs: Vec<u64> = got.iter().map(|e| e.seq()).collect();
    assert_eq!(seqs, (1..=250).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_log_queue_gets_every_event_in_order_even_when_the_ring_overflows() {
    let (bus, mut log) = Bus::with_log(
        BusConfig {
            capacity: 2,
            first_seq: 1,
        },
        100,
    );
    for i in 0..10 {
        bus.publish(device_event(i));
    }
    bus.close();
    let mut seqs = Vec::new();
    while let Some(e) = log.recv().await {
        seqs.push(e.seq());
    }
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_full_log_queue_is_counted() {
    let (bus, _log) = Bus::with_log(
        BusConfig {
            capacity: 2,
            first_seq: 1,
        },
        3,
    );
    for i in 0..5 {
        bus.publish(device_event(i));
    }
    assert_eq!(bus.stats().log_overflow.get(), 2);
}

fn case_event(name: &str, outbox_id: i64) -> EventData {
    EventData::Case(cityops_core::CaseEvent {
        event_type: name.to_string(),
        outbox_id,
        payload: serde_json::json!({"case_id": 1}),
    })
}

#[tokio::test]
async fn case_events_filter_by_name_or_prefix_and_count_under_one_label() {
    let bus = Bus::new(BusConfig::default());
    let mut exact = bus.subscribe(Filter::types(["case.dispatched"]).unwrap());
    let mut prefix = bus.subscribe(Filter::types(["case.*"]).unwrap());
    bus.publish(reading_event(0));
    bus.publish(case_event("case.created", 1));
    bus.publish(case_event("case.dispatched", 2));
    assert_eq!(next_seq(&mut exact).await, 3);
    assert_eq!(next_seq(&mut prefix).await, 2);
    assert_eq!(next_seq(&mut prefix).await, 3);
    assert_eq!(bus.stats().published[EventType::Case as usize].get(), 2);
    let filter = Filter::types(["case.*", "reading"]).unwrap();
    assert!(filter.matches_type("case.sla_overdue"));
    assert!(filter.matches_type("reading"));
    assert!(!filter.matches_type("incident.opened"));
    let err = Filter::types(["case.bogus"]).unwrap_err();
    assert!(
        err.contains("case.sla_warning") && err.contains("case.*"),
        "{err}"
    );
    assert!(Filter::types(["cas*"]).is_err());
    assert!(Filter::types(["nothing.*"]).is_err());
    // The metric label is not a filter name.
    assert!(Filter::types(["case"]).is_err());
}
