//! The HTTP face of cityops: REST API, the live websocket, metrics, health and the embedded pages.
//!
//! [`router`] builds the whole application from an [`AppState`]; serving it is the binary's job, and
//! tests drive the router directly or over a real socket.

pub mod auth;
mod cases;
pub mod components;
mod coverage;
mod docs;
mod error;
pub mod geofences;
mod inspectors;
pub mod layers;
mod pages;
pub mod photos;
mod rest;
pub mod run_cards;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use cityops_bus::Bus;
use cityops_core::telemetry::{Counter, Gauge, PromWriter};
use cityops_ingest::{IngestStats, Registry};
use cityops_store::Store;
use tokio::sync::watch;

pub use error::ApiError;

/// Limits of the websocket endpoint.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// A live client more than this many events behind the bus is resynchronised.
    pub max_lag: u64,
    /// A client that does not take a frame within this time is disconnected.
    pub send_timeout: std::time::Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_lag: 8192,
            send_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub bus: Bus,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub ingest_stats: Arc<IngestStats>,
    pub api_stats: Arc<ApiStats>,
    /// True once ingestion is subscribed; `/healthz` answers 200 only then.
    pub ready: watch::Receiver<bool>,
    /// Becomes true at shutdown: websocket clients are told and closed.
    pub shutdown: watch::Receiver<bool>,
    pub ws: WsConfig,
    /// The unit grid and its map layers, when one is configured.
    pub grid: Option<Arc<layers::GridLayers>>,
    /// Token keys and login limits.
    pub auth: Arc<auth::AuthConfig>,
    /// The category catalogue (部件/事件) with departments and time limits.
    pub catalogue: Arc<cityops_core::Catalogue>,
    /// The working calendar of the SLA clocks.
    pub calendar: Arc<cityops_core::sla::WorkCalendar>,
    /// Share of a stage's limit at which the SLA warning goes out.
    pub sla_warning_share: f64,
    /// Wakes the outbox relay after a write, so case events go out without waiting for its next poll.
    pub outbox_nudge: Arc<tokio::sync::Notify>,
    /// Where photos are stored by content hash.
    pub photos_dir: std::path::PathBuf,
    /// Inspectors' positions and statuses.
    pub inspectors: Arc<cityops_ingest::inspectors::InspectorTracker>,
    /// The components registry (部件), for routing cases and the map.
    pub components: components::SharedComponents,
    /// The geofences watched (key projects with their required patrol frequency, …): configured and
    /// drawn through the API.
    pub geofences: Arc<geofences::GeofenceBook>,
    /// The run card (责任卡): configured entries and those set through the API.
    pub run_cards: Arc<run_cards::RunCardBook>,
}

