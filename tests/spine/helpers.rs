//! `spawn_app` and the clients the tests use: MQTT publisher, websocket reader, HTTP.

use std::time::Duration;

use cityops::app::{App, Mode};
use cityops::settings::Settings;
use futures_util::StreamExt;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// Upper bound for anything a test waits for; reaching it means the test failed, it measures nothing.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct TestApp {
    pub app: Option<App>,
    pub base: String,
    pub ws_base: String,
    pub mqtt_host: String,
    pub mqtt_port: u16,
    /// An HTTP client that sends the test admin's token on every request.
    pub http: reqwest::Client,
    /// A client without credentials.
    pub anonymous: reqwest::Client,
    /// The test admin's bearer token.
    pub token: String,
    /// Kept so the directory lives as long as the app.
    _data_dir: tempfile::TempDir,
    /// The PostgreSQL database of an app on PostgreSQL, dropped after the app (fields drop in order).
    _scratch: Option<cityops_store::scratch::ScratchDatabase>,
}

/// Settings for a test: every port 0, a fresh data directory, fast flushes.
pub fn test_settings(data_dir: &std::path::Path) -> Settings {
    let mut settings = Settings::defaults();
    settings.http = "127.0.0.1:0".parse().unwrap();
    settings.mqtt_listen = "127.0.0.1:0".parse().unwrap();
    settings.data_dir = data_dir.to_path_buf();
    settings.ingest.shards = 2;
    settings.ingest.flush_interval_ms = 50;
    settings.ingest.reading_sample_secs = 0;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(data_dir.path());
    configure(&mut settings);
    start(settings, data_dir).await
}

/// The demo app on a fresh PostgreSQL database of the test server (`CITYOPS_TEST_POSTGRES_URL`,
/// default the local one `scripts/test.sh` starts), dropped with the app.
pub async fn spawn_app_on_postgres() -> TestApp {
    let admin = cityops_store::scratch::admin_url_from_env("CITYOPS_TEST_POSTGRES_URL");
    let scratch = cityops_store::scratch::ScratchDatabase::create(&admin, "spine")
        .await
        .expect("a PostgreSQL server for the test (scripts/test.sh starts one)");
    let url = scratch.url().to_string();
    let mut app = spawn_app_with(|s| s.database_url = Some(url)).await;
    app._scratch = Some(scratch);
    app
}

pub async fn start(settings: Settings, data_dir: tempfile::TempDir) -> TestApp {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "warn,rumqttd=error".into()))
        .with_test_writer()
        .try_init();
    let app = App::start(settings, Mode::Demo { simulator: false })
        .await
        .expect("app starts");
    let base = format!("http://{}", app.http_addr);
    let ws_base = format!("ws://{}", app.http_addr);
    let (mqtt_host, mqtt_port) = app.mqtt_addr.clone();
    let token = login_as_new_user(&app, &base, TEST_ADMIN, cityops_auth::Role::Admin, None).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    TestApp {
        app: Some(app),
        base,
        ws_base,
        mqtt_host,
        mqtt_port,
        http,
        anonymous: reqwest::Client::new(),
        token,
        _data_dir: data_dir,
        _scratch: None,
    }
}

/// The user every test acts as unless it says otherwise.
pub const TEST_ADMIN: &str = "test.admin";
/// The password of users the tests create.
pub const TEST_PASSWORD: &str = "correct horse battery";

/// Creates a user (unless it exists) and logs in over HTTP; returns the token.
pub async fn login_as_new_user(
    app: &App,
    base: &str,
    username: &str,
    role: cityops_auth::Role,
    department: Option<&str>,
) -> String {
    if app.store.user_by_name(username).await.unwrap().is_none() {
        let hash = cityops_auth::hash_password(TEST_PASSWORD).unwrap();
        let insert = cityops_store::users::UserInsert {
            username,
            display_name: username,
            role,
            department,
            password_hash: &hash,
        };
        app.store
            .create_user(&insert, chrono::Utc::now())
            .await
            .unwrap();
    }
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": username, "password": TEST_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "login as {username}");
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}

impl TestApp {
    pub fn app(&self) -> &App {
        self.app.as_ref().unwrap()
    }

    pub async fn shutdown(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await.unwrap();
        }
    }

    pub async fn register(&self, id: &str, kind: &str) -> reqwest::StatusCode {
        let body = serde_json::json!({ "id": id, "kind": kind, "lon": 116.4172, "lat": 39.9134 });
        self.http
            .post(format!("{}/api/v1/devices", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn get_json(&self, path: &str) -> (reqwest::StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one sample in /metrics, e.g. `cityops_ingest_rejected_total{reason="too_large"}`.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|line| {
                line.strip_prefix(sample)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .unwrap_or_else(|| panic!("no metric {sample} in\n{text}"))
            .parse()
            .unwrap()
    }

    /// Waits until a metric sample reaches `at_least`.
    pub async fn wait_metric(&self, sample: &str, at_least: f64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let value = self.metric(sample).await;
            if value >= at_least {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{sample} stayed at {value}, expected {at_least}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn publisher(&self, client_id: &str) -> Publisher {
        Publisher::connect(&self.mqtt_host, self.mqtt_port, client_id).await
    }

    /// A websocket as the test admin; `query` is `""` or starts with `?`.
    pub async fn ws(&self, query: &str) -> Ws {
        Ws::connect(&self.ws_url(query)).await
    }

    /// The `/ws` URL with the test admin's token added to `query`.
    pub fn ws_url(&self, query: &str) -> String {
        let separator = if query.is_empty() { "?" } else { "&" };
        format!("{}/ws{query}{separator}token={}", self.ws_base, self.token)
    }
}

/// An MQTT client whose event loop runs in the background.
pub struct Publisher {
    pub client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub async fn connect(host: &str, port: u16, client_id: &str) -> Publisher {
        let mut options = MqttOptions::new(client_id, host, port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(2 << 20, 2 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut connected = Some(connected_tx);
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        if let Some(tx) = connected.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(WAIT, connected_rx)
            .await
            .expect("MQTT connects")
            .unwrap();
        Publisher { client, task }
    }

    /// Publishes at QoS 1.
    pub async fn send(&self, topic: &str, body: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, body.into())
            .await
            .unwrap();
    }

    pub async fn reading(&self, device: &str, body: &str) {
        self.send(
            &format!("city/v1/devices/{device}/up"),
            body.as_bytes().to_vec(),
        )
        .await;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A websocket client reading JSON frames.
pub struct Ws {
    pub stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Ws { stream }
    }

    /// The next JSON text frame.
    pub async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a websocket frame within the wait limit")
                .expect("the stream is open")
                .expect("a valid frame");
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(&text).expect("frames are JSON");
                }
                Message::Close(_) => panic!("websocket closed"),
                _ => continue,
            }
        }
    }

    /// The next frame of this type, skipping others.
    pub async fn next_of(&mut self, event_type: &str) -> Value {
        loop {
            let frame = self.next().await;
            if frame["type"] == event_type {
                return frame;
            }
        }
    }

    /// Asserts no frame arrives within `quiet`.
    pub async fn assert_quiet(&mut self, quiet: Duration) {
        if let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(quiet, self.stream.next()).await
        {
            panic!("unexpected frame: {text}");
        }
    }
}

/// The actions of a case's timeline, in order, from its detail (`GET /api/v1/cases/{id}`).
pub fn timeline_actions(detail: &Value) -> Vec<String> {
    detail["timeline"]
        .as_array()
        .expect("a case detail has a timeline")
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect()
}
