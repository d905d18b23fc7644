//! Map layers as GeoJSON in WGS-84: the district, its streets and communities, and the unit cells of a
//! bounding box with their live open-incident counts. Layers of another datum (the shipped grid is
//! GCJ-02) are converted here, at the edge, so every position the API hands out is WGS-84.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cityops_core::GeoPoint;
use cityops_gis::{Datum, Grid, GridIndex, to_wgs84};
use geo::{MultiPolygon, Polygon, Rect, coord};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Authenticated;
use crate::{ApiError, AppState};
use cityops_auth::Permission;

/// The grid with its ready-made WGS-84 layers.
pub struct GridLayers {
    pub grid: Grid,
    pub index: GridIndex,
    district: String,
    streets: String,
    communities: String,
}

/// At most this many cells per request; a wider box is asked to zoom in.
const MAX_CELLS: usize = 5_000;

impl GridLayers {
    pub fn new(grid: Grid) -> Self {
        let datum = grid.datum;
        let district = collection(vec![feature(
            json!({"level": "district", "code": grid.district_code, "name": grid.district_name, "datum": "wgs84"}),
            multipolygon(&grid.boundary, datum),
        )]);
        let streets = collection(
            grid.streets
                .iter()
                .map(|s| {
                    feature(
                        json!({"level": "street", "code": s.code.to_string(), "name": s.name, "area_m2": s.area_m2.round()}),
                        multipolygon(&s.polygon, datum),
                    )
                })
                .collect(),
        );
        let communities = collection(
            grid.communities
                .iter()
                .map(|c| {
                    feature(
                        json!({"level": "community", "code": c.code.to_string(), "street": c.street_code.to_string(),
                               "name": c.name, "area_m2": c.area_m2.round()}),
                        multipolygon(&c.polygon, datum),
                    )
                })
                .collect(),
        );
        let index = GridIndex::new(&grid);
        Self {
            grid,
            index,
            district,
            streets,
            communities,
        }
    }
}

fn collection(features: Vec<Value>) -> String {
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

fn feature(properties: Value, geometry: Value) -> Value {
    json!({"type": "Feature", "properties": properties, "geometry": geometry})
}

fn ring(coords: impl Iterator<Item = geo::Coord<f64>>, datum: Datum) -> Vec<[f64; 2]> {
    coords
        .map(|c| {
            let p = to_wgs84(GeoPoint { lon: c.x, lat: c.y }, datum);
            [(p.lon * 1e6).round() / 1e6, (p.lat * 1e6).round() / 1e6]
        })
        .collect()
}

fn polygon_rings(polygon: &Polygon<f64>, datum: Datum) -> Vec<Vec<[f64; 2]>> {
    std::iter::once(ring(polygon.exterior().coords().copied(), datum))
        .chain(
            polygon
                .interiors()
                .iter()
                .map(|r| ring(r.coords().copied(), datum)),
        )
        .collect()
}

fn multipolygon(shape: &MultiPolygon<f64>, datum: Datum) -> Value {
    let polygons: Vec<_> = shape.0.iter().map(|p| polygon_rings(p, datum)).collect();
    json!({"type": "MultiPolygon", "coordinates": polygons})
}

fn geojson(body: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "application/geo+json")],
        body.to_string(),
    )
        .into_response()
}

fn layers(state: &AppState) -> Result<&Arc<GridLayers>, ApiError> {
    state
        .grid
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("no unit grid is configured (gis.grid)".into()))
}

pub(crate) async fn district(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    Ok(geojson(&layers(&state)?.district))
}

pub(crate) async fn streets(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    Ok(geojson(&layers(&state)?.streets))
}

