//! Cutting a boundary into lattice squares of about `cell_size_m`: the raw cells, before any codes.
//!
//! The lattice is anchored at the north-west corner of the boundary's bounding box. Its metre-to-degree
//! scale is taken at the box's middle latitude (1° lat ≈ 111,320 m, 1° lon ≈ 111,320·cos φ). Lattice line
//! `k` is always computed by the same expression, so neighbouring squares share their edges bit for bit.
//!
//! A square that no boundary edge touches is kept whole or dropped by its centre. A square that an edge
//! crosses is clipped with BooleanOps. The overlay engine rounds to an integer grid inside, so clipped
//! coordinates within ≈ 0.1 mm of a lattice line are snapped back onto it. Where the boundary cuts a
//! square into several pieces, each piece is a cell of its own.
//!
//! A piece smaller than a tenth of a full square is no workable unit: someone must patrol it, and a
//! 4 m² triangle would also degenerate when coordinates are rounded for a file. Such a piece is merged
//! into the neighbouring piece with which it shares the longest edge. A small piece that shares no edge
//! with any large piece stays a cell of its own, unless it is under [`DROP_BELOW_M2`] (1 m²). Nobody
//! could be responsible for something that small, and those pieces add up to far less than 0.01% of a
//! district.

use geo::orient::{Direction, Orient};
use geo::{
    BooleanOps, BoundingRect, Centroid, Contains, Coord, Intersects, Line, LineString, LinesIter,
    MultiPolygon, Polygon, Rect,
};
use rstar::{AABB, RTree};
use std::collections::BTreeMap;

use super::polygon_area_m2;
use crate::datum::Datum;

/// A piece of a clipped square this small (m²) is dropped when it cannot be merged into a neighbour.
pub(crate) const DROP_BELOW_M2: f64 = 1.0;
/// (vertical?, line index) → (from, to, piece) for every piece edge lying on that lattice line.
type EdgesOnLatticeLines = BTreeMap<(bool, i64), Vec<(f64, f64, usize)>>;
/// Edges on one lattice line overlapping by less than this (≈ 1 mm) only touch at a corner.
const SHARED_EDGE_MIN_DEGREES: f64 = 1e-8;
/// Metres in one degree of latitude (and of longitude at the equator), the scale of the lattice.
pub(crate) const METRES_PER_DEGREE_LAT: f64 = 111_320.0;

/// The squares: lines of longitude `west + col·step_lon` and of latitude `north − row·step_lat`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Lattice {
    pub west: f64,
    pub north: f64,
    pub step_lon: f64,
    pub step_lat: f64,
    pub rows: usize,
    pub cols: usize,
    pub metres_per_degree_lon: f64,
    /// The datum of the boundary, needed to measure ground areas.
    pub datum: Datum,
}

/// A cell before it is given a code: its lattice square (row from the north, column from the west) and
/// its shape. A merged piece keeps the square of the large piece it was merged into.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub row: usize,
    pub col: usize,
    pub polygon: Polygon<f64>,
    pub centroid: Coord<f64>,
    pub area_m2: f64,
}

impl Lattice {
    /// The lattice over `bbox`, or `None` when it is too close to a pole or would be absurdly large.
    pub fn covering(bbox: Rect<f64>, cell_size_m: f64, datum: Datum) -> Option<Self> {
        let middle_latitude = (bbox.min().y + bbox.max().y) / 2.0;
        if middle_latitude.abs() >= 85.0 {
            return None;
        }
        let metres_per_degree_lon = METRES_PER_DEGREE_LAT * middle_latitude.to_radians().cos();
        let step_lat = cell_size_m / METRES_PER_DEGREE_LAT;
        let step_lon = cell_size_m / metres_per_degree_lon;
        let rows = ((bbox.height() / step_lat).ceil() as usize).max(1);
        let cols = ((bbox.width() / step_lon).ceil() as usize).max(1);
        if rows.saturating_mul(cols) > 10_000_000 {
            return None;
        }
        Some(Self {
            west: bbox.min().x,
            north: bbox.max().y,
            step_lon,
            step_lat,
            rows,
            cols,
            metres_per_degree_lon,
            datum,
        })
    }

