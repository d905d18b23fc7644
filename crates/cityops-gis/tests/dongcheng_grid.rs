//! The real 东城区 boundary: coverage, overlaps, areas, numbering and lookup of the generated grid, and
//! the checked-in config/geo/dongcheng-grid.geojson being exactly what the generator makes.

use cityops_core::GeoPoint;
use cityops_gis::datum::gcj02_to_wgs84;
use cityops_gis::grid::geodesic_area_m2;
use cityops_gis::{
    Cell, CellCode, Datum, Grid, GridIndex, GridOptions, Location, generate_grid,
    read_boundary_geojson,
};
use geo::{
    Area, BooleanOps, BoundingRect, Centroid, Contains, Coord, Intersects, MapCoords, MultiPolygon,
    Point, Rect,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::OnceLock;

const BOUNDARY: &str = include_str!("../../../config/geo/dongcheng.geojson");
const GRID_FILE: &str = include_str!("../../../config/geo/dongcheng-grid.geojson");
const METRES_PER_DEGREE_LAT: f64 = 111_320.0;

fn boundary() -> &'static MultiPolygon<f64> {
    static BOUNDARY_SHAPE: OnceLock<MultiPolygon<f64>> = OnceLock::new();
    BOUNDARY_SHAPE.get_or_init(|| read_boundary_geojson(BOUNDARY).unwrap())
}

fn grid() -> &'static Grid {
    static GRID: OnceLock<Grid> = OnceLock::new();
    GRID.get_or_init(|| generate_grid(boundary(), &GridOptions::default()).unwrap())
}

fn index() -> &'static GridIndex {
    static INDEX: OnceLock<GridIndex> = OnceLock::new();
    INDEX.get_or_init(|| GridIndex::new(grid()))
}

/// Ground area of a GCJ-02 shape, the measure of the cells' `area_m2`.
fn area_m2(shape: &MultiPolygon<f64>) -> f64 {
    geodesic_area_m2(shape, Datum::Gcj02)
}

/// What `locate` must answer, by scanning every cell.
fn locate_by_scan(lon: f64, lat: f64) -> Location {
    let point = Point::new(lon, lat);
    grid()
        .cells
        .iter()
        .filter(|cell| cell.polygon.intersects(&point))
        .map(|cell| cell.code)
        .min()
        .map_or(Location::Outside, |cell| Location::Inside {
            cell,
            street: cell.street(),
            community: cell.community(),
        })
}

fn bbox() -> Rect<f64> {
    boundary().bounding_rect().unwrap()
}

#[test]
fn checked_in_grid_file_is_what_the_generator_makes() {
    let fresh = grid().to_geojson(Some(6));
    assert!(
        fresh == GRID_FILE,
        "config/geo/dongcheng-grid.geojson is stale: run \
         `cargo run -p cityops-gis --example generate_dongcheng --release`"
    );
    let read = Grid::from_geojson(GRID_FILE).unwrap();
    assert_eq!(read.cells.len(), grid().cells.len());
    assert_eq!(read.district_code, "110101");
    assert_eq!(read.datum, Datum::Gcj02);
    // Rounding to 6 decimals (≈ 0.1 m) left every shape valid: no cell is thin enough to collapse.
    use geo::algorithm::Validation;
    for cell in &read.cells {
        assert!(
            cell.polygon.is_valid(),
            "{}: {:?}",
            cell.code,
            cell.polygon.validation_errors()
        );
    }
    for community in &read.communities {
        assert!(community.polygon.is_valid(), "{}", community.code);
    }
    for street in &read.streets {
        assert!(street.polygon.is_valid(), "{}", street.code);
    }
    assert!(read.boundary.is_valid());
}

