//! Points as unit vectors, so that an R-tree orders its nearest-neighbour search by great-circle distance.
//!
//! An R-tree on raw lon/lat degrees measures a degree of longitude like a degree of latitude, which in
//! Beijing (40° N) overstates east-west distances by 30% and can put the wrong inspector first. The
//! straight-line (chord) distance between two points on the unit sphere grows monotonically with the
//! great-circle angle between them, so a nearest-neighbour search on 3-D unit vectors visits points
//! in exact great-circle order, everywhere on the earth, with no special case at the antimeridian.

use cityops_core::GeoPoint;

/// The point on the unit sphere at `point`'s longitude and latitude.
pub(crate) fn unit_vector(point: GeoPoint) -> [f64; 3] {
    let (lat, lon) = (point.lat.to_radians(), point.lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// A squared chord length on the unit sphere that is certainly at least `squared_chord`, allowing for
/// rounding: the margin within which two candidates count as tied in the tree's order and must be
/// compared by their haversine distance instead.
pub(crate) fn with_rounding_margin(squared_chord: f64) -> f64 {
    squared_chord * (1.0 + 1e-9) + 1e-18
}
