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