#[test]
fn hierarchy_has_17_streets_170_communities_and_about_4200_cells() {
    let grid = grid();
    assert_eq!(grid.streets.len(), 17);
    assert_eq!(grid.communities.len(), 170);
    assert!(
        (4_000..4_600).contains(&grid.cells.len()),
        "{} cells",
        grid.cells.len()
    );
    let mut per_community: BTreeMap<_, Vec<&Cell>> = BTreeMap::new();
    for cell in &grid.cells {
        assert_eq!(cell.street_code, cell.code.street());
        assert_eq!(cell.community_code, cell.code.community());
        per_community
            .entry(cell.community_code)
            .or_default()
            .push(cell);
    }
    assert_eq!(per_community.len(), 170);
    for (community, cells) in &per_community {
        let sequences: Vec<u16> = cells.iter().map(|cell| cell.code.sequence()).collect();
        assert_eq!(
            sequences,
            (1..=cells.len() as u16).collect::<Vec<_>>(),
            "{community}"
        );
    }
    let codes: Vec<CellCode> = grid.cells.iter().map(|cell| cell.code).collect();
    assert!(
        codes.windows(2).all(|pair| pair[0] < pair[1]),
        "cells are not in code order"
    );
    for street in &grid.streets {
        let communities: f64 = grid
            .communities
            .iter()
            .filter(|c| c.street_code == street.code)
            .map(|c| c.area_m2)
            .sum();
        assert!(
            (communities - street.area_m2).abs() < 1e-3,
            "{}",
            street.code
        );
        // The union drew every cell in, and nothing else. Compared in plane degrees², where area is
        // exactly additive (up to the overlay engine rounding, ~1e-9): geodesic areas of a union with kilometre-long edges differ from the sum of
        // its 100 m cells by up to ~1e-4, because geodesics and the GCJ-02 shift bend long edges.
        let cells: f64 = grid
            .cells
            .iter()
            .filter(|cell| cell.street_code == street.code)
            .map(|cell| cell.polygon.unsigned_area())
            .sum();
        let union = street.polygon.unsigned_area();
        assert!(
            (union - cells).abs() < 1e-7 * cells,
            "{}: {union} vs {cells}",
            street.code
        );
        assert!((area_m2(&street.polygon) - street.area_m2).abs() < 2e-4 * street.area_m2);
    }
    // Streets and communities are connected (one polygon each) and of comparable size.
    for street in &grid.streets {
        assert_eq!(
            street.polygon.0.len(),
            1,
            "street {} is in pieces",
            street.code
        );
    }
    for community in &grid.communities {
        assert_eq!(
            community.polygon.0.len(),
            1,
            "community {} is in pieces",
            community.code
        );
    }
    let sizes: Vec<usize> = per_community.values().map(Vec::len).collect();
    let (smallest, largest) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    assert!(
        *smallest >= 10 && *largest <= 60,
        "communities hold {smallest}..={largest} cells"
    );
    // Clipped cells are at least a tenth of a full cell: smaller pieces were merged into neighbours.
    for cell in &grid.cells {
        assert!(
            (1_000.0..=20_000.0).contains(&cell.area_m2),
            "{} has {} m²",
            cell.code,
            cell.area_m2
        );
    }
}

#[test]
fn cell_areas_add_up_to_the_boundary_within_half_a_percent() {
    let boundary_area = area_m2(boundary());
    assert!((41.7e6..41.9e6).contains(&boundary_area), "{boundary_area}");
    let cells_area: f64 = grid().cells.iter().map(|cell| cell.area_m2).sum();
    let error = (cells_area - boundary_area).abs() / boundary_area;
    assert!(
        error < 0.005,
        "cells {cells_area} m² vs boundary {boundary_area} m²"
    );
    // In fact the grid covers the boundary to a few square metres.
    assert!(
        (cells_area - boundary_area).abs() < 100.0,
        "{cells_area} vs {boundary_area}"
    );
}

#[test]
fn every_cell_lies_inside_the_boundary() {
    for cell in &grid().cells {
        let outside = cell.polygon.difference(boundary());
        assert!(
            area_m2(&outside) < 0.1,
            "{} sticks out by {} m²",
            cell.code,
            area_m2(&outside)
        );
    }
}

#[test]
fn cells_are_numbered_west_to_east_within_a_row_and_rows_north_to_south() {
    // The lattice as documented: anchored at the boundary's north-west corner, scaled at mid-latitude.
    let bbox = bbox();
    let middle = (bbox.min().y + bbox.max().y) / 2.0;
    let step_lat = 100.0 / METRES_PER_DEGREE_LAT;
    let step_lon = 100.0 / (METRES_PER_DEGREE_LAT * middle.to_radians().cos());
    // A cell's square is the one holding most of its area (a merged sliver is under a tenth of a square).
    let square_of = |cell: &Cell| -> (i64, i64) {
        let cell_box = cell.polygon.bounding_rect().unwrap();
        let first_row = ((bbox.max().y - cell_box.max().y) / step_lat).floor() as i64;
        let first_col = ((cell_box.min().x - bbox.min().x) / step_lon).floor() as i64;
        let mut best = (f64::MIN, (0, 0));
        for row in first_row..first_row + 3 {
            for col in first_col..first_col + 3 {
                let square = Rect::new(
                    Coord {
                        x: bbox.min().x + col as f64 * step_lon,
                        y: bbox.max().y - (row + 1) as f64 * step_lat,
                    },
                    Coord {
                        x: bbox.min().x + (col + 1) as f64 * step_lon,
                        y: bbox.max().y - row as f64 * step_lat,
                    },
                );
                if !square.intersects(&cell_box) {
                    continue;
                }
                let overlap = area_m2(&cell.polygon.intersection(&square.to_polygon()));
                if overlap > best.0 {
                    best = (overlap, (row, col));
                }
            }
        }
        best.1
    };
    let mut previous: Option<(&Cell, (i64, i64))> = None;
    for cell in &grid().cells {
        let square = square_of(cell);
        if let Some((before, before_square)) =
            previous.filter(|(before, _)| before.community_code == cell.community_code)
        {
            assert!(
                before_square <= square,
                "{} at (row, col) {before_square:?} is numbered before {} at {square:?}",
                before.code,
                cell.code
            );
        }
        previous = Some((cell, square));
    }
}

