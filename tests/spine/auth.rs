//! Users, login and roles at the HTTP edge: every /api/v1 endpoint needs a valid token and the right role.

use cityops::app::{App, Mode, StartOptions};
use cityops_auth::Role;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn without_a_valid_token_every_api_endpoint_answers_401() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/devices",
        "/api/v1/incidents",
        "/api/v1/incidents/1",
        "/api/v1/map/district",
        "/api/v1/users",
        "/api/v1/auth/me",
    ] {
        let response = app
            .anonymous
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "missing_token", "{path}");
    }
    for bad in ["garbage", "cot1.e30.AAAA", &format!("{}x", app.token)] {
        let response = app
            .anonymous
            .get(format!("{}/api/v1/incidents", app.base))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{bad}");
    }
    let err = tokio_tungstenite::connect_async(format!("{}/ws", app.ws_base))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 401),
        other => panic!("expected HTTP 401, got {other}"),
    }
    // Health and metrics stay open for load balancers and Prometheus.
    assert_eq!(
        app.anonymous
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.anonymous
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn login_refuses_wrong_passwords_unknown_and_disabled_users() {
    let app = spawn_app().await;
    let login = |username: &str, password: &str| {
        app.anonymous
            .post(format!("{}/api/v1/auth/login", app.base))
            .json(&json!({"username": username, "password": password}))
            .send()
    };
    assert_eq!(
        login(TEST_ADMIN, TEST_PASSWORD).await.unwrap().status(),
        200
    );
    assert_eq!(
        login("TEST.ADMIN", TEST_PASSWORD).await.unwrap().status(),
        200,
        "usernames are case-insensitive"
    );
    let wrong = login(TEST_ADMIN, "wrong password!").await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "bad_credentials"
    );
    assert_eq!(login("nobody", TEST_PASSWORD).await.unwrap().status(), 401);
    app.app()
        .store
        .set_user_disabled(TEST_ADMIN, true, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        login(TEST_ADMIN, TEST_PASSWORD).await.unwrap().status(),
        401,
        "disabled"
    );
    let malformed = app
        .anonymous
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&json!({"user": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 422);
}

#[tokio::test]
async fn roles_decide_what_a_user_may_do() {
    let app = spawn_app().await;
    let inspector =
        login_as_new_user(app.app(), &app.base, "inspector.t", Role::Inspector, None).await;
    let get = |path: &str| {
        app.anonymous
            .get(format!("{}{path}", app.base))
            .bearer_auth(&inspector)
            .send()
    };
    assert_eq!(get("/api/v1/incidents").await.unwrap().status(), 200);
    assert_eq!(get("/api/v1/map/streets").await.unwrap().status(), 200);
    assert_eq!(get("/api/v1/users").await.unwrap().status(), 403);
    let me: serde_json::Value = get("/api/v1/auth/me").await.unwrap().json().await.unwrap();
    assert_eq!(me["role"], "inspector");
    let register = app
        .anonymous
        .post(format!("{}/api/v1/devices", app.base))
        .bearer_auth(&inspector)
        .json(&json!({"id": "x-1", "kind": "noise", "lon": 116.4, "lat": 39.9}))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), 403);
    assert_eq!(
        register.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "forbidden"
    );
    assert!(
        app.get_json("/api/v1/devices").await.1["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "a refused request changed nothing"
    );
}

