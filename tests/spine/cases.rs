//! The case workflow over HTTP with real users and roles: report → accept → register → dispatch →
//! handle → check → close, with the audit chain verifying, and refusals that change nothing.

use cityops_auth::Role;
use serde_json::{Value, json};

use crate::helpers::*;

struct Actor {
    token: String,
}

async fn actor(app: &TestApp, username: &str, role: Role, department: Option<&str>) -> Actor {
    Actor {
        token: login_as_new_user(app.app(), &app.base, username, role, department).await,
    }
}

async fn post(app: &TestApp, who: &Actor, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .anonymous
        .post(format!("{}{path}", app.base))
        .bearer_auth(&who.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn act(app: &TestApp, who: &Actor, id: i64, body: Value) -> (u16, Value) {
    post(app, who, &format!("/api/v1/cases/{id}/actions"), body).await
}

#[tokio::test]
async fn a_case_goes_through_the_whole_workflow_and_its_record_verifies() {
    let app = spawn_app().await;
    let operator = actor(&app, "op", Role::Operator, None).await;
    let shift_lead = actor(&app, "lead", Role::ShiftLead, None).await;
    let dispatcher = actor(&app, "disp", Role::Dispatcher, None).await;
    let handler = actor(&app, "sanit", Role::DepartmentHandler, Some("sanitation")).await;
    let other_handler = actor(&app, "watr", Role::DepartmentHandler, Some("water")).await;
    let inspector = actor(&app, "insp", Role::Inspector, None).await;
    let supervisor = actor(&app, "sup", Role::Supervisor, None).await;

    let (status, case) = post(
        &app,
        &operator,
        "/api/v1/cases",
        json!({"category": "E0101", "description": "王府井大街暴露垃圾", "address": "王府井大街 88 号", "lon": 116.4105, "lat": 39.9120}),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    let id = case["id"].as_i64().unwrap();
    let number = case["number"].as_str().unwrap();
    assert!(number.starts_with("E0101"), "{number}");
    assert_eq!(case["state"], "reported");
    assert_eq!(case["source"], "hotline");
    assert_eq!(case["grid"]["status"], "inside");

    // The wrong role is 403, an illegal step 409, a bad payload 422: none changes anything.
    assert_eq!(
        act(&app, &inspector, id, json!({"action": "accept"}))
            .await
            .0,
        403
    );
    let (status, body) = act(
        &app,
        &dispatcher,
        id,
        json!({"action": "dispatch", "department": "sanitation"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reported"),
        "{body}"
    );
    assert_eq!(
        act(&app, &operator, id, json!({"action": "fly"})).await.0,
        422
    );

    assert_eq!(
        act(
            &app,
            &operator,
            id,
            json!({"action": "accept", "expected_version": 99, "note": "来电核实"})
        )
        .await
        .0,
        409,
        "a stale version"
    );
    let (status, accepted) = act(
        &app,
        &operator,
        id,
        json!({"action": "accept", "expected_version": 1, "note": "来电核实"}),
    )
    .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(
        act(&app, &shift_lead, id, json!({"action": "register"}))
            .await
            .0,
        200
    );
    assert_eq!(
        act(
            &app,
            &dispatcher,
            id,
            json!({"action": "dispatch", "department": ""})
        )
        .await
        .0,
        422
    );
    let (status, dispatched) = act(
        &app,
        &dispatcher,
        id,
        json!({"action": "dispatch", "department": "sanitation"}),
    )
    .await;
    assert_eq!(status, 200, "{dispatched}");
    assert_eq!(dispatched["department"], "sanitation");
    assert_eq!(dispatched["clock"]["stage"], "handling");
    let never_uploaded = "a".repeat(64);
    assert_eq!(
        act(
            &app,
            &handler,
            id,
            json!({"action": "handle", "feedback": "已清理", "evidence": [never_uploaded]})
        )
        .await
        .0,
        422,
        "evidence must be an uploaded photo"
    );
    let photo = upload_photo(&app, &handler, &png(b"after cleaning")).await;
    assert_eq!(
        act(
            &app,
            &other_handler,
            id,
            json!({"action": "handle", "feedback": "已清理", "evidence": [photo]})
        )
        .await
        .0,
        403,
        "another department's handler"
    );
    let (status, handled) = act(
        &app,
        &handler,
        id,
        json!({"action": "handle", "feedback": "已清理完毕", "evidence": [photo]}),
    )
    .await;
    assert_eq!(status, 200, "{handled}");
    assert_eq!(
        act(&app, &inspector, id, json!({"action": "check_pass"}))
            .await
            .0,
        200
    );
    let (status, closed) = act(
        &app,
        &shift_lead,
        id,
        json!({"action": "close", "closure": "normal"}),
    )
    .await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["state"], "closed");

    let (status, detail) = app.get_json(&format!("/api/v1/cases/{id}")).await;
    assert_eq!(status, 200);
    let actions = timeline_actions(&detail);
    assert_eq!(
        actions,
        [
            "report",
            "accept",
            "register",
            "dispatch",
            "handle",
            "check_pass",
            "close"
        ]
    );
    assert_eq!(detail["timeline"][1]["note"], "来电核实");
    assert_eq!(detail["category"]["department"], "sanitation");

    let audit = app
        .anonymous
        .get(format!("{}/api/v1/cases/{id}/audit", app.base))
        .bearer_auth(&supervisor.token)
        .send()
        .await
        .unwrap();
    assert_eq!(audit.status(), 200);
    let audit: Value = audit.json().await.unwrap();
    assert_eq!(audit["verdict"]["ok"], true);
    assert_eq!(audit["verdict"]["records"], 7);
    let denied = app
        .anonymous
        .get(format!("{}/api/v1/cases/{id}/audit", app.base))
        .bearer_auth(&operator.token)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);

    let (_, closed_list) = app
        .get_json("/api/v1/cases?state=closed&department=sanitation")
        .await;
    assert_eq!(closed_list["items"].as_array().unwrap().len(), 1);
    let (_, open_list) = app.get_json("/api/v1/cases?state=reported").await;
    assert!(open_list["items"].as_array().unwrap().is_empty());
    assert_eq!(app.get_json("/api/v1/cases?state=sleeping").await.0, 422);
    assert_eq!(app.get_json("/api/v1/cases/999999").await.0, 404);
}

/// A tiny body that passes as a PNG: the signature, then anything.
pub fn png(content: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    bytes.extend_from_slice(content);
    bytes
}

/// Uploads a photo and returns its SHA-256.
async fn upload_photo(app: &TestApp, who: &Actor, bytes: &[u8]) -> String {
    let response = app
        .anonymous
        .post(format!("{}/api/v1/photos", app.base))
        .bearer_auth(&who.token)
        .header("content-type", "image/png")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "upload: {}",
        response.status()
    );
    let body: Value = response.json().await.unwrap();
    body["sha256"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn photos_are_stored_by_content_hash_and_checked() {
    let app = spawn_app().await;
    let inspector = actor(&app, "insp3", Role::Inspector, None).await;
    let upload = |content_type: &'static str, body: Vec<u8>| {
        app.anonymous
            .post(format!("{}/api/v1/photos", app.base))
            .bearer_auth(&inspector.token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let first = upload("image/png", png(b"manhole")).await.unwrap();
    assert_eq!(first.status(), 201);
    let body: Value = first.json().await.unwrap();
    let sha256 = body["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha256.len(), 64);
    assert_eq!(
        upload("image/png", png(b"manhole")).await.unwrap().status(),
        200,
        "the same photo again"
    );
    assert_eq!(
        upload("image/gif", b"GIF89a".to_vec())
            .await
            .unwrap()
            .status(),
        422
    );
    assert_eq!(
        upload("image/jpeg", png(b"not a jpeg"))
            .await
            .unwrap()
            .status(),
        422
    );
    assert_eq!(upload("image/png", Vec::new()).await.unwrap().status(), 422);
    assert_eq!(
        upload("image/png", png(&vec![0; 11 * 1024 * 1024]))
            .await
            .unwrap()
            .status(),
        413
    );
    let fetched = app
        .http
        .get(format!("{}/api/v1/photos/{sha256}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.headers()["content-type"], "image/png");
    assert_eq!(fetched.bytes().await.unwrap().to_vec(), png(b"manhole"));
    assert_eq!(
        app.get_json(&format!("/api/v1/photos/{}", "0".repeat(64)))
            .await
            .0,
        404
    );
    assert_eq!(app.get_json("/api/v1/photos/xyz").await.0, 422);
}

#[tokio::test]
async fn reports_are_checked_and_inspectors_report_from_patrol() {
    let app = spawn_app().await;
    let inspector = actor(&app, "insp2", Role::Inspector, None).await;
    let dispatcher = actor(&app, "disp2", Role::Dispatcher, None).await;
    let good =
        json!({"category": "E0401", "description": "占道经营", "lon": 116.4105, "lat": 39.9120});
    let (status, case) = post(&app, &inspector, "/api/v1/cases", good.clone()).await;
    assert_eq!(status, 201);
    assert_eq!(case["source"], "inspector");
    assert_eq!(case["reporter"], "insp2");
    assert_eq!(
        post(&app, &dispatcher, "/api/v1/cases", good).await.0,
        403,
        "dispatchers do not file reports"
    );
    for bad in [
        json!({"category": "E9999", "description": "x", "lon": 116.41, "lat": 39.91}),
        json!({"category": "E0401", "description": " ", "lon": 116.41, "lat": 39.91}),
        json!({"category": "E0401", "description": "x", "lon": 216.41, "lat": 39.91}),
        json!({"category": "E0401", "description": "x"}),
    ] {
        assert_eq!(
            post(&app, &inspector, "/api/v1/cases", bad.clone()).await.0,
            422,
            "{bad}"
        );
    }
    let (_, list) = app.get_json("/api/v1/cases").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "refused reports filed nothing"
    );
}

/// Takes a registered case through dispatch, handling, check and close; returns the closed case.
async fn to_closed(app: &TestApp, crew: &Crew, id: i64) -> Value {
    let photo = upload_photo(app, &crew.handler, &png(format!("case {id}").as_bytes())).await;
    let steps = [
        (
            &crew.dispatcher,
            json!({"action": "dispatch", "department": "sanitation"}),
        ),
        (
            &crew.handler,
            json!({"action": "handle", "feedback": "已清理", "evidence": [photo]}),
        ),
        (&crew.inspector, json!({"action": "check_pass"})),
        (
            &crew.shift_lead,
            json!({"action": "close", "closure": "normal"}),
        ),
    ];
    let mut last = Value::Null;
    for (who, body) in steps {
        let (status, case) = act(app, who, id, body.clone()).await;
        assert_eq!(status, 200, "{body} -> {case}");
        last = case;
    }
    assert_eq!(last["state"], "closed");
    last
}

struct Crew {
    operator: Actor,
    shift_lead: Actor,
    dispatcher: Actor,
    handler: Actor,
    inspector: Actor,
    supervisor: Actor,
}

async fn crew(app: &TestApp) -> Crew {
    Crew {
        operator: actor(app, "cb-op", Role::Operator, None).await,
        shift_lead: actor(app, "cb-lead", Role::ShiftLead, None).await,
        dispatcher: actor(app, "cb-disp", Role::Dispatcher, None).await,
        handler: actor(app, "cb-sanit", Role::DepartmentHandler, Some("sanitation")).await,
        inspector: actor(app, "cb-insp", Role::Inspector, None).await,
        supervisor: actor(app, "cb-sup", Role::Supervisor, None).await,
    }
}

#[tokio::test]
async fn citizen_cases_are_called_back_and_closed_cases_reopen_with_a_reason() {
    let app = spawn_app().await;
    let crew = crew(&app).await;
    let (status, case) = post(
        &app,
        &crew.operator,
        "/api/v1/cases",
        json!({"category": "E0101", "description": "东单北大街垃圾堆放", "lon": 116.4175, "lat": 39.9135}),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    assert_eq!(
        case["source"], "hotline",
        "the hotline's citizen is called back"
    );
    let id = case["id"].as_i64().unwrap();
    for (who, body) in [
        (&crew.operator, json!({"action": "accept"})),
        (&crew.shift_lead, json!({"action": "register"})),
    ] {
        assert_eq!(act(&app, who, id, body).await.0, 200);
    }
    let closed = to_closed(&app, &crew, id).await;
    assert_eq!(closed["clock"]["stage"], "callback", "{closed}");
    assert!(closed["closed_at"].is_i64());

    // 回访: the operator calls the citizen back; others may not, and the satisfaction is 1-5.
    let callback = json!({"action": "callback", "satisfaction": 2, "note": "市民认为清理不彻底"});
    assert_eq!(
        act(&app, &crew.inspector, id, callback.clone()).await.0,
        403
    );
    assert_eq!(
        act(&app, &crew.dispatcher, id, callback.clone()).await.0,
        403
    );
    let (status, body) = act(
        &app,
        &crew.operator,
        id,
        json!({"action": "callback", "satisfaction": 9}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, evaluated) = act(&app, &crew.operator, id, callback.clone()).await;
    assert_eq!(status, 200, "{evaluated}");
    assert_eq!(evaluated["state"], "evaluated");
    assert_eq!(evaluated["satisfaction"], 2);
    assert!(
        evaluated["clock"].is_null(),
        "the callback stops the last clock"
    );
    let (status, body) = act(&app, &crew.operator, id, callback).await;
    assert_eq!(status, 409, "one callback per closing: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("evaluated"),
        "{body}"
    );

    // Reopened (重新办理) by the shift lead with a reason: back to dispatch, counted, satisfaction gone.
    let reopen = json!({"action": "reopen", "reason": "市民回访不满意，问题复现"});
    assert_eq!(act(&app, &crew.operator, id, reopen.clone()).await.0, 403);
    assert_eq!(
        act(
            &app,
            &crew.shift_lead,
            id,
            json!({"action": "reopen", "reason": "  "})
        )
        .await
        .0,
        422,
        "a reopening needs a reason"
    );
    let (status, reopened) = act(&app, &crew.shift_lead, id, reopen).await;
    assert_eq!(status, 200, "{reopened}");
    assert_eq!(reopened["state"], "registered");
    assert_eq!(reopened["reopen_count"], 1);
    assert!(reopened["satisfaction"].is_null());
    assert!(reopened["closed_at"].is_null());
    assert_eq!(reopened["clock"]["stage"], "dispatch");

    // The second round closes and is called back again.
    let closed = to_closed(&app, &crew, id).await;
    assert_eq!(closed["reopen_count"], 1);
    let (status, evaluated) = act(
        &app,
        &crew.operator,
        id,
        json!({"action": "callback", "satisfaction": 5}),
    )
    .await;
    assert_eq!(status, 200, "{evaluated}");
    assert_eq!(evaluated["satisfaction"], 5);

    let (_, detail) = app.get_json(&format!("/api/v1/cases/{id}")).await;
    let actions = timeline_actions(&detail);
    assert_eq!(
        actions,
        [
            "report",
            "accept",
            "register",
            "dispatch",
            "handle",
            "check_pass",
            "close",
            "callback",
            "reopen",
            "dispatch",
            "handle",
            "check_pass",
            "close",
            "callback"
        ]
    );
    assert_eq!(detail["timeline"][8]["note"], "市民回访不满意，问题复现");
    let audit = app
        .anonymous
        .get(format!("{}/api/v1/cases/{id}/audit", app.base))
        .bearer_auth(&crew.supervisor.token)
        .send()
        .await
        .unwrap();
    let audit: Value = audit.json().await.unwrap();
    assert_eq!(audit["verdict"]["ok"], true, "{audit}");
    assert_eq!(audit["verdict"]["records"], 14);
}

#[tokio::test]
async fn cases_nobody_can_be_called_about_close_without_a_callback_and_still_reopen() {
    let app = spawn_app().await;
    let crew = crew(&app).await;
    let (status, case) = post(
        &app,
        &crew.inspector,
        "/api/v1/cases",
        json!({"category": "E0101", "description": "巡查发现暴露垃圾", "lon": 116.4105, "lat": 39.9120}),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    assert_eq!(case["source"], "inspector");
    let id = case["id"].as_i64().unwrap();
    for (who, body) in [
        (&crew.operator, json!({"action": "accept"})),
        (&crew.shift_lead, json!({"action": "register"})),
    ] {
        assert_eq!(act(&app, who, id, body).await.0, 200);
    }
    let closed = to_closed(&app, &crew, id).await;
    assert!(closed["clock"].is_null(), "no callback clock: {closed}");
    let (status, body) = act(
        &app,
        &crew.operator,
        id,
        json!({"action": "callback", "satisfaction": 4}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, reopened) = act(
        &app,
        &crew.supervisor,
        id,
        json!({"action": "reopen", "reason": "督查复查发现问题复现"}),
    )
    .await;
    assert_eq!(status, 200, "{reopened}");
    assert_eq!(reopened["state"], "registered");
}
