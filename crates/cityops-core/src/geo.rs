//! Geographic points in WGS-84 longitude/latitude degrees.

use serde::{Deserialize, Serialize};

/// A WGS-84 position: longitude and latitude in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lon: f64,
    pub lat: f64,
}

/// Why a coordinate pair is not a position on the earth.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoError {
    #[error("longitude {0} is outside -180..=180 or not a number")]
    Longitude(f64),
    #[error("latitude {0} is outside -90..=90 or not a number")]
    Latitude(f64),
}

impl GeoPoint {
    /// A checked point: both coordinates finite and inside their ranges.
    pub fn new(lon: f64, lat: f64) -> Result<Self, GeoError> {
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(GeoError::Longitude(lon));
        }
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(GeoError::Latitude(lat));
        }
        Ok(Self { lon, lat })
    }

    /// Great-circle distance in metres (haversine on a sphere of the mean earth radius).
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        const EARTH_RADIUS_M: f64 = 6_371_008.8;
        let (phi1, phi2) = (self.lat.to_radians(), other.lat.to_radians());
        let d_phi = (other.lat - self.lat).to_radians();
        let d_lambda = (other.lon - self.lon).to_radians();
        let a =
            (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().asin()
    }
}

/// Where a point lies in the unit grid (万米单元网格): its 15-digit cell code with the street and community
/// codes above it, or outside every cell (kept and flagged, never dropped or snapped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum GridPlace {
    Inside {
        cell: String,
        street: String,
        community: String,
    },
    Outside,
}

impl GridPlace {
    /// The cell code, when inside.
    pub fn cell(&self) -> Option<&str> {
        match self {
            GridPlace::Inside { cell, .. } => Some(cell),
            GridPlace::Outside => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_range_and_nan() {
        assert!(GeoPoint::new(116.4, 39.9).is_ok());
        assert_eq!(GeoPoint::new(181.0, 0.0), Err(GeoError::Longitude(181.0)));
        assert!(GeoPoint::new(f64::NAN, 0.0).is_err());
        assert_eq!(GeoPoint::new(0.0, -91.0), Err(GeoError::Latitude(-91.0)));
    }

    #[test]
    fn distance_of_one_degree_latitude_is_about_111_km() {
        let a = GeoPoint::new(116.4, 39.0).unwrap();
        let b = GeoPoint::new(116.4, 40.0).unwrap();
        let d = a.distance_m(&b);
        assert!((d - 111_195.0).abs() < 100.0, "{d}");
    }
}
