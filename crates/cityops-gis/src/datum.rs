//! WGS-84 and GCJ-02 ("Mars coordinates"): the two datums city geodata arrives in, and the conversion.
//!
//! Chinese basemaps (高德/AMap, Tencent) and much published boundary data use GCJ-02, an obfuscated
//! datum that shifts points by a few hundred metres (about +0.0062° lon, +0.0014° lat in Beijing).
//! Devices with GPS report WGS-84. Mixing the two puts a manhole cover in the wrong unit cell, so every
//! grid records its datum and lookups convert explicitly.
//!
//! WGS-84 → GCJ-02 is the widely published public approximation (Krasovsky ellipsoid constants and two
//! trigonometric polynomials). It has no closed-form inverse; GCJ-02 → WGS-84 inverts it by fixed-point
//! iteration, which converges quickly because the shift varies slowly (its Jacobian is close to the
//! identity). Outside a rough bounding box of China both directions return the point unchanged, as every
//! implementation of the algorithm does.

use cityops_core::GeoPoint;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// The datum of a lon/lat pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Datum {
    /// GPS, OpenStreetMap, 天地图 (CGCS2000 agrees with it to well under a metre).
    Wgs84,
    /// 高德/AMap, Tencent maps and most boundary data published in China.
    Gcj02,
}

impl Datum {
    /// The name used in files and on the wire: `wgs84` or `gcj02`.
    pub fn as_str(self) -> &'static str {
        match self {
            Datum::Wgs84 => "wgs84",
            Datum::Gcj02 => "gcj02",
        }
    }

    /// The inverse of [`Datum::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "wgs84" => Some(Datum::Wgs84),
            "gcj02" => Some(Datum::Gcj02),
            _ => None,
        }
    }
}

/// Converts a point given in `datum` to WGS-84.
pub fn to_wgs84(point: GeoPoint, datum: Datum) -> GeoPoint {
    match datum {
        Datum::Wgs84 => point,
        Datum::Gcj02 => gcj02_to_wgs84(point),
    }
}

/// Converts a WGS-84 point to `datum`. The result is held in a [`GeoPoint`] although it may not be WGS-84.
pub fn from_wgs84(point: GeoPoint, datum: Datum) -> GeoPoint {
    match datum {
        Datum::Wgs84 => point,
        Datum::Gcj02 => wgs84_to_gcj02(point),
    }
}

/// WGS-84 → GCJ-02 (the public algorithm); unchanged outside China.
pub fn wgs84_to_gcj02(point: GeoPoint) -> GeoPoint {
    if is_outside_china(point) {
        return point;
    }
    let (d_lon, d_lat) = gcj02_offset_degrees(point.lon, point.lat);
    GeoPoint {
        lon: point.lon + d_lon,
        lat: point.lat + d_lat,
    }
}

/// GCJ-02 → WGS-84 by fixed-point iteration, to better than 1e-9° (a handful of rounds); unchanged
/// outside China.
pub fn gcj02_to_wgs84(point: GeoPoint) -> GeoPoint {
    if is_outside_china(point) {
        return point;
    }
    // Solve wgs + offset(wgs) = gcj: start from gcj - offset(gcj) and correct by the residual. The offset
    // changes by ~1e-5 of its size per degree, so each round gains about five digits.
    let mut wgs = point;
    for _ in 0..MAX_INVERSE_ROUNDS {
        let (d_lon, d_lat) = gcj02_offset_degrees(wgs.lon, wgs.lat);
        let next = GeoPoint {
            lon: point.lon - d_lon,
            lat: point.lat - d_lat,
        };
        let moved = (next.lon - wgs.lon).abs().max((next.lat - wgs.lat).abs());
        wgs = next;
        if moved < INVERSE_TOLERANCE_DEGREES {
            break;
        }
    }
    wgs
}

/// Whether the GCJ-02 shift leaves the point alone: outside the rough bounding box of China that the
/// public algorithm uses (lon 72.004..137.8347, lat 0.8293..55.8271). It includes neighbouring countries'
/// border areas and excludes nothing Chinese, exactly like the published code.
pub fn is_outside_china(point: GeoPoint) -> bool {
    !(72.004..=137.8347).contains(&point.lon) || !(0.8293..=55.8271).contains(&point.lat)
}

/// Semi-major axis of the Krasovsky 1940 ellipsoid, the constant of the public algorithm.
const KRASOVSKY_SEMI_MAJOR_AXIS_M: f64 = 6_378_245.0;
/// First eccentricity squared of the Krasovsky 1940 ellipsoid, written as the algorithm publishes it.
#[allow(clippy::excessive_precision)]
const KRASOVSKY_ECCENTRICITY_SQUARED: f64 = 0.006_693_421_622_965_943_23;
const MAX_INVERSE_ROUNDS: usize = 10;
const INVERSE_TOLERANCE_DEGREES: f64 = 1e-10;

