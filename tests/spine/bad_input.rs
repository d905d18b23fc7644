//! Bad device input: each kind is rejected, counted by reason, and good messages on the same connection
//! keep flowing.

use crate::helpers::*;

#[tokio::test]
async fn each_bad_input_is_counted_and_good_messages_keep_flowing() {
    let app = spawn_app().await;
    assert_eq!(app.register("mc-bad", "manhole_cover").await, 201);
    let mut ws = app.ws("?types=incident.opened,incident.cleared").await;
    let publisher = app.publisher("t-bad").await;
    let up = "city/v1/devices/mc-bad/up";
    let too_large = format!("{{\"tilt\": 1, \"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("malformed_json", up, b"{\"tilt\": ".to_vec()),
        ("malformed_json", up, vec![0xff, 0xfe, 0x00]),
        ("wrong_type", up, br#"{"tilt": {"deg": 30}}"#.to_vec()),
        ("wrong_type", up, br#"[{"n":"tilt","v":"thirty"}]"#.to_vec()),
        ("non_finite", up, br#"{"tilt": NaN}"#.to_vec()),
        ("non_finite", up, br#"[{"n":"tilt","v":1e999}]"#.to_vec()),
        ("too_large", up, too_large.into_bytes()),
        (
            "unknown_device",
            "city/v1/devices/nobody/up",
            br#"{"tilt": 30}"#.to_vec(),
        ),
        (
            "unknown_topic",
            "city/v1/devices/mc-bad/down",
            br#"{"tilt": 30}"#.to_vec(),
        ),
        (
            "unknown_topic",
            "city/v1/weather",
            br#"{"tilt": 30}"#.to_vec(),
        ),
        ("empty", up, b"{}".to_vec()),
    ];
    let mut expected: std::collections::BTreeMap<&str, f64> = std::collections::BTreeMap::new();
    let mut abnormal = true;
    for (reason, topic, body) in cases {
        publisher.send(topic, body).await;
        *expected.entry(reason).or_default() += 1.0;
        // A good message right after the bad one: alternately opens and clears the incident.
        let good = if abnormal {
            r#"{"tilt": 30}"#
        } else {
            r#"{"tilt": 1}"#
        };
        publisher.reading("mc-bad", good).await;
        let frame = ws.next().await;
        assert_eq!(
            frame["type"],
            if abnormal {
                "incident.opened"
            } else {
                "incident.cleared"
            },
            "after a {reason} message"
        );
        abnormal = !abnormal;
    }
    for (reason, count) in expected {
        assert_eq!(
            app.metric(&format!(
                "cityops_ingest_rejected_total{{reason=\"{reason}\"}}"
            ))
            .await,
            count,
            "{reason}"
        );
    }
    let (status, health) = app.get_json("/healthz").await;
    assert_eq!(
        (status.as_u16(), health["status"].as_str()),
        (200, Some("ok")),
        "still serving"
    );
    assert_eq!(
        app.metric("cityops_mqtt_connection_errors_total").await,
        0.0,
        "the ingest connection never dropped"
    );
}

#[tokio::test]
async fn a_bad_message_changes_nothing() {
    let app = spawn_app().await;
    assert_eq!(app.register("mc-nochange", "manhole_cover").await, 201);
    let publisher = app.publisher("t-nochange").await;
    publisher
        .reading("mc-nochange", r#"{"tilt": 3, "battery": 90}"#)
        .await;
    app.wait_metric("cityops_store_last_values_written_total", 2.0)
        .await;
    // A pack with one good and one bad record is rejected whole: the good one is not applied either.
    publisher
        .reading(
            "mc-nochange",
            r#"[{"n":"tilt","v":45},{"n":"battery","v":"low"}]"#,
        )
        .await;
    app.wait_metric("cityops_ingest_rejected_total{reason=\"wrong_type\"}", 1.0)
        .await;
    publisher.reading("mc-nochange", r#"{"battery": 89}"#).await;
    app.wait_metric("cityops_ingest_messages_accepted_total", 2.0)
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, devices) = app.get_json("/api/v1/devices").await;
        let values = &devices["items"][0]["last_values"];
        let battery = values
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "battery")
            .map(|v| v["value"].clone());
        if battery == Some(serde_json::json!(89.0)) {
            let tilt = values
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == "tilt")
                .unwrap();
            assert_eq!(tilt["value"], 3.0, "the rejected pack did not change tilt");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "last values never updated: {devices}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(app.metric("cityops_incidents_opened_total").await, 0.0);
}
