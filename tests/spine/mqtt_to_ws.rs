//! The whole first path: a reading over MQTT crosses a rule, the incident is stored, and it arrives on `/ws`.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn a_displaced_manhole_cover_reaches_the_websocket_once_and_clears() {
    let app = spawn_app().await;
    assert_eq!(app.register("mc-0001", "manhole_cover").await, 201);
    let mut ws = app.ws("?types=incident.opened,incident.cleared").await;
    let publisher = app.publisher("t-mqtt-ws").await;

    // The example of the issue: the SenML base name names the device; the reading is tilt = 32.5.
    publisher
        .reading(
            "mc-0001",
            r#"[{"bn":"urn:dev:mac:0024befffe804ff1:","n":"tilt","u":"deg","v":32.5}]"#,
        )
        .await;
    let opened = ws.next().await;
    assert_eq!(opened["type"], "incident.opened");
    assert!(opened["seq"].as_u64().unwrap() > 0);
    chrono::DateTime::parse_from_rfc3339(opened["time"].as_str().unwrap()).expect("RFC 3339 time");
    let data = &opened["data"];
    assert_eq!(data["device_id"], "mc-0001");
    assert_eq!(data["kind"], "manhole_cover");
    assert_eq!(data["category_code"], "E0503");
    assert_eq!(data["category_name_zh"], "井盖移位");
    assert_eq!(data["category_name_en"], "Manhole cover displaced");
    assert_eq!(data["value"], 32.5);
    assert_eq!(data["unit"], "deg");
    assert_eq!(data["lon"], 116.4172);
    assert_eq!(data["lat"], 39.9134);
    let id = data["id"].as_i64().unwrap();

    // Still abnormal, and inside the hysteresis band: no duplicate incident.
    publisher.reading("mc-0001", r#"{"tilt": 40}"#).await;
    publisher.reading("mc-0001", r#"{"tilt": 12}"#).await;
    ws.assert_quiet(Duration::from_millis(500)).await;

    // Back to normal: cleared.
    publisher
        .reading(
            "mc-0001",
            r#"{"ts": 1795870000000, "values": {"tilt": 2.0}}"#,
        )
        .await;
    let cleared = ws.next().await;
    assert_eq!(cleared["type"], "incident.cleared");
    assert_eq!(cleared["data"]["id"], id);
    assert!(cleared["seq"].as_u64() > opened["seq"].as_u64());

    // The incident was stored with the reading that triggered it.
    let (status, stored) = app.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(stored["state"], "cleared");
    assert_eq!(stored["clear_value"], 2.0);
    assert_eq!(stored["evidence"][0]["value"], 32.5);
    let (_, list) = app.get_json("/api/v1/incidents?device=mc-0001").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "exactly one incident for the episode"
    );
    assert_eq!(app.metric("cityops_incidents_opened_total").await, 1.0);
    assert_eq!(app.metric("cityops_incidents_cleared_total").await, 1.0);
}

#[tokio::test]
async fn every_default_rule_fires_from_its_device_kind() {
    let app = spawn_app().await;
    let cases = [
        ("wl-1", "water_level", r#"{"level": 0.3}"#, "E0501"),
        (
            "bin-1",
            "waste_bin",
            r#"[{"n":"fill","u":"%","v":95}]"#,
            "E0103",
        ),
        (
            "lamp-1",
            "streetlight",
            r#"[{"n":"status","vs":"fault"}]"#,
            "E0504",
        ),
        ("mc-1", "manhole_cover", r#"{"tilt": 20}"#, "E0503"),
    ];
    for (id, kind, _, _) in &cases {
        assert_eq!(app.register(id, kind).await, 201);
    }
    let mut ws = app.ws("?types=incident.opened").await;
    let publisher = app.publisher("t-every-rule").await;
    for (id, _, body, _) in &cases {
        publisher.reading(id, body).await;
    }
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..cases.len() {
        let frame = ws.next().await;
        seen.insert(
            frame["data"]["device_id"].as_str().unwrap().to_string(),
            frame["data"]["category_code"].clone(),
        );
    }
    for (id, _, _, code) in &cases {
        assert_eq!(seen[*id], *code, "{id}");
    }
}

#[tokio::test]
async fn health_metrics_and_the_live_page_are_served() {
    let app = spawn_app().await;
    let (status, health) = app.get_json("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    let metrics = app.metrics().await;
    for name in [
        "cityops_ingest_messages_received_total",
        "cityops_ingest_rejected_total{reason=\"malformed_json\"}",
        "cityops_incidents_opened_total",
        "cityops_incidents_cleared_total",
        "cityops_ws_clients",
        "cityops_bus_lag_events_total",
        "cityops_bus_depth_events",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let page = app
        .http
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/static/app.js"));
    let js = app
        .http
        .get(format!("{}/static/app.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let geo = app
        .http
        .get(format!("{}/static/geo/dongcheng.geojson", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(geo.status(), 200);
    let missing = app
        .http
        .get(format!("{}/static/nope.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_dust_rule_waits_for_its_minimum_duration() {
    let app = spawn_app_with(|s| {
        for rule in &mut s.rules {
            if rule.id == "construction_dust" {
                rule.min_duration_secs = 1;
            }
        }
    })
    .await;
    assert_eq!(app.register("dust-1", "dust").await, 201);
    let mut ws = app.ws("?types=incident.opened").await;
    let publisher = app.publisher("t-dust").await;
    publisher.reading("dust-1", r#"{"pm10": 300}"#).await;
    ws.assert_quiet(Duration::from_millis(300)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    publisher.reading("dust-1", r#"{"pm10": 320}"#).await;
    let opened = ws.next().await;
    assert_eq!(opened["data"]["category_code"], "E0302");
    assert_eq!(
        opened["data"]["evidence"].as_array().unwrap().len(),
        2,
        "first and confirming reading"
    );
}
