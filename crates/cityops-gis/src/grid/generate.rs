//! Generating a plausible grid from a district boundary: squares of about 100 m clipped to the boundary
//! (see the `lattice` module for the cutting and the merging of slivers), grouped into streets and
//! communities, numbered the Beijing way.
//!
//! Streets are compact groups of cells of nearly equal counts (recursive bisection of the cell centres),
//! and communities subdivide each street the same way. A street's or community's polygon is the unary
//! union of its cells. Cells are numbered within their community by lattice row from the north, then
//! column from the west; pieces of one square go west to east.

use anyhow::{Context, Result, bail, ensure};
use geo::orient::{Direction, Orient};
use geo::{BoundingRect, MultiPolygon, unary_union};

use super::code::{CellCode, CommunityCode, StreetCode, parse_division_code};
use super::lattice::{Lattice, METRES_PER_DEGREE_LAT};
use super::partition::{PlanePoint, bisect_into_groups, join_stray_parts};
use super::{Cell, Community, Grid, Street};
use crate::datum::Datum;

/// How to cut a district into a grid. The defaults describe 东城区 with 100 m cells.
#[derive(Debug, Clone, PartialEq)]
pub struct GridOptions {
    /// 6-digit administrative division code of the district.
    pub division_code: String,
    pub district_name: String,
    /// The datum of the boundary's coordinates, recorded in the grid.
    pub datum: Datum,
    /// Side of a full cell in metres (the 万米 of 万米单元网格: 100 m × 100 m = 10,000 m²).
    pub cell_size_m: f64,
    /// Number of streets (街道), 1..=999.
    pub streets: usize,
    /// Number of communities (社区) in each street, 1..=999.
    pub communities_per_street: usize,
}

impl Default for GridOptions {
    fn default() -> Self {
        Self {
            division_code: "110101".to_string(),
            district_name: "东城区".to_string(),
            // The sample boundary config/geo/dongcheng.geojson is GCJ-02 (see its README).
            datum: Datum::Gcj02,
            cell_size_m: 100.0,
            // 东城区 has 17 街道 and about 170 社区.
            streets: 17,
            communities_per_street: 10,
        }
    }
}

