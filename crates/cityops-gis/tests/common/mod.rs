//! Helpers shared by the tracking, inspector, component, geofence and coverage tests: positions in
//! metres from a base point in 东城区, fixes at seconds after a base time, and points for the
//! nearest-search properties.
#![allow(dead_code)]

use cityops_core::GeoPoint;
use cityops_gis::PositionFix;
use proptest::prelude::*;

/// A point in Dongcheng (WGS-84).
pub const BASE: GeoPoint = GeoPoint {
    lon: 116.40,
    lat: 39.90,
};

/// 2024-05-01 09:00 in Beijing (01:00 UTC), in Unix milliseconds.
pub const T0: i64 = 1_714_525_200_000;

/// Metres per degree of latitude on the sphere `GeoPoint::distance_m` uses.
const METRES_PER_DEGREE: f64 = 6_371_008.8 * std::f64::consts::PI / 180.0;

/// The point `east_m` east and `north_m` north of [`BASE`] (exact enough for a few kilometres).
pub fn offset(east_m: f64, north_m: f64) -> GeoPoint {
    GeoPoint {
        lon: BASE.lon + east_m / (METRES_PER_DEGREE * BASE.lat.to_radians().cos()),
        lat: BASE.lat + north_m / METRES_PER_DEGREE,
    }
}

/// A fix of `inspector` at `seconds` after [`T0`], `east_m`/`north_m` from [`BASE`].
pub fn fix(inspector: &str, seconds: f64, east_m: f64, north_m: f64) -> PositionFix {
    let point = offset(east_m, north_m);
    PositionFix {
        inspector: inspector.to_string(),
        lon: point.lon,
        lat: point.lat,
        time: T0 + (seconds * 1000.0).round() as i64,
        accuracy_m: Some(10.0),
    }
}

/// Points for the nearest-search properties: mostly within 5 km of [`BASE`], some on a few shared
/// spots (ties), and sometimes anywhere on the earth, across the antimeridian too.
pub fn point_strategy() -> impl Strategy<Value = GeoPoint> {
    prop_oneof![
        4 => (-5_000.0f64..5_000.0, -5_000.0f64..5_000.0).prop_map(|(e, n)| offset(e, n)),
        1 => prop::sample::select(vec![offset(0.0, 0.0), offset(100.0, 0.0), offset(0.0, 100.0)]),
        1 => (-180.0f64..180.0, -85.0f64..85.0).prop_map(|(lon, lat)| GeoPoint { lon, lat }),
    ]
}
