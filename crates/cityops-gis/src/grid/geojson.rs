//! The grid as one GeoJSON FeatureCollection, and reading a district boundary from GeoJSON.
//!
//! The collection carries two foreign members, `"datum"` (`"wgs84"` or `"gcj02"`) and `"division_code"`,
//! because RFC 7946 assumes WGS-84 and most grids published in China are GCJ-02. Features come district
//! first, then streets, communities and cells in code order, one per line so that diffs stay readable.
//! Every feature has the properties `level` (`district`, `street`, `community`, `cell`), `code`,
//! `parent` (absent for the district), `area_m2`, and `name` for all but cells. serde_json is enough
//! for this shape, so the crate does without a GeoJSON library.

use anyhow::{Context, Result, bail, ensure};
use geo::{Coord, LineString, MultiPolygon, Polygon};
use serde_json::{Value, json};
use std::collections::BTreeSet;

use super::code::{CellCode, CommunityCode, StreetCode, parse_division_code};
use super::{Cell, Community, Grid, Street, geodesic_area_m2};
use crate::datum::Datum;

impl Grid {
    /// Reads a grid written by [`Grid::to_geojson`] (or any file of the same shape).
    ///
    /// Checks that every code parses, belongs to the file's division, has the parent its prefix names,
    /// and appears once.
    pub fn from_geojson(text: &str) -> Result<Grid> {
        let root: Value = serde_json::from_str(text).context("the grid file is not JSON")?;
        ensure!(
            root["type"] == "FeatureCollection",
            "the grid file is not a GeoJSON FeatureCollection"
        );
        let datum = root["datum"]
            .as_str()
            .and_then(Datum::parse)
            .context("the grid file has no \"datum\" member of \"wgs84\" or \"gcj02\"")?;
        let district_code = root["division_code"]
            .as_str()
            .context("the grid file has no \"division_code\" member")?
            .to_string();
        let division = parse_division_code(&district_code)?;
        let features = root["features"]
            .as_array()
            .context("the grid file has no features array")?;

        let mut district: Option<(String, MultiPolygon<f64>)> = None;
        let (mut streets, mut communities, mut cells) = (Vec::new(), Vec::new(), Vec::new());
        let mut seen_codes = BTreeSet::new();
        for (index, feature) in features.iter().enumerate() {
            let properties = &feature["properties"];
            let code = properties["code"].as_str().unwrap_or_default();
            let context = || format!("feature {index} (code {code:?})");
            ensure!(
                seen_codes.insert(code.to_string()),
                "{}: the code appears twice",
                context()
            );
            let parent = properties["parent"].as_str().unwrap_or_default();
            let name = properties["name"].as_str().unwrap_or_default().to_string();
            let area_m2 = properties["area_m2"]
                .as_f64()
                .with_context(|| format!("{}: no area_m2", context()))?;
            let polygons = polygons_of_geometry(&feature["geometry"]).with_context(context)?;
            match properties["level"].as_str().unwrap_or_default() {
                "district" => {
                    ensure!(
                        code == district_code,
                        "{}: not the file's division_code",
                        context()
                    );
                    ensure!(
                        district.is_none(),
                        "{}: a second district feature",
                        context()
                    );
                    district = Some((name, MultiPolygon::new(polygons)));
                }
                "street" => {
                    let street = StreetCode::parse(code).with_context(context)?;
                    ensure!(
                        street.division() == division,
                        "{}: not in this division",
                        context()
                    );
                    ensure!(
                        parent == district_code,
                        "{}: parent {parent:?} is not the district",
                        context()
                    );
                    streets.push(Street {
                        code: street,
                        name,
                        polygon: MultiPolygon::new(polygons),
                        area_m2,
                    });
                }
                "community" => {
                    let community = CommunityCode::parse(code).with_context(context)?;
                    ensure!(
                        parent == community.street().to_string(),
                        "{}: parent {parent:?} is not its street",
                        context()
                    );
                    communities.push(Community {
                        code: community,
                        street_code: community.street(),
                        name,
                        polygon: MultiPolygon::new(polygons),
                        area_m2,
                    });
                }
                "cell" => {
                    let cell = CellCode::parse(code).with_context(context)?;
                    ensure!(
                        parent == cell.community().to_string(),
                        "{}: parent {parent:?} is not its community",
                        context()
                    );
                    let [polygon] = <[Polygon<f64>; 1]>::try_from(polygons).map_err(|_| {
                        anyhow::anyhow!("{}: a cell must be one polygon", context())
                    })?;
                    cells.push(Cell {
                        code: cell,
                        street_code: cell.street(),
                        community_code: cell.community(),
                        polygon,
                        area_m2,
                    });
                }
                other => bail!("{}: unknown level {other:?}", context()),
            }
        }
        let (district_name, boundary) =
            district.context("the grid file has no district feature")?;
        let street_codes: BTreeSet<StreetCode> = streets.iter().map(|s| s.code).collect();
        let community_codes: BTreeSet<CommunityCode> = communities.iter().map(|c| c.code).collect();
        for community in &communities {
            ensure!(
                street_codes.contains(&community.street_code),
                "community {} has no street feature",
                community.code
            );
        }
        for cell in &cells {
            ensure!(
                community_codes.contains(&cell.community_code),
                "cell {} has no community feature",
                cell.code
            );
        }
        streets.sort_by_key(|s| s.code);
        communities.sort_by_key(|c| c.code);
        cells.sort_by_key(|c| c.code);
        Ok(Grid {
            district_code,
            district_name,
            datum,
            boundary,
            streets,
            communities,
            cells,
        })
    }

