//! From an MQTT reading to a case: emergencies are registered at once, others queue for an operator;
//! repeated incidents from the same device attach to its open case; a return to normal is evidence.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

/// Waits until `/api/v1/cases?{query}` lists `count` cases.
async fn cases(app: &TestApp, query: &str, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, page) = app.get_json(&format!("/api/v1/cases?{query}")).await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() == count {
            return items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cases?{query}: {} instead of {count}",
            items.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn timeline(app: &TestApp, id: i64) -> Vec<String> {
    let (_, detail) = app.get_json(&format!("/api/v1/cases/{id}")).await;
    timeline_actions(&detail)
}

#[tokio::test]
async fn sensor_incidents_file_cases_and_repeats_attach_to_the_open_case() {
    let app = spawn_app().await;
    assert_eq!(app.register("mc-case", "manhole_cover").await, 201);
    assert_eq!(app.register("bin-case", "waste_bin").await, 201);
    let mut ws = app.ws("?types=incident.opened,incident.cleared").await;
    let publisher = app.publisher("t-sensor-cases").await;

    // An emergency: registered at once, on the dispatch clock.
    publisher.reading("mc-case", r#"{"tilt": 35}"#).await;
    let incident = ws.next().await["data"]["id"].as_i64().unwrap();
    let filed = cases(&app, "source=sensor&state=registered", 1).await;
    let case = &filed[0];
    assert_eq!(case["incident_id"], incident);
    assert_eq!(case["device_id"], "mc-case");
    assert_eq!(case["category_code"], "E0503");
    assert_eq!(case["clock"]["stage"], "dispatch");
    assert!(case["number"].as_str().unwrap().starts_with("E0503"));
    let id = case["id"].as_i64().unwrap();

    // Back to normal: evidence on the case. Abnormal again: the same case, no new one.
    publisher.reading("mc-case", r#"{"tilt": 1}"#).await;
    assert_eq!(ws.next().await["type"], "incident.cleared");
    publisher.reading("mc-case", r#"{"tilt": 40}"#).await;
    assert_eq!(ws.next().await["type"], "incident.opened");
    let deadline = tokio::time::Instant::now() + WAIT;
    while timeline(&app, id).await.len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "evidence never recorded: {:?}",
            timeline(&app, id).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        timeline(&app, id).await,
        ["report", "sensor_cleared", "sensor_repeated"]
    );
    cases(&app, "source=sensor&reporter=mc-case", 1).await;
    let (_, audit) = app.get_json(&format!("/api/v1/cases/{id}/audit")).await;
    assert_eq!(audit["verdict"]["ok"], true);

    // An ordinary rule: the case waits for an operator.
    publisher.reading("bin-case", r#"{"fill": 97}"#).await;
    let queued = cases(&app, "source=sensor&state=reported", 1).await;
    assert_eq!(queued[0]["device_id"], "bin-case");
    assert_eq!(queued[0]["clock"]["stage"], "acceptance");
}
