//! A dashboard that reconnects with `?since=N` loses nothing: from the memory ring, then the stored log.

use std::time::Duration;

use cityops_core::{EventData, event::ReadingSample};

use crate::helpers::*;

fn sample(i: usize) -> EventData {
    EventData::Reading(ReadingSample {
        device_id: cityops_core::DeviceId::new(&format!("d-{i}")).unwrap(),
        kind: cityops_core::DeviceKind::new("noise").unwrap(),
        lon: 116.4,
        lat: 39.9,
        readings: vec![],
    })
}

/// Reads frames until `count` events arrived; asserts their sequence numbers are exactly `from..from+count`.
async fn expect_consecutive(ws: &mut Ws, from: u64, count: u64) {
    for expected in from..from + count {
        let frame = ws.next().await;
        assert_ne!(frame["type"], "resync", "unexpected resync: {frame}");
        assert_eq!(frame["seq"].as_u64(), Some(expected), "{frame}");
    }
}

#[tokio::test]
async fn a_reconnect_with_since_gets_every_incident_it_missed() {
    let app = spawn_app().await;
    let publisher = app.publisher("t-replay").await;
    for i in 0..4 {
        assert_eq!(app.register(&format!("bin-{i}"), "waste_bin").await, 201);
    }
    let mut ws = app.ws("?types=incident.opened").await;
    publisher.reading("bin-0", r#"{"fill": 95}"#).await;
    let first = ws.next().await;
    let seen = first["seq"].as_u64().unwrap();
    drop(ws);

    // While the dashboard is away, three more bins overflow.
    let mut watcher = app.ws("?types=incident.opened").await;
    for i in 1..4 {
        publisher
            .reading(&format!("bin-{i}"), r#"{"fill": 97}"#)
            .await;
        watcher.next().await;
    }
    let mut ws = app
        .ws(&format!("?since={seen}&types=incident.opened"))
        .await;
    let mut devices = Vec::new();
    let mut last = seen;
    for _ in 1..4 {
        let frame = ws.next().await;
        let seq = frame["seq"].as_u64().unwrap();
        assert!(seq > last, "in order, no repeats");
        last = seq;
        devices.push(frame["data"]["device_id"].as_str().unwrap().to_string());
    }
    assert_eq!(devices, ["bin-1", "bin-2", "bin-3"]);
    ws.assert_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn replay_older_than_the_ring_comes_from_the_stored_log() {
    let app = spawn_app_with(|s| s.bus.capacity = 4).await;
    let bus = app.app().bus.clone();
    let start = bus.last_seq();
    for i in 0..20 {
        bus.publish(sample(i));
    }
    assert!(
        bus.first_seq_in_memory() > start + 1,
        "the ring has moved on"
    );
    // Wait until the log writer has stored them.
    let deadline = tokio::time::Instant::now() + WAIT;
    while app
        .app()
        .store
        .events_after(start, 100)
        .await
        .unwrap()
        .len()
        < 20
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "events never reached the log"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ws = app.ws(&format!("?since={start}")).await;
    expect_consecutive(&mut ws, start + 1, 20).await;
    // And it goes on live.
    bus.publish(sample(99));
    expect_consecutive(&mut ws, start + 21, 1).await;
    assert!(app.metric("cityops_ws_replayed_from_store_total").await >= 16.0);
}

#[tokio::test]
async fn a_type_filter_applies_to_replay_too() {
    let app = spawn_app_with(|s| s.bus.capacity = 4).await;
    assert_eq!(app.register("mc-f", "manhole_cover").await, 201);
    let start = app.app().bus.last_seq();
    for i in 0..10 {
        app.app().bus.publish(sample(i));
    }
    let mut ws = app.ws("?since=0&types=device.registered").await;
    let frame = ws.next().await;
    assert_eq!(frame["type"], "device.registered");
    assert!(frame["seq"].as_u64().unwrap() <= start);
    ws.assert_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_sequence_number_from_the_future_gets_a_resync() {
    let app = spawn_app().await;
    let mut ws = app.ws("?since=999999999").await;
    let frame = ws.next().await;
    assert_eq!(frame["type"], "resync");
    assert_eq!(frame["data"]["reason"], "unknown_seq");
    let resume = frame["data"]["resume_seq"].as_u64().unwrap();
    app.app().bus.publish(sample(1));
    assert_eq!(ws.next().await["seq"].as_u64(), Some(resume));
}

#[tokio::test]
async fn unknown_event_types_in_the_filter_are_refused() {
    let app = spawn_app().await;
    let err = tokio_tungstenite::connect_async(app.ws_url("?types=incident.bogus"))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 422),
        other => panic!("expected an HTTP 422, got {other}"),
    }
}