    pub fn x(&self, col: usize) -> f64 {
        self.west + col as f64 * self.step_lon
    }

    pub fn y(&self, row: usize) -> f64 {
        self.north - row as f64 * self.step_lat
    }

    pub fn rect(&self, row: usize, col: usize) -> Rect<f64> {
        Rect::new(
            Coord {
                x: self.x(col),
                y: self.y(row + 1),
            },
            Coord {
                x: self.x(col + 1),
                y: self.y(row),
            },
        )
    }

    /// The square pieces of `boundary` (which must be oriented), small pieces merged, in row-major order.
    pub fn cut(&self, boundary: &MultiPolygon<f64>) -> Vec<Piece> {
        let full_area_m2 =
            self.step_lat * METRES_PER_DEGREE_LAT * self.step_lon * self.metres_per_degree_lon;
        let pieces = self.clip(boundary);
        self.merge_small_pieces(pieces, full_area_m2 / 10.0)
    }

    fn clip(&self, boundary: &MultiPolygon<f64>) -> Vec<Piece> {
        let edges: RTree<Line<f64>> = RTree::bulk_load(boundary.lines_iter().collect());
        let mut pieces = Vec::new();
        for row in 0..self.rows {
            for col in 0..self.cols {
                let rect = self.rect(row, col);
                let envelope = AABB::from_corners(rect.min().into(), rect.max().into());
                let crossed = edges
                    .locate_in_envelope_intersecting(&envelope)
                    .any(|edge| edge.intersects(&rect));
                let polygons = if crossed {
                    rect.to_polygon().intersection(boundary).0
                } else if boundary.contains(&rect.center()) {
                    vec![rect.to_polygon()]
                } else {
                    continue;
                };
                pieces.extend(
                    polygons
                        .into_iter()
                        .map(|polygon| self.piece(row, col, polygon)),
                );
            }
        }
        pieces
    }

    fn piece(&self, row: usize, col: usize, polygon: Polygon<f64>) -> Piece {
        let polygon = self
            .snap_to_lattice_lines(polygon)
            .orient(Direction::Default);
        let area_m2 = polygon_area_m2(&polygon, self.datum);
        // A polygon of positive area has a centroid; the square's centre is a harmless fallback.
        let centroid = polygon
            .centroid()
            .map_or_else(|| self.rect(row, col).center(), |c| c.0);
        Piece {
            row,
            col,
            polygon,
            centroid,
            area_m2,
        }
    }

    /// Merges each piece under `merge_below_m2` into the large neighbour sharing its longest edge.
    fn merge_small_pieces(&self, mut pieces: Vec<Piece>, merge_below_m2: f64) -> Vec<Piece> {
        let is_small: Vec<bool> = pieces.iter().map(|p| p.area_m2 < merge_below_m2).collect();
        let mut by_square: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (index, piece) in pieces.iter().enumerate() {
            by_square
                .entry((piece.row, piece.col))
                .or_default()
                .push(index);
        }
        let mut merged_away = vec![false; pieces.len()];
        for small in (0..pieces.len()).filter(|&index| is_small[index]) {
            let (row, col) = (pieces[small].row, pieces[small].col);
            let mut best: Option<(f64, usize, Polygon<f64>)> = None;
            for near_row in row.saturating_sub(1)..=row + 1 {
                for near_col in col.saturating_sub(1)..=col + 1 {
                    let Some(candidates) = by_square.get(&(near_row, near_col)) else {
                        continue;
                    };
                    for &host in candidates.iter().filter(|&&host| !is_small[host]) {
                        let Some((shared_m, union)) =
                            self.shared_edge(&pieces[small], &pieces[host])
                        else {
                            continue;
                        };
                        // Strictly longer wins, so among equals the first host in row-major order stays.
                        if best
                            .as_ref()
                            .is_none_or(|(longest, _, _)| shared_m > *longest)
                        {
                            best = Some((shared_m, host, union));
                        }
                    }
                }
            }
            if let Some((_, host, union)) = best {
                let (host_row, host_col) = (pieces[host].row, pieces[host].col);
                pieces[host] = self.piece(host_row, host_col, union);
                merged_away[small] = true;
            }
        }
        pieces
            .into_iter()
            .zip(merged_away)
            .filter(|(piece, merged)| !merged && piece.area_m2 >= DROP_BELOW_M2)
            .map(|(piece, _)| piece)
            .collect()
    }

