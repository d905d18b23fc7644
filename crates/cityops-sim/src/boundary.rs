//! The city boundary the simulated devices are placed in, read from GeoJSON without a geo crate.

use anyhow::{Context, bail, ensure};
use rand::Rng;
use serde_json::Value;

/// The built-in boundary of 东城区 (see `config/geo/README.md` for its source and caveats).
const DONGCHENG_GEOJSON: &str = include_str!("../../../config/geo/dongcheng.geojson");

/// How many random points to try inside a polygon's bounding box before giving up. Dongcheng fills about
/// half of its box, so a real boundary needs a handful; only a degenerate ring could exhaust this.
const MAX_SAMPLE_ATTEMPTS: usize = 100_000;

/// One ring as a list of (lon, lat) vertices, without the repeated closing vertex.
type Ring = Vec<(f64, f64)>;

/// One polygon: its outer ring, then its holes.
#[derive(Debug, Clone, PartialEq)]
struct Polygon {
    rings: Vec<Ring>,
}

impl Polygon {
    fn outer(&self) -> &Ring {
        &self.rings[0]
    }

    /// Even-odd rule over all rings at once: a point inside the outer ring and inside a hole crosses an even
    /// number of edges in total, so holes fall out without special handling.
    fn contains(&self, lon: f64, lat: f64) -> bool {
        self.rings
            .iter()
            .filter(|ring| ring_crossings_odd(ring, lon, lat))
            .count()
            % 2
            == 1
    }

    fn bbox(&self) -> (f64, f64, f64, f64) {
        ring_bbox(self.outer())
    }

    /// Outer area minus holes, in square degrees; only used to weigh polygons against each other.
    fn area(&self) -> f64 {
        let outer = shoelace_area(self.outer());
        let holes: f64 = self.rings[1..].iter().map(shoelace_area).sum();
        (outer - holes).max(0.0)
    }
}

/// An area on the map: the polygons of a GeoJSON boundary (holes included), in lon/lat degrees.
#[derive(Debug, Clone, PartialEq)]
pub struct Boundary {
    polygons: Vec<Polygon>,
}

impl Boundary {
    /// The built-in boundary of 东城区, Beijing (simplified, most likely GCJ-02; not an official boundary).
    pub fn dongcheng() -> Boundary {
        // The file is compiled in and covered by the tests, so failing here would be a build defect.
        Boundary::from_geojson(DONGCHENG_GEOJSON)
            .expect("the built-in Dongcheng boundary is valid GeoJSON")
    }

    /// Reads every `Polygon` and `MultiPolygon` in a GeoJSON `FeatureCollection`, `Feature` or geometry
    /// (including a `GeometryCollection`). Other geometry types and null geometries are skipped; it is an
    /// error if no polygon with an area is left.
    pub fn from_geojson(text: &str) -> anyhow::Result<Boundary> {
        let root: Value = serde_json::from_str(text).context("boundary is not valid JSON")?;
        let mut polygons = Vec::new();
        collect_polygons(&root, &mut polygons)?;
        // A zero-area polygon contains nothing and could never yield a sample point, so it is dropped here.
        polygons.retain(|polygon| polygon.area() > 0.0);
        ensure!(
            !polygons.is_empty(),
            "boundary has no Polygon or MultiPolygon with an area"
        );
        Ok(Boundary { polygons })
    }