/// The GCJ-02 − WGS-84 shift in degrees (lon, lat) at a WGS-84 position.
fn gcj02_offset_degrees(lon: f64, lat: f64) -> (f64, f64) {
    let x = lon - 105.0;
    let y = lat - 35.0;
    let lat_rad = lat.to_radians();
    let sin_lat = lat_rad.sin();
    let magic = 1.0 - KRASOVSKY_ECCENTRICITY_SQUARED * sin_lat * sin_lat;
    let sqrt_magic = magic.sqrt();
    let metres_per_radian_lat =
        KRASOVSKY_SEMI_MAJOR_AXIS_M * (1.0 - KRASOVSKY_ECCENTRICITY_SQUARED) / (magic * sqrt_magic);
    let metres_per_radian_lon = KRASOVSKY_SEMI_MAJOR_AXIS_M / sqrt_magic * lat_rad.cos();
    let d_lat = transform_lat(x, y) * 180.0 / (metres_per_radian_lat * PI);
    let d_lon = transform_lon(x, y) * 180.0 / (metres_per_radian_lon * PI);
    (d_lon, d_lat)
}

/// The latitude polynomial of the public algorithm (metres, before scaling), at offsets from (105, 35).
fn transform_lat(x: f64, y: f64) -> f64 {
    let mut ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    ret += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    ret += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    ret += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    ret
}

/// The longitude polynomial of the public algorithm (metres, before scaling), at offsets from (105, 35).
fn transform_lon(x: f64, y: f64) -> f64 {
    let mut ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    ret += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    ret += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    ret += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    ret
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn point(lon: f64, lat: f64) -> GeoPoint {
        GeoPoint::new(lon, lat).unwrap()
    }

    #[test]
    fn tiananmen_shifts_by_the_published_offset() {
        // WGS-84 of 天安门 as commonly given; its GCJ-02 position is published as about (116.3975, 39.9076).
        let gcj = wgs84_to_gcj02(point(116.391_275_7, 39.906_217));
        assert!((gcj.lon - 116.3975).abs() < 2e-4, "{gcj:?}");
        assert!((gcj.lat - 39.9076).abs() < 2e-4, "{gcj:?}");
        // The data README: at 东城区 the shift is about +0.0062° lon and +0.0014° lat (~560 m).
        let (d_lon, d_lat) = (gcj.lon - 116.391_275_7, gcj.lat - 39.906_217);
        assert!((d_lon - 0.0062).abs() < 0.0002, "lon shift {d_lon}");
        assert!((d_lat - 0.0014).abs() < 0.0002, "lat shift {d_lat}");
        let metres = point(116.391_275_7, 39.906_217).distance_m(&gcj);
        assert!((500.0..620.0).contains(&metres), "{metres} m");
    }

    #[test]
    fn inverse_of_the_known_pair_is_exact_to_1e_9() {
        let wgs = point(116.391_275_7, 39.906_217);
        let back = gcj02_to_wgs84(wgs84_to_gcj02(wgs));
        assert!(
            (back.lon - wgs.lon).abs() < 1e-9 && (back.lat - wgs.lat).abs() < 1e-9,
            "{back:?}"
        );
    }

    #[test]
    fn datum_names_and_dispatch() {
        assert_eq!(serde_json::to_string(&Datum::Gcj02).unwrap(), "\"gcj02\"");
        assert_eq!(
            serde_json::from_str::<Datum>("\"wgs84\"").unwrap(),
            Datum::Wgs84
        );
        for datum in [Datum::Wgs84, Datum::Gcj02] {
            assert_eq!(Datum::parse(datum.as_str()), Some(datum));
        }
        assert_eq!(Datum::parse("WGS84"), None);
        let p = point(116.4, 39.9);
        assert_eq!(to_wgs84(p, Datum::Wgs84), p);
        assert_eq!(from_wgs84(p, Datum::Wgs84), p);
        assert_eq!(from_wgs84(p, Datum::Gcj02), wgs84_to_gcj02(p));
        assert_eq!(to_wgs84(p, Datum::Gcj02), gcj02_to_wgs84(p));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip_inside_china_is_below_1e_7_degrees(lon in 73.0..135.0f64, lat in 1.0..55.0f64) {
            let wgs = point(lon, lat);
            let gcj = wgs84_to_gcj02(wgs);
            // The shift is real (tens to hundreds of metres) and bounded.
            prop_assert!(wgs.distance_m(&gcj) < 1_500.0);
            let back = gcj02_to_wgs84(gcj);
            prop_assert!((back.lon - lon).abs() < 1e-7, "lon {} -> {}", lon, back.lon);
            prop_assert!((back.lat - lat).abs() < 1e-7, "lat {} -> {}", lat, back.lat);
        }

        #[test]
        fn points_outside_china_are_unchanged(
            (lon, lat) in prop_oneof![
                (-180.0..72.0f64, -90.0..90.0f64),
                (137.9..180.0f64, -90.0..90.0f64),
                (-180.0..180.0f64, 55.9..90.0f64),
                (-180.0..180.0f64, -90.0..0.8f64),
            ]
        ) {
            let p = point(lon, lat);
            prop_assert!(is_outside_china(p));
            prop_assert_eq!(wgs84_to_gcj02(p), p);
            prop_assert_eq!(gcj02_to_wgs84(p), p);
        }
    }
}
