//! Run cards and geofences through the API: validation that changes nothing, the nearest-inspector
//! answer following the live run card, a zone drawn through the API watched at once (an inspector
//! walking in raises `inspector.fence`), patrol coverage counting it, and both surviving a restart.

use std::time::Duration;

use cityops_auth::Role;
use serde_json::{Value, json};

use crate::helpers::*;

async fn send(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .anonymous
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    send(app, token, reqwest::Method::GET, path, None).await
}

async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    send(app, token, reqwest::Method::PUT, path, Some(body)).await
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    send(app, token, reqwest::Method::POST, path, Some(body)).await
}

async fn delete(app: &TestApp, token: &str, path: &str) -> u16 {
    send(app, token, reqwest::Method::DELETE, path, None)
        .await
        .0
}

/// The inspectors of the nearest-inspector answer, in order.
async fn nearest(app: &TestApp, case: i64) -> Vec<(String, bool)> {
    let (status, body) = app
        .get_json(&format!("/api/v1/cases/{case}/nearest-inspectors?n=5"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["inspector"].as_str().unwrap().to_string(),
                c["from_run_card"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn order(names: &[(&str, bool)]) -> Vec<(String, bool)> {
    names.iter().map(|(n, r)| (n.to_string(), *r)).collect()
}

#[tokio::test]
async fn run_cards_are_managed_through_the_api_and_lead_the_nearest_answer() {
    let app = spawn_app().await;
    let lead = login_as_new_user(app.app(), &app.base, "rc.lead", Role::ShiftLead, None).await;
    let dispatcher =
        login_as_new_user(app.app(), &app.base, "rc.disp", Role::Dispatcher, None).await;
    let operator = login_as_new_user(app.app(), &app.base, "rc.op", Role::Operator, None).await;
    let now = chrono::Utc::now().timestamp_millis();
    // Three available inspectors, near to far from Wangfujing.
    for (name, lon, lat) in [
        ("rc.near", 116.4110, 39.9122),
        ("rc.mid", 116.4160, 39.9140),
        ("rc.far", 116.4300, 39.9400),
    ] {
        let token = login_as_new_user(app.app(), &app.base, name, Role::Inspector, None).await;
        let (_, fix) = post(
            &app,
            &token,
            "/api/v1/inspectors/me/location",
            json!({"lon": lon, "lat": lat, "time": now - 5000}),
        )
        .await;
        assert_eq!(fix["accepted"], true, "{fix}");
        let (status, _) = put(
            &app,
            &token,
            "/api/v1/inspectors/me/status",
            json!({"status": "available"}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, case) = post(
        &app,
        &operator,
        "/api/v1/cases",
        json!({"category": "E0101", "description": "暴露垃圾", "lon": 116.4105, "lat": 39.9120}),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    let case_id = case["id"].as_i64().unwrap();
    let cell = case["grid"]["cell"].as_str().unwrap().to_string();
    let community = cell[..12].to_string();
    assert_eq!(
        community, "110101013001",
        "the demo's community of Wangfujing"
    );

    // The configured card: the demo's street and community of Wangfujing, whose teams (demo inspectors
    // without a position) cannot be offered, so the answer is by distance.
    let (status, cards) = get(&app, &dispatcher, "/api/v1/run-cards").await;
    assert_eq!(status, 200, "{cards}");
    let configured = cards["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == "110101013")
        .expect("the demo entry");
    assert_eq!(configured["source"], "config");
    assert_eq!(configured["team"], json!(["inspector1", "inspector2"]));
    assert_eq!(configured["level"], "street");
    assert_eq!(
        nearest(&app, case_id).await,
        order(&[("rc.near", false), ("rc.mid", false), ("rc.far", false)])
    );

    // Refused: nothing changes.
    let path = format!("/api/v1/run-cards/{community}");
    let refusals = [
        (path.clone(), json!({"team": []}), "names no inspector"),
        (
            path.clone(),
            json!({"team": ["rc.far", "nobody.here"]}),
            "\"nobody.here\" is not a user",
        ),
        (
            path.clone(),
            json!({"team": ["rc.op"]}),
            "\"rc.op\" has the role operator, not inspector",
        ),
        (
            path.clone(),
            json!({"team": ["rc.far", "rc.far"]}),
            "named twice",
        ),
        (path.clone(), json!({"members": ["rc.far"]}), "run card"),
        (
            "/api/v1/run-cards/1101010".into(),
            json!({"team": ["rc.far"]}),
            "6 (district), 9 (street)",
        ),
        (
            "/api/v1/run-cards/11010101x".into(),
            json!({"team": ["rc.far"]}),
            "grid code",
        ),
        (
            "/api/v1/run-cards/110101999".into(),
            json!({"team": ["rc.far"]}),
            "no such street",
        ),
    ];
    for (path, body, message) in refusals {
        let (status, error) = put(&app, &lead, &path, body.clone()).await;
        assert_eq!(status, 422, "{path} {body}: {error}");
        let text = error["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{text:?} lacks {message:?}");
    }
    assert_eq!(
        put(&app, &dispatcher, &path, json!({"team": ["rc.far"]}))
            .await
            .0,
        403,
        "a dispatcher reads run cards but does not set them"
    );
    let inspector = login_as_new_user(app.app(), &app.base, "rc.near", Role::Inspector, None).await;
    assert_eq!(get(&app, &inspector, "/api/v1/run-cards").await.0, 403);
    assert_eq!(get(&app, &dispatcher, "/api/v1/run-cards").await.1, cards);

    // The community's team from the API, overriding the configured one: the far inspector first,
    // though farthest.
    let (status, entry) = put(&app, &lead, &path, json!({"team": ["rc.far", "rc.mid"]})).await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["source"], "api");
    assert_eq!(entry["updated_by"], "rc.lead");
    assert_eq!(
        entry["overrides_config"],
        json!(["inspector2", "inspector1"])
    );
    assert_eq!(
        nearest(&app, case_id).await,
        order(&[("rc.far", true), ("rc.mid", true), ("rc.near", false)])
    );
    // The most specific code wins: a cell entry beats the community's.
    let (status, _) = put(
        &app,
        &app.token,
        &format!("/api/v1/run-cards/{cell}"),
        json!({"team": ["rc.mid"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        nearest(&app, case_id).await,
        order(&[("rc.mid", true), ("rc.near", false), ("rc.far", false)])
    );
    assert_eq!(
        delete(&app, &lead, &format!("/api/v1/run-cards/{cell}")).await,
        204
    );
    assert_eq!(
        delete(&app, &lead, &format!("/api/v1/run-cards/{cell}")).await,
        404
    );

    // An API entry overrides the configured one of the same code.
    let (status, entry) = put(
        &app,
        &lead,
        "/api/v1/run-cards/110101013",
        json!({"team": ["rc.mid"]}),
    )
    .await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(
        entry["overrides_config"],
        json!(["inspector1", "inspector2"])
    );
    let (_, listed) = get(&app, &lead, "/api/v1/run-cards").await;
    let street: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["code"] == "110101013")
        .collect();
    assert_eq!(street.len(), 1, "one effective entry per code");
    assert_eq!(street[0]["team"], json!(["rc.mid"]));

    // Removing the API entries brings the configured ones back (the community's, most specific, has
    // nobody available, so the answer is by distance again); those are read-only here.
    assert_eq!(delete(&app, &lead, &path).await, 204);
    assert_eq!(
        delete(&app, &dispatcher, "/api/v1/run-cards/110101013").await,
        403
    );
    assert_eq!(
        delete(&app, &lead, "/api/v1/run-cards/110101013").await,
        204
    );
    for code in ["110101013", "110101013001"] {
        let (status, error) = send(
            &app,
            &lead,
            reqwest::Method::DELETE,
            &format!("/api/v1/run-cards/{code}"),
            None,
        )
        .await;
        assert_eq!(status, 409, "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("gis.run_cards")
        );
    }
    assert_eq!(get(&app, &dispatcher, "/api/v1/run-cards").await.1, cards);
    assert_eq!(
        nearest(&app, case_id).await,
        order(&[("rc.near", false), ("rc.mid", false), ("rc.far", false)])
    );
}

/// A GeoJSON Feature of a rectangle.
fn zone(properties: Value, (west, south, east, north): (f64, f64, f64, f64)) -> Value {
    json!({
        "type": "Feature",
        "properties": properties,
        "geometry": {"type": "Polygon", "coordinates": [[
            [west, south], [east, south], [east, north], [west, north], [west, south]
        ]]},
    })
}

/// East of Wangfujing, clear of the demo fences.
const NEW_ZONE: (f64, f64, f64, f64) = (116.4220, 39.9140, 116.4260, 39.9170);

async fn fence_ids(app: &TestApp) -> Vec<String> {
    let (status, fences) = app.get_json("/api/v1/geofences").await;
    assert_eq!(status, 200, "{fences}");
    assert_eq!(fences["type"], "FeatureCollection");
    fences["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["id"].as_str().unwrap().to_string())
        .collect()
}

/// Walks an inspector from east of [`NEW_ZONE`] into it and past the dwell; returns the time of the
/// first fix inside.
async fn walk_into_the_new_zone(app: &TestApp, token: &str) -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    let track = [
        (116.4280, 39.9155, now - 300_000),
        (116.4240, 39.9155, now - 200_000),
        (116.4242, 39.9156, now - 120_000),
    ];
    for (lon, lat, time) in track {
        let (_, body) = post(
            app,
            token,
            "/api/v1/inspectors/me/location",
            json!({"lon": lon, "lat": lat, "time": time}),
        )
        .await;
        assert_eq!(body["accepted"], true, "{body}");
    }
    now - 200_000
}

#[tokio::test]
async fn geofences_drawn_through_the_api_are_checked_and_watched_at_once() {
    let app = spawn_app().await;
    let lead = login_as_new_user(app.app(), &app.base, "gf.lead", Role::ShiftLead, None).await;
    let operator = login_as_new_user(app.app(), &app.base, "gf.op", Role::Operator, None).await;
    let walker = login_as_new_user(app.app(), &app.base, "gf.walk", Role::Inspector, None).await;
    let configured = fence_ids(&app).await;
    assert_eq!(configured, ["wfj-key", "dongdan-nostall", "longtan-site"]);
    let (_, all) = app.get_json("/api/v1/geofences").await;
    let wfj = &all["features"][0]["properties"];
    assert_eq!(
        (
            wfj["source"].clone(),
            wfj["kind"].clone(),
            wfj["required_visits_per_day"].clone()
        ),
        (json!("config"), json!("key_project"), json!(4))
    );

    // Invalid features are refused whole, naming the problem; nothing is stored or watched.
    let site = json!({"name": "金宝街施工", "kind": "construction_site"});
    let ring = |coordinates: Value| json!({"type": "Feature", "properties": site, "geometry": {"type": "Polygon", "coordinates": coordinates}});
    let refusals = [
        (
            ring(json!([[
                [116.422, 39.914],
                [116.426, 39.914],
                [116.426, 39.917],
                [116.422, 39.917]
            ]])),
            "not closed",
        ),
        (
            ring(json!([[
                [116.422, 39.914],
                [116.426, 39.914],
                [116.422, 39.914]
            ]])),
            "fewer than 4",
        ),
        (
            ring(json!([[
                [116.422, 39.914],
                [196.426, 39.914],
                [116.426, 39.917],
                [116.422, 39.914]
            ]])),
            "not a [longitude, latitude]",
        ),
        (
            ring(json!([[
                [116.422, 39.914],
                [116.426, 39.917],
                [116.426, 39.914],
                [116.422, 39.917],
                [116.422, 39.914]
            ]])),
            "not valid",
        ),
        (ring(json!("junk")), "geometry"),
        (
            json!({"type": "Feature", "properties": site, "geometry": {"type": "Point", "coordinates": [116.42, 39.91]}}),
            "Polygon or MultiPolygon",
        ),
        (zone(json!({"name": "x", "kind": "park"}), NEW_ZONE), "kind"),
        (
            zone(json!({"name": "x", "kind": "key_project"}), NEW_ZONE),
            "required_visits_per_day",
        ),
        (zone(json!({"kind": "other"}), NEW_ZONE), "name"),
        (
            zone(
                json!({"name": "x", "kind": "other", "min_dwell_ms": -5}),
                NEW_ZONE,
            ),
            "min_dwell_ms",
        ),
        (
            zone(
                json!({"id": "gf-77", "name": "x", "kind": "other"}),
                NEW_ZONE,
            ),
            "given by the server",
        ),
        (
            zone(json!({"id": "a b", "name": "x", "kind": "other"}), NEW_ZONE),
            "letters, digits",
        ),
        (json!([1, 2, 3]), "Feature"),
    ];
    for (body, message) in refusals {
        let (status, error) = post(&app, &lead, "/api/v1/geofences", body.clone()).await;
        assert_eq!(status, 422, "{body}: {error}");
        let text = error["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{text:?} lacks {message:?}");
    }
    let not_json = app
        .anonymous
        .post(format!("{}/api/v1/geofences", app.base))
        .bearer_auth(&lead)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 422);
    let new_site = zone(
        json!({"name": "金宝街施工", "kind": "construction_site", "min_dwell_ms": 60000}),
        NEW_ZONE,
    );
    assert_eq!(
        post(&app, &operator, "/api/v1/geofences", new_site.clone())
            .await
            .0,
        403
    );
    assert_eq!(
        post(&app, &walker, "/api/v1/geofences", new_site.clone())
            .await
            .0,
        403
    );
    assert_eq!(fence_ids(&app).await, configured, "nothing was stored");

    // Drawn: watched from the next fix on.
    let mut ws = app.ws("?types=inspector.fence").await;
    let created = app
        .anonymous
        .post(format!("{}/api/v1/geofences", app.base))
        .bearer_auth(&lead)
        .json(&new_site)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    let created: Value = created.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("gf-"), "{id}");
    assert_eq!(location, format!("/api/v1/geofences/{id}"));
    assert_eq!(created["feature"]["properties"]["source"], "api");
    assert_eq!(created["feature"]["properties"]["created_by"], "gf.lead");
    let entered_at = walk_into_the_new_zone(&app, &walker).await;
    let fence = ws.next().await;
    assert_eq!(fence["data"]["fence"], id.as_str(), "{fence}");
    assert_eq!(fence["data"]["kind"], "entered");
    assert_eq!(fence["data"]["inspector"], "gf.walk");
    assert_eq!(fence["data"]["at"], entered_at);

    // A configured fence's id is taken.
    let body = zone(
        json!({"id": "wfj-key", "name": "x", "kind": "other"}),
        NEW_ZONE,
    );
    assert_eq!(post(&app, &lead, "/api/v1/geofences", body).await.0, 409);

    // The map layer by box: the new zone alone east of Wangfujing, the key project alone on it.
    let (status, east) = app
        .get_json("/api/v1/map/geofences?bbox=116.421,39.913,116.427,39.918")
        .await;
    assert_eq!(status, 200, "{east}");
    let ids: Vec<&str> = east["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let (_, wangfujing) = app
        .get_json("/api/v1/map/geofences?bbox=116.409,39.910,116.412,39.912")
        .await;
    assert_eq!(wangfujing["features"][0]["id"], "wfj-key");
    assert_eq!(wangfujing["features"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get_json("/api/v1/map/geofences").await.1["features"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(app.get_json("/api/v1/map/geofences?bbox=1,2").await.0, 422);

    // Changed into a key project: patrol coverage counts the walk as a visit.
    let path = format!("/api/v1/geofences/{id}");
    let key = zone(
        json!({"name": "金宝街重点保障区", "kind": "key_project", "required_visits_per_day": 2}),
        NEW_ZONE,
    );
    let (status, changed) = put(&app, &lead, &path, key).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["properties"]["name"], "金宝街重点保障区");
    assert_eq!(changed["properties"]["created_by"], "gf.lead");
    let (status, bad) = put(
        &app,
        &lead,
        &path,
        ring(json!([[
            [116.422, 39.914],
            [116.426, 39.914],
            [116.426, 39.917],
            [116.422, 39.917]
        ]])),
    )
    .await;
    assert_eq!(status, 422, "{bad}");
    let other_id = zone(
        json!({"id": "elsewhere", "name": "x", "kind": "other"}),
        NEW_ZONE,
    );
    assert_eq!(put(&app, &lead, &path, other_id).await.0, 422);
    assert_eq!(
        put(&app, &lead, "/api/v1/geofences/gf-404", new_site.clone())
            .await
            .0,
        404
    );
    let (_, stored) = app.get_json(&path).await;
    assert_eq!(
        stored["properties"]["name"], "金宝街重点保障区",
        "refused changes changed nothing"
    );
    let day = chrono::DateTime::from_timestamp_millis(entered_at)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, coverage) = app.get_json(&format!("/api/v1/coverage?day={day}")).await;
        assert_eq!(status, 200, "{coverage}");
        let visits = coverage["key_projects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["fence"] == id.as_str())
            .map(|k| (k["visits"].clone(), k["required"].clone()));
        if visits == Some((json!(1), json!(2))) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the API zone never counted: {coverage}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Configured fences are read-only here.
    for (status, error) in [
        put(&app, &lead, "/api/v1/geofences/wfj-key", new_site.clone()).await,
        send(
            &app,
            &lead,
            reqwest::Method::DELETE,
            "/api/v1/geofences/wfj-key",
            None,
        )
        .await,
    ] {
        assert_eq!(status, 409, "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("gis.geofences")
        );
    }
    assert_eq!(delete(&app, &operator, &path).await, 403);
    assert_eq!(delete(&app, &lead, &path).await, 204);
    assert_eq!(delete(&app, &lead, &path).await, 404);
    assert_eq!(app.get_json(&path).await.0, 404);
    assert_eq!(fence_ids(&app).await, configured);
}

#[tokio::test]
async fn run_cards_and_geofences_from_the_api_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path());
    let mut first = start(settings.clone(), tempfile::tempdir().unwrap()).await;
    login_as_new_user(first.app(), &first.base, "rs.insp", Role::Inspector, None).await;
    let (status, _) = put(
        &first,
        &first.token,
        "/api/v1/run-cards/110101013001",
        json!({"team": ["rs.insp"]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, created) = post(
        &first,
        &first.token,
        "/api/v1/geofences",
        zone(
            json!({"id": "jinbao-site", "name": "金宝街施工", "kind": "construction_site"}),
            NEW_ZONE,
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["id"], "jinbao-site");
    let again = zone(
        json!({"id": "jinbao-site", "name": "x", "kind": "other"}),
        NEW_ZONE,
    );
    let (status, error) = post(&first, &first.token, "/api/v1/geofences", again).await;
    assert_eq!(status, 409, "an id is used once: {error}");
    first.shutdown().await;

    let second = start(settings, tempfile::tempdir().unwrap()).await;
    let (_, cards) = second.get_json("/api/v1/run-cards").await;
    let entry = cards["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == "110101013001")
        .unwrap();
    assert_eq!(
        (entry["source"].clone(), entry["team"].clone()),
        (json!("api"), json!(["rs.insp"]))
    );
    let (status, fence) = second.get_json("/api/v1/geofences/jinbao-site").await;
    assert_eq!(status, 200);
    assert_eq!(fence["properties"]["source"], "api");
    assert_eq!(fence["properties"]["name"], "金宝街施工");
    // And watched from the start.
    let token =
        login_as_new_user(second.app(), &second.base, "rs.insp", Role::Inspector, None).await;
    let mut ws = second.ws("?types=inspector.fence").await;
    walk_into_the_new_zone(&second, &token).await;
    let event = ws.next().await;
    assert_eq!(event["data"]["fence"], "jinbao-site");
    assert_eq!(event["data"]["kind"], "entered");
}
