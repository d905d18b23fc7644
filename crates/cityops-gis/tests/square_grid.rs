//! A hand-made 300 m × 200 m rectangle: six cells whose codes, areas and lookups are known exactly.

use cityops_gis::{
    CellCode, Datum, Grid, GridIndex, GridOptions, Location, generate_grid, grid::geodesic_area_m2,
};
use geo::{BoundingRect, Centroid, Coord, MultiPolygon, Polygon, Rect};

const METRES_PER_DEGREE_LAT: f64 = 111_320.0;

/// Three lattice columns by two rows: the lattice is anchored at the north-west corner and scaled at
/// the middle latitude, so a rectangle built the same way holds exactly six full squares.
fn rectangle() -> MultiPolygon<f64> {
    let (west, south) = (116.40, 39.90);
    let north = south + 2.0 * 100.0 / METRES_PER_DEGREE_LAT;
    let middle = (south + north) / 2.0;
    let east = west + 3.0 * 100.0 / (METRES_PER_DEGREE_LAT * middle.to_radians().cos());
    MultiPolygon::new(vec![
        Rect::new(Coord { x: west, y: south }, Coord { x: east, y: north }).to_polygon(),
    ])
}

fn grid_with(streets: usize, communities_per_street: usize) -> Grid {
    let options = GridOptions {
        streets,
        communities_per_street,
        datum: Datum::Wgs84,
        ..GridOptions::default()
    };
    generate_grid(&rectangle(), &options).unwrap()
}

fn code(text: &str) -> CellCode {
    CellCode::parse(text).unwrap()
}

/// The cell's centre as (column from the west, row from the north), in whole squares.
fn square_of(polygon: &Polygon<f64>) -> (i64, i64) {
    let bbox = rectangle().bounding_rect().unwrap();
    let centre = polygon.centroid().unwrap();
    let col = (centre.x() - bbox.min().x) / bbox.width() * 3.0;
    let row = (bbox.max().y - centre.y()) / bbox.height() * 2.0;
    (col.floor() as i64, row.floor() as i64)
}

#[test]
fn one_community_numbers_six_cells_west_to_east_then_north_to_south() {
    let grid = grid_with(1, 1);
    let codes: Vec<String> = grid
        .cells
        .iter()
        .map(|cell| cell.code.to_string())
        .collect();
    assert_eq!(
        codes,
        [
            "110101001001001",
            "110101001001002",
            "110101001001003",
            "110101001001004",
            "110101001001005",
            "110101001001006"
        ]
    );
    let squares: Vec<(i64, i64)> = grid
        .cells
        .iter()
        .map(|cell| square_of(&cell.polygon))
        .collect();
    assert_eq!(squares, [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]);
    for cell in &grid.cells {
        // 1° ≈ 111,320 m is the equatorial degree; on the ellipsoid at 40° N the cell is ~0.1% smaller.
        assert!(
            (cell.area_m2 - 10_000.0).abs() < 20.0,
            "{} has {} m²",
            cell.code,
            cell.area_m2
        );
        assert_eq!(
            cell.polygon.exterior().0.len(),
            5,
            "{} is not an unclipped square",
            cell.code
        );
    }
    assert_eq!(grid.streets.len(), 1);
    assert_eq!(grid.communities.len(), 1);
    assert_eq!(grid.streets[0].code.to_string(), "110101001");
    assert_eq!(grid.communities[0].code.to_string(), "110101001001");
    // The union of the six squares is the rectangle again.
    assert_eq!(grid.communities[0].polygon.0.len(), 1);
    let union_area = geodesic_area_m2(&grid.communities[0].polygon, Datum::Wgs84);
    assert!(
        (union_area - geodesic_area_m2(&rectangle(), Datum::Wgs84)).abs() < 0.01,
        "{union_area}"
    );
}

#[test]
fn two_streets_split_west_from_east_and_number_within_each_community() {
    let grid = grid_with(2, 1);
    let by_code = |text: &str| {
        grid.cells
            .iter()
            .find(|cell| cell.code == code(text))
            .unwrap()
    };
    // The rectangle is wider than tall, so the first cut is west | east with three cells each.
    assert_eq!(square_of(&by_code("110101001001001").polygon), (0, 0));
    assert_eq!(square_of(&by_code("110101001001002").polygon), (1, 0));
    assert_eq!(square_of(&by_code("110101001001003").polygon), (0, 1));
    assert_eq!(square_of(&by_code("110101002001001").polygon), (2, 0));
    assert_eq!(square_of(&by_code("110101002001002").polygon), (1, 1));
    assert_eq!(square_of(&by_code("110101002001003").polygon), (2, 1));
    assert_eq!(grid.cells.len(), 6);
    assert_eq!(grid.streets[1].name, "示例街道002");
    assert_eq!(grid.communities[1].name, "示例社区002-001");
    for street in &grid.streets {
        assert!(
            (street.area_m2 - 30_000.0).abs() < 60.0,
            "{}",
            street.area_m2
        );
    }
}

