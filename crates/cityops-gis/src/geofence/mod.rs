//! Geofences (电子围栏): key projects to patrol, no-stall zones, construction sites; who enters and leaves.
//!
//! A [`Geofence`] is a WGS-84 area with a kind; fences are configuration, read from GeoJSON
//! ([`read_geofences_geojson`], or one feature at a time with [`read_geofence_feature`] as the API
//! receives them) and written back with [`geofence_feature`]. The [`GeofenceTracker`] turns accepted position fixes into
//! [`FenceEvent`]s, confirming each crossing by a minimum dwell or absence so that GPS scatter along an
//! edge raises nothing (see the `tracker` module for the rules, including long gaps between fixes).

mod geojson;
mod tracker;

pub use geojson::{
    FeatureError, GeofenceError, MAX_MIN_DWELL_MS, feature_id, geofence_feature,
    read_geofence_feature, read_geofences_geojson,
};
pub use tracker::{
    FenceEvent, FenceEventKind, FencePresence, FenceTrackerConfig, GeofenceTracker, replay,
};

use cityops_core::GeoPoint;
use geo::{Intersects, MultiPolygon, Point};
use serde::{Deserialize, Serialize};

/// What a fence is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FenceKind {
    /// A key project or enterprise (重点项目): patrolled at least this often a day.
    KeyProject {
        required_visits_per_day: u32,
    },
    /// A no-stall zone (禁止摆摊区).
    NoStall,
    /// A construction site (施工工地): dust, road occupation by works.
    ConstructionSite,
    Other,
}

impl FenceKind {
    /// The name in files: `key_project`, `no_stall`, `construction_site`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            FenceKind::KeyProject { .. } => "key_project",
            FenceKind::NoStall => "no_stall",
            FenceKind::ConstructionSite => "construction_site",
            FenceKind::Other => "other",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            FenceKind::KeyProject { .. } => "重点项目",
            FenceKind::NoStall => "禁止摆摊区",
            FenceKind::ConstructionSite => "施工工地",
            FenceKind::Other => "其他",
        }
    }

    /// The required daily visits of a key project.
    pub fn required_visits_per_day(self) -> Option<u32> {
        match self {
            FenceKind::KeyProject {
                required_visits_per_day,
            } => Some(required_visits_per_day),
            _ => None,
        }
    }
}

/// One fence.
#[derive(Debug, Clone, PartialEq)]
pub struct Geofence {
    pub id: String,
    /// In Chinese, as the users name it.
    pub name: String,
    pub kind: FenceKind,
    /// WGS-84. A point on the edge counts as inside.
    pub polygon: MultiPolygon<f64>,
    /// Time inside before an entry counts, for this fence; the tracker's `min_dwell_ms` when `None`
    /// (a construction site may want a longer stay than a street crossing).
    pub min_dwell_ms: Option<i64>,
}

impl Geofence {
    pub fn contains(&self, point: GeoPoint) -> bool {
        self.polygon.intersects(&Point::new(point.lon, point.lat))
    }
}
