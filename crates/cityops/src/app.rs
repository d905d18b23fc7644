//! Building and running the platform: store, bus, broker, ingestion, HTTP, and (for the demo) the
//! simulator; then shutting it all down in order so nothing in flight is lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cityops_api::{ApiStats, AppState, WsConfig};
use cityops_bus::{Bus, BusConfig};
use cityops_core::Catalogue;
use cityops_ingest::rules::Rule;
use cityops_ingest::{Feed, Ingest, MqttEndpoint};
use cityops_store::{DeviceSource, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::settings::Settings;
use crate::{broker, event_log};

/// What to start besides the platform itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `cityops serve`.
    Serve,
    /// `cityops demo`: with the city simulator unless `--no-sim`.
    Demo { simulator: bool },
}

/// Start-up choices that are not settings.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Password of the demo accounts (`--demo-password` / `CITYOPS_DEMO_PASSWORD`).
    pub demo_password: Option<String>,
}

/// A running platform.
pub struct App {
    pub http_addr: SocketAddr,
    /// The broker ingestion reads from (embedded or external).
    pub mqtt_addr: (String, u16),
    pub embedded_broker: bool,
    pub database_url: String,
    pub bus: Bus,
    pub store: Store,
    pub registry: Arc<cityops_ingest::Registry>,
    pub ingest_stats: Arc<cityops_ingest::IngestStats>,
    pub sim_devices: usize,
    /// What happened to the demo accounts (demo mode only).
    pub demo_users: Option<crate::users::DemoUsers>,
    shutdown: watch::Sender<bool>,
    ingest: Ingest,
    http: JoinHandle<std::io::Result<()>>,
    event_log: JoinHandle<()>,
    sim: Option<JoinHandle<anyhow::Result<cityops_sim::SimStats>>>,
    case_filer: JoinHandle<()>,
    fix_writer: JoinHandle<()>,
    /// Nudges the outbox relay after a case write (the API holds a clone).
    pub outbox_nudge: Arc<tokio::sync::Notify>,
    /// The SLA scheduler and the outbox relay stop on their own signals, after HTTP has closed and
    /// before the bus does, so every committed case event is still relayed.
    sla_stop: watch::Sender<bool>,
    sla_scheduler: JoinHandle<()>,
    relay_stop: watch::Sender<bool>,
    outbox_relay: JoinHandle<()>,
}

/// Checks the rules against the catalogue.
pub fn compile_rules(settings: &Settings, catalogue: &Catalogue) -> anyhow::Result<Vec<Rule>> {
    let mut seen = std::collections::HashSet::new();
    settings
        .rules
        .iter()
        .map(|config| {
            if !seen.insert(config.id.clone()) {
                anyhow::bail!(cityops_ingest::rules::RuleError::Duplicate(
                    config.id.clone()
                ));
            }
            Rule::new(config.clone(), catalogue).map_err(anyhow::Error::from)
        })
        .collect()
}

impl App {
    /// Starts everything and returns once it is ready: the broker listens, ingestion is subscribed,
    /// the HTTP server accepts connections.
    pub async fn start(settings: Settings, mode: Mode) -> anyhow::Result<App> {
        Self::start_with(settings, mode, StartOptions::default()).await
    }

