//! Points as unit vectors, and a plane they are projected onto, so that a 2-D R-tree finds points in
//! exact great-circle order.
//!
//! An R-tree on raw lon/lat degrees measures a degree of longitude like a degree of latitude, which in
//! Beijing (40° N) overstates east-west distances by 30% and can put the wrong inspector first. The
//! straight-line (chord) distance between two points on the unit sphere grows monotonically with the
//! great-circle angle between them, so chords order points exactly, everywhere on the earth, with no
//! special case at the antimeridian. A 3-D tree of unit vectors would search in chord order directly,
//! but in three dimensions every insertion, removal and search step costs more. So the trees are 2-D:
//! they hold each unit vector projected orthogonally onto a plane through the earth's centre parallel
//! to the tangent plane at a point of the city ([`Plane`]). An orthogonal projection never lengthens a
//! segment, so the planar distance is a lower bound of the chord: a search walks the tree in planar
//! order, measures each point's chord, and stops once the planar distance passes the best chord found.
//! Near the plane's point (a city is a few tens of kilometres across) the two differ by a few parts in
//! a million, so the walk visits hardly more points than the answer; far from it the bound still
//! holds, the walk is only longer.

use cityops_core::GeoPoint;
use rstar::primitives::GeomWithData;
use rstar::{ParentNode, PointDistance, RTree, RTreeNode};

/// The point on the unit sphere at `point`'s longitude and latitude.
pub(crate) fn unit_vector(point: GeoPoint) -> [f64; 3] {
    let (lat, lon) = (point.lat.to_radians(), point.lon.to_radians());
    let (sin_lat, cos_lat) = lat.sin_cos();
    let (sin_lon, cos_lon) = lon.sin_cos();
    [cos_lat * cos_lon, cos_lat * sin_lon, sin_lat]
}

/// The squared chord between two unit vectors.
pub(crate) fn chord2(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    let d = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
}

/// A squared chord length on the unit sphere that is certainly at least `squared_chord`, allowing for
/// rounding: the margin within which two candidates count as tied in the tree's order and must be
/// compared by their haversine distance instead, and past which a planar distance rules a point out.
pub(crate) fn with_rounding_margin(squared_chord: f64) -> f64 {
    squared_chord * (1.0 + 1e-9) + 1e-18
}

/// The plane through the earth's centre parallel to the tangent plane at one point, with the east and
/// north unit vectors there as its axes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plane {
    east: [f64; 3],
    north: [f64; 3],
}

impl Plane {
    /// The plane of the tangent plane at `point`.
    pub(crate) fn at(point: GeoPoint) -> Self {
        let (lat, lon) = (point.lat.to_radians(), point.lon.to_radians());
        let (sin_lat, cos_lat) = lat.sin_cos();
        let (sin_lon, cos_lon) = lon.sin_cos();
        Self {
            east: [-sin_lon, cos_lon, 0.0],
            north: [-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat],
        }
    }

    /// The orthogonal projection of a unit vector onto the plane: no two points are farther apart on
    /// the plane than their chord.
    pub(crate) fn project(&self, v: &[f64; 3]) -> [f64; 2] {
        let dot = |axis: &[f64; 3]| axis[0] * v[0] + axis[1] * v[1] + axis[2] * v[2];
        [dot(&self.east), dot(&self.north)]
    }
}

/// The candidates among the `wanted` nearest to `unit` in a tree of points on `plane`, each with its
/// squared chord: every point `accept` takes (giving its unit vector) whose chord is within the
/// rounding margin of the `wanted`-th smallest, in no order. The caller ranks them by haversine
/// distance, which is how ties within the margin are settled.
///
/// The tree is searched depth first, nearer nodes first, skipping every node and point whose planar
/// distance (never more than the chord) is past the margin of the `wanted`-th smallest chord found
/// so far. No allocation but the answer's.
pub(crate) fn nearest_on_plane<D: Copy>(
    tree: &RTree<GeomWithData<[f64; 2], D>>,
    plane: &Plane,
    unit: [f64; 3],
    wanted: usize,
    accept: impl FnMut(D) -> Option<[f64; 3]>,
) -> Vec<(f64, D)> {
    if wanted == 0 {
        return Vec::new();
    }
    let mut search = Search {
        unit,
        key: plane.project(&unit),
        accept,
        wanted,
        limit: f64::INFINITY,
        seen: Vec::new(),
    };
    search.visit(tree.root());
    search.seen
}

/// One depth-first search of [`nearest_on_plane`].
struct Search<D, A> {
    unit: [f64; 3],
    /// `unit` on the plane.
    key: [f64; 2],
    accept: A,
    wanted: usize,
    /// Past this squared planar distance nothing can be among the `wanted` nearest.
    limit: f64,
    /// The accepted points within the limit: squared chord and data, by chord.
    seen: Vec<(f64, D)>,
}

