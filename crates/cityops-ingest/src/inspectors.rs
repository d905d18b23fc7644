//! Field inspectors' positions and statuses: fixes arrive over MQTT (`city/v1/inspectors/{id}/location`)
//! or HTTP, pass the track filter (out-of-order fixes and impossible jumps are counted, not applied),
//! and land on the board that answers "who is the nearest free inspector for this case".

use std::collections::BTreeSet;

use cityops_core::telemetry::{Counter, PromWriter};
use cityops_core::{GeoPoint, GridPlace, UnixMillis};
use cityops_gis::inspectors::{Candidate, InspectorBoard, InspectorStatus};
use cityops_gis::tracking::{PositionFix, Rejection, TrackFilterConfig, TrackFilters};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// The MQTT topic of an inspector's phone, `city/v1/inspectors/{id}/location`: the inspector's id.
pub fn inspector_of_topic(topic: &str) -> Option<&str> {
    let id = topic
        .strip_prefix("city/v1/inspectors/")?
        .strip_suffix("/location")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
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

/// Filters, board and counters behind one lock (fixes are a few per inspector per minute).
pub struct InspectorTracker {
    inner: Mutex<Inner>,
    accepted: Counter,
    rejected: [Counter; REJECTION_LABELS.len()],
}

struct Inner {
    filters: TrackFilters,
    board: InspectorBoard,
    known: BTreeSet<String>,
}

impl InspectorTracker {
    /// A position older than `max_position_age_ms` does not count for dispatch.
    pub fn new(max_position_age_ms: i64) -> Self {
        Self {
            inner: Mutex::new(Inner {
                filters: TrackFilters::new(TrackFilterConfig::default()),
                board: InspectorBoard::new(max_position_age_ms),
                known: BTreeSet::new(),
            }),
            accepted: Counter::default(),
            rejected: Default::default(),
        }
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
                for confirmed in &accepted.confirmed {
                    inner.board.apply_fix(confirmed);
                }
                inner.board.apply_fix(&fix);
                inner.known.insert(inspector.to_string());
                self.accepted.inc();
                Ok(())
            }
            Err(rejection) => {
                self.count_rejection(rejection.label());
                Err(rejection)
            }
        }
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

    /// The `n` nearest available inspectors with a fresh position for a case at `point` in `place`.
    pub fn nearest(
        &self,
        point: GeoPoint,
        place: &GridPlace,
        n: usize,
        now: UnixMillis,
    ) -> Vec<Candidate> {
        self.inner
            .lock()
            .board
            .nearest_available(point, place, n, None, now)
    }

    pub fn render_metrics(&self, w: &mut PromWriter) {
        w.single(
            "cityops_inspector_fixes_accepted_total",
            "counter",
            "Inspector position fixes applied.",
            self.accepted.get(),
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
