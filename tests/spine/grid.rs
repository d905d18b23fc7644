//! The unit grid at work: every device and incident gets its cell, street and community (or is flagged
//! outside), incidents filter by grid code, and the map layers come out as WGS-84 GeoJSON.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn incidents_carry_their_cell_and_the_map_counts_them() {
    let app = spawn_app().await;
    let url = format!("{}/api/v1/devices", app.base);
    // Inside Dongcheng (WGS-84, near Wangfujing) and well outside it (Haidian).
    let inside = json!({"id": "mc-in", "kind": "manhole_cover", "lon": 116.4105, "lat": 39.9120});
    let outside = json!({"id": "mc-out", "kind": "manhole_cover", "lon": 116.30, "lat": 39.96});
    for device in [&inside, &outside] {
        assert_eq!(
            app.http
                .post(&url)
                .json(device)
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
    }
    let (_, devices) = app.get_json("/api/v1/devices").await;
    let grid_of = |id: &str| {
        devices["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap()["grid"]
            .clone()
    };
    assert_eq!(
        grid_of("mc-out"),
        json!({"status": "outside"}),
        "kept and flagged, not dropped"
    );
    let cell = grid_of("mc-in")["cell"].as_str().unwrap().to_string();
    assert_eq!(cell.len(), 15);
    assert!(cell.starts_with("110101"));

    let mut ws = app.ws("?types=incident.opened").await;
    let publisher = app.publisher("t-grid").await;
    publisher.reading("mc-in", r#"{"tilt": 40}"#).await;
    let opened = ws.next().await;
    assert_eq!(opened["data"]["grid"]["cell"], cell.as_str());
    assert_eq!(opened["data"]["grid"]["street"], &cell[..9]);
    assert_eq!(opened["data"]["grid"]["community"], &cell[..12]);
    publisher.reading("mc-out", r#"{"tilt": 40}"#).await;
    assert_eq!(ws.next().await["data"]["grid"]["status"], "outside");

    for code in [&cell[..9], &cell[..12], &cell[..]] {
        let (status, page) = app
            .get_json(&format!("/api/v1/incidents?grid={code}"))
            .await;
        assert_eq!(status, 200);
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "grid={code}");
        assert_eq!(items[0]["device_id"], "mc-in");
    }
    assert_eq!(app.get_json("/api/v1/incidents?grid=1101").await.0, 422);

    // Layers: WGS-84 GeoJSON; the cell of the incident shows one open incident.
    let (status, district) = app.get_json("/api/v1/map/district").await;
    assert_eq!(status, 200);
    assert_eq!(district["features"][0]["properties"]["code"], "110101");
    let (_, streets) = app.get_json("/api/v1/map/streets").await;
    assert_eq!(streets["features"].as_array().unwrap().len(), 17);
    let (status, cells) = app
        .get_json("/api/v1/map/cells?bbox=116.409,39.911,116.412,39.913")
        .await;
    assert_eq!(status, 200);
    let features = cells["features"].as_array().unwrap();
    assert!(
        !features.is_empty() && features.len() < 50,
        "{} cells",
        features.len()
    );
    let ours = features
        .iter()
        .find(|f| f["properties"]["code"] == cell.as_str())
        .expect("the incident's cell is in the box");
    assert_eq!(ours["properties"]["open_incidents"], 1);
    let (_, all) = app.get_json("/api/v1/map/cells?bbox=116,39,117,41").await;
    assert_eq!(
        all["features"].as_array().unwrap().len(),
        4353,
        "the whole district"
    );
    assert_eq!(app.get_json("/api/v1/map/cells?bbox=a,b,c,d").await.0, 422);
}

#[tokio::test]
async fn without_a_grid_devices_and_incidents_have_no_place() {
    let app = spawn_app_with(|s| s.gis.grid = String::new()).await;
    assert_eq!(app.register("mc-nogrid", "manhole_cover").await, 201);
    let (_, devices) = app.get_json("/api/v1/devices").await;
    assert!(devices["items"][0].get("grid").is_none());
    assert_eq!(app.get_json("/api/v1/map/district").await.0, 404);
}

#[test]
fn grid_generate_reproduces_the_shipped_dongcheng_grid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("grid.geojson");
    let command = cityops::cli::GridCommand::Generate {
        boundary: root.join("config/geo/dongcheng.geojson"),
        division_code: "110101".into(),
        name: "东城区".into(),
        datum: "gcj02".into(),
        cell_size: 100.0,
        streets: 17,
        communities_per_street: 10,
        out: Some(path.clone()),
    };
    cityops::grid_cli::run(&command).unwrap();
    let generated = std::fs::read_to_string(path).unwrap();
    let shipped = std::fs::read_to_string(root.join("config/geo/dongcheng-grid.geojson")).unwrap();
    assert!(
        generated == shipped,
        "the shipped grid is what `cityops grid generate` makes"
    );
    let bad = cityops::cli::GridCommand::Generate {
        boundary: root.join("config/geo/dongcheng.geojson"),
        division_code: "11010".into(),
        name: "x".into(),
        datum: "gcj02".into(),
        cell_size: 100.0,
        streets: 17,
        communities_per_street: 10,
        out: None,
    };
    assert!(
        cityops::grid_cli::run(&bad).is_err(),
        "a 5-digit division code is refused"
    );
}

#[tokio::test]
async fn the_incident_layer_clusters_at_low_zoom() {
    let app = spawn_app().await;
    let publisher = app.publisher("t-cluster").await;
    let mut ws = app.ws("?types=incident.opened").await;
    // Six manhole covers within a few metres of each other, one far away.
    for i in 0..6 {
        let body = json!({"id": format!("mc-c{i}"), "kind": "manhole_cover", "lon": 116.4100 + f64::from(i) * 0.00001, "lat": 39.9120});
        assert_eq!(
            app.http
                .post(format!("{}/api/v1/devices", app.base))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
    }
    let far = json!({"id": "mc-far", "kind": "manhole_cover", "lon": 116.4400, "lat": 39.8800});
    assert_eq!(
        app.http
            .post(format!("{}/api/v1/devices", app.base))
            .json(&far)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    for id in [
        "mc-c0", "mc-c1", "mc-c2", "mc-c3", "mc-c4", "mc-c5", "mc-far",
    ] {
        publisher.reading(id, r#"{"tilt": 40}"#).await;
        ws.next().await;
    }
    let (_, wide) = app.get_json("/api/v1/map/incidents?zoom=12").await;
    let features = wide["features"].as_array().unwrap();
    assert_eq!(features.len(), 2, "{wide}");
    let cluster = features
        .iter()
        .find(|f| f["properties"]["cluster"] == true)
        .unwrap();
    assert_eq!(cluster["properties"]["count"], 6);
    let (_, close) = app.get_json("/api/v1/map/incidents?zoom=18").await;
    assert_eq!(close["features"].as_array().unwrap().len(), 7);
    let (_, boxed) = app
        .get_json("/api/v1/map/incidents?bbox=116.43,39.87,116.45,39.89")
        .await;
    assert_eq!(boxed["features"][0]["properties"]["device_id"], "mc-far");
    assert_eq!(app.get_json("/api/v1/map/incidents?zoom=30").await.0, 422);
    let (status, inspectors) = app.get_json("/api/v1/map/inspectors").await;
    assert_eq!(
        (status.as_u16(), inspectors["type"].as_str()),
        (200, Some("FeatureCollection"))
    );
}
