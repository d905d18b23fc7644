//! Point → cell lookup: which unit cell, community and street a position falls in.
//!
//! An R-tree of the cells' bounding boxes narrows a query to a few candidates, then exact containment on
//! their polygons decides. A point on an edge shared by several cells goes to the one with the lowest
//! code, so every point inside the grid has exactly one answer. A point outside every cell is reported as
//! [`Location::Outside`]: it is never dropped or snapped to the nearest cell, because a case filed
//! outside the district belongs to someone else.

use cityops_core::GeoPoint;
use geo::{BoundingRect, Intersects, Point, Rect};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use serde::{Deserialize, Serialize};

use crate::datum::{Datum, from_wgs84};
use crate::grid::{Cell, CellCode, CommunityCode, Grid, StreetCode};

/// Where a point lies in the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Location {
    Inside {
        cell: CellCode,
        street: StreetCode,
        community: CommunityCode,
    },
    Outside,
}

/// The cells of one grid in an R-tree, ready for lookups. Owns copies of the cells, so it can be shared
/// (e.g. in an `Arc`) independently of the [`Grid`].
#[derive(Debug, Clone)]
pub struct GridIndex {
    datum: Datum,
    cells: Vec<Cell>,
    tree: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
}

impl GridIndex {
    pub fn new(grid: &Grid) -> Self {
        let mut cells = grid.cells.clone();
        // By code, so that the smallest index among the cells holding a point is the lowest code.
        cells.sort_by_key(|cell| cell.code);
        let boxes = cells
            .iter()
            .enumerate()
            .filter_map(|(index, cell)| {
                let rect = cell.polygon.bounding_rect()?;
                let rectangle = Rectangle::from_corners(rect.min().into(), rect.max().into());
                Some(GeomWithData::new(rectangle, index))
            })
            .collect();
        Self {
            datum: grid.datum,
            cells,
            tree: RTree::bulk_load(boxes),
        }
    }

    /// The datum of the grid, and so of the coordinates [`GridIndex::locate`] expects.
    pub fn datum(&self) -> Datum {
        self.datum
    }

    /// Locates a point given in the grid's datum. A point on a shared edge goes to the lowest code.
    pub fn locate(&self, lon: f64, lat: f64) -> Location {
        let point = Point::new(lon, lat);
        let found = self
            .tree
            .locate_all_at_point(&[lon, lat])
            .map(|candidate| candidate.data)
            .filter(|&index| self.cells[index].polygon.intersects(&point))
            .min();
        match found {
            Some(index) => {
                let cell = &self.cells[index];
                Location::Inside {
                    cell: cell.code,
                    street: cell.street_code,
                    community: cell.community_code,
                }
            }
            None => Location::Outside,
        }
    }

    /// Locates a WGS-84 position (a device's GPS fix), converting it to the grid's datum first.
    pub fn locate_wgs84(&self, point: GeoPoint) -> Location {
        let converted = from_wgs84(point, self.datum);
        self.locate(converted.lon, converted.lat)
    }

    /// The cells whose polygon meets `bbox` (in the grid's datum), by code: what a map view must draw.
    pub fn cells_in_bbox(&self, bbox: Rect<f64>) -> Vec<&Cell> {
        let envelope = AABB::from_corners(bbox.min().into(), bbox.max().into());
        let mut indices: Vec<usize> = self
            .tree
            .locate_in_envelope_intersecting(&envelope)
            .map(|candidate| candidate.data)
            .filter(|&index| self.cells[index].polygon.intersects(&bbox))
            .collect();
        indices.sort_unstable();
        indices
            .into_iter()
            .map(|index| &self.cells[index])
            .collect()
    }

    /// All cells, by code.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }
}

/// The platform-wide form of a location, as devices, incidents and cases carry it.
impl From<Location> for cityops_core::GridPlace {
    fn from(location: Location) -> Self {
        match location {
            Location::Inside {
                cell,
                street,
                community,
            } => cityops_core::GridPlace::Inside {
                cell: cell.to_string(),
                street: street.to_string(),
                community: community.to_string(),
            },
            Location::Outside => cityops_core::GridPlace::Outside,
        }
    }
}