/// Cuts `boundary` into a grid. The same boundary and options always give the same grid.
///
/// Fails on invalid options, an empty boundary, or a community that would hold more than 999 cells
/// (use more streets or communities, or larger cells).
pub fn generate_grid(boundary: &MultiPolygon<f64>, options: &GridOptions) -> Result<Grid> {
    let division = parse_division_code(&options.division_code)?;
    ensure!(
        options.cell_size_m.is_finite() && options.cell_size_m >= 1.0,
        "cell size {} m is not a finite length of at least 1 m",
        options.cell_size_m
    );
    for (what, count) in [
        ("streets", options.streets),
        ("communities per street", options.communities_per_street),
    ] {
        ensure!(
            (1..=999).contains(&count),
            "{what} must be 1..=999, not {count}"
        );
    }
    let boundary = boundary.orient(Direction::Default);
    let bbox = boundary
        .bounding_rect()
        .context("the boundary has no coordinates")?;
    let lattice = Lattice::covering(bbox, options.cell_size_m, options.datum)
        .context("the boundary is too close to a pole, or too large for cells of this size")?;
    let pieces = lattice.cut(&boundary);
    ensure!(
        !pieces.is_empty(),
        "the boundary covers no cell of {} m",
        options.cell_size_m
    );

    let plane: Vec<PlanePoint> = pieces
        .iter()
        .map(|piece| PlanePoint {
            east: piece.centroid.x * lattice.metres_per_degree_lon,
            north: piece.centroid.y * METRES_PER_DEGREE_LAT,
        })
        .collect();

    let mut grid = Grid {
        district_code: options.division_code.clone(),
        district_name: options.district_name.clone(),
        datum: options.datum,
        boundary: boundary.clone(),
        streets: Vec::new(),
        communities: Vec::new(),
        cells: Vec::with_capacity(pieces.len()),
    };
    let neighbours = lattice.neighbours(&pieces);
    let mut street_groups =
        bisect_into_groups(&plane, (0..pieces.len()).collect(), options.streets);
    join_stray_parts(&mut street_groups, &neighbours);
    for (street_index, street_members) in street_groups.into_iter().enumerate() {
        let street_code = StreetCode::new(division, street_index as u16 + 1)?;
        let first_cell_of_street = grid.cells.len();
        let mut community_groups =
            bisect_into_groups(&plane, street_members, options.communities_per_street);
        join_stray_parts(&mut community_groups, &neighbours);
        for (community_index, mut members) in community_groups.into_iter().enumerate() {
            let community_code = CommunityCode::new(street_code, community_index as u16 + 1)?;
            if members.len() > 999 {
                bail!(
                    "community {community_code} would hold {} cells, more than the 999 a 3-digit \
                     sequence can number; use more streets or communities, or larger cells",
                    members.len()
                );
            }
            // Rows from the north, then columns from the west; pieces of one square west to east.
            members.sort_by(|&a, &b| {
                let (pa, pb) = (&pieces[a], &pieces[b]);
                (pa.row, pa.col)
                    .cmp(&(pb.row, pb.col))
                    .then(pa.centroid.x.total_cmp(&pb.centroid.x))
                    .then(pb.centroid.y.total_cmp(&pa.centroid.y))
            });
            let first_cell_of_community = grid.cells.len();
            for (sequence_index, &member) in members.iter().enumerate() {
                let piece = &pieces[member];
                grid.cells.push(Cell {
                    code: CellCode::new(community_code, sequence_index as u16 + 1)?,
                    street_code,
                    community_code,
                    polygon: piece.polygon.clone(),
                    area_m2: piece.area_m2,
                });
            }
            let cells = &grid.cells[first_cell_of_community..];
            grid.communities.push(Community {
                code: community_code,
                street_code,
                name: format!("示例社区{:03}-{:03}", street_index + 1, community_index + 1),
                polygon: union_of_cells(cells),
                area_m2: cells.iter().map(|cell| cell.area_m2).sum(),
            });
        }
        let cells = &grid.cells[first_cell_of_street..];
        grid.streets.push(Street {
            code: street_code,
            name: format!("示例街道{:03}", street_index + 1),
            polygon: union_of_cells(cells),
            area_m2: cells.iter().map(|cell| cell.area_m2).sum(),
        });
    }
    Ok(grid)
}

fn union_of_cells(cells: &[Cell]) -> MultiPolygon<f64> {
    unary_union(cells.iter().map(|cell| &cell.polygon)).orient(Direction::Default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Coord, Rect};

    #[test]
    fn bad_options_are_refused() {
        let square = MultiPolygon::new(vec![
            Rect::new(
                Coord { x: 116.4, y: 39.9 },
                Coord {
                    x: 116.41,
                    y: 39.91,
                },
            )
            .to_polygon(),
        ]);
        let with = |change: fn(&mut GridOptions)| {
            let mut options = GridOptions::default();
            change(&mut options);
            generate_grid(&square, &options)
        };
        assert!(with(|o| o.division_code = "11010".into()).is_err());
        assert!(with(|o| o.cell_size_m = 0.0).is_err());
        assert!(with(|o| o.cell_size_m = f64::NAN).is_err());
        assert!(with(|o| o.streets = 0).is_err());
        assert!(with(|o| o.communities_per_street = 1000).is_err());
        let too_many = with(|o| {
            o.streets = 1;
            o.communities_per_street = 1;
            o.cell_size_m = 10.0;
        });
        assert!(too_many.unwrap_err().to_string().contains("999"));
        assert!(generate_grid(&MultiPolygon::new(vec![]), &GridOptions::default()).is_err());
    }
}
