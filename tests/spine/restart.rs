//! Restarts: open incidents stay open (no duplicate after a restart), the bus never reuses a sequence
//! number, and a clean shutdown writes everything that was in flight.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn an_open_incident_survives_a_restart_without_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path());

    let mut first = start(settings.clone(), tempfile::tempdir().unwrap()).await;
    assert_eq!(first.register("mc-r", "manhole_cover").await, 201);
    let mut ws = first.ws("?types=incident.opened").await;
    let publisher = first.publisher("t-restart-1").await;
    publisher.reading("mc-r", r#"{"tilt": 25}"#).await;
    let opened = ws.next().await;
    let id = opened["data"]["id"].as_i64().unwrap();
    let seq_before = opened["seq"].as_u64().unwrap();
    drop((ws, publisher));
    first.shutdown().await;

    let second = start(settings, tempfile::tempdir().unwrap()).await;
    let mut ws = second.ws("?types=incident.opened,incident.cleared").await;
    let publisher = second.publisher("t-restart-2").await;
    publisher.reading("mc-r", r#"{"tilt": 30}"#).await;
    ws.assert_quiet(Duration::from_millis(500)).await;
    publisher.reading("mc-r", r#"{"tilt": 0.5}"#).await;
    let cleared = ws.next().await;
    assert_eq!(cleared["type"], "incident.cleared");
    assert_eq!(
        cleared["data"]["id"], id,
        "the incident from before the restart is the one cleared"
    );
    assert!(
        cleared["seq"].as_u64().unwrap() > seq_before,
        "sequence numbers continue upwards"
    );

    // What was published before the restart is still replayable.
    let mut replay = second
        .ws(&format!("?since={}&types=incident.opened", seq_before - 1))
        .await;
    assert_eq!(replay.next().await["seq"].as_u64(), Some(seq_before));
}

#[tokio::test]
async fn a_clean_shutdown_writes_the_last_values_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.ingest.flush_interval_ms = 60_000; // nothing is flushed by the timer during this test
    let mut app = start(settings.clone(), tempfile::tempdir().unwrap()).await;
    assert_eq!(app.register("noise-s", "noise").await, 201);
    let publisher = app.publisher("t-flush").await;
    for i in 0..50 {
        publisher
            .reading("noise-s", &format!(r#"{{"laeq": {}}}"#, 50 + i % 10))
            .await;
    }
    app.wait_metric("cityops_ingest_messages_accepted_total", 50.0)
        .await;
    app.shutdown().await;

    let store = cityops_store::Store::open(&settings.database_url())
        .await
        .unwrap();
    let records = store.device_records().await.unwrap();
    assert_eq!(records[0].last_values.len(), 1);
    assert_eq!(
        records[0].last_values[0].value,
        cityops_core::Value::Number(59.0)
    );
}