#[test]
fn lookup_is_exact_on_edges_corners_and_outside() {
    let grid = grid_with(1, 1);
    let index = GridIndex::new(&grid);
    let first = grid.cells[0].polygon.bounding_rect().unwrap();
    let sixth = grid.cells[5].polygon.bounding_rect().unwrap();
    let inside = |text: &str| Location::Inside {
        cell: code(text),
        street: code(text).street(),
        community: code(text).community(),
    };
    for cell in &grid.cells {
        let centre = cell.polygon.centroid().unwrap();
        assert_eq!(
            index.locate(centre.x(), centre.y()),
            inside(&cell.code.to_string())
        );
    }
    // The edge between 001 and 002, and the corner of 001, 002, 004 and 005: the lowest code wins.
    let middle_of_first = first.center();
    assert_eq!(
        index.locate(first.max().x, middle_of_first.y),
        inside("110101001001001")
    );
    assert_eq!(
        index.locate(first.max().x, first.min().y),
        inside("110101001001001")
    );
    // The district's own outline belongs to the cells along it; a hair outside does not.
    assert_eq!(
        index.locate(sixth.max().x, sixth.min().y),
        inside("110101001001006")
    );
    assert_eq!(
        index.locate(sixth.max().x + 1e-9, sixth.min().y),
        Location::Outside
    );
    assert_eq!(
        index.locate(first.min().x, first.max().y + 1e-9),
        Location::Outside
    );
    assert_eq!(index.locate(0.0, 0.0), Location::Outside);
    assert_eq!(index.locate(f64::NAN, 39.9), Location::Outside);
    let json = serde_json::to_value(index.locate(middle_of_first.x, middle_of_first.y)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"status": "inside", "cell": "110101001001001",
                           "street": "110101001", "community": "110101001001"})
    );
    assert_eq!(
        serde_json::from_value::<Location>(json).unwrap(),
        inside("110101001001001")
    );
    assert_eq!(
        serde_json::to_value(Location::Outside).unwrap(),
        serde_json::json!({"status": "outside"})
    );
}

#[test]
fn bbox_query_returns_the_cells_it_touches_by_code() {
    let grid = grid_with(1, 1);
    let index = GridIndex::new(&grid);
    let first = grid.cells[0].polygon.bounding_rect().unwrap();
    let codes = |rect: Rect<f64>| -> Vec<String> {
        index
            .cells_in_bbox(rect)
            .iter()
            .map(|cell| cell.code.to_string())
            .collect()
    };
    let inside_first = Rect::new(
        first.center(),
        Coord {
            x: first.center().x + 1e-5,
            y: first.center().y + 1e-5,
        },
    );
    assert_eq!(codes(inside_first), ["110101001001001"]);
    // A box over the corner shared by 001, 002, 004 and 005.
    let corner = Coord {
        x: first.max().x,
        y: first.min().y,
    };
    let around_corner = Rect::new(
        Coord {
            x: corner.x - 1e-5,
            y: corner.y - 1e-5,
        },
        Coord {
            x: corner.x + 1e-5,
            y: corner.y + 1e-5,
        },
    );
    assert_eq!(
        codes(around_corner),
        [
            "110101001001001",
            "110101001001002",
            "110101001001004",
            "110101001001005"
        ]
    );
    assert_eq!(codes(grid.boundary.bounding_rect().unwrap()).len(), 6);
    assert!(
        codes(Rect::new(
            Coord { x: 0.0, y: 0.0 },
            Coord { x: 1.0, y: 1.0 }
        ))
        .is_empty()
    );
}

/// Whether two shapes have the same coordinates to within `tolerance` degrees.
fn same_coords<'a>(
    a: impl IntoIterator<Item = &'a Coord<f64>>,
    b: impl IntoIterator<Item = &'a Coord<f64>>,
    tolerance: f64,
) -> bool {
    let (a, b): (Vec<_>, Vec<_>) = (a.into_iter().collect(), b.into_iter().collect());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(a, b)| (a.x - b.x).abs() <= tolerance && (a.y - b.y).abs() <= tolerance)
}