/// How many children of a node the search sorts on the stack: rstar's default nodes hold at most 6
/// (7 during a split), a bulk-loaded 2-D node up to 9 (3 × 3 slabs).
const NODE_CAPACITY: usize = 16;

impl<D: Copy, A: FnMut(D) -> Option<[f64; 3]>> Search<D, A> {
    fn visit(&mut self, node: &ParentNode<GeomWithData<[f64; 2], D>>) {
        let children = node.children();
        let mut parents = [(0.0, 0usize); NODE_CAPACITY];
        let mut count = 0;
        for (i, child) in children.iter().enumerate() {
            match child {
                RTreeNode::Leaf(item) => self.consider(item),
                RTreeNode::Parent(parent) => {
                    let distance2 = parent.envelope().distance_2(&self.key);
                    if count < NODE_CAPACITY {
                        // Kept in order of distance as they come: a handful, sorted by insertion.
                        let mut at = count;
                        while at > 0 && parents[at - 1].0 > distance2 {
                            parents[at] = parents[at - 1];
                            at -= 1;
                        }
                        parents[at] = (distance2, i);
                        count += 1;
                    } else if distance2 <= self.limit {
                        // More children than rstar makes: visit in their own order (correct, slower).
                        self.visit(parent);
                    }
                }
            }
        }
        for &(distance2, i) in &parents[..count] {
            if distance2 > self.limit {
                break;
            }
            if let RTreeNode::Parent(parent) = &children[i] {
                self.visit(parent);
            }
        }
    }

    fn consider(&mut self, item: &GeomWithData<[f64; 2], D>) {
        if item.distance_2(&self.key) > self.limit {
            return;
        }
        let Some(unit) = (self.accept)(item.data) else {
            return;
        };
        let chord2 = chord2(&self.unit, &unit);
        if chord2 > self.limit {
            return;
        }
        let at = self.seen.partition_point(|&(other, _)| other <= chord2);
        self.seen.insert(at, (chord2, item.data));
        if at < self.wanted && self.seen.len() >= self.wanted {
            // A new `wanted`-th nearest: the limit comes in, and what lies past it goes.
            self.limit = with_rounding_margin(self.seen[self.wanted - 1].0);
            let limit = self.limit;
            let keep = self.seen.partition_point(|&(other, _)| other <= limit);
            self.seen.truncate(keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(lon: f64, lat: f64) -> GeoPoint {
        GeoPoint { lon, lat }
    }

    #[test]
    fn the_planar_distance_never_exceeds_the_chord() {
        // A plane at Dongcheng, and pairs of points near it, across the earth and at the antimeridian.
        let plane = Plane::at(point(116.41, 39.91));
        let points = [
            point(116.40, 39.90),
            point(116.45, 39.97),
            point(116.37, 39.86),
            point(-73.98, 40.75),
            point(179.999, -16.5),
            point(-179.999, -16.5),
            point(0.0, 89.99),
            point(-116.41, -39.91),
        ];
        for a in &points {
            for b in &points {
                let (va, vb) = (unit_vector(*a), unit_vector(*b));
                let (pa, pb) = (plane.project(&va), plane.project(&vb));
                let planar2 = (pa[0] - pb[0]).powi(2) + (pa[1] - pb[1]).powi(2);
                assert!(
                    planar2 <= with_rounding_margin(chord2(&va, &vb)),
                    "{a:?} {b:?}"
                );
            }
        }
        // Near the plane's point the two agree to a few parts in a million.
        let (va, vb) = (unit_vector(points[1]), unit_vector(points[2]));
        let (pa, pb) = (plane.project(&va), plane.project(&vb));
        let planar2 = (pa[0] - pb[0]).powi(2) + (pa[1] - pb[1]).powi(2);
        assert!(planar2 > chord2(&va, &vb) * (1.0 - 1e-5));
    }

    #[test]
    fn the_axes_are_orthonormal_and_tangent() {
        let at = point(116.41, 39.91);
        let plane = Plane::at(at);
        let centre = unit_vector(at);
        let dot = |a: &[f64; 3], b: &[f64; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
        for (a, b, want) in [
            (&plane.east, &plane.east, 1.0),
            (&plane.north, &plane.north, 1.0),
            (&plane.east, &plane.north, 0.0),
            (&plane.east, &centre, 0.0),
            (&plane.north, &centre, 0.0),
        ] {
            assert!((dot(a, b) - want).abs() < 1e-12);
        }
    }
}