    /// The length in metres of the edge two pieces share, with their union, when the union is one
    /// polygon (pieces touching at a corner or not at all share no edge).
    fn shared_edge(&self, small: &Piece, host: &Piece) -> Option<(f64, Polygon<f64>)> {
        if !small
            .polygon
            .bounding_rect()?
            .intersects(&host.polygon.bounding_rect()?)
        {
            return None;
        }
        let union = small.polygon.union(&host.polygon);
        let [union] = <[Polygon<f64>; 1]>::try_from(union.0).ok()?;
        // Each shared metre is counted once in each piece's perimeter and not at all in the union's.
        let shared_m = (self.perimeter_m(&small.polygon) + self.perimeter_m(&host.polygon)
            - self.perimeter_m(&union))
            / 2.0;
        (shared_m > 0.01).then_some((shared_m, union))
    }

    fn perimeter_m(&self, polygon: &Polygon<f64>) -> f64 {
        std::iter::once(polygon.exterior())
            .chain(polygon.interiors())
            .flat_map(LineString::lines)
            .map(|line| {
                let east = line.dx() * self.metres_per_degree_lon;
                let north = line.dy() * METRES_PER_DEGREE_LAT;
                east.hypot(north)
            })
            .sum()
    }

    /// For each piece, the pieces it shares an edge with (not just a corner), in index order.
    ///
    /// Cells meet only along lattice lines (everything else is the district boundary), and snapping put
    /// those edges exactly on the lines, so two pieces are neighbours when their edges on one lattice
    /// line overlap by more than a rounding error.
    pub fn neighbours(&self, pieces: &[Piece]) -> Vec<Vec<usize>> {
        let mut on_line: EdgesOnLatticeLines = BTreeMap::new();
        for (index, piece) in pieces.iter().enumerate() {
            let rings = std::iter::once(piece.polygon.exterior()).chain(piece.polygon.interiors());
            for line in rings.flat_map(LineString::lines) {
                let (a, b) = (line.start, line.end);
                if a.x == b.x && a.y != b.y {
                    let col = ((a.x - self.west) / self.step_lon).round();
                    if col >= 0.0 && self.x(col as usize) == a.x {
                        on_line.entry((true, col as i64)).or_default().push((
                            a.y.min(b.y),
                            a.y.max(b.y),
                            index,
                        ));
                    }
                } else if a.y == b.y && a.x != b.x {
                    let row = ((self.north - a.y) / self.step_lat).round();
                    if row >= 0.0 && self.y(row as usize) == a.y {
                        on_line.entry((false, row as i64)).or_default().push((
                            a.x.min(b.x),
                            a.x.max(b.x),
                            index,
                        ));
                    }
                }
            }
        }
        let min_overlap = SHARED_EDGE_MIN_DEGREES;
        let mut neighbours = vec![Vec::new(); pieces.len()];
        for edges in on_line.values_mut() {
            edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
            for (position, &(_, to, piece)) in edges.iter().enumerate() {
                // Sorted by start: once a start passes this edge's end, no later edge overlaps it.
                for &(other_from, other_to, other) in &edges[position + 1..] {
                    if other_from > to - min_overlap {
                        break;
                    }
                    if other != piece && to.min(other_to) - other_from > min_overlap {
                        neighbours[piece].push(other);
                        neighbours[other].push(piece);
                    }
                }
            }
        }
        for list in &mut neighbours {
            list.sort_unstable();
            list.dedup();
        }
        neighbours
    }