    pub async fn start_with(
        settings: Settings,
        mode: Mode,
        options: StartOptions,
    ) -> anyhow::Result<App> {
        let catalogue = Catalogue::with_config(&settings.categories)
            .context("invalid [[categories]] in the configuration")?;
        let rules =
            compile_rules(&settings, &catalogue).context("invalid rules in the configuration")?;
        let calendar = settings
            .calendar
            .build()
            .context("invalid [calendar] in the configuration")?;
        anyhow::ensure!(
            (0.0..=1.0).contains(&settings.sla.warning_share),
            "sla.warning_share {} must be between 0 and 1",
            settings.sla.warning_share
        );

        // HTTP first: a taken port should fail before anything else starts.
        let listener = tokio::net::TcpListener::bind(settings.http).await.map_err(|e| {
            anyhow::anyhow!(
                "HTTP address {} is not available ({e}); choose another with --http ADDR (or CITYOPS_HTTP)",
                settings.http
            )
        })?;
        let http_addr = listener.local_addr()?;

        let (broker_alerts, mqtt_addr, ingest_link) = match settings.external_broker()? {
            Some(external) => (None, external, None),
            None => {
                // The link's client id is this process's own and not guessable: a device
                // connecting under an id already connected takes that connection over (MQTT's
                // rule), and ingest's link must stay. A process id alone could be tried in turn.
                let link_id = format!(
                    "{}-in-process-{:016x}",
                    settings.ingest.mqtt_client_id,
                    rand::random::<u64>()
                );
                let link_id = settings.broker.ingest_in_process.then_some(link_id);
                let broker =
                    broker::start(settings.mqtt_listen, &settings.broker, link_id.as_deref())?;
                let addr = broker.addr;
                (
                    Some(broker.alerts),
                    (addr.ip().to_string(), addr.port()),
                    broker.ingest,
                )
            }
        };
        let embedded_broker = broker_alerts.is_some();

        let database_url = settings.database_url();
        if database_url.starts_with("sqlite://") && !database_url.contains(":memory:") {
            std::fs::create_dir_all(&settings.data_dir).with_context(|| {
                format!(
                    "Failed to create the data directory {}",
                    settings.data_dir.display()
                )
            })?;
        }
        let store = Store::open(&database_url).await?;
        let seq_floor = store.bus_seq_floor().await?;
        // The log queue holds at least four rings' worth of events while the database is slow.
        let bus_config = BusConfig {
            capacity: settings.bus.capacity,
            first_seq: seq_floor + 1,
        };
        let (bus, log_queue) = Bus::with_log(bus_config, (settings.bus.capacity * 4).max(100_000));
        let (shutdown, shutdown_rx) = watch::channel(false);

        let event_log = tokio::spawn(event_log::run(
            bus.clone(),
            log_queue,
            store.clone(),
            Duration::from_secs(settings.bus.event_retention_hours * 3600),
        ));

        let grid = settings
            .gis
            .load_grid()?
            .map(|g| Arc::new(cityops_api::layers::GridLayers::new(g)));
        let grid_index = grid
            .as_ref()
            .map(|layers| Arc::new(cityops_gis::GridIndex::new(&layers.grid)));
        let ingest = cityops_ingest::start(
            settings.ingest.clone(),
            rules,
            match ingest_link {
                Some(link) => Feed::Embedded(link),
                None => Feed::Tcp(MqttEndpoint {
                    host: mqtt_addr.0.clone(),
                    port: mqtt_addr.1,
                }),
            },
            store.clone(),
            bus.clone(),
            grid_index,
            shutdown_rx.clone(),
        )
        .await?;
        if let Some(alerts) = broker_alerts {
            // Ends with the broker's router, that is with the process.
            tokio::spawn(broker::watch_alerts(alerts, ingest.stats.clone()));
        }
        let registry = ingest.registry.clone();
        let run_card_config = settings
            .gis
            .run_card()
            .map(|_| settings.gis.run_cards.clone())?;
        // The configured fences and those drawn through the API; the tracker watches them all, and
        // every change through the API reaches it (and the patrol watch, and coverage) at once.
        let geofences = cityops_api::geofences::GeofenceBook::load(
            &store,
            settings.gis.load_geofences()?,
            ingest.inspectors.clone(),
        )
        .await
        .context("the stored geofences could not be loaded")?;
        let run_cards = cityops_api::run_cards::RunCardBook::load(
            &store,
            run_card_config,
            ingest.inspectors.clone(),
        )
        .await
        .context("the run cards could not be loaded")?;
        let fix_writer = {
            let (tracker, store, mut stop) = (
                ingest.inspectors.clone(),
                store.clone(),
                shutdown_rx.clone(),
            );
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tick.tick() => write_fixes(&tracker, &store).await,
                        // Shutdown is the only change this channel ever sees.
                        _ = stop.changed() => break,
                    }
                }
            })
        };
        for device in &settings.devices {
            registry
                .register(device.clone(), DeviceSource::Config)
                .await
                .with_context(|| format!("device {} from the configuration", device.id))?;
        }

        let mut sim_plan = Vec::new();
        let sim_config = sim_config(&settings);
        if mode == (Mode::Demo { simulator: true }) {
            sim_plan = cityops_sim::plan_devices(&cityops_sim::Boundary::dongcheng(), &sim_config);
            // The simulator places devices inside the shipped boundary, which is GCJ-02; devices report
            // WGS-84 like real GPS-equipped sensors, so convert once here, at the edge.
            for device in &mut sim_plan {
                let wgs84 = cityops_gis::datum::gcj02_to_wgs84(cityops_core::GeoPoint {
                    lon: device.lon,
                    lat: device.lat,
                });
                device.lon = wgs84.lon;
                device.lat = wgs84.lat;
            }
            for device in &sim_plan {
                registry
                    .register(device.to_core_device()?, DeviceSource::Config)
                    .await?;
            }
        }

        let demo_users = match mode {
            Mode::Demo { .. } => Some(
                crate::users::ensure_demo_users(&store, options.demo_password.as_deref()).await?,
            ),
            Mode::Serve => None,
        };
        let signing_key = crate::users::signing_key(&settings.data_dir)?;
        let auth = cityops_api::auth::AuthConfig::new(
            cityops_auth::KeyRing::new(signing_key),
            chrono::TimeDelta::hours(i64::from(settings.auth.token_ttl_hours.max(1))),
        );
        // Shared by the API (after each case write) and the outbox relay (which waits on it).
        let outbox_nudge = Arc::new(tokio::sync::Notify::new());
        let (relay_stop, relay_stop_rx) = watch::channel(false);
        let outbox_relay = tokio::spawn(crate::outbox_relay::run(
            store.clone(),
            bus.clone(),
            outbox_nudge.clone(),
            relay_stop_rx,
            crate::outbox_relay::RelayConfig::default(),
        ));
        let (sla_stop, sla_stop_rx) = watch::channel(false);
        let sla_scheduler = tokio::spawn(crate::sla_scheduler::run(
            store.clone(),
            outbox_nudge.clone(),
            crate::sla_scheduler::system_clock(),
            crate::sla_scheduler::DEFAULT_INTERVAL,
            sla_stop_rx,
        ));
        let catalogue = Arc::new(catalogue);
        let calendar = Arc::new(calendar);
        let patrol_schedule = settings.gis.patrol_schedule()?;
        // Reads the store and publishes on the bus only; it stops with the shutdown signal.
        let watched = geofences.clone();
        tokio::spawn(crate::patrol_watch::run(
            store.clone(),
            bus.clone(),
            move || watched.all(),
            calendar.clone(),
            patrol_schedule,
            Duration::from_secs(300),
            shutdown_rx.clone(),
        ));
        let case_filer = tokio::spawn(
            crate::case_filer::CaseFiler {
                store: store.clone(),
                bus: bus.clone(),
                catalogue: catalogue.clone(),
                calendar: calendar.clone(),
                warning_share: settings.sla.warning_share,
                filing: settings
                    .rules
                    .iter()
                    .map(|r| (r.id.clone(), r.case))
                    .collect(),
                outbox_nudge: outbox_nudge.clone(),
            }
            .run(),
        );
        let components = cityops_api::components::load(&store).await?;
        let state = AppState {
            geofences,
            run_cards,
            components,
            inspectors: ingest.inspectors.clone(),
            photos_dir: settings.data_dir.join("photos"),
            outbox_nudge: outbox_nudge.clone(),
            catalogue,
            calendar,
            sla_warning_share: settings.sla.warning_share,
            auth,
            bus: bus.clone(),
            store: store.clone(),
            registry: registry.clone(),
            ingest_stats: ingest.stats.clone(),
            api_stats: Arc::new(ApiStats::default()),
            ready: ingest.ready(),
            shutdown: shutdown_rx.clone(),
            grid,
            ws: WsConfig {
                max_lag: settings.ws.max_lag,
                send_timeout: Duration::from_secs(settings.ws.send_timeout_secs),
            },
        };
        let mut http_shutdown = shutdown_rx.clone();
        let http = tokio::spawn(async move {
            // TCP_NODELAY: websocket frames are flushed per batch and must leave at once, not wait
            // for the client's delayed acknowledgement of the previous segment (up to 40 ms).
            axum::serve(listener, cityops_api::router(state))
                .tcp_nodelay(true)
                .with_graceful_shutdown(async move {
                    let _ = http_shutdown.wait_for(|stop| *stop).await;
                })
                .await
        });

        let mut ready = ingest.ready();
        tokio::time::timeout(Duration::from_secs(30), ready.wait_for(|r| *r))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "could not subscribe to the MQTT broker at {}:{} within 30 s",
                    mqtt_addr.0,
                    mqtt_addr.1
                )
            })?
            .map_err(|_| anyhow::anyhow!("ingestion stopped during start-up"))?;

        let sim_devices = sim_plan.len();
        let sim = (!sim_plan.is_empty()).then(|| {
            let (host, port) = mqtt_addr.clone();
            tokio::spawn(async move {
                cityops_sim::run(&host, port, sim_plan, sim_config, shutdown_rx).await
            })
        });

        Ok(App {
            http_addr,
            mqtt_addr,
            embedded_broker,
            database_url,
            bus,
            store,
            registry,
            ingest_stats: ingest.stats.clone(),
            sim_devices,
            demo_users,
            shutdown,
            ingest,
            http,
            event_log,
            sim,
            case_filer,
            fix_writer,
            outbox_nudge,
            sla_stop,
            sla_scheduler,
            relay_stop,
            outbox_relay,
        })
    }

    /// Stops in order: simulator and HTTP, then ingestion (its queues drain into the store), then the
    /// bus (the event log writes what remains), then the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.send_replace(true);
        if let Some(sim) = self.sim {
            match sim.await {
                Ok(Ok(stats)) => tracing::info!(
                    published = stats.published,
                    dropped = stats.dropped,
                    "simulator stopped"
                ),
                Ok(Err(e)) => tracing::warn!(error = format!("{e:#}"), "simulator failed"),
                Err(e) => tracing::warn!(error = %e, "simulator task failed"),
            }
        }
        let inspectors = self.ingest.inspectors.clone();
        self.ingest.join().await;
        tracing::debug!("ingestion drained");
        match tokio::time::timeout(Duration::from_secs(15), self.http).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP task failed"),
            Err(_) => tracing::warn!("HTTP connections did not close within 15 s"),
        }
        tracing::debug!("HTTP server stopped");
        // The scheduler first (it adds outbox events), then the relay's last pass, while the bus is open.
        self.sla_stop.send_replace(true);
        self.sla_scheduler
            .await
            .context("SLA scheduler task failed")?;
        self.relay_stop.send_replace(true);
        self.outbox_relay
            .await
            .context("outbox relay task failed")?;
        tracing::debug!("outbox relayed");
        // The last accepted fixes (MQTT and HTTP have stopped by now).
        if let Err(e) = self.fix_writer.await {
            tracing::warn!(error = %e, "inspector fix writer task failed");
        }
        write_fixes(&inspectors, &self.store).await;
        self.bus.close();
        // The filer drains what the bus still holds (filing cases) before the store closes.
        self.case_filer.await.context("case filer task failed")?;
        self.event_log.await.context("event log task failed")?;
        tracing::debug!("event log written");
        self.store.close().await;
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

fn sim_config(settings: &Settings) -> cityops_sim::SimConfig {
    let s = &settings.sim;
    cityops_sim::SimConfig {
        devices_per_kind: s.devices_per_kind,
        interval: Duration::from_millis(s.interval_ms.max(1)),
        anomalies_per_minute: s.anomalies_per_minute,
        connections: s.connections.max(1),
        qos: if s.qos == 0 {
            rumqttc::QoS::AtMostOnce
        } else {
            rumqttc::QoS::AtLeastOnce
        },
        seed: s.seed,
        ..Default::default()
    }
}

/// Writes the inspectors' accepted fixes taken since the last call (a failed batch is logged and
/// counted as lost: coverage misses it, dispatch does not, since the board is in memory).
async fn write_fixes(tracker: &cityops_ingest::inspectors::InspectorTracker, store: &Store) {
    let fixes = tracker.take_pending_fixes();
    if let Err(e) = store.append_fixes(&fixes).await {
        tracker.count_unstored(fixes.len());
        tracing::error!(
            error = format!("{e:#}"),
            lost = fixes.len(),
            "inspector fixes could not be stored"
        );
    }
}