    /// Whether the point lies inside the boundary. Points exactly on an edge may go either way.
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        self.polygons
            .iter()
            .any(|polygon| polygon.contains(lon, lat))
    }

    /// The bounding box of all outer rings: `(min_lon, min_lat, max_lon, max_lat)`.
    pub fn bbox(&self) -> (f64, f64, f64, f64) {
        self.polygons.iter().map(Polygon::bbox).fold(
            (
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            ),
            |acc, b| {
                (
                    acc.0.min(b.0),
                    acc.1.min(b.1),
                    acc.2.max(b.2),
                    acc.3.max(b.3),
                )
            },
        )
    }

    /// A uniformly random point inside the boundary, as `(lon, lat)`.
    ///
    /// A polygon is picked by area first, then points are drawn from its own bounding box until one falls
    /// inside: sampling the overall box instead would waste almost every draw on a multi-part boundary
    /// whose parts lie far apart.
    pub fn random_point<R: Rng + ?Sized>(&self, rng: &mut R) -> (f64, f64) {
        let total: f64 = self.polygons.iter().map(Polygon::area).sum();
        let mut pick = rng.gen_range(0.0..total);
        let polygon = self
            .polygons
            .iter()
            .find(|polygon| {
                pick -= polygon.area();
                pick < 0.0
            })
            // Rounding can leave `pick` a hair above zero after the last polygon.
            .unwrap_or_else(|| {
                self.polygons
                    .last()
                    .expect("a boundary has at least one polygon")
            });

        let (min_lon, min_lat, max_lon, max_lat) = polygon.bbox();
        for _ in 0..MAX_SAMPLE_ATTEMPTS {
            let lon = rng.gen_range(min_lon..max_lon);
            let lat = rng.gen_range(min_lat..max_lat);
            if polygon.contains(lon, lat) {
                return (lon, lat);
            }
        }
        panic!(
            "found no point inside a boundary polygon after {MAX_SAMPLE_ATTEMPTS} tries; is it degenerate?"
        );
    }
}

/// Walks a GeoJSON object and appends the polygons it holds.
fn collect_polygons(value: &Value, out: &mut Vec<Polygon>) -> anyhow::Result<()> {
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .context("GeoJSON object has no \"type\"")?;
    match kind {
        "FeatureCollection" => {
            let features = value
                .get("features")
                .and_then(Value::as_array)
                .context("FeatureCollection has no \"features\" array")?;
            for (index, feature) in features.iter().enumerate() {
                collect_polygons(feature, out).with_context(|| format!("feature {index}"))?;
            }
        }
        "Feature" => match value.get("geometry") {
            None | Some(Value::Null) => {}
            Some(geometry) => collect_polygons(geometry, out)?,
        },
        "GeometryCollection" => {
            let geometries = value
                .get("geometries")
                .and_then(Value::as_array)
                .context("GeometryCollection has no \"geometries\" array")?;
            for geometry in geometries {
                collect_polygons(geometry, out)?;
            }
        }
        "Polygon" => out.push(parse_polygon(coordinates(value)?)?),
        "MultiPolygon" => {
            let polygons = coordinates(value)?
                .as_array()
                .context("MultiPolygon coordinates are not an array")?;
            for polygon in polygons {
                out.push(parse_polygon(polygon)?);
            }
        }
        // Points and lines carry no area: nothing to place devices in.
        "Point" | "MultiPoint" | "LineString" | "MultiLineString" => {}
        other => bail!("unknown GeoJSON type {other:?}"),
    }
    Ok(())
}

fn coordinates(geometry: &Value) -> anyhow::Result<&Value> {
    geometry
        .get("coordinates")
        .context("geometry has no \"coordinates\"")
}

fn parse_polygon(value: &Value) -> anyhow::Result<Polygon> {
    let rings = value
        .as_array()
        .context("polygon coordinates are not an array of rings")?;
    ensure!(!rings.is_empty(), "polygon has no rings");
    let rings = rings
        .iter()
        .map(parse_ring)
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Polygon { rings })
}

fn parse_ring(value: &Value) -> anyhow::Result<Ring> {
    let positions = value
        .as_array()
        .context("ring is not an array of positions")?;
    let mut ring = positions
        .iter()
        .map(|position| {
            let lon = position.get(0).and_then(Value::as_f64);
            let lat = position.get(1).and_then(Value::as_f64);
            lon.zip(lat)
                .with_context(|| format!("position {position} is not [lon, lat]"))
        })
        .collect::<anyhow::Result<Ring>>()?;
    // GeoJSON repeats the first vertex at the end; the edge walk below closes the ring itself.
    if ring.len() > 1 && ring.first() == ring.last() {
        ring.pop();
    }
    ensure!(ring.len() >= 3, "ring has fewer than 3 distinct vertices");
    Ok(ring)
}

/// Casts a ray from the point towards +lon and reports whether it crosses the ring's edges an odd number
/// of times. The half-open test on latitude counts a vertex that lies exactly on the ray only once.
fn ring_crossings_odd(ring: &Ring, lon: f64, lat: f64) -> bool {
    let mut inside = false;
    let mut previous = ring[ring.len() - 1];
    for &current in ring {
        let ((x1, y1), (x2, y2)) = (previous, current);
        if (y1 > lat) != (y2 > lat) {
            let crossing_lon = x1 + (lat - y1) * (x2 - x1) / (y2 - y1);
            if lon < crossing_lon {
                inside = !inside;
            }
        }
        previous = current;
    }
    inside
}