    /// Writes the grid as a FeatureCollection, coordinates rounded to `decimals` places (6 ≈ 0.1 m) or,
    /// with `None`, exactly (shortest round-trip form). Areas are written to 0.01 m².
    pub fn to_geojson(&self, decimals: Option<u32>) -> String {
        let round = Rounding::new(decimals);
        let district = self.district_code.as_str();
        let mut lines = vec![feature_line(
            &[
                ("level", "district".into()),
                ("code", district.into()),
                ("name", self.district_name.as_str().into()),
                (
                    "area_m2",
                    round_area(geodesic_area_m2(&self.boundary, self.datum)).into(),
                ),
            ],
            &multi_polygon_json(&self.boundary, round),
        )];
        lines.extend(self.streets.iter().map(|street| {
            feature_line(
                &[
                    ("level", "street".into()),
                    ("code", street.code.to_string().into()),
                    ("name", street.name.as_str().into()),
                    ("parent", district.into()),
                    ("area_m2", round_area(street.area_m2).into()),
                ],
                &multi_polygon_json(&street.polygon, round),
            )
        }));
        lines.extend(self.communities.iter().map(|community| {
            feature_line(
                &[
                    ("level", "community".into()),
                    ("code", community.code.to_string().into()),
                    ("name", community.name.as_str().into()),
                    ("parent", community.street_code.to_string().into()),
                    ("area_m2", round_area(community.area_m2).into()),
                ],
                &multi_polygon_json(&community.polygon, round),
            )
        }));
        lines.extend(self.cells.iter().map(|cell| {
            feature_line(
                &[
                    ("level", "cell".into()),
                    ("code", cell.code.to_string().into()),
                    ("parent", cell.community_code.to_string().into()),
                    ("area_m2", round_area(cell.area_m2).into()),
                ],
                &geometry_json("Polygon", &polygon_json(&cell.polygon, round)),
            )
        }));
        let mut out = format!(
            "{{\"type\":\"FeatureCollection\",\"datum\":\"{}\",\"division_code\":{},\"features\":[\n",
            self.datum.as_str(),
            Value::from(district),
        );
        out.push_str(&lines.join(",\n"));
        out.push_str("\n]}\n");
        out
    }
}

