//! Inspectors on the board: positions over HTTP and MQTT through the jump filter, statuses, and the
//! nearest free inspectors of a case.

use std::time::Duration;

use cityops_auth::Role;
use serde_json::{Value, json};

use crate::helpers::*;

async fn send(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let response = app
        .anonymous
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_nearest_free_inspectors_of_a_case_come_first_and_jumps_are_not_applied() {
    let app = spawn_app().await;
    let near = login_as_new_user(app.app(), &app.base, "insp.near", Role::Inspector, None).await;
    let far = login_as_new_user(app.app(), &app.base, "insp.far", Role::Inspector, None).await;
    let resting = login_as_new_user(app.app(), &app.base, "insp.rest", Role::Inspector, None).await;
    let operator = login_as_new_user(app.app(), &app.base, "insp.op", Role::Operator, None).await;
    let now = chrono::Utc::now().timestamp_millis();
    let post = reqwest::Method::POST;
    let put = reqwest::Method::PUT;

    // Positions over HTTP (the phone page), a few hundred metres and a few kilometres from the case.
    for (token, lon, lat) in [
        (&near, 116.4120, 39.9125),
        (&far, 116.4300, 39.9400),
        (&resting, 116.4106, 39.9121),
    ] {
        let (status, body) = send(
            &app,
            token,
            post.clone(),
            "/api/v1/inspectors/me/location",
            json!({"lon": lon, "lat": lat, "time": now - 5000}),
        )
        .await;
        assert_eq!((status, body["accepted"].clone()), (200, json!(true)));
    }
    for (token, status) in [
        (&near, "available"),
        (&far, "available"),
        (&resting, "off_duty"),
    ] {
        assert_eq!(
            send(
                &app,
                token,
                put.clone(),
                "/api/v1/inspectors/me/status",
                json!({"status": status})
            )
            .await
            .0,
            200
        );
    }
    assert_eq!(
        send(
            &app,
            &near,
            put.clone(),
            "/api/v1/inspectors/me/status",
            json!({"status": "asleep"})
        )
        .await
        .0,
        422
    );
    assert_eq!(
        send(
            &app,
            &operator,
            post.clone(),
            "/api/v1/inspectors/me/location",
            json!({"lon": 116.41, "lat": 39.91})
        )
        .await
        .0,
        403
    );

    // An impossible jump (to Shanghai one second later) and an out-of-order fix are counted, not applied.
    let (_, jump) = send(
        &app,
        &near,
        post.clone(),
        "/api/v1/inspectors/me/location",
        json!({"lon": 121.47, "lat": 31.23, "time": now - 4000}),
    )
    .await;
    assert_eq!(jump["accepted"], false);
    assert_eq!(jump["rejection"]["reason"], "impossible_jump");
    let (_, late) = send(
        &app,
        &near,
        post.clone(),
        "/api/v1/inspectors/me/location",
        json!({"lon": 116.4121, "lat": 39.9125, "time": now - 60_000}),
    )
    .await;
    assert_eq!(late["rejection"]["reason"], "out_of_order");
    assert_eq!(
        app.metric("cityops_inspector_fixes_rejected_total{reason=\"impossible_jump\"}")
            .await,
        1.0
    );
    assert_eq!(
        app.metric("cityops_inspector_fixes_rejected_total{reason=\"out_of_order\"}")
            .await,
        1.0
    );

    // Over MQTT as well.
    let publisher = app.publisher("t-inspector-phone").await;
    publisher
        .send(
            "city/v1/inspectors/insp.mqtt/location",
            br#"{"lon": 116.4150, "lat": 39.9150}"#.to_vec(),
        )
        .await;
    publisher
        .send(
            "city/v1/inspectors/insp.mqtt/location",
            b"not json".to_vec(),
        )
        .await;
    app.wait_metric("cityops_inspector_fixes_accepted_total", 4.0)
        .await;
    app.wait_metric(
        "cityops_inspector_fixes_rejected_total{reason=\"malformed\"}",
        1.0,
    )
    .await;
    let (_, board) = app.get_json("/api/v1/inspectors").await;
    let ids: Vec<&str> = board["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["insp.far", "insp.mqtt", "insp.near", "insp.rest"]);
    let near_entry = board["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "insp.near")
        .unwrap();
    assert_eq!(near_entry["lon"], 116.4120, "the jump was not applied");

    // A case at Wangfujing: the nearest available first; the off-duty one (closest of all) is not offered.
    let (status, case) = send(
        &app,
        &operator,
        post,
        "/api/v1/cases",
        json!({"category": "E0101", "description": "暴露垃圾", "lon": 116.4105, "lat": 39.9120}),
    )
    .await;
    assert_eq!(status, 201);
    let id = case["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (status, nearest) = app
        .get_json(&format!("/api/v1/cases/{id}/nearest-inspectors?n=5"))
        .await;
    assert_eq!(status, 200, "{nearest}");
    let items = nearest["items"].as_array().unwrap();
    let order: Vec<&str> = items
        .iter()
        .map(|c| c["inspector"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["insp.near", "insp.far"],
        "insp.mqtt has no status (off duty) and insp.rest is off duty"
    );
    assert!(items[0]["distance_m"].as_f64().unwrap() < items[1]["distance_m"].as_f64().unwrap());
    assert_eq!(
        app.get_json(&format!("/api/v1/cases/{id}/nearest-inspectors?n=0"))
            .await
            .0,
        422
    );
}

#[tokio::test]
async fn positions_and_geofence_crossings_go_out_on_the_bus() {
    let app = spawn_app().await;
    let inspector =
        login_as_new_user(app.app(), &app.base, "insp.patrol", Role::Inspector, None).await;
    let mut ws = app.ws("?types=inspector.position,inspector.fence").await;
    let now = chrono::Utc::now().timestamp_millis();
    let post = reqwest::Method::POST;
    // Outside the Wangfujing key-project zone, then inside it for longer than the 60 s dwell.
    let track = [
        (116.4150, 39.9130, now - 300_000),
        (116.4110, 39.9130, now - 200_000),
        (116.4112, 39.9131, now - 120_000),
    ];
    for (lon, lat, time) in track {
        let (_, body) = send(
            &app,
            &inspector,
            post.clone(),
            "/api/v1/inspectors/me/location",
            json!({"lon": lon, "lat": lat, "time": time}),
        )
        .await;
        assert_eq!(body["accepted"], true, "{body}");
    }
    let mut positions = 0;
    let fence = loop {
        let frame = ws.next().await;
        match frame["type"].as_str() {
            Some("inspector.position") => positions += 1,
            Some("inspector.fence") => break frame,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(positions, 1, "positions are rate-limited per inspector");
    assert_eq!(fence["data"]["fence"], "wfj-key");
    assert_eq!(fence["data"]["kind"], "entered");
    assert_eq!(
        fence["data"]["at"],
        now - 200_000,
        "the crossing is dated by the first fix inside"
    );
    assert_eq!(
        app.metric("cityops_inspector_fence_events_total").await,
        1.0
    );
    assert_eq!(
        send(
            &app,
            &inspector,
            reqwest::Method::PUT,
            "/api/v1/inspectors/me/status",
            json!({"status": "on_scene"})
        )
        .await
        .0,
        200
    );
    let status = ws.next_of("inspector.position").await;
    assert_eq!(status["data"]["status"], "on_scene");
}

#[tokio::test]
async fn patrol_coverage_counts_visited_cells_and_key_project_visits() {
    let app = spawn_app().await;
    let inspector =
        login_as_new_user(app.app(), &app.base, "insp.cover", Role::Inspector, None).await;
    let now = chrono::Utc::now().timestamp_millis();
    // A walk from outside into the Wangfujing key-project zone, staying over the dwell; fixes 30 s apart
    // so the path between them is interpolated.
    let start = now - 240_000;
    let track: Vec<(f64, f64, i64)> = (0..8)
        .map(|i| {
            (
                116.4150 - 0.0006 * f64::from(i),
                39.9130,
                start + i64::from(i) * 30_000,
            )
        })
        .collect();
    for (lon, lat, time) in &track {
        let (_, body) = send(
            &app,
            &inspector,
            reqwest::Method::POST,
            "/api/v1/inspectors/me/location",
            json!({"lon": lon, "lat": lat, "time": time}),
        )
        .await;
        assert_eq!(body["accepted"], true, "{body}");
    }
    let day = chrono::DateTime::from_timestamp_millis(start)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive();
    // The fixes reach the store within a second.
    let deadline = tokio::time::Instant::now() + WAIT;
    let coverage = loop {
        let (status, coverage) = app.get_json(&format!("/api/v1/coverage?day={day}")).await;
        assert_eq!(status, 200, "{coverage}");
        if coverage["fixes"].as_u64() == Some(8) {
            break coverage;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "fixes never stored: {coverage}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let visited: u64 = coverage["streets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["cells"]["visited"].as_u64().unwrap())
        .sum();
    assert!(
        visited >= 4,
        "a 400 m walk crosses several 100 m cells: {visited}"
    );
    assert_eq!(
        coverage["streets"].as_array().unwrap().len(),
        17,
        "every street is listed"
    );
    let wfj = coverage["key_projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["fence"] == "wfj-key")
        .unwrap();
    assert_eq!(wfj["visits"], 1);
    assert_eq!(wfj["required"], 4);
    assert!(
        coverage["behind_schedule"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["fence"] == "wfj-key")
    );
    // Inspectors do not read the evaluation.
    let refused = app
        .anonymous
        .get(format!("{}/api/v1/coverage", app.base))
        .bearer_auth(&inspector)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}
