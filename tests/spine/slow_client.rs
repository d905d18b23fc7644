//! A slow websocket client is told (`resync`) instead of silently losing events, and never slows the
//! bus or the other clients.

use std::time::Duration;

use cityops_core::{EventData, event::ReadingSample};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

fn sample(i: usize) -> EventData {
    EventData::Reading(ReadingSample {
        device_id: cityops_core::DeviceId::new(&format!("device-{i}")).unwrap(),
        kind: cityops_core::DeviceKind::new("noise").unwrap(),
        lon: 116.4,
        lat: 39.9,
        readings: vec![cityops_core::Reading {
            name: "laeq".into(),
            unit: Some("dB".into()),
            value: cityops_core::Value::Number(55.5),
            time: Some(1_795_870_000_000),
        }],
    })
}

/// A websocket client of `/ws` with a 4 KiB receive buffer: it stops the server's sends soon after it
/// stops reading.
async fn tiny_buffer_client(
    app: &TestApp,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.app().http_addr).await.unwrap();
    let (client, _) = tokio_tungstenite::client_async(app.ws_url(""), stream)
        .await
        .unwrap();
    client
}

#[tokio::test]
async fn a_client_that_stops_reading_gets_a_resync_and_every_event_is_accounted_for() {
    let app = spawn_app_with(|s| {
        s.ws.max_lag = 5_000;
        s.ws.send_timeout_secs = 120;
    })
    .await;
    let bus = app.app().bus.clone();
    let start = bus.last_seq();

    // The slow client: a tiny receive buffer and no reading until the end.
    let mut slow = tiny_buffer_client(&app).await;
    let mut fast = app.ws("").await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Publish in rounds; the fast client keeps up with every round.
    let total = 40_000u64;
    let round = 1_000u64;
    let mut fast_received = 0u64;
    for r in 0..total / round {
        for i in 0..round {
            bus.publish(sample((r * round + i) as usize));
        }
        while fast_received < (r + 1) * round {
            let frame = fast.next().await;
            assert_ne!(
                frame["type"], "resync",
                "the fast client must not be resynchronised"
            );
            fast_received += 1;
            assert_eq!(frame["seq"].as_u64(), Some(start + fast_received));
        }
    }
    assert_eq!(fast_received, total, "the other client got everything");

    // Now the slow client reads: every event is either delivered or counted in a resync.
    let mut delivered = 0u64;
    let mut missed = 0u64;
    let mut resyncs = 0u64;
    let mut last_seq = start;
    while last_seq < start + total {
        let message = tokio::time::timeout(WAIT, slow.next())
            .await
            .expect("frames keep coming")
            .unwrap()
            .unwrap();
        let Message::Text(text) = message else {
            continue;
        };
        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
        if frame["type"] == "resync" {
            resyncs += 1;
            missed += frame["data"]["missed"].as_u64().unwrap();
            last_seq = frame["data"]["resume_seq"].as_u64().unwrap() - 1;
        } else {
            let seq = frame["seq"].as_u64().unwrap();
            assert_eq!(seq, last_seq + 1, "no silent gap");
            last_seq = seq;
            delivered += 1;
        }
    }
    assert!(resyncs >= 1, "the slow client was told it fell behind");
    assert_eq!(
        delivered + missed,
        total,
        "delivered + missed accounts for every event"
    );
    assert!(
        app.metric("cityops_ws_resyncs_total{reason=\"lagged\"}")
            .await
            >= 1.0
    );
}

/// A client that takes nothing at all is cut off once one send has waited `send_timeout`, counted,
/// while a send the socket takes at once never waits for a timer.
#[tokio::test]
async fn a_client_that_never_reads_is_cut_off_after_the_send_timeout() {
    let app = spawn_app_with(|s| {
        s.ws.max_lag = 1_000_000;
        s.ws.send_timeout_secs = 1;
    })
    .await;
    let bus = app.app().bus.clone();
    let slow = tiny_buffer_client(&app).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.metric("cityops_ws_send_timeouts_total").await, 0.0);
    // Enough to fill the kernel's buffers on both ends many times over.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut i = 0;
    while app.metric("cityops_ws_send_timeouts_total").await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stuck client was never timed out"
        );
        for _ in 0..2_000 {
            bus.publish(sample(i));
            i += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.metric("cityops_ws_send_timeouts_total").await, 1.0);
    drop(slow);
}