/// Reads the polygons of a GeoJSON FeatureCollection, Feature or bare geometry as one MultiPolygon.
///
/// Meant for a district boundary such as `config/geo/dongcheng.geojson`; features without a Polygon or
/// MultiPolygon geometry are refused rather than skipped, so a wrong file does not pass as empty.
pub fn read_boundary_geojson(text: &str) -> Result<MultiPolygon<f64>> {
    let root: Value = serde_json::from_str(text).context("the boundary file is not JSON")?;
    let geometries: Vec<&Value> = match root["type"].as_str() {
        Some("FeatureCollection") => root["features"]
            .as_array()
            .context("the FeatureCollection has no features array")?
            .iter()
            .map(|feature| &feature["geometry"])
            .collect(),
        Some("Feature") => vec![&root["geometry"]],
        _ => vec![&root],
    };
    let mut polygons = Vec::new();
    for (index, geometry) in geometries.into_iter().enumerate() {
        polygons
            .extend(polygons_of_geometry(geometry).with_context(|| format!("feature {index}"))?);
    }
    ensure!(!polygons.is_empty(), "the boundary file holds no polygon");
    Ok(MultiPolygon::new(polygons))
}

/// One feature on one line, members and properties in reading order (serde_json's maps would sort them
/// and put the long geometry first).
fn feature_line(properties: &[(&str, Value)], geometry: &str) -> String {
    let properties: Vec<String> = properties
        .iter()
        .map(|(key, value)| format!("{}:{value}", Value::from(*key)))
        .collect();
    format!(
        "{{\"type\":\"Feature\",\"properties\":{{{}}},\"geometry\":{geometry}}}",
        properties.join(",")
    )
}

fn round_area(area_m2: f64) -> f64 {
    (area_m2 * 100.0).round() / 100.0
}

#[derive(Clone, Copy)]
struct Rounding {
    scale: Option<f64>,
}

impl Rounding {
    fn new(decimals: Option<u32>) -> Self {
        Self {
            scale: decimals.map(|decimals| 10f64.powi(decimals.min(12) as i32)),
        }
    }

    fn apply(self, value: f64) -> f64 {
        match self.scale {
            Some(scale) => (value * scale).round() / scale,
            None => value,
        }
    }
}

fn geometry_json(kind: &str, coordinates: &Value) -> String {
    format!("{{\"type\":\"{kind}\",\"coordinates\":{coordinates}}}")
}

fn multi_polygon_json(shape: &MultiPolygon<f64>, round: Rounding) -> String {
    let polygons: Vec<Value> = shape
        .iter()
        .map(|polygon| polygon_json(polygon, round))
        .collect();
    geometry_json("MultiPolygon", &Value::Array(polygons))
}

fn polygon_json(polygon: &Polygon<f64>, round: Rounding) -> Value {
    let ring_json = |ring: &LineString<f64>| -> Value {
        ring.coords()
            .map(|c| json!([round.apply(c.x), round.apply(c.y)]))
            .collect()
    };
    std::iter::once(polygon.exterior())
        .chain(polygon.interiors())
        .map(ring_json)
        .collect()
}

fn polygons_of_geometry(geometry: &Value) -> Result<Vec<Polygon<f64>>> {
    let coordinates = &geometry["coordinates"];
    match geometry["type"].as_str() {
        Some("Polygon") => Ok(vec![polygon_of_rings(coordinates)?]),
        Some("MultiPolygon") => coordinates
            .as_array()
            .context("MultiPolygon coordinates are not an array")?
            .iter()
            .map(polygon_of_rings)
            .collect(),
        other => bail!("expected a Polygon or MultiPolygon geometry, found {other:?}"),
    }
}

fn polygon_of_rings(rings: &Value) -> Result<Polygon<f64>> {
    let rings = rings.as_array().context("polygon rings are not an array")?;
    let mut rings = rings.iter().map(|ring| {
        let positions = ring.as_array().context("a ring is not an array")?;
        let coords = positions
            .iter()
            .map(|position| match position.as_array().map(Vec::as_slice) {
                Some([x, y, ..]) => match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) if x.is_finite() && y.is_finite() => Ok(Coord { x, y }),
                    _ => bail!("a position is not two numbers"),
                },
                _ => bail!("a position is not an array of two numbers"),
            })
            .collect::<Result<Vec<_>>>()?;
        ensure!(coords.len() >= 4, "a ring has fewer than 4 positions");
        Ok(LineString::new(coords))
    });
    let exterior = rings.next().context("a polygon has no ring")??;
    let interiors = rings.collect::<Result<Vec<_>>>()?;
    Ok(Polygon::new(exterior, interiors))
}
