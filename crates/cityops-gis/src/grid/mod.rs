//! The unit grid of one district: district → street (街道) → community (社区) → unit cell (万米单元网格).
//!
//! A cell is the smallest area with a responsible party; every case (案件) is filed against one. A real
//! city loads its official grid ([`Grid::from_geojson`]). A demo city without one gets a plausible grid
//! cut from its boundary ([`generate_grid`]). Polygons stay in the datum of the boundary they came from
//! (recorded in [`Grid::datum`]), so a grid drawn on the basemap of that datum lines up; WGS-84 device
//! positions are converted on lookup (see [`crate::GridIndex::locate_wgs84`]).

mod code;
mod generate;
mod geojson;
mod lattice;
mod partition;

pub use code::{CellCode, CodeError, CommunityCode, StreetCode, parse_division_code};
pub use generate::{GridOptions, generate_grid};
pub use geojson::read_boundary_geojson;

use crate::datum::Datum;
use geo::{MultiPolygon, Polygon};

/// One district's grid, ordered by code at every level.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// The 6-digit administrative division code, e.g. `"110101"`.
    pub district_code: String,
    /// The district's name in Chinese, e.g. `"东城区"`.
    pub district_name: String,
    /// The datum of every coordinate in this grid.
    pub datum: Datum,
    /// The district boundary the grid covers.
    pub boundary: MultiPolygon<f64>,
    pub streets: Vec<Street>,
    pub communities: Vec<Community>,
    pub cells: Vec<Cell>,
}

/// A street (街道): the union of its communities.
#[derive(Debug, Clone, PartialEq)]
pub struct Street {
    pub code: StreetCode,
    pub name: String,
    /// Several parts when the street's cells only touch at corners (or not at all).
    pub polygon: MultiPolygon<f64>,
    /// Ground area in m², the sum of its cells' areas.
    pub area_m2: f64,
}

/// A community (社区): the union of its cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Community {
    pub code: CommunityCode,
    pub street_code: StreetCode,
    pub name: String,
    /// Several parts when the community's cells only touch at corners (or not at all).
    pub polygon: MultiPolygon<f64>,
    /// Ground area in m², the sum of its cells' areas.
    pub area_m2: f64,
}

/// A unit cell (万米单元网格): about 100 m × 100 m inside the district, smaller where the boundary cuts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub code: CellCode,
    pub street_code: StreetCode,
    pub community_code: CommunityCode,
    pub polygon: Polygon<f64>,
    /// Ground area in m² (see [`geodesic_area_m2`]).
    pub area_m2: f64,
}

/// Ground area in m² of a shape given in `datum`: geodesic on the WGS-84 ellipsoid, the one area measure
/// of this crate.
///
/// GCJ-02 coordinates are converted to WGS-84 first. The GCJ-02 shift is no mere translation: one of its
/// terms has a period of 1/3° of longitude, and it stretches the map by up to a few tenths of a percent.
/// Measured on the raw GCJ-02 coordinates, 东城区 would come out about 0.05% too small.
pub fn geodesic_area_m2(shape: &MultiPolygon<f64>, datum: Datum) -> f64 {
    use geo::orient::{Direction, Orient};
    use geo::{GeodesicArea, MapCoords};
    let on_wgs84 = match datum {
        Datum::Wgs84 => shape.clone(),
        Datum::Gcj02 => shape.map_coords(|c| {
            let wgs84 = crate::datum::gcj02_to_wgs84(cityops_core::GeoPoint { lon: c.x, lat: c.y });
            geo::Coord {
                x: wgs84.lon,
                y: wgs84.lat,
            }
        }),
    };
    // The signed area of an oriented polygon is its area; its absolute value also keeps a degenerate
    // ring of either winding at zero instead of at the area of the whole earth.
    on_wgs84
        .orient(Direction::Default)
        .iter()
        .map(|polygon| polygon.geodesic_area_signed().abs())
        .sum()
}

fn polygon_area_m2(polygon: &Polygon<f64>, datum: Datum) -> f64 {
    geodesic_area_m2(&MultiPolygon::new(vec![polygon.clone()]), datum)
}