#[tokio::test]
async fn the_login_cookie_serves_the_pages() {
    let app = spawn_app().await;
    let response = app
        .anonymous
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&json!({"username": TEST_ADMIN, "password": TEST_PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let with_cookie = app
        .anonymous
        .get(format!("{}/api/v1/incidents", app.base))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 200);
}

#[tokio::test]
async fn admins_create_users_and_bad_accounts_are_refused() {
    let app = spawn_app().await;
    let url = format!("{}/api/v1/users", app.base);
    let user = json!({"username": "wang.fang", "display_name": "王芳", "role": "operator", "password": "a long pass phrase"});
    let created = app.http.post(&url).json(&user).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let body: serde_json::Value = created.json().await.unwrap();
    assert_eq!(body["role"], "operator");
    assert!(
        body.get("password_hash").is_none(),
        "the hash never leaves the server"
    );
    assert_eq!(
        app.http
            .post(&url)
            .json(&user)
            .send()
            .await
            .unwrap()
            .status(),
        409
    );
    for bad in [
        json!({"username": "x", "display_name": "X", "role": "operator", "password": "a long pass phrase"}),
        json!({"username": "li.qiang", "display_name": "李强", "role": "emperor", "password": "a long pass phrase"}),
        json!({"username": "li.qiang", "display_name": "李强", "role": "operator", "password": "short"}),
        json!({"username": "li.qiang", "display_name": "李强", "role": "department_handler", "password": "a long pass phrase"}),
    ] {
        assert_eq!(
            app.http
                .post(&url)
                .json(&bad)
                .send()
                .await
                .unwrap()
                .status(),
            422,
            "{bad}"
        );
    }
    let (_, users) = app.get_json("/api/v1/users").await;
    let names: Vec<_> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"wang.fang".to_string()));
    assert!(!names.contains(&"li.qiang".to_string()));
}

#[tokio::test]
async fn demo_users_get_the_given_password_and_keep_it_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path());
    let options = StartOptions {
        demo_password: Some("demo pass 2026".into()),
    };
    let app = App::start_with(settings.clone(), Mode::Demo { simulator: false }, options)
        .await
        .unwrap();
    assert!(matches!(
        app.demo_users,
        Some(cityops::users::DemoUsers::Created {
            generated: false,
            ..
        })
    ));
    let base = format!("http://{}", app.http_addr);
    for username in [
        "admin",
        "operator",
        "shiftlead",
        "dispatcher",
        "supervisor",
        "inspector1",
        "handler.water",
    ] {
        let response = reqwest::Client::new()
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": username, "password": "demo pass 2026"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{username}");
    }
    let handler = app
        .store
        .user_by_name("handler.water")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(handler.department.as_deref(), Some("water"));
    app.shutdown().await.unwrap();

    let again = App::start_with(
        settings,
        Mode::Demo { simulator: false },
        StartOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(again.demo_users, Some(cityops::users::DemoUsers::Existing));
    again.shutdown().await.unwrap();
}

#[tokio::test]
async fn user_commands_add_change_and_list() {
    let store = cityops_store::Store::open("sqlite::memory:").await.unwrap();
    let password = |p: &str| {
        cityops::users::read_password_line(&mut std::io::Cursor::new(format!("{p}\n"))).unwrap()
    };
    cityops::users::add(
        &store,
        "zhao.min",
        "赵敏",
        "supervisor",
        None,
        password("first pass phrase"),
    )
    .await
    .unwrap();
    assert!(
        cityops::users::add(
            &store,
            "zhao.min",
            "赵敏",
            "supervisor",
            None,
            password("first pass phrase")
        )
        .await
        .is_err()
    );
    assert!(
        cityops::users::add(
            &store,
            "x.y",
            "X",
            "king",
            None,
            password("first pass phrase")
        )
        .await
        .is_err()
    );
    let before = store
        .user_by_name("zhao.min")
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    cityops::users::passwd(&store, "zhao.min", password("second pass phrase"))
        .await
        .unwrap();
    let after = store
        .user_by_name("zhao.min")
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(cityops_auth::verify_password("second pass phrase", &after));
    assert_ne!(before, after);
    assert!(
        cityops::users::passwd(&store, "nobody", password("second pass phrase"))
            .await
            .is_err()
    );
    cityops::users::set_disabled(&store, "zhao.min", true)
        .await
        .unwrap();
    assert!(
        store
            .user_by_name("zhao.min")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert!(cityops::users::read_password_line(&mut std::io::Cursor::new("\n")).is_err());
}
