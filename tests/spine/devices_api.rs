//! The device registry over HTTP.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn register_list_and_refuse_bad_devices() {
    let app = spawn_app().await;
    let url = format!("{}/api/v1/devices", app.base);
    let post = |body: serde_json::Value| app.http.post(&url).json(&body).send();

    let device = json!({"id": "wl-0001", "kind": "water_level", "lon": 116.41, "lat": 39.91});
    assert_eq!(post(device.clone()).await.unwrap().status(), 201);
    assert_eq!(
        post(device.clone()).await.unwrap().status(),
        200,
        "the same body again is not an error"
    );
    let moved = json!({"id": "wl-0001", "kind": "water_level", "lon": 116.42, "lat": 39.91});
    let conflict = post(moved).await.unwrap();
    assert_eq!(conflict.status(), 409);
    let body: serde_json::Value = conflict.json().await.unwrap();
    assert_eq!(body["error"]["code"], "conflict");

    for bad in [
        json!({"id": "a b", "kind": "water_level", "lon": 116.4, "lat": 39.9}),
        json!({"id": "x", "kind": "water_level", "lon": 216.4, "lat": 39.9}),
        json!({"id": "x", "kind": "water_level", "lon": 116.4}),
        json!({"id": "x", "kind": "water:level", "lon": 116.4, "lat": 39.9}),
        json!({"id": "", "kind": "water_level", "lon": 116.4, "lat": 39.9}),
    ] {
        let response = post(bad.clone()).await.unwrap();
        assert_eq!(response.status(), 422, "{bad}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let not_json = app
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 422);

    let (status, list) = app.get_json("/api/v1/devices").await;
    assert_eq!(status, 200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "refused registrations changed nothing");
    assert_eq!(items[0]["id"], "wl-0001");
    assert_eq!(items[0]["lon"], 116.41);
    assert_eq!(items[0]["source"], "api");
}

#[tokio::test]
async fn a_registration_is_announced_on_the_bus() {
    let app = spawn_app().await;
    let mut ws = app.ws("?types=device.registered").await;
    assert_eq!(app.register("noise-7", "noise").await, 201);
    let frame = ws.next().await;
    assert_eq!(frame["data"]["id"], "noise-7");
    assert_eq!(app.register("noise-7", "noise").await, 200);
    ws.assert_quiet(std::time::Duration::from_millis(300)).await;
}

#[tokio::test]
async fn devices_from_the_configuration_are_registered_at_start() {
    let app = spawn_app_with(|s| {
        s.devices.push(
            serde_json::from_value(
                json!({"id": "cfg-1", "kind": "noise", "lon": 116.4, "lat": 39.9}),
            )
            .unwrap(),
        );
    })
    .await;
    let (_, list) = app.get_json("/api/v1/devices").await;
    assert_eq!(list["items"][0]["id"], "cfg-1");
    assert_eq!(list["items"][0]["source"], "config");
}
