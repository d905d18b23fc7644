//! Field inspectors' positions and statuses: fixes arrive over MQTT (`city/v1/inspectors/{id}/location`)
//! or HTTP, pass the track filter (out-of-order fixes and impossible jumps are counted, not applied),
//! and land on the board that answers "who is the nearest free inspector for this case". Accepted
//! positions go out on the bus as `inspector.position` (at most one per inspector every
//! [`POSITION_EVENT_INTERVAL_MS`]; status changes at once), and geofence crossings confirmed by their
//! dwell as `inspector.fence`.

use std::collections::{BTreeSet, HashMap};

use cityops_bus::Bus;
use cityops_core::EventData;
use cityops_core::event::{InspectorFence, InspectorPosition};
use cityops_gis::geofence::{FenceEventKind, FenceTrackerConfig, Geofence, GeofenceTracker};

use cityops_core::telemetry::{Counter, PromWriter};
use cityops_core::{GeoPoint, GridPlace, UnixMillis};
use cityops_gis::RunCard;
use cityops_gis::inspectors::{Candidate, InspectorBoard, InspectorStatus};
use cityops_gis::tracking::{PositionFix, Rejection, TrackFilterConfig, TrackFilters};
use cityops_store::Store;
use cityops_store::fixes::FixRow;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// The MQTT topic of an inspector's phone, `city/v1/inspectors/{id}/location`: the inspector's id.
pub fn inspector_of_topic(topic: &str) -> Option<&str> {
    let id = topic
        .strip_prefix("city/v1/inspectors/")?
        .strip_suffix("/location")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// The accepted fixes stored with `from <= time < to` (Unix ms), in time order, as the GIS uses them.
pub async fn stored_fixes(
    store: &Store,
    from: UnixMillis,
    to: UnixMillis,
) -> anyhow::Result<Vec<PositionFix>> {
    Ok(store
        .fixes_between(from, to)
        .await?
        .into_iter()
        .map(|r| PositionFix {
            inspector: r.inspector,
            lon: r.lon,
            lat: r.lat,
            time: r.time,
            accuracy_m: r.accuracy,
        })
        .collect())
}

/// The body of a location message or request: WGS-84, time in Unix ms (arrival time when absent).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationBody {
    pub lon: f64,
    pub lat: f64,
    #[serde(default)]
    pub time: Option<UnixMillis>,
    #[serde(default)]
    pub accuracy: Option<f64>,
}

/// One inspector as the board shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InspectorView {
    pub id: String,
    pub status: InspectorStatus,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub time: Option<UnixMillis>,
}

const REJECTION_LABELS: [&str; 6] = [
    "out_of_order",
    "impossible_jump",
    "inaccurate",
    "invalid_coordinates",
    "from_the_future",
    "malformed",
];

/// At most one `inspector.position` event per inspector this often (a phone may send every second).
pub const POSITION_EVENT_INTERVAL_MS: i64 = 5_000;

/// Filters, board and counters behind one lock (fixes are a few per inspector per minute).
pub struct InspectorTracker {
    inner: Mutex<Inner>,
    bus: Bus,
    accepted: Counter,
    rejected: [Counter; REJECTION_LABELS.len()],
    fence_events: Counter,
    unstored: Counter,
}

struct Inner {
    filters: TrackFilters,
    board: InspectorBoard,
    fences: GeofenceTracker,
    /// The live run card: the nearest-inspector answer puts its team first.
    run_card: RunCard,
    known: BTreeSet<String>,
    last_position_event: HashMap<String, UnixMillis>,
    /// Accepted fixes not yet written to the store (the writer takes them every second).
    pending: Vec<PositionFix>,
}

impl InspectorTracker {
    /// A position older than `max_position_age_ms` does not count for dispatch.
    pub fn new(max_position_age_ms: i64, bus: Bus) -> Self {
        Self {
            inner: Mutex::new(Inner {
                filters: TrackFilters::new(TrackFilterConfig::default()),
                board: InspectorBoard::new(max_position_age_ms),
                fences: GeofenceTracker::new(Vec::new(), FenceTrackerConfig::default()),
                run_card: RunCard::new(),
                known: BTreeSet::new(),
                last_position_event: HashMap::new(),
                pending: Vec::new(),
            }),
            bus,
            accepted: Counter::default(),
            rejected: Default::default(),
            fence_events: Counter::default(),
            unstored: Counter::default(),
        }
    }

    /// Replaces the geofences watched (key projects, no-stall zones, construction sites), from the next
    /// fix on. What is known of inspectors in fences that stay is kept, so nobody re-enters a fence
    /// because another one was added (see [`GeofenceTracker::replace_fences`]).
    pub fn set_geofences(&self, fences: Vec<Geofence>) {
        self.inner.lock().fences.replace_fences(fences);
    }

    /// The geofences watched now.
    pub fn geofences(&self) -> Vec<Geofence> {
        self.inner.lock().fences.fences().to_vec()
    }

    /// Replaces the run card the nearest-inspector answer follows.
    pub fn set_run_card(&self, run_card: RunCard) {
        self.inner.lock().run_card = run_card;
    }