/// Counters of the HTTP side.
#[derive(Debug, Default)]
pub struct ApiStats {
    pub ws_clients: Gauge,
    pub ws_connections: Counter,
    pub ws_frames_sent: Counter,
    pub ws_resyncs_lagged: Counter,
    pub ws_resyncs_gap: Counter,
    pub ws_send_timeouts: Counter,
    pub ws_replayed_from_store: Counter,
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/static/*path", get(pages::asset))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(docs::openapi))
        .route("/api/docs", get(docs::page))
        .route("/ws", get(ws::handler))
        .route("/api/v1/auth/login", axum::routing::post(auth::login))
        .route("/api/v1/auth/logout", axum::routing::post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .route(
            "/api/v1/users",
            get(auth::list_users).post(auth::create_user),
        )
        .route(
            "/api/v1/devices",
            get(rest::list_devices).post(rest::register_device),
        )
        .route("/api/v1/incidents", get(rest::list_incidents))
        .route("/api/v1/categories", get(rest::list_categories))
        .route(
            "/api/v1/photos",
            axum::routing::post(photos::upload).layer(axum::extract::DefaultBodyLimit::max(
                photos::MAX_PHOTO_BYTES + 1024,
            )),
        )
        .route("/api/v1/photos/:sha256", get(photos::download))
        .route(
            "/api/v1/components",
            get(components::list).post(components::import),
        )
        .route("/api/v1/coverage", get(coverage::coverage))
        .route(
            "/api/v1/geofences",
            get(geofences::list).post(geofences::create),
        )
        .route(
            "/api/v1/geofences/:id",
            get(geofences::get)
                .put(geofences::update)
                .delete(geofences::delete),
        )
        .route("/api/v1/run-cards", get(run_cards::list))
        .route(
            "/api/v1/run-cards/:code",
            axum::routing::put(run_cards::put).delete(run_cards::delete),
        )
        .route("/api/v1/inspectors", get(inspectors::list))
        .route(
            "/api/v1/inspectors/me/location",
            axum::routing::post(inspectors::location),
        )
        .route(
            "/api/v1/inspectors/me/status",
            axum::routing::put(inspectors::status),
        )
        .route(
            "/api/v1/cases/:id/nearest-inspectors",
            get(inspectors::nearest),
        )
        .route("/api/v1/cases", get(cases::list).post(cases::report))
        .route("/api/v1/cases/:id", get(cases::detail))
        .route("/api/v1/cases/:id/audit", get(cases::audit))
        .route("/api/v1/cases/:id/actions", axum::routing::post(cases::act))
        .route("/api/v1/map/district", get(layers::district))
        .route("/api/v1/map/streets", get(layers::streets))
        .route("/api/v1/map/communities", get(layers::communities))
        .route("/api/v1/map/cells", get(layers::cells))
        .route("/api/v1/map/incidents", get(layers::incidents))
        .route("/api/v1/map/inspectors", get(layers::inspectors))
        .route("/api/v1/map/components", get(layers::components))
        .route("/api/v1/map/geofences", get(layers::geofences))
        .route("/api/v1/incidents/:id", get(rest::get_incident))
        .fallback(error::not_found)
        .with_state(state)
}

async fn health(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let ready = *state.ready.borrow();
    let body = axum::Json(serde_json::json!({
        "status": if ready { "ok" } else { "starting" },
        "mqtt_subscribed": ready,
        "last_seq": state.bus.last_seq(),
    }));
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    let mut w = PromWriter::new();
    state.ingest_stats.render(&mut w);
    state.bus.render_metrics(&mut w);
    state.inspectors.render_metrics(&mut w);
    let s = &state.api_stats;
    w.single(
        "cityops_ws_clients",
        "gauge",
        "Websocket clients connected.",
        s.ws_clients.get(),
    );
    w.single(
        "cityops_ws_connections_total",
        "counter",
        "Websocket connections accepted.",
        s.ws_connections.get(),
    );
    w.single(
        "cityops_ws_frames_sent_total",
        "counter",
        "Event frames sent to websocket clients.",
        s.ws_frames_sent.get(),
    );
    w.family(
        "cityops_ws_resyncs_total",
        "counter",
        "Resync messages sent to websocket clients, by reason.",
    );
    w.sample(
        "cityops_ws_resyncs_total",
        &[("reason", "lagged")],
        s.ws_resyncs_lagged.get(),
    );
    w.sample(
        "cityops_ws_resyncs_total",
        &[("reason", "gap")],
        s.ws_resyncs_gap.get(),
    );
    w.single(
        "cityops_ws_send_timeouts_total",
        "counter",
        "Websocket clients disconnected for not reading.",
        s.ws_send_timeouts.get(),
    );
    w.single(
        "cityops_ws_replayed_from_store_total",
        "counter",
        "Events replayed to websocket clients from the stored log.",
        s.ws_replayed_from_store.get(),
    );
    let written = state.store.case_write_stats();
    w.single(
        "cityops_case_write_statements_total",
        "counter",
        "Statements (PostgreSQL) or commits (SQLite) that wrote case changes (several changes each under load).",
        written.statements,
    );
    w.single(
        "cityops_case_write_changes_total",
        "counter",
        "Case changes those statements or commits carried (on PostgreSQL also those found stale).",
        written.changes,
    );
    let read = state.store.case_read_stats();
    w.single(
        "cityops_case_read_statements_total",
        "counter",
        "PostgreSQL: statements that read cases for changes (several reads each under load).",
        read.statements,
    );
    w.single(
        "cityops_case_read_reads_total",
        "counter",
        "PostgreSQL: case reads for changes those statements carried.",
        read.reads,
    );
    w.single(
        "cityops_case_write_moved_on_total",
        "counter",
        "PostgreSQL: case changes whose case had moved on between their read and their write (decided again).",
        written.moved_on,
    );
    w.single(
        "cityops_case_write_locked_total",
        "counter",
        "PostgreSQL: case changes written under the case's row lock after their optimistic tries found it moving.",
        written.locked,
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        w.finish(),
    )
}
