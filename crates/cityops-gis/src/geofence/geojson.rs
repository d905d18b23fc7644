//! Reading geofences from a GeoJSON FeatureCollection of Polygon or MultiPolygon features.
//!
//! Properties: `id` (string or integer; the feature's own `id` is the fallback), `name`, `kind`
//! (`key_project`, `no_stall`, `construction_site`, `other`), for key projects only
//! `required_visits_per_day` (1..=1000), and optionally `min_dwell_ms` (0..=[`MAX_MIN_DWELL_MS`], the
//! fence's own entry dwell). Fences are configuration, so one bad feature refuses the whole file, with an
//! error naming the feature and the field. Geometry must be valid as RFC 7946 and OGC say: closed rings
//! of at least four positions, no self-intersection, holes inside their shell, a non-zero area. Like the grid file, the collection may carry a
//! `"datum"` member (`"wgs84"`, the default, or `"gcj02"`); a fence drawn on a GCJ-02 basemap (高德) is
//! converted to WGS-84 on reading, since fixes are WGS-84.

use cityops_core::GeoPoint;
use geo::{Area, Coord, LineString, MultiPolygon, Polygon, Validation};
use serde_json::{Value, json};
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
        let fence = read_feature(feature, datum, None).map_err(|(id, field, problem)| {
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

/// The longest per-fence entry dwell accepted: an hour.
pub const MAX_MIN_DWELL_MS: i64 = 3_600_000;

/// Why one feature was refused (see [`read_geofence_feature`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FeatureError {
    pub field: &'static str,
    pub problem: String,
}

/// The id a feature gives itself: `properties.id`, else the feature's `id` (string or integer);
/// `None` when it gives none.
pub fn feature_id(feature: &Value) -> Option<String> {
    let id = match (&feature["properties"]["id"], &feature["id"]) {
        (Value::String(id), _) | (Value::Null, Value::String(id)) => id.trim().to_string(),
        (Value::Number(id), _) | (Value::Null, Value::Number(id)) => id.to_string(),
        _ => String::new(),
    };
    (!id.is_empty()).then_some(id)
}

/// Reads one WGS-84 GeoJSON Feature (as the API receives it) into a fence with the id `id`; the
/// feature's own id, if any, is the caller's to check.
pub fn read_geofence_feature(feature: &Value, id: &str) -> Result<Geofence, FeatureError> {
    if feature["type"] != "Feature" {
        return Err(FeatureError {
            field: "type",
            problem: "expected a GeoJSON Feature".to_string(),
        });
    }
    read_feature(feature, Datum::Wgs84, Some(id))
        .map_err(|(_, field, problem)| FeatureError { field, problem })
}

/// A fence as a GeoJSON Feature (WGS-84): a Polygon when it has one part, a MultiPolygon otherwise;
/// properties `id`, `name`, `kind`, `kind_zh`, `required_visits_per_day` (null unless a key project)
/// and `min_dwell_ms` (null: the tracker's). [`read_geofence_feature`] reads it back.
pub fn geofence_feature(fence: &Geofence) -> Value {
    let ring =
        |ring: &LineString<f64>| -> Vec<[f64; 2]> { ring.coords().map(|c| [c.x, c.y]).collect() };
    let rings = |polygon: &Polygon<f64>| -> Vec<Vec<[f64; 2]>> {
        std::iter::once(ring(polygon.exterior()))
            .chain(polygon.interiors().iter().map(ring))
            .collect()
    };
    let geometry = match fence.polygon.0.as_slice() {
        [one] => json!({"type": "Polygon", "coordinates": rings(one)}),
        parts => {
            json!({"type": "MultiPolygon", "coordinates": parts.iter().map(rings).collect::<Vec<_>>()})
        }
    };
    json!({
        "type": "Feature",
        "id": fence.id,
        "properties": {
            "id": fence.id,
            "name": fence.name,
            "kind": fence.kind.as_str(),
            "kind_zh": fence.kind.label_zh(),
            "required_visits_per_day": fence.kind.required_visits_per_day(),
            "min_dwell_ms": fence.min_dwell_ms,
        },
        "geometry": geometry,
    })
}

type FieldError = (String, &'static str, String);

fn read_feature(
    feature: &Value,
    datum: Datum,
    id_override: Option<&str>,
) -> Result<Geofence, FieldError> {
    let properties = &feature["properties"];
    if !properties.is_object() {
        let id = id_override.map(str::to_string).unwrap_or_default();
        return Err((id, "properties", "missing or not an object".to_string()));
    }
    let id = match id_override {
        Some(id) => id.to_string(),
        None => feature_id(feature).unwrap_or_default(),
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
    let dwell = &properties["min_dwell_ms"];
    let min_dwell_ms = match dwell {
        Value::Null => None,
        _ => Some(
            dwell
                .as_i64()
                .filter(|ms| (0..=MAX_MIN_DWELL_MS).contains(ms))
                .ok_or_else(|| {
                    let problem =
                        format!("{dwell} is not a whole number of 0..={MAX_MIN_DWELL_MS} ms");
                    fail("min_dwell_ms", problem)
                })?,
        ),
    };
    let polygons = polygons_of(&feature["geometry"], datum).map_err(|p| fail("geometry", p))?;
    Ok(Geofence {
        name: name.to_string(),
        kind,
        polygon: MultiPolygon::new(polygons),
        min_dwell_ms,
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
    let polygon = Polygon::new(exterior, rings);
    if let Err(invalid) = polygon.check_validation() {
        return Err(format!("the polygon is not valid: {invalid}"));
    }
    if polygon.unsigned_area() <= 0.0 {
        return Err("the polygon has no area".to_string());
    }
    Ok(polygon)
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
    // RFC 7946: the first and last positions hold identical values (the datum shift keeps that).
    if coords.first() != coords.last() {
        return Err(format!(
            "a ring is not closed: its first position {} differs from its last {}",
            positions[0],
            positions[positions.len() - 1]
        ));
    }
    Ok(LineString::new(coords))
}
