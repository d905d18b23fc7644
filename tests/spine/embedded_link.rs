//! Ingest reading the embedded broker in process (the default) and over TCP: bursts far over the
//! link's buffer all arrive, and a device using ingest's configured client id cannot cut it off.

use std::time::Duration;

use crate::helpers::*;

/// 5,000 readings published back to back: five times what rumqttd puts in a link's buffer before
/// it unschedules the link, so the reader must ask for more again and again.
async fn a_burst_arrives_whole(in_process: bool) {
    let app = spawn_app_with(|s| s.broker.ingest_in_process = in_process).await;
    assert!(app.app().embedded_broker);
    assert_eq!(app.register("nm-burst", "noise").await, 201);
    let publisher = app.publisher(&format!("t-burst-{in_process}")).await;
    const N: usize = 5_000;
    for i in 0..N {
        publisher
            .reading("nm-burst", &format!(r#"{{"laeq": {}}}"#, 40 + i % 20))
            .await;
    }
    app.wait_metric("cityops_ingest_messages_accepted_total", N as f64)
        .await;
    assert_eq!(
        app.metric("cityops_ingest_messages_accepted_total").await,
        N as f64,
        "each reading once"
    );
    assert_eq!(app.metric("cityops_ingest_readings_total").await, N as f64);
    assert_eq!(
        app.metric("cityops_mqtt_broker_cursor_jumps_total").await,
        0.0
    );
    assert_eq!(app.metric("cityops_mqtt_connected").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_in_process_links_buffer_arrives_whole() {
    a_burst_arrives_whole(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_read_over_tcp_from_the_embedded_broker_arrives_whole() {
    a_burst_arrives_whole(false).await;
}

/// At QoS 0 from four clients at once, into one shard that takes one message at a time: the
/// router outruns the link's reader, fills its buffer and unschedules it, again and again. Each
/// time the reader must ask for more, or ingest stops here. 20,000 small readings fit in the
/// broker's log, so nothing may be missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_outrun_by_the_router_catches_up_in_process() {
    let app = spawn_app_with(|s| {
        s.ingest.shards = 1;
        s.ingest.shard_queue = 1;
    })
    .await;
    const PUBLISHERS: usize = 4;
    const EACH: usize = 5_000;
    for p in 0..PUBLISHERS {
        assert_eq!(app.register(&format!("nm-fast-{p}"), "noise").await, 201);
    }
    let mut sending = Vec::new();
    for p in 0..PUBLISHERS {
        let publisher = app.publisher(&format!("t-fast-{p}")).await;
        sending.push(tokio::spawn(async move {
            let topic = format!("city/v1/devices/nm-fast-{p}/up");
            for i in 0..EACH {
                publisher
                    .client
                    .publish(
                        topic.as_str(),
                        rumqttc::QoS::AtMostOnce,
                        false,
                        format!(r#"{{"laeq": {}}}"#, 40 + i % 20),
                    )
                    .await
                    .unwrap();
            }
            publisher
        }));
    }
    let mut publishers = Vec::new();
    for task in sending {
        publishers.push(task.await.unwrap());
    }
    let n = (PUBLISHERS * EACH) as f64;
    app.wait_metric("cityops_ingest_messages_accepted_total", n)
        .await;
    assert_eq!(
        app.metric("cityops_ingest_messages_accepted_total").await,
        n
    );
    assert_eq!(
        app.metric("cityops_mqtt_broker_cursor_jumps_total").await,
        0.0
    );
}

#[tokio::test]
async fn a_device_under_ingests_client_id_does_not_cut_ingest_off() {
    let app = spawn_app().await;
    assert_eq!(app.register("wl-takeover", "water_level").await, 201);
    let mut ws = app.ws("?types=incident.opened").await;
    // MQTT lets a new connection take over an existing one with the same client id.
    let configured = cityops::settings::Settings::defaults()
        .ingest
        .mqtt_client_id;
    let impostor = app.publisher(&configured).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    impostor
        .reading("wl-takeover", r#"[{"n":"level","u":"m","v":0.42}]"#)
        .await;
    let frame = ws.next().await;
    assert_eq!(frame["data"]["device_id"], "wl-takeover");
    assert_eq!(app.metric("cityops_mqtt_connected").await, 1.0);
}
