//! The same path through an external broker: the machine's Mosquitto at 127.0.0.1:1883 (CI starts it).

use crate::helpers::*;

#[tokio::test]
async fn readings_through_mosquitto_reach_the_websocket() {
    // Several test runs may share this broker: unique client and device ids keep them apart.
    let unique = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let client_id = format!("cityops-ingest-test-{unique}");
    let app = spawn_app_with(|s| {
        s.mqtt_url = Some("mqtt://127.0.0.1:1883".into());
        s.ingest.mqtt_client_id = client_id.clone();
    })
    .await;
    assert!(!app.app().embedded_broker);
    assert_eq!(app.mqtt_port, 1883);
    let device = format!("wl-{unique}");
    assert_eq!(app.register(&device, "water_level").await, 201);
    let mut ws = app.ws("?types=incident.opened").await;
    let publisher = app.publisher(&format!("t-mosq-{unique}")).await;
    publisher
        .reading(&device, r#"[{"n":"level","u":"m","v":0.42}]"#)
        .await;
    let frame = ws.next().await;
    assert_eq!(frame["data"]["device_id"], device.as_str());
    assert_eq!(frame["data"]["category_code"], "E0501");
    assert_eq!(frame["data"]["value"], 0.42);
}
