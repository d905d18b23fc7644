//! GIS of cityops: the unit grid and its hierarchy, point-to-cell lookup, WGS-84/GCJ-02 conversion.
//!
//! Every case in 数字城管 is filed against a unit cell (万米单元网格) of a district, found from the
//! position where it was reported. This crate holds that grid ([`grid`]: district → street → community →
//! cell, read from and written to GeoJSON, or generated from a boundary for a demo city), the lookup
//! from a position to its cell ([`index`]), and the datum conversion that a lookup needs because
//! devices report WGS-84 while Chinese boundary data is usually GCJ-02 ([`datum`]). Around the grid:
//! inspector tracking that filters GPS jumps and out-of-order fixes ([`tracking`]), the board of
//! inspectors with the nearest free one for a case ([`inspectors`], [`run_card`]), geofences with
//! dwell-confirmed enter/exit ([`geofence`]), patrol coverage per cell, street, community and key
//! project ([`coverage`]), and the components registry (部件) for routing cases ([`components`]).

pub mod components;
pub mod coverage;
pub mod datum;
pub mod geofence;
pub mod grid;
pub mod index;
pub mod inspectors;
pub mod run_card;
mod sphere;
pub mod tracking;

pub use components::{Component, ComponentRegistry, ComponentState};
pub use coverage::{BehindSchedule, CoverageOptions, DayCoverage, Share, TimeWindow};
pub use datum::{Datum, from_wgs84, to_wgs84};
pub use geofence::{
    FenceEvent, FenceEventKind, FenceKind, FenceTrackerConfig, Geofence, GeofenceTracker,
};
pub use grid::{
    Cell, CellCode, CodeError, Community, CommunityCode, Grid, GridOptions, Street, StreetCode,
    generate_grid, read_boundary_geojson,
};
pub use index::{GridIndex, Location};
pub use inspectors::{Candidate, InspectorBoard, InspectorStatus};
pub use run_card::RunCard;
pub use tracking::{
    Accepted, PositionFix, Rejection, TrackFilter, TrackFilterConfig, TrackFilters,
};
