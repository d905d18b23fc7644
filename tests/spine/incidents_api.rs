//! Listing incidents: filters, paging, errors.

use crate::helpers::*;

#[tokio::test]
async fn incidents_filter_by_device_and_state_and_page() {
    let app = spawn_app().await;
    let publisher = app.publisher("t-incidents").await;
    let mut ws = app.ws("?types=incident.opened,incident.cleared").await;
    for i in 0..5 {
        assert_eq!(app.register(&format!("mc-{i}"), "manhole_cover").await, 201);
        publisher
            .reading(&format!("mc-{i}"), r#"{"tilt": 33}"#)
            .await;
        ws.next_of("incident.opened").await;
    }
    publisher.reading("mc-0", r#"{"tilt": 1}"#).await;
    ws.next_of("incident.cleared").await;

    let (_, page1) = app.get_json("/api/v1/incidents?limit=2").await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    assert!(page1["last_seq"].as_u64().unwrap() > 0);
    let cursor = page1["next_cursor"].as_i64().expect("a next page");
    let (_, page2) = app
        .get_json(&format!("/api/v1/incidents?limit=2&cursor={cursor}"))
        .await;
    let (_, page3) = app
        .get_json(&format!(
            "/api/v1/incidents?limit=2&cursor={}",
            page2["next_cursor"]
        ))
        .await;
    assert_eq!(page3["items"].as_array().unwrap().len(), 1);
    assert!(page3["next_cursor"].is_null());
    let mut ids: Vec<i64> = [&page1, &page2, &page3]
        .iter()
        .flat_map(|p| {
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_i64().unwrap())
        })
        .collect();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n);
    assert_eq!(n, 5);

    let (_, open) = app.get_json("/api/v1/incidents?state=open").await;
    assert_eq!(open["items"].as_array().unwrap().len(), 4);
    let (_, cleared) = app
        .get_json("/api/v1/incidents?state=cleared&device=mc-0")
        .await;
    assert_eq!(cleared["items"].as_array().unwrap().len(), 1);
    let (_, none) = app
        .get_json("/api/v1/incidents?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z")
        .await;
    assert!(none["items"].as_array().unwrap().is_empty());
    let (_, all) = app.get_json("/api/v1/incidents?from=0").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 5);

    for bad in [
        "state=closed",
        "limit=0",
        "limit=5000",
        "from=yesterday",
        "device=a%20b",
        "colour=red",
    ] {
        let (status, body) = app.get_json(&format!("/api/v1/incidents?{bad}")).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    assert_eq!(app.get_json("/api/v1/incidents/999999").await.0, 404);
    assert_eq!(app.get_json("/api/v1/incidents/abc").await.0, 422);
    assert_eq!(app.get_json("/api/v1/nothing").await.0, 404);
}

#[tokio::test]
async fn the_catalogue_lists_categories_with_departments_and_limits() {
    let app = spawn_app_with(|s| {
        s.categories.push(cityops_core::category::CategoryConfig {
            code: "E0501".into(),
            handling_minutes: Some(90),
            ..Default::default()
        });
    })
    .await;
    let (status, body) = app.get_json("/api/v1/categories").await;
    assert_eq!(status, 200);
    let items = body["items"].as_array().unwrap();
    assert!(items.len() >= 30, "{} categories", items.len());
    let waterlogging = items.iter().find(|c| c["code"] == "E0501").unwrap();
    assert_eq!(waterlogging["name_zh"], "道路积水");
    assert_eq!(waterlogging["department"], "water");
    assert_eq!(waterlogging["clock"], "continuous_24h");
    assert_eq!(waterlogging["limits"]["handling"], 90, "configured limit");
    for code in [
        "E0401", "E0402", "E0102", "E0201", "E0104", "E0303", "E0302", "E0503", "E0501", "E0103",
        "E0504", "E0101",
    ] {
        assert!(
            items.iter().any(|c| c["code"] == code),
            "{code} is in the demo catalogue"
        );
    }
}
