//! The whole path: an MQTT reading crosses a rule, the incident files an emergency case, and the case is
//! dispatched, handled with a photo, checked and closed by the people whose roles allow it, with every
//! step arriving on the live websocket as a case event.

use std::time::Duration;

use cityops_auth::Role;
use serde_json::{Value, json};

use crate::helpers::*;

async fn act(app: &TestApp, token: &str, id: i64, body: Value) -> Value {
    let response = app
        .anonymous
        .post(format!("{}/api/v1/cases/{id}/actions", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{body}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn from_an_mqtt_reading_to_a_closed_case() {
    mqtt_reading_to_closed_case(spawn_app().await).await;
}

/// The same path with the app's store on PostgreSQL.
#[tokio::test]
async fn from_an_mqtt_reading_to_a_closed_case_on_postgresql() {
    mqtt_reading_to_closed_case(spawn_app_on_postgres().await).await;
}

async fn mqtt_reading_to_closed_case(app: TestApp) {
    let dispatcher =
        login_as_new_user(app.app(), &app.base, "e2e.disp", Role::Dispatcher, None).await;
    let handler = login_as_new_user(
        app.app(),
        &app.base,
        "e2e.muni",
        Role::DepartmentHandler,
        Some("municipal"),
    )
    .await;
    let inspector =
        login_as_new_user(app.app(), &app.base, "e2e.insp", Role::Inspector, None).await;
    let shift_lead =
        login_as_new_user(app.app(), &app.base, "e2e.lead", Role::ShiftLead, None).await;
    assert_eq!(app.register("mc-e2e", "manhole_cover").await, 201);
    let mut ws = app.ws("?types=case.*").await;

    let publisher = app.publisher("t-e2e").await;
    publisher
        .reading(
            "mc-e2e",
            r#"[{"bn":"urn:dev:mac:0024befffe804ff1:","n":"tilt","u":"deg","v":32.5}]"#,
        )
        .await;
    let created = ws.next().await;
    assert_eq!(created["type"], "case.created", "{created}");
    assert!(created["outbox_id"].as_i64().is_some());
    let id = created["data"]["case"]["id"]
        .as_i64()
        .or_else(|| created["data"]["case_id"].as_i64())
        .expect("case id in the event");

    act(
        &app,
        &dispatcher,
        id,
        json!({"action": "dispatch", "department": "municipal"}),
    )
    .await;
    assert_eq!(ws.next().await["type"], "case.dispatched");

    let photo = {
        let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
        bytes.extend_from_slice(b"cover back in place");
        let response = app
            .anonymous
            .post(format!("{}/api/v1/photos", app.base))
            .bearer_auth(&handler)
            .header("content-type", "image/png")
            .body(bytes)
            .send()
            .await
            .unwrap();
        response.json::<Value>().await.unwrap()["sha256"]
            .as_str()
            .unwrap()
            .to_string()
    };
    act(
        &app,
        &handler,
        id,
        json!({"action": "handle", "feedback": "井盖已复位并加固", "evidence": [photo]}),
    )
    .await;
    assert_eq!(ws.next().await["type"], "case.handled");
    // The sensor agrees: back to normal, recorded on the case as evidence for the check.
    publisher.reading("mc-e2e", r#"{"tilt": 0.8}"#).await;
    assert_eq!(ws.next().await["type"], "case.sensor_evidence");
    act(&app, &inspector, id, json!({"action": "check_pass"})).await;
    assert_eq!(ws.next().await["type"], "case.checked");
    let closed = act(
        &app,
        &shift_lead,
        id,
        json!({"action": "close", "closure": "normal"}),
    )
    .await;
    assert_eq!(closed["state"], "closed");
    assert_eq!(ws.next().await["type"], "case.closed");
    ws.assert_quiet(Duration::from_millis(300)).await;

    let (_, detail) = app.get_json(&format!("/api/v1/cases/{id}")).await;
    let actions = timeline_actions(&detail);
    assert_eq!(
        actions,
        [
            "report",
            "dispatch",
            "handle",
            "sensor_cleared",
            "check_pass",
            "close"
        ]
    );
    assert_eq!(detail["timeline"][2]["evidence"][0], photo.as_str());
    let (_, audit) = app.get_json(&format!("/api/v1/cases/{id}/audit")).await;
    assert_eq!(audit["verdict"]["ok"], true);
}
