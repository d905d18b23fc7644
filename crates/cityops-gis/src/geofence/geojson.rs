//! Reading geofences from a GeoJSON FeatureCollection of Polygon or MultiPolygon features.
//!
//! Properties: `id` (string or integer; the feature's own `id` is the fallback), `name`, `kind`
//! (`key_project`, `no_stall`, `construction_site`, `other`) and, for key projects only,
//! `required_visits_per_day` (1..=1000). Fences are configuration, so one bad feature refuses the whole
//! file, with an error naming the feature and the field. Like the grid file, the collection may carry a
//! `"datum"` member (`"wgs84"`, the default, or `"gcj02"`); a fence drawn on a GCJ-02 basemap (高德) is
//! converted to WGS-84 on reading, since fixes are WGS-84.

use cityops_core::GeoPoint;
use geo::{Coord, LineString, MultiPolygon, Polygon};
use serde_json::Value;
use std::collections::HashMap;

use super::{FenceKind, Geofence};
use crate::datum::{Datum, to_wgs84};

/// Why a geofence file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeofenceError {
    #[error("the geofence file is not JSON: {0}")]
    Json(String),
    #[error("the geofence file is not a GeoJSON FeatureCollection with a features array")]
    NotCollection,
    #[error("the geofence file's \"datum\" {0} is neither \"wgs84\" nor \"gcj02\"")]
    Datum(String),
    #[error("feature {index} (id {id:?}), {field}: {problem}")]
    Feature {
        index: usize,
        id: String,
        field: &'static str,
        problem: String,
    },
    #[error("feature {index}: the id {id:?} is already used by feature {first}")]
    DuplicateId {
        index: usize,
        id: String,
        first: usize,
    },
}

/// Reads every fence of the collection, in file order.
pub fn read_geofences_geojson(text: &str) -> Result<Vec<Geofence>, GeofenceError> {
    let root: Value =
        serde_json::from_str(text).map_err(|error| GeofenceError::Json(error.to_string()))?;
    let features = match (&root["type"], root["features"].as_array()) {
        (Value::String(kind), Some(features)) if kind == "FeatureCollection" => features,
        _ => return Err(GeofenceError::NotCollection),
    };
    let datum = match &root["datum"] {
        Value::Null => Datum::Wgs84,
        Value::String(name) => {
            Datum::parse(name).ok_or(GeofenceError::Datum(root["datum"].to_string()))?
        }
        other => return Err(GeofenceError::Datum(other.to_string())),
    };
    let mut first_index: HashMap<String, usize> = HashMap::new();
    let mut fences = Vec::with_capacity(features.len());
    for (index, feature) in features.iter().enumerate() {
        let fence = read_feature(feature, datum).map_err(|(id, field, problem)| {
            GeofenceError::Feature {
                index,
                id,
                field,
                problem,
            }
        })?;
        if let Some(&first) = first_index.get(&fence.id) {
            return Err(GeofenceError::DuplicateId {
                index,
                id: fence.id,
                first,
            });
        }
        first_index.insert(fence.id.clone(), index);
        fences.push(fence);
    }
    Ok(fences)
}

type FieldError = (String, &'static str, String);

fn read_feature(feature: &Value, datum: Datum) -> Result<Geofence, FieldError> {
    let properties = &feature["properties"];
    let id = match (&properties["id"], &feature["id"]) {
        (Value::String(id), _) | (Value::Null, Value::String(id)) => id.trim().to_string(),
        (Value::Number(id), _) | (Value::Null, Value::Number(id)) => id.to_string(),
        _ => String::new(),
    };
    let fail = |field: &'static str, problem: String| (id.clone(), field, problem);
    if id.is_empty() {
        return Err(fail("id", "missing or empty".to_string()));
    }
    let name = properties["name"]
        .as_str()
        .map(str::trim)
        .unwrap_or_default();
    if name.is_empty() {
        return Err(fail("name", "missing or empty".to_string()));
    }
    let visits = &properties["required_visits_per_day"];
    let kind = match properties["kind"].as_str() {
        Some("key_project") => FenceKind::KeyProject {
            required_visits_per_day: visits
                .as_u64()
                .filter(|v| (1..=1000).contains(v))
                .map(|v| v as u32)
                .ok_or_else(|| {
                    let problem = format!("{visits} is not a whole number of 1..=1000");
                    fail("required_visits_per_day", problem)
                })?,
        },
        Some(other) => {
            if !visits.is_null() {
                let problem = "only a key_project has required visits".to_string();
                return Err(fail("required_visits_per_day", problem));
            }
            match other {
                "no_stall" => FenceKind::NoStall,
                "construction_site" => FenceKind::ConstructionSite,
                "other" => FenceKind::Other,
                _ => return Err(fail("kind", format!("unknown kind {other:?}"))),
            }
        }
        None => return Err(fail("kind", "missing".to_string())),
    };
    let polygons = polygons_of(&feature["geometry"], datum).map_err(|p| fail("geometry", p))?;
    Ok(Geofence {
        name: name.to_string(),
        kind,
        polygon: MultiPolygon::new(polygons),
        id,
    })
}

fn polygons_of(geometry: &Value, datum: Datum) -> Result<Vec<Polygon<f64>>, String> {
    let coordinates = &geometry["coordinates"];
    match geometry["type"].as_str() {
        Some("Polygon") => Ok(vec![polygon_of(coordinates, datum)?]),
        Some("MultiPolygon") => coordinates
            .as_array()
            .filter(|parts| !parts.is_empty())
            .ok_or("a MultiPolygon needs a non-empty array of polygons")?
            .iter()
            .map(|rings| polygon_of(rings, datum))
            .collect(),
        other => Err(format!(
            "the geometry type {} is not Polygon or MultiPolygon",
            other.unwrap_or("(missing)")
        )),
    }
}

fn polygon_of(rings: &Value, datum: Datum) -> Result<Polygon<f64>, String> {
    let mut rings = rings
        .as_array()
        .filter(|rings| !rings.is_empty())
        .ok_or("a polygon needs a non-empty array of rings")?
        .iter()
        .map(|ring| ring_of(ring, datum))
        .collect::<Result<Vec<_>, _>>()?;
    let exterior = rings.remove(0);
    Ok(Polygon::new(exterior, rings))
}

fn ring_of(ring: &Value, datum: Datum) -> Result<LineString<f64>, String> {
    let positions = ring.as_array().ok_or("a ring is not an array")?;
    // RFC 7946: a closed ring of at least four positions, the first repeated as the last.
    if positions.len() < 4 {
        return Err(format!(
            "a ring has {} positions, fewer than 4",
            positions.len()
        ));
    }
    let coords = positions
        .iter()
        .map(|position| {
            let lon = position[0].as_f64();
            let lat = position[1].as_f64();
            let point = lon
                .zip(lat)
                .and_then(|(lon, lat)| GeoPoint::new(lon, lat).ok())
                .ok_or_else(|| format!("{position} is not a [longitude, latitude] position"))?;
            let wgs84 = to_wgs84(point, datum);
            Ok(Coord {
                x: wgs84.lon,
                y: wgs84.lat,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(LineString::new(coords))
}