pub(crate) async fn communities(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    Ok(geojson(&layers(&state)?.communities))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CellParams {
    /// `min_lon,min_lat,max_lon,max_lat` in WGS-84.
    bbox: String,
}

/// `GET /api/v1/map/cells?bbox=…`: the cells in a box with their open-incident counts.
pub(crate) async fn cells(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<CellParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    let Query(params) = params.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let layers = layers(&state)?;
    let bbox = parse_bbox(&params.bbox)?;
    // The box is WGS-84; the grid may be in another datum. Convert both corners and widen a little so
    // the datum's non-linear shift cannot cut off a cell at the edge.
    let datum = layers.grid.datum;
    let min = cityops_gis::from_wgs84(
        GeoPoint {
            lon: bbox.0,
            lat: bbox.1,
        },
        datum,
    );
    let max = cityops_gis::from_wgs84(
        GeoPoint {
            lon: bbox.2,
            lat: bbox.3,
        },
        datum,
    );
    let margin = 0.0005;
    let rect = Rect::new(
        coord! { x: min.lon - margin, y: min.lat - margin },
        coord! { x: max.lon + margin, y: max.lat + margin },
    );
    let cells = layers.index.cells_in_bbox(rect);
    if cells.len() > MAX_CELLS {
        return Err(ApiError::Invalid(format!(
            "the box holds {} cells, more than {MAX_CELLS}; zoom in or use /api/v1/map/communities",
            cells.len()
        )));
    }
    let counts: HashMap<String, i64> = state
        .store
        .open_incident_counts_by_cell()
        .await?
        .into_iter()
        .collect();
    let features: Vec<Value> = cells
        .iter()
        .map(|cell| {
            let code = cell.code.to_string();
            feature(
                json!({"level": "cell", "code": code, "community": cell.community_code.to_string(),
                       "street": cell.street_code.to_string(), "area_m2": cell.area_m2.round(),
                       "open_incidents": counts.get(&code).copied().unwrap_or(0)}),
                json!({"type": "Polygon", "coordinates": polygon_rings(&cell.polygon, datum)}),
            )
        })
        .collect();
    Ok((
        [(header::CONTENT_TYPE, "application/geo+json")],
        Json(json!({"type": "FeatureCollection", "features": features})),
    )
        .into_response())
}

fn parse_bbox(text: &str) -> Result<(f64, f64, f64, f64), ApiError> {
    let bad = || {
        ApiError::Invalid(format!(
            "bbox {text:?}: expected min_lon,min_lat,max_lon,max_lat in WGS-84"
        ))
    };
    let parts: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [min_lon, min_lat, max_lon, max_lat] = parts[..] else {
        return Err(bad());
    };
    if GeoPoint::new(min_lon, min_lat).is_err()
        || GeoPoint::new(max_lon, max_lat).is_err()
        || min_lon > max_lon
        || min_lat > max_lat
    {
        return Err(bad());
    }
    Ok((min_lon, min_lat, max_lon, max_lat))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PointParams {
    /// `min_lon,min_lat,max_lon,max_lat` in WGS-84; the whole world when absent.
    bbox: Option<String>,
    /// Map zoom level (0-22): below [`CLUSTER_BELOW_ZOOM`] nearby points merge into clusters.
    zoom: Option<u8>,
}

/// From this zoom level on, every point is its own feature.
const CLUSTER_BELOW_ZOOM: u8 = 16;

/// A point of a layer before clustering.
struct LayerPoint {
    lon: f64,
    lat: f64,
    properties: Value,
}

/// Merges points that fall into the same square of about 64 screen pixels at `zoom` (a grid in
/// degrees: 360° / 2^zoom is one 256-pixel tile) into one cluster feature with the count and the
/// centroid, so a wall map with tens of thousands of markers draws a few hundred.
fn clustered(points: Vec<LayerPoint>, zoom: Option<u8>) -> Value {
    let features: Vec<Value> = match zoom {
        Some(z) if z < CLUSTER_BELOW_ZOOM => {
            let size = 360.0 / f64::from(1u32 << z.min(22)) / 4.0;
            let mut buckets: std::collections::BTreeMap<(i64, i64), Vec<LayerPoint>> =
                Default::default();
            for p in points {
                buckets
                    .entry(((p.lon / size).floor() as i64, (p.lat / size).floor() as i64))
                    .or_default()
                    .push(p);
            }
            buckets
                .into_values()
                .map(|mut group| {
                    if group.len() == 1 {
                        let p = group.remove(0);
                        return point_feature(p.lon, p.lat, p.properties);
                    }
                    let n = group.len() as f64;
                    let lon = group.iter().map(|p| p.lon).sum::<f64>() / n;
                    let lat = group.iter().map(|p| p.lat).sum::<f64>() / n;
                    point_feature(lon, lat, json!({ "cluster": true, "count": group.len() }))
                })
                .collect()
        }
        _ => points
            .into_iter()
            .map(|p| point_feature(p.lon, p.lat, p.properties))
            .collect(),
    };
    json!({ "type": "FeatureCollection", "features": features })
}

fn point_feature(lon: f64, lat: f64, properties: Value) -> Value {
    feature(
        properties,
        json!({ "type": "Point", "coordinates": [lon, lat] }),
    )
}

fn in_bbox(bbox: Option<(f64, f64, f64, f64)>, lon: f64, lat: f64) -> bool {
    bbox.is_none_or(|(min_lon, min_lat, max_lon, max_lat)| {
        (min_lon..=max_lon).contains(&lon) && (min_lat..=max_lat).contains(&lat)
    })
}

/// A WGS-84 box `(min_lon, min_lat, max_lon, max_lat)`.
type Bbox = (f64, f64, f64, f64);

fn point_params(
    params: Result<Query<PointParams>, axum::extract::rejection::QueryRejection>,
) -> Result<(Option<Bbox>, Option<u8>), ApiError> {
    let Query(params) = params.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let bbox = params.bbox.as_deref().map(parse_bbox).transpose()?;
    if let Some(z) = params.zoom
        && z > 22
    {
        return Err(ApiError::Invalid(format!("zoom {z}: expected 0 to 22")));
    }
    Ok((bbox, params.zoom))
}

/// `GET /api/v1/map/incidents?bbox=…&zoom=…`: open incidents as points, clustered at low zoom.
pub(crate) async fn incidents(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<PointParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::IncidentsRead)?;
    let (bbox, zoom) = point_params(params)?;
    let mut points = Vec::new();
    let mut cursor = None;
    loop {
        let page = state
            .store
            .incidents(&cityops_store::IncidentQuery {
                state: Some(cityops_core::IncidentState::Open),
                before_id: cursor,
                limit: 1000,
                ..Default::default()
            })
            .await?;
        for i in page.items {
            if in_bbox(bbox, i.lon, i.lat) {
                points.push(LayerPoint {
                    lon: i.lon,
                    lat: i.lat,
                    properties: json!({"id": i.id, "device_id": i.device_id, "kind": i.kind,
                                       "category_code": i.category_code, "category_name_zh": i.category_name_zh,
                                       "category_name_en": i.category_name_en, "opened_at": i.opened_at}),
                });
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(Json(clustered(points, zoom)).into_response())
}

/// `GET /api/v1/map/inspectors?bbox=…&zoom=…`: inspectors with a position, clustered at low zoom.
pub(crate) async fn inspectors(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<PointParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    let (bbox, zoom) = point_params(params)?;
    let points = state
        .inspectors
        .list()
        .into_iter()
        .filter_map(|i| {
            let (lon, lat) = (i.lon?, i.lat?);
            in_bbox(bbox, lon, lat).then(|| LayerPoint {
                lon,
                lat,
                properties: json!({"id": i.id, "status": i.status, "time": i.time}),
            })
        })
        .collect();
    Ok(Json(clustered(points, zoom)).into_response())
}

/// `GET /api/v1/map/components?bbox=…&zoom=…`: components (部件) as points, clustered at low zoom.
pub(crate) async fn components(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<PointParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    let (bbox, zoom) = point_params(params)?;
    let points = state
        .components
        .read()
        .iter()
        .filter(|c| in_bbox(bbox, c.lon, c.lat))
        .map(|c| LayerPoint {
            lon: c.lon,
            lat: c.lat,
            properties: json!({"id": c.id, "category_code": c.category_code, "name": c.name,
                               "state": c.state, "owning_department": c.owning_department}),
        })
        .collect();
    Ok(Json(clustered(points, zoom)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BboxParams {
    /// `min_lon,min_lat,max_lon,max_lat` in WGS-84; the whole world when absent.
    bbox: Option<String>,
}

/// `GET /api/v1/map/geofences?bbox=…`: the fences (configured and drawn through the API) whose
/// bounding box meets the box, as `GET /api/v1/geofences` gives them.
pub(crate) async fn geofences(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<BboxParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    use geo::{BoundingRect, Intersects};
    auth.require(Permission::CasesRead)?;
    let Query(params) = params.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let bbox = params.bbox.as_deref().map(parse_bbox).transpose()?;
    let features = state.geofences.features_where(|fence| {
        bbox.is_none_or(|(min_lon, min_lat, max_lon, max_lat)| {
            let view = Rect::new(
                coord! {x: min_lon, y: min_lat},
                coord! {x: max_lon, y: max_lat},
            );
            fence
                .polygon
                .bounding_rect()
                .is_some_and(|rect| rect.intersects(&view))
        })
    });
    Ok((
        [(header::CONTENT_TYPE, "application/geo+json")],
        Json(json!({"type": "FeatureCollection", "features": features})),
    )
        .into_response())
}