fn ring_bbox(ring: &Ring) -> (f64, f64, f64, f64) {
    ring.iter().fold(
        (
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ),
        |acc, &(lon, lat)| {
            (
                acc.0.min(lon),
                acc.1.min(lat),
                acc.2.max(lon),
                acc.3.max(lat),
            )
        },
    )
}

/// Unsigned area of a ring in square degrees (whichever way it winds).
fn shoelace_area(ring: &Ring) -> f64 {
    let mut twice_area = 0.0;
    let mut previous = ring[ring.len() - 1];
    for &current in ring {
        twice_area += previous.0 * current.1 - current.0 * previous.1;
        previous = current;
    }
    (twice_area / 2.0).abs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn dongcheng_contains_its_centre_but_not_xicheng_or_haidian() {
        let boundary = Boundary::dongcheng();
        assert!(boundary.contains(116.417, 39.913), "centroid of Dongcheng");
        assert!(
            boundary.contains(116.4075, 39.9055),
            "Dongdan, on Chang'an Avenue"
        );
        assert!(
            !boundary.contains(116.30, 39.90),
            "west of the city, in Haidian/Xicheng"
        );
        assert!(!boundary.contains(116.37, 39.91), "Xicheng");
        assert!(
            !boundary.contains(116.60, 39.91),
            "far east, in Chaoyang/Tongzhou"
        );
    }

    #[test]
    fn dongcheng_bbox_matches_the_data_readme() {
        let (min_lon, min_lat, max_lon, max_lat) = Boundary::dongcheng().bbox();
        assert!((min_lon - 116.377930).abs() < 1e-9);
        assert!((min_lat - 39.859375).abs() < 1e-9);
        assert!((max_lon - 116.453125).abs() < 1e-9);
        assert!((max_lat - 39.974609).abs() < 1e-9);
    }

    #[test]
    fn holes_are_respected_and_multipolygons_read() {
        // A 10x10 square with a 2x2 hole in the middle, plus a separate unit square far away.
        let text = r#"{"type":"Feature","properties":{},"geometry":{"type":"MultiPolygon","coordinates":[
            [[[0,0],[10,0],[10,10],[0,10],[0,0]],[[4,4],[6,4],[6,6],[4,6],[4,4]]],
            [[[20,20],[21,20],[21,21],[20,21],[20,20]]]
        ]}}"#;
        let boundary = Boundary::from_geojson(text).unwrap();
        assert!(boundary.contains(1.0, 1.0));
        assert!(!boundary.contains(5.0, 5.0), "inside the hole");
        assert!(boundary.contains(20.5, 20.5), "second polygon");
        assert!(!boundary.contains(15.0, 15.0));
        assert_eq!(boundary.bbox(), (0.0, 0.0, 21.0, 21.0));
    }

    #[test]
    fn plain_polygon_geometry_and_unclosed_ring_are_accepted() {
        let boundary =
            Boundary::from_geojson(r#"{"type":"Polygon","coordinates":[[[0,0],[2,0],[1,2]]]}"#)
                .unwrap();
        assert!(boundary.contains(1.0, 0.5));
        assert!(!boundary.contains(0.1, 1.9));
    }

    #[test]
    fn bad_geojson_is_refused() {
        for text in [
            "not json",
            r#"{"features":[]}"#,
            r#"{"type":"FeatureCollection","features":[]}"#,
            r#"{"type":"Point","coordinates":[116.4,39.9]}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,1]]]}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],["x",1]]]}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,1],[2,2],[0,0]]]}"#,
            r#"{"type":"Circle","coordinates":[]}"#,
        ] {
            assert!(Boundary::from_geojson(text).is_err(), "{text}");
        }
    }

    #[test]
    fn random_points_fall_inside() {
        let boundary = Boundary::dongcheng();
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..2_000 {
            let (lon, lat) = boundary.random_point(&mut rng);
            assert!(boundary.contains(lon, lat), "{lon},{lat}");
        }
    }
}