    /// Puts coordinates within ≈ 0.1 mm of a lattice line exactly on it (the very value [`Lattice::x`] or
    /// [`Lattice::y`] gives), so clipped cells share edges exactly with their neighbours, and drops the
    /// repeated positions that may leave.
    fn snap_to_lattice_lines(&self, polygon: Polygon<f64>) -> Polygon<f64> {
        const SNAP_DEGREES: f64 = 1e-9;
        let snap_x = |x: f64| {
            let col = ((x - self.west) / self.step_lon).round();
            let line = if col >= 0.0 {
                self.x(col as usize)
            } else {
                f64::NAN
            };
            if (x - line).abs() < SNAP_DEGREES {
                line
            } else {
                x
            }
        };
        let snap_y = |y: f64| {
            let row = ((self.north - y) / self.step_lat).round();
            let line = if row >= 0.0 {
                self.y(row as usize)
            } else {
                f64::NAN
            };
            if (y - line).abs() < SNAP_DEGREES {
                line
            } else {
                y
            }
        };
        let snap_ring = |ring: &LineString<f64>| {
            let mut coords: Vec<Coord<f64>> = ring
                .coords()
                .map(|c| Coord {
                    x: snap_x(c.x),
                    y: snap_y(c.y),
                })
                .collect();
            coords.dedup();
            LineString::new(coords)
        };
        let (exterior, interiors) = polygon.into_inner();
        Polygon::new(
            snap_ring(&exterior),
            interiors.iter().map(snap_ring).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dongcheng_box() -> Rect<f64> {
        Rect::new(
            Coord {
                x: 116.377_93,
                y: 39.859_375,
            },
            Coord {
                x: 116.453_125,
                y: 39.974_609,
            },
        )
    }

    #[test]
    fn lattice_lines_are_shared_bit_for_bit_and_cover_the_box() {
        let lattice = Lattice::covering(dongcheng_box(), 100.0, Datum::Gcj02).unwrap();
        let here = lattice.rect(3, 4);
        assert_eq!(here.max().x, lattice.rect(3, 5).min().x);
        assert_eq!(here.min().y, lattice.rect(4, 4).max().y);
        assert!(lattice.x(lattice.cols) >= dongcheng_box().max().x);
        assert!(lattice.y(lattice.rows) <= dongcheng_box().min().y);
        assert!(Lattice::covering(dongcheng_box(), 0.001, Datum::Gcj02).is_none());
    }

    #[test]
    fn a_sliver_is_merged_into_the_neighbour_it_shares_its_longest_edge_with() {
        // A boundary covering squares (0,0) and (0,1) fully and a 5 m strip of square (0,2).
        let lattice = Lattice::covering(
            Rect::new(
                Coord { x: 116.4, y: 39.9 },
                Coord {
                    x: 116.403,
                    y: 39.9008,
                },
            ),
            100.0,
            Datum::Wgs84,
        )
        .unwrap();
        let strip_east = lattice.x(2) + lattice.step_lon * 0.05;
        let boundary = MultiPolygon::new(vec![
            Rect::new(
                Coord {
                    x: lattice.x(0),
                    y: lattice.y(1),
                },
                Coord {
                    x: strip_east,
                    y: lattice.y(0),
                },
            )
            .to_polygon(),
        ]);
        let pieces = lattice.cut(&boundary);
        assert_eq!(pieces.len(), 2, "{pieces:?}");
        assert_eq!((pieces[1].row, pieces[1].col), (0, 1));
        assert!(
            (pieces[0].area_m2 - 10_000.0).abs() < 20.0,
            "{}",
            pieces[0].area_m2
        );
        assert!(
            (pieces[1].area_m2 - 10_500.0).abs() < 20.0,
            "{}",
            pieces[1].area_m2
        );
        // The merged cell's corners are still exactly on the lattice lines.
        let xs: Vec<f64> = pieces[1].polygon.exterior().coords().map(|c| c.x).collect();
        assert!(xs.contains(&lattice.x(1)), "{xs:?}");
    }
}
