//! The components ledger: import with per-row errors, listing, the map layer, and routing a case on a
//! component to its owner.

use cityops_auth::Role;
use serde_json::json;

use crate::helpers::*;

const LEDGER: &str = "id,category_code,name,lon,lat,state,supervising_department,owning_department,maintaining_department,installed_on
MC-001,C0101,王府井大街井盖1,116.4105,39.9120,完好,市政管理,drainage-group,drainage-group,2019-04-11
MC-002,C0101,王府井大街井盖2,116.4120,39.9140,破损,市政管理,telecom,telecom,
LAMP-001,C0102,东单路灯1,116.4180,39.9080,完好,路灯管理,lighting,lighting,
BAD-001,C0101,坏行,not-a-number,39.91,完好,市政管理,x,x,
BAD-002,E0101,事件不是部件,116.41,39.91,完好,市政管理,x,x,
";

#[tokio::test]
async fn the_ledger_imports_with_row_errors_and_cases_route_to_the_owner() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(format!("{}/api/v1/components", app.base))
        .header("content-type", "text/csv")
        .body(LEDGER)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["imported"], 3, "{body}");
    let rejected = body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{body}");
    assert_eq!(rejected[0]["line"], 5);
    assert_eq!(rejected[0]["field"], "lon");

    let (_, covers) = app.get_json("/api/v1/components?category=C0101").await;
    assert_eq!(covers["items"].as_array().unwrap().len(), 2);
    assert!(
        covers["items"][0]["cell"]["cell"]
            .as_str()
            .unwrap()
            .starts_with("110101")
    );
    let (_, layer) = app.get_json("/api/v1/map/components?zoom=18").await;
    assert_eq!(layer["features"].as_array().unwrap().len(), 3);

    // Only an admin imports.
    let inspector =
        login_as_new_user(app.app(), &app.base, "comp.insp", Role::Inspector, None).await;
    let refused = app
        .anonymous
        .post(format!("{}/api/v1/components", app.base))
        .bearer_auth(&inspector)
        .header("content-type", "text/csv")
        .body(LEDGER)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let wrong_type = app
        .http
        .post(format!("{}/api/v1/components", app.base))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 422);

    // A manhole-cover case a few metres from MC-001 goes to its owner, not the category's default.
    let response = app
        .anonymous
        .post(format!("{}/api/v1/cases", app.base))
        .bearer_auth(&inspector)
        .json(&json!({"category": "C0101", "description": "井盖破损", "lon": 116.41052, "lat": 39.91201}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let case: serde_json::Value = response.json().await.unwrap();
    let (_, detail) = app.get_json(&format!("/api/v1/cases/{}", case["id"])).await;
    assert_eq!(detail["routing"]["department"], "drainage-group");
    assert_eq!(detail["routing"]["component"]["id"], "MC-001");

    // Stored, so the registry is loaded again at the next start.
    assert_eq!(app.app().store.component_rows().await.unwrap().len(), 3);
    let reloaded = cityops_api::components::load(&app.app().store)
        .await
        .unwrap();
    assert_eq!(reloaded.read().len(), 3);
}