    /// Applies a fix if the track filter accepts it; the rejection otherwise (already counted).
    pub fn fix(
        &self,
        inspector: &str,
        body: &LocationBody,
        now: UnixMillis,
    ) -> Result<(), Rejection> {
        let fix = PositionFix {
            inspector: inspector.to_string(),
            lon: body.lon,
            lat: body.lat,
            time: body.time.unwrap_or(now),
            accuracy_m: body.accuracy,
        };
        let mut inner = self.inner.lock();
        match inner.filters.check(&fix, now) {
            Ok(accepted) => {
                // After a re-anchoring the filter hands back the fixes that confirmed the move.
                let mut crossings = Vec::new();
                for applied in accepted.confirmed.iter().chain(std::iter::once(&fix)) {
                    inner.board.apply_fix(applied);
                    crossings.extend(inner.fences.observe(applied));
                    inner.pending.push(applied.clone());
                }
                inner.known.insert(inspector.to_string());
                self.accepted.inc();
                for crossing in crossings {
                    self.fence_events.inc();
                    self.bus.publish(EventData::InspectorFence(InspectorFence {
                        inspector: crossing.inspector,
                        fence: crossing.fence,
                        kind: match crossing.kind {
                            FenceEventKind::Entered => "entered".into(),
                            FenceEventKind::Exited => "exited".into(),
                        },
                        at: crossing.at,
                    }));
                }
                let due = inner
                    .last_position_event
                    .get(inspector)
                    .is_none_or(|last| now - last >= POSITION_EVENT_INTERVAL_MS);
                if due {
                    inner.last_position_event.insert(inspector.to_string(), now);
                    self.publish_position(&inner, inspector);
                }
                Ok(())
            }
            Err(rejection) => {
                self.count_rejection(rejection.label());
                Err(rejection)
            }
        }
    }

    /// The accepted fixes since the last call, as rows for the store (patrol coverage is computed from
    /// them).
    pub fn take_pending_fixes(&self) -> Vec<FixRow> {
        std::mem::take(&mut self.inner.lock().pending)
            .into_iter()
            .map(|f| FixRow {
                inspector: f.inspector,
                time: f.time,
                lon: f.lon,
                lat: f.lat,
                accuracy: f.accuracy_m,
            })
            .collect()
    }

    /// Counts fixes the store could not take (coverage will miss them; the board has them).
    pub fn count_unstored(&self, n: usize) {
        self.unstored.add(n as u64);
    }

    /// Counts a location message that could not even be read.
    pub fn malformed(&self) {
        self.count_rejection("malformed");
    }

    fn count_rejection(&self, label: &str) {
        if let Some(i) = REJECTION_LABELS.iter().position(|l| *l == label) {
            self.rejected[i].inc();
        }
    }

    pub fn set_status(&self, inspector: &str, status: InspectorStatus) {
        let mut inner = self.inner.lock();
        inner.board.set_status(inspector, status);
        inner.known.insert(inspector.to_string());
        self.publish_position(&inner, inspector);
    }

    fn publish_position(&self, inner: &Inner, inspector: &str) {
        let position = inner.board.position(inspector);
        self.bus
            .publish(EventData::InspectorPosition(InspectorPosition {
                inspector: inspector.to_string(),
                status: inner
                    .board
                    .status(inspector)
                    .unwrap_or(InspectorStatus::OffDuty)
                    .as_str()
                    .to_string(),
                lon: position.map(|p| p.point.lon),
                lat: position.map(|p| p.point.lat),
                time: position.map(|p| p.time),
            }));
    }

    pub fn list(&self) -> Vec<InspectorView> {
        let inner = self.inner.lock();
        inner
            .known
            .iter()
            .map(|id| {
                let position = inner.board.position(id);
                InspectorView {
                    id: id.clone(),
                    status: inner.board.status(id).unwrap_or(InspectorStatus::OffDuty),
                    lon: position.map(|p| p.point.lon),
                    lat: position.map(|p| p.point.lat),
                    time: position.map(|p| p.time),
                }
            })
            .collect()
    }

    /// The `n` available inspectors with a fresh position for a case at `point` in `place`: the run
    /// card's team for the place first, in its order, then the nearest others.
    pub fn nearest(
        &self,
        point: GeoPoint,
        place: &GridPlace,
        n: usize,
        now: UnixMillis,
    ) -> Vec<Candidate> {
        let inner = self.inner.lock();
        inner
            .board
            .nearest_available(point, place, n, Some(&inner.run_card), now)
    }

    pub fn render_metrics(&self, w: &mut PromWriter) {
        w.single(
            "cityops_inspector_fixes_accepted_total",
            "counter",
            "Inspector position fixes applied.",
            self.accepted.get(),
        );
        w.single(
            "cityops_inspector_fixes_unstored_total",
            "counter",
            "Accepted fixes the store could not take (each batch logged).",
            self.unstored.get(),
        );
        w.single(
            "cityops_inspector_fence_events_total",
            "counter",
            "Geofence entries and exits confirmed.",
            self.fence_events.get(),
        );
        w.family(
            "cityops_inspector_fixes_rejected_total",
            "counter",
            "Inspector position fixes not applied, by reason.",
        );
        for (label, counter) in REJECTION_LABELS.iter().zip(&self.rejected) {
            w.sample(
                "cityops_inspector_fixes_rejected_total",
                &[("reason", label)],
                counter.get(),
            );
        }
    }
}