#[test]
fn areas_are_measured_on_the_ground_not_on_the_gcj02_coordinates() {
    let wgs84 = boundary().map_coords(|c| {
        let p = gcj02_to_wgs84(GeoPoint { lon: c.x, lat: c.y });
        Coord { x: p.lon, y: p.lat }
    });
    let ground = geodesic_area_m2(&wgs84, Datum::Wgs84);
    assert_eq!(area_m2(boundary()), ground);
    // Taken as if they were WGS-84, the GCJ-02 coordinates would understate the area by about 0.05%:
    // 41.824 km² (the figure in the data README) instead of 41.846 km² (officially about 41.84 km²).
    let raw = geodesic_area_m2(boundary(), Datum::Wgs84);
    let relative = (raw - ground) / ground;
    assert!((-1e-3..-2e-4).contains(&relative), "{relative}");
    assert!((41.84e6..41.85e6).contains(&ground), "{ground}");
}

#[test]
fn known_places_are_located_in_the_datum_of_the_grid() {
    let index = index();
    // 天安门 (WGS-84 116.3912757, 39.906217) is in 东城区 just east of the 西城区 border; this boundary
    // is GCJ-02, so the raw WGS-84 pair falls ~560 m south-west, outside, and only the converted one is in.
    let tiananmen = GeoPoint::new(116.391_275_7, 39.906_217).unwrap();
    assert!(matches!(
        index.locate_wgs84(tiananmen),
        Location::Inside { .. }
    ));
    assert_eq!(
        index.locate(tiananmen.lon, tiananmen.lat),
        Location::Outside
    );
    // The centroid of the district, and 西城区 (Xicheng) west of it.
    let centre = boundary().centroid().unwrap();
    assert!(matches!(
        index.locate(centre.x(), centre.y()),
        Location::Inside { .. }
    ));
    assert_eq!(index.locate(116.366, 39.912), Location::Outside);
    assert_eq!(index.locate(116.2, 39.9), Location::Outside);
}

#[test]
fn neighbours_from_the_r_tree_overlap_by_nothing() {
    let index = index();
    let cells = grid().cells.len();
    // Every cell against every cell its bounding box touches (edge and corner neighbours).
    for cell in &grid().cells {
        let neighbours = index.cells_in_bbox(cell.polygon.bounding_rect().unwrap());
        assert!(neighbours.iter().any(|n| n.code == cell.code));
        assert!(
            neighbours.len() <= 12,
            "{} has {} neighbours of {cells}",
            cell.code,
            neighbours.len()
        );
        for neighbour in neighbours.into_iter().filter(|n| n.code != cell.code) {
            let overlap = area_m2(&cell.polygon.intersection(&neighbour.polygon));
            assert!(
                overlap < 0.01,
                "{} and {} overlap by {overlap} m²",
                cell.code,
                neighbour.code
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn locate_agrees_with_a_scan_of_every_cell(fx in -0.05..1.05f64, fy in -0.05..1.05f64) {
        let bbox = bbox();
        let (lon, lat) = (bbox.min().x + fx * bbox.width(), bbox.min().y + fy * bbox.height());
        let found = index().locate(lon, lat);
        prop_assert_eq!(found, locate_by_scan(lon, lat));
        // No gaps and no spill: inside the boundary means inside a cell, outside means outside.
        let point = Point::new(lon, lat);
        if boundary().contains(&point) {
            prop_assert!(matches!(found, Location::Inside { .. }), "({}, {}) fell in a gap", lon, lat);
        } else if !boundary().intersects(&point) {
            prop_assert_eq!(found, Location::Outside);
        }
    }

    #[test]
    fn points_on_cell_corners_have_one_answer_the_scan_agrees_with(pick in 0usize..100_000, corner in 0usize..4) {
        // Lattice corners are where most cells meet: the lowest code must win, every time.
        let cell = &grid().cells[pick % grid().cells.len()];
        let coords = &cell.polygon.exterior().0;
        let at = coords[corner % (coords.len() - 1)];
        prop_assert_eq!(index().locate(at.x, at.y), locate_by_scan(at.x, at.y));
        let inside = matches!(index().locate(at.x, at.y), Location::Inside { .. });
        prop_assert!(inside, "corner ({}, {}) of {} is outside", at.x, at.y, cell.code);
    }

    #[test]
    fn bbox_query_matches_a_scan(fx in 0.0..1.0f64, fy in 0.0..1.0f64, w in 0.0..0.05f64, h in 0.0..0.05f64) {
        let bbox = bbox();
        let min = Coord { x: bbox.min().x + fx * bbox.width(), y: bbox.min().y + fy * bbox.height() };
        let rect = Rect::new(min, Coord { x: min.x + w * bbox.width(), y: min.y + h * bbox.height() });
        let found: Vec<CellCode> = index().cells_in_bbox(rect).iter().map(|cell| cell.code).collect();
        let scanned: Vec<CellCode> =
            grid().cells.iter().filter(|cell| cell.polygon.intersects(&rect)).map(|cell| cell.code).collect();
        prop_assert_eq!(found, scanned);
    }
}