#[test]
fn geojson_round_trip_keeps_the_grid() {
    use geo::CoordsIter;
    let grid = grid_with(2, 2);
    let text = grid.to_geojson(None);
    assert!(text.starts_with(
        r#"{"type":"FeatureCollection","datum":"wgs84","division_code":"110101","features":["#
    ));
    // One feature per line, properties first: the district, the streets, the communities and 6 cells.
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with(r#"{"type":"Feature","properties":{"level":"#))
        .collect();
    assert_eq!(
        lines.len(),
        1 + grid.streets.len() + grid.communities.len() + 6
    );
    assert!(lines[1].starts_with(r#"{"type":"Feature","properties":{"level":"street","code":"110101001","name":"示例街道001","parent":"110101","area_m2":"#));
    let read = Grid::from_geojson(&text).unwrap();
    assert_eq!(
        (
            read.datum,
            read.district_name.as_str(),
            read.district_code.as_str()
        ),
        (Datum::Wgs84, "东城区", "110101")
    );
    // Written in shortest round-trip form; serde_json's default float parser may still be one ulp off.
    let ulp = 1e-13;
    assert!(same_coords(
        read.boundary.coords_iter().collect::<Vec<_>>().iter(),
        grid.boundary.coords_iter().collect::<Vec<_>>().iter(),
        ulp
    ));
    assert_eq!(read.cells.len(), grid.cells.len());
    for (read, written) in read.cells.iter().zip(&grid.cells) {
        assert_eq!(
            (read.code, read.street_code, read.community_code),
            (written.code, written.street_code, written.community_code)
        );
        assert!(same_coords(
            read.polygon.exterior().coords(),
            written.polygon.exterior().coords(),
            ulp
        ));
        assert!((read.area_m2 - written.area_m2).abs() <= 0.005);
    }
    assert_eq!(read.communities.len(), grid.communities.len());
    for (read, written) in read.communities.iter().zip(&grid.communities) {
        assert_eq!(
            (read.code, read.street_code, &read.name),
            (written.code, written.street_code, &written.name)
        );
        assert!(same_coords(
            read.polygon.coords_iter().collect::<Vec<_>>().iter(),
            written.polygon.coords_iter().collect::<Vec<_>>().iter(),
            ulp
        ));
    }
    assert_eq!(read.streets.len(), grid.streets.len());
    for (read, written) in read.streets.iter().zip(&grid.streets) {
        assert_eq!((read.code, &read.name), (written.code, &written.name));
        assert!((read.area_m2 - written.area_m2).abs() <= 0.005);
    }
    // Rounded to 6 decimals, coordinates move by at most half a micro-degree (≈ 5 cm).
    let rounded = Grid::from_geojson(&grid.to_geojson(Some(6))).unwrap();
    for (read, written) in rounded.cells.iter().zip(&grid.cells) {
        assert!(same_coords(
            read.polygon.exterior().coords(),
            written.polygon.exterior().coords(),
            5e-7 + ulp
        ));
    }
}

#[test]
fn malformed_grid_files_are_refused_with_the_reason() {
    let text = grid_with(1, 1).to_geojson(Some(6));
    let refused = |broken: String, reason: &str| {
        let error = format!("{:#}", Grid::from_geojson(&broken).unwrap_err());
        assert!(
            error.contains(reason),
            "{error:?} does not mention {reason:?}"
        );
    };
    refused(text.replace(r#""datum":"wgs84","#, ""), "datum");
    refused(
        text.replace(r#""datum":"wgs84""#, r#""datum":"bd09""#),
        "datum",
    );
    refused(
        text.replace(r#""code":"110101001001006""#, r#""code":"110101001001000""#),
        "001..=999",
    );
    refused(
        text.replace(r#""code":"110101001001006""#, r#""code":"110101001001005""#),
        "twice",
    );
    refused(
        text.replace(r#""parent":"110101001001""#, r#""parent":"110101001002""#),
        "not its community",
    );
    refused(
        text.replace(r#""level":"cell""#, r#""level":"block""#),
        "unknown level",
    );
    refused(
        text.replace(r#""division_code":"110101""#, r#""division_code":"110102""#),
        "division_code",
    );
    refused("[1, 2]".to_string(), "FeatureCollection");
    refused(
        text.replace(r#""type":"Polygon""#, r#""type":"Point""#),
        "Polygon",
    );
}
